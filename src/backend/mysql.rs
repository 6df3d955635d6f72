//! MySQL / MariaDB backend: one store in two InnoDB tables on a shared server, for many
//! application servers using one store. Client: the `mysql` crate (synchronous) with its
//! connection pool; every statement prepared and bound (the crate caches prepared statements
//! per connection); identifiers validated and quoted with backticks.
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
//! | `table_prefix` | `tokenvault_` | tables are `<prefix>meta` and `<prefix>records`: several stores can share one database |
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

use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::time::Duration;

use ::mysql::consts::CapabilityFlags;
use ::mysql::prelude::Queryable;
use ::mysql::{
    DriverError, Opts, OptsBuilder, Params, Pool, PoolConstraints, PoolOpts, PooledConn, Row,
    UrlError, Value,
};

use sha2::{Digest, Sha256};

use super::{Backend, HeldLock, LookupField, LookupTags, StoredRecord, Tag, Transaction};
use crate::store::{BackendError, BackendErrorKind, Result};

/// The schema this build writes. Newer schemas are refused.
pub const SCHEMA_VERSION: i64 = 1;
/// Table prefix unless the URI gives `table_prefix`.
pub const DEFAULT_TABLE_PREFIX: &str = "tokenvault_";

const DEFAULT_POOL_MIN: usize = 1;
const DEFAULT_POOL_MAX: usize = 10;
const MAX_POOL: usize = 1000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Read and write timeout of every connection: longer than any lock wait.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a call waits for a free pooled connection.
const POOL_WAIT: Duration = Duration::from_secs(30);
/// Seconds a statement waits for a row lock (SQLite's busy timeout is 10 s too).
const LOCK_WAIT_TIMEOUT_SECS: u32 = 10;
/// Attempts of one transaction when the server reports a deadlock or lock wait timeout.
const MAX_ATTEMPTS: u32 = 5;
const SCHEMA_LOCK: &str = "tokenvault_schema";
const SCHEMA_LOCK_TIMEOUT_SECS: u32 = 30;
/// Record ids longer than this are refused by the column (`NotSupported`).
const MAX_ID_BYTES: usize = 1024;

/// TLS parameters, meaningless with `ssl_mode=disabled`.
const TLS_PARAMS: [&str; 4] = [
    "root_cert_path",
    "cert_chain_path",
    "priv_key_path",
    "cipher_suites",
];

fn error(kind: BackendErrorKind, message: impl Into<String>) -> BackendError {
    BackendError::new(kind, message.into())
}

// ---------------------------------------------------------------------------------------------
// URI and client options
// ---------------------------------------------------------------------------------------------

/// How the connection is protected (`ssl_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SslMode {
    Disabled,
    VerifyCa,
    VerifyIdentity,
}

/// A parsed URI: client options with the TLS policy applied, and tokenvault's own settings.
pub(crate) struct ClientConfig {
    pub(crate) opts: Opts,
    pub(crate) database: String,
    pub(crate) table_prefix: String,
    /// `host:port` (or the socket), for messages.
    pub(crate) endpoint: String,
    pool_max: usize,
}

