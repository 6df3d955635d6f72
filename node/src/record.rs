//! Values across the boundary. Tokens: a plain object with the Zoho field names in, an object
//! with all ten keys out (`null` for an unset field). `expiry_time` is epoch milliseconds: a
//! digit string, as the Zoho SDKs keep it (a safe integer is accepted too).
//!
//! Text is read from JavaScript as UTF-16 into zeroizing buffers and decoded strictly: a lone
//! surrogate is refused rather than silently replaced (two different JS strings must never
//! become one stored value).

use std::ptr;

use napi::bindgen_prelude::{
    Array, Env, JsObjectValue, JsValue, Object, ToNapiValue, TypeName, Uint8ArraySlice, Unknown,
    ValueType,
};
use napi::sys;
use tokenvault::token::MAX_FIELD_LEN;
use tokenvault::{OAuthToken, TokenField};
use zeroize::Zeroizing;

use crate::errors::{Failure, Outcome};

/// The largest store URI, token URL or id accepted, in UTF-16 code units.
pub const MAX_TEXT_UNITS: usize = 64 * 1024;

/// The largest integer a JS number holds exactly (`Number.MAX_SAFE_INTEGER`).
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// A JS value's type, as `typeof` names it (`null` and arrays told apart).
pub fn type_name(value: &Unknown<'_>) -> &'static str {
    match value.get_type() {
        Ok(ValueType::Undefined) => "undefined",
        Ok(ValueType::Null) => "null",
        Ok(ValueType::Boolean) => "boolean",
        Ok(ValueType::Number) => "number",
        Ok(ValueType::BigInt) => "bigint",
        Ok(ValueType::String) => "string",
        Ok(ValueType::Symbol) => "symbol",
        Ok(ValueType::Function) => "function",
        Ok(ValueType::Object) if value.is_array().unwrap_or(false) => "an array",
        Ok(ValueType::Object) => "object",
        _ => "an unknown type",
    }
}

/// Whether the value is `undefined` or `null` (an option left out).
pub fn is_absent(value: &Unknown<'_>) -> bool {
    matches!(value.get_type(), Ok(ValueType::Undefined | ValueType::Null))
}

/// A string argument's text, at most `max_units` UTF-16 code units long, in memory zeroed
/// when dropped. `what` names the argument in errors.
pub fn text(what: &str, value: &Unknown<'_>, max_units: usize) -> Outcome<Zeroizing<String>> {
    if value.get_type()? != ValueType::String {
        return Err(Failure::arg_type(format!(
            "{what} must be a string, not {}",
            type_name(value)
        )));
    }
    match read_string(value, max_units)? {
        Text::Ok(text) => Ok(text),
        Text::TooLong => Err(Failure::arg_value(format!(
            "{what} is longer than {max_units} characters"
        ))),
        Text::LoneSurrogate => Err(Failure::arg_value(format!(
            "{what} is not well-formed Unicode (it has a lone surrogate)"
        ))),
    }
}

/// An optional string argument: `undefined` and `null` are `None`.
pub fn optional_text(
    what: &str,
    value: &Unknown<'_>,
    max_units: usize,
) -> Outcome<Option<Zeroizing<String>>> {
    if is_absent(value) {
        return Ok(None);
    }
    text(what, value, max_units).map(Some)
}

enum Text {
    Ok(Zeroizing<String>),
    TooLong,
    LoneSurrogate,
}

/// Reads a JS string (the caller checked that it is one) as UTF-16 and decodes it.
fn read_string(value: &Unknown<'_>, max_units: usize) -> napi::Result<Text> {
    let raw = value.value();
    let mut units = 0usize;
    // SAFETY: `raw.env` and `raw.value` come from a live `Unknown` on the JS thread that made
    // it (N-API values are only handed to code running on that thread). With a null buffer
    // N-API writes nothing and only stores the string's length, in code units, in `units`;
    // a value that is not a string is refused with `napi_string_expected`.
    let status = unsafe {
        sys::napi_get_value_string_utf16(raw.env, raw.value, ptr::null_mut(), 0, &mut units)
    };
    check(status)?;
    if units > max_units {
        return Ok(Text::TooLong);
    }
    let mut buffer = Zeroizing::new(vec![0u16; units + 1]);
    let mut written = 0usize;
    // SAFETY: as above for `env` and `value`; `buffer` is a live, exclusively borrowed
    // allocation of `buffer.len()` u16s, and N-API writes at most `buffer.len() - 1` code
    // units plus a terminating NUL into it, storing the number of units written (without the
    // NUL) in `written`.
    let status = unsafe {
        sys::napi_get_value_string_utf16(
            raw.env,
            raw.value,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut written,
        )
    };
    check(status)?;
    let written = &buffer[..written.min(units)];
    // Sized for the worst case (3 UTF-8 bytes per code unit) so that pushing never
    // reallocates and leaves an unzeroed copy behind.
    let mut text = Zeroizing::new(String::with_capacity(written.len() * 3));
    for c in char::decode_utf16(written.iter().copied()) {
        match c {
            Ok(c) => text.push(c),
            Err(_) => return Ok(Text::LoneSurrogate),
        }
    }
    Ok(Text::Ok(text))
}

fn check(status: sys::napi_status) -> napi::Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::from_status(napi::Status::from(status)))
    }
}

