//! Connections from the `mysql` crate's pool: checked with a ping after one was found lost, and
//! discarded when they may be broken; reads outside transactions retried on a fresh one.

use std::time::Duration;

use ::mysql::PooledConn;

use super::errors::{classify, db_error};
use super::statements::Sql;
use super::{BackendError, BackendErrorKind, MysqlBackend, Result, error};
use crate::backend::sql::retry::Failure;

/// How long a call waits for a free pooled connection.
pub(super) const POOL_WAIT: Duration = Duration::from_secs(30);

/// Makes the pool drop this connection when it is returned: `reset` on return fails on a dead
/// connection, which the pool then discards (on a live one it just resets the session).
pub(super) fn discard(conn: &mut PooledConn) {
    conn.reset_connection(true);
}

impl MysqlBackend {
    /// A pooled connection; with `check`, one that answers a ping (dead ones are discarded).
    pub(super) fn conn(&self, check: bool) -> Result<PooledConn, BackendError> {
        let during = format!("connecting to {}", self.endpoint);
        for _ in 0..=self.max_reconnects {
            let mut conn = self
                .pool
                .try_get_conn(POOL_WAIT)
                .map_err(|e| db_error(&e, &during))?;
            if !check || conn.as_mut().ping().is_ok() {
                return Ok(conn);
            }
            discard(&mut conn);
        }
        Err(error(
            BackendErrorKind::Unavailable,
            format!(
                "no working connection to the MySQL server at {}",
                self.endpoint
            ),
        ))
    }

    /// Runs a read outside a transaction, again on a checked connection if the connection was
    /// lost (a read is safe to repeat).
    pub(super) fn read<T>(
        &self,
        during: &str,
        mut f: impl FnMut(&mut PooledConn, &Sql) -> ::mysql::Result<T>,
    ) -> Result<T, BackendError> {
        let mut check = false;
        let mut last = None;
        for _ in 0..=self.max_reconnects {
            let mut conn = self.conn(check)?;
            match f(&mut conn, &self.sql) {
                Ok(v) => return Ok(v),
                Err(e) if classify(&e) == Failure::Lost => {
                    discard(&mut conn);
                    last = Some(db_error(&e, during));
                    check = true;
                }
                Err(e) => return Err(db_error(&e, during)),
            }
        }
        Err(last.expect("the loop ran at least once"))
    }
}
