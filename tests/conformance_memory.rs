//! The conformance suite on the in-memory backend.

mod common;

use tokenvault::tokenvault_conformance;

use tokenvault::backend::{Backend, MemoryBackend};

tokenvault_conformance!(|| Box::new(MemoryBackend::new()) as Box<dyn Backend>);
