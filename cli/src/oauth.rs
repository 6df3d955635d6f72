//! `tokenvault access-token` and `tokenvault exec`: thin wrappers over
//! `EncryptedStore::access_token`.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use tokenvault::{AccessOptions, AccessToken, OAuthToken};

use crate::CliError;
use crate::open::{Store, StoreUri};
use crate::output::escape_controls;

/// Which token, and how to refresh it (checked before the store was unlocked, in main).
pub struct Request {
    pub id: Option<String>,
    pub user: Option<String>,
    pub token_url: Option<String>,
    pub skew: u64,
    pub timeout: u64,
}

/// The variables a child of `exec` must not inherit: what opens the store.
const STORE_VARIABLES: [&str; 6] = [
    "TOKENVAULT_PASSPHRASE",
    "TOKENVAULT_KEY",
    "TOKENVAULT_NEW_PASSPHRASE",
    "TOKENVAULT_NEW_KEY",
    "TOKENVAULT_STORE",
    "TOKENVAULT_WITNESS",
];

/// Whether `name` can be an environment variable for a shell: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A valid access token for `request`, refreshed if needed.
fn fresh(store: &Store, uri: &StoreUri, request: Request) -> Result<AccessToken, CliError> {
    let query = match (request.id, request.user) {
        (Some(id), _) => OAuthToken::new().with_id(id),
        (None, Some(user)) => OAuthToken::new().with_user_name(user),
        (None, None) => return Err(CliError::usage("give an id or --user NAME")),
    };
    let mut options = AccessOptions::default()
        .with_skew(Duration::from_secs(request.skew))
        .with_timeout(Duration::from_secs(request.timeout));
    if let Some(url) = request.token_url {
        options = options.with_token_url(url);
    }
    store.access_token(&query, &options).map_err(|e| match e {
        tokenvault::RefreshError::Store(e) => uri.error(e),
        tokenvault::RefreshError::Refresher(e) => CliError::token_endpoint(e.to_string()),
    })
}

/// Prints a valid access token, refreshing it first if needed.
pub fn access_token(
    store: &Store,
    uri: &StoreUri,
    request: Request,
    json: bool,
) -> Result<ExitCode, CliError> {
    let access = fresh(store, uri, request)?;
    let mut out = std::io::stdout().lock();
    if json {
        // serde escapes control characters.
        let value = serde_json::json!({ "access_token": access.expose_secret() });
        writeln!(out, "{value}")?;
    } else {
        // A token stored before answers were checked may still hold control characters.
        writeln!(out, "{}", escape_controls(access.expose_secret()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `command` with the token in `var`; the store is locked (its keys zeroized) before
/// the command starts. The command's exit status is returned (128 + N for signal N, as a
/// shell reports it; 126/127 when it cannot be run, as a shell does).
pub fn exec(
    store: Store,
    uri: &StoreUri,
    request: Request,
    var: &str,
    command: &[OsString],
) -> Result<ExitCode, CliError> {
    let access = fresh(&store, uri, request)?;
    drop(store);
    let Some((program, args)) = command.split_first() else {
        return Err(CliError::usage("give the command to run after --"));
    };
    let mut child = std::process::Command::new(program);
    child.args(args).env(var, access.expose_secret());
    for name in STORE_VARIABLES {
        child.env_remove(name);
    }
    // A new session keyring for the child: a `tokenvault` it runs does not find the key an
    // `unlock` left in this session.
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure only makes one async-signal-safe system call (see its docs).
    unsafe {
        child.pre_exec(crate::session::leave_session_keyring);
    }
    let status = match child.status() {
        Ok(status) => status,
        Err(e) => {
            let (status, why) = if e.kind() == std::io::ErrorKind::NotFound {
                (127, "not found")
            } else {
                (126, "cannot be run")
            };
            crate::output::warn(&format!("{} {why}: {e}", program.to_string_lossy()));
            return Ok(ExitCode::from(status));
        }
    };
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
