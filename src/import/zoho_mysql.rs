//! The Zoho SDKs' `DBStore`: the `oauthtoken` table in a MySQL or MariaDB database (the SDKs'
//! default database is `zohooauth`; the DDL is in tests/fixtures/zoho/README.md).

use std::error::Error as _;

use ::mysql::Value;
use ::mysql::prelude::Queryable;

use super::{
    ImportError, MAX_ROW_BYTES, MAX_ROWS, Row, Rows, fields_for_columns, row_too_large,
    token_from_cells, too_many_rows,
};
use crate::backend::mysql::connection::{self, Connection};
use crate::token::{OAuthToken, TokenField};

/// The SDKs' table name.
pub const TABLE: &str = "oauthtoken";
/// The SDKs' default database, used when the URI names none.
pub const DEFAULT_DATABASE: &str = "zohooauth";

/// Reads every row of the `oauthtoken` table of the database named by `uri`, all at once;
/// [`read_with`] reads them one at a time.
///
/// # Errors
/// As [`read_with`], and [`ImportError::Stopped`] for a read that ended early.
pub fn read(uri: &str) -> Result<Vec<Row>, ImportError> {
    read_with(uri, |rows| rows.collect_all())?
}

/// Reads the rows of the `oauthtoken` table of the database named by `uri` one at a time:
/// `consume` gets them (for [`import`](super::import)) and its result is returned. `uri` is a
/// `mysql://USER:PASS@HOST:PORT/DATABASE` URI with the MySQL backend's rules
/// ([`MysqlBackend`](crate::backend::MysqlBackend)): TLS verified by default,
/// `ssl_mode=disabled` only for a loopback host; the database defaults to `zohooauth`. Columns
/// are matched by name; values may be text, integers or NULL. Rows come in primary-key order
/// (the SDK's `id`), or in the table's stored order if it has no primary key. Only a base
/// table is read (not a view), at most [`MAX_ROWS`] rows, and a cell larger than
/// [`MAX_ROW_BYTES`] is not fetched (its row is refused). Nothing is written.
///
/// # Errors
/// Before any row is read: [`ImportError::Database`] for a URI that is malformed or refused or
/// a server that cannot be reached or fails; [`ImportError::Table`] for no `oauthtoken` table,
/// a view of that name, or a generated column computed when read; [`ImportError::Columns`] for
/// a column that is not a token field or two columns for one field;
/// [`ImportError::TooManyRows`] for more than [`MAX_ROWS`] rows. A failure while the rows are
/// read ends them with a refused row (see [`Rows`]). Messages never contain the password, a
/// value or a column name.
pub fn read_with<T>(uri: &str, consume: impl FnOnce(Rows<'_>) -> T) -> Result<T, ImportError> {
    let Connection { mut conn, database } =
        connection::connect(uri, DEFAULT_DATABASE).map_err(|e| {
            // The backend's own message, without its "storage backend error (kind)" prefix.
            ImportError::Database(
                e.source()
                    .map_or_else(|| e.to_string(), |source| source.to_string()),
            )
        })?;
    let fail = |e: ::mysql::Error, during: &str| connection::error_message(&e, during);

    let reading = format!("reading {database}.{TABLE}");
    let db = |e| ImportError::Database(fail(e, &reading));
    let table = |reason: String| Err(ImportError::Table(reason));
    let kind: Option<Value> = conn
        .exec_first(
            "SELECT TABLE_TYPE FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
            (TABLE,),
        )
        .map_err(db)?;
    match kind {
        None => return table(format!("database {database} has no {TABLE} table")),
        // MariaDB calls a table with history `SYSTEM VERSIONED`; a SELECT reads its rows.
        Some(Value::Bytes(kind)) if kind == b"BASE TABLE" || kind == b"SYSTEM VERSIONED" => {}
        Some(Value::Bytes(kind)) if kind.ends_with(b"VIEW") => {
            return table(format!(
                "{database}.{TABLE} is a view, not a table: only a table is read"
            ));
        }
        Some(_) => return table(format!("{database}.{TABLE} is not a base table")),
    }

    let columns: Vec<::mysql::Row> = conn
        .exec(
            "SELECT COLUMN_NAME, EXTRA FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (TABLE,),
        )
        .map_err(db)?;
    let mut names = Vec::with_capacity(columns.len());
    for (n, column) in (1..).zip(&columns) {
        let name = match column.as_ref(0) {
            Some(Value::Bytes(name)) => String::from_utf8(name.clone()).ok(),
            _ => None,
        }
        .ok_or_else(|| {
            ImportError::Columns(format!(
                "column {n} of {TABLE} has a name that is not UTF-8"
            ))
        })?;
        if let Some(Value::Bytes(extra)) = column.as_ref(1)
            && extra.windows(7).any(|w| w.eq_ignore_ascii_case(b"VIRTUAL"))
        {
            return table(format!(
                "column {n} of {TABLE} is generated when read: only stored columns are read"
            ));
        }
        names.push(name);
    }
    let fields = fields_for_columns(&names, |n| {
        format!("column {n} of {TABLE} is not a token field")
    })
    .map_err(ImportError::Columns)?;

    let key_columns: Vec<Vec<u8>> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' \
             ORDER BY ORDINAL_POSITION",
            (TABLE,),
        )
        .map_err(db)?;
    let mut order = Vec::new();
    for column in key_columns {
        let column = String::from_utf8(column)
            .ok()
            .filter(|c| connection::is_plain_name(c))
            .ok_or_else(|| {
                ImportError::Columns(format!(
                    "{TABLE}'s primary key has a column with an unusual name"
                ))
            })?;
        order.push(format!("`{column}`"));
    }

    let total: Option<Value> = conn
        .query_first(format!("SELECT COUNT(*) FROM `{TABLE}`"))
        .map_err(db)?;
    let total = total.as_ref().and_then(as_u64).unwrap_or(0);
    if total > MAX_ROWS {
        return Err(too_many_rows(format!("{database}.{TABLE}"), total));
    }

    let mut result = conn.exec_iter(select(&names, &order), ()).map_err(db)?;
    if result.columns().as_ref().len() != names.len() + 1 {
        return table(format!("{TABLE} changed while it was read"));
    }
    let source = (1..).zip(result.by_ref()).map(|(number, row)| {
        let row = row.map_err(|e| fail(e, &reading))?;
        Ok(Row {
            number,
            token: decode(&row, &fields),
        })
    });
    Ok(consume(Rows::new(source, Some(total))))
}

