//! tokenvault's JSON: an array of token objects with the Zoho field names (one object is
//! accepted too), as `tokenvault export --format json` writes.

use std::fmt;
use std::io::{Read, Write};
use std::ops::Range;

use serde::de::{DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use zeroize::Zeroizing;

use super::{ImportError, MAX_ROW_BYTES, MAX_ROWS, Row, Rows, read_bounded, row_too_large};
use crate::token::{OAuthToken, TokenField};

/// Reads a JSON array of tokens (or one token), all at once; [`rows`] reads them one at a
/// time.
///
/// # Errors
/// As [`rows`], and [`ImportError::Stopped`] for a read that ended early.
pub fn read(input: impl Read) -> Result<Vec<Row>, ImportError> {
    rows(input)?.collect_all()
}

/// Reads a JSON array of tokens (or one token) as rows, one at a time. An element that is not
/// a valid token, or holds more than [`MAX_ROW_BYTES`] of field text, is a refused row. The
/// input (at most [`MAX_INPUT_BYTES`](super::MAX_INPUT_BYTES)) is held in memory, the tokens are
/// not.
///
/// # Errors
/// [`ImportError::Malformed`] if the input is not JSON or neither an object nor an array;
/// [`ImportError::InputTooLarge`] if it is larger than
/// [`MAX_INPUT_BYTES`](super::MAX_INPUT_BYTES); [`ImportError::TooManyRows`] for more than
/// [`MAX_ROWS`] elements; [`ImportError::Read`] if it cannot be read.
pub fn rows(input: impl Read) -> Result<Rows<'static>, ImportError> {
    let bytes = read_bounded(input)?;
    let malformed = |reason: &str| ImportError::Malformed(reason.to_owned());
    let text = std::str::from_utf8(&bytes).map_err(|_| malformed("the input is not UTF-8"))?;
    // Each element is parsed from its own text, not through `serde_json::Value`, so that a
    // duplicated key is an error rather than silently the last value. Only where each element
    // is is kept until its row is asked for.
    let mut items = Vec::new();
    match text.trim_start().as_bytes().first() {
        Some(b'[') => {
            let mut de = serde_json::Deserializer::from_str(text);
            let parsed = Elements {
                text,
                items: &mut items,
            }
            .deserialize(&mut de)
            .and_then(|()| de.end());
            if items.len() as u64 > MAX_ROWS {
                return Err(ImportError::TooManyRows {
                    what: "the input".into(),
                    rows: None,
                });
            }
            parsed.map_err(|e| malformed(&safe_reason(&e)))?;
        }
        Some(b'{') => {
            let item: &RawValue =
                serde_json::from_str(text).map_err(|e| malformed(&safe_reason(&e)))?;
            items.push(span(text, item));
        }
        _ => return Err(malformed("expected a token object or an array of them")),
    }
    let total = items.len() as u64;
    let rows = JsonRows {
        bytes,
        items: items.into_iter(),
        number: 0,
    };
    Ok(Rows::new(rows, Some(total)))
}

/// Where `item`, a part of `text`, lies in it.
fn span(text: &str, item: &RawValue) -> Range<usize> {
    let start = item.get().as_ptr() as usize - text.as_ptr() as usize;
    start..start + item.get().len()
}

/// The elements of a JSON array, as spans of `text`; stops after more than [`MAX_ROWS`].
struct Elements<'t, 'v> {
    text: &'t str,
    items: &'v mut Vec<Range<usize>>,
}

impl<'de> DeserializeSeed<'de> for Elements<'de, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Elements<'de, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of token objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            self.items.push(span(self.text, item));
            if self.items.len() as u64 > MAX_ROWS {
                return Err(serde::de::Error::custom("too many elements"));
            }
        }
        Ok(())
    }
}

/// The elements of a JSON array, parsed into tokens as they are asked for.
struct JsonRows {
    bytes: Zeroizing<Vec<u8>>,
    items: std::vec::IntoIter<Range<usize>>,
    number: u64,
}

impl Iterator for JsonRows {
    type Item = Result<Row, String>;

    fn next(&mut self) -> Option<Self::Item> {
        let span = self.items.next()?;
        self.number += 1;
        // Checked as UTF-8 whole when read; an element is a part of it.
        let token = std::str::from_utf8(&self.bytes[span])
            .map_err(|_| "not UTF-8".to_owned())
            .and_then(token_from_json);
        Some(Ok(Row {
            number: self.number,
            token,
        }))
    }
}

/// One element as a token, or why it is not one (never quoting it).
fn token_from_json(item: &str) -> Result<OAuthToken, String> {
    let token = serde_json::from_str::<OAuthToken>(item).map_err(|e| {
        let reason = safe_reason(&e);
        match unknown_key_position(item) {
            Some(n) if is_unknown_field(&e) => format!(
                "key {n} of the object is an unknown field; the token fields are {}",
                TokenField::ALL.map(TokenField::name).join(", ")
            ),
            _ => reason,
        }
    })?;
    let text: usize = TokenField::ALL
        .into_iter()
        .filter_map(|f| token.expose_field(f).map(|v| v.len()))
        .sum();
    if text as u64 > MAX_ROW_BYTES {
        return Err(row_too_large());
    }
    Ok(token)
}

