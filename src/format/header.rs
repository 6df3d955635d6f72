//! The store header: everything needed to unlock a store, authenticated as a whole.
//!
//! ```text
//! magic "TKNVAULT" (8) | layout version (1) = 2 | store id (16)
//! aead algorithm (1) = 1 AES-256-GCM | index algorithm (1) = 1 HMAC-SHA256
//! store-key commitment (32)
//! slot count (1) then per slot:  slot id (4) | kind (1) | body length (2) | body
//!     passphrase body: kdf (1) = 1 Argon2id v0x13 | m KiB (4) | t (4) | p (4) | salt (16) | wrapped store key (60)
//!     raw-key body:    salt (16) | wrapped store key (60)
//!     keychain body:   salt (16) | wrapped store key (60)   (the KEK's secret is in the OS keychain)
//! key count (1) then per data key: key id (4) | seals reserved (8) | commitment (32) | wrapped data key (60)
//! active key id (4)
//! writes (8) | record-set box (76)            (layout versions 2 and 3)
//! audit mode (1) | audit entries (8) | audit head (32)   (layout version 3 only)
//! MAC (32) = HMAC-SHA256(HKDF(store key, "tokenvault header mac v1"), every byte before it)
//! ```
//! Integers are big-endian. A slot of an unknown kind is kept verbatim (its body is
//! length-prefixed) so that an older build can still open the store through another slot.
//! `writes` counts the store's committed writes (the counter a rollback witness keeps); the
//! record-set box is the sealed summary of every record (`vault::freshness`). Layout version 1
//! (the first releases) ends at the active key id; the vault upgrades it on its first write.
//! Layout version 3 is written only by a store whose audit trail was ever turned on
//! (`vault::audit`): the mode (0 off, 1 changes, 2 all), the number of log entries and the MAC
//! of the last one. Builds that know only version 2 refuse it rather than write unlogged.
//! The key wraps' associated data keep saying version 1: their meaning did not change.

use super::{HeaderError, Malformed, Reader};
use crate::crypto::{Argon2Params, KdfFloor, WRAPPED_KEY_LEN, hmac_sha256, length_prefixed};

pub(crate) const MAGIC: &[u8; 8] = b"TKNVAULT";
/// The version byte in the key wraps' associated data (unchanged since the first release).
pub(crate) const WRAP_AD_VERSION: u8 = 1;
/// The header layout this build writes, and the first releases' one (still read).
pub(crate) const LAYOUT_VERSION: u8 = 2;
pub(crate) const LAYOUT_VERSION_1: u8 = 1;
/// Version 2 with the audit trail's head.
pub(crate) const LAYOUT_VERSION_AUDIT: u8 = 3;
/// The record-set box: nonce (12) | sealed summary (48) | tag (16).
pub(crate) const RECORD_SET_BOX_LEN: usize = 76;
const AEAD_AES_256_GCM: u8 = 1;
const INDEX_HMAC_SHA256: u8 = 1;
const KDF_ARGON2ID_13: u8 = 1;
const MAC_LEN: usize = 32;
/// At most this many slots and data keys: bounds what a hostile header can make us do.
pub(crate) const MAX_SLOTS: usize = 32;
pub(crate) const MAX_KEYS: usize = 64;
/// At most this many passphrase slots: each costs an Argon2id run when opening, so a hostile
/// header must not be able to ask for dozens at the ceiling cost.
pub(crate) const MAX_PASSPHRASE_SLOTS: usize = 4;

pub(crate) type Wrapped = [u8; WRAPPED_KEY_LEN];

/// Slot kind codes in the header.
pub(crate) mod kind {
    pub const PASSPHRASE: u8 = 1;
    pub const RAW_KEY: u8 = 2;
    pub const KEYCHAIN: u8 = 3;
}

