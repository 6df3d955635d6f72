//! The OAuth 2.0 refresh grant (RFC 6749 §6) against a token endpoint, for `access-token`.

use std::time::{Duration, SystemTime};

use std::io::Write;
use std::process::ExitCode;

use tokenvault::{OAuthToken, TokenField};

use crate::CliError;
use crate::open::{Store, StoreUri};
use zeroize::Zeroizing;

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

/// The Zoho token endpoint for a record's API domain (`https://www.zohoapis.eu` →
/// `https://accounts.zoho.eu/oauth/v2/token`).
pub fn zoho_token_url(api_domain: &str) -> Option<String> {
    let host = api_domain.trim_end_matches('/').rsplit("://").next()?;
    let suffix = host.split_once("zohoapis.")?.1;
    ZOHO_DATA_CENTRES
        .iter()
        .find(|(s, _)| *s == suffix)
        .map(|(_, accounts)| format!("{accounts}/oauth/v2/token"))
}

/// Refuses plain http except to the loopback interface (tests, local proxies).
pub fn check_url(url: &str) -> Result<(), String> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err("the token URL must start with https://".into());
    };
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let loopback = host == "localhost" || host == "[::1]" || host.starts_with("127.");
    if loopback {
        Ok(())
    } else {
        Err("the token URL must use https:// (plain http only to 127.0.0.1/localhost)".into())
    }
}

/// What went wrong talking to the token endpoint. Never contains a token.
#[derive(Debug)]
pub enum OAuthError {
    /// The record lacks what the grant needs.
    Incomplete(&'static str),
    /// No URL given and none derivable.
    NoUrl,
    /// Bad URL.
    Url(String),
    /// Unreachable, timed out, or the connection failed.
    Transport(String),
    /// The server refused: its `error` code and HTTP status.
    Server { status: u16, error: String },
    /// The answer is not the JSON the grant returns.
    Malformed(&'static str),
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OAuthError::Incomplete(what) => {
                write!(f, "the record has no {what}, which the refresh grant needs")
            }
            OAuthError::NoUrl => f.write_str(
                "no --token-url given and the record's api_domain is not a known Zoho data centre",
            ),
            OAuthError::Url(why) => f.write_str(why),
            OAuthError::Transport(why) => write!(f, "token endpoint unreachable: {why}"),
            OAuthError::Server { status, error } => write!(
                f,
                "token endpoint refused the refresh: {error} (HTTP {status})"
            ),
            OAuthError::Malformed(why) => {
                write!(f, "token endpoint answered malformed JSON: {why}")
            }
        }
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

/// Spends `token`'s refresh token at the endpoint; returns the new fields (access token,
/// expiry, and a rotated refresh token or API domain when the server sends them).
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
    check_url(&url).map_err(OAuthError::Url)?;
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
        .build()
        .into();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose_secret()),
        ("client_id", client_id),
        ("client_secret", client_secret.expose_secret()),
    ];
    let mut response = agent
        .post(&url)
        .send_form(form)
        .map_err(|e| OAuthError::Transport(transport_reason(&e)))?;
    let status = response.status().as_u16();
    let body = Zeroizing::new(
        response
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .map_err(|e| OAuthError::Transport(transport_reason(&e)))?,
    );
    let json: serde_json::Value = serde_json::from_str(&body).map_err(|_| {
        if status >= 400 {
            OAuthError::Server {
                status,
                error: "non-JSON error answer".into(),
            }
        } else {
            OAuthError::Malformed("not JSON")
        }
    })?;
    // Zoho answers some errors with HTTP 200 and an `error` field.
    if status >= 400 || json.get("error").is_some() {
        return Err(OAuthError::Server {
            status,
            error: error_code(json.get("error")),
        });
    }
    let access = json
        .get("access_token")
        .and_then(|v| v.as_str())
        .ok_or(OAuthError::Malformed("no access_token"))?;
    let expires_in = json
        .get("expires_in")
        .or_else(|| json.get("expires_in_sec"))
        .and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .ok_or(OAuthError::Malformed("no expires_in"))?;
    let mut fresh = OAuthToken::new()
        .with_access_token(access)
        .with_expiry_after(SystemTime::now(), Duration::from_secs(expires_in));
    if let Some(rotated) = json.get("refresh_token").and_then(|v| v.as_str()) {
        fresh.set_refresh_token(Some(rotated.to_owned()));
    }
    if let Some(domain) = json.get("api_domain").and_then(|v| v.as_str()) {
        fresh.set_api_domain(Some(domain.to_owned()));
    }
    Ok(fresh)
}

/// A transport error's kind, without the URL's query or anything the server sent.
fn transport_reason(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => "timed out".into(),
        ureq::Error::Io(io) => io.kind().to_string(),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::BodyExceedsLimit(_) => "answer too large".into(),
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => "TLS failed".into(),
        _ => "request failed".into(),
    }
}

/// `tokenvault access-token`: prints a valid access token, refreshing it first if needed.
#[allow(clippy::too_many_arguments)]
pub fn access_token(
    store: &Store,
    uri: &StoreUri,
    id: Option<String>,
    user: Option<String>,
    token_url: Option<&str>,
    skew: u64,
    timeout: u64,
) -> Result<ExitCode, CliError> {
    let query = match (id, user) {
        (Some(id), _) => OAuthToken::new().with_id(id),
        (None, Some(user)) => OAuthToken::new().with_user_name(user),
        (None, None) => return Err(CliError::usage("give an id or --user NAME")),
    };
    if let Some(url) = token_url {
        check_url(url).map_err(CliError::usage)?;
    }
    let timeout = std::time::Duration::from_secs(timeout);
    let token = store
        .refresh_with(&query, std::time::Duration::from_secs(skew), |stored| {
            refresh(stored, token_url, timeout)
        })
        .map_err(|e| match e {
            tokenvault::RefreshError::Store(e) => uri.error(e),
            tokenvault::RefreshError::Refresher(e) => CliError::failure(e.to_string()),
        })?;
    let access = token
        .expose_field(TokenField::AccessToken)
        .ok_or_else(|| CliError::failure("the token endpoint gave no access token"))?;
    writeln!(std::io::stdout().lock(), "{}", access.as_str())?;
    Ok(ExitCode::SUCCESS)
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
    fn plain_http_only_to_loopback() {
        assert!(check_url("https://accounts.zoho.com/oauth/v2/token").is_ok());
        assert!(check_url("http://127.0.0.1:8080/token").is_ok());
        assert!(check_url("http://localhost/token").is_ok());
        assert!(check_url("http://accounts.zoho.com/oauth/v2/token").is_err());
        assert!(check_url("ftp://x").is_err());
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
