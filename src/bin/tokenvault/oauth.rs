//! `tokenvault access-token`: a thin wrapper over the library's refresh grant
//! (`tokenvault::oauth`) and `EncryptedStore::refresh_with`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use tokenvault::{OAuthToken, TokenField, oauth};

use crate::CliError;
use crate::open::{Store, StoreUri};
use crate::output::escape_controls;

/// Prints a valid access token, refreshing it first if needed.
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
        oauth::check_token_url(url).map_err(|e| CliError::usage(e.to_string()))?;
    }
    let timeout = Duration::from_secs(timeout);
    let token = store
        .refresh_with(&query, Duration::from_secs(skew), |stored| {
            oauth::refresh(stored, token_url, timeout)
        })
        .map_err(|e| match e {
            tokenvault::RefreshError::Store(e) => uri.error(e),
            tokenvault::RefreshError::Refresher(e) => CliError::failure(e.to_string()),
        })?;
    let access = token
        .expose_field(TokenField::AccessToken)
        .ok_or_else(|| CliError::failure("the token endpoint gave no access token"))?;
    // A token stored before answers were checked may still hold control characters.
    writeln!(
        std::io::stdout().lock(),
        "{}",
        escape_controls(access.as_str())
    )?;
    Ok(ExitCode::SUCCESS)
}
