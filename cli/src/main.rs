//! `tokenvault`: the command-line tool. Parses, calls the library, prints; nothing else.

mod audit;
mod cli;
mod keys;
mod oauth;
mod open;
mod output;
mod records;
mod transfer;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use open::{StoreUri, Unlock};

/// A failure to report: one line on stderr, and the exit status (1 failure, 2 usage).
#[derive(Debug)]
pub struct CliError {
    message: String,
    code: u8,
}

impl CliError {
    /// Exit status 1.
    pub fn failure(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 1,
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Exit status 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 2,
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            // The reader went away (`tokenvault list | head`): not a failure.
            return Self {
                message: String::new(),
                code: 0,
            };
        }
        CliError::failure(format!("I/O error: {e}"))
    }
}

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
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) if e.code == 0 => ExitCode::SUCCESS,
        Err(e) => {
            // Messages may name ids or user names from the store: never raw on a terminal.
            eprintln!("tokenvault: {}", output::escape_controls(&e.message));
            ExitCode::from(e.code)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let uri = StoreUri::parse(cli.store.as_deref())?;
    let unlock = Unlock {
        passphrase_file: cli.passphrase_file.clone(),
        witness: cli.witness.clone(),
    };
    let json = cli.json;
    match cli.command {
        Command::Init { key } => keys::init(&uri, &unlock, key),
        Command::Passwd {
            new_passphrase_file,
        } => keys::passwd(&unlock.open(&uri)?, &uri, new_passphrase_file.as_deref()),
        Command::Rotate => keys::rotate(&unlock.open(&uri)?, &uri),
        Command::Verify { accept } => keys::verify(&unlock.open(&uri)?, &uri, accept, json),
        Command::Rekey {
            key,
            new_passphrase_file,
        } => keys::rekey(&unlock, &uri, key, new_passphrase_file.as_deref(), json),
        Command::Save => records::save(&unlock.open(&uri)?, &uri, json),
        Command::Get { id, user, field } => {
            records::get(&unlock.open(&uri)?, &uri, id, user, field)
        }
        Command::Find => records::find(&unlock.open(&uri)?, &uri),
        Command::List => records::list(&unlock.open(&uri)?, &uri, json),
        Command::Delete { id } => records::delete(&unlock.open(&uri)?, &uri, &id),
        Command::Purge { yes } => records::purge(&unlock, &uri, yes),
        Command::Prune { expired } => records::prune(&unlock, &uri, expired, json),
        Command::Import { format, file } => {
            transfer::import(&unlock.open(&uri)?, &uri, format, &file, json)
        }
        Command::Export {
            format,
            plaintext,
            out,
            force,
        } => transfer::export(&unlock, &uri, format, plaintext, out.as_deref(), force),
        Command::Migrate { to, resume } => transfer::migrate(&unlock, &uri, &to, resume),
        Command::AccessToken {
            id,
            user,
            token_url,
            skew,
            timeout,
        } => oauth::access_token(
            &unlock.open(&uri)?,
            &uri,
            id,
            user,
            token_url.as_deref(),
            skew,
            timeout,
        ),
        Command::Audit { action } => audit::run(&unlock.open(&uri)?, &uri, action, json),
        Command::Slots { action } => keys::slots(&unlock.open(&uri)?, &uri, action, json),
        Command::Destroy { yes } => keys::destroy(&uri, yes),
    }
}
