//! Records in and out of their sealed form: one record (lookups, saves) and whole batches
//! (every whole-store operation), the batch opened across the machine's cores.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use zeroize::Zeroizing;

use super::{EncryptedStore, HeaderState, tampered};
use crate::backend::{Backend, LookupTags, RecordRef, StoredRecord};
use crate::crypto::AeadKey;
use crate::format::record::{self, BODY_FIELDS, Body, OpenFailure, Sealed};
use crate::matching::LookupField;
use crate::store::{Error, Result, Subject};
use crate::token::{OAuthToken, TokenField};

/// A batch smaller than this is opened on the calling thread: starting threads costs more.
const PARALLEL_MIN: usize = 2048;
/// At most this many threads open one batch.
const MAX_THREADS: usize = 8;

/// The body fields of a version-2 record, in order: every token field but the id.
const BODY: [TokenField; BODY_FIELDS] = [
    TokenField::UserName,
    TokenField::ClientId,
    TokenField::ClientSecret,
    TokenField::RefreshToken,
    TokenField::AccessToken,
    TokenField::GrantToken,
    TokenField::ExpiryTime,
    TokenField::RedirectUrl,
    TokenField::ApiDomain,
];

/// Every record of a store as one scan saw it, copied into a few large blocks (no allocation
/// per record, and none ever moved by a reallocation), with each record's lookup tags if they
/// were asked for.
#[derive(Default)]
pub(super) struct Batch {
    blocks: Vec<Vec<u8>>,
    entries: Vec<Entry>,
    tags: Vec<LookupTags>,
}

/// Bytes of one block of a [`Batch`] (a larger record gets a block of its own size).
const BLOCK: usize = 1 << 20;

struct Entry {
    /// The id's first 16 bytes, big-endian, zero-padded: sorts as the id does, but for ids
    /// that share those bytes (then the whole ids are compared).
    id_prefix: u128,
    block: usize,
    /// The id is `start..middle` of its block, the sealed bytes `middle..end`.
    start: usize,
    middle: usize,
    end: usize,
}

