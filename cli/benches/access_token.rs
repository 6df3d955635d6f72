//! End-to-end latency of `tokenvault access-token` on a fresh token (no refresh), as a process:
//! what a script's `$(tokenvault access-token --user …)` costs. A raw-key store (target ≤ 10 ms)
//! and a passphrase store, whose open is dominated by Argon2id (m = 64 MiB, t = 3, p = 4).
//!
//! Run: `cargo bench --bench access_token`

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::Criterion;

const BIN: &str = env!("CARGO_BIN_EXE_tokenvault");

/// A store in `dir` holding one token valid for an hour; returns the env to open it.
fn store(dir: &std::path::Path, key: &[(&str, &str)], init: &[&str]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = key
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.push((
        "TOKENVAULT_STORE".into(),
        format!("sqlite:{}", dir.join("t.db").display()),
    ));
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(BIN)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "tokenvault {args:?}");
    };
    run(init, "");
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 3_600_000;
    run(
        &["save"],
        &format!(
            r#"{{"user_name":"ann","refresh_token":"r","access_token":"a","expiry_time":"{expiry}"}}"#
        ),
    );
    env
}

fn access_token(env: &[(String, String)]) {
    let out = Command::new(BIN)
        .args([
            "access-token",
            "--user",
            "ann",
            "--token-url",
            "http://127.0.0.1:9/never-called",
        ])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"a\n");
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let raw_dir = dir.path().join("raw");
    let pass_dir = dir.path().join("pass");
    std::fs::create_dir_all(&raw_dir).unwrap();
    std::fs::create_dir_all(&pass_dir).unwrap();
    let raw = store(
        &raw_dir,
        &[(
            "TOKENVAULT_KEY",
            "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=",
        )],
        &["init", "--key", "env"],
    );
    let pass = store(
        &pass_dir,
        &[("TOKENVAULT_PASSPHRASE", "bench passphrase")],
        &["init"],
    );

    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(5));
    c.bench_function("access_token/raw_key_store", |b| {
        b.iter(|| access_token(&raw))
    });
    c.benchmark_group("access_token/passphrase_store")
        .sample_size(10)
        .bench_function("argon2id_m64MiB_t3_p4", |b| b.iter(|| access_token(&pass)));
    c.final_summary();
}
