//! A valid access token in one call (feature `oauth`): the refresh grant of
//! [`crate::oauth`] under the store's cross-process refresh lock.

use std::time::Duration;

use super::{DEFAULT_REFRESH_SKEW, EncryptedStore, RefreshError, needs_refresh};
use crate::backend::Backend;
use crate::oauth::{self, OAuthError};
use crate::store::TokenStore;
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

/// What [`EncryptedStore::find_fresh`] looks for.
#[derive(Clone, Copy, Debug)]
pub enum FindBy<'a> {
    /// The record with this id.
    Id(&'a str),
    /// The record this query matches (the Zoho rules); its refresh token and client
    /// credentials also fill in what the record lacks for a refresh.
    Query(&'a OAuthToken),
}

/// A record found by [`EncryptedStore::find_fresh`].
#[derive(Debug)]
pub struct Fresh {
    /// The record (for a query, merged into the query as `find_token` merges).
    pub token: OAuthToken,
    /// Whether the store refreshed the record's access token (here or in another caller just
    /// before): its access token, expiry and refresh token then replace the caller's own.
    pub refreshed: bool,
}

impl<B: Backend> EncryptedStore<B> {
    /// For token-store adapters (the Zoho SDK bindings, whose SDK refreshes by itself what
    /// its store hands back expired): the record `find_by` names, with an access token valid
    /// for `options.skew`, refreshed through [`refresh_with`](Self::refresh_with) — once for
    /// every caller and process — when the stored one is not and a refresh token is at hand.
    /// The decision is made on the stored record, not on the query merged into it.
    ///
    /// The token endpoint: `options.token_url`, else the Zoho accounts server of the record's
    /// `api_domain`, else `fallback_token_url` (the SDK's own configured endpoint, where the
    /// SDK would have sent the same refresh token).
    ///
    /// # Errors
    /// As [`access_token`](Self::access_token); `Ok(None)` when no record is found.
    pub fn find_fresh(
        &self,
        find_by: FindBy<'_>,
        options: &AccessOptions,
        fallback_token_url: Option<&str>,
    ) -> Result<Option<Fresh>, RefreshError<OAuthError>> {
        let empty = OAuthToken::new();
        let (found, query) = match find_by {
            FindBy::Id(id) => (self.find_token_by_id(id)?, &empty),
            FindBy::Query(query) => (self.find_token(query)?, query),
        };
        let Some(found) = found else {
            return Ok(None);
        };
        let unchanged = |token| {
            Ok(Some(Fresh {
                token,
                refreshed: false,
            }))
        };
        let Some(id) = found.id().map(str::to_owned) else {
            return unchanged(found);
        };
        // The merge hides the stored access token, expiry or domain only where the query has
        // its own; only then is the stored record read again (the SDKs' queries have none).
        let masked = query.access_token().is_some()
            || query.expiry_time().is_some()
            || query.api_domain().is_some();
        let reread;
        let stored = if masked {
            match self.find_token_by_id(&id)? {
                Some(stored) => {
                    reread = stored;
                    &reread
                }
                None => return Ok(None), // deleted meanwhile
            }
        } else {
            &found
        };
        let can_refresh = stored.refresh_token().is_some() || query.refresh_token().is_some();
        if !can_refresh || !needs_refresh(stored, options.skew) {
            return unchanged(found);
        }
        let url = options
            .token_url
            .clone()
            .or_else(|| stored.api_domain().and_then(oauth::zoho_token_url))
            .or_else(|| fallback_token_url.map(str::to_owned));
        if let Some(url) = &url {
            oauth::check_token_url(url).map_err(RefreshError::Refresher)?;
        }
        let token = self.refresh_with(&OAuthToken::new().with_id(id), options.skew, |current| {
            // The stored values win; the query fills only what the record lacks, as the SDK
            // would refresh with its own token's values.
            let mut grant = current.clone();
            grant.fill_missing_from(&refresh_credentials(query));
            oauth::refresh(&grant, url.as_deref(), options.timeout)
        })?;
        Ok(Some(Fresh {
            token,
            refreshed: true,
        }))
    }
}

/// The refresh token and client credentials of `query`, and nothing else of it.
fn refresh_credentials(query: &OAuthToken) -> OAuthToken {
    let mut credentials = OAuthToken::new();
    credentials.set_refresh_token(query.refresh_token().map(|t| t.expose_secret().to_owned()));
    credentials.set_client_id(query.client_id().map(str::to_owned));
    credentials.set_client_secret(query.client_secret().map(|s| s.expose_secret().to_owned()));
    credentials
}
