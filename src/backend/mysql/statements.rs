//! Every statement the backend runs (the table names validated and backtick-quoted into their
//! text, every value bound), and the decoding of values and rows.

use ::mysql::{Row, Value};

use super::config::TABLE_PREFIX;
use super::errors::corrupt;
use super::{BackendError, BackendErrorKind, SCHEMA_VERSION, error};
use crate::backend::sql::row::{TAG_COLUMNS, check_stored_version, lookup_tags};
use crate::backend::{AuditRow, StoredRecord, Tag};

/// Record ids longer than this are refused by the column (`NotSupported`).
pub(super) const MAX_ID_BYTES: usize = 1024;

/// The statements of one store, table names filled in (validated, backtick-quoted); values
/// are always bound.
pub(super) struct Sql {
    pub(super) meta: String,
    pub(super) records: String,
    /// The audit log's table (optional: created by `prepare_audit`, never at connect).
    pub(super) audit: String,
    pub(super) read_header: String,
    /// `START TRANSACTION` and the header lock in one round trip (a multi-statement text
    /// query: both statements are constant, nothing to bind).
    pub(super) begin: String,
    pub(super) put_header: String,
    pub(super) get: String,
    pub(super) find: [String; 4],
    pub(super) list: String,
    pub(super) update: String,
    pub(super) insert: String,
    pub(super) delete: String,
    pub(super) delete_all: String,
    pub(super) audit_append: String,
    pub(super) audit_read: String,
    pub(super) audit_clear: String,
}

const COLUMNS: &str =
    "`id`, `user_name_tag`, `access_token_tag`, `refresh_token_tag`, `grant_token_tag`, `sealed`";

impl Sql {
    pub(super) fn new(prefix: &str) -> Self {
        debug_assert!(TABLE_PREFIX.accepts(prefix));
        let meta = format!("{prefix}meta");
        let records = format!("{prefix}records");
        let audit = format!("{prefix}audit");
        let (m, r, a) = (
            format!("`{meta}`"),
            format!("`{records}`"),
            format!("`{audit}`"),
        );
        Self {
            read_header: format!("SELECT `value` FROM {m} WHERE `key` = 'header'"),
            begin: format!(
                "START TRANSACTION; \
                 SELECT `key`, `value` FROM {m} WHERE `key` IN ('header', 'schema_version') FOR UPDATE"
            ),
            put_header: format!(
                "INSERT INTO {m} (`key`, `value`) VALUES ('header', ?) ON DUPLICATE KEY UPDATE `value` = ?"
            ),
            get: format!("SELECT {COLUMNS} FROM {r} WHERE `id` = ?"),
            find: TAG_COLUMNS.map(|c| format!("SELECT {COLUMNS} FROM {r} WHERE `{c}` = ?")),
            list: format!("SELECT {COLUMNS} FROM {r} ORDER BY `id`"),
            update: format!(
                "UPDATE {r} SET `user_name_tag` = ?, `access_token_tag` = ?, `refresh_token_tag` = ?, \
                 `grant_token_tag` = ?, `sealed` = ? WHERE `id` = ?"
            ),
            insert: format!("INSERT INTO {r} ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"),
            delete: format!("DELETE FROM {r} WHERE `id` = ?"),
            delete_all: format!("DELETE FROM {r}"),
            audit_append: format!("INSERT INTO {a} (`seq`, `entry`) VALUES (?, ?)"),
            audit_read: format!(
                "SELECT `seq`, `entry` FROM {a} WHERE `seq` > ? OR ? = 0 ORDER BY `seq`"
            ),
            // Not TRUNCATE: DDL, which would commit the transaction.
            audit_clear: format!("DELETE FROM {a}"),
            meta,
            records,
            audit,
        }
    }

