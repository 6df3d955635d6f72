//! [`Backend::lock`](crate::backend::Backend::lock): `GET_LOCK` on a pooled connection held
//! for the lock's lifetime.

use std::time::Duration;

use ::mysql::prelude::Queryable;
use ::mysql::{PooledConn, Value};
use sha2::{Digest, Sha256};

use super::errors::{classify, db_error};
use super::pool::discard;
use super::statements::int_value;
use super::{BackendError, BackendErrorKind, MysqlBackend, error};
use crate::backend::HeldLock;
use crate::backend::sql::retry::Failure;

/// A `GET_LOCK` held on its own pooled connection ([`Backend::lock`](crate::backend::Backend::lock)).
struct MysqlLock {
    conn: PooledConn,
    key: String,
}

impl HeldLock for MysqlLock {}

impl Drop for MysqlLock {
    fn drop(&mut self) {
        if self
            .conn
            .exec_drop("SELECT RELEASE_LOCK(?)", (&self.key,))
            .is_err()
        {
            // The server releases it with the connection.
            discard(&mut self.conn);
        }
    }
}

/// Takes the named lock `name` of `backend`'s store (see [`MysqlBackend`]'s `lock`).
pub(super) fn lock(
    backend: &MysqlBackend,
    name: &str,
    timeout: Duration,
) -> Result<Box<dyn HeldLock>, BackendError> {
    let digest = Sha256::new()
        .chain_update(backend.database.as_bytes())
        .chain_update([0])
        .chain_update(backend.table_prefix.as_bytes())
        .chain_update([0])
        .chain_update(name.as_bytes())
        .finalize();
    let hex: String = digest[..20].iter().map(|b| format!("{b:02x}")).collect();
    let key = format!("tokenvault:{hex}");
    let during = "taking a named lock";
    let mut check = false;
    for _ in 0..=backend.max_reconnects {
        let mut conn = backend.conn(check)?;
        match conn.exec_first::<Value, _, _>("SELECT GET_LOCK(?, ?)", (&key, timeout.as_secs_f64()))
        {
            Ok(got) => {
                return match int_value(got) {
                    Some(1) => Ok(Box::new(MysqlLock { conn, key })),
                    Some(0) => Err(error(
                        BackendErrorKind::Busy,
                        format!("the lock was held past the timeout ({timeout:?})"),
                    )),
                    _ => Err(error(BackendErrorKind::Other, "GET_LOCK failed")),
                };
            }
            // Nothing is held by a connection that broke: try another.
            Err(e) if classify(&e) == Failure::Lost => {
                discard(&mut conn);
                check = true;
            }
            Err(e) => return Err(db_error(&e, during)),
        }
    }
    Err(error(
        BackendErrorKind::Unavailable,
        format!(
            "no working connection to the MySQL server at {}",
            backend.endpoint
        ),
    ))
}