/// Letters, digits and `_` only, `min..=max` bytes: safe inside backticks on every server.
pub(crate) fn valid_identifier(name: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn bad_uri(message: impl Into<String>) -> BackendError {
    error(BackendErrorKind::Other, message)
}

fn refused(message: impl Into<String>) -> BackendError {
    error(BackendErrorKind::NotSupported, message)
}

fn parse_bool(name: &str, value: &str) -> Result<bool, BackendError> {
    value
        .parse()
        .map_err(|_| bad_uri(format!("URI parameter {name} must be true or false")))
}

fn parse_pool(name: &str, value: &str) -> Result<usize, BackendError> {
    value
        .parse()
        .ok()
        .filter(|n| *n <= MAX_POOL)
        .ok_or_else(|| {
            bad_uri(format!(
                "URI parameter {name} must be a number up to {MAX_POOL}"
            ))
        })
}

/// The `mysql` crate's URL error, without parameter values (a value could be a secret).
fn url_error(e: &UrlError) -> BackendError {
    match e {
        UrlError::UnknownParameter(name) => bad_uri(format!("unknown URI parameter {name:?}")),
        UrlError::InvalidValue(name, _) => {
            bad_uri(format!("invalid value for URI parameter {name:?}"))
        }
        UrlError::FeatureRequired(_, name) => refused(format!(
            "URI parameter {name:?} is not supported by this build"
        )),
        _ => bad_uri("invalid mysql:// URI"),
    }
}

/// Parses a `mysql://` URI (see the module docs) into client options. `default_database` is
/// used when the URI names none; `for_store` allows the store-only parameters (`table_prefix`,
/// pool sizes).
pub(crate) fn client_config(
    uri: &str,
    default_database: Option<&str>,
    for_store: bool,
) -> Result<ClientConfig, BackendError> {
    let url =
        url::Url::parse(uri).map_err(|e| bad_uri(format!("not a valid mysql:// URI ({e})")))?;
    if url.scheme() != "mysql" {
        return Err(bad_uri("expected a mysql:// URI"));
    }
    if url.fragment().is_some() {
        return Err(bad_uri(
            "the URI has a '#' fragment (percent-encode '#' in a password as %23)",
        ));
    }
    let host_text = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad_uri("the URI names no host"))?;
    // The `mysql` crate parses the host the same way (as a special-scheme host), so the host
    // judged here is the one it connects to.
    let host = url::Host::parse(host_text).map_err(|_| bad_uri("the URI's host is not valid"))?;
    let loopback = crate::loopback::is_loopback_host(&host.to_string());

    let mut segments = url
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).collect::<Vec<_>>())
        .unwrap_or_default();
    if segments.len() > 1 {
        return Err(bad_uri(
            "the URI's path must be one database name (mysql://USER:PASS@HOST:PORT/DATABASE)",
        ));
    }
    let database = match segments.pop() {
        Some(raw) => percent_decode(raw)?,
        None => default_database
            .ok_or_else(|| bad_uri("the URI names no database (mysql://…/DATABASE)"))?
            .to_owned(),
    };
    if !valid_identifier(&database, 1, 64) {
        return Err(bad_uri(
            "the database name must be 1 to 64 ASCII letters, digits or '_'",
        ));
    }

    let mut seen = HashSet::new();
    let mut passed = Vec::new();
    let mut ssl_mode = SslMode::VerifyIdentity;
    let mut table_prefix = DEFAULT_TABLE_PREFIX.to_owned();
    let (mut pool_min, mut pool_max) = (DEFAULT_POOL_MIN, DEFAULT_POOL_MAX);
    for (name, value) in url.query_pairs() {
        let name = name.into_owned();
        if !seen.insert(name.clone()) {
            return Err(bad_uri(format!("URI parameter {name:?} is given twice")));
        }
        match name.as_str() {
            "ssl_mode" => {
                ssl_mode = match value.to_ascii_lowercase().as_str() {
                    "disabled" => SslMode::Disabled,
                    "verify_ca" => SslMode::VerifyCa,
                    "verify_identity" => SslMode::VerifyIdentity,
                    _ => {
                        return Err(bad_uri(
                            "ssl_mode must be verify_identity (the default), verify_ca or disabled",
                        ));
                    }
                }
            }
            "table_prefix" | "pool_min" | "pool_max" | "pool_size" if !for_store => {
                return Err(bad_uri(format!(
                    "URI parameter {name} applies to a store, not here"
                )));
            }
            "table_prefix" => {
                if !valid_identifier(&value, 0, 50) {
                    return Err(bad_uri(
                        "table_prefix must be at most 50 ASCII letters, digits or '_'",
                    ));
                }
                table_prefix = value.into_owned();
            }
            "pool_min" => pool_min = parse_pool(&name, &value)?,
            "pool_max" | "pool_size" => {
                if seen.contains("pool_max") && seen.contains("pool_size") {
                    return Err(bad_uri("give pool_max or pool_size (the same), not both"));
                }
                pool_max = parse_pool(&name, &value)?;
            }
            "host" | "port" | "user" | "password" | "db_name" => {
                return Err(refused(format!(
                    "URI parameter {name} is not accepted: put it in the URI itself \
                     (mysql://USER:PASS@HOST:PORT/DATABASE)"
                )));
            }
            "danger_accept_invalid_certs" | "danger_skip_domain_validation" => {
                return Err(refused(format!(
                    "URI parameter {name} is not accepted: trust a private CA with \
                     root_cert_path=FILE, or use ssl_mode=verify_ca to skip the name check"
                )));
            }
            "pkcs12_path" | "pkcs12_pass" => {
                return Err(refused(format!(
                    "URI parameter {name} needs native-tls; use cert_chain_path and priv_key_path"
                )));
            }
            "secure_auth" if !parse_bool(&name, &value)? => {
                return Err(refused(
                    "secure_auth=false (old insecure authentication) is not accepted",
                ));
            }
            _ => passed.push((name, value.into_owned())),
        }
    }
    if pool_max == 0 || pool_min > pool_max {
        return Err(bad_uri(
            "pool sizes need 1 <= pool_max and pool_min <= pool_max",
        ));
    }
    let has = |name: &str| seen.contains(name);
    let tls = ssl_mode != SslMode::Disabled;
    if !tls && !loopback {
        return Err(refused(format!(
            "refusing to connect to {host} without TLS: ssl_mode=disabled is accepted only for \
             a loopback host (127.0.0.0/8, ::1, localhost)"
        )));
    }
    if !tls && let Some(name) = TLS_PARAMS.iter().find(|p| has(p)) {
        return Err(bad_uri(format!(
            "URI parameter {name} is a TLS option, but ssl_mode=disabled"
        )));
    }
    if has("socket") && !loopback {
        return Err(refused(
            "socket= connects through a local Unix socket: the URI's host must be loopback",
        ));
    }
    if !tls
        && has("enable_cleartext_plugin")
        && parse_bool(
            "enable_cleartext_plugin",
            &passed_value(&passed, "enable_cleartext_plugin"),
        )?
    {
        return Err(refused(
            "enable_cleartext_plugin sends the password in clear: not accepted without TLS",
        ));
    }

    // The rest goes to the `mysql` crate's own URL parser.
    let mut for_crate = url.clone();
    for_crate.set_query(None);
    if !passed.is_empty() {
        for_crate.query_pairs_mut().extend_pairs(&passed);
    }
    let parsed = Opts::from_url(for_crate.as_str()).map_err(|e| url_error(&e))?;

    let ssl = tls.then(|| {
        parsed
            .get_ssl_opts()
            .cloned()
            .unwrap_or_default()
            .with_danger_skip_domain_validation(ssl_mode == SslMode::VerifyCa)
            .with_danger_accept_invalid_certs(false)
    });
    if tls {
        install_tls_provider();
    }
    let pool_opts = PoolOpts::default()
        .with_constraints(
            PoolConstraints::new(pool_min, pool_max).expect("checked: min <= max, max >= 1"),
        )
        .with_reset_connection(has("reset_connection") && parsed.get_pool_opts().reset_connection())
        .with_check_health(has("check_health") && parsed.get_pool_opts().check_health());
    let endpoint = match parsed.get_socket() {
        Some(_) => "a local Unix socket".to_owned(),
        None => format!("{host}:{}", parsed.get_tcp_port()),
    };
    let mut builder = OptsBuilder::from_opts(parsed.clone())
        .ssl_opts(ssl)
        .db_name(Some(database.clone()))
        .pool_opts(pool_opts)
        .read_timeout(Some(IO_TIMEOUT))
        .write_timeout(Some(IO_TIMEOUT))
        // UPDATE reports the rows it matched, not only those it changed.
        .additional_capabilities(CapabilityFlags::CLIENT_FOUND_ROWS)
        .init(vec![
            format!(
                "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION', \
                 SESSION innodb_lock_wait_timeout = {LOCK_WAIT_TIMEOUT_SECS}"
            ),
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED".to_owned(),
        ]);
    if !has("prefer_socket") {
        // The crate would otherwise switch a loopback TCP connection to the server's socket.
        builder = builder.prefer_socket(false);
    }
    if !has("tcp_connect_timeout_ms") {
        builder = builder.tcp_connect_timeout(Some(CONNECT_TIMEOUT));
    }
    Ok(ClientConfig {
        opts: builder.into(),
        database,
        table_prefix,
        endpoint,
        pool_max,
    })
}

