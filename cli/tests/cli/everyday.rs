//! The CLI as people use it every day (issue 16): exit statuses per error class and JSON
//! errors, `--json` on every command, checks that run before any unlock, completions and the
//! man page, weak passphrases and open passphrase files, and the small fixes (`list`'s
//! expiry, `delete` and `purge` saying what they did, `find` explaining the Zoho rule).

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use super::support::{World, raw_key};

const ANN: &str = r#"{"user_name":"ann@example.com","client_id":"1000.C","client_secret":"cs","refresh_token":"rt-ann","access_token":"at-ann","expiry_time":"1000"}"#;

/// The JSON error a `--json` command printed on stderr: its code.
fn error_code(out: &super::support::Out) -> String {
    // JSON lines: warnings (a store file others may read) first, the error last.
    let lines: Vec<&str> = out.stderr.trim().lines().collect();
    for line in &lines {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("{}: a stderr line is not JSON ({e}): {line}", out.what));
    }
    let last = lines.last().copied().unwrap_or_default();
    let error: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("{}: stderr is not JSON ({e}): {}", out.what, out.stderr));
    assert!(error["error"]["message"].is_string(), "{error}");
    error["error"]["code"].as_str().unwrap().to_owned()
}

#[test]
fn each_error_class_has_its_exit_status_and_json_code() {
    let mut w = World::raw();
    let ann = w.save(ANN)[0].clone();

    // 2 usage, caught before the store is opened.
    w.tv(&["get"])
        .run()
        .exits(2)
        .stderr_has(&["record id", "--user NAME"]);
    w.tv(&["--store", "/tmp/tokens.db", "list"])
        .run()
        .exits(2)
        .stderr_has(&["sqlite:/tmp/tokens.db"]);
    w.tv(&["save"]).stdin("{not json").run().exits(2);
    let out = w.tv(&["--json", "save"]).stdin("{not json").run();
    out.exits(2);
    assert_eq!(error_code(&out), "usage");
    // Even a parse error of the arguments, with --json.
    let out = w.tv(&["--json", "get", "--no-such-option"]).run();
    out.exits(2);
    assert_eq!(error_code(&out), "usage");
    // An import file that is not there is said before the store is opened.
    w.tv(&["import", "--format", "json", "nowhere.json"])
        .env("TOKENVAULT_KEY", raw_key(9))
        .run()
        .exits(2)
        .stderr_has(&["nowhere.json"]);

    // 3 not found.
    w.tv(&["get", "nosuchid"]).run().exits(3);
    let out = w.tv(&["--json", "delete", "nosuchid"]).run();
    out.exits(3);
    assert_eq!(error_code(&out), "not_found");
    w.tv(&["find"])
        .stdin(r#"{"refresh_token":"rt-ann"}"#)
        .run()
        .exits(3)
        .stderr_has(&["only together with both client_id and client_secret"]);

    // 4 wrong or missing key.
    let out = w
        .tv(&["--json", "list"])
        .env("TOKENVAULT_KEY", raw_key(9))
        .run();
    out.exits(4);
    assert_eq!(error_code(&out), "wrong_key");

    // 6 refused: a store already there, a conflicting save.
    let out = w.tv(&["--json", "init", "--key", "env"]).run();
    out.exits(6);
    assert_eq!(error_code(&out), "store_exists");
    w.tv(&["save"])
        .stdin(r#"{"user_name":"bob@example.com","refresh_token":"rt-ann"}"#)
        .run()
        .exits(6);

    // 8 the token endpoint: nothing listens on port 1.
    let out = w
        .tv(&[
            "--json",
            "access-token",
            &ann,
            "--token-url",
            "http://127.0.0.1:1/oauth/v2/token",
        ])
        .run();
    out.exits(8);
    assert_eq!(error_code(&out), "token_endpoint");

    // 5 integrity: one byte of the header flipped.
    let db = w.path("t.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE tokenvault_meta SET value = CAST(substr(value, 1, 40) || X'00' || substr(value, 42) AS BLOB) WHERE key = 'header'",
            [],
        )
        .unwrap();
    let out = w.tv(&["--json", "list"]).run();
    out.exits(5);
    assert_eq!(error_code(&out), "tampered");

    // 3 again: no store.
    w.set(
        "TOKENVAULT_STORE",
        format!("sqlite:{}", w.path("none.db").display()),
    );
    w.tv(&["list"])
        .run()
        .exits(3)
        .stderr_has(&["tokenvault init"]);

    // 7 storage: a store file others may write is refused.
    let mut open = World::raw();
    open.save(ANN);
    std::fs::set_permissions(open.path("t.db"), std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = open.tv(&["--json", "list"]).run();
    out.exits(7);
    assert_eq!(error_code(&out), "backend_insecure");
    // One they may only read is a warning.
    std::fs::set_permissions(open.path("t.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    open.tv(&["list"])
        .run()
        .ok()
        .stderr_has(&["readable by other users", "chmod 600"]);
    open.unset("TOKENVAULT_KEY");
}

#[test]
fn every_command_honours_json() {
    let w = World::raw();
    let parse = |args: &[&str], stdin: Option<&str>| -> Value {
        let mut cmd = w.tv(args);
        if let Some(input) = stdin {
            cmd = cmd.stdin(input);
        }
        let out = cmd.run();
        out.ok();
        serde_json::from_str(out.stdout.trim())
            .unwrap_or_else(|e| panic!("{}: not one JSON value ({e}): {}", out.what, out.stdout))
    };
    let saved = parse(&["--json", "save"], Some(ANN));
    let id = saved[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(saved[0]["result"], "inserted");
    assert_eq!(
        parse(&["--json", "get", &id], None)["user_name"],
        "ann@example.com"
    );
    assert_eq!(
        parse(
            &["--json", "find"],
            Some(r#"{"user_name":"ann@example.com"}"#)
        )["id"],
        id.as_str()
    );
    let listed = parse(&["--json", "list"], None);
    assert_eq!(listed[0]["expired"], true);
    assert!(parse(&["--json", "verify"], None)["ok"].is_number());
    assert_eq!(parse(&["--json", "rotate"], None)["resealed"], 1);
    assert!(parse(&["--json", "slots", "list"], None).is_array());
    assert_eq!(parse(&["--json", "audit", "on"], None)["audit"], "changes");
    assert_eq!(parse(&["--json", "audit", "verify"], None)["intact"], true);
    assert!(parse(&["--json", "audit", "show"], None)["entries"].is_array());
    std::fs::write(
        w.path("in.json"),
        r#"[{"user_name":"bob@example.com","refresh_token":"rt-bob"}]"#,
    )
    .unwrap();
    assert_eq!(
        parse(&["--json", "import", "--format", "json", "in.json"], None)["inserted"],
        1
    );
    assert_eq!(parse(&["--json", "prune", "--expired"], None)["pruned"], 1);
    let to = format!("file:{}", w.path("moved.tv").display());
    assert_eq!(
        parse(&["--json", "migrate", "--to", &to], None)["migrated"],
        1
    );
    let bob = parse(&["--json", "list"], None)[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        parse(&["--json", "delete", &bob], None)["deleted"],
        bob.as_str()
    );
    assert!(parse(&["--json", "purge", "--yes"], None)["purged"].is_string());
    let rekeyed = w
        .tv(&["--json", "rekey", "--key", "env"])
        .env("TOKENVAULT_NEW_KEY", raw_key(2))
        .run();
    rekeyed.ok();
    let rekeyed: Value = serde_json::from_str(rekeyed.stdout.trim()).unwrap();
    assert!(rekeyed.is_object(), "{rekeyed}");
    let destroyed = w
        .tv(&["--json", "destroy", "--yes"])
        .env("TOKENVAULT_KEY", raw_key(2))
        .run();
    destroyed.ok();
    let destroyed: Value = serde_json::from_str(destroyed.stdout.trim()).unwrap();
    assert_eq!(destroyed["files"].as_u64().map(|n| n >= 1), Some(true));
    let created = w.tv(&["--json", "init", "--key", "env"]).run();
    created.ok();
    let created: Value = serde_json::from_str(created.stdout.trim()).unwrap();
    assert!(created["created"].is_string());
}

#[test]
fn a_passphrase_store_checks_input_before_asking_for_the_passphrase() {
    let mut w = World::passphrase("a passphrase of several words");
    // Without the passphrase and without a terminal, an unlock would fail with "no
    // passphrase": the input's own error shows nothing was unlocked.
    w.unset("TOKENVAULT_PASSPHRASE");
    w.tv(&["save"])
        .stdin(r#"{"user_name":"x","refresh_token":"rt","expiry_time":"soon"}"#)
        .run()
        .exits(2)
        .stderr_has(&["token #1"]);
    w.tv(&["find"]).stdin("[]").run().exits(2);
    w.tv(&[
        "access-token",
        "--user",
        "x",
        "--token-url",
        "http://example.com/t",
    ])
    .run()
    .exits(2);
    w.tv(&["passwd"])
        .run()
        .exits(4)
        .stderr_has(&["TOKENVAULT_NEW_PASSPHRASE"]);
    w.tv(&["list"])
        .run()
        .exits(4)
        .stderr_has(&["no passphrase"]);
}

#[test]
fn weak_passphrases_and_open_passphrase_files() {
    let mut w = World::empty();
    w.unset("TOKENVAULT_ALLOW_WEAK_PASSPHRASE");
    w.tv(&["init"])
        .env("TOKENVAULT_PASSPHRASE", "password1")
        .run()
        .exits(2)
        .stderr_has(&["refusing a guessable passphrase", "--allow-weak-passphrase"]);
    assert!(!w.path("t.db").exists(), "nothing created");
    w.tv(&["init", "--allow-weak-passphrase"])
        .env("TOKENVAULT_PASSPHRASE", "password1")
        .run()
        .ok()
        .stderr_has(&["warning: a guessable passphrase", "zxcvbn score"]);
    w.set("TOKENVAULT_PASSPHRASE", "password1");
    // Every place a passphrase is chosen judges it.
    for args in [&["passwd"][..], &["slots", "add-passphrase"], &["rekey"]] {
        w.tv(args)
            .env("TOKENVAULT_NEW_PASSPHRASE", "qwerty123")
            .run()
            .exits(2)
            .stderr_has(&["refusing a guessable passphrase"]);
    }
    w.tv(&["passwd"])
        .env(
            "TOKENVAULT_NEW_PASSPHRASE",
            "correct horse battery staple tangerine",
        )
        .run()
        .ok();
    // A passphrase file others can read is refused, as ssh refuses such a key file.
    let file = w.path("pass.txt");
    std::fs::write(&file, "correct horse battery staple tangerine\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    w.unset("TOKENVAULT_PASSPHRASE");
    w.tv(&["list", "--passphrase-file", file.to_str().unwrap()])
        .run()
        .exits(4)
        .stderr_has(&["chmod 600"]);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    w.tv(&["list", "--passphrase-file", file.to_str().unwrap()])
        .run()
        .ok();
}

#[test]
fn completions_and_the_man_page() {
    let w = World::empty();
    let script = w.path("tokenvault.bash");
    let out = w.tv(&["completions", "bash"]).run();
    out.ok();
    std::fs::write(&script, &out.stdout).unwrap();
    // Bash completes a command and an option from the script, as it would at a prompt.
    let complete = |words: &str| -> String {
        let output = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
                 COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; \
                 _tokenvault tokenvault \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\"; \
                 printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                script.display()
            ))
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap()
    };
    assert!(complete("tokenvault ver").lines().any(|l| l == "verify"));
    assert!(complete("tokenvault audit sh").lines().any(|l| l == "show"));
    assert!(
        complete("tokenvault rekey --k")
            .lines()
            .any(|l| l == "--key")
    );
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let out = w.tv(&["completions", shell]).run();
        out.ok();
        assert!(out.stdout.contains("tokenvault"), "{shell}");
    }

    let page = w.path("tokenvault.1");
    let out = w.tv(&["manpage"]).run();
    out.ok();
    std::fs::write(&page, &out.stdout).unwrap();
    let rendered = std::process::Command::new("man")
        .args(["-l", page.to_str().unwrap()])
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .unwrap();
    assert!(rendered.status.success(), "man -l failed");
    let text = String::from_utf8_lossy(&rendered.stdout);
    for needed in ["tokenvault", "SYNOPSIS", "access-token", "completions"] {
        assert!(text.contains(needed), "the man page lacks {needed}: {text}");
    }
}

#[test]
fn list_delete_and_purge_say_what_is_so() {
    let w = World::raw();
    let none = w.save(r#"{"user_name":"nox@example.com","refresh_token":"rt-nox"}"#)[0].clone();
    // No expiry time: the text's "-" and JSON's null agree (unknown, not "not expired").
    let listed = w.list();
    assert_eq!(listed[0]["expired"], Value::Null);
    w.tv(&["list"]).run().ok().stdout_has(&["-"]);
    w.tv(&["delete", &none])
        .run()
        .ok()
        .stdout_has(&[&format!("deleted {none}")]);
    w.save(ANN);
    w.tv(&["purge", "--yes"])
        .run()
        .ok()
        .stdout_has(&["deleted every token"]);
    assert!(w.list().is_empty());
}

#[test]
fn a_binary_file_is_refused_without_echoing_it() {
    let w = World::raw();
    let bytes: Vec<u8> = (0..=255u8).cycle().take(2000).collect();
    std::fs::write(w.path("blob.bin"), &bytes).unwrap();
    let out = w.tv(&["import", "--format", "zoho-csv", "blob.bin"]).run();
    out.exits(2);
    assert!(out.stderr.len() < 400, "{}", out.stderr);
    assert!(!out.stderr.contains('\u{1b}'));
    assert!(!out.stderr.chars().any(|c| c.is_control() && c != '\n'));
}

/// The median wall time of `runs` runs of `args` in `w`.
fn median_ms(w: &World, args: &[&str], runs: usize) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let started = std::time::Instant::now();
            w.tv(args).run().ok();
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

#[test]
fn unlock_once_then_no_prompt_until_lock_or_expiry() {
    let passphrase = "an unlock test passphrase of words";
    let mut w = World::passphrase(passphrase);
    w.save(ANN);
    let out = w.tv(&["--json", "unlock", "--for", "5m"]).run();
    out.ok();
    let unlocked: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(unlocked["expires_in"], 300);
    let serial = unlocked["key"].as_i64().unwrap().to_string();

    // No passphrase anywhere and no terminal: only the session's key can open the store, so
    // nothing ran Argon2id (it has no passphrase to run on).
    w.unset("TOKENVAULT_PASSPHRASE");
    let get = ["get", "--user", "ann@example.com", "--field", "user_name"];
    for _ in 0..3 {
        w.tv(&get).run().ok().stdout_has(&["ann@example.com"]);
    }
    let unlocked_ms = median_ms(&w, &get, 7);
    let mut raw = World::raw();
    raw.save(ANN);
    let raw_ms = median_ms(&raw, &get, 7);
    eprintln!(
        "get, median of 7 processes: unlocked passphrase store {unlocked_ms:.1} ms, raw-key store {raw_ms:.1} ms"
    );
    raw.unset("TOKENVAULT_KEY");

    // Another user sharing the session keyring (setpriv keeps it, as `sudo -u` without
    // pam_keyinit does) cannot read the key: owner-only permissions, none for "possessor".
    if is_root() {
        let as_nobody = std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "keyctl",
                "pipe",
                &serial,
            ])
            .output()
            .unwrap();
        assert!(
            !as_nobody.status.success() && as_nobody.stdout.is_empty(),
            "user nobody read the session key"
        );
        let as_owner = std::process::Command::new("keyctl")
            .args(["pipe", &serial])
            .output()
            .unwrap();
        assert_eq!(
            as_owner.stdout.len(),
            32,
            "the owner reads it (the key is really there)"
        );
    }

    // An explicit credential is used as given, not the session's key.
    w.tv(&["list"])
        .env("TOKENVAULT_PASSPHRASE", "not the passphrase")
        .run()
        .exits(4);
    // What changes who can open the store, or gives every token away, asks for the
    // credential: an unlocked terminal left alone does not give it.
    w.tv(&["passwd"])
        .env(
            "TOKENVAULT_NEW_PASSPHRASE",
            "a brand new passphrase of words",
        )
        .run()
        .exits(4)
        .stderr_has(&["no passphrase"]);
    w.tv(&["export", "--format", "json", "--plaintext"])
        .run()
        .exits(4);
    w.tv(&["slots", "list"]).run().ok();
    // A command `exec` runs gets the token but does not find the session's key.
    w.save(r#"{"user_name":"fresh@example.com","refresh_token":"rt-f","access_token":"at-f","expiry_time":"4102444800000"}"#);
    let inner = format!(
        "test \"$ZOHO_ACCESS_TOKEN\" = at-f || exit 99; {} --store {} list",
        super::support::BIN,
        w.store()
    );
    w.tv(&[
        "exec",
        "--user",
        "fresh@example.com",
        "--",
        "sh",
        "-c",
        &inner,
    ])
    .run()
    .exits(4);

    // lock ends it.
    w.tv(&["lock"]).run().ok().stdout_has(&["locked store"]);
    w.tv(&["list"])
        .run()
        .exits(4)
        .stderr_has(&["no passphrase"]);
    w.tv(&["lock"]).run().ok().stdout_has(&["was not unlocked"]);

    // The expiry is the kernel's.
    w.tv(&["unlock", "--for", "1s"])
        .env("TOKENVAULT_PASSPHRASE", passphrase)
        .run()
        .ok();
    w.tv(&["list"]).run().ok();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    w.tv(&["list"])
        .run()
        .exits(4)
        .stderr_has(&["no passphrase"]);

    // passwd ends a session too: the old key would outlive the change.
    w.tv(&["unlock"])
        .env("TOKENVAULT_PASSPHRASE", passphrase)
        .run()
        .ok();
    w.tv(&["passwd"])
        .env("TOKENVAULT_PASSPHRASE", passphrase)
        .env(
            "TOKENVAULT_NEW_PASSPHRASE",
            "another passphrase of several words",
        )
        .run()
        .ok();
    w.tv(&["list"]).run().exits(4);
    w.tv(&["unlock", "--for", "0s"]).run().exits(2);

    // A rekey ends it too (its old key opens nothing).
    let new_passphrase = "another passphrase of several words";
    w.tv(&["unlock"])
        .env("TOKENVAULT_PASSPHRASE", new_passphrase)
        .run()
        .ok();
    w.tv(&["rekey", "--key", "env"])
        .env("TOKENVAULT_PASSPHRASE", new_passphrase)
        .env("TOKENVAULT_NEW_KEY", raw_key(5))
        .run()
        .ok();
    w.tv(&["list"]).run().exits(4);
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
