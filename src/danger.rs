//! Settings that weaken the store, for tests only. Nothing here is reachable by accident: each
//! call says what it gives up.

use crate::crypto::{Argon2Params, KdfFloor};
use crate::keys::Credential;
use crate::store::Result;

/// Argon2id parameters below the floor (down to 8 KiB, one pass): a passphrase behind them is
/// cheap to guess. For tests that create many stores.
///
/// # Errors
/// [`Error::KdfParamsOutOfBounds`](crate::Error::KdfParamsOutOfBounds) above the ceiling or
/// below what Argon2 itself accepts.
pub fn insecure_argon2_params(m_kib: u32, t: u32, p: u32) -> Result<Argon2Params> {
    Ok(Argon2Params::bounded(
        m_kib,
        t,
        p,
        KdfFloor::InsecureAllowed,
    )?)
}

/// A passphrase credential that opens stores whose Argon2id cost is below the floor (the
/// ceiling still holds).
pub fn passphrase_accepting_insecure_kdf(passphrase: impl Into<String>) -> Credential {
    Credential::passphrase_insecure(passphrase)
}
