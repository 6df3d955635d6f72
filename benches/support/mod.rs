//! Shared by the benches that compare tokenvault with a plaintext baseline in the same run
//! (`benches/core.rs`, `benches/backends.rs`, and the database benches, which also use
//! `support/db.rs`). A bench includes it with `#[path = "support/mod.rs"] mod support;`.
//!
//! - realistic Zoho records: [`record`], [`client_secret`], [`credential`], [`plain_json`], and
//!   [`Cursor`], a scattered visiting order; [`record_count`], the store size;
//! - timing: a [`Routine`] runs an operation `iters` times and returns the time that counts;
//!   [`timed`], [`timed_large`], [`timed_saves`] build them; [`interleave`] runs two routines
//!   in alternating (ABBA) rounds and takes medians;
//! - the ratio table: [`criterion_dir`] and [`estimate_ns`] read criterion's estimates of this
//!   run back; [`print_header`] and [`print_row`] print one row per operation with its
//!   [`Target`] and verdict ([`Table`] for a wider operation column or a measured diff).

#![allow(dead_code)] // each bench uses a different part

use std::env;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use tokenvault::{Credential, OAuthToken, RawKey};

// ---------------------------------------------------------------------------------------------
// Realistic records
// ---------------------------------------------------------------------------------------------

/// The app's client id (one client, many users).
pub const CLIENT_ID: &str = "1000.7QW2ZK4M9XBN3CJ8PLR5TVY6HDA0EG";
const REDIRECT_URL: &str = "https://www.example.com/oauth/zoho/callback";
const API_DOMAIN: &str = "https://www.zohoapis.com";
const EXPIRY_BASE: u64 = 1_900_000_000_000;

/// SplitMix64: deterministic, well-mixed hex material for tokens.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// 32 hex digits derived from `(a, b, c)`.
fn hex32(a: u64, b: u64, c: u64) -> String {
    let h1 = mix(a ^ mix(b ^ mix(c)));
    let h2 = mix(h1 ^ 0x5555_5555_5555_5555);
    format!("{h1:016x}{h2:016x}")
}

/// A Zoho-style token: `1000.<32 hex>.<32 hex>` (70 characters).
fn zoho_token(kind: u64, user: u64, generation: u64) -> String {
    format!(
        "1000.{}.{}",
        hex32(kind, user, generation),
        hex32(kind + 100, user, generation)
    )
}

/// The app's client secret: 42 hex digits.
pub fn client_secret() -> String {
    let mut s = hex32(7, 7, 7);
    s.push_str(&hex32(8, 8, 8)[..10]);
    s
}

/// User `user`'s user name: `user<N>@example.com`.
pub fn user_name(user: u64) -> String {
    format!("user{user}@example.com")
}

/// User `user`'s full record, without an id; `generation` picks the access token and its
/// expiry (a refresh gives a new access token, the refresh token stays).
pub fn record(user: u64, generation: u64, secret: &str) -> OAuthToken {
    OAuthToken::new()
        .with_user_name(user_name(user))
        .with_client_id(CLIENT_ID)
        .with_client_secret(secret)
        .with_refresh_token(zoho_token(1, user, 0))
        .with_access_token(zoho_token(2, user, generation))
        .with_expiry_time(EXPIRY_BASE + generation * 3_600_000)
        .with_redirect_url(REDIRECT_URL)
        .with_api_domain(API_DOMAIN)
}

/// A fixed raw-key credential (no Argon2id), so a cached store opens again.
pub fn credential() -> Credential {
    Credential::raw_key(RawKey::from_bytes([7; 32]))
}

/// The token as JSON, secrets included (its id too, if it has one).
pub fn plain_json(token: &OAuthToken) -> Vec<u8> {
    serde_json::to_vec(&token.expose_secrets()).expect("a token serializes")
}

/// Visits `0..n` in a fixed scattered order (a stride coprime to `n`), so that successive
/// lookups do not walk memory or pages sequentially.
pub struct Cursor {
    at: usize,
    n: usize,
    stride: usize,
}

impl Cursor {
    /// A cursor over `0..n`.
    pub fn new(n: usize) -> Self {
        const PRIME: usize = 48_271;
        let stride = if n.is_multiple_of(PRIME) {
            1
        } else {
            PRIME % n
        };
        Self { at: 0, n, stride }
    }

    /// The next index.
    pub fn next(&mut self) -> usize {
        self.at = (self.at + self.stride) % self.n;
        self.at
    }
}

/// Records in a bench's store: `$TOKENVAULT_BENCH_RECORDS`, else `default`.
pub fn record_count(default: usize) -> usize {
    env::var("TOKENVAULT_BENCH_RECORDS")
        .ok()
        .map(|v| v.parse().expect("TOKENVAULT_BENCH_RECORDS is a number"))
        .unwrap_or(default)
}

