//! `NativeStore`: the library's store opened by URI, its six operations on plain objects, and
//! the maintenance calls. Every call that does KDF, storage or network work returns a Promise
//! settled from the addon's worker threads ([`crate::task`]); arguments are read and checked first,
//! on the JS thread, so a wrong argument rejects before any work starts.

use std::sync::Arc;

use napi::Env;
use napi::bindgen_prelude::{Object, Unknown};
use napi_derive::napi;
use tokenvault::{AccessOptions, FindBy, StoreOptions, TokenStore};
use zeroize::Zeroizing;

use crate::args;
use crate::errors::{Failure, Outcome, code};
use crate::record::{FreshOut, SecretText, TokenOut, token_from_js};
use crate::task::spawn;

/// An open token store, shared by every Promise that uses it. Made by `createStore` /
/// `openStore`; `index.js` wraps it in the public `Store` class.
#[napi]
pub struct NativeStore {
    inner: Arc<tokenvault::Store>,
}

/// Report of `verify()`: the number of records that open, and those that do not.
#[napi(object)]
pub struct VerifyReport {
    pub ok: u32,
    pub failed: Vec<VerifyFailure>,
}

/// A record that failed to open, and why (never a secret).
#[napi(object)]
pub struct VerifyFailure {
    pub id: String,
    pub message: String,
}

/// Report of `rotate()`.
#[napi(object)]
pub struct RotationReport {
    pub key_id: u32,
    pub resealed: u32,
    pub resumed: bool,
}

/// Creates a store at `uri` with exactly one credential (`{passphrase}`, `{key}` or
/// `{keychain: true}`) as its first key slot.
#[napi(ts_return_type = "Promise<NativeStore>")]
pub fn create_store<'env>(
    env: &'env Env,
    uri: Unknown<'_>,
    credential: Option<Unknown<'_>>,
) -> napi::Result<Object<'env>> {
    let (uri, credential) =
        args::create(&uri, credential.as_ref()).map_err(|f| f.into_napi(env))?;
    spawn(env, move || {
        let store = tokenvault::create(&uri, &credential, StoreOptions::default())?;
        Ok(NativeStore::wrap(store))
    })
}

/// Opens the store at `uri` with the credential given, or else the one the environment names
/// (TOKENVAULT_KEY, TOKENVAULT_PASSPHRASE, or the store's OS keychain slot).
#[napi(ts_return_type = "Promise<NativeStore>")]
pub fn open_store<'env>(
    env: &'env Env,
    uri: Unknown<'_>,
    credential: Option<Unknown<'_>>,
) -> napi::Result<Object<'env>> {
    let (uri, credential) = args::open(&uri, credential.as_ref()).map_err(|f| f.into_napi(env))?;
    spawn(env, move || {
        let store = match credential {
            Some(credential) => tokenvault::open(&uri, &credential)?,
            None => tokenvault::open_from_env(&uri)?,
        };
        Ok(NativeStore::wrap(store))
    })
}

#[napi]
impl NativeStore {
    fn wrap(store: tokenvault::Store) -> Self {
        Self {
            inner: Arc::new(store),
        }
    }

