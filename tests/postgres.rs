//! PostgreSQL-specific tests, against the server `.ci/services/postgres.sh start` runs
//! (`TOKENVAULT_TEST_POSTGRES`, and for the restart and TLS cases `TOKENVAULT_TEST_POSTGRES_CTL`
//! and `TOKENVAULT_TEST_POSTGRES_TLS`):
//! - 8 processes saving into one store over overlapping users: no duplicate, no lost update,
//!   no error reaching a caller;
//! - the server restarted (`pg_ctl restart -m fast`) in the middle of a stream of saves and
//!   reads: every acknowledged save is there with its last acknowledged value, calls during the
//!   outage fail with a clear `Unavailable` error, and the first call after it succeeds;
//! - TLS: a verified connection to the server's throwaway CA works and is encrypted; the OS
//!   roots or a wrong host name are refused; `sslmode=disable` to a non-loopback host is refused
//!   before connecting; bad schema names are refused.
//!
//! Processes re-execute this test binary on the ignored test `child_entry` (as
//! tests/durable.rs does); a child reports on stdout in lines starting `CHILD `. Without
//! `TOKENVAULT_TEST_POSTGRES` the cases print why and pass, unless
//! `TOKENVAULT_REQUIRE_SERVICES=1`, where they fail. With `--nocapture` each prints its timing.

#![cfg(feature = "postgres")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::child::{self, child_lines, describe, var, var_num};
use common::raw_key;
use common::servers::{POSTGRES_VAR, PgSchema, postgres_var, random_hex, with_params};
use tokenvault::backend::{
    Backend, LookupField, LookupTags, POSTGRES_SCHEMA_VERSION, PostgresBackend, StoredRecord, Tag,
};
use tokenvault::{BackendErrorKind, EncryptedStore, Error, OAuthToken, TokenField, TokenStore};

const SERVER_VAR: &str = POSTGRES_VAR;

type Store = EncryptedStore<PostgresBackend>;

/// The restart case takes this for writing; every other case for reading, so that no case
/// sees the server go away under it.
static SERVER: RwLock<()> = RwLock::new(());

/// The value of `var`; `None` (after a note) when unset and not required.
fn service_var(var: &str) -> Option<String> {
    postgres_var(var, "PostgreSQL tests")
}

