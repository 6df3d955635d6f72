//! Regression tests for the outside security review (SECURITY.md, "Hardening"): files planted
//! beside a store, hostile lengths and times, panics inside a write, and maintenance steps
//! that race with other writers. Each test failed on the code the review attacked.
#![cfg(feature = "sqlite")]

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokenvault::backend::{
    Backend, FileBackend, HeldLock, LookupField, MemoryBackend, SqliteBackend, StoredRecord, Tag,
    Transaction,
};
use tokenvault::token::{MAX_FIELD_LEN, MAX_ID_LEN};
use tokenvault::{
    BackendErrorKind, Credential, EncryptedStore, Error, OAuthToken, RawKey, TokenStore,
};

fn key() -> Credential {
    Credential::raw_key(RawKey::from_bytes([7; 32]))
}

fn ann() -> OAuthToken {
    OAuthToken::new()
        .with_user_name("ann@example.com")
        .with_refresh_token("rt-ann")
        .with_access_token("at-ann")
}

fn insecure<T>(result: Result<T, tokenvault::BackendError>) -> String {
    match result {
        Err(e) if e.kind() == BackendErrorKind::Insecure => e.to_string(),
        Err(e) => panic!("expected an Insecure error, got {e}"),
        Ok(_) => panic!("expected an Insecure error, the open succeeded"),
    }
}

// ============================================================================================
// Files beside a store: links, foreign owners, modes (defect 2)
// ============================================================================================

#[test]
fn a_link_planted_at_the_old_temp_name_is_never_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.tv");
    let victim = dir.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    symlink(&victim, dir.path().join("t.tv.tmp")).unwrap();
    let store = EncryptedStore::create(FileBackend::open(&path).unwrap(), &key()).unwrap();
    store.save_token(&mut ann()).unwrap();
    assert_eq!(
        fs::read(&victim).unwrap(),
        b"precious",
        "the link's target is untouched"
    );
    assert!(
        fs::symlink_metadata(&path).unwrap().is_file(),
        "the store is a regular file, not the planted link"
    );
    // No temporary file is left behind after a successful write.
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn a_linked_lock_file_is_refused_and_its_target_never_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.tv");
    let target = dir.path().join("created-through-link");
    symlink(&target, dir.path().join("t.tv.lock")).unwrap();
    let message = insecure(FileBackend::open(&path));
    assert!(message.contains("symbolic link"), "{message}");
    assert!(!target.exists());
}

#[test]
fn a_linked_lock_directory_is_refused() {
    for kind in ["sqlite", "file"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        symlink(&elsewhere, dir.path().join("t.db.locks")).unwrap();
        let backend: Box<dyn Backend> = match kind {
            "sqlite" => Box::new(SqliteBackend::open(&path).unwrap()),
            _ => Box::new(FileBackend::open(&path).unwrap()),
        };
        let message = insecure(backend.lock("refresh x", Duration::from_secs(1)).map(drop));
        assert!(message.contains("symbolic link"), "{kind}: {message}");
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0, "{kind}");
    }
}

#[test]
fn a_lock_directory_others_can_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let backend = SqliteBackend::open(&path).unwrap();
    let locks = dir.path().join("t.db.locks");
    fs::create_dir(&locks).unwrap();
    fs::set_permissions(&locks, fs::Permissions::from_mode(0o777)).unwrap();
    let message = insecure(backend.lock("refresh x", Duration::from_secs(1)).map(drop));
    assert!(message.contains("other users may write"), "{message}");
}

#[test]
fn a_store_path_that_is_a_link_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.db");
    // A real store at the link's target: still refused through the link.
    drop(SqliteBackend::open(&real).unwrap());
    symlink(&real, dir.path().join("t.db")).unwrap();
    insecure(SqliteBackend::open(dir.path().join("t.db")));
    let real_file = dir.path().join("real.tv");
    EncryptedStore::create(FileBackend::open(&real_file).unwrap(), &key()).unwrap();
    symlink(&real_file, dir.path().join("t.tv")).unwrap();
    insecure(FileBackend::open(dir.path().join("t.tv")));
}

#[test]
fn a_store_file_others_can_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (name, sqlite) in [("t.db", true), ("t.tv", false)] {
        let path = dir.path().join(name);
        if sqlite {
            drop(SqliteBackend::open(&path).unwrap());
        } else {
            EncryptedStore::create(FileBackend::open(&path).unwrap(), &key()).unwrap();
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        let message = if sqlite {
            insecure(SqliteBackend::open(&path))
        } else {
            insecure(FileBackend::open(&path))
        };
        assert!(message.contains("chmod"), "{message}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        if sqlite {
            SqliteBackend::open(&path).unwrap();
        } else {
            FileBackend::open(&path).unwrap();
        }
    }
}

#[test]
fn a_store_file_owned_by_another_user_is_refused() {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("skipped: needs root to give a file to another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    drop(SqliteBackend::open(&path).unwrap());
    // 65534: nobody.
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    let message = insecure(SqliteBackend::open(&path));
    assert!(message.contains("another user"), "{message}");
    let lock = dir.path().join("u.tv.lock");
    fs::write(&lock, b"").unwrap();
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&lock, Some(65534), Some(65534)).unwrap();
    insecure(FileBackend::open(dir.path().join("u.tv")));
}

