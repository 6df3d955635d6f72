//! A valid access token in one call (feature `oauth`): the refresh grant of
//! [`crate::oauth`] under the store's cross-process refresh lock.

use std::time::Duration;

use super::{DEFAULT_REFRESH_SKEW, EncryptedStore, RefreshError};
use crate::backend::Backend;
use crate::oauth::{self, OAuthError};
use crate::token::{AccessToken, OAuthToken};

/// How [`EncryptedStore::access_token`] refreshes.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AccessOptions {
    /// A token expiring within this margin is refreshed now (default 60 s).
    pub skew: Duration,
    /// The token endpoint; `None`: the Zoho accounts server of the record's API domain.
    pub token_url: Option<String>,
    /// The whole HTTP exchange's time limit (default 30 s).
    pub timeout: Duration,
}

impl Default for AccessOptions {
    fn default() -> Self {
        Self {
            skew: DEFAULT_REFRESH_SKEW,
            token_url: None,
            timeout: Duration::from_secs(30),
        }
    }
}

impl AccessOptions {
    /// Options with this token endpoint.
    pub fn with_token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = Some(url.into());
        self
    }

    /// Options with this skew.
    pub fn with_skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// Options with this HTTP time limit.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl<B: Backend> EncryptedStore<B> {
    /// An access token valid for at least `options.skew` for the record `query` names (by `id`,
    /// else by the matching rules, e.g. a user name), refreshed through the OAuth refresh grant
    /// when needed — once for all concurrent callers, threads and processes alike
    /// ([`refresh_with`](Self::refresh_with)); a rotated refresh token is stored.
    ///
    /// # Errors
    /// [`RefreshError::Refresher`] with the [`OAuthError`] (bad token URL, unreachable or
    /// refusing endpoint, malformed answer; nothing saved); [`RefreshError::Store`] with
    /// [`crate::Error::NoMatch`] / [`crate::Error::NotFound`] when no record matches, and the
    /// store's errors.
    pub fn access_token(
        &self,
        query: &OAuthToken,
        options: &AccessOptions,
    ) -> Result<AccessToken, RefreshError<OAuthError>> {
        if let Some(url) = &options.token_url {
            oauth::check_token_url(url).map_err(RefreshError::Refresher)?;
        }
        let token = self.refresh_with(query, options.skew, |stored| {
            oauth::refresh(stored, options.token_url.as_deref(), options.timeout)
        })?;
        token
            .access_token()
            .cloned()
            .ok_or(RefreshError::Refresher(OAuthError::Malformed(
                "no access_token",
            )))
    }
}
