//! Argon2id for passphrase slots, with its cost bounded before it runs.

use argon2::{Algorithm, Argon2, Params, Version};

use super::{CryptoError, Key, role};

/// The lowest cost accepted from a header: OWASP's minimum for Argon2id (19 MiB, 2 passes).
const FLOOR_M_KIB: u32 = 19 * 1024;
const FLOOR_T: u32 = 2;
/// The highest cost accepted from a header, so that a hostile header cannot make us allocate
/// terabytes or spin for hours.
const CEILING_M_KIB: u32 = 1024 * 1024;
const CEILING_T: u32 = 10;
const CEILING_P: u32 = 16;

/// Argon2id cost parameters of a passphrase slot.
///
/// Built with [`Argon2Params::new`] (bounded; defined beside the passphrase key source in
/// `keys`, because it reports the crate's `Error`) or [`Default`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Params {
    m_kib: u32,
    t: u32,
    p: u32,
}

impl Default for Argon2Params {
    /// RFC 9106's second recommended option: m = 64 MiB, t = 3, p = 4.
    fn default() -> Self {
        Self {
            m_kib: 64 * 1024,
            t: 3,
            p: 4,
        }
    }
}

/// Whether parameters below the floor are accepted (tests only; see [`crate::danger`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum KdfFloor {
    #[default]
    Enforced,
    InsecureAllowed,
}

impl Argon2Params {
    /// Parameters within the bounds that `floor` sets (enforced: m 19 MiB..=1 GiB in KiB,
    /// t 2..=10, p 1..=16; below the floor only for tests, which makes a passphrase cheap to
    /// guess).
    pub(crate) fn bounded(
        m_kib: u32,
        t: u32,
        p: u32,
        floor: KdfFloor,
    ) -> Result<Self, CryptoError> {
        let params = Self { m_kib, t, p };
        params.check(floor)?;
        Ok(params)
    }

    /// Memory in KiB.
    pub fn m_kib(&self) -> u32 {
        self.m_kib
    }
    /// Passes.
    pub fn t(&self) -> u32 {
        self.t
    }
    /// Lanes.
    pub fn p(&self) -> u32 {
        self.p
    }

    /// Rejects parameters outside the bounds. Runs before any allocation for the KDF.
    pub(crate) fn check(&self, floor: KdfFloor) -> Result<(), CryptoError> {
        let Self { m_kib, t, p } = *self;
        let above_floor = match floor {
            KdfFloor::Enforced => m_kib >= FLOOR_M_KIB && t >= FLOOR_T,
            // Argon2 itself needs at least 8 KiB per lane and one pass.
            KdfFloor::InsecureAllowed => t >= 1 && u64::from(m_kib) >= 8 * u64::from(p),
        };
        let below_ceiling =
            m_kib <= CEILING_M_KIB && t <= CEILING_T && (1..=CEILING_P).contains(&p);
        if above_floor && below_ceiling {
            Ok(())
        } else {
            Err(CryptoError::KdfParamsOutOfBounds { m_kib, t, p })
        }
    }

    pub(crate) fn argon2(&self) -> Argon2<'static> {
        // check() keeps every value inside what Params::new accepts.
        let params =
            Params::new(self.m_kib, self.t, self.p, Some(super::KEY_LEN)).expect("bounded params");
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }
}

