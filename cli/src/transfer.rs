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
use crate::open::{Store, StoreUri, Unlock, with_causes};

/// What can be known of an import's input before the store is unlocked: that the file is
/// there, and (CSV, JSON) not over the size an import reads.
pub fn check_import_file(format: ImportFormat, file: &Path) -> Result<(), CliError> {
    if format == ImportFormat::ZohoMysql {
        return Ok(()); // a URI, checked when connecting
    }
    let meta =
        std::fs::metadata(file).map_err(|e| CliError::usage(format!("{}: {e}", file.display())))?;
    if matches!(format, ImportFormat::ZohoCsv | ImportFormat::Json) {
        import::check_input_size(meta.len())
            .map_err(|e| CliError::usage(format!("{}: {}", file.display(), with_causes(&e))))?;
    }
    Ok(())
}

pub fn import(
    store: &Store,
    uri: &StoreUri,
    format: ImportFormat,
    file: &Path,
    json: bool,
) -> Result<ExitCode, CliError> {
    // A file that cannot be read as its format is bad input: the usage class.
    let unreadable = |reason: String| CliError::usage(format!("{}: {reason}", file.display()));
    let refused = |e: import::ImportError| unreadable(with_causes(&e));
    // A CSV or JSON file is read into memory: one too large is refused before it is read.
    let open = || {
        let input = File::open(file).map_err(|e| unreadable(e.to_string()))?;
        let len = input
            .metadata()
            .map_err(|e| unreadable(e.to_string()))?
            .len();
        import::check_input_size(len).map_err(refused)?;
        Ok::<_, CliError>(input)
    };
    let bar = progress_bar("importing");
    // Rows are read one at a time, as they are saved.
    let run = |rows: import::Rows<'_>| {
        if let Some(total) = rows.total() {
            bar.set_length(total);
        }
        import::import(store, rows, &mut |done| bar.set_position(done))
    };
    let summary = match format {
        ImportFormat::ZohoCsv => run(zoho_csv::rows(open()?).map_err(refused)?),
        ImportFormat::ZohoSqlite => import::zoho_sqlite::read_with(file, run).map_err(refused)?,
        ImportFormat::ZohoMysql => zoho_mysql(file, run)?,
        ImportFormat::Json => run(import::json::rows(open()?).map_err(refused)?),
    }
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
    json: bool,
) -> Result<ExitCode, CliError> {
    if !plaintext {
        return Err(CliError::usage(
            "export writes every secret in plaintext; confirm with --plaintext",
        ));
    }
    if let Some(path) = out.filter(|p| p.exists() && !force) {
        return Err(CliError::refused(format!(
            "{} exists; pass --force to overwrite it",
            path.display()
        )));
    }
    let store = unlock.open_strict(uri)?;
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
    // To stdout the export itself is the output; to a file, a summary (JSON with --json).
    match out {
        Some(path) if json => crate::output::report(
            true,
            "",
            serde_json::json!({ "exported": tokens.len(), "out": path.display().to_string() }),
        )?,
        _ => eprintln!("exported {} token(s) in plaintext", tokens.len()),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn migrate(
    unlock: &Unlock,
    uri: &StoreUri,
    to: &str,
    resume: bool,
    json: bool,
) -> Result<ExitCode, CliError> {
    let dest_uri = StoreUri::parse(Some(to))?;
    // What the destination is (file stores: whether there is one) is known before the
    // source is unlocked.
    if resume && !dest_uri.exists() {
        return Err(dest_uri.error(tokenvault::Error::NoStore));
    }
    if !resume && dest_uri.exists() && tokenvault::inspect(&*dest_uri.backend()?).is_ok() {
        let e = tokenvault::Error::StoreExists;
        return Err(CliError::from_error(
            &e,
            format!(
                "store {dest_uri} already exists; if an interrupted migrate left it, run the same \
                 command with --resume to finish it, or remove it first"
            ),
        ));
    }
    let (store, credential) = unlock.open_with_credential(uri)?;
    // The destination is created with the credential that opened the source, so a resumed
    // migrate opens it with the same one.
    let dest: Store = if resume {
        EncryptedStore::open(dest_uri.backend()?, &credential)
    } else {
        EncryptedStore::create(dest_uri.backend()?, &credential)
    }
    .map_err(|e| match e {
        e @ tokenvault::Error::StoreExists => CliError::from_error(
            &e,
            format!(
                "store {dest_uri} already exists; if an interrupted migrate left it, run the same \
             command with --resume to finish it, or remove it first"
            ),
        ),
        e => dest_uri.error(e),
    })?;
    let bar = progress_bar("migrating");
    let report = store
        .copy_into(&dest, &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .map_err(|e| match e {
            tokenvault::Error::Backend(_) | tokenvault::Error::Conflict { .. } => dest_uri.error(e),
            e => uri.error(e),
        })?;
    bar.finish_and_clear();
    crate::output::report(
        json,
        format_args!(
            "migrated {} token(s) to {dest_uri}, sealed under new keys{}",
            report.inserted + report.updated,
            if report.updated > 0 {
                format!(" ({} already there from an earlier run)", report.updated)
            } else {
                String::new()
            }
        ),
        serde_json::json!({
            "migrated": report.inserted + report.updated,
            "already_there": report.updated,
            "to": dest_uri.to_string(),
        }),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Imports the rows of a Zoho DBStore's `oauthtoken` table on MySQL, one at a time, through
/// `run`; `uri` names the database.
#[cfg(feature = "mysql")]
fn zoho_mysql<T>(uri: &Path, run: impl FnOnce(import::Rows<'_>) -> T) -> Result<T, CliError> {
    let text = uri
        .to_str()
        .ok_or_else(|| CliError::usage("the MySQL URI is not UTF-8"))?;
    // Displays without the password.
    let shown = tokenvault::uri::StoreUri::Server(text.to_owned());
    import::zoho_mysql::read_with(text, run)
        .map_err(|e| CliError::failure(format!("{shown}: {}", with_causes(&e))))
}

#[cfg(not(feature = "mysql"))]
fn zoho_mysql<T>(_: &Path, _: impl FnOnce(import::Rows<'_>) -> T) -> Result<T, CliError> {
    Err(CliError::failure(
        "this build has no MySQL support (the `mysql` feature)",
    ))
}
