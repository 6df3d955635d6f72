//! Commands on records: save, get, find, list, delete, purge, prune.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::SystemTime;

use tokenvault::{OAuthToken, Saved, TokenField, TokenStore};
use zeroize::Zeroizing;

use crate::CliError;
use crate::open::{Store, StoreUri, Unlock, with_causes};
use crate::output::{escape_controls, report};

/// All of stdin, in a buffer that is cleared when dropped.
pub fn read_stdin() -> Result<Zeroizing<String>, CliError> {
    let mut text = Zeroizing::new(String::new());
    let limit = tokenvault::import::MAX_INPUT_BYTES;
    std::io::stdin()
        .take(limit + 1)
        .read_to_string(&mut text)
        .map_err(|e| CliError::usage(format!("cannot read stdin: {e}")))?;
    if text.len() as u64 > limit {
        return Err(CliError::usage(format!(
            "stdin holds more than {} MiB; refusing to read it",
            limit >> 20
        )));
    }
    Ok(text)
}

/// Parses stdin as one token object or an array of them, every one checked against the
/// bounds a save applies: read before the store is unlocked, so that malformed input costs
/// no Argon2id run or prompt, and a batch with a bad token saves none of it.
pub fn tokens_from_stdin() -> Result<Vec<OAuthToken>, CliError> {
    let rows = tokenvault::import::json::read(read_stdin()?.as_bytes())
        .map_err(|e| CliError::usage(format!("stdin: {}", with_causes(&e))))?;
    rows.into_iter()
        .map(|row| {
            let token = row.token.map_err(|reason| {
                CliError::usage(format!("stdin, token #{}: {reason}", row.number))
            })?;
            token.check_bounds().map_err(|reason| {
                CliError::usage(format!("stdin, token #{}: {reason}", row.number))
            })?;
            Ok(token)
        })
        .collect()
}

fn print_token(token: &OAuthToken) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &token.expose_secrets())
        .map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

