//! MySQL errors: what a failed statement means for its transaction ([`Failure`], by error
//! number), and the portable kinds and value-free messages of [`BackendError`]s.

use ::mysql::DriverError;

use super::config::url_error;
use super::pool::POOL_WAIT;
use super::{BackendError, BackendErrorKind, error};
use crate::backend::sql::retry::Failure;

const ER_DUP_ENTRY: u16 = 1062;
/// "Table … doesn't exist".
pub(super) const ER_NO_SUCH_TABLE: u16 = 1146;
const ER_DUP_ENTRY_WITH_KEY_NAME: u16 = 1586;
const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
const ER_LOCK_DEADLOCK: u16 = 1213;
const ER_CHECKREAD: u16 = 1020;
const ER_SERVER_SHUTDOWN: u16 = 1053;
const ER_CONNECTION_KILLED: u16 = 1927;
const ER_CLIENT_INTERACTION_TIMEOUT: u16 = 4031;

/// What to do about a failed statement: [`Failure::Retry`] for a deadlock, lock wait timeout or
/// "record changed" (roll back and run the whole step again), [`Failure::Lost`] for a
/// connection that is gone or a server restarting (discard it; before COMMIT, run the step
/// again on a fresh connection).
pub(super) fn classify(e: &::mysql::Error) -> Failure {
    match e {
        ::mysql::Error::MySqlError(e) => match e.code {
            ER_LOCK_DEADLOCK | ER_LOCK_WAIT_TIMEOUT | ER_CHECKREAD => Failure::Retry,
            ER_SERVER_SHUTDOWN | ER_CONNECTION_KILLED | ER_CLIENT_INTERACTION_TIMEOUT => {
                Failure::Lost
            }
            _ => Failure::Other,
        },
        ::mysql::Error::IoError(_) | ::mysql::Error::CodecError(_) => Failure::Lost,
        ::mysql::Error::DriverError(d) => match d {
            DriverError::Timeout | DriverError::TlsNotSupported => Failure::Other,
            DriverError::MismatchedStmtParams(..)
            | DriverError::Params(_)
            | DriverError::MixedParams
            | DriverError::UnknownAuthPlugin(_)
            | DriverError::OldMysqlPasswordDisabled
            | DriverError::CleartextPluginDisabled
            | DriverError::ReadOnlyTransNotSupported
            | DriverError::InvalidPoolConstraints => Failure::Other,
            _ => Failure::Lost,
        },
        _ => Failure::Other,
    }
}

/// Server error codes whose message carries no stored value, so it may be shown.
fn server_text_is_safe(code: u16) -> bool {
    matches!(
        code,
        1040 | 1044
            | 1045
            | 1049
            | 1053
            | 1129
            | 1130
            | 1142
            | 1143
            | 1146
            | 1205
            | 1213
            | 1227
            | 1370
            | 1927
            | 4031
    )
}

/// A TLS failure the client reports inside an I/O error (rustls errors reach the `mysql`
/// crate through its stream), with a hint for the usual causes.
fn tls_failure(io: &std::io::Error) -> Option<String> {
    let tls = io.get_ref()?.downcast_ref::<rustls::Error>()?;
    let hint = match tls {
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
            " (the certificate chains to neither Mozilla's roots nor root_cert_path)"
        }
        rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForName
            | rustls::CertificateError::NotValidForNameContext { .. },
        ) => " (the certificate does not name the URI's host; see ssl_mode)",
        _ => "",
    };
    Some(format!("{tls}{hint}"))
}

