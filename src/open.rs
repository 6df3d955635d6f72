//! Opening a store by URI: the one door every front end (the CLI, the Python and Node.js
//! packages, Rust applications) goes through.
//!
//! ```no_run
//! use tokenvault::{Credential, OAuthToken, TokenStore};
//!
//! # fn main() -> tokenvault::Result<()> {
//! let key = Credential::passphrase("correct horse battery staple");
//! let store = tokenvault::open("sqlite:/home/ann/.local/share/tokenvault/tokens.db", &key)?;
//! let token = store.find_token(&OAuthToken::new().with_user_name("ann@example.com"))?;
//! # Ok(())
//! # }
//! ```

use std::fs::DirBuilder;
use std::path::Path;

use crate::backend::{Backend, FileBackend, MemoryBackend};
use crate::keys::{Credential, CredentialChoice, CredentialError};
use crate::store::{BackendError, BackendErrorKind, Error, Result};
use crate::uri::StoreUri;
use crate::vault::{EncryptedStore, StoreOptions};

/// A store opened by URI, whatever its backend.
pub type Store = EncryptedStore<Box<dyn Backend>>;

/// Opens the existing store at `uri` (see [`crate::uri`]) with `credential`.
///
/// # Errors
/// [`Error::Uri`] for a URI that does not parse; [`Error::NoStore`] if there is no store there
/// (a missing file is not created); [`Error::WrongKey`], [`Error::NoMatchingSlot`] and the
/// other errors of [`EncryptedStore::open`]; [`Error::Backend`] if the backend cannot be
/// opened (`NotSupported` for a URI whose backend this build lacks, `Insecure` for an unsafe
/// store file).
pub fn open(uri: &str, credential: &Credential) -> Result<Store> {
    EncryptedStore::open(existing_backend(uri)?, credential)
}

/// Opens the existing store at `uri` with the credential its key slots and the environment
/// name ([`Credential::from_env`]: `TOKENVAULT_KEY`, `TOKENVAULT_PASSPHRASE`, or its OS
/// keychain slot), for a front end that cannot ask for a passphrase (the Python and Node.js
/// packages).
///
/// # Errors
/// As [`open`]; [`Error::Credential`] when the environment gives no usable credential
/// ([`CredentialError::PassphraseNeeded`] for a passphrase store without one).
pub fn open_from_env(uri: &str) -> Result<Store> {
    let backend = existing_backend(uri)?;
    let info = crate::inspect(&*backend)?;
    match Credential::from_env(&info, None)? {
        CredentialChoice::Ready(credential) => EncryptedStore::open(backend, &credential),
        CredentialChoice::NeedsPassphrase => Err(CredentialError::PassphraseNeeded.into()),
    }
}

/// The backend of the store at `uri`; a missing file is not created.
fn existing_backend(uri: &str) -> Result<Box<dyn Backend>> {
    let uri = StoreUri::parse(uri)?;
    if uri.path().is_some_and(|p| !p.exists()) || uri == StoreUri::Memory {
        return Err(Error::NoStore);
    }
    open_backend(&uri)
}

/// Creates a store at `uri` (a file store's directory is created, 0700, if missing) with
/// `credential` as its first key slot.
///
/// # Errors
/// [`Error::Uri`]; [`Error::StoreExists`] if one is there already; the errors of
/// [`EncryptedStore::create_with`]; [`Error::Backend`] as for [`open`].
pub fn create(uri: &str, credential: &Credential, options: StoreOptions) -> Result<Store> {
    let uri = StoreUri::parse(uri)?;
    if let Some(dir) = uri.path().and_then(Path::parent) {
        create_private_dir(dir)?;
    }
    EncryptedStore::create_with(open_backend(&uri)?, credential, options)
}

/// The backend `uri` names, opened (a file store's file is created only by its first write).
///
/// # Errors
/// [`Error::Backend`]: `NotSupported` when this build lacks the backend's feature, and the
/// backend's own open errors.
pub fn open_backend(uri: &StoreUri) -> Result<Box<dyn Backend>> {
    Ok(match uri {
        StoreUri::Memory => Box::new(MemoryBackend::new()),
        StoreUri::File(path) => Box::new(FileBackend::open(path)?),
        #[cfg(feature = "sqlite")]
        StoreUri::Sqlite(path) => Box::new(crate::backend::SqliteBackend::open(path)?),
        #[cfg(feature = "mysql")]
        StoreUri::Server(text) if text.starts_with("mysql://") => {
            Box::new(crate::backend::MysqlBackend::connect(text)?)
        }
        #[cfg(feature = "postgres")]
        StoreUri::Server(text) if !text.starts_with("mysql://") => {
            Box::new(crate::backend::PostgresBackend::connect(text)?)
        }
        _ => return Err(not_built(uri).into()),
    })
}

fn not_built(uri: &StoreUri) -> BackendError {
    let feature = match uri {
        StoreUri::Sqlite(_) => "sqlite",
        StoreUri::Server(text) if text.starts_with("mysql://") => "mysql",
        _ => "postgres",
    };
    BackendError::new(
        BackendErrorKind::NotSupported,
        format!("this build has no {feature} backend (the `{feature}` feature)"),
    )
}

/// Creates `dir` and its missing parents with mode 0700 (nothing if it exists).
fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.as_os_str().is_empty() || dir.exists() {
        return Ok(());
    }
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| BackendError::new(BackendErrorKind::Io, e).into())
}
