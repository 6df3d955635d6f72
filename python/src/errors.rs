//! The exception classes, one per kind of failure a caller acts on, and the one mapping from
//! the library's errors to them. Messages are the library's, which never hold a secret.

use std::error::Error as _;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use tokenvault::oauth::OAuthError;

create_exception!(
    tokenvault,
    Error,
    PyException,
    "Base class of every tokenvault error."
);
create_exception!(
    tokenvault,
    WrongKey,
    Error,
    "The passphrase or key opens none of the store's key slots (nothing was changed)."
);
create_exception!(
    tokenvault,
    Tampered,
    Error,
    "Stored bytes failed their integrity check: altered, truncated, or moved from elsewhere."
);
create_exception!(
    tokenvault,
    NotFound,
    Error,
    "No token has this id or matches the query."
);
create_exception!(
    tokenvault,
    Conflict,
    Error,
    "Another record already has this user name or token."
);
create_exception!(
    tokenvault,
    InvalidToken,
    Error,
    "The token cannot be stored as it is (unknown field, oversized or malformed value)."
);
create_exception!(
    tokenvault,
    StoreExists,
    Error,
    "create() found a store already there."
);
create_exception!(tokenvault, NoStore, Error, "open() found no store there.");
create_exception!(
    tokenvault,
    KeychainError,
    Error,
    "The OS keychain could not give or keep the store's key."
);
create_exception!(
    tokenvault,
    RefreshError,
    Error,
    "The token endpoint failed or refused the refresh; the stored token is unchanged."
);
create_exception!(
    tokenvault,
    BackendError,
    Error,
    "The storage backend failed (I/O, busy, unsafe file, database error)."
);
create_exception!(
    tokenvault,
    Refused,
    Error,
    "A key-management request that cannot be honoured (e.g. removing the last key slot)."
);
create_exception!(
    tokenvault,
    CredentialError,
    Error,
    "No usable credential was given (or found in TOKENVAULT_KEY / TOKENVAULT_PASSPHRASE)."
);
create_exception!(
    tokenvault,
    InvalidUri,
    Error,
    "The store URI does not parse."
);

/// Adds every exception class to the module.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    module.add("Error", py.get_type::<Error>())?;
    module.add("WrongKey", py.get_type::<WrongKey>())?;
    module.add("Tampered", py.get_type::<Tampered>())?;
    module.add("NotFound", py.get_type::<NotFound>())?;
    module.add("Conflict", py.get_type::<Conflict>())?;
    module.add("InvalidToken", py.get_type::<InvalidToken>())?;
    module.add("StoreExists", py.get_type::<StoreExists>())?;
    module.add("NoStore", py.get_type::<NoStore>())?;
    module.add("KeychainError", py.get_type::<KeychainError>())?;
    module.add("RefreshError", py.get_type::<RefreshError>())?;
    module.add("BackendError", py.get_type::<BackendError>())?;
    module.add("Refused", py.get_type::<Refused>())?;
    module.add("CredentialError", py.get_type::<CredentialError>())?;
    module.add("InvalidUri", py.get_type::<InvalidUri>())?;
    Ok(())
}

/// The exception for a library error.
pub fn store_error(err: tokenvault::Error) -> PyErr {
    use tokenvault::Error as E;
    let message = err.to_string();
    match err {
        E::WrongKey | E::NoMatchingSlot { .. } => WrongKey::new_err(message),
        E::Tampered { .. } | E::UnknownKey { .. } => Tampered::new_err(message),
        E::NotFound { .. } | E::NoMatch => NotFound::new_err(message),
        E::InvalidToken { .. } => InvalidToken::new_err(message),
        E::Conflict { .. } => Conflict::new_err(message),
        E::StoreExists => StoreExists::new_err(message),
        E::NoStore => NoStore::new_err(message),
        E::Refused { .. } => Refused::new_err(message),
        E::Keychain { .. } => KeychainError::new_err(message),
        E::Uri(_) => InvalidUri::new_err(message),
        E::Credential(_) => CredentialError::new_err(message),
        E::Backend(_) => BackendError::new_err(message),
        _ => Error::new_err(message),
    }
}

/// The exception for a failed refresh: the store's own error, or [`RefreshError`] naming
/// what the token endpoint did.
pub fn refresh_error(err: tokenvault::RefreshError<OAuthError>) -> PyErr {
    match err {
        tokenvault::RefreshError::Store(e) => store_error(e),
        tokenvault::RefreshError::Refresher(ref cause) => {
            let cause = cause.to_string();
            let message = match err.source() {
                Some(_) => format!("{err}: {cause}"),
                None => err.to_string(),
            };
            RefreshError::new_err(message)
        }
    }
}
