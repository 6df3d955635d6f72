//! The Zoho SDKs' FileStore CSV.
//!
//! Python SDK header: `id,user_name,client_id,client_secret,refresh_token,access_token,
//! grant_token,expiry_time,redirect_uri,api_domain`; the Java and Node SDKs write
//! `redirect_url`; older SDKs wrote 9 columns without `api_domain`. Quoting is RFC 4180
//! (commas, quotes and newlines inside quoted fields); an empty cell is an absent value.

use std::io::{Cursor, Read, Write};

use zeroize::Zeroizing;

use super::{
    ImportError, MAX_ROW_BYTES, Row, Rows, fields_for_columns, read_bounded, row_too_large,
    token_from_cells, too_many_rows,
};
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

/// Reads a FileStore CSV into rows, all at once; [`rows`] reads them one at a time.
///
/// # Errors
/// As [`rows`], and [`ImportError::Stopped`] for a read that ended early.
pub fn read(input: impl Read) -> Result<Vec<Row>, ImportError> {
    rows(input)?.collect_all()
}

/// A header problem, as the error of the whole file.
fn not_a_header(reason: String) -> ImportError {
    ImportError::Columns(format!("not a Zoho FileStore CSV header: {reason}"))
}

/// Reads a FileStore CSV as rows, one at a time. A row with the wrong number of cells, a bad
/// `expiry_time`, more than [`MAX_ROW_BYTES`] of cell text, or ambiguous quoting (below) is a
/// refused row; a wrong header fails the whole file. The input (at most
/// [`MAX_INPUT_BYTES`](super::MAX_INPUT_BYTES)) is held in memory, the tokens are not.
///
/// Quoting: the Python and Java SDKs quote only values that need it (RFC 4180); old Java
/// files quote every value; the Node SDK never quotes, so a Node value that starts with `"`
/// would read as a quoted field and silently lose its quotes. A row is therefore refused when
/// a field has text after its closing quote, or (unless the header shows quote-everything
/// style) is quoted without needing it.
///
/// # Errors
/// [`ImportError::Columns`] for a missing or unknown header, [`ImportError::Malformed`] for
/// input that is not CSV, [`ImportError::InputTooLarge`] for input larger than
/// [`MAX_INPUT_BYTES`](super::MAX_INPUT_BYTES), [`ImportError::TooManyRows`] for more than
/// [`MAX_ROWS`](super::MAX_ROWS) rows, [`ImportError::Read`] if it cannot be read.
pub fn rows(input: impl Read) -> Result<Rows<'static>, ImportError> {
    let bytes = read_bounded(input)?;
    let quote_all = bytes.first() == Some(&b'"');
    let total = count_records(&bytes);
    if total > super::MAX_ROWS {
        return Err(too_many_rows("the file", total));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(Cursor::new(bytes));
    let header = reader
        .headers()
        .map_err(|e| ImportError::Malformed(format!("unreadable CSV: {}", csv_reason(&e))))?
        .clone();
    let fields = fields_for_columns(&header, |n| {
        // An unknown first column most likely is data: the file has no header line.
        let hint = if n == 1 {
            "; is the header line missing?"
        } else {
            ""
        };
        format!("column {n} is not a Zoho FileStore column{hint}")
    })
    .map_err(not_a_header)?;
    if !fields.contains(&TokenField::Id) || fields.len() < 9 {
        return Err(not_a_header(format!(
            "expected the 9 or 10 FileStore columns, found {}",
            fields.len()
        )));
    }
    let rows = CsvRows {
        reader,
        fields,
        quote_all,
        record: csv::StringRecord::new(),
        number: 0,
    };
    Ok(Rows::new(rows, Some(total)))
}

/// The number of data records (not the header) in `bytes`, as [`CsvRows`] will read them.
fn count_records(bytes: &[u8]) -> u64 {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes);
    let mut record = csv::ByteRecord::new();
    let mut total = 0;
    // A byte record has no UTF-8 errors, and a slice no I/O errors: any error is the end.
    while let Ok(true) = reader.read_byte_record(&mut record) {
        total += 1;
    }
    total
}

/// The data rows of a FileStore CSV, parsed as they are asked for.
struct CsvRows {
    reader: csv::Reader<Cursor<Zeroizing<Vec<u8>>>>,
    fields: Vec<TokenField>,
    quote_all: bool,
    record: csv::StringRecord,
    number: u64,
}

impl Iterator for CsvRows {
    type Item = Result<Row, String>;

    fn next(&mut self) -> Option<Self::Item> {
        let start = self.reader.position().byte() as usize;
        let token = match self.reader.read_record(&mut self.record) {
            Ok(false) => return None,
            Err(e) if e.is_io_error() => return Some(Err(csv_reason(&e))),
            Err(e) => Err(format!("unreadable row: {}", csv_reason(&e))),
            Ok(true) if self.record.len() != self.fields.len() => Err(format!(
                "{} cells where the header has {}",
                self.record.len(),
                self.fields.len()
            )),
            Ok(true) if self.record.as_slice().len() as u64 > MAX_ROW_BYTES => Err(row_too_large()),
            Ok(true) => {
                let end = self.reader.position().byte() as usize;
                let raw = &self.reader.get_ref().get_ref()[start..end];
                check_quoting(raw, self.quote_all).and_then(|()| {
                    token_from_cells(
                        self.fields
                            .iter()
                            .zip(self.record.iter())
                            .map(|(f, v)| (*f, Some(v.to_owned()))),
                    )
                })
            }
        };
        self.number += 1;
        Some(Ok(Row {
            number: self.number,
            token,
        }))
    }
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
    fn a_file_without_its_header_quotes_none_of_its_cells() {
        let headless = "rt-FIRST-CELL,u@example.com,1000.X,cs-HEADLESS,rt-HEADLESS,,,,,\n";
        let Err(e) = read(headless.as_bytes()) else {
            panic!("a headless file read")
        };
        let e = e.to_string();
        assert!(e.contains("column 1") && e.contains("header"), "{e}");
        for cell in headless.trim_end().split(',').filter(|c| !c.is_empty()) {
            assert!(!e.contains(cell), "{e} quotes {cell}");
        }
        // A repeated column is named by its positions and the field (not the file's text).
        let Err(e) = read("id,user_mail,user_name\n".as_bytes()) else {
            panic!("a repeated column read")
        };
        let e = e.to_string();
        assert!(e.contains("columns 2 and 3 both hold user_name"), "{e}");
    }

    #[test]
    fn bounds_on_rows_and_their_size() {
        let big = "x".repeat(MAX_ROW_BYTES as usize);
        let rows =
            read(format!("{HEADER}1,u,c,{big},r,,,,,\n2,v,c,s,r2,,,,,\n").as_bytes()).unwrap();
        assert!(
            rows[0]
                .token
                .as_ref()
                .unwrap_err()
                .contains("MAX_ROW_BYTES")
        );
        assert!(rows[1].token.is_ok());

        let mut many = String::from(HEADER);
        for _ in 0..=crate::import::MAX_ROWS {
            many.push_str(",,,,,,,,,\n");
        }
        let Err(e) = super::rows(many.as_bytes()) else {
            panic!("more than MAX_ROWS rows read")
        };
        let e = e.to_string();
        assert!(e.contains("MAX_ROWS") && e.contains("1000001"), "{e}");
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
