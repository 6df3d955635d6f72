//! The one mapping from the library's errors to what JavaScript sees: an `Error` whose `code`
//! names the kind of failure (the names of the Python package's exception classes), which
//! `index.js` turns into an instance of the matching subclass. Argument mistakes are
//! `TypeError`s with Node's own codes. Messages are the library's, which never hold a secret,
//! or ours, which never quote a value.

use std::error::Error as _;

use napi::bindgen_prelude::{JsError, JsTypeError};
use napi::{Env, Status};
use tokenvault::oauth::OAuthError;

/// What a call failed with, built off the event loop and turned into a JS error on it.
#[derive(Debug)]
pub struct Failure {
    kind: Kind,
    message: String,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A tokenvault error: `Error` with `code` = the error class's name.
    Store(&'static str),
    /// An argument of the wrong JS type: `TypeError`, code `ERR_INVALID_ARG_TYPE`.
    ArgType,
    /// An argument of the right type and a wrong value: `TypeError`,
    /// code `ERR_INVALID_ARG_VALUE` (as Node's own APIs do).
    ArgValue,
    /// JavaScript threw while an argument was read (a getter): that exception stands.
    Pending,
}

/// The error codes, one per class of `index.js` (and per exception class in Python).
pub mod code {
    pub const ERROR: &str = "TokenvaultError";
    pub const WRONG_KEY: &str = "WrongKey";
    pub const TAMPERED: &str = "Tampered";
    pub const NOT_FOUND: &str = "NotFound";
    pub const CONFLICT: &str = "Conflict";
    pub const INVALID_TOKEN: &str = "InvalidToken";
    pub const STORE_EXISTS: &str = "StoreExists";
    pub const NO_STORE: &str = "NoStore";
    pub const KEYCHAIN: &str = "KeychainError";
    pub const REFRESH: &str = "RefreshError";
    pub const BACKEND: &str = "BackendError";
    pub const REFUSED: &str = "Refused";
    pub const CREDENTIAL: &str = "CredentialError";
    pub const INVALID_URI: &str = "InvalidUri";
}

impl Failure {
    /// A tokenvault error of class `code` (one of [`code`]).
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind: Kind::Store(code),
            message: message.into(),
        }
    }

    /// An argument of the wrong type.
    pub fn arg_type(message: impl Into<String>) -> Self {
        Self {
            kind: Kind::ArgType,
            message: message.into(),
        }
    }

    /// An argument with a value no call accepts.
    pub fn arg_value(message: impl Into<String>) -> Self {
        Self {
            kind: Kind::ArgValue,
            message: message.into(),
        }
    }

    /// A token the store would refuse, for a reason naming the field (never its value).
    pub fn invalid_token(reason: &str) -> Self {
        Self::new(code::INVALID_TOKEN, format!("invalid token: {reason}"))
    }

    /// The JS error object for this failure, as a napi error that throws or rejects with
    /// exactly that object.
    pub fn into_napi(self, env: &Env) -> napi::Error {
        if exception_pending(env) {
            // JavaScript threw while the arguments were read (a getter, a Proxy trap): that
            // exception is what the caller sees, and no other can be thrown over it.
            return napi::Error::new(Status::PendingException, self.message);
        }
        let value = match self.kind {
            Kind::Store(code) => {
                JsError::from(napi::Error::new(code, self.message)).into_unknown(*env)
            }
            Kind::ArgType => {
                JsTypeError::from(napi::Error::new("ERR_INVALID_ARG_TYPE", self.message))
                    .into_unknown(*env)
            }
            Kind::ArgValue => {
                JsTypeError::from(napi::Error::new("ERR_INVALID_ARG_VALUE", self.message))
                    .into_unknown(*env)
            }
            Kind::Pending => return napi::Error::new(Status::PendingException, self.message),
        };
        napi::Error::from(value)
    }
}

/// Whether a JavaScript exception is pending on `env`.
fn exception_pending(env: &Env) -> bool {
    let mut pending = false;
    // SAFETY: `env` is the live environment of the call being answered, on its JS thread
    // (failures are turned into errors only there); N-API writes one bool through the
    // pointer, which is valid for the call.
    let status = unsafe { napi::sys::napi_is_exception_pending(env.raw(), &mut pending) };
    status == napi::sys::Status::napi_ok && pending
}

impl From<napi::Error> for Failure {
    /// A failure of N-API itself while reading an argument on the JS thread (e.g. a getter
    /// that threw: its exception is what the caller sees).
    fn from(err: napi::Error) -> Self {
        if err.status == Status::PendingException {
            return Self {
                kind: Kind::Pending,
                message: err.reason,
            };
        }
        Self::arg_value(format!("reading an argument failed: {}", err.reason))
    }
}

impl From<tokenvault::Error> for Failure {
    fn from(err: tokenvault::Error) -> Self {
        use tokenvault::Error as E;
        let message = err.to_string();
        let class = match err {
            E::WrongKey | E::NoMatchingSlot { .. } => code::WRONG_KEY,
            E::Tampered { .. } | E::UnknownKey { .. } => code::TAMPERED,
            E::NotFound { .. } | E::NoMatch => code::NOT_FOUND,
            E::InvalidToken { .. } => code::INVALID_TOKEN,
            E::Conflict { .. } => code::CONFLICT,
            E::StoreExists => code::STORE_EXISTS,
            E::NoStore => code::NO_STORE,
            E::Refused { .. } => code::REFUSED,
            E::Keychain { .. } => code::KEYCHAIN,
            E::Uri(_) => code::INVALID_URI,
            E::Credential(_) => code::CREDENTIAL,
            E::Backend(_) => code::BACKEND,
            _ => code::ERROR,
        };
        Self::new(class, message)
    }
}

impl From<tokenvault::RefreshError<OAuthError>> for Failure {
    /// The store's own error, or `RefreshError` naming what the token endpoint did.
    fn from(err: tokenvault::RefreshError<OAuthError>) -> Self {
        match err {
            tokenvault::RefreshError::Store(e) => e.into(),
            tokenvault::RefreshError::Refresher(ref cause) => {
                let cause = cause.to_string();
                let message = match err.source() {
                    Some(_) => format!("{err}: {cause}"),
                    None => err.to_string(),
                };
                Self::new(code::REFRESH, message)
            }
        }
    }
}

impl From<tokenvault::CredentialError> for Failure {
    fn from(err: tokenvault::CredentialError) -> Self {
        Self::new(code::CREDENTIAL, err.to_string())
    }
}

/// `Result` of work that fails with a [`Failure`].
pub type Outcome<T> = Result<T, Failure>;
