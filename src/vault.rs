//! `EncryptedStore`: the `TokenStore` that seals every record and delegates storage to a
//! [`Backend`].

#[cfg(feature = "oauth")]
mod access;
mod bulk;
mod maintenance;
mod refresh;
mod sealing;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

#[cfg(feature = "oauth")]
pub use access::{AccessOptions, FindBy, Fresh};
pub use bulk::CopyReport;
pub use maintenance::{KeyUsage, RotationReport, VerifyReport, inspect};
pub use refresh::{DEFAULT_REFRESH_SKEW, REFRESH_LOCK_TIMEOUT, RefreshError, needs_refresh};

// Defined where the layers below can use them; re-exported here, where they have always been.
pub use crate::keys::{SlotInfo, StoreInfo};
pub use crate::store::KeySlotKind;

use crate::backend::{Backend, LookupTags, Transaction};
use crate::crypto::{AeadKey, Argon2Params, IndexKey, Key, Tag, label, random_array, role};
use crate::format::header::{self, DataKeyEntry, Header};
use crate::format::{HeaderError, hex};
use crate::keys::Credential;
use crate::matching::{self, LookupField};
use crate::store::{Error, Result, Subject, TokenStore};
use crate::token::{OAuthToken, check_record_id};

/// Seals are reserved in the header in blocks, so a save does not rewrite it: the first block
/// of a process is one seal and each next one doubles, up to this. A one-shot process (a CLI
/// save) so wastes nothing, and a server soon rewrites the header once per 4096 saves.
const SEAL_BLOCK: u64 = 4096;
/// Random 96-bit nonces allow 2^32 seals per key (NIST SP 800-38D §8.3).
pub(crate) const SEAL_LIMIT: u64 = 1 << 32;
/// From here on, every reservation warns that the key should be rotated.
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
    /// The header as last read, with its data keys unwrapped. Replaced (never mutated) when
    /// another writer changed the header; never held across a backend call.
    current: RwLock<Arc<HeaderState>>,
    reservation: Mutex<Reservation>,
    opened_slot: u32,
}

pub(crate) struct HeaderState {
    bytes: Vec<u8>,
    header: Header,
    data_keys: BTreeMap<u32, AeadKey>,
}

