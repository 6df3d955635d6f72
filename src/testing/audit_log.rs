//! The audit log at the backend level ([`Backend::prepare_audit`], [`Transaction::audit_append`],
//! [`Transaction::audit_read`], [`Transaction::audit_clear`]): what a vault with its audit trail
//! on relies on. Entries are appended in order, read back verbatim and by number, roll back
//! with their transaction, never share a number, and outlive `delete_all`; a log never
//! prepared reads as empty.
//!
//! A backend that keeps no log (its `prepare_audit` says
//! [`NotSupported`](BackendErrorKind::NotSupported)) passes every case at once, after checking
//! that its transactions say so too.

use crate::backend::{AuditRow, Backend, LookupTags, StoredRecord, Tag, Transaction};
use crate::{BackendError, BackendErrorKind, Error};

use super::Make;

/// The header every case writes first: a log belongs to a store, which has one.
const HEADER: &[u8] = b"audit-log conformance header";

/// A fresh backend with a store header written.
fn with_header(make: &Make) -> Box<dyn Backend> {
    let backend = make();
    backend
        .transact(&mut |tx| Ok(tx.put_header(HEADER)?))
        .unwrap_or_else(|e| panic!("writing the store header failed: {e}"));
    backend
}

/// A fresh backend with a header and its audit log prepared; `None` if it keeps no log (after
/// checking that its transactions agree).
fn prepared(make: &Make) -> Option<Box<dyn Backend>> {
    let backend = with_header(make);
    match backend.prepare_audit() {
        Ok(()) => Some(backend),
        Err(e) if e.kind() == BackendErrorKind::NotSupported => {
            assert_keeps_no_log(&*backend);
            None
        }
        Err(e) => panic!("prepare_audit failed on a fresh store: {e}"),
    }
}

/// A backend whose `prepare_audit` is NotSupported must not half-support the log.
fn assert_keeps_no_log(backend: &dyn Backend) {
    let mut kinds = Vec::new();
    let _ = backend.transact(&mut |tx| {
        kinds = vec![
            tx.audit_append(1, b"x").err().map(|e| e.kind()),
            tx.audit_read(0).err().map(|e| e.kind()),
            tx.audit_clear().err().map(|e| e.kind()),
        ];
        Ok(())
    });
    assert_eq!(
        kinds,
        vec![Some(BackendErrorKind::NotSupported); 3],
        "prepare_audit says NotSupported, so audit_append, audit_read and audit_clear must too"
    );
}

/// Runs `step` in one transaction that must commit; `what` names it in the panic message.
fn commit(
    backend: &dyn Backend,
    what: &str,
    step: &mut dyn FnMut(&mut dyn Transaction) -> Result<(), Error>,
) {
    backend
        .transact(step)
        .unwrap_or_else(|e| panic!("{what}: the transaction failed: {e}"));
}

/// Appends `entries` in one committed transaction.
fn append_all(backend: &dyn Backend, entries: &[(u64, Vec<u8>)]) {
    commit(backend, "appending audit entries", &mut |tx| {
        for (seq, entry) in entries {
            tx.audit_append(*seq, entry)
                .unwrap_or_else(|e| panic!("audit_append({seq}) failed: {e}"));
        }
        Ok(())
    });
}

/// `audit_read(after)` in a transaction of its own.
fn read(backend: &dyn Backend, after: u64) -> Vec<AuditRow> {
    let mut rows = Vec::new();
    commit(backend, "reading the audit log", &mut |tx| {
        rows = tx
            .audit_read(after)
            .unwrap_or_else(|e| panic!("audit_read({after}) failed: {e}"));
        Ok(())
    });
    rows
}

/// Panics unless `got` holds exactly `want`, in order, bytes verbatim (the message gives
/// numbers and lengths, not megabytes of bytes).
#[track_caller]
fn assert_rows(got: &[AuditRow], want: &[(u64, Vec<u8>)], what: &str) {
    let got_seqs: Vec<u64> = got.iter().map(|r| r.seq).collect();
    let want_seqs: Vec<u64> = want.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        got_seqs, want_seqs,
        "{what}: the audit log's entry numbers (in the order read) are wrong"
    );
    for (row, (seq, entry)) in got.iter().zip(want) {
        if row.entry != *entry {
            let first_difference = row
                .entry
                .iter()
                .zip(entry)
                .position(|(a, b)| a != b)
                .unwrap_or(row.entry.len().min(entry.len()));
            panic!(
                "{what}: audit entry {seq} was not read back verbatim: {} bytes read, {} written, \
                 first difference at byte {first_difference}",
                row.entry.len(),
                entry.len()
            );
        }
    }
}

