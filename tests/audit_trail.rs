//! The audit trail (issue 15, SECURITY.md §3.7), on every backend: each operation leaves the
//! entries it should, in the change's own transaction; each kind of tampering with the log is
//! named; no secret reaches it; a rekey re-chains it; concurrent writers keep it whole.
//! PostgreSQL and MariaDB run when `TOKENVAULT_TEST_POSTGRES` / `TOKENVAULT_TEST_MYSQL` are set
//! (required when `TOKENVAULT_REQUIRE_SERVICES=1`).

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokenvault::backend::testing::Instrumented;
use tokenvault::backend::{AuditRow, Backend, MemoryBackend};
use tokenvault::{
    Argon2Params, AuditEntry, AuditMode, AuditOutcome, AuditProblem, BackendErrorKind, Credential,
    EncryptedStore, Error, OAuthToken, RawKey, TokenStore,
};

type Make<'a> = dyn Fn() -> Box<dyn Backend> + 'a;
type Store = EncryptedStore<Box<dyn Backend>>;

fn raw(seed: u8) -> Credential {
    Credential::raw_key(RawKey::from_bytes([seed; 32]))
}

fn token(user: &str, n: u32) -> OAuthToken {
    OAuthToken::new()
        .with_user_name(user)
        .with_client_id("1000.CLIENTID")
        .with_client_secret(format!("client-secret-{user}"))
        .with_refresh_token(format!("1000.refresh-secret.{user}.{n}"))
        .with_access_token(format!("1000.access-secret.{user}.{n}"))
}

fn save(store: &impl TokenStore, t: OAuthToken) -> String {
    let mut t = t;
    store.save_token(&mut t).unwrap();
    t.id().unwrap().to_owned()
}

/// The log's entries as `(operation, record, outcome)`, from `after` on.
fn entries(store: &Store, after: usize) -> Vec<(String, Option<String>, AuditOutcome)> {
    let trail = store.audit_trail().unwrap();
    assert!(trail.is_intact(), "{:?}", trail.problems);
    trail.entries[after..]
        .iter()
        .map(|e| (e.operation.clone(), e.record.clone(), e.outcome))
        .collect()
}

fn e(
    op: &str,
    record: Option<&str>,
    outcome: AuditOutcome,
) -> (String, Option<String>, AuditOutcome) {
    (op.to_owned(), record.map(str::to_owned), outcome)
}

fn rows<B: Backend>(store: &EncryptedStore<B>) -> Vec<AuditRow> {
    let mut rows = Vec::new();
    store
        .backend()
        .transact(&mut |tx| {
            rows = tx.audit_read(0)?;
            Ok(())
        })
        .unwrap();
    rows
}

/// Replaces the whole log with `rows`, under the store (as someone with write access to the
/// storage could).
fn plant<B: Backend>(store: &EncryptedStore<B>, planted: &[AuditRow]) {
    store
        .backend()
        .transact(&mut |tx| {
            tx.audit_clear()?;
            for row in planted {
                tx.audit_append(row.seq, &row.entry)?;
            }
            Ok(())
        })
        .unwrap();
}

fn problems<B: Backend>(store: &EncryptedStore<B>) -> Vec<AuditProblem> {
    store.audit_trail().unwrap().problems
}

