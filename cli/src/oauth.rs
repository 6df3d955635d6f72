//! `tokenvault access-token`: a thin wrapper over `EncryptedStore::access_token`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use tokenvault::{AccessOptions, OAuthToken, oauth};

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
    let mut options = AccessOptions::default()
        .with_skew(Duration::from_secs(skew))
        .with_timeout(Duration::from_secs(timeout));
    if let Some(url) = token_url {
        oauth::check_token_url(url).map_err(|e| CliError::usage(e.to_string()))?;
        options = options.with_token_url(url);
    }
    let access = store.access_token(&query, &options).map_err(|e| match e {
        tokenvault::RefreshError::Store(e) => uri.error(e),
        tokenvault::RefreshError::Refresher(e) => CliError::failure(e.to_string()),
    })?;
    // A token stored before answers were checked may still hold control characters.
    writeln!(
        std::io::stdout().lock(),
        "{}",
        escape_controls(access.expose_secret())
    )?;
    Ok(ExitCode::SUCCESS)
}
