//! `EncryptedStore`: the `TokenStore` that seals every record and delegates storage to a
//! [`Backend`].

#[cfg(feature = "oauth")]
mod access;
mod audit;
mod bulk;
mod freshness;
mod maintenance;
mod refresh;
mod rekey;
mod sealing;
mod witness;
mod writing;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use audit::op;
use freshness::{FreshnessKeys, RecordSet};

#[cfg(feature = "oauth")]
pub use access::{AccessOptions, FindBy, Fresh};
pub use audit::{AuditEntry, AuditMode, AuditOutcome, AuditProblem, AuditTrail};
pub use bulk::CopyReport;
pub use freshness::Finding;
pub use maintenance::{KeyUsage, RecordSetCheck, RotationReport, VerifyReport, inspect};
pub use refresh::{DEFAULT_REFRESH_SKEW, REFRESH_LOCK_TIMEOUT, RefreshError, needs_refresh};
pub use rekey::RekeyReport;
pub use witness::{StateFileWitness, Witness};

// Defined where the layers below can use them; re-exported here, where they have always been.
pub use crate::keys::{SlotInfo, StoreInfo};
pub use crate::store::KeySlotKind;

use crate::backend::{Backend, LookupTags, StoredRecord, Transaction};
use crate::crypto::{AeadKey, Argon2Params, IndexKey, Key, Tag, label, random_array, role};
use crate::format::header::{self, DataKeyEntry, Header};
use crate::format::{HeaderError, hex};
use crate::keys::Credential;
use crate::matching::{self, LookupField};
use crate::store::{Error, Result, Subject, TokenStore};
use crate::token::{OAuthToken, check_record_id};

/// Random 96-bit nonces allow 2^32 seals per key (NIST SP 800-38D §8.3).
pub(crate) const SEAL_LIMIT: u64 = 1 << 32;
/// From here on, every seal warns that the key should be rotated.
pub(crate) const SEAL_WARNING: u64 = 1 << 31;

/// What [`EncryptedStore::save`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Saved {
    /// A new record.
    Inserted,
    /// An existing record, merged.
    Updated,
}

/// Options for creating a store.
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreOptions {
    /// Argon2id cost of passphrase slots (RFC 9106's m = 64 MiB, t = 3, p = 4 by default).
    pub argon2: Argon2Params,
}

/// A token store that seals every record with AES-256-GCM before handing it to its backend.
///
/// It exists only unlocked: [`create`](Self::create) and [`open`](Self::open) are the only
/// ways to get one, and both need a [`Credential`]. Keys are zeroized when it is dropped.
pub struct EncryptedStore<B: Backend> {
    backend: B,
    store_id: [u8; 16],
    store_key: Key<role::Store>,
    header_mac_key: Key<role::Data>,
    wrap_key: AeadKey,
    index: IndexKey,
    freshness: FreshnessKeys,
    /// Chains the audit log's entries.
    audit_key: Key<role::Data>,
    /// The header as last read, with its data keys unwrapped. Replaced (never mutated) when
    /// another writer changed the header; never held across a backend call.
    current: RwLock<Arc<HeaderState>>,
    /// The cached header's audit mode code, readable without the lock: every find asks.
    audit_mode: AtomicU8,
    opened_slot: u32,
    witness: Option<Box<dyn Witness>>,
}

pub(crate) struct HeaderState {
    bytes: Vec<u8>,
    header: Header,
    data_keys: Arc<BTreeMap<u32, AeadKey>>,
    /// The record-set summary; `None` for a layout-version-1 header (not yet upgraded).
    record_set: Option<RecordSet>,
}

impl<B: Backend> std::fmt::Debug for EncryptedStore<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedStore")
            .field("store_id", &hex(&self.store_id))
            .finish_non_exhaustive()
    }
}

fn tampered(id: &str) -> Error {
    Error::Tampered {
        what: Subject::Record(id.to_owned()),
    }
}

/// A header that cannot be used, in the crate's terms (format knows nothing above it).
impl From<HeaderError> for Error {
    fn from(e: HeaderError) -> Self {
        match e {
            HeaderError::Tampered => Error::Tampered {
                what: Subject::Header,
            },
            HeaderError::Unsupported { what, detail } => Error::UnsupportedFormat { what, detail },
            HeaderError::Kdf(e) => e.into(),
        }
    }
}

