//! The token record: the Zoho SDK's ten fields, with the secret ones kept in zeroizing newtypes.
//!
//! An [`OAuthToken`] never prints a secret: its `Debug` redacts the four secret fields, it has no
//! `Display`, and it is not `Serialize`. Writing the secrets out is an explicit act:
//! [`OAuthToken::expose_secrets`] returns a view that serializes every field.

mod field;
mod json;
mod secret;

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

pub use field::TokenField;
pub use json::ExposeSecrets;
pub(crate) use json::parse_expiry;
pub use secret::{AccessToken, ClientSecret, GrantToken, RefreshToken, UserSignature};

/// One OAuth token record, as the Zoho SDKs define it. Every field is optional; a saved token has
/// an `id`.
///
/// Empty strings are absent values: `with_user_name("")` leaves the user name unset, as an empty
/// CSV cell or JSON string does. This is what the Zoho matching rules assume.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct OAuthToken {
    id: Option<String>,
    user_name: Option<String>,
    client_id: Option<String>,
    client_secret: Option<ClientSecret>,
    refresh_token: Option<RefreshToken>,
    access_token: Option<AccessToken>,
    grant_token: Option<GrantToken>,
    expiry_time: Option<u64>,
    redirect_url: Option<String>,
    api_domain: Option<String>,
}

/// The longest record id a store accepts, in bytes.
pub const MAX_ID_LEN: usize = 1024;

/// The longest value of any other field a store accepts, in bytes (OAuth tokens and client
/// secrets run to a few hundred bytes; this leaves ample room and bounds every record).
pub const MAX_FIELD_LEN: usize = 16 * 1024;

/// Checks a record id: 1 to [`MAX_ID_LEN`] bytes, no control characters (ids are printed in
/// listings and reports, and name files in some front ends).
///
/// # Errors
/// A reason (never the id itself).
pub fn check_record_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        Err("a record id must not be empty")
    } else if id.len() > MAX_ID_LEN {
        Err("a record id must be at most MAX_ID_LEN (1024) bytes")
    } else if id.chars().any(char::is_control) {
        Err("a record id must not contain control characters")
    } else {
        Ok(())
    }
}

fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

/// Generates the getter, builder and setter of a string field.
macro_rules! plain_field {
    ($field:ident, $with:ident, $set:ident, $what:literal) => {
        #[doc = concat!("The ", $what, ", if set.")]
        pub fn $field(&self) -> Option<&str> {
            self.$field.as_deref()
        }
        #[doc = concat!("Sets the ", $what, " (an empty string leaves it unset).")]
        pub fn $with(mut self, value: impl Into<String>) -> Self {
            self.$set(Some(value.into()));
            self
        }
        #[doc = concat!("Sets or clears the ", $what, " (an empty string clears it).")]
        pub fn $set(&mut self, value: Option<String>) {
            self.$field = value.and_then(non_empty);
        }
    };
}

/// Generates the getter, builder and setter of a secret field.
macro_rules! secret_field {
    ($field:ident, $with:ident, $set:ident, $ty:ident, $what:literal) => {
        #[doc = concat!("The ", $what, ", if set.")]
        pub fn $field(&self) -> Option<&$ty> {
            self.$field.as_ref()
        }
        #[doc = concat!("Sets the ", $what, " (an empty string leaves it unset).")]
        pub fn $with(mut self, value: impl Into<String>) -> Self {
            self.$set(Some(value.into()));
            self
        }
        #[doc = concat!("Sets or clears the ", $what, " (an empty string clears it).")]
        pub fn $set(&mut self, value: Option<String>) {
            self.$field = value.and_then(non_empty).map($ty::new);
        }
    };
}

impl OAuthToken {
    /// A token with no field set.
    pub fn new() -> Self {
        Self::default()
    }

    plain_field!(id, with_id, set_id, "record id");
    plain_field!(user_name, with_user_name, set_user_name, "user name");
    plain_field!(client_id, with_client_id, set_client_id, "client id");
    secret_field!(
        client_secret,
        with_client_secret,
        set_client_secret,
        ClientSecret,
        "client secret"
    );
    secret_field!(
        refresh_token,
        with_refresh_token,
        set_refresh_token,
        RefreshToken,
        "refresh token"
    );
    secret_field!(
        access_token,
        with_access_token,
        set_access_token,
        AccessToken,
        "access token"
    );
    secret_field!(
        grant_token,
        with_grant_token,
        set_grant_token,
        GrantToken,
        "grant token"
    );
    plain_field!(
        redirect_url,
        with_redirect_url,
        set_redirect_url,
        "redirect URL"
    );
    plain_field!(api_domain, with_api_domain, set_api_domain, "API domain");

