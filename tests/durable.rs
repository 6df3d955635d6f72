//! Fault and multi-process tests of the durable backends (file and SQLite): processes saving
//! concurrently, SIGKILL in the middle of saves, damaged and hostile files, plaintext on disk,
//! a full disk (`RLIMIT_FSIZE`), file modes, a handle seeing another process's writes, and
//! processes racing to create a store.
//!
//! Each case is a function of the backend [`Kind`], instantiated once per backend by
//! `per_backend!` (tests `file::<case>` and `sqlite::<case>`); cases about one backend's own
//! format live only in its module. Cases that need other processes re-execute this test binary
//! on the ignored test `child_entry`, with the job in `TOKENVAULT_CHILD_*` environment
//! variables; a child reports on stdout in lines starting `CHILD ` and exits non-zero on any
//! error. Random choices print their seed; `TOKENVAULT_TEST_SEED=<seed>` replays them. With
//! `--nocapture`, each case prints its duration (`TIMING`) and what it exercised.
//!
//! The file backend's layout (documented in `src/backend/file.rs`), parsed here to aim damage:
//! ```text
//! magic "TKNVFILE" (8) | version (1) | write id (16) | header length (4) | header
//! record count (4) then per record: id length (2) | id | tag mask (1) | tags (32 each)
//!                                   sealed length (4) | sealed
//! sealed: version (1) | key id (4) | nonce (12) | ciphertext | GCM tag (16)
//! ```
#![cfg(feature = "sqlite")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::fs;
use std::io::{Read, Write};
use std::ops::Range;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::child::{self, child_lines, describe, var, var_num};
use common::raw_key;
use tokenvault::backend::{Backend, FileBackend, SqliteBackend, StoredRecord};
use tokenvault::{
    BackendError, BackendErrorKind, Credential, EncryptedStore, Error, OAuthToken, RawKey, Subject,
    TokenField, TokenStore, VerifyReport,
};

// ---------------------------------------------------------------------------------------------
// Backends, places and helpers
// ---------------------------------------------------------------------------------------------

/// The durable backend a case runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    File,
    Sqlite,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Sqlite => "sqlite",
        }
    }

    fn from_name(name: &str) -> Self {
        match name {
            "file" => Kind::File,
            "sqlite" => Kind::Sqlite,
            other => panic!("unknown backend kind {other:?}"),
        }
    }

    /// The store's file name inside its directory.
    fn file_name(self) -> &'static str {
        match self {
            Kind::File => "tokens.tv",
            Kind::Sqlite => "tokens.db",
        }
    }

    fn open(self, path: &Path) -> Result<Box<dyn Backend>, BackendError> {
        Ok(match self {
            Kind::File => Box::new(FileBackend::open(path)?),
            Kind::Sqlite => Box::new(SqliteBackend::open(path)?),
        })
    }
}

type Store = EncryptedStore<Box<dyn Backend>>;

/// A store location: a temporary directory (removed on drop) and the store path in it.
struct Place {
    kind: Kind,
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl Place {
    fn new(kind: Kind) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(kind.file_name());
        Self { kind, dir, path }
    }

    fn backend(&self) -> Box<dyn Backend> {
        self.kind
            .open(&self.path)
            .unwrap_or_else(|e| panic!("open the {} backend: {e}", self.kind.name()))
    }

    fn create(&self) -> Store {
        EncryptedStore::create(self.backend(), &raw_key()).expect("create store")
    }

    fn open(&self) -> Store {
        EncryptedStore::open(self.backend(), &raw_key()).expect("open store")
    }

    fn header(&self) -> Vec<u8> {
        self.backend()
            .read_header()
            .expect("read header")
            .expect("a store is there")
    }

    fn put_header(&self, header: &[u8]) {
        self.backend()
            .transact(&mut |tx| Ok(tx.put_header(header)?))
            .expect("replace header");
    }
}

/// `PATH` + `suffix` (the backends' `PATH.lock`, `PATH.tmp`, `PATH-wal`, …).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A token with every field set, all values distinct per `(prefix, i)`.
fn full_token(prefix: &str, i: usize) -> OAuthToken {
    OAuthToken::new()
        .with_user_name(format!("{prefix}-user{i}@example.com"))
        .with_client_id(format!("1000.{prefix}-client-{i}"))
        .with_client_secret(format!("{prefix}-client-secret-{i}"))
        .with_refresh_token(format!("{prefix}-refresh-token-{i}"))
        .with_access_token(format!("{prefix}-access-token-{i}"))
        .with_grant_token(format!("{prefix}-grant-token-{i}"))
        .with_expiry_time(1_900_000_000_000 + i as u64)
        .with_redirect_url(format!("https://{prefix}.example/callback/{i}"))
        .with_api_domain(format!("https://{prefix}-api-{i}.example"))
}

fn save(store: &Store, token: OAuthToken) -> OAuthToken {
    let mut token = token;
    store
        .save_token(&mut token)
        .unwrap_or_else(|e| panic!("save_token: {e} [{e:?}]"));
    token
}

/// Saves `n` full tokens; returns them as stored (ids set), ordered by id as `get_tokens` and
/// the file backend's file order them.
fn save_some(store: &Store, prefix: &str, n: usize) -> Vec<OAuthToken> {
    let mut saved: Vec<_> = (0..n).map(|i| save(store, full_token(prefix, i))).collect();
    saved.sort_by(|a, b| a.id().cmp(&b.id()));
    saved
}

fn field(token: &OAuthToken, which: TokenField) -> String {
    token
        .expose_field(which)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

fn id_of(token: &OAuthToken) -> &str {
    token.id().expect("a saved token has an id")
}

fn by_user(name: &str) -> OAuthToken {
    OAuthToken::new().with_user_name(name)
}

/// Whether `error` is `Tampered` naming record `id`.
fn tampered_record(error: &Error, id: &str) -> bool {
    matches!(error, Error::Tampered { what: Subject::Record(r) } if r == id)
}

fn backend_kind(error: &Error) -> Option<BackendErrorKind> {
    match error {
        Error::Backend(e) => Some(e.kind()),
        _ => None,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every regular file in `dir` with its bytes.
fn files_in(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .expect("list dir")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.is_file())
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&path).expect("read file"))
        })
        .collect();
    files.sort();
    files
}

/// Every regular file in `dir` with its permission bits.
fn modes_in(dir: &Path) -> BTreeMap<String, u32> {
    fs::read_dir(dir)
        .expect("list dir")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.is_file())
        .map(|path| {
            let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o7777;
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                mode,
            )
        })
        .collect()
}

/// Asserts that no file in `dir` contains any of `needles`.
fn assert_no_plaintext(dir: &Path, needles: &[Vec<u8>], when: &str) -> Vec<(String, usize)> {
    let files = files_in(dir);
    for (name, bytes) in &files {
        for needle in needles {
            assert!(
                !contains(bytes, needle),
                "{when}: {name} contains the plaintext {:?}",
                String::from_utf8_lossy(needle)
            );
        }
    }
    files.into_iter().map(|(n, b)| (n, b.len())).collect()
}

/// xorshift64: pseudo-random choices without a rand dependency, seeded from the clock.
struct Rng(u64);

impl Rng {
    fn seeded(what: &str) -> Self {
        let seed = std::env::var("TOKENVAULT_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .expect("clock after 1970")
                    .as_nanos() as u64;
                nanos ^ (u64::from(std::process::id()) << 32)
            });
        eprintln!("{what}: seed {seed} (TOKENVAULT_TEST_SEED={seed} replays it)");
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn index(&mut self, n: usize) -> usize {
        usize::try_from(self.below(n as u64)).expect("fits")
    }
}

/// Prints how long a case took when dropped (visible with `--nocapture`).
struct Timer(String, Instant);

