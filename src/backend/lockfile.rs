//! Named cross-process locks as `flock`ed files, for the backends that live in files: the OS
//! releases a lock when its holder dies, so a crashed process never blocks the others.

use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::HeldLock;
use crate::store::{BackendError, BackendErrorKind};

/// A held lock: the open, locked file (closing it releases the lock).
struct LockFile(#[allow(dead_code)] File);

impl HeldLock for LockFile {}

/// Takes the lock `name` for the store at `store_path`: file `STORE.locks/<hash>.lock` (0600
/// in a 0700 directory; the name is hashed, so nothing of it appears on disk), polled with
/// `try_lock` until `timeout`.
pub(super) fn lock(
    store_path: &Path,
    name: &str,
    timeout: Duration,
) -> Result<Box<dyn HeldLock>, BackendError> {
    let mut dir = store_path.as_os_str().to_owned();
    dir.push(".locks");
    let dir = PathBuf::from(dir);
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| BackendError::new(BackendErrorKind::Io, e))?;
    let digest = Sha256::digest(name.as_bytes());
    let file_name: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(dir.join(format!("{file_name}.lock")))
        .map_err(|e| BackendError::new(BackendErrorKind::Io, e))?;
    let deadline = Instant::now() + timeout;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Box::new(LockFile(file))),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
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
