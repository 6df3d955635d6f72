//! The `TokenStore` trait (the Zoho SDK's six methods) and the crate's one error type.

use std::fmt;

use crate::matching::LookupField;
use crate::token::OAuthToken;

/// A store of OAuth token records with the Zoho SDK's semantics.
///
/// Matching (used by [`find_token`](Self::find_token) and by [`save_token`](Self::save_token)
/// for a token without id), in this order:
/// 1. the query has a `user_name` → the record with that user name;
/// 2. else it has an `access_token` and neither `client_id` nor `client_secret` → the record
///    with that access token;
/// 3. else it has a `grant_token` or `refresh_token`, and both `client_id` and
///    `client_secret` → the record with that grant token, else (no record has it, or the
///    query has none) the record with that refresh token — the SDKs' `check_condition`.
///
/// Values are compared exactly (bytes); an empty string is an absent value.
pub trait TokenStore {
    /// Finds the record the matching rules select for `query` and returns it merged into the
    /// query: fields the query lacks are filled from storage, fields it has are kept.
    ///
    /// # Errors
    /// [`Error::Tampered`] if the record fails authentication, [`Error::Backend`] on a storage
    /// failure.
    fn find_token(&self, query: &OAuthToken) -> Result<Option<OAuthToken>>;

    /// Saves `token`: a token with an `id` updates the record with that id (or is inserted
    /// under that id); otherwise the matching rules pick the record to update. An update merges
    /// (fields the token lacks keep their stored values). No match inserts a new record with a
    /// fresh unique id. Afterwards `token` holds the record as stored, id included.
    ///
    /// The match and the write are one atomic step: concurrent saves never duplicate a record
    /// or lose an update.
    ///
    /// # Errors
    /// [`Error::InvalidToken`] for a new record without access, refresh or grant token;
    /// [`Error::Conflict`] if the result would share a user name or token with another record;
    /// [`Error::SealLimitReached`] when the data key must be rotated first; storage and
    /// integrity errors as for `find_token`. On error nothing is written.
    fn save_token(&self, token: &mut OAuthToken) -> Result<()>;

    /// Deletes the record with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`] if no record has this id; [`Error::Backend`] on a storage failure.
    fn delete_token(&self, id: &str) -> Result<()>;

    /// Every record, opened.
    ///
    /// # Errors
    /// [`Error::Tampered`] naming the first record that fails authentication (use
    /// [`EncryptedStore::verify`](crate::EncryptedStore::verify) to list them all);
    /// [`Error::Backend`] on a storage failure.
    fn get_tokens(&self) -> Result<Vec<OAuthToken>>;

    /// Deletes every record.
    ///
    /// # Errors
    /// [`Error::Backend`] on a storage failure; then nothing was deleted.
    fn delete_tokens(&self) -> Result<()>;

    /// The record with this id, or `None`.
    ///
    /// # Errors
    /// As for `find_token`.
    fn find_token_by_id(&self, id: &str) -> Result<Option<OAuthToken>>;
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What an integrity error is about. Record ids are not secret and are named; nothing else is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subject {
    /// The store header.
    Header,
    /// A key slot of the header, by slot id.
    KeySlot(u32),
    /// A wrapped data key of the header, by key id.
    DataKey(u32),
    /// A sealed record, by record id.
    Record(String),
    /// The store's audit log (`tokenvault audit verify` names the entries).
    AuditLog,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Header => f.write_str("the store header"),
            Subject::KeySlot(id) => write!(f, "key slot {id}"),
            Subject::DataKey(id) => write!(f, "data key {id}"),
            Subject::Record(id) => write!(f, "record {id:?}"),
            Subject::AuditLog => f.write_str("the audit log"),
        }
    }
}

/// What kind of credential opens a key slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySlotKind {
    /// A passphrase (Argon2id).
    Passphrase,
    /// A 32-byte key held by the application.
    RawKey,
    /// A secret in the OS keychain.
    Keychain,
    /// A kind written by a newer build, by its code.
    Unknown(u8),
}

impl fmt::Display for KeySlotKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySlotKind::Passphrase => f.write_str("passphrase"),
            KeySlotKind::RawKey => f.write_str("raw key"),
            KeySlotKind::Keychain => f.write_str("keychain"),
            KeySlotKind::Unknown(code) => write!(f, "unknown (code {code})"),
        }
    }
}