impl Timer {
    fn start(case: &str, kind: Kind) -> Self {
        Self(format!("{}::{case}", kind.name()), Instant::now())
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        eprintln!("TIMING {}: {:.2?}", self.0, self.1.elapsed());
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

/// A command that runs this test binary as a child doing `role` on `place`'s store.
fn child_command(role: &str, place: &Place, vars: &[(&str, String)]) -> Command {
    let mut command = child::command(role, vars);
    command
        .env("TOKENVAULT_CHILD_KIND", place.kind.name())
        .env("TOKENVAULT_CHILD_PATH", &place.path);
    command
}

fn failed(what: impl Display, e: &Error) -> String {
    format!("{what}: {e} [{e:?}]")
}

fn open_store(kind: Kind, path: &Path) -> Result<Store, String> {
    let backend = kind
        .open(path)
        .map_err(|e| format!("open backend: {e} [{e:?}]"))?;
    EncryptedStore::open(backend, &raw_key()).map_err(|e| failed("open store", &e))
}

#[test]
#[ignore = "entry point for child processes spawned by the durable tests"]
fn child_entry() {
    child::entry(|role| {
        let kind = Kind::from_name(&var("TOKENVAULT_CHILD_KIND"));
        let path = PathBuf::from(var("TOKENVAULT_CHILD_PATH"));
        match role {
            "saver" => child_saver(kind, &path),
            "crasher" => child_crasher(kind, &path),
            "fsize" => child_fsize(kind, &path),
            "modes" => child_modes(kind, &path),
            "reload" => child_reload(kind, &path),
            "racer" => child_racer(kind, &path),
            other => Err(format!("unknown role {other:?}")),
        }
    });
}

// ---------------------------------------------------------------------------------------------
// 1. Processes saving concurrently
// ---------------------------------------------------------------------------------------------

const PROC_CHILDREN: usize = 4;
const PROC_SAVES: usize = 500;
const PROC_USERS: usize = 50;
/// Every this many saves, a child also inserts a user of its own.
const PROC_OWN_EVERY: usize = 10;
const PROC_OWN_USERS: usize = PROC_SAVES / PROC_OWN_EVERY;

fn own_user(index: usize, k: usize) -> String {
    format!("proc-own{index}-{k}")
}

/// Child: `SAVES` saves over `USERS` shared users, each followed by a find, and every
/// `PROC_OWN_EVERY` saves an insert of a user of its own (a backend that overwrote other
/// processes' writes with a stale state would lose those); reports its last write per shared
/// user.
fn child_saver(kind: Kind, path: &Path) -> Result<(), String> {
    let index = var_num::<usize>("TOKENVAULT_CHILD_INDEX");
    let saves = var_num::<usize>("TOKENVAULT_CHILD_SAVES");
    let users = var_num::<usize>("TOKENVAULT_CHILD_USERS");
    let started = Instant::now();
    let store = open_store(kind, path)?;
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
            .map_err(|e| failed(format_args!("save {i} of {name}"), &e))?;
        last.insert(user, access);
        let found = store
            .find_token(&by_user(&name))
            .map_err(|e| failed(format_args!("find after save {i}"), &e))?
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
                .map_err(|e| failed(format_args!("insert {own}"), &e))?;
        }
        if i % 100 == 99 {
            let tokens = store.get_tokens().map_err(|e| failed("get_tokens", &e))?;
            let names: BTreeSet<_> = tokens.iter().map(|t| t.user_name()).collect();
            if names.len() != tokens.len() || tokens.len() > users + PROC_CHILDREN * PROC_OWN_USERS
            {
                return Err(format!(
                    "after save {i}: {} records for {} user names",
                    tokens.len(),
                    names.len()
                ));
            }
        }
    }
    for k in 0..saves / PROC_OWN_EVERY {
        let own = own_user(index, k);
        let found = store
            .find_token(&by_user(&own))
            .map_err(|e| failed(format_args!("find {own}"), &e))?;
        if found.is_none() {
            return Err(format!("{own}, inserted by this child, is lost"));
        }
    }
    for (user, access) in &last {
        say!("LAST proc-user{user} {access}");
    }
    say!("DONE {}", started.elapsed().as_millis());
    Ok(())
}