/// The query for the rows: first the row's cell text in bytes, then every column, each only
/// if it is not larger than [`MAX_ROW_BYTES`] (so a larger cell is never sent), in `order`.
fn select(names: &[String], order: &[String]) -> String {
    let quoted: Vec<String> = names
        .iter()
        .map(|name| format!("`{}`", name.replace('`', "``")))
        .collect();
    let size = quoted
        .iter()
        .map(|c| format!("COALESCE(OCTET_LENGTH({c}), 0)"))
        .collect::<Vec<_>>()
        .join(" + ");
    let cells = quoted
        .iter()
        .map(|c| format!("CASE WHEN OCTET_LENGTH({c}) <= {MAX_ROW_BYTES} THEN {c} END"))
        .collect::<Vec<_>>()
        .join(", ");
    let order = if order.is_empty() {
        String::new()
    } else {
        format!(" ORDER BY {}", order.join(", "))
    };
    format!(
        "SELECT {size}, {cells} FROM `{TABLE}`{order} LIMIT {}",
        MAX_ROWS + 1
    )
}

/// A count or size as the server sends it.
fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        Value::UInt(n) => Some(*n),
        Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

/// One row of [`select`] as a token, or why it cannot be one.
fn decode(row: &::mysql::Row, fields: &[TokenField]) -> Result<OAuthToken, String> {
    let size = row.as_ref(0).and_then(as_u64);
    if size.is_none_or(|size| size > MAX_ROW_BYTES) {
        return Err(row_too_large());
    }
    let mut cells = Vec::with_capacity(fields.len());
    for (i, field) in fields.iter().enumerate() {
        let value = match row.as_ref(i + 1) {
            None | Some(Value::NULL) => None,
            Some(Value::Bytes(b)) => match std::str::from_utf8(b) {
                Ok(s) => Some(s.to_owned()),
                Err(_) => return Err(format!("{} is not UTF-8", field.name())),
            },
            Some(Value::Int(n)) => Some(n.to_string()),
            Some(Value::UInt(n)) => Some(n.to_string()),
            Some(_) => return Err(format!("{} is neither text nor a number", field.name())),
        };
        cells.push((*field, value));
    }
    token_from_cells(cells)
}
