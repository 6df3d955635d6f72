//! [`AsyncStore`]: an [`EncryptedStore`]'s operations as futures, for tokio applications
//! (feature `async`).
//!
//! Every store operation blocks: it seals or opens records (AES-256-GCM), talks to a file or a
//! database, may wait for another process's lock, and a refresh waits for an OAuth server.
//! Called from an async task, that would stall the executor thread (on a current-thread
//! runtime, every task). `AsyncStore` runs each operation with
//! [`spawn_blocking`](::tokio::task::spawn_blocking) on tokio's blocking pool and awaits it;
//! the store itself is shared behind an [`Arc`], so the façade is cheap to clone into tasks.
//!
//! # Design
//! - **Same semantics, same errors.** Each method is its blocking namesake
//!   ([`TokenStore`], [`EncryptedStore::save`], [`EncryptedStore::refresh_with`], and with
//!   feature `oauth` `EncryptedStore::access_token`) run elsewhere; arguments are cloned into
//!   the blocking task (secret fields stay zeroizing) and `save_token` writes the stored
//!   record back into the caller's token as the blocking one does.
//! - **A panic is resumed, not turned into an error.** If the blocking work panics (a bug,
//!   or a refresher that panics), the panic is resumed in the awaiting task with
//!   [`std::panic::resume_unwind`], exactly where the blocking call would have panicked: a
//!   panic is not a condition a caller can act on, and an `Error` variant for it would hide
//!   bugs behind a retry.
//! - **Runtime shutdown is an error.** tokio may refuse to start a blocking task when the
//!   runtime is shutting down; the operation then did not run at all, and the method returns
//!   [`Error::Backend`] of kind [`Other`](BackendErrorKind::Other) saying so.
//! - **Dropping a future does not cancel the operation.** A blocking task cannot be stopped
//!   once started: a save whose future is dropped (e.g. by `tokio::time::timeout`) still
//!   completes, and a refresh still spends the refresh token and saves its result. Only the
//!   outcome is lost, never consistency: the store's own atomicity holds as always.
//!
//! # Panics
//! Every async method must be polled inside a tokio runtime (any flavour: current-thread
//! runtimes have a blocking pool too); outside one, `spawn_blocking` panics.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::Backend;
use crate::keys::Credential;
use crate::store::{BackendError, BackendErrorKind, Error, Result, TokenStore};
use crate::token::OAuthToken;
use crate::vault::{EncryptedStore, RefreshError, Saved, StoreOptions};
#[cfg(feature = "oauth")]
use crate::{oauth::OAuthError, token::AccessToken, vault::AccessOptions};

/// An [`EncryptedStore`] for async code: the six [`TokenStore`] operations, `save` and
/// `refresh_with` as futures, each run on tokio's blocking pool (see the [module
/// docs](self)).
///
/// Clones share one store.
///
/// ```
/// use tokenvault::backend::MemoryBackend;
/// use tokenvault::integrations::tokio::AsyncStore;
/// use tokenvault::{Credential, OAuthToken, RawKey};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tokenvault::Result<()> {
/// let key = Credential::raw_key(RawKey::generate()?);
/// let store = AsyncStore::create(MemoryBackend::new(), key).await?;
///
/// let mut token = OAuthToken::new()
///     .with_user_name("ann@example.com")
///     .with_refresh_token("1000.refresh");
/// store.save_token(&mut token).await?; // sets token.id
///
/// let query = OAuthToken::new().with_user_name("ann@example.com");
/// let found = store.find_token(&query).await?.expect("saved above");
/// assert_eq!(found.id(), token.id());
/// assert_eq!(store.get_tokens().await?.len(), 1);
/// # Ok(())
/// # }
/// ```
pub struct AsyncStore<B: Backend> {
    store: Arc<EncryptedStore<B>>,
}

impl<B: Backend> Clone for AsyncStore<B> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
        }
    }
}

impl<B: Backend> fmt::Debug for AsyncStore<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AsyncStore").field(&self.store).finish()
    }
}

impl<B: Backend> From<EncryptedStore<B>> for AsyncStore<B> {
    fn from(store: EncryptedStore<B>) -> Self {
        Self::new(store)
    }
}