fn every_operation_is_logged(make: &Make<'_>) {
    let store = EncryptedStore::create(make(), &raw(1)).unwrap();
    let early = save(&store, token("early@example.com", 0));
    assert_eq!(
        store.audit_trail().unwrap().entries.len(),
        0,
        "off by default"
    );
    store.set_audit_mode(AuditMode::Changes).unwrap();
    assert_eq!(entries(&store, 0), [e("audit_on", None, AuditOutcome::Ok)]);

    let ann = save(&store, token("ann@example.com", 1));
    save(&store, token("ann@example.com", 2));
    store
        .find_token(&OAuthToken::new().with_user_name("ann@example.com"))
        .unwrap();
    store.find_token_by_id(&ann).unwrap();
    store.get_tokens().unwrap();
    // A conflicting save fails: its own entry says so, nothing else.
    let mut clash = token("bob@example.com", 1).with_id(early.clone());
    clash = clash.with_refresh_token("1000.refresh-secret.ann@example.com.2");
    assert!(matches!(
        store.save_token(&mut clash),
        Err(Error::Conflict { .. })
    ));
    store.delete_token(&ann).unwrap();
    assert!(matches!(
        store.delete_token("nobody"),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        entries(&store, 1),
        [
            e("save", Some(&ann), AuditOutcome::Ok),
            e("save", Some(&ann), AuditOutcome::Ok),
            e("save", Some(&early), AuditOutcome::Failed),
            e("delete", Some(&ann), AuditOutcome::Ok),
            // An id that names no record is not logged: it may be anything pasted in.
            e("delete", None, AuditOutcome::NotFound),
        ],
        "reads are not logged in `changes` mode"
    );
    let trail = store.audit_trail().unwrap();
    let failed = &trail.entries[3];
    assert_eq!(failed.detail, "conflict");
    assert_eq!(trail.entries[1].detail, "inserted");
    assert_eq!(trail.entries[2].detail, "updated");

    store.set_audit_mode(AuditMode::All).unwrap();
    let n = trail.entries.len();
    let found = store
        .find_token(&OAuthToken::new().with_user_name("early@example.com"))
        .unwrap();
    assert!(found.is_some());
    store
        .find_token(&OAuthToken::new().with_user_name("nobody@example.com"))
        .unwrap();
    store.find_token_by_id(&early).unwrap();
    store.get_tokens().unwrap();
    store.verify().unwrap();
    store.add_slot(&raw(2), Argon2Params::default()).unwrap();
    store.remove_slot(2).unwrap();
    store.rotate().unwrap();
    let expired = save(&store, token("old@example.com", 1).with_expiry_time(1000));
    store.prune_expired(SystemTime::now()).unwrap();
    store.delete_tokens().unwrap();
    store.set_audit_mode(AuditMode::Off).unwrap();
    save(&store, token("unlogged@example.com", 1));
    store.get_tokens().unwrap();
    let ops: Vec<_> = entries(&store, n)
        .into_iter()
        .map(|(op, record, outcome)| {
            format!("{op} {} {}", record.unwrap_or_default(), outcome.name())
        })
        .collect();
    assert_eq!(
        ops,
        [
            "audit_on  ok".to_owned(),
            format!("find {early} ok"),
            "find  not_found".into(),
            format!("find_by_id {early} ok"),
            "get_all  ok".into(),
            "verify  ok".into(),
            "add_slot  ok".into(),
            "remove_slot  ok".into(),
            "rotate  ok".into(),
            "rotate  ok".into(),
            "rotate  ok".into(),
            format!("save {expired} ok"),
            format!("prune {expired} ok"),
            format!("delete_all {early} ok"),
            "audit_off  ok".into(),
        ]
    );
    let trail = store.audit_trail().unwrap();
    assert_eq!(trail.mode, AuditMode::Off);
    for entry in &trail.entries {
        assert!(
            !entry.user.is_empty() && !entry.host.is_empty(),
            "{entry:?}"
        );
        let age = SystemTime::now().duration_since(entry.time).unwrap();
        assert!(age < Duration::from_secs(600), "{entry:?}");
    }
    // The log survives a reopen, intact.
    let backend = store.into_backend();
    let store = EncryptedStore::open(backend, &raw(1)).unwrap();
    assert!(store.audit_trail().unwrap().is_intact());
    no_secret_in_the_log(&store);
}

/// No token, client secret or user name is in any entry's bytes.
fn no_secret_in_the_log(store: &Store) {
    let all: Vec<u8> = rows(store).into_iter().flat_map(|r| r.entry).collect();
    assert!(!all.is_empty());
    let text = String::from_utf8_lossy(&all);
    for secret in [
        "secret",
        "@example.com",
        "1000.refresh",
        "1000.access",
        "CLIENTID",
    ] {
        assert!(!text.contains(secret), "{secret:?} is in the audit log");
    }
}

fn every_tampering_is_named(make: &Make<'_>) {
    let store = EncryptedStore::create(make(), &raw(1)).unwrap();
    store.set_audit_mode(AuditMode::Changes).unwrap();
    for n in 0..5 {
        save(&store, token(&format!("u{n}@example.com"), n));
    }
    let good = rows(&store);
    assert_eq!(good.len(), 6);
    assert!(problems(&store).is_empty());

    // An entry altered (one byte of its record id).
    let mut altered = good.clone();
    let at = altered[2].entry.len() - 40;
    altered[2].entry[at] ^= 1;
    plant(&store, &altered);
    assert_eq!(problems(&store), [AuditProblem::Altered { seq: 3 }]);

    // An entry removed from the middle.
    let removed: Vec<_> = good.iter().filter(|r| r.seq != 4).cloned().collect();
    plant(&store, &removed);
    assert_eq!(problems(&store), [AuditProblem::Missing { from: 4, to: 4 }]);

    // Two entries swapped.
    let mut swapped = good.clone();
    let (a, b) = (swapped[2].entry.clone(), swapped[3].entry.clone());
    swapped[2].entry = b;
    swapped[3].entry = a;
    plant(&store, &swapped);
    assert_eq!(
        problems(&store),
        [
            AuditProblem::OutOfPlace { seq: 3, says: 4 },
            AuditProblem::OutOfPlace { seq: 4, says: 3 }
        ]
    );
    // Shown where they are kept, neither vouched for, nor the entry after them.
    let shown: Vec<(u64, bool)> = store
        .audit_trail()
        .unwrap()
        .entries
        .iter()
        .map(|e| (e.seq, e.verified))
        .collect();
    assert_eq!(
        shown,
        [
            (1, true),
            (2, true),
            (3, false),
            (4, false),
            (5, false),
            (6, true)
        ]
    );

    // A copy planted as number 0 (which no build writes): named, shown, never chained.
    let mut zero = good.clone();
    zero.insert(
        0,
        AuditRow {
            seq: 0,
            entry: good[0].entry.clone(),
        },
    );
    plant(&store, &zero);
    assert_eq!(problems(&store), [AuditProblem::Unexpected { seq: 0 }]);
    let trail = store.audit_trail().unwrap();
    assert_eq!(trail.entries.len(), 7);
    assert!(!trail.entries[0].verified && trail.entries[1].verified);

    // The tail cut: only the header's count tells.
    plant(&store, &good[..4]);
    assert_eq!(
        problems(&store),
        [AuditProblem::Truncated {
            last: 4,
            expected: 6
        }]
    );

    // An entry added past the header's count (a copy of the last one, renumbered).
    let mut extra = good.clone();
    extra.push(AuditRow {
        seq: 7,
        entry: good[5].entry.clone(),
    });
    plant(&store, &extra);
    assert_eq!(problems(&store), [AuditProblem::Unexpected { seq: 7 }]);

    // Damaged beyond parsing.
    let mut garbage = good.clone();
    garbage[1].entry = vec![0xff; 10];
    plant(&store, &garbage);
    assert_eq!(problems(&store), [AuditProblem::Unreadable { seq: 2 }]);

    // The whole log replaced by another store's (a valid chain under another key).
    let other = EncryptedStore::create(Box::new(MemoryBackend::new()) as Box<dyn Backend>, &raw(1))
        .unwrap();
    other.set_audit_mode(AuditMode::Changes).unwrap();
    for n in 0..5 {
        save(&other, token(&format!("u{n}@example.com"), n));
    }
    plant(&store, &rows(&other));
    let all_altered: Vec<_> = (1..=6).map(|seq| AuditProblem::Altered { seq }).collect();
    assert_eq!(problems(&store), all_altered);

    // A write with a broken log still works (the log is evidence, not a lock) and chains on
    // from the header's head: the problems stay as they were, no more.
    plant(&store, &altered);
    save(&store, token("later@example.com", 1));
    assert_eq!(problems(&store), [AuditProblem::Altered { seq: 3 }]);
    let trail = store.audit_trail().unwrap();
    let unverified: Vec<u64> = trail
        .entries
        .iter()
        .filter(|e| !e.verified)
        .map(|e| e.seq)
        .collect();
    assert_eq!(unverified, [3]);
    assert_eq!(trail.entries.len(), 7);

    // Put back as it was (with the later entry), the log checks again.
    let mut mended = rows(&store);
    mended[2] = good[2].clone();
    plant(&store, &mended);
    assert!(problems(&store).is_empty());

    // A forked copy: the store written two ways from one state, one fork's log under the
    // other's header. Every link holds; only the header's head tells.
    let header = store.backend().read_header().unwrap().unwrap();
    let base = rows(&store);
    save(&store, token("fork-a@example.com", 1));
    let fork_a = rows(&store);
    let backend = store.into_backend();
    backend
        .transact(&mut |tx| {
            tx.put_header(&header)?;
            tx.audit_clear()?;
            for row in &base {
                tx.audit_append(row.seq, &row.entry)?;
            }
            Ok(())
        })
        .unwrap();
    let store = EncryptedStore::open(backend, &raw(1)).unwrap();
    save(&store, token("fork-b@example.com", 1));
    assert!(problems(&store).is_empty());
    plant(&store, &fork_a);
    assert_eq!(problems(&store), [AuditProblem::WrongHead]);
}

fn a_rekey_rechains_the_log(make: &Make<'_>) {
    let store = EncryptedStore::create(make(), &raw(1)).unwrap();
    store.set_audit_mode(AuditMode::Changes).unwrap();
    let id = save(&store, token("ann@example.com", 1));
    let before = rows(&store);
    let (store, report) = store
        .rekey(&[raw(9)], Argon2Params::default(), &mut |_, _| {})
        .unwrap();
    assert_eq!(report.resealed, 1);
    let trail = store.audit_trail().unwrap();
    assert!(trail.is_intact(), "{:?}", trail.problems);
    let ops: Vec<_> = trail.entries.iter().map(|e| e.operation.as_str()).collect();
    assert_eq!(ops, ["audit_on", "save", "rekey"]);
    assert_eq!(trail.entries[1].record.as_deref(), Some(id.as_str()));
    // Every entry's MAC changed: the old key vouches for nothing any more.
    let after = rows(&store);
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(
            old.entry[..old.entry.len() - 32],
            new.entry[..new.entry.len() - 32]
        );
        assert_ne!(
            old.entry[old.entry.len() - 32..],
            new.entry[new.entry.len() - 32..]
        );
    }
    drop(store);

    // A broken log stops the rekey (re-MACing it would vouch for what broke it) until the key
    // holder starts the log again.
    let backend = Arc::new(make());
    let store = EncryptedStore::create(backend.clone(), &raw(1)).unwrap();
    store.set_audit_mode(AuditMode::Changes).unwrap();
    save(&store, token("ann@example.com", 1));
    save(&store, token("bob@example.com", 1));
    let kept = rows(&store);
    plant(&store, &kept[..2]);
    match store.rekey(&[raw(3)], Argon2Params::default(), &mut |_, _| {}) {
        Err(Error::Tampered { what }) => assert_eq!(what.to_string(), "the audit log"),
        other => panic!("{:?}", other.map(|_| ())),
    }
    let store = EncryptedStore::open(backend.clone(), &raw(1)).unwrap();
    assert_eq!(store.reset_audit_log().unwrap(), 2);
    let trail = store.audit_trail().unwrap();
    assert!(trail.is_intact(), "{:?}", trail.problems);
    assert_eq!(trail.entries.len(), 1);
    assert_eq!(trail.entries[0].operation, "audit_reset");
    assert_eq!(
        trail.entries[0].detail,
        "deleted 2 entries; the header counted 3"
    );
    let (store, _) = store
        .rekey(&[raw(3)], Argon2Params::default(), &mut |_, _| {})
        .unwrap();
    let ops: Vec<_> = store
        .audit_trail()
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.operation)
        .collect();
    assert_eq!(ops, ["audit_reset", "rekey"]);
}

