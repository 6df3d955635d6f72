//! The conformance suite on the file backend.

mod common;

tokenvault_conformance!(common::temp_file);
