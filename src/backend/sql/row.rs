//! What the SQL backends' tables have in common: the names of the tag columns, how a record's
//! tag columns decode, and the schema version stored as ASCII digits.

use crate::backend::{LookupTags, Tag};
use crate::store::{BackendError, BackendErrorKind};

use super::error;

/// The tag columns of the records table, in [`LookupField::ALL`](crate::backend::LookupField::ALL)
/// order.
pub(crate) const TAG_COLUMNS: [&str; 4] = [
    "user_name_tag",
    "access_token_tag",
    "refresh_token_tag",
    "grant_token_tag",
];

/// Decodes the four tag columns of a record row, in [`TAG_COLUMNS`] order: `column(i)` reads
/// column `i` (NULL as `None`), and is called for one column after the other, each decoded
/// before the next is read. A tag that is not NULL must be 32 bytes, else
/// [`Corrupt`](BackendErrorKind::Corrupt).
pub(crate) fn lookup_tags(
    mut column: impl FnMut(usize) -> Result<Option<Vec<u8>>, BackendError>,
) -> Result<LookupTags, BackendError> {
    let mut tags = LookupTags::default();
    for (i, slot) in tags.0.iter_mut().enumerate() {
        *slot = column(i)?
            .map(|bytes| {
                <[u8; 32]>::try_from(bytes.as_slice())
                    .map(Tag)
                    .map_err(|_| error(BackendErrorKind::Corrupt, "a lookup tag is not 32 bytes"))
            })
            .transpose()?;
    }
    Ok(tags)
}

/// The verdict on the `schema_version` value of a meta table (ASCII digits): a missing or
/// unreadable value is [`Corrupt`](BackendErrorKind::Corrupt) with the message `unreadable`; a
/// number gets [`check_schema_version`](crate::backend::check_schema_version)'s verdict.
pub(crate) fn check_stored_version(
    value: Option<&[u8]>,
    supported: i64,
    unreadable: &str,
) -> Result<(), BackendError> {
    let version = value
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(|| error(BackendErrorKind::Corrupt, unreadable))?;
    crate::backend::check_schema_version(version, supported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_decode_in_order_and_stop_at_the_first_bad_column() {
        let mut columns = [Some(vec![1; 32]), None, Some(vec![3; 32]), None];
        let tags = lookup_tags(|i| Ok(columns[i].take())).unwrap();
        assert_eq!(tags.0, [Some(Tag([1; 32])), None, Some(Tag([3; 32])), None]);

        let mut read = Vec::new();
        let e = lookup_tags(|i| {
            read.push(i);
            Ok(Some(vec![0; if i == 1 { 31 } else { 32 }]))
        })
        .unwrap_err();
        assert_eq!(e.kind(), BackendErrorKind::Corrupt);
        assert_eq!(read, [0, 1], "decoding stops at the bad tag");
    }

    #[test]
    fn stored_version_verdicts() {
        assert!(check_stored_version(Some(b"1"), 1, "x").is_ok());
        for bad in [None, Some(&b"one"[..]), Some(b"\xff"), Some(b"")] {
            let e = check_stored_version(bad, 1, "unreadable").unwrap_err();
            assert_eq!(e.kind(), BackendErrorKind::Corrupt);
            assert_eq!(
                std::error::Error::source(&e).unwrap().to_string(),
                "unreadable"
            );
        }
        let e = check_stored_version(Some(b"2"), 1, "x").unwrap_err();
        assert_eq!(e.kind(), BackendErrorKind::NotSupported);
    }
}
