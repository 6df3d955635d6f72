//! `tokenvault`: the command-line tool. Parses, calls the library, prints; nothing else.

mod audit;
mod cli;
mod docs;
mod error;
mod keys;
mod oauth;
mod open;
mod output;
mod records;
#[cfg(target_os = "linux")]
mod session;
#[cfg(not(target_os = "linux"))]
#[path = "session_unsupported.rs"]
mod session;
mod session_duration;
mod strength;
mod transfer;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
pub use error::CliError;
use open::{StoreUri, Unlock};

/// No core dumps and no ptrace by other users' processes: a dump would hold every unlocked key.
fn harden_process() {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let _ = setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
}

fn main() -> ExitCode {
    harden_process();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // With --json, a usage error is JSON too (help and version are not errors).
        Err(e) if e.use_stderr() && std::env::args_os().any(|a| a == "--json") => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            let error = serde_json::json!({
                "error": { "code": "usage", "message": first.trim_start_matches("error: ") }
            });
            eprintln!("{error}");
            return ExitCode::from(error::status::USAGE);
        }
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let json = cli.json;
    output::set_json(json);
    match run(cli) {
        Ok(code) => code,
        Err(e) if e.status() == 0 => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                // serde escapes control characters.
                let error = serde_json::json!({
                    "error": { "code": e.code(), "message": e.message() }
                });
                eprintln!("{error}");
            } else {
                // Messages may name ids or user names from the store: never raw on a terminal.
                eprintln!("tokenvault: {}", output::escape_controls(e.message()));
            }
            ExitCode::from(e.status())
        }
    }
}

/// What can be checked in the arguments alone, before any Argon2id run or prompt.
fn check_before_unlock(command: &Command) -> Result<(), CliError> {
    let (id, user, token_url, var) = match command {
        Command::Get { id, user, .. } => (id, user, &None, None),
        Command::AccessToken {
            id,
            user,
            token_url,
            ..
        } => (id, user, token_url, None),
        Command::Exec {
            id,
            user,
            token_url,
            var,
            ..
        } => (id, user, token_url, Some(var)),
        _ => return Ok(()),
    };
    if id.is_none() && user.is_none() {
        return Err(CliError::usage(
            "which token? give its record id (see `tokenvault list`), or --user NAME",
        ));
    }
    if let Some(url) = token_url {
        tokenvault::oauth::check_token_url(url).map_err(|e| CliError::usage(e.to_string()))?;
    }
    if var.is_some_and(|v| !oauth::is_variable_name(v)) {
        return Err(CliError::usage(
            "--env takes a variable name: letters, digits and _, not starting with a digit",
        ));
    }
    Ok(())
}

fn run(cli: Cli) -> Result<ExitCode, CliError> {
    // What needs no store comes first: no store URI is parsed, nothing opened.
    match cli.command {
        Command::Completions { shell } => return docs::completions(shell),
        Command::Manpage => return docs::manpage(),
        _ => {}
    }
    check_before_unlock(&cli.command)?;
    let uri = StoreUri::parse(cli.store.as_deref())?;
    let unlock = Unlock {
        passphrase_file: cli.passphrase_file.clone(),
        witness: cli.witness.clone(),
        allow_weak_passphrase: cli.allow_weak_passphrase,
    };
    let json = cli.json;
    match cli.command {
        Command::Init { key } => keys::init(&uri, &unlock, key, json),
        Command::Passwd {
            new_passphrase_file,
        } => keys::passwd(&unlock, &uri, new_passphrase_file.as_deref(), json),
        Command::Rotate => keys::rotate(&unlock.open(&uri)?, &uri, json),
        Command::Verify { accept } => keys::verify(&unlock.open(&uri)?, &uri, accept, json),
        Command::Rekey {
            key,
            new_passphrase_file,
        } => keys::rekey(&unlock, &uri, key, new_passphrase_file.as_deref(), json),
        Command::Save => {
            let tokens = records::tokens_from_stdin()?;
            records::save(&unlock.open(&uri)?, &uri, tokens, json)
        }
        Command::Get { id, user, field } => {
            records::get(&unlock.open(&uri)?, &uri, id, user, field, json)
        }
        Command::Find => {
            let query = records::query_from_stdin()?;
            records::find(&unlock.open(&uri)?, &uri, &query)
        }
        Command::List => records::list(&unlock.open(&uri)?, &uri, json),
        Command::Delete { id } => records::delete(&unlock.open(&uri)?, &uri, &id, json),
        Command::Purge { yes } => records::purge(&unlock, &uri, yes, json),
        Command::Prune { expired } => records::prune(&unlock, &uri, expired, json),
        Command::Import { format, file } => {
            transfer::check_import_file(format, &file)?;
            transfer::import(&unlock.open(&uri)?, &uri, format, &file, json)
        }
        Command::Export {
            format,
            plaintext,
            out,
            force,
        } => transfer::export(
            &unlock,
            &uri,
            format,
            plaintext,
            out.as_deref(),
            force,
            json,
        ),
        Command::Migrate { to, resume } => transfer::migrate(&unlock, &uri, &to, resume, json),
        Command::AccessToken {
            id,
            user,
            token_url,
            skew,
            timeout,
        } => oauth::access_token(
            &unlock.open(&uri)?,
            &uri,
            oauth::Request {
                id,
                user,
                token_url,
                skew,
                timeout,
            },
            json,
        ),
        Command::Exec {
            id,
            user,
            var,
            token_url,
            skew,
            timeout,
            command,
        } => oauth::exec(
            unlock.open(&uri)?,
            &uri,
            oauth::Request {
                id,
                user,
                token_url,
                skew,
                timeout,
            },
            &var,
            &command,
        ),
        Command::Unlock { duration } => keys::unlock(&unlock, &uri, duration, json),
        Command::Lock => keys::lock(&uri, json),
        Command::Audit { action } => audit::run(&unlock, &uri, action, json),
        Command::Slots { action } => keys::slots(&unlock, &uri, action, json),
        Command::Destroy { yes } => keys::destroy(&uri, yes, json),
        Command::Completions { .. } | Command::Manpage => unreachable!("handled above"),
    }
}
