//! `tokenvault unlock` / `lock`: a store's key kept in the Linux kernel keyring for a while,
//! so that the commands of one login session open the store without Argon2id or a prompt.
//!
//! The key is a `user` key named `tokenvault:<store id>` in the session keyring (the user
//! session keyring where the login set up none), with an expiry the kernel enforces, and
//! permissions for the owning uid only — none for "possessor", so a process of another user
//! that shares the session keyring (`sudo -u nobody`, `runuser`) cannot read it either. It
//! never touches disk: kernel key payloads are not swapped, and are not in a core dump of
//! this process. Root can read it, as root can read the process's memory. SECURITY.md §7.

use std::time::Duration;

use linux_keyutils::{
    Key, KeyError, KeyPermissionsBuilder, KeyRing, KeyRingIdentifier, Permission,
};
use tokenvault::StoreKey;
use zeroize::Zeroizing;

use crate::CliError;

fn description(store_id: &str) -> String {
    format!("tokenvault:{store_id}")
}

/// The login session's keyring: the session keyring, else the user session keyring (which
/// the kernel gives a process whose login set up no session keyring).
fn ring() -> Result<KeyRing, KeyError> {
    KeyRing::from_special_id(KeyRingIdentifier::Session, false)
        .or_else(|_| KeyRing::from_special_id(KeyRingIdentifier::UserSession, true))
}

/// The key named for `store_id` in the session's keyring, if it is this user's own: one
/// another user planted under the name (in a keyring shared through `sudo`) is never used.
fn find(store_id: &str) -> Option<Key> {
    let key = ring().ok()?.search(&description(store_id)).ok()?;
    let owner = key.metadata().ok()?.get_uid();
    (owner == rustix::process::geteuid().as_raw()).then_some(key)
}

/// The store key `unlock` left for `store_id`, if it is there and has not expired.
pub fn cached(store_id: &str) -> Option<StoreKey> {
    let key = find(store_id)?;
    let mut bytes = Zeroizing::new([0u8; 32]);
    match key.read(&mut *bytes) {
        Ok(32) => Some(StoreKey::from_bytes(*bytes)),
        _ => None,
    }
}

/// Keeps `key` for `store_id` for `ttl`; returns the kernel's serial number of the key.
pub fn remember(store_id: &str, key: &StoreKey, ttl: Duration) -> Result<i32, CliError> {
    let fail =
        |e: KeyError| CliError::failure(format!("cannot keep the key in the kernel keyring: {e}"));
    let ring = ring().map_err(fail)?;
    // Built in this thread's own keyring, which nothing else can reach: made with a
    // placeholder, locked down to its owner, filled, given its expiry (last: an update of a
    // `user` key clears it). Only then linked into the session keyring, which replaces any
    // key of the same name in one step — never filling a key someone else made under the
    // name, and never showing the placeholder to a command that runs meanwhile.
    let private = KeyRing::from_special_id(KeyRingIdentifier::Thread, true).map_err(fail)?;
    let placeholder = [0u8; 32];
    let entry = private
        .add_key(&description(store_id), &placeholder)
        .map_err(fail)?;
    let owner_only = KeyPermissionsBuilder::builder()
        .posessor(Permission::empty())
        .user(Permission::ALL)
        .build();
    let seconds = usize::try_from(ttl.as_secs()).unwrap_or(usize::MAX);
    let made = entry
        .set_perms(owner_only)
        .and_then(|()| entry.update(key.expose_secret()))
        .and_then(|()| entry.set_timeout(seconds))
        .and_then(|()| ring.link_key(entry));
    let _ = private.unlink_key(entry);
    if let Err(e) = made {
        let _ = entry.invalidate();
        return Err(fail(e));
    }
    Ok(entry.get_id().0)
}

/// Gives the calling process a new, empty session keyring: for `exec`'s child, so that a
/// `tokenvault` inside the command does not find the session's key (it can still be read
/// by serial number by any process of the user: SECURITY.md §7.1). Async-signal-safe.
pub fn leave_session_keyring() -> std::io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL) takes no pointer but the null name,
    // touches no memory of this process, and is a plain system call (async-signal-safe, so
    // allowed between fork and exec).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Removes the key of `store_id`; whether there was one.
pub fn forget(store_id: &str) -> bool {
    find(store_id).is_some_and(|key| key.invalidate().is_ok())
}
