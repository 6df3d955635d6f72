//! The conformance suite on the SQLite backend.
#![cfg(feature = "sqlite")]

mod common;

tokenvault_conformance!(common::temp_sqlite);
