//! Running the real `tokenvault` binary in a hermetic environment: a fresh temporary
//! directory per test, an environment with nothing but what the test sets (no TOKENVAULT_*
//! from the caller, HOME and XDG_DATA_HOME inside the temporary directory), no controlling
//! terminal (every child runs in a new session), and a time limit on every command.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tokenvault");

/// Where the Zoho SDK fixtures live.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/zoho")
        .join(name)
}

/// Writes `text` to `path` readable by its owner only (as a passphrase file must be).
pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Longest any one command may take before the test fails (and the child is killed).
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// A raw key for `--key env` stores: base64 of 32 bytes, distinct per `seed`.
pub fn raw_key(seed: u8) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = (0..32u8)
        .map(|i| i.wrapping_mul(31).wrapping_add(seed))
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Detaches the child from any controlling terminal (a new session), so that no test can
/// ever prompt on the terminal `cargo test` was started from.
pub fn new_session(cmd: &mut Command) {
    // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// What a finished command left.
#[derive(Debug)]
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// The command line, for failure messages.
    pub what: String,
}

impl Out {
    /// The exit code (panics if a signal killed the process).
    pub fn code(&self) -> i32 {
        match self.status.code() {
            Some(code) => code,
            None => panic!(
                "{} was killed by signal {:?}\nstdout: {}\nstderr: {}",
                self.what,
                self.status.signal(),
                self.stdout,
                self.stderr
            ),
        }
    }

    /// Asserts exit status 0 and returns self.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.exits(0)
    }

    /// Asserts this exit status and returns self.
    #[track_caller]
    pub fn exits(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            code,
            "{}: expected exit {code}\nstdout: {}\nstderr: {}",
            self.what,
            self.stdout,
            self.stderr
        );
        self.no_panic();
        self
    }

    /// Asserts that stderr contains every one of `needles`.
    #[track_caller]
    pub fn stderr_has(&self, needles: &[&str]) -> &Self {
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "{}: stderr lacks {needle:?}\nstderr: {}",
                self.what,
                self.stderr
            );
        }
        self
    }

    /// Asserts that stdout contains every one of `needles`.
    #[track_caller]
    pub fn stdout_has(&self, needles: &[&str]) -> &Self {
        for needle in needles {
            assert!(
                self.stdout.contains(needle),
                "{}: stdout lacks {needle:?}\nstdout: {}",
                self.what,
                self.stdout
            );
        }
        self
    }

    /// Asserts that stdout is empty.
    #[track_caller]
    pub fn no_stdout(&self) -> &Self {
        assert!(
            self.stdout.is_empty(),
            "{}: unexpected stdout: {}",
            self.what,
            self.stdout
        );
        self
    }

    /// Asserts that none of `secrets` appears in stdout or stderr.
    #[track_caller]
    pub fn leaks_none(&self, secrets: &[&str]) -> &Self {
        for secret in secrets {
            assert!(
                !self.stdout.contains(secret) && !self.stderr.contains(secret),
                "{}: output contains the secret {secret:?}\nstdout: {}\nstderr: {}",
                self.what,
                self.stdout,
                self.stderr
            );
        }
        self
    }

    /// Asserts that stderr holds no secret: none of `secrets`.
    #[track_caller]
    pub fn stderr_leaks_none(&self, secrets: &[&str]) -> &Self {
        for secret in secrets {
            assert!(
                !self.stderr.contains(secret),
                "{}: stderr contains the secret {secret:?}\nstderr: {}",
                self.what,
                self.stderr
            );
        }
        self
    }

    #[track_caller]
    fn no_panic(&self) {
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "{}: the binary panicked\nstderr: {}",
            self.what,
            self.stderr
        );
    }

    /// stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{}: stdout is not JSON ({e}):\n{}", self.what, self.stdout))
    }

    /// stdout's lines.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// One test's world: a temporary directory holding the store, HOME and XDG_DATA_HOME, and
/// the environment every command of the test gets.
pub struct World {
    pub dir: tempfile::TempDir,
    env: BTreeMap<String, OsString>,
}

impl World {
    /// An empty world: `TOKENVAULT_STORE=sqlite:<dir>/t.db`, no key, no passphrase.
    pub fn empty() -> World {
        let dir = tempfile::Builder::new()
            .prefix("tokenvault-cli-")
            .tempdir()
            .expect("temp dir");
        let mut env = BTreeMap::new();
        env.insert("HOME".into(), dir.path().join("home").into_os_string());
        env.insert(
            "XDG_DATA_HOME".into(),
            dir.path().join("xdg-data").into_os_string(),
        );
        // dirs may fall back to the passwd entry's home without HOME; both are set.
        env.insert("PATH".into(), "/usr/bin:/bin".into());
        // Tests choose short passphrases; `everyday.rs` unsets this to test the check.
        env.insert("TOKENVAULT_ALLOW_WEAK_PASSPHRASE".into(), "1".into());
        let mut world = World { dir, env };
        let store = format!("sqlite:{}", world.path("t.db").display());
        world.set("TOKENVAULT_STORE", store);
        world
    }

