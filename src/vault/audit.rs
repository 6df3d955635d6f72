//! The audit trail (opt-in per store, SECURITY.md §3.7): an append-only log of what was done
//! to the store, by whom and from where, each entry chained to the one before by an HMAC
//! under a key only the store key gives, and the last one's MAC and the count kept in the
//! authenticated header. Entries of a change are appended inside the change's own
//! transaction: no change without its entry, no entry without its change. A removed, altered,
//! reordered or inserted entry breaks the chain; a cut tail no longer reaches the header's
//! count.

mod entry;

use std::time::SystemTime;

pub(crate) use entry::{Actor, CHAIN_LABEL, Event};
pub use entry::{AuditEntry, AuditOutcome};

use super::EncryptedStore;
use crate::backend::{AuditRow, Backend, Transaction};
use crate::format::header::AuditHead;
use crate::store::{BackendErrorKind, Error, Result, Subject};

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

/// What checking a log against its header found wrong, entry by entry.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditProblem {
    /// Entry `seq` is not an entry this build can read (damaged, or not an entry at all).
    Unreadable {
        /// Its number in the log.
        seq: u64,
    },
    /// Entry `seq` was altered, or the one before it was (its MAC does not link it to it).
    Altered {
        /// Its number in the log.
        seq: u64,
    },
    /// The entry kept as number `seq` says it is number `says`: entries were moved.
    OutOfPlace {
        /// Where it is kept.
        seq: u64,
        /// The number it was written as.
        says: u64,
    },
    /// Entries `from..=to` are missing (removed); the entry after them cannot be vouched for.
    Missing {
        /// The first missing number.
        from: u64,
        /// The last missing number.
        to: u64,
    },
    /// The log ends at entry `last`, but the header counts `expected`: its tail was cut.
    Truncated {
        /// The last entry found (0: none).
        last: u64,
        /// The entries the header counts.
        expected: u64,
    },
    /// Entry `seq` lies beyond the header's count: added outside the store, or the header
    /// was put back to an older copy.
    Unexpected {
        /// Its number in the log.
        seq: u64,
    },
    /// The last entry is not the one the header names (the log was replaced by another
    /// chain of the same length).
    WrongHead,
}

impl std::fmt::Display for AuditProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditProblem::Unreadable { seq } => write!(f, "entry {seq} cannot be read"),
            AuditProblem::Altered { seq } => {
                write!(f, "entry {seq} was altered (or the entry before it)")
            }
            AuditProblem::OutOfPlace { seq, says } => {
                write!(
                    f,
                    "entry {seq} is entry {says} moved: entries were reordered"
                )
            }
            AuditProblem::Missing { from, to } if from == to => {
                write!(f, "entry {from} was removed")
            }
            AuditProblem::Missing { from, to } => write!(f, "entries {from} to {to} were removed"),
            AuditProblem::Truncated { last, expected } => write!(
                f,
                "the log ends at entry {last} but the store counts {expected}: its tail was cut"
            ),
            AuditProblem::Unexpected { seq } => write!(
                f,
                "entry {seq} is beyond the store's count: added outside the store, or the header was rolled back"
            ),
            AuditProblem::WrongHead => {
                f.write_str("the last entry is not the one the store's header names")
            }
        }
    }
}

/// A store's audit log as read, and what its check found.
#[derive(Clone, Debug, Default)]
pub struct AuditTrail {
    /// The mode the store is in.
    pub mode: AuditMode,
    /// Every entry that could be read, by number (including ones a problem names).
    pub entries: Vec<AuditEntry>,
    /// The numbers of the entries above that the chain does not vouch for (altered, moved,
    /// or after a gap or an unreadable entry): shown, but not to be trusted.
    pub unverified: Vec<u64>,
    /// Entries the header counts.
    pub expected: u64,
    /// What is wrong; empty for an intact log.
    pub problems: Vec<AuditProblem>,
}