fn is_unknown_field(e: &serde_json::Error) -> bool {
    e.classify() == serde_json::error::Category::Data && e.to_string().starts_with("unknown field")
}

/// The 1-based position of the first key of the JSON object `item` that is not a token
/// field's, if it is an object and has one.
fn unknown_key_position(item: &str) -> Option<usize> {
    struct FirstUnknown;
    impl<'de> Visitor<'de> for FirstUnknown {
        type Value = Option<usize>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<usize>, A::Error> {
            let mut first = None;
            let mut n = 0;
            while let Some(key) = map.next_key::<String>()?.map(Zeroizing::new) {
                n += 1;
                let known = key.as_str() == "redirect_uri" || TokenField::from_name(&key).is_some();
                if !known && first.is_none() {
                    first = Some(n);
                }
                map.next_value::<IgnoredAny>()?;
            }
            Ok(first)
        }
    }
    serde_json::Deserializer::from_str(item)
        .deserialize_map(FirstUnknown)
        .ok()
        .flatten()
}

/// A serde error as a message that never quotes an input value: serde names missing and
/// duplicated *fields* (from tokenvault's own list, not secret) but quotes unknown keys
/// ("unknown field `…`") and offending *values* ("invalid type: integer `12345`"), which
/// may be tokens.
pub fn safe_reason(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let text = e.to_string();
    let text = text.split(" at line ").next().unwrap_or_default();
    match e.classify() {
        Category::Syntax | Category::Eof => {
            format!("not valid JSON (line {}, column {})", e.line(), e.column())
        }
        Category::Io => "cannot read the input".into(),
        Category::Data
            if ["missing field", "duplicate field", "expiry_time "]
                .iter()
                .any(|p| text.starts_with(p)) =>
        {
            text.to_owned()
        }
        Category::Data if text.starts_with("unknown field") => {
            "a key is an unknown field (not a token field)".into()
        }
        Category::Data if text.starts_with("invalid type") => {
            "a field has the wrong type (token fields are strings)".into()
        }
        Category::Data => "a field has an invalid value".into(),
    }
}

/// Writes tokens as a JSON array, secrets in plaintext.
///
/// # Errors
/// I/O errors from `output`.
pub fn write(mut output: impl Write, tokens: &[OAuthToken]) -> std::io::Result<()> {
    let views: Vec<_> = tokens.iter().map(OAuthToken::expose_secrets).collect();
    serde_json::to_writer_pretty(&mut output, &views)?;
    output.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_and_values_never_quoted() {
        let rows = read(&br#"[{"access_token":"A","access_token":"B"},{"access_token":12345},{"user_name":"u","refresh_token":"r"}]"#[..]).unwrap();
        assert!(
            rows[0]
                .token
                .as_ref()
                .unwrap_err()
                .contains("duplicate field")
        );
        let wrong_type = rows[1].token.as_ref().unwrap_err();
        assert!(!wrong_type.contains("12345"), "{wrong_type}");
        assert_eq!(rows[2].token.as_ref().unwrap().user_name(), Some("u"));
        assert!(read(&b"42"[..]).is_err());
        assert_eq!(read(&br#"{"user_name":"u"}"#[..]).unwrap().len(), 1);
    }

    #[test]
    fn unknown_keys_are_named_by_position_never_quoted() {
        let rows =
            read(&br#"[{"user_name":"u","rt-KEY-SECRET":"x"},{"rt-OTHER-SECRET":1,"id":"2"}]"#[..])
                .unwrap();
        let first = rows[0].token.as_ref().unwrap_err();
        assert!(first.starts_with("key 2 of the object"), "{first}");
        let second = rows[1].token.as_ref().unwrap_err();
        assert!(second.starts_with("key 1 of the object"), "{second}");
        for reason in [first, second] {
            assert!(!reason.contains("SECRET"), "{reason}");
        }
        // One object on its own, too.
        let rows = read(&br#"{"rt-KEY-SECRET":"x"}"#[..]).unwrap();
        assert!(!rows[0].token.as_ref().unwrap_err().contains("SECRET"));
    }

    #[test]
    fn bounds_on_elements_and_their_size() {
        let mut many = String::from("[");
        for _ in 0..=MAX_ROWS {
            many.push_str("{},");
        }
        many.pop();
        many.push(']');
        let Err(e) = read(many.as_bytes()) else {
            panic!("more than MAX_ROWS elements read")
        };
        assert!(matches!(e, ImportError::TooManyRows { rows: None, .. }));
        let e = e.to_string();
        assert!(e.contains("MAX_ROWS") && e.contains("1000000"), "{e}");

        let big = "x".repeat(MAX_ROW_BYTES as usize);
        let text = format!(r#"[{{"access_token":"{big}","id":"1"}},{{"access_token":"a"}}]"#);
        let rows = read(text.as_bytes()).unwrap();
        assert!(
            rows[0]
                .token
                .as_ref()
                .unwrap_err()
                .contains("MAX_ROW_BYTES")
        );
        assert!(rows[1].token.is_ok());
    }
}
