//! Foreign token formats: the Zoho SDKs' FileStore CSV, the `oauthtoken` table of their SQL
//! stores, and tokenvault's own JSON export. Readers turn each row into a token or a reason it
//! was refused; [`import`] saves them through `save_token`, so a re-import updates records
//! instead of duplicating them.
//!
//! Bounds: a source is read as a stream of [`Rows`], never held in memory as a whole (a CSV or
//! JSON input is held as text, at most [`MAX_INPUT_BYTES`]); a source of more than
//! [`MAX_ROWS`] rows is refused before any row is saved; a row of more than [`MAX_ROW_BYTES`] of
//! cell text is refused (an SQL reader does not even fetch its cells). The SQL readers read
//! only a real table, never a view or a virtual table, whose rows could be computed without
//! end.
//!
//! No reason or error from a reader quotes the input: cells, column names and keys are named
//! by their position or by the token field they hold, never by their text. A source that cannot
//! be read as a whole is an [`ImportError`]; a row that cannot be imported is refused with its
//! reason as text.

mod error;
pub mod json;
pub mod zoho_csv;
#[cfg(feature = "mysql")]
pub mod zoho_mysql;
#[cfg(feature = "sqlite")]
pub mod zoho_sqlite;

use std::io::Read;

use zeroize::Zeroizing;

pub use error::ImportError;

use crate::backend::Backend;
use crate::store::{Error, Result, TokenStore};
use crate::token::{OAuthToken, TokenField};
use crate::vault::{EncryptedStore, Saved};

/// The most rows one import reads. A source that holds more is refused before any of its rows
/// is saved; if it grows while it is read, the read stops at this bound.
pub const MAX_ROWS: u64 = 1_000_000;

/// The most cell text one row may hold while it is read: the sum of its cells' lengths in bytes
/// (UTF-8, or the decimal form of a number). A larger row is refused, and the SQL readers do
/// not fetch its cells. It is above the largest record a store accepts (a 1 KiB id and nine
/// 16 KiB fields), so every record that can be exported can be imported again; the store's own
/// per-field bounds refuse a too-long field when the row is saved.
pub const MAX_ROW_BYTES: u64 = 256 * 1024;

/// The largest CSV or JSON input an import reads (it is held in memory while it is read).
pub const MAX_INPUT_BYTES: u64 = 256 * 1024 * 1024;

/// One row of an import source.
pub struct Row {
    /// 1-based row number (data rows, not counting a header line; array index + 1 for JSON).
    pub number: u64,
    /// The token, or why the row cannot be one. Reasons never contain field values.
    pub token: std::result::Result<OAuthToken, String>,
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Rows read.
    pub read: u64,
    /// New records.
    pub inserted: u64,
    /// Existing records updated (merged).
    pub updated: u64,
    /// Rows not saved: row number and reason. A reason quotes no value of the input; it may
    /// name a stored record by its id (ids are not secret).
    pub refused: Vec<(u64, String)>,
}

/// The token field a column header names, accepting the names the Zoho SDKs use across
/// languages and versions.
pub fn field_for_column(name: &str) -> Option<TokenField> {
    match name.trim().to_ascii_lowercase().as_str() {
        "user_mail" | "useridentifier" | "user_signature" => Some(TokenField::UserName),
        "redirect_uri" => Some(TokenField::RedirectUrl),
        other => TokenField::from_name(other),
    }
}

/// Builds a token from `(field, value)` cells; `None` and empty values are absent.
pub(crate) fn token_from_cells(
    cells: impl IntoIterator<Item = (TokenField, Option<String>)>,
) -> std::result::Result<OAuthToken, String> {
    let mut token = OAuthToken::new();
    for (field, value) in cells {
        token.set_field(field, value).map_err(str::to_owned)?;
    }
    Ok(token)
}

