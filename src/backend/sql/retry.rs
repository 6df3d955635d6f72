//! How the SQL backends retry a transaction: the same three answers to a failed statement,
//! the same number of attempts, and jittered exponential backoff (with each backend's own
//! timing).

use std::hash::{BuildHasher, Hasher, RandomState};
use std::time::Duration;

/// The most attempts of one transaction that keeps failing in a way that allows running it
/// again: for PostgreSQL serialization failures, deadlocks and lost connections; for MySQL
/// deadlocks, lock wait timeouts and "record changed" (lost connections have their own count).
pub(crate) const MAX_ATTEMPTS: u32 = 5;

/// What a failed statement means for the transaction running it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The server aborted the transaction to keep transactions isolated (deadlock,
    /// serialization failure, lock wait timeout): roll back and run the whole step again.
    Retry,
    /// The connection is gone (or the server is shutting down): the connection is useless;
    /// before COMMIT, the step may run again on a fresh connection.
    Lost,
    /// Anything else: report it.
    Other,
}

/// Jittered exponential backoff: before attempt `n + 1` (n ≥ 1), `first`·2^min(n − 1,
/// `doublings`), plus a random part of up to `spread` times that.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Backoff {
    /// The least wait, before the second attempt.
    pub(crate) first: Duration,
    /// How many times the least wait doubles at most.
    pub(crate) doublings: u32,
    /// The random part's bound, in multiples of the least wait.
    pub(crate) spread: u32,
}

impl Backoff {
    /// How long to wait before attempt `n + 1`.
    pub(crate) fn delay(&self, n: u32) -> Duration {
        let least = self.first * 2u32.pow(n.saturating_sub(1).min(self.doublings));
        least + (least * self.spread).mul_f64(jitter())
    }
}

/// A number in `[0, 1)`, different on every call (std's per-call random hash keys).
fn jitter() -> f64 {
    let bits = RandomState::new().build_hasher().finish() >> 11;
    // 53 bits: exact in an f64, so the quotient stays below 1.
    bits as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_within_its_bounds() {
        let backoff = Backoff {
            first: Duration::from_millis(10),
            doublings: 2,
            spread: 1,
        };
        for (n, least) in [(1, 10), (2, 20), (3, 40), (4, 40), (9, 40)] {
            let least = Duration::from_millis(least);
            for _ in 0..20 {
                let d = backoff.delay(n);
                assert!(d >= least && d < least * 2, "{n}: {d:?}");
            }
        }
        for _ in 0..100 {
            assert!((0.0..1.0).contains(&jitter()));
        }
    }
}
