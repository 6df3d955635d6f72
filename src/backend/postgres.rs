//! PostgreSQL backend: a store shared by many app servers through one PostgreSQL server.
//!
//! ```text
//! postgres://USER:PASS@HOST:PORT/DB?pool_size=N&sslmode=require|disable&schema=NAME&sslrootcert=PATH
//! ```
//! `postgresql://` works too, and so do the other connection parameters of the `postgres`
//! crate (`connect_timeout`, `application_name`, …). Ours, removed before the rest is parsed:
//! - `pool_size` (1..=64, default 4): connections kept per backend handle (see *Pool*);
//! - `schema` (default `public`): the PostgreSQL schema holding the store's two tables, so one
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
//! ```
//! Created on first connect in one transaction under a transaction-scoped advisory lock, so
//! processes connecting at once to a new store do not race; a newer schema version is refused.
//! Every value is a bound parameter; the only identifier ever put into SQL text is the schema
//! name, validated and quoted. `COLLATE "C"` makes [`Backend::list`]'s order byte order, as
//! the other backends. PostgreSQL text cannot hold NUL: a record id with a NUL byte cannot
//! exist here (a lookup finds nothing; storing one is [`BackendErrorKind::NotSupported`]).
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

use std::error::Error as StdError;
use std::str::FromStr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use postgres::config::{Host, SslMode};
use postgres::error::SqlState;
use postgres::{Client, Config, NoTls, SimpleQueryMessage, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{Backend, HeldLock, LookupField, LookupTags, StoredRecord, Tag, Transaction};
use crate::store::{BackendError, BackendErrorKind, Result};

/// The schema this build writes. Newer ones are refused.
pub const SCHEMA_VERSION: i64 = 1;

const DEFAULT_POOL_SIZE: usize = 4;
const MAX_POOL_SIZE: usize = 64;
const DEFAULT_SCHEMA: &str = "public";
/// How long a caller waits for a pooled connection.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(30);
/// Connect timeout unless the URI sets `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a row lock (the writer lock) or the schema lock: then `Busy`.
const LOCK_TIMEOUT_SQL: &str = "SET lock_timeout = '10s'";
/// Attempts of one transaction (serialization failures, deadlocks, lost connections).
const MAX_TRIES: u32 = 5;
/// First backoff between attempts; doubles, plus up to as much jitter.
const BACKOFF: Duration = Duration::from_millis(5);
/// First key of the advisory lock that serializes schema creation ("TKV1").
const SCHEMA_LOCK_CLASS: i32 = 0x544B_5631;

fn error(kind: BackendErrorKind, message: impl Into<String>) -> BackendError {
    BackendError::new(kind, message.into())
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// What a failed statement means for the transaction running it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// The server aborted it to keep transactions isolated (40001, 40P01): run it again.
    Retry,
    /// The connection is gone (or the server is shutting down): the connection is useless.
    Lost,
    /// Anything else.
    Other,
}

fn failure_of(e: &postgres::Error) -> Failure {
    if let Some(code) = e.code() {
        if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
        {
            return Failure::Retry;
        }
        if code.code().starts_with("08")
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::IDLE_SESSION_TIMEOUT
        {
            return Failure::Lost;
        }
        return Failure::Other;
    }
    // No SQLSTATE: closed, or an I/O error (reset, EOF, timeout) under the connection.
    if e.is_closed() || e.source().is_some_and(|s| s.is::<std::io::Error>()) {
        Failure::Lost
    } else {
        Failure::Other
    }
}

/// Maps a PostgreSQL error onto the portable kinds, with a message free of values.
fn pg_error(e: &postgres::Error) -> BackendError {
    let Some(db) = e.as_db_error() else {
        return match failure_of(e) {
            Failure::Lost => error(
                BackendErrorKind::Unavailable,
                format!("PostgreSQL connection lost: {e}"),
            ),
            _ => error(
                BackendErrorKind::Other,
                format!("PostgreSQL client error: {e}"),
            ),
        };
    };
    let code = db.code();
    let class = &code.code()[..2];
    let kind = match class {
        _ if *code == SqlState::UNIQUE_VIOLATION => BackendErrorKind::Conflict,
        _ if *code == SqlState::LOCK_NOT_AVAILABLE || *code == SqlState::QUERY_CANCELED => {
            BackendErrorKind::Busy
        }
        _ if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            BackendErrorKind::Busy
        }
        _ if *code == SqlState::DATA_CORRUPTED || *code == SqlState::INDEX_CORRUPTED => {
            BackendErrorKind::Corrupt
        }
        _ if failure_of(e) == Failure::Lost => BackendErrorKind::Unavailable,
        "53" => BackendErrorKind::Io, // disk full, out of memory, too many connections
        "58" => BackendErrorKind::Io, // system error (I/O)
        "42" if *code == SqlState::INSUFFICIENT_PRIVILEGE => BackendErrorKind::Io,
        _ => BackendErrorKind::Other,
    };
    let message = match class {
        // Integrity and data errors may quote values in their message: name the constraint.
        "23" => format!(
            "PostgreSQL {} ({}){}",
            code.code(),
            if *code == SqlState::UNIQUE_VIOLATION {
                "unique constraint violated"
            } else {
                "integrity constraint violated"
            },
            db.constraint()
                .map(|c| format!(": constraint {c}"))
                .unwrap_or_default()
        ),
        "22" => format!("PostgreSQL {} (data exception)", code.code()),
        _ => format!("PostgreSQL {}: {}", code.code(), db.message()),
    };
    error(kind, message)
}

