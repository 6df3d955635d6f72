//! [`TokenvaultStorage`]: yup-oauth2's [`TokenStorage`] kept in an encrypted store, refreshing
//! under the store's lock (feature `yup-oauth2`).
//!
//! yup-oauth2 (the OAuth client of the Google API crates) asks its storage for a token, and
//! when the token it gets is expired it spends the refresh token itself — with no lock, so N
//! concurrent `token()` calls on one expired token send N refresh requests, and so do N
//! processes sharing a token file. Against a server that rotates refresh tokens (single use),
//! all but one fail with `invalid_grant`; yup-oauth2 then falls back to its full flow (a
//! browser prompt, a device code), and a server that detects reuse may revoke the grant.
//!
//! `TokenvaultStorage` keeps the tokens in an [`EncryptedStore`](crate::EncryptedStore) and
//! refreshes them **inside [`get`](TokenStorage::get)**, through
//! [`EncryptedStore::refresh_with`](crate::EncryptedStore::refresh_with) and the RFC 6749 §6
//! grant of [`crate::oauth::refresh`]: under the store's cross-process lock, re-reading the
//! record inside it, so N callers in N processes make one request and all get its result.
//! yup-oauth2 is only ever handed a token it considers valid, so it never refreshes by
//! itself.
//!
//! # The record of a token
//! One store record per (key, set of scopes), as yup-oauth2 itself keys its tokens by scope
//! set (a token granted for scopes A may lack scopes B):
//!
//! | record field | value |
//! |---|---|
//! | `user_name` | the key, then the scopes sorted and deduplicated, each after one space: `"ann@example.com https://www.googleapis.com/auth/drive openid"` ([`user_name_for`](TokenvaultStorage::user_name_for)) |
//! | `client_id`, `client_secret` | from the [`ApplicationSecret`] given at construction |
//! | `access_token`, `refresh_token` | yup-oauth2's `TokenInfo` fields |
//! | `expiry_time` | `TokenInfo::expires_at` in epoch milliseconds |
//!
//! The key (e.g. the account's e-mail address, or the application's name when it has one
//! account) separates grants of different users or clients in one store; it has no whitespace,
//! so the record name is unambiguous (OAuth scopes have none either, RFC 6749 §3.3). The user
//! name is the store's indexed lookup field: `get` costs one indexed lookup and one decryption.
//! Because client id and secret are in the record, the record also works with the
//! `tokenvault access-token` command and any other tokenvault front end.
//!
//! Not kept: `TokenInfo::id_token` (the record has no such field: `get` returns `None` for
//! it). A `TokenInfo` without `expires_at` keeps the stored expiry; tokenvault counts a record
//! without expiry as expired. Unlike yup-oauth2's own storages, a request for a subset of a
//! stored token's scopes does not reuse that token: it is another record.
//!
//! # When `get` refreshes, and when it gives up
//! A stored token expiring within the skew (default [`DEFAULT_SKEW`], at least [`MIN_SKEW`],
//! above yup-oauth2's own one-minute margin) is refreshed at the token endpoint: the
//! `ApplicationSecret`'s `token_uri`, or one set by
//! [`with_token_url`](TokenvaultStorage::with_token_url) (`https://`, or `http://` to a
//! loopback host only: [`crate::oauth::check_token_url`]).
//! If the refresh fails, or the store does, `get` logs a warning and returns `None`, so
//! yup-oauth2 runs its flow to get a new grant; it is never handed the refresh token to retry
//! outside the lock. yup-oauth2's `force_refreshed_token` bypasses storage and refreshes by
//! itself (without the lock); its result still comes back through
//! [`set`](TokenStorage::set).
//!
//! The lock spans processes for the file, SQLite, PostgreSQL and MySQL backends; the memory
//! backend's lock spans the threads and tasks of one process.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::yup_oauth2::ApplicationSecret;
use ::yup_oauth2::storage::{TokenInfo, TokenStorage, TokenStorageError};
use time::OffsetDateTime;

