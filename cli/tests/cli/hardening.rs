//! The outside review's findings that were found through the CLI (SECURITY.md §9): terminal
//! injection, `destroy` without a keychain, insecure store files, passwords in store URIs,
//! interrupted migrations.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

use super::support::World;

const HOSTILE: &str = r#"{"user_name":"mallory\u001b[2J\u001b]0;owned\u0007\r\nFAKE ROW yes","client_id":"1000.M\u202eLIAM","access_token":"at-M\u001b[31m","expiry_time":"4102444800000","api_domain":"https://x\u0007"}"#;

#[test]
fn list_get_and_errors_escape_control_characters() {
    let w = World::raw();
    let id = w.save(HOSTILE).remove(0);
    for out in [
        w.tv(&["list"]).run(),
        w.tv(&["get", &id, "--field", "access_token"]).run(),
        w.tv(&["get", &id, "--field", "user_name"]).run(),
    ] {
        out.ok();
        let text = out.stdout.clone();
        assert!(
            !text.contains(['\u{1b}', '\u{7}', '\r', '\u{202e}']),
            "raw control characters reached the terminal: {text:?}"
        );
        assert!(!text.contains("\nFAKE ROW"), "a value faked a row: {text}");
    }
    let list = w.tv(&["list"]).run();
    assert_eq!(list.lines().len(), 2, "one header line and one row");
    assert!(list.stdout.contains("mallory\\u{1b}[2J"));
    // JSON keeps the exact value, escaped by the JSON encoder.
    assert_eq!(
        w.get(&id)["user_name"],
        "mallory\u{1b}[2J\u{1b}]0;owned\u{7}\r\nFAKE ROW yes"
    );
    // An error that names a stored user name: escaped too.
    let out = w.tv(&["get", "--user", "eve\u{1b}[2Jx"]).run();
    out.exits(3);
    assert!(!out.stderr.contains('\u{1b}'));
}

#[test]
fn destroy_of_a_passphrase_store_needs_no_keychain() {
    // The world's environment has no D-Bus session: no Secret Service is reachable.
    let w = World::passphrase("correct horse battery staple");
    assert!(w.path("t.db").exists());
    w.tv(&["destroy", "--yes"])
        .run()
        .ok()
        .stdout_has(&["destroyed"]);
    assert!(!w.path("t.db").exists());
}

#[test]
fn an_insecure_store_file_is_refused_with_a_clear_error() {
    let w = World::raw();
    let id = w
        .save(r#"{"user_name":"ann","access_token":"at-ann-1"}"#)
        .remove(0);
    fs::set_permissions(w.path("t.db"), fs::Permissions::from_mode(0o666)).unwrap();
    w.tv(&["get", &id])
        .run()
        .exits(7)
        .stderr_has(&["other users may write", "chmod"])
        .leaks_none(&["at-ann-1"]);
    fs::set_permissions(w.path("t.db"), fs::Permissions::from_mode(0o600)).unwrap();
    w.tv(&["get", &id]).run().ok();

    let mut linked = World::raw();
    symlink(w.path("t.db"), linked.path("link.db")).unwrap();
    let store = format!("sqlite:{}", linked.path("link.db").display());
    linked.set("TOKENVAULT_STORE", store);
    linked
        .tv(&["list"])
        .run()
        .exits(7)
        .stderr_has(&["symbolic link"]);
}

#[test]
fn a_password_with_an_at_sign_never_reaches_an_error() {
    let mut w = World::empty();
    for uri in [
        "postgres://ann:pa@ss-Wd9@127.0.0.1:1/tv?sslmode=disable",
        "mysql://ann:pa@ss-Wd9@127.0.0.1:1/tv?ssl_mode=disabled",
    ] {
        w.set("TOKENVAULT_STORE", uri);
        w.set("TOKENVAULT_KEY", super::support::raw_key(1));
        let out = w.tv(&["list"]).run();
        // Refused (6: plaintext to a remote host) or unreachable (7): never the password.
        assert!(
            matches!(out.code(), 6 | 7),
            "{}: exit {}",
            out.what,
            out.code()
        );
        out.leaks_none(&["pa@ss", "ss-Wd9"]);
    }
}

#[test]
fn an_interrupted_migrate_is_finished_with_resume() {
    let w = World::raw();
    for user in ["ann", "bob", "cid"] {
        w.save(&format!(
            r#"{{"user_name":"{user}","access_token":"at-{user}"}}"#
        ));
    }
    let dest = format!("file:{}", w.path("dest.tv").display());
    w.tv(&["migrate", "--to", &dest]).run().ok();
    // As if the copy had stopped after the first record: delete the others there.
    let ids: Vec<String> = w
        .tv(&["--store", &dest, "list", "--json"])
        .run()
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    for id in &ids[1..] {
        w.tv(&["--store", &dest, "delete", id]).run().ok();
    }
    w.tv(&["migrate", "--to", &dest])
        .run()
        .exits(6)
        .stderr_has(&["already exists", "--resume"]);
    w.tv(&["migrate", "--to", &dest, "--resume"])
        .run()
        .ok()
        .stdout_has(&["migrated 3 token(s)", "1 already there"]);
    let copied = w
        .tv(&["--store", &dest, "list", "--json"])
        .run()
        .ok()
        .json();
    assert_eq!(copied.as_array().unwrap().len(), 3);
    assert_eq!(w.tv(&["--store", &dest, "verify"]).run().ok().code(), 0);
}