impl<B: Backend> From<Arc<EncryptedStore<B>>> for AsyncStore<B> {
    fn from(store: Arc<EncryptedStore<B>>) -> Self {
        Self { store }
    }
}

/// The error of an operation that tokio never started (the runtime is shutting down).
fn not_started() -> Error {
    Error::Backend(BackendError::new(
        BackendErrorKind::Other,
        "the tokio runtime is shutting down and did not run the operation; nothing was done",
    ))
}

/// Runs `work` on tokio's blocking pool and awaits it; a panic in it is resumed here.
async fn blocking<T, F>(work: F) -> Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match ::tokio::task::spawn_blocking(work).await {
        Ok(value) => Ok(value),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Cancelled: only possible before the task started (the handle is never aborted).
        Err(_) => Err(not_started()),
    }
}

impl<B: Backend> AsyncStore<B> {
    /// Wraps an unlocked store.
    pub fn new(store: EncryptedStore<B>) -> Self {
        Self {
            store: Arc::new(store),
        }
    }

    /// The blocking store this façade shares, for what it does not wrap (maintenance such as
    /// `rotate` or `verify`): call those through [`run_blocking`](Self::run_blocking) from
    /// async code.
    pub fn store(&self) -> &Arc<EncryptedStore<B>> {
        &self.store
    }
}

