//! The OAuth 2.0 refresh grant (RFC 6749 §6), for [`EncryptedStore::refresh_with`]
//! (feature `oauth`).
//!
//! What a token endpoint is allowed to do is bounded: its URL must be `https://`, or `http://`
//! to a [loopback host](crate::loopback) only, and never carries userinfo; a redirect is never
//! followed (a refresh token and client secret must not be re-posted to where a `Location`
//! header points); the answer is read up to 64 KiB; its values must be bounded text without
//! control characters (they end up in terminals and HTTP headers); `expires_in` is bounded.
//! Errors carry no token, secret, or text the server sent beyond a sanitized OAuth error code.
//!
//! [`EncryptedStore::refresh_with`]: crate::EncryptedStore::refresh_with

use std::time::{Duration, SystemTime};

use zeroize::Zeroizing;

use crate::loopback::is_loopback_host;
use crate::token::{MAX_FIELD_LEN, OAuthToken};

/// Zoho's data centres: the API domain's suffix after `zohoapis.` and the accounts server
/// that issues its tokens (`{accounts}/oauth/v2/token`).
pub const ZOHO_DATA_CENTRES: [(&str, &str); 8] = [
    ("com", "https://accounts.zoho.com"),
    ("eu", "https://accounts.zoho.eu"),
    ("in", "https://accounts.zoho.in"),
    ("com.au", "https://accounts.zoho.com.au"),
    ("jp", "https://accounts.zoho.jp"),
    ("ca", "https://accounts.zohocloud.ca"),
    ("com.cn", "https://accounts.zoho.com.cn"),
    ("sa", "https://accounts.zoho.sa"),
];

/// The longest `expires_in` accepted from a token endpoint: ten years, in seconds. Access
/// tokens live for an hour; a larger value is an endpoint error, not a token to keep forever.
pub const MAX_EXPIRES_IN: u64 = 10 * 365 * 24 * 3600;

/// The most of a token endpoint's answer that is read.
pub const MAX_ANSWER_BYTES: u64 = 64 * 1024;