    /// The user signature (the user name), as the Zoho SDK calls it.
    pub fn user_signature(&self) -> Option<UserSignature> {
        self.user_name.clone().map(UserSignature::new)
    }

    /// The expiry time in epoch milliseconds, as the Zoho SDK stores it.
    pub fn expiry_time(&self) -> Option<u64> {
        self.expiry_time
    }

    /// Sets the expiry time in epoch milliseconds.
    pub fn with_expiry_time(mut self, epoch_millis: u64) -> Self {
        self.expiry_time = Some(epoch_millis);
        self
    }

    /// Sets or clears the expiry time in epoch milliseconds.
    pub fn set_expiry_time(&mut self, epoch_millis: Option<u64>) {
        self.expiry_time = epoch_millis;
    }

    /// Sets the expiry to `lifetime` after `now` (e.g. from an OAuth `expires_in`). A lifetime
    /// past what the clock can represent saturates at the largest expiry instead of panicking.
    pub fn with_expiry_after(self, now: SystemTime, lifetime: Duration) -> Self {
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let millis = since_epoch.saturating_add(lifetime).as_millis();
        self.with_expiry_time(u64::try_from(millis).unwrap_or(u64::MAX))
    }

    /// When the access token expires, if the record says.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expiry_time
            .and_then(|ms| UNIX_EPOCH.checked_add(Duration::from_millis(ms)))
    }

    /// Whether the access token has expired at `now`. A token with no expiry time counts as
    /// expired, so that a caller refreshes it rather than sends a token of unknown age.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expires_at().is_none_or(|at| at <= now)
    }

    /// Whether the access token has expired now.
    pub fn is_expired(&self) -> bool {
        self.is_expired_at(SystemTime::now())
    }

    /// Whether the access token expires within `window` from now (or has expired). A window
    /// past what the clock can represent covers every expiry.
    pub fn expires_within(&self, window: Duration) -> bool {
        SystemTime::now()
            .checked_add(window)
            .is_none_or(|later| self.is_expired_at(later))
    }

    /// Checks the [length bounds](MAX_FIELD_LEN) of every field and that the id, if any, is
    /// [a valid record id](check_record_id). Every store runs this before it writes.
    ///
    /// # Errors
    /// A reason naming the field (never its value).
    pub fn check_bounds(&self) -> Result<(), &'static str> {
        if let Some(id) = &self.id {
            check_record_id(id)?;
        }
        // Every field but the id and the expiry, by length (secrets without copying them).
        let plain = |v: &Option<String>| v.as_deref().map(str::len);
        let lengths = [
            (
                plain(&self.user_name),
                "user_name is longer than 16 KiB (MAX_FIELD_LEN)",
            ),
            (
                plain(&self.client_id),
                "client_id is longer than 16 KiB (MAX_FIELD_LEN)",
            ),
            (
                plain(&self.redirect_url),
                "redirect_url is longer than 16 KiB (MAX_FIELD_LEN)",
            ),
            (
                plain(&self.api_domain),
                "api_domain is longer than 16 KiB (MAX_FIELD_LEN)",
            ),
            (
                self.client_secret.as_ref().map(|s| s.expose_secret().len()),
                "client_secret is longer than 16 KiB (MAX_FIELD_LEN)",
            ),
            (
                self.refresh_token.as_ref().map(|s| s.expose_secret().len()),
                "refresh_token is longer than 16 KiB (MAX_FIELD_LEN)",
            ),
            (
                self.access_token.as_ref().map(|s| s.expose_secret().len()),
                "access_token is longer than 16 KiB (MAX_FIELD_LEN)",
            ),
            (
                self.grant_token.as_ref().map(|s| s.expose_secret().len()),
                "grant_token is longer than 16 KiB (MAX_FIELD_LEN)",
            ),
        ];
        match lengths
            .into_iter()
            .find(|(len, _)| len.is_some_and(|n| n > MAX_FIELD_LEN))
        {
            Some((_, reason)) => Err(reason),
            None => Ok(()),
        }
    }

    /// Fills every field this token lacks from `stored`: the Zoho SDK's merge, used both by
    /// `find_token` (stored record merged into the query) and by `save_token` (new values win,
    /// missing ones keep their stored values).
    pub fn fill_missing_from(&mut self, stored: &OAuthToken) {
        fn fill<T: Clone>(mine: &mut Option<T>, theirs: &Option<T>) {
            if mine.is_none() {
                mine.clone_from(theirs);
            }
        }
        fill(&mut self.id, &stored.id);
        fill(&mut self.user_name, &stored.user_name);
        fill(&mut self.client_id, &stored.client_id);
        fill(&mut self.client_secret, &stored.client_secret);
        fill(&mut self.refresh_token, &stored.refresh_token);
        fill(&mut self.access_token, &stored.access_token);
        fill(&mut self.grant_token, &stored.grant_token);
        fill(&mut self.expiry_time, &stored.expiry_time);
        fill(&mut self.redirect_url, &stored.redirect_url);
        fill(&mut self.api_domain, &stored.api_domain);
    }

    /// [`fill_missing_from`](Self::fill_missing_from), moving the values out of `stored`
    /// instead of copying them.
    pub(crate) fn take_missing_from(&mut self, stored: OAuthToken) {
        fn fill<T>(mine: &mut Option<T>, theirs: Option<T>) {
            if mine.is_none() {
                *mine = theirs;
            }
        }
        fill(&mut self.id, stored.id);
        fill(&mut self.user_name, stored.user_name);
        fill(&mut self.client_id, stored.client_id);
        fill(&mut self.client_secret, stored.client_secret);
        fill(&mut self.refresh_token, stored.refresh_token);
        fill(&mut self.access_token, stored.access_token);
        fill(&mut self.grant_token, stored.grant_token);
        fill(&mut self.expiry_time, stored.expiry_time);
        fill(&mut self.redirect_url, stored.redirect_url);
        fill(&mut self.api_domain, stored.api_domain);
    }

    /// Whether the token carries at least one of access, refresh or grant token: the Zoho rule
    /// for a record that may be inserted.
    pub fn has_any_token(&self) -> bool {
        self.access_token.is_some() || self.refresh_token.is_some() || self.grant_token.is_some()
    }

    /// A field's value as text, secrets included (hence the name); `None` when unset.
    pub fn expose_field(&self, field: TokenField) -> Option<Zeroizing<String>> {
        let text = match field {
            TokenField::Id => self.id.clone(),
            TokenField::UserName => self.user_name.clone(),
            TokenField::ClientId => self.client_id.clone(),
            TokenField::ClientSecret => self
                .client_secret
                .as_ref()
                .map(|s| s.expose_secret().to_owned()),
            TokenField::RefreshToken => self
                .refresh_token
                .as_ref()
                .map(|s| s.expose_secret().to_owned()),
            TokenField::AccessToken => self
                .access_token
                .as_ref()
                .map(|s| s.expose_secret().to_owned()),
            TokenField::GrantToken => self
                .grant_token
                .as_ref()
                .map(|s| s.expose_secret().to_owned()),
            TokenField::ExpiryTime => self.expiry_time.map(|t| t.to_string()),
            TokenField::RedirectUrl => self.redirect_url.clone(),
            TokenField::ApiDomain => self.api_domain.clone(),
        };
        text.map(Zeroizing::new)
    }

    /// Sets a field from text (the form CSV cells and SQL columns have); an empty or absent
    /// value clears it.
    ///
    /// # Errors
    /// A reason if `expiry_time` is not epoch milliseconds.
    pub fn set_field(
        &mut self,
        field: TokenField,
        value: Option<String>,
    ) -> Result<(), &'static str> {
        match field {
            TokenField::Id => self.set_id(value),
            TokenField::UserName => self.set_user_name(value),
            TokenField::ClientId => self.set_client_id(value),
            TokenField::ClientSecret => self.set_client_secret(value),
            TokenField::RefreshToken => self.set_refresh_token(value),
            TokenField::AccessToken => self.set_access_token(value),
            TokenField::GrantToken => self.set_grant_token(value),
            TokenField::ExpiryTime => {
                let value = Zeroizing::new(value.unwrap_or_default());
                self.expiry_time = parse_expiry(&value)?;
            }
            TokenField::RedirectUrl => self.set_redirect_url(value),
            TokenField::ApiDomain => self.set_api_domain(value),
        }
        Ok(())
    }

    /// A view of this token that serializes every field, secrets included, with the Zoho SDK's
    /// JSON keys. Use it to export; never to log.
    pub fn expose_secrets(&self) -> ExposeSecrets<'_> {
        ExposeSecrets { token: self }
    }
}

