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

use tokenvault::tokenvault_conformance;

use common::Within;
use common::servers::{POSTGRES_VAR, PgSchema, postgres_var};
use tokenvault::backend::Backend;

/// The server's URI; `None` (after a note) when there is none and none is required.
fn server() -> Option<String> {
    postgres_var(POSTGRES_VAR, "PostgreSQL conformance cases")
}

/// The schema of one case's store; dropped after its backend, failing the case if it cannot be.
struct CheckedSchema(PgSchema);

impl Drop for CheckedSchema {
    fn drop(&mut self) {
        self.0.drop_schema().expect("drop the test schema");
    }
}

/// A fresh store on the server: a new schema.
fn make() -> Box<dyn Backend> {
    let schema = PgSchema::new(&server().expect("checked before the case runs"));
    Box::new(Within {
        backend: schema.backend(""),
        place: CheckedSchema(schema),
    })
}

// Each case returns before it starts when there is no server (and none is required).
tokenvault_conformance!({
    if server().is_none() {
        return;
    }
    make
});
