//! Command-line definitions (clap). Behaviour lives in the other modules and the library.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Store URIs (--store or TOKENVAULT_STORE):
  sqlite:PATH   SQLite database (default: the user's data dir, tokenvault/tokens.db)
  file:PATH     a single file
  postgres://USER:PASS@HOST:PORT/DB[?pool_size=N&sslmode=require|disable&schema=NAME]
  mysql://USER:PASS@HOST:PORT/DB[?pool_size=N&…]   (TLS required except on loopback)

Keys: a passphrase comes from TOKENVAULT_PASSPHRASE, --passphrase-file, or a prompt on the
terminal; a raw key (stores created with --key env) from TOKENVAULT_KEY (base64, 32 bytes).

Exit status: 0 success; 1 failure (and `verify`/`audit verify` finding a problem, `import`
refusing rows; `exec`: the command's own status); 2 usage
error; 3 not found; 4 wrong or missing key; 5 integrity (tampered, rolled back); 6 refused
(conflict, store exists); 7 storage; 8 token endpoint. With --json, errors are one JSON object
on stderr: {\"error\":{\"code\":\"…\",\"message\":\"…\"}}.

Example:
  tokenvault init
  echo '{\"user_name\":\"ann@example.com\",\"refresh_token\":\"1000.x\"}' | tokenvault save
  tokenvault get --user ann@example.com --field refresh_token";

/// Keeps OAuth tokens encrypted at rest (AES-256-GCM; Argon2id passphrase or raw key).
#[derive(Parser, Debug)]
#[command(name = "tokenvault", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// The store to use.
    #[arg(long, global = true, env = "TOKENVAULT_STORE", value_name = "URI")]
    pub store: Option<String>,

    /// Read the passphrase from this file (first line) instead of TOKENVAULT_PASSPHRASE or a prompt.
    #[arg(long, global = true, value_name = "PATH")]
    pub passphrase_file: Option<PathBuf>,

    /// Machine-readable output (JSON) wherever records are printed.
    #[arg(long, global = true)]
    pub json: bool,

    /// Keep a rollback witness (the store's write counter) in DIR (--witness=DIR), or in
    /// $XDG_DATA_HOME/tokenvault/witness (bare --witness): opening an older copy then fails.
    #[arg(
        long,
        global = true,
        env = "TOKENVAULT_WITNESS",
        value_name = "DIR",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = ""
    )]
    pub witness: Option<String>,

    /// Accept a new passphrase that zxcvbn rates as guessable (score below 2 is refused
    /// otherwise; 2 is warned about).
    #[arg(
        long,
        global = true,
        env = "TOKENVAULT_ALLOW_WEAK_PASSPHRASE",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_weak_passphrase: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new store (refuses to overwrite one).
    #[command(
        after_help = "Example:\n  TOKENVAULT_STORE=sqlite:./tokens.db tokenvault init --key passphrase"
    )]
    Init {
        /// What unlocks the store: a passphrase (Argon2id) or a raw key from TOKENVAULT_KEY.
        #[arg(long, value_enum, default_value_t = KeyKind::Passphrase)]
        key: KeyKind,
    },

    /// Save one JSON token object, or an array of them, read from stdin; prints the ids. The
    /// whole input is parsed and bounds-checked before anything is saved; the tokens are then
    /// saved one by one, so one the store refuses (a conflict, a new record without a token)
    /// stops the array there, and the error says how many were saved before it.
    #[command(
        after_help = "Example:\n  echo '{\"user_name\":\"ann@example.com\",\"refresh_token\":\"1000.x\"}' | tokenvault save"
    )]
    Save,

    /// Print a token as JSON, by id or by user name.
    #[command(
        after_help = "Examples:\n  tokenvault get 3f2a9c0d41b7e865\n  tokenvault get --user ann@example.com --field access_token"
    )]
    Get {
        /// The record id.
        #[arg(conflicts_with = "user")]
        id: Option<String>,
        /// Find by user name instead.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Print only this field's value, bare (e.g. access_token).
        #[arg(long, value_name = "NAME", value_parser = parse_field)]
        field: Option<tokenvault::TokenField>,
    },

    /// Read a partial JSON token from stdin and print the matching record (exit 3 if none,
    /// saying which of the Zoho SDKs' matching rules applied).
    #[command(after_help = "Example:\n  echo '{\"access_token\":\"1000.abc\"}' | tokenvault find")]
    Find,

    /// List records (never secrets): id, user, client id, API domain, expiry.
    #[command(after_help = "Example:\n  tokenvault list --json")]
    List,

    /// Delete the record with this id.
    #[command(after_help = "Example:\n  tokenvault delete 3f2a9c0d41b7e865")]
    Delete {
        /// The record id.
        id: String,
    },

    /// Delete every record.
    #[command(after_help = "Example:\n  tokenvault purge --yes")]
    Purge {
        /// Confirm.
        #[arg(long)]
        yes: bool,
    },

    /// Delete records whose access token has expired.
    #[command(after_help = "Example:\n  tokenvault prune --expired")]
    Prune {
        /// Confirm that expired records go.
        #[arg(long)]
        expired: bool,
    },

    /// Import tokens from the Zoho SDKs' files or a JSON export (re-imports update).
    #[command(
        after_help = "Examples:\n  tokenvault import --format zoho-csv ~/zoho_oauth_tokens.csv\n  tokenvault import --format zoho-sqlite ./zoho.db"
    )]
    Import {
        /// The file's format.
        #[arg(long, value_enum)]
        format: ImportFormat,
        /// The file to read (for zoho-mysql, the database URI).
        file: PathBuf,
    },

    /// Export every token in plaintext (needs --plaintext; files are written 0600).
    #[command(
        after_help = "Example:\n  tokenvault export --format zoho-csv --plaintext --out tokens.csv"
    )]
    Export {
        /// The output format.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Acknowledge that the output holds every secret in plaintext.
        #[arg(long)]
        plaintext: bool,
        /// Write here instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Overwrite --out if it exists.
        #[arg(long)]
        force: bool,
    },

    /// Change the passphrase (re-wraps the key; records are not touched).
    #[command(after_help = "Example:\n  TOKENVAULT_NEW_PASSPHRASE=… tokenvault passwd")]
    Passwd {
        /// Read the new passphrase from this file instead of TOKENVAULT_NEW_PASSPHRASE or a prompt.
        #[arg(long, value_name = "PATH")]
        new_passphrase_file: Option<PathBuf>,
    },

    /// Make a new data key and re-seal every record (resumes an interrupted rotation).
    #[command(after_help = "Example:\n  tokenvault rotate")]
    Rotate,

    /// Open every record and check the record set against the header; name every record
    /// that fails, was rolled back, deleted, put back or copied in; exit 1 if any.
    #[command(after_help = "Examples:\n  tokenvault verify\n  tokenvault verify --accept")]
    Verify {
        /// Then accept the records as they are now: the header's summary is recomputed (a
        /// store from an older release gets one; findings already dealt with stop being
        /// reported).
        #[arg(long)]
        accept: bool,
    },

    /// Revoke every old credential, header copy and backup key: new store, data and index
    /// keys, every record re-sealed in one transaction (an interrupted rekey changed nothing:
    /// run it again), the key slots replaced by one for the new key.
    #[command(
        after_help = "Examples:\n  TOKENVAULT_NEW_PASSPHRASE=… tokenvault rekey\n  TOKENVAULT_NEW_KEY=$(head -c32 /dev/urandom | base64) tokenvault rekey --key env\n  tokenvault rekey --key keychain"
    )]
    Rekey {
        /// What unlocks the rekeyed store: a new passphrase (TOKENVAULT_NEW_PASSPHRASE,
        /// --new-passphrase-file or a prompt), a raw key from TOKENVAULT_NEW_KEY, or the OS
        /// keychain.
        #[arg(long, value_enum, default_value_t = KeyKind::Passphrase)]
        key: KeyKind,
        /// Read the new passphrase from this file.
        #[arg(long, value_name = "PATH")]
        new_passphrase_file: Option<PathBuf>,
    },

    /// The store's audit trail: an HMAC-chained log of every change (and, with --reads, every
    /// read), written in the same transaction as the change; off until turned on.
    #[command(
        after_help = "Examples:\n  tokenvault audit on\n  tokenvault audit on --reads\n  tokenvault audit show --last 20\n  tokenvault audit verify\n  tokenvault audit show --json > audit.json && tokenvault audit reset --yes"
    )]
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },

    /// Print a valid access token (and nothing else), refreshing it first through the OAuth
    /// refresh grant if it expires within --skew; concurrent callers refresh only once.
    #[command(
        after_help = "Examples:\n  curl -H \"Authorization: Zoho-oauthtoken $(tokenvault access-token --user ann@example.com)\" …\n  tokenvault access-token 3f2a9c0d41b7e865 --token-url https://accounts.zoho.eu/oauth/v2/token\n\nWithout --token-url, Zoho records use {accounts server}/oauth/v2/token for their api_domain:\nzohoapis.com → accounts.zoho.com, .eu → accounts.zoho.eu, .in → accounts.zoho.in,\n.com.au → accounts.zoho.com.au, .jp → accounts.zoho.jp, .ca → accounts.zohocloud.ca,\n.com.cn → accounts.zoho.com.cn, .sa → accounts.zoho.sa."
    )]
    AccessToken {
        /// The record id.
        #[arg(conflicts_with = "user")]
        id: Option<String>,
        /// Find by user name instead.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// The OAuth token endpoint (https; plain http only to loopback).
        #[arg(long, value_name = "URL")]
        token_url: Option<String>,
        /// Refresh when the token expires within this many seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        skew: u64,
        /// Give up on the token endpoint after this many seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 30)]
        timeout: u64,
    },

    /// Run COMMAND with a valid access token in its environment (ZOHO_ACCESS_TOKEN, or
    /// --env VAR), refreshed first if it expires within --skew — through the same lock as
    /// `access-token`, so N parallel execs refresh once. The command never sees the store:
    /// the store's own variables are removed from its environment. Exits with its status.
    #[command(
        after_help = "Examples:\n  tokenvault exec --user ann@example.com -- ./sync-contacts.sh\n  tokenvault exec 3f2a9c0d41b7e865 --env ACCESS_TOKEN -- python report.py"
    )]
    Exec {
        /// The record id.
        #[arg(conflicts_with = "user")]
        id: Option<String>,
        /// Find by user name instead.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// The variable that carries the token.
        #[arg(long = "env", value_name = "VAR", default_value = "ZOHO_ACCESS_TOKEN")]
        var: String,
        /// The OAuth token endpoint (https; plain http only to loopback).
        #[arg(long, value_name = "URL")]
        token_url: Option<String>,
        /// Refresh when the token expires within this many seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        skew: u64,
        /// Give up on the token endpoint after this many seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 30)]
        timeout: u64,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<std::ffi::OsString>,
    },

    /// Unlock the store for this login session: one passphrase (or key) now, then every
    /// command in the session opens it without Argon2id or a prompt until --for has passed or
    /// `tokenvault lock`. The store key is kept in the Linux kernel keyring (the session
    /// keyring; readable by this user's processes only; never on disk).
    #[command(after_help = "Examples:\n  tokenvault unlock\n  tokenvault unlock --for 8h")]
    Unlock {
        /// How long: 30s, 15m, 8h, 1d (at most 7d).
        #[arg(long = "for", value_name = "DURATION", default_value = "15m", value_parser = crate::session_duration::parse_duration)]
        duration: std::time::Duration,
    },

    /// End what `unlock` started: the store key leaves the kernel keyring now.
    #[command(after_help = "Example:\n  tokenvault lock")]
    Lock,

    /// List, add or remove key slots (a store opens with any one of them).
    #[command(
        after_help = "Examples:\n  tokenvault slots list\n  tokenvault slots add-keychain\n  TOKENVAULT_NEW_PASSPHRASE=… tokenvault slots add-passphrase\n  tokenvault slots remove 2"
    )]
    Slots {
        #[command(subcommand)]
        action: SlotAction,
    },

    /// Delete the store's files and its OS keychain entry.
    #[command(after_help = "Example:\n  tokenvault destroy --yes")]
    Destroy {
        /// Confirm: every token is lost.
        #[arg(long)]
        yes: bool,
    },

    /// Copy every record into a new store at URI, sealed under fresh keys.
    #[command(after_help = "Example:\n  tokenvault migrate --to file:./tokens.tv")]
    Migrate {
        /// The destination store (must not exist yet, unless --resume).
        #[arg(long, value_name = "URI")]
        to: String,
        /// Continue an interrupted migrate into the destination it created (records already
        /// copied are saved again with the same values).
        #[arg(long)]
        resume: bool,
    },

    /// Print a completion script for SHELL (needs no store).
    #[command(
        after_help = "Examples:\n  tokenvault completions bash > ~/.local/share/bash-completion/completions/tokenvault\n  tokenvault completions zsh > \"${fpath[1]}/_tokenvault\"\n  tokenvault completions fish > ~/.config/fish/completions/tokenvault.fish"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },

    /// Print the manual page (roff; needs no store).
    #[command(
        after_help = "Examples:\n  tokenvault manpage | man -l -\n  tokenvault manpage > ~/.local/share/man/man1/tokenvault.1"
    )]
    Manpage,
}

