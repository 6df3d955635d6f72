//! PostgreSQL errors: what a failed statement means for its transaction ([`Failure`], by
//! SQLSTATE), and the portable kinds and value-free messages of [`BackendError`]s.

use std::error::Error as StdError;

use postgres::error::SqlState;

use super::retry::Failure;
use super::{BackendError, BackendErrorKind, error};

/// What a failed statement means for its transaction: [`Failure::Retry`] for a serialization
/// failure or deadlock (40001, 40P01), [`Failure::Lost`] for a connection that is gone or a
/// server shutting down.
pub(super) fn failure_of(e: &postgres::Error) -> Failure {
    if let Some(code) = e.code() {
        if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
        {
            return Failure::Retry;
        }
        if code.code().starts_with("08")
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::IDLE_SESSION_TIMEOUT
        {
            return Failure::Lost;
        }
        return Failure::Other;
    }
    // No SQLSTATE: closed, or an I/O error (reset, EOF, timeout) under the connection.
    if e.is_closed() || e.source().is_some_and(|s| s.is::<std::io::Error>()) {
        Failure::Lost
    } else {
        Failure::Other
    }
}

/// Maps a PostgreSQL error onto the portable kinds, with a message free of values.
pub(super) fn pg_error(e: &postgres::Error) -> BackendError {
    let Some(db) = e.as_db_error() else {
        return match failure_of(e) {
            Failure::Lost => error(
                BackendErrorKind::Unavailable,
                format!("PostgreSQL connection lost: {e}"),
            ),
            _ => error(
                BackendErrorKind::Other,
                format!("PostgreSQL client error: {e}"),
            ),
        };
    };
    let code = db.code();
    let class = &code.code()[..2];
    let kind = match class {
        _ if *code == SqlState::UNIQUE_VIOLATION => BackendErrorKind::Conflict,
        _ if *code == SqlState::LOCK_NOT_AVAILABLE || *code == SqlState::QUERY_CANCELED => {
            BackendErrorKind::Busy
        }
        _ if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            BackendErrorKind::Busy
        }
        _ if *code == SqlState::DATA_CORRUPTED || *code == SqlState::INDEX_CORRUPTED => {
            BackendErrorKind::Corrupt
        }
        _ if failure_of(e) == Failure::Lost => BackendErrorKind::Unavailable,
        "53" => BackendErrorKind::Io, // disk full, out of memory, too many connections
        "58" => BackendErrorKind::Io, // system error (I/O)
        "42" if *code == SqlState::INSUFFICIENT_PRIVILEGE => BackendErrorKind::Io,
        _ => BackendErrorKind::Other,
    };
    let message = match class {
        // Integrity and data errors may quote values in their message: name the constraint.
        "23" => format!(
            "PostgreSQL {} ({}){}",
            code.code(),
            if *code == SqlState::UNIQUE_VIOLATION {
                "unique constraint violated"
            } else {
                "integrity constraint violated"
            },
            db.constraint()
                .map(|c| format!(": constraint {c}"))
                .unwrap_or_default()
        ),
        "22" => format!("PostgreSQL {} (data exception)", code.code()),
        _ => format!("PostgreSQL {}: {}", code.code(), db.message()),
    };
    error(kind, message)
}

/// A backend error's own message, without the "storage backend error (kind)" prefix.
pub(super) fn message_of(e: &BackendError) -> String {
    e.source()
        .map_or_else(|| e.to_string(), ToString::to_string)
}

/// An error while connecting: the server cannot be reached (Unavailable) unless it answered
/// and refused us (authentication, unknown database) or TLS failed (certificate not trusted or
/// not for this host: configuration, not a passing outage) — both Other.
pub(super) fn connect_error(e: &postgres::Error) -> BackendError {
    // tokio-rustls reports rustls' error inside an io::Error, whose source() skips it.
    let tls_failed = std::iter::successors(e.source(), |s| (*s).source()).any(|s| {
        s.is::<rustls::Error>()
            || s.downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .is_some_and(|inner| inner.is::<rustls::Error>())
    });
    let kind = match e.code().map(|c| &c.code()[..2]) {
        _ if tls_failed => BackendErrorKind::Other,
        Some("28" | "3D") => BackendErrorKind::Other,
        Some("53") => BackendErrorKind::Unavailable, // too many connections
        Some(_) if failure_of(e) == Failure::Lost => BackendErrorKind::Unavailable,
        Some(_) => BackendErrorKind::Other,
        None => BackendErrorKind::Unavailable,
    };
    let detail = match e.as_db_error() {
        Some(db) => format!("PostgreSQL {}: {}", db.code().code(), db.message()),
        // The client's message and its causes (e.g. "error performing TLS handshake: invalid
        // peer certificate: UnknownIssuer"): no values in them.
        None => std::iter::successors(Some(e as &dyn StdError), |s| (*s).source())
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(": "),
    };
    error(kind, format!("cannot connect to PostgreSQL: {detail}"))
}