/// `kinds` as a comma-separated list, for messages.
pub(crate) fn list_kinds(kinds: &[KeySlotKind]) -> String {
    kinds
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn rolled_back(seen: u64, found: u64) -> String {
    if seen == u64::MAX {
        format!(
            "this copy of the store was rekeyed since (write {found}); its old keys and copies are revoked"
        )
    } else {
        format!(
            "this copy of the store is older than one already seen (write {found}, seen {seen}): it was rolled back or replaced by an older copy"
        )
    }
}

/// Everything that can go wrong. No variant carries secret material; cryptographic failures
/// say *what* failed, never *why*.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The passphrase or key opens none of the store's key slots (or the slot was altered:
    /// the two cannot be told apart). Nothing was changed.
    #[error("wrong passphrase or key for this store")]
    WrongKey,

    /// The store has no key slot of the credential's kind (e.g. a passphrase for a store that
    /// only has a raw-key slot).
    #[error(
        "this store has no {kind} key slot; open it with one of its slots: {}",
        list_kinds(.available)
    )]
    NoMatchingSlot {
        /// The credential's kind.
        kind: KeySlotKind,
        /// The kinds of the store's slots, in slot order (a kind repeats for each slot of it).
        available: Vec<KeySlotKind>,
    },

    /// Bytes failed authentication or do not parse: altered, truncated, extended, or moved
    /// from another record, store or key.
    #[error("{what} failed its integrity check (altered, truncated, or moved from elsewhere)")]
    Tampered {
        /// What failed.
        what: Subject,
    },

    /// A record is sealed under a key id that the header does not hold.
    #[error("{what} is sealed under data key {key_id}, which this store does not have")]
    UnknownKey {
        /// The record.
        what: Subject,
        /// The key id it names.
        key_id: u32,
    },

    /// No record has this id.
    #[error("no token with id {id:?}")]
    NotFound {
        /// The id asked for.
        id: String,
    },

    /// No record matches the query (the Zoho matching rules found nothing).
    #[error("no token matches the query")]
    NoMatch,

    /// The token cannot be saved as it is.
    #[error("invalid token: {reason}")]
    InvalidToken {
        /// Why.
        reason: &'static str,
    },

    /// Saving would give two records the same lookup value (user name or token).
    #[error("another record (id {existing_id:?}) already has this {field}")]
    Conflict {
        /// The field whose value is taken.
        field: LookupField,
        /// The record that has it.
        existing_id: String,
    },

    /// A format version, algorithm or record kind this build does not know.
    #[error("unsupported {what}: {detail}")]
    UnsupportedFormat {
        /// What part of the format.
        what: &'static str,
        /// The value found.
        detail: String,
    },

    /// Argon2id parameters outside the accepted range; checked before the KDF runs.
    #[error(
        "Argon2id parameters out of bounds (m = {m_kib} KiB, t = {t}, p = {p}); accepted: \
         m 19 MiB..=1 GiB, t 2..=10, p 1..=16"
    )]
    KdfParamsOutOfBounds {
        /// Memory in KiB.
        m_kib: u32,
        /// Passes.
        t: u32,
        /// Lanes.
        p: u32,
    },

    /// `create` found a store already there.
    #[error("a store already exists here; refusing to overwrite it")]
    StoreExists,

    /// `open` found no store.
    #[error("no store here (create one first)")]
    NoStore,

    /// The active data key has used its 2^32 random nonces.
    #[error("data key {key_id} has reached its limit of 2^32 seals; rotate the data key")]
    SealLimitReached {
        /// The exhausted key.
        key_id: u32,
    },

    /// A key-management request that cannot be honoured (e.g. removing the last key slot).
    #[error("refused: {reason}")]
    Refused {
        /// Why.
        reason: &'static str,
    },

    /// The OS keychain could not give or keep a key. The store and its other slots are
    /// untouched; open it with another slot (passphrase or raw key) if it has one.
    #[error("{reason}; open the store with another key slot (passphrase or raw key) if it has one")]
    Keychain {
        /// What failed (never the secret).
        reason: String,
    },

    /// This copy of the store is older than one already seen: its write counter went back
    /// (a restored backup or copied-back file; see [`Witness`](crate::Witness)). `seen` is
    /// `u64::MAX` for a store that was rekeyed since.
    #[error("{}", rolled_back(*seen, *found))]
    RolledBack {
        /// The highest write counter seen of this store.
        seen: u64,
        /// The counter of the copy found.
        found: u64,
    },

    /// The rollback witness could not be read: the store is not opened (a witness that
    /// cannot be written after a commit is logged instead: the write happened).
    #[error("the rollback witness failed: {reason}")]
    Witness {
        /// What failed.
        reason: String,
    },

    /// Another process rekeyed the store (or its header was replaced) since this handle
    /// opened it; open it again with a current credential.
    #[error("the store was rekeyed since it was opened (or its header replaced); open it again")]
    Rekeyed,

    /// The operating system's random number generator failed.
    #[error("the OS random number generator failed")]
    Random,

    /// A store URI that is not valid ([`crate::uri`]); it is never quoted (it may hold a
    /// password).
    #[error(transparent)]
    Uri(#[from] crate::uri::UriError),

    /// No credential could be taken from the environment ([`crate::open_from_env`]).
    #[error(transparent)]
    Credential(#[from] crate::keys::CredentialError),

    /// The storage backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl Error {
    /// A short, stable name for the error's class (`wrong_key`, `tampered`, `not_found`, …):
    /// what the audit trail records of a failure, since an error's message may name more
    /// than a log should keep. Storage errors are `backend_` and their kind.
    pub fn code(&self) -> &'static str {
        match self {
            Error::WrongKey => "wrong_key",
            Error::NoMatchingSlot { .. } => "no_matching_slot",
            Error::Tampered { .. } => "tampered",
            Error::UnknownKey { .. } => "unknown_key",
            Error::NotFound { .. } => "not_found",
            Error::NoMatch => "no_match",
            Error::InvalidToken { .. } => "invalid_token",
            Error::Conflict { .. } => "conflict",
            Error::UnsupportedFormat { .. } => "unsupported_format",
            Error::KdfParamsOutOfBounds { .. } => "kdf_params_out_of_bounds",
            Error::StoreExists => "store_exists",
            Error::NoStore => "no_store",
            Error::SealLimitReached { .. } => "seal_limit_reached",
            Error::Refused { .. } => "refused",
            Error::Keychain { .. } => "keychain",
            Error::RolledBack { .. } => "rolled_back",
            Error::Witness { .. } => "witness",
            Error::Rekeyed => "rekeyed",
            Error::Random => "random",
            Error::Uri(_) => "uri",
            Error::Credential(_) => "credential",
            Error::Backend(e) => match e.kind() {
                BackendErrorKind::Io => "backend_io",
                BackendErrorKind::Busy => "backend_busy",
                BackendErrorKind::Unavailable => "backend_unavailable",
                BackendErrorKind::Corrupt => "backend_corrupt",
                BackendErrorKind::Conflict => "backend_conflict",
                BackendErrorKind::NotSupported => "backend_not_supported",
                BackendErrorKind::Insecure => "backend_insecure",
                BackendErrorKind::Other => "backend_other",
            },
        }
    }
}

