//! tokenvault's hot paths against a plaintext baseline, measured in the same run.
//!
//! ```text
//! cargo bench --bench core                 # full run: every bench, then the ratio table
//! cargo bench --bench core -- --quick      # quick mode (a couple of minutes)
//! cargo bench --bench core -- find_token   # criterion filter: matches the baseline too
//! TOKENVAULT_BENCH_RECORDS=10000 cargo bench --bench core   # another store size
//! cargo test --benches                     # smoke test: each bench once, 1,000 records
//! ```
//!
//! One store of N realistic Zoho records (N = 100,000 by default) is built once in a
//! `MemoryBackend`, with a raw-key credential (no Argon2id), and shared by every bench; the
//! plaintext baseline is a `HashMap<String, Vec<u8>>` from user name to the record's JSON.
//! After criterion has run, this run's estimates are read back from criterion's
//! `<output dir>/<group>/<bench>/new/estimates.json` (`slope`, or `mean` where criterion
//! sampled flat: the `time:` it prints) and printed as a ratio table with the
//! targets of the issue: `find_token` within 3 µs of the baseline, `get_tokens` of 100k
//! records in at most 0.3 s.

use std::collections::HashMap;
use std::env;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag as GcmTag};
use criterion::{BatchSize, Criterion, SamplingMode};
use hmac::{Hmac, KeyInit as MacKeyInit, Mac};
use sha2::Sha256;
use tokenvault::backend::{Backend, LookupField, MemoryBackend, Tag};
use tokenvault::{Credential, EncryptedStore, OAuthToken, RawKey, TokenStore};

type Store = EncryptedStore<MemoryBackend>;

/// Records in the big store unless `TOKENVAULT_BENCH_RECORDS` says otherwise.
const DEFAULT_RECORDS: usize = 100_000;
/// Records in the big store when criterion only smoke-tests (`cargo test --benches`).
const TEST_MODE_RECORDS: usize = 1_000;
/// Targets of the issue.
const FIND_TARGET_NS: f64 = 3_000.0;
const GET_ALL_TARGET_NS: f64 = 300_000_000.0;

const CLIENT_ID: &str = "1000.7QW2ZK4M9XBN3CJ8PLR5TVY6HDA0EG";
const REDIRECT_URL: &str = "https://www.example.com/oauth/zoho/callback";
const API_DOMAIN: &str = "https://www.zohoapis.com";
const EXPIRY_BASE: u64 = 1_900_000_000_000;

// ---------------------------------------------------------------------------------------------
// Realistic records
// ---------------------------------------------------------------------------------------------

