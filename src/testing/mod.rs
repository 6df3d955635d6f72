//! The conformance suite every backend must pass (feature `testing`), for this crate's backends
//! and for anyone writing their own: the Zoho semantics case by case ([`semantics`]), a
//! reference model driven by random operation sequences ([`model`], proptest), and threads
//! saving at once ([`concurrency`]).
//!
//! A backend's test file instantiates the whole suite with one line, each case a `#[test]`:
//! ```ignore
//! use tokenvault::backend::{Backend, MemoryBackend};
//! use tokenvault::tokenvault_conformance;
//!
//! tokenvault_conformance!(|| Box::new(MemoryBackend::new()) as Box<dyn Backend>);
//! ```
//! Each case is a function `fn(&Make)` that panics on a violation. [`Instrumented`] wraps any
//! backend to record what it is given and to inject commit failures.

pub mod audit_log;
pub mod concurrency;
pub mod model;
pub mod semantics;

use std::time::Duration;

pub use crate::backend::testing::Instrumented;
use crate::backend::{Backend, HeldLock, LookupField, RecordRef, StoredRecord, Tag, Transaction};
pub use crate::open::Store;
use crate::{BackendError, Credential, EncryptedStore, RawKey};

/// Makes a fresh, empty backend.
pub type Make = dyn Fn() -> Box<dyn Backend>;

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
    /// The backend.
    pub backend: B,
    /// What it lives in, dropped after it.
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
    fn scan(
        &self,
        with_tags: bool,
        visit: &mut dyn FnMut(RecordRef<'_>) -> Result<(), BackendError>,
    ) -> Result<(), BackendError> {
        self.backend.scan(with_tags, visit)
    }
    fn transact(
        &self,
        step: &mut dyn FnMut(&mut dyn Transaction) -> crate::Result<()>,
    ) -> crate::Result<()> {
        self.backend.transact(step)
    }
    fn lock(&self, name: &str, timeout: Duration) -> Result<Box<dyn HeldLock>, BackendError> {
        self.backend.lock(name, timeout)
    }
    fn prepare_audit(&self) -> Result<(), BackendError> {
        self.backend.prepare_audit()
    }
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
            semantics::scan_hands_over_every_record_once,
            semantics::find_token_by_id,
            semantics::values_are_stored_verbatim,
            semantics::reopen_sees_saved_records,
            model::matches_reference_model,
            concurrency::eight_threads_thousand_saves,
            audit_log::audit_log_appends_and_reads_in_order,
            audit_log::audit_log_rolls_back_with_its_transaction,
            audit_log::audit_log_refuses_a_duplicate_seq,
            audit_log::audit_log_clear_then_rewrite,
            audit_log::audit_log_unprepared_reads_empty,
            audit_log::audit_log_prepare_races_safely,
        );
    };
    (@cases $make:expr; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::testing::$module::$case(&$make);
            }
        )*
    };
}