/// A backend error's own message, without the "storage backend error (kind)" prefix.
fn message_of(e: &BackendError) -> String {
    e.source()
        .map_or_else(|| e.to_string(), ToString::to_string)
}

/// An error while connecting: the server cannot be reached (Unavailable) unless it answered
/// and refused us (authentication, unknown database) or TLS failed (certificate not trusted or
/// not for this host: configuration, not a passing outage) — both Other.
fn connect_error(e: &postgres::Error) -> BackendError {
    // tokio-rustls reports rustls' error inside an io::Error, whose source() skips it.
    let tls_failed = std::iter::successors(e.source(), |s| (*s).source()).any(|s| {
        s.is::<rustls::Error>()
            || s.downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .is_some_and(|inner| inner.is::<rustls::Error>())
    });
    let kind = match e.code().map(|c| &c.code()[..2]) {
        _ if tls_failed => BackendErrorKind::Other,
        Some("28" | "3D") => BackendErrorKind::Other,
        Some("53") => BackendErrorKind::Unavailable, // too many connections
        Some(_) if failure_of(e) == Failure::Lost => BackendErrorKind::Unavailable,
        Some(_) => BackendErrorKind::Other,
        None => BackendErrorKind::Unavailable,
    };
    let detail = match e.as_db_error() {
        Some(db) => format!("PostgreSQL {}: {}", db.code().code(), db.message()),
        // The client's message and its causes (e.g. "error performing TLS handshake: invalid
        // peer certificate: UnknownIssuer"): no values in them.
        None => std::iter::successors(Some(e as &dyn StdError), |s| (*s).source())
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(": "),
    };
    error(kind, format!("cannot connect to PostgreSQL: {detail}"))
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// How connections are made: the parsed URI and the TLS connector (None: plaintext, loopback).
#[derive(Clone)]
struct Connector {
    config: Config,
    tls: Option<MakeRustlsConnect>,
}

impl Connector {
    fn connect(&self) -> Result<Client, BackendError> {
        let mut client = match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(NoTls),
        }
        .map_err(|e| connect_error(&e))?;
        client
            .batch_execute(LOCK_TIMEOUT_SQL)
            .map_err(|e| connect_error(&e))?;
        Ok(client)
    }
}

struct Settings {
    connector: Connector,
    pool_size: usize,
    schema: String,
}

/// `[a-z_][a-z0-9_]{0,62}`: a PostgreSQL identifier that needs no case folding.
fn valid_identifier(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
}

fn invalid(message: impl Into<String>) -> BackendError {
    error(BackendErrorKind::Other, message)
}

