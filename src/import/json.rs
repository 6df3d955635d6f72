//! tokenvault's JSON: an array of token objects with the Zoho field names (one object is
//! accepted too), as `tokenvault export --format json` writes.

use std::io::{Read, Write};

use serde_json::value::RawValue;

use super::Row;
use crate::token::OAuthToken;

/// Reads a JSON array of tokens (or one token). An element that is not a valid token is a
/// refused row.
///
/// # Errors
/// The input is not JSON, or neither an object nor an array.
pub fn read(mut input: impl Read) -> Result<Vec<Row>, String> {
    let mut text = zeroize::Zeroizing::new(String::new());
    input
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read input: {e}"))?;
    // Each element is parsed from its own text, not through `serde_json::Value`, so that a
    // duplicated key is an error rather than silently the last value.
    let items: Vec<Box<RawValue>> = match text.trim_start().as_bytes().first() {
        Some(b'[') => serde_json::from_str(&text).map_err(|e| safe_reason(&e))?,
        Some(b'{') => vec![serde_json::from_str(&text).map_err(|e| safe_reason(&e))?],
        _ => return Err("expected a token object or an array of them".into()),
    };
    Ok(items
        .iter()
        .enumerate()
        .map(|(i, item)| Row {
            number: i as u64 + 1,
            token: serde_json::from_str::<OAuthToken>(item.get()).map_err(|e| safe_reason(&e)),
        })
        .collect())
}

/// A serde error as a message that never quotes an input value: serde names unknown or
/// missing *fields* (not secret) but quotes offending *values* ("invalid type: integer
/// `12345`"), which may be tokens.
pub fn safe_reason(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let text = e.to_string();
    let text = text.split(" at line ").next().unwrap_or_default();
    match e.classify() {
        Category::Syntax | Category::Eof => {
            format!("not valid JSON (line {}, column {})", e.line(), e.column())
        }
        Category::Io => "cannot read the input".into(),
        Category::Data
            if [
                "unknown field",
                "missing field",
                "duplicate field",
                "expiry_time ",
            ]
            .iter()
            .any(|p| text.starts_with(p)) =>
        {
            text.to_owned()
        }
        Category::Data if text.starts_with("invalid type") => {
            "a field has the wrong type (token fields are strings)".into()
        }
        Category::Data => "a field has an invalid value".into(),
    }
}

/// Writes tokens as a JSON array, secrets in plaintext.
///
/// # Errors
/// I/O errors from `output`.
pub fn write(mut output: impl Write, tokens: &[OAuthToken]) -> std::io::Result<()> {
    let views: Vec<_> = tokens.iter().map(OAuthToken::expose_secrets).collect();
    serde_json::to_writer_pretty(&mut output, &views)?;
    output.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_and_values_never_quoted() {
        let rows = read(&br#"[{"access_token":"A","access_token":"B"},{"access_token":12345},{"user_name":"u","refresh_token":"r"}]"#[..]).unwrap();
        assert!(
            rows[0]
                .token
                .as_ref()
                .unwrap_err()
                .contains("duplicate field")
        );
        let wrong_type = rows[1].token.as_ref().unwrap_err();
        assert!(!wrong_type.contains("12345"), "{wrong_type}");
        assert_eq!(rows[2].token.as_ref().unwrap().user_name(), Some("u"));
        assert!(read(&b"42"[..]).is_err());
        assert_eq!(read(&br#"{"user_name":"u"}"#[..]).unwrap().len(), 1);
    }
}