/// An entry planted where the next write's must go blocks writes, as tampering, until the
/// log is started again; a pasted secret given as a record id never reaches the log.
fn a_planted_entry_blocks_writes_until_reset(make: &Make<'_>) {
    let store = EncryptedStore::create(make(), &raw(1)).unwrap();
    store.set_audit_mode(AuditMode::Changes).unwrap();
    save(&store, token("ann@example.com", 1));
    let mut planted = rows(&store);
    planted.push(AuditRow {
        seq: 3,
        entry: planted[1].entry.clone(),
    });
    plant(&store, &planted);
    assert_eq!(problems(&store), [AuditProblem::Unexpected { seq: 3 }]);
    match store.save_token(&mut token("bob@example.com", 1)) {
        Err(Error::Tampered { what }) => assert_eq!(what.to_string(), "the audit log"),
        other => panic!("{other:?}"),
    }
    store.reset_audit_log().unwrap();
    save(&store, token("bob@example.com", 1));
    assert!(problems(&store).is_empty());

    let pasted = "1000.refresh-secret.pasted";
    assert!(store.delete_token(pasted).is_err());
    store.set_audit_mode(AuditMode::All).unwrap();
    assert!(store.find_token_by_id(pasted).unwrap().is_none());
    let all: Vec<u8> = rows(&store).into_iter().flat_map(|r| r.entry).collect();
    assert!(!String::from_utf8_lossy(&all).contains("pasted"));
}

