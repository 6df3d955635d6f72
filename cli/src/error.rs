//! Failures as the CLI reports them: one line on stderr (or, with `--json`, one JSON object
//! `{"error": {"code": …, "message": …}}`), and an exit status per class of error. The codes
//! and statuses are stable across releases (README, `--help`):
//!
//! | status | class | codes |
//! | ---: | --- | --- |
//! | 1 | failure (anything else; and `verify` / `audit verify` finding a problem, `import` refusing rows) | `failure`, … |
//! | 2 | usage: bad arguments or input, caught before any unlock | `usage`, `invalid_token`, `uri` |
//! | 3 | not found: no such record, no match, no store | `not_found`, `no_match`, `no_store` |
//! | 4 | wrong key: the credential opens no slot, or is missing | `wrong_key`, `no_matching_slot`, `credential`, `keychain` |
//! | 5 | integrity: tampered, rolled back, rekeyed, unknown key or format | `tampered`, `rolled_back`, … |
//! | 6 | refused: the store refused the change (a conflict, an existing store, a limit), or the backend a setting (plaintext to a remote server) | `conflict`, `store_exists`, `refused`, `backend_not_supported`, … |
//! | 7 | storage: the backend failed (I/O, busy, unreachable, insecure files) | `backend_io`, `backend_busy`, `backend_unavailable`, `backend_insecure` |
//! | 8 | token endpoint: the OAuth refresh failed | `token_endpoint` |

use tokenvault::Error;

/// A failure to report.
#[derive(Debug)]
pub struct CliError {
    message: String,
    /// The stable code (`Error::code` for library errors).
    code: &'static str,
    /// The exit status; 0 only for a reader that went away (`tokenvault list | head`).
    status: u8,
}

/// Exit statuses per class.
pub mod status {
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NOT_FOUND: u8 = 3;
    pub const WRONG_KEY: u8 = 4;
    pub const INTEGRITY: u8 = 5;
    pub const REFUSED: u8 = 6;
    pub const STORAGE: u8 = 7;
    pub const TOKEN_ENDPOINT: u8 = 8;
}

impl CliError {
    /// Exit status 1.
    pub fn failure(message: impl Into<String>) -> Self {
        Self::new(message, "failure", status::FAILURE)
    }

    /// Exit status 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(message, "usage", status::USAGE)
    }

    /// The command refuses to go on (exit status 6): it would overwrite something.
    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(message, "refused", status::REFUSED)
    }

    /// What was asked for is not there (exit status 3).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(message, "not_found", status::NOT_FOUND)
    }

    /// No credential could be had, or the one given cannot be used (exit status 4).
    pub fn credential(message: impl Into<String>) -> Self {
        Self::new(message, "credential", status::WRONG_KEY)
    }

    /// A refresh at the token endpoint failed (exit status 8).
    pub fn token_endpoint(message: impl Into<String>) -> Self {
        Self::new(message, "token_endpoint", status::TOKEN_ENDPOINT)
    }

    /// A library error, with `message` (which may name the store) in place of its own.
    pub fn from_error(e: &Error, message: impl Into<String>) -> Self {
        Self::new(message, e.code(), status_of(e))
    }

    fn new(message: impl Into<String>, code: &'static str, status: u8) -> Self {
        Self {
            message: message.into(),
            code,
            status,
        }
    }

    /// The same class with another message (more context).
    pub fn with_message(&self, message: impl Into<String>) -> Self {
        Self::new(message, self.code, self.status)
    }

    /// Nothing to report: the reader of stdout went away.
    pub fn quiet() -> Self {
        Self::new("", "", 0)
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The exit status.
    pub fn status(&self) -> u8 {
        self.status
    }
}

/// The exit status of a library error's class.
pub fn status_of(e: &Error) -> u8 {
    use tokenvault::BackendErrorKind as K;
    match e {
        Error::NotFound { .. } | Error::NoMatch | Error::NoStore => status::NOT_FOUND,
        Error::WrongKey
        | Error::NoMatchingSlot { .. }
        | Error::Credential(_)
        | Error::Keychain { .. } => status::WRONG_KEY,
        Error::Tampered { .. }
        | Error::RolledBack { .. }
        | Error::Rekeyed
        | Error::UnknownKey { .. }
        | Error::UnsupportedFormat { .. }
        | Error::KdfParamsOutOfBounds { .. } => status::INTEGRITY,
        Error::Conflict { .. }
        | Error::StoreExists
        | Error::Refused { .. }
        | Error::SealLimitReached { .. } => status::REFUSED,
        Error::InvalidToken { .. } | Error::Uri(_) => status::USAGE,
        Error::Backend(b) => match b.kind() {
            K::Corrupt => status::INTEGRITY,
            // A policy the backend holds to (no plaintext to a remote server, say).
            K::NotSupported | K::Conflict => status::REFUSED,
            K::Io | K::Busy | K::Unavailable | K::Insecure => status::STORAGE,
            _ => status::FAILURE,
        },
        Error::Witness { .. } | Error::Random => status::STORAGE,
        _ => status::FAILURE,
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            // The reader went away (`tokenvault list | head`): not a failure.
            return Self::quiet();
        }
        CliError::failure(format!("I/O error: {e}"))
    }
}
