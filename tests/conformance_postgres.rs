//! The conformance suite on the PostgreSQL backend, against the server named by
//! `TOKENVAULT_TEST_POSTGRES` (`.ci/services/postgres.sh start` prints it). Each case gets a
//! store of its own: a new schema `t_<random hex>` (the URI's `schema=`), dropped when the
//! backend is.
//!
//! Without `TOKENVAULT_TEST_POSTGRES`, every case returns at once after a note on stderr
//! (`SKIPPED …`, written past libtest's capture so it shows), unless
//! `TOKENVAULT_REQUIRE_SERVICES=1` (as in CI), where every case fails. The model test's case
//! count can be lowered with `TOKENVAULT_MODEL_CASES`.

#![cfg(feature = "postgres")]

mod common;

use std::io::{Read, Write};
use std::sync::Once;

use tokenvault::BackendError;
use tokenvault::backend::{Backend, LookupField, PostgresBackend, StoredRecord, Tag, Transaction};

const SERVER_VAR: &str = "TOKENVAULT_TEST_POSTGRES";

/// The server's URI; `None` (after a note) when there is none and none is required.
fn server() -> Option<String> {
    if let Ok(uri) = std::env::var(SERVER_VAR)
        && !uri.is_empty()
    {
        return Some(uri);
    }
    if std::env::var("TOKENVAULT_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
        panic!(
            "TOKENVAULT_REQUIRE_SERVICES=1 but {SERVER_VAR} is not set: start the server with \
             `eval \"$(bash .ci/services/postgres.sh start)\"`"
        );
    }
    static NOTE: Once = Once::new();
    NOTE.call_once(|| {
        // Straight to the stderr handle: libtest captures only the print macros.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: PostgreSQL conformance cases do nothing: {SERVER_VAR} is not set \
             (`eval \"$(bash .ci/services/postgres.sh start)\"` starts a server)"
        );
    });
    None
}

/// A PostgreSQL backend on a schema of its own, dropped with it.
struct InSchema {
    backend: Option<PostgresBackend>,
    uri: String,
    schema: String,
}

impl Drop for InSchema {
    fn drop(&mut self) {
        drop(self.backend.take()); // close the pool first
        let mut admin = postgres::Client::connect(&self.uri, postgres::NoTls)
            .expect("connect to drop the test schema");
        admin
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                self.schema
            ))
            .expect("drop the test schema");
    }
}

impl InSchema {
    fn backend(&self) -> &PostgresBackend {
        self.backend.as_ref().expect("present until dropped")
    }
}

impl Backend for InSchema {
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
}

fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh store on the server: a new schema.
fn make() -> Box<dyn Backend> {
    let uri = server().expect("checked before the case runs");
    let schema = format!("t_{}", random_hex());
    let sep = if uri.contains('?') { '&' } else { '?' };
    let backend = PostgresBackend::connect(&format!("{uri}{sep}schema={schema}"))
        .unwrap_or_else(|e| panic!("connect to {SERVER_VAR}: {e}"));
    Box::new(InSchema {
        backend: Some(backend),
        uri,
        schema,
    })
}

// Each case returns before it starts when there is no server (and none is required).
tokenvault_conformance!({
    if server().is_none() {
        return;
    }
    make
});
