//! [`Backend::transact`](crate::backend::Backend::transact): one attempt on one pooled connection
//! under the writer lock, and the retries around it (see the module docs, *Transactions*).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use postgres::SimpleQueryMessage;

use super::errors::{failure_of, message_of, pg_error};
use super::pool::{Lease, PgConn};
use super::query::{self, Sql, audit_seq, to_audit_row, to_record};
use super::{BackendError, BackendErrorKind, PostgresBackend, Result, error};
use crate::backend::sql::retry::{Backoff, Failure, MAX_ATTEMPTS};
use crate::backend::{AuditRow, LookupField, StoredRecord, Tag, Transaction};

/// Jittered exponential backoff before try `n + 1` (n ≥ 1): 5 ms·2^(n−1) plus up to as much.
const BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(5),
    doublings: 6,
    spread: 1,
};

impl PostgresBackend {
    /// [`Backend::transact`](crate::backend::Backend::transact): attempts until one is done, at most [`MAX_ATTEMPTS`], with
    /// backoff between them.
    pub(super) fn transact_with_retries(
        &self,
        step: &mut dyn FnMut(&mut dyn Transaction) -> Result<()>,
    ) -> Result<()> {
        let mut tries = 0;
        loop {
            tries += 1;
            let mut lease = self.pool.get()?;
            match self.attempt(&mut lease, step) {
                Attempt::Done(result) => return result,
                Attempt::Retry(e) if tries >= MAX_ATTEMPTS => {
                    return Err(error(
                        e.kind(),
                        format!(
                            "PostgreSQL transaction failed {MAX_ATTEMPTS} times; last: {}",
                            message_of(&e)
                        ),
                    )
                    .into());
                }
                Attempt::Retry(_) => {
                    drop(lease);
                    std::thread::sleep(BACKOFF.delay(tries));
                }
            }
        }
    }

    /// One attempt of [`Backend::transact`](crate::backend::Backend::transact) on `lease`.
    fn attempt(
        &self,
        lease: &mut Lease<'_>,
        step: &mut dyn FnMut(&mut dyn Transaction) -> Result<()>,
    ) -> Attempt {
        // Not reusable until COMMIT or ROLLBACK has completed: a panicking step or a lost
        // connection closes it (and the server rolls back).
        lease.reusable = false;
        let conn = lease.conn();
        match conn.client.simple_query(&self.sql.begin) {
            Ok(messages) => {
                let locked = messages
                    .iter()
                    .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
                    .count();
                if locked != 1 {
                    let _ = conn.client.batch_execute("ROLLBACK");
                    return Attempt::Done(Err(error(
                        BackendErrorKind::Corrupt,
                        "the tokenvault meta table lost its schema_version row",
                    )
                    .into()));
                }
            }
            Err(e) => return self.failed_before_commit(lease, &e),
        }
        let mut tx = PgTransaction {
            conn,
            sql: &self.sql,
            audit_ready: &self.audit_ready,
            failed: None,
        };
        let result = step(&mut tx);
        let statement_failed = tx.failed.is_some();
        match tx.failed.take() {
            Some((Failure::Retry | Failure::Lost, e)) => {
                return self.failed_before_commit(lease, &e);
            }
            Some((Failure::Other, _)) if result.is_ok() => {
                // A statement failed, so PostgreSQL has aborted the transaction: COMMIT would
                // silently roll back. The step went on regardless; do not report success.
                return self.rollback(
                    lease,
                    Err(error(
                        BackendErrorKind::Other,
                        "a statement failed inside the transaction; rolled back",
                    )
                    .into()),
                    false,
                );
            }
            _ => {}
        }
        if result.is_err() {
            return self.rollback(lease, result, !statement_failed);
        }
        let conn = lease.conn();
        match conn.client.batch_execute("COMMIT") {
            Ok(()) => {
                lease.reusable = true;
                Attempt::Done(Ok(()))
            }
            // A serialization failure at COMMIT is definite: rolled back, safe to re-run.
            Err(e) if failure_of(&e) == Failure::Retry => Attempt::Retry(pg_error(&e)),
            Err(e) if failure_of(&e) == Failure::Lost => {
                self.pool.drop_idle();
                Attempt::Done(Err(error(
                    BackendErrorKind::Unavailable,
                    format!(
                        "PostgreSQL connection lost while committing ({}): the transaction may or \
                         may not have been applied",
                        message_of(&pg_error(&e))
                    ),
                )
                .into()))
            }
            Err(e) => Attempt::Done(Err(pg_error(&e).into())),
        }
    }

    /// A statement before COMMIT failed: retry if the server aborted us for isolation or the
    /// connection is lost (nothing was committed), else report.
    fn failed_before_commit(&self, lease: &mut Lease<'_>, e: &postgres::Error) -> Attempt {
        match failure_of(e) {
            Failure::Lost => {
                self.pool.drop_idle();
                Attempt::Retry(pg_error(e))
            }
            Failure::Retry => match self.rollback(lease, Ok(()), false) {
                Attempt::Done(Ok(())) => Attempt::Retry(pg_error(e)),
                other => other,
            },
            Failure::Other => self.rollback(lease, Err(pg_error(e).into()), false),
        }
    }

