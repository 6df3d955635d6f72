//! [`Backend::transact`](crate::backend::Backend::transact): one InnoDB transaction on one pooled
//! connection, begun by locking the header and schema-version rows, and the retries around it
//! (see the module docs, *Transactions*).

use std::time::Duration;

use ::mysql::prelude::Queryable;
use ::mysql::{Params, PooledConn, Row, Value};

use super::errors::{ER_NO_SUCH_TABLE, classify, corrupt, db_error, describe};
use super::pool::discard;
use super::statements::{
    MAX_ID_BYTES, Sql, audit_seq, bytes, check_version, tag_value, take_bytes, to_audit_row,
    to_record,
};
use super::{BackendError, BackendErrorKind, MysqlBackend, Result, error};
use crate::backend::sql::retry::{Backoff, Failure, MAX_ATTEMPTS};
use crate::backend::{AuditRow, LookupField, StoredRecord, Tag, Transaction};

/// Jittered exponential backoff before attempt `n + 1`: 10–30 ms, 20–60 ms, … ≤ 480 ms.
const BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(10),
    doublings: 3,
    spread: 2,
};

impl MysqlBackend {
    /// [`Backend::transact`](crate::backend::Backend::transact): attempts until one commits,
    /// runs again after a deadlock (at most [`MAX_ATTEMPTS`], with backoff) or a lost connection
    /// (on a checked one).
    pub(super) fn transact_with_retries(
        &self,
        step: &mut dyn FnMut(&mut dyn Transaction) -> Result<()>,
    ) -> Result<()> {
        let mut busy = 0;
        let mut reconnects = 0;
        let mut check = false;
        loop {
            let Some((class, failure)) = self.attempt(step, check)? else {
                return Ok(());
            };
            match class {
                Failure::Retry => {
                    busy += 1;
                    if busy >= MAX_ATTEMPTS {
                        return Err(error(
                            BackendErrorKind::Busy,
                            format!("{failure}; gave up after {MAX_ATTEMPTS} attempts"),
                        )
                        .into());
                    }
                    std::thread::sleep(BACKOFF.delay(busy));
                }
                Failure::Lost => {
                    reconnects += 1;
                    if reconnects > self.max_reconnects {
                        return Err(failure.into());
                    }
                    check = true;
                }
                Failure::Other => return Err(failure.into()),
            }
        }
    }

    /// One attempt of a transaction. `Ok(None)`: committed. `Ok(Some(..))`: rolled back, to be
    /// run again (deadlock, or a connection lost before COMMIT).
    fn attempt(
        &self,
        step: &mut dyn FnMut(&mut dyn Transaction) -> Result<()>,
        check: bool,
    ) -> Result<Option<(Failure, BackendError)>> {
        // `open` from the start: a ROLLBACK outside a transaction is harmless.
        let mut tx = OpenTx {
            conn: self.conn(check)?,
            open: true,
        };
        let rows = match begin(&mut tx.conn, &self.sql) {
            Ok(rows) => rows,
            Err(e) => {
                let during = "starting a transaction";
                return match classify(&e) {
                    Failure::Other => Err(db_error(&e, during).into()),
                    class => {
                        if class == Failure::Lost {
                            discard(&mut tx.conn);
                        }
                        Ok(Some((class, db_error(&e, during))))
                    }
                };
            }
        };
        let mut header = None;
        let mut version = None;
        for mut row in rows {
            let key = take_bytes(&mut row, 0)?;
            let value = take_bytes(&mut row, 1)?;
            match key.as_deref() {
                Some(b"header") => header = value,
                Some(b"schema_version") => version = value,
                _ => {}
            }
        }
        let version =
            version.ok_or_else(|| corrupt("the store's schema version row is missing"))?;
        check_version(&version)?;

        let mut txn = MysqlTransaction {
            conn: &mut tx.conn,
            sql: &self.sql,
            header,
            aborted: None,
        };
        let result = step(&mut txn);
        if let Some((class, kind, message)) = txn.aborted.take() {
            // Whatever the step made of it, the server has rolled back (deadlock) or the
            // connection is gone: run the step again.
            if class == Failure::Lost {
                discard(&mut tx.conn);
            }
            return Ok(Some((class, error(kind, message))));
        }
        result?; // dropping `tx` rolls back
        tx.open = false;
        match tx.conn.query_drop("COMMIT") {
            Ok(()) => Ok(None),
            // The server answered: nothing was committed.
            Err(e) if classify(&e) == Failure::Retry => {
                tx.open = true;
                Ok(Some((Failure::Retry, db_error(&e, "committing"))))
            }
            // An error reply about the statement: nothing was committed. (One about the
            // connection, like 1927 "connection killed", falls through to "unknown".)
            Err(e @ ::mysql::Error::MySqlError(_)) if classify(&e) == Failure::Other => {
                tx.open = true;
                Err(db_error(&e, "committing (nothing was written)").into())
            }
            Err(e) => {
                discard(&mut tx.conn);
                let (_, message) = describe(&e, "committing");
                Err(error(
                    BackendErrorKind::Unavailable,
                    format!(
                        "{message}; the transaction may or may not have been applied (not retried)"
                    ),
                )
                .into())
            }
        }
    }
}

