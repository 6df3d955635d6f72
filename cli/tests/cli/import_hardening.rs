//! `tokenvault import` against hostile input: a Zoho SQLite file whose `oauthtoken` is a view
//! that yields rows without end, or a table too large to hold; files whose header, column
//! names, keys or schema hold secrets (no error may quote them); a file larger than the input
//! bound; and a row that would relabel another user's record.
//!
//! The bounds are spelled out here rather than taken from `tokenvault::import` so that these
//! tests build, and fail, against an importer without them.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use super::support::{Out, Tv, World, wait_within};

/// `tokenvault::import::MAX_ROWS`.
const MAX_ROWS: u64 = 1_000_000;
/// `tokenvault::import::MAX_ROW_BYTES`.
const MAX_ROW_BYTES: usize = 256 * 1024;
/// `tokenvault::import::MAX_INPUT_BYTES`.
const MAX_INPUT_BYTES: u64 = 256 * 1024 * 1024;

/// The address space a bounded command may use: an importer that reads without bound dies
/// here instead of taking the machine's memory.
const ADDRESS_SPACE: u64 = 2 << 30;

/// Every command that reads a hostile file must finish well within this: one that runs until
/// it is killed is a failure, not a hang.
const DEADLINE: Duration = Duration::from_secs(30);

