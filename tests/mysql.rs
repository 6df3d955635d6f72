//! Tests of the MySQL/MariaDB backend that need a real server (`TOKENVAULT_TEST_MYSQL`, from
//! `.ci/services/mariadb.sh start`) beyond the conformance suite: processes sharing one store,
//! the server restarting in the middle of a stream of saves, TLS, strict identifiers, schema
//! ownership and versions, racing first opens, a deadlock re-running the whole step, named
//! locks (`Backend::lock`), and the Zoho SDK's DBStore table imported byte for byte.
//!
//! Skipping is as in `conformance_mysql.rs`: without the variables a test needs, it fails under
//! `TOKENVAULT_REQUIRE_SERVICES=1` and otherwise returns at once, writing `SKIPPED … did not
//! run` to the real stderr. Each store lives in a fresh database `t_<hex>`, dropped afterwards.
//! The restart test stops the server for everyone, so every test here holds a shared lock on
//! the server and the restart test an exclusive one (the other test binaries run one at a time
//! under `cargo test`). Multi-process cases re-execute this test binary on the ignored test
//! `child_entry` (as tests/durable.rs does). With `--nocapture`, each test prints its duration
//! (`TIMING`).

#![cfg(all(feature = "mysql", feature = "sqlite"))]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use common::child::{self, child_lines, describe, var, var_num};
use common::raw_key;
use common::servers::{
    MYSQL_VAR, MysqlDatabase as Database, admin_conn, mysql_var, parse, with_database,
};
use mysql::prelude::Queryable;
use tokenvault::backend::{Backend, LookupTags, MysqlBackend, SqliteBackend, StoredRecord};
use tokenvault::{
    BackendError, BackendErrorKind, EncryptedStore, Error, OAuthToken, TokenField, TokenStore,
};

// ---------------------------------------------------------------------------------------------
// The server, fresh databases, skipping
// ---------------------------------------------------------------------------------------------

const URI_VAR: &str = MYSQL_VAR;
const TLS_URI_VAR: &str = "TOKENVAULT_TEST_MYSQL_TLS";
const RESTART_VAR: &str = "TOKENVAULT_TEST_MYSQL_RESTART";

/// Held shared by every test that uses the server, exclusively by the restart test.
static SERVER: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    SERVER.read().unwrap_or_else(PoisonError::into_inner)
}

/// The variable's value, or `None` when the test must be skipped (reason printed). Panics
/// when the services are required.
fn service_var(name: &str, test: &str) -> Option<String> {
    mysql_var(name, &format!("mysql::{test}"), "test")
}

/// `uri` with the query parameter `name` set to `value` (or removed, for `None`).
fn with_param(uri: &str, name: &str, value: Option<&str>) -> String {
    let mut url = parse(uri);
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != name)
        .collect();
    url.set_query(None);
    for (k, v) in &pairs {
        url.query_pairs_mut().append_pair(k, v);
    }
    if let Some(value) = value {
        url.query_pairs_mut().append_pair(name, value);
    }
    url.into()
}

type Store = EncryptedStore<MysqlBackend>;

fn create_store(db: &Database) -> Store {
    EncryptedStore::create(db.backend(), &raw_key()).expect("create store")
}

fn open_store(uri: &str) -> Result<Store, String> {
    let backend = MysqlBackend::connect(uri).map_err(|e| format!("connect: {e}"))?;
    EncryptedStore::open(backend, &raw_key()).map_err(|e| format!("open store: {e}"))
}