    /// A world with an initialised raw-key store (`init --key env`); the fast default.
    pub fn raw() -> World {
        let mut world = World::empty();
        world.set("TOKENVAULT_KEY", raw_key(1));
        world.tv(&["init", "--key", "env"]).run().ok();
        world
    }

    /// A world with an initialised passphrase store (default Argon2id: ~0.2 s a command).
    pub fn passphrase(passphrase: &str) -> World {
        let mut world = World::empty();
        world.set("TOKENVAULT_PASSPHRASE", passphrase);
        world.tv(&["init"]).run().ok();
        world
    }

    /// A path inside the world's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The store URI every command gets (unless a test changes it).
    pub fn store(&self) -> String {
        self.env["TOKENVAULT_STORE"]
            .to_str()
            .expect("utf-8 store")
            .to_owned()
    }

    /// Sets a variable for every later command.
    pub fn set(&mut self, key: &str, value: impl Into<OsString>) {
        self.env.insert(key.into(), value.into());
    }

    /// Removes a variable for every later command.
    pub fn unset(&mut self, key: &str) {
        self.env.remove(key);
    }

    /// A `tokenvault` command with these arguments and the world's environment.
    pub fn tv(&self, args: &[&str]) -> Tv {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_clear()
            .envs(&self.env)
            .current_dir(self.dir.path());
        Tv {
            cmd,
            what: format!("tokenvault {}", args.join(" ")),
            stdin: None,
        }
    }

    /// `save` of one JSON document; returns the ids printed.
    #[track_caller]
    pub fn save(&self, json: &str) -> Vec<String> {
        let out = self.tv(&["save"]).stdin(json).run();
        out.ok();
        out.lines().iter().map(|s| (*s).to_owned()).collect()
    }

    /// `get ID` parsed.
    #[track_caller]
    pub fn get(&self, id: &str) -> Value {
        self.tv(&["get", id]).run().ok().json()
    }

    /// `list --json` parsed, sorted by id.
    #[track_caller]
    pub fn list(&self) -> Vec<Value> {
        let Value::Array(mut rows) = self.tv(&["list", "--json"]).run().ok().json() else {
            panic!("list --json is not an array");
        };
        rows.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        rows
    }
}

/// A command ready to run.
pub struct Tv {
    pub cmd: Command,
    what: String,
    stdin: Option<Vec<u8>>,
}

impl Tv {
    /// Sets a variable for this command only.
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Tv {
        self.cmd.env(key, value);
        self
    }

    /// Removes a variable for this command only.
    pub fn env_remove(mut self, key: &str) -> Tv {
        self.cmd.env_remove(key);
        self
    }

    /// Feeds stdin (otherwise stdin is /dev/null).
    pub fn stdin(mut self, input: impl AsRef<[u8]>) -> Tv {
        self.stdin = Some(input.as_ref().to_vec());
        self
    }

    /// Spawns with stdout and stderr piped, in a new session (no controlling terminal).
    pub fn spawn(mut self) -> (Child, String) {
        new_session(&mut self.cmd);
        let child = self
            .cmd
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"));
        (child, self.what)
    }

    /// Runs to completion (within the time limit).
    pub fn run(self) -> Out {
        let input = self.stdin.clone();
        let (mut child, what) = self.spawn();
        let writer = child.stdin.take().map(|mut pipe| {
            let input = input.unwrap_or_default();
            // The child may exit without reading everything (e.g. a usage error).
            thread::spawn(move || drop(pipe.write_all(&input)))
        });
        let stdout = reader(child.stdout.take());
        let stderr = reader(child.stderr.take());
        let status = wait_within(&mut child, TIME_LIMIT, &what);
        if let Some(w) = writer {
            w.join().expect("stdin writer");
        }
        Out {
            status,
            stdout: stdout.join().expect("stdout reader"),
            stderr: stderr.join().expect("stderr reader"),
            what,
        }
    }
}

fn reader(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8(bytes).expect("output is UTF-8")
    })
}

/// Waits for `child`, killing it (and failing the test) after `limit`.
pub fn wait_within(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Polls `f` until it returns `Some` or `limit` passes.
pub fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// The values of the secret fields of an expected-token object.
pub fn secrets_of(token: &Value) -> Vec<String> {
    [
        "client_secret",
        "refresh_token",
        "access_token",
        "grant_token",
    ]
    .iter()
    .filter_map(|k| token.get(*k).and_then(Value::as_str))
    .map(str::to_owned)
    .collect()
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The permission bits of a path.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}
