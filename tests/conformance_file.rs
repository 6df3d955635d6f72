//! The conformance suite on the file backend.

mod common;

use tokenvault::tokenvault_conformance;

tokenvault_conformance!(common::temp_file);
