//! PostgreSQL backend: a store shared by many app servers through one PostgreSQL server.
//!
//! ```text
//! postgres://USER:PASS@HOST:PORT/DB?pool_size=N&sslmode=require|disable&schema=NAME&sslrootcert=PATH
//! ```
//! `postgresql://` works too, and so do the other connection parameters of the `postgres`
//! crate (`connect_timeout`, `application_name`, …). Ours, removed before the rest is parsed:
//! - `pool_size` (1..=64, default 4): connections kept per backend handle (see *Pool*);
//! - `schema` (default `public`): the PostgreSQL schema holding the store's tables, so one
//!   database can hold several stores; created if missing. `[a-z_][a-z0-9_]{0,62}` only;
//! - `sslmode` (see *TLS*); `sslrootcert`: a PEM file of CA certificates to trust instead of
//!   the operating system's.
//!
//! # TLS
//! On by default, with rustls (ring provider) and the operating system's CA certificates
//! (`rustls-native-certs`; `SSL_CERT_FILE` / `SSL_CERT_DIR` override, `sslrootcert=PATH`
//! replaces them). `sslmode=require` (the default) verifies the server's certificate chain *and*
//! its host name, like libpq's `verify-full` (accepted as an alias); there is no silent fallback
//! to plaintext (`prefer`, `allow` and `verify-ca` are refused). `sslmode=disable` is accepted
//! only when every host is loopback (`127.0.0.0/8`, `::1`, `localhost`), e.g. a server on the
//! same machine or behind an SSH tunnel; otherwise [`PostgresBackend::connect`] refuses before
//! connecting. Unix-socket hosts are not supported (use `127.0.0.1`).
//!
//! # Schema (version 1)
//! ```sql
//! tokenvault_meta(key TEXT PRIMARY KEY, value BYTEA NOT NULL)  -- 'schema_version' (ASCII digits), 'header'
//! tokenvault_records(id TEXT COLLATE "C" PRIMARY KEY, user_name_tag BYTEA UNIQUE,
//!                    access_token_tag BYTEA UNIQUE, refresh_token_tag BYTEA UNIQUE,
//!                    grant_token_tag BYTEA UNIQUE, sealed BYTEA NOT NULL)
//! tokenvault_audit(seq BIGINT PRIMARY KEY, entry BYTEA NOT NULL)  -- optional: the audit log
//! ```
//! Created on first connect in one transaction under a transaction-scoped advisory lock, so
//! processes connecting at once to a new store do not race; a newer schema version is refused.
//! Every value is a bound parameter; the only identifier ever put into SQL text is the schema
//! name, validated and quoted. `COLLATE "C"` makes [`Backend::list`]'s order byte order, as
//! the other backends. PostgreSQL text cannot hold NUL: a record id with a NUL byte cannot
//! exist here (a lookup finds nothing; storing one is [`BackendErrorKind::NotSupported`]).
//!
//! The audit table exists only in a store whose audit trail was turned on: it is created by
//! [`Backend::prepare_audit`] (never at connect, so other stores never need the privilege to
//! create it), under the same advisory lock. Older builds ignore it, so it leaves the schema
//! version at 1 (the header says whether the trail is on). A statement on a missing table
//! would abort the transaction, so audit reads and clears first check that it exists (in
//! `pg_catalog.pg_tables`, remembered once true): a log never prepared reads as empty. Entry
//! numbers above `i64::MAX` are refused.
//!
//! # Transactions
//! [`Backend::transact`] runs `BEGIN ISOLATION LEVEL READ COMMITTED` and then locks the
//! `schema_version` row of the meta table `FOR UPDATE`: a per-store writer lock that every
//! transaction takes first (it exists from the first connect on, unlike the header row, which a
//! creating transaction cannot lock, and unlike a header lock it also covers the
//! delete transactions, which never read the header). Writers therefore run one at a time, as
//! in SQLite, and each statement of the holder sees every earlier commit and no concurrent one
//! — so the vault's read-check-write is atomic without SERIALIZABLE's retries under contention.
//! Readers are never blocked (MVCC). Tags also have unique indexes; a violation is
//! [`BackendErrorKind::Conflict`].
//!
//! The whole step is re-run (it is `FnMut` and only reads and writes through the transaction),
//! at most 5 times with jittered exponential backoff, when PostgreSQL aborts it with a
//! serialization failure (`40001`) or deadlock (`40P01`), or when the connection is lost
//! *before* `COMMIT` was sent (then on a fresh connection; if none can be made, the call fails
//! with [`BackendErrorKind::Unavailable`] at once). A connection lost after `COMMIT` was sent is
//! never retried: the outcome is unknown and the error says so. Waiting more than 10 s for the
//! writer lock is [`BackendErrorKind::Busy`].
//!
//! # Cross-process locks
//! [`Backend::lock`] (the per-record refresh lock of
//! [`EncryptedStore::refresh_with`](crate::EncryptedStore::refresh_with)) is a session-level
//! `pg_advisory_lock` on a connection of its own, keyed by a hash of the schema and the lock
//! name, waiting at most the timeout (`lock_timeout`, then [`BackendErrorKind::Busy`]); the
//! server releases it when the holder's connection dies.
//!
//! # Pool
//! A small pool of our own (a `Mutex<Vec<Client>>` and a `Condvar`): up to `pool_size`
//! connections, opened lazily, each with its prepared statements cached. A connection on which
//! a statement failed, or which a panicking step left mid-transaction, is closed, never
//! returned; when one connection is found lost, the idle ones are dropped too (a server
//! restart kills them all), and an idempotent read outside a transaction is retried once on a
//! fresh connection. A caller waits at most 30 s for a free connection
//! ([`BackendErrorKind::Busy`]).
//!
//! Error messages carry SQLSTATE codes and PostgreSQL's primary messages (constraint names for
//! uniqueness violations), never values.