/// How a slot derives its KEK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SlotKind {
    Passphrase {
        params: Argon2Params,
        salt: [u8; 16],
        wrapped: Wrapped,
    },
    RawKey {
        salt: [u8; 16],
        wrapped: Wrapped,
    },
    Keychain {
        salt: [u8; 16],
        wrapped: Wrapped,
    },
    /// Written by a newer build; kept verbatim, cannot be opened here.
    Unknown {
        code: u8,
        body: Vec<u8>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    pub id: u32,
    pub kind: SlotKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DataKeyEntry {
    pub id: u32,
    pub seals: u64,
    pub commitment: [u8; 32],
    pub wrapped: Wrapped,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub store_id: [u8; 16],
    pub store_key_commitment: [u8; 32],
    pub slots: Vec<Slot>,
    pub keys: Vec<DataKeyEntry>,
    pub active_key: u32,
    /// `None` for a layout-version-1 header (not yet upgraded).
    pub freshness: Option<Freshness>,
    /// `Some` once the audit trail was turned on (layout version 3).
    pub audit: Option<AuditHead>,
}

/// What layout version 3 adds: where the audit log stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AuditHead {
    /// 0 off, 1 changes, 2 all (`vault::audit::AuditMode`).
    pub mode: u8,
    /// Entries in the log (the last one's number).
    pub entries: u64,
    /// The last entry's MAC (zeros before the first).
    pub head: [u8; 32],
}

/// What layout version 2 adds: the write counter and the sealed record-set summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Freshness {
    /// Committed writes so far (every write transaction advances it by one).
    pub writes: u64,
    pub record_set: [u8; RECORD_SET_BOX_LEN],
}

impl SlotKind {
    pub fn code(&self) -> u8 {
        match self {
            SlotKind::Passphrase { .. } => kind::PASSPHRASE,
            SlotKind::RawKey { .. } => kind::RAW_KEY,
            SlotKind::Keychain { .. } => kind::KEYCHAIN,
            SlotKind::Unknown { code, .. } => *code,
        }
    }

    /// The slot's parameters (its body without the wrapped key): part of the wrap's
    /// associated data, so a changed parameter makes the slot fail to open.
    fn params_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            SlotKind::Passphrase { params, salt, .. } => {
                out.push(KDF_ARGON2ID_13);
                for v in [params.m_kib(), params.t(), params.p()] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
                out.extend_from_slice(salt);
            }
            SlotKind::RawKey { salt, .. } | SlotKind::Keychain { salt, .. } => {
                out.extend_from_slice(salt)
            }
            SlotKind::Unknown { body, .. } => out.extend_from_slice(body),
        }
        out
    }

    fn body(&self) -> Vec<u8> {
        let mut out = self.params_bytes();
        if let Some(wrapped) = self.wrapped() {
            out.extend_from_slice(wrapped);
        }
        out
    }

    /// The wrapped store key, for every kind this build knows.
    pub fn wrapped(&self) -> Option<&Wrapped> {
        match self {
            SlotKind::Passphrase { wrapped, .. }
            | SlotKind::RawKey { wrapped, .. }
            | SlotKind::Keychain { wrapped, .. } => Some(wrapped),
            SlotKind::Unknown { .. } => None,
        }
    }

    pub fn wrapped_mut(&mut self) -> Option<&mut Wrapped> {
        match self {
            SlotKind::Passphrase { wrapped, .. }
            | SlotKind::RawKey { wrapped, .. }
            | SlotKind::Keychain { wrapped, .. } => Some(wrapped),
            SlotKind::Unknown { .. } => None,
        }
    }

    fn read(code: u8, body: &[u8]) -> Result<SlotKind, HeaderError> {
        let mut r = Reader::new(body);
        let kind = match code {
            kind::PASSPHRASE => {
                let kdf = r.u8()?;
                if kdf != KDF_ARGON2ID_13 {
                    return Err(HeaderError::Unsupported {
                        what: "key derivation function",
                        detail: format!("code {kdf}"),
                    });
                }
                let (m, t, p) = (r.u32()?, r.u32()?, r.u32()?);
                // Parse, don't validate: out-of-bounds parameters are refused here, before any
                // caller could hand them to the KDF. The floor is checked again at unlock, where
                // tests may lower it.
                let params = Argon2Params::bounded(m, t, p, KdfFloor::InsecureAllowed)?;
                SlotKind::Passphrase {
                    params,
                    salt: r.array()?,
                    wrapped: r.array()?,
                }
            }
            kind::RAW_KEY => SlotKind::RawKey {
                salt: r.array()?,
                wrapped: r.array()?,
            },
            kind::KEYCHAIN => SlotKind::Keychain {
                salt: r.array()?,
                wrapped: r.array()?,
            },
            code => {
                return Ok(SlotKind::Unknown {
                    code,
                    body: body.to_vec(),
                });
            }
        };
        r.finish()?;
        Ok(kind)
    }
}

