//! Shared test harness: child processes, database servers, the skip tally, temporary
//! backends. The conformance suite itself is the library's `tokenvault::testing` (feature
//! `testing`), so that authors of other backends run the same one.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod child;
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub mod servers;
pub mod skipped;

use tokenvault::backend::Backend;
#[allow(unused_imports)] // each test binary uses a different part
pub use tokenvault::testing::{Within, raw_key};

/// A fresh SQLite backend in a new temporary directory.
#[cfg(feature = "sqlite")]
pub fn temp_sqlite() -> Box<dyn Backend> {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = tokenvault::backend::SqliteBackend::open(dir.path().join("tokens.db"))
        .expect("open sqlite");
    Box::new(Within {
        backend,
        place: dir,
    })
}

/// A fresh file backend in a new temporary directory.
pub fn temp_file() -> Box<dyn Backend> {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = tokenvault::backend::FileBackend::open(dir.path().join("tokens.tv"))
        .expect("open file store");
    Box::new(Within {
        backend,
        place: dir,
    })
}