impl Batch {
    fn push(&mut self, record: &RecordRef<'_>, with_tags: bool) {
        let id = record.id.as_bytes();
        let needed = id.len() + record.sealed.len();
        if self
            .blocks
            .last()
            .is_none_or(|b| b.capacity() - b.len() < needed)
        {
            self.blocks.push(Vec::with_capacity(needed.max(BLOCK)));
        }
        let block = self.blocks.len() - 1;
        let bytes = &mut self.blocks[block];
        let start = bytes.len();
        bytes.extend_from_slice(id);
        bytes.extend_from_slice(record.sealed);
        let mut prefix = [0u8; 16];
        let head = &id[..id.len().min(16)];
        prefix[..head.len()].copy_from_slice(head);
        self.entries.push(Entry {
            id_prefix: u128::from_be_bytes(prefix),
            block,
            start,
            middle: start + id.len(),
            end: start + needed,
        });
        if with_tags {
            self.tags.push(record.tags);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    fn id_bytes(&self, e: &Entry) -> &[u8] {
        &self.blocks[e.block][e.start..e.middle]
    }

    pub fn id(&self, i: usize) -> &str {
        // Pushed from a `&str`, so the range holds valid UTF-8.
        std::str::from_utf8(self.id_bytes(&self.entries[i])).unwrap_or_default()
    }

    pub fn sealed(&self, i: usize) -> &[u8] {
        let e = &self.entries[i];
        &self.blocks[e.block][e.middle..e.end]
    }

    /// The lookup tags stored beside record `i` (scanned with tags).
    pub fn tags(&self, i: usize) -> LookupTags {
        self.tags.get(i).copied().unwrap_or_default()
    }

    /// Puts the records in id order (the order `get_tokens` promises), sorting the small
    /// entries, not the records.
    fn sort_by_id(&mut self) {
        let blocks = &self.blocks;
        let id = |e: &Entry| &blocks[e.block][e.start..e.middle];
        let order =
            |a: &Entry, b: &Entry| a.id_prefix.cmp(&b.id_prefix).then_with(|| id(a).cmp(id(b)));
        if self.tags.is_empty() {
            self.entries.sort_unstable_by(order);
        } else {
            let mut pairs: Vec<(Entry, LookupTags)> =
                self.entries.drain(..).zip(self.tags.drain(..)).collect();
            pairs.sort_unstable_by(|a, b| order(&a.0, &b.0));
            (self.entries, self.tags) = pairs.into_iter().unzip();
        }
    }
}

impl<B: Backend> EncryptedStore<B> {
    /// Every record, scanned in storage order into one [`Batch`] and put in id order. The
    /// scan only copies (into a few large blocks); the backend's lock, if it holds one for
    /// the scan, is not held while records are opened.
    pub(super) fn scan_all(&self, with_tags: bool) -> Result<Batch> {
        let mut batch = Batch::default();
        self.backend.scan(with_tags, &mut |record| {
            batch.push(&record, with_tags);
            Ok(())
        })?;
        batch.sort_by_id();
        Ok(batch)
    }

    /// The header and every record of one committed state (verify compares them): records
    /// scanned between two header reads that agree — every write changes the header — retried
    /// while writers commit in between, and at last read inside a transaction, which holds
    /// writers off for the read.
    pub(super) fn scan_with_header(&self, with_tags: bool) -> Result<(Arc<HeaderState>, Batch)> {
        for _ in 0..3 {
            let seen = self.seen_writes();
            let before = self.backend.read_header()?;
            let batch = self.scan_all(with_tags)?;
            let after = self.backend.read_header()?;
            if before == after {
                return Ok((self.sync(after, seen)?, batch));
            }
        }
        let seen = self.seen_writes();
        let mut read = None;
        self.backend.transact(&mut |tx| {
            let header = tx.header()?;
            let mut batch = Batch::default();
            for r in tx.list()? {
                batch.push(&RecordRef::of(&r, with_tags), with_tags);
            }
            batch.sort_by_id();
            read = Some((header, batch));
            Ok(())
        })?;
        let (header, batch) = read.expect("set by a committed step");
        Ok((self.sync(header, seen)?, batch))
    }

    /// Opens every record of `batch` and hands record `i`'s outcome to `put` with `out[i]`
    /// (`out` is as long as the batch). A large batch is split across up to [`MAX_THREADS`]
    /// threads, each decrypting into one zeroizing buffer of its own, reused; `out` is filled
    /// in place, so nothing is copied after.
    pub(super) fn open_batch<T: Send>(
        &self,
        batch: &Batch,
        out: &mut [T],
        put: impl Fn(usize, Result<OAuthToken>, &mut T) + Sync,
    ) -> Result<()> {
        assert_eq!(out.len(), batch.len(), "one output slot per record");
        let cached = self.state();
        let state = self.state_for((0..batch.len()).map(|i| batch.sealed(i)))?;
        // Keys the header held when this handle last read it: while another process rotates,
        // a record scanned under a key the fresh header has just retired still opens.
        let fallback = (!Arc::ptr_eq(&state, &cached)).then_some(&*cached);
        let open_range = |start: usize, slots: &mut [T]| {
            let mut buf = Zeroizing::new(Vec::new());
            for (i, slot) in (start..).zip(slots) {
                let (id, sealed) = (batch.id(i), batch.sealed(i));
                let opened = self.open_record(&state, fallback, id, sealed, &mut buf);
                put(i, opened, slot);
            }
        };
        let threads = if batch.len() < PARALLEL_MIN {
            1
        } else {
            opening_threads()
        };
        if threads < 2 {
            open_range(0, out);
            return Ok(());
        }
        // One part per thread. Each part is taken once, by its own thread or by this one,
        // which, once it has started the others, opens every part not yet taken: its own, one
        // whose thread the OS refused (a process at its thread limit), one not yet begun.
        let chunk = batch.len().div_ceil(threads);
        let parts: Vec<(usize, Mutex<Option<&mut [T]>>)> = out
            .chunks_mut(chunk)
            .enumerate()
            .map(|(n, slots)| (n * chunk, Mutex::new(Some(slots))))
            .collect();
        let open_part = |(start, slots): &(usize, Mutex<Option<&mut [T]>>)| {
            let taken = slots.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(slots) = taken {
                open_range(*start, slots);
            }
        };
        std::thread::scope(|scope| {
            let workers: Vec<_> = parts[1..]
                .iter()
                .filter_map(|part| {
                    std::thread::Builder::new()
                        .spawn_scoped(scope, move || open_part(part))
                        .ok()
                })
                .collect();
            parts.iter().for_each(open_part);
            for worker in workers {
                // A panic in a worker is a bug (opening returns errors); pass it on.
                worker
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p));
            }
        });
        Ok(())
    }

