//! Record freshness (SECURITY.md §3.5): the header carries a sealed summary of the whole
//! record set, kept in step by every write in the same transaction, so that `verify` sees a
//! record rolled back to an older copy, deleted, put back or copied in.
//!
//! The summary of a set of records is
//! - `count`: how many;
//! - `digest`: Σ F(id, sealed) mod 2^256, F = HMAC-SHA256 under a key of its own: it changes
//!   with any change to any record's bytes (detection);
//! - `locator`: Σ G(id) · generation mod 2^64, G(id) an odd 64-bit HMAC value: it lets verify
//!   name the one record whose generation differs (G is invertible mod 2^64).
//!
//! A save adds one record's terms and takes away the ones it replaces: O(1). The summary is
//! kept AES-GCM-sealed in the header, not in the clear: a sum of PRF values that an attacker
//! can read lets them solve for the values and search for sets that collide (Wagner's
//! generalised birthday attack on AdHash, 2002); sealed, it is an incremental MAC
//! (Bellare, Goldreich and Goldwasser, 1994) over the record set.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::crypto::{AeadKey, Key, NONCE_LEN, TAG_LEN, length_prefixed, random_array, role};
use crate::format::header::RECORD_SET_BOX_LEN;
use crate::format::record::Sealed;
use crate::store::{Error, Result, Subject};

const ELEMENT_LABEL: &[u8] = b"tokenvault record set element v1";
const LOCATOR_LABEL: &[u8] = b"tokenvault record set locator v1";
const BOX_LABEL: &[u8] = b"tokenvault record set box v1";
const BOX_KEY_LABEL: &[u8] = b"tokenvault record set box key";
const SUMMARY_LEN: usize = 8 + 32 + 8;
/// A generation difference verify still calls a rollback (larger ones are noise).
const LOCATABLE: u64 = 1 << 40;

/// The keys of the summary, derived from the store key.
pub(crate) struct FreshnessKeys {
    /// F's and G's keys as keyed HMAC states (as the blind index keeps its own), so that a
    /// save's four HMACs cost only their message blocks.
    element: Hmac<Sha256>,
    locator: Hmac<Sha256>,
    /// The root of the per-write keys that seal the summary.
    seal_root: Key<role::Data>,
}

impl FreshnessKeys {
    pub fn new(store_key: &Key<role::Store>) -> Self {
        Self {
            element: keyed_mac(&store_key.derive(ELEMENT_LABEL)),
            locator: keyed_mac(&store_key.derive(LOCATOR_LABEL)),
            seal_root: store_key.derive(BOX_LABEL),
        }
    }

    /// The key that seals the summary of write number `writes`: one key per write, so no key
    /// nears AES-GCM's 2^32 random-nonce bound however many writes a store sees.
    fn seal(&self, writes: u64) -> AeadKey {
        self.seal_root
            .derive_salted::<role::Data>(Some(&writes.to_be_bytes()), BOX_KEY_LABEL)
            .aead()
    }

    /// F(id, sealed), as four 64-bit limbs, least significant first.
    fn element(&self, id: &str, sealed: &[u8]) -> [u64; 4] {
        // lp[id, sealed], fed part by part rather than copied into one buffer.
        let mut mac = self.element.clone();
        for part in [id.as_bytes(), sealed] {
            // A length past u32 cannot come from a bounded record; saturate, never panic.
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            mac.update(&len.to_be_bytes());
            mac.update(part);
        }
        let mac: [u8; 32] = mac.finalize().into_bytes().into();
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().enumerate() {
            let at = 32 - 8 * (i + 1);
            *limb = u64::from_be_bytes(mac[at..at + 8].try_into().expect("8 bytes"));
        }
        limbs
    }

    /// G(id): odd, so invertible mod 2^64.
    fn weight(&self, id: &str) -> u64 {
        let mut mac = self.locator.clone();
        mac.update(id.as_bytes());
        let mac: [u8; 32] = mac.finalize().into_bytes().into();
        u64::from_be_bytes(mac[..8].try_into().expect("8 bytes")) | 1
    }
}

fn keyed_mac(key: &Key<role::Data>) -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose()).expect("HMAC takes any key length")
}

