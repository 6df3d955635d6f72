//! `rekey`, `verify` against tampering, and `--witness`, through the real binary (issue 15).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::support::{World, raw_key, wait_within};

/// Record `id`'s row in the SQLite store `db`: sealed bytes and its four tags.
type Row = (Vec<u8>, [Option<Vec<u8>>; 4]);

fn row_of(db: &std::path::Path, id: &str) -> Row {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT sealed, user_name_tag, access_token_tag, refresh_token_tag, grant_token_tag \
             FROM tokenvault_records WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?])),
        )
        .unwrap()
}

/// Puts an old copy of a row back, as restoring it from a backup would.
fn put_row(db: &std::path::Path, id: &str, (sealed, tags): &Row) {
    rusqlite::Connection::open(db)
        .unwrap()
        .execute(
            "UPDATE tokenvault_records SET sealed = ?2, user_name_tag = ?3, \
             access_token_tag = ?4, refresh_token_tag = ?5, grant_token_tag = ?6 WHERE id = ?1",
            rusqlite::params![id, sealed, tags[0], tags[1], tags[2], tags[3]],
        )
        .unwrap();
}

#[test]
fn verify_names_a_rolled_back_and_a_deleted_record_and_exits_1() {
    let w = World::raw();
    let ann = w.save(r#"{"user_name":"ann","refresh_token":"rt-ann-1"}"#)[0].clone();
    let bob = w.save(r#"{"user_name":"bob","refresh_token":"rt-bob-1"}"#)[0].clone();
    let db = w.path("t.db");
    let first = row_of(&db, &ann);
    w.save(&format!(r#"{{"id":"{ann}","refresh_token":"rt-ann-2"}}"#));
    w.tv(&["verify"])
        .run()
        .ok()
        .stdout_has(&["2 record(s) ok, 0 failed, record set as last written"]);

    put_row(&db, &ann, &first);
    let out = w.tv(&["verify"]).run();
    out.exits(1).stdout_has(&[
        "2 record(s) ok, 0 failed",
        &format!("CHANGED record \"{ann}\" was rolled back: generation 1 is there, the store last saved generation 2"),
        "record set CHANGED outside the store",
    ]);
    out.leaks_none(&["rt-ann-1", "rt-ann-2", "rt-bob-1"]);
    let json = w.tv(&["verify", "--json"]).run();
    let report = json.exits(1).json();
    assert_eq!(report["record_set"], "changed");
    assert_eq!(report["findings"][0]["kind"], "rolled back");
    assert_eq!(report["findings"][0]["id"], ann.as_str());

    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM tokenvault_records WHERE id = ?1", [&bob])
        .unwrap();
    w.tv(&["verify"])
        .run()
        .exits(1)
        .stdout_has(&["CHANGED 1 fewer record(s) than the last write left"]);
    // Once dealt with, the records as they are are accepted, and verify is clean again.
    w.tv(&["verify", "--accept"])
        .run()
        .ok()
        .stdout_has(&["accepted the 1 record(s) as they are now"]);
    w.tv(&["verify"])
        .run()
        .ok()
        .stdout_has(&["1 record(s) ok, 0 failed, record set as last written"]);
}

#[test]
fn rekey_to_a_new_raw_key_revokes_the_old_one() {
    let w = World::raw();
    for user in ["ann", "bob"] {
        w.save(&format!(
            r#"{{"user_name":"{user}","refresh_token":"rt-{user}"}}"#
        ));
    }
    // A missing new key is caught before anything is unlocked or written.
    w.tv(&["rekey", "--key", "env"])
        .run()
        .exits(4)
        .stderr_has(&["TOKENVAULT_NEW_KEY"]);
    let out = w
        .tv(&["rekey", "--key", "env", "--json"])
        .env("TOKENVAULT_NEW_KEY", raw_key(2))
        .run();
    let report = out.ok().json();
    assert_eq!(report["resealed"], 2);
    assert_eq!(report["slots"], 1);
    out.leaks_none(&["rt-ann", "rt-bob", &raw_key(1), &raw_key(2)]);
    w.tv(&["list"])
        .run()
        .exits(4)
        .stderr_has(&["wrong passphrase or key"]);
    let new = w
        .tv(&["list", "--json"])
        .env("TOKENVAULT_KEY", raw_key(2))
        .run();
    assert_eq!(new.ok().json().as_array().unwrap().len(), 2);
    w.tv(&["verify"])
        .env("TOKENVAULT_KEY", raw_key(2))
        .run()
        .ok();
}

#[test]
fn rekey_to_a_new_passphrase() {
    let w = World::passphrase("first passphrase here");
    w.save(r#"{"user_name":"ann","refresh_token":"rt-ann"}"#);
    w.tv(&["rekey"])
        .env("TOKENVAULT_NEW_PASSPHRASE", "second passphrase here")
        .run()
        .ok()
        .stdout_has(&["rekeyed", "1 record(s) re-sealed"]);
    w.tv(&["list"]).run().exits(4);
    w.tv(&["get", "--user", "ann", "--field", "refresh_token"])
        .env("TOKENVAULT_PASSPHRASE", "second passphrase here")
        .run()
        .ok()
        .stdout_has(&["rt-ann"]);
}

/// A pseudo-random number below `n` (no RNG crate in the tests; the clock will do).
fn jitter(n: u64) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    u64::from(nanos.wrapping_mul(2_654_435_761)) % n
}

#[test]
fn a_rekey_killed_at_any_point_completes_on_the_next_run() {
    const RECORDS: usize = 600;
    let w = World::raw();
    let batch: Vec<String> = (0..RECORDS)
        .map(|i| format!(r#"{{"user_name":"u{i}","refresh_token":"rt-{i}"}}"#))
        .collect();
    w.save(&format!("[{}]", batch.join(",")));
    // How long a whole rekey takes here, to kill inside it.
    let started = std::time::Instant::now();
    w.tv(&["rekey", "--key", "env"])
        .env("TOKENVAULT_NEW_KEY", raw_key(2))
        .run()
        .ok();
    let whole = started.elapsed().as_micros() as u64;
    let mut key = 2;
    for round in 0..6 {
        let next = key + 1;
        let (mut child, what) = w
            .tv(&["rekey", "--key", "env"])
            .env("TOKENVAULT_KEY", raw_key(key))
            .env("TOKENVAULT_NEW_KEY", raw_key(next))
            .spawn();
        std::thread::sleep(Duration::from_micros(jitter(whole + 1)));
        // SIGKILL: no destructor, no rollback by the process itself.
        let _ = child.kill();
        wait_within(&mut child, Duration::from_secs(30), &what);
        // Either the old key or the new one opens it, with every record.
        let opens = |k: u8| {
            w.tv(&["list", "--json"])
                .env("TOKENVAULT_KEY", raw_key(k))
                .run()
        };
        let (old, new) = (opens(key), opens(next));
        let (current, out) = match (old.code(), new.code()) {
            (0, 4) => (key, old),
            (4, 0) => (next, new),
            other => panic!("round {round}: old/new key exit codes {other:?}"),
        };
        assert_eq!(
            out.json().as_array().unwrap().len(),
            RECORDS,
            "round {round}"
        );
        if current == key {
            // The next run does the whole rekey.
            w.tv(&["rekey", "--key", "env"])
                .env("TOKENVAULT_KEY", raw_key(key))
                .env("TOKENVAULT_NEW_KEY", raw_key(next))
                .run()
                .ok();
        }
        w.tv(&["verify"])
            .env("TOKENVAULT_KEY", raw_key(next))
            .run()
            .ok()
            .stdout_has(&[&format!(
                "{RECORDS} record(s) ok, 0 failed, record set as last written"
            )]);
        key = next;
    }
}

#[test]
fn a_witness_refuses_a_restored_older_copy() {
    let w = World::raw();
    w.save(r#"{"user_name":"ann","refresh_token":"rt-1"}"#);
    let backup = w.path("backup.db");
    std::fs::copy(w.path("t.db"), &backup).unwrap();
    w.tv(&["--witness", "list"]).run().ok();
    w.tv(&["--witness", "save"])
        .stdin(r#"{"user_name":"ann","refresh_token":"rt-2"}"#)
        .run()
        .ok();
    let witness = w.path("xdg-data/tokenvault/witness");
    assert_eq!(
        std::fs::read_dir(&witness).unwrap().count(),
        2,
        "a counter and its lock"
    );

    std::fs::copy(&backup, w.path("t.db")).unwrap();
    w.tv(&["--witness", "list"])
        .run()
        .exits(5)
        .stderr_has(&["older than one already seen"]);
    // The witness is what tells: without it the copy opens, as any backup does.
    w.tv(&["list"]).run().ok().stdout_has(&["ann"]);
    // A directory of one's own, from the environment.
    let elsewhere = w.path("elsewhere");
    w.tv(&["list"])
        .env("TOKENVAULT_WITNESS", &elsewhere)
        .run()
        .ok();
    assert!(elsewhere.is_dir());
}
