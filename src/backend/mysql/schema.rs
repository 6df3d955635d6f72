//! The store's tables: created on first use under a server-wide named lock, their schema
//! version checked; and the optional audit table, created under that lock by `prepare_audit`.

use ::mysql::prelude::Queryable;
use ::mysql::{PooledConn, Value};

use super::errors::{corrupt, db_error};
use super::pool::discard;
use super::statements::{check_version, int_value};
use super::{BackendError, BackendErrorKind, MysqlBackend, Result, SCHEMA_VERSION, error};

const SCHEMA_LOCK: &str = "tokenvault_schema";
const SCHEMA_LOCK_TIMEOUT_SECS: u32 = 30;

impl MysqlBackend {
    /// Creates the tables if needed and checks the schema version, under a named lock so that
    /// processes opening a new store at once do not race.
    pub(super) fn ensure_schema(&self) -> Result<(), BackendError> {
        self.with_schema_lock(|conn| self.create_or_check(conn))
    }

    /// Creates the audit table if it does not exist ([`Backend::prepare_audit`]): checked first
    /// without the lock (nothing to create, so no CREATE privilege needed, once it exists),
    /// else created under the schema lock. Never at connect: stores without an audit trail
    /// never have the table, and older builds ignore it (the schema version stays).
    ///
    /// [`Backend::prepare_audit`]: crate::backend::Backend::prepare_audit
    pub(super) fn ensure_audit(&self) -> Result<(), BackendError> {
        let mut conn = self.conn(false)?;
        if self.audit_table_checked(&mut conn)? {
            return Ok(());
        }
        drop(conn);
        self.with_schema_lock(|conn| {
            if !self.audit_table_checked(conn)? {
                conn.query_drop(self.sql.create_audit())
                    .map_err(|e| db_error(&e, "creating the audit table"))?;
            }
            Ok(())
        })
    }

    /// Whether the audit table exists; one that is not InnoDB (its rows would not roll back
    /// with the transaction) is refused.
    fn audit_table_checked(&self, conn: &mut PooledConn) -> Result<bool, BackendError> {
        let engine: Option<Option<Vec<u8>>> = conn
            .exec_first(
                "SELECT ENGINE FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                (&self.sql.audit,),
            )
            .map_err(|e| db_error(&e, "looking for the audit table"))?;
        match engine {
            None => Ok(false),
            Some(Some(e)) if e.eq_ignore_ascii_case(b"InnoDB") => Ok(true),
            Some(_) => Err(error(
                BackendErrorKind::Corrupt,
                format!(
                    "table {} is not an InnoDB table: not a tokenvault audit log",
                    self.sql.audit
                ),
            )),
        }
    }

    /// Runs `f` on a connection holding the server-wide schema lock, released after.
    fn with_schema_lock<T>(
        &self,
        f: impl FnOnce(&mut PooledConn) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let mut conn = self.conn(false)?;
        let during = "taking the schema lock";
        let got: Option<Value> = conn
            .exec_first(
                "SELECT GET_LOCK(?, ?)",
                (SCHEMA_LOCK, SCHEMA_LOCK_TIMEOUT_SECS),
            )
            .map_err(|e| db_error(&e, during))?;
        match int_value(got) {
            Some(1) => {}
            Some(0) => {
                return Err(error(
                    BackendErrorKind::Busy,
                    format!("another client held the schema lock for {SCHEMA_LOCK_TIMEOUT_SECS}s"),
                ));
            }
            _ => return Err(error(BackendErrorKind::Other, "GET_LOCK failed")),
        }
        let result = f(&mut conn);
        if conn
            .exec_drop("SELECT RELEASE_LOCK(?)", (SCHEMA_LOCK,))
            .is_err()
        {
            // The lock goes with the connection.
            discard(&mut conn);
        }
        result
    }

    fn create_or_check(&self, conn: &mut PooledConn) -> Result<(), BackendError> {
        let during = "creating the store tables";
        let fail = |e: ::mysql::Error| db_error(&e, during);
        let tables: Vec<(Vec<u8>, Option<Vec<u8>>)> = conn
            .exec(
                "SELECT TABLE_NAME, ENGINE FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (?, ?)",
                (&self.sql.meta, &self.sql.records),
            )
            .map_err(fail)?;
        for (name, engine) in &tables {
            if !engine
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(b"InnoDB"))
            {
                return Err(error(
                    BackendErrorKind::Corrupt,
                    format!(
                        "table {} is not an InnoDB table: not a tokenvault store",
                        String::from_utf8_lossy(name)
                    ),
                ));
            }
        }
        let has = |t: &str| tables.iter().any(|(n, _)| n == t.as_bytes());
        let (has_meta, has_records) = (has(&self.sql.meta), has(&self.sql.records));
        let version: Option<Vec<u8>> = if has_meta {
            conn.exec_first(
                format!(
                    "SELECT `value` FROM `{}` WHERE `key` = 'schema_version'",
                    self.sql.meta
                ),
                (),
            )
            .map_err(fail)?
        } else {
            None
        };
        if let Some(version) = version {
            if !has_records {
                return Err(corrupt(&format!(
                    "the store's table {} is missing",
                    self.sql.records
                )));
            }
            return check_version(&version);
        }
        // No version: a new store, or one whose creation was interrupted (empty tables). Any
        // table with rows in it is someone else's.
        for (present, table) in [(has_meta, &self.sql.meta), (has_records, &self.sql.records)] {
            if present {
                let rows: Option<Value> = conn
                    .exec_first(format!("SELECT COUNT(*) FROM `{table}`"), ())
                    .map_err(fail)?;
                if int_value(rows) != Some(0) {
                    return Err(error(
                        BackendErrorKind::Corrupt,
                        format!(
                            "table {table} exists and is not part of a tokenvault store; refusing to touch it"
                        ),
                    ));
                }
            }
        }
        conn.query_drop(self.sql.create_records()).map_err(fail)?;
        conn.query_drop(self.sql.create_meta()).map_err(fail)?;
        conn.exec_drop(
            format!(
                "INSERT INTO `{}` (`key`, `value`) VALUES ('schema_version', ?)",
                self.sql.meta
            ),
            (SCHEMA_VERSION.to_string().into_bytes(),),
        )
        .map_err(fail)?;
        Ok(())
    }
}
