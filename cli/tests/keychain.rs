//! Keychain key slots against a real Secret Service (gnome-keyring in a private D-Bus session,
//! started by `.ci/run`). Without one these tests print why and pass, unless
//! `TOKENVAULT_REQUIRE_SERVICES=1`, where they fail.

#[allow(dead_code)]
#[path = "../../tests/common/skipped.rs"]
mod skipped;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use tokenvault::backend::{Backend, MemoryBackend, SqliteBackend};
use tokenvault::{Credential, EncryptedStore, Error, OAuthToken, TokenField, TokenStore, danger};

const PASSPHRASE: &str = "keychain test passphrase";

/// Whether a Secret Service answers; panics when one is required and missing.
fn secret_service() -> bool {
    let required = std::env::var("TOKENVAULT_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
    let tool = Command::new("secret-tool")
        .arg("--version")
        .output()
        .is_ok();
    let probe = EncryptedStore::create(MemoryBackend::new(), &Credential::keychain());
    let missing = match (&probe, tool) {
        (Ok(_), true) => None,
        (Ok(_), false) => Some("secret-tool (package libsecret-tools) is not installed".to_owned()),
        (Err(Error::Keychain { reason }), _) => Some(reason.clone()),
        (Err(e), _) => panic!("unexpected error probing the keychain: {e}"),
    };
    if let Ok(store) = probe {
        store
            .forget_keychain_entry()
            .expect("clean up the probe's entry");
    }
    match missing {
        None => true,
        Some(reason) if required => {
            panic!("TOKENVAULT_REQUIRE_SERVICES=1 but no usable Secret Service: {reason}")
        }
        Some(reason) => {
            let test = std::thread::current().name().unwrap_or("?").to_owned();
            skipped::record(&test, "Secret Service");
            eprintln!(
                "skipping keychain test: {reason} (run under dbus-run-session with gnome-keyring, as .ci/run does)"
            );
            false
        }
    }
}

fn insecure_passphrase() -> Credential {
    danger::passphrase_accepting_insecure_kdf(PASSPHRASE)
}

fn cheap_kdf() -> tokenvault::Argon2Params {
    danger::insecure_argon2_params(64, 1, 1).unwrap()
}

fn token() -> OAuthToken {
    OAuthToken::new()
        .with_user_name("kc@example.com")
        .with_refresh_token("r-keychain-secret")
}

fn secret_tool(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new("secret-tool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run secret-tool");
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

/// The keychain entry of a store, read straight from the Secret Service.
fn lookup(store_id: &str) -> Option<Vec<u8>> {
    let out = secret_tool(
        &["lookup", "service", "tokenvault", "username", store_id],
        None,
    );
    out.status.success().then_some(out.stdout)
}

fn tokenvault(store: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokenvault"));
    cmd.args(args)
        .env_remove("TOKENVAULT_PASSPHRASE")
        .env_remove("TOKENVAULT_KEY")
        .env("TOKENVAULT_STORE", format!("sqlite:{}", store.display()))
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn sqlite_keychain_store(dir: &Path) -> EncryptedStore<SqliteBackend> {
    EncryptedStore::create(
        SqliteBackend::open(dir.join("t.db")).unwrap(),
        &Credential::keychain(),
    )
    .unwrap()
}

#[test]
fn keychain_store_reopens_in_a_new_process() {
    if !secret_service() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_keychain_store(dir.path());
    store.save_token(&mut token()).unwrap();
    let store_id = store.store_id();
    drop(store);
    let out = tokenvault(
        &dir.path().join("t.db"),
        &[
            "get",
            "--user",
            "kc@example.com",
            "--field",
            "refresh_token",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"r-keychain-secret\n");
    tokenvault::keychain::delete_entry(&store_id).unwrap();
}

#[test]
fn the_key_is_really_in_the_keyring_under_service_and_store_id() {
    if !secret_service() {
        return;
    }
    let store = EncryptedStore::create(MemoryBackend::new(), &Credential::keychain()).unwrap();
    let entry = lookup(&store.store_id()).expect("secret-tool finds the entry");
    assert_eq!(entry.len(), 32, "a 32-byte random key");
    assert_eq!(tokenvault::keychain::SERVICE, "tokenvault");
    store.forget_keychain_entry().unwrap();
    assert!(lookup(&store.store_id()).is_none());
}

#[test]
fn missing_entry_is_a_clear_error_and_leaves_store_and_other_slots_intact() {
    if !secret_service() {
        return;
    }
    let backend = std::sync::Arc::new(MemoryBackend::new());
    let store = EncryptedStore::create(backend.clone(), &Credential::keychain()).unwrap();
    store.add_slot(&insecure_passphrase(), cheap_kdf()).unwrap();
    store.save_token(&mut token()).unwrap();
    let store_id = store.store_id();
    drop(store);
    let header = backend.read_header().unwrap();
    let records = backend.list().unwrap();

    assert!(
        secret_tool(
            &["clear", "service", "tokenvault", "username", &store_id],
            None
        )
        .status
        .success()
    );
    match EncryptedStore::open(backend.clone(), &Credential::keychain()) {
        Err(e @ Error::Keychain { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("no tokenvault entry") && text.contains("another key slot"),
                "{text}"
            );
        }
        other => panic!("expected a keychain error, got {:?}", other.map(|_| ())),
    }
    assert_eq!(backend.read_header().unwrap(), header, "header untouched");
    assert_eq!(backend.list().unwrap(), records, "records untouched");
    let reopened = EncryptedStore::open(backend, &insecure_passphrase())
        .expect("the passphrase slot still opens");
    let found = reopened
        .find_token(&OAuthToken::new().with_user_name("kc@example.com"))
        .unwrap()
        .unwrap();
    assert_eq!(
        found
            .expose_field(TokenField::RefreshToken)
            .unwrap()
            .as_str(),
        "r-keychain-secret"
    );
}

#[test]
fn altered_entry_is_refused_without_opening_anything() {
    if !secret_service() {
        return;
    }
    let store = EncryptedStore::create(
        std::sync::Arc::new(MemoryBackend::new()),
        &Credential::keychain(),
    )
    .unwrap();
    let backend = store.backend().clone();
    let id = store.store_id();
    drop(store);
    let store_args = [
        "store",
        "--label",
        "altered",
        "service",
        "tokenvault",
        "username",
        id.as_str(),
    ];
    assert!(secret_tool(&store_args, Some(&[b'x'; 32])).status.success());
    let err = EncryptedStore::open(backend.clone(), &Credential::keychain())
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(&err, Error::Keychain { reason } if reason.contains("opens none")),
        "{err}"
    );
    assert!(secret_tool(&store_args, Some(b"short")).status.success());
    let err = EncryptedStore::open(backend, &Credential::keychain())
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(&err, Error::Keychain { reason } if reason.contains("32-byte")),
        "{err}"
    );
    tokenvault::keychain::delete_entry(&id).unwrap();
}

#[test]
fn passphrase_slot_added_and_removed_beside_the_keychain_slot() {
    if !secret_service() {
        return;
    }
    let backend = std::sync::Arc::new(MemoryBackend::new());
    let store = EncryptedStore::create(backend.clone(), &Credential::keychain()).unwrap();
    let slot = store.add_slot(&insecure_passphrase(), cheap_kdf()).unwrap();
    EncryptedStore::open(backend.clone(), &insecure_passphrase())
        .expect("opens with the passphrase");
    store.remove_slot(slot).unwrap();
    assert!(matches!(
        EncryptedStore::open(backend.clone(), &insecure_passphrase()),
        Err(Error::NoMatchingSlot {
            kind: tokenvault::KeySlotKind::Passphrase,
            ..
        })
    ));
    let reopened =
        EncryptedStore::open(backend, &Credential::keychain()).expect("keychain still opens");
    assert!(
        matches!(reopened.remove_slot(1), Err(Error::Refused { .. })),
        "never the last slot"
    );
    reopened.forget_keychain_entry().unwrap();
}

#[test]
fn removing_the_keychain_slot_deletes_its_entry_and_a_second_one_is_refused() {
    if !secret_service() {
        return;
    }
    let backend = std::sync::Arc::new(MemoryBackend::new());
    let store = EncryptedStore::create_with(
        backend.clone(),
        &insecure_passphrase(),
        tokenvault::StoreOptions {
            argon2: cheap_kdf(),
        },
    )
    .unwrap();
    let slot = store
        .add_slot(&Credential::keychain(), cheap_kdf())
        .unwrap();
    assert!(lookup(&store.store_id()).is_some());
    assert!(matches!(
        store.add_slot(&Credential::keychain(), cheap_kdf()),
        Err(Error::Refused { .. })
    ));
    assert_eq!(store.keychain_slot_here().unwrap(), Some(slot));
    store.remove_slot(slot).unwrap();
    assert!(
        lookup(&store.store_id()).is_none(),
        "entry deleted with its slot"
    );
    assert!(matches!(
        EncryptedStore::open(backend, &Credential::keychain()),
        Err(Error::NoMatchingSlot {
            kind: tokenvault::KeySlotKind::Keychain,
            ..
        })
    ));
}

#[test]
fn unreachable_keychain_fails_clearly_and_never_falls_back() {
    if !secret_service() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let no_bus = [("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")];
    let out = tokenvault(&db, &["init", "--key", "keychain"], &no_bus);
    // 4: the key's class. The message fits init: no store exists to open another way.
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("keychain")
            && stderr.contains("no store was created")
            && stderr.contains("--key passphrase")
            && !stderr.contains("another key slot"),
        "{stderr}"
    );
    let list = tokenvault(&db, &["list"], &[]);
    assert!(
        String::from_utf8_lossy(&list.stderr).contains("no store"),
        "no store was created"
    );

    // A store with a keychain and a passphrase slot: without the keychain, the CLI reports it
    // rather than prompting or guessing; an explicit passphrase opens it.
    let store = sqlite_keychain_store(dir.path());
    store
        .add_slot(
            &Credential::passphrase(PASSPHRASE),
            tokenvault::Argon2Params::new(19 * 1024, 2, 1).unwrap(),
        )
        .unwrap();
    store.save_token(&mut token()).unwrap();
    let id = store.store_id();
    drop(store);
    let out = tokenvault(&db, &["list"], &no_bus);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("keychain"));
    let out = tokenvault(
        &db,
        &["list"],
        &[no_bus[0], ("TOKENVAULT_PASSPHRASE", PASSPHRASE)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("kc@example.com"));
    tokenvault::keychain::delete_entry(&id).unwrap();
}

#[test]
fn destroy_deletes_the_store_files_and_the_keychain_entry() {
    if !secret_service() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let out = tokenvault(&db, &["init", "--key", "keychain"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = tokenvault::inspect(&SqliteBackend::open(&db).unwrap())
        .unwrap()
        .store_id;
    assert!(lookup(&id).is_some());
    let refused = tokenvault(&db, &["destroy"], &[]);
    assert_eq!(refused.status.code(), Some(2), "needs --yes");
    let out = tokenvault(&db, &["destroy", "--yes"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(lookup(&id).is_none(), "keychain entry deleted");
    assert!(!db.exists());
}

#[test]
fn rekey_revokes_a_keychain_slot_even_against_a_kept_secret() {
    if !secret_service() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let store = sqlite_keychain_store(dir.path());
    store.save_token(&mut token()).unwrap();
    let old_id = store.store_id();
    let old_header = store.backend().read_header().unwrap().unwrap();
    // What someone who leaves keeps: the header and the keychain's secret.
    let kept_secret = lookup(&old_id).expect("the old entry");
    drop(store);

    let out = tokenvault(&db, &["rekey", "--key", "keychain", "--json"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let new_id = report["store_id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, old_id);
    assert!(lookup(&old_id).is_none(), "the old entry is deleted");
    assert!(lookup(&new_id).is_some(), "the new slot's entry is there");
    let out = tokenvault(
        &db,
        &[
            "get",
            "--user",
            "kc@example.com",
            "--field",
            "refresh_token",
        ],
        &[],
    );
    assert_eq!(out.stdout, b"r-keychain-secret\n", "{out:?}");

    // The old header and the kept secret put back: they open the old header, and read nothing.
    let backend = SqliteBackend::open(&db).unwrap();
    backend
        .transact(&mut |tx| Ok(tx.put_header(&old_header)?))
        .unwrap();
    let store_args = [
        "store",
        "--label",
        "kept",
        "service",
        "tokenvault",
        "username",
        &old_id,
    ];
    assert!(
        secret_tool(&store_args, Some(&kept_secret))
            .status
            .success()
    );
    let old = EncryptedStore::open(backend, &Credential::keychain()).expect("old header opens");
    assert!(old.get_tokens().is_err());
    assert!(!matches!(
        old.find_token(&OAuthToken::new().with_user_name("kc@example.com")),
        Ok(Some(_))
    ));
    tokenvault::keychain::delete_entry(&old_id).unwrap();
    tokenvault::keychain::delete_entry(&new_id).unwrap();
}
