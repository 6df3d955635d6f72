//! The Zoho SDKs' FileStore CSV.
//!
//! Python SDK header: `id,user_name,client_id,client_secret,refresh_token,access_token,
//! grant_token,expiry_time,redirect_uri,api_domain`; the Java and Node SDKs write
//! `redirect_url`; older SDKs wrote 9 columns without `api_domain`. Quoting is RFC 4180
//! (commas, quotes and newlines inside quoted fields); an empty cell is an absent value.

use std::io::{Read, Write};

use super::{Row, field_for_column, token_from_cells};
use crate::token::{OAuthToken, TokenField};

/// The header this module writes: the Python SDK's, which every SDK's reader accepts.
pub const HEADER: [&str; 10] = [
    "id",
    "user_name",
    "client_id",
    "client_secret",
    "refresh_token",
    "access_token",
    "grant_token",
    "expiry_time",
    "redirect_uri",
    "api_domain",
];

/// Why a CSV file cannot be read at all (as opposed to one row).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CsvError {
    /// The header is not a Zoho FileStore header.
    #[error("not a Zoho FileStore CSV header: {0}")]
    Header(String),
    /// The file is not CSV.
    #[error("unreadable CSV: {0}")]
    Csv(String),
}

/// Reads a FileStore CSV into rows. A row with the wrong number of cells, or a bad
/// `expiry_time`, is a refused row; a wrong header fails the whole file.
///
/// # Errors
/// [`CsvError`] for a missing or unknown header, or input that is not CSV.
pub fn read(input: impl Read) -> Result<Vec<Row>, CsvError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(input);
    let header = reader
        .headers()
        .map_err(|e| CsvError::Csv(e.to_string()))?
        .clone();
    let mut fields = Vec::with_capacity(header.len());
    for name in &header {
        let field = field_for_column(name)
            .ok_or_else(|| CsvError::Header(format!("unknown column {name:?}")))?;
        if fields.contains(&field) {
            return Err(CsvError::Header(format!("column {name:?} appears twice")));
        }
        fields.push(field);
    }
    if !fields.contains(&TokenField::Id) || fields.len() < 9 {
        return Err(CsvError::Header(format!(
            "expected the 9 or 10 FileStore columns, found {}",
            fields.len()
        )));
    }
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let number = i as u64 + 1;
        let token = match record {
            Err(e) => Err(format!("unreadable row: {}", csv_reason(&e))),
            Ok(cells) if cells.len() != fields.len() => Err(format!(
                "{} cells where the header has {}",
                cells.len(),
                fields.len()
            )),
            Ok(cells) => token_from_cells(
                fields
                    .iter()
                    .zip(cells.iter())
                    .map(|(f, v)| (*f, Some(v.to_owned()))),
            ),
        };
        rows.push(Row { number, token });
    }
    Ok(rows)
}

/// A CSV error's kind without the cell contents it may quote.
fn csv_reason(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "invalid UTF-8".into(),
        csv::ErrorKind::UnequalLengths { .. } => "wrong number of cells".into(),
        _ => "malformed CSV".into(),
    }
}

/// Writes tokens as a FileStore CSV with the Python header, secrets in plaintext.
///
/// # Errors
/// I/O errors from `output`.
pub fn write(output: impl Write, tokens: &[OAuthToken]) -> std::io::Result<()> {
    let mut writer = csv::WriterBuilder::new().from_writer(output);
    writer.write_record(HEADER)?;
    for token in tokens {
        let cells = TokenField::ALL.map(|f| token.expose_field(f));
        writer.write_record(
            cells
                .iter()
                .map(|c| c.as_deref().map_or("", |s| s.as_str())),
        )?;
    }
    writer.flush()
}
