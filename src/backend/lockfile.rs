//! Named cross-process locks as `flock`ed files, for the backends that live in files: the OS
//! releases a lock when its holder dies, so a crashed process never blocks the others.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::HeldLock;
use super::private_files::{self, sibling};
use crate::store::{BackendError, BackendErrorKind};

/// A held lock: the open, locked file (closing it releases the lock).
struct LockFile(#[allow(dead_code)] File);

impl HeldLock for LockFile {}

/// Takes the lock `name` for the store at `store_path`: file `STORE.locks/<hash>.lock` (0600
/// in a 0700 directory; the name is hashed, so nothing of it appears on disk), polled with
/// `try_lock` until `timeout`. The directory and the file are never links, never another
/// user's, never writable by others (`private_files`).
pub(super) fn lock(
    store_path: &Path,
    name: &str,
    timeout: Duration,
) -> Result<Box<dyn HeldLock>, BackendError> {
    let dir = sibling(store_path, ".locks");
    private_files::private_dir(&dir)?;
    let digest = Sha256::digest(name.as_bytes());
    let file_name: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    let file = private_files::open_lock_file(&dir.join(format!("{file_name}.lock")))?;
    // A timeout past what the clock can represent waits without a deadline.
    let deadline = Instant::now().checked_add(timeout);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Box::new(LockFile(file))),
            Err(std::fs::TryLockError::WouldBlock)
                if deadline.is_none_or(|d| Instant::now() < d) =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(BackendError::new(
                    BackendErrorKind::Busy,
                    format!("another process held the lock for {} s", timeout.as_secs()),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(BackendError::new(BackendErrorKind::Io, e));
            }
        }
    }
}
