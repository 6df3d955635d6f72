//! tokenvault on PostgreSQL against the same queries without encryption, measured in the same
//! run on the same server (`TOKENVAULT_TEST_POSTGRES`, e.g. from `.ci/services/postgres.sh`).
//!
//! ```text
//! eval "$(bash .ci/services/postgres.sh start)"
//! cargo bench --bench postgres                 # every bench, then the ratio table
//! cargo bench --bench postgres -- --quick      # quick mode
//! TOKENVAULT_BENCH_RECORDS=10000 cargo bench --bench postgres   # another store size
//! cargo test --bench postgres                  # smoke test: each bench once, 200 records
//! ```
//! Without `TOKENVAULT_TEST_POSTGRES` it prints why and does nothing.
//!
//! A store of N realistic Zoho records (N = 2,000 by default) is created in a fresh schema
//! `b_<random hex>` (dropped at the end), with a raw-key credential. The baseline is the bare
//! `postgres` client on a table identical to `tokenvault_records` in the same schema, holding
//! the same rows with the plaintext JSON (space-padded to the sealed record's length) for
//! `sealed` and SHA-256 hashes for the tags:
//! - `find_token` by user name ↔ `SELECT … WHERE user_name_tag = $1` + JSON parse;
//! - `save_token` (update of an existing user) ↔ the same match-then-write without crypto:
//!   `BEGIN; SELECT … WHERE user_name_tag = $1 FOR UPDATE; INSERT … ON CONFLICT (id) DO
//!   UPDATE …; COMMIT`.
//!
//! criterion's estimates of this run are read back from
//! `<output dir>/<group>/<bench>/new/estimates.json` (as benches/core.rs does) and printed as a
//! ratio table, followed by saves per second with 1, 4 and 16 concurrent clients (threads,
//! each with its own store handle and one connection; each client updates users of its own),
//! for tokenvault and for the baseline, measured in ABBA order (tokenvault, baseline, baseline,
//! tokenvault) so that other load on the machine hits both alike.

use std::env;
use std::hint::black_box;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use criterion::{BatchSize, Criterion};
use postgres::{Client, NoTls, Statement};
use sha2::{Digest, Sha256};
use tokenvault::backend::{Backend, PostgresBackend};
use tokenvault::{Credential, EncryptedStore, OAuthToken, RawKey, TokenField, TokenStore};

type Store = EncryptedStore<PostgresBackend>;

const DEFAULT_RECORDS: usize = 2_000;
const TEST_MODE_RECORDS: usize = 200;
const CLIENTS: [usize; 3] = [1, 4, 16];

const CLIENT_ID: &str = "1000.7QW2ZK4M9XBN3CJ8PLR5TVY6HDA0EG";
const REDIRECT_URL: &str = "https://www.example.com/oauth/zoho/callback";
const API_DOMAIN: &str = "https://www.zohoapis.com";
const EXPIRY_BASE: u64 = 1_900_000_000_000;

// ---------------------------------------------------------------------------------------------
// Realistic records (as in benches/core.rs)
// ---------------------------------------------------------------------------------------------

/// SplitMix64: deterministic, well-mixed hex material for tokens.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

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

fn client_secret() -> String {
    let mut s = hex32(7, 7, 7);
    s.push_str(&hex32(8, 8, 8)[..10]);
    s
}

fn user_name(user: u64) -> String {
    format!("user{user}@example.com")
}