impl Slot {
    /// Associated data of this slot's store-key wrap.
    pub fn wrap_ad(&self, store_id: &[u8; 16]) -> Vec<u8> {
        length_prefixed(&[
            b"tokenvault slot",
            &[WRAP_AD_VERSION],
            store_id,
            &self.id.to_be_bytes(),
            &[self.kind.code()],
            &self.kind.params_bytes(),
        ])
    }
}

/// Associated data of a data key's wrap under the store's wrapping key.
pub(crate) fn data_key_ad(store_id: &[u8; 16], key_id: u32) -> Vec<u8> {
    length_prefixed(&[
        b"tokenvault data key",
        &[WRAP_AD_VERSION],
        store_id,
        &key_id.to_be_bytes(),
    ])
}

impl Header {
    /// Parses header bytes. Nothing in the result is authenticated until
    /// [`verify_mac`](Self::verify_mac) succeeds; only the slots may be used before that, to
    /// find the store key that checks the MAC.
    ///
    /// # Errors
    /// [`HeaderError::Unsupported`] for another magic, version or algorithm;
    /// [`HeaderError::Kdf`] for a slot's Argon2id cost; [`HeaderError::Tampered`] for
    /// anything that does not parse (truncated, extended, counts out of range).
    pub fn read(bytes: &[u8]) -> Result<Header, HeaderError> {
        let mut r = Reader::new(bytes);
        if r.take(MAGIC.len()).ok() != Some(MAGIC.as_slice()) {
            return Err(HeaderError::Unsupported {
                what: "store header",
                detail: "not a tokenvault store (bad magic)".into(),
            });
        }
        let version = r.u8()?;
        if ![LAYOUT_VERSION_1, LAYOUT_VERSION, LAYOUT_VERSION_AUDIT].contains(&version) {
            return Err(HeaderError::Unsupported {
                what: "store format version",
                detail: version.to_string(),
            });
        }
        let store_id = r.array()?;
        let (aead, index) = (r.u8()?, r.u8()?);
        if aead != AEAD_AES_256_GCM || index != INDEX_HMAC_SHA256 {
            return Err(HeaderError::Unsupported {
                what: "algorithm",
                detail: format!("aead {aead}, index {index}"),
            });
        }
        let store_key_commitment = r.array()?;

        let slot_count = usize::from(r.u8()?);
        if !(1..=MAX_SLOTS).contains(&slot_count) {
            return Err(Malformed.into());
        }
        let mut slots = Vec::with_capacity(slot_count);
        for _ in 0..slot_count {
            let id = r.u32()?;
            let code = r.u8()?;
            let len = usize::from(r.u16()?);
            let body = r.take(len)?;
            if slots.iter().any(|s: &Slot| s.id == id) {
                return Err(Malformed.into());
            }
            slots.push(Slot {
                id,
                kind: SlotKind::read(code, body)?,
            });
        }

        if slots
            .iter()
            .filter(|s| matches!(s.kind, SlotKind::Passphrase { .. }))
            .count()
            > MAX_PASSPHRASE_SLOTS
        {
            return Err(Malformed.into());
        }
        let key_count = usize::from(r.u8()?);
        if !(1..=MAX_KEYS).contains(&key_count) {
            return Err(Malformed.into());
        }
        let mut keys = Vec::with_capacity(key_count);
        for _ in 0..key_count {
            let entry = DataKeyEntry {
                id: r.u32()?,
                seals: r.u64()?,
                commitment: r.array()?,
                wrapped: r.array()?,
            };
            if keys.iter().any(|k: &DataKeyEntry| k.id == entry.id) {
                return Err(Malformed.into());
            }
            keys.push(entry);
        }
        let active_key = r.u32()?;
        let freshness = if version == LAYOUT_VERSION_1 {
            None
        } else {
            Some(Freshness {
                writes: r.u64()?,
                record_set: r.array()?,
            })
        };
        let audit = if version == LAYOUT_VERSION_AUDIT {
            Some(AuditHead {
                mode: r.u8()?,
                entries: r.u64()?,
                head: r.array()?,
            })
        } else {
            None
        };
        let _mac: [u8; MAC_LEN] = r.array()?;
        r.finish()?;
        if !keys.iter().any(|k| k.id == active_key) {
            return Err(Malformed.into());
        }
        Ok(Header {
            store_id,
            store_key_commitment,
            slots,
            keys,
            active_key,
            freshness,
            audit,
        })
    }

