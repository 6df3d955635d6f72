//! Tamper evidence and revocation (issue 15, SECURITY.md §2 Rekey, §3.5, §3.6), on real backends:
//! - record freshness: a record rolled back, deleted, put back, copied under another id, or
//!   two records swapped, each named by `verify` — on memory, SQLite, file and PostgreSQL
//!   (`TOKENVAULT_TEST_POSTGRES`; required when `TOKENVAULT_REQUIRE_SERVICES=1`);
//! - whole-store rollback: a state-file witness refuses an older copy of a SQLite store;
//! - rekey: a header copied before `passwd`, `remove_slot` or the rekey itself, with its old
//!   credential, reads no current record; a handle opened before the rekey is told so.

mod common;

use std::sync::Arc;

use tokenvault::backend::{Backend, LookupTags, MemoryBackend, StoredRecord};
use tokenvault::danger::{insecure_argon2_params, passphrase_accepting_insecure_kdf};
use tokenvault::{
    Argon2Params, Credential, EncryptedStore, Error, Finding, OAuthToken, RawKey, RecordSetCheck,
    StateFileWitness, StoreOptions, TokenStore,
};

type Store = EncryptedStore<Box<dyn Backend>>;

fn raw(seed: u8) -> Credential {
    Credential::raw_key(RawKey::from_bytes([seed; 32]))
}

fn token(user: &str, access: &str) -> OAuthToken {
    OAuthToken::new()
        .with_user_name(user)
        .with_refresh_token(format!("1000.refresh.{user}"))
        .with_access_token(access)
}

fn save(store: &impl TokenStore, t: OAuthToken) -> String {
    let mut t = t;
    store.save_token(&mut t).unwrap();
    t.id().unwrap().to_owned()
}

fn record(store: &Store, id: &str) -> StoredRecord {
    store.backend().get(id).unwrap().unwrap()
}

fn put(store: &Store, r: StoredRecord) {
    store
        .backend()
        .transact(&mut |tx| Ok(tx.put(r.clone())?))
        .unwrap();
}

fn findings(store: &Store) -> (Vec<String>, Vec<Finding>) {
    let report = store.verify().unwrap();
    let failed = report.failed.iter().map(|(id, _)| id.clone()).collect();
    match report.record_set {
        RecordSetCheck::Changed(findings) => (failed, findings),
        RecordSetCheck::Intact => (failed, Vec::new()),
        other => panic!("{other:?}"),
    }
}

/// Ann saved twice (her first copy kept), Bob and Cy once: a store with history.
struct Scene {
    store: Store,
    ann: String,
    ann_first: StoredRecord,
    bob: String,
}

fn scene(backend: Box<dyn Backend>) -> Scene {
    let store = EncryptedStore::create(backend, &raw(1)).unwrap();
    let ann = save(&store, token("ann", "a1"));
    let ann_first = record(&store, &ann);
    save(&store, token("ann", "a2"));
    let bob = save(&store, token("bob", "b1"));
    save(&store, token("cy", "c1"));
    assert_eq!(
        findings(&store),
        (vec![], vec![]),
        "a fresh store is intact"
    );
    Scene {
        store,
        ann,
        ann_first,
        bob,
    }
}

