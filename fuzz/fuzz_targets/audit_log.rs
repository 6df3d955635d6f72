//! The audit log (`src/vault/audit.rs`, `src/vault/audit/entry.rs`): rows from the input
//! (layout: `decode_audit_rows` in `fuzz/src/lib.rs`) replace the log of a real store with its
//! audit trail on (`fuzz/fixtures/audit.header`, made with the raw key `KEY`), which is then
//! checked entry by entry, written to (a broken log blocks a write only where an entry the
//! header does not count is in its way, and the write's entry chains on), and checked again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenvault::backend::Backend;
use tokenvault::{AuditMode, AuditProblem, EncryptedStore, Error, OAuthToken, Subject, TokenStore};
use tokenvault_fuzz::{credential, decode_audit_rows, fresh_store, memory_backend};

/// The header of the store the seeds' entries were written in (see fuzz/seeds/README.md).
const FIXTURE_HEADER: &[u8] = include_bytes!("../fixtures/audit.header");

fuzz_target!(|data: &[u8]| {
    let rows = decode_audit_rows(data);
    let store = match EncryptedStore::open(
        memory_backend(Some(FIXTURE_HEADER), Vec::new()),
        &credential(),
    ) {
        Ok(store) => store,
        // The header format changed since the seeds were made: a fresh audited store.
        Err(_) => {
            let store = fresh_store();
            store.set_audit_mode(AuditMode::All).unwrap();
            store
        }
    };
    let planted = store.backend().transact(&mut |tx| {
        tx.audit_clear()?;
        for row in &rows {
            tx.audit_append(row.seq, &row.entry)?;
        }
        Ok(())
    });
    if planted.is_err() {
        return; // two rows with one number: no backend keeps that
    }
    let before = store.audit_trail().expect("a memory store's log reads");
    for entry in &before.entries {
        let _ = (entry.outcome.name(), entry.time);
    }
    for problem in &before.problems {
        let _ = problem.to_string();
    }
    let mut token = OAuthToken::new()
        .with_user_name("fuzz@example.com")
        .with_refresh_token("1000.refresh");
    if let Err(e) = store.save_token(&mut token) {
        // Only an entry in the way of the save's own stops it, as tampering.
        assert!(
            matches!(
                e,
                Error::Tampered {
                    what: Subject::AuditLog
                }
            ) && before.problems.contains(&AuditProblem::Unexpected {
                seq: before.expected + 1
            }),
            "a save failed on {e:?} with {:?}",
            before.problems
        );
        return;
    }
    let after = store.audit_trail().expect("a memory store's log reads");
    assert_eq!(
        after.expected,
        before.expected + 1,
        "the save's entry is counted"
    );
    assert_eq!(
        after.is_intact(),
        before.is_intact(),
        "a write neither breaks nor mends the log"
    );
});
