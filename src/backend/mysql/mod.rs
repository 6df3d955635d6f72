//! MySQL / MariaDB backend: one store in two InnoDB tables (three with an audit log) on a
//! shared server, for many application servers using one store. Client: the `mysql` crate
//! (synchronous) with its connection pool; every statement prepared and bound (the crate caches
//! prepared statements per connection); identifiers validated and quoted with backticks.
//!
//! # URI
//! ```text
//! mysql://USER:PASSWORD@HOST[:PORT]/DATABASE[?PARAM=VALUE&...]
//! ```
//! User, password and database are percent-decoded. The database must exist; its name and the
//! table prefix are limited to ASCII letters, digits and `_`. Parameters:
//!
//! | parameter | default | meaning |
//! | --- | --- | --- |
//! | `ssl_mode` | `verify_identity` | `verify_identity`: TLS, certificate checked against the CA roots and the host name (or IP address) of the URI; `verify_ca`: TLS, certificate checked against the CA roots but not the name; `disabled`: no TLS, **only for a loopback host** (see TLS) |
//! | `table_prefix` | `tokenvault_` | tables are `<prefix>meta` and `<prefix>records` (and `<prefix>audit`, see Schema): several stores can share one database |
//! | `pool_min`, `pool_max` | 1, 10 | connections kept open at least / opened at most (the `mysql` crate's own names; `pool_size` is accepted for `pool_max`, as the PostgreSQL backend spells it) |
//! | `root_cert_path` | — | a PEM or DER file of extra CA certificates to trust (a private CA) |
//! | `cert_chain_path`, `priv_key_path` | — | a client certificate (PEM), for servers that require one |
//! | `tcp_connect_timeout_ms` | 10000 | how long connecting may take |
//!
//! The `mysql` crate's other URL options (`stmt_cache_size`, `compress`, `tcp_keepalive_*`,
//! `max_allowed_packet`, `cipher_suites`, `socket`, `prefer_socket` (default `false` here),
//! `reset_connection` and `check_health` (both default `false` here: the backend checks and
//! replaces broken connections itself)) are passed through. Refused: `host`, `port`, `user`,
//! `password` and `db_name` as parameters (they belong in the URI itself, where the TLS rule
//! sees them), the `danger_*` certificate options, `pkcs12_*`, `secure_auth=false`,
//! `enable_cleartext_plugin` without TLS, and `socket` with a host that is not loopback.
//! Unknown parameters are errors. Error messages never contain the password.
//!
//! # TLS
//! On by default, with rustls (ring): the server must offer TLS and present a certificate that
//! chains to Mozilla's root list (the `webpki-roots` crate) or to `root_cert_path`, for the URI's
//! host name or IP address (`verify_ca` skips only the name check). `ssl_mode=disabled` is
//! accepted only when the host is loopback (`127.0.0.0/8`, `::1` or `localhost`); for any other
//! host the URI is refused before anything is sent. A Unix socket (`socket=`) is local and is
//! never wrapped in TLS.
//!
//! # Schema (version 1)
//! ```sql
//! <prefix>meta(`key` VARBINARY(64) PRIMARY KEY, `value` LONGBLOB NOT NULL)  -- 'schema_version', 'header'
//! <prefix>records(`id` VARBINARY(1024) PRIMARY KEY,
//!                 `user_name_tag`, `access_token_tag`, `refresh_token_tag`, `grant_token_tag`
//!                     VARBINARY(32) NULL, each with a UNIQUE index,
//!                 `sealed` LONGBLOB NOT NULL)                                 -- ENGINE=InnoDB
//! ```
//! Binary columns: ids and tags compare as bytes, exactly. The tables are created on first use
//! under the server-wide named lock `GET_LOCK('tokenvault_schema')`, so processes racing to
//! create a store do not collide; tables that exist but carry no tokenvault schema version are
//! refused, and so is a newer schema version than this build's. Isolating stores (tests): one
//! database per store, or one `table_prefix` per store.
//!
//! A store with its audit trail on has a third table, the audit log:
//! ```sql
//! <prefix>audit(`seq` BIGINT UNSIGNED PRIMARY KEY, `entry` LONGBLOB NOT NULL)  -- ENGINE=InnoDB
//! ```
//! It is created by [`Backend::prepare_audit`] under the same named lock, never on first use,
//! so stores without a trail never need the privilege to create it; older builds ignore it, so
//! the schema version stays 1 (the header says whether the trail is on). A log never prepared
//! reads as empty (the "no such table" error, 1146, of a read or clear inside a transaction
//! means "no entries": unlike PostgreSQL, InnoDB keeps the transaction going after it). Entry
//! numbers above `i64::MAX` are refused, as in the other backends.
//!
//! # Transactions
//! [`Backend::transact`] runs one InnoDB transaction on one pooled connection (sessions use
//! `READ COMMITTED`, strict `sql_mode`, `innodb_lock_wait_timeout` = 10 s). It begins, in one
//! round trip, with `START TRANSACTION` and a read of the header and schema-version rows
//! `FOR UPDATE`: every writer takes that row lock first, so write transactions are serialised
//! the way SQLite's `IMMEDIATE` transactions are. The vault reads the header first in every
//! write anyway (the step's `header()` is then answered from that read); locking it up front
//! also covers steps that do not, like `delete_token`, and makes the step's later plain reads
//! see every committed write, so a match-then-write cannot act on a stale match. The price:
//! writers to one store take turns (see benches/mysql.rs for saves/s with 1–16 clients). Records are written with `UPDATE … WHERE id = ?`, then `INSERT` if no row
//! matched (never `ON DUPLICATE KEY UPDATE`, which would update another record whose tag
//! collides instead of failing); tag collisions fail with
//! [`Conflict`](BackendErrorKind::Conflict) through the unique indexes.
//!
//! On deadlock (1213), lock wait timeout (1205) or "record has changed" (1020), the whole step
//! is run again on a rolled-back transaction, at most 5 attempts with jittered exponential
//! backoff, then [`Busy`](BackendErrorKind::Busy). A lost connection before `COMMIT` was sent
//! (server restarted, connection dropped) rolls the transaction back on the server, so the step
//! is run again on a fresh connection; if no connection can be made the call fails with
//! [`Unavailable`](BackendErrorKind::Unavailable). A connection lost *while* committing leaves
//! the outcome unknown: that call fails with `Unavailable` and is never retried. Reads outside
//! transactions are retried on a fresh connection after a lost connection.
//!
//! # Named locks
//! [`Backend::lock`] is `GET_LOCK` on a pooled connection held for the lock's lifetime (so
//! `pool_max` must leave room for the holder's other calls); the server releases it if the
//! holder's connection ends. Lock names are hashed with the database and table prefix, so
//! stores sharing a server do not share locks.

