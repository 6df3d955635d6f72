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
            // A bare path (no scheme, so no password either) is the common slip: say which
            // URI it probably meant.
            Some(text) if !text.contains(':') && !text.is_empty() => Err(CliError::usage(format!(
                "{text:?} is not a store URI: a SQLite store is sqlite:{text}, a file store file:{text} (see --help)"
            ))),
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
        if let Some(path) = self.path() {
            warn_if_readable_by_others(path);
        }
        tokenvault::open_backend(&self.0).map_err(|e| match e {
            // The backend's refusals (a file others may write, a link) keep their class.
            Error::Backend(_) => CliError::from_error(&e, format!("{self}: {e}")),
            e => CliError::failure(format!("{self}: {e}")),
        })
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
        let message = match &e {
            Error::WrongKey => format!("wrong passphrase or key for store {self}"),
            Error::NoStore => format!("no store at {self} (create one with `tokenvault init`)"),
            Error::StoreExists => format!("store {self} already exists; refusing to overwrite it"),
            Error::NotFound { id } => format!("no token with id {id}"),
            other => format!("{self}: {other}"),
        };
        CliError::from_error(&e, message)
    }
}

/// A store file other users may read is a copy of every sealed token for them to attack
/// offline (the library refuses one they may write): said on stderr, once per command.
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    static SAID: AtomicBool = AtomicBool::new(false);
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode();
        // One others may write is refused by the backend, which says so.
        if mode & 0o044 != 0 && mode & 0o022 == 0 && !SAID.swap(true, Ordering::Relaxed) {
            crate::output::warn(&format!(
                "{} is readable by other users (mode {:03o}): `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            ));
        }
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

/// How many times a passphrase typed at the prompt may be wrong before the command fails.
const PROMPT_TRIES: u32 = 3;

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
    /// `--allow-weak-passphrase`: for new passphrases.
    pub allow_weak_passphrase: bool,
}

impl Unlock {
    /// A new passphrase (init, passwd, rekey, a new slot) from `sources` or `file`, typed
    /// twice at a prompt otherwise, and judged for strength (`strength`).
    pub fn new_passphrase(
        &self,
        sources: (&str, &str),
        file: Option<&Path>,
    ) -> Result<Credential, CliError> {
        let credential = read_secret(sources, file, "New passphrase: ", true)?;
        crate::strength::check_new(&credential, self.allow_weak_passphrase)?;
        Ok(credential)
    }

    /// Opens an existing store: with the credential given explicitly (TOKENVAULT_KEY,
    /// TOKENVAULT_PASSPHRASE, --passphrase-file) if any, else with the key `tokenvault
    /// unlock` keeps for this login session, else as [`open_with_credential`].
    pub fn open(&self, uri: &StoreUri) -> Result<Store, CliError> {
        if !self.explicit_credential()
            && let Some(store) = self.open_unlocked(uri)?
        {
            return Ok(store);
        }
        self.open_with_credential(uri).map(|(store, _)| store)
    }

    /// Opens the store with its credential, never with a session's key: for what changes
    /// who can open the store (`passwd`, `rekey`, `slots`), switches the audit trail off or
    /// resets it, or reveals or destroys every token (`export`, `purge`) — as sudo asks again
    /// for what matters, an unlocked terminal left alone must not give these away.
    pub fn open_strict(&self, uri: &StoreUri) -> Result<Store, CliError> {
        self.open_with_credential(uri).map(|(store, _)| store)
    }

    /// Whether a credential was given explicitly (then it, not a session's key, is used).
    fn explicit_credential(&self) -> bool {
        self.passphrase_file.is_some()
            || ["TOKENVAULT_KEY", "TOKENVAULT_PASSPHRASE"]
                .iter()
                .any(|v| std::env::var_os(v).is_some_and(|value| !value.is_empty()))
    }

    /// The store opened with the key `unlock` left in the kernel keyring, if there is one
    /// that opens it (a stale one — the store was rekeyed — is dropped).
    fn open_unlocked(&self, uri: &StoreUri) -> Result<Option<Store>, CliError> {
        if !uri.exists() {
            return Ok(None);
        }
        let backend = uri.backend()?;
        let info = tokenvault::inspect(&*backend).map_err(|e| uri.error(e))?;
        let Some(key) = crate::session::cached(&info.store_id) else {
            return Ok(None);
        };
        let witness = self
            .witness()?
            .map(|w| Box::new(w) as Box<dyn tokenvault::Witness>);
        match EncryptedStore::open_with_store_key(backend, &key, witness) {
            Ok(store) => Ok(Some(store)),
            Err(Error::WrongKey) => {
                crate::session::forget(&info.store_id);
                Ok(None)
            }
            Err(e) => Err(uri.error(e)),
        }
    }

    /// [`open`](Self::open), also returning the credential that opened it.
    pub fn open_with_credential(&self, uri: &StoreUri) -> Result<(Store, Credential), CliError> {
        if !uri.exists() {
            return Err(uri.error(Error::NoStore));
        }
        let info = tokenvault::inspect(&*uri.backend()?).map_err(|e| uri.error(e))?;
        let (mut credential, prompted) = self.credential_for(&info)?;
        // A passphrase typed at the prompt gets three tries, as sudo gives; one from the
        // environment or a file gets one (it will not change by asking again).
        let mut tries = if prompted { PROMPT_TRIES } else { 1 };
        loop {
            let backend = uri.backend()?;
            let opened = match self.witness()? {
                Some(witness) => {
                    EncryptedStore::open_witnessed(backend, &credential, Box::new(witness))
                }
                None => EncryptedStore::open(backend, &credential),
            };
            tries -= 1;
            match opened {
                Ok(store) => return Ok((store, credential)),
                Err(Error::WrongKey) if tries > 0 => {
                    eprintln!("tokenvault: wrong passphrase, try again");
                    credential = prompt(PASSPHRASE_SOURCES, "Passphrase: ", false)?;
                }
                Err(e) => return Err(uri.error(e)),
            }
        }
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
    fn credential_for(&self, info: &StoreInfo) -> Result<(Credential, bool), CliError> {
        if let Some(file) = &self.passphrase_file {
            check_private_file(file)?;
        }
        match Credential::from_env(info, self.passphrase_file.as_deref())
            .map_err(|e| CliError::credential(with_causes(&e)))?
        {
            CredentialChoice::Ready(credential) => Ok((credential, false)),
            CredentialChoice::NeedsPassphrase => {
                Ok((prompt(PASSPHRASE_SOURCES, "Passphrase: ", false)?, true))
            }
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

/// A passphrase from `env_var`, else the first line of `file` (the library reads both), else
/// a no-echo prompt on the terminal (asked twice when `confirm`). Without any of them, an
/// error naming the three.
pub fn read_secret(
    sources: (&str, &str),
    file: Option<&Path>,
    prompt_text: &str,
    confirm: bool,
) -> Result<Credential, CliError> {
    if let Some(file) = file {
        check_private_file(file)?;
    }
    match Credential::passphrase_from_env(sources.0, file)
        .map_err(|e| CliError::credential(with_causes(&e)))?
    {
        Some(credential) => Ok(credential),
        None => prompt(sources, prompt_text, confirm),
    }
}

/// Refuses a passphrase file that other users may read or write (as ssh refuses such a key
/// file): whoever can read it has the store, and whoever can write it chooses the passphrase
/// of the next `init` or `passwd`. Only regular files: a pipe (`<(pass show tv)`) holds
/// nothing at rest.
fn check_private_file(path: &Path) -> Result<(), CliError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = match fs::metadata(path) {
        Ok(meta) if meta.is_file() => meta.permissions().mode(),
        // Not a file, not there or unreadable: the library's read says so.
        _ => return Ok(()),
    };
    if mode & 0o077 != 0 {
        return Err(CliError::credential(format!(
            "{} is open to other users (mode {:03o}): `chmod 600 {}` first",
            path.display(),
            mode & 0o777,
            path.display()
        )));
    }
    Ok(())
}

/// A passphrase typed at a no-echo prompt on the terminal (asked twice when `confirm`); without
/// a terminal, an error naming the environment variable and the file option of `sources`.
fn prompt(
    (env_var, file_option): (&str, &str),
    prompt: &str,
    confirm: bool,
) -> Result<Credential, CliError> {
    if !has_terminal() {
        return Err(CliError::credential(format!(
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
            return Err(CliError::credential("the two passphrases differ"));
        }
    }
    if first.is_empty() {
        return Err(CliError::credential("empty passphrase from the prompt"));
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