    /// The header state that can open records with these sealed bytes: the cached one, or
    /// the header re-read once if one names a key this handle has not seen (another process
    /// rotated).
    pub(super) fn state_for<'a>(
        &self,
        sealed: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Arc<HeaderState>> {
        let state = self.state();
        let unknown = sealed.into_iter().any(|sealed| {
            record::key_id_of(sealed).is_ok_and(|k| !state.data_keys.contains_key(&k))
        });
        if unknown {
            return self.fresh_state();
        }
        Ok(state)
    }

    pub(super) fn open_with(
        &self,
        state: &HeaderState,
        record: &StoredRecord,
    ) -> Result<OAuthToken> {
        let mut buf = Zeroizing::new(Vec::new());
        self.open_record(state, None, &record.id, &record.sealed, &mut buf)
    }

    /// Opens the sealed bytes of record `id`, decrypting into `buf`, under the data key it
    /// names in `state`, else in `fallback`.
    fn open_record(
        &self,
        state: &HeaderState,
        fallback: Option<&HeaderState>,
        id: &str,
        sealed: &[u8],
        buf: &mut Zeroizing<Vec<u8>>,
    ) -> Result<OAuthToken> {
        let failure = |failure| match failure {
            OpenFailure::Tampered => tampered(id),
            OpenFailure::UnsupportedVersion(v) => Error::UnsupportedFormat {
                what: "record format version",
                detail: format!("{v} in record {id:?}"),
            },
        };
        let parsed = Sealed::parse(sealed).map_err(failure)?;
        let key = state
            .data_keys
            .get(&parsed.key_id)
            .or_else(|| fallback?.data_keys.get(&parsed.key_id))
            .ok_or_else(|| Error::UnknownKey {
                what: Subject::Record(id.to_owned()),
                key_id: parsed.key_id,
            })?;
        let ad = parsed.associated_data(&self.store_id, id);
        let body = parsed.open(key, &ad, buf).map_err(failure)?;
        let mut token = token_from(body).ok_or_else(|| tampered(id))?;
        token.set_id(Some(id.to_owned()));
        Ok(token)
    }

    /// Opens a record found by `field = value` and checks that it really has that value: tags
    /// sit beside the sealed bytes, outside its authentication, so a swapped tag must not
    /// return another user's token.
    pub(super) fn open_found(
        &self,
        state: &HeaderState,
        record: &StoredRecord,
        field: LookupField,
        value: &str,
    ) -> Result<OAuthToken> {
        let token = self.open_with(state, record)?;
        if field.value_in(&token) != Some(value) {
            return Err(tampered(&record.id));
        }
        Ok(token)
    }

    /// Seals `token` as record `id`, save number `generation`, under the active data key.
    pub(super) fn seal(
        &self,
        state: &HeaderState,
        token: &OAuthToken,
        id: &str,
        tags: LookupTags,
        generation: u64,
    ) -> Result<StoredRecord> {
        let key_id = state.header.active_key;
        let key = state
            .data_keys
            .get(&key_id)
            .expect("every header key is unwrapped at load");
        let under = SealUnder {
            store_id: &self.store_id,
            key_id,
            key,
        };
        under.seal(token, id, tags, generation)
    }
}

/// The store and data key a record is sealed under.
pub(super) struct SealUnder<'a> {
    pub store_id: &'a [u8; 16],
    pub key_id: u32,
    pub key: &'a AeadKey,
}

impl SealUnder<'_> {
    /// Seals `token` as record `id`, save number `generation`.
    pub fn seal(
        &self,
        token: &OAuthToken,
        id: &str,
        tags: LookupTags,
        generation: u64,
    ) -> Result<StoredRecord> {
        let ad = record::associated_data(
            record::RECORD_VERSION,
            self.store_id,
            self.key_id,
            generation,
            id,
        );
        let values = BODY.map(|field| token.expose_field(field));
        let fields = std::array::from_fn(|i| values[i].as_ref().map(|v| v.as_bytes()));
        Ok(StoredRecord {
            id: id.to_owned(),
            tags,
            sealed: record::seal(&fields, self.key, self.key_id, generation, &ad)?,
        })
    }
}

/// Threads that open a large batch: the machine's parallelism, at most [`MAX_THREADS`]. Asked
/// once per process (on Linux it reads the cgroup's CPU quota from files).
fn opening_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, NonZeroUsize::get)
            .min(MAX_THREADS)
    })
}

/// How many times a stored record was saved (0 for a version-1 record, or bytes that do not
/// parse: those never open, so nothing is saved over them).
pub(super) fn generation_of(record: &StoredRecord) -> u64 {
    Sealed::parse(&record.sealed).map_or(0, |s| s.generation)
}