/// The 32 bytes of a raw key given as a `Buffer` or `Uint8Array`, zeroed when dropped.
pub fn key_bytes(value: &Unknown<'_>) -> Outcome<Zeroizing<[u8; 32]>> {
    let is_bytes = value.get_type()? == ValueType::Object && value.is_typedarray()?;
    let not_bytes = || {
        Failure::arg_type(format!(
            "key must be a Buffer or Uint8Array (the 32 bytes of a raw key), not {}",
            type_name(value)
        ))
    };
    if !is_bytes {
        return Err(not_bytes());
    }
    // SAFETY: the value is a typed array (checked above); the conversion reads its type,
    // length and data pointer through N-API and refuses any element type but u8. The slice
    // borrows the array's memory only for this function, on the JS thread, during which no
    // JS runs that could detach or resize it. No other thread writes it: index.js passes its
    // own fresh (never shared) copy of the caller's key, so a key backed by a
    // SharedArrayBuffer is never read here while a worker writes it.
    let slice = unsafe { value.cast::<Uint8ArraySlice>() }.map_err(|_| not_bytes())?;
    let bytes: &[u8] = &slice;
    let mut key = Zeroizing::new([0u8; 32]);
    if bytes.len() != key.len() {
        return Err(Failure::arg_value(format!(
            "key must be 32 bytes, not {}",
            bytes.len()
        )));
    }
    key.copy_from_slice(bytes);
    Ok(key)
}

/// The token a plain object describes. Unknown keys, wrong types and values the library
/// refuses (oversized, malformed `expiry_time`) are errors; no value is put in a message.
pub fn token_from_js(value: &Unknown<'_>) -> Outcome<OAuthToken> {
    if value.get_type()? != ValueType::Object || value.is_array()? {
        return Err(Failure::arg_type(format!(
            "a token is an object with the Zoho field names, not {}",
            type_name(value)
        )));
    }
    // SAFETY: the value is an object (checked above), which is all `Object` requires.
    let object = unsafe { value.cast::<Object>() }?;
    let mut token = OAuthToken::new();
    for key in Object::keys(&object)? {
        let field = TokenField::from_name(&key).ok_or_else(|| unknown_field(&key))?;
        let value: Unknown<'_> = object.get_named_property(&key)?;
        if is_absent(&value) {
            continue;
        }
        let text = field_text(field, &value)?;
        token
            .set_field(field, Some(text))
            .map_err(Failure::invalid_token)?;
    }
    token.check_bounds().map_err(Failure::invalid_token)?;
    Ok(token)
}

/// A field's value as text: a string, or for `expiry_time` also a safe integer.
fn field_text(field: TokenField, value: &Unknown<'_>) -> Outcome<String> {
    let kind = value.get_type()?;
    if field == TokenField::ExpiryTime && kind == ValueType::Number {
        // SAFETY: the value is a number (checked above), which is all f64 requires.
        let millis = unsafe { value.cast::<f64>() }?;
        if !(millis.fract() == 0.0 && (0.0..=MAX_SAFE_INTEGER).contains(&millis)) {
            return Err(Failure::invalid_token(
                "expiry_time must be epoch milliseconds (an integer from 0 to 2^53 - 1)",
            ));
        }
        // An integral f64 within the safe range converts to u64 exactly.
        return Ok((millis as u64).to_string());
    }
    if kind != ValueType::String {
        let expected = if field == TokenField::ExpiryTime {
            "a string of digits, a number or null"
        } else {
            "a string or null"
        };
        return Err(Failure::arg_type(format!(
            "token field {} must be {expected}, not {}",
            field.name(),
            type_name(value)
        )));
    }
    match read_string(value, MAX_FIELD_LEN)? {
        // Moved out whole: the token's secret fields zeroize it from here on.
        Text::Ok(mut text) => Ok(std::mem::take(&mut *text)),
        Text::TooLong => Err(Failure::invalid_token(too_long(field))),
        Text::LoneSurrogate => Err(Failure::invalid_token(&format!(
            "{} is not well-formed Unicode (it has a lone surrogate)",
            field.name()
        ))),
    }
}