impl<B: Backend + 'static> AsyncStore<B> {
    /// [`EncryptedStore::create`] on the blocking pool: creates a new store in `backend`,
    /// unlocked by `credential`.
    ///
    /// # Errors
    /// As [`EncryptedStore::create`]; [`Error::Backend`] of kind `Other` if the runtime is
    /// shutting down (nothing was created).
    pub async fn create(backend: B, credential: Credential) -> Result<Self> {
        Self::create_with(backend, credential, StoreOptions::default()).await
    }

    /// [`EncryptedStore::create_with`] on the blocking pool (Argon2id runs there).
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub async fn create_with(
        backend: B,
        credential: Credential,
        options: StoreOptions,
    ) -> Result<Self> {
        blocking(move || EncryptedStore::create_with(backend, &credential, options))
            .await?
            .map(Self::new)
    }

    /// [`EncryptedStore::open`] on the blocking pool: a passphrase's Argon2id (about a second
    /// at the default cost) or a keychain prompt does not stall the executor.
    ///
    /// # Errors
    /// As [`EncryptedStore::open`]; [`Error::Backend`] of kind `Other` if the runtime is
    /// shutting down.
    pub async fn open(backend: B, credential: Credential) -> Result<Self> {
        blocking(move || EncryptedStore::open(backend, &credential))
            .await?
            .map(Self::new)
    }

    /// Runs `work` with the blocking store on tokio's blocking pool and returns what it
    /// returned: the way to call what this façade does not wrap (e.g. `verify`, `rotate`).
    ///
    /// # Errors
    /// [`Error::Backend`] of kind `Other` only if the runtime is shutting down and `work` never
    /// ran; `work`'s own errors come back inside the `Ok`.
    pub async fn run_blocking<T, F>(&self, work: F) -> Result<T>
    where
        F: FnOnce(&EncryptedStore<B>) -> T + Send + 'static,
        T: Send + 'static,
    {
        let store = Arc::clone(&self.store);
        blocking(move || work(&store)).await
    }

    /// [`TokenStore::find_token`]: the record the matching rules select for `query`, merged
    /// into the query.
    ///
    /// # Errors
    /// As [`TokenStore::find_token`]; [`Error::Backend`] of kind `Other` if the runtime is
    /// shutting down.
    pub async fn find_token(&self, query: &OAuthToken) -> Result<Option<OAuthToken>> {
        let query = query.clone();
        self.run_blocking(move |store| store.find_token(&query))
            .await?
    }

    /// [`TokenStore::save_token`]: inserts or updates (merging) the record; afterwards `token`
    /// holds the record as stored, id included. `token` is left as it was on error.
    ///
    /// # Errors
    /// As [`TokenStore::save_token`]; [`Error::Backend`] of kind `Other` if the runtime is
    /// shutting down (nothing was written).
    pub async fn save_token(&self, token: &mut OAuthToken) -> Result<()> {
        self.save(token).await.map(drop)
    }

    /// [`EncryptedStore::save`]: as [`save_token`](Self::save_token), also telling whether it
    /// inserted or updated.
    ///
    /// # Errors
    /// As [`save_token`](Self::save_token).
    pub async fn save(&self, token: &mut OAuthToken) -> Result<Saved> {
        let mut owned = token.clone();
        let (saved, stored) = self
            .run_blocking(move |store| store.save(&mut owned).map(|saved| (saved, owned)))
            .await??;
        *token = stored;
        Ok(saved)
    }

    /// [`TokenStore::delete_token`]: deletes the record with this id.
    ///
    /// # Errors
    /// As [`TokenStore::delete_token`] ([`Error::NotFound`] for an unknown id);
    /// [`Error::Backend`] of kind `Other` if the runtime is shutting down.
    pub async fn delete_token(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.run_blocking(move |store| store.delete_token(&id))
            .await?
    }

    /// [`TokenStore::get_tokens`]: every record, opened.
    ///
    /// # Errors
    /// As [`TokenStore::get_tokens`]; [`Error::Backend`] of kind `Other` if the runtime is
    /// shutting down.
    pub async fn get_tokens(&self) -> Result<Vec<OAuthToken>> {
        self.run_blocking(|store| store.get_tokens()).await?
    }

    /// [`TokenStore::delete_tokens`]: deletes every record.
    ///
    /// # Errors
    /// As [`TokenStore::delete_tokens`]; [`Error::Backend`] of kind `Other` if the runtime is
    /// shutting down (nothing was deleted).
    pub async fn delete_tokens(&self) -> Result<()> {
        self.run_blocking(|store| store.delete_tokens()).await?
    }

    /// [`TokenStore::find_token_by_id`]: the record with this id, or `None`.
    ///
    /// # Errors
    /// As [`TokenStore::find_token_by_id`]; [`Error::Backend`] of kind `Other` if the runtime
    /// is shutting down.
    pub async fn find_token_by_id(&self, id: &str) -> Result<Option<OAuthToken>> {
        let id = id.to_owned();
        self.run_blocking(move |store| store.find_token_by_id(&id))
            .await?
    }

    /// [`EncryptedStore::refresh_with`]: the record `query` names, with an access token valid
    /// for at least `skew`, refreshed by `refresher` under the store's cross-process lock if
    /// it is not. The lock wait and `refresher` (e.g. `tokenvault::oauth::refresh`, a blocking
    /// HTTP call) run on the blocking pool, so N tasks and N processes waiting on one expired token
    /// cost the executor nothing and the OAuth server one request.
    ///
    /// Dropping the future does not stop a refresh that has started: it still completes and
    /// saves its result for the next caller.
    ///
    /// # Errors
    /// As [`EncryptedStore::refresh_with`]: [`RefreshError::Refresher`] with the refresher's
    /// error (nothing saved), [`RefreshError::Store`] for store errors, including
    /// [`Error::Backend`] of kind `Other` if the runtime is shutting down (the refresher was
    /// not called).
    pub async fn refresh_with<E, F>(
        &self,
        query: &OAuthToken,
        skew: Duration,
        refresher: F,
    ) -> Result<OAuthToken, RefreshError<E>>
    where
        F: FnOnce(&OAuthToken) -> Result<OAuthToken, E> + Send + 'static,
        E: Send + 'static,
    {
        let query = query.clone();
        self.run_blocking(move |store| store.refresh_with(&query, skew, refresher))
            .await?
    }

    /// [`EncryptedStore::access_token`] (feature `oauth`): an access token valid for at least
    /// `options.skew` for the record `query` names, refreshed first through the OAuth refresh
    /// grant under the store's cross-process lock when needed. The HTTP exchange runs on the
    /// blocking pool.
    ///
    /// # Errors
    /// As [`EncryptedStore::access_token`]; [`RefreshError::Store`] with [`Error::Backend`] of
    /// kind `Other` if the runtime is shutting down (no request was sent).
    #[cfg(feature = "oauth")]
    pub async fn access_token(
        &self,
        query: &OAuthToken,
        options: &AccessOptions,
    ) -> Result<AccessToken, RefreshError<OAuthError>> {
        let (query, options) = (query.clone(), options.clone());
        self.run_blocking(move |store| store.access_token(&query, &options))
            .await?
    }
}
