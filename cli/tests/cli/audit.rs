//! `tokenvault audit`, through the real binary (issue 15): every command leaves the entries it
//! should, no secret reaches the log, and each kind of tampering with the SQLite log table is
//! named with exit status 1.

use serde_json::Value;

use super::support::{World, raw_key};

/// `audit show --json`'s entries as "operation record outcome" lines.
fn logged(w: &World) -> Vec<String> {
    let shown = w.tv(&["audit", "show", "--json"]).run().ok().json();
    assert_eq!(shown["intact"], true, "{shown}");
    shown["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e["operation"].as_str().unwrap(),
                e["record"].as_str().unwrap_or("-"),
                e["outcome"].as_str().unwrap()
            )
        })
        .collect()
}

fn sql(w: &World, statement: &str) {
    rusqlite::Connection::open(w.path("t.db"))
        .unwrap()
        .execute_batch(statement)
        .unwrap();
}

const ANN: &str = r#"{"user_name":"ann@example.com","client_id":"1000.CID","client_secret":"cs-ann-secret","refresh_token":"rt-ann-secret","access_token":"at-ann-secret","expiry_time":"1000"}"#;
const BOB: &str = r#"[{"id":"bob","user_name":"bob@example.com","refresh_token":"rt-bob-secret","access_token":"at-bob-secret"}]"#;
const SECRETS: [&str; 7] = [
    "cs-ann-secret",
    "rt-ann-secret",
    "at-ann-secret",
    "rt-bob-secret",
    "at-bob-secret",
    "ann@example.com",
    "bob@example.com",
];

#[test]
fn every_command_leaves_its_entries_and_no_secret() {
    let mut w = World::raw();
    w.tv(&["audit", "verify"])
        .run()
        .ok()
        .stdout_has(&["0 entries, chain intact, ending where the header says; audit trail off"]);
    w.tv(&["audit", "on", "--reads"])
        .run()
        .ok()
        .stdout_has(&["audit trail on: every change and every read is logged"]);
    let ann = w.save(ANN)[0].clone();
    w.tv(&["get", &ann]).run().ok();
    w.tv(&["get", "--user", "ann@example.com"]).run().ok();
    w.tv(&["find"])
        .stdin(r#"{"user_name":"ann@example.com"}"#)
        .run()
        .ok();
    w.tv(&["list"]).run().ok();
    std::fs::write(w.path("bob.json"), BOB).unwrap();
    w.tv(&["import", "--format", "json", "bob.json"]).run().ok();
    w.tv(&[
        "export",
        "--format",
        "json",
        "--plaintext",
        "--out",
        "out.json",
    ])
    .run()
    .ok();
    w.tv(&["rotate"]).run().ok();
    w.tv(&["verify"]).run().ok();
    w.tv(&["slots", "add-passphrase"])
        .env("TOKENVAULT_NEW_PASSPHRASE", "a long enough passphrase")
        .run()
        .ok();
    w.tv(&["slots", "remove", "2"]).run().ok();
    w.tv(&["delete", "nobody"]).run().exits(3);
    w.tv(&["prune", "--expired"]).run().ok();
    w.tv(&["rekey", "--key", "env"])
        .env("TOKENVAULT_NEW_KEY", raw_key(2))
        .run()
        .ok();
    w.set("TOKENVAULT_KEY", raw_key(2));
    w.tv(&["delete", "bob"]).run().ok();
    w.save(ANN);
    w.tv(&["purge", "--yes"]).run().ok();
    w.tv(&["audit", "off"]).run().ok();
    w.tv(&["list"]).run().ok();

    let ops = logged(&w);
    let ann_new = ops
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("save ").and_then(|l| l.strip_suffix(" ok")))
        .unwrap()
        .to_owned();
    let expected = [
        "audit_on - ok".to_owned(),
        format!("save {ann} ok"),
        format!("find_by_id {ann} ok"),
        format!("find {ann} ok"),
        format!("find {ann} ok"),
        "get_all - ok".into(),
        // import looks the id up first
        "find_by_id - not_found".into(),
        "save bob ok".into(),
        "get_all - ok".into(),
        "rotate - ok".into(),
        "rotate - ok".into(),
        "rotate - ok".into(),
        "verify - ok".into(),
        "add_slot - ok".into(),
        "remove_slot - ok".into(),
        // an id that names no record is not logged (it may be a pasted secret)
        "delete - not_found".into(),
        format!("prune {ann} ok"),
        "rekey - ok".into(),
        "delete bob ok".into(),
        format!("save {ann_new} ok"),
        format!("delete_all {ann_new} ok"),
        "audit_off - ok".into(),
    ];
    assert_eq!(ops, expected);

    let shown = w.tv(&["audit", "show"]).run();
    shown.ok().stdout_has(&[
        "rekey",
        "audit trail off",
        "22 entries, chain intact, ending where the header says",
    ]);
    shown.leaks_none(&SECRETS);
    // Nor in the table's raw bytes.
    let raw: Vec<u8> = rusqlite::Connection::open(w.path("t.db"))
        .unwrap()
        .prepare("SELECT entry FROM tokenvault_audit")
        .unwrap()
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .flat_map(Result::unwrap)
        .collect();
    let raw = String::from_utf8_lossy(&raw);
    for secret in SECRETS {
        assert!(!raw.contains(secret), "{secret} is in the audit table");
    }
    let last: Value = w
        .tv(&["audit", "show", "--last", "1", "--json"])
        .run()
        .ok()
        .json();
    let entry = &last["entries"][0];
    assert_eq!(entry["seq"], 22);
    assert_eq!(entry["verified"], true);
    assert!(!entry["user"].as_str().unwrap().is_empty());
    assert!(!entry["host"].as_str().unwrap().is_empty());
}