impl<B: Backend> EncryptedStore<B> {
    /// Creates a new store in `backend`, unlocked by `credential`, with default options.
    ///
    /// # Errors
    /// [`Error::StoreExists`] if the backend already holds a store; [`Error::Backend`] on a
    /// storage failure; [`Error::Random`] if the OS random number generator fails.
    pub fn create(backend: B, credential: &Credential) -> Result<Self> {
        Self::create_with(backend, credential, StoreOptions::default())
    }

    /// Creates a new store with `options`.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub fn create_with(backend: B, credential: &Credential, options: StoreOptions) -> Result<Self> {
        let store_id: [u8; 16] = random_array()?;
        let store_key = Key::<role::Store>::random()?;
        let slot = credential.new_slot(1, &store_id, &store_key, options.argon2)?;
        let data_key = Key::<role::Data>::random()?;
        let wrap_key: AeadKey = store_key.derive::<role::Data>(label::DATA_KEY_WRAP).aead();
        let header = Header {
            store_id,
            store_key_commitment: store_key.commitment(),
            slots: vec![slot],
            keys: vec![DataKeyEntry {
                id: 1,
                seals: 0,
                commitment: data_key.commitment(),
                wrapped: wrap_key.wrap_key(&data_key, &header::data_key_ad(&store_id, 1))?,
            }],
            active_key: 1,
            freshness: Some(header::Freshness {
                writes: 1,
                record_set: RecordSet::default().seal(
                    &FreshnessKeys::new(&store_key),
                    &store_id,
                    1,
                )?,
            }),
            audit: None,
        };
        let mac_key: Key<role::Data> = store_key.derive(label::HEADER_MAC);
        let bytes = header.write(mac_key.expose());
        let created = backend.transact(&mut |tx| {
            if tx.header()?.is_some() || !tx.list()?.is_empty() {
                return Err(Error::StoreExists);
            }
            tx.put_header(&bytes)?;
            Ok(())
        });
        if created.is_err() {
            // The store id is new: what the slot left outside the store (a keychain entry)
            // belongs to nothing else.
            credential.discard_new_slot(&store_id);
        }
        created?;
        Self::unlocked(backend, store_key, 1, bytes, None)
    }

    /// Opens the store in `backend` with `credential`.
    ///
    /// The header is parsed and its Argon2id parameters bounded before any KDF runs; the
    /// credential is tried on every slot of its kind; the unwrapped store key must match the
    /// header's commitment, and the header's MAC must verify before anything else in it is used.
    ///
    /// # Errors
    /// [`Error::NoStore`] if there is none; [`Error::WrongKey`] if no slot opens;
    /// [`Error::NoMatchingSlot`] if the store has no slot of the credential's kind;
    /// [`Error::KdfParamsOutOfBounds`], [`Error::UnsupportedFormat`] or [`Error::Tampered`]
    /// for a hostile or damaged header; [`Error::Backend`] on a storage failure.
    pub fn open(backend: B, credential: &Credential) -> Result<Self> {
        let bytes = backend.read_header()?.ok_or(Error::NoStore)?;
        let header = Header::read(&bytes)?;
        let (slot_id, store_key) = credential.open(&header)?;
        Self::unlocked(backend, store_key, slot_id, bytes, None)
    }

    /// [`open`](Self::open), checking the store against `witness` first and keeping it up to
    /// date after every write: opening a copy older than the witness has seen fails.
    ///
    /// # Errors
    /// As [`open`](Self::open); [`Error::RolledBack`] for an older copy of the store;
    /// [`Error::Witness`] if the witness cannot be read (one that cannot be written after a
    /// commit is logged: the write happened).
    pub fn open_witnessed(
        backend: B,
        credential: &Credential,
        witness: Box<dyn Witness>,
    ) -> Result<Self> {
        let bytes = backend.read_header()?.ok_or(Error::NoStore)?;
        let (slot_id, store_key) = credential.open(&Header::read(&bytes)?)?;
        Self::unlocked(backend, store_key, slot_id, bytes, Some(witness))?.checked_by_witness()
    }

    /// Opens the store with its own key, exported earlier by
    /// [`export_store_key`](Self::export_store_key) (a session cache: no slot, no Argon2id),
    /// checked against the header's store-key commitment; with `witness`, as
    /// [`open_witnessed`](Self::open_witnessed).
    ///
    /// # Errors
    /// [`Error::WrongKey`] for a key that is not this store's (another store's, or one from
    /// before a [`rekey`](Self::rekey)); otherwise as [`open`](Self::open) and
    /// [`open_witnessed`](Self::open_witnessed).
    pub fn open_with_store_key(
        backend: B,
        key: &crate::StoreKey,
        witness: Option<Box<dyn Witness>>,
    ) -> Result<Self> {
        let bytes = backend.read_header()?.ok_or(Error::NoStore)?;
        let header = Header::read(&bytes)?;
        let store_key = Key::<role::Store>::init(|out| out.copy_from_slice(key.expose_secret()));
        if !store_key.matches_commitment(&header.store_key_commitment) {
            return Err(Error::WrongKey);
        }
        // No slot opened it: slot 0 is none (slot ids start at 1).
        Self::unlocked(backend, store_key, 0, bytes, witness)?.checked_by_witness()
    }

    /// The store's own key, for a session cache (the CLI's `unlock`): whoever holds it opens
    /// the store with [`open_with_store_key`](Self::open_with_store_key) until a
    /// [`rekey`](Self::rekey). See [`StoreKey`](crate::StoreKey).
    pub fn export_store_key(&self) -> crate::StoreKey {
        crate::StoreKey::from_bytes(*self.store_key.expose())
    }

    /// Checks a store just unlocked against its witness (`open_witnessed`).
    fn checked_by_witness(self) -> Result<Self> {
        let store = self;
        // (Without a witness: only the header read again, which a fresh open may well skip.)
        // The store id is authenticated now. The witness is read before the header it is
        // checked against, so a counter another process recorded meanwhile is one that
        // header already has.
        let seen = match &store.witness {
            Some(w) => witness::latest(&**w, &store.store_id)?,
            None => None,
        };
        let state = store.fresh_state()?;
        let found = witness::writes_of(&state.header);
        match seen {
            Some(seen) if seen > found => Err(Error::RolledBack { seen, found }),
            _ => {
                store.witness_saw(&state.header);
                Ok(store)
            }
        }
    }

    fn unlocked(
        backend: B,
        store_key: Key<role::Store>,
        opened_slot: u32,
        header_bytes: Vec<u8>,
        witness: Option<Box<dyn Witness>>,
    ) -> Result<Self> {
        let header_mac_key = store_key.derive(label::HEADER_MAC);
        let wrap_key = store_key.derive::<role::Data>(label::DATA_KEY_WRAP).aead();
        let index = IndexKey::new(&store_key);
        let freshness = FreshnessKeys::new(&store_key);
        let audit_key = store_key.derive(audit::CHAIN_LABEL);
        let header = Header::read(&header_bytes)?;
        let store = Self {
            backend,
            store_id: header.store_id,
            store_key,
            header_mac_key,
            wrap_key,
            index,
            freshness,
            audit_key,
            current: RwLock::new(Arc::new(HeaderState {
                bytes: Vec::new(),
                header,
                data_keys: Arc::default(),
                record_set: None,
            })),
            audit_mode: AtomicU8::new(0),
            opened_slot,
            witness,
        };
        let state = Arc::new(store.load(header_bytes)?);
        store.cache(&state);
        Ok(store)
    }

    /// Parses and authenticates header bytes and unwraps its data keys.
    fn load(&self, bytes: Vec<u8>) -> Result<HeaderState> {
        let header = Header::read(&bytes)?;
        // Checked before the MAC (which another store key fails too) for the clearer error;
        // either way the header is refused.
        if header.store_id != self.store_id {
            return Err(Error::Rekeyed);
        }
        Header::verify_mac(&bytes, self.header_mac_key.expose())?;
        if !self
            .store_key
            .matches_commitment(&header.store_key_commitment)
        {
            return Err(Error::Tampered {
                what: Subject::Header,
            });
        }
        let mut data_keys = BTreeMap::new();
        for entry in &header.keys {
            let ad = header::data_key_ad(&self.store_id, entry.id);
            let key: Key<role::Data> =
                self.wrap_key
                    .unwrap_key(&entry.wrapped, &ad)
                    .map_err(|_| Error::Tampered {
                        what: Subject::DataKey(entry.id),
                    })?;
            if !key.matches_commitment(&entry.commitment) {
                return Err(Error::Tampered {
                    what: Subject::DataKey(entry.id),
                });
            }
            data_keys.insert(entry.id, key.aead());
        }
        let record_set = match &header.freshness {
            Some(f) => Some(RecordSet::open(
                &self.freshness,
                &self.store_id,
                f.writes,
                &f.record_set,
            )?),
            None => None,
        };
        Ok(HeaderState {
            bytes,
            header,
            data_keys: Arc::new(data_keys),
            record_set,
        })
    }

    fn state(&self) -> Arc<HeaderState> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The highest write counter this handle has seen: its cached header's.
    fn seen_writes(&self) -> u64 {
        witness::writes_of(&self.state().header)
    }

    /// The state for the header as the backend holds it now.
    fn fresh_state(&self) -> Result<Arc<HeaderState>> {
        let seen = self.seen_writes();
        self.sync(self.backend.read_header()?, seen)
    }

    /// The state for the header inside `tx`.
    fn state_in(&self, tx: &mut dyn Transaction) -> Result<Arc<HeaderState>> {
        let seen = self.seen_writes();
        self.sync(tx.header()?, seen)
    }

    /// The state for header bytes read after this handle had seen write number `seen`: the
    /// cached one if unchanged, else loaded (another process passed, changed a passphrase or
    /// rotated). A header older than `seen` was replaced by an older copy under the handle's
    /// feet: refused. (`seen` is taken before the read: a newer header another thread cached
    /// while the read was under way is no reason to refuse it.) The loaded state is cached
    /// unless a newer one was meanwhile.
    fn sync(&self, bytes: Option<Vec<u8>>, seen: u64) -> Result<Arc<HeaderState>> {
        let bytes = bytes.ok_or(Error::NoStore)?;
        let cached = self.state();
        if cached.bytes == bytes {
            return Ok(cached);
        }
        let fresh = Arc::new(self.load(bytes)?);
        let found = witness::writes_of(&fresh.header);
        if found < seen {
            return Err(Error::RolledBack { seen, found });
        }
        self.cache(&fresh);
        Ok(fresh)
    }

    /// Makes `state` the cached one unless the cached one is newer.
    fn cache(&self, state: &Arc<HeaderState>) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if witness::writes_of(&current.header) <= witness::writes_of(&state.header) {
            *current = state.clone();
            // Under the lock, so that the mode always follows the cached header.
            self.audit_mode
                .store(state.header.audit.map_or(0, |a| a.mode), Ordering::Relaxed);
        }
    }

    /// The backend this store delegates to.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Locks the store (keys are zeroized) and returns its backend.
    pub fn into_backend(self) -> B {
        self.backend
    }

    /// The store id (random, 16 bytes, hex): names the store in key slots and the keychain.
    pub fn store_id(&self) -> String {
        hex(&self.store_id)
    }

    /// The blind-index tag of `value` in `field`.
    fn tag(&self, field: LookupField, value: &str) -> Tag {
        self.index.tag(field.name(), value)
    }

    /// Blind-index tags of `token`'s lookup fields.
    fn tags_of(&self, token: &OAuthToken) -> LookupTags {
        tags_under(&self.index, token)
    }

    /// [`TokenStore::save_token`], also telling whether it inserted or updated.
    ///
    /// # Errors
    /// As [`TokenStore::save_token`].
    pub fn save(&self, token: &mut OAuthToken) -> Result<Saved> {
        // A failed save leaves `token` as it was.
        let result = self.save_unlogged(token);
        self.log_failure(op::SAVE, token.id(), result)
    }

    fn save_unlogged(&self, token: &mut OAuthToken) -> Result<Saved> {
        // Bounded before anything is looked up or written, for every backend alike.
        token
            .check_bounds()
            .map_err(|reason| Error::InvalidToken { reason })?;
        let mut outcome = None;
        self.backend.transact(&mut |tx| {
            let state = self.state_in(tx)?;
            let mut write = self.begin_write(tx, &state, op::SAVE)?;
            let mut merged = token.clone();
            let target = self.save_target(tx, &state, token)?;
            let inserted = target.is_none();
            let generation = sealing::next_generation(
                target
                    .as_ref()
                    .map_or(0, |(_, r)| sealing::generation_of(r)),
            )?;
            let (id, replaced) = match target {
                Some((stored, record)) => {
                    merged.fill_missing_from(&stored);
                    (record.id.clone(), Some(record))
                }
                None if !token.has_any_token() => {
                    return Err(Error::InvalidToken {
                        reason: "a new record needs an access, refresh or grant token",
                    });
                }
                None => match token.id() {
                    Some(id) => (id.to_owned(), None),
                    None => (new_record_id(tx)?, None),
                },
            };
            merged.set_id(Some(id.clone()));
            let tags = self.check_unique(tx, &merged, &id)?;
            write.take_seals(1)?;
            let record = self.seal(&state, &merged, &id, tags, generation)?;
            self.put_record(tx, &mut write, record, replaced.as_ref())?;
            let written = self.finish_write(tx, &state, write)?;
            outcome = Some((merged, written, inserted));
            Ok(())
        })?;
        let (merged, written, inserted) = outcome.expect("set by a committed step");
        self.install(written)?;
        *token = merged;
        Ok(if inserted {
            Saved::Inserted
        } else {
            Saved::Updated
        })
    }

    /// The record `save_token` updates, found inside the transaction: opened, and as stored.
    fn save_target(
        &self,
        tx: &mut dyn Transaction,
        state: &HeaderState,
        token: &OAuthToken,
    ) -> Result<Option<(OAuthToken, StoredRecord)>> {
        if let Some(id) = token.id() {
            return tx
                .get(id)?
                .map(|r| Ok((self.open_with(state, &r)?, r)))
                .transpose();
        }
        for (field, value) in matching::lookups(token) {
            if let Some(record) = tx.find_by_tag(field, &self.tag(field, value))? {
                let stored = self.open_found(state, &record, field, value)?;
                return Ok(Some((stored, record)));
            }
        }
        Ok(None)
    }
}

