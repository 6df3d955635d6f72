//! File backend: the whole store in one file, rewritten atomically on every write.
//!
//! ```text
//! magic "TKNVFILE" (8) | format version (1) = 1 or 2 | write id (16, random per write)
//! header length (4) | header
//! record count (4) then per record, by id:
//!     id length (2) | id (UTF-8) | tag mask (1: bit i = LookupField::ALL[i] present) | tags (32 each)
//!     sealed length (4) | sealed
//! version 2 only: audit entry count (4) then per entry, by number:
//!     seq (8) | entry length (4) | entry
//! ```
//! Integers are big-endian; the parse accepts exactly this and nothing after it. Version 2 is
//! written only while the audit log has entries, so a store without one stays readable by the
//! builds that knew version 1 only. There is
//! deliberately no whole-file checksum: a damaged record must fail alone, naming itself
//! through its AEAD tag, and leave the others readable; the header MAC covers the header.
//!
//! Every write happens under an exclusive `flock` on `PATH.lock`, held across the whole
//! read-modify-write: re-read the file if another process changed it (its write id differs),
//! apply the step, write a new temporary file `PATH.tmp-<random>` (created exclusively, 0600),
//! `fsync` it, rename it over `PATH`, `fsync` the directory. A crash leaves either the old or
//! the new file, never a torn one. Readers take a shared lock. A save rewrites the whole file:
//! O(records) per write. The store file, lock file and temporary files follow the rules of
//! `private_files` (no links, nothing of another user's, nothing others may write).

use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::memory::{State, transact_then};
use super::private_files::{self, sibling};
use super::{
    Backend, HeldLock, LookupField, LookupTags, RecordRef, StoredRecord, Tag, Transaction,
};
use crate::crypto::random_array;
use crate::format::Reader;
use crate::store::{BackendError, BackendErrorKind, Result};

const MAGIC: &[u8; 8] = b"TKNVFILE";
/// The format without an audit log, and the one with it.
const VERSION: u8 = 1;
const VERSION_AUDIT: u8 = 2;
const PREFIX_LEN: usize = MAGIC.len() + 1 + 16;

/// A store kept in one file.
pub struct FileBackend {
    path: PathBuf,
    lock_file: File,
    cache: Mutex<Cache>,
}

/// A held `flock` on the lock file, released when dropped: also when a step panics, so a
/// panic never leaves the store locked for other processes.
struct Flock<'a>(&'a File);

impl<'a> Flock<'a> {
    fn shared(file: &'a File) -> Result<Self, BackendError> {
        file.lock_shared().map_err(io_error)?;
        Ok(Self(file))
    }

    fn exclusive(file: &'a File) -> Result<Self, BackendError> {
        file.lock().map_err(io_error)?;
        Ok(Self(file))
    }
}

impl Drop for Flock<'_> {
    fn drop(&mut self) {
        // Closing the descriptor would release it too; an unlock error leaves nothing to do.
        let _ = self.0.unlock();
    }
}

#[derive(Default)]
struct Cache {
    /// Write id of the file the state was loaded from; `None` when there is no file yet.
    write_id: Option<[u8; 16]>,
    state: State,
}

fn io_error(e: std::io::Error) -> BackendError {
    BackendError::new(BackendErrorKind::Io, e)
}

fn corrupt(what: &str) -> BackendError {
    BackendError::new(
        BackendErrorKind::Corrupt,
        format!("file store is damaged or not a tokenvault file: {what}"),
    )
}

impl FileBackend {
    /// Opens (or prepares to create) the store file at `path`; `PATH.lock` and the temporary
    /// files `PATH.tmp-<random>` live beside it. The directory must exist.
    ///
    /// # Errors
    /// [`BackendErrorKind::Corrupt`] if the file exists and is not an intact tokenvault file
    /// (nothing is written to it); [`BackendErrorKind::Insecure`] if the store file or
    /// `PATH.lock` is a symbolic link, owned by another user, or writable by others;
    /// [`BackendErrorKind::Io`] if it cannot be read.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, BackendError> {
        let path = path.as_ref().to_path_buf();
        private_files::check_store_file(&path)?;
        let lock_file = private_files::open_lock_file(&sibling(&path, ".lock"))?;
        let backend = Self {
            path,
            lock_file,
            cache: Mutex::new(Cache::default()),
        };
        backend.read(|_| Ok(()))?;
        Ok(backend)
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the current state under a shared lock.
    fn read<T>(
        &self,
        f: impl FnOnce(&State) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let mut cache = self.cache();
        let _flock = Flock::shared(&self.lock_file)?;
        self.refresh(&mut cache).and_then(|()| f(&cache.state))
    }