impl AuditTrail {
    /// True if every entry the header counts is there, in order, unaltered, and nothing else.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks `rows` (as read, by number) against the header's `head` under `key`.
pub(crate) fn check_chain(
    key: &[u8; 32],
    store_id: &[u8; 16],
    head: &AuditHead,
    rows: &[AuditRow],
) -> AuditTrail {
    let mut trail = AuditTrail {
        mode: AuditMode::from_code(head.mode),
        expected: head.entries,
        ..AuditTrail::default()
    };
    let mut previous = Some([0u8; 32]);
    let mut next = 1u64;
    let mut last_mac = None;
    for row in rows {
        if row.seq > head.entries {
            trail
                .problems
                .push(AuditProblem::Unexpected { seq: row.seq });
            continue;
        }
        if row.seq > next {
            trail.problems.push(AuditProblem::Missing {
                from: next,
                to: row.seq - 1,
            });
            previous = None;
        }
        next = row.seq.saturating_add(1);
        let Some(parsed) = entry::decode(&row.entry) else {
            trail
                .problems
                .push(AuditProblem::Unreadable { seq: row.seq });
            previous = None;
            last_mac = None;
            continue;
        };
        if parsed.entry.seq != row.seq {
            trail.problems.push(AuditProblem::OutOfPlace {
                seq: row.seq,
                says: parsed.entry.seq,
            });
            trail.unverified.push(row.seq);
            // The entry after a moved one cannot link to it: already reported.
            previous = None;
        } else {
            match previous {
                Some(prev) if entry::link(key, store_id, &prev, parsed.body) == parsed.mac => {}
                Some(_) => {
                    trail.problems.push(AuditProblem::Altered { seq: row.seq });
                    trail.unverified.push(row.seq);
                }
                // After a gap or an unreadable entry: nothing to check its link against.
                None => trail.unverified.push(row.seq),
            }
            previous = Some(parsed.mac);
        }
        last_mac = Some(parsed.mac);
        trail.entries.push(parsed.entry);
    }
    let last = next - 1;
    if last < head.entries {
        trail.problems.push(AuditProblem::Truncated {
            last,
            expected: head.entries,
        });
    } else if trail.problems.is_empty() && last_mac.is_some_and(|mac| mac != head.head) {
        // Every link holds, yet the chain ends elsewhere: a log from a forked copy.
        trail.problems.push(AuditProblem::WrongHead);
    }
    trail
}

/// Appends `events` to the log inside `tx`, advancing `head`.
pub(crate) fn append(
    tx: &mut dyn Transaction,
    key: &[u8; 32],
    store_id: &[u8; 16],
    head: &mut AuditHead,
    events: &[Event],
) -> Result<()> {
    let actor = Actor::of_this_process();
    let now = SystemTime::now();
    for event in events {
        let seq = head.entries.checked_add(1).ok_or(Error::Refused {
            reason: "the audit log's entry numbers are exhausted",
        })?;
        let (bytes, mac) = entry::encode(key, store_id, &head.head, seq, now, actor, event);
        tx.audit_append(seq, &bytes).map_err(|e| {
            if e.kind() == BackendErrorKind::Conflict {
                // An entry the header does not count is in the way: evidence, never overwritten.
                Error::Tampered {
                    what: Subject::AuditLog,
                }
            } else {
                e.into()
            }
        })?;
        head.entries = seq;
        head.head = mac;
    }
    Ok(())
}

/// Re-chains the whole log under a rekeyed store's `key` and `store_id`, after checking it
/// under the old ones: the entries' contents stay, their MACs change. Returns the new head.
pub(crate) fn rechain(
    tx: &mut dyn Transaction,
    old: (&[u8; 32], &[u8; 16]),
    new: (&[u8; 32], &[u8; 16]),
    head: &AuditHead,
) -> Result<AuditHead> {
    let rows = tx.audit_read(0)?;
    if !check_chain(old.0, old.1, head, &rows).is_intact() {
        // Re-MACing a broken log would vouch for what broke it.
        return Err(Error::Tampered {
            what: Subject::AuditLog,
        });
    }
    tx.audit_clear()?;
    let mut new_head = AuditHead {
        mode: head.mode,
        entries: 0,
        head: [0; 32],
    };
    for row in rows {
        let parsed = entry::decode(&row.entry).ok_or(Error::Tampered {
            what: Subject::AuditLog,
        })?;
        let mac = entry::link(new.0, new.1, &new_head.head, parsed.body);
        let mut bytes = parsed.body.to_vec();
        bytes.extend_from_slice(&mac);
        tx.audit_append(row.seq, &bytes)?;
        new_head.entries = row.seq;
        new_head.head = mac;
    }
    Ok(new_head)
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

impl<B: Backend> EncryptedStore<B> {
    /// The store's audit mode, as this handle last read its header (a mode another process
    /// set is seen at the next write, or the next read of a changed header).
    pub fn audit_mode(&self) -> AuditMode {
        AuditMode::from_code(self.audit_mode.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Turns the audit trail on ([`AuditMode::Changes`], [`AuditMode::All`]) or off. The
    /// change is itself logged (as `audit_on` / `audit_off`). Turning it on creates the log's
    /// storage if needed ([`Backend::prepare_audit`]) and makes the header layout version 3,
    /// which earlier releases refuse to open (rather than write without logging).
    ///
    /// # Errors
    /// [`Error::Backend`] of kind `NotSupported` for a backend that keeps no log; storage and
    /// integrity errors.
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
            let state = self.state_in(tx)?;
            let mut write = self.begin_write(tx, &state, operation)?;
            if write.header.audit.is_none() && mode == AuditMode::Off {
                return Ok(()); // never on: nothing to turn off, nothing to log
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
    /// blocks writes (an entry the header does not count is where the next one must go) or
    /// a rekey (which refuses to re-chain a broken log). Export the log first
    /// ([`audit_trail`](Self::audit_trail)): what is deleted is evidence. Returns the number
    /// of entries deleted.
    ///
    /// # Errors
    /// [`Error::Refused`] if the store never had its audit trail on; storage and header
    /// integrity errors.
    pub fn reset_audit_log(&self) -> Result<u64> {
        let mut done = None;
        self.backend.transact(&mut |tx| {
            let state = self.state_in(tx)?;
            let mut write = self.begin_write(tx, &state, op::AUDIT_RESET)?;
            let Some(head) = write.header.audit.as_mut() else {
                return Err(Error::Refused {
                    reason: "this store has no audit log",
                });
            };
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
    /// and `audit verify`). A store whose trail was never on has an empty, intact one.
    ///
    /// # Errors
    /// Storage and header integrity errors (a damaged log is reported in the trail, not as an
    /// error).
    pub fn audit_trail(&self) -> Result<AuditTrail> {
        let mut trail = None;
        self.backend.transact(&mut |tx| {
            let state = self.state_in(tx)?;
            trail = Some(match &state.header.audit {
                Some(head) => {
                    let rows = tx.audit_read(0)?;
                    check_chain(self.audit_key.expose(), &self.store_id, head, &rows)
                }
                None => AuditTrail::default(),
            });
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
        if self.audit_mode() != AuditMode::All {
            return Ok(());
        }
        self.log_event(Event {
            operation,
            record: record.map(str::to_owned),
            outcome,
            detail: detail(),
        })
    }

    /// Logs a failed change (its transaction rolled back, with its entries) in one of its
    /// own, best effort: the caller's error is what matters.
    pub(super) fn log_failure<T>(
        &self,
        operation: &'static str,
        record: Option<&str>,
        result: Result<T>,
    ) -> Result<T> {
        self.log_failed(AuditMode::Changes, operation, record, result)
    }

    /// Logs a failed read, in [`AuditMode::All`] only.
    pub(super) fn log_failed_read<T>(
        &self,
        operation: &'static str,
        record: Option<&str>,
        result: Result<T>,
    ) -> Result<T> {
        self.log_failed(AuditMode::All, operation, record, result)
    }

    fn log_failed<T>(
        &self,
        from: AuditMode,
        operation: &'static str,
        record: Option<&str>,
        result: Result<T>,
    ) -> Result<T> {
        let Err(e) = &result else {
            return result;
        };
        let mode = self.audit_mode();
        let logs = match from {
            AuditMode::All => mode == AuditMode::All,
            _ => mode != AuditMode::Off,
        };
        if logs && loggable(e) {
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
            if let Err(log_error) = self.log_event(event) {
                log::warn!("a failed {operation} could not be logged: {log_error}");
            }
        }
        result
    }

    fn log_event(&self, event: Event) -> Result<()> {
        let mut written = None;
        self.backend.transact(&mut |tx| {
            let state = self.state_in(tx)?;
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
        self.install(written.expect("set by a committed step"))
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
