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

use tokenvault::tokenvault_conformance;

use common::Within;
use common::servers::{MYSQL_VAR, MysqlDatabase, current_test, mysql_var};
use tokenvault::backend::Backend;

/// The conformance suite's `make`, for a case that found a server URI: a backend in a
/// database of its own, dropped with it.
fn fresh_store_maker(uri: String) -> impl Fn() -> Box<dyn Backend> {
    move || {
        let database = MysqlDatabase::fresh(&uri);
        Box::new(Within {
            backend: database.backend(),
            place: database,
        }) as Box<dyn Backend>
    }
}

/// Expands to the `make` closure, or returns from the calling test when it must be skipped.
macro_rules! mysql_make_or_skip {
    () => {{
        let case = format!("conformance_mysql::{}", current_test());
        match mysql_var(MYSQL_VAR, &case, "case") {
            Some(uri) => fresh_store_maker(uri),
            None => return,
        }
    }};
}

tokenvault_conformance!(mysql_make_or_skip!());