/// The generation of a record's next save after `generation`; refused (nothing written) at
/// the end of the counter, which no store reaches by saving (2^64 saves), only by being sealed
/// so by someone holding its key.
pub(super) fn next_generation(generation: u64) -> Result<u64> {
    generation.checked_add(1).ok_or(Error::Refused {
        reason: "the record's generation counter is exhausted",
    })
}

/// The token an authenticated body holds; `None` if it is not a valid token.
fn token_from(body: Body<'_>) -> Option<OAuthToken> {
    match body {
        Body::Json(json) => serde_json::from_slice(json).ok(),
        Body::Fields(fields) => {
            let mut token = OAuthToken::new();
            for (field, bytes) in BODY.into_iter().zip(fields) {
                if let Some(bytes) = bytes {
                    let text = std::str::from_utf8(bytes).ok()?;
                    token.set_field(field, Some(text.to_owned())).ok()?;
                }
            }
            Some(token)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{MemoryBackend, Transaction};
    use crate::keys::{Credential, RawKey};
    use crate::store::TokenStore;

    /// A memory store of `n` records, enough to be opened across threads when `n` is large.
    fn store(n: usize) -> EncryptedStore<MemoryBackend> {
        let store = EncryptedStore::create(
            MemoryBackend::new(),
            &Credential::raw_key(RawKey::from_bytes([7; 32])),
        )
        .unwrap();
        for i in 0..n {
            let mut token = OAuthToken::new()
                .with_user_name(format!("user{i}@example.com"))
                .with_refresh_token(format!("1000.refresh.{i}"))
                .with_expiry_time(1_700_000_000_000 + i as u64);
            store.save_token(&mut token).unwrap();
        }
        store
    }

    /// Flips a ciphertext byte of record `id`.
    fn tamper(store: &EncryptedStore<MemoryBackend>, id: &str) {
        let mut record = store.backend().get(id).unwrap().unwrap();
        record.sealed[30] ^= 1;
        store
            .backend()
            .transact(&mut |tx: &mut dyn Transaction| Ok(tx.put(record.clone())?))
            .unwrap();
    }

    #[test]
    fn a_large_batch_opens_across_threads_in_id_order_like_one_at_a_time() {
        let n = PARALLEL_MIN + 500;
        let store = store(n);
        let all = store.get_tokens().unwrap();
        assert_eq!(all.len(), n);
        let ids: Vec<&str> = all.iter().map(|t| t.id().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "id order");
        for token in &all {
            let one = store
                .find_token_by_id(token.id().unwrap())
                .unwrap()
                .unwrap();
            assert_eq!(&one, token);
        }
    }

    #[test]
    fn get_tokens_fails_with_the_first_bad_record_in_id_order_and_verify_names_each() {
        let store = store(PARALLEL_MIN + 500);
        let mut ids: Vec<String> = store
            .get_tokens()
            .unwrap()
            .iter()
            .map(|t| t.id().unwrap().to_owned())
            .collect();
        ids.sort();
        // One near the end (opened by another thread than the first) and one later still.
        let (first, second) = (ids[ids.len() - 300].clone(), ids[ids.len() - 2].clone());
        tamper(&store, &second);
        tamper(&store, &first);
        match store.get_tokens() {
            Err(Error::Tampered {
                what: Subject::Record(id),
            }) => assert_eq!(id, first),
            other => panic!("expected the first tampered record, got {other:?}"),
        }
        let report = store.verify().unwrap();
        assert_eq!(report.ok, ids.len() - 2);
        let failed: Vec<&str> = report.failed.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(failed, [first.as_str(), second.as_str()]);
    }

    #[test]
    fn ids_sort_as_strings_whatever_their_length() {
        let ids = [
            "b",
            "a",
            "aaaaaaaaaaaaaaaaz",
            "aaaaaaaaaaaaaaaa",
            "aaaaaaaaaaaaaaaay",
            "ab",
            "\u{e9}t\u{e9}",
        ];
        let mut batch = Batch::default();
        for id in ids {
            let record = RecordRef {
                id,
                tags: LookupTags::default(),
                sealed: b"x",
            };
            batch.push(&record, false);
        }
        batch.sort_by_id();
        let sorted: Vec<&str> = (0..batch.len()).map(|i| batch.id(i)).collect();
        let mut expected = ids.to_vec();
        expected.sort_unstable();
        assert_eq!(sorted, expected);
    }
}