    /// Reloads the state if the file's write id is not the cached one.
    fn refresh(&self, cache: &mut Cache) -> Result<(), BackendError> {
        let opened = private_files::open_for_reading(&self.path);
        let mut file = match opened {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                *cache = Cache::default();
                return Ok(());
            }
            Err(e) => return Err(io_error(e)),
        };
        let mut prefix = [0u8; PREFIX_LEN];
        file.read_exact(&mut prefix).map_err(|e| match e.kind() {
            ErrorKind::UnexpectedEof => corrupt("too short"),
            _ => io_error(e),
        })?;
        let mut write_id = [0u8; 16];
        write_id.copy_from_slice(&prefix[MAGIC.len() + 1..]);
        if cache.write_id == Some(write_id) {
            return Ok(());
        }
        let mut bytes = prefix.to_vec();
        file.read_to_end(&mut bytes).map_err(io_error)?;
        cache.state = decode(&bytes)?;
        cache.write_id = Some(write_id);
        Ok(())
    }

    /// Writes `state` as a new file version; returns its write id.
    fn persist(&self, state: &State) -> Result<[u8; 16]> {
        let write_id: [u8; 16] = random_array()?;
        let bytes = encode(state, &write_id)?;
        let (tmp, tmp_path) = private_files::create_temp_beside(&self.path)?;
        let written = self.replace_file(tmp, &tmp_path, &bytes);
        if written.is_err() {
            let _ = fs::remove_file(&tmp_path); // ciphertext only; best effort
        }
        written.map_err(io_error)?;
        Ok(write_id)
    }

    fn replace_file(&self, mut tmp: File, tmp_path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        tmp.write_all(bytes)?;
        tmp.sync_all()?;
        drop(tmp);
        fs::rename(tmp_path, &self.path)?;
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        File::open(dir)?.sync_all()
    }
}

fn too_big(what: &str) -> BackendError {
    BackendError::new(
        BackendErrorKind::Other,
        format!("the file store format cannot hold {what}"),
    )
}

/// The file's bytes; an id, record or header too large for its length field is an error
/// (the vault bounds ids far below that; this guards direct backend users).
fn encode(state: &State, write_id: &[u8; 16]) -> Result<Vec<u8>, BackendError> {
    let header = state.header.as_deref().unwrap_or_default();
    // An upper bound (every record counted with four tags): one allocation.
    let size = PREFIX_LEN
        + 4
        + header.len()
        + 4
        + state
            .records
            .values()
            .map(|r| 2 + r.id.len() + 1 + 4 * 32 + 4 + r.sealed.len())
            .sum::<usize>()
        + 4
        + state.audit.values().map(|e| 12 + e.len()).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(MAGIC);
    out.push(if state.audit.is_empty() {
        VERSION
    } else {
        VERSION_AUDIT
    });
    out.extend_from_slice(write_id);
    let header_len = u32::try_from(header.len()).map_err(|_| too_big("a 4 GiB header"))?;
    out.extend_from_slice(&header_len.to_be_bytes());
    out.extend_from_slice(header);
    let count = u32::try_from(state.records.len()).map_err(|_| too_big("2^32 records"))?;
    out.extend_from_slice(&count.to_be_bytes());
    for record in state.sorted() {
        let id_len =
            u16::try_from(record.id.len()).map_err(|_| too_big("a record id of 64 KiB"))?;
        out.extend_from_slice(&id_len.to_be_bytes());
        out.extend_from_slice(record.id.as_bytes());
        let mask = (0..LookupField::ALL.len())
            .filter(|&i| record.tags.0[i].is_some())
            .fold(0u8, |m, i| m | 1 << i);
        out.push(mask);
        for (_, tag) in record.tags.iter() {
            out.extend_from_slice(tag.as_bytes());
        }
        let sealed_len =
            u32::try_from(record.sealed.len()).map_err(|_| too_big("a 4 GiB record"))?;
        out.extend_from_slice(&sealed_len.to_be_bytes());
        out.extend_from_slice(&record.sealed);
    }
    if !state.audit.is_empty() {
        let count = u32::try_from(state.audit.len()).map_err(|_| too_big("2^32 audit entries"))?;
        out.extend_from_slice(&count.to_be_bytes());
        for (seq, entry) in &state.audit {
            let len = u32::try_from(entry.len()).map_err(|_| too_big("a 4 GiB audit entry"))?;
            out.extend_from_slice(&seq.to_be_bytes());
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(entry);
        }
    }
    Ok(out)
}

