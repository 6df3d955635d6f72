//! The `mysql://` URI: parsed and checked (see the module docs, *URI*) into the `mysql` crate's
//! client options, with tokenvault's own settings taken out.

use std::collections::HashSet;
use std::time::Duration;

use ::mysql::consts::CapabilityFlags;
use ::mysql::{Opts, OptsBuilder, PoolConstraints, PoolOpts, UrlError};

use super::tls::{self, SslMode};
use super::{BackendError, BackendErrorKind, DEFAULT_TABLE_PREFIX, Result, error};
use crate::backend::sql::uri::{Identifier, PercentError, percent_decode};

const DEFAULT_POOL_MIN: usize = 1;
const DEFAULT_POOL_MAX: usize = 10;
const MAX_POOL: usize = 1000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Read and write timeout of every connection: longer than any lock wait.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Seconds a statement waits for a row lock (SQLite's busy timeout is 10 s too).
const LOCK_WAIT_TIMEOUT_SECS: u32 = 10;

/// A database or column name: 1 to 64 ASCII letters, digits or `_`, safe inside backticks on
/// every server.
pub(super) const NAME: Identifier = Identifier {
    min: 1,
    max: 64,
    upper_case: true,
    leading_digit: true,
};

/// A table prefix: at most 50 ASCII letters, digits or `_` (the table names stay within 64).
pub(super) const TABLE_PREFIX: Identifier = Identifier {
    min: 0,
    max: 50,
    upper_case: true,
    leading_digit: true,
};

/// A parsed URI: client options with the TLS policy applied, and tokenvault's own settings.
pub(super) struct ClientConfig {
    pub(super) opts: Opts,
    pub(super) database: String,
    pub(super) table_prefix: String,
    /// `host:port` (or the socket), for messages.
    pub(super) endpoint: String,
    pub(super) pool_max: usize,
}

pub(super) fn bad_uri(message: impl Into<String>) -> BackendError {
    error(BackendErrorKind::Other, message)
}

pub(super) fn refused(message: impl Into<String>) -> BackendError {
    error(BackendErrorKind::NotSupported, message)
}

pub(super) fn parse_bool(name: &str, value: &str) -> Result<bool, BackendError> {
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
pub(super) fn url_error(e: &UrlError) -> BackendError {
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
pub(super) fn client_config(
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
        Some(raw) => percent_decode(raw).map_err(|e| {
            bad_uri(match e {
                PercentError::BadEscape => "bad percent-encoding in the URI's database name",
                PercentError::NotUtf8 => "the URI's database name is not UTF-8",
            })
        })?,
        None => default_database
            .ok_or_else(|| bad_uri("the URI names no database (mysql://…/DATABASE)"))?
            .to_owned(),
    };
    if !NAME.accepts(&database) {
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
            "ssl_mode" => ssl_mode = SslMode::parse(&value)?,
            "table_prefix" | "pool_min" | "pool_max" | "pool_size" if !for_store => {
                return Err(bad_uri(format!(
                    "URI parameter {name} applies to a store, not here"
                )));
            }
            "table_prefix" => {
                if !TABLE_PREFIX.accepts(&value) {
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
    if ssl_mode == SslMode::Disabled {
        tls::check_plaintext(&host, loopback, has, || {
            parse_bool(
                "enable_cleartext_plugin",
                &passed_value(&passed, "enable_cleartext_plugin"),
            )
        })?;
    }
    if has("socket") && !loopback {
        return Err(refused(
            "socket= connects through a local Unix socket: the URI's host must be loopback",
        ));
    }

    // The rest goes to the `mysql` crate's own URL parser.
    let mut for_crate = url.clone();
    for_crate.set_query(None);
    if !passed.is_empty() {
        for_crate.query_pairs_mut().extend_pairs(&passed);
    }
    let parsed = Opts::from_url(for_crate.as_str()).map_err(|e| url_error(&e))?;

    let ssl = tls::ssl_opts(ssl_mode, &parsed);
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

/// The error `client_config` refuses `uri` with (the tests of this module and of `tls`).
#[cfg(test)]
pub(super) fn refusal(uri: &str) -> BackendError {
    match client_config(uri, None, true) {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
