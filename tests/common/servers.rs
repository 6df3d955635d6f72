//! Fresh, isolated stores on the database servers `.ci/services/postgres.sh start` and
//! `.ci/services/mariadb.sh start` run (`TOKENVAULT_TEST_POSTGRES`, `TOKENVAULT_TEST_MYSQL`,
//! and the variables beside them).
//!
//! Without a variable a test needs, the test fails under `TOKENVAULT_REQUIRE_SERVICES=1` (as
//! in CI) and otherwise returns at once after a `SKIPPED …` note, written straight to the
//! stderr handle: libtest captures only the print macros.

use std::io::{Read, Write};
#[cfg(feature = "postgres")]
use std::sync::Once;
#[cfg(feature = "mysql")]
use std::time::Duration;

#[cfg(feature = "mysql")]
use mysql::prelude::Queryable;
#[cfg(feature = "mysql")]
use tokenvault::backend::MysqlBackend;
#[cfg(feature = "postgres")]
use tokenvault::backend::PostgresBackend;

#[cfg(feature = "postgres")]
pub const POSTGRES_VAR: &str = "TOKENVAULT_TEST_POSTGRES";
#[cfg(feature = "mysql")]
pub const MYSQL_VAR: &str = "TOKENVAULT_TEST_MYSQL";

/// `TOKENVAULT_REQUIRE_SERVICES=1`: a missing server fails the test instead of skipping it.
pub fn required() -> bool {
    std::env::var("TOKENVAULT_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

fn set(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

#[cfg(feature = "postgres")]
/// The value of the PostgreSQL variable `var`; `None` when unset and not required, after a
/// note (once per test binary) that `what` (e.g. "PostgreSQL tests") do nothing.
pub fn postgres_var(var: &str, what: &str) -> Option<String> {
    if let Some(v) = set(var) {
        return Some(v);
    }
    if required() {
        panic!(
            "TOKENVAULT_REQUIRE_SERVICES=1 but {var} is not set: start the server with \
             `eval \"$(bash .ci/services/postgres.sh start)\"`"
        );
    }
    super::skipped::record(&current_test(), "PostgreSQL");
    static NOTE: Once = Once::new();
    NOTE.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {what} do nothing: {var} is not set \
             (`eval \"$(bash .ci/services/postgres.sh start)\"` starts a server)"
        );
    });
    None
}

#[cfg(feature = "mysql")]
/// The value of the MySQL variable `var`; `None` when unset and not required, after a note
/// that the `noun` ("test" or "case") `test` (e.g. `mysql::named_locks`) did not run.
pub fn mysql_var(var: &str, test: &str, noun: &str) -> Option<String> {
    if let Some(v) = set(var) {
        return Some(v);
    }
    if required() {
        panic!(
            "{var} is not set but TOKENVAULT_REQUIRE_SERVICES=1: start the server \
             (bash .ci/services/mariadb.sh start) and export what it prints"
        );
    }
    super::skipped::record(test, "MariaDB");
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {var} is not set, this {noun} did not run \
         (bash .ci/services/mariadb.sh start; eval the exports)"
    );
    None
}

/// The name of the calling test (the current thread's, as libtest names it, last segment).
pub fn current_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("?")
        .rsplit("::")
        .next()
        .unwrap_or("?")
        .to_owned()
}

/// 16 random hex digits, for schema and database names.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: a schema per store
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "postgres")]
/// `uri` with `params` appended.
pub fn with_params(uri: &str, params: &str) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{params}")
}

#[cfg(feature = "postgres")]
/// A schema `t_<hex>` of its own on the server, dropped at the end (errors ignored; see
/// [`PgSchema::drop_schema`] to check them).
pub struct PgSchema {
    pub uri: String,
    pub name: String,
    dropped: bool,
}

#[cfg(feature = "postgres")]
impl PgSchema {
    pub fn new(uri: &str) -> Self {
        Self {
            uri: uri.to_owned(),
            name: format!("t_{}", random_hex()),
            dropped: false,
        }
    }