impl fmt::Debug for OAuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthToken")
            .field("id", &self.id)
            .field("user_name", &self.user_name)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("refresh_token", &self.refresh_token)
            .field("access_token", &self.access_token)
            .field("grant_token", &self.grant_token)
            .field("expiry_time", &self.expiry_time)
            .field("redirect_url", &self.redirect_url)
            .field("api_domain", &self.api_domain)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> OAuthToken {
        OAuthToken::new()
            .with_id("7")
            .with_user_name("ann@example.com")
            .with_client_id("1000.CLIENT")
            .with_client_secret("s3cr3t-client")
            .with_refresh_token("r3fr3sh")
            .with_access_token("acc3ss")
            .with_grant_token("gr4nt")
            .with_expiry_time(1_700_000_000_000)
            .with_redirect_url("https://example.com/cb")
            .with_api_domain("https://www.zohoapis.com")
    }

    #[test]
    fn debug_redacts_every_secret() {
        let text = format!("{:?} {:#?}", full(), full());
        for secret in ["s3cr3t-client", "r3fr3sh", "acc3ss", "gr4nt"] {
            assert!(!text.contains(secret), "{secret} leaked into {text}");
        }
        assert!(text.contains("ann@example.com"));
        assert!(text.contains("AccessToken(<redacted>)"));
    }

    #[test]
    fn json_uses_zoho_keys_and_round_trips() {
        let json = serde_json::to_value(full().expose_secrets()).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected: Vec<&str> = TokenField::ALL.iter().map(|f| f.name()).collect();
        expected.sort_unstable();
        let mut keys_sorted = keys.clone();
        keys_sorted.sort_unstable();
        assert_eq!(keys_sorted, expected);
        assert_eq!(json["expiry_time"], "1700000000000");
        let back: OAuthToken = serde_json::from_value(json).unwrap();
        assert_eq!(back, full());
    }

    #[test]
    fn json_accepts_numeric_expiry_and_redirect_uri_alias() {
        let t: OAuthToken = serde_json::from_str(
            r#"{"user_name":"u","expiry_time":12,"redirect_uri":"https://x/cb"}"#,
        )
        .unwrap();
        assert_eq!(t.expiry_time(), Some(12));
        assert_eq!(t.redirect_url(), Some("https://x/cb"));
    }

    #[test]
    fn json_rejects_unknown_keys_and_bad_expiry() {
        assert!(serde_json::from_str::<OAuthToken>(r#"{"refreshToken":"x"}"#).is_err());
        let err = serde_json::from_str::<OAuthToken>(r#"{"expiry_time":"12a"}"#).unwrap_err();
        assert!(err.to_string().contains("epoch milliseconds"));
    }

    #[test]
    fn empty_strings_are_absent() {
        let t: OAuthToken =
            serde_json::from_str(r#"{"user_name":"","access_token":"","expiry_time":""}"#).unwrap();
        assert_eq!(t, OAuthToken::new());
        assert_eq!(OAuthToken::new().with_user_name(""), OAuthToken::new());
    }

    #[test]
    fn expiry_helpers() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let t = OAuthToken::new().with_expiry_after(now, Duration::from_secs(60));
        assert_eq!(t.expiry_time(), Some(1_060_000));
        assert!(!t.is_expired_at(now));
        assert!(t.is_expired_at(now + Duration::from_secs(60)));
        assert!(
            OAuthToken::new().is_expired_at(now),
            "no expiry counts as expired"
        );
        let later =
            OAuthToken::new().with_expiry_after(SystemTime::now(), Duration::from_secs(3600));
        assert!(!later.expires_within(Duration::from_secs(60)));
        assert!(later.expires_within(Duration::from_secs(7200)));
    }

    #[test]
    fn merge_fills_only_missing_fields() {
        let mut partial = OAuthToken::new()
            .with_user_name("bob")
            .with_access_token("new");
        partial.fill_missing_from(&full());
        assert_eq!(partial.user_name(), Some("bob"));
        assert_eq!(partial.access_token().unwrap().expose_secret(), "new");
        assert_eq!(partial.refresh_token().unwrap().expose_secret(), "r3fr3sh");
        assert_eq!(partial.id(), Some("7"));
    }
}
