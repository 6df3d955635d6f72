//! Blind index: lookup fields are stored only as keyed tags, so a backend can find a record by
//! user name or token without ever seeing either.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{Key, role};

/// `HMAC-SHA256(K_idx, field name || 0x00 || value)`: equal for equal values of one field in
/// one store, and nothing else can be learned from it without `K_idx`.
// The field stays public for now: the backends (and the fuzz helpers) build tags from the bytes
// they store. Making it private needs a `Tag::from_bytes` used across `backend/`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(pub [u8; 32]);

impl Tag {
    /// The tag's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag(")?;
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// The index key, kept as a keyed HMAC state so that a tag costs only the message blocks.
pub(crate) struct IndexKey(Hmac<Sha256>);

impl IndexKey {
    pub fn new(store_key: &Key<role::Store>) -> Self {
        let key: Key<role::Data> = store_key.derive(super::label::INDEX);
        Self(<Hmac<Sha256> as KeyInit>::new_from_slice(key.expose()).expect("any key length"))
    }

    /// The tag of `value` in the field named `field` (its Zoho name, the domain separator:
    /// `matching::LookupField::name`).
    pub fn tag(&self, field: &str, value: &str) -> Tag {
        let mut mac = self.0.clone();
        mac.update(field.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        Tag(mac.finalize().into_bytes().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_separate_fields_values_and_stores() {
        let k1 = IndexKey::new(&Key::random().unwrap());
        let k2 = IndexKey::new(&Key::random().unwrap());
        let t = k1.tag("user_name", "ann");
        assert_eq!(t, k1.tag("user_name", "ann"));
        assert_ne!(t, k1.tag("access_token", "ann"));
        assert_ne!(t, k1.tag("user_name", "ann "));
        assert_ne!(t, k2.tag("user_name", "ann"));
        // The 0x00 separator keeps field and value apart.
        assert_ne!(k1.tag("user_name", "x"), k1.tag("user_name", "\0x"));
    }

    #[test]
    fn tag_matches_plain_hmac_definition() {
        let store = Key::<role::Store>::random().unwrap();
        let k_idx: Key<role::Data> = store.derive(crate::crypto::label::INDEX);
        let expected = crate::crypto::hmac_sha256(k_idx.expose(), &[b"refresh_token", &[0], b"r1"]);
        assert_eq!(IndexKey::new(&store).tag("refresh_token", "r1").0, expected);
    }
}
