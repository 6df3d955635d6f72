//! The OS keychain as a key source, through the `keyring` crate: Secret Service on Linux and
//! the BSDs, Keychain on macOS, Credential Manager on Windows. Each store keeps one random
//! 32-byte secret per keychain, under service `tokenvault` and account = the store id.
//!
//! There is no fallback: when the keychain cannot be reached the caller gets
//! [`Error::Keychain`](crate::Error::Keychain) and must use another key slot.

use secrecy::{ExposeSecret, SecretBox};
use zeroize::Zeroizing;

use crate::crypto::fill_random;
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

/// Creates a new random secret and stores it for `account`, replacing any entry there.
pub(crate) fn create(account: &str) -> Result<SecretBox<[u8; 32]>> {
    let mut secret = SecretBox::new(Box::new([0u8; 32]));
    fill_random(secrecy::ExposeSecretMut::expose_secret_mut(&mut secret))?;
    entry(account)?
        .set_secret(secret.expose_secret())
        .map_err(|e| keychain_error(e, account))?;
    Ok(secret)
}

/// The secret stored for `account`.
pub(crate) fn load(account: &str) -> Result<SecretBox<[u8; 32]>> {
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

/// Whether the keychain has an entry for `account`.
pub(crate) fn exists(account: &str) -> Result<bool> {
    match entry(account)?.get_secret() {
        Ok(bytes) => {
            drop(Zeroizing::new(bytes));
            Ok(true)
        }
        Err(keyring::Error::NoEntry) => Ok(false),
        Err(e) => Err(keychain_error(e, account)),
    }
}

/// Deletes the entry for `account`; no entry is not an error.
pub(crate) fn delete(account: &str) -> Result<()> {
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
    delete(store_id)
}
