//! The ten field names of a token record.

/// The ten fields of a token record, in the Zoho SDK's order and with its names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenField {
    /// `id`
    Id,
    /// `user_name`
    UserName,
    /// `client_id`
    ClientId,
    /// `client_secret` (secret)
    ClientSecret,
    /// `refresh_token` (secret)
    RefreshToken,
    /// `access_token` (secret)
    AccessToken,
    /// `grant_token` (secret)
    GrantToken,
    /// `expiry_time` (epoch milliseconds)
    ExpiryTime,
    /// `redirect_url`
    RedirectUrl,
    /// `api_domain`
    ApiDomain,
}

impl TokenField {
    /// All fields, in the Zoho SDK's column order.
    pub const ALL: [TokenField; 10] = [
        TokenField::Id,
        TokenField::UserName,
        TokenField::ClientId,
        TokenField::ClientSecret,
        TokenField::RefreshToken,
        TokenField::AccessToken,
        TokenField::GrantToken,
        TokenField::ExpiryTime,
        TokenField::RedirectUrl,
        TokenField::ApiDomain,
    ];

    /// The field's JSON key (the Zoho SDK's name).
    pub fn name(self) -> &'static str {
        match self {
            TokenField::Id => "id",
            TokenField::UserName => "user_name",
            TokenField::ClientId => "client_id",
            TokenField::ClientSecret => "client_secret",
            TokenField::RefreshToken => "refresh_token",
            TokenField::AccessToken => "access_token",
            TokenField::GrantToken => "grant_token",
            TokenField::ExpiryTime => "expiry_time",
            TokenField::RedirectUrl => "redirect_url",
            TokenField::ApiDomain => "api_domain",
        }
    }

    /// The field with this JSON key, if any.
    pub fn from_name(name: &str) -> Option<TokenField> {
        TokenField::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether the field holds a secret.
    pub fn is_secret(self) -> bool {
        matches!(
            self,
            TokenField::ClientSecret
                | TokenField::RefreshToken
                | TokenField::AccessToken
                | TokenField::GrantToken
        )
    }
}