    /// The store URI (this schema, `extra` parameters).
    pub fn store_uri(&self, extra: &str) -> String {
        let uri = with_params(&self.uri, &format!("schema={}", self.name));
        if extra.is_empty() {
            uri
        } else {
            with_params(&uri, extra)
        }
    }

    pub fn backend(&self, extra: &str) -> PostgresBackend {
        PostgresBackend::connect(&self.store_uri(extra))
            .unwrap_or_else(|e| panic!("connect to {POSTGRES_VAR}: {e}"))
    }

    /// Drops the schema now; dropping the value then does nothing.
    pub fn drop_schema(&mut self) -> Result<(), postgres::Error> {
        let mut admin = postgres::Client::connect(&self.uri, postgres::NoTls)?;
        admin.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name))?;
        self.dropped = true;
        Ok(())
    }
}

#[cfg(feature = "postgres")]
impl Drop for PgSchema {
    fn drop(&mut self) {
        if !self.dropped {
            let _ = self.drop_schema();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// MySQL/MariaDB: a database per store
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "mysql")]
pub fn parse(uri: &str) -> url::Url {
    url::Url::parse(uri).expect("the test URI is a URL")
}

#[cfg(feature = "mysql")]
/// `uri` with its path replaced by `/database`.
pub fn with_database(uri: &str, database: &str) -> String {
    let mut url = parse(uri);
    url.set_path(&format!("/{database}"));
    url.into()
}

#[cfg(feature = "mysql")]
/// A plain client connection (the `mysql` crate, not the backend) with the URI's credentials
/// and TLS choice, tokenvault's own parameters removed: for administration (CREATE/DROP
/// DATABASE) and for the bare-SQL side of checks.
pub fn admin_conn(uri: &str) -> mysql::Conn {
    let mut url = parse(uri);
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let tls = !pairs
        .iter()
        .any(|(k, v)| k == "ssl_mode" && v.eq_ignore_ascii_case("disabled"));
    url.set_query(None);
    for (k, v) in &pairs {
        if ![
            "ssl_mode",
            "table_prefix",
            "pool_min",
            "pool_max",
            "pool_size",
        ]
        .contains(&k.as_str())
        {
            url.query_pairs_mut().append_pair(k, v);
        }
    }
    let opts = mysql::Opts::from_url(url.as_str()).expect("admin URI");
    let ssl = tls.then(|| opts.get_ssl_opts().cloned().unwrap_or_default());
    let opts = mysql::OptsBuilder::from_opts(opts)
        .prefer_socket(false)
        .ssl_opts(ssl)
        .tcp_connect_timeout(Some(Duration::from_secs(10)));
    mysql::Conn::new(opts).expect("admin connection to the test server")
}

#[cfg(feature = "mysql")]
/// A fresh database `t_<hex>` (created through an admin connection as the URI's user, who may
/// create `t_…` databases), dropped with this value.
pub struct MysqlDatabase {
    pub name: String,
    admin_uri: String,
    /// The server URI with this database.
    pub uri: String,
}

#[cfg(feature = "mysql")]
impl MysqlDatabase {
    pub fn fresh(uri: &str) -> Self {
        let name = format!("t_{}", random_hex());
        admin_conn(uri)
            .query_drop(format!("CREATE DATABASE `{name}`"))
            .expect("CREATE DATABASE");
        Self {
            uri: with_database(uri, &name),
            name,
            admin_uri: uri.to_owned(),
        }
    }

    pub fn backend(&self) -> MysqlBackend {
        MysqlBackend::connect(&self.uri)
            .unwrap_or_else(|e| panic!("connect to the test server: {e}"))
    }

    pub fn admin(&self) -> mysql::Conn {
        admin_conn(&self.uri)
    }
}

#[cfg(feature = "mysql")]
impl Drop for MysqlDatabase {
    fn drop(&mut self) {
        let dropped = std::panic::catch_unwind(|| {
            admin_conn(&self.admin_uri).query_drop(format!("DROP DATABASE `{}`", self.name))
        });
        if !matches!(dropped, Ok(Ok(()))) {
            let _ = writeln!(
                std::io::stderr(),
                "warning: could not drop test database {}",
                self.name
            );
        }
    }
}