    /// Runs `call` on the store off the event loop.
    fn run<'env, T, F>(&self, env: &'env Env, call: F) -> napi::Result<Object<'env>>
    where
        T: napi::bindgen_prelude::ToNapiValue + Send + 'static,
        F: FnOnce(&tokenvault::Store) -> Outcome<T> + Send + 'static,
    {
        let store = Arc::clone(&self.inner);
        spawn(env, move || call(&store))
    }

    /// The store's id (random, hex): names it in key slots and the keychain.
    #[napi(getter)]
    pub fn store_id(&self) -> String {
        self.inner.store_id()
    }

    /// The record `query` matches (the Zoho rules: user name, else access token, else grant
    /// or refresh token with the client id and secret), or null. Tokens come out as their
    /// ten values in `fields()` order ([`TokenOut`]); `index.js` names them.
    #[napi(ts_return_type = "Promise<Array<string | null> | null>")]
    pub fn find_token<'env>(
        &self,
        env: &'env Env,
        query: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        let query = token_from_js(&query).map_err(|f| f.into_napi(env))?;
        self.run(env, move |s| Ok(s.find_token(&query)?.map(TokenOut)))
    }

    /// Saves `token` (merged into the record it matches, else inserted); resolves to its id.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn save_token<'env>(
        &self,
        env: &'env Env,
        token: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        let mut token = token_from_js(&token).map_err(|f| f.into_napi(env))?;
        self.run(env, move |s| {
            s.save_token(&mut token)?;
            token
                .id()
                .map(str::to_owned)
                .ok_or_else(|| Failure::new(code::ERROR, "the store saved the token without an id"))
        })
    }

    /// Deletes the record with this id (NotFound if there is none).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn delete_token<'env>(
        &self,
        env: &'env Env,
        id: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        let id = args::id(&id).map_err(|f| f.into_napi(env))?;
        self.run(env, move |s| Ok(s.delete_token(&id)?))
    }

    /// Every record, in id order.
    #[napi(ts_return_type = "Promise<Array<Array<string | null>>>")]
    pub fn get_tokens<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        self.run(env, |s| {
            Ok(s.get_tokens()?
                .into_iter()
                .map(TokenOut)
                .collect::<Vec<_>>())
        })
    }

    /// Deletes every record.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn delete_tokens<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        self.run(env, |s| Ok(s.delete_tokens()?))
    }

    /// The record with this id, or null.
    #[napi(ts_return_type = "Promise<Array<string | null> | null>")]
    pub fn find_token_by_id<'env>(
        &self,
        env: &'env Env,
        id: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        let id = args::id(&id).map_err(|f| f.into_napi(env))?;
        self.run(env, move |s| Ok(s.find_token_by_id(&id)?.map(TokenOut)))
    }

    /// A valid access token for the record named by `user` or `id`, refreshed through the
    /// OAuth refresh grant when it expires within `skew` seconds (default 60) — once for every
    /// thread and process that asks at the same time. `tokenUrl`: the full token endpoint
    /// (default: the Zoho accounts server of the record's api_domain).
    #[napi(ts_return_type = "Promise<string>")]
    pub fn access_token<'env>(
        &self,
        env: &'env Env,
        options: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        let (query, access) = args::access(&options).map_err(|f| f.into_napi(env))?;
        self.run(env, move |s| {
            let token = s.access_token(&query, &access)?;
            Ok(SecretText(Zeroizing::new(token.expose_secret().to_owned())))
        })
    }

    /// The record `query` names (by id if it has one, else by the matching rules) with an
    /// access token valid for `skew` seconds (default 5), refreshed under the store's
    /// cross-process lock if it is not (and it has a refresh token); null if nothing matches.
    /// The token endpoint: `tokenUrl`, else the Zoho accounts server of the record's
    /// api_domain, else `fallbackTokenUrl`. Used by `tokenvault/zoho`.
    #[napi(ts_return_type = "Promise<Array<string | boolean | null> | null>")]
    pub fn find_fresh_token<'env>(
        &self,
        env: &'env Env,
        query: Unknown<'_>,
        options: Option<Unknown<'_>>,
    ) -> napi::Result<Object<'env>> {
        let args::Fresh {
            query,
            token_url,
            fallback,
            skew,
        } = args::fresh(&query, options.as_ref()).map_err(|f| f.into_napi(env))?;
        let mut options = AccessOptions::default().with_skew(skew);
        if let Some(url) = token_url {
            options = options.with_token_url(url);
        }
        self.run(env, move |s| {
            let find_by = match query.id() {
                Some(id) => FindBy::Id(id),
                None => FindBy::Query(&query),
            };
            let found = s.find_fresh(find_by, &options, fallback.as_deref())?;
            Ok(found.map(|f| FreshOut {
                token: f.token,
                refreshed: f.refreshed,
            }))
        })
    }

    /// Opens every record; resolves to `{ ok, failed: [{ id, message }] }`.
    #[napi(ts_return_type = "Promise<VerifyReport>")]
    pub fn verify<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        self.run(env, |s| {
            let report = s.verify()?;
            Ok(VerifyReport {
                ok: saturate(report.ok),
                failed: report
                    .failed
                    .into_iter()
                    .map(|(id, e)| VerifyFailure {
                        id,
                        message: e.to_string(),
                    })
                    .collect(),
            })
        })
    }

    /// Re-seals every record under a new data key (resumable); resolves to
    /// `{ keyId, resealed, resumed }`.
    #[napi(ts_return_type = "Promise<RotationReport>")]
    pub fn rotate<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        self.run(env, |s| {
            let report = s.rotate()?;
            Ok(RotationReport {
                key_id: report.key_id,
                resealed: saturate(report.resealed),
                resumed: report.resumed,
            })
        })
    }

    /// Replaces the passphrase of the store's passphrase slot.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn change_passphrase<'env>(
        &self,
        env: &'env Env,
        passphrase: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        let new = args::passphrase(&passphrase).map_err(|f| f.into_napi(env))?;
        self.run(env, move |s| Ok(s.change_passphrase(&new)?))
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