// ============================================================================================
// Lengths, times, panics (defect 3)
// ============================================================================================

fn stores(dir: &Path) -> Vec<(&'static str, EncryptedStore<Box<dyn Backend>>)> {
    let backends: Vec<(&'static str, Box<dyn Backend>)> = vec![
        ("memory", Box::new(MemoryBackend::new())),
        (
            "file",
            Box::new(FileBackend::open(dir.join("t.tv")).unwrap()),
        ),
        (
            "sqlite",
            Box::new(SqliteBackend::open(dir.join("t.db")).unwrap()),
        ),
    ];
    backends
        .into_iter()
        .map(|(name, b)| (name, EncryptedStore::create(b, &key()).unwrap()))
        .collect()
}

#[test]
fn over_long_ids_and_fields_are_invalid_tokens_in_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    for (name, store) in stores(dir.path()) {
        let long_id = "7".repeat(64 * 1024);
        let mut token = ann().with_id(long_id.clone());
        assert!(
            matches!(
                store.save_token(&mut token),
                Err(Error::InvalidToken { .. })
            ),
            "{name}: a 64 KiB id"
        );
        let mut token = ann().with_id("9".repeat(MAX_ID_LEN + 1));
        assert!(
            matches!(
                store.save_token(&mut token),
                Err(Error::InvalidToken { .. })
            ),
            "{name}"
        );
        let mut token = ann().with_id("a\u{1b}[2J");
        assert!(
            matches!(
                store.save_token(&mut token),
                Err(Error::InvalidToken { .. })
            ),
            "{name}"
        );
        let mut token = ann().with_access_token("x".repeat(MAX_FIELD_LEN + 1));
        assert!(
            matches!(
                store.save_token(&mut token),
                Err(Error::InvalidToken { .. })
            ),
            "{name}"
        );
        let mut token = ann().with_user_name("u".repeat(MAX_FIELD_LEN + 1));
        assert!(
            matches!(
                store.save_token(&mut token),
                Err(Error::InvalidToken { .. })
            ),
            "{name}"
        );
        // Nothing of the refused saves is served afterwards by the same handle.
        assert_eq!(store.get_tokens().unwrap(), vec![], "{name}");
        assert_eq!(store.find_token_by_id(&long_id).unwrap(), None, "{name}");
        assert!(
            matches!(store.delete_token(&long_id), Err(Error::NotFound { .. })),
            "{name}"
        );
        // The bounds themselves are accepted.
        let mut token = ann()
            .with_id("8".repeat(MAX_ID_LEN))
            .with_access_token("x".repeat(MAX_FIELD_LEN));
        store.save_token(&mut token).unwrap();
        assert_eq!(store.get_tokens().unwrap().len(), 1, "{name}");
    }
}

fn record(id: &str) -> StoredRecord {
    StoredRecord {
        id: id.to_owned(),
        tags: Default::default(),
        sealed: vec![1, 2, 3],
    }
}

#[test]
fn the_file_backend_refuses_what_its_format_cannot_hold_and_keeps_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FileBackend::open(dir.path().join("t.tv")).unwrap();
    let id = "7".repeat(64 * 1024);
    // Straight to the backend, below the vault's bounds: an error, not a panic.
    let result = backend.transact(&mut |tx| Ok(tx.put(record(&id))?));
    assert!(result.is_err());
    assert_eq!(
        backend.get(&id).unwrap(),
        None,
        "the failed write is not in the cache"
    );
    assert_eq!(backend.list().unwrap(), vec![]);
}

#[test]
fn a_panicking_write_is_undone_and_releases_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.tv");
    let backends: Vec<(&str, Box<dyn Backend>)> = vec![
        ("memory", Box::new(MemoryBackend::new())),
        ("file", Box::new(FileBackend::open(&path).unwrap())),
    ];
    for (name, backend) in backends {
        backend
            .transact(&mut |tx| Ok(tx.put(record("kept"))?))
            .unwrap();
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            let _ = backend.transact(&mut |tx: &mut dyn Transaction| {
                tx.put(record("never"))?;
                tx.delete("kept")?;
                panic!("a step that panics half-way");
            });
        }));
        assert!(panicked.is_err());
        assert_eq!(backend.get("never").unwrap(), None, "{name}");
        assert_eq!(backend.list().unwrap(), vec![record("kept")], "{name}");
        assert_eq!(
            backend
                .find_by_tag(LookupField::UserName, &Tag([0; 32]))
                .unwrap(),
            None
        );
        // The store is not left locked: a new handle (another process, for the file store)
        // writes at once.
        if name == "file" {
            let other = FileBackend::open(&path).unwrap();
            other
                .transact(&mut |tx| Ok(tx.put(record("after"))?))
                .unwrap();
            assert_eq!(backend.list().unwrap().len(), 2);
        }
    }
}

