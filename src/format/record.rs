//! Sealed record bytes: `version (1) | key id (4, BE) | nonce (12) | ciphertext | tag (16)`.
//!
//! The plaintext is the token as JSON without its id (the vault hands over that body: this
//! layer seals and opens any serde value); the associated data binds format version, store id,
//! key id and record id, so a record copied to another id or store, or relabelled with another
//! key id, fails to open.

use std::io;

use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use super::{Malformed, Reader};
use crate::crypto::{AeadKey, CryptoError, NONCE_LEN, TAG_LEN, length_prefixed, random_array};

/// The record format version this build writes and reads.
pub(crate) const RECORD_VERSION: u8 = 1;
/// Bytes around the ciphertext.
pub(crate) const RECORD_OVERHEAD: usize = 1 + 4 + NONCE_LEN + TAG_LEN;
const PREFIX_LEN: usize = 1 + 4 + NONCE_LEN;

/// What opening a record can find wrong, for the caller to turn into an `Error`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum OpenFailure {
    /// Too short, or otherwise not parseable, or authentication failed.
    Tampered,
    /// A version this build does not know.
    UnsupportedVersion(u8),
}

/// The key id a sealed record names, read without opening it.
pub(crate) fn key_id_of(sealed: &[u8]) -> Result<u32, Malformed> {
    let mut r = Reader::new(sealed);
    r.u8()?;
    r.u32()
}

/// The associated data of a record.
pub(crate) fn associated_data(store_id: &[u8; 16], key_id: u32, record_id: &str) -> Vec<u8> {
    length_prefixed(&[
        b"tokenvault record",
        &[RECORD_VERSION],
        store_id,
        &key_id.to_be_bytes(),
        record_id.as_bytes(),
    ])
}

/// Counts serialized bytes, so the plaintext buffer can be sized exactly once (a growing
/// buffer would leave unzeroized copies behind in freed memory).
struct ByteCounter(usize);

impl io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Seals `body` (a record's plaintext: the token without its id, which is in the associated
/// data) as JSON under `key`. `body` must serialize to JSON without error, as a token (strings
/// only) does.
///
/// # Errors
/// [`CryptoError::Random`] if no nonce can be drawn.
pub(crate) fn seal<T: Serialize + ?Sized>(
    body: &T,
    key: &AeadKey,
    key_id: u32,
    ad: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut counter = ByteCounter(0);
    body.serialize(&mut serde_json::Serializer::new(&mut counter))
        .expect("serializing to a counter cannot fail");
    let nonce: [u8; NONCE_LEN] = random_array()?;

    let mut buf = Zeroizing::new(Vec::with_capacity(PREFIX_LEN + counter.0 + TAG_LEN));
    buf.push(RECORD_VERSION);
    buf.extend_from_slice(&key_id.to_be_bytes());
    buf.extend_from_slice(&nonce);
    body.serialize(&mut serde_json::Serializer::new(&mut *buf))
        .expect("serializing to a Vec cannot fail");
    let tag = key.seal_in_place(&nonce, ad, &mut buf[PREFIX_LEN..]);
    buf.extend_from_slice(&tag);
    debug_assert_eq!(buf.len(), buf.capacity(), "sized exactly: no reallocation");
    // Now ciphertext, no longer secret: take it out of the zeroizing wrapper.
    Ok(std::mem::take(&mut *buf))
}

/// Opens a sealed record under `key`, which the caller resolved from key id `key_id`; the
/// record must name that key id (the associated data binds it too). The plaintext is parsed
/// as `T` only once it is authenticated.
pub(crate) fn open<T: DeserializeOwned>(
    sealed: &[u8],
    key_id: u32,
    key: &AeadKey,
    ad: &[u8],
) -> Result<T, OpenFailure> {
    if sealed.len() < RECORD_OVERHEAD {
        return Err(OpenFailure::Tampered);
    }
    let mut r = Reader::new(sealed);
    let version = r.u8().map_err(|_| OpenFailure::Tampered)?;
    if version != RECORD_VERSION {
        return Err(OpenFailure::UnsupportedVersion(version));
    }
    if r.u32() != Ok(key_id) {
        return Err(OpenFailure::Tampered);
    }
    let nonce: [u8; NONCE_LEN] = r.array().map_err(|_| OpenFailure::Tampered)?;
    let body_len = r
        .remaining()
        .checked_sub(TAG_LEN)
        .ok_or(OpenFailure::Tampered)?;
    let ciphertext = r.take(body_len).map_err(|_| OpenFailure::Tampered)?;
    let tag: [u8; TAG_LEN] = r.array().map_err(|_| OpenFailure::Tampered)?;

    let mut plaintext = Zeroizing::new(ciphertext.to_vec());
    key.open_in_place(&nonce, ad, &mut plaintext, &tag)
        .map_err(|_| OpenFailure::Tampered)?;
    serde_json::from_slice(&plaintext).map_err(|_| OpenFailure::Tampered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Key, role};

    /// A record body: the layer seals any serde value (the vault gives it a token).
    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Body {
        user_name: String,
        refresh_token: String,
    }

    type Opened = Result<Body, OpenFailure>;

    fn sealed() -> (AeadKey, Vec<u8>, Vec<u8>) {
        let key = Key::<role::Data>::random().unwrap().aead();
        let ad = associated_data(&[1; 16], 3, "rec");
        let body = Body {
            user_name: "u".into(),
            refresh_token: "r".into(),
        };
        (
            key.clone_for_tests(),
            seal(&body, &key, 3, &ad).unwrap(),
            ad,
        )
    }

    #[test]
    fn layout_is_version_key_id_nonce_ciphertext_tag() {
        let (key, bytes, ad) = sealed();
        assert_eq!(bytes[0], RECORD_VERSION);
        assert_eq!(key_id_of(&bytes), Ok(3));
        let body = br#"{"user_name":"u","refresh_token":"r"}"#;
        assert_eq!(bytes.len(), RECORD_OVERHEAD + body.len());
        let body: Body = open(&bytes, 3, &key, &ad).unwrap();
        assert_eq!(body.user_name, "u");
        assert_eq!(body.refresh_token, "r");
    }

    #[test]
    fn every_bit_flip_truncation_and_extension_fails() {
        let (key, bytes, ad) = sealed();
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let opened: Opened = open(&bad, 3, &key, &ad);
            assert!(opened.is_err(), "bit {bit}");
        }
        for len in 0..bytes.len() {
            let opened: Opened = open(&bytes[..len], 3, &key, &ad);
            assert!(opened.is_err(), "len {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        let opened: Opened = open(&longer, 3, &key, &ad);
        assert!(opened.is_err());
    }

    #[test]
    fn other_record_id_store_or_key_id_fails() {
        let (key, bytes, _) = sealed();
        for ad in [
            associated_data(&[1; 16], 3, "other"),
            associated_data(&[2; 16], 3, "rec"),
            associated_data(&[1; 16], 4, "rec"),
        ] {
            let opened: Opened = open(&bytes, 3, &key, &ad);
            assert_eq!(opened.unwrap_err(), OpenFailure::Tampered);
        }
    }
}
