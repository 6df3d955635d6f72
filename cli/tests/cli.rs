//! The `tokenvault` CLI contract (DESIGN.md §6), through the real binary: every command,
//! its exit status (0 success, 1 failure, 2 usage), its stdout and stderr, and that no
//! secret reaches a place it must not (stderr, `list`, the store's bytes, the terminal).
//!
//! Every command runs in a fresh temporary directory with a cleared environment
//! (`TOKENVAULT_STORE=sqlite:<dir>/t.db`, HOME and XDG_DATA_HOME inside the directory) and
//! in a new session, so without a controlling terminal. Most stores use a raw key
//! (`init --key env`) for speed; the passphrase ones run the default Argon2id.
//! The prompt tests drive a pseudo-terminal (`tests/cli/pty.rs`).

#[path = "cli/audit.rs"]
mod audit;
#[path = "cli/everyday.rs"]
mod everyday;
#[path = "cli/hardening.rs"]
mod hardening;
#[path = "cli/import_hardening.rs"]
mod import_hardening;
#[path = "cli/pty.rs"]
mod pty;
#[path = "cli/support.rs"]
mod support;
#[path = "cli/tamper.rs"]
mod tamper;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use pty::Pty;
use support::{BIN, Out, World, fixture, mode, new_session, poll, raw_key, read_json, secrets_of};

const ALICE: &str = r#"{"user_name":"alice@example.com","client_id":"1000.ALICE","client_secret":"cs-ALICE-7f3a","refresh_token":"rt-ALICE-9b1c","access_token":"at-ALICE-22d4","expiry_time":"4102444800000","redirect_url":"https://app.example.com/cb","api_domain":"https://www.zohoapis.com"}"#;
const ALICE_SECRETS: [&str; 3] = ["cs-ALICE-7f3a", "rt-ALICE-9b1c", "at-ALICE-22d4"];
const BOB: &str = r#"{"user_name":"bob@example.com","client_id":"1000.BOB","client_secret":"cs-BOB-51e0","refresh_token":"rt-BOB-0a77","grant_token":"gt-BOB-c3c3"}"#;
const BOB_SECRETS: [&str; 3] = ["cs-BOB-51e0", "rt-BOB-0a77", "gt-BOB-c3c3"];

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

fn is_record_id(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The value `input` describes, with the id the store gave it.
fn with_id(input: &str, id: &str) -> Value {
    let mut v: Value = serde_json::from_str(input).expect("test JSON");
    v["id"] = json!(id);
    v
}

// ============================================================================================
// init
// ============================================================================================

#[test]
fn init_with_passphrase_from_env() {
    let mut w = World::empty();
    w.set("TOKENVAULT_PASSPHRASE", "correct horse battery");
    let out = w.tv(&["init"]).run();
    out.ok()
        .stdout_has(&["created store ", &format!(" at {}", w.store())])
        .leaks_none(&["correct horse battery"]);
    let store_id = out.stdout.split_whitespace().nth(2).expect("store id");
    assert!(
        store_id.len() == 32 && store_id.chars().all(|c| c.is_ascii_hexdigit()),
        "store id {store_id:?}"
    );
    assert_eq!(mode(&w.path("t.db")), 0o600);
    // The same passphrase opens it; the store is empty.
    assert_eq!(w.list(), Vec::<Value>::new());
}

#[test]
fn init_with_passphrase_file() {
    let w = World::empty();
    let file = w.path("pass.txt");
    // First line only; the line terminator is not part of the passphrase.
    fs::write(&file, "from a file\nsecond line ignored\n").unwrap();
    // Open to others, it is refused (as ssh refuses such a key); 0600 it is read.
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    w.tv(&["init", "--passphrase-file", file.to_str().unwrap()])
        .run()
        .exits(4)
        .stderr_has(&["chmod 600"]);
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    let file = file.to_str().unwrap();
    w.tv(&["init", "--passphrase-file", file]).run().ok();
    // Global option after or before the command; the env variable with the same text works.
    w.tv(&["list", "--passphrase-file", file]).run().ok();
    w.tv(&["--passphrase-file", file, "list"]).run().ok();
    w.tv(&["list"])
        .env("TOKENVAULT_PASSPHRASE", "from a file")
        .run()
        .ok();
    w.tv(&["list"])
        .env("TOKENVAULT_PASSPHRASE", "from a file\nsecond line ignored")
        .run()
        .exits(4)
        .stderr_has(&["wrong passphrase"]);
}

#[test]
fn passphrase_file_errors() {
    let w = World::empty();
    let missing = w.path("nope.txt");
    w.tv(&["init", "--passphrase-file", missing.to_str().unwrap()])
        .run()
        .exits(4)
        .stderr_has(&["cannot read", "nope.txt"]);
    let empty = w.path("empty.txt");
    support::write_private(&empty, "\n");
    w.tv(&["init", "--passphrase-file", empty.to_str().unwrap()])
        .run()
        .exits(4)
        .stderr_has(&["empty passphrase"]);
    w.tv(&["init"])
        .env("TOKENVAULT_PASSPHRASE", "")
        .run()
        .exits(4)
        .stderr_has(&["empty passphrase", "TOKENVAULT_PASSPHRASE"]);
    assert!(!w.path("t.db").exists(), "a failed init left a store file");
}

#[test]
fn init_with_raw_key_and_key_errors() {
    let w = World::empty();
    // No TOKENVAULT_KEY: a clear error, and no store file left behind.
    w.tv(&["init", "--key", "env"])
        .run()
        .exits(4)
        .stderr_has(&["TOKENVAULT_KEY"]);
    w.tv(&["init", "--key", "env"])
        .env("TOKENVAULT_KEY", "not base64!!")
        .run()
        .exits(4)
        .stderr_has(&["TOKENVAULT_KEY is not valid base64"])
        .leaks_none(&["not base64!!"]);
    w.tv(&["init", "--key", "env"])
        .env("TOKENVAULT_KEY", "AAAA")
        .run()
        .exits(4)
        .stderr_has(&["32 bytes"]);
    assert!(!w.path("t.db").exists(), "a failed init left a store file");
    w.tv(&["init", "--key", "env"])
        .env("TOKENVAULT_KEY", raw_key(9))
        .run()
        .ok()
        .stdout_has(&["created store"])
        .leaks_none(&[&raw_key(9)]);
    w.tv(&["list"]).env("TOKENVAULT_KEY", raw_key(9)).run().ok();
    // Another key: refused, and the message names the store.
    w.tv(&["list"])
        .env("TOKENVAULT_KEY", raw_key(8))
        .run()
        .exits(4)
        .stderr_has(&["wrong passphrase or key", &w.store()])
        .no_stdout();
    // A raw-key store without the key: says what to set.
    w.tv(&["list"])
        .run()
        .exits(4)
        .stderr_has(&["TOKENVAULT_KEY"]);
    w.tv(&["init", "--key", "bogus"]).run().exits(2);
}

#[test]
fn init_twice_refuses_and_keeps_the_store() {
    let w = World::raw();
    w.save(ALICE);
    w.tv(&["init", "--key", "env"])
        .env("TOKENVAULT_KEY", raw_key(2))
        .run()
        .exits(6)
        .stderr_has(&["already exists"])
        .no_stdout();
    w.tv(&["init"])
        .env("TOKENVAULT_PASSPHRASE", "another")
        .run()
        .exits(6)
        .stderr_has(&["already exists"]);
    // Still the first store, with its key and its record.
    assert_eq!(w.list().len(), 1);
    // file: backend too.
    let f = format!("file:{}", w.path("t.tv").display());
    w.tv(&["init", "--key", "env", "--store", &f]).run().ok();
    w.tv(&["init", "--key", "env", "--store", &f])
        .run()
        .exits(6)
        .stderr_has(&["already exists"]);
}

#[test]
fn default_store_is_in_the_data_dir_with_private_modes() {
    let mut w = World::empty();
    w.unset("TOKENVAULT_STORE");
    w.set("TOKENVAULT_KEY", raw_key(3));
    let dir = w.path("xdg-data").join("tokenvault");
    let db = dir.join("tokens.db");
    w.tv(&["init", "--key", "env"])
        .run()
        .ok()
        .stdout_has(&[&format!("at sqlite:{}", db.display())]);
    assert!(db.is_file(), "no store at {}", db.display());
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    assert_eq!(mode(&db), 0o600, "{}", db.display());
    w.save(ALICE);
    w.save(BOB);
    assert_eq!(w.list().len(), 2);
    // Whatever SQLite keeps beside the database is private too.
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    // Nothing was written to HOME.
    assert!(!w.path("home").exists());
}

#[test]
fn a_new_store_directory_is_created_0700() {
    let mut w = World::empty();
    w.set("TOKENVAULT_KEY", raw_key(3));
    let nested = w.path("a/b/store.db");
    w.tv(&[
        "init",
        "--key",
        "env",
        "--store",
        &format!("sqlite:{}", nested.display()),
    ])
    .run()
    .ok();
    assert_eq!(mode(&w.path("a/b")), 0o700);
    assert_eq!(mode(&nested), 0o600);
    let file = w.path("c/store.tv");
    w.tv(&[
        "init",
        "--key",
        "env",
        "--store",
        &format!("file:{}", file.display()),
    ])
    .run()
    .ok();
    assert_eq!(mode(&w.path("c")), 0o700);
    assert_eq!(mode(&file), 0o600);
}

#[test]
fn store_uri_errors_are_usage_errors() {
    let w = World::raw();
    w.tv(&["list", "--store", "ftp://x"])
        .run()
        .exits(2)
        .stderr_has(&["unknown store URI", "sqlite:PATH", "file:PATH"]);
    w.tv(&["list", "--store", "sqlite:"])
        .run()
        .exits(2)
        .stderr_has(&["no path"]);
    // Server stores: an unknown parameter (exit 1), or nothing listening on port 9 (7,
    // storage), naming the store without its password.
    for (uri, status) in [
        ("mysql://u:pw-secret@127.0.0.1:9/db?ssl=disable", 1),
        ("postgres://u:pw-secret@127.0.0.1:9/db?sslmode=disable", 7),
    ] {
        w.tv(&["list", "--store", uri])
            .run()
            .exits(status)
            .stderr_has(&["u@127.0.0.1:9/db"])
            .leaks_none(&["pw-secret"]);
    }
}

// ============================================================================================
// save
// ============================================================================================

#[test]
fn save_object_prints_its_id() {
    let w = World::raw();
    let out = w.tv(&["save"]).stdin(ALICE).run();
    out.ok().leaks_none(&ALICE_SECRETS);
    assert!(out.stdout.ends_with('\n'));
    let ids = out.lines();
    assert_eq!(ids.len(), 1, "{}", out.stdout);
    assert!(is_record_id(ids[0]), "id {:?}", ids[0]);
    assert_eq!(w.get(ids[0]), with_id(ALICE, ids[0]));
}

#[test]
fn save_array_prints_one_id_per_token() {
    let w = World::raw();
    let out = w.tv(&["save"]).stdin(format!("[{ALICE},{BOB}]")).run();
    out.ok().leaks_none(&ALICE_SECRETS).leaks_none(&BOB_SECRETS);
    let ids = out.lines();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
    assert_eq!(w.get(ids[0]), with_id(ALICE, ids[0]));
    assert_eq!(w.get(ids[1]), with_id(BOB, ids[1]));
    // An empty array saves nothing.
    w.tv(&["save"]).stdin("[]").run().ok().no_stdout();
    assert_eq!(w.list().len(), 2);
}

#[test]
fn save_json_reports_inserted_then_updated_with_the_same_id() {
    let w = World::raw();
    let first = w
        .tv(&["save", "--json"])
        .stdin(format!("[{ALICE},{BOB}]"))
        .run();
    let first = first.ok().json();
    let rows = first.as_array().expect("array");
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert_eq!(row["result"], "inserted");
        assert_eq!(row.as_object().unwrap().len(), 2, "{row}");
        assert!(is_record_id(row["id"].as_str().unwrap()));
    }
    let alice_id = rows[0]["id"].as_str().unwrap();
    // Same user, new access token: updated in place, other fields merged.
    let update = r#"{"user_name":"alice@example.com","access_token":"at-ALICE-NEW-88"}"#;
    let second = w.tv(&["--json", "save"]).stdin(update).run();
    let second = second.ok().leaks_none(&["at-ALICE-NEW-88"]).json();
    assert_eq!(second, json!([{"id": alice_id, "result": "updated"}]));
    let mut expected = with_id(ALICE, alice_id);
    expected["access_token"] = json!("at-ALICE-NEW-88");
    assert_eq!(w.get(alice_id), expected);
    assert_eq!(w.list().len(), 2, "an update created a record");
    // Plain output prints the id of an updated record too.
    assert_eq!(w.save(update), vec![alice_id.to_owned()]);
}

