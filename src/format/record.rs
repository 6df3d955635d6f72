//! Sealed record bytes (SECURITY.md §3.3).
//!
//! Version 2, written by this build:
//! `version (1) = 2 | key id (4, BE) | generation (8, BE) | nonce (12) | ciphertext | tag (16)`,
//! whose plaintext is the nine body fields in a fixed order, each `length (4, BE) | UTF-8
//! bytes` (length 0: unset) — read without a parser, into slices of the decrypted buffer.
//! The generation counts the record's saves (1 for a new record); issue 15's freshness checks
//! build on it.
//!
//! Version 1, still opened: `version (1) = 1 | key id (4) | nonce (12) | ciphertext | tag
//! (16)`, whose plaintext is the token as JSON without its id; its generation is 0.
//!
//! The associated data binds record version, store id, key id, generation (version 2) and
//! record id, so a record copied to another id or store, relabelled with another key id or
//! generation, fails to open. This layer knows bytes, not tokens: the vault maps the body
//! fields to a token's fields.

use zeroize::Zeroizing;

use super::{Malformed, Reader};
use crate::crypto::{AeadKey, CryptoError, NONCE_LEN, TAG_LEN, length_prefixed, random_array};

/// The record format version this build writes.
pub(crate) const RECORD_VERSION: u8 = 2;
/// The JSON-bodied version of the first releases, still opened.
pub(crate) const RECORD_VERSION_1: u8 = 1;
/// Fields of a version-2 body, in order: a token's fields but its id.
pub(crate) const BODY_FIELDS: usize = 9;

const PREFIX_LEN_1: usize = 1 + 4 + NONCE_LEN;
const PREFIX_LEN_2: usize = 1 + 4 + 8 + NONCE_LEN;
const LEN_BYTES: usize = 4;

/// What opening a record can find wrong, for the caller to turn into an `Error`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum OpenFailure {
    /// Too short, or otherwise not parseable, or authentication failed.
    Tampered,
    /// A version this build does not know.
    UnsupportedVersion(u8),
}

/// A sealed record's layout, parsed but not opened.
pub(crate) struct Sealed<'a> {
    pub version: u8,
    pub key_id: u32,
    /// How many times the record was saved (version 2); 0 for version 1.
    pub generation: u64,
    nonce: [u8; NONCE_LEN],
    ciphertext: &'a [u8],
    tag: [u8; TAG_LEN],
}

/// A record's plaintext, borrowed from the buffer it was decrypted into.
pub(crate) enum Body<'a> {
    /// Version 1: the token as JSON without its id.
    Json(&'a [u8]),
    /// Version 2: the nine body fields in order, `None` for an unset one.
    Fields([Option<&'a [u8]>; BODY_FIELDS]),
}

impl<'a> Sealed<'a> {
    /// Parses the layout (no key needed).
    pub fn parse(sealed: &'a [u8]) -> Result<Self, OpenFailure> {
        let mut r = Reader::new(sealed);
        let version = r.u8().map_err(|_| OpenFailure::Tampered)?;
        let prefix = match version {
            RECORD_VERSION => PREFIX_LEN_2,
            RECORD_VERSION_1 => PREFIX_LEN_1,
            other => return Err(OpenFailure::UnsupportedVersion(other)),
        };
        if sealed.len() < prefix + TAG_LEN {
            return Err(OpenFailure::Tampered);
        }
        let tampered = |_: Malformed| OpenFailure::Tampered;
        let key_id = r.u32().map_err(tampered)?;
        let generation = if version == RECORD_VERSION {
            r.u64().map_err(tampered)?
        } else {
            0
        };
        let nonce = r.array().map_err(tampered)?;
        let ciphertext = r.take(r.remaining() - TAG_LEN).map_err(tampered)?;
        let tag = r.array().map_err(tampered)?;
        Ok(Self {
            version,
            key_id,
            generation,
            nonce,
            ciphertext,
            tag,
        })
    }

    /// The associated data this record must have been sealed with as record `record_id` of
    /// store `store_id`.
    pub fn associated_data(&self, store_id: &[u8; 16], record_id: &str) -> Vec<u8> {
        associated_data(
            self.version,
            store_id,
            self.key_id,
            self.generation,
            record_id,
        )
    }

    /// Decrypts into `buf` (cleared first; reused across records so that a batch allocates
    /// once per thread) and splits the body. The body is parsed only once it is authenticated.
    pub fn open<'b>(
        &self,
        key: &AeadKey,
        ad: &[u8],
        buf: &'b mut Zeroizing<Vec<u8>>,
    ) -> Result<Body<'b>, OpenFailure> {
        buf.clear();
        if buf.capacity() < self.ciphertext.len() {
            // Grown by replacing, not by `reserve`: a reallocation would leave the old
            // plaintext behind, unzeroed.
            *buf = Zeroizing::new(Vec::with_capacity(self.ciphertext.len()));
        }
        buf.extend_from_slice(self.ciphertext);
        key.open_in_place(&self.nonce, ad, buf, &self.tag)
            .map_err(|_| OpenFailure::Tampered)?;
        match self.version {
            RECORD_VERSION_1 => Ok(Body::Json(buf.as_slice())),
            _ => split_fields(buf)
                .map(Body::Fields)
                .ok_or(OpenFailure::Tampered),
        }
    }
}