fn passed_value(passed: &[(String, String)], name: &str) -> String {
    passed
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn percent_decode(raw: &str) -> Result<String, BackendError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad_uri("bad percent-encoding in the URI's database name"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad_uri("the URI's database name is not UTF-8"))
}

/// rustls needs one process-wide crypto provider; with more than one compiled in (another
/// dependency may enable aws-lc-rs) it cannot choose and the `mysql` crate would panic. Ring is
/// installed unless the process already chose one.
fn install_tls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// What to do about a failed statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// Deadlock, lock wait timeout: roll back and run the whole step again.
    Retry,
    /// The connection is gone (or the server is restarting): discard it; before COMMIT, run the
    /// step again on a fresh connection.
    Connection,
    /// Anything else: report it.
    Fatal,
}

const ER_DUP_ENTRY: u16 = 1062;
const ER_DUP_ENTRY_WITH_KEY_NAME: u16 = 1586;
const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
const ER_LOCK_DEADLOCK: u16 = 1213;
const ER_CHECKREAD: u16 = 1020;
const ER_SERVER_SHUTDOWN: u16 = 1053;
const ER_CONNECTION_KILLED: u16 = 1927;
const ER_CLIENT_INTERACTION_TIMEOUT: u16 = 4031;

fn classify(e: &::mysql::Error) -> Class {
    match e {
        ::mysql::Error::MySqlError(e) => match e.code {
            ER_LOCK_DEADLOCK | ER_LOCK_WAIT_TIMEOUT | ER_CHECKREAD => Class::Retry,
            ER_SERVER_SHUTDOWN | ER_CONNECTION_KILLED | ER_CLIENT_INTERACTION_TIMEOUT => {
                Class::Connection
            }
            _ => Class::Fatal,
        },
        ::mysql::Error::IoError(_) | ::mysql::Error::CodecError(_) => Class::Connection,
        ::mysql::Error::DriverError(d) => match d {
            DriverError::Timeout | DriverError::TlsNotSupported => Class::Fatal,
            DriverError::MismatchedStmtParams(..)
            | DriverError::Params(_)
            | DriverError::MixedParams
            | DriverError::UnknownAuthPlugin(_)
            | DriverError::OldMysqlPasswordDisabled
            | DriverError::CleartextPluginDisabled
            | DriverError::ReadOnlyTransNotSupported
            | DriverError::InvalidPoolConstraints => Class::Fatal,
            _ => Class::Connection,
        },
        _ => Class::Fatal,
    }
}

