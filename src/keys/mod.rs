//! Key sources: what unlocks a key slot. A store keeps its store key wrapped once per slot, so
//! a passphrase, a raw key and the OS keychain can each open the same store.

#[cfg(feature = "keychain")]
pub mod keychain;

use std::fmt;

use secrecy::{ExposeSecret, SecretBox};
use zeroize::Zeroizing;

use crate::crypto::{
    Argon2Params, KdfFloor, Key, derive_passphrase_kek, label, random_array, role,
};
use crate::format::header::{Slot, SlotKind};
use crate::store::Result;

/// Something that opens a key slot. Redacted in `Debug`; zeroized on drop.
#[non_exhaustive]
pub enum Credential {
    /// A passphrase, stretched with Argon2id.
    Passphrase(Passphrase),
    /// 32 random bytes held by the application (from a KMS or secret manager).
    RawKey(RawKey),
    /// A random 32-byte secret kept in the OS keychain under service `tokenvault`, account =
    /// the store id.
    #[cfg(feature = "keychain")]
    Keychain,
}

/// A passphrase.
pub struct Passphrase {
    // Zeroizing<String>, not secrecy's SecretString: converting a String into a boxed str may
    // reallocate and free the old buffer without clearing it.
    secret: Zeroizing<String>,
    floor: KdfFloor,
}

/// A 256-bit key supplied by the application.
pub struct RawKey(SecretBox<[u8; 32]>);

impl Credential {
    /// A passphrase credential. Stores created with it use Argon2id at the cost given at
    /// creation (RFC 9106's m = 64 MiB, t = 3, p = 4 by default).
    pub fn passphrase(passphrase: impl Into<String>) -> Self {
        Credential::Passphrase(Passphrase {
            secret: Zeroizing::new(passphrase.into()),
            floor: KdfFloor::Enforced,
        })
    }

    /// A raw-key credential.
    pub fn raw_key(key: RawKey) -> Self {
        Credential::RawKey(key)
    }

    /// The OS keychain credential: no secret to give, the keychain holds it.
    #[cfg(feature = "keychain")]
    pub fn keychain() -> Self {
        Credential::Keychain
    }

    /// The kind of slot this credential opens, for messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Credential::Passphrase(_) => "passphrase",
            Credential::RawKey(_) => "raw key",
            #[cfg(feature = "keychain")]
            Credential::Keychain => "keychain",
        }
    }

    /// Passphrase credential that also accepts Argon2id costs below the floor.
    pub(crate) fn passphrase_insecure(passphrase: impl Into<String>) -> Self {
        Credential::Passphrase(Passphrase {
            secret: Zeroizing::new(passphrase.into()),
            floor: KdfFloor::InsecureAllowed,
        })
    }

    /// A new slot `id` holding `store_key` under this credential. For the keychain this
    /// stores a new random secret in the OS keychain first.
    pub(crate) fn new_slot(
        &self,
        id: u32,
        store_id: &[u8; 16],
        store_key: &Key<role::Store>,
        argon2: Argon2Params,
    ) -> Result<Slot> {
        // The wrap's associated data covers the slot's parameters, so build the slot with a
        // placeholder, compute its AD, then wrap.
        let salt: [u8; 16] = random_array()?;
        let wrapped = [0; 60];
        let (kind, kek) = match self {
            Credential::Passphrase(p) => {
                let kind = SlotKind::Passphrase {
                    params: argon2,
                    salt,
                    wrapped,
                };
                (
                    kind,
                    derive_passphrase_kek(p.secret.as_bytes(), &salt, &argon2, p.floor)?,
                )
            }
            Credential::RawKey(raw) => (
                SlotKind::RawKey { salt, wrapped },
                secret_kek(raw.0.expose_secret(), &salt, label::RAW_KEY_SLOT),
            ),
            #[cfg(feature = "keychain")]
            Credential::Keychain => {
                let secret = keychain::create(&crate::vault::hex_id(store_id))?;
                (
                    SlotKind::Keychain { salt, wrapped },
                    secret_kek(secret.expose_secret(), &salt, label::KEYCHAIN_SLOT),
                )
            }
        };
        let mut slot = Slot { id, kind };
        let new_wrapped = kek.aead().wrap_key(store_key, &slot.wrap_ad(store_id))?;
        *slot.kind.wrapped_mut().expect("a kind built above") = new_wrapped;
        Ok(slot)
    }

    /// Whether this credential is of the kind that opens `slot`.
    pub(crate) fn fits(&self, slot: &SlotKind) -> bool {
        match (self, slot) {
            (Credential::Passphrase(_), SlotKind::Passphrase { .. })
            | (Credential::RawKey(_), SlotKind::RawKey { .. }) => true,
            #[cfg(feature = "keychain")]
            (Credential::Keychain, SlotKind::Keychain { .. }) => true,
            _ => false,
        }
    }

    /// The KEK this credential gives for `slot` of store `store_id`, or `None` if it is of
    /// another kind. Argon2id parameters are checked against the bounds before the KDF runs;
    /// the keychain is asked for the store's secret.
    pub(crate) fn kek_for(
        &self,
        slot: &SlotKind,
        store_id: &[u8; 16],
    ) -> Result<Option<Key<role::Kek>>> {
        let _ = store_id; // only the keychain needs it
        match (self, slot) {
            (Credential::Passphrase(p), SlotKind::Passphrase { params, salt, .. }) => {
                derive_passphrase_kek(p.secret.as_bytes(), salt, params, p.floor).map(Some)
            }
            (Credential::RawKey(raw), SlotKind::RawKey { salt, .. }) => Ok(Some(secret_kek(
                raw.0.expose_secret(),
                salt,
                label::RAW_KEY_SLOT,
            ))),
            #[cfg(feature = "keychain")]
            (Credential::Keychain, SlotKind::Keychain { salt, .. }) => {
                let secret = keychain::load(&crate::vault::hex_id(store_id))?;
                Ok(Some(secret_kek(
                    secret.expose_secret(),
                    salt,
                    label::KEYCHAIN_SLOT,
                )))
            }
            _ => Ok(None),
        }
    }
}

/// A slot KEK from a 32-byte secret (raw key or keychain): HKDF with the slot's salt, so the
/// same secret gives a different KEK in every slot and store.
fn secret_kek(secret: &[u8; 32], salt: &[u8; 16], label: &[u8]) -> Key<role::Kek> {
    let ikm: Key<role::Kek> = Key::try_init(|out| {
        out.copy_from_slice(secret);
        Ok(())
    })
    .expect("infallible init");
    ikm.derive_salted(Some(salt), label)
}

impl RawKey {
    /// Wraps 32 key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let mut bytes = bytes;
        let key = RawKey(SecretBox::new(Box::new(bytes)));
        zeroize::Zeroize::zeroize(&mut bytes);
        key
    }

    /// A new random key (to hand to a secret manager).
    ///
    /// # Errors
    /// [`Error::Random`] if the OS random number generator fails.
    pub fn generate() -> Result<Self> {
        Ok(Self::from_bytes(random_array()?))
    }

    /// The key bytes, e.g. to store them in a secret manager.
    pub fn expose_secret(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential::{}(<redacted>)", self.kind_name())
    }
}

impl fmt::Debug for RawKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawKey(<redacted>)")
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}