/// The portable kind and a message (never a stored value) for a client error; `during` says
/// what was being done ("connecting to …", "writing a record").
pub(super) fn describe(e: &::mysql::Error, during: &str) -> (BackendErrorKind, String) {
    use ::mysql::Error as E;
    use BackendErrorKind as K;
    let io = match e {
        E::IoError(io) => Some(io),
        E::CodecError(c) => {
            std::error::Error::source(c).and_then(|s| s.downcast_ref::<std::io::Error>())
        }
        _ => None,
    };
    if let Some(tls) = io.and_then(tls_failure) {
        return (
            K::Unavailable,
            format!("TLS with the MySQL server failed while {during}: {tls}"),
        );
    }
    match e {
        E::MySqlError(server) => {
            let code = server.code;
            let (kind, what) = match code {
                ER_DUP_ENTRY | ER_DUP_ENTRY_WITH_KEY_NAME => (
                    K::Conflict,
                    "a unique key (record id, lookup tag or audit entry number) is taken",
                ),
                ER_LOCK_DEADLOCK => (K::Busy, "deadlock"),
                ER_LOCK_WAIT_TIMEOUT => (K::Busy, "lock wait timeout"),
                ER_CHECKREAD => (K::Busy, "record changed by a concurrent transaction"),
                ER_SERVER_SHUTDOWN
                | ER_CONNECTION_KILLED
                | ER_CLIENT_INTERACTION_TIMEOUT
                | 1040
                | 1129
                | 1152..=1161 => (K::Unavailable, "the connection was lost"),
                1044 | 1045 | 1142 | 1143 | 1227 | 1370 => (K::Other, "access denied"),
                1049 => (K::Other, "unknown database (create it first)"),
                ER_NO_SUCH_TABLE => (K::Corrupt, "a store table is missing"),
                1406 => (K::NotSupported, "a value is too long for its column"),
                3 | 1021 | 1030 | 1114 => (K::Io, "the server could not write"),
                _ => (K::Other, "server error"),
            };
            let text = if server_text_is_safe(code) {
                format!(" ({})", server.message)
            } else {
                String::new()
            };
            (
                kind,
                format!(
                    "MySQL server error {code} [{}] while {during}: {what}{text}",
                    server.state
                ),
            )
        }
        E::IoError(io) => (
            K::Unavailable,
            format!("lost the connection to the MySQL server while {during}: {io}"),
        ),
        E::CodecError(c) => (
            K::Unavailable,
            format!("lost the connection to the MySQL server while {during}: {c}"),
        ),
        E::DriverError(DriverError::Timeout) => (
            K::Busy,
            format!(
                "no free pooled MySQL connection within {}s while {during} (raise pool_max?)",
                POOL_WAIT.as_secs()
            ),
        ),
        E::DriverError(DriverError::TlsNotSupported) => (
            K::NotSupported,
            format!(
                "the MySQL server does not offer TLS (while {during}): enable TLS on the server \
                 (ssl_mode=disabled is accepted only for a loopback host)"
            ),
        ),
        E::DriverError(d) => {
            let kind = match classify(e) {
                Failure::Lost => K::Unavailable,
                _ => K::Other,
            };
            (kind, format!("MySQL client error while {during}: {d}"))
        }
        E::TlsError(t) => (
            K::Unavailable,
            format!("TLS with the MySQL server failed while {during}: {t}"),
        ),
        E::UrlError(u) => (url_error(u).kind(), format!("bad URI while {during}")),
        _ => (
            K::Corrupt,
            format!("a column of unexpected type while {during}"),
        ),
    }
}

pub(super) fn db_error(e: &::mysql::Error, during: &str) -> BackendError {
    let (kind, message) = describe(e, during);
    error(kind, message)
}

pub(super) fn corrupt(message: &str) -> BackendError {
    error(BackendErrorKind::Corrupt, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_hold_no_values() {
        let e = ::mysql::Error::MySqlError(::mysql::MySqlError {
            state: "23000".into(),
            message: "Duplicate entry 'SECRETVALUE' for key 'user_name_tag'".into(),
            code: 1062,
        });
        let (kind, message) = describe(&e, "writing a record");
        assert_eq!(kind, BackendErrorKind::Conflict);
        assert!(!message.contains("SECRETVALUE"), "{message}");
        assert_eq!(classify(&e), Failure::Other);
        let e = ::mysql::Error::MySqlError(::mysql::MySqlError {
            state: "40001".into(),
            message: "Deadlock found when trying to get lock".into(),
            code: 1213,
        });
        assert_eq!(classify(&e), Failure::Retry);
    }
}