/// Seals this process may still use without touching the header.
#[derive(Default)]
struct Reservation {
    key_id: u32,
    remaining: u64,
    /// Size of the last block reserved (0 before the first).
    last_block: u64,
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
        Self::unlocked(backend, store_key, 1, bytes)
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
        Self::unlocked(backend, store_key, slot_id, bytes)
    }

    fn unlocked(
        backend: B,
        store_key: Key<role::Store>,
        opened_slot: u32,
        header_bytes: Vec<u8>,
    ) -> Result<Self> {
        let header_mac_key = store_key.derive(label::HEADER_MAC);
        let wrap_key = store_key.derive::<role::Data>(label::DATA_KEY_WRAP).aead();
        let index = IndexKey::new(&store_key);
        let header = Header::read(&header_bytes)?;
        let mut store = Self {
            backend,
            store_id: header.store_id,
            store_key,
            header_mac_key,
            wrap_key,
            index,
            current: RwLock::new(Arc::new(HeaderState {
                bytes: Vec::new(),
                header,
                data_keys: BTreeMap::new(),
            })),
            reservation: Mutex::new(Reservation::default()),
            opened_slot,
        };
        let state = store.load(header_bytes)?;
        *store
            .current
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(state);
        Ok(store)
    }

    /// Parses and authenticates header bytes and unwraps its data keys.
    fn load(&self, bytes: Vec<u8>) -> Result<HeaderState> {
        let header = Header::read(&bytes)?;
        Header::verify_mac(&bytes, self.header_mac_key.expose())?;
        if header.store_id != self.store_id
            || !self
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
        Ok(HeaderState {
            bytes,
            header,
            data_keys,
        })
    }

    fn state(&self) -> Arc<HeaderState> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The state for header bytes just read from the backend: the cached one if unchanged,
    /// else freshly loaded (another process passed, changed a passphrase or rotated).
    fn sync(&self, bytes: Option<Vec<u8>>) -> Result<Arc<HeaderState>> {
        let bytes = bytes.ok_or(Error::NoStore)?;
        let cached = self.state();
        if cached.bytes == bytes {
            return Ok(cached);
        }
        let fresh = Arc::new(self.load(bytes)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = fresh.clone();
        Ok(fresh)
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
        let mut tags = LookupTags::default();
        for field in LookupField::ALL {
            tags.0[field.index()] = field.value_in(token).map(|v| self.tag(field, v));
        }
        tags
    }

    /// Takes `n` seals of the active key: from this process's reserved block if it has them,
    /// else by reserving a new block in the header inside `tx`. The new block is returned, to
    /// be installed only once the transaction has committed.
    fn take_seals(
        &self,
        tx: &mut dyn Transaction,
        state: &HeaderState,
        n: u64,
    ) -> Result<Option<Reservation>> {
        let active = state.header.active_key;
        let mut last_block = 0;
        {
            let mut r = self
                .reservation
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if r.key_id == active && r.remaining >= n {
                r.remaining -= n;
                return Ok(None);
            }
            if r.key_id == active {
                last_block = r.last_block;
            }
        }
        let mut header = state.header.clone();
        let entry = header
            .key_mut(active)
            .expect("active key is in the header (checked at parse)");
        let available = SEAL_LIMIT.saturating_sub(entry.seals);
        if available < n {
            return Err(Error::SealLimitReached { key_id: active });
        }
        let block = n.max((last_block * 2).clamp(1, SEAL_BLOCK)).min(available);
        entry.seals += block;
        if entry.seals >= SEAL_WARNING {
            log::warn!(
                "data key {active} has reserved {} of its 2^32 seals: rotate the data key (`tokenvault rotate`)",
                entry.seals
            );
        }
        tx.put_header(&header.write(self.header_mac_key.expose()))?;
        Ok(Some(Reservation {
            key_id: active,
            remaining: block - n,
            last_block: block,
        }))
    }

    fn install(&self, reservation: Option<Reservation>) {
        if let Some(r) = reservation {
            *self
                .reservation
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = r;
        }
    }

    /// Rewrites the header inside one transaction.
    fn update_header(&self, mutate: &mut dyn FnMut(&mut Header) -> Result<()>) -> Result<()> {
        self.backend.transact(&mut |tx| {
            let state = self.sync(tx.header()?)?;
            let mut header = state.header.clone();
            mutate(&mut header)?;
            tx.put_header(&header.write(self.header_mac_key.expose()))?;
            Ok(())
        })
    }

    /// [`TokenStore::save_token`], also telling whether it inserted or updated.
    ///
    /// # Errors
    /// As [`TokenStore::save_token`].
    pub fn save(&self, token: &mut OAuthToken) -> Result<Saved> {
        // Bounded before anything is looked up or written, for every backend alike.
        token
            .check_bounds()
            .map_err(|reason| Error::InvalidToken { reason })?;
        let mut outcome = None;
        self.backend.transact(&mut |tx| {
            let state = self.sync(tx.header()?)?;
            let mut merged = token.clone();
            let target = self.save_target(tx, &state, token)?;
            let inserted = target.is_none();
            let generation = sealing::next_generation(target.as_ref().map_or(0, |(_, g)| *g))?;
            let id = match target {
                Some((stored, _)) => {
                    merged.fill_missing_from(&stored);
                    stored
                        .id()
                        .expect("opened records carry their id")
                        .to_owned()
                }
                None if !token.has_any_token() => {
                    return Err(Error::InvalidToken {
                        reason: "a new record needs an access, refresh or grant token",
                    });
                }
                None => match token.id() {
                    Some(id) => id.to_owned(),
                    None => new_record_id(tx)?,
                },
            };
            merged.set_id(Some(id.clone()));
            let tags = self.check_unique(tx, &merged, &id)?;
            let reservation = self.take_seals(tx, &state, 1)?;
            tx.put(self.seal(&state, &merged, &id, tags, generation)?)?;
            outcome = Some((merged, reservation, inserted));
            Ok(())
        })?;
        let (merged, reservation, inserted) = outcome.expect("set by a committed step");
        self.install(reservation);
        *token = merged;
        Ok(if inserted {
            Saved::Inserted
        } else {
            Saved::Updated
        })
    }

    /// The record `save_token` updates, found inside the transaction, with its generation.
    fn save_target(
        &self,
        tx: &mut dyn Transaction,
        state: &HeaderState,
        token: &OAuthToken,
    ) -> Result<Option<(OAuthToken, u64)>> {
        if let Some(id) = token.id() {
            return tx
                .get(id)?
                .map(|r| Ok((self.open_with(state, &r)?, sealing::generation_of(&r))))
                .transpose();
        }
        for (field, value) in matching::lookups(token) {
            if let Some(record) = tx.find_by_tag(field, &self.tag(field, value))? {
                let stored = self.open_found(state, &record, field, value)?;
                return Ok(Some((stored, sealing::generation_of(&record))));
            }
        }
        Ok(None)
    }
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

    fn save_token(&self, token: &mut OAuthToken) -> Result<()> {
        self.save(token).map(drop)
    }
    fn delete_token(&self, id: &str) -> Result<()> {
        if check_record_id(id).is_err() {
            // No such record can have been saved.
            return Err(Error::NotFound { id: id.to_owned() });
        }
        self.backend.transact(&mut |tx| {
            if tx.delete(id)? {
                Ok(())
            } else {
                Err(Error::NotFound { id: id.to_owned() })
            }
        })
    }

    fn get_tokens(&self) -> Result<Vec<OAuthToken>> {
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

    fn delete_tokens(&self) -> Result<()> {
        self.backend.transact(&mut |tx| Ok(tx.delete_all()?))
    }

    fn find_token_by_id(&self, id: &str) -> Result<Option<OAuthToken>> {
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
