//! The arguments of each call, read and checked on the JS thread before any work starts:
//! credentials, option objects, ids, durations. A wrong type is a `TypeError` with code
//! `ERR_INVALID_ARG_TYPE`, a wrong value one with `ERR_INVALID_ARG_VALUE`; unknown option
//! names are refused (a typo must not silently drop a credential or a token URL).

use std::time::Duration;

use napi::JsValue;
use napi::bindgen_prelude::{JsObjectValue, Object, Unknown, ValueType};
use tokenvault::{AccessOptions, Credential, OAuthToken, RawKey};
use zeroize::{Zeroize, Zeroizing};

use crate::errors::{Failure, Outcome};
use crate::record::{
    MAX_TEXT_UNITS, is_absent, key_bytes, optional_text, text, token_from_js, type_name,
};

/// The longest passphrase accepted, in UTF-16 code units.
const MAX_PASSPHRASE_UNITS: usize = 16 * 1024;

/// The skew of `findFreshToken` by default: the Zoho SDK's own 5000 ms window.
const SDK_SKEW_SECONDS: f64 = 5.0;

/// `createStore(uri, credential)`: the URI and exactly one credential.
pub fn create(
    uri: &Unknown<'_>,
    credential: Option<&Unknown<'_>>,
) -> Outcome<(String, Credential)> {
    let uri = owned(text("uri", uri, MAX_TEXT_UNITS)?);
    let credential = credential_arg(credential)?.ok_or_else(|| {
        Failure::arg_value("create() needs one credential: passphrase, key or keychain: true")
    })?;
    Ok((uri, credential))
}

/// `openStore(uri, credential?)`: the URI and at most one credential.
pub fn open(
    uri: &Unknown<'_>,
    credential: Option<&Unknown<'_>>,
) -> Outcome<(String, Option<Credential>)> {
    Ok((
        owned(text("uri", uri, MAX_TEXT_UNITS)?),
        credential_arg(credential)?,
    ))
}

/// `accessToken({ user | id, tokenUrl, skew })`: the record's query and the options.
pub fn access(options: &Unknown<'_>) -> Outcome<(OAuthToken, AccessOptions)> {
    let options = options_object("accessToken() options", options)?;
    check_keys(
        &options,
        "accessToken()",
        &["user", "id", "tokenUrl", "skew"],
    )?;
    let user = optional_text("user", &options.get_named_property("user")?, MAX_TEXT_UNITS)?;
    let id = optional_text("id", &options.get_named_property("id")?, MAX_TEXT_UNITS)?;
    let query = match (user, id) {
        (Some(user), None) => OAuthToken::new().with_user_name(owned(user)),
        (None, Some(id)) => OAuthToken::new().with_id(owned(id)),
        _ => return Err(Failure::arg_value("accessToken() needs one of user or id")),
    };
    let default = AccessOptions::default().skew.as_secs_f64();
    let skew = seconds("skew", &options.get_named_property("skew")?, default)?;
    let mut access = AccessOptions::default().with_skew(skew);
    let url = optional_text(
        "tokenUrl",
        &options.get_named_property("tokenUrl")?,
        MAX_TEXT_UNITS,
    )?;
    if let Some(url) = url {
        access = access.with_token_url(owned(url));
    }
    Ok((query, access))
}

/// What `findFreshToken(query, { tokenUrl, fallbackTokenUrl, skew })` needs.
pub struct Fresh {
    pub query: OAuthToken,
    pub token_url: Option<String>,
    pub fallback: Option<String>,
    pub skew: Duration,
}

/// `findFreshToken(query, options?)`.
pub fn fresh(query: &Unknown<'_>, options: Option<&Unknown<'_>>) -> Outcome<Fresh> {
    let query = token_from_js(query)?;
    let Some(options) = options.filter(|o| !is_absent(o)) else {
        return Ok(Fresh {
            query,
            token_url: None,
            fallback: None,
            skew: Duration::from_secs_f64(SDK_SKEW_SECONDS),
        });
    };
    let options = options_object("findFreshToken() options", options)?;
    check_keys(
        &options,
        "findFreshToken()",
        &["tokenUrl", "fallbackTokenUrl", "skew"],
    )?;
    let url = |name: &str| -> Outcome<Option<String>> {
        let value = options.get_named_property(name)?;
        Ok(optional_text(name, &value, MAX_TEXT_UNITS)?.map(owned))
    };
    Ok(Fresh {
        query,
        token_url: url("tokenUrl")?,
        fallback: url("fallbackTokenUrl")?,
        skew: seconds(
            "skew",
            &options.get_named_property("skew")?,
            SDK_SKEW_SECONDS,
        )?,
    })
}