/// A count as criterion ids show it: `100k`, `10k`, `1k`, or the number.
pub fn size_label(n: usize) -> String {
    if n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// Timing
// ---------------------------------------------------------------------------------------------

/// Runs an operation `iters` times and returns the time that counts (setup, such as building
/// the tokens to save, and cleanup, such as deleting inserted users, excluded). Criterion calls
/// it through `iter_custom`; [`interleave`] calls it directly.
pub type Routine<'a> = Box<dyn FnMut(u64) -> Duration + 'a>;

/// `iters` calls of `f`, timed; each result is dropped inside the timing, as a caller would.
pub fn timed<T>(iters: u64, mut f: impl FnMut() -> T) -> Duration {
    let started = Instant::now();
    for _ in 0..iters {
        black_box(f());
    }
    started.elapsed()
}

/// `iters` calls of `f`, timed; the (large) results are dropped after the timing.
pub fn timed_large<T>(iters: u64, mut f: impl FnMut() -> T) -> Duration {
    let mut out = Vec::with_capacity(usize::try_from(iters).unwrap_or(0));
    let started = Instant::now();
    for _ in 0..iters {
        out.push(f());
    }
    let elapsed = started.elapsed();
    drop(black_box(out));
    elapsed
}

/// Saves are prepared (tokens built) this many at a time, to bound memory.
const CHUNK: u64 = 1024;

/// `iters` saves of tokens made by `make` (not timed), applied by `save` (timed), in chunks;
/// `after` gets each chunk's saved tokens (not timed: e.g. to delete inserted records).
pub fn timed_saves(
    iters: u64,
    mut make: impl FnMut() -> OAuthToken,
    mut save: impl FnMut(&mut OAuthToken),
    mut after: impl FnMut(Vec<OAuthToken>),
) -> Duration {
    let mut elapsed = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let k = CHUNK.min(iters - done);
        let mut tokens: Vec<OAuthToken> = (0..k).map(|_| make()).collect();
        let started = Instant::now();
        for t in &mut tokens {
            save(t);
        }
        elapsed += started.elapsed();
        after(tokens);
        done += k;
    }
    elapsed
}

/// The median (of a non-empty list).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Medians over `rounds` rounds of (a, b, a − b), ns per operation. Each round runs both
/// routines for about `side` each (one call each if `side` is zero), in ABBA order, so that
/// other load on the machine hits both alike.
pub fn interleave(
    a: &mut Routine<'_>,
    b: &mut Routine<'_>,
    rounds: usize,
    side: Duration,
) -> (f64, f64, f64) {
    let per_op = |r: &mut Routine<'_>, iters: u64| r(iters).as_nanos() as f64 / iters as f64;
    let iters = if side.is_zero() {
        1
    } else {
        // Calibrate on the slower side (after one warm call each).
        let warm = per_op(a, 1).max(per_op(b, 1));
        let probe = (1e6 / warm).clamp(1.0, 1e5) as u64;
        let slow = per_op(a, probe).max(per_op(b, probe));
        ((side.as_nanos() as f64 / slow) as u64).max(1)
    };
    let (mut xs, mut ys, mut ds) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (x, y) = if round % 2 == 0 {
            let x = per_op(a, iters);
            (x, per_op(b, iters))
        } else {
            let y = per_op(b, iters);
            (per_op(a, iters), y)
        };
        xs.push(x);
        ys.push(y);
        ds.push(x - y);
    }
    (median(xs), median(ys), median(ds))
}

// ---------------------------------------------------------------------------------------------
// Criterion's estimates
// ---------------------------------------------------------------------------------------------

/// cargo's target directory: `$CARGO_TARGET_DIR`, else `cargo metadata`'s
/// `target_directory`, else `target`.
pub fn target_dir() -> PathBuf {
    if let Some(target) = env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target);
    }
    env::var_os("CARGO")
        .and_then(|cargo| {
            let out = Command::new(cargo)
                .args(["metadata", "--format-version", "1", "--no-deps"])
                .output()
                .ok()?;
            let meta: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            Some(PathBuf::from(meta.get("target_directory")?.as_str()?))
        })
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// Where criterion writes its results, by criterion's own rules: `$CRITERION_HOME`, else
/// `<target dir>/criterion`. Pass it to criterion explicitly too, so both sides agree.
pub fn criterion_dir() -> PathBuf {
    env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("criterion"))
}

