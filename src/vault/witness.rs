//! Whole-store rollback (SECURITY.md §3.6): a witness outside the store keeps the highest
//! write counter seen, so an older copy of the whole store (a restored backup, a file copied
//! back) fails to open instead of bringing back spent or revoked tokens.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use super::EncryptedStore;
use crate::backend::Backend;
use crate::format::header::Header;
use crate::format::hex;
use crate::store::{Error, Result};

/// The counter a store's witness holds once it was rekeyed: no copy of it opens again.
pub(crate) const RETIRED: u64 = u64::MAX;

/// Where a store's highest write counter is kept, outside the store: a file in the user's
/// data directory ([`StateFileWitness`]), or the application's own (implement this trait).
///
/// It must be as durable as the store and out of reach of whoever could roll the store back
/// (another disk, host or account); a witness rolled back with the store detects nothing.
pub trait Witness: Send + Sync {
    /// The highest counter recorded for store `store_id` (hex), or `None` if none was.
    ///
    /// # Errors
    /// Any failure to read it (an unreadable witness fails the open).
    fn latest(&self, store_id: &str) -> io::Result<Option<u64>>;

    /// Records that store `store_id` reached `writes`; a lower value than the one recorded
    /// must not lower it.
    ///
    /// # Errors
    /// Any failure to write it.
    fn record(&self, store_id: &str, writes: u64) -> io::Result<()>;
}

fn witness_error(e: &io::Error) -> Error {
    Error::Witness {
        reason: e.to_string(),
    }
}

pub(super) fn writes_of(header: &Header) -> u64 {
    header.freshness.as_ref().map_or(0, |f| f.writes)
}

/// What `witness` holds for store `store_id`.
pub(super) fn latest(witness: &dyn Witness, store_id: &[u8; 16]) -> Result<Option<u64>> {
    witness
        .latest(&hex(store_id))
        .map_err(|e| witness_error(&e))
}

impl<B: Backend> EncryptedStore<B> {
    /// Tells the witness (if any) that the store reached `header`'s write counter. After a
    /// commit: a failure is logged, not returned (the write happened; reporting it as failed
    /// would invite a retry or a cleanup of what is in fact committed), and the next open
    /// through the witness fails if it still cannot be read.
    pub(super) fn witness_saw(&self, header: &Header) {
        self.witness_record(&header.store_id, writes_of(header));
    }

    /// Tells the witness (if any) that the store under `old_store_id` is gone for good.
    pub(super) fn witness_retire(&self, old_store_id: &[u8; 16]) {
        self.witness_record(old_store_id, RETIRED);
    }

    fn witness_record(&self, store_id: &[u8; 16], writes: u64) {
        if let Some(w) = &self.witness
            && let Err(e) = w.record(&hex(store_id), writes)
        {
            log::warn!("the rollback witness could not record write {writes}: {e}");
        }
    }
}

/// A witness that keeps one small file per store, `<dir>/<store id>.witness` (the decimal
/// counter), replaced atomically; the directory is created 0700. The default directory is
/// `$XDG_DATA_HOME/tokenvault/witness` (see the CLI), beside but outside the store's own file.
#[derive(Clone, Debug)]
pub struct StateFileWitness {
    dir: PathBuf,
}

impl StateFileWitness {
    /// A witness keeping its files in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn path(&self, store_id: &str) -> io::Result<PathBuf> {
        // Store ids are 32 hex digits; anything else must not become a path.
        if store_id.len() != 32 || !store_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a store id",
            ));
        }
        Ok(self.dir.join(format!("{store_id}.witness")))
    }
}

fn read_counter(path: &Path) -> io::Result<Option<u64>> {
    match fs::read_to_string(path) {
        Ok(text) => text.trim().parse().map(Some).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("witness file {} does not hold a counter", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Witness for StateFileWitness {
    fn latest(&self, store_id: &str) -> io::Result<Option<u64>> {
        read_counter(&self.path(store_id)?)
    }

    fn record(&self, store_id: &str, writes: u64) -> io::Result<()> {
        let path = self.path(store_id)?;
        let mut dir = fs::DirBuilder::new();
        dir.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
        dir.create(&self.dir)?;
        // One writer at a time, so two processes cannot lower the counter between them.
        let lock = private_file()
            .truncate(false)
            .open(self.dir.join(".lock"))?;
        lock.lock()?;
        if read_counter(&path)?.is_some_and(|seen| seen >= writes) {
            return Ok(());
        }
        let temp = path.with_extension("witness.tmp");
        let mut file = private_file().truncate(true).open(&temp)?;
        writeln!(file, "{writes}")?;
        file.sync_all()?;
        fs::rename(&temp, &path)?;
        #[cfg(unix)]
        fs::File::open(&self.dir)?.sync_all()?;
        Ok(())
    }
}

/// Options for a file only its owner may read and write (0600 on Unix).
fn private_file() -> fs::OpenOptions {
    let mut options = fs::OpenOptions::new();
    options.create(true).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_never_goes_down_and_refuses_odd_ids() {
        let dir = tempfile::tempdir().unwrap();
        let w = StateFileWitness::new(dir.path().join("w"));
        let id = "00112233445566778899aabbccddeeff";
        assert_eq!(w.latest(id).unwrap(), None);
        w.record(id, 5).unwrap();
        w.record(id, 3).unwrap();
        assert_eq!(w.latest(id).unwrap(), Some(5));
        w.record(id, RETIRED).unwrap();
        assert_eq!(w.latest(id).unwrap(), Some(RETIRED));
        assert!(w.latest("../etc/passwd").is_err());
        fs::write(dir.path().join("w").join(format!("{id}.witness")), "x").unwrap();
        assert!(
            w.latest(id).is_err(),
            "a damaged witness is an error, not a pass"
        );
    }
}