    /// Rolls back and returns `result`. The connection goes back to the pool only if `keep`
    /// (the step failed on its own, no statement did) and the rollback worked: one on which a
    /// statement failed is closed, as a precaution.
    fn rollback(&self, lease: &mut Lease<'_>, result: Result<()>, keep: bool) -> Attempt {
        match lease.conn().client.batch_execute("ROLLBACK") {
            Ok(()) => lease.reusable = keep,
            // Closing the connection rolls back on the server.
            Err(e) if failure_of(&e) == Failure::Lost => self.pool.drop_idle(),
            Err(_) => {}
        }
        Attempt::Done(result)
    }
}

enum Attempt {
    Done(Result<()>),
    /// Nothing was committed and the step may run again; the error if no try is left.
    Retry(BackendError),
}

/// The transaction the step sees. Remembers the first failed statement, since PostgreSQL
/// aborts the transaction there whatever the step does with the error.
struct PgTransaction<'a> {
    conn: &'a mut PgConn,
    sql: &'a Sql,
    /// The backend's "the audit table exists" (see [`PgTransaction::audit_exists`]).
    audit_ready: &'a AtomicBool,
    failed: Option<(Failure, postgres::Error)>,
}

impl PgTransaction<'_> {
    fn run<T>(
        &mut self,
        f: impl FnOnce(&mut PgConn, &Sql) -> Result<T, postgres::Error>,
    ) -> Result<T, BackendError> {
        if self.failed.is_some() {
            return Err(error(
                BackendErrorKind::Other,
                "the transaction was aborted by an earlier failed statement",
            ));
        }
        f(self.conn, self.sql).map_err(|e| {
            let mapped = pg_error(&e);
            self.failed = Some((failure_of(&e), e));
            mapped
        })
    }

    /// Whether the audit table exists: asked (of the catalog: a statement on a missing table
    /// would abort the transaction) until the answer is yes, then remembered.
    fn audit_exists(&mut self) -> Result<bool, BackendError> {
        if self.audit_ready.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let exists = self.run(query::audit_exists)?;
        if exists {
            self.audit_ready.store(true, Ordering::Relaxed);
        }
        Ok(exists)
    }
}

impl Transaction for PgTransaction<'_> {
    fn header(&mut self) -> Result<Option<Vec<u8>>, BackendError> {
        self.run(query::header)
    }

    fn put_header(&mut self, header: &[u8]) -> Result<(), BackendError> {
        self.run(|c, s| query::put_header(c, s, header))
    }

    fn get(&mut self, id: &str) -> Result<Option<StoredRecord>, BackendError> {
        self.run(|c, s| query::get(c, s, id))?
            .map(to_record)
            .transpose()
    }

    fn find_by_tag(
        &mut self,
        field: LookupField,
        tag: &Tag,
    ) -> Result<Option<StoredRecord>, BackendError> {
        self.run(|c, s| query::find(c, s, field, tag))?
            .map(to_record)
            .transpose()
    }

    fn list(&mut self) -> Result<Vec<StoredRecord>, BackendError> {
        self.run(query::list)?.into_iter().map(to_record).collect()
    }

    fn put(&mut self, record: StoredRecord) -> Result<(), BackendError> {
        if record.id.contains('\0') {
            return Err(error(
                BackendErrorKind::NotSupported,
                "PostgreSQL cannot store a record id containing a NUL character",
            ));
        }
        self.run(|c, s| query::put(c, s, &record))
    }

    fn delete(&mut self, id: &str) -> Result<bool, BackendError> {
        self.run(|c, s| query::delete(c, s, id))
    }

    fn delete_all(&mut self) -> Result<(), BackendError> {
        self.run(query::delete_all)
    }

    fn audit_append(&mut self, seq: u64, entry: &[u8]) -> Result<(), BackendError> {
        let seq = audit_seq(seq)?;
        if !self.audit_exists()? {
            return Err(error(
                BackendErrorKind::Other,
                "the audit log's table does not exist (prepare_audit was never called here)",
            ));
        }
        // A number already in the log violates the primary key: Conflict (see `pg_error`).
        self.run(|c, s| query::audit_append(c, s, seq, entry))
    }

    fn audit_read(&mut self, after: u64) -> Result<Vec<AuditRow>, BackendError> {
        // No stored number exceeds i64::MAX: nothing lies above a larger `after`.
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        if !self.audit_exists()? {
            return Ok(Vec::new());
        }
        Ok(self
            .run(|c, s| query::audit_read(c, s, after))?
            .into_iter()
            .map(to_audit_row)
            .collect())
    }

    fn audit_clear(&mut self) -> Result<(), BackendError> {
        if !self.audit_exists()? {
            return Ok(());
        }
        self.run(query::audit_clear)
    }
}
