//! Tokens across the boundary: a dict with the Zoho field names in, a dict with all ten keys
//! out (`None` for an unset field). `expiry_time` is epoch milliseconds: a digit string, as
//! the Zoho SDKs keep it (an `int` is accepted too).

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyInt, PyString};
use tokenvault::{OAuthToken, TokenField};

use crate::errors::InvalidToken;

/// The token a dict describes. Unknown keys, wrong types and values the library refuses
/// (oversized, malformed `expiry_time`) raise; nothing of a value is put in the message.
pub fn token_from_dict(value: &Bound<'_, PyAny>) -> PyResult<OAuthToken> {
    let dict = value.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err(format!(
            "a token is a dict with the Zoho field names, not {}",
            type_name(value)
        ))
    })?;
    let mut token = OAuthToken::new();
    for (key, value) in dict.iter() {
        let field = field_of(&key)?;
        if value.is_none() {
            continue;
        }
        let is_int = value.is_instance_of::<PyInt>() && !value.is_instance_of::<PyBool>();
        let text = if field == TokenField::ExpiryTime && is_int {
            let millis: u64 = value.extract().map_err(|_| {
                InvalidToken::new_err("expiry_time must be epoch milliseconds (0 or more, < 2^64)")
            })?;
            millis.to_string()
        } else {
            text_of(field, &value)?
        };
        token
            .set_field(field, Some(text))
            .map_err(|reason| InvalidToken::new_err(format!("invalid token: {reason}")))?;
    }
    token
        .check_bounds()
        .map_err(|reason| InvalidToken::new_err(format!("invalid token: {reason}")))?;
    Ok(token)
}

/// A dict of every field of `token`, secrets included (the caller asked for the token).
pub fn token_to_dict<'py>(py: Python<'py>, token: &OAuthToken) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for field in TokenField::ALL {
        let value = token.expose_field(field);
        dict.set_item(field.name(), value.as_deref().map(String::as_str))?;
    }
    Ok(dict)
}

/// A str argument as text, refusing what is not valid Unicode (lone surrogates).
pub fn text_arg(what: &str, value: &Bound<'_, PyAny>) -> PyResult<String> {
    let text = value.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!("{what} must be str, not {}", type_name(value)))
    })?;
    text.to_cow()
        .map(|t| t.into_owned())
        .map_err(|_| InvalidToken::new_err(format!("{what} is not valid Unicode text")))
}

fn field_of(key: &Bound<'_, PyAny>) -> PyResult<TokenField> {
    let name = key
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err("token keys are field names (str)"))?
        .to_cow()
        .map_err(|_| InvalidToken::new_err("a token key is not valid Unicode text"))?;
    TokenField::from_name(&name).ok_or_else(|| {
        let shown: String = name.chars().take(40).flat_map(char::escape_debug).collect();
        InvalidToken::new_err(format!(
            "unknown token field \"{shown}\"; the fields are {}",
            TokenField::ALL.map(TokenField::name).join(", ")
        ))
    })
}

fn text_of(field: TokenField, value: &Bound<'_, PyAny>) -> PyResult<String> {
    let text = value.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!(
            "token field {} must be str or None, not {}",
            field.name(),
            type_name(value)
        ))
    })?;
    text.to_cow().map(|t| t.into_owned()).map_err(|_| {
        InvalidToken::new_err(format!(
            "token field {} is not valid Unicode text",
            field.name()
        ))
    })
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "an unknown type".to_owned())
}