/// A header from before the trail was on, put back over an audited store: its entries are
/// all reported, turning the trail on again is refused until the log is reset. And in mode
/// all, `verify --accept` still works though logged reads write in between.
fn a_header_put_back_and_accept_in_mode_all(make: &Make<'_>) {
    let store = EncryptedStore::create(make(), &raw(1)).unwrap();
    save(&store, token("ann@example.com", 1));
    let before = store.backend().read_header().unwrap().unwrap();
    store.set_audit_mode(AuditMode::Changes).unwrap();
    save(&store, token("bob@example.com", 1));
    let backend = store.into_backend();
    backend
        .transact(&mut |tx| Ok(tx.put_header(&before)?))
        .unwrap();
    let store = EncryptedStore::open(backend, &raw(1)).unwrap();
    assert_eq!(
        problems(&store),
        [
            AuditProblem::Unexpected { seq: 1 },
            AuditProblem::Unexpected { seq: 2 }
        ]
    );
    assert_eq!(store.audit_trail().unwrap().entries.len(), 2, "shown");
    assert!(matches!(
        store.set_audit_mode(AuditMode::All),
        Err(Error::Refused { .. })
    ));
    assert_eq!(store.reset_audit_log().unwrap(), 2);
    store.set_audit_mode(AuditMode::All).unwrap();
    assert!(problems(&store).is_empty());

    // The records changed outside the store (the header went back): verify says so, reads
    // logged meanwhile do not stop the accept, and the accept's entry counts the records.
    let report = store.verify().unwrap();
    assert!(!report.is_clean());
    store
        .find_token(&OAuthToken::new().with_user_name("ann@example.com"))
        .unwrap();
    assert_eq!(store.accept_records(&report).unwrap(), 2);
    let trail = store.audit_trail().unwrap();
    assert!(trail.is_intact(), "{:?}", trail.problems);
    let last = trail.entries.last().unwrap();
    assert_eq!(
        (last.operation.as_str(), last.detail.as_str()),
        ("accept_records", "2 record(s)")
    );
    assert!(store.verify().unwrap().is_clean());
    // A save after the verify changes the records: the accept is refused.
    let report = store.verify().unwrap();
    save(&store, token("cy@example.com", 1));
    assert!(matches!(
        store.accept_records(&report),
        Err(Error::Refused { .. })
    ));
}

