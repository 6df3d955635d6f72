//! Which store, and how to unlock it: store URIs, backends, passphrases and raw keys.

use std::fmt;
use std::fs;
use std::io::IsTerminal;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use tokenvault::backend::Backend;
use tokenvault::uri::StoreUri as Uri;
use tokenvault::{
    Credential, CredentialChoice, EncryptedStore, Error, StateFileWitness, StoreInfo,
};
use zeroize::Zeroizing;

use crate::CliError;

/// An open store, whatever its backend.
pub type Store = EncryptedStore<Box<dyn Backend>>;

/// Where a store lives: the library's parsed URI, with what the CLI adds (the default store,
/// opening with directory creation, deleting files, naming the store in errors).
#[derive(Clone, Debug)]
pub struct StoreUri(tokenvault::uri::StoreUri);

impl fmt::Display for StoreUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f) // never shows a password
    }
}

impl StoreUri {
    /// Parses `sqlite:PATH`, `file:PATH`, `postgres://…` or `mysql://…`; `None` gives the
    /// default store.
    pub fn parse(text: Option<&str>) -> Result<StoreUri, CliError> {
        match text {
            None => Self::default_store(),
            Some(text) => tokenvault::uri::StoreUri::parse(text)
                .map(StoreUri)
                .map_err(|e| CliError::usage(e.to_string())),
        }
    }

    /// `sqlite:` in the user's data directory (`$XDG_DATA_HOME/tokenvault/tokens.db` on Linux).
    fn default_store() -> Result<StoreUri, CliError> {
        let dir = dirs::data_dir().ok_or_else(|| {
            CliError::failure(
                "cannot find the user's data directory; pass --store or set TOKENVAULT_STORE",
            )
        })?;
        Ok(StoreUri(tokenvault::uri::StoreUri::Sqlite(
            dir.join("tokenvault").join("tokens.db"),
        )))
    }

    fn path(&self) -> Option<&Path> {
        self.0.path()
    }

    /// Whether the store's file exists (a store may still be empty inside); a server store is
    /// found out by opening it.
    pub fn exists(&self) -> bool {
        self.path().is_none_or(Path::exists)
    }

    /// Opens the backend, creating the file and (mode 0700) its directory if missing.
    pub fn backend(&self) -> Result<Box<dyn Backend>, CliError> {
        if let Some(dir) = self
            .path()
            .and_then(Path::parent)
            .filter(|d| !d.as_os_str().is_empty() && !d.exists())
        {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| CliError::failure(format!("cannot create {}: {e}", dir.display())))?;
        }
        tokenvault::open_backend(&self.0).map_err(|e| CliError::failure(format!("{self}: {e}")))
    }

    /// Deletes the store's files (database and journals, or file, lock and temp files);
    /// returns how many existed.
    pub fn remove_files(&self) -> Result<usize, CliError> {
        let (path, suffixes): (&Path, &[&str]) = match &self.0 {
            Uri::Sqlite(p) => (p, &["", "-wal", "-shm", "-journal"]),
            Uri::File(p) => (p, &["", ".lock"]),
            _ => {
                return Err(CliError::failure(
                    "destroy removes file stores; for a server store, `purge --yes` and drop its tables",
                ));
            }
        };
        let mut names: Vec<std::ffi::OsString> = suffixes
            .iter()
            .map(|suffix| {
                let mut name = path.as_os_str().to_owned();
                name.push(suffix);
                name
            })
            .collect();
        if matches!(self.0, Uri::File(_)) {
            names.extend(stale_temp_files(path));
        }
        let mut removed = 0;
        for name in names {
            match fs::remove_file(&name) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(CliError::failure(format!(
                        "cannot delete {}: {e}",
                        PathBuf::from(name).display()
                    )));
                }
            }
        }
        Ok(removed)
    }

    /// Turns a library error into a message that names this store.
    pub fn error(&self, e: Error) -> CliError {
        CliError::failure(match e {
            Error::WrongKey => format!("wrong passphrase or key for store {self}"),
            Error::NoStore => format!("no store at {self} (create one with `tokenvault init`)"),
            Error::StoreExists => format!("store {self} already exists; refusing to overwrite it"),
            Error::NotFound { id } => format!("no token with id {id}"),
            other => format!("{self}: {other}"),
        })
    }
}

/// Temporary files a crashed writer of the file store at `path` left (`PATH.tmp-<random>`).
fn stale_temp_files(path: &Path) -> Vec<std::ffi::OsString> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut prefix = name.to_owned();
    prefix.push(tokenvault::backend::TEMP_SUFFIX);
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| n.as_encoded_bytes().starts_with(prefix.as_encoded_bytes()))
        .map(|n| dir.join(n).into_os_string())
        .collect()
}

/// Where the current passphrase may come from: environment variable and option.
pub const PASSPHRASE_SOURCES: (&str, &str) = ("TOKENVAULT_PASSPHRASE", "--passphrase-file");
/// Where `passwd` reads the new passphrase from.
pub const NEW_PASSPHRASE_SOURCES: (&str, &str) =
    ("TOKENVAULT_NEW_PASSPHRASE", "--new-passphrase-file");

