//! A token as JSON: the Zoho SDKs' keys, `expiry_time` as a digit string, duplicates and
//! unknown keys refused; secrets written only through [`OAuthToken::expose_secrets`].

use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{AccessToken, ClientSecret, GrantToken, OAuthToken, RefreshToken};

/// Serializes a token with its secrets; see [`OAuthToken::expose_secrets`].
pub struct ExposeSecrets<'a> {
    pub(super) token: &'a OAuthToken,
}

impl Serialize for ExposeSecrets<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let t = self.token;
        let mut s = serializer.serialize_struct("OAuthToken", 10)?;
        let expiry = t.expiry_time.map(|ms| ms.to_string());
        let fields: [(&str, Option<&str>); 10] = [
            ("id", t.id.as_deref()),
            ("user_name", t.user_name.as_deref()),
            ("client_id", t.client_id.as_deref()),
            (
                "client_secret",
                t.client_secret.as_ref().map(ClientSecret::expose_secret),
            ),
            (
                "refresh_token",
                t.refresh_token.as_ref().map(RefreshToken::expose_secret),
            ),
            (
                "access_token",
                t.access_token.as_ref().map(AccessToken::expose_secret),
            ),
            (
                "grant_token",
                t.grant_token.as_ref().map(GrantToken::expose_secret),
            ),
            ("expiry_time", expiry.as_deref()),
            ("redirect_url", t.redirect_url.as_deref()),
            ("api_domain", t.api_domain.as_deref()),
        ];
        for (key, value) in fields {
            match value {
                Some(v) => s.serialize_field(key, v)?,
                None => s.skip_field(key)?,
            }
        }
        s.end()
    }
}

/// `expiry_time` in JSON: the Zoho SDKs write a string of digits; a number is accepted too.
#[derive(Deserialize)]
#[serde(untagged)]
enum ExpiryJson {
    Text(String),
    Number(u64),
}

/// Parses an `expiry_time` value: epoch milliseconds as a string of ASCII digits.
pub(crate) fn parse_expiry(text: &str) -> Result<Option<u64>, &'static str> {
    if text.is_empty() {
        return Ok(None);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expiry_time must be epoch milliseconds (digits only)");
    }
    text.parse()
        .map(Some)
        .map_err(|_| "expiry_time is too large")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenJson {
    id: Option<String>,
    user_name: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    access_token: Option<String>,
    grant_token: Option<String>,
    expiry_time: Option<ExpiryJson>,
    #[serde(alias = "redirect_uri")]
    redirect_url: Option<String>,
    api_domain: Option<String>,
}

impl<'de> Deserialize<'de> for OAuthToken {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = TokenJson::deserialize(deserializer)?;
        let expiry_time = match json.expiry_time {
            None => None,
            Some(ExpiryJson::Number(ms)) => Some(ms),
            Some(ExpiryJson::Text(text)) => {
                parse_expiry(&text).map_err(serde::de::Error::custom)?
            }
        };
        let mut token = OAuthToken {
            expiry_time,
            ..OAuthToken::default()
        };
        token.set_id(json.id);
        token.set_user_name(json.user_name);
        token.set_client_id(json.client_id);
        token.set_client_secret(json.client_secret);
        token.set_refresh_token(json.refresh_token);
        token.set_access_token(json.access_token);
        token.set_grant_token(json.grant_token);
        token.set_redirect_url(json.redirect_url);
        token.set_api_domain(json.api_domain);
        Ok(token)
    }
}