fn run_all(make: &Make<'_>) {
    every_operation_is_logged(make);
    every_tampering_is_named(make);
    a_rekey_rechains_the_log(make);
    a_planted_entry_blocks_writes_until_reset(make);
    a_header_put_back_and_accept_in_mode_all(make);
}

#[test]
fn memory() {
    run_all(&|| Box::new(MemoryBackend::new()));
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite() {
    run_all(&common::temp_sqlite);
}

#[test]
fn file() {
    run_all(&common::temp_file);
}

#[cfg(feature = "postgres")]
#[test]
fn postgres() {
    use common::servers::{POSTGRES_VAR, PgSchema, postgres_var};
    let Some(server) = postgres_var(POSTGRES_VAR, "PostgreSQL audit trail cases") else {
        return;
    };
    run_all(&|| {
        let schema = PgSchema::new(&server);
        Box::new(common::Within {
            backend: schema.backend(""),
            place: schema,
        })
    });
}

#[cfg(feature = "mysql")]
#[test]
fn mysql() {
    use common::servers::{MYSQL_VAR, MysqlDatabase, mysql_var};
    let Some(server) = mysql_var(MYSQL_VAR, "audit_trail::mysql", "test") else {
        return;
    };
    run_all(&|| {
        let db = MysqlDatabase::fresh(&server);
        Box::new(common::Within {
            backend: db.backend(),
            place: db,
        })
    });
}

#[test]
fn a_failed_commit_leaves_no_entry_of_the_change() {
    let backend = Arc::new(Instrumented::new(MemoryBackend::new()));
    let store = EncryptedStore::create(backend.clone(), &raw(1)).unwrap();
    store.set_audit_mode(AuditMode::Changes).unwrap();
    backend.fail_next_transactions(1);
    assert!(store.save_token(&mut token("ann@example.com", 1)).is_err());
    // The save's entry went with its transaction; a storage failure is not logged as a
    // failed save (its commit may even have happened on a server that lost the connection).
    let trail = store.audit_trail().unwrap();
    assert!(trail.is_intact());
    let ops: Vec<&str> = trail.entries.iter().map(|e| e.operation.as_str()).collect();
    assert_eq!(ops, ["audit_on"]);
    assert!(store.get_tokens().unwrap().is_empty());
    // The next save is logged as usual.
    save(&store, token("ann@example.com", 1));
    let last: AuditEntry = store.audit_trail().unwrap().entries.pop().unwrap();
    assert_eq!(
        (last.operation.as_str(), last.outcome),
        ("save", AuditOutcome::Ok)
    );
}

#[test]
fn concurrent_writers_keep_one_chain() {
    let backend = Arc::new(MemoryBackend::new());
    let store = EncryptedStore::create(backend.clone(), &raw(1)).unwrap();
    store.set_audit_mode(AuditMode::Changes).unwrap();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let backend = backend.clone();
            scope.spawn(move || {
                // A handle of its own, as another process would have.
                let store = EncryptedStore::open(backend, &raw(1)).unwrap();
                for i in 0..50 {
                    save(&store, token(&format!("t{t}-{}@example.com", i % 7), i));
                }
            });
        }
    });
    let trail = store.audit_trail().unwrap();
    assert!(trail.is_intact(), "{:?}", trail.problems);
    assert_eq!(trail.entries.len(), 1 + 4 * 50);
}

