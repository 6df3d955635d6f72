//! `tokenvault.Store`: the library's store opened by URI, its six operations on dicts, and
//! the maintenance calls. Every call that does KDF, storage or network work detaches from the
//! interpreter, so other Python threads run meanwhile.

use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use tokenvault::{AccessOptions, Credential, FindBy, OAuthToken, RawKey, StoreOptions, TokenStore};
use zeroize::Zeroize;

use crate::errors::{self, Error};
use crate::record::{text_arg, token_from_dict, token_to_dict};

/// An open token store. Safe to share between threads; open it again in a child process
/// (after `fork`, a store opened by the parent refuses to be used).
#[pyclass(module = "tokenvault", name = "Store", frozen)]
pub struct Store {
    /// Always `Some` until dropped (see `Drop`).
    inner: Option<tokenvault::Store>,
    /// The process that opened it: a database connection must not cross a `fork`.
    pid: u32,
}

#[pymethods]
impl Store {
    /// Creates a store at `uri` with exactly one credential as its first key slot.
    #[staticmethod]
    #[pyo3(signature = (uri, *, passphrase=None, key=None, keychain=false))]
    fn create(
        py: Python<'_>,
        uri: &Bound<'_, PyAny>,
        passphrase: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
        keychain: bool,
    ) -> PyResult<Self> {
        let uri = text_arg("uri", uri)?;
        let credential = credential(passphrase, key, keychain)?.ok_or_else(|| {
            PyValueError::new_err("create() needs one of passphrase=, key= or keychain=True")
        })?;
        let inner = py
            .detach(|| tokenvault::create(&uri, &credential, StoreOptions::default()))
            .map_err(errors::store_error)?;
        Ok(Self::wrap(inner))
    }

    /// Opens the store at `uri` with the credential given, or else the one the environment
    /// names (TOKENVAULT_KEY, TOKENVAULT_PASSPHRASE, or the OS keychain slot).
    #[staticmethod]
    #[pyo3(signature = (uri, *, passphrase=None, key=None, keychain=false))]
    fn open(
        py: Python<'_>,
        uri: &Bound<'_, PyAny>,
        passphrase: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
        keychain: bool,
    ) -> PyResult<Self> {
        let uri = text_arg("uri", uri)?;
        let inner = match credential(passphrase, key, keychain)? {
            Some(credential) => py.detach(|| tokenvault::open(&uri, &credential)),
            None => py.detach(|| tokenvault::open_from_env(&uri)),
        }
        .map_err(errors::store_error)?;
        Ok(Self::wrap(inner))
    }

