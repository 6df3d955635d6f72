//! Key hierarchy and primitives: AES-256-GCM sealing, Argon2id, HKDF labels, key commitment and
//! the blind index. No I/O happens here, and nothing here knows the layers above: failures are
//! [`CryptoError`] (or [`AuthFailed`](aead::AuthFailed) for an authentication check), which carry no detail and
//! which the callers (`keys`, `vault`) turn into the crate's `Error`, naming what failed.
//!
//! ```text
//! credential ──(Argon2id | HKDF | keychain)──▶ KEK (one per key slot)
//!   KEK ──wraps──▶ store key (random; one per store, the same in every slot)
//!     store key ──HKDF "tokenvault data-key wrap v1"──▶ wraps the data keys
//!     store key ──HKDF "tokenvault header mac v1"────▶ authenticates the header
//!     store key ──HKDF "tokenvault index v1"─────────▶ blind-index tags
//!   data key (random; one active, older ones kept while records use them) ──seals──▶ records
//! ```

mod aead;
mod index;
mod kdf;

use std::marker::PhantomData;

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use rand::TryRng;
use rand::rngs::SysRng;
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub(crate) use aead::{AeadKey, NONCE_LEN, TAG_LEN, WRAPPED_KEY_LEN};
pub(crate) use index::IndexKey;
pub use index::Tag;
pub use kdf::Argon2Params;
pub(crate) use kdf::{KdfFloor, derive_passphrase_kek};

/// Why a primitive failed. Deliberately carries nothing secret and no cause: the caller says
/// which key, slot or record it was about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum CryptoError {
    /// The operating system's random number generator failed.
    #[error("the OS random number generator failed")]
    Random,
    /// Argon2id parameters outside the accepted bounds (checked before the KDF runs). The
    /// numbers are the refused cost, not a secret.
    #[error("Argon2id parameters out of bounds (m = {m_kib} KiB, t = {t}, p = {p})")]
    KdfParamsOutOfBounds {
        /// Memory in KiB.
        m_kib: u32,
        /// Passes.
        t: u32,
        /// Lanes.
        p: u32,
    },
}

/// Length of every symmetric key.
pub(crate) const KEY_LEN: usize = 32;

/// HKDF labels: one per purpose, never reused.
pub(crate) mod label {
    pub const COMMIT: &[u8] = b"tokenvault commit";
    pub const DATA_KEY_WRAP: &[u8] = b"tokenvault data-key wrap v1";
    pub const HEADER_MAC: &[u8] = b"tokenvault header mac v1";
    pub const INDEX: &[u8] = b"tokenvault index v1";
    pub const RAW_KEY_SLOT: &[u8] = b"tokenvault raw-key slot v1";
    #[cfg(feature = "keychain")]
    pub const KEYCHAIN_SLOT: &[u8] = b"tokenvault keychain slot v1";
}

/// Key roles, so that a data key cannot be passed where a KEK is expected.
pub(crate) mod role {
    /// Key-encryption key of one slot.
    pub enum Kek {}
    /// The store key, wrapped in every slot.
    pub enum Store {}
    /// A data key, which seals records.
    pub enum Data {}
}

/// A 256-bit secret key on the heap, zeroized on drop, with no `Debug` that shows it.
pub(crate) struct Key<Role> {
    bytes: SecretBox<[u8; KEY_LEN]>,
    role: PhantomData<Role>,
}

impl<Role> Key<Role> {
    /// A fresh key from the OS random number generator.
    pub fn random() -> Result<Self, CryptoError> {
        Self::try_init(|bytes| fill_random(bytes))
    }

    /// Builds a key in place, so the bytes are never copied through the stack.
    pub fn try_init<E>(fill: impl FnOnce(&mut [u8; KEY_LEN]) -> Result<(), E>) -> Result<Self, E> {
        let mut bytes = SecretBox::new(Box::new([0u8; KEY_LEN]));
        fill(secrecy::ExposeSecretMut::expose_secret_mut(&mut bytes))?;
        Ok(Self {
            bytes,
            role: PhantomData,
        })
    }

