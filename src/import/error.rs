//! Why a source cannot be imported as a whole (a row's problem is a refused row instead, with
//! its reason as text in the [`Summary`](super::Summary)).

use super::{MAX_INPUT_BYTES, MAX_ROWS};

/// Why an import source cannot be read as a whole: nothing of it was saved. Messages never quote
/// the input: columns are named by position, values not at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The input could not be read; the I/O error is the source.
    #[error("cannot read the input")]
    Read(#[source] std::io::Error),
    /// The input is larger than [`MAX_INPUT_BYTES`]; it was not read past that bound.
    #[error(
        "the input is larger than {} MiB (MAX_INPUT_BYTES), the most an import reads",
        MAX_INPUT_BYTES >> 20
    )]
    InputTooLarge,
    /// The source holds more than [`MAX_ROWS`] rows; none was saved.
    #[error("{what} holds {} rows; an import reads at most {MAX_ROWS} (MAX_ROWS)", count(*.rows))]
    TooManyRows {
        /// The source ("the file", "the oauthtoken table", …).
        what: String,
        /// How many rows it holds, if they were counted; else more than [`MAX_ROWS`].
        rows: Option<u64>,
    },
    /// The input is not in the format: not UTF-8, not CSV, not JSON, not a token object or an
    /// array of them.
    #[error("{0}")]
    Malformed(String),
    /// The header line or the table's columns are not what the format needs: a column that is
    /// not a token field, two columns for one field, too few columns.
    #[error("{0}")]
    Columns(String),
    /// The table is missing, or its rows or cells would be computed when read (a view, a
    /// virtual table, a generated column), or it changed while it was read.
    #[error("{0}")]
    Table(String),
    /// The database cannot be opened, reached or read: a refused URI, a connection or server
    /// failure (never the password, a value or a column name).
    #[error("{0}")]
    Database(String),
    /// The rows stopped part way (an I/O error, a corrupt source, a source that grew past
    /// [`MAX_ROWS`]): the read ended at row `row`. From a `read` that collects every row; an
    /// [`import`](super::import) reports it as a refused row instead.
    #[error("row {row}: {reason}")]
    Stopped {
        /// The row it stopped at (one past the last row read).
        row: u64,
        /// Why.
        reason: String,
    },
}

fn count(rows: Option<u64>) -> String {
    match rows {
        Some(rows) => rows.to_string(),
        None => format!("more than {MAX_ROWS}"),
    }
}