/// The key id a sealed record names, read without opening it (the same offset in every
/// version).
pub(crate) fn key_id_of(sealed: &[u8]) -> Result<u32, Malformed> {
    let mut r = Reader::new(sealed);
    r.u8()?;
    r.u32()
}

/// The associated data of a record.
pub(crate) fn associated_data(
    version: u8,
    store_id: &[u8; 16],
    key_id: u32,
    generation: u64,
    record_id: &str,
) -> Vec<u8> {
    const LABEL: &[u8] = b"tokenvault record";
    let version = [version];
    let key_id = key_id.to_be_bytes();
    if version[0] == RECORD_VERSION_1 {
        length_prefixed(&[LABEL, &version, store_id, &key_id, record_id.as_bytes()])
    } else {
        let generation = generation.to_be_bytes();
        length_prefixed(&[
            LABEL,
            &version,
            store_id,
            &key_id,
            &generation,
            record_id.as_bytes(),
        ])
    }
}

/// Seals the nine body `fields` (in order, `None` or empty for unset) as a version-2 record
/// under `key`, with the associated data `ad` (from [`associated_data`] with the same key id
/// and generation).
///
/// # Errors
/// [`CryptoError::Random`] if no nonce can be drawn.
pub(crate) fn seal(
    fields: &[Option<&[u8]>; BODY_FIELDS],
    key: &AeadKey,
    key_id: u32,
    generation: u64,
    ad: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let body_len: usize = fields
        .iter()
        .map(|f| LEN_BYTES + f.map_or(0, <[u8]>::len))
        .sum();
    let nonce: [u8; NONCE_LEN] = random_array()?;
    // Sized exactly once: a growing buffer would leave unzeroized copies behind.
    let mut buf = Zeroizing::new(Vec::with_capacity(PREFIX_LEN_2 + body_len + TAG_LEN));
    buf.push(RECORD_VERSION);
    buf.extend_from_slice(&key_id.to_be_bytes());
    buf.extend_from_slice(&generation.to_be_bytes());
    buf.extend_from_slice(&nonce);
    for field in fields {
        let bytes = field.unwrap_or_default();
        let len = u32::try_from(bytes.len()).expect("token fields are bounded far below 4 GiB");
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(bytes);
    }
    let tag = key.seal_in_place(&nonce, ad, &mut buf[PREFIX_LEN_2..]);
    buf.extend_from_slice(&tag);
    debug_assert_eq!(buf.len(), buf.capacity(), "sized exactly: no reallocation");
    // Now ciphertext, no longer secret: take it out of the zeroizing wrapper.
    Ok(std::mem::take(&mut *buf))
}

