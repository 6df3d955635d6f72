//! A small pool of our own: up to `pool_size` connections, opened lazily, each with its
//! prepared statements cached; a connection that may be broken is closed, never reused.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use postgres::{Client, Statement};

use super::config::Connector;
use super::query::{Q, STATEMENTS, Sql};
use super::{BackendError, BackendErrorKind, Result, error};

/// How long a caller waits for a pooled connection.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(30);

/// One connection and its prepared statements.
pub(super) struct PgConn {
    pub(super) client: Client,
    statements: [Option<Statement>; STATEMENTS],
}

impl PgConn {
    pub(super) fn statement(&mut self, sql: &Sql, q: Q) -> Result<Statement, postgres::Error> {
        if let Some(s) = &self.statements[q as usize] {
            return Ok(s.clone());
        }
        let s = self.client.prepare(&sql.text[q as usize])?;
        self.statements[q as usize] = Some(s.clone());
        Ok(s)
    }
}

struct PoolState {
    idle: Vec<PgConn>,
    /// Connections in existence: idle, leased, or being opened.
    open: usize,
}

pub(super) struct Pool {
    pub(super) connector: Connector,
    pub(super) size: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
}

impl Pool {
    /// A pool of up to `size` connections made by `connector`, none open yet.
    pub(super) fn new(connector: Connector, size: usize) -> Self {
        Self {
            connector,
            size,
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle connection, a new one if fewer than `size` exist, or else the next one freed.
    pub(super) fn get(&self) -> Result<Lease<'_>, BackendError> {
        let deadline = Instant::now() + CHECKOUT_TIMEOUT;
        let mut state = self.lock();
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(Lease::new(self, conn));
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                return match self.connector.connect() {
                    Ok(client) => Ok(Lease::new(
                        self,
                        PgConn {
                            client,
                            statements: Default::default(),
                        },
                    )),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(error(
                    BackendErrorKind::Busy,
                    format!(
                        "all {} PostgreSQL connections of the pool stayed busy for {}s (pool_size)",
                        self.size,
                        CHECKOUT_TIMEOUT.as_secs()
                    ),
                ));
            }
            state = self
                .freed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Closes every idle connection: after one was found lost, the others (opened to the same
    /// server) most likely are too.
    pub(super) fn drop_idle(&self) {
        let idle = {
            let mut state = self.lock();
            let idle = std::mem::take(&mut state.idle);
            state.open -= idle.len();
            idle
        };
        drop(idle);
        self.freed.notify_all();
    }
}

/// A connection taken from the pool; back to it on drop if `reusable`, else closed.
pub(super) struct Lease<'a> {
    pool: &'a Pool,
    conn: Option<PgConn>,
    pub(super) reusable: bool,
}

impl<'a> Lease<'a> {
    fn new(pool: &'a Pool, conn: PgConn) -> Self {
        Self {
            pool,
            conn: Some(conn),
            reusable: true,
        }
    }

    pub(super) fn conn(&mut self) -> &mut PgConn {
        self.conn.as_mut().expect("present until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if self.reusable && !conn.client.is_closed() {
            self.pool.lock().idle.push(conn);
        } else {
            drop(conn);
            self.pool.lock().open -= 1;
        }
        self.pool.freed.notify_one();
    }
}