/// 4 processes × 500 saves (each followed by a find) over 50 shared users, plus 50 inserts of
/// its own users each, every process on its own handle → one record per user, each shared
/// user holding some process's last write for it, no field lost by a merge, no insert lost,
/// and no process saw any error (a Busy / "database is locked" included).
fn processes(kind: Kind) {
    let _timer = Timer::start("processes", kind);
    let place = Place::new(kind);
    drop(place.create());
    let started = Instant::now();
    let outputs = child::run_all((0..PROC_CHILDREN).map(|index| {
        child_command(
            "saver",
            &place,
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
            "child {index} failed (any error fails it, Busy included): {}",
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

    let store = place.open();
    let tokens = store.get_tokens().expect("get_tokens");
    let names: BTreeSet<&str> = tokens
        .iter()
        .map(|t| t.user_name().expect("user name"))
        .collect();
    assert_eq!(names.len(), tokens.len(), "a user has two records");
    for index in 0..PROC_CHILDREN {
        for k in 0..PROC_OWN_USERS {
            let own = own_user(index, k);
            assert!(names.contains(own.as_str()), "{own} is lost");
            let found = store.find_token(&by_user(&own)).unwrap().unwrap();
            assert_eq!(
                field(&found, TokenField::AccessToken),
                format!("{own}-access")
            );
        }
    }
    let own_records = PROC_CHILDREN * PROC_OWN_USERS;
    assert_eq!(
        tokens.len(),
        PROC_USERS + own_records,
        "one record per user"
    );
    for token in &tokens {
        let name = token.user_name().unwrap();
        let Some(user) = name.strip_prefix("proc-user") else {
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
            "{name} lost its client id (a lost merge)"
        );
        let refresh = field(token, TokenField::RefreshToken);
        assert!(
            refresh.starts_with(&format!("r-{user}-")),
            "{name} lost its refresh token (a lost merge): {refresh:?}"
        );
    }
    let report = store.verify().expect("verify");
    assert!(report.failed.is_empty(), "verify: {:?}", report.failed);
    assert_eq!(report.ok, PROC_USERS + own_records);
    let saves = PROC_CHILDREN * (PROC_SAVES + PROC_OWN_USERS);
    eprintln!(
        "{}::processes: {saves} saves and {} finds in {elapsed:.2?} ({:.2} ms per save); \
         children took {child_ms:?} ms",
        kind.name(),
        PROC_CHILDREN * PROC_SAVES,
        elapsed.as_secs_f64() * 1000.0 / saves as f64
    );
}

// ---------------------------------------------------------------------------------------------
// 2. SIGKILL in the middle of saves
// ---------------------------------------------------------------------------------------------

const CRASH_ROUNDS: usize = 50;
const CRASH_USERS: u64 = 5;
/// Sequence numbers skipped after each kill, so that a save that committed without its ACK is
/// never reused.
const CRASH_MARGIN: u64 = 10;

fn crash_user(user: u64) -> String {
    format!("crashuser{user}@example.com")
}

fn crash_refresh(user: u64) -> String {
    format!("CRASH-REFRESH-SECRET-{user}")
}

/// Child: saves forever from `FIRST_SEQ` on, one user per iteration, printing `ACK user seq`
/// after each save returns.
fn child_crasher(kind: Kind, path: &Path) -> Result<(), String> {
    let first = var_num::<u64>("TOKENVAULT_CHILD_FIRST_SEQ");
    let store = open_store(kind, path)?;
    say!("READY");
    for seq in first..first + 1_000_000 {
        let user = seq % CRASH_USERS;
        let mut token = by_user(&crash_user(user))
            .with_access_token(format!("a-{seq}"))
            .with_refresh_token(crash_refresh(user));
        store
            .save_token(&mut token)
            .map_err(|e| failed(format_args!("save seq {seq}"), &e))?;
        say!("ACK {user} {seq}");
    }
    Ok(())
}

/// A saving child SIGKILLed at a random moment, 50 times → the store opens, verifies, has one
/// record per user, and each user holds its last ACKed save or the one save in flight after it.
fn crash(kind: Kind) {
    let _timer = Timer::start("crash", kind);
    let place = Place::new(kind);
    drop(place.create());
    let mut rng = Rng::seeded(&format!("{}::crash", kind.name()));
    let mut next_seq = 1;
    let mut last_ack: BTreeMap<u64, u64> = BTreeMap::new();
    // Per round, the save that may have committed without being ACKed.
    let mut in_flight = BTreeSet::new();
    let (mut acks, mut ready_rounds, mut silent_rounds) = (0, 0, 0);
    for round in 0..CRASH_ROUNDS {
        let delay = Duration::from_millis(5 + rng.below(56));
        let mut child = child_command(
            "crasher",
            &place,
            &[("TOKENVAULT_CHILD_FIRST_SEQ", next_seq.to_string())],
        )
        .spawn()
        .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || child_lines(stdout));
        std::thread::sleep(delay);
        child.kill().expect("kill child");
        let status = child.wait().expect("wait for child");
        let lines = reader.join().expect("reader thread");
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .expect("read stderr");
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "round {round}: the child ended on its own ({status}): {lines:?}\n{stderr}"
        );
        let mut last_in_round = next_seq - 1;
        for line in &lines {
            if line == "READY" {
                ready_rounds += 1;
                continue;
            }
            let ack = line
                .strip_prefix("ACK ")
                .unwrap_or_else(|| panic!("round {round}: unexpected line {line:?}"));
            let (user, seq) = ack.split_once(' ').expect("ACK <user> <seq>");
            let (user, seq): (u64, u64) = (user.parse().unwrap(), seq.parse().unwrap());
            assert_eq!(seq, last_in_round + 1, "round {round}: ACKs out of order");
            assert_eq!(user, seq % CRASH_USERS);
            last_ack.insert(user, seq);
            last_in_round = seq;
            acks += 1;
        }
        if last_in_round == next_seq - 1 {
            silent_rounds += 1;
        }
        in_flight.insert(last_in_round + 1);
        next_seq = last_in_round + 1 + CRASH_MARGIN;
    }

    let store = place.open();
    let report = store.verify().expect("verify after the kills");
    assert!(report.failed.is_empty(), "verify: {:?}", report.failed);
    let tokens = store.get_tokens().expect("get_tokens");
    let mut stored: BTreeMap<u64, u64> = BTreeMap::new();
    for token in &tokens {
        let name = token.user_name().expect("user name");
        let user: u64 = name
            .strip_prefix("crashuser")
            .and_then(|n| n.strip_suffix("@example.com"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected user {name}"));
        let seq: u64 = field(token, TokenField::AccessToken)
            .strip_prefix("a-")
            .and_then(|s| s.parse().ok())
            .expect("access token a-<seq>");
        assert!(stored.insert(user, seq).is_none(), "{name} has two records");
        assert_eq!(seq % CRASH_USERS, user, "{name} holds another user's save");
        assert_eq!(field(token, TokenField::RefreshToken), crash_refresh(user));
        match last_ack.get(&user) {
            Some(&acked) => assert!(
                seq == acked || (seq > acked && in_flight.contains(&seq)),
                "{name}: stored seq {seq}, last ACKed {acked} (in flight: {in_flight:?})"
            ),
            None => assert!(
                in_flight.contains(&seq),
                "{name}: stored seq {seq} was never saved"
            ),
        }
    }
    for (user, acked) in &last_ack {
        assert!(
            stored.contains_key(user),
            "{}: ACKed seq {acked} is lost",
            crash_user(*user)
        );
    }
    // The directory, stale temp file included, holds no plaintext; a stale temp file is 0600.
    let needles: Vec<Vec<u8>> = (0..CRASH_USERS)
        .flat_map(|u| [crash_user(u).into_bytes(), crash_refresh(u).into_bytes()])
        .collect();
    let files = assert_no_plaintext(place.dir.path(), &needles, "after the kills");
    for tmp in temp_files(&place.path) {
        let mode = fs::metadata(&tmp).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "stale {tmp:?} has mode {mode:o}");
    }
    // Still writable.
    drop(store);
    let store = place.open();
    save(&store, by_user(&crash_user(0)).with_access_token("a-final"));
    assert_eq!(store.verify().unwrap().failed.len(), 0);
    eprintln!(
        "{}::crash: {CRASH_ROUNDS} kills, {ready_rounds} after opening the store, \
         {silent_rounds} before any ACK, {acks} ACKs; files after: {files:?}",
        kind.name()
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Damaged and hostile files
// ---------------------------------------------------------------------------------------------

/// What a byte of the file backend's file is part of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Region {
    Magic,
    Version,
    WriteId,
    HeaderLen,
    Header,
    Count,
    IdLen(usize),
    Id(usize),
    Mask(usize),
    Tags(usize),
    SealedLen(usize),
    Sealed(usize),
}

/// The file backend's file, cut into its fields (see the module docs).
struct Layout {
    regions: Vec<(Range<usize>, Region)>,
    ids: Vec<String>,
}

impl Layout {
    fn parse(bytes: &[u8]) -> Self {
        struct Walk<'a> {
            bytes: &'a [u8],
            at: usize,
            regions: Vec<(Range<usize>, Region)>,
        }
        impl<'a> Walk<'a> {
            fn field(&mut self, len: usize, region: Region) -> &'a [u8] {
                let range = self.at..self.at + len;
                self.at += len;
                self.regions.push((range.clone(), region));
                &self.bytes[range]
            }
            fn number(&mut self, len: usize, region: Region) -> usize {
                self.field(len, region)
                    .iter()
                    .fold(0, |n, &b| (n << 8) | usize::from(b))
            }
        }
        let mut w = Walk {
            bytes,
            at: 0,
            regions: Vec::new(),
        };
        assert_eq!(w.field(8, Region::Magic), b"TKNVFILE");
        assert_eq!(w.field(1, Region::Version), [1]);
        w.field(16, Region::WriteId);
        let header_len = w.number(4, Region::HeaderLen);
        w.field(header_len, Region::Header);
        let count = w.number(4, Region::Count);
        let mut ids = Vec::new();
        for i in 0..count {
            let id_len = w.number(2, Region::IdLen(i));
            ids.push(String::from_utf8(w.field(id_len, Region::Id(i)).to_vec()).expect("UTF-8"));
            let mask = w.field(1, Region::Mask(i))[0];
            w.field(32 * mask.count_ones() as usize, Region::Tags(i));
            let sealed_len = w.number(4, Region::SealedLen(i));
            w.field(sealed_len, Region::Sealed(i));
        }
        assert_eq!(
            w.at,
            bytes.len(),
            "the documented layout covers the whole file"
        );
        Self {
            regions: w.regions,
            ids,
        }
    }

    fn region_of(&self, pos: usize) -> (Region, usize) {
        self.regions
            .iter()
            .find(|(range, _)| range.contains(&pos))
            .map(|(range, region)| (*region, pos - range.start))
            .expect("every byte is in a region")
    }
}

/// File backend: the file cut at every field boundary and at 50 random offsets → the open (or
/// the first read) fails with `Corrupt`; never a panic, never fewer records.
fn truncated_file_is_refused() {
    let _timer = Timer::start("truncated_file_is_refused", Kind::File);
    let place = Place::new(Kind::File);
    let store = place.create();
    let saved = save_some(&store, "trunc", 5);
    drop(store);
    let bytes = fs::read(&place.path).unwrap();
    let layout = Layout::parse(&bytes);
    let mut cuts: BTreeSet<usize> = layout.regions.iter().map(|(r, _)| r.start).collect();
    let boundaries = cuts.len();
    let mut rng = Rng::seeded("file::truncated_file_is_refused");
    for _ in 0..50 {
        cuts.insert(rng.index(bytes.len()));
    }
    for &cut in &cuts {
        fs::write(&place.path, &bytes[..cut]).unwrap();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            FileBackend::open(&place.path).and_then(|b| b.list().map(|records| records.len()))
        }));
        match outcome {
            Err(_) => panic!("panicked on the file cut to {cut} of {} bytes", bytes.len()),
            Ok(Ok(n)) => panic!(
                "the file cut to {cut} of {} bytes opened, with {n} of {} records",
                bytes.len(),
                saved.len()
            ),
            Ok(Err(e)) => assert_eq!(e.kind(), BackendErrorKind::Corrupt, "cut at {cut}: {e}"),
        }
    }
    fs::write(&place.path, &bytes).unwrap();
    assert_eq!(place.open().get_tokens().unwrap(), saved, "the intact file");
    eprintln!(
        "file::truncated_file_is_refused: {} cuts ({boundaries} at field boundaries) of a {}-byte file",
        cuts.len(),
        bytes.len()
    );
}