use super::tokio::AsyncStore;
use crate::backend::Backend;
use crate::oauth::{self, OAuthError};
use crate::store::Error;
use crate::token::{ClientSecret, OAuthToken, TokenField};
use crate::vault::RefreshError;

/// yup-oauth2 counts a token as expired this long before its expiry (`TokenInfo::is_expired`).
pub const YUP_EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// The smallest skew [`TokenvaultStorage`] uses: yup-oauth2's margin plus ten seconds, so a
/// token `get` returns as valid is still valid when yup-oauth2 looks at it.
pub const MIN_SKEW: Duration = Duration::from_secs(70);

/// The default skew: a token expiring within two minutes is refreshed by `get`.
pub const DEFAULT_SKEW: Duration = Duration::from_secs(120);

/// The default timeout of a refresh request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a [`TokenvaultStorage`] cannot be made as asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The key is empty, too long, or has whitespace or control characters (why).
    #[error("invalid storage key: {0}")]
    Key(&'static str),
    /// The application secret lacks a value the refresh grant needs (its name).
    #[error("the application secret has no {0}")]
    Incomplete(&'static str),
    /// The token URL is refused.
    #[error(transparent)]
    TokenUrl(#[from] OAuthError),
}

/// The longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// What a refresh needs besides the record: the client and where to send the grant.
#[derive(Clone)]
struct Client {
    id: String,
    secret: ClientSecret,
    token_url: String,
    timeout: Duration,
}

impl Client {
    /// The refresher of [`AsyncStore::refresh_with`]: the grant with this client's id and
    /// secret (the configured ones win over what the record holds).
    fn refresh(&self, stored: &OAuthToken) -> Result<OAuthToken, OAuthError> {
        let mut request = stored.clone();
        request.set_client_id(Some(self.id.clone()));
        request.set_client_secret(Some(self.secret.expose_secret().to_owned()));
        oauth::refresh(&request, Some(&self.token_url), self.timeout)
    }
}

/// yup-oauth2's [`TokenStorage`] in a tokenvault store: tokens sealed at rest, and refreshed
/// by `get` under the store's cross-process lock (see the [module docs](self) for the record
/// layout and the refresh rules).
///
/// Give it to an authenticator with `with_storage(Box::new(storage))`, e.g.
/// `InstalledFlowAuthenticator::builder(secret, method).with_storage(Box::new(storage))`.
///
/// ```
/// use tokenvault::backend::MemoryBackend;
/// use tokenvault::integrations::tokio::AsyncStore;
/// use tokenvault::integrations::yup_oauth2::TokenvaultStorage;
/// use tokenvault::{Credential, RawKey};
/// use yup_oauth2::ApplicationSecret;
/// use yup_oauth2::storage::{TokenInfo, TokenStorage};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let key = Credential::raw_key(RawKey::generate()?);
/// let store = AsyncStore::create(MemoryBackend::new(), key).await?;
/// let secret = ApplicationSecret {
///     client_id: "client-id.apps.googleusercontent.com".into(),
///     client_secret: "client-secret".into(),
///     token_uri: "https://oauth2.googleapis.com/token".into(),
///     ..ApplicationSecret::default()
/// };
/// let storage = TokenvaultStorage::new(store.clone(), "ann@example.com", &secret)?;
///
/// let scopes = ["openid", "https://www.googleapis.com/auth/drive"];
/// let token = TokenInfo {
///     access_token: Some("ya29.access".into()),
///     refresh_token: Some("1//refresh".into()),
///     expires_at: Some(time::OffsetDateTime::now_utc() + time::Duration::hours(1)),
///     id_token: None,
/// };
/// storage.set(&scopes, token).await?; // what yup-oauth2 does after its flow
///
/// // One record, named by the key and the sorted scopes, sealed in the store.
/// let [record] = &store.get_tokens().await?[..] else { panic!("one record") };
/// assert_eq!(
///     record.user_name(),
///     Some("ann@example.com https://www.googleapis.com/auth/drive openid")
/// );
/// // Valid for more than the skew: returned as it is, no request.
/// let found = storage.get(&scopes).await.expect("stored");
/// assert_eq!(found.access_token.as_deref(), Some("ya29.access"));
/// # Ok(())
/// # }
/// ```
pub struct TokenvaultStorage<B: Backend> {
    store: AsyncStore<B>,
    key: String,
    client: Arc<Client>,
    skew: Duration,
}

impl<B: Backend> fmt::Debug for TokenvaultStorage<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenvaultStorage")
            .field("store", &self.store)
            .field("key", &self.key)
            .field("client_id", &self.client.id)
            .field("token_url", &self.client.token_url)
            .field("skew", &self.skew)
            .finish_non_exhaustive()
    }
}