/// Server error codes whose message carries no stored value, so it may be shown.
fn server_text_is_safe(code: u16) -> bool {
    matches!(
        code,
        1040 | 1044
            | 1045
            | 1049
            | 1053
            | 1129
            | 1130
            | 1142
            | 1143
            | 1146
            | 1205
            | 1213
            | 1227
            | 1370
            | 1927
            | 4031
    )
}

/// A TLS failure the client reports inside an I/O error (rustls errors reach the `mysql`
/// crate through its stream), with a hint for the usual causes.
fn tls_failure(io: &std::io::Error) -> Option<String> {
    let tls = io.get_ref()?.downcast_ref::<rustls::Error>()?;
    let hint = match tls {
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
            " (the certificate chains to neither Mozilla's roots nor root_cert_path)"
        }
        rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForName
            | rustls::CertificateError::NotValidForNameContext { .. },
        ) => " (the certificate does not name the URI's host; see ssl_mode)",
        _ => "",
    };
    Some(format!("{tls}{hint}"))
}

/// The portable kind and a message (never a stored value) for a client error; `during` says
/// what was being done ("connecting to …", "writing a record").
pub(crate) fn describe(e: &::mysql::Error, during: &str) -> (BackendErrorKind, String) {
    use ::mysql::Error as E;
    use BackendErrorKind as K;
    let io = match e {
        E::IoError(io) => Some(io),
        E::CodecError(c) => {
            std::error::Error::source(c).and_then(|s| s.downcast_ref::<std::io::Error>())
        }
        _ => None,
    };
    if let Some(tls) = io.and_then(tls_failure) {
        return (
            K::Unavailable,
            format!("TLS with the MySQL server failed while {during}: {tls}"),
        );
    }
    match e {
        E::MySqlError(server) => {
            let code = server.code;
            let (kind, what) = match code {
                ER_DUP_ENTRY | ER_DUP_ENTRY_WITH_KEY_NAME => (
                    K::Conflict,
                    "a unique key (record id or lookup tag) is taken",
                ),
                ER_LOCK_DEADLOCK => (K::Busy, "deadlock"),
                ER_LOCK_WAIT_TIMEOUT => (K::Busy, "lock wait timeout"),
                ER_CHECKREAD => (K::Busy, "record changed by a concurrent transaction"),
                ER_SERVER_SHUTDOWN
                | ER_CONNECTION_KILLED
                | ER_CLIENT_INTERACTION_TIMEOUT
                | 1040
                | 1129
                | 1152..=1161 => (K::Unavailable, "the connection was lost"),
                1044 | 1045 | 1142 | 1143 | 1227 | 1370 => (K::Other, "access denied"),
                1049 => (K::Other, "unknown database (create it first)"),
                1146 => (K::Corrupt, "a store table is missing"),
                1406 => (K::NotSupported, "a value is too long for its column"),
                3 | 1021 | 1030 | 1114 => (K::Io, "the server could not write"),
                _ => (K::Other, "server error"),
            };
            let text = if server_text_is_safe(code) {
                format!(" ({})", server.message)
            } else {
                String::new()
            };
            (
                kind,
                format!(
                    "MySQL server error {code} [{}] while {during}: {what}{text}",
                    server.state
                ),
            )
        }
        E::IoError(io) => (
            K::Unavailable,
            format!("lost the connection to the MySQL server while {during}: {io}"),
        ),
        E::CodecError(c) => (
            K::Unavailable,
            format!("lost the connection to the MySQL server while {during}: {c}"),
        ),
        E::DriverError(DriverError::Timeout) => (
            K::Busy,
            format!(
                "no free pooled MySQL connection within {}s while {during} (raise pool_max?)",
                POOL_WAIT.as_secs()
            ),
        ),
        E::DriverError(DriverError::TlsNotSupported) => (
            K::NotSupported,
            format!(
                "the MySQL server does not offer TLS (while {during}): enable TLS on the server \
                 (ssl_mode=disabled is accepted only for a loopback host)"
            ),
        ),
        E::DriverError(d) => {
            let kind = match classify(e) {
                Class::Connection => K::Unavailable,
                _ => K::Other,
            };
            (kind, format!("MySQL client error while {during}: {d}"))
        }
        E::TlsError(t) => (
            K::Unavailable,
            format!("TLS with the MySQL server failed while {during}: {t}"),
        ),
        E::UrlError(u) => (url_error(u).kind(), format!("bad URI while {during}")),
        _ => (
            K::Corrupt,
            format!("a column of unexpected type while {during}"),
        ),
    }
}