/// The summary of a record set (see the module docs). Kept secret (sealed in the header), so
/// its `Debug` shows the count only.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RecordSet {
    pub count: u64,
    digest: [u64; 4],
    locator: u64,
}

impl std::fmt::Debug for RecordSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordSet")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

fn generation(sealed: &[u8]) -> u64 {
    Sealed::parse(sealed).map_or(0, |s| s.generation)
}

impl RecordSet {
    /// Adds record `id` with bytes `sealed`.
    pub fn add(&mut self, keys: &FreshnessKeys, id: &str, sealed: &[u8]) {
        self.count = self.count.wrapping_add(1);
        self.digest = add_256(self.digest, keys.element(id, sealed));
        self.locator = self
            .locator
            .wrapping_add(keys.weight(id).wrapping_mul(generation(sealed)));
    }

    /// Takes away record `id` with bytes `sealed` (which [`add`](Self::add) added).
    pub fn remove(&mut self, keys: &FreshnessKeys, id: &str, sealed: &[u8]) {
        self.count = self.count.wrapping_sub(1);
        self.digest = add_256(self.digest, neg_256(keys.element(id, sealed)));
        self.locator = self
            .locator
            .wrapping_sub(keys.weight(id).wrapping_mul(generation(sealed)));
    }

    /// Seals the summary for the header of store `store_id` after write number `writes`.
    pub fn seal(
        &self,
        keys: &FreshnessKeys,
        store_id: &[u8; 16],
        writes: u64,
    ) -> Result<[u8; RECORD_SET_BOX_LEN]> {
        let nonce: [u8; NONCE_LEN] = random_array()?;
        let mut body = Zeroizing::new([0u8; SUMMARY_LEN]);
        body[..8].copy_from_slice(&self.count.to_be_bytes());
        for (i, limb) in self.digest.iter().rev().enumerate() {
            body[8 + 8 * i..16 + 8 * i].copy_from_slice(&limb.to_be_bytes());
        }
        body[40..].copy_from_slice(&self.locator.to_be_bytes());
        let tag = keys
            .seal(writes)
            .seal_in_place(&nonce, &box_ad(store_id, writes), &mut body[..]);
        let mut out = [0u8; RECORD_SET_BOX_LEN];
        out[..NONCE_LEN].copy_from_slice(&nonce);
        out[NONCE_LEN..NONCE_LEN + SUMMARY_LEN].copy_from_slice(&body[..]);
        out[NONCE_LEN + SUMMARY_LEN..].copy_from_slice(&tag);
        Ok(out)
    }

    /// Opens a header's sealed summary.
    ///
    /// # Errors
    /// [`Error::Tampered`] (the header) if it does not authenticate.
    pub fn open(
        keys: &FreshnessKeys,
        store_id: &[u8; 16],
        writes: u64,
        sealed: &[u8; RECORD_SET_BOX_LEN],
    ) -> Result<Self> {
        let nonce: [u8; NONCE_LEN] = sealed[..NONCE_LEN].try_into().expect("12 bytes");
        let tag: [u8; TAG_LEN] = sealed[NONCE_LEN + SUMMARY_LEN..]
            .try_into()
            .expect("16 bytes");
        let mut body = Zeroizing::new([0u8; SUMMARY_LEN]);
        body.copy_from_slice(&sealed[NONCE_LEN..NONCE_LEN + SUMMARY_LEN]);
        keys.seal(writes)
            .open_in_place(&nonce, &box_ad(store_id, writes), &mut body[..], &tag)
            .map_err(|_| Error::Tampered {
                what: Subject::Header,
            })?;
        let word = |at: usize| u64::from_be_bytes(body[at..at + 8].try_into().expect("8 bytes"));
        Ok(Self {
            count: word(0),
            digest: [word(32), word(24), word(16), word(8)],
            locator: word(40),
        })
    }