/// Prints how long a case took when dropped (visible with `--nocapture`).
struct Timer(&'static str, Instant);

impl Drop for Timer {
    fn drop(&mut self) {
        eprintln!("TIMING {}: {:.2?}", self.0, self.1.elapsed());
    }
}

fn by_user(name: &str) -> OAuthToken {
    OAuthToken::new().with_user_name(name)
}

fn field(token: &OAuthToken, which: TokenField) -> String {
    token
        .expose_field(which)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

fn backend_kind(e: &Error) -> Option<BackendErrorKind> {
    match e {
        Error::Backend(b) => Some(b.kind()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

#[test]
#[ignore = "entry point for child processes spawned by the PostgreSQL tests"]
fn child_entry() {
    child::entry(|role| match role {
        "saver" => child_saver(),
        "locker" => child_locker(),
        other => Err(format!("unknown role {other:?}")),
    });
}

const PROC_CHILDREN: usize = 8;
const PROC_SAVES: usize = 150;
const PROC_USERS: usize = 40;
/// Every this many saves, a child also inserts a user of its own.
const PROC_OWN_EVERY: usize = 10;

fn own_user(index: usize, k: usize) -> String {
    format!("pg-own{index}-{k}")
}

/// Child: `SAVES` saves over `USERS` shared users (each followed by a find), and every
/// `PROC_OWN_EVERY` saves an insert of a user of its own; any error fails it. Reports its last
/// write per shared user.
fn child_saver() -> Result<(), String> {
    let index: usize = var_num("TOKENVAULT_CHILD_INDEX");
    let saves: usize = var_num("TOKENVAULT_CHILD_SAVES");
    let users: usize = var_num("TOKENVAULT_CHILD_USERS");
    let backend = PostgresBackend::connect(&var("TOKENVAULT_CHILD_URI"))
        .map_err(|e| format!("connect: {e}"))?;
    let store = Store::open(backend, &raw_key()).map_err(|e| format!("open: {e}"))?;
    let started = Instant::now();
    let mut last: BTreeMap<usize, String> = BTreeMap::new();
    for i in 0..saves {
        let user = (i * 7 + index * 13) % users;
        let name = format!("pg-user{user}");
        let access = format!("a-{index}-{i}");
        let mut token = by_user(&name).with_access_token(&access);
        // This child's first save of a user carries a refresh token and client id; later ones
        // only an access token, so a lost merge would drop them.
        if !last.contains_key(&user) {
            token = token
                .with_refresh_token(format!("r-{user}-{index}"))
                .with_client_id("1000.C");
        }
        store
            .save_token(&mut token)
            .map_err(|e| format!("save {i} of {name}: {e} [{e:?}]"))?;
        last.insert(user, access);
        let found = store
            .find_token(&by_user(&name))
            .map_err(|e| format!("find after save {i}: {e}"))?
            .ok_or_else(|| format!("find after save {i}: {name} not found"))?;
        let refresh = field(&found, TokenField::RefreshToken);
        if found.client_id() != Some("1000.C") || !refresh.starts_with(&format!("r-{user}-")) {
            return Err(format!("find after save {i}: {name} lost merged fields"));
        }
        if i % PROC_OWN_EVERY == PROC_OWN_EVERY - 1 {
            let own = own_user(index, i / PROC_OWN_EVERY);
            let mut token = by_user(&own).with_access_token(format!("{own}-access"));
            store
                .save_token(&mut token)
                .map_err(|e| format!("insert {own}: {e}"))?;
        }
    }
    for (user, access) in &last {
        say!("LAST pg-user{user} {access}");
    }
    say!("DONE {}", started.elapsed().as_millis());
    Ok(())
}

/// 8 processes × 150 saves (each followed by a find) over 40 shared users, plus 15 inserts of
/// their own users each, every process with its own backend (pool) → one record per user, each
/// shared user holding some process's last write for it, no field lost by a merge, no insert
/// lost, and no process saw any error.
#[test]
fn processes() {
    let Some(uri) = service_var(SERVER_VAR) else {
        return;
    };
    let _server = SERVER.read().unwrap_or_else(|e| e.into_inner());
    let _timer = Timer("processes", Instant::now());
    let schema = PgSchema::new(&uri);
    drop(Store::create(schema.backend(""), &raw_key()).expect("create store"));
    let started = Instant::now();
    let outputs = child::run_all((0..PROC_CHILDREN).map(|index| {
        child::command(
            "saver",
            &[
                ("TOKENVAULT_CHILD_URI", schema.store_uri("pool_size=2")),
                ("TOKENVAULT_CHILD_INDEX", index.to_string()),
                ("TOKENVAULT_CHILD_SAVES", PROC_SAVES.to_string()),
                ("TOKENVAULT_CHILD_USERS", PROC_USERS.to_string()),
            ],
        )
    }));
    let elapsed = started.elapsed();

    let mut last_writes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut child_ms = Vec::new();
    for (index, output) in outputs.iter().enumerate() {
        assert!(
            output.status.success(),
            "child {index} failed (any error fails it): {}",
            describe(output)
        );
        let mut reported = 0;
        for line in child_lines(&output.stdout[..]) {
            if let Some(rest) = line.strip_prefix("LAST ") {
                let (user, access) = rest.split_once(' ').expect("LAST <user> <access>");
                last_writes
                    .entry(user.to_owned())
                    .or_default()
                    .insert(access.to_owned());
                reported += 1;
            } else if let Some(ms) = line.strip_prefix("DONE ") {
                child_ms.push(ms.to_owned());
            }
        }
        assert_eq!(
            reported, PROC_USERS,
            "child {index} reports a last write per user"
        );
    }

    let store = Store::open(schema.backend(""), &raw_key()).expect("open store");
    let tokens = store.get_tokens().expect("get_tokens");
    let names: BTreeSet<&str> = tokens
        .iter()
        .map(|t| t.user_name().expect("user name"))
        .collect();
    assert_eq!(names.len(), tokens.len(), "a user has two records");
    let own_per_child = PROC_SAVES / PROC_OWN_EVERY;
    for index in 0..PROC_CHILDREN {
        for k in 0..own_per_child {
            let own = own_user(index, k);
            let found = store
                .find_token(&by_user(&own))
                .unwrap()
                .unwrap_or_else(|| panic!("{own} is lost"));
            assert_eq!(
                field(&found, TokenField::AccessToken),
                format!("{own}-access")
            );
        }
    }
    assert_eq!(
        tokens.len(),
        PROC_USERS + PROC_CHILDREN * own_per_child,
        "one record per user"
    );
    for token in &tokens {
        let name = token.user_name().unwrap();
        let Some(user) = name.strip_prefix("pg-user") else {
            continue;
        };
        let access = field(token, TokenField::AccessToken);
        let candidates = &last_writes[name];
        assert!(
            candidates.contains(&access),
            "{name} holds {access}, no process's last write for it ({candidates:?})"
        );
        assert_eq!(
            token.client_id(),
            Some("1000.C"),
            "{name} lost its client id"
        );
        assert!(
            field(token, TokenField::RefreshToken).starts_with(&format!("r-{user}-")),
            "{name} lost its refresh token"
        );
    }
    let report = store.verify().expect("verify");
    assert!(report.failed.is_empty(), "verify: {:?}", report.failed);
    let saves = PROC_CHILDREN * (PROC_SAVES + own_per_child);
    eprintln!(
        "processes: {saves} saves and {} finds in {elapsed:.2?} ({:.2} ms per save); children \
         took {child_ms:?} ms",
        PROC_CHILDREN * PROC_SAVES,
        elapsed.as_secs_f64() * 1000.0 / saves as f64
    );
}

// ---------------------------------------------------------------------------------------------
// Server restart in the middle of a save stream
// ---------------------------------------------------------------------------------------------

const RESTART_USERS: usize = 10;
/// Saves before the restart, and successful saves required after it.
const RESTART_BEFORE: usize = 100;
const RESTART_AFTER: usize = 100;
/// Bound on the whole stream.
const RESTART_DEADLINE: Duration = Duration::from_secs(90);

/// One failed call of the stream.
#[derive(Debug)]
struct Failed {
    attempt: usize,
    kind: Option<BackendErrorKind>,
    message: String,
}

impl Failed {
    /// The backend said the transaction may have committed (connection lost at COMMIT).
    fn outcome_unknown(&self) -> bool {
        self.message.contains("may or may not have been applied")
    }
}

fn restart_user(i: usize) -> String {
    format!("restart-user{}", i % RESTART_USERS)
}

/// A thread saves in a loop (and another reads) while the server is restarted with
/// `pg_ctl restart -m fast`. Afterwards: every user holds its last acknowledged value, or the
/// value of a later save whose outcome the backend reported as unknown (never one reported as
/// failed before COMMIT); every failure is a clear `Unavailable` (or `Io`); and the first save
/// and read started after the restart completed succeed (the pool recovers by itself).
#[test]
fn server_restart_mid_stream() {
    let Some(uri) = service_var(SERVER_VAR) else {
        return;
    };
    let Some(ctl) = service_var("TOKENVAULT_TEST_POSTGRES_CTL") else {
        return;
    };
    let _server = SERVER.write().unwrap_or_else(|e| e.into_inner());
    let _timer = Timer("server_restart_mid_stream", Instant::now());
    let schema = PgSchema::new(&uri);
    let store = Store::create(schema.backend("pool_size=4"), &raw_key()).expect("create store");
    let restarted = AtomicBool::new(false);
    let saves_done = AtomicUsize::new(0);
    let saver_done = AtomicBool::new(false);
    let started = Instant::now();

    struct Stream {
        acked: BTreeMap<String, usize>,
        failures: Vec<Failed>,
        /// Attempts started after the restart completed, and how many of them failed.
        after: usize,
        failed_after: usize,
        first_after: Option<Result<(), String>>,
    }

    let (saver, reader, restart_took) = std::thread::scope(|scope| {
        let saver = scope.spawn(|| {
            let mut s = Stream {
                acked: BTreeMap::new(),
                failures: Vec::new(),
                after: 0,
                failed_after: 0,
                first_after: None,
            };
            let mut ok_after = 0;
            let mut i = 0;
            while ok_after < RESTART_AFTER && started.elapsed() < RESTART_DEADLINE {
                let after = restarted.load(Ordering::SeqCst);
                let name = restart_user(i);
                let mut token = by_user(&name).with_access_token(format!("v{i}"));
                let result = store.save_token(&mut token);
                if after {
                    s.after += 1;
                    if s.first_after.is_none() {
                        s.first_after = Some(result.as_ref().map(drop).map_err(|e| e.to_string()));
                    }
                }
                match result {
                    Ok(()) => {
                        s.acked.insert(name, i);
                        saves_done.fetch_add(1, Ordering::SeqCst);
                        if after {
                            ok_after += 1;
                        }
                    }
                    Err(e) => {
                        if after {
                            s.failed_after += 1;
                        }
                        s.failures.push(Failed {
                            attempt: i,
                            kind: backend_kind(&e),
                            message: e.to_string(),
                        });
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                i += 1;
            }
            saver_done.store(true, Ordering::SeqCst);
            s
        });
        let reader = scope.spawn(|| {
            let mut failures = Vec::new();
            let (mut after, mut failed_after, mut first_after) = (0, 0, None);
            let mut i = 0;
            while !saver_done.load(Ordering::SeqCst) {
                let is_after = restarted.load(Ordering::SeqCst);
                let result = store.find_token(&by_user(&restart_user(i)));
                if is_after {
                    after += 1;
                    if first_after.is_none() {
                        first_after = Some(result.as_ref().map(drop).map_err(|e| e.to_string()));
                    }
                }
                if let Err(e) = result {
                    failed_after += usize::from(is_after);
                    failures.push(Failed {
                        attempt: i,
                        kind: backend_kind(&e),
                        message: e.to_string(),
                    });
                    std::thread::sleep(Duration::from_millis(20));
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            (failures, after, failed_after, first_after)
        });
        while saves_done.load(Ordering::SeqCst) < RESTART_BEFORE {
            assert!(started.elapsed() < RESTART_DEADLINE, "saves too slow");
            std::thread::sleep(Duration::from_millis(5));
        }
        let t = Instant::now();
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("{ctl} -w -t 60 -m fast restart"))
            .stdout(Stdio::null())
            .status()
            .expect("run pg_ctl restart");
        assert!(status.success(), "pg_ctl restart failed: {status}");
        let took = t.elapsed();
        restarted.store(true, Ordering::SeqCst);
        let saver = saver.join().expect("saver thread");
        let reader = reader.join().expect("reader thread");
        (saver, reader, took)
    });

    let (read_failures, reads_after, reads_failed_after, first_read_after) = reader;
    let summary = |failures: &[Failed]| {
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for f in failures {
            *kinds.entry(format!("{:?}", f.kind)).or_default() += 1;
        }
        let unknown = failures.iter().filter(|f| f.outcome_unknown()).count();
        format!(
            "{} failed {kinds:?}, {unknown} of unknown outcome",
            failures.len()
        )
    };
    eprintln!(
        "restart took {restart_took:.2?}; saves: {} acknowledged users, {}; reads: {}",
        saver.acked.len(),
        summary(&saver.failures),
        summary(&read_failures)
    );
    if let Some(f) = saver.failures.first() {
        eprintln!("first failed save: {}", f.message);
    }
    if let Some(f) = read_failures.first() {
        eprintln!("first failed read: {}", f.message);
    }
    for f in saver.failures.iter().chain(&read_failures) {
        assert!(
            matches!(
                f.kind,
                Some(BackendErrorKind::Unavailable | BackendErrorKind::Io)
            ),
            "call {} failed with an unclear error: {:?} {}",
            f.attempt,
            f.kind,
            f.message
        );
        assert!(
            f.message.contains("PostgreSQL"),
            "the message names the server: {}",
            f.message
        );
    }
    assert!(
        saver.after >= RESTART_AFTER,
        "the stream did not recover within {RESTART_DEADLINE:?}: {} attempts after the restart, \
         {} failed",
        saver.after,
        saver.failed_after
    );
    assert_eq!(
        saver.first_after,
        Some(Ok(())),
        "the first save after the restart fails: the pool did not recover"
    );
    assert_eq!(saver.failed_after, 0, "saves failed after the restart");
    if reads_after > 0 {
        assert_eq!(
            first_read_after,
            Some(Ok(())),
            "the first read after the restart fails"
        );
        assert_eq!(reads_failed_after, 0, "reads failed after the restart");
    }

    // Every acknowledged save is there with its last acknowledged value, or a later attempt
    // whose outcome was reported unknown.
    let reopened = Store::open(schema.backend(""), &raw_key()).expect("reopen");
    for user in 0..RESTART_USERS {
        let name = restart_user(user);
        let Some(&acked) = saver.acked.get(&name) else {
            continue;
        };
        let found = reopened
            .find_token(&by_user(&name))
            .expect("find")
            .unwrap_or_else(|| panic!("{name} (acknowledged v{acked}) is lost"));
        let value = field(&found, TokenField::AccessToken);
        let stored: usize = value[1..].parse().expect("v<number>");
        if stored != acked {
            let unknown = saver
                .failures
                .iter()
                .find(|f| f.attempt == stored && restart_user(f.attempt) == name);
            assert!(
                stored > acked && unknown.is_some_and(Failed::outcome_unknown),
                "{name} holds v{stored}, but its last acknowledged save was v{acked} and \
                 v{stored} was not reported as of unknown outcome ({unknown:?})"
            );
        }
    }
    let tokens = reopened.get_tokens().expect("get_tokens");
    let names: BTreeSet<&str> = tokens.iter().filter_map(|t| t.user_name()).collect();
    assert_eq!(names.len(), tokens.len(), "a user has two records");
    assert!(tokens.len() <= RESTART_USERS, "{} records", tokens.len());
}

// ---------------------------------------------------------------------------------------------
// TLS and URI checks
// ---------------------------------------------------------------------------------------------

fn refused(uri: &str) -> tokenvault::BackendError {
    match PostgresBackend::connect(uri) {
        Ok(_) => panic!("accepted: {uri}"),
        Err(e) => e,
    }
}

/// `sslmode=disable` with a host that is not loopback is refused before any connection is
/// made: the host name's connection would go to a local listener (`hostaddr=127.0.0.1`),
/// which must see nothing. Unknown or downgrading `sslmode`s are refused too.
#[test]
fn plaintext_to_a_remote_host_is_refused_before_connecting() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().unwrap().port();
    for host in ["db.example.com", "10.1.2.3", "[2001:db8::1]"] {
        let uri =
            format!("postgres://tv:pw@{host}:{port}/tokenvault?sslmode=disable&hostaddr=127.0.0.1");
        let e = refused(&uri);
        assert_eq!(e.kind(), BackendErrorKind::NotSupported, "{host}: {e}");
        let message = e.to_string();
        assert!(
            message.contains("sslmode=disable") && message.contains("loopback"),
            "{message}"
        );
        assert!(
            !message.contains("pw@"),
            "the message shows the URI: {message}"
        );
    }
    // A loopback host name with a remote address is not loopback either.
    let e = refused(&format!(
        "postgres://tv:pw@localhost:{port}/tokenvault?sslmode=disable&hostaddr=10.1.2.3"
    ));
    assert_eq!(e.kind(), BackendErrorKind::NotSupported, "{e}");
    for mode in ["prefer", "allow", "verify-ca", "bogus"] {
        let e = refused(&format!(
            "postgres://tv:pw@127.0.0.1:{port}/tokenvault?sslmode={mode}"
        ));
        assert_eq!(e.kind(), BackendErrorKind::NotSupported, "{mode}: {e}");
    }
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("a refused URI connected anyway (from {peer})"),
        Err(e) => panic!("accept: {e}"),
    }
}

/// Schema names other than `[a-z_][a-z0-9_]{0,62}` are refused before connecting; bad pool
/// sizes too.
#[test]
fn bad_schema_names_are_refused() {
    for bad in [
        "Public",
        "a-b",
        "x%22%3B%20DROP%20TABLE%20t%3B",
        "x\";DROP",
        "1abc",
        "",
        &"a".repeat(64),
    ] {
        let e = refused(&format!(
            "postgres://tv:pw@127.0.0.1:1/db?sslmode=disable&schema={bad}"
        ));
        assert_eq!(e.kind(), BackendErrorKind::Other, "{bad}: {e}");
        assert!(e.to_string().contains("schema must match"), "{bad}: {e}");
    }
    for bad in ["0", "65", "-1", "many"] {
        let e = refused(&format!(
            "postgres://tv:pw@127.0.0.1:1/db?sslmode=disable&pool_size={bad}"
        ));
        assert!(e.to_string().contains("pool_size"), "{bad}: {e}");
    }
    let e = refused("mysql://tv:pw@127.0.0.1/db");
    assert!(e.to_string().contains("not a PostgreSQL URI"), "{e}");
}

/// A store over TLS verified against the server's throwaway CA works, and the server reports
/// the backend's connections as encrypted; the OS roots (which do not hold that CA) and a host
/// name the certificate does not name are refused.
#[test]
fn tls_is_verified() {
    let Some(tls_uri) = service_var("TOKENVAULT_TEST_POSTGRES_TLS") else {
        return;
    };
    let Some(plain_uri) = service_var(SERVER_VAR) else {
        return;
    };
    let _server = SERVER.read().unwrap_or_else(|e| e.into_inner());
    let schema = PgSchema::new(&plain_uri);
    let app = format!("tv_tls_{}", random_hex());
    let uri = with_params(
        &tls_uri,
        &format!("schema={}&application_name={app}", schema.name),
    );
    let store = Store::create(
        PostgresBackend::connect(&uri).unwrap_or_else(|e| panic!("TLS connect: {e}")),
        &raw_key(),
    )
    .expect("create store over TLS");
    let mut token = by_user("tls@example.com").with_access_token("a-tls");
    store.save_token(&mut token).expect("save over TLS");
    assert!(
        store
            .find_token(&by_user("tls@example.com"))
            .expect("find over TLS")
            .is_some()
    );
    let mut admin = postgres::Client::connect(&plain_uri, postgres::NoTls).expect("admin");
    let rows = admin
        .query(
            "SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.application_name = $1",
            &[&app],
        )
        .expect("pg_stat_ssl");
    assert!(!rows.is_empty(), "the backend's connections are not listed");
    for row in &rows {
        let ssl: bool = row.get(0);
        let version: Option<String> = row.get(1);
        assert!(ssl, "a backend connection is not encrypted");
        eprintln!("backend connection: TLS {}", version.unwrap_or_default());
    }
    drop(store);

    // The OS roots do not hold the throwaway CA: refused, with a certificate error.
    let without_ca: String = tls_uri
        .split_once('?')
        .map(|(base, _)| base.to_owned())
        .unwrap_or(tls_uri.clone());
    match PostgresBackend::connect(&with_params(
        &without_ca,
        &format!("schema={}", schema.name),
    )) {
        Ok(_) => panic!("a server certificate from an unknown CA was accepted"),
        Err(e) => {
            let message = e.to_string();
            eprintln!("unknown CA: {message}");
            assert_eq!(e.kind(), BackendErrorKind::Other, "{message}");
            assert!(
                message.contains("certificate") || message.contains("CA certificates"),
                "{message}"
            );
        }
    }
    // A host name the certificate does not name (connecting to the same server).
    let port = tls_uri
        .split_once("@localhost:")
        .and_then(|(_, rest)| rest.split('/').next())
        .expect("TLS URI names localhost:PORT");
    let wrong_name = tls_uri.replacen(
        &format!("@localhost:{port}/"),
        &format!("@wrong-name.test:{port}/"),
        1,
    );
    match PostgresBackend::connect(&with_params(&wrong_name, "hostaddr=127.0.0.1")) {
        Ok(_) => panic!("a certificate for another host name was accepted"),
        Err(e) => {
            let message = e.to_string();
            eprintln!("wrong host name: {message}");
            assert_eq!(e.kind(), BackendErrorKind::Other, "{message}");
            assert!(message.contains("certificate"), "{message}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Backend-level behaviour: constraint errors, aborted transactions, schema checks
// ---------------------------------------------------------------------------------------------

fn record(id: &str, user_tag: u8, sealed: &[u8]) -> StoredRecord {
    let mut tags = LookupTags::default();
    tags.0[LookupField::UserName.index()] = Some(Tag([user_tag; 32]));
    StoredRecord {
        id: id.to_owned(),
        tags,
        sealed: sealed.to_vec(),
    }
}

/// A tag uniqueness violation is `Conflict` and rolls the whole transaction back; a step that
/// swallows a failed statement and returns `Ok` does not get a success (PostgreSQL aborted the
/// transaction); a NUL in an id is refused; nothing of any of these is written.
#[test]
fn constraint_errors_roll_back() {
    let Some(uri) = service_var(SERVER_VAR) else {
        return;
    };
    let _server = SERVER.read().unwrap_or_else(|e| e.into_inner());
    let schema = PgSchema::new(&uri);
    let backend = schema.backend("");
    backend
        .transact(&mut |tx| Ok(tx.put(record("a", 1, b"sealed-a"))?))
        .expect("put a");

    let err = backend
        .transact(&mut |tx| {
            tx.put(record("b", 2, b"sealed-b"))?;
            tx.put(record("c", 1, b"sealed-c"))?; // a's user tag
            Ok(())
        })
        .expect_err("duplicate tag");
    assert_eq!(
        backend_kind(&err),
        Some(BackendErrorKind::Conflict),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains("23505"), "{message}");
    assert!(
        !message.contains("0101"),
        "the message shows the tag: {message}"
    );

    let mut seen = None;
    let result = backend.transact(&mut |tx| {
        tx.put(record("d", 3, b"sealed-d"))?;
        seen = Some(tx.put(record("e", 1, b"sealed-e")).map_err(|e| e.kind()));
        Ok(()) // swallowed
    });
    assert_eq!(seen, Some(Err(BackendErrorKind::Conflict)));
    assert!(
        result.is_err(),
        "a transaction aborted by the server reported success"
    );

    let err = backend
        .transact(&mut |tx| Ok(tx.put(record("nul\0id", 4, b"x"))?))
        .expect_err("NUL in an id");
    assert_eq!(
        backend_kind(&err),
        Some(BackendErrorKind::NotSupported),
        "{err}"
    );
    assert!(backend.get("nul\0id").unwrap().is_none());

    let ids: Vec<String> = backend.list().unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["a"], "a failed transaction left writes behind");
    assert_eq!(backend.get("a").unwrap().unwrap().sealed, b"sealed-a");
}

/// 8 threads connecting at once to a store that does not exist yet all succeed (schema
/// creation is serialized); a newer schema version is refused, and so is a schema with only one
/// of the two tables.
#[test]
fn schema_creation_and_versions() {
    let Some(uri) = service_var(SERVER_VAR) else {
        return;
    };
    let _server = SERVER.read().unwrap_or_else(|e| e.into_inner());
    let schema = PgSchema::new(&uri);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| PostgresBackend::connect(&schema.store_uri("pool_size=1"))))
            .collect();
        for h in handles {
            h.join()
                .expect("thread")
                .unwrap_or_else(|e| panic!("concurrent first connect: {e}"));
        }
    });
    let mut admin = postgres::Client::connect(&uri, postgres::NoTls).expect("admin");
    let version: Vec<u8> = admin
        .query_one(
            &format!(
                "SELECT value FROM \"{}\".tokenvault_meta WHERE key = 'schema_version'",
                schema.name
            ),
            &[],
        )
        .expect("schema_version")
        .get(0);
    assert_eq!(version, POSTGRES_SCHEMA_VERSION.to_string().as_bytes());
    admin
        .execute(
            &format!(
                "UPDATE \"{}\".tokenvault_meta SET value = $1 WHERE key = 'schema_version'",
                schema.name
            ),
            &[&(POSTGRES_SCHEMA_VERSION + 1).to_string().into_bytes()],
        )
        .expect("bump version");
    let e = refused(&schema.store_uri(""));
    assert_eq!(e.kind(), BackendErrorKind::NotSupported, "{e}");
    assert!(e.to_string().contains("newer"), "{e}");

    admin
        .batch_execute(&format!(
            "DROP TABLE \"{}\".tokenvault_records",
            schema.name
        ))
        .expect("drop a table");
    let e = refused(&schema.store_uri(""));
    assert_eq!(e.kind(), BackendErrorKind::Corrupt, "{e}");
}

// ---------------------------------------------------------------------------------------------
// Cross-process locks (Backend::lock)
// ---------------------------------------------------------------------------------------------

/// Child: takes the lock `TOKENVAULT_CHILD_LOCK`, says so, and waits to be killed.
fn child_locker() -> Result<(), String> {
    let backend = PostgresBackend::connect(&var("TOKENVAULT_CHILD_URI"))
        .map_err(|e| format!("connect: {e}"))?;
    let _held = backend
        .lock(&var("TOKENVAULT_CHILD_LOCK"), Duration::from_secs(10))
        .map_err(|e| format!("lock: {e}"))?;
    say!("LOCKED");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_secs(60));
    Err("not killed".into())
}

/// A lock excludes other handles of the same store (Busy after the timeout), not other names
/// or other stores; dropping it frees it; a holder killed with SIGKILL frees it too.
#[test]
fn locks_exclude_and_die_with_their_holder() {
    let Some(uri) = service_var(SERVER_VAR) else {
        return;
    };
    let _server = SERVER.read().unwrap_or_else(|e| e.into_inner());
    let schema = PgSchema::new(&uri);
    let other = PgSchema::new(&uri);
    let (a, b, c) = (schema.backend(""), schema.backend(""), other.backend(""));
    let held = a
        .lock("refresh:r1", Duration::from_secs(1))
        .expect("lock r1");
    let t = Instant::now();
    let e = b
        .lock("refresh:r1", Duration::from_millis(300))
        .err()
        .expect("r1 is held");
    assert_eq!(e.kind(), BackendErrorKind::Busy, "{e}");
    assert!(t.elapsed() >= Duration::from_millis(250), "gave up early");
    drop(
        b.lock("refresh:r2", Duration::from_secs(1))
            .expect("another name"),
    );
    drop(
        c.lock("refresh:r1", Duration::from_secs(1))
            .expect("another store"),
    );
    drop(held);
    drop(
        b.lock("refresh:r1", Duration::from_secs(1))
            .expect("freed by drop"),
    );

    let mut child = child::command(
        "locker",
        &[
            ("TOKENVAULT_CHILD_URI", schema.store_uri("")),
            ("TOKENVAULT_CHILD_LOCK", "refresh:r1".to_owned()),
        ],
    )
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    if let Err(seen) = child::wait_for(stdout, "LOCKED") {
        panic!("child exited before locking: {seen}");
    }
    assert!(
        b.lock("refresh:r1", Duration::from_millis(200)).is_err(),
        "the child holds it"
    );
    child.kill().expect("SIGKILL the holder");
    child.wait().expect("reap");
    let t = Instant::now();
    drop(
        b.lock("refresh:r1", Duration::from_secs(10))
            .expect("freed by the holder's death"),
    );
    eprintln!("lock free {:.2?} after its holder was killed", t.elapsed());
}
