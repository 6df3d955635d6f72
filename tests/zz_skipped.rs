//! Not a check: the line that ends a `cargo test` run, saying how many tests did nothing for
//! want of a service (cargo runs this package's test binaries in name order, this one last).
//! Under `TOKENVAULT_REQUIRE_SERVICES=1` (CI) those tests fail instead, and this prints nothing.

#[allow(dead_code)] // record() is for the tests that skip
#[path = "common/skipped.rs"]
mod skipped;

#[test]
fn report_tests_skipped_for_want_of_a_service() {
    skipped::print_summary();
}
