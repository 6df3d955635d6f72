//! Moving tokens in and out: import, export, migrate.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;

use tokenvault::import::{self, zoho_csv};
use tokenvault::{EncryptedStore, TokenStore};

use crate::CliError;
use crate::cli::{ExportFormat, ImportFormat};
use crate::keys::progress_bar;
use crate::open::{Store, StoreUri, Unlock};

pub fn import(
    store: &Store,
    uri: &StoreUri,
    format: ImportFormat,
    file: &Path,
    json: bool,
) -> Result<ExitCode, CliError> {
    let unreadable = |reason: String| CliError::failure(format!("{}: {reason}", file.display()));
    let rows = match format {
        ImportFormat::ZohoCsv => {
            let input = File::open(file).map_err(|e| unreadable(e.to_string()))?;
            zoho_csv::read(input).map_err(|e| unreadable(e.to_string()))?
        }
        ImportFormat::ZohoSqlite => import::zoho_sqlite::read(file).map_err(unreadable)?,
        ImportFormat::ZohoMysql => zoho_mysql(file)?,
        ImportFormat::Json => {
            let input = File::open(file).map_err(|e| unreadable(e.to_string()))?;
            import::json::read(input).map_err(unreadable)?
        }
    };
    let bar = progress_bar("importing");
    bar.set_length(rows.len() as u64);
    let summary = import::import(store, rows, &mut |done| bar.set_position(done))
        .map_err(|e| uri.error(e))?;
    bar.finish_and_clear();
    if json {
        let refused: Vec<_> = summary
            .refused
            .iter()
            .map(|(row, reason)| serde_json::json!({ "row": row, "reason": reason }))
            .collect();
        let report = serde_json::json!({
            "read": summary.read, "inserted": summary.inserted, "updated": summary.updated, "refused": refused,
        });
        writeln!(std::io::stdout(), "{report}")?;
    } else {
        let mut err = std::io::stderr().lock();
        for (row, reason) in &summary.refused {
            writeln!(err, "row {row} refused: {reason}")?;
        }
        writeln!(
            err,
            "read {}, inserted {}, updated {}, refused {}",
            summary.read,
            summary.inserted,
            summary.updated,
            summary.refused.len()
        )?;
    }
    Ok(if summary.refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn export(
    unlock: &Unlock,
    uri: &StoreUri,
    format: ExportFormat,
    plaintext: bool,
    out: Option<&Path>,
    force: bool,
) -> Result<ExitCode, CliError> {
    if !plaintext {
        return Err(CliError::usage(
            "export writes every secret in plaintext; confirm with --plaintext",
        ));
    }
    if let Some(path) = out.filter(|p| p.exists() && !force) {
        return Err(CliError::failure(format!(
            "{} exists; pass --force to overwrite it",
            path.display()
        )));
    }
    let store = unlock.open(uri)?;
    let tokens = store.get_tokens().map_err(|e| uri.error(e))?;
    let write = |w: &mut dyn Write| match format {
        ExportFormat::ZohoCsv => zoho_csv::write(w, &tokens),
        ExportFormat::Json => import::json::write(w, &tokens),
    };
    match out {
        None => write(&mut std::io::stdout().lock())?,
        Some(path) => {
            let mut options = OpenOptions::new();
            options.write(true).mode(0o600);
            if force {
                options.create(true).truncate(true)
            } else {
                options.create_new(true)
            };
            let mut file = options
                .open(path)
                .map_err(|e| CliError::failure(format!("{}: {e}", path.display())))?;
            // An existing file keeps its mode when truncated: make sure it is 0600.
            file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
            write(&mut file)?;
            file.sync_all()?;
        }
    }
    eprintln!("exported {} token(s) in plaintext", tokens.len());
    Ok(ExitCode::SUCCESS)
}

pub fn migrate(unlock: &Unlock, uri: &StoreUri, to: &str) -> Result<ExitCode, CliError> {
    let dest_uri = StoreUri::parse(Some(to))?;
    let (store, credential) = unlock.open_with_credential(uri)?;
    let dest: Store =
        EncryptedStore::create(dest_uri.backend()?, &credential).map_err(|e| dest_uri.error(e))?;
    let tokens = store.get_tokens().map_err(|e| uri.error(e))?;
    let bar = progress_bar("migrating");
    bar.set_length(tokens.len() as u64);
    for (i, mut token) in tokens.into_iter().enumerate() {
        dest.save_token(&mut token).map_err(|e| dest_uri.error(e))?;
        bar.set_position(i as u64 + 1);
    }
    bar.finish_and_clear();
    let copied = dest.get_tokens().map_err(|e| dest_uri.error(e))?.len();
    writeln!(
        std::io::stdout(),
        "migrated {copied} token(s) to {dest_uri}, sealed under new keys"
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Rows of a Zoho DBStore's `oauthtoken` table on MySQL; `uri` names the database.
#[cfg(feature = "mysql")]
fn zoho_mysql(uri: &Path) -> Result<Vec<import::Row>, CliError> {
    let text = uri
        .to_str()
        .ok_or_else(|| CliError::usage("the MySQL URI is not UTF-8"))?;
    let shown = StoreUri::Server(text.to_owned()); // displays without the password
    import::zoho_mysql::read(text).map_err(|e| CliError::failure(format!("{shown}: {e}")))
}

#[cfg(not(feature = "mysql"))]
fn zoho_mysql(_: &Path) -> Result<Vec<import::Row>, CliError> {
    Err(CliError::failure(
        "this build has no MySQL support (the `mysql` feature)",
    ))
}