/// Every kind of record-level tampering, each on a fresh store made by `make`, and each
/// named by verify.
fn every_tampering_is_named(make: &dyn Fn() -> Box<dyn Backend>) {
    // Rolled back to an older copy: opens fine, so only the record set tells.
    let s = scene(make());
    put(&s.store, s.ann_first.clone());
    assert_eq!(
        findings(&s.store),
        (
            vec![],
            vec![Finding::NotLatest {
                id: s.ann.clone(),
                found: 1,
                latest: 2
            }]
        )
    );
    // Later writes do not launder it; accepting the records as they are does.
    save(&s.store, token("dee", "d1"));
    assert_eq!(
        findings(&s.store).1,
        [Finding::NotLatest {
            id: s.ann.clone(),
            found: 1,
            latest: 2
        }]
    );
    let checked = s.store.verify().unwrap();
    save(&s.store, token("eve", "e1"));
    assert!(
        matches!(s.store.accept_records(&checked), Err(Error::Refused { .. })),
        "a write after the verify: what would be accepted is not what was seen"
    );
    let checked = s.store.verify().unwrap();
    assert_eq!(s.store.accept_records(&checked).unwrap(), 5);
    assert_eq!(findings(&s.store), (vec![], vec![]));

    // Deleted outside the store.
    let s = scene(make());
    s.store
        .backend()
        .transact(&mut |tx| Ok(tx.delete(&s.bob).map(drop)?))
        .unwrap();
    assert_eq!(
        findings(&s.store),
        (vec![], vec![Finding::Missing { count: 1 }])
    );

    // Deleted through the store, then put back.
    let s = scene(make());
    let bob = record(&s.store, &s.bob);
    s.store.delete_token(&s.bob).unwrap();
    assert_eq!(findings(&s.store), (vec![], vec![]));
    put(&s.store, bob);
    assert_eq!(
        findings(&s.store),
        (vec![], vec![Finding::Resurrected { id: s.bob.clone() }])
    );

    // Copied under another id: it does not open there, and it is not one of the store's.
    let s = scene(make());
    let copy = StoredRecord {
        id: "copy000000000000".into(),
        tags: LookupTags::default(),
        sealed: record(&s.store, &s.ann).sealed,
    };
    put(&s.store, copy);
    assert_eq!(
        findings(&s.store),
        (
            vec!["copy000000000000".to_owned()],
            vec![Finding::Resurrected {
                id: "copy000000000000".into()
            }]
        )
    );

    // Two records' sealed versions swapped: neither opens under the other's id.
    let s = scene(make());
    let (a, b) = (record(&s.store, &s.ann), record(&s.store, &s.bob));
    put(
        &s.store,
        StoredRecord {
            sealed: b.sealed.clone(),
            ..a.clone()
        },
    );
    put(
        &s.store,
        StoredRecord {
            sealed: a.sealed,
            ..b
        },
    );
    let (mut failed, found) = findings(&s.store);
    failed.sort();
    let mut both = vec![s.ann.clone(), s.bob.clone()];
    both.sort();
    assert_eq!(failed, both);
    assert!(!found.is_empty(), "the record set changed too");
}

#[test]
fn memory_names_every_tampering() {
    every_tampering_is_named(&|| Box::new(MemoryBackend::new()));
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_names_every_tampering() {
    every_tampering_is_named(&common::temp_sqlite);
}

#[test]
fn file_names_every_tampering() {
    every_tampering_is_named(&common::temp_file);
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_names_every_tampering() {
    use common::servers::{POSTGRES_VAR, PgSchema, postgres_var};
    let Some(server) = postgres_var(POSTGRES_VAR, "PostgreSQL tamper-evidence cases") else {
        return;
    };
    every_tampering_is_named(&|| {
        let schema = PgSchema::new(&server);
        Box::new(common::Within {
            backend: schema.backend(""),
            place: schema,
        })
    });
}

#[test]
fn one_handle_shared_by_threads_never_raises_a_false_alarm() {
    // Threads of one process share one handle (as the Python and Node bindings do): a read
    // that started before another thread's write committed must not look like a rollback.
    let store = EncryptedStore::create(MemoryBackend::new(), &raw(1)).unwrap();
    std::thread::scope(|scope| {
        for t in 0..3 {
            let store = &store;
            scope.spawn(move || {
                for i in 0..100 {
                    save(
                        store,
                        token(&format!("u{t}-{}", i % 5), &format!("{t}-{i}")),
                    );
                }
            });
        }
        for _ in 0..3 {
            let store = &store;
            scope.spawn(move || {
                for _ in 0..30 {
                    assert!(store.verify().unwrap().is_clean());
                    store.key_usage().unwrap();
                    store.get_tokens().unwrap();
                }
            });
        }
    });
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn concurrent_writers_keep_the_record_set_intact() {
    let backend = Arc::new(MemoryBackend::new());
    EncryptedStore::create(backend.clone(), &raw(1)).unwrap();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let backend = backend.clone();
            scope.spawn(move || {
                let store = EncryptedStore::open(backend, &raw(1)).unwrap();
                for i in 0..50 {
                    let id = save(
                        &store,
                        token(&format!("u{t}-{}", i % 10), &format!("{t}-{i}")),
                    );
                    if i % 7 == 0 {
                        store.delete_token(&id).unwrap();
                    }
                }
            });
        }
        // A verify while they write sees one consistent state, never a false alarm.
        let store = EncryptedStore::open(backend.clone(), &raw(1)).unwrap();
        for _ in 0..20 {
            assert!(store.verify().unwrap().is_clean());
        }
    });
    let store = EncryptedStore::open(backend, &raw(1)).unwrap();
    assert!(store.verify().unwrap().is_clean());
}

