//! Commands on keys: init, passwd, rotate, rekey, verify.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use tokenvault::{
    Argon2Params, Credential, EncryptedStore, Finding, KeySlotKind, RawKey, RecordSetCheck,
};

use crate::CliError;
use crate::cli::{KeyKind, SlotAction};
use crate::open::{NEW_PASSPHRASE_SOURCES, PASSPHRASE_SOURCES, Store, StoreUri, Unlock};
use crate::output::{escape_controls, report};

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

pub fn init(
    uri: &StoreUri,
    unlock: &Unlock,
    key: KeyKind,
    json: bool,
) -> Result<ExitCode, CliError> {
    // A store already there is said before any passphrase is asked for.
    if uri.exists() && tokenvault::inspect(&*uri.backend()?).is_ok() {
        return Err(uri.error(tokenvault::Error::StoreExists));
    }
    // The credential first: a failed prompt must not leave an empty database behind.
    let credential = match key {
        KeyKind::Passphrase => {
            unlock.new_passphrase(PASSPHRASE_SOURCES, unlock.passphrase_file.as_deref())?
        }
        KeyKind::Env => Credential::raw_key(
            RawKey::from_env().map_err(|e| CliError::credential(crate::open::with_causes(&e)))?,
        ),
        KeyKind::Keychain => Credential::keychain(),
    };
    let store = EncryptedStore::create(uri.backend()?, &credential).map_err(|e| match &e {
        // The library's advice (open the store with another slot) fits no store yet: only
        // the reason is kept.
        tokenvault::Error::Keychain { reason } => CliError::from_error(
            &e,
            format!(
                "{uri}: cannot keep the key in the OS keychain ({reason}); no store was created. Start a Secret Service (e.g. gnome-keyring) or use --key passphrase / --key env"
            ),
        ),
        _ => uri.error(e),
    })?;
    let id = store.store_id();
    report(
        json,
        format_args!("created store {id} at {uri}"),
        serde_json::json!({ "created": id, "store": uri.to_string() }),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `passwd`: the new passphrase is read before the store is unlocked (a missing one costs no
/// Argon2id run and no prompt for the old one).
pub fn passwd(
    unlock: &Unlock,
    uri: &StoreUri,
    new_passphrase_file: Option<&Path>,
    json: bool,
) -> Result<ExitCode, CliError> {
    let new = unlock.new_passphrase(NEW_PASSPHRASE_SOURCES, new_passphrase_file)?;
    let store = unlock.open_strict(uri)?;
    store.change_passphrase(&new).map_err(|e| uri.error(e))?;
    forget_session(&store.store_id());
    report(
        json,
        format_args!("passphrase changed for {uri}"),
        serde_json::json!({ "passphrase_changed": uri.to_string() }),
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn rotate(store: &Store, uri: &StoreUri, json: bool) -> Result<ExitCode, CliError> {
    let bar = progress_bar("re-sealing");
    let report = store
        .rotate_with_progress(&mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .map_err(|e| uri.error(e))?;
    bar.finish_and_clear();
    let text = format!(
        "rotated to data key {}: {} record(s) re-sealed{}",
        report.key_id,
        report.resealed,
        if report.resumed {
            " (finished an interrupted rotation)"
        } else {
            ""
        }
    );
    let value = serde_json::json!({
        "key_id": report.key_id, "resealed": report.resealed, "resumed": report.resumed,
    });
    crate::output::report(json, text, value)?;
    Ok(ExitCode::SUCCESS)
}

pub fn verify(
    store: &Store,
    uri: &StoreUri,
    accept: bool,
    json: bool,
) -> Result<ExitCode, CliError> {
    let report = store.verify().map_err(|e| uri.error(e))?;
    let accepted = if accept {
        Some(store.accept_records(&report).map_err(|e| uri.error(e))?)
    } else {
        None
    };
    let findings: &[Finding] = match &report.record_set {
        RecordSetCheck::Changed(findings) => findings,
        _ => &[],
    };
    let mut out = std::io::stdout().lock();
    if json {
        let failed: Vec<_> = report
            .failed
            .iter()
            .map(|(id, e)| serde_json::json!({ "id": id, "error": e.to_string() }))
            .collect();
        let record_set = match &report.record_set {
            RecordSetCheck::Intact => "intact",
            RecordSetCheck::NotSummarized => "not summarized",
            _ => "changed",
        };
        let findings: Vec<_> = findings.iter().map(finding_json).collect();
        writeln!(
            out,
            "{}",
            serde_json::json!({
                "ok": report.ok,
                "failed": failed,
                "record_set": record_set,
                "findings": findings,
                "accepted": accepted,
            })
        )?;
    } else {
        for (id, e) in &report.failed {
            writeln!(out, "FAILED {}: {e}", escape_controls(id))?;
        }
        for finding in findings {
            writeln!(out, "CHANGED {}", escape_controls(&finding.to_string()))?;
        }
        if report.record_set == RecordSetCheck::NotSummarized {
            writeln!(
                out,
                "NOT CHECKED the header has no record-set summary: a store from an older release not written since, or an old header put back; `tokenvault verify --accept` adds one"
            )?;
        }
        writeln!(
            out,
            "{} record(s) ok, {} failed, record set {}",
            report.ok,
            report.failed.len(),
            match report.record_set {
                RecordSetCheck::Intact => "as last written",
                RecordSetCheck::NotSummarized => "not checked",
                _ => "CHANGED outside the store",
            }
        )?;
        if let Some(count) = accepted {
            writeln!(
                out,
                "accepted the {count} record(s) as they are now: the record-set summary was recomputed"
            )?;
        }
    }
    let clean = match accepted {
        Some(_) => report.failed.is_empty(),
        None => report.is_clean(),
    };
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn finding_json(finding: &Finding) -> serde_json::Value {
    let message = finding.to_string();
    match finding {
        Finding::NotLatest { id, found, latest } => serde_json::json!({
            "kind": if found < latest { "rolled back" } else { "not latest" },
            "id": id, "generation": found, "latest": latest, "message": message,
        }),
        Finding::Resurrected { id } => {
            serde_json::json!({ "kind": "resurrected", "id": id, "message": message })
        }
        Finding::Missing { count } => {
            serde_json::json!({ "kind": "missing", "count": count, "message": message })
        }
        _ => serde_json::json!({ "kind": "unexplained", "message": message }),
    }
}

pub fn rekey(
    unlock: &Unlock,
    uri: &StoreUri,
    key: KeyKind,
    new_passphrase_file: Option<&Path>,
    json: bool,
) -> Result<ExitCode, CliError> {
    // The new credential before the old one unlocks anything: a missing one is a quick error.
    let credential = match key {
        KeyKind::Passphrase => {
            unlock.new_passphrase(NEW_PASSPHRASE_SOURCES, new_passphrase_file)?
        }
        KeyKind::Env => Credential::raw_key(
            RawKey::from_env_var("TOKENVAULT_NEW_KEY")
                .map_err(|e| CliError::credential(crate::open::with_causes(&e)))?,
        ),
        KeyKind::Keychain => Credential::keychain(),
    };
    let store = unlock.open_strict(uri)?;
    // The old store key opens nothing after the rekey: its session key goes either way.
    forget_session(&store.store_id());
    let bar = progress_bar("re-sealing");
    let (store, report) = store
        .rekey(
            std::slice::from_ref(&credential),
            Argon2Params::default(),
            &mut |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            },
        )
        .map_err(|e| uri.error(e))?;
    bar.finish_and_clear();
    drop(store);
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(
            out,
            "{}",
            serde_json::json!({
                "store_id": report.store_id,
                "resealed": report.resealed,
                "slots": report.slots,
                "old_keychain_entry_kept": report.old_keychain_entry_kept,
            })
        )?;
    } else {
        writeln!(
            out,
            "rekeyed {uri}: new store id {}, {} record(s) re-sealed, {} key slot(s); old credentials and header copies no longer open it",
            report.store_id, report.resealed, report.slots
        )?;
        if report.old_keychain_entry_kept {
            writeln!(
                out,
                "note: the old store's OS keychain entry could not be deleted (it opens nothing current); remove it with your keychain tool"
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn slots(
    unlock: &Unlock,
    uri: &StoreUri,
    action: SlotAction,
    json: bool,
) -> Result<ExitCode, CliError> {
    // A new passphrase is read (and judged) before the store is unlocked.
    let new_passphrase = match &action {
        SlotAction::AddPassphrase {
            new_passphrase_file,
        } => Some(unlock.new_passphrase(NEW_PASSPHRASE_SOURCES, new_passphrase_file.as_deref())?),
        _ => None,
    };
    let store = match action {
        SlotAction::List => unlock.open(uri)?,
        _ => unlock.open_strict(uri)?,
    };
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
        SlotAction::AddPassphrase { .. } => {
            let credential = new_passphrase.expect("read above for this action");
            let id = store
                .add_slot(&credential, Argon2Params::default())
                .map_err(|e| uri.error(e))?;
            slot_report(&mut out, json, "added", id, "passphrase")?;
        }
        SlotAction::AddKeychain => {
            let id = store
                .add_slot(&Credential::keychain(), Argon2Params::default())
                .map_err(|e| uri.error(e))?;
            slot_report(&mut out, json, "added", id, "keychain")?;
        }
        SlotAction::Remove { id } => {
            store.remove_slot(id).map_err(|e| uri.error(e))?;
            slot_report(&mut out, json, "removed", id, "")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `added passphrase slot 2` / `{"added": 2, "kind": "passphrase"}`.
fn slot_report(
    out: &mut impl Write,
    json: bool,
    done: &str,
    id: u32,
    kind: &str,
) -> std::io::Result<()> {
    if json {
        let mut value = serde_json::json!({ done: id });
        if !kind.is_empty() {
            value["kind"] = kind.into();
        }
        writeln!(out, "{value}")
    } else if kind.is_empty() {
        writeln!(out, "{done} slot {id}")
    } else {
        writeln!(out, "{done} {kind} slot {id}")
    }
}

pub fn destroy(uri: &StoreUri, yes: bool, json: bool) -> Result<ExitCode, CliError> {
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
    let store_info = tokenvault::inspect(&*uri.backend()?);
    let keychain_store_id = store_info
        .as_ref()
        .ok()
        .filter(|info| info.slots.iter().any(|s| s.kind == KeySlotKind::Keychain))
        .map(|info| info.store_id.clone());
    if let Some(id) = &keychain_store_id {
        tokenvault::keychain::delete_entry(id).map_err(|e| uri.error(e))?;
    }
    let removed = uri.remove_files()?;
    if let Ok(info) = &store_info {
        forget_session(&info.store_id);
    }
    report(
        json,
        format_args!(
            "destroyed {uri} ({} file(s){})",
            removed,
            if keychain_store_id.is_some() {
                ", keychain entry"
            } else {
                ""
            }
        ),
        serde_json::json!({
            "destroyed": uri.to_string(),
            "files": removed,
            "keychain_entry": keychain_store_id.is_some(),
        }),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `unlock`: opens the store as any command does (explicit credential, keychain or prompt;
/// never a session key already there), then keeps its key in the kernel keyring.
pub fn unlock(
    unlock: &Unlock,
    uri: &StoreUri,
    duration: std::time::Duration,
    json: bool,
) -> Result<ExitCode, CliError> {
    let (store, _) = unlock.open_with_credential(uri)?;
    let id = store.store_id();
    let serial = crate::session::remember(&id, &store.export_store_key(), duration)?;
    let seconds = duration.as_secs();
    report(
        json,
        format_args!(
            "unlocked store {id} at {uri} for {seconds}s (kernel keyring key {serial}); `tokenvault lock` ends it"
        ),
        serde_json::json!({ "unlocked": id, "expires_in": seconds, "key": serial }),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `lock`: the store's id from its header (no unlock needed), its key out of the keyring.
pub fn lock(uri: &StoreUri, json: bool) -> Result<ExitCode, CliError> {
    if !uri.exists() {
        return Err(uri.error(tokenvault::Error::NoStore));
    }
    let id = tokenvault::inspect(&*uri.backend()?)
        .map_err(|e| uri.error(e))?
        .store_id;
    let was = crate::session::forget(&id);
    report(
        json,
        if was {
            format!("locked store {id}")
        } else {
            format!("store {id} was not unlocked")
        },
        serde_json::json!({ "locked": id, "was_unlocked": was }),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// After a change of credentials (`passwd`, `rekey`, `destroy`): a session key of the store
/// would outlive it, so it goes.
pub fn forget_session(store_id: &str) {
    crate::session::forget(store_id);
}
