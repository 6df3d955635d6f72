//! The conformance suite on the MySQL/MariaDB backend, against the server named by
//! `TOKENVAULT_TEST_MYSQL` (`.ci/services/mariadb.sh start` prints it).
//!
//! Every case gets a store of its own: a fresh database `t_<16 hex>` created through an admin
//! connection (the same user, who may create `t_…` databases) and dropped when the backend is
//! dropped.
//!
//! Without `TOKENVAULT_TEST_MYSQL`: under `TOKENVAULT_REQUIRE_SERVICES=1` (CI) every case
//! fails; otherwise every case returns at once and writes `SKIPPED … did not run` to the
//! real stderr (not captured by the test harness), so a skip is never silent. That works
//! because `tokenvault_conformance!` evaluates its argument inside each generated test: the
//! argument is a block that `return`s from the test before any store is made.
//!
//! The model test makes one store per case (256 by default): `TOKENVAULT_MODEL_CASES` lowers
//! it (see tests/common/model.rs).

#![cfg(feature = "mysql")]

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use mysql::prelude::Queryable;
use tokenvault::BackendError;
use tokenvault::backend::{
    Backend, HeldLock, LookupField, MysqlBackend, StoredRecord, Tag, Transaction,
};

const URI_VAR: &str = "TOKENVAULT_TEST_MYSQL";

/// The server URI, or `None` when this case must be skipped (reason already printed).
/// Panics when the service is required.
fn server_uri(case: &str) -> Option<String> {
    match std::env::var(URI_VAR) {
        Ok(uri) if !uri.is_empty() => Some(uri),
        _ if std::env::var("TOKENVAULT_REQUIRE_SERVICES").as_deref() == Ok("1") => panic!(
            "{URI_VAR} is not set but TOKENVAULT_REQUIRE_SERVICES=1: start the server \
             (bash .ci/services/mariadb.sh start) and export what it prints"
        ),
        _ => {
            // Straight to fd 2: libtest captures print!/eprint! of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED conformance_mysql::{case}: {URI_VAR} is not set, this case did not run \
                 (bash .ci/services/mariadb.sh start; eval the exports)"
            );
            None
        }
    }
}

/// `uri` with its path replaced by `/database`.
fn with_database(uri: &str, database: &str) -> String {
    let mut url = url::Url::parse(uri).expect("TOKENVAULT_TEST_MYSQL is a URL");
    url.set_path(&format!("/{database}"));
    url.into()
}

/// A plain client connection for administration (CREATE/DROP DATABASE), with the URI's
/// credentials: tokenvault's own parameters removed, TLS as the URI says.
fn admin_conn(uri: &str) -> mysql::Conn {
    let mut url = url::Url::parse(uri).expect("TOKENVAULT_TEST_MYSQL is a URL");
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

fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A backend in a database of its own, dropped with it.
struct InFreshDatabase {
    backend: Option<MysqlBackend>,
    admin_uri: String,
    database: String,
}

impl InFreshDatabase {
    fn new(uri: &str) -> Self {
        let database = format!("t_{}", random_hex());
        admin_conn(uri)
            .query_drop(format!("CREATE DATABASE `{database}`"))
            .expect("CREATE DATABASE");
        let backend = MysqlBackend::connect(&with_database(uri, &database))
            .unwrap_or_else(|e| panic!("connect to the test server: {e}"));
        Self {
            backend: Some(backend),
            admin_uri: uri.to_owned(),
            database,
        }
    }

    fn backend(&self) -> &MysqlBackend {
        self.backend.as_ref().expect("present until drop")
    }
}

impl Drop for InFreshDatabase {
    fn drop(&mut self) {
        drop(self.backend.take()); // closes the pool's connections first
        let dropped = std::panic::catch_unwind(|| {
            admin_conn(&self.admin_uri).query_drop(format!("DROP DATABASE `{}`", self.database))
        });
        if !matches!(dropped, Ok(Ok(()))) {
            let _ = writeln!(
                std::io::stderr(),
                "warning: could not drop test database {}",
                self.database
            );
        }
    }
}

impl Backend for InFreshDatabase {
    fn read_header(&self) -> Result<Option<Vec<u8>>, BackendError> {
        self.backend().read_header()
    }
    fn get(&self, id: &str) -> Result<Option<StoredRecord>, BackendError> {
        self.backend().get(id)
    }
    fn find_by_tag(
        &self,
        field: LookupField,
        tag: &Tag,
    ) -> Result<Option<StoredRecord>, BackendError> {
        self.backend().find_by_tag(field, tag)
    }
    fn list(&self) -> Result<Vec<StoredRecord>, BackendError> {
        self.backend().list()
    }
    fn transact(
        &self,
        step: &mut dyn FnMut(&mut dyn Transaction) -> tokenvault::Result<()>,
    ) -> tokenvault::Result<()> {
        self.backend().transact(step)
    }
    fn lock(&self, name: &str, timeout: Duration) -> Result<Box<dyn HeldLock>, BackendError> {
        self.backend().lock(name, timeout)
    }
}

/// The conformance suite's `make`, for a case that found a server URI.
fn fresh_store_maker(uri: String) -> impl Fn() -> Box<dyn Backend> {
    move || Box::new(InFreshDatabase::new(&uri)) as Box<dyn Backend>
}

/// Expands to the `make` closure, or returns from the calling test when it must be skipped.
macro_rules! mysql_make_or_skip {
    () => {{
        let case = std::thread::current()
            .name()
            .unwrap_or("?")
            .rsplit("::")
            .next()
            .unwrap_or("?")
            .to_owned();
        match server_uri(&case) {
            Some(uri) => fresh_store_maker(uri),
            None => return,
        }
    }};
}

tokenvault_conformance!(mysql_make_or_skip!());
