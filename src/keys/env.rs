//! Credentials from the environment: the one rule every front end follows (the CLI, and the
//! Python and Node packages), so that a store opens the same way from each.
//!
//! A raw key ([`RawKey::ENV_VAR`], base64 of 32 bytes) or a passphrase
//! ([`Credential::PASSPHRASE_ENV_VAR`] or a passphrase file) given explicitly comes first, then the OS keychain, then a passphrase the
//! front end asks the user for. Asking is the front end's part; everything else is here.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::{Credential, RawKey, StoreInfo};
use crate::store::{KeySlotKind, list_kinds};

const RAW_KEY_VAR: &str = RawKey::ENV_VAR;
const PASSPHRASE_VAR: &str = Credential::PASSPHRASE_ENV_VAR;

/// What [`Credential::from_env`] chose. Deliberately exhaustive: a front end's `match` must
/// handle every case, and a new case would be a breaking change that makes it handle that too.
#[must_use = "a store that opens with a passphrase needs the front end to ask for one"]
#[derive(Debug)]
pub enum CredentialChoice {
    /// Open the store with this credential.
    Ready(Credential),
    /// The store opens with a passphrase and none was given: ask the user for one (a no-echo
    /// prompt on a terminal), then open with [`Credential::passphrase`]. A front end that
    /// cannot ask fails, naming [`Credential::PASSPHRASE_ENV_VAR`] and its passphrase-file
    /// option.
    NeedsPassphrase,
}

/// Where an explicitly given passphrase came from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PassphraseOrigin {
    /// An environment variable, by name.
    Env(String),
    /// A passphrase file (its first line).
    File(PathBuf),
}

impl fmt::Display for PassphraseOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PassphraseOrigin::Env(var) => f.write_str(var),
            PassphraseOrigin::File(path) => path.display().fmt(f),
        }
    }
}

/// Why no credential could be taken from the environment. Never carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// A raw key is needed and [`RawKey::ENV_VAR`] is not set (or not valid Unicode).
    #[error("this store opens with a raw key: set TOKENVAULT_KEY to its base64 (32 bytes)")]
    RawKeyMissing,
    /// [`RawKey::ENV_VAR`] is not strict standard base64 (RFC 4648, padded).
    #[error("TOKENVAULT_KEY is not valid base64")]
    RawKeyNotBase64,
    /// [`RawKey::ENV_VAR`] decodes to another length than 32 bytes.
    #[error("TOKENVAULT_KEY must decode to 32 bytes, not {len}")]
    RawKeyLength {
        /// The decoded length.
        len: usize,
    },
    /// A raw key variable other than [`RawKey::ENV_VAR`] is unset or not the base64 of 32
    /// bytes ([`RawKey::from_env_var`]).
    #[error("set {var} to a raw key: the base64 of 32 bytes")]
    RawKeyVar {
        /// The variable.
        var: &'static str,
    },
    /// The passphrase file cannot be read.
    #[error("cannot read {}", .path.display())]
    PassphraseFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The passphrase given is empty.
    #[error("empty passphrase from {origin}")]
    EmptyPassphrase {
        /// Where it came from.
        origin: PassphraseOrigin,
    },
    /// None of the store's slots is of a kind this build can open (a keychain slot in a build
    /// without the `keychain` feature, or a kind from a newer build).
    #[error(
        "this build cannot open any of the store's key slots ({})",
        list_kinds(.kinds)
    )]
    NoUsableSlot {
        /// The kinds of the store's slots.
        kinds: Vec<KeySlotKind>,
    },
    /// The store opens with a passphrase and none was given, where no one can be asked
    /// ([`open_from_env`](crate::open_from_env)).
    #[error("this store opens with a passphrase and none was given (set TOKENVAULT_PASSPHRASE)")]
    PassphraseNeeded,
}

impl Credential {
    /// The environment variable that holds the passphrase of a store.
    pub const PASSPHRASE_ENV_VAR: &str = "TOKENVAULT_PASSPHRASE";