fn field(token: &OAuthToken, which: TokenField) -> String {
    token
        .expose_field(which)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

fn by_user(name: &str) -> OAuthToken {
    OAuthToken::new().with_user_name(name)
}

fn backend_kind(error: &Error) -> Option<BackendErrorKind> {
    match error {
        Error::Backend(e) => Some(e.kind()),
        _ => None,
    }
}

fn connect_error(uri: &str) -> BackendError {
    match MysqlBackend::connect(uri) {
        Ok(b) => panic!("connected, expected a refusal: {b:?}"),
        Err(e) => e,
    }
}

/// Prints how long a test took when dropped (visible with `--nocapture`).
struct Timer(&'static str, Instant);

impl Timer {
    fn start(test: &'static str) -> Self {
        Self(test, Instant::now())
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        eprintln!("TIMING mysql::{}: {:.2?}", self.0, self.1.elapsed());
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

fn child_command(role: &str, uri: &str, vars: &[(&str, String)]) -> Command {
    let mut command = child::command(role, vars);
    command.env("TOKENVAULT_CHILD_URI", uri);
    command
}

#[test]
#[ignore = "entry point for child processes spawned by the MySQL tests"]
fn child_entry() {
    child::entry(|role| {
        let uri = var("TOKENVAULT_CHILD_URI");
        match role {
            "saver" => child_saver(&uri),
            "locker" => child_locker(&uri),
            other => Err(format!("unknown role {other:?}")),
        }
    });
}

// ---------------------------------------------------------------------------------------------
// 1. Eight processes saving into one store
// ---------------------------------------------------------------------------------------------

const PROC_CHILDREN: usize = 8;
const PROC_SAVES: usize = 250;
const PROC_USERS: usize = 40;
/// Every this many saves, a child also inserts a user of its own.
const PROC_OWN_EVERY: usize = 10;
const PROC_OWN_USERS: usize = PROC_SAVES / PROC_OWN_EVERY;

fn own_user(index: usize, k: usize) -> String {
    format!("proc-own{index}-{k}")
}

/// Child: `SAVES` saves over `USERS` shared users, each followed by a find, and every
/// `PROC_OWN_EVERY` saves an insert of a user of its own; any error fails the child. Reports
/// its last write per shared user.
fn child_saver(uri: &str) -> Result<(), String> {
    let index: usize = var_num("TOKENVAULT_CHILD_INDEX");
    let saves: usize = var_num("TOKENVAULT_CHILD_SAVES");
    let users: usize = var_num("TOKENVAULT_CHILD_USERS");
    let started = Instant::now();
    let store = open_store(uri)?;
    let failed = |what: String, e: Error| format!("{what}: {e} [{e:?}]");
    let mut last: BTreeMap<usize, String> = BTreeMap::new();
    for i in 0..saves {
        let user = (i * 7 + index * 13) % users;
        let name = format!("proc-user{user}");
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
            .map_err(|e| failed(format!("save {i} of {name}"), e))?;
        last.insert(user, access);
        let found = store
            .find_token(&by_user(&name))
            .map_err(|e| failed(format!("find after save {i}"), e))?
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
                .map_err(|e| failed(format!("insert {own}"), e))?;
        }
    }
    for k in 0..saves / PROC_OWN_EVERY {
        let own = own_user(index, k);
        if store
            .find_token(&by_user(&own))
            .map_err(|e| failed(format!("find {own}"), e))?
            .is_none()
        {
            return Err(format!("{own}, inserted by this child, is lost"));
        }
    }
    for (user, access) in &last {
        say!("LAST proc-user{user} {access}");
    }
    say!("DONE {}", started.elapsed().as_millis());
    Ok(())
}

/// 8 processes × 250 saves (each followed by a find) over 40 shared users, plus 25 inserts of
/// their own users each, every process on its own connection pool → one record per user, each
/// shared user holding some process's last write for it, no field lost by a merge, no insert
/// lost, and no process saw any error (deadlocks and lock waits are retried inside).
#[test]
fn eight_processes_share_one_store() {
    let Some(uri) = service_var(URI_VAR, "eight_processes_share_one_store") else {
        return;
    };
    let _shared = shared();
    let _timer = Timer::start("eight_processes_share_one_store");
    let db = Database::fresh(&uri);
    drop(create_store(&db));
    let started = Instant::now();
    let outputs = child::run_all((0..PROC_CHILDREN).map(|index| {
        child_command(
            "saver",
            &db.uri,
            &[
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
        assert_eq!(reported, PROC_USERS, "child {index}: a last write per user");
    }

    let store = open_store(&db.uri).expect("open");
    let tokens = store.get_tokens().expect("get_tokens");
    let names: BTreeSet<&str> = tokens
        .iter()
        .map(|t| t.user_name().expect("user name"))
        .collect();
    assert_eq!(names.len(), tokens.len(), "a user has two records");
    let own_records = PROC_CHILDREN * PROC_OWN_USERS;
    assert_eq!(
        tokens.len(),
        PROC_USERS + own_records,
        "one record per user"
    );
    for index in 0..PROC_CHILDREN {
        for k in 0..PROC_OWN_USERS {
            let own = own_user(index, k);
            assert!(names.contains(own.as_str()), "{own} is lost");
        }
    }
    for token in &tokens {
        let name = token.user_name().unwrap();
        let Some(user) = name.strip_prefix("proc-user") else {
            assert_eq!(
                field(token, TokenField::AccessToken),
                format!("{name}-access")
            );
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
        let refresh = field(token, TokenField::RefreshToken);
        assert!(
            refresh.starts_with(&format!("r-{user}-")),
            "{name} lost its refresh token: {refresh:?}"
        );
    }
    let report = store.verify().expect("verify");
    assert!(report.failed.is_empty(), "verify: {:?}", report.failed);
    let saves = PROC_CHILDREN * (PROC_SAVES + PROC_OWN_USERS);
    eprintln!(
        "mysql::eight_processes_share_one_store: {saves} saves and {} finds in {elapsed:.2?} \
         ({:.2} ms per save); children took {child_ms:?} ms",
        PROC_CHILDREN * PROC_SAVES,
        elapsed.as_secs_f64() * 1000.0 / saves as f64
    );
}

// ---------------------------------------------------------------------------------------------
// 2. The server restarts in the middle of a stream of saves
// ---------------------------------------------------------------------------------------------

const RESTART_USERS: usize = 8;
/// Saves acknowledged before the server is killed.
const ACKED_BEFORE_RESTART: usize = 60;
/// Calls started after the server is back, all of which must succeed.
const CALLS_AFTER_RESTART: usize = 60;

/// One failed call during the outage.
struct Failure {
    what: String,
    started: Instant,
    kind: Option<BackendErrorKind>,
    message: String,
}

/// A saver thread saves without pause (every 5th call also inserts a new user, every 3rd also
/// finds) while the server is SIGKILLed, kept down 1 s and started again on the same data
/// (`TOKENVAULT_TEST_MYSQL_RESTART`). Calls during the outage must fail with `Unavailable` and
/// a message naming the MySQL server; every call started after the server is back must
/// succeed; and afterwards every acknowledged save is there with its last acknowledged value
/// (the saver ends with acknowledged saves of every user), every acknowledged insert too, no
/// user twice, no merged field lost.
#[test]
fn server_restart_mid_save_stream() {
    let test = "server_restart_mid_save_stream";
    let Some(uri) = service_var(URI_VAR, test) else {
        return;
    };
    let Some(restart) = service_var(RESTART_VAR, test) else {
        return;
    };
    let _exclusive = SERVER.write().unwrap_or_else(PoisonError::into_inner);
    let _timer = Timer::start("server_restart_mid_save_stream");
    let db = Database::fresh(&uri);
    let store = create_store(&db);

    let acked: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());
    let inserted: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let failures: Mutex<Vec<Failure>> = Mutex::new(Vec::new());
    let acked_count = AtomicUsize::new(0);
    let back: Mutex<Option<Instant>> = Mutex::new(None);
    let after_restart = AtomicUsize::new(0);
    let give_up = AtomicBool::new(false);

    let mut restart_took = Duration::ZERO;
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(180);
            let mut i = 0usize;
            while after_restart.load(Ordering::SeqCst) < CALLS_AFTER_RESTART
                && !give_up.load(Ordering::SeqCst)
                && Instant::now() < deadline
            {
                let user = format!("user{}", i % RESTART_USERS);
                let mut calls: Vec<(String, OAuthToken, bool)> = Vec::new();
                let mut token = by_user(&user).with_access_token(format!("a-{i}"));
                if i < RESTART_USERS {
                    token = token
                        .with_refresh_token(format!("r-{user}"))
                        .with_client_id("1000.C");
                }
                calls.push((format!("save {i} of {user}"), token, true));
                if i % 5 == 4 {
                    let own = format!("new-{i}");
                    calls.push((
                        format!("insert {own}"),
                        by_user(&own).with_access_token(format!("{own}-a")),
                        true,
                    ));
                }
                if i % 3 == 2 {
                    calls.push((format!("find {user}"), by_user(&user), false));
                }
                for (what, mut token, save) in calls {
                    let started = Instant::now();
                    let result = if save {
                        store.save_token(&mut token)
                    } else {
                        store.find_token(&token).map(drop)
                    };
                    let after = back
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .is_some_and(|t| started >= t);
                    match result {
                        Ok(()) => {
                            if save && what.starts_with("insert") {
                                inserted
                                    .lock()
                                    .unwrap_or_else(PoisonError::into_inner)
                                    .push(token.user_name().unwrap().to_owned());
                            } else if save {
                                acked
                                    .lock()
                                    .unwrap_or_else(PoisonError::into_inner)
                                    .insert(user.clone(), field(&token, TokenField::AccessToken));
                                acked_count.fetch_add(1, Ordering::SeqCst);
                            }
                            if after {
                                after_restart.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Err(e) => {
                            failures
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push(Failure {
                                    what,
                                    started,
                                    kind: backend_kind(&e),
                                    message: e.to_string(),
                                });
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
                i += 1;
            }
        });

        let waited = Instant::now();
        while acked_count.load(Ordering::SeqCst) < ACKED_BEFORE_RESTART {
            if waited.elapsed() > Duration::from_secs(60) {
                give_up.store(true, Ordering::SeqCst);
                panic!("the saver did not get {ACKED_BEFORE_RESTART} saves through in 60 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let restarting = Instant::now();
        let status = Command::new("bash")
            .args(["-c", &restart])
            .stdin(Stdio::null())
            .status()
            .expect("run the restart command");
        restart_took = restarting.elapsed();
        if !status.success() {
            give_up.store(true, Ordering::SeqCst);
            panic!("the restart command failed: {status}");
        }
        *back.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    });

    let back = back.into_inner().unwrap().expect("restarted");
    let failures = failures.into_inner().unwrap();
    assert!(
        after_restart.load(Ordering::SeqCst) >= CALLS_AFTER_RESTART,
        "the saver stopped before {CALLS_AFTER_RESTART} calls after the restart"
    );
    assert!(
        !failures.is_empty(),
        "no call failed while the server was down: the outage was not observed"
    );
    let mut messages = BTreeSet::new();
    for f in &failures {
        assert_eq!(
            f.kind,
            Some(BackendErrorKind::Unavailable),
            "{} failed with {:?}, not Unavailable: {}",
            f.what,
            f.kind,
            f.message
        );
        assert!(
            f.message.contains("MySQL"),
            "{}: the message does not say what failed: {}",
            f.what,
            f.message
        );
        assert!(
            f.started < back,
            "{} started after the server was back and failed: {}",
            f.what,
            f.message
        );
        // The port and the OS error number vary; keep the wording.
        messages.insert(f.message.split(": ").take(2).collect::<Vec<_>>().join(": "));
    }

    // A fresh handle on a fresh pool sees every acknowledged write.
    let reopened = open_store(&db.uri).expect("reopen after the restart");
    let acked = acked.into_inner().unwrap();
    assert_eq!(acked.len(), RESTART_USERS);
    for (user, access) in &acked {
        let found = reopened
            .find_token(&by_user(user))
            .expect("find")
            .unwrap_or_else(|| panic!("{user} is lost"));
        assert_eq!(
            &field(&found, TokenField::AccessToken),
            access,
            "{user} does not hold its last acknowledged value"
        );
        assert_eq!(
            found.client_id(),
            Some("1000.C"),
            "{user} lost a merged field"
        );
        assert_eq!(field(&found, TokenField::RefreshToken), format!("r-{user}"));
    }
    let inserted = inserted.into_inner().unwrap();
    for own in &inserted {
        let found = reopened.find_token(&by_user(own)).expect("find");
        assert!(found.is_some(), "{own} was acknowledged and is lost");
    }
    let tokens = reopened.get_tokens().expect("get_tokens");
    let names: BTreeSet<_> = tokens.iter().map(|t| t.user_name()).collect();
    assert_eq!(names.len(), tokens.len(), "a user has two records");
    eprintln!(
        "mysql::{test}: restart took {restart_took:.2?}; {} calls failed during the outage, \
         all Unavailable; {} acknowledged inserts; error messages seen: {messages:#?}",
        failures.len(),
        inserted.len()
    );
}

// ---------------------------------------------------------------------------------------------
// 3. TLS
// ---------------------------------------------------------------------------------------------

/// A host that is not loopback with `ssl_mode=disabled` is refused before anything is sent:
/// no server is needed (the hosts do not exist), the refusal is immediate and names the rule,
/// and the password is not in it. The Zoho importer follows the same rule.
#[test]
fn plaintext_to_a_non_loopback_host_is_refused_before_connecting() {
    for host in [
        "db.invalid",
        "localhost.invalid",
        "127.0.0.1.invalid",
        "[2001:db8::1]",
    ] {
        let uri = format!("mysql://tv:hunter2pw@{host}:3306/tokenvault?ssl_mode=disabled");
        let started = Instant::now();
        let e = connect_error(&uri);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{host}: not refused at once"
        );
        assert_eq!(e.kind(), BackendErrorKind::NotSupported, "{host}: {e}");
        let message = e.to_string();
        assert!(
            message.contains("without TLS") && message.contains("loopback"),
            "{message}"
        );
        assert!(
            !message.contains("hunter2pw"),
            "the password leaks: {message}"
        );
        let e = tokenvault::import::zoho_mysql::read(&uri)
            .err()
            .expect("refused");
        assert!(
            matches!(e, tokenvault::import::ImportError::Database(_)),
            "{e:?}"
        );
        let e = e.to_string();
        assert!(e.contains("without TLS") && !e.contains("hunter2pw"), "{e}");
    }
}

/// Over TLS (the default): user `tvtls` is `REQUIRE SSL` on the server, so a working store
/// proves the backend encrypts; the same user without TLS is turned away by the server; without
/// the test CA the server's certificate does not verify (TLS is verified by default, even on
/// loopback); and the certificate names 127.0.0.1, so `verify_identity` refuses it as
/// `localhost` while `verify_ca` accepts it.
#[test]
fn tls_is_used_and_verified() {
    let test = "tls_is_used_and_verified";
    let Some(uri) = service_var(URI_VAR, test) else {
        return;
    };
    let Some(tls_uri) = service_var(TLS_URI_VAR, test) else {
        return;
    };
    let _shared = shared();
    let _timer = Timer::start(test);
    let db = Database::fresh(&uri);
    let tls_db_uri = with_database(&tls_uri, &db.name);

    let store = EncryptedStore::create(
        MysqlBackend::connect(&tls_db_uri).unwrap_or_else(|e| panic!("TLS connect: {e}")),
        &raw_key(),
    )
    .expect("create over TLS");
    let mut token = by_user("tls@example.com").with_access_token("a-tls");
    store.save_token(&mut token).expect("save over TLS");
    assert!(
        store
            .find_token(&by_user("tls@example.com"))
            .unwrap()
            .is_some()
    );

    let plain = with_param(
        &with_param(&tls_db_uri, "root_cert_path", None),
        "ssl_mode",
        Some("disabled"),
    );
    let e = connect_error(&plain);
    assert_eq!(e.kind(), BackendErrorKind::Other, "{e}");
    assert!(e.to_string().contains("access denied"), "{e}");

    let e = connect_error(&with_param(&tls_db_uri, "root_cert_path", None));
    assert_eq!(e.kind(), BackendErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains("TLS"), "{e}");

    let mut as_localhost = parse(&tls_db_uri);
    as_localhost.set_host(Some("localhost")).unwrap();
    let as_localhost = String::from(as_localhost);
    let e = connect_error(&as_localhost);
    assert_eq!(e.kind(), BackendErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains("TLS"), "{e}");
    let verify_ca = with_param(&as_localhost, "ssl_mode", Some("verify_ca"));
    let backend = MysqlBackend::connect(&verify_ca).unwrap_or_else(|e| panic!("verify_ca: {e}"));
    assert!(backend.read_header().unwrap().is_some());
}

// ---------------------------------------------------------------------------------------------
// 4. Identifiers, schema ownership and versions, racing first opens
// ---------------------------------------------------------------------------------------------

/// Database names and table prefixes that are not plain identifiers are refused before
/// connecting, and nothing is created on the server.
#[test]
fn bad_identifiers_are_refused() {
    let Some(uri) = service_var(URI_VAR, "bad_identifiers_are_refused") else {
        return;
    };
    let _shared = shared();
    let db = Database::fresh(&uri);
    // Tests run in parallel: look only at what these URIs could touch.
    let tables_in_db = || -> u64 {
        db.admin()
            .query_first(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()",
            )
            .unwrap()
            .unwrap()
    };
    let databases = || -> Vec<String> {
        admin_conn(&uri)
            .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
            .unwrap()
    };
    let before = databases();
    for (database, prefix) in [
        (
            "tokenvault%60%3B%20DROP%20DATABASE%20tokenvault%3B%20--",
            None,
        ),
        ("t-dash", None),
        ("t%20space", None),
        ("t%C3%A9", None),
        (db.name.as_str(), Some("x%60y")),
        (db.name.as_str(), Some("x%3BDROP")),
        (db.name.as_str(), Some("p.q")),
        (db.name.as_str(), Some(&*"p".repeat(51))),
    ] {
        let mut target = with_database(&uri, database);
        if let Some(prefix) = prefix {
            let url = parse(&target);
            let mut query = url.query().unwrap_or("").to_owned();
            query.push_str("&table_prefix=");
            query.push_str(prefix);
            let mut url = url;
            url.set_query(Some(&query));
            target = url.into();
        }
        let e = connect_error(&target);
        assert_eq!(
            e.kind(),
            BackendErrorKind::Other,
            "{database} {prefix:?}: {e}"
        );
        assert!(
            e.to_string().contains("letters, digits or '_'"),
            "{database} {prefix:?}: {e}"
        );
    }
    assert_eq!(tables_in_db(), 0, "a refused URI created tables");
    let after = databases();
    for name in ["tokenvault", db.name.as_str()] {
        assert!(after.iter().any(|d| d == name), "{name} is gone");
    }
    assert!(
        after
            .iter()
            .all(|d| before.contains(d) || d.starts_with("t_")),
        "a refused URI created a database: {after:?}"
    );
    let ok = format!("{}&table_prefix=Good_1_", with_database(&uri, &db.name));
    let backend = MysqlBackend::connect(&ok).expect("a valid prefix");
    assert_eq!(backend.table_prefix(), "Good_1_");
}

/// A newer schema version is refused (on connect and inside a transaction of a handle that was
/// already open); tables of our names that hold someone else's rows, or are not InnoDB, are
/// refused and left alone; two table prefixes keep two stores apart in one database.
#[test]
fn schema_versions_and_foreign_tables() {
    let Some(uri) = service_var(URI_VAR, "schema_versions_and_foreign_tables") else {
        return;
    };
    let _shared = shared();
    let _timer = Timer::start("schema_versions_and_foreign_tables");

    let db = Database::fresh(&uri);
    let store = create_store(&db);
    db.admin()
        .query_drop("UPDATE tokenvault_meta SET `value` = '2' WHERE `key` = 'schema_version'")
        .unwrap();
    let e = connect_error(&db.uri);
    assert_eq!(e.kind(), BackendErrorKind::NotSupported, "{e}");
    assert!(e.to_string().contains("newer"), "{e}");
    let mut token = by_user("u").with_access_token("a");
    let e = store.save_token(&mut token).expect_err("newer schema");
    assert_eq!(
        backend_kind(&e),
        Some(BackendErrorKind::NotSupported),
        "{e}"
    );

    let db = Database::fresh(&uri);
    let mut admin = db.admin();
    admin
        .query_drop("CREATE TABLE tokenvault_records (id INT PRIMARY KEY) ENGINE=InnoDB")
        .unwrap();
    admin
        .query_drop("INSERT INTO tokenvault_records VALUES (7)")
        .unwrap();
    let e = connect_error(&db.uri);
    assert_eq!(e.kind(), BackendErrorKind::Corrupt, "{e}");
    assert!(
        e.to_string().contains("not part of a tokenvault store"),
        "{e}"
    );
    let rows: Vec<i64> = admin.query("SELECT id FROM tokenvault_records").unwrap();
    assert_eq!(rows, [7], "the foreign table was touched");
    let meta: Option<u64> = admin
        .query_first("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'tokenvault_meta'")
        .unwrap();
    assert_eq!(meta, Some(0), "a table was created next to the foreign one");

    let db = Database::fresh(&uri);
    db.admin()
        .query_drop("CREATE TABLE tokenvault_meta (`key` VARBINARY(64) PRIMARY KEY, `value` LONGBLOB NOT NULL) ENGINE=MyISAM")
        .unwrap();
    let e = connect_error(&db.uri);
    assert_eq!(e.kind(), BackendErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("InnoDB"), "{e}");

    let db = Database::fresh(&uri);
    let one = format!("{}&table_prefix=app1_", db.uri);
    let two = format!("{}&table_prefix=app2_", db.uri);
    let first = EncryptedStore::create(MysqlBackend::connect(&one).unwrap(), &raw_key()).unwrap();
    let second = EncryptedStore::create(MysqlBackend::connect(&two).unwrap(), &raw_key()).unwrap();
    let mut token = by_user("same@example.com").with_access_token("a-1");
    first.save_token(&mut token).unwrap();
    let mut token = by_user("same@example.com").with_access_token("a-2");
    second.save_token(&mut token).unwrap();
    assert_eq!(first.get_tokens().unwrap().len(), 1);
    assert_eq!(
        field(
            &second
                .find_token(&by_user("same@example.com"))
                .unwrap()
                .unwrap(),
            TokenField::AccessToken
        ),
        "a-2"
    );
}

/// Eight threads open a new store's database at the same moment: all succeed, one schema.
#[test]
fn racing_first_opens() {
    let Some(uri) = service_var(URI_VAR, "racing_first_opens") else {
        return;
    };
    let _shared = shared();
    let db = Database::fresh(&uri);
    let barrier = Barrier::new(8);
    let backends: Vec<MysqlBackend> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    MysqlBackend::connect(&db.uri)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap()
                    .unwrap_or_else(|e| panic!("racing open: {e}"))
            })
            .collect()
    });
    let mut backends = backends.into_iter();
    let store = EncryptedStore::create(backends.next().unwrap(), &raw_key()).unwrap();
    let mut token = by_user("race@example.com").with_access_token("a");
    store.save_token(&mut token).unwrap();
    for backend in backends {
        let other = EncryptedStore::open(backend, &raw_key()).expect("same store");
        assert!(
            other
                .find_token(&by_user("race@example.com"))
                .unwrap()
                .is_some()
        );
    }
    let versions: Vec<Vec<u8>> = db
        .admin()
        .query("SELECT `value` FROM tokenvault_meta WHERE `key` = 'schema_version'")
        .unwrap();
    assert_eq!(versions, [b"1".to_vec()]);
}

// ---------------------------------------------------------------------------------------------
// 5. A deadlock re-runs the whole step
// ---------------------------------------------------------------------------------------------

/// Another client locks a record, then waits for the header row while our transaction (which
/// holds the header row) waits for that record: InnoDB breaks the deadlock by rolling back the
/// lighter transaction, ours (the other one has inserted 200 rows). The backend rolls back,
/// runs the whole step again once the other client commits, and succeeds: the step ran twice.
#[test]
fn deadlock_reruns_the_whole_step() {
    let Some(uri) = service_var(URI_VAR, "deadlock_reruns_the_whole_step") else {
        return;
    };
    let _shared = shared();
    let _timer = Timer::start("deadlock_reruns_the_whole_step");
    let db = Database::fresh(&uri);
    let store = create_store(&db);
    let mut token = by_user("dl@example.com").with_access_token("a");
    store.save_token(&mut token).unwrap();
    let id = token.id().unwrap().to_owned();
    let backend = store.into_backend();

    let mut other = db.admin();
    other
        .query_drop("CREATE TABLE scratch (n INT PRIMARY KEY) ENGINE=InnoDB")
        .unwrap();
    other.query_drop("START TRANSACTION").unwrap();
    other
        .exec_batch("INSERT INTO scratch VALUES (?)", (0..200).map(|n| (n,)))
        .unwrap();
    other
        .exec_drop(
            "SELECT id FROM tokenvault_records WHERE id = ? FOR UPDATE",
            (&id,),
        )
        .unwrap();

    let calls = AtomicUsize::new(0);
    let result = std::thread::scope(|scope| {
        let ours = scope.spawn(|| {
            backend.transact(&mut |tx| {
                calls.fetch_add(1, Ordering::SeqCst);
                tx.header()?;
                tx.put(StoredRecord {
                    id: id.clone(),
                    tags: LookupTags::default(),
                    sealed: vec![1, 2, 3],
                })?;
                Ok(())
            })
        });
        std::thread::sleep(Duration::from_millis(500)); // ours now waits for the record
        let header: Result<Option<Vec<u8>>, _> = other
            .query_first("SELECT `value` FROM tokenvault_meta WHERE `key` = 'header' FOR UPDATE");
        assert!(
            header.is_ok(),
            "InnoDB rolled back the other (heavier) transaction, not ours: {header:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
        other.query_drop("COMMIT").unwrap();
        ours.join().unwrap()
    });
    result.expect("the transaction succeeds after the deadlock");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the step ran once more after the deadlock"
    );
    assert_eq!(backend.get(&id).unwrap().unwrap().sealed, [1, 2, 3]);
}

// ---------------------------------------------------------------------------------------------
// 6. Named locks (Backend::lock)
// ---------------------------------------------------------------------------------------------

const LOCK_NAME: &str = "refresh:user1@example.com";

/// Child: takes `LOCK_NAME`, says so, and holds it until killed.
fn child_locker(uri: &str) -> Result<(), String> {
    let backend = MysqlBackend::connect(uri).map_err(|e| format!("connect: {e}"))?;
    let _held = backend
        .lock(LOCK_NAME, Duration::from_secs(5))
        .map_err(|e| format!("lock: {e}"))?;
    say!("LOCKED");
    std::thread::sleep(Duration::from_secs(120));
    Err("not killed".into())
}

/// `Backend::lock` excludes other handles (two pools, as two processes would have) until the
/// timeout (`Busy`), only for the same name and store, is released on drop, and is released by
/// the server when the process holding it is SIGKILLed.
#[test]
fn named_locks() {
    let Some(uri) = service_var(URI_VAR, "named_locks") else {
        return;
    };
    let _shared = shared();
    let _timer = Timer::start("named_locks");
    let db = Database::fresh(&uri);
    let (a, b) = (db.backend(), db.backend());
    let held = a.lock(LOCK_NAME, Duration::from_secs(1)).expect("free");
    let started = Instant::now();
    let e = b
        .lock(LOCK_NAME, Duration::from_millis(300))
        .err()
        .expect("held by the other handle");
    assert_eq!(e.kind(), BackendErrorKind::Busy, "{e}");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "did not wait"
    );
    drop(
        b.lock("refresh:someone-else", Duration::from_millis(100))
            .expect("another name"),
    );
    let other_store = MysqlBackend::connect(&format!("{}&table_prefix=other_", db.uri)).unwrap();
    drop(
        other_store
            .lock(LOCK_NAME, Duration::from_millis(100))
            .expect("another store"),
    );
    drop(held);
    drop(
        b.lock(LOCK_NAME, Duration::from_millis(100))
            .expect("released on drop"),
    );

    let mut child = child_command("locker", &db.uri, &[])
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("piped");
    let locked = child::wait_for(stdout, "LOCKED").is_ok();
    assert!(locked, "the child did not take the lock");
    let e = b
        .lock(LOCK_NAME, Duration::from_millis(100))
        .err()
        .expect("held by the child");
    assert_eq!(e.kind(), BackendErrorKind::Busy);
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    let started = Instant::now();
    drop(
        b.lock(LOCK_NAME, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("not released when its holder died: {e}")),
    );
    eprintln!(
        "mysql::named_locks: the server released the dead holder's lock after {:.2?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// 7. The Zoho SDK's DBStore table
// ---------------------------------------------------------------------------------------------

/// The SDK's DDL, verbatim from tests/fixtures/zoho/README.md (`zohocrmsdk8-0` 7.0.0 README).
const ZOHO_DDL: &str = "CREATE TABLE  oauthtoken (
  id varchar(10) NOT NULL,
  user_name varchar(255),
  client_id varchar(255),
  client_secret varchar(255),
  refresh_token varchar(255),
  access_token varchar(255),
  grant_token varchar(255),
  expiry_time varchar(20),
  redirect_url varchar(255),
  api_domain varchar(255),
  primary key (id)
)";

/// One row as inserted: the ten columns in DDL order, `None` = NULL.
type ZohoRow = [Option<&'static str>; 10];

const ZOHO_ROWS: [ZohoRow; 7] = [
    [
        Some("1"),
        Some("alice@example.com"),
        Some("1000.ABCDEF"),
        Some("s3cr3t,with'quote\"and,commas"),
        Some("1000.refresh.alice"),
        Some("1000.access.alice"),
        None,
        Some("1700000000000"),
        Some("https://example.com/cb?a=1,b='2'"),
        Some("https://www.zohoapis.com"),
    ],
    [
        Some("2"),
        Some("Zoë Müller-Łukasiewicz 日本語"),
        Some("1000.ABCDEF"),
        Some("'; DROP TABLE oauthtoken; --"),
        Some("1000.refresh.zoe"),
        None,
        Some("1000.grant.zoe"),
        None,
        None,
        None,
    ],
    [
        Some("10"),
        None,
        None,
        None,
        None,
        Some("access-only-🦀"),
        None,
        None,
        None,
        None,
    ],
    [
        Some("3"),
        Some(""),
        Some(""),
        Some(""),
        Some(""),
        Some("1000.access.empty"),
        Some(""),
        Some(""),
        Some(""),
        Some(""),
    ],
    [
        Some("4"),
        Some("back\\slash@example.com"),
        Some("1000.X"),
        Some("tab\tnew\nline\r\n"),
        Some("1000.refresh.four"),
        Some("1000.access.four"),
        None,
        Some("18446744073709551615"),
        Some("trailing space "),
        Some(" leading space"),
    ],
    [
        Some("5"),
        Some("bad-expiry@example.com"),
        None,
        None,
        None,
        Some("1000.access.five"),
        None,
        Some("SECRET-not-a-time"),
        None,
        None,
    ],
    [
        Some("6"),
        Some("percent%_like@example.com"),
        None,
        None,
        Some("100%"),
        None,
        None,
        Some("0"),
        None,
        None,
    ],
];

const ZOHO_FIELDS: [TokenField; 10] = [
    TokenField::Id,
    TokenField::UserName,
    TokenField::ClientId,
    TokenField::ClientSecret,
    TokenField::RefreshToken,
    TokenField::AccessToken,
    TokenField::GrantToken,
    TokenField::ExpiryTime,
    TokenField::RedirectUrl,
    TokenField::ApiDomain,
];

/// A `zohooauth` database with the SDK's own `oauthtoken` DDL, filled through bound inserts
/// with quotes, commas, NULLs, empty strings, non-ASCII and control characters, is read by
/// `import::zoho_mysql::read` in primary-key order and imported into a SQLite store: every
/// field of every row comes out byte for byte (NULL and '' absent), and the row whose expiry
/// is not a number is refused without its value in the reason.
#[test]
fn zoho_dbstore_table_imports_byte_for_byte() {
    let Some(uri) = service_var(URI_VAR, "zoho_dbstore_table_imports_byte_for_byte") else {
        return;
    };
    let _shared = shared();
    let _timer = Timer::start("zoho_dbstore_table_imports_byte_for_byte");
    let mut admin = admin_conn(&uri);
    admin
        .query_drop("DROP DATABASE IF EXISTS zohooauth")
        .unwrap();
    // The SDK's README says `CREATE DATABASE zohooauth;`; the character set is spelled out so
    // the test does not depend on the server's default (MySQL 8 and the CI server: utf8mb4).
    admin
        .query_drop("CREATE DATABASE zohooauth CHARACTER SET utf8mb4")
        .unwrap();
    let zoho_uri = with_database(&uri, "zohooauth");
    struct DropZoho(String);
    impl Drop for DropZoho {
        fn drop(&mut self) {
            let _ = admin_conn(&self.0).query_drop("DROP DATABASE IF EXISTS zohooauth");
        }
    }
    let _cleanup = DropZoho(uri.clone());
    let mut zoho = admin_conn(&zoho_uri);
    zoho.query_drop(ZOHO_DDL).unwrap();
    zoho.exec_batch(
        "INSERT INTO oauthtoken (id, user_name, client_id, client_secret, refresh_token, \
         access_token, grant_token, expiry_time, redirect_url, api_domain) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ZOHO_ROWS.iter().map(|row| {
            mysql::Params::Positional(row.iter().map(|v| mysql::Value::from(*v)).collect())
        }),
    )
    .unwrap();

    let rows = tokenvault::import::zoho_mysql::read(&zoho_uri).expect("read oauthtoken");
    // Primary-key order: the id column's collation sorts "10" before "2".
    let order: Vec<String> = rows
        .iter()
        .map(|r| match &r.token {
            Ok(t) => t.id().unwrap().to_owned(),
            Err(_) => "refused".to_owned(),
        })
        .collect();
    assert_eq!(order, ["1", "10", "2", "3", "4", "refused", "6"]);
    assert_eq!(
        rows.iter().map(|r| r.number).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6, 7]
    );

    let dir = tempfile::tempdir().unwrap();
    let store = EncryptedStore::create(
        SqliteBackend::open(dir.path().join("t.db")).unwrap(),
        &raw_key(),
    )
    .unwrap();
    let summary = tokenvault::import::import(&store, rows, &mut |_| {}).expect("import");
    assert_eq!((summary.read, summary.inserted, summary.updated), (7, 6, 0));
    assert_eq!(summary.refused.len(), 1, "{:?}", summary.refused);
    let (number, reason) = &summary.refused[0];
    assert_eq!(*number, 6);
    assert!(
        !reason.contains("SECRET"),
        "the reason shows the value: {reason}"
    );

    for row in ZOHO_ROWS.iter().filter(|r| r[0] != Some("5")) {
        let id = row[0].unwrap();
        let token = store
            .find_token_by_id(id)
            .unwrap()
            .unwrap_or_else(|| panic!("row {id} was not imported"));
        for (field_name, value) in ZOHO_FIELDS.iter().zip(row) {
            let expected = value.filter(|v| !v.is_empty());
            let got = token.expose_field(*field_name);
            assert_eq!(
                got.as_deref().map(|s| s.as_bytes()),
                expected.map(str::as_bytes),
                "row {id}, {}",
                field_name.name()
            );
        }
    }
    assert_eq!(store.get_tokens().unwrap().len(), 6);

    // The same table through the CLI: cli/tests/zoho_mysql.rs.

    // A table that is not there is an error, not an empty import.
    zoho.query_drop("DROP TABLE oauthtoken").unwrap();
    let e = tokenvault::import::zoho_mysql::read(&zoho_uri)
        .err()
        .expect("no table");
    assert!(
        matches!(e, tokenvault::import::ImportError::Table(_)),
        "{e:?}"
    );
    assert!(e.to_string().contains("no oauthtoken table"), "{e}");
}