    pub(super) fn create_meta(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS `{}` (
                `key` VARBINARY(64) NOT NULL,
                `value` LONGBLOB NOT NULL,
                PRIMARY KEY (`key`)
            ) ENGINE=InnoDB",
            self.meta
        )
    }

    pub(super) fn create_audit(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS `{}` (
                `seq` BIGINT UNSIGNED NOT NULL,
                `entry` LONGBLOB NOT NULL,
                PRIMARY KEY (`seq`)
            ) ENGINE=InnoDB",
            self.audit
        )
    }

    pub(super) fn create_records(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS `{}` (
                `id` VARBINARY({MAX_ID_BYTES}) NOT NULL,
                `user_name_tag` VARBINARY(32) NULL,
                `access_token_tag` VARBINARY(32) NULL,
                `refresh_token_tag` VARBINARY(32) NULL,
                `grant_token_tag` VARBINARY(32) NULL,
                `sealed` LONGBLOB NOT NULL,
                PRIMARY KEY (`id`),
                UNIQUE KEY `user_name_tag` (`user_name_tag`),
                UNIQUE KEY `access_token_tag` (`access_token_tag`),
                UNIQUE KEY `refresh_token_tag` (`refresh_token_tag`),
                UNIQUE KEY `grant_token_tag` (`grant_token_tag`)
            ) ENGINE=InnoDB ROW_FORMAT=DYNAMIC",
            self.records
        )
    }
}

pub(super) fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec())
}

pub(super) fn tag_value(tag: Option<&Tag>) -> Value {
    tag.map_or(Value::NULL, |t| bytes(t.as_bytes()))
}

pub(super) fn take_bytes(row: &mut Row, i: usize) -> Result<Option<Vec<u8>>, BackendError> {
    match row.take::<Value, _>(i) {
        Some(Value::NULL) => Ok(None),
        Some(Value::Bytes(b)) => Ok(Some(b)),
        _ => Err(corrupt("a store column holds a value of unexpected type")),
    }
}

/// Decodes a row of [`COLUMNS`] (see [`lookup_tags`] for the tag columns).
pub(super) fn to_record(mut row: Row) -> Result<StoredRecord, BackendError> {
    let id = take_bytes(&mut row, 0)?.ok_or_else(|| corrupt("a record without id"))?;
    let id = String::from_utf8(id).map_err(|_| corrupt("a record id is not UTF-8"))?;
    let tags = lookup_tags(|i| take_bytes(&mut row, i + 1))?;
    let sealed =
        take_bytes(&mut row, 5)?.ok_or_else(|| corrupt("a record without sealed bytes"))?;
    Ok(StoredRecord { id, tags, sealed })
}

/// Decodes a row of `seq`, `entry` from the audit table.
pub(super) fn to_audit_row(mut row: Row) -> Result<AuditRow, BackendError> {
    let seq = match row.take::<Value, _>(0) {
        Some(Value::UInt(n)) => Some(n),
        Some(Value::Int(n)) => u64::try_from(n).ok(),
        Some(Value::Bytes(b)) => std::str::from_utf8(&b).ok().and_then(|s| s.parse().ok()),
        _ => None,
    }
    .ok_or_else(|| corrupt("an audit entry number is not a number"))?;
    let entry = take_bytes(&mut row, 1)?.ok_or_else(|| corrupt("an audit entry without bytes"))?;
    Ok(AuditRow { seq, entry })
}

/// An audit entry number as stored: at most `i64::MAX`, as in the other backends.
pub(super) fn audit_seq(seq: u64) -> Result<u64, BackendError> {
    if i64::try_from(seq).is_ok() {
        Ok(seq)
    } else {
        Err(error(
            BackendErrorKind::Other,
            format!(
                "audit entry number {seq} is out of range: the MySQL backend stores at most {}",
                i64::MAX
            ),
        ))
    }
}

/// The verdict on the stored schema version (ASCII digits).
pub(super) fn check_version(value: &[u8]) -> Result<(), BackendError> {
    check_stored_version(
        Some(value),
        SCHEMA_VERSION,
        "the store's schema version is not a number",
    )
}

/// An integer result of `SELECT GET_LOCK(…)` and the like; `None` for NULL.
pub(super) fn int_value(value: Option<Value>) -> Option<i64> {
    match value? {
        Value::Int(n) => Some(n),
        Value::UInt(n) => i64::try_from(n).ok(),
        Value::Bytes(b) => std::str::from_utf8(&b).ok()?.parse().ok(),
        _ => None,
    }
}