    /// The credential to open the store `info` describes (see [`inspect`](crate::inspect)),
    /// chosen by its key slots and the environment:
    /// 1. a raw key from [`RawKey::ENV_VAR`], if the store has a raw-key slot and the variable is
    ///    set, or the store has no slot of another usable kind;
    /// 2. the OS keychain, if the store has a keychain slot (and the build the `keychain`
    ///    feature), unless a passphrase is given explicitly and the store has a passphrase slot;
    /// 3. for a store with a passphrase slot: the passphrase from
    ///    [`PASSPHRASE_ENV_VAR`](Self::PASSPHRASE_ENV_VAR), else the
    ///    first line of `passphrase_file`, else [`CredentialChoice::NeedsPassphrase`].
    ///
    /// A keychain that fails later (at [`EncryptedStore::open`](crate::EncryptedStore::open))
    /// is reported then, never replaced by another credential behind the user's back.
    ///
    /// # Errors
    /// The [`CredentialError`] raw-key cases when the raw key is chosen and missing or
    /// malformed; [`CredentialError::PassphraseFile`] or [`CredentialError::EmptyPassphrase`]
    /// for a passphrase given but unusable; [`CredentialError::NoUsableSlot`] when no slot is
    /// of a kind this build opens.
    pub fn from_env(
        info: &StoreInfo,
        passphrase_file: Option<&Path>,
    ) -> Result<CredentialChoice, CredentialError> {
        choose(info, passphrase_file, &|var| std::env::var_os(var))
    }

    /// A passphrase given explicitly: the value of the environment variable `var`, else the
    /// first line of `file`; `None` if neither is given (the front end may then prompt). A
    /// variable that is not valid Unicode counts as not set.
    ///
    /// # Errors
    /// [`CredentialError::PassphraseFile`] if `file` cannot be read;
    /// [`CredentialError::EmptyPassphrase`] for an empty value or first line.
    pub fn passphrase_from_env(
        var: &str,
        file: Option<&Path>,
    ) -> Result<Option<Credential>, CredentialError> {
        explicit_passphrase(var, file, &|var| std::env::var_os(var))
    }
}

impl RawKey {
    /// The environment variable that holds a raw key: the base64 of its 32 bytes.
    pub const ENV_VAR: &str = "TOKENVAULT_KEY";

    /// The raw key in [`ENV_VAR`](Self::ENV_VAR): strict standard base64 of 32 bytes (surrounding
    /// whitespace is ignored).
    ///
    /// # Errors
    /// [`CredentialError::RawKeyMissing`], [`CredentialError::RawKeyNotBase64`] or
    /// [`CredentialError::RawKeyLength`].
    pub fn from_env() -> Result<RawKey, CredentialError> {
        raw_key(&|var| std::env::var_os(var))
    }

    /// A raw key from another variable than [`ENV_VAR`](Self::ENV_VAR) (the new key of a
    /// rekey, `TOKENVAULT_NEW_KEY` in the CLI), in the same form.
    ///
    /// # Errors
    /// [`CredentialError::RawKeyVar`] if it is unset or not the base64 of 32 bytes.
    pub fn from_env_var(var: &'static str) -> Result<RawKey, CredentialError> {
        raw_key(&|name| {
            if name == RawKey::ENV_VAR {
                std::env::var_os(var)
            } else {
                None
            }
        })
        .map_err(|_| CredentialError::RawKeyVar { var })
    }
}

/// Reads one environment variable (the process's, or a test's).
type Env<'a> = dyn Fn(&str) -> Option<OsString> + 'a;