/// An id above every one of `ids` (slot or data-key ids, which a header read from storage
/// may have pushed to the top of the range).
fn next_id(ids: impl Iterator<Item = u32>) -> Result<u32> {
    ids.max().unwrap_or(0).checked_add(1).ok_or(Error::Refused {
        reason: "the header's ids are exhausted",
    })
}

/// Blind-index tags of `token`'s lookup fields under `index`.
fn tags_under(index: &IndexKey, token: &OAuthToken) -> LookupTags {
    let mut tags = LookupTags::default();
    for field in LookupField::ALL {
        tags.0[field.index()] = field.value_in(token).map(|v| index.tag(field.name(), v));
    }
    tags
}

/// A fresh record id: 64 random bits as 16 hex digits.
fn new_record_id(tx: &mut dyn Transaction) -> Result<String> {
    loop {
        let id = hex(&random_array::<8>()?);
        if tx.get(&id)?.is_none() {
            return Ok(id);
        }
    }
}

impl<B: Backend> TokenStore for EncryptedStore<B> {
    fn find_token(&self, query: &OAuthToken) -> Result<Option<OAuthToken>> {
        let found = self.log_failed_read(op::FIND, None, self.find_unlogged(query))?;
        let id = found.as_ref().and_then(|t| t.id());
        self.log_read(op::FIND, id, found_or_not(found.is_some()), String::new)?;
        Ok(found)
    }