#[test]
fn times_past_the_clock_saturate_instead_of_panicking() {
    let token = OAuthToken::new().with_expiry_after(SystemTime::now(), Duration::MAX);
    assert_eq!(token.expiry_time(), Some(u64::MAX));
    assert!(!token.is_expired());
    assert!(
        ann()
            .with_expiry_time(u64::MAX)
            .expires_within(Duration::MAX)
    );
    let from_epoch = OAuthToken::new().with_expiry_after(UNIX_EPOCH, Duration::from_secs(1));
    assert_eq!(from_epoch.expiry_time(), Some(1000));

    // refresh_with with an unbounded skew: the token is due, and nothing panics.
    let store = EncryptedStore::create(MemoryBackend::new(), &key()).unwrap();
    let mut token = ann().with_expiry_time(u64::MAX);
    store.save_token(&mut token).unwrap();
    let fresh = store
        .refresh_with(&ann(), Duration::MAX, |_| {
            Ok::<_, std::convert::Infallible>(OAuthToken::new().with_access_token("at-new"))
        })
        .unwrap();
    assert_eq!(fresh.access_token().unwrap().expose_secret(), "at-new");
    // A lock wait of Duration::MAX is accepted (no deadline arithmetic overflow).
    let lock: Box<dyn HeldLock> = store.backend().lock("x", Duration::MAX).unwrap();
    drop(lock);
}

// ============================================================================================
// Maintenance that races with other writers (defect 8)
// ============================================================================================

/// What runs during the scan: another writer, given the records' storage.
type Hook = Box<dyn FnOnce(&MemoryBackend) + Send>;

/// A memory backend that runs `during_scan` once, right after the first whole-store listing:
/// another process writing between a scan and what is done with it.
struct RacingBackend {
    inner: MemoryBackend,
    during_scan: std::sync::Mutex<Option<Hook>>,
}

impl Backend for RacingBackend {
    fn read_header(&self) -> Result<Option<Vec<u8>>, tokenvault::BackendError> {
        self.inner.read_header()
    }
    fn get(&self, id: &str) -> Result<Option<StoredRecord>, tokenvault::BackendError> {
        self.inner.get(id)
    }
    fn find_by_tag(
        &self,
        field: LookupField,
        tag: &Tag,
    ) -> Result<Option<StoredRecord>, tokenvault::BackendError> {
        self.inner.find_by_tag(field, tag)
    }
    fn list(&self) -> Result<Vec<StoredRecord>, tokenvault::BackendError> {
        let listed = self.inner.list();
        if let Some(hook) = self.during_scan.lock().unwrap().take() {
            hook(&self.inner);
        }
        listed
    }
    fn transact(
        &self,
        step: &mut dyn FnMut(&mut dyn Transaction) -> tokenvault::Result<()>,
    ) -> tokenvault::Result<()> {
        self.inner.transact(step)
    }
}

#[test]
fn prune_keeps_a_record_refreshed_after_its_scan() {
    let backend = RacingBackend {
        inner: MemoryBackend::new(),
        during_scan: std::sync::Mutex::new(None),
    };
    let store = EncryptedStore::create(backend, &key()).unwrap();
    let mut old = ann().with_expiry_time(1_000);
    store.save_token(&mut old).unwrap();
    let mut gone = OAuthToken::new()
        .with_user_name("bob@example.com")
        .with_access_token("at-bob")
        .with_expiry_time(1_000);
    store.save_token(&mut gone).unwrap();
    // While prune works from its scan, another process refreshes ann's token.
    let refreshed = {
        let mut t = ann()
            .with_access_token("at-ann-fresh")
            .with_expiry_time(u64::MAX / 4);
        t.set_id(old.id().map(str::to_owned));
        t
    };
    let snapshot = std::sync::Arc::new(std::sync::Mutex::new(Some(refreshed)));
    let header = store.backend().inner.read_header().unwrap().unwrap();
    let hook_snapshot = snapshot.clone();
    *store.backend().during_scan.lock().unwrap() = Some(Box::new(move |inner: &MemoryBackend| {
        // Replay a real save through a second store handle over the same records.
        let copy = MemoryBackend::new();
        copy.transact(&mut |tx| {
            tx.put_header(&header)?;
            for r in inner.list()? {
                tx.put(r)?;
            }
            Ok(())
        })
        .unwrap();
        let second = EncryptedStore::open(copy, &key()).unwrap();
        let mut token = hook_snapshot.lock().unwrap().take().unwrap();
        second.save_token(&mut token).unwrap();
        let id = token.id().unwrap().to_owned();
        let sealed = second.backend().get(&id).unwrap().unwrap();
        let new_header = second.backend().read_header().unwrap().unwrap();
        inner
            .transact(&mut |tx| {
                tx.put_header(&new_header)?;
                Ok(tx.put(sealed.clone())?)
            })
            .unwrap();
    }));
    let pruned = store.prune_expired(SystemTime::now()).unwrap();
    assert_eq!(
        pruned,
        vec![gone.id().unwrap().to_owned()],
        "only bob's record went"
    );
    let kept = store.find_token_by_id(old.id().unwrap()).unwrap().unwrap();
    assert_eq!(kept.access_token().unwrap().expose_secret(), "at-ann-fresh");
}