/// What went wrong with a refresh. Never contains a token, a secret or the server's text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    /// The record lacks what the grant needs (the field's name).
    #[error("the record has no {0}, which the refresh grant needs")]
    Incomplete(&'static str),
    /// No URL given and none derivable from the record's API domain.
    #[error("no token URL given and the record's api_domain is not a known Zoho data centre")]
    NoUrl,
    /// The token URL is refused (why).
    #[error("{0}")]
    Url(&'static str),
    /// Unreachable, timed out, or the connection failed (the kind of failure).
    #[error("token endpoint unreachable: {0}")]
    Transport(&'static str),
    /// The endpoint answered with a redirect, which is never followed.
    #[error("token endpoint answered with a redirect (HTTP {status}), which is not followed")]
    Redirected {
        /// The HTTP status.
        status: u16,
    },
    /// The server refused: its OAuth `error` code (cut to code characters) and HTTP status.
    #[error("token endpoint refused the refresh: {error} (HTTP {status})")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The OAuth error code, e.g. `invalid_grant`.
        error: String,
    },
    /// The answer is not what the grant returns (what is wrong).
    #[error("token endpoint answered malformed JSON: {0}")]
    Malformed(&'static str),
}

/// The Zoho token endpoint for a record's API domain (`https://www.zohoapis.eu` →
/// `https://accounts.zoho.eu/oauth/v2/token`); `None` for a domain that is not Zoho's.
pub fn zoho_token_url(api_domain: &str) -> Option<String> {
    let parsed = url::Url::parse(api_domain).ok()?;
    let host = parsed.host_str()?;
    let suffix = host.split_once("zohoapis.")?.1;
    ZOHO_DATA_CENTRES
        .iter()
        .find(|(s, _)| *s == suffix)
        .map(|(_, accounts)| format!("{accounts}/oauth/v2/token"))
}

/// Checks a token URL: `https://`, or `http://` only to a loopback host (decided from the
/// parsed host, see [`crate::loopback`]); no userinfo (`user:pass@`).
///
/// # Errors
/// [`OAuthError::Url`] saying which rule the URL breaks.
pub fn check_token_url(text: &str) -> Result<url::Url, OAuthError> {
    let url = url::Url::parse(text).map_err(|_| OAuthError::Url("the token URL is not a URL"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(OAuthError::Url(
            "the token URL must not carry a user name or password (user:pass@)",
        ));
    }
    let host = url
        .host_str()
        .ok_or(OAuthError::Url("the token URL has no host"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback_host(host) => Ok(url),
        "http" => Err(OAuthError::Url(
            "the token URL must use https:// (plain http only to a loopback host: 127.0.0.0/8, ::1, localhost)",
        )),
        _ => Err(OAuthError::Url("the token URL must start with https://")),
    }
}

/// Spends `token`'s refresh token at the endpoint (`token_url`, else the Zoho accounts server
/// of the record's API domain); returns the new fields: access token and expiry, and a
/// rotated refresh token or API domain when the server sends them. Use it as the refresher of
/// [`EncryptedStore::refresh_with`](crate::EncryptedStore::refresh_with).
///
/// # Errors
/// [`OAuthError`]: nothing was saved; the stored refresh token may or may not have been spent
/// if the failure came after the request was sent.
pub fn refresh(
    token: &OAuthToken,
    token_url: Option<&str>,
    timeout: Duration,
) -> Result<OAuthToken, OAuthError> {
    let url = match token_url {
        Some(url) => url.to_owned(),
        None => token
            .api_domain()
            .and_then(zoho_token_url)
            .ok_or(OAuthError::NoUrl)?,
    };
    let url = check_token_url(&url)?;
    let refresh_token = token
        .refresh_token()
        .ok_or(OAuthError::Incomplete("refresh token"))?;
    let client_id = token
        .client_id()
        .ok_or(OAuthError::Incomplete("client id"))?;
    let client_secret = token
        .client_secret()
        .ok_or(OAuthError::Incomplete("client secret"))?;

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        // A 3xx answer comes back as it is and is refused below: the form (refresh token,
        // client secret) is never sent on to where a Location header points.
        .max_redirects(0)
        .build()
        .into();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose_secret()),
        ("client_id", client_id),
        ("client_secret", client_secret.expose_secret()),
    ];
    let mut response = agent
        .post(url.as_str())
        .send_form(form)
        .map_err(|e| OAuthError::Transport(transport_reason(&e)))?;
    let status = response.status().as_u16();
    let mut body = Zeroizing::new(Vec::new());
    std::io::Read::read_to_end(
        &mut response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .reader(),
        &mut body,
    )
    .map_err(|_| OAuthError::Transport("the answer could not be read, or is over 64 KiB"))?;
    parse_token_response(status, &body)
}

/// Reads a token endpoint's answer (HTTP `status` and `body`) into the fields it refreshes:
/// access token, expiry (`expires_in` from now), and a rotated refresh token or API domain
/// when present.
///
/// # Errors
/// [`OAuthError::Redirected`] for a 3xx status; [`OAuthError::Server`] for an error status or
/// an `error` field (Zoho answers some errors with HTTP 200); [`OAuthError::Malformed`] for an
/// answer without a usable access token or `expires_in`, or with a value that is not bounded
/// text free of control characters.
pub fn parse_token_response(status: u16, body: &[u8]) -> Result<OAuthToken, OAuthError> {
    if (300..400).contains(&status) {
        return Err(OAuthError::Redirected { status });
    }
    let json: serde_json::Value = match serde_json::from_slice(body) {
        Ok(json) => json,
        Err(_) if status >= 400 => {
            return Err(OAuthError::Server {
                status,
                error: "non-JSON error answer".into(),
            });
        }
        Err(_) => return Err(OAuthError::Malformed("not JSON")),
    };
    if status >= 400 || json.get("error").is_some() {
        return Err(OAuthError::Server {
            status,
            error: error_code(json.get("error")),
        });
    }
    let access =
        text_value(&json, "access_token")?.ok_or(OAuthError::Malformed("no access_token"))?;
    let expires_in = json
        .get("expires_in")
        .or_else(|| json.get("expires_in_sec"))
        .and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .ok_or(OAuthError::Malformed("no expires_in"))?;
    if expires_in > MAX_EXPIRES_IN {
        return Err(OAuthError::Malformed("expires_in is over ten years"));
    }
    let mut fresh = OAuthToken::new()
        .with_access_token(access)
        .with_expiry_after(SystemTime::now(), Duration::from_secs(expires_in));
    if let Some(rotated) = text_value(&json, "refresh_token")? {
        fresh.set_refresh_token(Some(rotated.to_owned()));
    }
    if let Some(domain) = text_value(&json, "api_domain")? {
        fresh.set_api_domain(Some(domain.to_owned()));
    }
    Ok(fresh)
}

/// A string member of the answer: absent is `None`; present, it must be a non-empty string of
/// at most [`MAX_FIELD_LEN`] bytes without control characters.
fn text_value<'a>(
    json: &'a serde_json::Value,
    key: &'static str,
) -> Result<Option<&'a str>, OAuthError> {
    let Some(value) = json.get(key) else {
        return Ok(None);
    };
    let reason = match key {
        "access_token" => {
            "access_token must be a non-empty string within 16 KiB without control characters"
        }
        "refresh_token" => {
            "refresh_token must be a non-empty string within 16 KiB without control characters"
        }
        _ => "api_domain must be a non-empty string within 16 KiB without control characters",
    };
    match value.as_str() {
        Some(text)
            if !text.is_empty()
                && text.len() <= MAX_FIELD_LEN
                && !text.chars().any(char::is_control) =>
        {
            Ok(Some(text))
        }
        _ => Err(OAuthError::Malformed(reason)),
    }
}

