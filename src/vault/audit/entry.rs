//! One audit-log entry: its fields, its bytes and its link in the chain.
//!
//! ```text
//! version (1) = 1 | seq (8) | time (8, ms since the Unix epoch) | outcome (1: 0 ok, 1 not found, 2 failed)
//! operation (1 + n, ASCII) | record id (2 + n, UTF-8; empty: none) | OS user (1 + n) | host (1 + n)
//! detail (2 + n, UTF-8)
//! MAC (32) = HMAC-SHA256(K_audit, "tokenvault audit entry" | store id (16) | previous entry's MAC
//!            (32; zeros before entry 1) | every byte before this MAC)
//! ```
//! `K_audit` = HKDF-SHA256(store key, "tokenvault audit chain v1"). Integers are big-endian;
//! lengths count bytes; the parse accepts exactly this. Nothing secret goes in: no token, no
//! Zoho user name, only record ids (random or chosen by the application, never secret).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::crypto::hmac_sha256;
use crate::format::Reader;

const ENTRY_VERSION: u8 = 1;
const ENTRY_DOMAIN: &[u8] = b"tokenvault audit entry";
pub(crate) const CHAIN_LABEL: &[u8] = b"tokenvault audit chain v1";
pub(crate) const MAC_LEN: usize = 32;
/// Bounds on the text fields, in bytes (longer values are cut at a character boundary).
const SHORT_FIELD: usize = u8::MAX as usize;
const LONG_FIELD: usize = 1024;

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditOutcome {
    /// It did what was asked.
    Ok,
    /// What it was asked for was not there (no matching record, no such id).
    NotFound,
    /// It failed; the entry's detail names the error class.
    Failed,
}

impl AuditEntry {
    /// Its time as milliseconds since the Unix epoch (as stored).
    pub fn unix_millis(&self) -> u64 {
        unix_millis(self.time)
    }
}

fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl AuditOutcome {
    fn code(self) -> u8 {
        match self {
            AuditOutcome::Ok => 0,
            AuditOutcome::NotFound => 1,
            AuditOutcome::Failed => 2,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => AuditOutcome::Ok,
            1 => AuditOutcome::NotFound,
            2 => AuditOutcome::Failed,
            _ => return None,
        })
    }

    /// `ok`, `not_found` or `failed`: the name `audit show` prints.
    pub fn name(self) -> &'static str {
        match self {
            AuditOutcome::Ok => "ok",
            AuditOutcome::NotFound => "not_found",
            AuditOutcome::Failed => "failed",
        }
    }
}

/// One entry of a store's audit log, as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// The number it is kept under (1 for the first entry, then one more for each; a moved
    /// entry says another, which [`AuditProblem::OutOfPlace`](super::AuditProblem) names).
    pub seq: u64,
    /// Whether the chain vouches for it: its MAC links it to the entry before, and the log
    /// ends where the header says. False for an altered or moved entry, one after a gap or
    /// an unreadable entry, and one beyond the header's count: shown, not to be trusted.
    pub verified: bool,
    /// When it was written (the writer's clock, to the millisecond).
    pub time: SystemTime,
    /// What was done: `save`, `delete`, `find`, … (see SECURITY.md §3.7 for the list).
    pub operation: String,
    /// The record it concerned, if one.
    pub record: Option<String>,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// The OS user of the process that wrote it.
    pub user: String,
    /// The host it ran on.
    pub host: String,
    /// More about it: a record count, an error class. Never a secret.
    pub detail: String,
}

/// What an entry says before it is numbered, dated and chained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Event {
    pub operation: &'static str,
    pub record: Option<String>,
    pub outcome: AuditOutcome,
    pub detail: String,
}

/// `s` cut to at most `max` bytes at a character boundary.
fn bounded(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn put_text(out: &mut Vec<u8>, text: &str, long: bool) {
    if long {
        let text = bounded(text, LONG_FIELD);
        out.extend_from_slice(&(text.len() as u16).to_be_bytes());
        out.extend_from_slice(text.as_bytes());
    } else {
        let text = bounded(text, SHORT_FIELD);
        out.push(text.len() as u8);
        out.extend_from_slice(text.as_bytes());
    }
}

/// The MAC that links an entry's `body` to the one before it.
pub(crate) fn link(
    key: &[u8; 32],
    store_id: &[u8; 16],
    previous: &[u8; 32],
    body: &[u8],
) -> [u8; 32] {
    hmac_sha256(key, &[ENTRY_DOMAIN, store_id, previous, body])
}

/// The bytes of entry `seq` for `event`, MAC included, and that MAC.
pub(crate) fn encode(
    key: &[u8; 32],
    store_id: &[u8; 16],
    previous: &[u8; 32],
    seq: u64,
    time: SystemTime,
    actor: &Actor,
    event: &Event,
) -> (Vec<u8>, [u8; 32]) {
    let ms = unix_millis(time);
    let mut out = Vec::with_capacity(96 + event.detail.len());
    out.push(ENTRY_VERSION);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&ms.to_be_bytes());
    out.push(event.outcome.code());
    put_text(&mut out, event.operation, false);
    put_text(&mut out, event.record.as_deref().unwrap_or(""), true);
    put_text(&mut out, &actor.user, false);
    put_text(&mut out, &actor.host, false);
    put_text(&mut out, &event.detail, true);
    let mac = link(key, store_id, previous, &out);
    out.extend_from_slice(&mac);
    (out, mac)
}

