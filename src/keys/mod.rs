//! Key sources: what unlocks a key slot. A store keeps its store key wrapped once per slot, so
//! a passphrase and a raw key (and, later, the OS keychain) can each open the same store.

use std::fmt;

use secrecy::{ExposeSecret, SecretBox};
use zeroize::Zeroizing;

use crate::crypto::{
    Argon2Params, KdfFloor, Key, derive_passphrase_kek, label, random_array, role,
};
use crate::format::header::{Slot, SlotKind};
use crate::store::{Error, Result};

/// Something that opens a key slot. Redacted in `Debug`; zeroized on drop.
#[non_exhaustive]
pub enum Credential {
    /// A passphrase, stretched with Argon2id.
    Passphrase(Passphrase),
    /// 32 random bytes held by the application (from a KMS or secret manager).
    RawKey(RawKey),
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

    /// The kind of slot this credential opens, for messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Credential::Passphrase(_) => "passphrase",
            Credential::RawKey(_) => "raw key",
        }
    }

    /// Passphrase credential that also accepts Argon2id costs below the floor.
    pub(crate) fn passphrase_insecure(passphrase: impl Into<String>) -> Self {
        Credential::Passphrase(Passphrase {
            secret: Zeroizing::new(passphrase.into()),
            floor: KdfFloor::InsecureAllowed,
        })
    }

    /// A new slot `id` holding `store_key` under this credential.
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
        let mut slot = Slot {
            id,
            kind: match self {
                Credential::Passphrase(_) => SlotKind::Passphrase {
                    params: argon2,
                    salt,
                    wrapped: [0; 60],
                },
                Credential::RawKey(_) => SlotKind::RawKey {
                    salt,
                    wrapped: [0; 60],
                },
            },
        };
        let kek = self.kek_for(&slot.kind)?.ok_or(Error::Refused {
            reason: "credential does not fit the slot",
        })?;
        let new_wrapped = kek.aead().wrap_key(store_key, &slot.wrap_ad(store_id))?;
        match &mut slot.kind {
            SlotKind::Passphrase { wrapped, .. } | SlotKind::RawKey { wrapped, .. } => {
                *wrapped = new_wrapped
            }
            SlotKind::Unknown { .. } => unreachable!("built above"),
        }
        Ok(slot)
    }

    /// Whether this credential is of the kind that opens `slot`.
    pub(crate) fn fits(&self, slot: &SlotKind) -> bool {
        matches!(
            (self, slot),
            (Credential::Passphrase(_), SlotKind::Passphrase { .. })
                | (Credential::RawKey(_), SlotKind::RawKey { .. })
        )
    }

    /// The KEK this credential gives for `slot`, or `None` if it is of another kind. Argon2id
    /// parameters are checked against the bounds before the KDF runs.
    pub(crate) fn kek_for(&self, slot: &SlotKind) -> Result<Option<Key<role::Kek>>> {
        match (self, slot) {
            (Credential::Passphrase(p), SlotKind::Passphrase { params, salt, .. }) => {
                derive_passphrase_kek(p.secret.as_bytes(), salt, params, p.floor).map(Some)
            }
            (Credential::RawKey(raw), SlotKind::RawKey { salt, .. }) => {
                let raw: Key<role::Kek> = Key::try_init(|out| {
                    out.copy_from_slice(raw.0.expose_secret());
                    Ok(())
                })?;
                Ok(Some(raw.derive_salted(Some(salt), label::RAW_KEY_SLOT)))
            }
            _ => Ok(None),
        }
    }
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
