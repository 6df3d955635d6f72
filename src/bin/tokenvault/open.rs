//! Which store, and how to unlock it: store URIs, backends, passphrases and raw keys.

use std::fmt;
use std::fs;
use std::io::IsTerminal;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use tokenvault::backend::{Backend, FileBackend, SqliteBackend};
use tokenvault::uri::StoreUri as Uri;
use tokenvault::{Credential, EncryptedStore, Error, KeySlotKind, RawKey, StoreInfo};
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
        let opened: Result<Box<dyn Backend>, _> = match &self.0 {
            Uri::Sqlite(p) => SqliteBackend::open(p).map(|b| Box::new(b) as Box<dyn Backend>),
            Uri::File(p) => FileBackend::open(p).map(|b| Box::new(b) as Box<dyn Backend>),
            Uri::Server(uri) if uri.starts_with("mysql://") => server_backend::mysql(uri),
            Uri::Server(uri) => server_backend::postgres(uri),
            _ => return Err(CliError::usage("this build cannot open that kind of store")),
        };
        opened.map_err(|e| CliError::failure(format!("{self}: {e}")))
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
        let store = EncryptedStore::open(backend, &credential).map_err(|e| uri.error(e))?;
        Ok((store, credential))
    }

    /// The credential to try, by the store's slots: a raw key or passphrase given explicitly
    /// (TOKENVAULT_KEY; TOKENVAULT_PASSPHRASE or --passphrase-file) first, then the OS keychain,
    /// then a passphrase prompt. A keychain failure is reported, never replaced by another
    /// credential behind the user's back.
    fn credential_for(&self, info: &StoreInfo) -> Result<Credential, CliError> {
        let has = |kind| info.slots.iter().any(|s| s.kind == kind);
        let raw_given = std::env::var_os("TOKENVAULT_KEY").is_some();
        let passphrase_given =
            std::env::var_os("TOKENVAULT_PASSPHRASE").is_some() || self.passphrase_file.is_some();
        if has(KeySlotKind::RawKey)
            && (raw_given || !(has(KeySlotKind::Passphrase) || has(KeySlotKind::Keychain)))
        {
            return raw_key_from_env().map(Credential::raw_key);
        }
        if has(KeySlotKind::Keychain) && !(passphrase_given && has(KeySlotKind::Passphrase)) {
            return Ok(Credential::keychain());
        }
        if has(KeySlotKind::Passphrase) {
            let mut passphrase = read_secret(
                PASSPHRASE_SOURCES,
                self.passphrase_file.as_deref(),
                "Passphrase: ",
                false,
            )?;
            // Moved, not copied, into the credential.
            return Ok(Credential::passphrase(std::mem::take(&mut *passphrase)));
        }
        let kinds: Vec<String> = info.slots.iter().map(|s| s.kind.to_string()).collect();
        Err(CliError::failure(format!(
            "this build cannot open any of the store's key slots ({})",
            kinds.join(", ")
        )))
    }
}

/// The raw key from TOKENVAULT_KEY (base64 of 32 bytes).
pub fn raw_key_from_env() -> Result<RawKey, CliError> {
    let text = Zeroizing::new(std::env::var("TOKENVAULT_KEY").map_err(|_| {
        CliError::failure(
            "this store opens with a raw key: set TOKENVAULT_KEY to its base64 (32 bytes)",
        )
    })?);
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| CliError::failure("TOKENVAULT_KEY is not valid base64"))?,
    );
    let array: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        CliError::failure(format!(
            "TOKENVAULT_KEY must decode to 32 bytes, not {}",
            bytes.len()
        ))
    })?;
    Ok(RawKey::from_bytes(array))
}

/// A secret from `env_var`, else the first line of `file`, else a no-echo prompt on the
/// terminal (asked twice when `confirm`). Without any of them, an error naming the three.
pub fn read_secret(
    (env_var, file_option): (&str, &str),
    file: Option<&Path>,
    prompt: &str,
    confirm: bool,
) -> Result<Zeroizing<String>, CliError> {
    if let Ok(value) = std::env::var(env_var) {
        return non_empty(Zeroizing::new(value), env_var);
    }
    if let Some(file) = file {
        let text = Zeroizing::new(
            fs::read_to_string(file)
                .map_err(|e| CliError::failure(format!("cannot read {}: {e}", file.display())))?,
        );
        let line = text.lines().next().unwrap_or_default();
        return non_empty(Zeroizing::new(line.to_owned()), &file.display().to_string());
    }
    if !has_terminal() {
        return Err(CliError::failure(format!(
            "no passphrase: set {env_var}, pass {file_option} PATH, or run on a terminal to be prompted"
        )));
    }
    let first = Zeroizing::new(
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
    non_empty(first, "the prompt")
}

fn non_empty(value: Zeroizing<String>, source: &str) -> Result<Zeroizing<String>, CliError> {
    if value.is_empty() {
        Err(CliError::failure(format!("empty passphrase from {source}")))
    } else {
        Ok(value)
    }
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

/// The server backends, when this build has them.
mod server_backend {
    use tokenvault::BackendError;
    use tokenvault::backend::Backend;

    #[cfg(feature = "postgres")]
    pub fn postgres(uri: &str) -> Result<Box<dyn Backend>, BackendError> {
        tokenvault::backend::PostgresBackend::connect(uri).map(|b| Box::new(b) as Box<dyn Backend>)
    }

    #[cfg(not(feature = "postgres"))]
    pub fn postgres(_: &str) -> Result<Box<dyn Backend>, BackendError> {
        Err(BackendError::new(
            tokenvault::BackendErrorKind::NotSupported,
            "built without the `postgres` feature",
        ))
    }

    #[cfg(feature = "mysql")]
    pub fn mysql(uri: &str) -> Result<Box<dyn Backend>, BackendError> {
        tokenvault::backend::MysqlBackend::connect(uri).map(|b| Box::new(b) as Box<dyn Backend>)
    }

    #[cfg(not(feature = "mysql"))]
    pub fn mysql(_: &str) -> Result<Box<dyn Backend>, BackendError> {
        Err(BackendError::new(
            tokenvault::BackendErrorKind::NotSupported,
            "built without the `mysql` feature",
        ))
    }
}