/// An entry's bytes split: the entry, the number it was written as, the bytes its MAC
/// covers, and the MAC.
pub(crate) struct Parsed<'a> {
    pub entry: AuditEntry,
    pub entry_seq: u64,
    pub body: &'a [u8],
    pub mac: [u8; 32],
}

/// Parses an entry's bytes (nothing is authenticated here). `None` if they are not an entry
/// this build can read.
pub(crate) fn decode(bytes: &[u8]) -> Option<Parsed<'_>> {
    let split = bytes.len().checked_sub(MAC_LEN)?;
    let (body, mac) = bytes.split_at(split);
    let mut r = Reader::new(body);
    let text = |r: &mut Reader<'_>, long: bool| -> Option<String> {
        let len = if long {
            usize::from(r.u16().ok()?)
        } else {
            usize::from(r.u8().ok()?)
        };
        String::from_utf8(r.take(len).ok()?.to_vec()).ok()
    };
    if r.u8().ok()? != ENTRY_VERSION {
        return None;
    }
    let seq = r.u64().ok()?;
    let time = UNIX_EPOCH.checked_add(Duration::from_millis(r.u64().ok()?))?;
    let outcome = AuditOutcome::from_code(r.u8().ok()?)?;
    let operation = text(&mut r, false).filter(|op| op.is_ascii())?;
    let record = text(&mut r, true).filter(|r| r.len() <= LONG_FIELD)?;
    let user = text(&mut r, false)?;
    let host = text(&mut r, false)?;
    let detail = text(&mut r, true).filter(|d| d.len() <= LONG_FIELD)?;
    r.finish().ok()?;
    Some(Parsed {
        entry_seq: seq,
        entry: AuditEntry {
            seq,
            verified: false,
            time,
            operation,
            record: Some(record).filter(|r| !r.is_empty()),
            outcome,
            user,
            host,
            detail,
        },
        body,
        mac: mac.try_into().ok()?,
    })
}

/// Who writes entries: the process's OS user and host, found once.
pub(crate) struct Actor {
    pub user: String,
    pub host: String,
}

impl Actor {
    pub fn of_this_process() -> &'static Actor {
        static ACTOR: std::sync::OnceLock<Actor> = std::sync::OnceLock::new();
        ACTOR.get_or_init(|| Actor {
            user: os_user(),
            host: host_name(),
        })
    }
}

/// The user name of the process's effective uid (from `/etc/passwd`), else `uid N`; where
/// there are no uids, the login environment's name (which the user can set: say so).
fn os_user() -> String {
    #[cfg(unix)]
    {
        let uid = rustix::process::geteuid().as_raw();
        user_name_of(uid).unwrap_or_else(|| format!("uid {uid}"))
    }
    #[cfg(not(unix))]
    {
        ["USERNAME", "USER"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
            .map_or_else(
                || "unknown".into(),
                |u| format!("{u} (from the environment)"),
            )
    }
}

/// The name `/etc/passwd` gives `uid` (no NSS lookups: directory services are not consulted).
#[cfg(unix)]
fn user_name_of(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_owned())
    })
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .or_else(|| std::env::var("COMPUTERNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor() -> Actor {
        Actor {
            user: "alice".into(),
            host: "laptop".into(),
        }
    }

    #[test]
    fn entries_round_trip_and_reject_damage() {
        let event = Event {
            operation: "save",
            record: Some("rec-1".into()),
            outcome: AuditOutcome::Ok,
            detail: "é".repeat(600),
        };
        let time = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let (bytes, mac) = encode(&[1; 32], &[2; 16], &[0; 32], 7, time, &actor(), &event);
        let parsed = decode(&bytes).expect("parses");
        assert_eq!(parsed.mac, mac);
        assert_eq!(link(&[1; 32], &[2; 16], &[0; 32], parsed.body), mac);
        let e = parsed.entry;
        assert_eq!((e.seq, e.time, e.outcome), (7, time, AuditOutcome::Ok));
        assert_eq!(
            (e.operation.as_str(), e.record.as_deref()),
            ("save", Some("rec-1"))
        );
        assert_eq!((e.user.as_str(), e.host.as_str()), ("alice", "laptop"));
        // Cut to 1024 bytes at a character boundary.
        assert_eq!(e.detail, "é".repeat(512));
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_none(), "truncated to {len}");
        }
    }

    #[test]
    fn this_process_has_a_user_and_a_host() {
        let actor = Actor::of_this_process();
        assert!(!actor.user.is_empty() && !actor.host.is_empty());
    }
}