fn check_key(key: &str) -> Result<(), ConfigError> {
    if key.is_empty() {
        Err(ConfigError::Key("it is empty"))
    } else if key.len() > MAX_KEY_LEN {
        Err(ConfigError::Key("it is over MAX_KEY_LEN (1024) bytes"))
    } else if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(ConfigError::Key(
            "it has whitespace or control characters (the record name separates it from the scopes by spaces)",
        ))
    } else {
        Ok(())
    }
}

impl<B: Backend + 'static> TokenvaultStorage<B> {
    /// A storage for `key`'s tokens in `store`, refreshing with `secret`'s client id and
    /// secret at its `token_uri`.
    ///
    /// # Errors
    /// [`ConfigError::Key`] for an empty or over-long key or one with whitespace or control
    /// characters; [`ConfigError::Incomplete`] if `secret` has no client id or no client
    /// secret; [`ConfigError::TokenUrl`] if its `token_uri` is not `https://` (or `http://` to
    /// a loopback host).
    pub fn new(
        store: impl Into<AsyncStore<B>>,
        key: impl Into<String>,
        secret: &ApplicationSecret,
    ) -> Result<Self, ConfigError> {
        let key = key.into();
        check_key(&key)?;
        if secret.client_id.is_empty() {
            return Err(ConfigError::Incomplete("client_id"));
        }
        if secret.client_secret.is_empty() {
            return Err(ConfigError::Incomplete("client_secret"));
        }
        oauth::check_token_url(&secret.token_uri)?;
        Ok(Self {
            store: store.into(),
            key,
            client: Arc::new(Client {
                id: secret.client_id.clone(),
                secret: ClientSecret::new(secret.client_secret.clone()),
                token_url: secret.token_uri.clone(),
                timeout: DEFAULT_TIMEOUT,
            }),
            skew: DEFAULT_SKEW,
        })
    }

    /// Refreshes at `url` instead of the application secret's `token_uri`.
    ///
    /// # Errors
    /// [`ConfigError::TokenUrl`] if `url` is not `https://` (or `http://` to a loopback host),
    /// or carries a user name or password.
    pub fn with_token_url(mut self, url: &str) -> Result<Self, ConfigError> {
        oauth::check_token_url(url)?;
        Arc::make_mut(&mut self.client).token_url = url.to_owned();
        Ok(self)
    }

    /// Refreshes a token expiring within `skew` (default [`DEFAULT_SKEW`]); a skew below
    /// [`MIN_SKEW`] is raised to it.
    pub fn with_skew(mut self, skew: Duration) -> Self {
        self.skew = skew.max(MIN_SKEW);
        self
    }

    /// Gives up on a refresh request after `timeout` (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        Arc::make_mut(&mut self.client).timeout = timeout;
        self
    }

    /// The store the tokens are kept in.
    pub fn store(&self) -> &AsyncStore<B> {
        &self.store
    }

    /// The `user_name` of the record for `scopes`: the key, then the scopes (split at
    /// whitespace, sorted, deduplicated), each after one space.
    pub fn user_name_for(&self, scopes: &[&str]) -> String {
        let mut words: Vec<&str> = scopes.iter().flat_map(|s| s.split_whitespace()).collect();
        words.sort_unstable();
        words.dedup();
        let mut name = self.key.clone();
        for word in words {
            name.push(' ');
            name.push_str(word);
        }
        name
    }

    /// The record `set` saves for `scopes`.
    fn record(&self, scopes: &[&str], token: TokenInfo) -> OAuthToken {
        let mut record = OAuthToken::new()
            .with_user_name(self.user_name_for(scopes))
            .with_client_id(self.client.id.clone())
            .with_client_secret(self.client.secret.expose_secret().to_owned());
        // Moved, not copied: the values end up only in the record's zeroizing fields.
        record.set_access_token(token.access_token);
        record.set_refresh_token(token.refresh_token);
        record.set_expiry_time(token.expires_at.map(epoch_millis));
        record
    }
}