enum FlipOutcome {
    Backend(BackendError),
    Store(Error),
    Opened {
        by_id: Vec<Result<Option<OAuthToken>, Error>>,
        verify: Result<VerifyReport, Error>,
    },
}

fn flip_outcome(place: &Place, saved: &[OAuthToken]) -> FlipOutcome {
    let backend = match FileBackend::open(&place.path) {
        Ok(backend) => Box::new(backend) as Box<dyn Backend>,
        Err(e) => return FlipOutcome::Backend(e),
    };
    let store = match EncryptedStore::open(backend, &raw_key()) {
        Ok(store) => store,
        Err(e) => return FlipOutcome::Store(e),
    };
    FlipOutcome::Opened {
        by_id: saved
            .iter()
            .map(|t| store.find_token_by_id(id_of(t)))
            .collect(),
        verify: store.verify(),
    }
}

/// Checks one flip's outcome against where the byte is; returns a label for the summary.
fn check_flip(
    pos: usize,
    (region, offset): (Region, usize),
    layout: &Layout,
    saved: &[OAuthToken],
    outcome: FlipOutcome,
) -> &'static str {
    let ctx = format!("byte {pos} ({region:?} + {offset}) flipped");
    let (by_id, verify) = match outcome {
        FlipOutcome::Backend(e) => {
            assert!(
                matches!(
                    region,
                    Region::Magic
                        | Region::Version
                        | Region::HeaderLen
                        | Region::Count
                        | Region::IdLen(_)
                        | Region::Id(_)
                        | Region::Mask(_)
                        | Region::SealedLen(_)
                ),
                "{ctx}: the backend refused a file whose structure is intact: {e}"
            );
            let expected = if region == Region::Version {
                BackendErrorKind::NotSupported
            } else {
                BackendErrorKind::Corrupt
            };
            assert_eq!(e.kind(), expected, "{ctx}: {e}");
            return "backend refused the file";
        }
        FlipOutcome::Store(e) => {
            assert_eq!(
                region,
                Region::Header,
                "{ctx}: the store did not open, though its header is intact: {e:?}"
            );
            return "store refused the header";
        }
        FlipOutcome::Opened { by_id, verify } => (
            by_id,
            verify.unwrap_or_else(|e| panic!("{ctx}: verify failed as a whole: {e:?}")),
        ),
    };
    // Whatever opens is exactly what was saved.
    for (token, got) in saved.iter().zip(&by_id) {
        if let Ok(Some(got)) = got {
            assert_eq!(
                got,
                token,
                "{ctx}: {} opened with other fields",
                id_of(token)
            );
        }
    }
    let bad: Vec<usize> = (0..saved.len())
        .filter(|&i| !matches!(by_id[i], Ok(Some(_))))
        .collect();
    let failed: Vec<&str> = verify.failed.iter().map(|(id, _)| id.as_str()).collect();
    match region {
        Region::WriteId => {
            assert!(
                bad.is_empty() && failed.is_empty(),
                "{ctx}: {bad:?} {failed:?}"
            );
            "harmless (write id)"
        }
        Region::Sealed(i) => {
            let id = &layout.ids[i];
            assert_eq!(bad, [i], "{ctx}: not exactly record {i} failed");
            let error = by_id[i].as_ref().expect_err("failed");
            // Version byte, key id, then nonce, ciphertext and tag (SECURITY.md).
            let named = match offset {
                0 => matches!(error, Error::UnsupportedFormat { .. }),
                1..5 => {
                    matches!(error, Error::UnknownKey { what: Subject::Record(r), .. } if r == id)
                }
                _ => tampered_record(error, id),
            };
            assert!(named, "{ctx}: record {id} failed with {error:?}");
            assert_eq!(failed, [id.as_str()], "{ctx}: verify");
            "record failed alone"
        }
        Region::Tags(i) => {
            assert!(bad.is_empty(), "{ctx}: {bad:?}");
            assert_eq!(failed, [layout.ids[i].as_str()], "{ctx}: verify");
            assert!(
                tampered_record(&verify.failed[0].1, &layout.ids[i]),
                "{ctx}"
            );
            "tag mismatch reported by verify"
        }
        Region::Id(i) => {
            assert_eq!(bad, [i], "{ctx}");
            assert!(matches!(by_id[i], Ok(None)), "{ctx}: {:?}", by_id[i]);
            assert_eq!(failed.len(), 1, "{ctx}: verify {failed:?}");
            assert_ne!(failed[0], layout.ids[i], "{ctx}");
            assert!(tampered_record(&verify.failed[0].1, failed[0]), "{ctx}");
            "record renamed, reported by verify"
        }
        _ => panic!(
            "{ctx}: the damage went unnoticed: the store opened, {} records read back, verify ok {}",
            saved.len() - bad.len(),
            verify.ok
        ),
    }
}

/// File backend: ~200 random single-bit flips, plus one in the first byte of every field →
/// each is refused by the backend (Corrupt / NotSupported), by the store (header), or fails
/// alone the record it is in (Tampered naming it) while the others open unchanged, or is in the
/// write id (harmless); never a token with other fields, never a panic.
fn byte_flips_are_detected_and_contained() {
    let _timer = Timer::start("byte_flips_are_detected_and_contained", Kind::File);
    let place = Place::new(Kind::File);
    let store = place.create();
    let saved = save_some(&store, "flip", 6);
    drop(store);
    let bytes = fs::read(&place.path).unwrap();
    let layout = Layout::parse(&bytes);
    assert!(
        layout.ids.iter().eq(saved.iter().map(id_of)),
        "file order is id order"
    );
    let mut rng = Rng::seeded("file::byte_flips_are_detected_and_contained");
    let mut positions: Vec<usize> = layout
        .regions
        .iter()
        .filter(|(r, _)| !r.is_empty())
        .flat_map(|(r, _)| [r.start, r.end - 1])
        .collect();
    positions.extend((0..200).map(|_| rng.index(bytes.len())));
    let mut summary: BTreeMap<&str, usize> = BTreeMap::new();
    for &pos in &positions {
        let mut damaged = bytes.clone();
        damaged[pos] ^= 1u8 << rng.below(8);
        fs::write(&place.path, &damaged).unwrap();
        let region = layout.region_of(pos);
        let outcome = catch_unwind(AssertUnwindSafe(|| flip_outcome(&place, &saved)))
            .unwrap_or_else(|_| panic!("panicked with byte {pos} ({region:?}) flipped"));
        *summary
            .entry(check_flip(pos, region, &layout, &saved, outcome))
            .or_default() += 1;
    }
    fs::write(&place.path, &bytes).unwrap();
    assert_eq!(place.open().get_tokens().unwrap(), saved, "the intact file");
    eprintln!(
        "file::byte_flips: {} flips in a {}-byte file: {summary:?}",
        positions.len(),
        bytes.len()
    );
}

