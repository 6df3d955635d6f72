//! The bytes at rest: the store header and sealed records, each versioned, parsed by a
//! bounds-checked reader that never panics on hostile input. Layouts are specified byte by byte
//! in SECURITY.md.
//!
//! This layer uses only `crypto`: its failures are its own ([`Malformed`], [`HeaderError`],
//! [`record::OpenFailure`]) and the vault turns them into the crate's `Error`, naming the header
//! or record; a record's body is sealed from its field bytes (and a version-1 body handed back as
//! JSON), so the token model is not needed here.

pub(crate) mod header;
pub(crate) mod record;

use crate::crypto::CryptoError;

/// A parse failure. Carries nothing: the caller says which header or record it was.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Malformed;

/// Why header bytes cannot be used. Carries no secret; the vault names the header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// Does not parse (truncated, extended, counts out of range) or its MAC does not verify.
    Tampered,
    /// Another magic, format version, algorithm or key derivation function.
    Unsupported {
        /// What part of the format.
        what: &'static str,
        /// The value found.
        detail: String,
    },
    /// A passphrase slot's Argon2id cost is out of bounds (refused before any KDF runs).
    Kdf(CryptoError),
}

impl From<Malformed> for HeaderError {
    fn from(_: Malformed) -> Self {
        HeaderError::Tampered
    }
}

impl From<CryptoError> for HeaderError {
    fn from(e: CryptoError) -> Self {
        HeaderError::Kdf(e)
    }
}

/// Lower-case hex of `bytes`: how store ids (in key slots, the keychain, messages) and record
/// ids are written.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A cursor over untrusted bytes; every read checks the remaining length.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.bytes.len() < n {
            return Err(Malformed);
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    pub fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> Result<u16, Malformed> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, Malformed> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }

    /// Succeeds only if every byte was consumed: trailing bytes are an error, not ignored.
    pub fn finish(self) -> Result<(), Malformed> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(Malformed)
        }
    }
}
