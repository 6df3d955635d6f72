//! [`Backend::lock`](crate::backend::Backend::lock): session-level advisory locks.

use std::time::Duration;

use postgres::Client;
use postgres::error::SqlState;

use super::errors::pg_error;
use super::{BackendError, BackendErrorKind, PostgresBackend, error};
use crate::backend::HeldLock;

/// A held [`Backend::lock`](crate::backend::Backend::lock): the connection that holds the advisory lock.
struct AdvisoryLock {
    client: Client,
    key: i64,
}

impl HeldLock for AdvisoryLock {}

impl Drop for AdvisoryLock {
    fn drop(&mut self) {
        // Unlock at once; closing the connection (next) would release it too, a moment later.
        let _ = self
            .client
            .execute("SELECT pg_advisory_unlock($1)", &[&self.key]);
    }
}

/// FNV-1a (64-bit) of the schema, a NUL and the lock name: the advisory lock's key. The
/// one-key form shares no key space with the two-key schema-creation lock.
fn named_lock_key(schema: &str, name: &str) -> i64 {
    let hash = schema
        .bytes()
        .chain([0])
        .chain(name.bytes())
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Takes the advisory lock `name` of `backend`'s schema on a connection of its own, waiting at
/// most `timeout` (`lock_timeout`, then [`BackendErrorKind::Busy`]).
pub(super) fn lock(
    backend: &PostgresBackend,
    name: &str,
    timeout: Duration,
) -> Result<Box<dyn HeldLock>, BackendError> {
    let key = named_lock_key(&backend.schema, name);
    let mut client = backend.pool.connector.connect()?;
    let millis = timeout.as_millis().clamp(1, i32::MAX as u128).to_string();
    client
        .execute("SELECT set_config('lock_timeout', $1, false)", &[&millis])
        .map_err(|e| pg_error(&e))?;
    match client.execute("SELECT pg_advisory_lock($1)", &[&key]) {
        Ok(_) => Ok(Box::new(AdvisoryLock { client, key })),
        Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => Err(error(
            BackendErrorKind::Busy,
            "the lock was held past the timeout (PostgreSQL advisory lock)",
        )),
        Err(e) => Err(pg_error(&e)),
    }
}