fn parse_uri(uri: &str) -> Result<Settings, BackendError> {
    if !(uri.starts_with("postgres://") || uri.starts_with("postgresql://")) {
        return Err(invalid(
            "not a PostgreSQL URI (expected postgres://USER:PASS@HOST:PORT/DB)",
        ));
    }
    let (base, query) = uri.split_once('?').unwrap_or((uri, ""));
    let mut pool_size = DEFAULT_POOL_SIZE;
    let mut schema = DEFAULT_SCHEMA.to_owned();
    let mut tls_wanted = true;
    let mut root_file = None;
    let mut rest = Vec::new();
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = param
            .split_once('=')
            .ok_or_else(|| invalid("PostgreSQL URI: a query parameter without '='"))?;
        match key {
            "pool_size" => {
                pool_size = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_POOL_SIZE).contains(n))
                    .ok_or_else(|| {
                        invalid(format!(
                            "PostgreSQL URI: pool_size must be a number from 1 to {MAX_POOL_SIZE}"
                        ))
                    })?;
            }
            "schema" => {
                if !valid_identifier(value) {
                    return Err(invalid(
                        "PostgreSQL URI: schema must match [a-z_][a-z0-9_]{0,62}",
                    ));
                }
                value.clone_into(&mut schema);
            }
            "sslmode" => {
                tls_wanted = match value {
                    "require" | "verify-full" => true,
                    "disable" => false,
                    _ => {
                        return Err(error(
                            BackendErrorKind::NotSupported,
                            "PostgreSQL URI: sslmode must be require (the default; verifies the \
                             certificate and host name) or disable (loopback hosts only)",
                        ));
                    }
                };
            }
            "sslrootcert" => root_file = Some(percent_decode(value)?),
            _ => rest.push(param),
        }
    }
    let text = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let mut config =
        Config::from_str(&text).map_err(|e| invalid(format!("invalid PostgreSQL URI: {e}")))?;
    if config.get_hosts().is_empty() {
        return Err(invalid("PostgreSQL URI without a host"));
    }
    let mut loopback = true;
    for host in config.get_hosts() {
        match host {
            Host::Tcp(name) => loopback &= crate::loopback::is_loopback_host(name),
            Host::Unix(_) => {
                return Err(error(
                    BackendErrorKind::NotSupported,
                    "PostgreSQL over a Unix socket is not supported; connect to 127.0.0.1",
                ));
            }
        }
    }
    loopback &= config
        .get_hostaddrs()
        .iter()
        .all(|ip| ip.to_canonical().is_loopback());
    let tls = if tls_wanted {
        config.ssl_mode(SslMode::Require);
        Some(tls_connector(root_file.as_deref())?)
    } else if loopback {
        config.ssl_mode(SslMode::Disable);
        None
    } else {
        return Err(error(
            BackendErrorKind::NotSupported,
            "refusing sslmode=disable for a host that is not loopback (127.0.0.0/8, ::1, \
             localhost): tokens and passwords would cross the network in plaintext; use TLS \
             (sslmode=require, the default)",
        ));
    };
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("tokenvault");
    }
    Ok(Settings {
        connector: Connector { config, tls },
        pool_size,
        schema,
    })
}

fn percent_decode(value: &str) -> Result<String, BackendError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Exactly two hex digits: `from_str_radix` alone would take a sign (`%+f`).
            let hex = bytes
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| invalid("PostgreSQL URI: bad percent-encoding"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid("PostgreSQL URI: sslrootcert is not UTF-8"))
}