/// Both: one record's sealed bytes copied over another's → reading the victim is `Tampered`
/// naming it, `verify` lists exactly it, the others open.
fn copied_blob_is_tampered(kind: Kind) {
    let _timer = Timer::start("copied_blob_is_tampered", kind);
    let place = Place::new(kind);
    let store = place.create();
    let saved = save_some(&store, "blob", 3);
    drop(store);
    let (donor, victim) = (id_of(&saved[0]).to_owned(), id_of(&saved[1]).to_owned());
    match kind {
        Kind::Sqlite => {
            let conn = rusqlite::Connection::open(&place.path).unwrap();
            let changed = conn
                .execute(
                    "UPDATE tokenvault_records SET sealed = \
                     (SELECT sealed FROM tokenvault_records WHERE id = ?1) WHERE id = ?2",
                    rusqlite::params![donor, victim],
                )
                .unwrap();
            assert_eq!(changed, 1);
        }
        Kind::File => {
            let backend = place.backend();
            let sealed = backend.get(&donor).unwrap().unwrap().sealed;
            let tags = backend.get(&victim).unwrap().unwrap().tags;
            backend
                .transact(&mut |tx| {
                    Ok(tx.put(StoredRecord {
                        id: victim.clone(),
                        tags,
                        sealed: sealed.clone(),
                    })?)
                })
                .unwrap();
        }
    }
    let store = place.open();
    let by_id = store.find_token_by_id(&victim);
    assert!(
        matches!(&by_id, Err(e) if tampered_record(e, &victim)),
        "{by_id:?}"
    );
    let by_name = store.find_token(&by_user(saved[1].user_name().unwrap()));
    assert!(
        matches!(&by_name, Err(e) if tampered_record(e, &victim)),
        "{by_name:?}"
    );
    for token in [&saved[0], &saved[2]] {
        assert_eq!(
            store.find_token_by_id(id_of(token)).unwrap().as_ref(),
            Some(token)
        );
    }
    assert!(store.get_tokens().is_err());
    let report = store.verify().unwrap();
    assert_eq!(report.ok, 2);
    assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
    assert_eq!(report.failed[0].0, victim);
    assert!(tampered_record(&report.failed[0].1, &victim));
}

/// Both: the header replaced by another store's. Under another key it never opens. Under the
/// same key it may open (nothing binds a header to its backend, as tests/threat_model.rs
/// documents), but then no record of this store opens; and a handle opened before the swap
/// refuses to write.
fn foreign_header_is_refused(kind: Kind) {
    let _timer = Timer::start("foreign_header_is_refused", kind);
    let mine = Place::new(kind);
    let store = mine.create();
    let saved = save_some(&store, "mine", 2);
    let same_key = Place::new(kind);
    save_some(&same_key.create(), "theirs", 1);
    let other_key = Place::new(kind);
    let other = Credential::raw_key(RawKey::from_bytes([7; 32]));
    drop(EncryptedStore::create(other_key.backend(), &other).unwrap());

    mine.put_header(&other_key.header());
    match EncryptedStore::open(mine.backend(), &raw_key()) {
        Err(Error::WrongKey | Error::Tampered { .. }) => {}
        Err(e) => panic!("header of a store under another key: {e:?}"),
        Ok(_) => panic!("opened with the header of a store under another key"),
    }

    mine.put_header(&same_key.header());
    let before = mine.backend().list().unwrap();
    let mut late = full_token("late", 0);
    let refused = store.save_token(&mut late);
    assert!(
        matches!(
            refused,
            Err(Error::Tampered {
                what: Subject::Header
            } | Error::Rekeyed)
        ),
        "the open handle wrote after its header was replaced: {refused:?}"
    );
    assert_eq!(mine.backend().list().unwrap(), before, "nothing written");
    drop(store);
    match EncryptedStore::open(mine.backend(), &raw_key()) {
        Err(e) => assert!(
            matches!(e, Error::WrongKey | Error::Tampered { .. }),
            "{e:?}"
        ),
        Ok(store) => {
            for token in &saved {
                let id = id_of(token);
                let got = store.find_token_by_id(id);
                assert!(matches!(&got, Err(e) if tampered_record(e, id)), "{got:?}");
                let found = store.find_token(&by_user(token.user_name().unwrap()));
                assert!(
                    matches!(found, Ok(None) | Err(Error::Tampered { .. })),
                    "{found:?}"
                );
            }
            assert!(store.get_tokens().is_err());
            assert_eq!(store.verify().unwrap().failed.len(), saved.len());
        }
    }
}

/// SQLite: files that are not (or not ours, or too new) → `open` fails clearly and leaves
/// the file's bytes as they were.
fn sqlite_refuses_foreign_files() {
    let _timer = Timer::start("sqlite_refuses_foreign_files", Kind::Sqlite);
    let mut rng = Rng::seeded("sqlite::sqlite_refuses_foreign_files");
    let check = |path: &Path, expected: BackendErrorKind, what: &str| {
        let before = fs::read(path).unwrap();
        let result = catch_unwind(AssertUnwindSafe(|| SqliteBackend::open(path)))
            .unwrap_or_else(|_| panic!("{what}: open panicked"));
        match result {
            Ok(_) => panic!("{what}: opened"),
            Err(e) => assert_eq!(e.kind(), expected, "{what}: {e}"),
        }
        assert!(
            fs::read(path).unwrap() == before,
            "{what}: the file changed"
        );
        eprintln!(
            "sqlite::{what}: refused; files after: {:?}",
            modes_in(path.parent().unwrap()).keys()
        );
    };

    let dir = tempfile::tempdir().unwrap();
    let random = dir.path().join("random.db");
    let noise: Vec<u8> = (0..8192).map(|_| rng.next() as u8).collect();
    fs::write(&random, &noise).unwrap();
    check(&random, BackendErrorKind::Corrupt, "random bytes");

    let theirs = dir.path().join("theirs.db");
    let conn = rusqlite::Connection::open(&theirs).unwrap();
    conn.execute_batch(
        "CREATE TABLE oauthtoken (id TEXT PRIMARY KEY, user_name TEXT, access_token TEXT);
         INSERT INTO oauthtoken VALUES ('1', 'ann@example.com', 'their-access-token');",
    )
    .unwrap();
    drop(conn);
    check(&theirs, BackendErrorKind::Corrupt, "someone else's tables");

    let foreign_id = dir.path().join("foreign-app-id.db");
    let conn = rusqlite::Connection::open(&foreign_id).unwrap();
    conn.pragma_update(None, "application_id", 0x1234_5678)
        .unwrap();
    drop(conn);
    check(
        &foreign_id,
        BackendErrorKind::Corrupt,
        "another application id",
    );

    let newer = Place::new(Kind::Sqlite);
    save_some(&newer.create(), "newer", 1);
    let conn = rusqlite::Connection::open(&newer.path).unwrap();
    let changed = conn
        .execute(
            "UPDATE tokenvault_meta SET value = 99 WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn); // the last connection: checkpoints and removes the WAL
    assert!(!sibling(&newer.path, "-wal").exists());
    check(
        &newer.path,
        BackendErrorKind::NotSupported,
        "schema version 99",
    );
}

/// File backend: files that are not (or not ours, or too new) → `open` fails clearly and
/// leaves the file's bytes as they were.
fn file_refuses_foreign_files() {
    let _timer = Timer::start("file_refuses_foreign_files", Kind::File);
    let mut rng = Rng::seeded("file::file_refuses_foreign_files");
    let check = |bytes: &[u8], expected: BackendErrorKind, what: &str| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.tv");
        fs::write(&path, bytes).unwrap();
        let result = catch_unwind(AssertUnwindSafe(|| FileBackend::open(&path)))
            .unwrap_or_else(|_| panic!("{what}: open panicked"));
        match result {
            Ok(_) => panic!("{what}: opened"),
            Err(e) => assert_eq!(e.kind(), expected, "{what}: {e}"),
        }
        assert!(
            fs::read(&path).unwrap() == bytes,
            "{what}: the file changed"
        );
    };
    let noise: Vec<u8> = (0..8192).map(|_| rng.next() as u8).collect();
    check(&noise, BackendErrorKind::Corrupt, "random bytes");
    check(b"", BackendErrorKind::Corrupt, "an empty file");

    let sqlite = Place::new(Kind::Sqlite);
    save_some(&sqlite.create(), "sqlite", 1);
    check(
        &fs::read(&sqlite.path).unwrap(),
        BackendErrorKind::Corrupt,
        "a SQLite store",
    );

    let place = Place::new(Kind::File);
    save_some(&place.create(), "file", 2);
    let good = fs::read(&place.path).unwrap();
    let mut newer = good.clone();
    newer[8] = 3;
    check(&newer, BackendErrorKind::NotSupported, "format version 3");
    // Version 2 is version 1 with an audit section: these bytes lack it.
    let mut audited = good.clone();
    audited[8] = 2;
    check(
        &audited,
        BackendErrorKind::Corrupt,
        "format version 2 without its audit section",
    );
    let mut longer = good.clone();
    longer.push(0);
    check(&longer, BackendErrorKind::Corrupt, "a trailing byte");
}