/// `at` in epoch milliseconds; a time before 1970 is 0 (long expired).
fn epoch_millis(at: OffsetDateTime) -> u64 {
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// `record` as yup-oauth2's `TokenInfo`. A token that yup-oauth2 would count as expired
/// (the endpoint gave it less than yup-oauth2's margin) is returned without its refresh token,
/// so that yup-oauth2 runs its flow rather than spend the refresh token outside the lock.
fn token_info(record: &OAuthToken) -> TokenInfo {
    let text = |field| {
        record
            .expose_field(field)
            .map(|value| String::clone(&value))
    };
    // Past what `time` represents (year 9999): no expiry, which yup-oauth2 takes as never.
    let expires_at = record
        .expiry_time()
        .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok());
    let expired_for_yup = record.expires_within(YUP_EXPIRY_MARGIN + Duration::from_secs(5));
    TokenInfo {
        access_token: text(TokenField::AccessToken),
        refresh_token: if expired_for_yup {
            None
        } else {
            text(TokenField::RefreshToken)
        },
        expires_at,
        id_token: None,
    }
}

#[::async_trait::async_trait]
impl<B: Backend + 'static> TokenStorage for TokenvaultStorage<B> {
    /// Saves yup-oauth2's token for `scopes` in the record [`user_name_for`](Self::user_name_for)
    /// names (merging: a missing refresh token or expiry keeps the stored one).
    async fn set(&self, scopes: &[&str], token: TokenInfo) -> Result<(), TokenStorageError> {
        let mut record = self.record(scopes, token);
        self.store
            .save_token(&mut record)
            .await
            .map_err(|e| TokenStorageError::Other(Cow::Owned(e.to_string())))
    }

    /// The token for `scopes`, refreshed first under the store's lock if it expires within
    /// the skew; `None` if there is none, or it cannot be refreshed (then yup-oauth2 runs its
    /// flow).
    async fn get(&self, scopes: &[&str]) -> Option<TokenInfo> {
        let name = self.user_name_for(scopes);
        let query = OAuthToken::new().with_user_name(name.clone());
        let client = Arc::clone(&self.client);
        let refreshed = self
            .store
            .refresh_with(&query, self.skew, move |stored| client.refresh(stored))
            .await;
        match refreshed {
            Ok(token) => Some(token_info(&token)),
            Err(RefreshError::Store(Error::NoMatch)) => None,
            Err(RefreshError::Refresher(OAuthError::Incomplete(what))) => {
                // A flow that stores no refresh token (service accounts): yup-oauth2 runs it.
                log::debug!("token {name:?} is expired and has no {what}");
                None
            }
            Err(RefreshError::Refresher(e)) => {
                log::warn!("refreshing token {name:?} failed: {e}");
                None
            }
            Err(RefreshError::Store(e)) => {
                log::warn!("reading token {name:?} from the store failed: {e}");
                None
            }
        }
    }
}