fn db_error(e: &::mysql::Error, during: &str) -> BackendError {
    let (kind, message) = describe(e, during);
    error(kind, message)
}

fn corrupt(message: &str) -> BackendError {
    error(BackendErrorKind::Corrupt, message)
}

// ---------------------------------------------------------------------------------------------
// Statements
// ---------------------------------------------------------------------------------------------

/// The statements of one store, table names filled in (validated, backtick-quoted); values
/// are always bound.
struct Sql {
    meta: String,
    records: String,
    read_header: String,
    /// `START TRANSACTION` and the header lock in one round trip (a multi-statement text
    /// query: both statements are constant, nothing to bind).
    begin: String,
    put_header: String,
    get: String,
    find: [String; 4],
    list: String,
    update: String,
    insert: String,
    delete: String,
    delete_all: String,
}

const COLUMNS: &str =
    "`id`, `user_name_tag`, `access_token_tag`, `refresh_token_tag`, `grant_token_tag`, `sealed`";
const TAG_COLUMNS: [&str; 4] = [
    "user_name_tag",
    "access_token_tag",
    "refresh_token_tag",
    "grant_token_tag",
];

impl Sql {
    fn new(prefix: &str) -> Self {
        debug_assert!(valid_identifier(prefix, 0, 50));
        let meta = format!("{prefix}meta");
        let records = format!("{prefix}records");
        let (m, r) = (format!("`{meta}`"), format!("`{records}`"));
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
            meta,
            records,
        }
    }

    fn create_meta(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS `{}` (
                `key` VARBINARY(64) NOT NULL,
                `value` LONGBLOB NOT NULL,
                PRIMARY KEY (`key`)
            ) ENGINE=InnoDB",
            self.meta
        )
    }

    fn create_records(&self) -> String {
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

fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec())
}

fn tag_value(tag: Option<&Tag>) -> Value {
    tag.map_or(Value::NULL, |t| bytes(t.as_bytes()))
}

fn take_bytes(row: &mut Row, i: usize) -> Result<Option<Vec<u8>>, BackendError> {
    match row.take::<Value, _>(i) {
        Some(Value::NULL) => Ok(None),
        Some(Value::Bytes(b)) => Ok(Some(b)),
        _ => Err(corrupt("a store column holds a value of unexpected type")),
    }
}

fn to_record(mut row: Row) -> Result<StoredRecord, BackendError> {
    let id = take_bytes(&mut row, 0)?.ok_or_else(|| corrupt("a record without id"))?;
    let id = String::from_utf8(id).map_err(|_| corrupt("a record id is not UTF-8"))?;
    let mut tags = LookupTags::default();
    for (i, slot) in tags.0.iter_mut().enumerate() {
        *slot = take_bytes(&mut row, i + 1)?
            .map(|b| {
                <[u8; 32]>::try_from(b.as_slice())
                    .map(Tag)
                    .map_err(|_| corrupt("a lookup tag is not 32 bytes"))
            })
            .transpose()?;
    }
    let sealed =
        take_bytes(&mut row, 5)?.ok_or_else(|| corrupt("a record without sealed bytes"))?;
    Ok(StoredRecord { id, tags, sealed })
}

/// The schema version stored as ASCII digits.
fn parse_version(value: &[u8]) -> Result<i64, BackendError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| corrupt("the store's schema version is not a number"))
}

fn check_version(version: i64) -> Result<(), BackendError> {
    super::check_schema_version(version, SCHEMA_VERSION)
}

