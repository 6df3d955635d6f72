//! What the two SQL server backends (`postgres/`, `mysql/`) share: the rules that must not
//! drift apart between them. Built when either is enabled.
//!
//! - [`uri`]: percent-decoding (exactly two hex digits after `%`) and identifier rules;
//! - [`tls`]: the plaintext rule (TLS unless turned off, off only for a loopback host) and the
//!   rustls crypto provider (ring);
//! - [`row`]: the tag column names and the decoding of a record's tag columns, and the stored
//!   schema version (ASCII digits) with its verdict;
//! - [`retry`]: what a failed statement means for its transaction ([`retry::Failure`]), the
//!   number of attempts, and jittered exponential backoff.
//!
//! Deliberately not shared, because the two differ in substance, not in spelling:
//! - query-parameter parsing: PostgreSQL's parameters go on to the `postgres` crate's own
//!   parser as text; MySQL's are decoded by `url` and checked one by one against the `mysql`
//!   crate's options;
//! - which CA roots TLS trusts: the `mysql` crate builds its rustls configuration itself
//!   (Mozilla's roots plus `root_cert_path`); the PostgreSQL backend builds its own (the OS's
//!   roots, or `sslrootcert` instead of them);
//! - error mapping (SQLSTATEs against MySQL error numbers), pools (our own against the `mysql`
//!   crate's), transactions and cross-process locks (advisory locks against `GET_LOCK`).

pub(crate) mod retry;
pub(crate) mod row;
pub(crate) mod tls;
pub(crate) mod uri;

use crate::store::{BackendError, BackendErrorKind};

/// A backend error of `kind` with `message` as its source.
pub(crate) fn error(kind: BackendErrorKind, message: impl Into<String>) -> BackendError {
    BackendError::new(kind, message.into())
}