    /// The record `query` matches (the Zoho rules: user name, else access token, else grant or
    /// refresh token with the client id and secret), or None.
    fn find_token<'py>(
        &self,
        py: Python<'py>,
        query: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let query = token_from_dict(query)?;
        let found = self.run(py, |s| s.find_token(&query))?;
        found.map(|t| token_to_dict(py, &t)).transpose()
    }

    /// Saves `token` (merged into the record it matches, else inserted); returns its id.
    fn save_token(&self, py: Python<'_>, token: &Bound<'_, PyAny>) -> PyResult<String> {
        let mut token = token_from_dict(token)?;
        self.run(py, |s| s.save_token(&mut token))?;
        token
            .id()
            .map(str::to_owned)
            .ok_or_else(|| Error::new_err("the store saved the token without an id"))
    }

    /// Deletes the record with this id (NotFound if there is none).
    fn delete_token(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<()> {
        let id = text_arg("id", id)?;
        self.run(py, |s| s.delete_token(&id))
    }

    /// Every record, in id order.
    fn get_tokens<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let tokens = self.run(py, |s| s.get_tokens())?;
        let dicts = tokens
            .iter()
            .map(|t| token_to_dict(py, t))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, dicts)
    }

    /// Deletes every record.
    fn delete_tokens(&self, py: Python<'_>) -> PyResult<()> {
        self.run(py, |s| s.delete_tokens())
    }

    /// The record with this id, or None.
    fn find_token_by_id<'py>(
        &self,
        py: Python<'py>,
        id: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let id = text_arg("id", id)?;
        let found = self.run(py, |s| s.find_token_by_id(&id))?;
        found.map(|t| token_to_dict(py, &t)).transpose()
    }

    /// A valid access token for the record named by `user` or `id`, refreshed through the
    /// OAuth refresh grant when it expires within `skew` seconds — once for every thread and
    /// process that asks at the same time. `token_url`: the full token endpoint (default: the
    /// Zoho accounts server of the record's api_domain).
    #[pyo3(signature = (*, user=None, id=None, token_url=None, skew=60.0))]
    fn access_token(
        &self,
        py: Python<'_>,
        user: Option<&Bound<'_, PyAny>>,
        id: Option<&Bound<'_, PyAny>>,
        token_url: Option<&Bound<'_, PyAny>>,
        skew: f64,
    ) -> PyResult<String> {
        let query = match (user, id) {
            (Some(user), None) => OAuthToken::new().with_user_name(text_arg("user", user)?),
            (None, Some(id)) => OAuthToken::new().with_id(text_arg("id", id)?),
            _ => {
                return Err(PyValueError::new_err(
                    "access_token() needs one of user= or id=",
                ));
            }
        };
        let mut options = AccessOptions::default().with_skew(seconds("skew", skew)?);
        if let Some(url) = token_url {
            options = options.with_token_url(text_arg("token_url", url)?);
        }
        let token = py
            .detach(|| self.inner()?.access_token(&query, &options))
            .map_err(errors::refresh_error)?;
        Ok(token.expose_secret().to_owned())
    }

    /// For `tokenvault.zoho`: the record `query` matches (or the record `id`), with an access
    /// token valid for `skew` seconds, refreshed under the store's cross-process lock if the
    /// stored one is not (and a refresh token is at hand); None if there is no such record.
    /// Returns `(record, refreshed)`: `refreshed` says the record's access token replaces the
    /// caller's. The token endpoint: `token_url`, else the Zoho accounts server of the
    /// record's api_domain, else `fallback_token_url`.
    #[pyo3(signature = (query=None, *, id=None, token_url=None, fallback_token_url=None, skew=5.0))]
    fn _find_fresh_token<'py>(
        &self,
        py: Python<'py>,
        query: Option<&Bound<'py, PyAny>>,
        id: Option<&Bound<'py, PyAny>>,
        token_url: Option<&Bound<'py, PyAny>>,
        fallback_token_url: Option<&Bound<'py, PyAny>>,
        skew: f64,
    ) -> PyResult<Option<(Bound<'py, PyDict>, bool)>> {
        let query = query.map(token_from_dict).transpose()?;
        let id = id.map(|id| text_arg("id", id)).transpose()?;
        let mut options = AccessOptions::default().with_skew(seconds("skew", skew)?);
        if let Some(url) = token_url {
            options = options.with_token_url(text_arg("token_url", url)?);
        }
        let fallback = fallback_token_url
            .map(|u| text_arg("fallback_token_url", u))
            .transpose()?;
        let find_by = match (&query, &id) {
            (Some(query), None) => FindBy::Query(query),
            (None, Some(id)) => FindBy::Id(id),
            _ => return Err(PyValueError::new_err("give a query or an id")),
        };
        let found = py
            .detach(|| {
                self.inner()?
                    .find_fresh(find_by, &options, fallback.as_deref())
            })
            .map_err(errors::refresh_error)?;
        found
            .map(|f| Ok((token_to_dict(py, &f.token)?, f.refreshed)))
            .transpose()
    }

    /// Opens every record; returns {"ok": n, "failed": [(id, message), …]}.
    fn verify<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let report = self.run(py, |s| s.verify())?;
        let dict = PyDict::new(py);
        dict.set_item("ok", report.ok)?;
        let failed: Vec<(String, String)> = report
            .failed
            .into_iter()
            .map(|(id, e)| (id, e.to_string()))
            .collect();
        dict.set_item("failed", failed)?;
        Ok(dict)
    }

    /// Re-seals every record under a new data key (resumable); returns
    /// {"key_id": …, "resealed": n, "resumed": bool}.
    fn rotate<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let report = self.run(py, |s| s.rotate())?;
        let dict = PyDict::new(py);
        dict.set_item("key_id", report.key_id)?;
        dict.set_item("resealed", report.resealed)?;
        dict.set_item("resumed", report.resumed)?;
        Ok(dict)
    }

    /// Replaces the passphrase of the store's passphrase slot.
    fn change_passphrase(&self, py: Python<'_>, new: &Bound<'_, PyAny>) -> PyResult<()> {
        let new = passphrase_credential(new)?;
        self.run(py, |s| s.change_passphrase(&new))
    }

    /// The store's id (random, hex): names it in key slots and the keychain.
    #[getter]
    fn store_id(&self) -> PyResult<String> {
        Ok(self.inner().map_err(errors::store_error)?.store_id())
    }

    fn __repr__(&self) -> String {
        match self.inner() {
            Ok(store) => format!("<tokenvault.Store {}>", store.store_id()),
            Err(_) => "<tokenvault.Store of another process>".to_owned(),
        }
    }
}