pub fn save(
    store: &Store,
    uri: &StoreUri,
    tokens: Vec<OAuthToken>,
    json: bool,
) -> Result<ExitCode, CliError> {
    let mut results = Vec::with_capacity(tokens.len());
    let mut out = std::io::stdout().lock();
    for (i, mut token) in tokens.into_iter().enumerate() {
        let saved = match store.save(&mut token) {
            Ok(saved) => saved,
            Err(e) => {
                if json {
                    // What was saved before the failure is still reported.
                    writeln!(out, "{}", serde_json::Value::Array(results))?;
                }
                let reason = uri.error(e);
                return Err(reason.with_message(format!(
                    "token #{} not saved ({i} saved before it): {}",
                    i + 1,
                    reason.message()
                )));
            }
        };
        let id = token.id().unwrap_or_default().to_owned();
        if !json {
            writeln!(out, "{}", escape_controls(&id))?;
        }
        results.push(serde_json::json!({
            "id": id,
            "result": if saved == Saved::Inserted { "inserted" } else { "updated" },
        }));
    }
    if json {
        writeln!(out, "{}", serde_json::Value::Array(results))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn get(
    store: &Store,
    uri: &StoreUri,
    id: Option<String>,
    user: Option<String>,
    field: Option<TokenField>,
    json: bool,
) -> Result<ExitCode, CliError> {
    let (token, what) = match (id, user) {
        (Some(id), _) => (
            store.find_token_by_id(&id),
            format!("no token with id {id}"),
        ),
        (None, Some(user)) => (
            store.find_token(&OAuthToken::new().with_user_name(&user)),
            format!("no token for user {user}"),
        ),
        (None, None) => return Err(CliError::usage("give an id or --user NAME")),
    };
    let token = token
        .map_err(|e| uri.error(e))?
        .ok_or_else(|| CliError::not_found(what))?;
    match field {
        None => print_token(&token)?,
        Some(field) => {
            let value = token.expose_field(field).ok_or_else(|| {
                CliError::not_found(format!(
                    "token {} has no {}",
                    token.id().unwrap_or_default(),
                    field.name()
                ))
            })?;
            let mut out = std::io::stdout().lock();
            if json {
                // serde escapes control characters.
                let object = serde_json::json!({ field.name(): value.as_str() });
                writeln!(out, "{object}")?;
            } else {
                writeln!(out, "{}", escape_controls(value.as_str()))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The one query `find` reads from stdin (checked before the store is unlocked).
pub fn query_from_stdin() -> Result<OAuthToken, CliError> {
    let mut tokens = tokens_from_stdin()?;
    if tokens.len() != 1 {
        return Err(CliError::usage("find reads one token object from stdin"));
    }
    Ok(tokens.remove(0))
}

pub fn find(store: &Store, uri: &StoreUri, query: &OAuthToken) -> Result<ExitCode, CliError> {
    match store.find_token(query).map_err(|e| uri.error(e))? {
        Some(token) => {
            print_token(&token)?;
            Ok(ExitCode::SUCCESS)
        }
        None => Err(CliError::not_found(no_match_reason(query))),
    }
}

/// Why a query found nothing, in the Zoho SDKs' matching rules (README, "What the store
/// does"): which field it was matched by, or why none applied.
fn no_match_reason(q: &OAuthToken) -> String {
    // Empty values are never set (they count as absent everywhere).
    let credentials = q.client_id().is_some() && q.client_secret().is_some();
    let why = if q.user_name().is_some() {
        "no record has that user_name"
    } else if q.access_token().is_some() && q.client_id().is_none() && q.client_secret().is_none() {
        "no record has that access_token"
    } else if q.grant_token().is_some() || q.refresh_token().is_some() {
        if credentials {
            "no record has that grant_token or refresh_token"
        } else {
            "a grant_token or refresh_token is matched only together with both client_id and client_secret (the Zoho SDKs' rule)"
        }
    } else if q.access_token().is_some() {
        "an access_token is matched only without client_id and client_secret (the Zoho SDKs' rule)"
    } else {
        "the query has none of user_name, access_token, refresh_token, grant_token"
    };
    format!("no matching token: {why}")
}

/// `2026-11-24T15:45:24Z` for epoch milliseconds (proleptic Gregorian, UTC).
pub fn iso8601(epoch_ms: u64) -> String {
    let secs = epoch_ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn has_expired(token: &OAuthToken, now: SystemTime) -> bool {
    token.expires_at().is_some_and(|at| at <= now)
}

pub fn list(store: &Store, uri: &StoreUri, json: bool) -> Result<ExitCode, CliError> {
    let tokens = store.get_tokens().map_err(|e| uri.error(e))?;
    let now = SystemTime::now();
    let mut out = std::io::stdout().lock();
    if json {
        let rows: Vec<_> = tokens
            .iter()
            .map(|t| {
                serde_json::json!({
                    "id": t.id(),
                    "user_name": t.user_name(),
                    "client_id": t.client_id(),
                    "api_domain": t.api_domain(),
                    "expiry_time": t.expiry_time().map(|ms| ms.to_string()),
                    // Unknown (null) without an expiry time, as the text's "-".
                    "expired": t.expiry_time().map(|_| has_expired(t, now)),
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(rows))?;
        return Ok(ExitCode::SUCCESS);
    }
    // Wide enough for the longest id (legacy Zoho ids run to 28 characters).
    let shown = |value: Option<&str>| escape_controls(value.unwrap_or("-")).into_owned();
    let id_width = tokens
        .iter()
        .map(|t| shown(t.id()).chars().count())
        .max()
        .unwrap_or(0)
        .max(16);
    writeln!(
        out,
        "{:<id_width$}  {:<32} {:<28} {:<28} {:<21} EXPIRED",
        "ID", "USER", "CLIENT_ID", "API_DOMAIN", "EXPIRES"
    )?;
    for t in &tokens {
        writeln!(
            out,
            "{:<id_width$}  {:<32} {:<28} {:<28} {:<21} {}",
            shown(t.id()),
            shown(t.user_name()),
            shown(t.client_id()),
            shown(t.api_domain()),
            t.expiry_time().map_or_else(|| "-".to_owned(), iso8601),
            if t.expiry_time().is_none() {
                "-"
            } else if has_expired(t, now) {
                "yes"
            } else {
                "no"
            },
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn delete(store: &Store, uri: &StoreUri, id: &str, json: bool) -> Result<ExitCode, CliError> {
    store.delete_token(id).map_err(|e| uri.error(e))?;
    report(
        json,
        format_args!("deleted {}", escape_controls(id)),
        serde_json::json!({ "deleted": id }),
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn purge(unlock: &Unlock, uri: &StoreUri, yes: bool, json: bool) -> Result<ExitCode, CliError> {
    if !yes {
        return Err(CliError::usage(
            "purge deletes every token; confirm with --yes",
        ));
    }
    unlock
        .open_strict(uri)?
        .delete_tokens()
        .map_err(|e| uri.error(e))?;
    report(
        json,
        format_args!("deleted every token in {uri}"),
        serde_json::json!({ "purged": uri.to_string() }),
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn prune(
    unlock: &Unlock,
    uri: &StoreUri,
    expired: bool,
    json: bool,
) -> Result<ExitCode, CliError> {
    if !expired {
        return Err(CliError::usage("say what to prune: --expired"));
    }
    // Only records whose expiry is known and past: a record without expiry (e.g. refresh
    // token only) is not expired, it just has no access token yet. Each deletion re-checks
    // the record atomically, so one refreshed meanwhile by another process is kept.
    let pruned = unlock
        .open(uri)?
        .prune_expired(SystemTime::now())
        .map_err(|e| uri.error(e))?
        .len();
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::json!({ "pruned": pruned }))?;
    } else {
        writeln!(out, "pruned {pruned} expired token(s)")?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::iso8601;

    #[test]
    fn iso8601_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_900_000_000_000), "2030-03-17T17:46:40Z");
    }
}
