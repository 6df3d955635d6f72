//! The store's schema: created on first connect, its version checked, in one transaction under
//! a transaction-scoped advisory lock; and the optional audit table, created under that lock
//! by `prepare_audit`.

use postgres::Client;

use super::errors::pg_error;
use super::query::{AUDIT_EXISTS, audit_table};
use super::{BackendError, BackendErrorKind, SCHEMA_VERSION, error};
use crate::backend::sql::row::check_stored_version;

/// First key of the advisory lock that serializes schema creation ("TKV1").
const SCHEMA_LOCK_CLASS: i32 = 0x544B_5631;

/// A 32-bit FNV-1a hash of the schema name: the advisory lock's second key.
fn schema_lock_key(schema: &str) -> i32 {
    let hash = schema.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    i32::from_ne_bytes(hash.to_ne_bytes())
}

/// Creates the schema and tables if missing and checks the version, in one transaction under
/// an advisory lock (concurrent first connects would otherwise race on CREATE).
pub(super) fn create_or_check(client: &mut Client, schema: &str) -> Result<(), BackendError> {
    let mut tx = client.transaction().map_err(|e| pg_error(&e))?;
    let pg = |e: postgres::Error| pg_error(&e);
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&SCHEMA_LOCK_CLASS, &schema_lock_key(schema)],
    )
    .map_err(pg)?;
    let exists: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)",
            &[&schema],
        )
        .map_err(pg)?
        .get(0);
    if !exists {
        tx.batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
            .map_err(pg)?;
    }
    let tables: i64 = tx
        .query_one(
            "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = $1
             AND tablename IN ('tokenvault_meta', 'tokenvault_records')",
            &[&schema],
        )
        .map_err(pg)?
        .get(0);
    match tables {
        0 => {
            tx.batch_execute(&format!(
                "CREATE TABLE \"{schema}\".tokenvault_meta (
                     key TEXT PRIMARY KEY NOT NULL, value BYTEA NOT NULL);
                 CREATE TABLE \"{schema}\".tokenvault_records (
                     id TEXT COLLATE \"C\" PRIMARY KEY NOT NULL,
                     user_name_tag BYTEA UNIQUE,
                     access_token_tag BYTEA UNIQUE,
                     refresh_token_tag BYTEA UNIQUE,
                     grant_token_tag BYTEA UNIQUE,
                     sealed BYTEA NOT NULL);"
            ))
            .map_err(pg)?;
            tx.execute(
                &format!(
                    "INSERT INTO \"{schema}\".tokenvault_meta(key, value) VALUES ('schema_version', $1)"
                ),
                &[&SCHEMA_VERSION.to_string().into_bytes()],
            )
            .map_err(pg)?;
        }
        2 => {}
        _ => {
            return Err(error(
                BackendErrorKind::Corrupt,
                "the PostgreSQL schema has only one of tokenvault's two tables; refusing to use it",
            ));
        }
    }
    let version: Option<Vec<u8>> = tx
        .query_opt(
            &format!("SELECT value FROM \"{schema}\".tokenvault_meta WHERE key = 'schema_version'"),
            &[],
        )
        .map_err(pg)?
        .map(|row| row.get(0));
    check_stored_version(
        version.as_deref(),
        SCHEMA_VERSION,
        "tokenvault tables without a valid schema version",
    )?;
    tx.commit().map_err(pg)
}

/// Creates the audit table if it does not exist (`prepare_audit`), in one transaction under the
/// schema-creation advisory lock, so that processes turning the trail on at once do not race
/// on CREATE. Only called when a store turns its audit trail on: opening a store never
/// creates it (older builds ignore the extra table; the schema version stays).
pub(super) fn create_audit_table(client: &mut Client, schema: &str) -> Result<(), BackendError> {
    let pg = |e: postgres::Error| pg_error(&e);
    let mut tx = client.transaction().map_err(pg)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&SCHEMA_LOCK_CLASS, &schema_lock_key(schema)],
    )
    .map_err(pg)?;
    let exists: bool = tx.query_one(AUDIT_EXISTS, &[&schema]).map_err(pg)?.get(0);
    if !exists {
        // The lock makes the check reliable; IF NOT EXISTS only spares a creator that did
        // not take it.
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} (seq BIGINT PRIMARY KEY NOT NULL, entry BYTEA NOT NULL)",
            audit_table(schema)
        ))
        .map_err(pg)?;
    }
    tx.commit().map_err(pg)
}
