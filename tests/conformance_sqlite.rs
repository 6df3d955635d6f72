//! The conformance suite on the SQLite backend.

mod common;

tokenvault_conformance!(common::temp_sqlite);