/// Global options that say how to unlock.
pub struct Unlock {
    pub passphrase_file: Option<PathBuf>,
    /// `--witness`: the directory of the rollback witness (empty: the default one).
    pub witness: Option<String>,
}

impl Unlock {
    /// Opens an existing store, choosing the credential from its key slots.
    pub fn open(&self, uri: &StoreUri) -> Result<Store, CliError> {
        self.open_with_credential(uri).map(|(store, _)| store)
    }

    /// [`open`](Self::open), also returning the credential that opened it.
    pub fn open_with_credential(&self, uri: &StoreUri) -> Result<(Store, Credential), CliError> {
        if !uri.exists() {
            return Err(uri.error(Error::NoStore));
        }
        let backend = uri.backend()?;
        let info = tokenvault::inspect(&*backend).map_err(|e| uri.error(e))?;
        let credential = self.credential_for(&info)?;
        let store = match self.witness()? {
            Some(witness) => {
                EncryptedStore::open_witnessed(backend, &credential, Box::new(witness))
            }
            None => EncryptedStore::open(backend, &credential),
        }
        .map_err(|e| uri.error(e))?;
        Ok((store, credential))
    }

    /// The rollback witness `--witness` asks for.
    fn witness(&self) -> Result<Option<StateFileWitness>, CliError> {
        match self.witness.as_deref() {
            None => Ok(None),
            Some(dir) if !dir.is_empty() => Ok(Some(StateFileWitness::new(dir))),
            Some(_) => {
                let data = dirs::data_dir().ok_or_else(|| {
                    CliError::failure("cannot find the user's data directory; give --witness=DIR")
                })?;
                Ok(Some(StateFileWitness::new(
                    data.join("tokenvault").join("witness"),
                )))
            }
        }
    }

    /// The credential to try, by the library's rule ([`Credential::from_env`]): a raw key or
    /// passphrase given explicitly (TOKENVAULT_KEY; TOKENVAULT_PASSPHRASE or --passphrase-file)
    /// first, then the OS keychain, then a passphrase prompt, which is the CLI's part. A
    /// keychain failure is reported, never replaced by another credential behind the user's
    /// back.
    fn credential_for(&self, info: &StoreInfo) -> Result<Credential, CliError> {
        match Credential::from_env(info, self.passphrase_file.as_deref())
            .map_err(|e| failure(&e))?
        {
            CredentialChoice::Ready(credential) => Ok(credential),
            CredentialChoice::NeedsPassphrase => prompt(PASSPHRASE_SOURCES, "Passphrase: ", false),
        }
    }
}

/// A library error's message, then its causes' (`message: cause: …`).
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut cause = e.source();
    while let Some(e) = cause {
        message.push_str(": ");
        message.push_str(&e.to_string());
        cause = e.source();
    }
    message
}

/// A library error as a failure, with its causes.
pub fn failure(e: &dyn std::error::Error) -> CliError {
    CliError::failure(with_causes(e))
}

/// A passphrase from `env_var`, else the first line of `file` (the library reads both), else
/// a no-echo prompt on the terminal (asked twice when `confirm`). Without any of them, an
/// error naming the three.
pub fn read_secret(
    sources: (&str, &str),
    file: Option<&Path>,
    prompt_text: &str,
    confirm: bool,
) -> Result<Credential, CliError> {
    match Credential::passphrase_from_env(sources.0, file).map_err(|e| failure(&e))? {
        Some(credential) => Ok(credential),
        None => prompt(sources, prompt_text, confirm),
    }
}

/// A passphrase typed at a no-echo prompt on the terminal (asked twice when `confirm`); without
/// a terminal, an error naming the environment variable and the file option of `sources`.
fn prompt(
    (env_var, file_option): (&str, &str),
    prompt: &str,
    confirm: bool,
) -> Result<Credential, CliError> {
    if !has_terminal() {
        return Err(CliError::failure(format!(
            "no passphrase: set {env_var}, pass {file_option} PATH, or run on a terminal to be prompted"
        )));
    }
    let mut first = Zeroizing::new(
        rpassword::prompt_password(prompt)
            .map_err(|e| CliError::failure(format!("cannot read the passphrase: {e}")))?,
    );
    if confirm {
        let second = Zeroizing::new(
            rpassword::prompt_password("Repeat: ")
                .map_err(|e| CliError::failure(format!("cannot read the passphrase: {e}")))?,
        );
        if *first != *second {
            return Err(CliError::failure("the two passphrases differ"));
        }
    }
    if first.is_empty() {
        return Err(CliError::failure("empty passphrase from the prompt"));
    }
    // Moved, not copied, into the credential.
    Ok(Credential::passphrase(std::mem::take(&mut *first)))
}

/// Whether a controlling terminal can be opened for a prompt (stdin may be a pipe).
fn has_terminal() -> bool {
    std::io::stdin().is_terminal()
        || fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .is_ok()
}