/// Runs `tv` with at most [`DEADLINE`] of time (then it is killed and the test fails) and
/// [`ADDRESS_SPACE`] of memory.
fn run_bounded(mut tv: Tv) -> Out {
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        tv.cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: ADDRESS_SPACE,
                rlim_max: ADDRESS_SPACE,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (mut child, what) = tv.spawn();
    let pipe = |p: Option<Box<dyn std::io::Read + Send>>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = p {
                let _ = p.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = pipe(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = pipe(child.stderr.take().map(|p| Box::new(p) as _));
    let status = wait_within(&mut child, DEADLINE, &what);
    Out {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
        what,
    }
}

/// A SQLite file made by `sql`.
fn sqlite_file(w: &World, name: &str, sql: &str) -> PathBuf {
    let path = w.path(name);
    let conn = rusqlite::Connection::open(&path).expect("create the SQLite file");
    conn.execute_batch(sql).expect("fill the SQLite file");
    path
}

/// The Zoho SQL stores' `oauthtoken` table.
const DDL: &str = "CREATE TABLE oauthtoken (id varchar(10) NOT NULL, user_name varchar(255), \
    client_id varchar(255), client_secret varchar(255), refresh_token varchar(255), \
    access_token varchar(255), grant_token varchar(255), expiry_time varchar(20), \
    redirect_url varchar(255), api_domain varchar(255), primary key (id));";

const CSV_HEADER: &str = "id,user_name,client_id,client_secret,refresh_token,access_token,grant_token,expiry_time,redirect_uri,api_domain\n";

fn import(w: &World, format: &str, file: &Path) -> Out {
    run_bounded(w.tv(&["import", "--format", format, file.to_str().unwrap()]))
}

#[test]
fn import_sqlite_view_without_end_is_refused() {
    let w = World::raw();
    let view = sqlite_file(
        &w,
        "view.db",
        "CREATE VIEW oauthtoken AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) \
         SELECT CAST(n AS TEXT) AS id, 'u' || n AS user_name, 'rt-VIEW-' || n AS refresh_token FROM r;",
    );
    import(&w, "zoho-sqlite", &view)
        .exits(2)
        .no_stdout()
        .stderr_has(&["view.db", "view"])
        .leaks_none(&["rt-VIEW-"]);
    // A virtual table's rows are computed too.
    let virtual_table = sqlite_file(
        &w,
        "virtual.db",
        "CREATE VIRTUAL TABLE oauthtoken USING fts5(id, user_name, refresh_token); \
         INSERT INTO oauthtoken VALUES ('1', 'u1', 'rt-VIRTUAL-1');",
    );
    import(&w, "zoho-sqlite", &virtual_table)
        .exits(2)
        .stderr_has(&["virtual table"])
        .leaks_none(&["rt-VIRTUAL-1"]);
    assert!(w.list().is_empty());
}

#[test]
fn import_sqlite_more_than_max_rows_is_refused_before_saving() {
    let w = World::raw();
    let rows = MAX_ROWS + 1;
    let big = sqlite_file(
        &w,
        "big.db",
        &format!(
            "{DDL} INSERT INTO oauthtoken (id, user_name, refresh_token) \
             WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r LIMIT {rows}) \
             SELECT n, 'u' || n, 'rt-BIG-' || n FROM r;"
        ),
    );
    import(&w, "zoho-sqlite", &big)
        .exits(2)
        .no_stdout()
        .stderr_has(&[&format!("{rows} rows"), "MAX_ROWS"])
        .leaks_none(&["rt-BIG-"]);
    assert!(w.list().is_empty(), "rows of a refused table were saved");
}

#[test]
fn import_sqlite_row_over_the_size_bound_is_refused_while_read() {
    let w = World::raw();
    let file = sqlite_file(
        &w,
        "wide.db",
        &format!(
            "{DDL} INSERT INTO oauthtoken (id, user_name, refresh_token, access_token) VALUES \
             ('1', 'a@example.com', 'rt-A', 'at-WIDE-' || hex(zeroblob({MAX_ROW_BYTES}))), \
             ('2', 'b@example.com', 'rt-B', 'at-B');"
        ),
    );
    import(&w, "zoho-sqlite", &file)
        .exits(1)
        .stderr_has(&[
            "row 1 refused: ",
            "MAX_ROW_BYTES",
            "read 2, inserted 1, updated 0, refused 1",
        ])
        .leaks_none(&["at-WIDE-", "rt-A"]);
    assert_eq!(w.get("2")["access_token"], "at-B");
}

#[test]
fn import_sqlite_errors_quote_nothing_from_the_file() {
    let w = World::raw();
    // A column whose name is a secret (a table made from a headerless CSV, say).
    let named = sqlite_file(
        &w,
        "named.db",
        "CREATE TABLE oauthtoken (id, user_name, \"rt-COLUMN-SECRET\"); \
         INSERT INTO oauthtoken VALUES ('1', 'u', 'x');",
    );
    import(&w, "zoho-sqlite", &named)
        .exits(2)
        .stderr_has(&["column 3"])
        .leaks_none(&["rt-COLUMN-SECRET"]);
    // A corrupt schema: SQLite's own message names the object and quotes its SQL.
    let corrupt = sqlite_file(
        &w,
        "corrupt.db",
        "CREATE TABLE \"rt-SCHEMA-SECRET\" (x); \
         PRAGMA writable_schema = ON; \
         UPDATE sqlite_schema SET sql = 'CREATE TABLE \"rt-SCHEMA-SECRET\" (x, \"cs-SQL-SECRET' \
         WHERE name = 'rt-SCHEMA-SECRET'; \
         PRAGMA writable_schema = OFF;",
    );
    import(&w, "zoho-sqlite", &corrupt)
        .exits(2)
        .stderr_has(&["corrupt.db"])
        .leaks_none(&["rt-SCHEMA-SECRET", "cs-SQL-SECRET"]);
    assert!(w.list().is_empty());
}

#[test]
fn import_csv_without_header_quotes_none_of_its_cells() {
    let w = World::raw();
    let row = "rt-FIRST-CELL,u-HEADLESS@example.com,1000.HEADLESS,cs-HEADLESS,rt-HEADLESS,at-HEADLESS,gt-HEADLESS,1767225600000,https://headless.example/cb,https://www.zohoapis.com\n";
    let file = w.path("headless.csv");
    fs::write(&file, row).unwrap();
    let out = import(&w, "zoho-csv", &file);
    out.exits(2).no_stdout().stderr_has(&["column 1", "header"]);
    let cells: Vec<&str> = row.trim_end().split(',').collect();
    out.leaks_none(&cells);
    assert!(w.list().is_empty());
}

#[test]
fn import_json_unknown_key_is_named_by_position() {
    let w = World::raw();
    let file = w.path("keys.json");
    fs::write(
        &file,
        r#"[{"user_name":"u@example.com","refresh_token":"rt-OK","rt-KEY-SECRET":"cs-VALUE"}]"#,
    )
    .unwrap();
    import(&w, "json", &file)
        .exits(1)
        .stderr_has(&["row 1 refused: ", "key 3"])
        .leaks_none(&["rt-KEY-SECRET", "cs-VALUE", "rt-OK"]);
    assert!(w.list().is_empty());
}

#[test]
fn import_file_over_the_input_bound_is_refused_unread() {
    let w = World::raw();
    let file = w.path("huge.json");
    // Sparse: no disk space, and an importer that reads it first would hold 256 MiB.
    fs::File::create(&file)
        .unwrap()
        .set_len(MAX_INPUT_BYTES + 1)
        .unwrap();
    for format in ["json", "zoho-csv"] {
        import(&w, format, &file)
            .exits(2)
            .no_stdout()
            .stderr_has(&["huge.json", "MAX_INPUT_BYTES"]);
    }
    assert!(w.list().is_empty());
}

#[test]
fn import_row_relabelling_another_users_record_is_refused() {
    let w = World::raw();
    let alice = r#"{"id":"7","user_name":"alice@example.com","client_id":"1000.ALICE","client_secret":"cs-ALICE","refresh_token":"rt-ALICE","access_token":"at-ALICE"}"#;
    assert_eq!(w.save(alice), ["7"]);
    let before = w.get("7");
    let file = w.path("relabel.csv");
    fs::write(
        &file,
        format!(
            "{CSV_HEADER}7,mallory@example.com,1000.MALLORY,cs-MALLORY,rt-MALLORY,at-MALLORY,,,,\n\
             8,bob@example.com,1000.BOB,cs-BOB,rt-BOB,,,,,\n\
             7,alice@example.com,,,,at-ALICE-2,,,,\n"
        ),
    )
    .unwrap();
    import(&w, "zoho-csv", &file)
        .exits(1)
        .stderr_has(&[
            "row 1 refused: id \"7\" belongs to another user",
            "read 3, inserted 1, updated 1, refused 1",
        ])
        .leaks_none(&["mallory", "alice", "cs-MALLORY", "rt-MALLORY", "at-MALLORY"]);
    // Record 7 is Alice's still: only her own row (3) changed it.
    let mut want = before;
    want["access_token"] = "at-ALICE-2".into();
    assert_eq!(w.get("7"), want);
    assert_eq!(w.get("8")["user_name"], "bob@example.com");
    assert_eq!(w.list().len(), 2);
}