/// A record id.
pub fn id(value: &Unknown<'_>) -> Outcome<String> {
    Ok(owned(text("id", value, MAX_TEXT_UNITS)?))
}

/// A new passphrase (`changePassphrase`), or the passphrase credential: a non-empty string.
pub fn passphrase(value: &Unknown<'_>) -> Outcome<Credential> {
    let passphrase = text("passphrase", value, MAX_PASSPHRASE_UNITS)?;
    if passphrase.is_empty() {
        return Err(Failure::arg_value("the passphrase is empty"));
    }
    Ok(Credential::passphrase(owned(passphrase)))
}

/// The text moved out whole (no copy is left behind): where it goes next decides whether it
/// is zeroed (the token's secrets and the passphrase credential are).
fn owned(mut text: Zeroizing<String>) -> String {
    std::mem::take(&mut *text)
}

/// The one credential an options object gives (`passphrase`, `key` or `keychain: true`), or
/// None when it gives none (or there is no options object).
fn credential_arg(options: Option<&Unknown<'_>>) -> Outcome<Option<Credential>> {
    let Some(options) = options.filter(|o| !is_absent(o)) else {
        return Ok(None);
    };
    let options = options_object("the credential", options)?;
    check_keys(
        &options,
        "the credential",
        &["passphrase", "key", "keychain"],
    )?;
    let passphrase_value: Unknown<'_> = options.get_named_property("passphrase")?;
    let key: Unknown<'_> = options.get_named_property("key")?;
    let keychain: Unknown<'_> = options.get_named_property("keychain")?;
    let keychain = match keychain.get_type()? {
        ValueType::Undefined | ValueType::Null => false,
        // SAFETY: the value is a boolean (checked by this arm), which is all bool requires.
        ValueType::Boolean => unsafe { keychain.cast::<bool>() }?,
        _ => {
            return Err(Failure::arg_type(format!(
                "keychain must be a boolean, not {}",
                type_name(&keychain)
            )));
        }
    };
    let given = usize::from(!is_absent(&passphrase_value))
        + usize::from(!is_absent(&key))
        + usize::from(keychain);
    if given > 1 {
        return Err(Failure::arg_value(
            "give one credential: passphrase, key or keychain: true",
        ));
    }
    if !is_absent(&passphrase_value) {
        return passphrase(&passphrase_value).map(Some);
    }
    if !is_absent(&key) {
        let mut bytes = key_bytes(&key)?;
        let raw = RawKey::from_bytes(*bytes);
        // `from_bytes` keeps its own copy; this one is zeroed now (and again on drop).
        bytes.zeroize();
        return Ok(Some(Credential::raw_key(raw)));
    }
    Ok(keychain.then(Credential::keychain))
}

/// An options argument: a plain object.
fn options_object<'env>(what: &str, value: &Unknown<'env>) -> Outcome<Object<'env>> {
    if value.get_type()? != ValueType::Object || value.is_array()? {
        return Err(Failure::arg_type(format!(
            "{what} must be an object, not {}",
            type_name(value)
        )));
    }
    // SAFETY: the value is an object (checked above), which is all `Object` requires.
    Ok(unsafe { value.cast::<Object>() }?)
}

/// Refuses option names the call does not know.
fn check_keys(options: &Object<'_>, what: &str, known: &[&str]) -> Outcome<()> {
    for key in Object::keys(options)? {
        if !known.contains(&key.as_str()) {
            let shown: String = key.chars().take(40).flat_map(char::escape_debug).collect();
            return Err(Failure::arg_value(format!(
                "unknown option \"{shown}\" for {what}; the options are {}",
                known.join(", ")
            )));
        }
    }
    Ok(())
}

/// A duration in seconds: a finite number, 0 or more; `default` when absent.
fn seconds(what: &str, value: &Unknown<'_>, default: f64) -> Outcome<Duration> {
    let secs = match value.get_type()? {
        ValueType::Undefined | ValueType::Null => default,
        // SAFETY: the value is a number (checked by this arm), which is all f64 requires.
        ValueType::Number => unsafe { value.cast::<f64>() }?,
        _ => {
            return Err(Failure::arg_type(format!(
                "{what} must be a number of seconds, not {}",
                type_name(value)
            )));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|_| {
        Failure::arg_value(format!(
            "{what} must be a finite number of seconds, 0 or more"
        ))
    })
}
