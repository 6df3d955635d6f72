//! Store URIs: `sqlite:PATH`, `file:PATH`, `memory:`, `postgres://…` (or `postgresql://…`)
//! and `mysql://…`.
//!
//! A parsed [`StoreUri`] displays without any password: a server URI shows as
//! `scheme://user@host…` with everything between the user name and the *last* `@` left out
//! (a password may hold a raw `@`, `/`, `?` or `:`) and no query string. The server URIs'
//! own syntax (hosts, TLS options) is checked by their backends when they connect.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a store lives.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreUri {
    /// `sqlite:PATH`: the embedded default.
    Sqlite(PathBuf),
    /// `file:PATH`: one file, for small stores.
    File(PathBuf),
    /// `memory:`: a new, empty store in this process's memory (tests, short-lived tools).
    Memory,
    /// `postgres://…`, `postgresql://…` or `mysql://…`: a store on a database server. The
    /// text is kept as given (password included) for the backend; it is never displayed.
    Server(String),
}

/// Why a store URI was refused. The message never quotes the URI (it may hold a password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// Not one of the supported schemes.
    #[error("unknown store URI; use sqlite:PATH, file:PATH, memory:, postgres://… or mysql://…")]
    UnknownScheme,
    /// `sqlite:` or `file:` without a path.
    #[error("the store URI has no path")]
    NoPath,
    /// A control character (NUL included) in the URI.
    #[error("the store URI contains a control character")]
    ControlCharacter,
}

impl StoreUri {
    /// Parses a store URI.
    ///
    /// # Errors
    /// [`UriError`] for an unknown scheme, a missing path or a control character.
    pub fn parse(text: &str) -> Result<StoreUri, UriError> {
        if text.chars().any(char::is_control) {
            return Err(UriError::ControlCharacter);
        }
        let path = |p: &str| {
            if p.is_empty() {
                Err(UriError::NoPath)
            } else {
                Ok(PathBuf::from(p))
            }
        };
        if let Some(p) = text.strip_prefix("sqlite:") {
            return path(p).map(StoreUri::Sqlite);
        }
        if let Some(p) = text.strip_prefix("file:") {
            return path(p).map(StoreUri::File);
        }
        if text == "memory:" {
            return Ok(StoreUri::Memory);
        }
        if ["postgres://", "postgresql://", "mysql://"]
            .iter()
            .any(|s| text.starts_with(s))
        {
            return Ok(StoreUri::Server(text.to_owned()));
        }
        Err(UriError::UnknownScheme)
    }

    /// The store's file, for `sqlite:` and `file:` stores.
    pub fn path(&self) -> Option<&Path> {
        match self {
            StoreUri::Sqlite(p) | StoreUri::File(p) => Some(p),
            StoreUri::Memory | StoreUri::Server(_) => None,
        }
    }
}

/// `scheme://user@host/db` of a server URI: no password, no query.
fn redacted_server(uri: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return f.write_str("<server URI>");
    };
    // The user information ends at the last `@` of the whole URI: a password may hold `@`,
    // `/`, `?` or `#` unencoded. (A query holding `@` then hides the host: never a secret.)
    let (user, host) = match rest.rsplit_once('@') {
        Some((userinfo, host)) => (userinfo.split(':').next().unwrap_or_default(), host),
        None => ("", rest),
    };
    let host = host.split(['?', '#']).next().unwrap_or_default();
    if user.is_empty() {
        write!(f, "{scheme}://{host}")
    } else {
        write!(f, "{scheme}://{user}@{host}")
    }
}

impl fmt::Display for StoreUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUri::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            StoreUri::File(p) => write!(f, "file:{}", p.display()),
            StoreUri::Memory => f.write_str("memory:"),
            StoreUri::Server(uri) => redacted_server(uri, f),
        }
    }
}

impl fmt::Debug for StoreUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreUri({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str) -> String {
        StoreUri::parse(text).unwrap().to_string()
    }

    #[test]
    fn parses_the_four_kinds() {
        assert_eq!(
            StoreUri::parse("sqlite:/tmp/t.db").unwrap(),
            StoreUri::Sqlite("/tmp/t.db".into())
        );
        assert_eq!(
            StoreUri::parse("file:t").unwrap(),
            StoreUri::File("t".into())
        );
        assert!(matches!(
            StoreUri::parse("mysql://u@h/d").unwrap(),
            StoreUri::Server(_)
        ));
        assert_eq!(StoreUri::parse("sqlite:"), Err(UriError::NoPath));
        assert_eq!(StoreUri::parse("/tmp/t.db"), Err(UriError::UnknownScheme));
        assert_eq!(
            StoreUri::parse("sqlite:/t\n.db"),
            Err(UriError::ControlCharacter)
        );
    }

    #[test]
    fn display_never_shows_the_password() {
        assert_eq!(
            shown("postgres://ann:s3cret@db.example:5432/tv?sslmode=require"),
            "postgres://ann@db.example:5432/tv"
        );
        // The review's finding: a raw `@` in the password.
        let text = shown("postgres://ann:pa@ss-Wd9@db.example/tv");
        assert_eq!(text, "postgres://ann@db.example/tv");
        for uri in [
            "mysql://ann:pa/ss@w0rd-X@db/tv",
            "mysql://ann:pa?ss@w0rd-X@db/tv",
            "mysql://ann:pa#ss@w0rd-X@db/tv",
            "postgres://ann:pa:ss@w0rd-X@db/tv?sslrootcert=/a@b",
        ] {
            let text = shown(uri);
            assert!(
                !text.contains("ss@w0rd") && !text.contains("pa"),
                "{uri} -> {text}"
            );
        }
        assert_eq!(shown("mysql://db.example/tv"), "mysql://db.example/tv");
    }
}