/// User `user`'s full record; `generation` picks the access token and its expiry.
fn record(user: u64, generation: u64, secret: &str) -> OAuthToken {
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

fn credential() -> Credential {
    Credential::raw_key(RawKey::from_bytes([7; 32]))
}

fn plain_json(token: &OAuthToken) -> Vec<u8> {
    serde_json::to_vec(&token.expose_secrets()).expect("a token serializes")
}

fn sha(value: &str) -> Vec<u8> {
    Sha256::digest(value.as_bytes()).to_vec()
}

fn secret_of(token: &OAuthToken, field: TokenField) -> String {
    token
        .expose_field(field)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn with_params(uri: &str, params: &str) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{params}")
}

/// Visits `0..n` in a fixed scattered order (a stride coprime to `n`).
struct Cursor {
    at: usize,
    n: usize,
    stride: usize,
}

impl Cursor {
    fn new(n: usize) -> Self {
        const PRIME: usize = 48_271;
        let stride = if n.is_multiple_of(PRIME) {
            1
        } else {
            PRIME % n
        };
        Self { at: 0, n, stride }
    }

    fn next(&mut self) -> usize {
        self.at = (self.at + self.stride) % self.n;
        self.at
    }
}

// ---------------------------------------------------------------------------------------------
// The baseline: the bare client on an identical table
// ---------------------------------------------------------------------------------------------

struct Bare {
    client: Client,
    find: Statement,
    lock: Statement,
    upsert: Statement,
}

const COLUMNS: &str =
    "id, user_name_tag, access_token_tag, refresh_token_tag, grant_token_tag, sealed";

impl Bare {
    fn connect(uri: &str, schema: &str) -> Self {
        let mut client = Client::connect(uri, NoTls).expect("bare client connects");
        let table = format!("\"{schema}\".bare_records");
        let find = client
            .prepare(&format!(
                "SELECT {COLUMNS} FROM {table} WHERE user_name_tag = $1"
            ))
            .expect("prepare");
        let lock = client
            .prepare(&format!(
                "SELECT {COLUMNS} FROM {table} WHERE user_name_tag = $1 FOR UPDATE"
            ))
            .expect("prepare");
        let upsert = client
            .prepare(&format!(
                "INSERT INTO {table}({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (id) DO UPDATE SET user_name_tag = EXCLUDED.user_name_tag,
                     access_token_tag = EXCLUDED.access_token_tag,
                     refresh_token_tag = EXCLUDED.refresh_token_tag,
                     grant_token_tag = EXCLUDED.grant_token_tag, sealed = EXCLUDED.sealed"
            ))
            .expect("prepare");
        Self {
            client,
            find,
            lock,
            upsert,
        }
    }

    /// The baseline of `find_token` by user name.
    fn find(&mut self, user: &str) -> OAuthToken {
        let row = self
            .client
            .query_one(&self.find, &[&sha(user)])
            .expect("bare find");
        let sealed: &[u8] = row.get(5);
        serde_json::from_slice(sealed).expect("parse")
    }

    /// The baseline of `save_token` updating an existing user: match, then write, in one
    /// transaction; the JSON padded to `size` like a sealed record.
    fn save(&mut self, token: &OAuthToken, size: usize) {
        let user = token.user_name().expect("set");
        let mut tx = self.client.transaction().expect("begin");
        let row = tx.query_one(&self.lock, &[&sha(user)]).expect("bare match");
        let id: String = row.get(0);
        let mut json = plain_json(token);
        json.resize(size.max(json.len()), b' ');
        let access = sha(&secret_of(token, TokenField::AccessToken));
        let refresh = sha(&secret_of(token, TokenField::RefreshToken));
        tx.execute(
            &self.upsert,
            &[&id, &sha(user), &access, &refresh, &None::<Vec<u8>>, &json],
        )
        .expect("bare upsert");
        tx.commit().expect("commit");
    }
}

// ---------------------------------------------------------------------------------------------
// The fixture
// ---------------------------------------------------------------------------------------------

struct Fixture {
    uri: String,
    schema: String,
    n: usize,
    secret: String,
    store: Store,
    bare: Bare,
    /// Sealed size per user (the baseline pads its JSON to it).
    sizes: Vec<usize>,
    generation: u64,
}

impl Fixture {
    fn build(uri: &str, n: usize) -> Self {
        let schema = format!("b_{}", random_hex());
        let store_uri = with_params(uri, &format!("schema={schema}"));
        let store = Store::create(
            PostgresBackend::connect(&store_uri).expect("connect"),
            &credential(),
        )
        .expect("create store");
        let secret = client_secret();
        let started = Instant::now();
        for user in 0..n as u64 {
            let mut token = record(user, 0, &secret);
            store.save_token(&mut token).expect("save_token");
        }
        let built = started.elapsed();
        eprintln!(
            "built a {n}-record PostgreSQL store (schema {schema}) in {:.2} s ({:.2} ms per \
             save_token insert)",
            built.as_secs_f64(),
            built.as_secs_f64() * 1e3 / n as f64
        );

        let mut admin = Client::connect(uri, NoTls).expect("bare client connects");
        admin
            .batch_execute(&format!(
                "CREATE TABLE \"{schema}\".bare_records (
                     id TEXT COLLATE \"C\" PRIMARY KEY NOT NULL,
                     user_name_tag BYTEA UNIQUE, access_token_tag BYTEA UNIQUE,
                     refresh_token_tag BYTEA UNIQUE, grant_token_tag BYTEA UNIQUE,
                     sealed BYTEA NOT NULL)"
            ))
            .expect("create the baseline table");
        let mut sizes = vec![0; n];
        let records = store.backend().list().expect("list");
        let mut tx = admin.transaction().expect("begin");
        let insert = tx
            .prepare(&format!(
                "INSERT INTO \"{schema}\".bare_records({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
            ))
            .expect("prepare");
        for token in store.get_tokens().expect("get_tokens") {
            let name = token.user_name().expect("set");
            let user: usize = name["user".len()..name.len() - "@example.com".len()]
                .parse()
                .expect("userN@example.com");
            let id = token.id().expect("saved");
            let sealed = &records.iter().find(|r| r.id == id).expect("listed").sealed;
            sizes[user] = sealed.len();
            let mut json = plain_json(&token);
            json.resize(sealed.len().max(json.len()), b' ');
            tx.execute(
                &insert,
                &[
                    &id,
                    &sha(name),
                    &sha(&secret_of(&token, TokenField::AccessToken)),
                    &sha(&secret_of(&token, TokenField::RefreshToken)),
                    &None::<Vec<u8>>,
                    &json,
                ],
            )
            .expect("insert baseline row");
        }
        tx.commit().expect("commit");
        admin
            .batch_execute(&format!(
                "ANALYZE \"{schema}\".bare_records; ANALYZE \"{schema}\".tokenvault_records"
            ))
            .expect("analyze");
        let bare = Bare::connect(uri, &schema);
        Self {
            uri: uri.to_owned(),
            schema,
            n,
            secret,
            store,
            bare,
            sizes,
            generation: 0,
        }
    }

    fn store_uri(&self, params: &str) -> String {
        with_params(&self.uri, &format!("schema={}&{params}", self.schema))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Ok(mut admin) = Client::connect(&self.uri, NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                self.schema
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Benches
// ---------------------------------------------------------------------------------------------

fn bench_find(c: &mut Criterion, fx: &mut Fixture) {
    let mut g = c.benchmark_group("find_token");
    let mut cur = Cursor::new(fx.n);
    let store = &fx.store;
    g.bench_function("by_user_name", |b| {
        b.iter(|| {
            let q = OAuthToken::new().with_user_name(user_name(cur.next() as u64));
            store.find_token(&q).expect("find").expect("found")
        })
    });
    g.finish();

    let mut g = c.benchmark_group("baseline");
    let mut cur = Cursor::new(fx.n);
    let bare = &mut fx.bare;
    g.bench_function("find_by_user_name", |b| {
        b.iter(|| bare.find(black_box(&user_name(cur.next() as u64))))
    });
    g.finish();
}

fn bench_save(c: &mut Criterion, fx: &mut Fixture) {
    let mut g = c.benchmark_group("save_token");
    let mut cur = Cursor::new(fx.n);
    let (store, secret, generation) = (&fx.store, &fx.secret, &mut fx.generation);
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
    let mut cur = Cursor::new(fx.n);
    let mut generation = 0;
    let (bare, sizes) = (&mut fx.bare, &fx.sizes);
    g.bench_function("save_update", |b| {
        b.iter_batched(
            || {
                generation += 1;
                let user = cur.next();
                (record(user as u64, generation, secret), sizes[user])
            },
            |(t, size)| {
                bare.save(&t, size);
                t
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Saves per second with `clients` threads for `duration`, each thread on users of its own
/// (`user % clients == thread`); `save(thread, user, generation)` does one save.
fn throughput<C>(
    clients: usize,
    n: usize,
    duration: Duration,
    connect: impl Fn() -> C + Sync,
    save: impl Fn(&mut C, u64, u64) + Sync,
) -> f64 {
    let handles_ready = std::sync::Barrier::new(clients + 1);
    let total: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|thread| {
                let (connect, save, ready) = (&connect, &save, &handles_ready);
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
        handles_ready.wait();
        handles.into_iter().map(|h| h.join().expect("client")).sum()
    });
    total as f64 / duration.as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// The ratio table (criterion's estimates, read back as benches/core.rs does)
// ---------------------------------------------------------------------------------------------

/// Where criterion writes its results: `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`,
/// else `<cargo metadata target_directory>/criterion`, else `target/criterion`.
fn criterion_dir() -> PathBuf {
    if let Some(home) = env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    let from_metadata = env::var_os("CARGO").and_then(|cargo| {
        let out = Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .output()
            .ok()?;
        let meta: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        Some(PathBuf::from(meta.get("target_directory")?.as_str()?))
    });
    from_metadata
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("criterion")
}

/// Criterion's headline estimate (ns) of `group/bench` (slope, else mean) if this run
/// measured it (file written after `since`).
fn estimate_ns(dir: &Path, id: &str, since: SystemTime) -> Option<f64> {
    let path = dir.join(id).join("new").join("estimates.json");
    let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
    if modified < since {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    let point = |field: &str| json.get(field)?.get("point_estimate")?.as_f64();
    point("slope").or_else(|| point("mean"))
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.3} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn print_table(dir: &Path, since: SystemTime, n: usize, rates: &[(usize, f64, f64)]) {
    println!();
    println!(
        "tokenvault on PostgreSQL vs the bare client on an identical table, {n} records: \
         criterion's estimates of this run"
    );
    println!("criterion results: {}", dir.display());
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average (1, 5, 15 min) at the end: {}", load.trim());
    }
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
            format!("saves/s, {clients} concurrent client(s)"),
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

/// Whether criterion runs for real (`cargo bench`), not a smoke test.
fn benchmarking() -> bool {
    let args: Vec<String> = env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}

fn main() {
    let Some(uri) = env::var("TOKENVAULT_TEST_POSTGRES")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        println!(
            "skipping the PostgreSQL benches: TOKENVAULT_TEST_POSTGRES is not set \
             (`eval \"$(bash .ci/services/postgres.sh start)\"` starts a server)"
        );
        return;
    };
    let args: Vec<String> = env::args().collect();
    let benchmarking = benchmarking();
    let listing = args.iter().any(|a| a == "--list");
    let n = env::var("TOKENVAULT_BENCH_RECORDS")
        .ok()
        .map(|v| v.parse().expect("TOKENVAULT_BENCH_RECORDS is a number"))
        .unwrap_or(if benchmarking {
            DEFAULT_RECORDS
        } else {
            TEST_MODE_RECORDS
        });
    assert!(
        n >= *CLIENTS.iter().max().unwrap(),
        "need a user per client at least"
    );

    let dir = criterion_dir();
    let mut c = Criterion::default()
        .output_directory(&dir)
        .configure_from_args();
    let since = SystemTime::now() - Duration::from_secs(2);

    let mut fx = Fixture::build(&uri, n);
    bench_find(&mut c, &mut fx);
    bench_save(&mut c, &mut fx);
    c.final_summary();
    if listing {
        return;
    }

    let duration = if benchmarking {
        Duration::from_secs(3)
    } else {
        Duration::from_millis(200)
    };
    let mut rates = Vec::new();
    // Only what the clients need (the fixture's own connection is not Sync).
    let (store_uri, uri, schema) = (
        fx.store_uri("pool_size=1"),
        fx.uri.clone(),
        fx.schema.clone(),
    );
    let (secret, sizes) = (fx.secret.clone(), fx.sizes.clone());
    for clients in CLIENTS {
        let ours = || {
            throughput(
                clients,
                n,
                duration / 2,
                || {
                    Store::open(
                        PostgresBackend::connect(&store_uri).expect("connect"),
                        &credential(),
                    )
                    .expect("open store")
                },
                |store, user, generation| {
                    let mut t = record(user, generation, &secret);
                    store.save_token(&mut t).expect("save_token");
                },
            )
        };
        let base = || {
            throughput(
                clients,
                n,
                duration / 2,
                || Bare::connect(&uri, &schema),
                |bare, user, generation| {
                    bare.save(&record(user, generation, &secret), sizes[user as usize]);
                },
            )
        };
        // ABBA, so that other load on the machine hits both sides alike.
        let (o1, b1, b2, o2) = (ours(), base(), base(), ours());
        let (ours, base) = ((o1 + o2) / 2.0, (b1 + b2) / 2.0);
        eprintln!("{clients} client(s): tokenvault {ours:.0} saves/s, baseline {base:.0} saves/s");
        rates.push((clients, ours, base));
    }
    if benchmarking {
        print_table(&dir, since, fx.n, &rates);
    }
}
