//! Shared by the database-server benches (`benches/postgres.rs`, `benches/mysql.rs`), which
//! measure tokenvault on a server against the bare client on an identical table. A bench
//! includes it with `#[path = "support/db.rs"] mod db;`, next to `mod support;` (which it uses).
//!
//! - the baseline's table: [`baseline_rows`] (the stored records in plaintext, padded to their
//!   sealed size, with [`sha`] tags), [`secret_of`];
//! - `main`'s start: [`Setup`] (the server's URI, store size, criterion);
//! - names and URIs: [`random_hex`], [`with_params`];
//! - criterion: [`bench_find`] and [`bench_save`], the tokenvault side and the bare client's
//!   (given as a closure) under the same ids in both benches;
//! - [`throughput`]: saves per second with concurrent clients;
//! - [`print_table`]: the ratio table.

#![allow(dead_code)] // each bench uses a different part

use std::hint::black_box;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use criterion::{BatchSize, Criterion};
use sha2::{Digest, Sha256};
use tokenvault::backend::Backend;
use tokenvault::{EncryptedStore, OAuthToken, TokenField, TokenStore};

use crate::support::{
    Cursor, criterion_dir, estimate_ns, fmt_ns, plain_json, print_load, record, record_count,
    user_name,
};

/// The baseline's stand-in for a blind-index tag: SHA-256 of the value.
pub fn sha(value: &str) -> Vec<u8> {
    Sha256::digest(value.as_bytes()).to_vec()
}

/// The token's `field` in the clear (empty if unset).
pub fn secret_of(token: &OAuthToken, field: TokenField) -> String {
    token
        .expose_field(field)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// 16 random hex digits, for a fresh schema or database name.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `uri` with query parameters `params` (`k=v&…`) appended.
pub fn with_params(uri: &str, params: &str) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{params}")
}

/// What a database bench's `main` needs before it builds its fixture.
pub struct Setup {
    /// The server's URI.
    pub uri: String,
    /// Records in the store.
    pub n: usize,
    /// Whether criterion runs for real (`cargo bench`), not a smoke test.
    pub benchmarking: bool,
    /// Whether criterion only lists the benches (`--list`).
    pub listing: bool,
    /// criterion, writing to `dir`.
    pub criterion: Criterion,
    /// Where criterion writes its results ([`criterion_dir`]).
    pub dir: PathBuf,
    /// Estimates older than this are from an earlier run.
    pub since: SystemTime,
}

impl Setup {
    /// The setup of the `server` benches, or `None` (after saying why) if `$env_var` does not
    /// name a server (`.ci/services/<script> start` starts one). The store has `default`
    /// records, or `test_mode` in a smoke test, unless `$TOKENVAULT_BENCH_RECORDS` says
    /// otherwise; at least `min`.
    pub fn start(
        server: &str,
        env_var: &str,
        script: &str,
        default: usize,
        test_mode: usize,
        min: usize,
    ) -> Option<Self> {
        let Some(uri) = std::env::var(env_var).ok().filter(|u| !u.is_empty()) else {
            println!(
                "skipping the {server} benches: {env_var} is not set \
                 (`eval \"$(bash .ci/services/{script} start)\"` starts a server)"
            );
            return None;
        };
        let args: Vec<String> = std::env::args().collect();
        // `cargo bench` passes --bench; `cargo test --benches` does not, nor does
        // `cargo bench -- --test`.
        let benchmarking =
            args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test");
        let listing = args.iter().any(|a| a == "--list");
        let n = record_count(if benchmarking { default } else { test_mode });
        assert!(n >= min, "need a user per client at least");
        let dir = criterion_dir();
        let criterion = Criterion::default()
            .output_directory(&dir)
            .configure_from_args();
        Some(Self {
            uri,
            n,
            benchmarking,
            listing,
            criterion,
            dir,
            since: SystemTime::now() - Duration::from_secs(2),
        })
    }
}

/// One row of the baseline's table: a stored record's id, the SHA-256 tags of its user name,
/// access token and refresh token (no grant token), and its JSON space-padded to the sealed
/// record's length.
pub struct BareRow {
    pub id: String,
    pub user_name_tag: Vec<u8>,
    pub access_token_tag: Vec<u8>,
    pub refresh_token_tag: Vec<u8>,
    pub json: Vec<u8>,
}

/// The baseline's rows for the `n` records of `store` (users `0..n`, as [`record`] makes them),
/// and the sealed size per user (the baseline's saves pad their JSON to it).
pub fn baseline_rows<B: Backend>(
    store: &EncryptedStore<B>,
    n: usize,
) -> (Vec<usize>, Vec<BareRow>) {
    let mut sizes = vec![0; n];
    let records = store.backend().list().expect("list");
    let mut rows = Vec::with_capacity(n);
    for token in store.get_tokens().expect("get_tokens") {
        let name = token.user_name().expect("set");
        let user: usize = name["user".len()..name.len() - "@example.com".len()]
            .parse()
            .expect("userN@example.com");
        let id = token.id().expect("saved").to_owned();
        let sealed = &records.iter().find(|r| r.id == id).expect("listed").sealed;
        sizes[user] = sealed.len();
        let mut json = plain_json(&token);
        json.resize(sealed.len().max(json.len()), b' ');
        rows.push(BareRow {
            id,
            user_name_tag: sha(name),
            access_token_tag: sha(&secret_of(&token, TokenField::AccessToken)),
            refresh_token_tag: sha(&secret_of(&token, TokenField::RefreshToken)),
            json,
        });
    }
    (sizes, rows)
}