    /// What `found` (the records as read) says about how they differ from `self` (the
    /// summary the last write left); `records` are the records as read, with their bytes.
    pub fn explain<'a>(
        &self,
        found: &RecordSet,
        keys: &FreshnessKeys,
        records: impl Iterator<Item = (&'a str, &'a [u8])>,
    ) -> Vec<Finding> {
        if found == self {
            return Vec::new();
        }
        let surplus = i128::from(found.count) - i128::from(self.count);
        let digest_delta = add_256(found.digest, neg_256(self.digest));
        let locator_delta = found.locator.wrapping_sub(self.locator);
        let mut named = Vec::new();
        for (id, sealed) in records {
            let g = generation(sealed);
            // The generation difference this record would account for alone.
            let shift = locator_delta.wrapping_mul(inverse_mod_2_64(keys.weight(id)));
            match surplus {
                1 if keys.element(id, sealed) == digest_delta => {
                    named.push(Finding::Resurrected { id: id.to_owned() });
                }
                0 if shift != 0 && shift.wrapping_add(LOCATABLE) < 2 * LOCATABLE => {
                    // `g` is what is there; the last save left `g - shift`.
                    named.push(Finding::NotLatest {
                        id: id.to_owned(),
                        found: g,
                        latest: g.wrapping_sub(shift),
                    });
                }
                _ => {}
            }
        }
        match (surplus, named.len()) {
            (_, 1) => named,
            (s, 0) if s < 0 => vec![Finding::Missing {
                count: u64::try_from(-s).unwrap_or(u64::MAX),
            }],
            _ => vec![Finding::Unexplained {
                expected: self.count,
                found: found.count,
            }],
        }
    }
}

/// One way the records differ from the last write's summary (see
/// [`VerifyReport::record_set`](super::VerifyReport::record_set)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Finding {
    /// The record is not the copy the store last saved: generation `found` is there, the last
    /// save wrote `latest` (smaller: rolled back to an older copy; larger: an earlier
    /// incarnation of a record deleted and saved again). Named from the generations alone:
    /// another change that kept every generation (a record replaced by a copy of the same
    /// generation) may come with it.
    NotLatest {
        /// The record id.
        id: String,
        /// The generation of the record as read.
        found: u64,
        /// The generation the store last saved.
        latest: u64,
    },
    /// The store does not hold this record: it was deleted and put back, or copied in.
    Resurrected {
        /// The record id.
        id: String,
    },
    /// `count` fewer records than the last write left: deleted outside the store. The header
    /// keeps no ids, so they cannot be named, and a deletion can hide other changes made with
    /// it.
    Missing {
        /// How many.
        count: u64,
    },
    /// The records differ, but not in a way one change explains (several at once).
    Unexplained {
        /// Records the last write left.
        expected: u64,
        /// Records found.
        found: u64,
    },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::NotLatest { id, found, latest } if found < latest => write!(
                f,
                "record {id:?} was rolled back: generation {found} is there, the store last saved generation {latest}"
            ),
            Finding::NotLatest { id, found, latest } => write!(
                f,
                "record {id:?} is not its latest copy: generation {found} is there, the store last saved generation {latest} (a copy from before a delete)"
            ),
            Finding::Resurrected { id } => write!(
                f,
                "record {id:?} is not one the store holds (deleted and put back, or copied in)"
            ),
            Finding::Missing { count } => write!(
                f,
                "{count} fewer record(s) than the last write left: deleted outside the store (the header keeps no ids to name them; other changes may hide behind a deletion)"
            ),
            Finding::Unexplained { expected, found } => write!(
                f,
                "the records differ from what the last write left ({found} found, {expected} expected); no single record explains it"
            ),
        }
    }
}

fn box_ad(store_id: &[u8; 16], writes: u64) -> Vec<u8> {
    length_prefixed(&[b"tokenvault record set", store_id, &writes.to_be_bytes()])
}

fn add_256(a: [u64; 4], b: [u64; 4]) -> [u64; 4] {
    let mut out = [0u64; 4];
    let mut carry = false;
    for i in 0..4 {
        let (s1, c1) = a[i].overflowing_add(b[i]);
        let (s2, c2) = s1.overflowing_add(u64::from(carry));
        out[i] = s2;
        carry = c1 || c2;
    }
    out
}

fn neg_256(a: [u64; 4]) -> [u64; 4] {
    add_256(a.map(|limb| !limb), [1, 0, 0, 0])
}