mod config;
mod errors;
mod locks;
mod pool;
mod query;
mod schema;
mod tls;
mod transaction;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::sql::{error, retry};
use super::{Backend, HeldLock, LookupField, StoredRecord, Tag, Transaction};
use crate::store::{BackendError, BackendErrorKind, Result};
use errors::{failure_of, pg_error};
use pool::{PgConn, Pool};
use query::{Sql, to_record};
use retry::Failure;

/// The schema this build writes. Newer ones are refused.
pub const SCHEMA_VERSION: i64 = 1;

/// A store in a PostgreSQL database (one schema of it). See the module docs.
pub struct PostgresBackend {
    pool: Pool,
    sql: Sql,
    schema: String,
    /// Set once the audit table has been seen to exist (it is never dropped by tokenvault):
    /// from then on, audit reads inside transactions skip the existence check.
    audit_ready: AtomicBool,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the URI: it holds the password.
        f.debug_struct("PostgresBackend")
            .field("schema", &self.schema)
            .field("pool_size", &self.pool.size)
            .finish_non_exhaustive()
    }
}

impl PostgresBackend {
    /// Connects to the server named by `uri` (see the module docs for its form), creating the
    /// schema and tables on first use.
    ///
    /// # Errors
    /// [`BackendErrorKind::NotSupported`] for `sslmode=disable` with a non-loopback host (refused
    /// before connecting), an unsupported `sslmode`, or a newer schema version;
    /// [`BackendErrorKind::Other`] for a malformed URI (bad schema name, pool size, …) or a
    /// refused login; [`BackendErrorKind::Unavailable`] if the server cannot be reached;
    /// [`BackendErrorKind::Corrupt`] if the schema holds tables that are not a tokenvault store.
    pub fn connect(uri: &str) -> Result<Self, BackendError> {
        let settings = config::parse_uri(uri)?;
        let pool = Pool::new(settings.connector, settings.pool_size);
        {
            let mut lease = pool.get()?;
            lease.reusable = false;
            schema::create_or_check(&mut lease.conn().client, &settings.schema)?;
            lease.reusable = true;
        }
        Ok(Self {
            pool,
            sql: Sql::new(&settings.schema),
            schema: settings.schema,
            audit_ready: AtomicBool::new(false),
        })
    }

    /// The PostgreSQL schema holding this store's tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Runs an idempotent read on a pooled connection; once more on a fresh connection if the
    /// pooled one turns out to be lost (e.g. the server restarted since it was opened).
    fn read<T>(
        &self,
        f: impl Fn(&mut PgConn, &Sql) -> Result<T, postgres::Error>,
    ) -> Result<T, BackendError> {
        let mut retried = false;
        loop {
            let mut lease = self.pool.get()?;
            match f(lease.conn(), &self.sql) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let failure = failure_of(&e);
                    // A connection on which a statement failed is not reused.
                    lease.reusable = false;
                    drop(lease);
                    if failure == Failure::Lost {
                        self.pool.drop_idle();
                        if !retried {
                            retried = true;
                            continue;
                        }
                    }
                    return Err(pg_error(&e));
                }
            }
        }
    }
}

impl Backend for PostgresBackend {
    /// A session-level advisory lock (`pg_advisory_lock`) on a dedicated connection, keyed by
    /// a 64-bit hash of the schema and `name` (a collision only makes two names share a lock).
    /// Released on drop, and by the server when the connection dies with its holder.
    fn lock(&self, name: &str, timeout: Duration) -> Result<Box<dyn HeldLock>, BackendError> {
        locks::lock(self, name, timeout)
    }

    fn read_header(&self) -> Result<Option<Vec<u8>>, BackendError> {
        self.read(query::header)
    }

    fn get(&self, id: &str) -> Result<Option<StoredRecord>, BackendError> {
        self.read(|c, s| query::get(c, s, id))?
            .map(to_record)
            .transpose()
    }

    fn find_by_tag(
        &self,
        field: LookupField,
        tag: &Tag,
    ) -> Result<Option<StoredRecord>, BackendError> {
        self.read(|c, s| query::find(c, s, field, tag))?
            .map(to_record)
            .transpose()
    }

    fn list(&self) -> Result<Vec<StoredRecord>, BackendError> {
        self.read(query::list)?.into_iter().map(to_record).collect()
    }

    fn transact(&self, step: &mut dyn FnMut(&mut dyn Transaction) -> Result<()>) -> Result<()> {
        self.transact_with_retries(step)
    }

    /// Creates `"{schema}".tokenvault_audit` if it does not exist: checked first without a lock
    /// (no CREATE privilege needed once it exists), else created in a transaction under the
    /// schema-creation advisory lock (see the module docs, *Schema*).
    fn prepare_audit(&self) -> Result<(), BackendError> {
        if !self.read(query::audit_exists)? {
            let mut lease = self.pool.get()?;
            lease.reusable = false;
            schema::create_audit_table(&mut lease.conn().client, &self.schema)?;
            lease.reusable = true;
        }
        self.audit_ready.store(true, Ordering::Relaxed);
        Ok(())
    }
}