/// The token fields of a source's columns, in order, from their names. An unknown or repeated
/// column is named by its 1-based position (`unknown` words the message for an unknown one),
/// never by its name: a file without its header line has data, maybe a secret, there.
pub(crate) fn fields_for_columns<S: AsRef<str>>(
    names: impl IntoIterator<Item = S>,
    unknown: impl Fn(usize) -> String,
) -> std::result::Result<Vec<TokenField>, String> {
    let mut fields: Vec<TokenField> = Vec::new();
    for (i, name) in names.into_iter().enumerate() {
        let field = field_for_column(name.as_ref()).ok_or_else(|| unknown(i + 1))?;
        if let Some(first) = fields.iter().position(|f| *f == field) {
            return Err(format!(
                "columns {} and {} both hold {}",
                first + 1,
                i + 1,
                field.name()
            ));
        }
        fields.push(field);
    }
    Ok(fields)
}

/// The reason for a row of more than [`MAX_ROW_BYTES`] of cell text.
pub(crate) fn row_too_large() -> String {
    format!(
        "the row holds more than {} KiB of cell text (MAX_ROW_BYTES)",
        MAX_ROW_BYTES / 1024
    )
}

/// The error for a source that holds `rows` rows, more than [`MAX_ROWS`].
pub(crate) fn too_many_rows(what: impl Into<String>, rows: u64) -> ImportError {
    ImportError::TooManyRows {
        what: what.into(),
        rows: Some(rows),
    }
}

/// Refuses an input of `len` bytes if it is larger than [`MAX_INPUT_BYTES`] (so that a caller
/// that knows a file's size can refuse it before reading it).
///
/// # Errors
/// [`ImportError::InputTooLarge`].
pub fn check_input_size(len: u64) -> std::result::Result<(), ImportError> {
    if len > MAX_INPUT_BYTES {
        return Err(ImportError::InputTooLarge);
    }
    Ok(())
}

/// All of `input`, refused if it is larger than [`MAX_INPUT_BYTES`] (without reading more than
/// one byte past it), in a buffer cleared when dropped.
pub(crate) fn read_bounded(
    input: impl Read,
) -> std::result::Result<Zeroizing<Vec<u8>>, ImportError> {
    let mut bytes = Zeroizing::new(Vec::new());
    input
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(ImportError::Read)?;
    check_input_size(bytes.len() as u64)?;
    Ok(bytes)
}

/// The rows of a source, read one at a time as [`import`] asks for them; each reader's
/// `rows`/`read_with` gives them.
///
/// A failure that ends the read part way (an I/O error, a corrupt source, a source that grew
/// past [`MAX_ROWS`] while it was read) ends the iteration with one more row: refused,
/// numbered after the last row read, its reason saying that the rest was not read. So an
/// import that stopped early always reports it. [`Rows::stopped`] tells it afterwards.
pub struct Rows<'a> {
    source: Box<dyn Iterator<Item = std::result::Result<Row, String>> + 'a>,
    total: Option<u64>,
    count: u64,
    last: u64,
    stopped: Option<(u64, String)>,
}

impl<'a> Rows<'a> {
    /// Rows from `source`, whose `Err` items end the read; `total` is the number of rows the
    /// source holds if the reader counted them first.
    pub(crate) fn new(
        source: impl Iterator<Item = std::result::Result<Row, String>> + 'a,
        total: Option<u64>,
    ) -> Rows<'a> {
        Rows {
            source: Box::new(source),
            total,
            count: 0,
            last: 0,
            stopped: None,
        }
    }

    /// How many rows the source holds, counted before reading them (for a progress bar);
    /// `None` if the reader did not count.
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// Once the read has ended early: the number of the row it stopped at and why.
    pub fn stopped(&self) -> Option<(u64, &str)> {
        self.stopped.as_ref().map(|(n, why)| (*n, why.as_str()))
    }

    /// Every row, at once.
    ///
    /// # Errors
    /// [`ImportError::Stopped`]: the read ended early (see [`Rows`]).
    pub fn collect_all(mut self) -> std::result::Result<Vec<Row>, ImportError> {
        let rows: Vec<Row> = self.by_ref().collect();
        match self.stopped {
            Some((row, reason)) => Err(ImportError::Stopped { row, reason }),
            None => Ok(rows),
        }
    }
}