/// The inverse of odd `w` mod 2^64 (Newton's iteration: each step doubles the correct bits).
fn inverse_mod_2_64(w: u64) -> u64 {
    let mut x = w; // correct to 3 bits for odd w
    for _ in 0..5 {
        x = x.wrapping_mul(2u64.wrapping_sub(w.wrapping_mul(x)));
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> FreshnessKeys {
        FreshnessKeys::new(&Key::init(|k| k.fill(7)))
    }

    fn sealed(generation: u64, salt: u8) -> Vec<u8> {
        let mut bytes = vec![2, 0, 0, 0, 1];
        bytes.extend_from_slice(&generation.to_be_bytes());
        bytes.extend_from_slice(&[salt; 40]);
        bytes
    }

    #[test]
    fn arithmetic_inverts() {
        for w in [1u64, 3, 0xDEAD_BEEF | 1, u64::MAX] {
            assert_eq!(w.wrapping_mul(inverse_mod_2_64(w)), 1);
        }
        let a = [u64::MAX, 5, u64::MAX, 9];
        let b = [3, u64::MAX, 1, 2];
        assert_eq!(add_256(add_256(a, b), neg_256(b)), a);
        assert_eq!(add_256(a, neg_256(a)), [0; 4]);
    }

    #[test]
    fn order_does_not_matter_and_remove_undoes_add() {
        let k = keys();
        let (mut x, mut y) = (RecordSet::default(), RecordSet::default());
        x.add(&k, "a", &sealed(1, 1));
        x.add(&k, "b", &sealed(4, 2));
        y.add(&k, "b", &sealed(4, 2));
        y.add(&k, "a", &sealed(1, 1));
        assert_eq!(x, y);
        x.add(&k, "c", &sealed(2, 3));
        x.remove(&k, "c", &sealed(2, 3));
        assert_eq!(x, y);
        // A duplicate does not cancel out, as it would with XOR.
        y.add(&k, "a", &sealed(1, 1));
        y.add(&k, "a", &sealed(1, 1));
        assert_ne!(x, y);
    }

    #[test]
    fn seals_and_opens_bound_to_store_and_write() {
        let k = keys();
        let mut set = RecordSet::default();
        set.add(&k, "a", &sealed(1, 1));
        let sealed_box = set.seal(&k, &[1; 16], 5).unwrap();
        assert_eq!(RecordSet::open(&k, &[1; 16], 5, &sealed_box).unwrap(), set);
        assert!(RecordSet::open(&k, &[1; 16], 4, &sealed_box).is_err());
        assert!(RecordSet::open(&k, &[2; 16], 5, &sealed_box).is_err());
        let mut flipped = sealed_box;
        flipped[20] ^= 1;
        assert!(RecordSet::open(&k, &[1; 16], 5, &flipped).is_err());
    }

    #[test]
    fn explain_names_one_rolled_back_or_resurrected_record() {
        let k = keys();
        let records: Vec<(String, Vec<u8>)> = (0..50)
            .map(|i| (format!("r{i}"), sealed(i + 3, i as u8)))
            .collect();
        let mut expected = RecordSet::default();
        for (id, s) in &records {
            expected.add(&k, id, s);
        }
        let view = |rs: &[(String, Vec<u8>)]| {
            let mut set = RecordSet::default();
            for (id, s) in rs {
                set.add(&k, id, s);
            }
            set
        };
        let explain = |rs: &[(String, Vec<u8>)]| {
            expected.explain(&view(rs), &k, rs.iter().map(|(i, s)| (i.as_str(), &s[..])))
        };
        assert!(explain(&records).is_empty());

        let mut rolled = records.clone();
        rolled[7].1 = sealed(4, 99); // r7 was at generation 10
        assert_eq!(
            explain(&rolled),
            [Finding::NotLatest {
                id: "r7".into(),
                found: 4,
                latest: 10
            }]
        );

        let mut more = records.clone();
        more.push(("gone".into(), sealed(2, 1)));
        assert_eq!(explain(&more), [Finding::Resurrected { id: "gone".into() }]);

        let mut fewer = records.clone();
        fewer.remove(3);
        fewer.remove(8);
        assert_eq!(explain(&fewer), [Finding::Missing { count: 2 }]);

        let mut two = records.clone();
        two[1].1 = sealed(1, 50);
        two[2].1 = sealed(1, 51);
        assert_eq!(
            explain(&two),
            [Finding::Unexplained {
                expected: 50,
                found: 50
            }]
        );
    }
}