/// Starts a transaction and locks the header and schema-version rows: the rows of both
/// statements' results (the first has none).
fn begin(conn: &mut PooledConn, sql: &Sql) -> ::mysql::Result<Vec<Row>> {
    let mut result = conn.query_iter(&sql.begin)?;
    let mut rows = Vec::new();
    while let Some(set) = result.iter() {
        for row in set {
            rows.push(row?);
        }
    }
    Ok(rows)
}

/// A pooled connection with (maybe) an open transaction, rolled back when dropped: a failing or
/// panicking step never leaves a transaction open on a connection that goes back to the pool
/// (its next `START TRANSACTION` would commit it).
struct OpenTx {
    conn: PooledConn,
    open: bool,
}

impl Drop for OpenTx {
    fn drop(&mut self) {
        if self.open && self.conn.query_drop("ROLLBACK").is_err() {
            discard(&mut self.conn);
        }
    }
}

struct MysqlTransaction<'a> {
    conn: &'a mut PooledConn,
    sql: &'a Sql,
    /// The header as locked at the start, then as written by `put_header`.
    header: Option<Vec<u8>>,
    /// The failure that ended the transaction on the server (deadlock, lock wait timeout, lost
    /// connection): every later call fails without touching the server, where it would run
    /// outside any transaction.
    aborted: Option<(Failure, BackendErrorKind, String)>,
}

impl MysqlTransaction<'_> {
    fn run<T>(
        &mut self,
        during: &str,
        f: impl FnOnce(&mut PooledConn, &Sql) -> ::mysql::Result<T>,
    ) -> Result<T, BackendError> {
        if let Some((_, kind, message)) = &self.aborted {
            return Err(error(
                *kind,
                format!("the transaction was aborted earlier: {message}"),
            ));
        }
        f(self.conn, self.sql).map_err(|e| {
            let (kind, message) = describe(&e, during);
            let class = classify(&e);
            if class != Failure::Other {
                self.aborted = Some((class, kind, message.clone()));
            }
            error(kind, message)
        })
    }
}