    fn save_token(&self, token: &mut OAuthToken) -> Result<()> {
        self.save(token).map(drop)
    }

    fn delete_token(&self, id: &str) -> Result<()> {
        self.log_failure(op::DELETE, Some(id), self.delete_unlogged(id))
    }

    fn get_tokens(&self) -> Result<Vec<OAuthToken>> {
        let tokens = self.log_failed_read(op::GET_ALL, None, self.get_tokens_unlogged())?;
        self.log_read(op::GET_ALL, None, audit::AuditOutcome::Ok, || {
            format!("{} record(s)", tokens.len())
        })?;
        Ok(tokens)
    }

    fn delete_tokens(&self) -> Result<()> {
        self.log_failure(op::DELETE_ALL, None, self.delete_all_unlogged())
    }

    fn find_token_by_id(&self, id: &str) -> Result<Option<OAuthToken>> {
        let found = self.log_failed_read(op::FIND_BY_ID, Some(id), self.find_by_id_unlogged(id))?;
        // The id asked for is logged only if it names a record (it may be anything pasted).
        let record = found.as_ref().map(|_| id);
        self.log_read(
            op::FIND_BY_ID,
            record,
            found_or_not(found.is_some()),
            String::new,
        )?;
        Ok(found)
    }
}

fn found_or_not(found: bool) -> audit::AuditOutcome {
    if found {
        audit::AuditOutcome::Ok
    } else {
        audit::AuditOutcome::NotFound
    }
}