/// Key slot actions.
#[derive(Subcommand, Debug)]
pub enum SlotAction {
    /// List the key slots.
    List,
    /// Add a passphrase slot (new passphrase from TOKENVAULT_NEW_PASSPHRASE,
    /// --new-passphrase-file, or a prompt).
    AddPassphrase {
        /// Read the new passphrase from this file.
        #[arg(long, value_name = "PATH")]
        new_passphrase_file: Option<PathBuf>,
    },
    /// Add a slot opened by this machine's OS keychain.
    AddKeychain,
    /// Remove a slot by id (never the last one).
    Remove {
        /// The slot id (see `slots list`).
        id: u32,
    },
}

/// Audit trail actions.
#[derive(Subcommand, Debug)]
pub enum AuditAction {
    /// Start logging every change (saves, deletes, key and slot changes, failed attempts).
    /// Releases before this one refuse to open the store from then on.
    On {
        /// Log every read of a record too (each read then costs a write transaction).
        #[arg(long)]
        reads: bool,
    },
    /// Stop logging (the log is kept, and still verified).
    Off,
    /// Print the log's entries, oldest first, then what its check found; exit 1 if the log
    /// was tampered with.
    Show {
        /// Only the last N entries.
        #[arg(long, value_name = "N")]
        last: Option<usize>,
    },
    /// Check the log against the store's header: every entry there, in order, unaltered,
    /// nothing cut from its end; name what is wrong and exit 1 if anything is.
    Verify,
    /// Delete every entry and start the log again (its first entry says how many there
    /// were): the way out of a log that blocks writes or a rekey. Save `audit show --json`
    /// first: what is deleted is evidence.
    Reset {
        /// Confirm: the log's entries are lost.
        #[arg(long)]
        yes: bool,
    },
}