#[test]
fn save_malformed_json_fails_clearly_and_saves_nothing() {
    let w = World::raw();
    for input in [
        "",
        "{",
        "[{\"user_name\":\"x\",}]",
        "not json at all",
        "42",
        "\"text\"",
    ] {
        w.tv(&["save"])
            .stdin(input)
            .run()
            .exits(2)
            .stderr_has(&["tokenvault: stdin"])
            .no_stdout();
    }
    w.tv(&["save"])
        .stdin(r#"{"user_name":"x","refresh_token":"rt-TRUNC"#)
        .run()
        .exits(2)
        .stderr_has(&["not valid JSON", "line 1"])
        .leaks_none(&["rt-TRUNC"]);
    w.tv(&["save"])
        .stdin("42")
        .run()
        .exits(2)
        .stderr_has(&["expected a token object or an array"]);
    assert!(w.list().is_empty());
}

#[test]
fn save_errors_never_quote_values() {
    let w = World::raw();
    // (input, the value that must not appear, what the message must say)
    let cases: [(&str, &str, &str); 7] = [
        (r#"{"access_token":12345}"#, "12345", "wrong type"),
        (
            r#"{"refresh_token":["SECRET-IN-ARRAY"]}"#,
            "SECRET-IN-ARRAY",
            "wrong type",
        ),
        (
            r#"{"client_secret":{"k":"SECRET-IN-MAP"}}"#,
            "SECRET-IN-MAP",
            "wrong type",
        ),
        (
            r#"{"access_token":true,"refresh_token":"rt-LEAK-1"}"#,
            "rt-LEAK-1",
            "wrong type",
        ),
        (
            r#"{"acces_token":"SECRET-TYPO"}"#,
            "SECRET-TYPO",
            "unknown field",
        ),
        (
            r#"{"refresh_token":"rt-LEAK-2","expiry_time":"12x34"}"#,
            "12x34",
            "expiry_time",
        ),
        (
            r#"{"refresh_token":"rt-LEAK-3","expiry_time":-5}"#,
            "rt-LEAK-3",
            "invalid value",
        ),
    ];
    for (input, secret, says) in cases {
        let out = w.tv(&["save"]).stdin(input).run();
        out.exits(2).stderr_has(&[says]).leaks_none(&[secret]);
    }
    // A second token in an array is refused with its position; the first was saved.
    let out = w
        .tv(&["save"])
        .stdin(format!(r#"[{ALICE},{{"access_token":98765}}]"#))
        .run();
    out.exits(2)
        .stderr_has(&["token #2"])
        .leaks_none(&["98765"]);
    assert!(w.list().is_empty(), "parse errors are found before saving");
    // A token that cannot be a record: no access/refresh/grant token.
    w.tv(&["save"])
        .stdin(r#"{"user_name":"nobody@example.com","client_secret":"cs-NOTOKEN"}"#)
        .run()
        .exits(2)
        .stderr_has(&["token #1 not saved", "access, refresh or grant token"])
        .leaks_none(&["cs-NOTOKEN"]);
    // Partial failure of an array: what was saved is said.
    let out = w
        .tv(&["save"])
        .stdin(format!(r#"[{ALICE},{{"user_name":"nobody@example.com"}}]"#))
        .run();
    out.exits(2)
        .stderr_has(&["token #2 not saved (1 saved before it)"])
        .leaks_none(&ALICE_SECRETS);
    assert_eq!(out.lines().len(), 1, "the id of the saved token is printed");
    assert_eq!(w.list().len(), 1);
}

/// `save --json` of an array whose second token is refused: the first one is saved, so a
/// machine reader must learn its id (or nothing must have been saved).
#[test]
fn save_json_partial_failure_reports_what_was_saved() {
    let w = World::raw();
    let out = w
        .tv(&["save", "--json"])
        .stdin(format!(r#"[{ALICE},{{"user_name":"nobody@example.com"}}]"#))
        .run();
    out.exits(2).stderr_has(&["token #2 not saved"]);
    let saved = w.list();
    if !saved.is_empty() {
        let id = saved[0]["id"].as_str().unwrap();
        assert_eq!(out.json(), json!([{"id": id, "result": "inserted"}]));
    }
}

#[test]
fn save_conflict_is_refused_without_secrets() {
    let w = World::raw();
    let ids = w.save(&format!("[{ALICE},{BOB}]"));
    // Bob's record given Alice's refresh token: refused, nothing changed.
    let steal = format!(r#"{{"id":"{}","refresh_token":"rt-ALICE-9b1c"}}"#, ids[1]);
    w.tv(&["save"])
        .stdin(steal)
        .run()
        .exits(6)
        .stderr_has(&["already has this refresh_token"])
        .leaks_none(&["rt-ALICE-9b1c"]);
    assert_eq!(w.get(&ids[1]), with_id(BOB, &ids[1]));
}

// ============================================================================================
// get
// ============================================================================================

#[test]
fn get_by_id_user_and_field() {
    let w = World::raw();
    let ids = w.save(&format!("[{ALICE},{BOB}]"));
    let by_id = w.tv(&["get", &ids[0]]).run();
    by_id.ok();
    assert!(by_id.stdout.ends_with("}\n"));
    assert_eq!(by_id.json(), with_id(ALICE, &ids[0]));
    let by_user = w.tv(&["get", "--user", "alice@example.com"]).run();
    assert_eq!(by_user.ok().stdout, by_id.stdout, "same record, same bytes");
    // --field prints the bare value and a newline: nothing else.
    for (args, value) in [
        (
            vec!["get", &ids[0], "--field", "access_token"],
            "at-ALICE-22d4",
        ),
        (
            vec!["get", &ids[0], "--field", "client_secret"],
            "cs-ALICE-7f3a",
        ),
        (
            vec!["get", &ids[0], "--field", "expiry_time"],
            "4102444800000",
        ),
        (vec!["get", &ids[0], "--field", "id"], ids[0].as_str()),
        (
            vec!["get", "--user", "bob@example.com", "--field", "grant_token"],
            "gt-BOB-c3c3",
        ),
        (
            vec![
                "get",
                "--field",
                "api_domain",
                "--user",
                "alice@example.com",
            ],
            "https://www.zohoapis.com",
        ),
    ] {
        let out = w.tv(&args).run();
        out.ok();
        assert_eq!(out.stdout, format!("{value}\n"), "{}", args.join(" "));
        assert_eq!(out.stderr, "");
    }
}

#[test]
fn get_errors() {
    let w = World::raw();
    let ids = w.save(ALICE);
    w.tv(&["get", "nosuchid"])
        .run()
        .exits(3)
        .stderr_has(&["no token with id nosuchid"])
        .no_stdout();
    w.tv(&["get", "--user", "zed@example.com"])
        .run()
        .exits(3)
        .stderr_has(&["no token for user zed@example.com"])
        .no_stdout();
    // An unknown field name is a usage error that lists the names.
    w.tv(&["get", &ids[0], "--field", "password"])
        .run()
        .exits(2)
        .stderr_has(&["unknown field", "access_token", "refresh_token"])
        .no_stdout();
    // A known field the record lacks is a failure.
    w.tv(&["get", &ids[0], "--field", "grant_token"])
        .run()
        .exits(3)
        .stderr_has(&["has no grant_token"])
        .no_stdout()
        .leaks_none(&ALICE_SECRETS);
    w.tv(&["get"]).run().exits(2).no_stdout();
    w.tv(&["get", &ids[0], "--user", "alice@example.com"])
        .run()
        .exits(2)
        .no_stdout();
}

// ============================================================================================
// find
// ============================================================================================

#[test]
fn find_follows_the_zoho_matching_rules() {
    let w = World::raw();
    let ids = w.save(&format!("[{ALICE},{BOB}]"));
    let alice = with_id(ALICE, &ids[0]);
    let bob = with_id(BOB, &ids[1]);
    let hit = |query: &str| w.tv(&["find"]).stdin(query).run().ok().json();
    // 1. user name.
    assert_eq!(hit(r#"{"user_name":"bob@example.com"}"#), bob);
    // 2. access token alone: the stored record fills the rest.
    assert_eq!(hit(r#"{"access_token":"at-ALICE-22d4"}"#), alice);
    // 3. refresh token with both client credentials.
    assert_eq!(
        hit(
            r#"{"client_id":"1000.BOB","client_secret":"cs-BOB-51e0","refresh_token":"rt-BOB-0a77"}"#
        ),
        bob
    );
    // 3. grant token with both client credentials.
    assert_eq!(
        hit(
            r#"{"client_id":"1000.BOB","client_secret":"cs-BOB-51e0","grant_token":"gt-BOB-c3c3"}"#
        ),
        bob
    );
    // Fields the query has win over stored ones (the Zoho merge).
    let merged = hit(r#"{"user_name":"alice@example.com","api_domain":"https://www.zohoapis.eu"}"#);
    assert_eq!(merged["api_domain"], "https://www.zohoapis.eu");
    assert_eq!(merged["refresh_token"], "rt-ALICE-9b1c");

    let miss = |query: &str| {
        w.tv(&["find"])
            .stdin(query)
            .run()
            .exits(3)
            .stderr_has(&["no matching token"])
            .no_stdout()
            .leaks_none(&ALICE_SECRETS)
            .leaks_none(&BOB_SECRETS);
    };
    miss(r#"{"user_name":"carol@example.com"}"#);
    miss(r#"{"access_token":"at-NOBODY"}"#);
    // The access-token rule applies only without client credentials.
    miss(r#"{"access_token":"at-ALICE-22d4","client_id":"1000.ALICE"}"#);
    // The refresh-token rule needs both client id and secret.
    miss(r#"{"client_id":"1000.BOB","refresh_token":"rt-BOB-0a77"}"#);
    miss(r#"{"client_secret":"cs-BOB-51e0","refresh_token":"rt-BOB-0a77"}"#);
    // A refresh token alone matches nothing.
    miss(r#"{"refresh_token":"rt-BOB-0a77"}"#);
    miss("{}");
}

#[test]
fn find_input_errors() {
    let w = World::raw();
    w.save(ALICE);
    w.tv(&["find"])
        .stdin(r#"[{"user_name":"a"},{"user_name":"b"}]"#)
        .run()
        .exits(2)
        .stderr_has(&["one token object"]);
    w.tv(&["find"])
        .stdin("{oops")
        .run()
        .exits(2)
        .stderr_has(&["not valid JSON"]);
    w.tv(&["find"])
        .stdin(r#"{"access_token":4444}"#)
        .run()
        .exits(2)
        .leaks_none(&["4444"]);
}

// ============================================================================================
// list
// ============================================================================================

#[test]
fn list_shows_metadata_and_never_secrets() {
    let w = World::raw();
    let past = r#"{"user_name":"old@example.com","refresh_token":"rt-OLD-1","access_token":"at-OLD-1","client_secret":"cs-OLD-1","expiry_time":"1000"}"#;
    let ids = w.save(&format!("[{ALICE},{BOB},{past}]"));
    let mut secrets = ALICE_SECRETS.to_vec();
    secrets.extend(BOB_SECRETS);
    secrets.extend(["rt-OLD-1", "at-OLD-1", "cs-OLD-1"]);

    let out = w.tv(&["list", "--json"]).run();
    out.ok().leaks_none(&secrets);
    let rows = out.json();
    let rows = rows.as_array().expect("one JSON array");
    assert_eq!(rows.len(), 3);
    let find = |id: &str| rows.iter().find(|r| r["id"] == id).expect("listed");
    for row in rows {
        let mut keys: Vec<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "api_domain",
                "client_id",
                "expired",
                "expiry_time",
                "id",
                "user_name"
            ]
        );
    }
    assert_eq!(
        *find(&ids[0]),
        json!({"id": ids[0], "user_name": "alice@example.com", "client_id": "1000.ALICE",
               "api_domain": "https://www.zohoapis.com", "expiry_time": "4102444800000",
               "expired": false})
    );
    assert_eq!(
        *find(&ids[1]),
        json!({"id": ids[1], "user_name": "bob@example.com", "client_id": "1000.BOB",
               "api_domain": null, "expiry_time": null, "expired": null})
    );
    assert_eq!(find(&ids[2])["expired"], true);
    assert_eq!(find(&ids[2])["expiry_time"], "1000");

    let table = w.tv(&["list"]).run();
    table.ok().leaks_none(&secrets);
    let lines = table.lines();
    assert_eq!(lines.len(), 4, "header + 3 rows:\n{}", table.stdout);
    for column in [
        "ID",
        "USER",
        "CLIENT_ID",
        "API_DOMAIN",
        "EXPIRES",
        "EXPIRED",
    ] {
        assert!(lines[0].contains(column), "header {:?}", lines[0]);
    }
    let row = |id: &str| *lines.iter().find(|l| l.starts_with(id)).expect("row");
    assert!(row(&ids[0]).contains("alice@example.com"));
    assert!(row(&ids[0]).contains("2100-01-01T00:00:00Z"));
    assert!(row(&ids[0]).trim_end().ends_with("no"));
    assert!(row(&ids[2]).contains("1970-01-01T00:00:01Z"));
    assert!(row(&ids[2]).trim_end().ends_with("yes"));
    assert!(
        row(&ids[1]).trim_end().ends_with('-'),
        "no expiry: {:?}",
        row(&ids[1])
    );
}

#[test]
fn list_of_an_empty_store() {
    let w = World::raw();
    let out = w.tv(&["list", "--json"]).run();
    assert_eq!(out.ok().stdout, "[]\n");
    let out = w.tv(&["list"]).run();
    assert_eq!(out.ok().lines().len(), 1, "just the header");
}

// ============================================================================================
// delete, purge, prune
// ============================================================================================

#[test]
fn delete_one_record() {
    let w = World::raw();
    let ids = w.save(&format!("[{ALICE},{BOB}]"));
    w.tv(&["delete", &ids[0]])
        .run()
        .ok()
        .stdout_has(&[&format!("deleted {}", ids[0])]);
    let left = w.list();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], ids[1].as_str());
    w.tv(&["get", &ids[0]]).run().exits(3);
    w.tv(&["delete", &ids[0]])
        .run()
        .exits(3)
        .stderr_has(&[&format!("no token with id {}", ids[0])]);
    w.tv(&["delete", "nosuchid"])
        .run()
        .exits(3)
        .stderr_has(&["no token with id nosuchid"]);
    w.tv(&["delete"]).run().exits(2);
    assert_eq!(w.list().len(), 1);
}

#[test]
fn purge_needs_yes() {
    let w = World::raw();
    w.save(&format!("[{ALICE},{BOB}]"));
    w.tv(&["purge"])
        .run()
        .exits(2)
        .stderr_has(&["--yes"])
        .no_stdout();
    assert_eq!(w.list().len(), 2, "purge without --yes deleted something");
    w.tv(&["purge", "--yes"]).run().ok();
    assert!(w.list().is_empty());
    // The store itself is still there and usable.
    w.save(BOB);
    assert_eq!(w.list().len(), 1);
}

#[test]
fn prune_removes_only_expired_records() {
    let w = World::raw();
    let now = now_ms();
    let expired = format!(
        r#"{{"user_name":"gone@example.com","refresh_token":"rt-GONE","expiry_time":"{}"}}"#,
        now - 60_000
    );
    let valid = format!(
        r#"{{"user_name":"here@example.com","refresh_token":"rt-HERE","expiry_time":"{}"}}"#,
        now + 3_600_000
    );
    let no_expiry = r#"{"user_name":"none@example.com","refresh_token":"rt-NONE"}"#;
    let ids = w.save(&format!("[{expired},{valid},{no_expiry}]"));
    w.tv(&["prune"])
        .run()
        .exits(2)
        .stderr_has(&["--expired"])
        .no_stdout();
    assert_eq!(w.list().len(), 3);
    let out = w.tv(&["prune", "--expired"]).run();
    assert_eq!(out.ok().stdout, "pruned 1 expired token(s)\n");
    let left: Vec<String> = w
        .list()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let mut want = vec![ids[1].clone(), ids[2].clone()];
    want.sort();
    assert_eq!(left, want);
    let again = w.tv(&["prune", "--expired", "--json"]).run();
    assert_eq!(again.ok().json(), json!({"pruned": 0}));
}

// ============================================================================================
// unlocking
// ============================================================================================

#[test]
fn wrong_passphrase_fails_and_changes_nothing() {
    let w = World::passphrase("right one");
    w.save(ALICE);
    for args in [
        &["list"][..],
        &["get", "--user", "alice@example.com"],
        &["purge", "--yes"],
    ] {
        w.tv(args)
            .env("TOKENVAULT_PASSPHRASE", "wrong one")
            .run()
            .exits(4)
            .stderr_has(&["wrong passphrase"])
            .no_stdout()
            .leaks_none(&["wrong one", "right one"]);
    }
    assert_eq!(w.list().len(), 1);
}

#[test]
fn missing_store_says_to_run_init() {
    let w = World::empty();
    let cases: [&[&str]; 9] = [
        &["list"],
        &["get", "x"],
        &["delete", "x"],
        &["purge", "--yes"],
        &["prune", "--expired"],
        &["verify"],
        &["rotate"],
        &["export", "--format", "json", "--plaintext"],
        &["migrate", "--to", "file:other.tv"],
    ];
    for args in cases {
        w.tv(args)
            .env("TOKENVAULT_KEY", raw_key(1))
            .env("TOKENVAULT_PASSPHRASE", "p")
            .run()
            .exits(3)
            .stderr_has(&["no store at", &w.store(), "`tokenvault init`"])
            .no_stdout();
    }
    w.tv(&["save"])
        .stdin(ALICE)
        .env("TOKENVAULT_KEY", raw_key(1))
        .run()
        .exits(3)
        .stderr_has(&["`tokenvault init`"]);
    assert!(
        !w.path("t.db").exists(),
        "a command created the missing store"
    );
    assert!(!w.path("other.tv").exists());
    let file = format!("file:{}", w.path("f.tv").display());
    w.tv(&["list", "--store", &file])
        .run()
        .exits(3)
        .stderr_has(&["no store at", "`tokenvault init`"]);
}

/// The suite's children have no controlling terminal: `/dev/tty` cannot be opened.
#[test]
fn children_have_no_terminal() {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", "exec 3<>/dev/tty"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    new_session(&mut cmd);
    let status = cmd.status().expect("sh");
    assert!(!status.success(), "a child opened /dev/tty");
}

#[test]
fn no_passphrase_and_no_terminal_is_a_clear_error() {
    let w = World::passphrase("pp");
    let mut w2 = World::empty();
    w2.set("TOKENVAULT_STORE", w.store());
    let expect = |out: &Out| {
        out.exits(4)
            .stderr_has(&["TOKENVAULT_PASSPHRASE", "--passphrase-file", "terminal"])
            .no_stdout();
    };
    expect(&w2.tv(&["list"]).run());
    // stdin a pipe (not a terminal) changes nothing.
    expect(&w2.tv(&["save"]).stdin(ALICE).run());
    // init: no file is created when the passphrase cannot be had.
    let mut w3 = World::empty();
    w3.unset("TOKENVAULT_PASSPHRASE");
    expect(&w3.tv(&["init"]).run());
    assert!(!w3.path("t.db").exists());
    // passwd without a new passphrase: names its variable.
    w.tv(&["passwd"])
        .run()
        .exits(4)
        .stderr_has(&["TOKENVAULT_NEW_PASSPHRASE", "terminal"]);
}

/// `passwd` without a new passphrase should point at `--new-passphrase-file`, its own option;
/// `--passphrase-file` gives the *current* passphrase.
#[test]
fn passwd_without_new_passphrase_names_its_option() {
    let w = World::passphrase("pp");
    w.tv(&["passwd"]).run().exits(4).stderr_has(&[
        "TOKENVAULT_NEW_PASSPHRASE",
        "--new-passphrase-file",
        "terminal",
    ]);
}

// ============================================================================================
// export / import
// ============================================================================================

const ODD: &str = r#"{"user_name":"Zoë Müller-Łukasiewicz","client_id":"1000.ODD","client_secret":"cs, \"quoted\"\nnew line\ttab","refresh_token":"rt-ODD-ünï-€","expiry_time":"1","redirect_url":"https://x.example/cb?a=1,b=2"}"#;
const ACCESS_ONLY: &str = r#"{"access_token":"at-ONLY-c0ffee"}"#;

#[test]
fn export_refuses_without_plaintext() {
    let w = World::raw();
    w.save(ALICE);
    let out_file = w.path("dump.json");
    w.tv(&[
        "export",
        "--format",
        "json",
        "--out",
        out_file.to_str().unwrap(),
    ])
    .run()
    .exits(2)
    .stderr_has(&["--plaintext"])
    .no_stdout();
    assert!(
        !out_file.exists(),
        "export wrote a file without --plaintext"
    );
    w.tv(&["export", "--format", "zoho-csv"])
        .run()
        .exits(2)
        .no_stdout()
        .leaks_none(&ALICE_SECRETS);
    w.tv(&["export", "--plaintext"]).run().exits(2);
}

#[test]
fn export_to_file_is_0600_and_never_overwrites_without_force() {
    let w = World::raw();
    let ids = w.save(&format!("[{ALICE},{BOB}]"));
    let path = w.path("dump.json");
    let p = path.to_str().unwrap();
    let out = w
        .tv(&["export", "--format", "json", "--plaintext", "--out", p])
        .run();
    out.ok()
        .no_stdout()
        .stderr_has(&["exported 2 token(s)"])
        .leaks_none(&ALICE_SECRETS);
    assert_eq!(mode(&path), 0o600);
    let Value::Array(mut exported) = read_json(&path) else {
        panic!("export is not an array")
    };
    exported.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let mut want = vec![with_id(ALICE, &ids[0]), with_id(BOB, &ids[1])];
    want.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    assert_eq!(exported, want);

    // An existing file: refused without --force, untouched.
    fs::write(&path, "precious").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    w.tv(&["export", "--format", "json", "--plaintext", "--out", p])
        .run()
        .exits(6)
        .stderr_has(&["exists", "--force"])
        .no_stdout();
    assert_eq!(fs::read_to_string(&path).unwrap(), "precious");
    // --force overwrites, and the file ends up 0600 whatever it was.
    w.tv(&[
        "export",
        "--format",
        "zoho-csv",
        "--plaintext",
        "--out",
        p,
        "--force",
    ])
    .run()
    .ok();
    assert_eq!(mode(&path), 0o600);
    let csv = fs::read_to_string(&path).unwrap();
    assert!(csv.starts_with(
        "id,user_name,client_id,client_secret,refresh_token,access_token,grant_token,expiry_time,redirect_uri,api_domain\n"
    ));
    assert_eq!(csv.lines().count(), 3);
}

#[test]
fn export_json_reimports_byte_for_byte() {
    let a = World::raw();
    let ids = a.save(&format!("[{ALICE},{BOB},{ODD},{ACCESS_ONLY}]"));
    let before: Vec<String> = ids
        .iter()
        .map(|id| a.tv(&["get", id]).run().ok().stdout.clone())
        .collect();
    // To stdout, then into a fresh store under another key.
    let dump = a.tv(&["export", "--format", "json", "--plaintext"]).run();
    dump.ok().stderr_has(&["exported 4 token(s) in plaintext"]);
    let file = a.path("dump.json");
    fs::write(&file, &dump.stdout).unwrap();

    let mut b = World::empty();
    b.set("TOKENVAULT_KEY", raw_key(7));
    b.tv(&["init", "--key", "env"]).run().ok();
    b.tv(&["import", "--format", "json", file.to_str().unwrap()])
        .run()
        .ok()
        .stderr_has(&["read 4, inserted 4, updated 0, refused 0"]);
    for (id, want) in ids.iter().zip(&before) {
        let got = b.tv(&["get", id]).run();
        assert_eq!(
            &got.ok().stdout,
            want,
            "record {id} changed in the round trip"
        );
    }
    assert_eq!(a.list(), b.list());
    // Importing the same export again updates, never duplicates.
    b.tv(&["import", "--format", "json", file.to_str().unwrap()])
        .run()
        .ok()
        .stderr_has(&["read 4, inserted 0, updated 4, refused 0"]);
    assert_eq!(b.list().len(), 4);
}

#[test]
fn export_zoho_csv_reimports_byte_for_byte() {
    let a = World::raw();
    let ids = a.save(&format!("[{ALICE},{BOB},{ODD},{ACCESS_ONLY}]"));
    let file = a.path("dump.csv");
    a.tv(&[
        "export",
        "--format",
        "zoho-csv",
        "--plaintext",
        "--out",
        file.to_str().unwrap(),
    ])
    .run()
    .ok();
    let mut b = World::empty();
    b.set("TOKENVAULT_KEY", raw_key(7));
    b.tv(&["init", "--key", "env"]).run().ok();
    b.tv(&["import", "--format", "zoho-csv", file.to_str().unwrap()])
        .run()
        .ok()
        .stderr_has(&["read 4, inserted 4, updated 0, refused 0"]);
    for id in &ids {
        assert_eq!(
            a.tv(&["get", id]).run().ok().stdout,
            b.tv(&["get", id]).run().ok().stdout,
            "record {id}"
        );
    }
}

/// One fixture of `tests/fixtures/zoho/`: import it, check every expected token byte for byte
/// (absent fields absent), the refused rows, the summary, and a re-import.
fn check_fixture(file: &str, format: &str) {
    let stem = file.rsplit_once('.').unwrap().0;
    let source = fixture(file);
    let expected = read_json(&fixture(&format!("{stem}.expected.json")));
    let expected = expected.as_array().expect("expected array");
    let refused_path = fixture(&format!("{stem}.refused.json"));
    let refused: Vec<u64> = if refused_path.exists() {
        read_json(&refused_path)
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["record"].as_u64().expect("record number"))
            .collect()
    } else {
        Vec::new()
    };
    let secrets: Vec<String> = expected.iter().flat_map(secrets_of).collect();
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let read = expected.len() + refused.len();
    let status = if refused.is_empty() { 0 } else { 1 };

    let w = World::raw();
    let src = source.to_str().unwrap();
    let out = w.tv(&["import", "--format", format, src]).run();
    out.exits(status).no_stdout().stderr_leaks_none(&secrets);
    // On a pipe, stderr holds the refused rows and the summary: no progress bar.
    let mut want_stderr: Vec<String> = refused
        .iter()
        .map(|row| format!("row {row} refused: "))
        .collect();
    want_stderr.push(format!(
        "read {read}, inserted {}, updated 0, refused {}",
        expected.len(),
        refused.len()
    ));
    let got_stderr: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        got_stderr.len(),
        want_stderr.len(),
        "{file}: {}",
        out.stderr
    );
    for (got, want) in got_stderr.iter().zip(&want_stderr) {
        assert!(
            got.starts_with(want.as_str()),
            "{file}: {got:?} is not {want:?}…"
        );
    }
    for want in expected {
        let id = want["id"].as_str().expect("fixture id");
        let got = w.tv(&["get", id]).run();
        assert_eq!(got.ok().json(), *want, "{file}: record {id}");
    }
    assert_eq!(w.list().len(), expected.len(), "{file}: record count");
    // No leak through list either.
    w.tv(&["list"]).run().ok().leaks_none(&secrets);

    // Re-import: every row updates, nothing duplicates. --json: the summary on stdout.
    let again = w.tv(&["import", "--json", "--format", format, src]).run();
    again.exits(status).leaks_none(&secrets);
    let summary = again.json();
    assert_eq!(summary["read"], read as u64);
    assert_eq!(summary["inserted"], 0);
    assert_eq!(summary["updated"], expected.len() as u64);
    let refused_rows: Vec<u64> = summary["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["row"].as_u64().unwrap())
        .collect();
    assert_eq!(refused_rows, refused);
    assert_eq!(
        w.list().len(),
        expected.len(),
        "{file}: re-import duplicated"
    );
    for want in expected {
        let id = want["id"].as_str().unwrap();
        assert_eq!(w.get(id), *want, "{file}: record {id} after re-import");
    }
}

#[test]
fn fixture_python_filestore() {
    check_fixture("python-filestore.csv", "zoho-csv");
}

#[test]
fn fixture_java_filestore() {
    check_fixture("java-filestore.csv", "zoho-csv");
}

#[test]
fn fixture_node_filestore() {
    check_fixture("node-filestore.csv", "zoho-csv");
}

#[test]
fn fixture_legacy_9_columns() {
    check_fixture("legacy-9col.csv", "zoho-csv");
}

#[test]
fn fixture_too_many_columns() {
    check_fixture("too-many-columns.csv", "zoho-csv");
}

#[test]
fn fixture_zoho_sqlite() {
    check_fixture("zoho-sqlite.db", "zoho-sqlite");
}

/// The Node SDK never quotes: rows split by a `,` or newline in a value are refused by row
/// number, the well-formed rows import (`frank`). `erin`'s row is checked below.
#[test]
fn fixture_node_filestore_unsafe_rows() {
    let w = World::raw();
    let out = w
        .tv(&[
            "import",
            "--format",
            "zoho-csv",
            fixture("node-filestore-unsafe.csv").to_str().unwrap(),
        ])
        .run();
    out.exits(1)
        .no_stdout()
        .stderr_has(&["row 1 refused", "row 2 refused", "row 3 refused"]);
    // Values of the refused rows stay out of stderr.
    out.stderr_leaks_none(&[
        "1000.refresh.carol",
        "1000.refresh.dave",
        "line1",
        "line2",
        "1000.CLIENT.CAROL",
    ]);
    let expected = read_json(&fixture("node-filestore-unsafe.expected.json"));
    let frank = expected
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["user_name"] == "frank@example.com")
        .expect("frank in the sidecar");
    assert_eq!(w.get("4"), *frank);
}

/// `erin`'s client secret is the literal text `"quoted"secret` (Node writes quotes raw). The
/// header cannot tell Node from Java; the fixture README asks an importer that cannot tell
/// to refuse the row rather than guess. Importing `quotedsecret` silently corrupts it.
#[test]
fn fixture_node_filestore_unsafe_leading_quote_is_not_corrupted() {
    let w = World::raw();
    let out = w
        .tv(&[
            "import",
            "--format",
            "zoho-csv",
            fixture("node-filestore-unsafe.csv").to_str().unwrap(),
        ])
        .run();
    out.exits(1);
    let expected = read_json(&fixture("node-filestore-unsafe.expected.json"));
    let erin = expected
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["user_name"] == "erin@example.com")
        .expect("erin in the sidecar")
        .clone();
    let got = w.tv(&["get", "3"]).run();
    if got.code() == 0 {
        assert_eq!(got.json(), erin, "erin imported with a changed secret");
    } else {
        out.stderr_has(&["row 4 refused"]);
    }
}

#[test]
fn import_bad_header_fails_whole_file() {
    let w = World::raw();
    let out = w
        .tv(&[
            "import",
            "--format",
            "zoho-csv",
            fixture("bad-header.csv").to_str().unwrap(),
        ])
        .run();
    out.exits(2)
        .no_stdout()
        .stderr_has(&["header", "column 2"])
        .leaks_none(&[
            "alicesecret",
            "1000.refresh.alice",
            "1000.access.alice",
            "bobsecret",
        ]);
    assert!(w.list().is_empty(), "rows of a bad file were imported");
}

#[test]
fn import_malformed_json_fails_whole_file() {
    let w = World::raw();
    w.tv(&[
        "import",
        "--format",
        "json",
        fixture("malformed.json").to_str().unwrap(),
    ])
    .run()
    .exits(2)
    .no_stdout()
    .stderr_has(&["malformed.json", "not valid JSON"])
    .leaks_none(&["1000.refresh.al"]);
    assert!(w.list().is_empty());
}

#[test]
fn import_input_errors() {
    let w = World::raw();
    let missing = w.path("missing.csv");
    w.tv(&["import", "--format", "zoho-csv", missing.to_str().unwrap()])
        .run()
        .exits(2)
        .stderr_has(&["missing.csv"]);
    w.tv(&[
        "import",
        "--format",
        "zoho-sqlite",
        missing.to_str().unwrap(),
    ])
    .run()
    .exits(2)
    .stderr_has(&["missing.csv"]);
    // A CSV given as SQLite, and as JSON.
    let csv = fixture("python-filestore.csv");
    let secrets = [
        "1000.8c1f0e4a.refresh-alice",
        "1000.d4e5f6.access-alice-v2",
        "bobsecret",
    ];
    w.tv(&["import", "--format", "zoho-sqlite", csv.to_str().unwrap()])
        .run()
        .exits(2)
        .leaks_none(&secrets);
    w.tv(&["import", "--format", "json", csv.to_str().unwrap()])
        .run()
        .exits(2)
        .leaks_none(&secrets);
    // A SQLite file given as CSV.
    w.tv(&[
        "import",
        "--format",
        "zoho-csv",
        fixture("zoho-sqlite.db").to_str().unwrap(),
    ])
    .run()
    .exits(2)
    .leaks_none(&["1000.8c1f0e4a.refresh-alice", "x'); DROP TABLE"]);
    w.tv(&["import", "--format", "xml", csv.to_str().unwrap()])
        .run()
        .exits(2);
    w.tv(&["import", csv.to_str().unwrap()]).run().exits(2);
    assert!(w.list().is_empty());
}

#[test]
fn import_inline_csv_variants() {
    let w = World::raw();
    // RFC 4180 quoting, CRLF, an empty field, the Java/Node header (redirect_url).
    let java = "id,user_name,client_id,client_secret,refresh_token,access_token,grant_token,expiry_time,redirect_url,api_domain\r\n\
                7,u7@example.com,1000.U7,\"a,b \"\"c\"\"\r\nd\",rt-U7,,,,https://r.example/cb,\r\n";
    let file = w.path("java.csv");
    fs::write(&file, java).unwrap();
    w.tv(&["import", "--format", "zoho-csv", file.to_str().unwrap()])
        .run()
        .ok()
        .stderr_has(&["read 1, inserted 1, updated 0, refused 0"]);
    assert_eq!(
        w.get("7"),
        json!({"id": "7", "user_name": "u7@example.com", "client_id": "1000.U7",
               "client_secret": "a,b \"c\"\r\nd", "refresh_token": "rt-U7",
               "redirect_url": "https://r.example/cb"})
    );
    // A bad expiry and a conflicting user name: refused by row number, without values.
    let bad = "id,user_name,client_id,client_secret,refresh_token,access_token,grant_token,expiry_time,redirect_uri,api_domain\n\
               8,u8@example.com,,cs-U8-SECRET,rt-U8,,,12:34,,\n\
               9,u7@example.com,,cs-U9-SECRET,rt-U9,,,,,\n\
               10,,,,,,,,,\n\
               11,u11@example.com,,,rt-U11,,,,,\n";
    let file = w.path("bad.csv");
    fs::write(&file, bad).unwrap();
    w.tv(&["import", "--format", "zoho-csv", file.to_str().unwrap()])
        .run()
        .exits(1)
        .stderr_has(&[
            "row 1 refused",
            "expiry_time",
            "row 2 refused",
            "row 3 refused",
            "read 4, inserted 1, updated 0, refused 3",
        ])
        .leaks_none(&["cs-U8-SECRET", "rt-U8", "cs-U9-SECRET", "rt-U9", "12:34"]);
    assert_eq!(w.get("11")["refresh_token"], "rt-U11");
    // A file without a header line (the first row is data): refused whole, no value quoted.
    let headless = "rt-FIRST-CELL,u@example.com,1000.X,cs-HEADLESS,rt-HEADLESS,,,,,\n";
    let file = w.path("headless.csv");
    fs::write(&file, headless).unwrap();
    w.tv(&["import", "--format", "zoho-csv", file.to_str().unwrap()])
        .run()
        .exits(2)
        .stderr_has(&["header"])
        .leaks_none(&["cs-HEADLESS", "rt-HEADLESS"]);
    // An empty file.
    let file = w.path("empty.csv");
    fs::write(&file, "").unwrap();
    w.tv(&["import", "--format", "zoho-csv", file.to_str().unwrap()])
        .run()
        .exits(2)
        .stderr_has(&["header"]);
    assert_eq!(w.list().len(), 2);
}

// ============================================================================================
// passwd, rotate, verify, migrate
// ============================================================================================

#[test]
fn passwd_from_env_and_from_file() {
    let w = World::passphrase("old pass");
    let ids = w.save(&format!("[{ALICE},{BOB}]"));
    let before = w.tv(&["get", &ids[0]]).run().ok().stdout.clone();
    w.tv(&["passwd"])
        .env("TOKENVAULT_NEW_PASSPHRASE", "new pass")
        .run()
        .ok()
        .stdout_has(&["passphrase changed"])
        .leaks_none(&["old pass", "new pass"]);
    w.tv(&["list"])
        .run()
        .exits(4)
        .stderr_has(&["wrong passphrase"]);
    let after = w
        .tv(&["get", &ids[0]])
        .env("TOKENVAULT_PASSPHRASE", "new pass")
        .run();
    assert_eq!(after.ok().stdout, before);
    // --new-passphrase-file, opening with the current one from --passphrase-file.
    let current = w.path("current.txt");
    let next = w.path("next.txt");
    support::write_private(&current, "new pass\n");
    support::write_private(&next, "third pass\n");
    w.tv(&[
        "passwd",
        "--passphrase-file",
        current.to_str().unwrap(),
        "--new-passphrase-file",
        next.to_str().unwrap(),
    ])
    .env_remove("TOKENVAULT_PASSPHRASE")
    .run()
    .ok();
    w.tv(&["list"])
        .env("TOKENVAULT_PASSPHRASE", "new pass")
        .run()
        .exits(4)
        .stderr_has(&["wrong passphrase"]);
    let last = w
        .tv(&["get", &ids[0]])
        .env("TOKENVAULT_PASSPHRASE", "third pass")
        .run();
    assert_eq!(last.ok().stdout, before);
    // An empty new passphrase is refused.
    w.tv(&["passwd"])
        .env("TOKENVAULT_PASSPHRASE", "third pass")
        .env("TOKENVAULT_NEW_PASSPHRASE", "")
        .run()
        .exits(4)
        .stderr_has(&["empty passphrase"]);
}

#[test]
fn rotate_reseals_and_verify_counts() {
    let w = World::raw();
    let ids = w.save(&format!("[{ALICE},{BOB},{ODD},{ACCESS_ONLY}]"));
    let before: Vec<String> = ids
        .iter()
        .map(|id| w.tv(&["get", id]).run().ok().stdout.clone())
        .collect();
    let key_id = |out: &Out| -> u64 {
        let text = out.stdout.trim();
        assert!(text.starts_with("rotated to data key "), "{text}");
        assert!(text.ends_with(": 4 record(s) re-sealed"), "{text}");
        text["rotated to data key ".len()..]
            .split(':')
            .next()
            .unwrap()
            .parse()
            .expect("key id")
    };
    let first = key_id(w.tv(&["rotate"]).run().ok());
    let second = key_id(w.tv(&["rotate"]).run().ok());
    assert_ne!(first, second, "rotate kept the data key");
    for (id, want) in ids.iter().zip(&before) {
        assert_eq!(&w.tv(&["get", id]).run().ok().stdout, want);
    }
    let out = w.tv(&["verify"]).run();
    assert_eq!(
        out.ok().stdout,
        "4 record(s) ok, 0 failed, record set as last written\n"
    );
    let out = w.tv(&["verify", "--json"]).run();
    assert_eq!(
        out.ok().json(),
        json!({"ok": 4, "failed": [], "record_set": "intact", "findings": [], "accepted": null})
    );
    // An empty store verifies and rotates too.
    let e = World::raw();
    assert_eq!(
        e.tv(&["verify"]).run().ok().stdout,
        "0 record(s) ok, 0 failed, record set as last written\n"
    );
    e.tv(&["rotate"])
        .run()
        .ok()
        .stdout_has(&["0 record(s) re-sealed"]);
}

/// Flips the last byte (in the GCM tag) of record `id`'s sealed bytes in a SQLite store.
fn damage_record(db: &std::path::Path, id: &str) {
    let conn = rusqlite::Connection::open(db).expect("open the store database");
    let mut sealed: Vec<u8> = conn
        .query_row(
            "SELECT sealed FROM tokenvault_records WHERE id = ?1",
            [id],
            |row| row.get(0),
        )
        .expect("the record");
    *sealed.last_mut().unwrap() ^= 0x01;
    conn.execute(
        "UPDATE tokenvault_records SET sealed = ?1 WHERE id = ?2",
        rusqlite::params![sealed, id],
    )
    .expect("update");
}

#[test]
fn verify_reports_damaged_records() {
    let w = World::raw();
    let ids = w.save(&format!("[{ALICE},{BOB},{ODD}]"));
    damage_record(&w.path("t.db"), &ids[1]);
    let out = w.tv(&["verify"]).run();
    out.exits(1)
        .stdout_has(&[&format!("FAILED {}: ", ids[1]), "2 record(s) ok, 1 failed"])
        .leaks_none(&BOB_SECRETS);
    assert!(!out.stdout.contains(&format!("FAILED {}", ids[0])));
    let out = w.tv(&["verify", "--json"]).run();
    let report = out.exits(1).json();
    assert_eq!(report["ok"], 2);
    let failed = report["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["id"], ids[1].as_str());
    assert!(failed[0]["error"].as_str().unwrap().contains("integrity"));
    // The damaged record is refused (5, integrity), the others still open.
    w.tv(&["get", &ids[1]])
        .run()
        .exits(5)
        .stderr_has(&["integrity"])
        .no_stdout()
        .leaks_none(&BOB_SECRETS);
    assert_eq!(w.get(&ids[0]), with_id(ALICE, &ids[0]));
}

#[test]
fn migrate_copies_every_record() {
    let w = World::raw();
    let ids = w.save(&format!("[{ALICE},{BOB},{ODD}]"));
    let dest = w.path("moved/m.tv");
    let uri = format!("file:{}", dest.display());
    w.tv(&["migrate", "--to", &uri])
        .run()
        .ok()
        .stdout_has(&[&format!("migrated 3 token(s) to {uri}")])
        .leaks_none(&ALICE_SECRETS);
    assert_eq!(mode(&dest), 0o600);
    let listed = w.tv(&["list", "--json", "--store", &uri]).run();
    let mut moved = listed.ok().json().as_array().unwrap().clone();
    moved.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    assert_eq!(moved, w.list());
    for id in &ids {
        assert_eq!(
            w.tv(&["get", id, "--store", &uri]).run().ok().stdout,
            w.tv(&["get", id]).run().ok().stdout
        );
    }
    // The source is untouched; the destination is never overwritten.
    assert_eq!(w.list().len(), 3);
    w.tv(&["migrate", "--to", &uri])
        .run()
        .exits(6)
        .stderr_has(&["already exists"]);
    // And to SQLite.
    let sq = format!("sqlite:{}", w.path("m.db").display());
    w.tv(&["migrate", "--to", &sq]).run().ok();
    assert_eq!(
        w.tv(&["list", "--json", "--store", &sq])
            .run()
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len(),
        3
    );
    w.tv(&["migrate", "--to", "nowhere"]).run().exits(2);
}

// ============================================================================================
// process behaviour
// ============================================================================================

#[test]
fn broken_pipe_is_not_an_error() {
    let w = World::raw();
    let many: Vec<Value> = (0..1500)
        .map(|i| {
            json!({"user_name": format!("user{i:04}@example.com"), "refresh_token": format!("rt-{i}"),
                   "client_id": "1000.CLIENTCLIENTCLIENT", "api_domain": "https://www.zohoapis.com"})
        })
        .collect();
    let file = w.path("many.json");
    fs::write(&file, serde_json::to_string(&many).unwrap()).unwrap();
    w.tv(&["import", "--format", "json", file.to_str().unwrap()])
        .run()
        .ok();
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["export", "--format", "json", "--plaintext"],
    ] {
        let (mut child, what) = w.tv(args).spawn();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).expect("first line");
        assert!(!line.is_empty(), "{what}: no output");
        drop(stdout); // the reader goes away early, like `| head -1`
        let status = support::wait_within(&mut child, Duration::from_secs(60), &what);
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert_eq!(status.code(), Some(0), "{what}: {status}\nstderr: {stderr}");
        assert!(
            !stderr.contains("panicked")
                && !stderr.contains("Broken pipe")
                && !stderr.contains("I/O error"),
            "{what}: stderr {stderr}"
        );
    }
}

#[test]
fn help_of_every_command_has_an_example() {
    let w = World::empty();
    let commands = [
        "init", "save", "get", "find", "list", "delete", "purge", "prune", "import", "export",
        "passwd", "rotate", "verify", "migrate",
    ];
    let top = w.tv(&["--help"]).run();
    top.ok().stdout_has(&["Example"]);
    for command in commands {
        top.stdout_has(&[command]);
        let out = w.tv(&[command, "--help"]).run();
        out.ok().stdout_has(&["Example", "Usage:"]);
        let out = w.tv(&["help", command]).run();
        out.ok().stdout_has(&["Example"]);
    }
    w.tv(&["--version"]).run().ok().stdout_has(&["tokenvault"]);
    w.tv(&["frobnicate"]).run().exits(2);
    w.tv(&[]).run().exits(2);
    w.tv(&["list", "--no-such-flag"]).run().exits(2);
}

/// Reads the soft and hard "Max core file size" of a process.
fn core_limit(pid: u32) -> Option<(String, String)> {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))?;
    let mut parts = line["Max core file size".len()..].split_whitespace();
    Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
}

/// While the binary waits (here: opening `--passphrase-file FIFO`, which blocks until a writer
/// comes), its core limit is 0/0, although it was started with a non-zero one, and it is not
/// dumpable: /proc/PID then belongs to root although the process runs as another user
/// (nobody, when the suite runs as root).
#[test]
fn core_dumps_are_disabled() {
    let w = World::empty();
    // A FIFO that any user may open, in a directory any user may enter.
    fs::set_permissions(w.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let fifo = w.path("passphrase.fifo");
    let c_fifo = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o666) }, 0, "mkfifo");
    fs::set_permissions(&fifo, fs::Permissions::from_mode(0o666)).unwrap();
    // SAFETY: geteuid cannot fail.
    let running_as_root = unsafe { libc::geteuid() } == 0;
    let spawn = |as_nobody: bool| {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .args([
                "--store",
                &format!("sqlite:{}", w.path("x.db").display()),
                "--passphrase-file",
                fifo.to_str().unwrap(),
                "init",
            ])
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if as_nobody {
            cmd.uid(65534).gid(65534);
        }
        // SAFETY: getrlimit/setrlimit are async-signal-safe. Start with a non-zero core
        // limit, so that a 0 seen later is the binary's doing.
        unsafe {
            cmd.pre_exec(|| {
                let mut lim: libc::rlimit = std::mem::zeroed();
                libc::getrlimit(libc::RLIMIT_CORE, &mut lim);
                let want = lim.rlim_max.min(1 << 20);
                lim.rlim_cur = want;
                lim.rlim_max = want;
                libc::setrlimit(libc::RLIMIT_CORE, &lim);
                Ok(())
            });
        }
        cmd.spawn()
    };
    let (mut child, other_user) = match spawn(running_as_root) {
        Ok(child) => (child, running_as_root),
        Err(e) if running_as_root => {
            eprintln!("cannot run as nobody ({e}); checking the core limit only");
            (spawn(false).expect("spawn"), false)
        }
        Err(e) => panic!("spawn: {e}"),
    };
    let pid = child.id();
    let limit = poll(Duration::from_secs(10), || {
        core_limit(pid).filter(|(soft, hard)| soft == "0" && hard == "0")
    });
    let owner = poll(Duration::from_secs(5), || {
        fs::metadata(format!("/proc/{pid}/status"))
            .ok()
            .filter(|m| m.uid() == 0)
    });
    let alive = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(alive, "the binary exited instead of waiting on the FIFO");
    assert!(
        limit.is_some(),
        "core limit is {:?}, not 0/0",
        core_limit(pid)
    );
    if other_user || !running_as_root {
        assert!(
            owner.is_some(),
            "/proc/{pid} is not root's: the process is dumpable"
        );
    }
}

// ============================================================================================
// the terminal
// ============================================================================================

fn pty_command(w: &World, args: &[&str]) -> Command {
    let mut cmd = w.tv(args).cmd;
    cmd.env("TERM", "dumb");
    cmd
}

#[test]
fn init_prompts_twice_without_echo() {
    let w = World::empty();
    let secret = "pty-Secret-Phrase-7781";
    let mut term = Pty::spawn(pty_command(&w, &["init"]));
    term.expect("New passphrase:");
    // While it waits at the prompt: no core dumps.
    assert_eq!(core_limit(term.child.id()), Some(("0".into(), "0".into())));
    term.wait_echo_off();
    term.type_line(secret);
    term.expect("Repeat:");
    term.wait_echo_off();
    term.type_line(secret);
    let status = term.wait();
    let screen = term.screen();
    assert!(status.success(), "{status}; the terminal shows:\n{screen}");
    assert!(screen.contains("created store"), "{screen}");
    assert!(
        !screen.contains(secret),
        "the passphrase was echoed:\n{screen}"
    );
    // What was typed is the passphrase.
    w.tv(&["list"])
        .env("TOKENVAULT_PASSPHRASE", secret)
        .run()
        .ok();
}

#[test]
fn init_prompt_mismatch_fails_and_creates_nothing() {
    let w = World::empty();
    let mut term = Pty::spawn(pty_command(&w, &["init"]));
    term.expect("New passphrase:");
    term.wait_echo_off();
    term.type_line("first-Typed-1111");
    term.expect("Repeat:");
    term.wait_echo_off();
    term.type_line("second-Typed-2222");
    let status = term.wait();
    let screen = term.screen();
    assert_eq!(status.code(), Some(4), "the terminal shows:\n{screen}");
    assert!(screen.contains("differ"), "{screen}");
    assert!(!screen.contains("first-Typed-1111") && !screen.contains("second-Typed-2222"));
    assert!(
        !w.path("t.db").exists(),
        "a failed prompt left a store behind"
    );
}

#[test]
fn open_prompts_for_the_passphrase_on_the_terminal() {
    let mut w = World::passphrase("pty-Open-Phrase-4242");
    w.save(ALICE);
    w.unset("TOKENVAULT_PASSPHRASE");
    // The right passphrase: the record is printed.
    let mut term = Pty::spawn(pty_command(
        &w,
        &["get", "--user", "alice@example.com", "--field", "user_name"],
    ));
    term.expect("Passphrase:");
    term.wait_echo_off();
    term.type_line("pty-Open-Phrase-4242");
    let status = term.wait();
    let screen = term.screen();
    assert!(status.success(), "{screen}");
    assert!(screen.contains("alice@example.com"), "{screen}");
    assert!(
        !screen.contains("pty-Open-Phrase-4242"),
        "echoed:\n{screen}"
    );
    // A wrong one, then the right one: a second try, as sudo gives.
    let mut term = Pty::spawn(pty_command(&w, &["list"]));
    term.expect("Passphrase:");
    term.wait_echo_off();
    term.type_line("pty-Wrong-Phrase");
    term.expect("wrong passphrase, try again");
    term.expect("Passphrase:");
    term.wait_echo_off();
    term.type_line("pty-Open-Phrase-4242");
    let status = term.wait();
    let screen = term.screen();
    assert!(status.success(), "{screen}");
    assert!(screen.contains("alice@example.com"), "{screen}");
    // Three wrong ones: exit 4.
    let mut term = Pty::spawn(pty_command(&w, &["list"]));
    for _ in 0..3 {
        term.expect("Passphrase:");
        term.wait_echo_off();
        term.type_line("pty-Wrong-Phrase");
    }
    let status = term.wait();
    let screen = term.screen();
    assert_eq!(status.code(), Some(4), "{screen}");
    assert!(screen.contains("wrong passphrase or key"), "{screen}");
    assert!(!screen.contains("pty-Wrong-Phrase"), "echoed:\n{screen}");
}

// ============================================================================================
// a whole session
// ============================================================================================

/// Whether `needle` occurs in `haystack`.
fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn full_session_leaves_no_plaintext_on_disk() {
    let mut w = World::empty();
    let store_dir = w.path("store");
    w.set(
        "TOKENVAULT_STORE",
        format!("sqlite:{}", store_dir.join("t.db").display()),
    );
    w.set("TOKENVAULT_PASSPHRASE", "session-Pass-One");
    w.tv(&["init"]).run().ok();
    assert_eq!(mode(&store_dir), 0o700);

    let expected = read_json(&fixture("python-filestore.expected.json"));
    let expected = expected.as_array().unwrap();
    w.tv(&[
        "import",
        "--format",
        "zoho-csv",
        fixture("python-filestore.csv").to_str().unwrap(),
    ])
    .run()
    .ok();
    let extra = format!(
        r#"{{"user_name":"extra@example.com","client_id":"1000.EXTRA","client_secret":"cs-EXTRA-SESSION","refresh_token":"rt-EXTRA-SESSION","access_token":"at-EXTRA-SESSION","expiry_time":"{}"}}"#,
        now_ms() + 3_600_000
    );
    let extra_id = w.save(&extra).remove(0);

    w.tv(&["rotate"])
        .run()
        .ok()
        .stdout_has(&[&format!("{} record(s) re-sealed", expected.len() + 1)]);
    w.tv(&["passwd"])
        .env("TOKENVAULT_NEW_PASSPHRASE", "session-Pass-Two")
        .run()
        .ok();
    w.tv(&["list"])
        .run()
        .exits(4)
        .stderr_has(&["wrong passphrase"]);
    w.set("TOKENVAULT_PASSPHRASE", "session-Pass-Two");

    let now = now_ms();
    let is_expired = |t: &Value| {
        t["expiry_time"]
            .as_str()
            .is_some_and(|e| e.parse::<u64>().unwrap() <= now)
    };
    let pruned = expected.iter().filter(|t| is_expired(t)).count();
    let out = w.tv(&["prune", "--expired"]).run();
    assert_eq!(
        out.ok().stdout,
        format!("pruned {pruned} expired token(s)\n")
    );
    let kept = expected.len() + 1 - pruned;
    let out = w.tv(&["verify"]).run();
    assert_eq!(
        out.ok().stdout,
        format!("{kept} record(s) ok, 0 failed, record set as last written\n")
    );
    for t in expected.iter().filter(|t| !is_expired(t)) {
        assert_eq!(w.get(t["id"].as_str().unwrap()), *t);
    }
    assert_eq!(w.get(&extra_id)["access_token"], "at-EXTRA-SESSION");

    // Migrated elsewhere, the records open with the same passphrase.
    let dest = format!("file:{}", w.path("elsewhere/m.tv").display());
    w.tv(&["migrate", "--to", &dest]).run().ok();
    let moved = w.tv(&["list", "--json", "--store", &dest]).run();
    assert_eq!(moved.ok().json().as_array().unwrap().len(), kept);

    // The bytes on disk: no secret, no passphrase, no user name, in any file of either store.
    let mut needles: Vec<String> = expected.iter().flat_map(secrets_of).collect();
    needles.extend(
        expected
            .iter()
            .filter_map(|t| t["user_name"].as_str().map(str::to_owned)),
    );
    needles.extend(
        [
            "cs-EXTRA-SESSION",
            "rt-EXTRA-SESSION",
            "at-EXTRA-SESSION",
            "extra@example.com",
            "session-Pass-One",
            "session-Pass-Two",
        ]
        .map(String::from),
    );
    let mut files = Vec::new();
    for dir in [store_dir, w.path("elsewhere")] {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            assert_eq!(mode(&path), 0o600, "{}", path.display());
            files.push(path);
        }
    }
    assert!(files.iter().any(|p| p.ends_with("t.db")));
    for path in &files {
        let bytes = fs::read(path).unwrap();
        for needle in &needles {
            assert!(
                !contains_bytes(&bytes, needle.as_bytes()),
                "{} holds {needle:?} in the clear",
                path.display()
            );
        }
    }
}
