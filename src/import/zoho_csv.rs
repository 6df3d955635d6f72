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

/// Reads a FileStore CSV into rows. A row with the wrong number of cells, a bad
/// `expiry_time`, or ambiguous quoting (below) is a refused row; a wrong header fails the whole
/// file.
///
/// Quoting: the Python and Java SDKs quote only values that need it (RFC 4180); old Java
/// files quote every value; the Node SDK never quotes, so a Node value that starts with `"`
/// would read as a quoted field and silently lose its quotes. A row is therefore refused when
/// a field has text after its closing quote, or (unless the header shows quote-everything
/// style) is quoted without needing it.
///
/// # Errors
/// [`CsvError`] for a missing or unknown header, or input that is not CSV.
pub fn read(mut input: impl Read) -> Result<Vec<Row>, CsvError> {
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    input
        .read_to_end(&mut bytes)
        .map_err(|e| CsvError::Csv(e.to_string()))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes.as_slice());
    let header = reader
        .headers()
        .map_err(|e| CsvError::Csv(csv_reason(&e)))?
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
    let quote_all = bytes.first() == Some(&b'"');
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    for number in 1.. {
        let start = reader.position().byte() as usize;
        let token = match reader.read_record(&mut record) {
            Ok(false) => break,
            Err(e) => Err(format!("unreadable row: {}", csv_reason(&e))),
            Ok(true) if record.len() != fields.len() => Err(format!(
                "{} cells where the header has {}",
                record.len(),
                fields.len()
            )),
            Ok(true) => {
                let raw = &bytes[start..reader.position().byte() as usize];
                check_quoting(raw, quote_all).and_then(|()| {
                    token_from_cells(
                        fields
                            .iter()
                            .zip(record.iter())
                            .map(|(f, v)| (*f, Some(v.to_owned()))),
                    )
                })
            }
        };
        rows.push(Row { number, token });
    }
    Ok(rows)
}

/// Refuses a raw CSV record whose quoting is ambiguous (see [`read`]).
fn check_quoting(raw: &[u8], quote_all: bool) -> Result<(), String> {
    let end_of_field = |b: u8| matches!(b, b',' | b'\r' | b'\n');
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'"' {
            while i < raw.len() && !end_of_field(raw[i]) {
                i += 1;
            }
        } else {
            i += 1;
            let mut needed = false;
            loop {
                match raw.get(i) {
                    None => return Err("a quoted value is not closed".into()),
                    Some(b'"') if raw.get(i + 1) == Some(&b'"') => {
                        needed = true;
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(&b) => {
                        needed |= end_of_field(b);
                        i += 1;
                    }
                }
            }
            if raw.get(i).is_some_and(|&b| !end_of_field(b)) {
                return Err("text after a closing quote: a value that starts with a quote (as the Node SDK writes \
                            it) is ambiguous; refusing the row"
                    .into());
            }
            if !needed && !quote_all {
                return Err("a quoted value that needs no quotes in a minimally quoted file (a Node SDK value \
                            with literal quotes?) is ambiguous; refusing the row"
                    .into());
            }
        }
        if raw.get(i) != Some(&b',') {
            break;
        }
        i += 1;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "id,user_name,client_id,client_secret,refresh_token,access_token,grant_token,expiry_time,redirect_uri,api_domain\n";

    fn one(row: &str) -> Result<OAuthToken, String> {
        read(format!("{HEADER}{row}").as_bytes())
            .unwrap()
            .remove(0)
            .token
    }

    #[test]
    fn rfc4180_quoting_is_read_verbatim() {
        let t = one("1,u,c,\"se,c\"\"r\nt\",r,,,,,\n").unwrap();
        assert_eq!(t.client_secret().unwrap().expose_secret(), "se,c\"r\nt");
        assert_eq!(t.access_token(), None);
    }

    #[test]
    fn ambiguous_node_style_quotes_are_refused() {
        assert!(
            one("3,u,c,\"quoted\"secret,r,,,,,\n")
                .unwrap_err()
                .contains("closing quote")
        );
        assert!(
            one("3,u,c,\"quoted\",r,,,,,\n")
                .unwrap_err()
                .contains("needs no quotes")
        );
        // A quote inside an unquoted value is literal and unambiguous.
        assert_eq!(
            one("3,u,c,se\"cret,r,,,,,\n")
                .unwrap()
                .client_secret()
                .unwrap()
                .expose_secret(),
            "se\"cret"
        );
    }

    #[test]
    fn quote_everything_files_are_accepted() {
        let quoted_header: String = HEADER
            .trim_end()
            .split(',')
            .map(|h| format!("\"{h}\""))
            .collect::<Vec<_>>()
            .join(",");
        let rows = read(
            format!("{quoted_header}\n\"1\",\"u\",\"c\",\"s\",\"r\",\"\",\"\",\"\",\"\",\"\"\n")
                .as_bytes(),
        )
        .unwrap();
        let t = rows[0].token.as_ref().unwrap();
        assert_eq!(t.client_secret().unwrap().expose_secret(), "s");
    }
}