fn choose(
    info: &StoreInfo,
    passphrase_file: Option<&Path>,
    env: &Env<'_>,
) -> Result<CredentialChoice, CredentialError> {
    let has = |kind| info.slots.iter().any(|s| s.kind == kind);
    let keychain = cfg!(feature = "keychain") && has(KeySlotKind::Keychain);
    if has(KeySlotKind::RawKey)
        && (env(RAW_KEY_VAR).is_some() || !(has(KeySlotKind::Passphrase) || keychain))
    {
        return Ok(CredentialChoice::Ready(Credential::raw_key(raw_key(env)?)));
    }
    #[cfg(feature = "keychain")]
    {
        let passphrase_given = env(PASSPHRASE_VAR).is_some() || passphrase_file.is_some();
        if keychain && !(passphrase_given && has(KeySlotKind::Passphrase)) {
            return Ok(CredentialChoice::Ready(Credential::keychain()));
        }
    }
    if has(KeySlotKind::Passphrase) {
        return Ok(
            match explicit_passphrase(PASSPHRASE_VAR, passphrase_file, env)? {
                Some(credential) => CredentialChoice::Ready(credential),
                None => CredentialChoice::NeedsPassphrase,
            },
        );
    }
    Err(CredentialError::NoUsableSlot {
        kinds: info.slots.iter().map(|s| s.kind).collect(),
    })
}

fn explicit_passphrase(
    var: &str,
    file: Option<&Path>,
    env: &Env<'_>,
) -> Result<Option<Credential>, CredentialError> {
    let non_empty = |mut value: Zeroizing<String>, origin| {
        if value.is_empty() {
            Err(CredentialError::EmptyPassphrase { origin })
        } else {
            // Moved, not copied, into the credential.
            Ok(Some(Credential::passphrase(std::mem::take(&mut *value))))
        }
    };
    if let Some(value) = env(var).and_then(|v| v.into_string().ok()) {
        return non_empty(Zeroizing::new(value), PassphraseOrigin::Env(var.to_owned()));
    }
    if let Some(file) = file {
        let text = Zeroizing::new(std::fs::read_to_string(file).map_err(|source| {
            CredentialError::PassphraseFile {
                path: file.to_owned(),
                source,
            }
        })?);
        let line = text.lines().next().unwrap_or_default();
        return non_empty(
            Zeroizing::new(line.to_owned()),
            PassphraseOrigin::File(file.to_owned()),
        );
    }
    Ok(None)
}

