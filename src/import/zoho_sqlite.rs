//! The `oauthtoken` table of the Zoho SDKs' SQL token stores, read from a SQLite file.
//!
//! The file is not trusted: only a real table is read (a view, with a recursive CTE, can yield
//! rows without end, and a virtual table or a generated column computes them when read), rows
//! are read one at a time, at most [`MAX_ROWS`] of them and [`MAX_ROW_BYTES`] of cell text a
//! row (larger cells are not fetched), functions named in the file's schema are not trusted,
//! and no error quotes the file (SQLite's own messages can quote its schema).

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::{
    ImportError, MAX_ROW_BYTES, MAX_ROWS, Row, Rows, fields_for_columns, row_too_large,
    token_from_cells, too_many_rows,
};
use crate::token::{OAuthToken, TokenField};

/// The SDKs' table name.
pub const TABLE: &str = "oauthtoken";

/// Reads every row of the `oauthtoken` table of the SQLite database at `path`, all at once;
/// [`read_with`] reads them one at a time.
///
/// # Errors
/// As [`read_with`], and [`ImportError::Stopped`] for a read that ended early.
pub fn read(path: &Path) -> Result<Vec<Row>, ImportError> {
    read_with(path, |rows| rows.collect_all())?
}

/// Reads the rows of the `oauthtoken` table of the SQLite database at `path` (opened read
/// only) one at a time: `consume` gets them (for [`import`](super::import)) and its result is
/// returned. Columns are matched by name; values may be text, integers or NULL. The table is
/// read in one snapshot.
///
/// # Errors
/// Before any row is read: [`ImportError::Database`] if the file cannot be opened or is not a
/// database; [`ImportError::Table`] if it has no `oauthtoken` table, or it is a view or a
/// virtual table, or has a generated column computed when read; [`ImportError::Columns`] for
/// a column that is not a token field or two columns for one field;
/// [`ImportError::TooManyRows`] for more than [`MAX_ROWS`] rows. A failure while the rows are
/// read ends them with a refused row (see [`Rows`]).
pub fn read_with<T>(path: &Path, consume: impl FnOnce(Rows<'_>) -> T) -> Result<T, ImportError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(database("cannot open the database"))?;
    // Functions the schema names (in a generated column, say) run only if they are innocuous.
    conn.pragma_update(None, "trusted_schema", false)
        .map_err(database("cannot set up the connection"))?;
    // One snapshot for the checks, the count and the rows.
    conn.execute_batch("BEGIN")
        .map_err(database("cannot read the database"))?;

    let kind: Option<String> = conn
        .query_row(
            "SELECT type FROM pragma_table_list WHERE schema = 'main' AND name = ?1 COLLATE NOCASE",
            [TABLE],
            |row| row.get(0),
        )
        .optional()
        .map_err(database("cannot read the database's schema"))?;
    let table = |reason: String| Err(ImportError::Table(reason));
    match kind.as_deref() {
        Some("table") => {}
        None => return table(format!("no {TABLE} table in the database")),
        Some("view") => {
            return table(format!(
                "{TABLE} is a view, not a table: only a table is read (a view's rows are \
                 computed, maybe without end)"
            ));
        }
        Some("virtual") => {
            return table(format!(
                "{TABLE} is a virtual table: only a real table is read (a virtual table's rows \
                 are computed, maybe without end)"
            ));
        }
        Some(_) => return table(format!("{TABLE} is not a plain table: only one is read")),
    }

    let mut names = Vec::new();
    {
        let columns_failed = database("cannot read the table's columns");
        let mut stmt = conn
            .prepare("SELECT name, hidden FROM pragma_table_xinfo(?1, 'main')")
            .map_err(columns_failed)?;
        let mut columns = stmt.query([TABLE]).map_err(columns_failed)?;
        while let Some(column) = columns.next().map_err(columns_failed)? {
            let name: String = column.get(0).map_err(columns_failed)?;
            let hidden: i64 = column.get(1).map_err(columns_failed)?;
            if hidden == 2 {
                return table(format!(
                    "column {} of the {TABLE} table is generated when read: only stored \
                     columns are read",
                    names.len() + 1
                ));
            }
            names.push(name);
        }
    }
    let fields = fields_for_columns(&names, |n| {
        format!("column {n} of the {TABLE} table is not a token field")
    })
    .map_err(ImportError::Columns)?;

    let total: i64 = conn
        .query_row(
            &format!("SELECT count(*) FROM main.\"{TABLE}\""),
            [],
            |row| row.get(0),
        )
        .map_err(database("cannot count the table's rows"))?;
    let total = u64::try_from(total).unwrap_or(0);
    if total > MAX_ROWS {
        return Err(too_many_rows(format!("the {TABLE} table"), total));
    }

    let mut stmt = conn
        .prepare(&select(&names))
        .map_err(database("cannot read the table"))?;
    let mut rows = stmt.query([]).map_err(database("cannot read the table"))?;
    let mut number = 0;
    let source = std::iter::from_fn(|| {
        let row = match rows.next() {
            Ok(Some(row)) => row,
            Ok(None) => return None,
            Err(e) => return Some(Err(failure("cannot read the table", &e))),
        };
        number += 1;
        Some(
            decode(row, &fields)
                .map(|token| Row { number, token })
                .map_err(|e| failure("cannot read the table", &e)),
        )
    });
    Ok(consume(Rows::new(source, Some(total))))
}

/// What failed, with SQLite's result code (never its text, see [`sqlite_reason`]).
fn failure(what: &str, e: &rusqlite::Error) -> String {
    format!("{what}: {}", sqlite_reason(e))
}

/// [`failure`] as the error of the whole source.
fn database(what: &'static str) -> impl Fn(rusqlite::Error) -> ImportError + Copy {
    move |e| ImportError::Database(failure(what, &e))
}

/// The query for the rows: first the row's cell text in bytes, then every column, each only
/// if it is not larger than [`MAX_ROW_BYTES`] (`octet_length` of a column does not load its
/// value, so a larger cell is never fetched).
fn select(names: &[String]) -> String {
    let quoted: Vec<String> = names
        .iter()
        .map(|name| format!("\"{}\"", name.replace('"', "\"\"")))
        .collect();
    let size = quoted
        .iter()
        .map(|c| format!("coalesce(octet_length({c}), 0)"))
        .collect::<Vec<_>>()
        .join(" + ");
    let cells = quoted
        .iter()
        .map(|c| format!("CASE WHEN octet_length({c}) <= {MAX_ROW_BYTES} THEN {c} END"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {size}, {cells} FROM main.\"{TABLE}\" LIMIT {}",
        MAX_ROWS + 1
    )
}

/// One row of [`select`] as a token, or why it cannot be one.
fn decode(
    row: &rusqlite::Row<'_>,
    fields: &[TokenField],
) -> rusqlite::Result<Result<OAuthToken, String>> {
    let size: i64 = row.get(0)?;
    if u64::try_from(size).unwrap_or(u64::MAX) > MAX_ROW_BYTES {
        return Ok(Err(row_too_large()));
    }
    let mut cells = Vec::with_capacity(fields.len());
    for (i, field) in fields.iter().enumerate() {
        let value = match row.get_ref(i + 1)? {
            ValueRef::Null => None,
            ValueRef::Text(t) => match std::str::from_utf8(t) {
                Ok(s) => Some(s.to_owned()),
                Err(_) => return Ok(Err(format!("{} is not UTF-8", field.name()))),
            },
            ValueRef::Integer(n) => Some(n.to_string()),
            _ => {
                return Ok(Err(format!(
                    "{} is neither text nor a number",
                    field.name()
                )));
            }
        };
        cells.push((*field, value));
    }
    Ok(token_from_cells(cells))
}

/// An SQLite error without the text SQLite may add to it, which can quote the file's schema
/// (object names, SQL): only the result code and its standard description.
fn sqlite_reason(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(code, _) => code.to_string(),
        _ => "SQLite error".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error of a read that must fail.
    fn error(path: &Path) -> String {
        match read(path) {
            Err(e) => e.to_string(),
            Ok(rows) => panic!("read {} rows", rows.len()),
        }
    }

    fn db(sql: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zoho.db");
        Connection::open(&path).unwrap().execute_batch(sql).unwrap();
        (dir, path)
    }

    const DDL: &str = "CREATE TABLE oauthtoken (id varchar(10) NOT NULL, user_name varchar(255), \
        client_id varchar(255), client_secret varchar(255), refresh_token varchar(255), \
        access_token varchar(255), grant_token varchar(255), expiry_time varchar(20), \
        redirect_url varchar(255), api_domain varchar(255), primary key (id));";

    #[test]
    fn rows_are_streamed_one_at_a_time() {
        let (_dir, path) = db(&format!(
            "{DDL} INSERT INTO oauthtoken (id, user_name, refresh_token) \
             WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r LIMIT 1000) \
             SELECT n, 'u' || n, 'rt' || n FROM r;"
        ));
        // The consumer takes two rows and stops: the rest are never read.
        let (total, first) = read_with(&path, |mut rows| {
            let total = rows.total();
            let first: Vec<u64> = rows.by_ref().take(2).map(|r| r.number).collect();
            (total, first)
        })
        .unwrap();
        assert_eq!((total, first), (Some(1000), vec![1, 2]));
        assert_eq!(read(&path).unwrap().len(), 1000);
    }

    #[test]
    fn a_row_over_the_bound_is_refused_without_its_cells() {
        let big = MAX_ROW_BYTES + 1;
        let (_dir, path) = db(&format!(
            "{DDL} INSERT INTO oauthtoken (id, user_name, access_token) VALUES \
             ('1', 'a', 'at-a'), ('2', 'b', 'at-' || hex(zeroblob({big}))), ('3', 'c', 'at-c');"
        ));
        let rows = read(&path).unwrap();
        assert_eq!(rows.len(), 3);
        assert!(rows[0].token.is_ok() && rows[2].token.is_ok());
        let reason = rows[1].token.as_ref().unwrap_err();
        assert!(reason.contains("MAX_ROW_BYTES"), "{reason}");
    }

    #[test]
    fn views_virtual_tables_and_generated_columns_are_refused() {
        let (_dir, view) = db(
            "CREATE VIEW oauthtoken AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 \
             FROM r) SELECT 'u' || n AS user_name, 'rt' || n AS refresh_token FROM r;",
        );
        assert!(error(&view).contains("is a view"));
        let (_dir, virtual_table) =
            db("CREATE VIRTUAL TABLE oauthtoken USING fts5(user_name, refresh_token);");
        assert!(error(&virtual_table).contains("virtual table"));
        let (_dir, generated) = db("CREATE TABLE oauthtoken (id TEXT, user_name TEXT, \
             access_token TEXT GENERATED ALWAYS AS (user_name || '-at') VIRTUAL);");
        let e = error(&generated);
        assert!(e.contains("column 3") && e.contains("generated"), "{e}");
        let (_dir, missing) = db("CREATE TABLE other (x);");
        assert!(error(&missing).contains("no oauthtoken table"));
    }

    #[test]
    fn unknown_and_duplicate_columns_are_named_by_position() {
        let (_dir, path) = db("CREATE TABLE oauthtoken (id, \"rt-COLUMN-SECRET\");");
        let e = error(&path);
        assert!(e.contains("column 2") && !e.contains("SECRET"), "{e}");
        let (_dir, path) = db("CREATE TABLE oauthtoken (id, user_name, user_mail);");
        let e = error(&path);
        assert!(
            e.contains("columns 2 and 3") && e.contains("user_name"),
            "{e}"
        );
    }
}
