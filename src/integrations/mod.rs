//! Bridges to async code and to OAuth client libraries, each behind its own feature:
//!
//! - [`tokio`] (feature `async`): [`AsyncStore`](tokio::AsyncStore), the store's operations
//!   as futures that run the blocking work on tokio's blocking pool;
//! - [`yup_oauth2`] (feature `yup-oauth2`): [`TokenvaultStorage`](yup_oauth2::TokenvaultStorage),
//!   yup-oauth2's `TokenStorage` kept in an encrypted store, refreshing under the store's
//!   cross-process lock so that N callers and N processes spend a refresh token once.

#[cfg(feature = "async")]
pub mod tokio;
#[cfg(feature = "yup-oauth2")]
pub mod yup_oauth2;
