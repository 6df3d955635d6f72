//! The audit trail (opt-in per store, SECURITY.md §3.7): an append-only log of what was done
//! to the store, by whom and from where, each entry chained to the one before by an HMAC
//! under a key only the store key gives, and the last one's MAC and the count kept in the
//! authenticated header. Entries of a change are appended inside the change's own
//! transaction: no change without its entry, no entry without its change. A removed, altered,
//! reordered or inserted entry breaks the chain; a cut tail no longer reaches the header's
//! count.

mod chain;
mod entry;

pub use chain::{AuditProblem, AuditTrail};
pub(crate) use chain::{append, check_chain, rechain};
pub use entry::{AuditEntry, AuditOutcome};
pub(crate) use entry::{CHAIN_LABEL, Event};

use super::EncryptedStore;
use crate::backend::Backend;
use crate::format::header::AuditHead;
use crate::store::{Error, Result, Subject};

/// What a store's audit trail records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum AuditMode {
    /// Nothing (the log stays as it was, and is still verified).
    #[default]
    Off,
    /// Every change: saves, deletes, key and slot changes, and failed attempts at them.
    Changes,
    /// Every change and every read of a record (each read then costs a write transaction).
    All,
}

impl AuditMode {
    pub(crate) fn code(self) -> u8 {
        match self {
            AuditMode::Off => 0,
            AuditMode::Changes => 1,
            AuditMode::All => 2,
        }
    }

    /// The mode a header's code names; an unknown code (a newer build's) is treated as the
    /// most thorough mode this build knows, so nothing goes unlogged.
    pub(crate) fn from_code(code: u8) -> Self {
        match code {
            0 => AuditMode::Off,
            1 => AuditMode::Changes,
            _ => AuditMode::All,
        }
    }

    /// `off`, `changes` or `all`.
    pub fn name(self) -> &'static str {
        match self {
            AuditMode::Off => "off",
            AuditMode::Changes => "changes",
            AuditMode::All => "all",
        }
    }
}

/// Whether a failure is worth an entry: not one that makes the header itself untrusted (the
/// entry could not be chained to it), nor a failure of the storage the log lives in (whose
/// commit may even have happened: "failed" could be false, and a second transaction would
/// only add load to a struggling server).
fn loggable(e: &Error) -> bool {
    !matches!(
        e,
        Error::RolledBack { .. }
            | Error::Rekeyed
            | Error::Backend(_)
            | Error::Tampered {
                what: Subject::Header | Subject::AuditLog
            }
    )
}

/// What kind of operation an entry records: changes are logged in modes `changes` and `all`,
/// reads in mode `all` only.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Change,
    Read,
}

impl Kind {
    fn logged_in(self, mode: AuditMode) -> bool {
        match self {
            Kind::Change => mode != AuditMode::Off,
            Kind::Read => mode == AuditMode::All,
        }
    }
}

/// The audit mode a header is in.
fn mode_of(head: Option<&AuditHead>) -> AuditMode {
    head.map_or(AuditMode::Off, |a| AuditMode::from_code(a.mode))
}