// ---------------------------------------------------------------------------------------------
// 4. No plaintext on disk
// ---------------------------------------------------------------------------------------------

/// Both: distinctive values saved, updated and deleted → no file of the store's directory
/// (database, WAL, shared memory, lock, temp) contains any of them or the raw key, while the
/// store is open (the WAL has content) and after it is closed.
fn no_plaintext_on_disk(kind: Kind) {
    let _timer = Timer::start("no_plaintext_on_disk", kind);
    let place = Place::new(kind);
    let store = place.create();
    let saved = save_some(&store, "PLAINTEXTCANARY", 8);
    let mut needles: Vec<Vec<u8>> = Vec::new();
    for token in &saved {
        for which in TokenField::ALL {
            if which != TokenField::Id {
                needles.push(field(token, which).into_bytes());
            }
        }
    }
    for (i, token) in saved.iter().take(4).enumerate() {
        let access = format!("PLAINTEXTCANARY-updated-access-{i}");
        let refresh = format!("PLAINTEXTCANARY-updated-refresh-{i}");
        save(
            &store,
            by_user(token.user_name().unwrap())
                .with_access_token(&access)
                .with_refresh_token(&refresh),
        );
        needles.extend([access.into_bytes(), refresh.into_bytes()]);
    }
    for token in &saved[5..7] {
        store.delete_token(id_of(token)).unwrap();
    }
    needles.push(vec![0x42; 32]); // the raw key (common::raw_key)
    assert!(
        needles.iter().all(|n| n.len() >= 13),
        "needles too short to be unambiguous"
    );

    if kind == Kind::Sqlite {
        let wal = fs::metadata(sibling(&place.path, "-wal")).expect("a WAL while open");
        assert!(wal.len() > 0, "the WAL is empty: nothing to scan");
    }
    let open_files = assert_no_plaintext(place.dir.path(), &needles, "store open");
    drop(store);
    let closed_files = assert_no_plaintext(place.dir.path(), &needles, "store closed");
    eprintln!(
        "{}::no_plaintext_on_disk: {} needles; scanned while open {open_files:?}, after close {closed_files:?}",
        kind.name(),
        needles.len()
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Full disk
// ---------------------------------------------------------------------------------------------

/// 15 KiB: under the 16 KiB bound on one field (`MAX_FIELD_LEN`).
fn big_url(i: u64) -> String {
    format!("https://big.example/{i}/{}", "p".repeat(15 * 1024))
}

/// Lowers this process's `RLIMIT_FSIZE` to `limit`, with `SIGXFSZ` ignored so that a write
/// past it fails with `EFBIG` instead of killing the process.
fn limit_file_size(limit: u64) -> Result<(), String> {
    // SAFETY: `signal` is given a valid signal number and `SIG_IGN`, so no handler (no Rust
    // code) ever runs on delivery; nothing else in this child installs a SIGXFSZ handler.
    let previous = unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    if previous == libc::SIG_ERR {
        return Err(format!("signal: {}", std::io::Error::last_os_error()));
    }
    let mut current = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `current` is a valid, exclusively borrowed `rlimit` for `getrlimit` to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut current) } != 0 {
        return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
    }
    let lowered = libc::rlimit {
        rlim_cur: limit.min(current.rlim_max),
        rlim_max: current.rlim_max,
    };
    // SAFETY: `lowered` is a valid `rlimit` that `setrlimit` only reads.
    if unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &lowered) } != 0 {
        return Err(format!("setrlimit: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Child: opens the store, limits file sizes to 256 KiB above the largest store file, then
/// saves 64 KiB tokens until one fails; reports `ACK i`, then `FAIL i <kind>`.
fn child_fsize(kind: Kind, path: &Path) -> Result<(), String> {
    let store = open_store(kind, path)?;
    let before = store
        .get_tokens()
        .map_err(|e| failed("get_tokens", &e))?
        .len();
    let largest = files_in(path.parent().unwrap())
        .iter()
        .map(|(_, bytes)| bytes.len() as u64)
        .max()
        .unwrap_or(0);
    let limit = largest + 256 * 1024;
    limit_file_size(limit)?;
    say!("LIMIT {limit}");
    for i in 0..200 {
        // Four 15 KiB fields: a 60 KiB record.
        let mut token = by_user(&format!("big-user{i}"))
            .with_access_token(format!("big-access-{i}"))
            .with_redirect_url(big_url(i))
            .with_api_domain(big_url(i))
            .with_client_id(big_url(i))
            .with_client_secret(big_url(i));
        match store.save_token(&mut token) {
            Ok(()) => say!("ACK {i}"),
            Err(e) => {
                let kind = backend_kind(&e)
                    .map_or_else(|| "not-a-backend-error".into(), |k| format!("{k:?}"));
                say!("FAIL {i} {kind}");
                say!("FAILMSG {e} [{e:?}]");
                // The handle still reads, and shows nothing of the failed save.
                let after = store
                    .get_tokens()
                    .map_err(|e| failed("get_tokens after the failure", &e))?;
                say!("AFTER {}", after.len() - before);
                return Ok(());
            }
        }
    }
    say!("NOFAIL");
    Ok(())
}

/// Both: a child with `RLIMIT_FSIZE` just above the store's size saves 60 KiB tokens until one
/// fails → the failure is an `Io` error (no panic, no silent loss), and the store then opens,
/// verifies and holds exactly the saves acknowledged before the failure.
fn full_disk(kind: Kind) {
    let _timer = Timer::start("full_disk", kind);
    let place = Place::new(kind);
    let store = place.create();
    let pre = save_some(&store, "pre", 3);
    drop(store);
    let lines = child::run(child_command("fsize", &place, &[]), "fsize child");
    assert!(
        !lines.iter().any(|l| l == "NOFAIL"),
        "the child never hit the file size limit: {lines:?}"
    );
    let fail = lines
        .iter()
        .find_map(|l| l.strip_prefix("FAIL "))
        .unwrap_or_else(|| panic!("no FAIL line: {lines:?}"));
    let (failed_at, error_kind) = fail.split_once(' ').expect("FAIL <i> <kind>");
    let failed_at: u64 = failed_at.parse().unwrap();
    let acked: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("ACK "))
        .map(|i| i.parse().unwrap())
        .collect();
    let message = lines.iter().find_map(|l| l.strip_prefix("FAILMSG "));
    assert_eq!(acked, (0..failed_at).collect::<Vec<_>>());
    assert!(
        !acked.is_empty(),
        "not even one save fit under the limit: {lines:?}"
    );
    assert_eq!(error_kind, "Io", "the failed save: {message:?}");
    let after = lines.iter().find_map(|l| l.strip_prefix("AFTER "));
    assert_eq!(
        after,
        Some(acked.len().to_string().as_str()),
        "the child's handle after the failure"
    );
    if kind == Kind::File {
        let left = temp_files(&place.path);
        assert!(left.is_empty(), "the failed save left {left:?} behind");
    }

    let store = place.open();
    let report = store.verify().expect("verify");
    assert!(report.failed.is_empty(), "verify: {:?}", report.failed);
    assert_eq!(
        report.ok,
        pre.len() + acked.len(),
        "records after the failure"
    );
    for token in &pre {
        assert_eq!(
            store.find_token_by_id(id_of(token)).unwrap().as_ref(),
            Some(token)
        );
    }
    for &i in &acked {
        let found = store
            .find_token(&by_user(&format!("big-user{i}")))
            .unwrap()
            .unwrap_or_else(|| panic!("ACKed big-user{i} is lost"));
        assert_eq!(found.redirect_url(), Some(big_url(i).as_str()));
        assert_eq!(
            field(&found, TokenField::AccessToken),
            format!("big-access-{i}")
        );
    }
    assert!(
        store
            .find_token(&by_user(&format!("big-user{failed_at}")))
            .unwrap()
            .is_none(),
        "the failed save was written"
    );
    save(&store, full_token("after-full-disk", 0));
    eprintln!(
        "{}::full_disk: {} saves of 64 KiB fit, then {error_kind}: {}",
        kind.name(),
        acked.len(),
        message.unwrap_or_default()
    );
}

// ---------------------------------------------------------------------------------------------
// 6. File modes
// ---------------------------------------------------------------------------------------------

/// Child: with umask 0 (so a missing explicit mode would show), creates a store (the file
/// backend over a stale 0644 temp file), saves, updates, deletes, and reports every file's mode
/// after opening, after creating (the first write, through the stale temp file) and at the
/// end, the store still open.
fn child_modes(kind: Kind, path: &Path) -> Result<(), String> {
    // SAFETY: `umask` only replaces this process's file-creation mask; it takes and returns an
    // integer and touches no memory.
    unsafe { libc::umask(0) };
    if kind == Kind::File {
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(sibling(path, ".tmp"))
            .and_then(|mut f| f.write_all(b"stale temp file of an earlier crash"))
            .map_err(|e| format!("stale temp file: {e}"))?;
    }
    let report = |stage: &str| {
        for (name, mode) in modes_in(path.parent().unwrap()) {
            say!("MODE {stage} {name} {mode:o}");
        }
    };
    let backend = kind.open(path).map_err(|e| format!("open: {e}"))?;
    report("opened");
    let store = EncryptedStore::create(backend, &raw_key()).map_err(|e| failed("create", &e))?;
    report("created");
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut token = full_token("modes", i);
        store
            .save_token(&mut token)
            .map_err(|e| failed("save", &e))?;
        ids.push(id_of(&token).to_owned());
    }
    let mut update = by_user("modes-user0@example.com").with_access_token("modes-new-access");
    store
        .save_token(&mut update)
        .map_err(|e| failed("update", &e))?;
    store
        .delete_token(&ids[2])
        .map_err(|e| failed("delete", &e))?;
    report("written");
    drop(store);
    Ok(())
}

/// The file backend's temporary files beside `path` (`PATH.tmp-<random>`).
fn temp_files(path: &Path) -> Vec<PathBuf> {
    let prefix = format!(
        "{}{}",
        path.file_name().unwrap().to_string_lossy(),
        tokenvault::backend::TEMP_SUFFIX
    );
    fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&prefix)
        })
        .collect()
}