#[test]
fn passwd_is_logged() {
    let w = World::passphrase("the first passphrase");
    w.tv(&["audit", "on"]).run().ok();
    w.tv(&["passwd"])
        .env("TOKENVAULT_NEW_PASSPHRASE", "the second passphrase")
        .run()
        .ok();
    let w = {
        let mut w = w;
        w.set("TOKENVAULT_PASSPHRASE", "the second passphrase");
        w
    };
    assert_eq!(logged(&w), ["audit_on - ok", "change_passphrase - ok"]);
}

#[test]
fn audit_verify_names_each_tampering_and_exits_1() {
    let w = World::raw();
    w.tv(&["audit", "on"]).run().ok();
    for n in 0..4 {
        w.save(&format!(
            r#"{{"user_name":"u{n}","refresh_token":"rt-{n}"}}"#
        ));
    }
    w.tv(&["audit", "verify"]).run().ok();
    let backup = w.path("backup.db");
    let restore = |w: &World| {
        sql(w, "DELETE FROM tokenvault_audit");
        rusqlite::Connection::open(w.path("t.db"))
            .unwrap()
            .execute_batch(&format!(
                "ATTACH '{}' AS b; INSERT INTO tokenvault_audit SELECT * FROM b.tokenvault_audit; DETACH b;",
                backup.display()
            ))
            .unwrap();
    };
    rusqlite::Connection::open(w.path("t.db"))
        .unwrap()
        .execute("VACUUM INTO ?1", [backup.to_str().unwrap()])
        .unwrap();

    let cases = [
        (
            "DELETE FROM tokenvault_audit WHERE seq = 3",
            "entry 3 was removed",
            "missing",
        ),
        (
            "UPDATE tokenvault_audit SET entry = CAST(substr(entry, 1, 20) || X'00' || substr(entry, 22) AS BLOB) WHERE seq = 2",
            "entry 2 was altered",
            "altered",
        ),
        (
            "UPDATE tokenvault_audit SET entry = 42 WHERE seq = 2",
            "entry 2 cannot be read",
            "unreadable",
        ),
        (
            "UPDATE tokenvault_audit SET seq = 100 WHERE seq = 4; \
             UPDATE tokenvault_audit SET seq = 4 WHERE seq = 5; \
             UPDATE tokenvault_audit SET seq = 5 WHERE seq = 100;",
            "entry 4 is entry 5 moved",
            "out_of_place",
        ),
        (
            "DELETE FROM tokenvault_audit WHERE seq >= 4",
            "the log ends at entry 3 but the store counts 5: its tail was cut",
            "truncated",
        ),
    ];
    for (tamper, message, kind) in cases {
        sql(&w, tamper);
        w.tv(&["audit", "verify"])
            .run()
            .exits(1)
            .stdout_has(&[&format!("PROBLEM {message}"), "changed outside the store"]);
        let report = w.tv(&["audit", "verify", "--json"]).run().exits(1).json();
        assert_eq!(report["intact"], false);
        assert_eq!(report["problems"][0]["problem"], kind, "{report}");
        w.tv(&["audit", "show"]).run().exits(1);
        restore(&w);
        w.tv(&["audit", "verify"]).run().ok();
    }
}

#[test]
fn audit_reset_unblocks_a_store_with_a_planted_entry() {
    let w = World::raw();
    w.tv(&["audit", "on"]).run().ok();
    w.save(r#"{"user_name":"u","refresh_token":"rt-1"}"#);
    // An entry planted where the next write's goes: writes stop, as tampering.
    sql(
        &w,
        "INSERT INTO tokenvault_audit SELECT seq + 1, entry FROM tokenvault_audit WHERE seq = 2",
    );
    w.tv(&["audit", "verify"])
        .run()
        .exits(1)
        .stdout_has(&["PROBLEM entry 3 is beyond the store's count"]);
    w.tv(&["save"])
        .stdin(r#"{"user_name":"v","refresh_token":"rt-2"}"#)
        .run()
        .exits(5)
        .stderr_has(&["the audit log"]);
    w.tv(&["audit", "reset"])
        .run()
        .exits(2)
        .stderr_has(&["--yes"]);
    w.tv(&["audit", "reset", "--yes"])
        .run()
        .ok()
        .stdout_has(&["deleted 3 audit entries"]);
    w.save(r#"{"user_name":"v","refresh_token":"rt-2"}"#);
    let shown = w.tv(&["audit", "show"]).run();
    shown.ok().stdout_has(&[
        "audit_reset",
        "deleted 3 entries; the header counted 2",
        "2 entries, chain intact",
    ]);
}