/// Splits a version-2 body into its nine fields; `None` unless the lengths account for every
/// byte exactly.
fn split_fields(body: &[u8]) -> Option<[Option<&[u8]>; BODY_FIELDS]> {
    let mut r = Reader::new(body);
    let mut fields = [None; BODY_FIELDS];
    for field in &mut fields {
        let len = usize::try_from(r.u32().ok()?).ok()?;
        let bytes = r.take(len).ok()?;
        *field = (!bytes.is_empty()).then_some(bytes);
    }
    r.finish().ok()?;
    Some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Key, role};

    const STORE: [u8; 16] = [1; 16];

    fn fields() -> [Option<&'static [u8]>; BODY_FIELDS] {
        let mut fields = [None; BODY_FIELDS];
        fields[0] = Some(&b"u"[..]);
        fields[3] = Some(&b"r"[..]);
        fields[6] = Some(&b"1700000000000"[..]);
        fields
    }

    fn sealed() -> (AeadKey, Vec<u8>) {
        let key = Key::<role::Data>::random().unwrap().aead();
        let ad = associated_data(RECORD_VERSION, &STORE, 3, 7, "rec");
        let bytes = seal(&fields(), &key, 3, 7, &ad).unwrap();
        (key.clone_for_tests(), bytes)
    }

    /// Opens `bytes` as record "rec" of STORE, copying the fields out.
    fn open(
        key: &AeadKey,
        bytes: &[u8],
        record_id: &str,
    ) -> Result<Vec<Option<Vec<u8>>>, OpenFailure> {
        let parsed = Sealed::parse(bytes)?;
        let ad = parsed.associated_data(&STORE, record_id);
        let mut buf = Zeroizing::new(Vec::new());
        match parsed.open(key, &ad, &mut buf)? {
            Body::Fields(fields) => Ok(fields.iter().map(|f| f.map(<[u8]>::to_vec)).collect()),
            Body::Json(_) => panic!("a version-2 record opened as JSON"),
        }
    }

    #[test]
    fn layout_is_version_key_id_generation_nonce_ciphertext_tag() {
        let (key, bytes) = sealed();
        assert_eq!(bytes[0], RECORD_VERSION);
        assert_eq!(key_id_of(&bytes), Ok(3));
        assert_eq!(&bytes[5..13], &7u64.to_be_bytes());
        let body_len = 9 * 4 + 1 + 1 + 13;
        assert_eq!(bytes.len(), PREFIX_LEN_2 + body_len + TAG_LEN);
        let parsed = Sealed::parse(&bytes).unwrap();
        assert_eq!(
            (parsed.version, parsed.key_id, parsed.generation),
            (2, 3, 7)
        );
        let opened = open(&key, &bytes, "rec").unwrap();
        let expected: Vec<Option<Vec<u8>>> =
            fields().iter().map(|f| f.map(<[u8]>::to_vec)).collect();
        assert_eq!(opened, expected);
    }

    #[test]
    fn every_bit_flip_truncation_and_extension_fails() {
        let (key, bytes) = sealed();
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(open(&key, &bad, "rec").is_err(), "bit {bit}");
        }
        for len in 0..bytes.len() {
            assert!(open(&key, &bytes[..len], "rec").is_err(), "len {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(open(&key, &longer, "rec").is_err());
    }

    #[test]
    fn other_record_id_store_key_id_or_generation_fails() {
        let (key, bytes) = sealed();
        for ad in [
            associated_data(RECORD_VERSION, &STORE, 3, 7, "other"),
            associated_data(RECORD_VERSION, &[2; 16], 3, 7, "rec"),
            associated_data(RECORD_VERSION, &STORE, 4, 7, "rec"),
            associated_data(RECORD_VERSION, &STORE, 3, 6, "rec"),
        ] {
            let parsed = Sealed::parse(&bytes).unwrap();
            let mut buf = Zeroizing::new(Vec::new());
            assert_eq!(
                parsed.open(&key, &ad, &mut buf).err(),
                Some(OpenFailure::Tampered)
            );
        }
    }

    #[test]
    fn unknown_versions_are_unsupported_not_tampered() {
        let (_, mut bytes) = sealed();
        for version in [0, 3, 0xff] {
            bytes[0] = version;
            assert_eq!(
                Sealed::parse(&bytes).err(),
                Some(OpenFailure::UnsupportedVersion(version))
            );
        }
    }

    #[test]
    fn any_body_splits_or_is_refused_without_panicking_and_valid_ones_round_trip() {
        // A fixed xorshift stream: the same bodies every run.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 96) as usize;
            let mut body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Small length fields now and then, so that some bodies get far.
            for chunk in body.chunks_mut(7) {
                if next() % 2 == 0 && chunk.len() >= 4 {
                    chunk[..4].copy_from_slice(&((next() % 4) as u32).to_be_bytes());
                }
            }
            if let Some(fields) = split_fields(&body) {
                let total: usize = fields.iter().map(|f| 4 + f.map_or(0, <[u8]>::len)).sum();
                assert_eq!(total, body.len(), "a split accounts for every byte");
            }
        }
        let fields = fields();
        let encoded: Vec<u8> = fields
            .iter()
            .flat_map(|f| {
                let bytes = f.unwrap_or_default();
                (bytes.len() as u32)
                    .to_be_bytes()
                    .into_iter()
                    .chain(bytes.iter().copied())
            })
            .collect();
        assert_eq!(split_fields(&encoded), Some(fields));
    }

    #[test]
    fn a_body_whose_lengths_do_not_add_up_is_refused() {
        let good: Vec<u8> = (0..BODY_FIELDS).flat_map(|_| 0u32.to_be_bytes()).collect();
        assert!(split_fields(&good).is_some());
        assert!(split_fields(&good[..good.len() - 1]).is_none(), "short");
        let mut long = good.clone();
        long.push(0);
        assert!(split_fields(&long).is_none(), "trailing byte");
        let mut overlong = good.clone();
        overlong[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(split_fields(&overlong).is_none(), "length past the end");
    }
}