    /// [`try_init`](Self::try_init) for a `fill` that cannot fail.
    pub fn init(fill: impl FnOnce(&mut [u8; KEY_LEN])) -> Self {
        let mut bytes = SecretBox::new(Box::new([0u8; KEY_LEN]));
        fill(secrecy::ExposeSecretMut::expose_secret_mut(&mut bytes));
        Self {
            bytes,
            role: PhantomData,
        }
    }

    pub fn expose(&self) -> &[u8; KEY_LEN] {
        self.bytes.expose_secret()
    }

    /// HKDF-SHA256 of this key with `label` as info (no salt: the key is already uniform).
    pub fn derive<Derived>(&self, label: &[u8]) -> Key<Derived> {
        self.derive_salted(None, label)
    }

    pub fn derive_salted<Derived>(&self, salt: Option<&[u8]>, label: &[u8]) -> Key<Derived> {
        let hkdf = Hkdf::<Sha256>::new(salt, self.expose());
        Key::init(|out| {
            // 32 bytes is far below HKDF-SHA256's 8160-byte output limit.
            hkdf.expand(label, out).expect("32-byte HKDF output");
        })
    }

    /// `HMAC-SHA256(key, "tokenvault commit")`: AES-GCM does not commit to its key, so the
    /// header keeps this to prove an unwrapped key is the one that was wrapped.
    pub fn commitment(&self) -> [u8; 32] {
        hmac_sha256(self.expose(), &[label::COMMIT])
    }

    pub fn matches_commitment(&self, commitment: &[u8; 32]) -> bool {
        self.commitment().ct_eq(commitment).into()
    }

    /// An AES-256-GCM instance under this key.
    pub fn aead(&self) -> AeadKey {
        AeadKey::new(self.expose())
    }
}

/// `HMAC-SHA256(key, parts[0] || parts[1] || …)`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Fills `out` from the OS random number generator (never a user-space PRNG).
pub(crate) fn fill_random(out: &mut [u8]) -> Result<(), CryptoError> {
    SysRng.try_fill_bytes(out).map_err(|_| CryptoError::Random)
}

/// `N` random bytes from the OS.
pub(crate) fn random_array<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    fill_random(&mut out)?;
    Ok(out)
}

/// An unambiguous encoding of associated data: each part as a 4-byte big-endian length and its
/// bytes, so `("ab", "c")` and `("a", "bc")` never encode alike.
pub(crate) fn length_prefixed(parts: &[&[u8]]) -> Vec<u8> {
    let len = parts.iter().map(|p| 4 + p.len()).sum();
    let mut out = Vec::with_capacity(len);
    for part in parts {
        let part_len = u32::try_from(part.len()).expect("associated data parts are small");
        out.extend_from_slice(&part_len.to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefixing_is_unambiguous() {
        assert_ne!(
            length_prefixed(&[b"ab", b"c"]),
            length_prefixed(&[b"a", b"bc"])
        );
        assert_eq!(
            length_prefixed(&[b"", b"x"]),
            [0, 0, 0, 0, 0, 0, 0, 1, b'x']
        );
    }

    #[test]
    fn derived_keys_differ_per_label_and_commitment_checks() {
        let key = Key::<role::Store>::random().unwrap();
        let a: Key<role::Data> = key.derive(label::INDEX);
        let b: Key<role::Data> = key.derive(label::HEADER_MAC);
        assert_ne!(a.expose(), b.expose());
        assert!(key.matches_commitment(&key.commitment()));
        assert!(!a.matches_commitment(&key.commitment()));
    }

    #[test]
    fn random_keys_differ() {
        let a = Key::<role::Data>::random().unwrap();
        let b = Key::<role::Data>::random().unwrap();
        assert_ne!(a.expose(), b.expose());
    }
}
