//! Sealed record bytes: `version (1) | key id (4, BE) | nonce (12) | ciphertext | tag (16)`.
//!
//! The plaintext is the token as JSON without its id; the associated data binds format version,
//! store id, key id and record id, so a record copied to another id or store, or relabelled with
//! another key id, fails to open.

use std::io;

use serde::Serialize;
use zeroize::Zeroizing;

use super::{Malformed, Reader};
use crate::crypto::{AeadKey, NONCE_LEN, TAG_LEN, length_prefixed, random_array};
use crate::store::Result;
use crate::token::OAuthToken;

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

/// Seals `token` (its id is in the associated data, not the plaintext) under `key`.
pub(crate) fn seal(token: &OAuthToken, key: &AeadKey, key_id: u32, ad: &[u8]) -> Result<Vec<u8>> {
    let body = token.expose_secrets_without_id();
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
/// record must name that key id (the associated data binds it too).
pub(crate) fn open(
    sealed: &[u8],
    key_id: u32,
    key: &AeadKey,
    ad: &[u8],
) -> Result<OAuthToken, OpenFailure> {
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
    let mut token: OAuthToken =
        serde_json::from_slice(&plaintext).map_err(|_| OpenFailure::Tampered)?;
    token.set_id(None);
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Key, role};

    fn sealed() -> (AeadKey, Vec<u8>, Vec<u8>) {
        let key = Key::<role::Data>::random().unwrap().aead();
        let ad = associated_data(&[1; 16], 3, "rec");
        let token = OAuthToken::new()
            .with_user_name("u")
            .with_refresh_token("r");
        (
            key.clone_for_tests(),
            seal(&token, &key, 3, &ad).unwrap(),
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
        let token = open(&bytes, 3, &key, &ad).unwrap();
        assert_eq!(token.user_name(), Some("u"));
        assert_eq!(token.id(), None);
    }

    #[test]
    fn every_bit_flip_truncation_and_extension_fails() {
        let (key, bytes, ad) = sealed();
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(open(&bad, 3, &key, &ad).is_err(), "bit {bit}");
        }
        for len in 0..bytes.len() {
            assert!(open(&bytes[..len], 3, &key, &ad).is_err(), "len {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(open(&longer, 3, &key, &ad).is_err());
    }

    #[test]
    fn other_record_id_store_or_key_id_fails() {
        let (key, bytes, _) = sealed();
        for ad in [
            associated_data(&[1; 16], 3, "other"),
            associated_data(&[2; 16], 3, "rec"),
            associated_data(&[1; 16], 4, "rec"),
        ] {
            assert_eq!(
                open(&bytes, 3, &key, &ad).unwrap_err(),
                OpenFailure::Tampered
            );
        }
    }
}