/// The six operations as they run, each logged by its `TokenStore` method above.
impl<B: Backend> EncryptedStore<B> {
    fn find_unlogged(&self, query: &OAuthToken) -> Result<Option<OAuthToken>> {
        for (field, value) in matching::lookups(query) {
            if let Some(record) = self.backend.find_by_tag(field, &self.tag(field, value))? {
                let stored = self.open_found(
                    &*self.state_for([&record.sealed[..]])?,
                    &record,
                    field,
                    value,
                )?;
                let mut merged = query.clone();
                merged.take_missing_from(stored);
                return Ok(Some(merged));
            }
        }
        Ok(None)
    }

    fn delete_unlogged(&self, id: &str) -> Result<()> {
        if check_record_id(id).is_err() {
            // No such record can have been saved.
            return Err(Error::NotFound { id: id.to_owned() });
        }
        let mut written = None;
        self.backend.transact(&mut |tx| {
            let state = self.state_in(tx)?;
            let record = tx
                .get(id)?
                .ok_or_else(|| Error::NotFound { id: id.to_owned() })?;
            let mut write = self.begin_write(tx, &state, op::DELETE)?;
            self.delete_record(tx, &mut write, &record)?;
            written = Some(self.finish_write(tx, &state, write)?);
            Ok(())
        })?;
        self.install(written.expect("set by a committed step"))
    }