/// Criterion's headline estimate (ns) of `group/bench` — the slope for linear sampling, else
/// the mean: what criterion prints as `time:` — if this run measured it (file written after
/// `since`).
pub fn estimate_ns(dir: &Path, id: &str, since: SystemTime) -> Option<f64> {
    let path = dir.join(id).join("new").join("estimates.json");
    let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
    if modified < since {
        return None; // left over from an earlier run (filtered out this time)
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    let point = |field: &str| json.get(field)?.get("point_estimate")?.as_f64();
    point("slope").or_else(|| point("mean"))
}

// ---------------------------------------------------------------------------------------------
// The ratio table
// ---------------------------------------------------------------------------------------------

/// A duration in ns, with a unit that fits.
pub fn fmt_ns(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.3} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// What a row is judged against.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// tokenvault / baseline at most this (time ratio).
    RatioAtMost(f64),
    /// tokenvault − baseline at most this many ns.
    WithinOfBaseline(f64),
    /// tokenvault at most this many ns.
    AtMost(f64),
    /// Both: tokenvault at most this many ns, and at most this ratio to the baseline.
    AtMostAndRatio(f64, f64),
    /// Reported, not judged.
    None,
}

/// A row's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Miss,
    /// No target, or not measured.
    Unjudged,
}

impl Target {
    /// The verdict for `ours`, `base` and `diff` (ns; `diff` is what `WithinOfBaseline` judges).
    pub fn judge(self, ours: Option<f64>, base: Option<f64>, diff: Option<f64>) -> Verdict {
        let pass = match (self, ours, base, diff) {
            (Target::RatioAtMost(limit), Some(o), Some(b), _) => o / b <= limit,
            (Target::WithinOfBaseline(limit), _, _, Some(d)) => d <= limit,
            (Target::AtMost(limit), Some(o), _, _) => o <= limit,
            (Target::AtMostAndRatio(limit, ratio), Some(o), Some(b), _) => {
                o <= limit && o / b <= ratio
            }
            _ => return Verdict::Unjudged,
        };
        if pass { Verdict::Pass } else { Verdict::Miss }
    }

    fn text(self) -> String {
        match self {
            Target::RatioAtMost(limit) => format!("≤ {limit:.2}x"),
            Target::WithinOfBaseline(limit) => format!("diff ≤ {}", fmt_ns(limit)),
            Target::AtMost(limit) => format!("≤ {}", fmt_ns(limit)),
            Target::AtMostAndRatio(limit, ratio) => format!("≤ {}, ≤ {ratio}x", fmt_ns(limit)),
            Target::None => "(info)".to_owned(),
        }
    }
}

/// A ratio table's layout: the width of its operation column.
#[derive(Clone, Copy, Debug)]
pub struct Table {
    pub operation_width: usize,
}

impl Table {
    /// What [`print_header`] and [`print_row`] use.
    pub const DEFAULT: Table = Table {
        operation_width: 52,
    };

    /// Prints a table's title and column heads.
    pub fn header(self, title: &str) {
        let w = self.operation_width;
        println!();
        println!("{title}");
        let header = format!(
            "{:<w$} {:>11} {:>11} {:>7} {:>11}  {:<14} {}",
            "operation", "tokenvault", "baseline", "ratio", "diff", "target", "result"
        );
        println!("{header}");
        println!("{}", "-".repeat(header.chars().count()));
    }

    /// Prints one row (`ours`, `base` and `diff` in ns; `None`: not measured) and returns its
    /// verdict. `diff` is judged by [`Target::WithinOfBaseline`]: usually `ours − base`, but an
    /// interleaved run may give the median of its paired differences instead.
    pub fn row(
        self,
        operation: &str,
        ours: Option<f64>,
        base: Option<f64>,
        diff: Option<f64>,
        target: Target,
    ) -> Verdict {
        let w = self.operation_width;
        let show = |v: Option<f64>| v.map_or_else(|| "not run".to_owned(), fmt_ns);
        let ratio = match (ours, base) {
            (Some(o), Some(b)) => format!("{:.2}x", o / b),
            _ => "-".to_owned(),
        };
        let diff_text = match diff {
            Some(d) if d >= 0.0 => format!("+{}", fmt_ns(d)),
            Some(d) => format!("-{}", fmt_ns(-d)),
            None => "-".to_owned(),
        };
        let verdict = target.judge(ours, base, diff);
        let verdict_text = match (verdict, target) {
            (_, Target::None) => "",
            (Verdict::Pass, _) => "PASS",
            (Verdict::Miss, _) => "MISS",
            (Verdict::Unjudged, _) => "-",
        };
        println!(
            "{operation:<w$} {:>11} {:>11} {ratio:>7} {diff_text:>11}  {:<14} {verdict_text}",
            show(ours),
            show(base),
            target.text(),
        );
        verdict
    }
}

/// Prints a table's title and column heads.
pub fn print_header(title: &str) {
    Table::DEFAULT.header(title);
}

/// Prints one row (`ours`, `base` in ns; `None`: not measured) and returns its verdict.
pub fn print_row(operation: &str, ours: Option<f64>, base: Option<f64>, target: Target) -> Verdict {
    let diff = ours.zip(base).map(|(o, b)| o - b);
    Table::DEFAULT.row(operation, ours, base, diff, target)
}

/// Prints the load average: other processes on a small machine skew results.
pub fn print_load() {
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average (1, 5, 15 min) now: {}", load.trim());
    }
}
