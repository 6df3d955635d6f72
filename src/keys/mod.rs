//! Key sources: what unlocks a key slot. A store keeps its store key wrapped once per slot, so
//! a passphrase, a raw key and the OS keychain can each open the same store.
//!
//! This layer owns the slots' side of the key hierarchy: making a slot for a credential, finding
//! the slot a credential opens, the slot kinds a caller sees ([`StoreInfo`]), which credential to
//! use from the environment ([`Credential::from_env`]), and the OS keychain entries behind
//! keychain slots (created, found and deleted here; the vault only asks).

mod base64;
mod env;
#[cfg(feature = "keychain")]
pub mod keychain;

use std::fmt;

use secrecy::{ExposeSecret, SecretBox};
use zeroize::Zeroizing;

pub use env::{CredentialChoice, CredentialError, PassphraseOrigin};

use crate::crypto::{
    Argon2Params, CryptoError, KdfFloor, Key, derive_passphrase_kek, label, random_array, role,
};
use crate::format::header::{Header, Slot, SlotKind};
use crate::store::{Error, KeySlotKind, Result, Subject};

/// A primitive's failure, in the crate's terms (crypto knows nothing above it).
impl From<CryptoError> for Error {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::Random => Error::Random,
            CryptoError::KdfParamsOutOfBounds { m_kib, t, p } => {
                Error::KdfParamsOutOfBounds { m_kib, t, p }
            }
        }
    }
}

// The public constructor of the crypto layer's parameter type lives here, with the passphrase
// key source, because it reports the crate's `Error`.
impl Argon2Params {
    /// Parameters within the accepted bounds (m 19 MiB..=1 GiB in KiB, t 2..=10, p 1..=16).
    ///
    /// # Errors
    /// [`Error::KdfParamsOutOfBounds`] outside them.
    pub fn new(m_kib: u32, t: u32, p: u32) -> Result<Self> {
        Ok(Argon2Params::bounded(m_kib, t, p, KdfFloor::Enforced)?)
    }
}

/// One key slot, as [`EncryptedStore::slots`](crate::EncryptedStore::slots) and
/// [`inspect`](crate::inspect) list it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotInfo {
    /// Slot id (stable; used to remove it).
    pub id: u32,
    /// What opens it.
    pub kind: KeySlotKind,
    /// Whether this handle was opened through this slot (always false from
    /// [`inspect`](crate::inspect)).
    pub opened_with: bool,
}

/// What a store's header says before it is unlocked. Nothing here is authenticated yet (the
/// header MAC needs the store key): use it to pick a credential (see
/// [`Credential::from_env`]), not to trust anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreInfo {
    /// The store id, hex.
    pub store_id: String,
    /// The key slots.
    pub slots: Vec<SlotInfo>,
}

