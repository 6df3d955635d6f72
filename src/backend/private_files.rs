//! The one place where the file-based backends create and check files: the store file, its lock
//! file, its lock directory and its temporary files.
//!
//! The rule (SECURITY.md, "Files beside a store"): nothing is ever opened through a symbolic
//! link, nothing owned by another user is used, and nothing whose mode lets another user write
//! it is trusted. Temporary files get a fresh random name and are created exclusively
//! (`O_CREAT | O_EXCL | O_NOFOLLOW`), so a file or link planted beside the store can never be
//! truncated, written through, or renamed over the store. Lock files are opened with
//! `O_NOFOLLOW` and checked after opening (on the open descriptor, so the check and the use
//! are about the same file).

use std::fs::{self, DirBuilder, File, Metadata, OpenOptions};
use std::io::ErrorKind;
#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::crypto::random_array;
use crate::store::{BackendError, BackendErrorKind};

/// Options that create a file 0600 and never open a symbolic link (`O_NOFOLLOW`). Elsewhere
/// than on Unix: plain options (owner and mode checks are Unix-only; see SECURITY.md §9.2).
fn private_options() -> OpenOptions {
    #[allow(unused_mut)]
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    options
        .mode(0o600)
        // The flag's bit pattern as the OS defines it; `custom_flags` takes it as an `i32`.
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits().cast_signed());
    options
}

/// Opens `path` for reading, never through a link.
pub(crate) fn open_for_reading(path: &Path) -> std::io::Result<File> {
    private_options().read(true).open(path)
}

/// Creates `path` as a new 0600 file (never through a link); `AlreadyExists` if it exists.
pub(crate) fn create_new_private(path: &Path) -> std::io::Result<File> {
    private_options().write(true).create_new(true).open(path)
}

fn refused(path: &Path, why: &str) -> BackendError {
    BackendError::new(
        BackendErrorKind::Insecure,
        format!("refusing {}: {why}", path.display()),
    )
}

fn io(e: std::io::Error) -> BackendError {
    BackendError::new(BackendErrorKind::Io, e)
}

/// Checks what `meta` (of `path`, not followed) describes: not a link, owned by this process's
/// user, not writable by group or others.
fn check_owned(path: &Path, meta: &Metadata) -> Result<(), BackendError> {
    if meta.file_type().is_symlink() {
        return Err(refused(path, "it is a symbolic link"));
    }
    #[cfg(unix)]
    check_owner_and_mode(path, meta)?;
    Ok(())
}

#[cfg(unix)]
fn check_owner_and_mode(path: &Path, meta: &Metadata) -> Result<(), BackendError> {
    if meta.uid() != rustix::process::geteuid().as_raw() {
        return Err(refused(path, "it is owned by another user"));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(refused(
            path,
            "other users may write to it (chmod go-w, or 600 for a file)",
        ));
    }
    Ok(())
}

/// Checks an existing store file (a missing one is fine: it will be created 0600); see the
/// module docs for the rule.
///
/// # Errors
/// [`BackendErrorKind::Insecure`] for a link, a file owned by another user or writable by
/// others, or something that is not a regular file; [`BackendErrorKind::Io`] if it cannot be
/// examined.
pub(crate) fn check_store_file(path: &Path) -> Result<(), BackendError> {
    match fs::symlink_metadata(path) {
        Ok(meta) => {
            check_owned(path, &meta)?;
            if meta.is_file() {
                Ok(())
            } else {
                Err(refused(path, "it is not a regular file"))
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(e)),
    }
}

/// Opens (creating it 0600 if missing) a lock file, never through a link, and checks the file
/// it opened.
///
/// # Errors
/// As [`check_store_file`].
pub(crate) fn open_lock_file(path: &Path) -> Result<File, BackendError> {
    let file = private_options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| link_or_io(path, e))?;
    let meta = file.metadata().map_err(io)?;
    check_owned(path, &meta)?;
    if !meta.is_file() {
        return Err(refused(path, "it is not a regular file"));
    }
    Ok(file)
}

/// `ELOOP` from an `O_NOFOLLOW` open means the last component is a link.
fn link_or_io(path: &Path, e: std::io::Error) -> BackendError {
    #[cfg(unix)]
    let is_link = e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error());
    #[cfg(not(unix))]
    let is_link = false;
    if is_link {
        refused(path, "it is a symbolic link")
    } else {
        io(e)
    }
}

/// Creates the private directory `path` (0700) if missing, then checks it: a directory, not a
/// link, owned by this user, writable by nobody else.
///
/// # Errors
/// As [`check_store_file`].
pub(crate) fn private_dir(path: &Path) -> Result<(), BackendError> {
    let mut builder = DirBuilder::new();
    #[cfg(unix)]
    builder.mode(0o700);
    match builder.create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    let meta = fs::symlink_metadata(path).map_err(io)?;
    check_owned(path, &meta)?;
    if meta.is_dir() {
        Ok(())
    } else {
        Err(refused(path, "it is not a directory"))
    }
}

/// Creates a new temporary file beside `path`, `PATH.tmp-<16 random hex digits>`, 0600,
/// exclusively: it cannot be a file or link that was there before.
///
/// # Errors
/// [`BackendErrorKind::Io`] if it cannot be created; `Other` if no random name could be drawn.
pub(crate) fn create_temp_beside(path: &Path) -> Result<(File, PathBuf), BackendError> {
    let random: [u8; 8] = random_array()
        .map_err(|_| BackendError::new(BackendErrorKind::Other, "the OS gave no random bytes"))?;
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = sibling(path, &format!("{TEMP_SUFFIX}{suffix}"));
    let file = create_new_private(&tmp).map_err(io)?;
    Ok((file, tmp))
}

/// What the name of every temporary file beside a file store starts with, after the store's
/// own file name (`tokens.tv.tmp-<16 hex digits>`).
pub const TEMP_SUFFIX: &str = ".tmp-";

/// `path` with `suffix` appended to its file name.
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