    /// Checks the MAC over `bytes` (the header as read) with the header-MAC key.
    ///
    /// # Errors
    /// [`HeaderError::Tampered`].
    pub fn verify_mac(bytes: &[u8], mac_key: &[u8; 32]) -> Result<(), HeaderError> {
        use subtle::ConstantTimeEq;
        let split = bytes
            .len()
            .checked_sub(MAC_LEN)
            .ok_or(HeaderError::Tampered)?;
        let (body, mac) = bytes.split_at(split);
        if bool::from(hmac_sha256(mac_key, &[body]).ct_eq(mac)) {
            Ok(())
        } else {
            Err(HeaderError::Tampered)
        }
    }

    /// Encodes the header and appends its MAC: layout version 3 if it has an audit head, 2 if
    /// it has its freshness fields only, else version 1 (only tests write that, to stand for
    /// an old store). An audit head always comes with freshness fields (the vault writes both
    /// on every write); one without them is written with zeroed ones, which do not open.
    pub fn write(&self, mac_key: &[u8; 32]) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(MAGIC);
        out.push(match (&self.freshness, &self.audit) {
            (_, Some(_)) => LAYOUT_VERSION_AUDIT,
            (Some(_), None) => LAYOUT_VERSION,
            (None, None) => LAYOUT_VERSION_1,
        });
        out.extend_from_slice(&self.store_id);
        out.push(AEAD_AES_256_GCM);
        out.push(INDEX_HMAC_SHA256);
        out.extend_from_slice(&self.store_key_commitment);
        out.push(u8::try_from(self.slots.len()).expect("at most MAX_SLOTS"));
        for slot in &self.slots {
            let body = slot.kind.body();
            out.extend_from_slice(&slot.id.to_be_bytes());
            out.push(slot.kind.code());
            out.extend_from_slice(
                &u16::try_from(body.len())
                    .expect("small slot body")
                    .to_be_bytes(),
            );
            out.extend_from_slice(&body);
        }
        out.push(u8::try_from(self.keys.len()).expect("at most MAX_KEYS"));
        for key in &self.keys {
            out.extend_from_slice(&key.id.to_be_bytes());
            out.extend_from_slice(&key.seals.to_be_bytes());
            out.extend_from_slice(&key.commitment);
            out.extend_from_slice(&key.wrapped);
        }
        out.extend_from_slice(&self.active_key.to_be_bytes());
        match (&self.freshness, &self.audit) {
            (Some(f), _) => {
                out.extend_from_slice(&f.writes.to_be_bytes());
                out.extend_from_slice(&f.record_set);
            }
            (None, Some(_)) => out.extend_from_slice(&[0; 8 + RECORD_SET_BOX_LEN]),
            (None, None) => {}
        }
        if let Some(a) = &self.audit {
            out.push(a.mode);
            out.extend_from_slice(&a.entries.to_be_bytes());
            out.extend_from_slice(&a.head);
        }
        let mac = hmac_sha256(mac_key, &[&out]);
        out.extend_from_slice(&mac);
        out
    }

    pub fn key(&self, id: u32) -> Option<&DataKeyEntry> {
        self.keys.iter().find(|k| k.id == id)
    }

    pub fn key_mut(&mut self, id: u32) -> Option<&mut DataKeyEntry> {
        self.keys.iter_mut().find(|k| k.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            store_id: [7; 16],
            store_key_commitment: [1; 32],
            slots: vec![
                Slot {
                    id: 1,
                    kind: SlotKind::Passphrase {
                        params: Argon2Params::default(),
                        salt: [2; 16],
                        wrapped: [3; 60],
                    },
                },
                Slot {
                    id: 2,
                    kind: SlotKind::RawKey {
                        salt: [4; 16],
                        wrapped: [5; 60],
                    },
                },
                Slot {
                    id: 3,
                    kind: SlotKind::Unknown {
                        code: 9,
                        body: vec![1, 2, 3],
                    },
                },
            ],
            keys: vec![DataKeyEntry {
                id: 1,
                seals: 4096,
                commitment: [6; 32],
                wrapped: [8; 60],
            }],
            active_key: 1,
            freshness: Some(Freshness {
                writes: 42,
                record_set: [0xAB; RECORD_SET_BOX_LEN],
            }),
            audit: None,
        }
    }

    #[test]
    fn the_audit_head_makes_layout_3_and_round_trips() {
        let key = [9u8; 32];
        let audited = Header {
            audit: Some(AuditHead {
                mode: 2,
                entries: 77,
                head: [0xCD; 32],
            }),
            ..sample()
        };
        let bytes = audited.write(&key);
        assert_eq!(bytes[8], LAYOUT_VERSION_AUDIT);
        assert_eq!(bytes.len(), sample().write(&key).len() + 1 + 8 + 32);
        assert_eq!(Header::read(&bytes).unwrap(), audited);
        for len in 0..bytes.len() {
            assert!(Header::read(&bytes[..len]).is_err(), "truncated to {len}");
        }
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                Header::read(&bad)
                    .and_then(|_| Header::verify_mac(&bad, &key))
                    .is_err(),
                "bit {bit} flipped went unnoticed"
            );
        }
    }

    #[test]
    fn round_trips_and_mac_detects_every_bit_flip() {
        let key = [9u8; 32];
        let bytes = sample().write(&key);
        assert_eq!(Header::read(&bytes).unwrap(), sample());
        let v1 = Header {
            freshness: None,
            ..sample()
        };
        let v1_bytes = v1.write(&key);
        assert_eq!(v1_bytes[8], LAYOUT_VERSION_1);
        assert_eq!(v1_bytes.len() + 8 + RECORD_SET_BOX_LEN, bytes.len());
        assert_eq!(Header::read(&v1_bytes).unwrap(), v1);
        Header::verify_mac(&bytes, &key).unwrap();
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let parsed_and_verified =
                Header::read(&bad).and_then(|_| Header::verify_mac(&bad, &key));
            assert!(
                parsed_and_verified.is_err(),
                "bit {bit} flipped went unnoticed"
            );
        }
    }

    #[test]
    fn every_truncation_and_any_trailing_byte_is_rejected() {
        let bytes = sample().write(&[9; 32]);
        for len in 0..bytes.len() {
            assert!(Header::read(&bytes[..len]).is_err(), "truncated to {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Header::read(&longer), Err(HeaderError::Tampered));
    }

    #[test]
    fn unknown_version_algorithm_and_magic_are_unsupported() {
        let bytes = sample().write(&[9; 32]);
        for (offset, what) in [
            (8, "store format version"),
            (25, "algorithm"),
            (26, "algorithm"),
        ] {
            let mut bad = bytes.clone();
            bad[offset] = 0xEE;
            match Header::read(&bad) {
                Err(HeaderError::Unsupported { what: w, .. }) => assert_eq!(w, what),
                other => panic!("offset {offset}: {other:?}"),
            }
        }
        assert!(matches!(
            Header::read(b"SQLite format 3\0...."),
            Err(HeaderError::Unsupported { .. })
        ));
    }

    #[test]
    fn hostile_kdf_cost_is_refused_while_parsing() {
        let mut h = sample();
        h.slots[0].kind = SlotKind::Passphrase {
            params: Argon2Params::default(),
            salt: [0; 16],
            wrapped: [0; 60],
        };
        let mut bytes = h.write(&[0; 32]);
        // m lives after magic(8) version(1) id(16) algs(2) commitment(32) count(1) slot id(4)
        // kind(1) len(2) kdf(1).
        let m_at = 8 + 1 + 16 + 2 + 32 + 1 + 4 + 1 + 2 + 1;
        bytes[m_at..m_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            Header::read(&bytes),
            Err(HeaderError::Kdf(
                crate::crypto::CryptoError::KdfParamsOutOfBounds {
                    m_kib: u32::MAX,
                    ..
                }
            ))
        ));
    }
}