/// rustls with the ring provider (chosen explicitly, so another crate enabling a second
/// provider cannot make the choice ambiguous) and the OS's or `root_file`'s CA certificates.
fn tls_connector(root_file: Option<&str>) -> Result<MakeRustlsConnect, BackendError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let certs: Vec<CertificateDer<'static>> = match root_file {
        Some(path) => CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<_, _>>())
            .map_err(|e| {
                error(
                    BackendErrorKind::Io,
                    format!("cannot read the sslrootcert file: {e}"),
                )
            })?,
        None => rustls_native_certs::load_native_certs().certs,
    };
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(error(
            BackendErrorKind::Other,
            match root_file {
                Some(_) => "the sslrootcert file holds no usable CA certificate",
                None => {
                    "no CA certificates found in the operating system's store (install \
                     ca-certificates, or pass sslrootcert=PATH in the URI)"
                }
            },
        ));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| error(BackendErrorKind::Other, format!("TLS setup: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

// ---------------------------------------------------------------------------------------------
// SQL
// ---------------------------------------------------------------------------------------------

/// Every statement this backend runs, by index into [`Sql::text`] and the per-connection cache.
#[derive(Clone, Copy)]
enum Q {
    Header,
    Get,
    FindUserName,
    FindAccessToken,
    FindRefreshToken,
    FindGrantToken,
    List,
    PutHeader,
    Put,
    Delete,
    DeleteAll,
}
const STATEMENTS: usize = 11;

const COLUMNS: &str =
    "id, user_name_tag, access_token_tag, refresh_token_tag, grant_token_tag, sealed";

/// The statements with the (validated, quoted) schema name in them.
struct Sql {
    text: [String; STATEMENTS],
    /// `BEGIN` and the writer lock, sent as one simple query (one round trip).
    begin: String,
}

impl Sql {
    fn new(schema: &str) -> Self {
        debug_assert!(valid_identifier(schema));
        let meta = format!("\"{schema}\".tokenvault_meta");
        let records = format!("\"{schema}\".tokenvault_records");
        let find = |column: &str| format!("SELECT {COLUMNS} FROM {records} WHERE {column} = $1");
        let text = [
            format!("SELECT value FROM {meta} WHERE key = 'header'"),
            format!("SELECT {COLUMNS} FROM {records} WHERE id = $1"),
            find("user_name_tag"),
            find("access_token_tag"),
            find("refresh_token_tag"),
            find("grant_token_tag"),
            format!("SELECT {COLUMNS} FROM {records} ORDER BY id"),
            format!(
                "INSERT INTO {meta}(key, value) VALUES ('header', $1)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ),
            format!(
                "INSERT INTO {records}({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (id) DO UPDATE SET user_name_tag = EXCLUDED.user_name_tag,
                     access_token_tag = EXCLUDED.access_token_tag,
                     refresh_token_tag = EXCLUDED.refresh_token_tag,
                     grant_token_tag = EXCLUDED.grant_token_tag, sealed = EXCLUDED.sealed"
            ),
            format!("DELETE FROM {records} WHERE id = $1"),
            format!("DELETE FROM {records}"),
        ];
        let begin = format!(
            "BEGIN ISOLATION LEVEL READ COMMITTED; \
             SELECT 1 FROM {meta} WHERE key = 'schema_version' FOR UPDATE"
        );
        Self { text, begin }
    }

    fn find(field: LookupField) -> Q {
        match field {
            LookupField::UserName => Q::FindUserName,
            LookupField::AccessToken => Q::FindAccessToken,
            LookupField::RefreshToken => Q::FindRefreshToken,
            LookupField::GrantToken => Q::FindGrantToken,
        }
    }
}

/// A 32-bit FNV-1a hash of the schema name: the advisory lock's second key.
fn schema_lock_key(schema: &str) -> i32 {
    let hash = schema.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    i32::from_ne_bytes(hash.to_ne_bytes())
}

/// Creates the schema and tables if missing and checks the version, in one transaction under
/// an advisory lock (concurrent first connects would otherwise race on CREATE).
fn create_or_check(client: &mut Client, schema: &str) -> Result<(), BackendError> {
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
    let version = version
        .as_deref()
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(|| {
            error(
                BackendErrorKind::Corrupt,
                "tokenvault tables without a valid schema version",
            )
        })?;
    super::check_schema_version(version, SCHEMA_VERSION)?;
    tx.commit().map_err(pg)
}

// ---------------------------------------------------------------------------------------------
// Pool
// ---------------------------------------------------------------------------------------------

/// One connection and its prepared statements.
struct PgConn {
    client: Client,
    statements: [Option<Statement>; STATEMENTS],
}

impl PgConn {
    fn statement(&mut self, sql: &Sql, q: Q) -> Result<Statement, postgres::Error> {
        if let Some(s) = &self.statements[q as usize] {
            return Ok(s.clone());
        }
        let s = self.client.prepare(&sql.text[q as usize])?;
        self.statements[q as usize] = Some(s.clone());
        Ok(s)
    }
}

struct PoolState {
    idle: Vec<PgConn>,
    /// Connections in existence: idle, leased, or being opened.
    open: usize,
}

struct Pool {
    connector: Connector,
    size: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle connection, a new one if fewer than `size` exist, or else the next one freed.
    fn get(&self) -> Result<Lease<'_>, BackendError> {
        let deadline = Instant::now() + CHECKOUT_TIMEOUT;
        let mut state = self.lock();
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(Lease::new(self, conn));
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                return match self.connector.connect() {
                    Ok(client) => Ok(Lease::new(
                        self,
                        PgConn {
                            client,
                            statements: Default::default(),
                        },
                    )),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(error(
                    BackendErrorKind::Busy,
                    format!(
                        "all {} PostgreSQL connections of the pool stayed busy for {}s (pool_size)",
                        self.size,
                        CHECKOUT_TIMEOUT.as_secs()
                    ),
                ));
            }
            state = self
                .freed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Closes every idle connection: after one was found lost, the others (opened to the same
    /// server) most likely are too.
    fn drop_idle(&self) {
        let idle = {
            let mut state = self.lock();
            let idle = std::mem::take(&mut state.idle);
            state.open -= idle.len();
            idle
        };
        drop(idle);
        self.freed.notify_all();
    }
}

/// A connection taken from the pool; back to it on drop if `reusable`, else closed.
struct Lease<'a> {
    pool: &'a Pool,
    conn: Option<PgConn>,
    reusable: bool,
}

impl<'a> Lease<'a> {
    fn new(pool: &'a Pool, conn: PgConn) -> Self {
        Self {
            pool,
            conn: Some(conn),
            reusable: true,
        }
    }

    fn conn(&mut self) -> &mut PgConn {
        self.conn.as_mut().expect("present until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if self.reusable && !conn.client.is_closed() {
            self.pool.lock().idle.push(conn);
        } else {
            drop(conn);
            self.pool.lock().open -= 1;
        }
        self.pool.freed.notify_one();
    }
}

// ---------------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------------

/// A row as read: id, the four tag columns, sealed bytes.
type Row = (String, [Option<Vec<u8>>; 4], Vec<u8>);

fn read_row(row: &postgres::Row) -> Result<Row, postgres::Error> {
    Ok((
        row.try_get(0)?,
        [
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
            row.try_get(4)?,
        ],
        row.try_get(5)?,
    ))
}

fn tag_column(value: Option<Vec<u8>>) -> Result<Option<Tag>, BackendError> {
    value
        .map(|bytes| {
            <[u8; 32]>::try_from(bytes.as_slice())
                .map(Tag)
                .map_err(|_| error(BackendErrorKind::Corrupt, "a lookup tag is not 32 bytes"))
        })
        .transpose()
}

fn to_record((id, tags, sealed): Row) -> Result<StoredRecord, BackendError> {
    let [a, b, c, d] = tags;
    Ok(StoredRecord {
        id,
        tags: LookupTags([
            tag_column(a)?,
            tag_column(b)?,
            tag_column(c)?,
            tag_column(d)?,
        ]),
        sealed,
    })
}

/// The queries, shared by reads outside and inside transactions. Raw rows: decoding happens
/// after, so that a decoding failure is not mistaken for a connection failure.
mod query {
    use super::{PgConn, Q, Row, Sql, read_row};
    use crate::backend::{LookupField, StoredRecord, Tag};

    pub(super) fn header(c: &mut PgConn, sql: &Sql) -> Result<Option<Vec<u8>>, postgres::Error> {
        let s = c.statement(sql, Q::Header)?;
        Ok(c.client.query_opt(&s, &[])?.map(|r| r.get(0)))
    }

    pub(super) fn get(c: &mut PgConn, sql: &Sql, id: &str) -> Result<Option<Row>, postgres::Error> {
        if id.contains('\0') {
            return Ok(None); // PostgreSQL text cannot hold NUL: no such record can exist
        }
        let s = c.statement(sql, Q::Get)?;
        c.client
            .query_opt(&s, &[&id])?
            .as_ref()
            .map(read_row)
            .transpose()
    }

    pub(super) fn find(
        c: &mut PgConn,
        sql: &Sql,
        field: LookupField,
        tag: &Tag,
    ) -> Result<Option<Row>, postgres::Error> {
        let s = c.statement(sql, Sql::find(field))?;
        // A unique index per tag column: at most one row.
        c.client
            .query_opt(&s, &[&tag.as_bytes().as_slice()])?
            .as_ref()
            .map(read_row)
            .transpose()
    }

    pub(super) fn list(c: &mut PgConn, sql: &Sql) -> Result<Vec<Row>, postgres::Error> {
        let s = c.statement(sql, Q::List)?;
        c.client.query(&s, &[])?.iter().map(read_row).collect()
    }

    pub(super) fn put_header(
        c: &mut PgConn,
        sql: &Sql,
        header: &[u8],
    ) -> Result<(), postgres::Error> {
        let s = c.statement(sql, Q::PutHeader)?;
        c.client.execute(&s, &[&header]).map(drop)
    }

    pub(super) fn put(c: &mut PgConn, sql: &Sql, r: &StoredRecord) -> Result<(), postgres::Error> {
        let s = c.statement(sql, Q::Put)?;
        let tag = |f: LookupField| r.tags.get(f).map(|t| t.as_bytes().as_slice());
        c.client
            .execute(
                &s,
                &[
                    &r.id,
                    &tag(LookupField::UserName),
                    &tag(LookupField::AccessToken),
                    &tag(LookupField::RefreshToken),
                    &tag(LookupField::GrantToken),
                    &r.sealed,
                ],
            )
            .map(drop)
    }

    pub(super) fn delete(c: &mut PgConn, sql: &Sql, id: &str) -> Result<bool, postgres::Error> {
        if id.contains('\0') {
            return Ok(false);
        }
        let s = c.statement(sql, Q::Delete)?;
        Ok(c.client.execute(&s, &[&id])? > 0)
    }

    pub(super) fn delete_all(c: &mut PgConn, sql: &Sql) -> Result<(), postgres::Error> {
        let s = c.statement(sql, Q::DeleteAll)?;
        c.client.execute(&s, &[]).map(drop)
    }
}

// ---------------------------------------------------------------------------------------------
// The backend
// ---------------------------------------------------------------------------------------------

/// A store in a PostgreSQL database (one schema of it). See the module docs.
pub struct PostgresBackend {
    pool: Pool,
    sql: Sql,
    schema: String,
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
        let settings = parse_uri(uri)?;
        let pool = Pool {
            connector: settings.connector,
            size: settings.pool_size,
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        };
        {
            let mut lease = pool.get()?;
            lease.reusable = false;
            create_or_check(&mut lease.conn().client, &settings.schema)?;
            lease.reusable = true;
        }
        Ok(Self {
            pool,
            sql: Sql::new(&settings.schema),
            schema: settings.schema,
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

    /// One attempt of [`Backend::transact`] on `lease`.
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
}

/// Jittered exponential backoff before try `n + 1` (n ≥ 1): BACKOFF·2^(n−1) plus up to as much.
fn backoff(n: u32) {
    let base = BACKOFF * 2u32.pow(n.saturating_sub(1).min(6));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let jitter = base.mul_f64(f64::from(nanos % 1000) / 1000.0);
    std::thread::sleep(base + jitter);
}

/// A held [`Backend::lock`]: the connection that holds the advisory lock.
struct AdvisoryLock {
    client: Client,
    key: i64,
}

impl HeldLock for AdvisoryLock {}

impl Drop for AdvisoryLock {
    fn drop(&mut self) {
        // Unlock at once; closing the connection (next) would release it too, a moment later.
        let _ = self
            .client
            .execute("SELECT pg_advisory_unlock($1)", &[&self.key]);
    }
}

/// FNV-1a (64-bit) of the schema, a NUL and the lock name: the advisory lock's key. The
/// one-key form shares no key space with the two-key schema-creation lock.
fn named_lock_key(schema: &str, name: &str) -> i64 {
    let hash = schema
        .bytes()
        .chain([0])
        .chain(name.bytes())
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    i64::from_ne_bytes(hash.to_ne_bytes())
}

impl Backend for PostgresBackend {
    /// A session-level advisory lock (`pg_advisory_lock`) on a dedicated connection, keyed by
    /// a 64-bit hash of the schema and `name` (a collision only makes two names share a lock).
    /// Released on drop, and by the server when the connection dies with its holder.
    fn lock(&self, name: &str, timeout: Duration) -> Result<Box<dyn HeldLock>, BackendError> {
        let key = named_lock_key(&self.schema, name);
        let mut client = self.pool.connector.connect()?;
        let millis = timeout.as_millis().clamp(1, i32::MAX as u128).to_string();
        client
            .execute("SELECT set_config('lock_timeout', $1, false)", &[&millis])
            .map_err(|e| pg_error(&e))?;
        match client.execute("SELECT pg_advisory_lock($1)", &[&key]) {
            Ok(_) => Ok(Box::new(AdvisoryLock { client, key })),
            Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => Err(error(
                BackendErrorKind::Busy,
                "the lock was held past the timeout (PostgreSQL advisory lock)",
            )),
            Err(e) => Err(pg_error(&e)),
        }
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
        let mut tries = 0;
        loop {
            tries += 1;
            let mut lease = self.pool.get()?;
            match self.attempt(&mut lease, step) {
                Attempt::Done(result) => return result,
                Attempt::Retry(e) if tries >= MAX_TRIES => {
                    return Err(error(
                        e.kind(),
                        format!(
                            "PostgreSQL transaction failed {MAX_TRIES} times; last: {}",
                            message_of(&e)
                        ),
                    )
                    .into());
                }
                Attempt::Retry(_) => {
                    drop(lease);
                    backoff(tries);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        for ok in ["public", "_", "t_0123abcd", &"a".repeat(63)] {
            assert!(valid_identifier(ok), "{ok}");
        }
        for bad in [
            "",
            "Public",
            "0abc",
            "a-b",
            "a\"b",
            "a;drop",
            "ü",
            &"a".repeat(64),
        ] {
            assert!(!valid_identifier(bad), "{bad}");
        }
    }

    #[test]
    fn percent_decoding_takes_exactly_two_hex_digits() {
        assert_eq!(percent_decode("/a%20b%2Fc").unwrap(), "/a b/c");
        for bad in ["%+f", "%-1", "%g0", "%2", "%", "% 1"] {
            assert!(percent_decode(bad).is_err(), "{bad}");
        }
    }

    fn refused(uri: &str) -> BackendError {
        parse_uri(uri)
            .err()
            .unwrap_or_else(|| panic!("{uri} accepted"))
    }

    #[test]
    fn uri_checks() {
        let s = parse_uri("postgres://u:p@127.0.0.1:5/db?sslmode=disable&pool_size=7&schema=t_1")
            .unwrap();
        assert_eq!((s.pool_size, s.schema.as_str()), (7, "t_1"));
        assert!(s.connector.tls.is_none());
        let e = refused("postgres://u:secretpw@db.example.com/db?sslmode=disable");
        assert_eq!(e.kind(), BackendErrorKind::NotSupported);
        assert!(!e.to_string().contains("secretpw"));
        let e = refused("postgres://u:p@localhost/db?sslmode=disable&hostaddr=10.1.2.3");
        assert_eq!(e.kind(), BackendErrorKind::NotSupported);
        assert_eq!(
            refused("postgres://u:p@localhost/db?sslmode=prefer").kind(),
            BackendErrorKind::NotSupported
        );
        for bad in ["Bad", "a;b", "x\"y", ""] {
            let e = refused(&format!(
                "postgres://u:p@localhost/db?sslmode=disable&schema={bad}"
            ));
            assert!(e.to_string().contains("schema"), "{e}");
        }
        for bad in ["0", "65", "x"] {
            refused(&format!(
                "postgres://u:p@localhost/db?sslmode=disable&pool_size={bad}"
            ));
        }
        refused("mysql://u:p@localhost/db");
    }
}