#[cfg(feature = "sqlite")]
#[test]
fn a_witness_refuses_an_older_copy_of_the_whole_store() {
    use tokenvault::backend::SqliteBackend;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let witness = || Box::new(StateFileWitness::new(dir.path().join("witness")));
    let open = || SqliteBackend::open(&db).unwrap();
    let copy_of = |name: &str| {
        let to = dir.path().join(name);
        std::fs::copy(&db, &to).unwrap();
        to
    };
    let restore = |from: &std::path::Path| {
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.path().join(format!("t.db{suffix}")));
        }
        std::fs::copy(from, &db).unwrap();
    };

    let store = EncryptedStore::create(open(), &raw(1)).unwrap();
    save(&store, token("ann", "a1"));
    drop(store);
    let backup = copy_of("backup.db");
    let store = EncryptedStore::open_witnessed(open(), &raw(1), witness()).unwrap();
    save(&store, token("ann", "a2"));
    drop(store);
    let latest = copy_of("latest.db");

    restore(&backup);
    match EncryptedStore::open_witnessed(open(), &raw(1), witness()) {
        Err(Error::RolledBack { seen, found }) => assert!(seen > found, "{seen} {found}"),
        other => panic!("an older copy opened: {other:?}"),
    }
    // Without the witness the copy opens: the witness is what tells.
    assert_eq!(
        EncryptedStore::open(open(), &raw(1))
            .unwrap()
            .find_token(&OAuthToken::new().with_user_name("ann"))
            .unwrap()
            .unwrap()
            .access_token()
            .unwrap()
            .expose_secret(),
        "a1"
    );

    // A rekey retires the old store id: no copy from before it opens again.
    restore(&latest);
    let store = EncryptedStore::open_witnessed(open(), &raw(1), witness()).unwrap();
    let before_rekey = copy_of("before-rekey.db");
    let (store, _) = store
        .rekey(&[raw(2)], Argon2Params::default(), &mut |_, _| {})
        .unwrap();
    drop(store);
    restore(&before_rekey);
    match EncryptedStore::open_witnessed(open(), &raw(1), witness()) {
        Err(e @ Error::RolledBack { seen: u64::MAX, .. }) => {
            assert!(e.to_string().contains("rekeyed"), "{e}");
        }
        other => panic!("a pre-rekey copy opened: {other:?}"),
    }
}

/// Reads nothing current with `credential` through `header`: every record fails or is not
/// found.
fn reads_nothing(
    backend: &Arc<MemoryBackend>,
    header: &[u8],
    credential: &Credential,
    ids: &[String],
) {
    backend
        .transact(&mut |tx| Ok(tx.put_header(header)?))
        .unwrap();
    let old = EncryptedStore::open(backend.clone(), credential).expect("the old header opens");
    assert!(old.get_tokens().is_err(), "get_tokens read current records");
    for id in ids {
        assert!(
            !matches!(old.find_token_by_id(id), Ok(Some(_))),
            "record {id} read through an old header"
        );
    }
    for user in ["ann", "bob"] {
        assert!(
            !matches!(
                old.find_token(&OAuthToken::new().with_user_name(user)),
                Ok(Some(_))
            ),
            "{user} found through an old header"
        );
    }
}