/// An integer result of `SELECT GET_LOCK(…)` and the like; `None` for NULL.
fn int_value(value: Option<Value>) -> Option<i64> {
    match value? {
        Value::Int(n) => Some(n),
        Value::UInt(n) => i64::try_from(n).ok(),
        Value::Bytes(b) => std::str::from_utf8(&b).ok()?.parse().ok(),
        _ => None,
    }
}

/// Jittered exponential backoff before attempt `attempt + 1`: 10–30 ms, 20–60 ms, … ≤ 480 ms.
fn backoff(attempt: u32) -> Duration {
    let base = 20u64 << attempt.min(4).saturating_sub(1);
    let jitter = RandomState::new().build_hasher().finish() % base;
    Duration::from_millis(base / 2 + jitter)
}

/// Makes the pool drop this connection when it is returned: `reset` on return fails on a dead
/// connection, which the pool then discards (on a live one it just resets the session).
fn discard(conn: &mut PooledConn) {
    conn.reset_connection(true);
}

// ---------------------------------------------------------------------------------------------
// The backend
// ---------------------------------------------------------------------------------------------

/// A store in two tables of a MySQL or MariaDB database (see the module docs).
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

    /// The prefix of the store's two table names.
    pub fn table_prefix(&self) -> &str {
        &self.table_prefix
    }

    /// A pooled connection; with `check`, one that answers a ping (dead ones are discarded).
    fn conn(&self, check: bool) -> Result<PooledConn, BackendError> {
        let during = format!("connecting to {}", self.endpoint);
        for _ in 0..=self.max_reconnects {
            let mut conn = self
                .pool
                .try_get_conn(POOL_WAIT)
                .map_err(|e| db_error(&e, &during))?;
            if !check || conn.as_mut().ping().is_ok() {
                return Ok(conn);
            }
            discard(&mut conn);
        }
        Err(error(
            BackendErrorKind::Unavailable,
            format!(
                "no working connection to the MySQL server at {}",
                self.endpoint
            ),
        ))
    }

    /// Runs a read outside a transaction, again on a checked connection if the connection was
    /// lost (a read is safe to repeat).
    fn read<T>(
        &self,
        during: &str,
        mut f: impl FnMut(&mut PooledConn, &Sql) -> ::mysql::Result<T>,
    ) -> Result<T, BackendError> {
        let mut check = false;
        let mut last = None;
        for _ in 0..=self.max_reconnects {
            let mut conn = self.conn(check)?;
            match f(&mut conn, &self.sql) {
                Ok(v) => return Ok(v),
                Err(e) if classify(&e) == Class::Connection => {
                    discard(&mut conn);
                    last = Some(db_error(&e, during));
                    check = true;
                }
                Err(e) => return Err(db_error(&e, during)),
            }
        }
        Err(last.expect("the loop ran at least once"))
    }

    /// Creates the tables if needed and checks the schema version, under a named lock so that
    /// processes opening a new store at once do not race.
    fn ensure_schema(&self) -> Result<(), BackendError> {
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
        let result = self.create_or_check(&mut conn);
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
            return check_version(parse_version(&version)?);
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

    /// One attempt of a transaction. `Ok(None)`: committed. `Ok(Some(..))`: rolled back, to be
    /// run again (deadlock, or a connection lost before COMMIT).
    fn attempt(
        &self,
        step: &mut dyn FnMut(&mut dyn Transaction) -> Result<()>,
        check: bool,
    ) -> Result<Option<(Class, BackendError)>> {
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
                    Class::Fatal => Err(db_error(&e, during).into()),
                    class => {
                        if class == Class::Connection {
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
        check_version(parse_version(&version)?)?;

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
            if class == Class::Connection {
                discard(&mut tx.conn);
            }
            return Ok(Some((class, error(kind, message))));
        }
        result?; // dropping `tx` rolls back
        tx.open = false;
        match tx.conn.query_drop("COMMIT") {
            Ok(()) => Ok(None),
            // The server answered: nothing was committed.
            Err(e) if classify(&e) == Class::Retry => {
                tx.open = true;
                Ok(Some((Class::Retry, db_error(&e, "committing"))))
            }
            // An error reply about the statement: nothing was committed. (One about the
            // connection, like 1927 "connection killed", falls through to "unknown".)
            Err(e @ ::mysql::Error::MySqlError(_)) if classify(&e) == Class::Fatal => {
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

/// A `GET_LOCK` held on its own pooled connection ([`Backend::lock`]).
struct MysqlLock {
    conn: PooledConn,
    key: String,
}

impl HeldLock for MysqlLock {}

impl Drop for MysqlLock {
    fn drop(&mut self) {
        if self
            .conn
            .exec_drop("SELECT RELEASE_LOCK(?)", (&self.key,))
            .is_err()
        {
            // The server releases it with the connection.
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
    aborted: Option<(Class, BackendErrorKind, String)>,
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
            if class != Class::Fatal {
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
        let digest = Sha256::new()
            .chain_update(self.database.as_bytes())
            .chain_update([0])
            .chain_update(self.table_prefix.as_bytes())
            .chain_update([0])
            .chain_update(name.as_bytes())
            .finalize();
        let hex: String = digest[..20].iter().map(|b| format!("{b:02x}")).collect();
        let key = format!("tokenvault:{hex}");
        let during = "taking a named lock";
        let mut check = false;
        for _ in 0..=self.max_reconnects {
            let mut conn = self.conn(check)?;
            match conn
                .exec_first::<Value, _, _>("SELECT GET_LOCK(?, ?)", (&key, timeout.as_secs_f64()))
            {
                Ok(got) => {
                    return match int_value(got) {
                        Some(1) => Ok(Box::new(MysqlLock { conn, key })),
                        Some(0) => Err(error(
                            BackendErrorKind::Busy,
                            format!("the lock was held past the timeout ({timeout:?})"),
                        )),
                        _ => Err(error(BackendErrorKind::Other, "GET_LOCK failed")),
                    };
                }
                // Nothing is held by a connection that broke: try another.
                Err(e) if classify(&e) == Class::Connection => {
                    discard(&mut conn);
                    check = true;
                }
                Err(e) => return Err(db_error(&e, during)),
            }
        }
        Err(error(
            BackendErrorKind::Unavailable,
            format!(
                "no working connection to the MySQL server at {}",
                self.endpoint
            ),
        ))
    }

    fn transact(&self, step: &mut dyn FnMut(&mut dyn Transaction) -> Result<()>) -> Result<()> {
        let mut busy = 0;
        let mut reconnects = 0;
        let mut check = false;
        loop {
            let Some((class, failure)) = self.attempt(step, check)? else {
                return Ok(());
            };
            match class {
                Class::Retry => {
                    busy += 1;
                    if busy >= MAX_ATTEMPTS {
                        return Err(error(
                            BackendErrorKind::Busy,
                            format!("{failure}; gave up after {MAX_ATTEMPTS} attempts"),
                        )
                        .into());
                    }
                    std::thread::sleep(backoff(busy));
                }
                Class::Connection => {
                    reconnects += 1;
                    if reconnects > self.max_reconnects {
                        return Err(failure.into());
                    }
                    check = true;
                }
                Class::Fatal => return Err(failure.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(uri: &str) -> BackendError {
        match client_config(uri, None, true) {
            Ok(_) => panic!("accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn tls_off_only_for_loopback() {
        // The crate's one loopback rule (crate::loopback): an IPv4-mapped loopback address is
        // loopback too, as it is for PostgreSQL's sslmode=disable.
        for host in [
            "127.0.0.1",
            "127.8.9.10",
            "[::1]",
            "localhost",
            "LOCALHOST",
            "[::ffff:127.0.0.1]",
        ] {
            let uri = format!("mysql://u:secret@{host}:3306/db?ssl_mode=disabled");
            let config = client_config(&uri, None, true).unwrap_or_else(|e| panic!("{host}: {e}"));
            assert!(config.opts.get_ssl_opts().is_none(), "{host}");
        }
        for host in [
            "10.0.0.1",
            "db.example.com",
            "[2001:db8::1]",
            "128.0.0.1",
            "localhost.example.com",
            "127.0.0.1.example.com",
        ] {
            let e = refusal(&format!("mysql://u:secret@{host}/db?ssl_mode=disabled"));
            assert_eq!(e.kind(), BackendErrorKind::NotSupported, "{host}");
            assert!(e.to_string().contains("without TLS"), "{host}: {e}");
            assert!(!e.to_string().contains("secret"));
        }
    }

    #[test]
    fn tls_is_on_by_default_and_verifies() {
        let config = client_config("mysql://u:p@db.example.com/db", None, true).unwrap();
        let ssl = config.opts.get_ssl_opts().expect("TLS on");
        assert!(!ssl.skip_domain_validation() && !ssl.accept_invalid_certs());
        let config = client_config(
            "mysql://u:p@db.example.com/db?ssl_mode=VERIFY_CA",
            None,
            true,
        )
        .unwrap();
        assert!(config.opts.get_ssl_opts().unwrap().skip_domain_validation());
        let config = client_config("mysql://u:p@127.0.0.1/db", None, true).unwrap();
        assert!(
            config.opts.get_ssl_opts().is_some(),
            "loopback too, unless disabled"
        );
    }

    #[test]
    fn parameters_that_would_bypass_the_rules_are_refused() {
        for query in [
            "ssl_mode=disabled&host=db.example.com",
            "port=1",
            "user=root",
            "password=x",
            "db_name=other",
            "danger_accept_invalid_certs=true",
            "danger_skip_domain_validation=true",
            "secure_auth=false",
        ] {
            let e = refusal(&format!("mysql://u:p@127.0.0.1/db?{query}"));
            assert_eq!(e.kind(), BackendErrorKind::NotSupported, "{query}: {e}");
        }
        let e = refusal("mysql://u:p@db.example.com/db?socket=/run/mysqld.sock");
        assert_eq!(e.kind(), BackendErrorKind::NotSupported);
        let e = refusal("mysql://u:p@127.0.0.1/db?ssl_mode=disabled&root_cert_path=/ca.pem");
        assert_eq!(e.kind(), BackendErrorKind::Other);
    }

    #[test]
    fn identifiers_are_strict() {
        for uri in [
            "mysql://u:p@127.0.0.1/db%60x",
            "mysql://u:p@127.0.0.1/a-b",
            "mysql://u:p@127.0.0.1/",
            "mysql://u:p@127.0.0.1/db/extra",
            "mysql://u:p@127.0.0.1/db?table_prefix=a%60b",
            "mysql://u:p@127.0.0.1/db?table_prefix=x;DROP",
            "mysql://u:p@127.0.0.1/db?ssl_mode=disabled&ssl_mode=disabled",
            "mysql://u:p@127.0.0.1/db?ssl_mode=required",
            "mysql://u:p@127.0.0.1/db?pool_min=5&pool_max=2",
            "mysql://u:p@127.0.0.1/db?no_such_option=1",
            "postgres://u:p@127.0.0.1/db",
        ] {
            let e = refusal(uri);
            assert_eq!(e.kind(), BackendErrorKind::Other, "{uri}: {e}");
        }
        let long = "d".repeat(65);
        assert_eq!(
            refusal(&format!("mysql://u:p@127.0.0.1/{long}")).kind(),
            BackendErrorKind::Other
        );
        let config =
            client_config("mysql://u:p@127.0.0.1/My_db1?table_prefix=", None, true).unwrap();
        assert_eq!(
            (config.database.as_str(), config.table_prefix.as_str()),
            ("My_db1", "")
        );
    }

    #[test]
    fn pool_and_defaults() {
        let config = client_config("mysql://u:p@127.0.0.1/db?pool_size=3", None, true).unwrap();
        assert_eq!(config.opts.get_pool_opts().constraints().max(), 3);
        assert!(
            client_config(
                "mysql://u:p@127.0.0.1/db?pool_size=3&pool_max=3",
                None,
                true
            )
            .is_err()
        );
        let config = client_config("mysql://u:p@127.0.0.1/db?pool_max=3", None, true).unwrap();
        let pool = config.opts.get_pool_opts();
        assert_eq!((pool.constraints().min(), pool.constraints().max()), (1, 3));
        assert!(!pool.reset_connection() && !pool.check_health());
        assert!(!config.opts.get_prefer_socket());
        assert_eq!(config.opts.get_tcp_connect_timeout(), Some(CONNECT_TIMEOUT));
        assert_eq!(config.table_prefix, DEFAULT_TABLE_PREFIX);
        let e = match client_config("mysql://u:p@127.0.0.1/db?pool_max=3", None, false) {
            Ok(_) => panic!("pool sizes are for stores"),
            Err(e) => e,
        };
        assert_eq!(e.kind(), BackendErrorKind::Other);
    }

    #[test]
    fn messages_hold_no_values() {
        let e = ::mysql::Error::MySqlError(::mysql::MySqlError {
            state: "23000".into(),
            message: "Duplicate entry 'SECRETVALUE' for key 'user_name_tag'".into(),
            code: 1062,
        });
        let (kind, message) = describe(&e, "writing a record");
        assert_eq!(kind, BackendErrorKind::Conflict);
        assert!(!message.contains("SECRETVALUE"), "{message}");
        assert_eq!(classify(&e), Class::Fatal);
        let e = ::mysql::Error::MySqlError(::mysql::MySqlError {
            state: "40001".into(),
            message: "Deadlock found when trying to get lock".into(),
            code: 1213,
        });
        assert_eq!(classify(&e), Class::Retry);
    }

    #[test]
    fn backoff_is_bounded_and_grows() {
        for attempt in 1..10 {
            let d = backoff(attempt);
            assert!(
                d >= Duration::from_millis(10) && d <= Duration::from_millis(480),
                "{d:?}"
            );
        }
    }
}
