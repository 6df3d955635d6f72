//! The log as bytes: appending entries to the MAC chain, checking a log against the header's
//! head (naming what is wrong, entry by entry), and re-chaining it under a rekeyed store's key.

use std::time::SystemTime;

use super::AuditMode;
use super::entry::{self, Actor, AuditEntry, Event};
use crate::backend::{AuditRow, Transaction};
use crate::format::header::AuditHead;
use crate::store::{BackendErrorKind, Error, Result, Subject};

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
    /// Every entry that could be read, in the order of the numbers they are kept under
    /// (including ones a problem names: see [`AuditEntry::verified`]).
    pub entries: Vec<AuditEntry>,
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

/// Checks `rows` (as read) against the header's `head` under `key`; a store without a head
/// counts no entries, so every row it has is unexpected.
pub(crate) fn check_chain(
    key: &[u8; 32],
    store_id: &[u8; 16],
    head: Option<&AuditHead>,
    rows: &[AuditRow],
) -> AuditTrail {
    let head = head.copied().unwrap_or(AuditHead {
        mode: 0,
        entries: 0,
        head: [0; 32],
    });
    let mut trail = AuditTrail {
        mode: AuditMode::from_code(head.mode),
        expected: head.entries,
        ..AuditTrail::default()
    };
    // By number as this build reads it (a SQL backend orders a planted negative number
    // first; it comes here as a number beyond any count).
    let mut rows: Vec<&AuditRow> = rows.iter().collect();
    rows.sort_by_key(|r| r.seq);
    // The MAC the next entry must link to; `None` after a gap, an unreadable or a moved
    // entry, where nothing can vouch for the link.
    let mut previous = Some([0u8; 32]);
    let mut next = 1u64;
    let mut last_mac = None;
    for row in rows {
        let parsed = entry::decode(&row.entry);
        if row.seq == 0 || row.seq > head.entries {
            // Shown (an export before a reset keeps it), never chained.
            trail
                .problems
                .push(AuditProblem::Unexpected { seq: row.seq });
            if let Some(parsed) = parsed {
                trail.entries.push(AuditEntry {
                    seq: row.seq,
                    ..parsed.entry
                });
            }
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
        let Some(parsed) = parsed else {
            trail
                .problems
                .push(AuditProblem::Unreadable { seq: row.seq });
            previous = None;
            last_mac = None;
            continue;
        };
        let mut shown = AuditEntry {
            seq: row.seq,
            ..parsed.entry
        };
        if parsed.entry_seq != row.seq {
            trail.problems.push(AuditProblem::OutOfPlace {
                seq: row.seq,
                says: parsed.entry_seq,
            });
            previous = None;
        } else {
            match previous {
                Some(prev) if entry::link(key, store_id, &prev, parsed.body) == parsed.mac => {
                    shown.verified = true;
                }
                Some(_) => trail.problems.push(AuditProblem::Altered { seq: row.seq }),
                None => {}
            }
            previous = Some(parsed.mac);
        }
        last_mac = Some(parsed.mac);
        trail.entries.push(shown);
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
        for entry in &mut trail.entries {
            entry.verified = false;
        }
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
    if !check_chain(old.0, old.1, Some(head), &rows).is_intact() {
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
