//! Child processes: a test binary re-executes itself on its ignored test `child_entry`, with
//! the role in `TOKENVAULT_CHILD_ROLE` and its parameters in other `TOKENVAULT_CHILD_*`
//! variables. A child reports on stdout in lines starting `CHILD ` (see [`say!`]) and exits
//! non-zero on any error.

use std::fmt::Display;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Output, Stdio};
use std::str::FromStr;

pub const ROLE_VAR: &str = "TOKENVAULT_CHILD_ROLE";

/// Prints a `CHILD …` line for the parent to read.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        println!("CHILD {}", format_args!($($arg)*))
    };
}

/// A command that runs this test binary as a child doing `role`, with `vars` set; its stdin
/// is closed, its stdout and stderr piped.
pub fn command(role: &str, vars: &[(&str, String)]) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("current exe"));
    command
        .args([
            "--exact",
            "child_entry",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE_VAR, role)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in vars {
        command.env(name, value);
    }
    command
}

/// The body of a test binary's `child_entry`: nothing unless this process is a child; else
/// runs `role` on the role's name, then says `OK`, or `ERR …` and exits 3.
pub fn entry(role: impl FnOnce(&str) -> Result<(), String>) {
    let Ok(name) = std::env::var(ROLE_VAR) else {
        return;
    };
    println!(); // libtest printed "test child_entry ... " without a newline
    match role(&name) {
        Ok(()) => say!("OK"),
        Err(e) => {
            say!("ERR {e}");
            std::process::exit(3);
        }
    }
}

/// A child's variable `name`; panics when unset.
pub fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// A child's numeric variable `name`; panics when unset or not a number.
pub fn var_num<T: FromStr>(name: &str) -> T
where
    T::Err: Display,
{
    var(name).parse().unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The complete `CHILD …` lines of a child's stdout, prefix removed. libtest's own lines are
/// skipped, and so is a last line without its newline (cut by a kill).
pub fn child_lines(stdout: impl Read) -> Vec<String> {
    let mut reader = BufReader::new(stdout);
    let mut lines = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line.ends_with(b"\n") {
            let text = String::from_utf8_lossy(&line);
            if let Some((_, rest)) = text.split_once("CHILD ") {
                lines.push(rest.trim_end().to_owned());
            }
        }
    }
    lines
}

/// Reads a running child's stdout until it says `said` (`CHILD <said>`). `Err` holds what it
/// printed before its stdout closed without saying it.
pub fn wait_for(stdout: impl Read, said: &str) -> Result<(), String> {
    let wanted = format!("CHILD {said}");
    let mut reader = BufReader::new(stdout);
    let mut seen = String::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return Err(seen),
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        if text.contains(&wanted) {
            return Ok(());
        }
        seen.push_str(&text);
    }
}

/// A finished child's exit status, stdout and stderr, for a failure message.
pub fn describe(output: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Spawns the commands one after another, each waited for on a thread of its own; returns
/// their outputs, in order, once all have exited.
pub fn run_all(commands: impl IntoIterator<Item = Command>) -> Vec<Output> {
    std::thread::scope(|scope| {
        let waiters: Vec<_> = commands
            .into_iter()
            .map(|mut command| {
                let child = command.spawn().expect("spawn child");
                scope.spawn(move || child.wait_with_output().expect("wait for child"))
            })
            .collect();
        waiters
            .into_iter()
            .map(|w| w.join().expect("waiter thread"))
            .collect()
    })
}

/// Runs a child to completion; it must exit 0. Returns its `CHILD` lines.
pub fn run(mut command: Command, what: &str) -> Vec<String> {
    let output = command.output().expect("run child");
    assert!(
        output.status.success(),
        "{what} failed: {}",
        describe(&output)
    );
    child_lines(&output.stdout[..])
}
