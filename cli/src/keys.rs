//! Commands on keys: init, passwd, rotate, verify.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use tokenvault::{Argon2Params, Credential, EncryptedStore, KeySlotKind, RawKey};

use crate::CliError;
use crate::cli::{KeyKind, SlotAction};
use crate::open::{
    NEW_PASSPHRASE_SOURCES, PASSPHRASE_SOURCES, Store, StoreUri, Unlock, failure, read_secret,
};
use crate::output::escape_controls;

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
        KeyKind::Passphrase => read_secret(
            PASSPHRASE_SOURCES,
            unlock.passphrase_file.as_deref(),
            "New passphrase: ",
            true,
        )?,
        KeyKind::Env => Credential::raw_key(RawKey::from_env().map_err(|e| failure(&e))?),
        KeyKind::Keychain => Credential::keychain(),
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
    let new = read_secret(
        NEW_PASSPHRASE_SOURCES,
        new_passphrase_file,
        "New passphrase: ",
        true,
    )?;
    store.change_passphrase(&new).map_err(|e| uri.error(e))?;
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
            writeln!(out, "FAILED {}: {e}", escape_controls(id))?;
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

pub fn slots(
    store: &Store,
    uri: &StoreUri,
    action: SlotAction,
    json: bool,
) -> Result<ExitCode, CliError> {
    let mut out = std::io::stdout().lock();
    match action {
        SlotAction::List => {
            let slots = store.slots().map_err(|e| uri.error(e))?;
            if json {
                let rows: Vec<_> = slots
                    .iter()
                    .map(|s| serde_json::json!({ "id": s.id, "kind": s.kind.to_string(), "opened_with": s.opened_with }))
                    .collect();
                writeln!(out, "{}", serde_json::Value::Array(rows))?;
            } else {
                for s in slots {
                    writeln!(
                        out,
                        "{:>4}  {}{}",
                        s.id,
                        s.kind,
                        if s.opened_with { "  (opened with)" } else { "" }
                    )?;
                }
            }
        }
        SlotAction::AddPassphrase {
            new_passphrase_file,
        } => {
            let credential = read_secret(
                NEW_PASSPHRASE_SOURCES,
                new_passphrase_file.as_deref(),
                "New passphrase: ",
                true,
            )?;
            let id = store
                .add_slot(&credential, Argon2Params::default())
                .map_err(|e| uri.error(e))?;
            writeln!(out, "added passphrase slot {id}")?;
        }
        SlotAction::AddKeychain => {
            let id = store
                .add_slot(&Credential::keychain(), Argon2Params::default())
                .map_err(|e| uri.error(e))?;
            writeln!(out, "added keychain slot {id}")?;
        }
        SlotAction::Remove { id } => {
            store.remove_slot(id).map_err(|e| uri.error(e))?;
            writeln!(out, "removed slot {id}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn destroy(uri: &StoreUri, yes: bool) -> Result<ExitCode, CliError> {
    if !yes {
        return Err(CliError::usage(
            "destroy deletes the store and every token in it; confirm with --yes",
        ));
    }
    if !uri.exists() {
        return Err(uri.error(tokenvault::Error::NoStore));
    }
    // The keychain entry first: if it cannot be deleted, the store is still there to retry.
    // Only a store with a keychain slot has one: a passphrase-only store needs no keychain.
    let keychain_store_id = tokenvault::inspect(&*uri.backend()?)
        .ok()
        .filter(|info| info.slots.iter().any(|s| s.kind == KeySlotKind::Keychain))
        .map(|info| info.store_id);
    if let Some(id) = &keychain_store_id {
        tokenvault::keychain::delete_entry(id).map_err(|e| uri.error(e))?;
    }
    let removed = uri.remove_files()?;
    writeln!(
        std::io::stdout(),
        "destroyed {uri} ({} file(s){})",
        removed,
        if keychain_store_id.is_some() {
            ", keychain entry"
        } else {
            ""
        }
    )?;
    Ok(ExitCode::SUCCESS)
}
