//! The OS keychain as a key source, through the `keyring` crate: Secret Service on Linux and
//! the BSDs, Keychain on macOS, Credential Manager on Windows. Each store keeps one random
//! 32-byte secret per keychain, under service `tokenvault` and account = the store id.
//!
//! There is no fallback: when the keychain cannot be reached the caller gets
//! [`Error::Keychain`](crate::Error::Keychain) and must use another key slot.
//!
//! The entries are this module's: it creates them (with a keychain slot), finds the one that
//! opens a store's keychain slot and deletes them; the vault only asks.

use secrecy::{ExposeSecret, SecretBox};
use zeroize::Zeroizing;

use super::Credential;
use crate::crypto::fill_random;
use crate::format::header::{Header, SlotKind};
use crate::format::hex;
use crate::store::{Error, Result};

/// The keychain service name of every tokenvault entry.
pub const SERVICE: &str = "tokenvault";

/// Maps a keyring error to ours. Never formats the error itself: two of keyring-core's
/// variants (`BadEncoding`, `BadDataFormat`) carry the secret's bytes.
fn keychain_error(e: keyring::Error, account: &str) -> Error {
    let reason = match e {
        keyring::Error::NoEntry => {
            format!("the OS keychain has no tokenvault entry for store {account}")
        }
        keyring::Error::NoDefaultStore => {
            "no OS keychain is available (on Linux: no Secret Service on the D-Bus session bus)"
                .to_owned()
        }
        keyring::Error::NoStorageAccess(inner) => {
            format!("the OS keychain refused access (locked?): {inner}")
        }
        keyring::Error::PlatformFailure(inner) => format!("the OS keychain failed: {inner}"),
        keyring::Error::BadEncoding(_) | keyring::Error::BadDataFormat(..) => {
            format!("the OS keychain entry for store {account} is not a tokenvault key (altered?)")
        }
        _ => "the OS keychain failed".to_owned(),
    };
    Error::Keychain { reason }
}

fn entry(account: &str) -> Result<keyring::Entry> {
    keyring::Entry::new(SERVICE, account).map_err(|e| keychain_error(e, account))
}

/// Creates a new random secret and stores it for the store `store_id`, replacing any entry
/// there.
pub(crate) fn create(store_id: &[u8; 16]) -> Result<SecretBox<[u8; 32]>> {
    let account = &hex(store_id);
    let mut secret = SecretBox::new(Box::new([0u8; 32]));
    fill_random(secrecy::ExposeSecretMut::expose_secret_mut(&mut secret))?;
    entry(account)?
        .set_secret(secret.expose_secret())
        .map_err(|e| keychain_error(e, account))?;
    Ok(secret)
}

/// The secret stored for the store `store_id`.
pub(crate) fn load(store_id: &[u8; 16]) -> Result<SecretBox<[u8; 32]>> {
    let account = &hex(store_id);
    let bytes = Zeroizing::new(
        entry(account)?
            .get_secret()
            .map_err(|e| keychain_error(e, account))?,
    );
    let array: &[u8; 32] = bytes.as_slice().try_into().map_err(|_| Error::Keychain {
        reason: format!(
            "the OS keychain entry for store {account} is not a 32-byte key (altered?)"
        ),
    })?;
    let mut secret = SecretBox::new(Box::new([0u8; 32]));
    secrecy::ExposeSecretMut::expose_secret_mut(&mut secret).copy_from_slice(array);
    Ok(secret)
}

/// Whether the keychain has an entry for the store `store_id`.
fn exists(store_id: &[u8; 16]) -> Result<bool> {
    let account = &hex(store_id);
    match entry(account)?.get_secret() {
        Ok(bytes) => {
            drop(Zeroizing::new(bytes));
            Ok(true)
        }
        Err(keyring::Error::NoEntry) => Ok(false),
        Err(e) => Err(keychain_error(e, account)),
    }
}

/// Deletes the entry for the store `store_id`; no entry is not an error.
pub(crate) fn delete(store_id: &[u8; 16]) -> Result<()> {
    delete_account(&hex(store_id))
}

fn delete_account(account: &str) -> Result<()> {
    match entry(account)?.delete_credential() {
        Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
        Err(e) => Err(keychain_error(e, account)),
    }
}

/// Deletes the OS keychain entry of the store with this id (hex), if there is one.
///
/// # Errors
/// [`Error::Keychain`] if the keychain cannot be reached.
pub fn delete_entry(store_id: &str) -> Result<()> {
    delete_account(store_id)
}

/// The error when this machine's entry for the store opens none of its keychain slots.
pub(crate) fn opens_no_slot(store_id: &[u8; 16]) -> Error {
    Error::Keychain {
        reason: format!(
            "the OS keychain's key for store {} opens none of its keychain slots (altered, or the \
             store was copied from another machine: add a keychain slot here)",
            hex(store_id)
        ),
    }
}

/// This machine's OS keychain entry for a store, found to open one of the store's keychain
/// slots (a keychain holds one entry per store, so at most one slot).
#[derive(Debug)]
pub(crate) struct LocalEntry {
    store_id: [u8; 16],
    slot: u32,
}

impl LocalEntry {
    /// The entry of this machine's keychain that opens a keychain slot of `header`, if any. The
    /// keychain is not asked when the store has no keychain slot.
    ///
    /// # Errors
    /// Keychain errors other than a missing entry; [`Error::Tampered`] for a slot whose key
    /// does not match the header's commitment.
    pub(crate) fn find(header: &Header) -> Result<Option<LocalEntry>> {
        if !header
            .slots
            .iter()
            .any(|s| matches!(s.kind, SlotKind::Keychain { .. }))
            || !exists(&header.store_id)?
        {
            return Ok(None);
        }
        Ok(Credential::Keychain
            .unlock(header)?
            .map(|(slot, _)| LocalEntry {
                store_id: header.store_id,
                slot,
            }))
    }

    /// The entry to delete with slot `id` of `header`: this machine's entry, if `id` is the
    /// keychain slot it opens. A keychain that cannot be asked counts as holding none (the
    /// slot can still be removed; an entry that stays opens nothing).
    pub(crate) fn of_slot(header: &Header, id: u32) -> Option<LocalEntry> {
        let is_keychain_slot = header
            .slots
            .iter()
            .any(|s| s.id == id && matches!(s.kind, SlotKind::Keychain { .. }));
        if !is_keychain_slot {
            return None;
        }
        Self::find(header).ok().flatten().filter(|e| e.slot == id)
    }

    /// The keychain slot it opens.
    pub(crate) fn slot(&self) -> u32 {
        self.slot
    }

    /// Deletes the entry.
    ///
    /// # Errors
    /// [`Error::Keychain`] if the keychain cannot be reached.
    pub(crate) fn delete(self) -> Result<()> {
        delete(&self.store_id)
    }
}