/// Both: the SQLite database, `-wal` and `-shm`, and the file backend's file and `.lock` (and
/// temporary files if any) are 0600, even under umask 0; a stale 0644 `PATH.tmp` planted
/// beside the store is never used.
fn file_modes(kind: Kind) {
    let _timer = Timer::start("file_modes", kind);
    let place = Place::new(kind);
    let lines = child::run(child_command("modes", &place, &[]), "modes child");
    let mut modes: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for line in lines.iter().filter_map(|l| l.strip_prefix("MODE ")) {
        let mut parts = line.split(' ');
        let (Some(stage), Some(file), Some(mode)) = (parts.next(), parts.next(), parts.next())
        else {
            panic!("MODE <stage> <file> <mode>: {line:?}");
        };
        modes.entry(stage).or_default().insert(file, mode);
    }
    let name = kind.file_name();
    let expected: Vec<String> = match kind {
        Kind::File => vec![name.into(), format!("{name}.lock")],
        Kind::Sqlite => vec![name.into(), format!("{name}-wal"), format!("{name}-shm")],
    };
    for stage in ["created", "written"] {
        let files = modes.get(stage).map(|m| m.keys().collect::<Vec<_>>());
        for file in &expected {
            assert!(
                modes
                    .get(stage)
                    .is_some_and(|m| m.contains_key(file.as_str())),
                "{file} missing after {stage}: {files:?}"
            );
        }
    }
    let planted = format!("{name}.tmp");
    for (stage, files) in &modes {
        for (file, mode) in files {
            if *file == planted {
                // The stale 0644 file this case planted: never opened or reused (temporary
                // files get fresh random names, created exclusively), so left as it was.
                assert_eq!(*mode, "644", "the planted file was touched: {modes:?}");
                continue;
            }
            assert_eq!(
                *mode, "600",
                "{file} has mode {mode} after {stage} (created under umask 0): {modes:?}"
            );
        }
    }
    // And as left on disk after the child exited (the planted file aside, checked above).
    for (file, mode) in modes_in(place.dir.path()) {
        if file == planted {
            continue;
        }
        assert_eq!(
            mode, 0o600,
            "{file} has mode {mode:o} after the child exited"
        );
    }
    eprintln!("{}::file_modes: {modes:?}", kind.name());
}

// ---------------------------------------------------------------------------------------------
// 7. Another process's writes seen through an open handle
// ---------------------------------------------------------------------------------------------

/// Child: one step of `reload_across_processes` on its own handle.
fn child_reload(kind: Kind, path: &Path) -> Result<(), String> {
    let store = open_store(kind, path)?;
    let step = var("TOKENVAULT_CHILD_STEP");
    let mut token = match step.as_str() {
        "insert" => by_user("reload-ann")
            .with_client_id("1000.R")
            .with_refresh_token("reload-r-1")
            .with_access_token("reload-a-1"),
        "update" => by_user("reload-ann").with_access_token("reload-a-2"),
        "rotate" => {
            store.rotate().map_err(|e| failed("rotate", &e))?;
            by_user("reload-bob").with_access_token("reload-b-1")
        }
        "delete" => {
            return store
                .delete_token(&var("TOKENVAULT_CHILD_ID"))
                .map_err(|e| failed("delete", &e));
        }
        other => return Err(format!("unknown step {other:?}")),
    };
    store
        .save_token(&mut token)
        .map_err(|e| failed(format_args!("{step}: save"), &e))?;
    say!("ID {}", id_of(&token));
    Ok(())
}