    fn get_tokens_unlogged(&self) -> Result<Vec<OAuthToken>> {
        let batch = self.scan_all(false)?;
        let mut tokens = vec![OAuthToken::new(); batch.len()];
        // The failure of the first record (in id order) that does not open.
        let failure: Mutex<Option<(usize, Error)>> = Mutex::new(None);
        self.open_batch(&batch, &mut tokens, |i, opened, slot| match opened {
            Ok(token) => *slot = token,
            Err(e) => {
                let mut failure = failure.lock().unwrap_or_else(PoisonError::into_inner);
                if failure.as_ref().is_none_or(|(first, _)| i < *first) {
                    *failure = Some((i, e));
                }
            }
        })?;
        match failure.into_inner().unwrap_or_else(PoisonError::into_inner) {
            Some((_, e)) => Err(e),
            None => Ok(tokens),
        }
    }

    fn delete_all_unlogged(&self) -> Result<()> {
        let mut written = None;
        self.backend.transact(&mut |tx| {
            let state = self.state_in(tx)?;
            let mut write = self.begin_write(tx, &state, op::DELETE_ALL)?;
            self.delete_all_records(tx, &mut write)?;
            written = Some(self.finish_write(tx, &state, write)?);
            Ok(())
        })?;
        self.install(written.expect("set by a committed step"))
    }

    fn find_by_id_unlogged(&self, id: &str) -> Result<Option<OAuthToken>> {
        if check_record_id(id).is_err() {
            return Ok(None); // no such record can have been saved
        }
        self.backend
            .get(id)?
            .map(|r| self.open_with(&*self.state_for([&r.sealed[..]])?, &r))
            .transpose()
    }
}

impl<B: Backend> EncryptedStore<B> {
    /// Fails with [`Error::Conflict`] if a record other than `id` holds one of `token`'s
    /// lookup values (the check runs inside the save's transaction); returns the tags.
    fn check_unique(
        &self,
        tx: &mut dyn Transaction,
        token: &OAuthToken,
        id: &str,
    ) -> Result<LookupTags> {
        let tags = self.tags_of(token);
        for (field, tag) in tags.iter() {
            if let Some(other) = tx.find_by_tag(field, tag)?
                && other.id != id
            {
                return Err(Error::Conflict {
                    field,
                    existing_id: other.id,
                });
            }
        }
        // Returned so that sealing does not compute the same HMACs again.
        Ok(tags)
    }
}
