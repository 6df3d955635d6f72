//! The Zoho SDKs' `DBStore`: the `oauthtoken` table in a MySQL or MariaDB database (the SDKs'
//! default database is `zohooauth`; the DDL is in tests/fixtures/zoho/README.md).

use std::error::Error as _;

use ::mysql::prelude::Queryable;
use ::mysql::{Conn, Value};

use super::{Row, field_for_column, token_from_cells};
use crate::backend::mysql::{client_config, describe, valid_identifier};

/// The SDKs' table name.
pub const TABLE: &str = "oauthtoken";
/// The SDKs' default database, used when the URI names none.
pub const DEFAULT_DATABASE: &str = "zohooauth";

/// Reads every row of the `oauthtoken` table of the database named by `uri`, a
/// `mysql://USER:PASS@HOST:PORT/DATABASE` URI with the MySQL backend's rules
/// ([`MysqlBackend`](crate::backend::MysqlBackend)): TLS verified by default, `ssl_mode=disabled`
/// only for a loopback host; the database defaults to `zohooauth`. Columns are matched by
/// name; values may be text, integers or NULL. Rows come in primary-key order (the SDK's
/// `id`), or in the table's stored order if it has no primary key. Nothing is written.
///
/// # Errors
/// A URI that is malformed or refused, a server that cannot be reached, no `oauthtoken` table,
/// or a column that is not a token field. Messages never contain the password or a value.
pub fn read(uri: &str) -> Result<Vec<Row>, String> {
    let config = client_config(uri, Some(DEFAULT_DATABASE), false).map_err(|e| {
        e.source()
            .map_or_else(|| e.to_string(), |source| source.to_string())
    })?;
    let database = config.database.clone();
    let during = format!("connecting to {}", config.endpoint);
    let fail = |e: ::mysql::Error, during: &str| describe(&e, during).1;
    let mut conn = Conn::new(config.opts).map_err(|e| fail(e, &during))?;

    let reading = format!("reading {database}.{TABLE}");
    let exists: Option<Value> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
            (TABLE,),
        )
        .map_err(|e| fail(e, &reading))?;
    let tables = match exists {
        Some(Value::Int(n)) => u64::try_from(n).unwrap_or(0),
        Some(Value::UInt(n)) => n,
        _ => 0,
    };
    if tables == 0 {
        return Err(format!("database {database} has no {TABLE} table"));
    }
    let key_columns: Vec<Vec<u8>> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' \
             ORDER BY ORDINAL_POSITION",
            (TABLE,),
        )
        .map_err(|e| fail(e, &reading))?;
    let mut order = Vec::new();
    for column in key_columns {
        let column = String::from_utf8(column)
            .ok()
            .filter(|c| valid_identifier(c, 1, 64))
            .ok_or_else(|| format!("{TABLE}'s primary key has a column with an unusual name"))?;
        order.push(format!("`{column}`"));
    }
    let sql = if order.is_empty() {
        format!("SELECT * FROM `{TABLE}`")
    } else {
        format!("SELECT * FROM `{TABLE}` ORDER BY {}", order.join(", "))
    };

    let mut result = conn.exec_iter(sql, ()).map_err(|e| fail(e, &reading))?;
    let fields = result
        .columns()
        .as_ref()
        .iter()
        .map(|column| {
            let name = column.name_str();
            field_for_column(&name).ok_or_else(|| format!("{TABLE} has an unknown column {name:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::new();
    for (number, row) in (1..).zip(result.by_ref()) {
        let row = row.map_err(|e| fail(e, &reading))?;
        let mut bad = None;
        let mut cells = Vec::with_capacity(fields.len());
        for (i, field) in fields.iter().enumerate() {
            let value = match row.as_ref(i) {
                None | Some(Value::NULL) => None,
                Some(Value::Bytes(b)) => match std::str::from_utf8(b) {
                    Ok(s) => Some(s.to_owned()),
                    Err(_) => {
                        bad = Some(format!("{} is not UTF-8", field.name()));
                        None
                    }
                },
                Some(Value::Int(n)) => Some(n.to_string()),
                Some(Value::UInt(n)) => Some(n.to_string()),
                Some(_) => {
                    bad = Some(format!("{} is neither text nor a number", field.name()));
                    None
                }
            };
            cells.push((*field, value));
        }
        let token = match bad {
            Some(reason) => Err(reason),
            None => token_from_cells(cells),
        };
        out.push(Row { number, token });
    }
    Ok(out)
}
