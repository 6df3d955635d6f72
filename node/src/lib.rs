//! `tokenvault-node`: the Node.js binding of the tokenvault library, built with napi-rs into
//! `tokenvault.<platform>.node`. The JS package around it (`index.js`, `zoho.mjs`) adds the
//! error classes, the public `Store` class and the Zoho SDK's `TokenvaultStore`.
//!
//! Layout: [`store`] (the store and its calls) → [`args`] (arguments, checked on the JS
//! thread) → [`task`] (blocking work off the event loop) → [`record`] (values across the
//! boundary) → [`errors`] (one mapping to JS errors).

// napi-derive registers the exported functions and classes only outside `cfg(test)`; the
// crate has no tests of its own (test = false) but `cargo clippy --all-targets` still builds
// it that way, where they look unused.
#![cfg_attr(test, allow(dead_code))]

mod args;
mod errors;
mod record;
mod store;
mod task;

use napi_derive::napi;

/// The Zoho accounts server's token endpoint for an API domain (e.g.
/// "https://www.zohoapis.eu" → "https://accounts.zoho.eu/oauth/v2/token"), or null.
#[napi]
pub fn zoho_token_url(api_domain: String) -> Option<String> {
    tokenvault::oauth::zoho_token_url(&api_domain)
}

/// The ten field names of a token record, in the Zoho SDKs' order (the library's list).
#[napi]
pub fn fields() -> Vec<&'static str> {
    tokenvault::TokenField::ALL
        .map(tokenvault::TokenField::name)
        .to_vec()
}
