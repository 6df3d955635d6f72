//! The Zoho SDKs' matching rules (`check_condition`), in one place for every store.

use std::fmt;

use crate::token::OAuthToken;

/// The four fields a record can be found by. Each has a blind-index tag beside the sealed
/// record, and no two records share a value of any of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LookupField {
    /// `user_name`
    UserName,
    /// `access_token`
    AccessToken,
    /// `refresh_token`
    RefreshToken,
    /// `grant_token`
    GrantToken,
}

impl LookupField {
    /// All four, in tag-column order.
    pub const ALL: [LookupField; 4] = [
        LookupField::UserName,
        LookupField::AccessToken,
        LookupField::RefreshToken,
        LookupField::GrantToken,
    ];

    /// The Zoho field name; also the domain separator of the field's blind-index tag.
    pub fn name(self) -> &'static str {
        match self {
            LookupField::UserName => "user_name",
            LookupField::AccessToken => "access_token",
            LookupField::RefreshToken => "refresh_token",
            LookupField::GrantToken => "grant_token",
        }
    }

    /// Position in [`LookupField::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// This field's value in `token`, if set.
    pub fn value_in(self, token: &OAuthToken) -> Option<&str> {
        match self {
            LookupField::UserName => token.user_name(),
            LookupField::AccessToken => token.access_token().map(|t| t.expose_secret()),
            LookupField::RefreshToken => token.refresh_token().map(|t| t.expose_secret()),
            LookupField::GrantToken => token.grant_token().map(|t| t.expose_secret()),
        }
    }
}

impl fmt::Display for LookupField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The lookups a query calls for, tried in order until one finds a record (at most two: grant
/// token, then refresh token).
pub fn lookups(query: &OAuthToken) -> Vec<(LookupField, &str)> {
    if let Some(name) = query.user_name() {
        return vec![(LookupField::UserName, name)];
    }
    let has_id = query.client_id().is_some();
    let has_secret = query.client_secret().is_some();
    if let Some(access) = LookupField::AccessToken.value_in(query)
        && !has_id
        && !has_secret
    {
        return vec![(LookupField::AccessToken, access)];
    }
    if has_id && has_secret {
        return [LookupField::GrantToken, LookupField::RefreshToken]
            .into_iter()
            .filter_map(|field| field.value_in(query).map(|v| (field, v)))
            .collect();
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(q: &OAuthToken) -> Vec<LookupField> {
        lookups(q).into_iter().map(|(f, _)| f).collect()
    }

    #[test]
    fn user_name_wins_over_everything() {
        let q = OAuthToken::new()
            .with_user_name("u")
            .with_access_token("a")
            .with_client_id("c")
            .with_client_secret("s")
            .with_refresh_token("r");
        assert_eq!(fields(&q), [LookupField::UserName]);
    }

    #[test]
    fn access_token_only_without_client_credentials() {
        let q = OAuthToken::new().with_access_token("a");
        assert_eq!(fields(&q), [LookupField::AccessToken]);
        assert!(fields(&q.clone().with_client_id("c")).is_empty());
        assert!(fields(&q.with_client_secret("s")).is_empty());
    }

    #[test]
    fn grant_then_refresh_with_both_client_credentials() {
        let q = OAuthToken::new()
            .with_client_id("c")
            .with_client_secret("s")
            .with_refresh_token("r")
            .with_grant_token("g");
        assert_eq!(
            fields(&q),
            [LookupField::GrantToken, LookupField::RefreshToken]
        );
        assert!(
            fields(&q.clone().with_access_token("a")).len() == 2,
            "access token ignored"
        );
        let no_secret = OAuthToken::new()
            .with_client_id("c")
            .with_refresh_token("r");
        assert!(fields(&no_secret).is_empty());
    }
}