/// Both: a handle kept open in this process sees a child's insert, update, key rotation and
/// delete without reopening, and its own writes do not undo the child's.
fn reload_across_processes(kind: Kind) {
    let _timer = Timer::start("reload_across_processes", kind);
    let place = Place::new(kind);
    let zed = save(
        &place.create(),
        by_user("reload-zed").with_access_token("reload-z-1"),
    );
    let handle = place.open();
    let ann = || by_user("reload-ann");
    let step = |step: &str, id: &str| {
        let command = child_command(
            "reload",
            &place,
            &[
                ("TOKENVAULT_CHILD_STEP", step.to_owned()),
                ("TOKENVAULT_CHILD_ID", id.to_owned()),
            ],
        );
        let lines = child::run(command, &format!("reload child ({step})"));
        lines
            .iter()
            .find_map(|l| l.strip_prefix("ID "))
            .map(str::to_owned)
    };
    let access_of = |query: &OAuthToken| {
        handle
            .find_token(query)
            .unwrap()
            .map(|t| field(&t, TokenField::AccessToken))
    };

    assert_eq!(access_of(&ann()), None);
    assert_eq!(handle.get_tokens().unwrap().len(), 1);

    let id = step("insert", "").expect("the child's record id");
    assert_eq!(
        access_of(&ann()).as_deref(),
        Some("reload-a-1"),
        "insert not seen"
    );
    assert!(handle.find_token_by_id(&id).unwrap().is_some());
    assert_eq!(handle.get_tokens().unwrap().len(), 2);

    step("update", "");
    assert_eq!(
        access_of(&ann()).as_deref(),
        Some("reload-a-2"),
        "update not seen"
    );
    let by_access = |a: &str| OAuthToken::new().with_access_token(a);
    assert_eq!(
        access_of(&by_access("reload-a-2")).as_deref(),
        Some("reload-a-2")
    );
    assert_eq!(
        access_of(&by_access("reload-a-1")),
        None,
        "stale access token found"
    );
    let found = handle.find_token_by_id(&id).unwrap().unwrap();
    assert_eq!(found.client_id(), Some("1000.R"));

    // A write through the old handle keeps the child's writes.
    save(
        &handle,
        by_user("reload-zed").with_access_token("reload-z-2"),
    );
    {
        let fresh = place.open();
        let ann = fresh
            .find_token(&ann())
            .unwrap()
            .expect("ann after the parent's save");
        assert_eq!(field(&ann, TokenField::AccessToken), "reload-a-2");
        let zed = fresh.find_token_by_id(id_of(&zed)).unwrap().unwrap();
        assert_eq!(field(&zed, TokenField::AccessToken), "reload-z-2");
    }

    step("rotate", "");
    assert_eq!(
        access_of(&by_user("reload-bob")).as_deref(),
        Some("reload-b-1"),
        "a record under the child's new data key"
    );
    assert_eq!(
        access_of(&ann()).as_deref(),
        Some("reload-a-2"),
        "after rotation"
    );
    save(
        &handle,
        by_user("reload-cyd").with_access_token("reload-c-1"),
    );
    let report = handle.verify().unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.ok, 4);

    step("delete", &id);
    assert_eq!(access_of(&ann()), None, "delete not seen");
    assert!(handle.find_token_by_id(&id).unwrap().is_none());
    assert_eq!(handle.get_tokens().unwrap().len(), 3);
}

// ---------------------------------------------------------------------------------------------
// 8. Processes racing to create the store
// ---------------------------------------------------------------------------------------------

const RACE_ROUNDS: usize = 5;
const RACERS: usize = 4;

/// Child: at `START_AT` (unix ms), opens the backend at a path where nothing exists yet,
/// opens the store or creates it (as an application starting up would), and saves one token.
fn child_racer(kind: Kind, path: &Path) -> Result<(), String> {
    let index = var_num::<u64>("TOKENVAULT_CHILD_INDEX");
    let start_at = UNIX_EPOCH + Duration::from_millis(var_num::<u64>("TOKENVAULT_CHILD_START_AT"));
    if let Ok(wait) = start_at.duration_since(SystemTime::now()) {
        std::thread::sleep(wait);
    }
    let open = || {
        kind.open(path)
            .map_err(|e| format!("open backend: {e} [{e:?}]"))
    };
    let store = loop {
        match EncryptedStore::open(open()?, &raw_key()) {
            Ok(store) => break store,
            Err(Error::NoStore) => {}
            Err(e) => return Err(failed("open store", &e)),
        }
        match EncryptedStore::create(open()?, &raw_key()) {
            Ok(store) => {
                say!("CREATED");
                break store;
            }
            Err(Error::StoreExists) => {}
            Err(e) => return Err(failed("create store", &e)),
        }
    };
    let mut token = by_user(&format!("racer{index}")).with_access_token(format!("race-a-{index}"));
    store
        .save_token(&mut token)
        .map_err(|e| failed("save", &e))?;
    Ok(())
}

/// Both, beyond the brief: 4 processes start at the same instant on a path where no store
/// exists, each opening-or-creating it and saving a token (5 rounds) → all succeed (no Busy,
/// no "not a tokenvault store"), exactly one creates it, and the store holds the 4 tokens.
fn first_open_race(kind: Kind) {
    let _timer = Timer::start("first_open_race", kind);
    for round in 0..RACE_ROUNDS {
        let place = Place::new(kind);
        let start_at =
            SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_millis(150);
        let children: Vec<_> = (0..RACERS)
            .map(|index| {
                child_command(
                    "racer",
                    &place,
                    &[
                        ("TOKENVAULT_CHILD_INDEX", index.to_string()),
                        (
                            "TOKENVAULT_CHILD_START_AT",
                            start_at.as_millis().to_string(),
                        ),
                    ],
                )
                .spawn()
                .expect("spawn child")
            })
            .collect();
        let mut created = 0;
        for (index, child) in children.into_iter().enumerate() {
            let output = child.wait_with_output().expect("wait for child");
            assert!(
                output.status.success(),
                "round {round}, racer {index} failed: {}",
                describe(&output)
            );
            created += child_lines(&output.stdout[..])
                .iter()
                .filter(|l| *l == "CREATED")
                .count();
        }
        assert_eq!(
            created, 1,
            "round {round}: the store was created {created} times"
        );
        let store = place.open();
        let report = store.verify().unwrap();
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(report.ok, RACERS, "round {round}");
    }
}

// ---------------------------------------------------------------------------------------------
// Instantiation
// ---------------------------------------------------------------------------------------------

macro_rules! per_backend {
    (
        both: [$($both:ident),* $(,)?],
        file: [$($file:ident),* $(,)?],
        sqlite: [$($sqlite:ident),* $(,)?] $(,)?
    ) => {
        mod file {
            $( #[test] fn $both() { super::$both(super::Kind::File); } )*
            $( #[test] fn $file() { super::$file(); } )*
        }
        mod sqlite {
            $( #[test] fn $both() { super::$both(super::Kind::Sqlite); } )*
            $( #[test] fn $sqlite() { super::$sqlite(); } )*
        }
    };
}

per_backend! {
    both: [
        processes,
        crash,
        copied_blob_is_tampered,
        foreign_header_is_refused,
        no_plaintext_on_disk,
        full_disk,
        file_modes,
        reload_across_processes,
        // Once failed on SQLite: journal_mode=WAL answered Busy without waiting, and the
        // ownership check read application_id and the table count in two snapshots.
        first_open_race,
    ],
    file: [
        truncated_file_is_refused,
        byte_flips_are_detected_and_contained,
        file_refuses_foreign_files,
    ],
    sqlite: [sqlite_refuses_foreign_files],
}
