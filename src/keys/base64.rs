//! A strict decoder of standard base64 (RFC 4648 §4, padded), for raw keys given as text.
//! Strict as the `base64` crate's `STANDARD` engine: the length is a multiple of 4, `=` only as
//! the last one or two characters, no whitespace or line breaks inside, and the unused bits of
//! the last character zero (so every byte string has exactly one accepted encoding).

use zeroize::Zeroizing;

/// The value of one base64 character, or `None` for a character outside the alphabet.
fn value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// The bytes `text` encodes, in a buffer cleared when dropped; `None` if `text` is not strict
/// standard base64.
pub(crate) fn decode(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let text = text.as_bytes();
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let padding = text.iter().rev().take_while(|&&c| c == b'=').count();
    if padding > 2 {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() / 4 * 3));
    for (i, quad) in text.chunks_exact(4).enumerate() {
        let last = i + 1 == text.len() / 4;
        // Padding only in the last quad; `value` refuses `=` anywhere else.
        let data = if last { 4 - padding } else { 4 };
        let mut bits: u32 = 0;
        for &c in &quad[..data] {
            bits = bits << 6 | u32::from(value(c)?);
        }
        bits <<= 6 * (4 - data);
        let bytes = bits.to_be_bytes();
        let n = data * 6 / 8;
        // The bits past the last whole byte must be zero (canonical encoding).
        if bits & (0x00ff_ffff >> (8 * n)) != 0 {
            return None;
        }
        out.extend_from_slice(&bytes[1..1 + n]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::decode;

    fn ok(text: &str) -> Vec<u8> {
        decode(text)
            .unwrap_or_else(|| panic!("{text:?} refused"))
            .to_vec()
    }

    /// A plain encoder, to check the decoder against.
    fn encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let mut b = [0u8; 3];
            b[..chunk.len()].copy_from_slice(chunk);
            let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn rfc_4648_vectors() {
        for (text, bytes) in [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"),
        ] {
            assert_eq!(ok(text), bytes.as_bytes(), "{text:?}");
        }
    }

    #[test]
    fn every_length_and_byte_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        for len in 0..=bytes.len() {
            let part = &bytes[(256 - len) / 2..][..len];
            assert_eq!(ok(&encode(part)), part, "length {len}");
        }
        let key = [0xfb; 32];
        assert_eq!(ok(&encode(&key)), key);
        assert_eq!(encode(&key).len(), 44);
    }

    #[test]
    fn anything_not_strict_standard_base64_is_refused() {
        for bad in [
            "Zg",           // unpadded
            "Zg=",          // short padding
            "Zg===",        // too long
            "Z===",         // three padding characters
            "====",         // padding only
            "Zh==",         // non-zero unused bits
            "Zm9=",         // non-zero unused bits
            "Zm=v",         // padding inside
            "Zg==Zm9v",     // padding before the end
            "Zm9v\n",       // line break
            "Zm 9v",        // space
            "-_-_",         // URL-safe alphabet
            "Zm9v====",     // four padding characters
            "Zm9vYmFy=",    // length not a multiple of 4
            "Zm9vYm\u{e9}", // not ASCII (8 bytes)
        ] {
            assert!(decode(bad).is_none(), "{bad:?} accepted");
        }
    }
}
