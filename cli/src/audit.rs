//! `tokenvault audit on|off|show|verify|reset`: the store's audit trail.

use std::io::Write;
use std::process::ExitCode;

use tokenvault::{AuditEntry, AuditMode, AuditProblem, AuditTrail};

use crate::CliError;
use crate::cli::AuditAction;
use crate::open::{Store, StoreUri, Unlock};
use crate::output::escape_controls;
use crate::records::iso8601;

pub fn run(
    unlock: &Unlock,
    uri: &StoreUri,
    action: AuditAction,
    json: bool,
) -> Result<ExitCode, CliError> {
    // Checked before anything is unlocked.
    if matches!(action, AuditAction::Reset { yes: false }) {
        return Err(CliError::usage(
            "audit reset deletes every entry of the log: save `tokenvault audit show --json` first, then pass --yes",
        ));
    }
    // Turning the trail off or starting it again needs the store's credential, not a
    // session's key.
    let store = &match action {
        AuditAction::Off | AuditAction::Reset { .. } => unlock.open_strict(uri)?,
        _ => unlock.open(uri)?,
    };
    match action {
        AuditAction::On { reads } => {
            let mode = if reads {
                AuditMode::All
            } else {
                AuditMode::Changes
            };
            set_mode(store, uri, mode, json)
        }
        AuditAction::Off => set_mode(store, uri, AuditMode::Off, json),
        AuditAction::Show { last } => show(store, uri, last, json),
        AuditAction::Verify => verify(store, uri, json),
        AuditAction::Reset { .. } => reset(store, uri, json),
    }
}

fn reset(store: &Store, uri: &StoreUri, json: bool) -> Result<ExitCode, CliError> {
    let deleted = store.reset_audit_log().map_err(|e| uri.error(e))?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::json!({ "deleted": deleted }))?;
    } else {
        writeln!(
            out,
            "deleted {deleted} audit entr{}; the log starts again with an audit_reset entry",
            if deleted == 1 { "y" } else { "ies" }
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn set_mode(
    store: &Store,
    uri: &StoreUri,
    mode: AuditMode,
    json: bool,
) -> Result<ExitCode, CliError> {
    store.set_audit_mode(mode).map_err(|e| uri.error(e))?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::json!({ "audit": mode.name() }))?;
    } else {
        let what = match mode {
            AuditMode::Off => "off (the log is kept)",
            AuditMode::Changes => "on: every change is logged",
            _ => "on: every change and every read is logged",
        };
        writeln!(out, "audit trail {what}")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn trail(store: &Store, uri: &StoreUri) -> Result<AuditTrail, CliError> {
    store.audit_trail().map_err(|e| uri.error(e))
}

fn entry_json(entry: &AuditEntry) -> serde_json::Value {
    serde_json::json!({
        "verified": entry.verified,
        "seq": entry.seq,
        "time": iso8601(entry.unix_millis()),
        "time_ms": entry.unix_millis(),
        "operation": entry.operation,
        "record": entry.record,
        "outcome": entry.outcome.name(),
        "user": entry.user,
        "host": entry.host,
        "detail": entry.detail,
    })
}

fn problem_json(problem: &AuditProblem) -> serde_json::Value {
    use serde_json::json;
    let mut out = match *problem {
        AuditProblem::Unreadable { seq } => json!({ "problem": "unreadable", "seq": seq }),
        AuditProblem::Altered { seq } => json!({ "problem": "altered", "seq": seq }),
        AuditProblem::OutOfPlace { seq, says } => {
            json!({ "problem": "out_of_place", "seq": seq, "says": says })
        }
        AuditProblem::Missing { from, to } => {
            json!({ "problem": "missing", "from": from, "to": to })
        }
        AuditProblem::Truncated { last, expected } => {
            json!({ "problem": "truncated", "last": last, "expected": expected })
        }
        AuditProblem::Unexpected { seq } => json!({ "problem": "unexpected", "seq": seq }),
        AuditProblem::WrongHead => json!({ "problem": "wrong_head" }),
        _ => json!({ "problem": "other" }),
    };
    out["message"] = problem.to_string().into();
    out
}

/// One line per entry: number (`!` after it: not vouched for by the chain), time,
/// operation, record, outcome, user@host, detail.
fn entry_line(entry: &AuditEntry) -> String {
    format!(
        "{:>6}{} {}  {:<17} {:<18} {:<9} {}@{}{}",
        entry.seq,
        if entry.verified { ' ' } else { '!' },
        iso8601(entry.unix_millis()),
        escape_controls(&entry.operation),
        escape_controls(entry.record.as_deref().unwrap_or("-")),
        entry.outcome.name(),
        escape_controls(&entry.user),
        escape_controls(&entry.host),
        if entry.detail.is_empty() {
            String::new()
        } else {
            format!("  {}", escape_controls(&entry.detail))
        }
    )
}

fn summary(trail: &AuditTrail) -> String {
    if trail.is_intact() {
        format!(
            "{} entr{}, chain intact, ending where the header says; audit trail {}",
            trail.expected,
            if trail.expected == 1 { "y" } else { "ies" },
            trail.mode.name()
        )
    } else {
        format!(
            "{} problem(s) in the audit log ({} entries counted by the header): it was changed outside the store",
            trail.problems.len(),
            trail.expected
        )
    }
}

fn exit(trail: &AuditTrail) -> ExitCode {
    if trail.is_intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn show(
    store: &Store,
    uri: &StoreUri,
    last: Option<usize>,
    json: bool,
) -> Result<ExitCode, CliError> {
    let trail = trail(store, uri)?;
    let skip = last.map_or(0, |n| trail.entries.len().saturating_sub(n));
    print_trail(&trail, Some(&trail.entries[skip..]), json)
}

fn verify(store: &Store, uri: &StoreUri, json: bool) -> Result<ExitCode, CliError> {
    print_trail(&trail(store, uri)?, None, json)
}

/// What `show` (with `shown`: the entries) and `verify` (without) print: the entries, the
/// problems and a summary; as JSON, `entries` is the array shown or the header's count.
fn print_trail(
    trail: &AuditTrail,
    shown: Option<&[AuditEntry]>,
    json: bool,
) -> Result<ExitCode, CliError> {
    let mut out = std::io::stdout().lock();
    if json {
        let entries = match shown {
            Some(shown) => serde_json::Value::Array(shown.iter().map(entry_json).collect()),
            None => trail.expected.into(),
        };
        let problems: Vec<_> = trail.problems.iter().map(problem_json).collect();
        writeln!(
            out,
            "{}",
            serde_json::json!({
                "mode": trail.mode.name(),
                "entries": entries,
                "intact": trail.is_intact(),
                "problems": problems,
            })
        )?;
    } else {
        for entry in shown.unwrap_or_default() {
            writeln!(out, "{}", entry_line(entry))?;
        }
        for problem in &trail.problems {
            writeln!(out, "PROBLEM {problem}")?;
        }
        writeln!(out, "{}", summary(trail))?;
    }
    Ok(exit(trail))
}