/// The error a step returns to roll its transaction back.
fn deliberate() -> Error {
    BackendError::new(BackendErrorKind::Other, "the step fails on purpose").into()
}

/// Panics unless `result` is the error of [`deliberate`].
#[track_caller]
fn assert_deliberate(result: Result<(), Error>, what: &str) {
    match result {
        Err(Error::Backend(e)) if e.to_string().contains("on purpose") => {}
        Err(e) => panic!("{what}: the transaction failed with another error than its step's: {e}"),
        Ok(()) => panic!("{what}: the step returned Err, yet the transaction reported success"),
    }
}

fn record(id: &str, tag: u8) -> StoredRecord {
    StoredRecord {
        id: id.to_owned(),
        tags: LookupTags([Some(Tag([tag; 32])), None, None, None]),
        sealed: vec![tag, 0x00, 0xff, tag],
    }
}

/// Conformance case: entries read back in order, verbatim, by number; `prepare_audit` again
/// keeps them.
pub fn audit_log_appends_and_reads_in_order(make: &Make) {
    let Some(backend) = prepared(make) else {
        return;
    };
    let backend = &*backend;
    assert_rows(&read(backend, 0), &[], "a log just prepared");

    let large: Vec<u8> = (0..64 * 1024_u32).map(|i| (i * 7 % 256) as u8).collect();
    let entries: Vec<(u64, Vec<u8>)> = vec![
        (1, vec![0x00]),
        (2, vec![0xff, 0x00, 0xff]),
        (3, large),
        (4, b"entry four".to_vec()),
        (5, (0..=255).collect()),
    ];
    append_all(backend, &entries[..3]);
    append_all(backend, &entries[3..]);

    assert_rows(&read(backend, 0), &entries, "audit_read(0) after 5 appends");
    assert_rows(&read(backend, 3), &entries[3..], "audit_read(3)");
    assert_rows(&read(backend, 4), &entries[4..], "audit_read(4)");
    assert_rows(&read(backend, 5), &[], "audit_read(5), past the last entry");
    assert_rows(&read(backend, u64::MAX), &[], "audit_read(u64::MAX)");

    // Reads inside a transaction see its own appends.
    let mut seen = Vec::new();
    let sixth = (6, b"sixth".to_vec());
    commit(backend, "appending and reading back", &mut |tx| {
        tx.audit_append(sixth.0, &sixth.1)
            .unwrap_or_else(|e| panic!("audit_append(6) failed: {e}"));
        seen = tx
            .audit_read(4)
            .unwrap_or_else(|e| panic!("audit_read(4) failed: {e}"));
        Ok(())
    });
    let mut tail = entries[4..].to_vec();
    tail.push(sixth.clone());
    assert_rows(
        &seen,
        &tail,
        "audit_read(4) inside the transaction that appended 6",
    );

    backend
        .prepare_audit()
        .unwrap_or_else(|e| panic!("prepare_audit on a prepared log (must be idempotent): {e}"));
    let mut all = entries.clone();
    all.push(sixth);
    assert_rows(
        &read(backend, 0),
        &all,
        "audit_read(0) after prepare_audit ran again",
    );
}