#[test]
fn rekey_revokes_old_headers_and_credentials() {
    let backend = Arc::new(MemoryBackend::new());
    let header = |b: &Arc<MemoryBackend>| b.read_header().unwrap().unwrap();
    let store = EncryptedStore::create(backend.clone(), &raw(1)).unwrap();
    let ids = vec![
        save(&store, token("ann", "a1")),
        save(&store, token("bob", "b1")),
    ];
    let with_slot_1 = header(&backend);
    // `slots remove`: a second slot added, the first removed.
    let second = store.add_slot(&raw(2), Argon2Params::default()).unwrap();
    store.remove_slot(1).unwrap();
    let with_slot_2 = header(&backend);
    let other_handle = EncryptedStore::open(backend.clone(), &raw(2)).unwrap();

    let mut seen = Vec::new();
    let (store, report) = store
        .rekey(&[raw(3)], Argon2Params::default(), &mut |done, total| {
            seen.push((done, total));
        })
        .unwrap();
    assert_eq!((report.resealed, report.slots), (2, 1));
    assert_eq!(seen, [(1, 2), (2, 2)]);
    assert_eq!(second, 2);
    // A handle from before is told, not served stale keys: its records name a key it does
    // not know, so it reads the header again.
    assert!(matches!(
        other_handle.find_token_by_id(&ids[0]),
        Err(Error::Rekeyed)
    ));
    assert!(matches!(other_handle.get_tokens(), Err(Error::Rekeyed)));
    assert!(matches!(
        other_handle.save_token(&mut token("cy", "c1")),
        Err(Error::Rekeyed)
    ));
    assert_eq!(store.get_tokens().unwrap().len(), 2);
    assert!(store.verify().unwrap().is_clean());
    let current = header(&backend);
    assert!(matches!(
        EncryptedStore::open(backend.clone(), &raw(2)),
        Err(Error::WrongKey)
    ));

    reads_nothing(&backend, &with_slot_1, &raw(1), &ids);
    reads_nothing(&backend, &with_slot_2, &raw(2), &ids);
    backend
        .transact(&mut |tx| Ok(tx.put_header(&current)?))
        .unwrap();
    let reopened = EncryptedStore::open(backend.clone(), &raw(3)).unwrap();
    let ann = reopened
        .find_token(&OAuthToken::new().with_user_name("ann"))
        .unwrap()
        .unwrap();
    assert_eq!(ann.access_token().unwrap().expose_secret(), "a1");
}

#[test]
fn rekey_after_passwd_revokes_the_old_passphrase() {
    let options = StoreOptions {
        argon2: insecure_argon2_params(8, 1, 1).unwrap(),
    };
    let backend = Arc::new(MemoryBackend::new());
    let store = EncryptedStore::create_with(
        backend.clone(),
        &passphrase_accepting_insecure_kdf("old passphrase"),
        options,
    )
    .unwrap();
    let ids = vec![save(&store, token("ann", "a1"))];
    let before_passwd = backend.read_header().unwrap().unwrap();
    store
        .change_passphrase(&passphrase_accepting_insecure_kdf("new passphrase"))
        .unwrap();
    let (store, _) = store
        .rekey(
            &[passphrase_accepting_insecure_kdf("newest passphrase")],
            insecure_argon2_params(8, 1, 1).unwrap(),
            &mut |_, _| {},
        )
        .unwrap();
    save(&store, token("bob", "b1"));
    reads_nothing(
        &backend,
        &before_passwd,
        &passphrase_accepting_insecure_kdf("old passphrase"),
        &ids,
    );
}

#[test]
fn rekey_refuses_no_credential_and_changes_nothing() {
    let backend = Arc::new(MemoryBackend::new());
    let store = EncryptedStore::create(backend.clone(), &raw(1)).unwrap();
    save(&store, token("ann", "a1"));
    let before = (backend.read_header().unwrap(), backend.list().unwrap());
    assert!(matches!(
        store.rekey(&[], Argon2Params::default(), &mut |_, _| {}),
        Err(Error::Refused { .. })
    ));
    assert_eq!(
        (backend.read_header().unwrap(), backend.list().unwrap()),
        before
    );
}

