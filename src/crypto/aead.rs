//! AES-256-GCM: in-place sealing of records and wrapping of 256-bit keys.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};

use super::{CryptoError, KEY_LEN, Key, random_array};

/// AES-GCM nonce length: 96 bits, drawn at random for every seal.
pub(crate) const NONCE_LEN: usize = 12;
/// AES-GCM tag length.
pub(crate) const TAG_LEN: usize = 16;
/// A wrapped key: nonce, encrypted key, tag.
pub(crate) const WRAPPED_KEY_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;

/// Authentication failed. Deliberately carries nothing: the caller names what failed.
#[derive(Debug)]
pub(crate) struct AuthFailed;

/// An AES-256-GCM key schedule, kept so that each seal does not expand the key again.
/// The `zeroize` feature of `aes-gcm` clears it on drop.
pub(crate) struct AeadKey(Aes256Gcm);

impl AeadKey {
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        Self(Aes256Gcm::new(key.into()))
    }

    #[cfg(test)]
    pub fn clone_for_tests(&self) -> Self {
        Self(self.0.clone())
    }

    /// Encrypts `buf` in place and returns the tag.
    pub fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        ad: &[u8],
        buf: &mut [u8],
    ) -> [u8; TAG_LEN] {
        let tag = self
            .0
            .encrypt_inout_detached(&Nonce::from(*nonce), ad, buf.into())
            // Only fails for inputs over 64 GiB; records are a few hundred bytes.
            .expect("AES-GCM input within limits");
        tag.into()
    }

    /// Decrypts `buf` in place if `tag` authenticates it with `ad`; on failure `buf` holds
    /// unauthenticated bytes that must not be used.
    pub fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        ad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), AuthFailed> {
        self.0
            .decrypt_inout_detached(&Nonce::from(*nonce), ad, buf.into(), &Tag::from(*tag))
            .map_err(|_| AuthFailed)
    }

    /// Wraps `key` under this key with a fresh random nonce: `nonce | ciphertext | tag`.
    pub fn wrap_key<R>(
        &self,
        key: &Key<R>,
        ad: &[u8],
    ) -> Result<[u8; WRAPPED_KEY_LEN], CryptoError> {
        let nonce: [u8; NONCE_LEN] = random_array()?;
        let mut out = [0u8; WRAPPED_KEY_LEN];
        out[..NONCE_LEN].copy_from_slice(&nonce);
        let body = &mut out[NONCE_LEN..NONCE_LEN + KEY_LEN];
        body.copy_from_slice(key.expose());
        let tag = self.seal_in_place(&nonce, ad, body);
        out[NONCE_LEN + KEY_LEN..].copy_from_slice(&tag);
        Ok(out)
    }

    /// Unwraps a key produced by [`wrap_key`](Self::wrap_key) with the same `ad`.
    pub fn unwrap_key<R>(
        &self,
        wrapped: &[u8; WRAPPED_KEY_LEN],
        ad: &[u8],
    ) -> Result<Key<R>, AuthFailed> {
        let (nonce, rest) = wrapped.split_at(NONCE_LEN);
        let (body, tag) = rest.split_at(KEY_LEN);
        let nonce: &[u8; NONCE_LEN] = nonce.try_into().expect("split at NONCE_LEN");
        let tag: &[u8; TAG_LEN] = tag.try_into().expect("rest is KEY_LEN + TAG_LEN");
        // Decrypted in place in the key's own zeroizing buffer; dropped (cleared) on failure.
        Key::try_init(|out| {
            out.copy_from_slice(body);
            self.open_in_place(nonce, ad, out, tag)
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;
    use crate::crypto::role;

    /// Reads a `name: value` vector file (see tests/vectors/README.md).
    pub(crate) fn read_vector(path: &Path) -> HashMap<String, String> {
        let text = std::fs::read_to_string(path).unwrap();
        text.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (k, v) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad line {l:?} in {path:?}"));
                (k.trim().to_owned(), v.trim().to_owned())
            })
            .collect()
    }

    pub(crate) fn vector_files(dir: &str) -> Vec<std::path::PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/vectors")
            .join(dir);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no vectors in {dir:?}");
        files
    }

    #[test]
    fn aes_256_gcm_known_answers_through_our_primitive() {
        let mut checked = 0;
        for path in vector_files("aes256gcm") {
            let v = read_vector(&path);
            let hex = |k: &str| hex::decode(&v[k]).unwrap();
            let key = AeadKey::new(hex("key").as_slice().try_into().unwrap());
            let nonce: [u8; NONCE_LEN] = hex("nonce").try_into().unwrap();
            let tag: [u8; TAG_LEN] = hex("tag").try_into().unwrap();
            let (aad, plaintext, ciphertext) = (hex("aad"), hex("plaintext"), hex("ciphertext"));
            let mut buf = ciphertext.clone();
            let opened = key.open_in_place(&nonce, &aad, &mut buf, &tag);
            match v["expect"].as_str() {
                "ok" => {
                    assert!(opened.is_ok(), "{path:?} must open");
                    assert_eq!(buf, plaintext, "{path:?}");
                    let mut sealed = plaintext.clone();
                    assert_eq!(
                        key.seal_in_place(&nonce, &aad, &mut sealed),
                        tag,
                        "{path:?}"
                    );
                    assert_eq!(sealed, ciphertext, "{path:?}");
                }
                "fail" => assert!(opened.is_err(), "{path:?} must be rejected"),
                other => panic!("{path:?}: unknown expect {other}"),
            }
            checked += 1;
        }
        assert!(checked >= 20);
    }

    #[test]
    fn wrapped_key_round_trips_and_rejects_other_ad_or_kek() {
        let kek = Key::<role::Kek>::random().unwrap().aead();
        let key = Key::<role::Store>::random().unwrap();
        let wrapped = kek.wrap_key(&key, b"ad").unwrap();
        let back: Key<role::Store> = kek.unwrap_key(&wrapped, b"ad").unwrap();
        assert_eq!(back.expose(), key.expose());
        assert!(kek.unwrap_key::<role::Store>(&wrapped, b"other").is_err());
        let other = Key::<role::Kek>::random().unwrap().aead();
        assert!(other.unwrap_key::<role::Store>(&wrapped, b"ad").is_err());
        for bit in 0..WRAPPED_KEY_LEN * 8 {
            let mut bad = wrapped;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                kek.unwrap_key::<role::Store>(&bad, b"ad").is_err(),
                "bit {bit}"
            );
        }
    }
}