fn too_long(field: TokenField) -> &'static str {
    match field {
        TokenField::Id => "id is longer than 1024 bytes (MAX_ID_LEN)",
        TokenField::UserName => "user_name is longer than 16 KiB (MAX_FIELD_LEN)",
        TokenField::ClientId => "client_id is longer than 16 KiB (MAX_FIELD_LEN)",
        TokenField::ClientSecret => "client_secret is longer than 16 KiB (MAX_FIELD_LEN)",
        TokenField::RefreshToken => "refresh_token is longer than 16 KiB (MAX_FIELD_LEN)",
        TokenField::AccessToken => "access_token is longer than 16 KiB (MAX_FIELD_LEN)",
        TokenField::GrantToken => "grant_token is longer than 16 KiB (MAX_FIELD_LEN)",
        TokenField::ExpiryTime => "expiry_time is not epoch milliseconds",
        TokenField::RedirectUrl => "redirect_url is longer than 16 KiB (MAX_FIELD_LEN)",
        TokenField::ApiDomain => "api_domain is longer than 16 KiB (MAX_FIELD_LEN)",
    }
}

fn unknown_field(key: &str) -> Failure {
    let shown: String = key.chars().take(40).flat_map(char::escape_debug).collect();
    Failure::new(
        crate::errors::code::INVALID_TOKEN,
        format!(
            "unknown token field \"{shown}\"; the fields are {}",
            TokenField::ALL.map(TokenField::name).join(", ")
        ),
    )
}

/// A token on its way out: its ten field values (`null` for an unset one) as an array in
/// `fields()` order, which `index.js` turns into an object with the Zoho field names — one
/// N-API call a value, instead of a property key made and looked up for each. Secrets
/// included (the caller asked for the token); each value is copied into a JS string from a
/// buffer zeroed after.
pub struct TokenOut(pub OAuthToken);

impl TokenOut {
    /// The array, with room for `extra` more elements after the fields.
    fn into_array(self, env: &Env, extra: u32) -> napi::Result<Array<'_>> {
        let mut values = env.create_array(TokenField::ALL.len() as u32 + extra)?;
        for (index, field) in (0u32..).zip(TokenField::ALL) {
            let value = self.0.expose_field(field);
            values.set(index, value.as_deref().map(String::as_str))?;
        }
        Ok(values)
    }
}

impl TypeName for TokenOut {
    fn type_name() -> &'static str {
        "TokenValues"
    }

    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ToNapiValue for TokenOut {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        let env = Env::from_raw(env);
        Ok(val.into_array(&env, 0)?.raw())
    }
}

/// A secret on its way out (an access token): copied into a JS string from a buffer zeroed
/// after.
pub struct SecretText(pub Zeroizing<String>);

impl TypeName for SecretText {
    fn type_name() -> &'static str {
        "string"
    }

    fn value_type() -> ValueType {
        ValueType::String
    }
}

impl ToNapiValue for SecretText {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        // SAFETY: `env` is the live environment N-API handed to this conversion (the caller's
        // contract), passed on unchanged.
        unsafe { <&str as ToNapiValue>::to_napi_value(env, val.0.as_str()) }
    }
}

/// What `findFreshToken` gives: the record's ten values and, after them, whether it needed a
/// refresh (then its access token, expiry and refresh token replace what the caller had).
pub struct FreshOut {
    pub token: OAuthToken,
    pub refreshed: bool,
}

impl TypeName for FreshOut {
    fn type_name() -> &'static str {
        "FreshTokenValues"
    }

    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ToNapiValue for FreshOut {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        let env = Env::from_raw(env);
        let mut values = TokenOut(val.token).into_array(&env, 1)?;
        values.set(TokenField::ALL.len() as u32, val.refreshed)?;
        Ok(values.raw())
    }
}