/// A backend that keeps no audit log: the trait's defaults.
struct NoLog(MemoryBackend);

impl Backend for NoLog {
    fn read_header(&self) -> Result<Option<Vec<u8>>, tokenvault::BackendError> {
        self.0.read_header()
    }
    fn get(
        &self,
        id: &str,
    ) -> Result<Option<tokenvault::backend::StoredRecord>, tokenvault::BackendError> {
        self.0.get(id)
    }
    fn find_by_tag(
        &self,
        field: tokenvault::backend::LookupField,
        tag: &tokenvault::backend::Tag,
    ) -> Result<Option<tokenvault::backend::StoredRecord>, tokenvault::BackendError> {
        self.0.find_by_tag(field, tag)
    }
    fn list(&self) -> Result<Vec<tokenvault::backend::StoredRecord>, tokenvault::BackendError> {
        self.0.list()
    }
    fn transact(
        &self,
        step: &mut dyn FnMut(&mut dyn tokenvault::backend::Transaction) -> tokenvault::Result<()>,
    ) -> tokenvault::Result<()> {
        self.0.transact(step)
    }
}

#[test]
fn a_backend_without_a_log_refuses_the_trail_and_keeps_working() {
    let store = EncryptedStore::create(NoLog(MemoryBackend::new()), &raw(1)).unwrap();
    match store.set_audit_mode(AuditMode::Changes) {
        Err(Error::Backend(e)) => assert_eq!(e.kind(), BackendErrorKind::NotSupported),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.audit_mode(), AuditMode::Off);
    save(&store, token("ann@example.com", 1));
    assert!(store.audit_trail().unwrap().entries.is_empty());
}