fn decode(bytes: &[u8]) -> Result<State, BackendError> {
    let bad = |_| corrupt("truncated or malformed");
    let mut r = Reader::new(bytes);
    if r.take(MAGIC.len()).map_err(bad)? != MAGIC {
        return Err(corrupt("bad magic"));
    }
    let version = r.u8().map_err(bad)?;
    if version != VERSION && version != VERSION_AUDIT {
        return Err(BackendError::new(
            BackendErrorKind::NotSupported,
            format!("file store format version {version} is not supported by this build"),
        ));
    }
    r.take(16).map_err(bad)?;
    let header_len = r.u32().map_err(bad)? as usize;
    let header = r.take(header_len).map_err(bad)?;
    let mut state = State::default();
    state.header = (!header.is_empty()).then(|| header.to_vec());
    let count = r.u32().map_err(bad)?;
    for _ in 0..count {
        let id_len = usize::from(r.u16().map_err(bad)?);
        let id = std::str::from_utf8(r.take(id_len).map_err(bad)?)
            .map_err(|_| corrupt("record id is not UTF-8"))?;
        let mask = r.u8().map_err(bad)?;
        if mask >> LookupField::ALL.len() != 0 {
            return Err(corrupt("bad tag mask"));
        }
        let mut tags = LookupTags::default();
        for (i, slot) in tags.0.iter_mut().enumerate() {
            if mask & (1 << i) != 0 {
                *slot = Some(Tag(r.array().map_err(bad)?));
            }
        }
        let sealed_len = r.u32().map_err(bad)? as usize;
        let sealed = r.take(sealed_len).map_err(bad)?.to_vec();
        let record = StoredRecord {
            id: id.to_owned(),
            tags,
            sealed,
        };
        if state.records.contains_key(id) {
            return Err(corrupt("duplicate record id"));
        }
        state
            .insert(record)
            .map_err(|_| corrupt("duplicate lookup tag"))?;
    }
    if version == VERSION_AUDIT {
        // Entries out of order or numbered twice (written by no build) do not make the store
        // unopenable: the first of a number is kept, and the vault's check of the log names
        // whatever no longer fits.
        let count = r.u32().map_err(bad)?;
        for _ in 0..count {
            let seq = r.u64().map_err(bad)?;
            let len = r.u32().map_err(bad)? as usize;
            let entry = r.take(len).map_err(bad)?;
            state.audit.entry(seq).or_insert_with(|| entry.to_vec());
        }
    }
    r.finish().map_err(bad)?;
    Ok(state)
}

impl Backend for FileBackend {
    fn read_header(&self) -> Result<Option<Vec<u8>>, BackendError> {
        self.read(|s| Ok(s.header.clone()))
    }

    fn get(&self, id: &str) -> Result<Option<StoredRecord>, BackendError> {
        self.read(|s| Ok(s.records.get(id).cloned()))
    }

    fn find_by_tag(
        &self,
        field: LookupField,
        tag: &Tag,
    ) -> Result<Option<StoredRecord>, BackendError> {
        self.read(|s| Ok(s.find(field, tag)))
    }

    fn list(&self) -> Result<Vec<StoredRecord>, BackendError> {
        self.read(|s| Ok(s.sorted().into_iter().cloned().collect()))
    }

    fn scan(
        &self,
        with_tags: bool,
        visit: &mut dyn FnMut(RecordRef<'_>) -> Result<(), BackendError>,
    ) -> Result<(), BackendError> {
        self.read(|s| s.scan(with_tags, visit))
    }

    fn prepare_audit(&self) -> Result<(), BackendError> {
        Ok(())
    }

    fn lock(
        &self,
        name: &str,
        timeout: std::time::Duration,
    ) -> Result<Box<dyn HeldLock>, BackendError> {
        super::lockfile::lock(&self.path, name, timeout)
    }

    fn transact(&self, step: &mut dyn FnMut(&mut dyn Transaction) -> Result<()>) -> Result<()> {
        let mut cache = self.cache();
        let _flock = Flock::exclusive(&self.lock_file)?;
        self.refresh(&mut cache).map_err(Into::into).and_then(|()| {
            let mut new_id = None;
            let cache = &mut *cache;
            transact_then(&mut cache.state, step, &mut |state| {
                new_id = Some(self.persist(state)?);
                Ok(())
            })?;
            cache.write_id = new_id;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_rejects_damage() {
        let mut state = State::default();
        state.header = Some(vec![1, 2, 3]);
        let mut tags = LookupTags::default();
        tags.0[2] = Some(Tag([9; 32]));
        state
            .insert(StoredRecord {
                id: "a".into(),
                tags,
                sealed: vec![7; 40],
            })
            .unwrap();
        state
            .insert(StoredRecord {
                id: "b".into(),
                tags: LookupTags::default(),
                sealed: vec![8; 3],
            })
            .unwrap();
        let bytes = encode(&state, &[5; 16]).unwrap();
        let back = decode(&bytes).unwrap();
        assert_eq!(back.header, state.header);
        assert_eq!(back.records, state.records);
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "truncated to {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err(), "trailing byte");
    }

    #[test]
    fn the_audit_log_makes_version_2_and_round_trips() {
        let mut state = State::default();
        state.header = Some(vec![1, 2, 3]);
        assert_eq!(encode(&state, &[5; 16]).unwrap()[8], VERSION);
        state.audit.insert(1, vec![0, 1, 2]);
        state.audit.insert(2, vec![0xff; 300]);
        let bytes = encode(&state, &[5; 16]).unwrap();
        assert_eq!(bytes[8], VERSION_AUDIT);
        assert_eq!(decode(&bytes).unwrap().audit, state.audit);
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "truncated to {len}");
        }
        // A number given twice (the second entry renumbered 1) keeps the first entry: the
        // store still opens, and the vault's check names the missing entry.
        let second = bytes.len() - (8 + 4 + 300);
        let mut twice = bytes.clone();
        twice[second..second + 8].copy_from_slice(&1u64.to_be_bytes());
        let audit = decode(&twice).unwrap().audit;
        assert_eq!(audit.into_iter().collect::<Vec<_>>(), [(1, vec![0, 1, 2])]);
    }
}