impl<B: Backend> EncryptedStore<B> {
    /// The store's audit mode, as this handle last read its header (a mode another process
    /// set is seen at the next write, or the next read of a changed header).
    pub fn audit_mode(&self) -> AuditMode {
        AuditMode::from_code(self.audit_mode.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Turns the audit trail on ([`AuditMode::Changes`], [`AuditMode::All`]) or off. The
    /// change is itself logged (as `audit_on` / `audit_off`, the mode as its detail).
    /// Turning it on creates the log's storage if needed ([`Backend::prepare_audit`]) and
    /// makes the header layout version 3, which earlier releases refuse to open (rather than
    /// write without logging).
    ///
    /// # Errors
    /// [`Error::Backend`] of kind `NotSupported` for a backend that keeps no log;
    /// [`Error::Refused`] when turning it on for the first time in a backend that already
    /// holds entries (an earlier store's log, or this store's header put back from before
    /// its trail was on: see them with [`audit_trail`](Self::audit_trail), then
    /// [`reset_audit_log`](Self::reset_audit_log)); storage and integrity errors.
    pub fn set_audit_mode(&self, mode: AuditMode) -> Result<()> {
        if mode != AuditMode::Off {
            self.backend.prepare_audit()?;
        }
        let operation = if mode == AuditMode::Off {
            op::AUDIT_OFF
        } else {
            op::AUDIT_ON
        };
        let mut written = None;
        self.backend.transact(&mut |tx| {
            written = None;
            let state = self.state_in(tx)?;
            let mut write = self.begin_write(tx, &state, operation)?;
            if write.header.audit.is_none() {
                if mode == AuditMode::Off {
                    return Ok(()); // never on: nothing to turn off, nothing to log
                }
                if !tx.audit_read(0)?.is_empty() {
                    return Err(Error::Refused {
                        reason: "the backend already holds audit entries this store's header does not count (an earlier store's log, or an older header put back): see them with `tokenvault audit show`, then `tokenvault audit reset --yes`",
                    });
                }
            }
            let head = write.header.audit.get_or_insert(AuditHead {
                mode: 0,
                entries: 0,
                head: [0; 32],
            });
            head.mode = mode.code();
            write.log_anyway(mode.name());
            written = Some(self.finish_write(tx, &state, write)?);
            Ok(())
        })?;
        match written {
            Some(w) => self.install(w),
            None => Ok(()),
        }
    }

    /// Starts the log again: every entry is deleted and the first new one, `audit_reset`,
    /// says how many there were and how many the header counted. The way out of a log that
    /// blocks writes (an entry the header does not count is where the next one must go), a
    /// rekey (which refuses to re-chain a broken log), or turning the trail on over entries
    /// the header does not count. Export the log first ([`audit_trail`](Self::audit_trail)):
    /// what is deleted is evidence. Returns the number of entries deleted.
    ///
    /// # Errors
    /// Storage and header integrity errors (`NotSupported` for a backend without a log).
    pub fn reset_audit_log(&self) -> Result<u64> {
        self.backend.prepare_audit()?;
        let mut done = None;
        self.backend.transact(&mut |tx| {
            done = None;
            let state = self.state_in(tx)?;
            let mut write = self.begin_write(tx, &state, op::AUDIT_RESET)?;
            let head = write.header.audit.get_or_insert(AuditHead {
                mode: 0,
                entries: 0,
                head: [0; 32],
            });
            let counted = head.entries;
            let deleted = tx.audit_read(0)?.len() as u64;
            tx.audit_clear()?;
            head.entries = 0;
            head.head = [0; 32];
            write.log_anyway(&format!(
                "deleted {deleted} entr{}; the header counted {counted}",
                if deleted == 1 { "y" } else { "ies" }
            ));
            done = Some((deleted, self.finish_write(tx, &state, write)?));
            Ok(())
        })?;
        let (deleted, written) = done.expect("set by a committed step");
        self.install(written)?;
        Ok(deleted)
    }

    /// Reads the whole audit log and checks it against the header (`tokenvault audit show`
    /// and `audit verify`). A store whose trail was never on has an empty, intact log —
    /// unless its backend holds entries anyway (an older header put back over an audited
    /// store), which are all reported as unexpected.
    ///
    /// # Errors
    /// Storage and header integrity errors (a damaged log is reported in the trail, not as an
    /// error).
    pub fn audit_trail(&self) -> Result<AuditTrail> {
        let mut trail = None;
        self.backend.transact(&mut |tx| {
            let state = self.state_in(tx)?;
            let rows = match tx.audit_read(0) {
                Err(e) if e.kind() == crate::BackendErrorKind::NotSupported => Vec::new(),
                rows => rows?,
            };
            let head = state.header.audit.as_ref();
            trail = Some(check_chain(
                self.audit_key.expose(),
                &self.store_id,
                head,
                &rows,
            ));
            Ok(())
        })?;
        Ok(trail.expect("set by a committed step"))
    }

    /// Logs a read in [`AuditMode::All`], in a transaction of its own; the read's result is
    /// not handed out if its entry cannot be written. `detail` is only built when logged.
    pub(super) fn log_read(
        &self,
        operation: &'static str,
        record: Option<&str>,
        outcome: AuditOutcome,
        detail: impl FnOnce() -> String,
    ) -> Result<()> {
        if !Kind::Read.logged_in(self.audit_mode()) {
            return Ok(());
        }
        let event = Event {
            operation,
            record: record.map(str::to_owned),
            outcome,
            detail: detail(),
        };
        self.log_event(Kind::Read, event)
    }

    /// Logs a failed change (its transaction rolled back, with its entries) in one of its
    /// own, best effort: the caller's error is what matters.
    pub(super) fn log_failure<T>(
        &self,
        operation: &'static str,
        record: Option<&str>,
        result: Result<T>,
    ) -> Result<T> {
        self.log_failed(Kind::Change, operation, record, result)
    }

    /// Logs a failed read, in [`AuditMode::All`] only.
    pub(super) fn log_failed_read<T>(
        &self,
        operation: &'static str,
        record: Option<&str>,
        result: Result<T>,
    ) -> Result<T> {
        self.log_failed(Kind::Read, operation, record, result)
    }

    fn log_failed<T>(
        &self,
        kind: Kind,
        operation: &'static str,
        record: Option<&str>,
        result: Result<T>,
    ) -> Result<T> {
        let Err(e) = &result else {
            return result;
        };
        if kind.logged_in(self.audit_mode()) && loggable(e) {
            let outcome = if matches!(e, Error::NotFound { .. } | Error::NoMatch) {
                AuditOutcome::NotFound
            } else {
                AuditOutcome::Failed
            };
            let event = Event {
                operation,
                record: record.map(str::to_owned),
                outcome,
                detail: e.code().to_owned(),
            };
            if let Err(log_error) = self.log_event(kind, event) {
                log::warn!("a failed {operation} could not be logged: {log_error}");
            }
        }
        result
    }

    /// Appends `event` in a transaction of its own — if the header read there has the trail
    /// in a mode that logs `kind` (this handle's cached mode may be stale: then nothing is
    /// written, not even the header).
    fn log_event(&self, kind: Kind, event: Event) -> Result<()> {
        let mut written = None;
        self.backend.transact(&mut |tx| {
            written = None;
            let state = self.state_in(tx)?;
            if !kind.logged_in(mode_of(state.header.audit.as_ref())) {
                return Ok(());
            }
            let mut write = self.begin_write(tx, &state, event.operation)?;
            let mut event = event.clone();
            // A record id that came from the caller is logged only if it names a record:
            // what names none may be anything pasted in (a token, a user name).
            if event.outcome != AuditOutcome::Ok
                && let Some(id) = &event.record
                && (crate::token::check_record_id(id).is_err() || tx.get(id)?.is_none())
            {
                event.record = None;
            }
            write.log(event);
            written = Some(self.finish_write(tx, &state, write)?);
            Ok(())
        })?;
        match written {
            Some(w) => self.install(w),
            None => Ok(()),
        }
    }
}

/// The operation names entries carry (stable: tools parse them).
pub(crate) mod op {
    pub const SAVE: &str = "save";
    pub const DELETE: &str = "delete";
    pub const DELETE_ALL: &str = "delete_all";
    pub const PRUNE: &str = "prune";
    pub const ROTATE: &str = "rotate";
    pub const REKEY: &str = "rekey";
    pub const CHANGE_PASSPHRASE: &str = "change_passphrase";
    pub const ADD_SLOT: &str = "add_slot";
    pub const REMOVE_SLOT: &str = "remove_slot";
    pub const ACCEPT_RECORDS: &str = "accept_records";
    pub const AUDIT_ON: &str = "audit_on";
    pub const AUDIT_OFF: &str = "audit_off";
    pub const AUDIT_RESET: &str = "audit_reset";
    pub const FIND: &str = "find";
    pub const FIND_BY_ID: &str = "find_by_id";
    pub const GET_ALL: &str = "get_all";
    pub const VERIFY: &str = "verify";

    /// Whether `operation` logs an entry per record it writes (else one with a count).
    pub fn names_records(operation: &str) -> bool {
        [SAVE, DELETE, DELETE_ALL, PRUNE].contains(&operation)
    }
}
