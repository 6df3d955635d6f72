//! The `postgres://` URI: tokenvault's own parameters taken out, the rest parsed by the
//! `postgres` crate, the TLS rule applied; and the [`Connector`] that makes connections from it.

use std::str::FromStr;
use std::time::Duration;

use postgres::config::{Host, SslMode};
use postgres::{Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::errors::connect_error;
use super::{BackendError, BackendErrorKind, Result, error, tls};
use crate::backend::sql::tls as sql_tls;
use crate::backend::sql::uri::{Identifier, PercentError, percent_decode};

const DEFAULT_POOL_SIZE: usize = 4;
const MAX_POOL_SIZE: usize = 64;
const DEFAULT_SCHEMA: &str = "public";
/// Connect timeout unless the URI sets `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a row lock (the writer lock) or the schema lock: then `Busy`.
const LOCK_TIMEOUT_SQL: &str = "SET lock_timeout = '10s'";

/// `[a-z_][a-z0-9_]{0,62}`: a PostgreSQL identifier that needs no case folding.
pub(super) const SCHEMA_NAME: Identifier = Identifier {
    min: 1,
    max: 63,
    upper_case: false,
    leading_digit: false,
};

/// How connections are made: the parsed URI and the TLS connector (None: plaintext, loopback).
#[derive(Clone)]
pub(super) struct Connector {
    config: Config,
    tls: Option<MakeRustlsConnect>,
}

impl Connector {
    /// A new connection, with the session's lock timeout set.
    pub(super) fn connect(&self) -> Result<Client, BackendError> {
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

/// A parsed URI.
pub(super) struct Settings {
    pub(super) connector: Connector,
    pub(super) pool_size: usize,
    pub(super) schema: String,
}

fn invalid(message: impl Into<String>) -> BackendError {
    error(BackendErrorKind::Other, message)
}

/// Parses a `postgres://` URI (see the module docs) and applies the TLS rule.
pub(super) fn parse_uri(uri: &str) -> Result<Settings, BackendError> {
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
                if !SCHEMA_NAME.accepts(value) {
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
            "sslrootcert" => {
                root_file = Some(percent_decode(value).map_err(|e| {
                    invalid(match e {
                        PercentError::BadEscape => "PostgreSQL URI: bad percent-encoding",
                        PercentError::NotUtf8 => "PostgreSQL URI: sslrootcert is not UTF-8",
                    })
                })?);
            }
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
        Some(tls::connector(root_file.as_deref())?)
    } else {
        sql_tls::allow_plaintext(loopback, || {
            "refusing sslmode=disable for a host that is not loopback (127.0.0.0/8, ::1, \
             localhost): tokens and passwords would cross the network in plaintext; use TLS \
             (sslmode=require, the default)"
                .to_owned()
        })?;
        config.ssl_mode(SslMode::Disable);
        None
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        for ok in ["public", "_", "t_0123abcd", &"a".repeat(63)] {
            assert!(SCHEMA_NAME.accepts(ok), "{ok}");
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
            assert!(!SCHEMA_NAME.accepts(bad), "{bad}");
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
