//! Foreign token formats: the Zoho SDKs' FileStore CSV, the `oauthtoken` table of their SQL
//! stores, and tokenvault's own JSON export. Readers turn each row into a token or a reason it
//! was refused; [`import`] saves them through `save_token`, so a re-import updates records
//! instead of duplicating them.

pub mod json;
pub mod zoho_csv;
#[cfg(feature = "mysql")]
pub mod zoho_mysql;
pub mod zoho_sqlite;

use crate::backend::Backend;
use crate::store::{Error, Result};
use crate::token::{OAuthToken, TokenField};
use crate::vault::{EncryptedStore, Saved};

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
    /// Rows not saved: row number and reason.
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

/// Saves every row through `save_token`, calling `progress(rows_done)` as it goes. Rows the
/// store refuses (invalid or conflicting tokens) are counted with their reason; a storage or
/// integrity failure stops the import and is returned.
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
            Ok(mut token) => match store.save(&mut token) {
                Ok(Saved::Inserted) => summary.inserted += 1,
                Ok(Saved::Updated) => summary.updated += 1,
                Err(e @ (Error::InvalidToken { .. } | Error::Conflict { .. })) => {
                    summary.refused.push((row.number, e.to_string()))
                }
                Err(e) => return Err(e),
            },
        }
        progress(summary.read);
    }
    Ok(summary)
}