/// Conformance case: entries appended in a transaction that fails are not kept, nor are its
/// other writes; `delete_all` keeps the log.
pub fn audit_log_rolls_back_with_its_transaction(make: &Make) {
    let Some(backend) = prepared(make) else {
        return;
    };
    let backend = &*backend;
    let first = vec![(1, b"kept".to_vec())];
    commit(backend, "a record and entry 1", &mut |tx| {
        tx.put(record("kept", 0x11))?;
        tx.audit_append(1, &first[0].1)?;
        Ok(())
    });

    let result = backend.transact(&mut |tx| {
        tx.put(record("rolled-back", 0x22))?;
        tx.audit_append(2, b"rolled back")?;
        tx.audit_append(3, b"rolled back too")?;
        Err(deliberate())
    });
    assert_deliberate(result, "a failing step that appended 2 and 3");
    assert_rows(
        &read(backend, 0),
        &first,
        "after a transaction that appended 2 and 3 and failed",
    );
    assert!(
        backend
            .get("rolled-back")
            .unwrap_or_else(|e| panic!("get failed: {e}"))
            .is_none(),
        "the record put by the failed transaction was kept"
    );
    assert!(
        backend
            .get("kept")
            .unwrap_or_else(|e| panic!("get failed: {e}"))
            .is_some(),
        "the committed record is gone"
    );

    // The numbers the failed transaction used are free again.
    let second = (2, b"second".to_vec());
    append_all(backend, std::slice::from_ref(&second));
    let both = vec![first[0].clone(), second];

    commit(backend, "delete_all", &mut |tx| Ok(tx.delete_all()?));
    assert!(
        backend
            .list()
            .unwrap_or_else(|e| panic!("list failed: {e}"))
            .is_empty(),
        "delete_all left records"
    );
    assert_rows(
        &read(backend, 0),
        &both,
        "after delete_all (the audit log must stay)",
    );
    assert_eq!(
        backend
            .read_header()
            .unwrap_or_else(|e| panic!("read_header failed: {e}"))
            .as_deref(),
        Some(HEADER),
        "delete_all changed the header"
    );
}

/// Conformance case: a number already in the log, committed or appended earlier in the same
/// transaction, is a Conflict, and the entry already there is intact.
pub fn audit_log_refuses_a_duplicate_seq(make: &Make) {
    let Some(backend) = prepared(make) else {
        return;
    };
    let backend = &*backend;
    let first = vec![(1, b"first".to_vec())];
    append_all(backend, &first);

    // The entry's bytes must not reach the error message.
    let secret = b"audit-entry-bytes-must-not-leak";
    let mut kind = None;
    let mut message = String::new();
    let result = backend.transact(&mut |tx| match tx.audit_append(1, secret) {
        Ok(()) => Ok(()),
        Err(e) => {
            kind = Some(e.kind());
            message = e.to_string();
            Err(e.into())
        }
    });
    assert_eq!(
        kind,
        Some(BackendErrorKind::Conflict),
        "audit_append of a number already committed must fail with Conflict (transact: {result:?})"
    );
    assert!(
        result.is_err(),
        "the transaction whose append failed reported success"
    );
    assert!(
        !message.contains("must-not-leak"),
        "the Conflict error quotes the entry's bytes: {message}"
    );
    assert_rows(&read(backend, 0), &first, "after a refused duplicate of 1");

    // Twice in one transaction.
    let mut kind = None;
    let result = backend.transact(&mut |tx| {
        tx.audit_append(2, b"second")
            .unwrap_or_else(|e| panic!("audit_append(2) failed: {e}"));
        match tx.audit_append(2, b"second again") {
            Ok(()) => Ok(()),
            Err(e) => {
                kind = Some(e.kind());
                Err(e.into())
            }
        }
    });
    assert_eq!(
        kind,
        Some(BackendErrorKind::Conflict),
        "appending 2 twice in one transaction must fail with Conflict (transact: {result:?})"
    );
    assert!(
        result.is_err(),
        "the transaction whose append failed reported success"
    );
    assert_rows(
        &read(backend, 0),
        &first,
        "after a transaction that appended 2 twice and failed",
    );
}

