//! One connection to a MySQL or MariaDB server outside any store, for code that reads other
//! tables (the Zoho DBStore importer, [`crate::import::zoho_mysql`]). It follows the
//! [`MysqlBackend`](super::MysqlBackend)'s rules: the same URI parsing and checks, TLS verified
//! by default and `ssl_mode=disabled` only for a loopback host, the same session settings, and
//! error messages that never hold the password or a stored value. There is no pool, and
//! nothing is created or checked on the server.

use ::mysql::Conn;

use super::BackendError;
use super::config::{NAME, client_config};
use super::errors::{db_error, describe};

/// An open connection and the database it uses.
pub(crate) struct Connection {
    /// The connection, its session set up as the backend's are.
    pub(crate) conn: Conn,
    /// The database the URI names, or the default given to [`connect`].
    pub(crate) database: String,
}

/// Connects to the database named by `uri`, a `mysql://USER:PASS@HOST:PORT/DATABASE` URI
/// under the backend's rules; `default_database` when the URI names none. The store-only
/// parameters (`table_prefix`, pool sizes) are refused.
///
/// # Errors
/// A URI that is malformed or that the TLS rules refuse (nothing is sent), or a connection
/// that fails, with the kinds [`MysqlBackend::connect`](super::MysqlBackend::connect) gives.
pub(crate) fn connect(uri: &str, default_database: &str) -> Result<Connection, BackendError> {
    let config = client_config(uri, Some(default_database), false)?;
    let during = format!("connecting to {}", config.endpoint);
    let conn = Conn::new(config.opts).map_err(|e| db_error(&e, &during))?;
    Ok(Connection {
        conn,
        database: config.database,
    })
}

/// The message for a client error that happened while `during` (e.g. "reading zohooauth.
/// oauthtoken"): it names the server's error number and what it means, never a value.
pub(crate) fn error_message(e: &::mysql::Error, during: &str) -> String {
    describe(e, during).1
}

/// Whether `name` may be put inside backticks into SQL text: 1 to 64 ASCII letters, digits or
/// `_`, the rule for database names.
pub(crate) fn is_plain_name(name: &str) -> bool {
    NAME.accepts(name)
}