/// SplitMix64: deterministic, well-mixed hex material for tokens.
fn mix(mut x: u64) -> u64 {
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

/// The app's client secret: 42 hex digits (one client, many users).
fn client_secret() -> String {
    let mut s = hex32(7, 7, 7);
    s.push_str(&hex32(8, 8, 8)[..10]);
    s
}

fn user_name(user: u64) -> String {
    format!("user{user}@example.com")
}

/// User `user`'s full record; `generation` picks the access token and its expiry (a refresh
/// gives a new access token, the refresh token stays).
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

/// Visits `0..n` in a fixed scattered order (a stride coprime to `n`), so that successive
/// lookups do not walk memory sequentially.
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
// The shared fixture
// ---------------------------------------------------------------------------------------------

struct Fixture {
    n: usize,
    secret: String,
    store: Store,
    /// Record id of user `i`.
    ids: Vec<String>,
    /// `find_token` queries: user name only.
    by_user: Vec<OAuthToken>,
    /// `find_token` queries: client id, client secret and refresh token.
    by_refresh: Vec<OAuthToken>,
    /// The plaintext baseline: user name → the record's JSON.
    plain: HashMap<String, Vec<u8>>,
    /// Keys of `plain`, by user.
    plain_keys: Vec<String>,
    /// User-name blind-index tags of the stored records, as the backend holds them (for the
    /// backend lookup primitive).
    user_tags: Vec<Tag>,
    /// Access-token generations handed out so far (each update needs a fresh access token).
    generation: u64,
    /// Users created so far beyond `n` (inserts).
    extra_users: u64,
}

impl Fixture {
    fn build(n: usize) -> Self {
        let secret = client_secret();
        let store = Store::create(MemoryBackend::new(), &credential()).expect("create store");
        let mut ids = Vec::with_capacity(n);
        let started = Instant::now();
        let mut tokens = Vec::with_capacity(n);
        for user in 0..n as u64 {
            let mut token = record(user, 0, &secret);
            store.save_token(&mut token).expect("save_token");
            ids.push(token.id().expect("saved").to_owned());
            tokens.push(token);
        }
        let built = started.elapsed();
        eprintln!(
            "built a {n}-record MemoryBackend store in {:.2} s ({:.2} µs per save_token insert)",
            built.as_secs_f64(),
            built.as_secs_f64() * 1e6 / n as f64
        );
        let mut plain = HashMap::with_capacity(n);
        let mut plain_keys = Vec::with_capacity(n);
        let mut by_user = Vec::with_capacity(n);
        let mut by_refresh = Vec::with_capacity(n);
        for token in &tokens {
            let name = token.user_name().expect("has a user name").to_owned();
            plain.insert(name.clone(), plain_json(token));
            plain_keys.push(name.clone());
            by_user.push(OAuthToken::new().with_user_name(name));
            by_refresh.push(
                OAuthToken::new()
                    .with_client_id(CLIENT_ID)
                    .with_client_secret(secret.as_str())
                    .with_refresh_token(token.refresh_token().expect("set").expose_secret()),
            );
        }
        let user_tags = store
            .backend()
            .list()
            .expect("backend list")
            .iter()
            .map(|r| *r.tags.get(LookupField::UserName).expect("user-name tag"))
            .collect();
        Self {
            n,
            secret,
            store,
            ids,
            by_user,
            by_refresh,
            plain,
            plain_keys,
            user_tags,
            generation: 0,
            extra_users: 0,
        }
    }
}

/// The count as criterion ids show it: `100k`, `10k`, `1k`, or the number.
fn size_label(n: usize) -> String {
    if n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// Benches
// ---------------------------------------------------------------------------------------------

/// Seal and open of one record, through a one-record store (the seal API is private).
fn bench_seal_open(c: &mut Criterion, secret: &str) {
    let store = Store::create(MemoryBackend::new(), &credential()).expect("create store");
    let mut token = record(0, 0, secret);
    store.save_token(&mut token).expect("save_token");
    let id = token.id().expect("saved").to_owned();

    let mut g = c.benchmark_group("seal_open");
    // save_token by id (get + open of the stored record, tags, seal) then find_token_by_id
    // (get + open): one full round trip of a record through AES-256-GCM.
    g.bench_function("one_record", |b| {
        b.iter_batched(
            || token.clone(),
            |mut t| {
                store.save_token(&mut t).expect("save_token");
                store.find_token_by_id(&id).expect("find_token_by_id")
            },
            BatchSize::SmallInput,
        )
    });
    // find_token_by_id alone: backend get, open (AES-GCM + JSON).
    g.bench_function("open_only", |b| {
        b.iter(|| store.find_token_by_id(black_box(&id)).expect("find"))
    });
    g.finish();

    let mut g = c.benchmark_group("baseline");
    let key = token.user_name().expect("set").to_owned();
    let mut map: HashMap<String, Vec<u8>> = HashMap::new();
    map.insert(key.clone(), plain_json(&token));
    g.bench_function("seal_open_one_record", |b| {
        b.iter_batched(
            || token.clone(),
            |t| {
                map.insert(key.clone(), plain_json(&t));
                serde_json::from_slice::<OAuthToken>(&map[black_box(key.as_str())]).expect("parse")
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("seal_open_open_only", |b| {
        b.iter(|| {
            serde_json::from_slice::<OAuthToken>(&map[black_box(key.as_str())]).expect("parse")
        })
    });
    g.finish();
}

fn bench_find(c: &mut Criterion, fx: &Fixture) {
    let label = size_label(fx.n);
    let mut g = c.benchmark_group("find_token");
    let mut cur = Cursor::new(fx.n);
    g.bench_function(format!("by_user_name_{label}"), |b| {
        b.iter(|| {
            let q = &fx.by_user[cur.next()];
            fx.store.find_token(q).expect("find").expect("found")
        })
    });
    let mut cur = Cursor::new(fx.n);
    g.bench_function(format!("by_refresh_token_{label}"), |b| {
        b.iter(|| {
            let q = &fx.by_refresh[cur.next()];
            fx.store.find_token(q).expect("find").expect("found")
        })
    });
    g.finish();

    let mut g = c.benchmark_group("find_token_by_id");
    let mut cur = Cursor::new(fx.n);
    g.bench_function(&label, |b| {
        b.iter(|| {
            let id = &fx.ids[cur.next()];
            fx.store.find_token_by_id(id).expect("find").expect("found")
        })
    });
    g.finish();

    let mut g = c.benchmark_group("baseline");
    let mut cur = Cursor::new(fx.n);
    g.bench_function(format!("find_token_{label}"), |b| {
        b.iter(|| {
            let key = fx.plain_keys[cur.next()].as_str();
            let bytes = fx.plain.get(key).expect("present");
            serde_json::from_slice::<OAuthToken>(bytes).expect("parse")
        })
    });
    g.finish();
}

fn bench_save(c: &mut Criterion, fx: &mut Fixture) {
    let label = size_label(fx.n);
    let n = fx.n as u64;
    let secret = fx.secret.clone();

    let mut g = c.benchmark_group("save_token");
    // An existing user saves a refreshed token (new access token and expiry, no id): matched
    // by user name, merged, sealed, written.
    let mut cur = Cursor::new(fx.n);
    let generation = &mut fx.generation;
    g.bench_function(format!("update_{label}"), |b| {
        b.iter_batched(
            || {
                *generation += 1;
                record(cur.next() as u64, *generation, &secret)
            },
            |mut t| {
                fx.store.save_token(&mut t).expect("save_token");
                t
            },
            BatchSize::SmallInput,
        )
    });
    // New users: each sample inserts fresh users (timed), then deletes them (not timed), so
    // the store stays at n records.
    let extra = &mut fx.extra_users;
    g.bench_function(format!("insert_{label}"), |b| {
        b.iter_custom(|iters| {
            let mut tokens: Vec<OAuthToken> = (0..iters)
                .map(|_| {
                    *extra += 1;
                    record(n + *extra, 0, &secret)
                })
                .collect();
            let started = Instant::now();
            for t in &mut tokens {
                fx.store.save_token(t).expect("save_token");
            }
            let elapsed = started.elapsed();
            for t in &tokens {
                fx.store
                    .delete_token(t.id().expect("saved"))
                    .expect("delete");
            }
            elapsed
        })
    });
    g.finish();

    let mut g = c.benchmark_group("baseline");
    let mut cur = Cursor::new(fx.n);
    let mut generation = 0;
    let plain = &mut fx.plain;
    g.bench_function(format!("save_token_update_{label}"), |b| {
        b.iter_batched(
            || {
                generation += 1;
                record(cur.next() as u64, generation, &secret)
            },
            |t| {
                let json = plain_json(&t);
                plain.insert(t.user_name().expect("set").to_owned(), json);
                t
            },
            BatchSize::SmallInput,
        )
    });
    let mut next_user = n + 1_000_000_000;
    g.bench_function(format!("save_token_insert_{label}"), |b| {
        b.iter_custom(|iters| {
            let tokens: Vec<OAuthToken> = (0..iters)
                .map(|_| {
                    next_user += 1;
                    record(next_user, 0, &secret)
                })
                .collect();
            let started = Instant::now();
            for t in &tokens {
                let json = plain_json(t);
                plain.insert(t.user_name().expect("set").to_owned(), json);
            }
            let elapsed = started.elapsed();
            for t in &tokens {
                plain.remove(t.user_name().expect("set"));
            }
            elapsed
        })
    });
    g.finish();
}

fn bench_get_all(c: &mut Criterion, fx: &Fixture) {
    let label = size_label(fx.n);
    let mut g = c.benchmark_group("get_tokens");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    // The returned Vec is dropped outside the timing, as for the baseline.
    g.bench_function(&label, |b| {
        b.iter_with_large_drop(|| fx.store.get_tokens().expect("get_tokens"))
    });
    g.finish();

    let mut g = c.benchmark_group("baseline");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.bench_function(format!("get_tokens_{label}"), |b| {
        b.iter_with_large_drop(|| {
            fx.plain
                .values()
                .map(|v| serde_json::from_slice::<OAuthToken>(v).expect("parse"))
                .collect::<Vec<_>>()
        })
    });
    g.finish();
}

/// The pieces a lookup is made of, measured alone with the crates tokenvault uses, to show
/// where the time goes.
fn bench_primitives(c: &mut Criterion, fx: &Fixture) {
    let label = size_label(fx.n);
    let token = record(3, 0, &fx.secret);
    let json = plain_json(&token);
    let aead = Aes256Gcm::new(&[9u8; 32].into());
    let nonce = Nonce::from([1u8; 12]);
    let ad = [0u8; 60];
    let mut sealed = json.clone();
    let tag: GcmTag = aead
        .encrypt_inout_detached(&nonce, &ad, sealed.as_mut_slice().into())
        .expect("seal");
    let mac = <Hmac<Sha256> as MacKeyInit>::new_from_slice(&[3u8; 32]).expect("any key length");

    let mut g = c.benchmark_group("primitives");
    g.bench_function(format!("aes256gcm_seal_{}B", json.len()), |b| {
        let mut buf = json.clone();
        b.iter(|| {
            aead.encrypt_inout_detached(&nonce, &ad, buf.as_mut_slice().into())
                .expect("seal")
        })
    });
    g.bench_function(format!("aes256gcm_open_{}B", json.len()), |b| {
        b.iter(|| {
            let mut buf = sealed.clone();
            aead.decrypt_inout_detached(&nonce, &ad, buf.as_mut_slice().into(), &tag)
                .expect("open");
            buf
        })
    });
    g.bench_function("hmac_sha256_tag", |b| {
        b.iter(|| {
            let mut m = mac.clone();
            m.update(b"user_name");
            m.update(&[0]);
            m.update(black_box(b"user12345@example.com"));
            m.finalize().into_bytes()
        })
    });
    g.bench_function("json_serialize", |b| {
        b.iter(|| plain_json(black_box(&token)))
    });
    g.bench_function("json_deserialize", |b| {
        b.iter(|| serde_json::from_slice::<OAuthToken>(black_box(&json)).expect("parse"))
    });
    // Scattered over all records, like the find_token benches: index hash map, then the
    // id-keyed B-tree, then a clone of the record.
    let mut cur = Cursor::new(fx.user_tags.len());
    g.bench_function(format!("backend_find_by_tag_{label}"), |b| {
        b.iter(|| {
            fx.store
                .backend()
                .find_by_tag(LookupField::UserName, &fx.user_tags[cur.next()])
                .expect("find")
                .expect("found")
        })
    });
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.bench_function(format!("backend_list_{label}"), |b| {
        b.iter_with_large_drop(|| fx.store.backend().list().expect("list"))
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// The ratio table
// ---------------------------------------------------------------------------------------------

/// Where criterion writes its results, by criterion's own rules: `$CRITERION_HOME`, else
/// `$CARGO_TARGET_DIR/criterion`, else `<cargo metadata target_directory>/criterion`, else
/// `target/criterion`. Passed to criterion explicitly too, so both sides agree.
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

/// Criterion's headline estimate (ns) of `group/bench` — the slope for linear sampling, else
/// the mean: what criterion prints as `time:` — if this run measured it (file written after
/// `since`).
fn estimate_ns(dir: &Path, id: &str, since: SystemTime) -> Option<f64> {
    let path = dir.join(id).join("new").join("estimates.json");
    let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
    if modified < since {
        return None; // left over from an earlier run (filtered out this time)
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
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

enum Target {
    /// tokenvault − baseline at most this many ns.
    WithinOfBaseline(f64),
    /// tokenvault at most this many ns.
    AtMost(f64),
    None,
}

struct Row {
    operation: String,
    ours: String,
    baseline: String,
    target: Target,
}

fn print_table(dir: &Path, since: SystemTime, n: usize) {
    let l = size_label(n);
    let row = |operation: &str, ours: String, baseline: String, target| Row {
        operation: operation.to_owned(),
        ours,
        baseline,
        target,
    };
    let rows = [
        row(
            "seal+open 1 record (save_token by id + find_token_by_id)",
            "seal_open/one_record".into(),
            "baseline/seal_open_one_record".into(),
            Target::None,
        ),
        row(
            "open 1 record (find_token_by_id, 1-record store)",
            "seal_open/open_only".into(),
            "baseline/seal_open_open_only".into(),
            Target::None,
        ),
        row(
            &format!("find_token by user_name ({l})"),
            format!("find_token/by_user_name_{l}"),
            format!("baseline/find_token_{l}"),
            Target::WithinOfBaseline(FIND_TARGET_NS),
        ),
        row(
            &format!("find_token by refresh_token ({l})"),
            format!("find_token/by_refresh_token_{l}"),
            format!("baseline/find_token_{l}"),
            Target::WithinOfBaseline(FIND_TARGET_NS),
        ),
        row(
            &format!("find_token_by_id ({l})"),
            format!("find_token_by_id/{l}"),
            format!("baseline/find_token_{l}"),
            Target::None,
        ),
        row(
            &format!("save_token update ({l})"),
            format!("save_token/update_{l}"),
            format!("baseline/save_token_update_{l}"),
            Target::None,
        ),
        row(
            &format!("save_token insert ({l})"),
            format!("save_token/insert_{l}"),
            format!("baseline/save_token_insert_{l}"),
            Target::None,
        ),
        row(
            &format!("get_tokens ({l} records)"),
            format!("get_tokens/{l}"),
            format!("baseline/get_tokens_{l}"),
            // The issue's target is for 100k records; scale it for another size.
            Target::AtMost(GET_ALL_TARGET_NS * n as f64 / 100_000.0),
        ),
    ];

    println!();
    println!(
        "tokenvault vs plaintext HashMap baseline, {n} records: criterion's estimates of this run \
         (slope; mean for get_tokens)"
    );
    println!("criterion results: {}", dir.display());
    // Other processes on a small machine skew results; say how busy it was.
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average (1, 5, 15 min) at the end: {}", load.trim());
    }
    let header = format!(
        "{:<58} {:>11} {:>11} {:>7} {:>11}  {:<20} {}",
        "operation", "tokenvault", "baseline", "ratio", "diff", "target", "result"
    );
    println!("{header}");
    println!("{}", "-".repeat(header.chars().count()));
    for r in rows {
        let ours = estimate_ns(dir, &r.ours, since);
        let base = estimate_ns(dir, &r.baseline, since);
        let show = |v: Option<f64>| v.map_or_else(|| "not run".to_owned(), fmt_ns);
        let ratio = match (ours, base) {
            (Some(o), Some(b)) => format!("{:.2}x", o / b),
            _ => "-".into(),
        };
        let diff = match (ours, base) {
            (Some(o), Some(b)) if o >= b => format!("+{}", fmt_ns(o - b)),
            (Some(o), Some(b)) => format!("-{}", fmt_ns(b - o)),
            _ => "-".into(),
        };
        let (target, result) = match r.target {
            Target::WithinOfBaseline(limit) => (
                format!("diff ≤ {} µs", limit / 1e3),
                match (ours, base) {
                    (Some(o), Some(b)) if o - b <= limit => "PASS",
                    (Some(_), Some(_)) => "MISS",
                    _ => "-",
                },
            ),
            Target::AtMost(limit) => (
                format!("≤ {}", fmt_ns(limit)),
                match ours {
                    Some(o) if o <= limit => "PASS",
                    Some(_) => "MISS",
                    None => "-",
                },
            ),
            Target::None => ("(info)".to_owned(), ""),
        };
        println!(
            "{:<58} {:>11} {:>11} {:>7} {:>11}  {:<20} {}",
            r.operation,
            show(ours),
            show(base),
            ratio,
            diff,
            target,
            result
        );
    }
    println!();
}

// ---------------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------------

/// Whether criterion runs for real (`cargo bench`: `--bench` without `--test`), as opposed
/// to smoke-testing each bench once (`cargo test --benches`, `cargo bench -- --test`).
fn benchmarking() -> bool {
    let args: Vec<String> = env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}

fn main() {
    let args: Vec<String> = env::args().collect();
    let benchmarking = benchmarking();
    let listing = args.iter().any(|a| a == "--list");
    let profiling = args.iter().any(|a| a.starts_with("--profile-time"));
    let n = env::var("TOKENVAULT_BENCH_RECORDS")
        .ok()
        .map(|v| v.parse().expect("TOKENVAULT_BENCH_RECORDS is a number"))
        .unwrap_or(if benchmarking {
            DEFAULT_RECORDS
        } else {
            TEST_MODE_RECORDS
        });
    assert!(n >= 2, "need at least two records");

    let dir = criterion_dir();
    let mut c = Criterion::default()
        .output_directory(&dir)
        .configure_from_args();
    // Result files older than this are from an earlier run (slack for coarse mtimes).
    let since = SystemTime::now() - Duration::from_secs(2);

    bench_seal_open(&mut c, &client_secret());
    let mut fx = Fixture::build(n);
    bench_find(&mut c, &fx);
    bench_get_all(&mut c, &fx);
    bench_primitives(&mut c, &fx);
    // Last: updates and inserts change the store (access tokens; inserts are deleted again).
    bench_save(&mut c, &mut fx);

    c.final_summary();
    if benchmarking && !listing && !profiling {
        print_table(&dir, since, fx.n);
    }
}
