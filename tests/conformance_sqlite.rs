//! The conformance suite on the SQLite backend.
#![cfg(feature = "sqlite")]

mod common;

use tokenvault::tokenvault_conformance;

tokenvault_conformance!(common::temp_sqlite);