mod config;
pub(crate) mod connection;
mod errors;
mod locks;
mod pool;
mod schema;
mod statements;
mod tls;
mod transaction;

use std::fmt;
use std::time::Duration;

use ::mysql::prelude::Queryable;
use ::mysql::{Pool, Row};

use super::sql::error;
use super::{Backend, HeldLock, LookupField, StoredRecord, Tag, Transaction};
use crate::store::{BackendError, BackendErrorKind, Result};
use config::client_config;
use errors::db_error;
use statements::{Sql, take_bytes, to_record};

/// The schema this build writes. Newer schemas are refused.
pub const SCHEMA_VERSION: i64 = 1;
/// Table prefix unless the URI gives `table_prefix`.
pub const DEFAULT_TABLE_PREFIX: &str = "tokenvault_";

/// A store in two tables (three with an audit log) of a MySQL or MariaDB database (see the
/// module docs).
pub struct MysqlBackend {
    pool: Pool,
    sql: Sql,
    database: String,
    table_prefix: String,
    endpoint: String,
    /// Connections to try after a lost one before giving up: every idle one may be dead.
    max_reconnects: usize,
}

impl fmt::Debug for MysqlBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlBackend")
            .field("endpoint", &self.endpoint)
            .field("database", &self.database)
            .field("table_prefix", &self.table_prefix)
            .finish_non_exhaustive()
    }
}

