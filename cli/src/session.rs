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

fn find(store_id: &str) -> Option<Key> {
    ring().ok()?.search(&description(store_id)).ok()
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
    // Made with a placeholder and locked down to its owner, then filled: the secret is never
    // in a key others could read. The expiry comes last: an update resets it (a `user` key's
    // update installs the payload with no expiry).
    let placeholder = [0u8; 32];
    let entry = ring
        .add_key(&description(store_id), &placeholder)
        .map_err(fail)?;
    let owner_only = KeyPermissionsBuilder::builder()
        .posessor(Permission::empty())
        .user(Permission::ALL)
        .build();
    let seconds = usize::try_from(ttl.as_secs()).unwrap_or(usize::MAX);
    let filled = entry
        .set_perms(owner_only)
        .and_then(|()| entry.update(key.expose_secret()))
        .and_then(|()| entry.set_timeout(seconds));
    if let Err(e) = filled {
        let _ = entry.invalidate();
        return Err(fail(e));
    }
    Ok(entry.get_id().0)
}

/// Removes the key of `store_id`; whether there was one.
pub fn forget(store_id: &str) -> bool {
    find(store_id).is_some_and(|key| key.invalidate().is_ok())
}
