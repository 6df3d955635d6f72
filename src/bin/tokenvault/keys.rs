//! Commands on keys: init, passwd, rotate, verify.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use tokenvault::{Credential, EncryptedStore};

use crate::CliError;
use crate::cli::KeyKind;
use crate::open::{
    NEW_PASSPHRASE_SOURCES, PASSPHRASE_SOURCES, Store, StoreUri, Unlock, raw_key_from_env,
    read_secret,
};

/// A progress bar on stderr when it is a terminal; hidden otherwise.
pub fn progress_bar(what: &str) -> indicatif::ProgressBar {
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

pub fn init(uri: &StoreUri, unlock: &Unlock, key: KeyKind) -> Result<ExitCode, CliError> {
    // The credential first: a failed prompt must not leave an empty database behind.
    let credential = match key {
        KeyKind::Passphrase => {
            let mut passphrase = read_secret(
                PASSPHRASE_SOURCES,
                unlock.passphrase_file.as_deref(),
                "New passphrase: ",
                true,
            )?;
            Credential::passphrase(std::mem::take(&mut *passphrase))
        }
        KeyKind::Env => Credential::raw_key(raw_key_from_env()?),
    };
    let store = EncryptedStore::create(uri.backend()?, &credential).map_err(|e| uri.error(e))?;
    writeln!(
        std::io::stdout(),
        "created store {} at {uri}",
        store.store_id()
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn passwd(
    store: &Store,
    uri: &StoreUri,
    new_passphrase_file: Option<&Path>,
) -> Result<ExitCode, CliError> {
    let mut new = read_secret(
        NEW_PASSPHRASE_SOURCES,
        new_passphrase_file,
        "New passphrase: ",
        true,
    )?;
    store
        .change_passphrase(&Credential::passphrase(std::mem::take(&mut *new)))
        .map_err(|e| uri.error(e))?;
    writeln!(std::io::stdout(), "passphrase changed for {uri}")?;
    Ok(ExitCode::SUCCESS)
}

pub fn rotate(store: &Store, uri: &StoreUri) -> Result<ExitCode, CliError> {
    let bar = progress_bar("re-sealing");
    let report = store
        .rotate_with_progress(&mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .map_err(|e| uri.error(e))?;
    bar.finish_and_clear();
    writeln!(
        std::io::stdout(),
        "rotated to data key {}: {} record(s) re-sealed{}",
        report.key_id,
        report.resealed,
        if report.resumed {
            " (finished an interrupted rotation)"
        } else {
            ""
        }
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn verify(store: &Store, uri: &StoreUri, json: bool) -> Result<ExitCode, CliError> {
    let report = store.verify().map_err(|e| uri.error(e))?;
    let mut out = std::io::stdout().lock();
    if json {
        let failed: Vec<_> = report
            .failed
            .iter()
            .map(|(id, e)| serde_json::json!({ "id": id, "error": e.to_string() }))
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::json!({ "ok": report.ok, "failed": failed })
        )?;
    } else {
        for (id, e) in &report.failed {
            writeln!(out, "FAILED {id}: {e}")?;
        }
        writeln!(
            out,
            "{} record(s) ok, {} failed",
            report.ok,
            report.failed.len()
        )?;
    }
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