impl MysqlBackend {
    /// Connects to the server named by `uri` (see the module docs for its form, parameters and
    /// TLS rules) and creates the store's tables if they do not exist.
    ///
    /// # Errors
    /// [`BackendErrorKind::NotSupported`] for a URI the TLS rules refuse (nothing is sent) or a
    /// schema newer than this build; [`BackendErrorKind::Other`] for a malformed URI, unknown
    /// parameter, denied access or unknown database; [`BackendErrorKind::Unavailable`] if the
    /// server cannot be reached or the TLS handshake fails; [`BackendErrorKind::Corrupt`] for
    /// tables of that name that are not a tokenvault store.
    pub fn connect(uri: &str) -> Result<Self, BackendError> {
        let config = client_config(uri, None, true)?;
        let during = format!("connecting to {}", config.endpoint);
        let pool = Pool::new(config.opts).map_err(|e| db_error(&e, &during))?;
        let backend = Self {
            pool,
            sql: Sql::new(&config.table_prefix),
            database: config.database,
            table_prefix: config.table_prefix,
            endpoint: config.endpoint,
            max_reconnects: config.pool_max + 1,
        };
        backend.ensure_schema()?;
        Ok(backend)
    }

    /// The database the store is in.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The prefix of the store's table names.
    pub fn table_prefix(&self) -> &str {
        &self.table_prefix
    }
}

impl Backend for MysqlBackend {
    fn read_header(&self) -> Result<Option<Vec<u8>>, BackendError> {
        let row: Option<Row> = self.read("reading the header", |conn, sql| {
            conn.exec_first(&sql.read_header, ())
        })?;
        match row {
            Some(mut row) => take_bytes(&mut row, 0),
            None => Ok(None),
        }
    }

    fn get(&self, id: &str) -> Result<Option<StoredRecord>, BackendError> {
        self.read("reading a record", |conn, sql| {
            conn.exec_first::<Row, _, _>(&sql.get, (id.as_bytes(),))
        })?
        .map(to_record)
        .transpose()
    }

    fn find_by_tag(
        &self,
        field: LookupField,
        tag: &Tag,
    ) -> Result<Option<StoredRecord>, BackendError> {
        self.read("finding a record", |conn, sql| {
            conn.exec_first::<Row, _, _>(&sql.find[field.index()], (tag.as_bytes().as_slice(),))
        })?
        .map(to_record)
        .transpose()
    }

    fn list(&self) -> Result<Vec<StoredRecord>, BackendError> {
        self.read("listing records", |conn, sql| {
            conn.exec::<Row, _, _>(&sql.list, ())
        })?
        .into_iter()
        .map(to_record)
        .collect()
    }

    /// `GET_LOCK` on a connection taken from the pool for as long as the lock is held (so
    /// `pool_max` must leave room for the holder's other calls). The server-wide lock name is
    /// `tokenvault:` and 40 hex digits of SHA-256 over database, table prefix and `name`, so
    /// stores on one server do not share locks. Released by `RELEASE_LOCK` on drop, or by the
    /// server when the holder's connection ends (process killed, server restarted).
    fn lock(&self, name: &str, timeout: Duration) -> Result<Box<dyn HeldLock>, BackendError> {
        locks::lock(self, name, timeout)
    }

    fn transact(&self, step: &mut dyn FnMut(&mut dyn Transaction) -> Result<()>) -> Result<()> {
        self.transact_with_retries(step)
    }

    /// Creates `<prefix>audit` if it does not exist, under the schema lock (see the module
    /// docs, *Schema*). Runs on a connection of its own, outside any transaction: MySQL
    /// commits on DDL.
    fn prepare_audit(&self) -> Result<(), BackendError> {
        self.ensure_audit()
    }
}
