//! The `oauthtoken` table of the Zoho SDKs' SQL token stores, read from a SQLite file.

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::{Row, field_for_column, token_from_cells};

/// Reads every row of the `oauthtoken` table of the SQLite database at `path` (opened read
/// only). Columns are matched by name; values may be text, integers or NULL.
///
/// # Errors
/// The file cannot be opened, has no `oauthtoken` table, or the table has a column that is not
/// a token field.
pub fn read(path: &Path) -> Result<Vec<Row>, String> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut stmt = conn
        .prepare("SELECT * FROM oauthtoken")
        .map_err(|e| format!("no readable oauthtoken table in {}: {e}", path.display()))?;
    let fields = stmt
        .column_names()
        .map(|name| {
            field_for_column(name)
                .ok_or_else(|| format!("oauthtoken has an unknown column {name:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut rows = stmt.query([]).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut number = 0;
    while let Some(row) = rows.next().map_err(|e| e.to_string())? {
        number += 1;
        let mut cells = Vec::with_capacity(fields.len());
        let mut bad = None;
        for (i, field) in fields.iter().enumerate() {
            let value = match row.get_ref(i) {
                Ok(ValueRef::Null) => None,
                Ok(ValueRef::Text(t)) => match std::str::from_utf8(t) {
                    Ok(s) => Some(s.to_owned()),
                    Err(_) => {
                        bad = Some(format!("{} is not UTF-8", field.name()));
                        None
                    }
                },
                Ok(ValueRef::Integer(n)) => Some(n.to_string()),
                Ok(_) => {
                    bad = Some(format!("{} is neither text nor a number", field.name()));
                    None
                }
                Err(e) => return Err(e.to_string()),
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