/// The kind of credential that opens a slot of this kind.
pub(crate) fn slot_kind(kind: &SlotKind) -> KeySlotKind {
    match kind {
        SlotKind::Passphrase { .. } => KeySlotKind::Passphrase,
        SlotKind::RawKey { .. } => KeySlotKind::RawKey,
        SlotKind::Keychain { .. } => KeySlotKind::Keychain,
        SlotKind::Unknown { code, .. } => KeySlotKind::Unknown(*code),
    }
}

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

    /// The passphrase of a passphrase credential (to judge its strength before a store is
    /// made with it, say); `None` for the other kinds. A view of the secret: do not copy it
    /// into memory that is not zeroized.
    pub fn expose_passphrase(&self) -> Option<&str> {
        match self {
            Credential::Passphrase(p) => Some(&p.secret),
            _ => None,
        }
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

    /// The kind of slot this credential opens.
    pub fn kind(&self) -> KeySlotKind {
        match self {
            Credential::Passphrase(_) => KeySlotKind::Passphrase,
            Credential::RawKey(_) => KeySlotKind::RawKey,
            #[cfg(feature = "keychain")]
            Credential::Keychain => KeySlotKind::Keychain,
        }
    }

    /// The kind of slot this credential opens, for messages (as [`KeySlotKind`] displays it).
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
                let secret = keychain::create(store_id)?;
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

    /// Undoes what [`new_slot`](Self::new_slot) did outside the store once the slot it made
    /// was not written: deletes the keychain entry it created for `store_id` (nothing for other
    /// kinds). Only for an entry no written slot can use: a store id that is new, or a keychain
    /// checked beforehand to open none of the store's slots. Best effort: a keychain failure
    /// leaves an entry that opens nothing.
    pub(crate) fn discard_new_slot(&self, store_id: &[u8; 16]) {
        #[cfg(feature = "keychain")]
        if matches!(self, Credential::Keychain) {
            let _ = keychain::delete(store_id);
        }
        let _ = store_id; // only the keychain needs it
    }

    /// Whether this credential is of the kind that opens `slot`.
    fn fits(&self, slot: &SlotKind) -> bool {
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
    fn kek_for(&self, slot: &SlotKind, store_id: &[u8; 16]) -> Result<Option<Key<role::Kek>>> {
        let _ = store_id; // only the keychain needs it
        match (self, slot) {
            (Credential::Passphrase(p), SlotKind::Passphrase { params, salt, .. }) => Ok(Some(
                derive_passphrase_kek(p.secret.as_bytes(), salt, params, p.floor)?,
            )),
            (Credential::RawKey(raw), SlotKind::RawKey { salt, .. }) => Ok(Some(secret_kek(
                raw.0.expose_secret(),
                salt,
                label::RAW_KEY_SLOT,
            ))),
            #[cfg(feature = "keychain")]
            (Credential::Keychain, SlotKind::Keychain { salt, .. }) => {
                let secret = keychain::load(store_id)?;
                Ok(Some(secret_kek(
                    secret.expose_secret(),
                    salt,
                    label::KEYCHAIN_SLOT,
                )))
            }
            _ => Ok(None),
        }
    }

    /// The store key from the first of `header`'s slots that this credential opens, with that
    /// slot's id; `None` if none does.
    ///
    /// # Errors
    /// [`Error::Tampered`] for a slot whose key does not match the header's commitment; KDF
    /// bound and keychain errors.
    pub(crate) fn unlock(&self, header: &Header) -> Result<Option<(u32, Key<role::Store>)>> {
        for slot in header.slots.iter().filter(|s| self.fits(&s.kind)) {
            let (Some(kek), Some(wrapped)) = (
                self.kek_for(&slot.kind, &header.store_id)?,
                slot.kind.wrapped(),
            ) else {
                continue;
            };
            let Ok(store_key) = kek
                .aead()
                .unwrap_key::<role::Store>(wrapped, &slot.wrap_ad(&header.store_id))
            else {
                continue;
            };
            if !store_key.matches_commitment(&header.store_key_commitment) {
                return Err(Error::Tampered {
                    what: Subject::KeySlot(slot.id),
                });
            }
            return Ok(Some((slot.id, store_key)));
        }
        Ok(None)
    }

    /// Opens `header` (parsed, not yet authenticated): the store key and the id of the slot
    /// that gave it. Its commitment is checked; the header's MAC is the caller's to check next.
    ///
    /// # Errors
    /// [`Error::NoMatchingSlot`] if no slot is of this credential's kind; [`Error::WrongKey`]
    /// if none of them opens; for the keychain, [`Error::Keychain`] when this machine's entry
    /// opens none of them; and as [`unlock`](Self::unlock).
    pub(crate) fn open(&self, header: &Header) -> Result<(u32, Key<role::Store>)> {
        if !header.slots.iter().any(|s| self.fits(&s.kind)) {
            return Err(Error::NoMatchingSlot {
                kind: self.kind(),
                available: header.slots.iter().map(|s| slot_kind(&s.kind)).collect(),
            });
        }
        match self.unlock(header)? {
            Some(opened) => Ok(opened),
            #[cfg(feature = "keychain")]
            None if matches!(self, Credential::Keychain) => {
                Err(keychain::opens_no_slot(&header.store_id))
            }
            None => Err(Error::WrongKey),
        }
    }
}

/// A slot KEK from a 32-byte secret (raw key or keychain): HKDF with the slot's salt, so the
/// same secret gives a different KEK in every slot and store.
fn secret_kek(secret: &[u8; 32], salt: &[u8; 16], label: &[u8]) -> Key<role::Kek> {
    let ikm: Key<role::Kek> = Key::init(|out| out.copy_from_slice(secret));
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

/// A store's own key, as [`EncryptedStore::export_store_key`](crate::EncryptedStore::export_store_key)
/// hands it out for a session cache (the CLI's `unlock` keeps it in the kernel keyring) and
/// [`EncryptedStore::open_with_store_key`](crate::EncryptedStore::open_with_store_key) takes
/// it back: no slot, no Argon2id. Whoever holds it opens the store until a
/// [`rekey`](crate::EncryptedStore::rekey), whatever passphrase changes meanwhile — keep it no
/// longer than needed. Zeroized on drop; redacted in `Debug`.
pub struct StoreKey(SecretBox<[u8; 32]>);

impl StoreKey {
    /// Wraps 32 key bytes (read back from where they were kept).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let mut bytes = bytes;
        let key = StoreKey(SecretBox::new(Box::new(bytes)));
        zeroize::Zeroize::zeroize(&mut bytes);
        key
    }

    /// The key bytes, to keep them somewhere.
    pub fn expose_secret(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKey(<redacted>)")
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