/// Conformance case: clearing the log and writing it again in one transaction (a rekey) leaves
/// only the new entries; a failed one leaves the old.
pub fn audit_log_clear_then_rewrite(make: &Make) {
    let Some(backend) = prepared(make) else {
        return;
    };
    let backend = &*backend;
    let old: Vec<(u64, Vec<u8>)> = (1..=3)
        .map(|i| (i, format!("old {i}").into_bytes()))
        .collect();
    append_all(backend, &old);

    let result = backend.transact(&mut |tx| {
        tx.audit_clear()?;
        tx.audit_append(1, b"new 1, rolled back")?;
        Err(deliberate())
    });
    assert_deliberate(result, "a failing step that cleared the log and appended 1");
    assert_rows(
        &read(backend, 0),
        &old,
        "after a failed transaction that cleared the log",
    );

    let new: Vec<(u64, Vec<u8>)> = vec![(1, b"new 1".to_vec()), (2, vec![0x00, 0xff, 0x00])];
    let (mut after_clear, mut after_rewrite) = (Vec::new(), Vec::new());
    commit(backend, "clear and rewrite", &mut |tx| {
        tx.audit_clear()
            .unwrap_or_else(|e| panic!("audit_clear failed: {e}"));
        after_clear = tx
            .audit_read(0)
            .unwrap_or_else(|e| panic!("audit_read(0) after audit_clear failed: {e}"));
        for (seq, entry) in &new {
            tx.audit_append(*seq, entry)
                .unwrap_or_else(|e| panic!("audit_append({seq}) after audit_clear failed: {e}"));
        }
        after_rewrite = tx
            .audit_read(0)
            .unwrap_or_else(|e| panic!("audit_read(0) after the rewrite failed: {e}"));
        Ok(())
    });
    assert_rows(
        &after_clear,
        &[],
        "audit_read(0) after audit_clear in the same transaction",
    );
    assert_rows(
        &after_rewrite,
        &new,
        "audit_read(0) after clear and rewrite in the same transaction",
    );
    assert_rows(&read(backend, 0), &new, "after clear and rewrite");
}

/// Conformance case: a store whose log was never prepared reads it as empty, and the
/// transaction that read it goes on working; the log can be prepared later.
pub fn audit_log_unprepared_reads_empty(make: &Make) {
    let backend = with_header(make);
    let backend = &*backend;
    let mut read_result = None;
    let committed = backend.transact(&mut |tx| {
        let rows = tx.audit_read(0);
        let read_ok = rows.is_ok();
        read_result = Some(rows.map_err(|e| (e.kind(), e.to_string())));
        if read_ok {
            // Reading a missing log must not have spoiled the transaction.
            tx.put(record("after-read", 0x33))?;
        }
        Ok(())
    });
    match read_result.expect("the step ran") {
        Ok(rows) => {
            assert_rows(&rows, &[], "audit_read(0) of a log never prepared");
            committed.unwrap_or_else(|e| {
                panic!(
                    "a transaction that read the log never prepared and then put a record failed: {e}"
                )
            });
        }
        Err((BackendErrorKind::NotSupported, _)) => {
            match backend.prepare_audit() {
                Err(e) if e.kind() == BackendErrorKind::NotSupported => {}
                other => {
                    panic!("audit_read says NotSupported, so prepare_audit must too, not {other:?}")
                }
            }
            assert_keeps_no_log(backend);
            return;
        }
        Err((_, e)) => {
            panic!("audit_read of a log never prepared must be Ok(empty), not an error: {e}")
        }
    }
    assert!(
        backend
            .get("after-read")
            .unwrap_or_else(|e| panic!("get failed: {e}"))
            .is_some(),
        "a record put after reading the unprepared log was not committed"
    );

    // Turning the log on later, in a store that has records.
    backend
        .prepare_audit()
        .unwrap_or_else(|e| panic!("prepare_audit on a store with records failed: {e}"));
    let entries = vec![(1, b"first after prepare".to_vec())];
    append_all(backend, &entries);
    assert_rows(&read(backend, 0), &entries, "after a late prepare_audit");
    assert!(
        backend
            .get("after-read")
            .unwrap_or_else(|e| panic!("get failed: {e}"))
            .is_some(),
        "prepare_audit lost a record"
    );
}

/// Conformance case: several threads preparing the log of one store at once all succeed (the
/// SQL backends create a table then, on connections of their own), and the log works after.
pub fn audit_log_prepare_races_safely(make: &Make) {
    let backend = with_header(make);
    let backend = &*backend;
    let start = std::sync::Barrier::new(4);
    let start = &start;
    let results: Vec<Result<(), BackendError>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(move || {
                    start.wait();
                    backend.prepare_audit()
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("a prepare_audit thread panicked"))
            .collect()
    });
    if results
        .iter()
        .all(|r| matches!(r, Err(e) if e.kind() == BackendErrorKind::NotSupported))
    {
        assert_keeps_no_log(backend);
        return;
    }
    for result in results {
        result.unwrap_or_else(|e| panic!("prepare_audit, run by 4 threads at once, failed: {e}"));
    }
    let entries = vec![(1, b"after a concurrent prepare".to_vec())];
    append_all(backend, &entries);
    assert_rows(
        &read(backend, 0),
        &entries,
        "after a concurrent prepare_audit",
    );
}
