//! Refresh without races: one process spends a refresh token, the others use its result.

use std::fmt;
use std::time::Duration;

use super::EncryptedStore;
use crate::backend::Backend;
use crate::store::{Error, TokenStore};
use crate::token::OAuthToken;

/// How long [`EncryptedStore::refresh_with`] waits for another process's refresh of the same
/// record before giving up with [`Error::Backend`] of kind `Busy`. Longer than an OAuth
/// server's slowest reasonable answer; a dead holder's lock is released by the OS at once.
pub const REFRESH_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// The default margin: a token expiring within it is refreshed now.
pub const DEFAULT_REFRESH_SKEW: Duration = Duration::from_secs(60);

/// Why [`EncryptedStore::refresh_with`] failed.
///
/// Its message says which side failed; the failure itself is its
/// [`source`](std::error::Error::source) (print the chain to show both). It is a
/// [`std::error::Error`] when the refresher's error is one.
#[derive(Debug)]
pub enum RefreshError<E> {
    /// The store failed (or no record matched: [`Error::NoMatch`], [`Error::NotFound`]).
    Store(Error),
    /// The refresher failed; the stored record is untouched.
    Refresher(E),
}

impl<E> fmt::Display for RefreshError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RefreshError::Store(_) => "the token store failed during the refresh",
            RefreshError::Refresher(_) => "refresh failed; the stored token is unchanged",
        })
    }
}

impl<E: std::error::Error + 'static> std::error::Error for RefreshError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(match self {
            RefreshError::Store(e) => e,
            RefreshError::Refresher(e) => e,
        })
    }
}

impl<E> From<Error> for RefreshError<E> {
    fn from(e: Error) -> Self {
        RefreshError::Store(e)
    }
}

/// Whether `token` must be refreshed: expired, expiring within `skew`, or of unknown expiry.
/// A skew past what the clock can represent makes every token due.
pub fn needs_refresh(token: &OAuthToken, skew: Duration) -> bool {
    token.access_token().is_none() || token.expires_within(skew)
}

impl<B: Backend> EncryptedStore<B> {
    /// The record `query` names (by `id`, else by the matching rules), with an access token
    /// valid for at least `skew`: if the stored one is not, `refresher` is called with the
    /// stored record and what it returns is saved (merged: fields it leaves out, such as a
    /// refresh token the server did not rotate, keep their stored values) and returned.
    ///
    /// Race-free across threads and processes: the check, the refresher call and the save
    /// happen under the backend's lock for that record ([`Backend::lock`]), and the record is
    /// re-read inside the lock, so when N callers find the same expired token, one calls the
    /// OAuth server and the others get its result. A caller whose lock holder died proceeds
    /// at once (the OS releases the lock); one that waits longer than
    /// [`REFRESH_LOCK_TIMEOUT`] gets a `Busy` error.
    ///
    /// # Errors
    /// [`RefreshError::Refresher`] with the refresher's error (nothing saved);
    /// [`RefreshError::Store`] with [`Error::NoMatch`] or [`Error::NotFound`] when no record
    /// matches, a `Busy` or
    /// `NotSupported` backend error for the lock, or any store error of the save.
    pub fn refresh_with<E>(
        &self,
        query: &OAuthToken,
        skew: Duration,
        refresher: impl FnOnce(&OAuthToken) -> Result<OAuthToken, E>,
    ) -> Result<OAuthToken, RefreshError<E>> {
        let id = match query.id() {
            Some(id) => id.to_owned(),
            None => self
                .find_token(query)?
                .and_then(|t| t.id().map(str::to_owned))
                .ok_or(Error::NoMatch)?,
        };
        let stored = |store: &Self| {
            store
                .find_token_by_id(&id)?
                .ok_or_else(|| Error::NotFound { id: id.clone() })
        };
        // The common case needs no lock: the token is still good.
        let current = stored(self)?;
        if !needs_refresh(&current, skew) {
            return Ok(current);
        }
        let _lock = self
            .backend
            .lock(&format!("refresh {id}"), REFRESH_LOCK_TIMEOUT)
            .map_err(Error::from)?;
        // Another caller may have refreshed it while we waited.
        let current = stored(self)?;
        if !needs_refresh(&current, skew) {
            return Ok(current);
        }
        let mut fresh = refresher(&current).map_err(RefreshError::Refresher)?;
        fresh.set_id(Some(id));
        self.save_token(&mut fresh)?;
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn the_cause_is_the_source_and_not_repeated_in_the_message() {
        let store: RefreshError<std::io::Error> = Error::NotFound { id: "7".into() }.into();
        assert_eq!(
            store.to_string(),
            "the token store failed during the refresh"
        );
        assert_eq!(
            store.source().unwrap().to_string(),
            Error::NotFound { id: "7".into() }.to_string()
        );

        let refresher = RefreshError::Refresher(std::io::Error::other("invalid_grant"));
        assert!(!refresher.to_string().contains("invalid_grant"));
        let source = refresher.source().unwrap();
        assert_eq!(source.to_string(), "invalid_grant");
        assert!(
            source.is::<std::io::Error>(),
            "the refresher's own error, to downcast"
        );
    }
}