impl Store {
    fn wrap(inner: tokenvault::Store) -> Self {
        Self {
            inner: Some(inner),
            pid: std::process::id(),
        }
    }

    /// The store, if this is the process that opened it.
    fn inner(&self) -> Result<&tokenvault::Store, tokenvault::Error> {
        match &self.inner {
            Some(store) if std::process::id() == self.pid => Ok(store),
            _ => Err(tokenvault::Error::Refused {
                reason: "this Store was opened by the parent process; open the store again after fork",
            }),
        }
    }

    /// Runs a store call detached from the interpreter, mapping its error.
    fn run<T: Send>(
        &self,
        py: Python<'_>,
        call: impl FnOnce(&tokenvault::Store) -> tokenvault::Result<T> + Send,
    ) -> PyResult<T> {
        py.detach(|| call(self.inner()?))
            .map_err(errors::store_error)
    }
}

impl Drop for Store {
    /// A store inherited across `fork` is not closed in the child: closing would act on the
    /// parent's connection (a server session's goodbye, a lock file). Its memory is left to
    /// the child's exit.
    fn drop(&mut self) {
        if let Some(store) = self.inner.take()
            && std::process::id() != self.pid
        {
            std::mem::forget(store);
        }
    }
}

/// The one credential the keywords give, or None if none is given.
fn credential(
    passphrase: Option<&Bound<'_, PyAny>>,
    key: Option<&Bound<'_, PyAny>>,
    keychain: bool,
) -> PyResult<Option<Credential>> {
    let given =
        usize::from(passphrase.is_some()) + usize::from(key.is_some()) + usize::from(keychain);
    if given > 1 {
        return Err(PyValueError::new_err(
            "give one credential: passphrase=, key= or keychain=True",
        ));
    }
    if let Some(passphrase) = passphrase {
        return passphrase_credential(passphrase).map(Some);
    }
    if let Some(key) = key {
        let bytes = key
            .cast::<PyBytes>()
            .map_err(|_| PyTypeError::new_err("key must be bytes (the 32 bytes of a raw key)"))?;
        let mut raw: [u8; 32] = bytes.as_bytes().try_into().map_err(|_| {
            PyValueError::new_err(format!(
                "key must be 32 bytes, not {}",
                bytes.as_bytes().len()
            ))
        })?;
        let credential = Credential::raw_key(RawKey::from_bytes(raw));
        raw.zeroize();
        return Ok(Some(credential));
    }
    Ok(keychain.then(Credential::keychain))
}

fn passphrase_credential(value: &Bound<'_, PyAny>) -> PyResult<Credential> {
    let text = text_arg("passphrase", value)?;
    if text.is_empty() {
        return Err(PyValueError::new_err("the passphrase is empty"));
    }
    Ok(Credential::passphrase(text))
}

fn seconds(what: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        PyValueError::new_err(format!(
            "{what} must be a finite number of seconds, 0 or more"
        ))
    })
}