impl Iterator for Rows<'_> {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        if self.stopped.is_some() {
            return None;
        }
        let why = match self.source.next()? {
            Ok(row) if self.count < MAX_ROWS => {
                self.count += 1;
                self.last = row.number;
                return Some(row);
            }
            Ok(_) => format!("more than {MAX_ROWS} rows (MAX_ROWS)"),
            Err(why) => why,
        };
        let number = self.last + 1;
        let row = Row {
            number,
            token: Err(format!(
                "reading stopped: {why}; this row and the rest were not read"
            )),
        };
        self.stopped = Some((number, why));
        Some(row)
    }
}

/// Saves every row through `save_token`, calling `progress(rows_done)` as it goes. Rows the
/// store refuses (invalid or conflicting tokens) are counted with their reason; a storage or
/// integrity failure stops the import and is returned.
///
/// A row whose `id` is a stored record's but whose `user_name` is another than that record's
/// is refused ("id … belongs to another user") and the record is left as it was: saving it
/// would relabel someone else's record. (A row without a user name updates the record by id,
/// and one with a user name may name a record that has none.)
///
/// # Errors
/// [`Error::Backend`], [`Error::Tampered`] and the other errors that are not about one row.
pub fn import<B: Backend>(
    store: &EncryptedStore<B>,
    rows: impl IntoIterator<Item = Row>,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary> {
    let mut summary = Summary::default();
    for row in rows {
        summary.read += 1;
        match row.token {
            Err(reason) => summary.refused.push((row.number, reason)),
            Ok(mut token) => match save_row(store, &mut token)? {
                Ok(Saved::Inserted) => summary.inserted += 1,
                Ok(Saved::Updated) => summary.updated += 1,
                Err(reason) => summary.refused.push((row.number, reason)),
            },
        }
        progress(summary.read);
    }
    Ok(summary)
}

/// Saves one imported token, or says why the row is refused (see [`import`]).
///
/// The relabel check reads the record before the save, outside the save's transaction: a
/// concurrent writer that relabels the record in between is not caught here.
fn save_row<B: Backend>(
    store: &EncryptedStore<B>,
    token: &mut OAuthToken,
) -> Result<std::result::Result<Saved, String>> {
    let refusal = |e: Error| match e {
        Error::InvalidToken { .. } | Error::Conflict { .. } => Ok(Err(e.to_string())),
        e => Err(e),
    };
    if let (Some(id), Some(name)) = (token.id(), token.user_name()) {
        let stored = match store.find_token_by_id(id) {
            Ok(stored) => stored,
            Err(e) => return refusal(e),
        };
        if let Some(owner) = stored.as_ref().and_then(OAuthToken::user_name)
            && owner != name
        {
            // Ids are not secret (they are printed everywhere); user names are not printed.
            return Ok(Err(format!("id {id:?} belongs to another user")));
        }
    }
    match store.save(token) {
        Ok(saved) => Ok(Ok(saved)),
        Err(e) => refusal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::MemoryBackend;
    use crate::{Credential, RawKey};

    fn store() -> EncryptedStore<MemoryBackend> {
        EncryptedStore::create(
            MemoryBackend::new(),
            &Credential::raw_key(RawKey::from_bytes([7; 32])),
        )
        .unwrap()
    }

    fn row(number: u64, token: OAuthToken) -> Row {
        Row {
            number,
            token: Ok(token),
        }
    }

    #[test]
    fn a_row_that_would_relabel_another_users_record_is_refused() {
        let store = store();
        let mut alice = OAuthToken::new()
            .with_id("7")
            .with_user_name("alice@example.com")
            .with_refresh_token("rt-alice");
        store.save(&mut alice).unwrap();
        let mut anonymous = OAuthToken::new()
            .with_id("8")
            .with_access_token("at-anonymous");
        store.save(&mut anonymous).unwrap();
        let before = store.find_token_by_id("7").unwrap().unwrap();

        let rows = [
            // Alice's id, Mallory's name: refused, record 7 untouched.
            row(
                1,
                OAuthToken::new()
                    .with_id("7")
                    .with_user_name("mallory@example.com")
                    .with_refresh_token("rt-mallory"),
            ),
            // Alice's id and name: an ordinary update.
            row(
                2,
                OAuthToken::new()
                    .with_id("7")
                    .with_user_name("alice@example.com")
                    .with_access_token("at-alice"),
            ),
            // By id without a name: an update that keeps the name.
            row(3, OAuthToken::new().with_id("7").with_client_id("1000.A")),
            // A record without a user name may be given one.
            row(
                4,
                OAuthToken::new()
                    .with_id("8")
                    .with_user_name("bob@example.com"),
            ),
        ];
        let summary = import(&store, rows, &mut |_| {}).unwrap();
        assert_eq!((summary.read, summary.inserted, summary.updated), (4, 0, 3));
        assert_eq!(
            summary.refused,
            vec![(1, "id \"7\" belongs to another user".to_owned())]
        );
        for (_, reason) in &summary.refused {
            assert!(!reason.contains("alice") && !reason.contains("mallory"));
        }
        let after = store.find_token_by_id("7").unwrap().unwrap();
        assert_eq!(after.user_name(), Some("alice@example.com"));
        assert_eq!(
            after.refresh_token().unwrap().expose_secret(),
            before.refresh_token().unwrap().expose_secret()
        );
        assert_eq!(after.access_token().unwrap().expose_secret(), "at-alice");
        assert_eq!(after.client_id(), Some("1000.A"));
        assert_eq!(
            store.find_token_by_id("8").unwrap().unwrap().user_name(),
            Some("bob@example.com")
        );
        assert_eq!(store.get_tokens().unwrap().len(), 2);
    }

    #[test]
    fn a_read_that_stops_early_ends_with_a_refused_row() {
        let source = vec![
            Ok(row(1, OAuthToken::new().with_access_token("at-1"))),
            Err("the disk is on fire".to_owned()),
            Ok(row(2, OAuthToken::new().with_access_token("at-2"))),
        ];
        let mut rows = Rows::new(source.into_iter(), Some(3));
        let numbers: Vec<(u64, bool)> =
            rows.by_ref().map(|r| (r.number, r.token.is_ok())).collect();
        assert_eq!(numbers, [(1, true), (2, false)]);
        assert_eq!(rows.stopped(), Some((2, "the disk is on fire")));
        let source = vec![Err("the disk is on fire".to_owned())];
        let Err(e) = Rows::new(source.into_iter(), None).collect_all() else {
            panic!("a failed read collected")
        };
        assert!(matches!(e, ImportError::Stopped { row: 1, .. }), "{e:?}");
        assert_eq!(e.to_string(), "row 1: the disk is on fire");
    }

    #[test]
    fn whole_source_errors_say_what_and_keep_the_cause_as_source() {
        use std::error::Error as _;
        assert_eq!(
            check_input_size(MAX_INPUT_BYTES + 1)
                .unwrap_err()
                .to_string(),
            "the input is larger than 256 MiB (MAX_INPUT_BYTES), the most an import reads"
        );
        assert!(check_input_size(MAX_INPUT_BYTES).is_ok());
        assert_eq!(
            too_many_rows("the file", 1_000_001).to_string(),
            "the file holds 1000001 rows; an import reads at most 1000000 (MAX_ROWS)"
        );
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("the disk is on fire"))
            }
        }
        let e = read_bounded(Broken).unwrap_err();
        assert!(matches!(e, ImportError::Read(_)));
        assert_eq!(e.to_string(), "cannot read the input");
        assert_eq!(e.source().unwrap().to_string(), "the disk is on fire");
    }

    #[test]
    fn columns_are_named_by_position_never_by_name() {
        let e = fields_for_columns(["id", "rt-SECRET-CELL"], |n| format!("column {n} is bad"))
            .unwrap_err();
        assert_eq!(e, "column 2 is bad");
        let e =
            fields_for_columns(["user_mail", "id", "user_name"], |n| format!("{n}")).unwrap_err();
        assert_eq!(e, "columns 1 and 3 both hold user_name");
    }
}
