//! Shared test harness: the conformance suite that every backend must pass.
//!
//! A backend's test file instantiates the whole suite with one line:
//! ```ignore
//! mod common;
//! tokenvault_conformance!(|| Box::new(MemoryBackend::new()) as Box<dyn Backend>);
//! ```
//! Each case is a function `fn(&Make)` in a submodule; adding a case means adding its name to
//! the list in `tokenvault_conformance!`.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod child;
pub mod concurrency;
pub mod model;
pub mod semantics;
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub mod servers;
pub mod skipped;

use std::time::Duration;

use tokenvault::backend::{Backend, HeldLock, LookupField, StoredRecord, Tag, Transaction};
use tokenvault::{BackendError, Credential, EncryptedStore, RawKey};

/// Makes a fresh, empty backend.
pub type Make = dyn Fn() -> Box<dyn Backend>;

/// The store type every conformance case works on.
pub type Store = EncryptedStore<Box<dyn Backend>>;

/// A fixed raw key: fast to unlock (no Argon2id), so cases can create many stores.
pub fn raw_key() -> Credential {
    Credential::raw_key(RawKey::from_bytes([0x42; 32]))
}

/// A new store on a fresh backend, unlocked with [`raw_key`].
pub fn new_store(make: &Make) -> Store {
    EncryptedStore::create(make(), &raw_key()).expect("create store")
}

/// A backend together with the place it lives in (a temporary directory, or a schema or
/// database of its own on a server), which is dropped after the backend. Forwards every
/// `Backend` method.
pub struct Within<B, P> {
    pub backend: B,
    pub place: P,
}

impl<B: Backend, P: Send + Sync> Backend for Within<B, P> {
    fn read_header(&self) -> Result<Option<Vec<u8>>, BackendError> {
        self.backend.read_header()
    }
    fn get(&self, id: &str) -> Result<Option<StoredRecord>, BackendError> {
        self.backend.get(id)
    }
    fn find_by_tag(
        &self,
        field: LookupField,
        tag: &Tag,
    ) -> Result<Option<StoredRecord>, BackendError> {
        self.backend.find_by_tag(field, tag)
    }
    fn list(&self) -> Result<Vec<StoredRecord>, BackendError> {
        self.backend.list()
    }
    fn transact(
        &self,
        step: &mut dyn FnMut(&mut dyn Transaction) -> tokenvault::Result<()>,
    ) -> tokenvault::Result<()> {
        self.backend.transact(step)
    }
    fn lock(&self, name: &str, timeout: Duration) -> Result<Box<dyn HeldLock>, BackendError> {
        self.backend.lock(name, timeout)
    }
}

/// A fresh SQLite backend in a new temporary directory.
#[cfg(feature = "sqlite")]
pub fn temp_sqlite() -> Box<dyn Backend> {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = tokenvault::backend::SqliteBackend::open(dir.path().join("tokens.db"))
        .expect("open sqlite");
    Box::new(Within {
        backend,
        place: dir,
    })
}

/// A fresh file backend in a new temporary directory.
pub fn temp_file() -> Box<dyn Backend> {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = tokenvault::backend::FileBackend::open(dir.path().join("tokens.tv"))
        .expect("open file store");
    Box::new(Within {
        backend,
        place: dir,
    })
}

/// Instantiates every conformance case as a `#[test]` for the backend `$make` builds.
#[macro_export]
macro_rules! tokenvault_conformance {
    ($make:expr) => {
        $crate::tokenvault_conformance!(@cases $make;
            semantics::find_by_user_name,
            semantics::user_name_takes_precedence_over_tokens,
            semantics::find_by_access_token_without_client_credentials,
            semantics::access_token_ignored_with_client_id_or_secret,
            semantics::find_by_grant_token_with_client_credentials,
            semantics::refresh_token_when_no_grant_token_matches,
            semantics::grant_and_refresh_need_both_client_id_and_secret,
            semantics::find_merges_stored_fields_into_query,
            semantics::find_without_match_returns_none,
            semantics::empty_query_matches_nothing,
            semantics::save_inserts_with_new_unique_id,
            semantics::save_by_id_updates_that_record,
            semantics::save_with_unknown_id_inserts_under_that_id,
            semantics::save_by_matching_rules_updates_without_duplicate,
            semantics::save_merges_missing_fields_from_stored,
            semantics::save_refuses_id_or_user_without_any_token,
            semantics::save_refuses_conflicting_lookup_values,
            semantics::save_token_fills_caller_token,
            semantics::delete_token_removes_only_that_record,
            semantics::delete_unknown_id_is_not_found,
            semantics::delete_tokens_removes_all,
            semantics::get_tokens_returns_all_records,
            semantics::find_token_by_id,
            semantics::values_are_stored_verbatim,
            semantics::reopen_sees_saved_records,
            model::matches_reference_model,
            concurrency::eight_threads_thousand_saves,
        );
    };
    (@cases $make:expr; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                common::$module::$case(&$make);
            }
        )*
    };
}