/// `find_token/by_user_name` on `store` and `baseline/find_by_user_name` by `bare_find` (user
/// name → parsed record), both over users `0..n` in scattered order.
pub fn bench_find(
    c: &mut Criterion,
    n: usize,
    store: &impl TokenStore,
    mut bare_find: impl FnMut(&str) -> OAuthToken,
) {
    let mut g = c.benchmark_group("find_token");
    let mut cur = Cursor::new(n);
    g.bench_function("by_user_name", |b| {
        b.iter(|| {
            let q = OAuthToken::new().with_user_name(user_name(cur.next() as u64));
            store.find_token(&q).expect("find").expect("found")
        })
    });
    g.finish();

    let mut g = c.benchmark_group("baseline");
    let mut cur = Cursor::new(n);
    g.bench_function("find_by_user_name", |b| {
        b.iter(|| bare_find(black_box(&user_name(cur.next() as u64))))
    });
    g.finish();
}

/// `save_token/update` on `store` and `baseline/save_update` by `bare_save(token, sealed size)`:
/// an existing user (`0..sizes.len()`, scattered) saves a refreshed token. `generation` counts
/// the store's refreshes (it is the fixture's, so that later saves get fresh access tokens).
pub fn bench_save(
    c: &mut Criterion,
    store: &impl TokenStore,
    secret: &str,
    generation: &mut u64,
    sizes: &[usize],
    mut bare_save: impl FnMut(&OAuthToken, usize),
) {
    let n = sizes.len();
    let mut g = c.benchmark_group("save_token");
    let mut cur = Cursor::new(n);
    g.bench_function("update", |b| {
        b.iter_batched(
            || {
                *generation += 1;
                record(cur.next() as u64, *generation, secret)
            },
            |mut t| {
                store.save_token(&mut t).expect("save_token");
                t
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("baseline");
    let mut cur = Cursor::new(n);
    let mut generation = 0;
    g.bench_function("save_update", |b| {
        b.iter_batched(
            || {
                generation += 1;
                let user = cur.next();
                (record(user as u64, generation, secret), sizes[user])
            },
            |(t, size)| {
                bare_save(&t, size);
                t
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Saves per second with `clients` threads for `duration`, each thread on users of its own
/// (`user % clients == thread`); `save(client, user, generation)` does one save.
pub fn throughput<C>(
    clients: usize,
    n: usize,
    duration: Duration,
    connect: impl Fn() -> C + Sync,
    save: impl Fn(&mut C, u64, u64) + Sync,
) -> f64 {
    let ready = std::sync::Barrier::new(clients + 1);
    let total: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|thread| {
                let (connect, save, ready) = (&connect, &save, &ready);
                scope.spawn(move || {
                    let mut client = connect();
                    ready.wait();
                    let started = Instant::now();
                    let mut done = 0;
                    let mut generation = 1_000_000 * (thread as u64 + 1);
                    let mut user = thread;
                    while started.elapsed() < duration {
                        generation += 1;
                        save(&mut client, user as u64, generation);
                        done += 1;
                        user = (user + clients) % n;
                        if user < clients {
                            user = thread;
                        }
                    }
                    done
                })
            })
            .collect();
        ready.wait();
        handles.into_iter().map(|h| h.join().expect("client")).sum()
    });
    total as f64 / duration.as_secs_f64()
}

/// Prints the ratio table of tokenvault on `server` with `n` records: criterion's estimates of
/// this run (read from `dir`, written after `since`) for [`bench_find`] and [`bench_save`], then
/// one row per `(clients, tokenvault saves/s, baseline saves/s)` in `rates`, labelled
/// `saves/s, <clients> concurrent client(s)<rate_note>`.
pub fn print_table(
    server: &str,
    n: usize,
    dir: &Path,
    since: SystemTime,
    rates: &[(usize, f64, f64)],
    rate_note: &str,
) {
    println!();
    println!(
        "tokenvault on {server} vs the bare client on an identical table, {n} records: \
         criterion's estimates of this run"
    );
    println!("criterion results: {}", dir.display());
    print_load();
    let header = format!(
        "{:<44} {:>12} {:>12} {:>7} {:>12}",
        "operation", "tokenvault", "baseline", "ratio", "diff"
    );
    println!("{header}");
    println!("{}", "-".repeat(header.chars().count()));
    for (operation, ours, base) in [
        (
            "find_token by user_name",
            "find_token/by_user_name",
            "baseline/find_by_user_name",
        ),
        (
            "save_token (update, 1 client)",
            "save_token/update",
            "baseline/save_update",
        ),
    ] {
        let ours = estimate_ns(dir, ours, since);
        let base = estimate_ns(dir, base, since);
        let show = |v: Option<f64>| v.map_or_else(|| "not run".to_owned(), fmt_ns);
        let (ratio, diff) = match (ours, base) {
            (Some(o), Some(b)) => (
                format!("{:.2}x", o / b),
                format!("{:+.1} µs", (o - b) / 1e3),
            ),
            _ => ("-".into(), "-".into()),
        };
        println!(
            "{operation:<44} {:>12} {:>12} {ratio:>7} {diff:>12}",
            show(ours),
            show(base)
        );
    }
    for &(clients, ours, base) in rates {
        println!(
            "{:<44} {:>12} {:>12} {:>7} {:>12}",
            format!("saves/s, {clients} concurrent client(s){rate_note}"),
            format!("{ours:.0}/s"),
            format!("{base:.0}/s"),
            format!("{:.2}x", base / ours),
            "",
        );
    }
    println!(
        "(ratio: time per operation, tokenvault / baseline; for saves/s, baseline rate / ours)"
    );
    println!();
}