/// Derives a passphrase slot's KEK: Argon2id(passphrase, salt) → 32 bytes, written straight
/// into the zeroizing key buffer. The bounds are checked first.
pub(crate) fn derive_passphrase_kek(
    passphrase: &[u8],
    salt: &[u8; 16],
    params: &Argon2Params,
    floor: KdfFloor,
) -> Result<Key<role::Kek>, CryptoError> {
    params.check(floor)?;
    let argon2 = params.argon2();
    Key::try_init(|out| {
        argon2
            .hash_password_into(passphrase, salt, out)
            .map_err(|_| CryptoError::KdfParamsOutOfBounds {
                m_kib: params.m_kib,
                t: params.t,
                p: params.p,
            })
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use argon2::{AssociatedData, ParamsBuilder};

    use super::*;
    use crate::crypto::aead::tests::{read_vector, vector_files};

    #[test]
    fn argon2id_known_answers() {
        for path in vector_files("argon2id") {
            let v = read_vector(&path);
            let num = |k: &str| v[k].parse::<u32>().unwrap();
            let hex = |k: &str| hex::decode(&v[k]).unwrap();
            assert_eq!(v["version"], "19");
            let (password, salt, secret, ad) =
                (hex("password"), hex("salt"), hex("secret"), hex("ad"));
            let mut out = vec![0u8; hex("tag").len()];
            if secret.is_empty() && ad.is_empty() {
                // The library's own path: bounds check, then hash_password_into.
                let params = Argon2Params::bounded(
                    num("m_kib"),
                    num("t"),
                    num("p"),
                    KdfFloor::InsecureAllowed,
                )
                .unwrap();
                let salt: [u8; 16] = salt.try_into().unwrap();
                let kek =
                    derive_passphrase_kek(&password, &salt, &params, KdfFloor::InsecureAllowed)
                        .unwrap();
                out.copy_from_slice(kek.expose());
            } else {
                // RFC 9106's vector uses a secret and associated data, which slots do not; it
                // checks the same Argon2id v0x13 configuration.
                let params = ParamsBuilder::new()
                    .m_cost(num("m_kib"))
                    .t_cost(num("t"))
                    .p_cost(num("p"))
                    .data(AssociatedData::new(&ad).unwrap())
                    .output_len(out.len())
                    .build()
                    .unwrap();
                Argon2::new_with_secret(&secret, Algorithm::Argon2id, Version::V0x13, params)
                    .unwrap()
                    .hash_password_into(&password, &salt, &mut out)
                    .unwrap();
            }
            assert_eq!(hex::encode(&out), v["tag"], "{path:?}");
        }
    }

    #[test]
    fn bounds_reject_before_allocating() {
        let start = Instant::now();
        // A hostile header asking for 4 TiB (m is in KiB; u32::MAX KiB ≈ 4 TiB).
        let hostile = Argon2Params {
            m_kib: u32::MAX,
            t: 3,
            p: 4,
        };
        let err = derive_passphrase_kek(b"pw", &[0; 16], &hostile, KdfFloor::InsecureAllowed);
        assert!(matches!(
            err,
            Err(CryptoError::KdfParamsOutOfBounds {
                m_kib: u32::MAX,
                ..
            })
        ));
        assert!(start.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn bounds_table() {
        let enforced = |m, t, p| Argon2Params::bounded(m, t, p, KdfFloor::Enforced);
        let insecure = |m, t, p| Argon2Params::bounded(m, t, p, KdfFloor::InsecureAllowed);
        let ok = [(19 * 1024, 2, 1), (64 * 1024, 3, 4), (1024 * 1024, 10, 16)];
        for (m, t, p) in ok {
            assert!(enforced(m, t, p).is_ok(), "{m} {t} {p}");
        }
        let bad = [
            (19 * 1024 - 1, 2, 1),
            (64 * 1024, 1, 4),
            (1024 * 1024 + 1, 3, 4),
            (64 * 1024, 11, 4),
            (64 * 1024, 3, 17),
            (64 * 1024, 3, 0),
        ];
        for (m, t, p) in bad {
            assert!(
                matches!(
                    enforced(m, t, p),
                    Err(CryptoError::KdfParamsOutOfBounds { .. })
                ),
                "{m} {t} {p}"
            );
        }
        // The insecure floor still keeps the ceiling.
        assert!(insecure(8, 1, 1).is_ok());
        assert!(insecure(2 * 1024 * 1024, 1, 1).is_err());
    }
}