#[test]
fn an_open_handle_refuses_a_header_that_went_back() {
    let backend = Arc::new(MemoryBackend::new());
    let store = EncryptedStore::create(backend.clone(), &raw(1)).unwrap();
    save(&store, token("ann", "a1"));
    let older = backend.read_header().unwrap().unwrap();
    save(&store, token("bob", "b1"));
    backend
        .transact(&mut |tx| Ok(tx.put_header(&older)?))
        .unwrap();
    for (what, result) in [
        ("save", store.save_token(&mut token("cy", "c1")).map(drop)),
        ("verify", store.verify().map(drop)),
        ("key_usage", store.key_usage().map(drop)),
    ] {
        assert!(
            matches!(result, Err(Error::RolledBack { seen: 3, found: 2 })),
            "{what}: {result:?}"
        );
    }
}

/// A witness whose reads or writes fail on demand.
struct Flaky {
    counter: std::sync::Mutex<Option<u64>>,
    fail_reads: bool,
    fail_writes: bool,
}

impl tokenvault::Witness for Flaky {
    fn latest(&self, _: &str) -> std::io::Result<Option<u64>> {
        if self.fail_reads {
            return Err(std::io::Error::other("witness unreachable"));
        }
        Ok(*self.counter.lock().unwrap())
    }
    fn record(&self, _: &str, writes: u64) -> std::io::Result<()> {
        if self.fail_writes {
            return Err(std::io::Error::other("witness read-only"));
        }
        let mut c = self.counter.lock().unwrap();
        *c = Some(c.unwrap_or(0).max(writes));
        Ok(())
    }
}

#[test]
fn an_unreadable_witness_fails_the_open_and_an_unwritable_one_fails_no_write() {
    let backend = Arc::new(MemoryBackend::new());
    drop(EncryptedStore::create(backend.clone(), &raw(1)).unwrap());
    let flaky = |fail_reads, fail_writes| {
        Box::new(Flaky {
            counter: std::sync::Mutex::new(None),
            fail_reads,
            fail_writes,
        })
    };
    match EncryptedStore::open_witnessed(backend.clone(), &raw(1), flaky(true, false)) {
        Err(Error::Witness { reason }) => assert!(reason.contains("unreachable")),
        other => panic!("{:?}", other.map(drop)),
    }
    let store = EncryptedStore::open_witnessed(backend.clone(), &raw(1), flaky(false, true))
        .expect("a witness that cannot record does not stop the open");
    // The write is committed; the witness's failure is logged, not returned.
    save(&store, token("ann", "a1"));
    assert_eq!(store.get_tokens().unwrap().len(), 1);
}

/// A store key exported for a session cache (`tokenvault unlock`) opens the store without a
/// slot; another store's key, or the same key after a rekey, does not.
#[test]
fn an_exported_store_key_opens_until_a_rekey() {
    let backend = Arc::new(MemoryBackend::new());
    let store = EncryptedStore::create(backend.clone(), &raw(1)).unwrap();
    let id = save(&store, token("ann", "a1"));
    let key = store.export_store_key();
    assert_eq!(format!("{key:?}"), "StoreKey(<redacted>)");
    let reopened = EncryptedStore::open_with_store_key(backend.clone(), &key, None).unwrap();
    assert_eq!(
        reopened
            .find_token_by_id(&id)
            .unwrap()
            .unwrap()
            .access_token()
            .unwrap()
            .expose_secret(),
        "a1"
    );
    // It writes as any handle does.
    save(&reopened, token("bob", "b1"));
    let other = EncryptedStore::create(MemoryBackend::new(), &raw(1)).unwrap();
    assert!(matches!(
        EncryptedStore::open_with_store_key(backend.clone(), &other.export_store_key(), None),
        Err(Error::WrongKey)
    ));
    drop(reopened);
    let (rekeyed, _) = store
        .rekey(&[raw(2)], Argon2Params::default(), &mut |_, _| {})
        .unwrap();
    drop(rekeyed);
    assert!(matches!(
        EncryptedStore::open_with_store_key(backend, &key, None),
        Err(Error::WrongKey)
    ));
}