/// An OAuth error code as the server sent it, cut down to what such codes contain, so that an
/// endpoint echoing a token cannot get it printed.
fn error_code(value: Option<&serde_json::Value>) -> String {
    let text = value.and_then(|v| v.as_str()).unwrap_or_default();
    // The leading code only: stop at the first character no OAuth error code has.
    let code: String = text
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect();
    if code.is_empty() {
        "unknown error".into()
    } else {
        code
    }
}

/// A transport error's kind, without the URL's query or anything the server sent.
fn transport_reason(e: &ureq::Error) -> &'static str {
    match e {
        ureq::Error::Timeout(_) => "timed out",
        ureq::Error::Io(_) => "I/O error",
        ureq::Error::HostNotFound => "host not found",
        ureq::Error::ConnectionFailed => "connection failed",
        ureq::Error::BodyExceedsLimit(_) => "answer too large",
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => "TLS failed",
        _ => "request failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoho_data_centres_map_to_token_urls() {
        assert_eq!(
            zoho_token_url("https://www.zohoapis.com").as_deref(),
            Some("https://accounts.zoho.com/oauth/v2/token")
        );
        assert_eq!(
            zoho_token_url("https://www.zohoapis.eu/").as_deref(),
            Some("https://accounts.zoho.eu/oauth/v2/token")
        );
        assert_eq!(
            zoho_token_url("https://sandbox.zohoapis.com.au").as_deref(),
            Some("https://accounts.zoho.com.au/oauth/v2/token")
        );
        assert_eq!(
            zoho_token_url("https://www.zohoapis.ca").as_deref(),
            Some("https://accounts.zohocloud.ca/oauth/v2/token")
        );
        assert_eq!(zoho_token_url("https://example.com"), None);
    }

    #[test]
    fn plain_http_only_to_a_parsed_loopback_host() {
        for ok in [
            "https://accounts.zoho.com/oauth/v2/token",
            "http://127.0.0.1:8080/token",
            "http://127.9.9.9/token",
            "http://localhost/token",
            "http://[::1]:9/token",
        ] {
            assert!(check_token_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://accounts.zoho.com/oauth/v2/token",
            // The review's findings: userinfo and a name that starts like an address.
            "http://127.0.0.1@evil.example/token",
            "http://127.anything.example/token",
            "http://127.0.0.1.evil.example/token",
            "https://user:pw@accounts.zoho.com/oauth/v2/token",
            "http://localhost.evil.example/token",
            "ftp://127.0.0.1/x",
            "127.0.0.1/token",
        ] {
            assert!(check_token_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_are_bounded_and_free_of_control_characters() {
        let ok = br#"{"access_token":"1000.a","expires_in":3600,"refresh_token":"1000.r","api_domain":"https://www.zohoapis.eu"}"#;
        let token = parse_token_response(200, ok).unwrap();
        assert_eq!(token.access_token().unwrap().expose_secret(), "1000.a");
        assert_eq!(token.refresh_token().unwrap().expose_secret(), "1000.r");
        assert!(!token.is_expired());
        for bad in [
            &br#"{"access_token":"1000.\u001b]0;owned\u0007","expires_in":3600}"#[..],
            br#"{"access_token":"a\r\nX-Injected: 1","expires_in":3600}"#,
            br#"{"access_token":"a","expires_in":3600,"refresh_token":"r\n"}"#,
            br#"{"access_token":"a","expires_in":3600,"api_domain":"\u0000"}"#,
            br#"{"access_token":"","expires_in":3600}"#,
            br#"{"access_token":7,"expires_in":3600}"#,
            br#"{"access_token":"a","expires_in":18446744073709551615}"#,
            br#"{"access_token":"a","expires_in":"99999999999"}"#,
            br#"{"access_token":"a"}"#,
        ] {
            assert!(
                matches!(
                    parse_token_response(200, bad),
                    Err(OAuthError::Malformed(_))
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!(
            r#"{{"access_token":"{}","expires_in":1}}"#,
            "a".repeat(MAX_FIELD_LEN + 1)
        );
        assert!(parse_token_response(200, long.as_bytes()).is_err());
        assert!(matches!(
            parse_token_response(302, b""),
            Err(OAuthError::Redirected { status: 302 })
        ));
    }

    #[test]
    fn error_codes_are_cut_to_code_characters() {
        let v = serde_json::json!("invalid_grant: token 1000.abc.def was used");
        assert_eq!(error_code(Some(&v)), "invalid_grant");
        assert_eq!(
            error_code(Some(&serde_json::json!(" 1000.abc"))),
            "unknown error"
        );
        assert_eq!(error_code(None), "unknown error");
    }
}
