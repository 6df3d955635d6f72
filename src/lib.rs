//! # tokenvault
//!
//! An OAuth token store with the Zoho SDKs' semantics ([`TokenStore`]: `find_token`,
//! `save_token`, `delete_token`, `get_tokens`, `delete_tokens`, `find_token_by_id`) that keeps
//! every record sealed with AES-256-GCM. [`EncryptedStore`] seals and delegates to a
//! [`Backend`](backend::Backend), which only ever sees ciphertext, blind-index tags and ids.
//!
//! ```
//! use tokenvault::backend::MemoryBackend;
//! use tokenvault::{Credential, EncryptedStore, OAuthToken, RawKey, TokenStore};
//!
//! # fn main() -> tokenvault::Result<()> {
//! let key = Credential::raw_key(RawKey::generate()?);
//! let store = EncryptedStore::create(MemoryBackend::new(), &key)?;
//!
//! let mut token = OAuthToken::new()
//!     .with_user_name("ann@example.com")
//!     .with_client_id("1000.ABC")
//!     .with_client_secret("client-secret")
//!     .with_refresh_token("1000.refresh")
//!     .with_access_token("1000.access")
//!     .with_expiry_time(1_900_000_000_000);
//! store.save_token(&mut token)?; // sets token.id
//!
//! let found = store
//!     .find_token(&OAuthToken::new().with_user_name("ann@example.com"))?
//!     .expect("saved above");
//! assert_eq!(found.refresh_token().unwrap().expose_secret(), "1000.refresh");
//! assert!(!format!("{found:?}").contains("1000.refresh")); // Debug redacts secrets
//! # Ok(())
//! # }
//! ```
//!
//! Layout: [`token`] (the record) → [`store`] (the trait and [`Error`]) → [`vault`] (sealing)
//! → `crypto` and `format` (keys and bytes, private) → [`backend`] (storage). The threat model,
//! formats and what the blind index leaks are in SECURITY.md.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backend;
mod crypto;
pub mod danger;
mod format;
pub mod import;
#[cfg(feature = "async")]
pub mod integrations;
mod keys;
pub mod loopback;
mod matching;
#[cfg(feature = "oauth")]
pub mod oauth;
mod open;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod token;
pub mod uri;
pub mod vault;

pub use crypto::{Argon2Params, Tag};
#[cfg(feature = "keychain")]
pub use keys::keychain;
pub use keys::{Credential, CredentialChoice, CredentialError, PassphraseOrigin, RawKey, StoreKey};
pub use matching::LookupField;
pub use open::{Store, create, open, open_backend, open_from_env};
pub use store::{BackendError, BackendErrorKind, Error, Result, Subject, TokenStore};
pub use token::{
    AccessToken, ClientSecret, GrantToken, OAuthToken, RefreshToken, TokenField, UserSignature,
};
#[cfg(feature = "oauth")]
pub use vault::{AccessOptions, FindBy, Fresh};
pub use vault::{
    AuditEntry, AuditMode, AuditOutcome, AuditProblem, AuditTrail, CopyReport,
    DEFAULT_REFRESH_SKEW, EncryptedStore, Finding, KeySlotKind, KeyUsage, RecordSetCheck,
    RefreshError, RekeyReport, RotationReport, Saved, SlotInfo, StateFileWitness, StoreInfo,
    StoreOptions, VerifyReport, Witness, inspect,
};

/// The README's examples, compiled and run as doctests (they use the `oauth` feature).
#[cfg(all(doctest, feature = "oauth", feature = "sqlite"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