/// What unlocks a new store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KeyKind {
    /// A passphrase, stretched with Argon2id.
    Passphrase,
    /// A 32-byte key given in TOKENVAULT_KEY (base64).
    Env,
    /// A random key kept in the OS keychain (Secret Service, macOS Keychain, Windows
    /// Credential Manager).
    Keychain,
}

/// Import formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    /// A Zoho SDK FileStore CSV (Python, Java, Node; also the older 9-column form).
    ZohoCsv,
    /// The `oauthtoken` table of a Zoho SDK SQLite store.
    ZohoSqlite,
    /// What `export --format json` writes.
    Json,
    /// The `oauthtoken` table of a Zoho SDK DBStore on MySQL: give its URI as FILE
    /// (`mysql://USER:PASS@HOST:PORT/zohooauth`).
    ZohoMysql,
}

/// Export formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// A Zoho FileStore CSV (Python SDK header).
    ZohoCsv,
    /// A JSON array of tokens.
    Json,
}

fn parse_field(name: &str) -> Result<tokenvault::TokenField, String> {
    tokenvault::TokenField::from_name(name).ok_or_else(|| {
        let names: Vec<_> = tokenvault::TokenField::ALL
            .iter()
            .map(|f| f.name())
            .collect();
        format!("unknown field; one of: {}", names.join(", "))
    })
}