fn raw_key(env: &Env<'_>) -> Result<RawKey, CredentialError> {
    let text = Zeroizing::new(
        env(RAW_KEY_VAR)
            .and_then(|v| v.into_string().ok())
            .ok_or(CredentialError::RawKeyMissing)?,
    );
    let bytes = super::base64::decode(text.trim()).ok_or(CredentialError::RawKeyNotBase64)?;
    let array: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| CredentialError::RawKeyLength { len: bytes.len() })?;
    Ok(RawKey::from_bytes(array))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::keys::SlotInfo;
    use KeySlotKind::{Keychain, Passphrase, RawKey as Raw};

    fn info(kinds: &[KeySlotKind]) -> StoreInfo {
        StoreInfo {
            store_id: "00".repeat(16),
            slots: (1..)
                .zip(kinds)
                .map(|(id, &kind)| SlotInfo {
                    id,
                    kind,
                    opened_with: false,
                })
                .collect(),
        }
    }

    /// `AAAA…=`: base64 of 32 zero bytes but one.
    const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=";

    fn with(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        move |var| vars.get(var).cloned()
    }

    /// The kind of what `choose` picked: the credential's, or `None` for "ask".
    fn picked(
        kinds: &[KeySlotKind],
        vars: &[(&str, &str)],
        file: Option<&Path>,
    ) -> Result<Option<KeySlotKind>, CredentialError> {
        Ok(match choose(&info(kinds), file, &with(vars))? {
            CredentialChoice::Ready(c) => Some(c.kind()),
            CredentialChoice::NeedsPassphrase => None,
        })
    }

    #[test]
    fn explicit_first_then_keychain_then_prompt() {
        let key = [(RAW_KEY_VAR, KEY)];
        let pass = [(PASSPHRASE_VAR, "pw")];
        // A raw key given explicitly wins wherever the store has a raw-key slot.
        assert_eq!(picked(&[Passphrase, Raw], &key, None).unwrap(), Some(Raw));
        // A raw-key-only store needs it: missing is an error, not a prompt.
        assert!(matches!(
            picked(&[Raw], &[], None),
            Err(CredentialError::RawKeyMissing)
        ));
        // A passphrase given explicitly, or nothing: the prompt.
        assert_eq!(
            picked(&[Raw, Passphrase], &pass, None).unwrap(),
            Some(Passphrase)
        );
        assert_eq!(picked(&[Passphrase], &[], None).unwrap(), None);
        #[cfg(feature = "keychain")]
        {
            // The keychain before a prompt, and before a raw key not given.
            assert_eq!(
                picked(&[Passphrase, Keychain], &[], None).unwrap(),
                Some(Keychain)
            );
            assert_eq!(picked(&[Raw, Keychain], &[], None).unwrap(), Some(Keychain));
            // An explicit passphrase before the keychain, if the store has a passphrase slot.
            assert_eq!(
                picked(&[Keychain, Passphrase], &pass, None).unwrap(),
                Some(Passphrase)
            );
            assert_eq!(picked(&[Keychain], &pass, None).unwrap(), Some(Keychain));
        }
        #[cfg(not(feature = "keychain"))]
        {
            assert_eq!(picked(&[Raw, Keychain], &key, None).unwrap(), Some(Raw));
            assert!(matches!(
                picked(&[Keychain], &[], None),
                Err(CredentialError::NoUsableSlot { .. })
            ));
        }
        let e = picked(&[KeySlotKind::Unknown(9)], &pass, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "this build cannot open any of the store's key slots (unknown (code 9))"
        );
    }

    #[test]
    fn raw_key_is_strict_base64_of_32_bytes() {
        let got = raw_key(&with(&[(RAW_KEY_VAR, &format!("  {KEY}\n"))])).unwrap();
        let mut want = [0u8; 32];
        want[31] = 1;
        assert_eq!(got.expose_secret(), &want);
        for (text, message) in [
            ("not base64!", "TOKENVAULT_KEY is not valid base64"),
            ("AAAA", "TOKENVAULT_KEY must decode to 32 bytes, not 3"),
        ] {
            let e = raw_key(&with(&[(RAW_KEY_VAR, text)])).unwrap_err();
            assert_eq!(e.to_string(), message);
        }
    }

    #[test]
    fn passphrase_from_variable_or_first_line_of_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pass");
        std::fs::write(&file, "from-file\nsecond line\n").unwrap();
        let given = |vars: &[(&str, &str)], file| {
            explicit_passphrase(PASSPHRASE_VAR, file, &with(vars)).map(|c| c.map(|c| c.kind()))
        };
        assert_eq!(given(&[], None).unwrap(), None);
        assert_eq!(given(&[], Some(&file)).unwrap(), Some(Passphrase));
        let Some(Credential::Passphrase(p)) =
            explicit_passphrase(PASSPHRASE_VAR, Some(&file), &with(&[])).unwrap()
        else {
            panic!("no passphrase")
        };
        assert_eq!(p.secret.as_str(), "from-file");
        let Some(Credential::Passphrase(p)) = explicit_passphrase(
            PASSPHRASE_VAR,
            Some(&file),
            &with(&[(PASSPHRASE_VAR, "env")]),
        )
        .unwrap() else {
            panic!("no passphrase")
        };
        assert_eq!(p.secret.as_str(), "env", "the variable before the file");

        let e = given(&[(PASSPHRASE_VAR, "")], None).unwrap_err();
        assert_eq!(e.to_string(), "empty passphrase from TOKENVAULT_PASSPHRASE");
        std::fs::write(&file, "\nsecond line\n").unwrap();
        let e = given(&[], Some(&file)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("empty passphrase from {}", file.display())
        );
        let missing = dir.path().join("missing");
        let e = given(&[], Some(&missing)).unwrap_err();
        assert_eq!(e.to_string(), format!("cannot read {}", missing.display()));
        assert!(
            std::error::Error::source(&e).is_some(),
            "the I/O error is the source"
        );
    }
}