impl Transaction for MysqlTransaction<'_> {
    fn header(&mut self) -> Result<Option<Vec<u8>>, BackendError> {
        self.run("reading the header", |_, _| Ok(()))?;
        Ok(self.header.clone())
    }

    fn put_header(&mut self, header: &[u8]) -> Result<(), BackendError> {
        self.run("writing the header", |conn, sql| {
            conn.exec_drop(&sql.put_header, (header, header))
        })?;
        self.header = Some(header.to_vec());
        Ok(())
    }

    fn get(&mut self, id: &str) -> Result<Option<StoredRecord>, BackendError> {
        self.run("reading a record", |conn, sql| {
            conn.exec_first::<Row, _, _>(&sql.get, (id.as_bytes(),))
        })?
        .map(to_record)
        .transpose()
    }

    fn find_by_tag(
        &mut self,
        field: LookupField,
        tag: &Tag,
    ) -> Result<Option<StoredRecord>, BackendError> {
        self.run("finding a record", |conn, sql| {
            conn.exec_first::<Row, _, _>(&sql.find[field.index()], (tag.as_bytes().as_slice(),))
        })?
        .map(to_record)
        .transpose()
    }

    fn list(&mut self) -> Result<Vec<StoredRecord>, BackendError> {
        self.run("listing records", |conn, sql| {
            conn.exec::<Row, _, _>(&sql.list, ())
        })?
        .into_iter()
        .map(to_record)
        .collect()
    }

    fn put(&mut self, record: StoredRecord) -> Result<(), BackendError> {
        if record.id.len() > MAX_ID_BYTES {
            return Err(error(
                BackendErrorKind::NotSupported,
                format!(
                    "record ids longer than {MAX_ID_BYTES} bytes are not supported by the MySQL backend"
                ),
            ));
        }
        let tags: Vec<Value> = LookupField::ALL
            .iter()
            .map(|f| tag_value(record.tags.get(*f)))
            .collect();
        self.run("writing a record", |conn, sql| {
            let mut update = tags.clone();
            update.push(bytes(&record.sealed));
            update.push(bytes(record.id.as_bytes()));
            conn.exec_drop(&sql.update, Params::Positional(update))?;
            if conn.affected_rows() > 0 {
                return Ok(());
            }
            let mut insert = vec![bytes(record.id.as_bytes())];
            insert.extend(tags);
            insert.push(bytes(&record.sealed));
            conn.exec_drop(&sql.insert, Params::Positional(insert))
        })
    }

    fn delete(&mut self, id: &str) -> Result<bool, BackendError> {
        self.run("deleting a record", |conn, sql| {
            conn.exec_drop(&sql.delete, (id.as_bytes(),))
                .map(|()| conn.affected_rows() > 0)
        })
    }

    fn delete_all(&mut self) -> Result<(), BackendError> {
        self.run("deleting all records", |conn, sql| {
            conn.exec_drop(&sql.delete_all, ())
        })
    }

    fn audit_append(&mut self, seq: u64, entry: &[u8]) -> Result<(), BackendError> {
        let seq = audit_seq(seq)?;
        // A number already in the log is a duplicate primary key: Conflict.
        self.run("appending to the audit log", |conn, sql| {
            conn.exec_drop(&sql.audit_append, (seq, entry))
        })
    }

    fn audit_read(&mut self, after: u64) -> Result<Vec<AuditRow>, BackendError> {
        self.run("reading the audit log", |conn, sql| {
            // A failed statement leaves an InnoDB transaction open, unlike PostgreSQL's: a
            // table never prepared can simply be tried.
            no_table_is_empty(conn.exec::<Row, _, _>(&sql.audit_read, (after, after)))
        })?
        .into_iter()
        .map(to_audit_row)
        .collect()
    }

    fn audit_clear(&mut self) -> Result<(), BackendError> {
        self.run("clearing the audit log", |conn, sql| {
            no_table_is_empty(conn.exec_drop(&sql.audit_clear, ()))
        })
    }
}

/// A statement on the audit table alone: when the table does not exist (the log was never
/// prepared), the log is empty.
fn no_table_is_empty<T: Default>(result: ::mysql::Result<T>) -> ::mysql::Result<T> {
    match result {
        Err(::mysql::Error::MySqlError(e)) if e.code == ER_NO_SUCH_TABLE => Ok(T::default()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_grows() {
        for attempt in 1..10 {
            let d = BACKOFF.delay(attempt);
            assert!(
                d >= Duration::from_millis(10) && d <= Duration::from_millis(480),
                "{d:?}"
            );
        }
    }
}