/// A storage failure, with a portable kind to act on and the backend's own error as source.
#[derive(Debug, thiserror::Error)]
#[error("storage backend error ({kind}): {source}")]
pub struct BackendError {
    kind: BackendErrorKind,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl BackendError {
    /// Wraps a backend's error. Its message must not contain secrets; a backend only ever sees
    /// sealed bytes, ids and tags, so this holds unless the backend adds its own.
    pub fn new(
        kind: BackendErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            kind,
            source: source.into(),
        }
    }

    /// What kind of failure it is.
    pub fn kind(&self) -> BackendErrorKind {
        self.kind
    }
}

/// The portable kinds of storage failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// I/O failed (disk full, permission denied, …).
    Io,
    /// Another writer holds the store and the wait timed out.
    Busy,
    /// The storage service cannot be reached.
    Unavailable,
    /// The stored data is not in the backend's format.
    Corrupt,
    /// A uniqueness constraint was violated.
    Conflict,
    /// The operation is not supported by this backend.
    NotSupported,
    /// A file or directory of the store is unsafe to use: a symbolic link, owned by another
    /// user, or writable by others (SECURITY.md, "Files beside a store"). Nothing was written.
    Insecure,
    /// Anything else.
    Other,
}

impl fmt::Display for BackendErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendErrorKind::Io => "I/O",
            BackendErrorKind::Busy => "busy",
            BackendErrorKind::Unavailable => "unavailable",
            BackendErrorKind::Corrupt => "corrupt",
            BackendErrorKind::Conflict => "conflict",
            BackendErrorKind::NotSupported => "not supported",
            BackendErrorKind::Insecure => "insecure",
            BackendErrorKind::Other => "other",
        })
    }
}
