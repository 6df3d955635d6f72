//! A tally of the tests that did nothing for want of a service (a database server, a Secret
//! Service), across every test binary of one `cargo test` run, so that the run ends with one
//! visible line saying how many and how to run them (`tests/zz_skipped.rs` and
//! `cli/tests/zz_skipped.rs`, which cargo runs after the other test binaries of their
//! package: it runs them in name order).
//!
//! Every test binary of a run is a child of the same cargo process; each skip leaves an empty
//! file in `target/tmp/skipped/<cargo's pid>-<its start time>/`.

use std::fs;
use std::io::Write;
use std::path::PathBuf;

/// This `cargo test` run's tally directory.
fn run_dir() -> PathBuf {
    let parent = std::os::unix::process::parent_id();
    // The parent's start time (field 22 of /proc/PID/stat) tells two runs with one pid apart.
    let started = fs::read_to_string(format!("/proc/{parent}/stat"))
        .ok()
        .and_then(|stat| {
            let after_name = stat.rsplit_once(')')?.1.to_owned();
            after_name.split_whitespace().nth(19).map(str::to_owned)
        })
        .unwrap_or_default();
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("skipped")
        .join(format!("{parent}-{started}"))
}

/// Records that `test` did nothing because `service` is missing, and says so on stderr
/// (written to the handle: libtest captures only the print macros).
pub fn record(test: &str, service: &str) {
    let dir = run_dir();
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let name: String = format!("{binary}--{test}--{service}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let _ = fs::create_dir_all(&dir).and_then(|()| fs::write(dir.join(name), b""));
}

/// The summary line for this run so far, `None` when nothing was skipped.
pub fn summary() -> Option<String> {
    let entries: Vec<String> = fs::read_dir(run_dir())
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if entries.is_empty() {
        return None;
    }
    let mut services: Vec<&str> = entries
        .iter()
        .filter_map(|e| e.rsplit("--").next())
        .collect();
    services.sort_unstable();
    services.dedup();
    Some(format!(
        "SKIPPED {} test(s) that need a service this machine does not run ({}): they passed \
         without running. `bash .ci/run` starts PostgreSQL, MariaDB and a Secret Service and \
         runs them all (or start one: `eval \"$(bash .ci/services/postgres.sh start)\"`).",
        entries.len(),
        services.join(", ")
    ))
}

/// Prints [`summary`] on stderr, if there is one.
pub fn print_summary() {
    if let Some(line) = summary() {
        let _ = writeln!(std::io::stderr(), "\n{line}\n");
    }
}
