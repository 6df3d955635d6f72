//! tokenvault on MySQL/MariaDB against the same queries without encryption, measured in the
//! same run on the same server (`TOKENVAULT_TEST_MYSQL`, e.g. from `.ci/services/mariadb.sh`).
//!
//! ```text
//! eval "$(bash .ci/services/mariadb.sh start)"
//! cargo bench --bench mysql                 # every bench, then the ratio table
//! cargo bench --bench mysql -- --quick      # quick mode
//! TOKENVAULT_BENCH_RECORDS=10000 cargo bench --bench mysql   # another store size
//! cargo test --bench mysql                  # smoke test: each bench once, 200 records
//! ```
//! Without `TOKENVAULT_TEST_MYSQL` it prints why and does nothing.
//!
//! A store of N realistic Zoho records (N = 2,000 by default) is created in a fresh database
//! `t_b<random hex>` (dropped at the end), with a raw-key credential. The baseline is the bare
//! `mysql` client on `bare_records`, made with `CREATE TABLE … LIKE tokenvault_records` (so
//! identical: same columns, types, unique indexes, engine) in the same database, holding the
//! same rows with the plaintext JSON (space-padded to the sealed record's length) for `sealed`
//! and SHA-256 hashes for the tags; it uses prepared statements on one connection, as the
//! backend does:
//! - `find_token` by user name ↔ `SELECT … WHERE user_name_tag = ?` + JSON parse;
//! - `save_token` (update of an existing user) ↔ the same match-then-write without crypto:
//!   `START TRANSACTION; SELECT … WHERE user_name_tag = ? FOR UPDATE; UPDATE … WHERE id = ?;
//!   COMMIT`.
//!
//! The layout and table follow benches/postgres.rs so the two backends' tables can be compared;
//! records, scattered order and criterion's estimates come from benches/support/. criterion's estimates of this run are read back from
//! `<output dir>/<group>/<bench>/new/estimates.json` (as benches/core.rs does) and printed as a
//! ratio table, followed by saves per second with 1, 4 and 16 concurrent clients (threads,
//! each with its own store handle and one connection; each client updates users of its own),
//! for tokenvault and for the baseline: the median of 5 one-second rounds, the two sides
//! alternating, so that load from other processes weighs on both alike.

#[path = "support/mod.rs"]
mod support;

use std::env;
use std::hint::black_box;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use criterion::{BatchSize, Criterion};
use mysql::prelude::Queryable;
use mysql::{Conn, Statement};
use sha2::{Digest, Sha256};
use support::{
    Cursor, client_secret, credential, criterion_dir, estimate_ns, fmt_ns, median, plain_json,
    print_load, record, user_name,
};
use tokenvault::backend::{Backend, MysqlBackend};
use tokenvault::{EncryptedStore, OAuthToken, TokenField, TokenStore};

type Store = EncryptedStore<MysqlBackend>;

const DEFAULT_RECORDS: usize = 2_000;
const TEST_MODE_RECORDS: usize = 200;
const CLIENTS: [usize; 3] = [1, 4, 16];
/// Alternating one-second rounds per side and client count; the table shows the medians.
const THROUGHPUT_ROUNDS: usize = 5;

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

/// `uri` with its path replaced by `/database`.
fn with_database(uri: &str, database: &str) -> String {
    let mut url = url::Url::parse(uri).expect("TOKENVAULT_TEST_MYSQL is a URL");
    url.set_path(&format!("/{database}"));
    url.into()
}

fn with_params(uri: &str, params: &str) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{params}")
}

/// A bare client connection with the URI's credentials and TLS choice (tokenvault's own
/// parameters removed).
fn bare_conn(uri: &str) -> Conn {
    let mut url = url::Url::parse(uri).expect("TOKENVAULT_TEST_MYSQL is a URL");
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let tls = !pairs
        .iter()
        .any(|(k, v)| k == "ssl_mode" && v.eq_ignore_ascii_case("disabled"));
    url.set_query(None);
    for (k, v) in &pairs {
        if ![
            "ssl_mode",
            "table_prefix",
            "pool_min",
            "pool_max",
            "pool_size",
        ]
        .contains(&k.as_str())
        {
            url.query_pairs_mut().append_pair(k, v);
        }
    }
    let opts = mysql::Opts::from_url(url.as_str()).expect("bare URI");
    let ssl = tls.then(|| opts.get_ssl_opts().cloned().unwrap_or_default());
    Conn::new(
        mysql::OptsBuilder::from_opts(opts)
            .prefer_socket(false)
            .ssl_opts(ssl),
    )
    .expect("bare client connects")
}

// ---------------------------------------------------------------------------------------------
// The baseline: the bare client on an identical table
// ---------------------------------------------------------------------------------------------

const COLUMNS: &str =
    "`id`, `user_name_tag`, `access_token_tag`, `refresh_token_tag`, `grant_token_tag`, `sealed`";

struct Bare {
    conn: Conn,
    find: Statement,
    lock: Statement,
    update: Statement,
}

impl Bare {
    fn connect(db_uri: &str) -> Self {
        let mut conn = bare_conn(db_uri);
        let find = conn
            .prep(format!(
                "SELECT {COLUMNS} FROM bare_records WHERE user_name_tag = ?"
            ))
            .expect("prepare");
        let lock = conn
            .prep(format!(
                "SELECT {COLUMNS} FROM bare_records WHERE user_name_tag = ? FOR UPDATE"
            ))
            .expect("prepare");
        let update = conn
            .prep(
                "UPDATE bare_records SET user_name_tag = ?, access_token_tag = ?, \
                 refresh_token_tag = ?, grant_token_tag = ?, sealed = ? WHERE id = ?",
            )
            .expect("prepare");
        Self {
            conn,
            find,
            lock,
            update,
        }
    }

    /// The baseline of `find_token` by user name.
    fn find(&mut self, user: &str) -> OAuthToken {
        let row: mysql::Row = self
            .conn
            .exec_first(&self.find, (sha(user),))
            .expect("bare find")
            .expect("found");
        let sealed: Vec<u8> = row.get(5).expect("sealed");
        serde_json::from_slice(&sealed).expect("parse")
    }

    /// The baseline of `save_token` updating an existing user: match, then write, in one
    /// transaction; the JSON padded to `size` like a sealed record.
    fn save(&mut self, token: &OAuthToken, size: usize) {
        let user = token.user_name().expect("set");
        self.conn.query_drop("START TRANSACTION").expect("begin");
        let row: mysql::Row = self
            .conn
            .exec_first(&self.lock, (sha(user),))
            .expect("bare match")
            .expect("found");
        let id: Vec<u8> = row.get(0).expect("id");
        let mut json = plain_json(token);
        json.resize(size.max(json.len()), b' ');
        let access = sha(&secret_of(token, TokenField::AccessToken));
        let refresh = sha(&secret_of(token, TokenField::RefreshToken));
        self.conn
            .exec_drop(
                &self.update,
                (sha(user), access, refresh, None::<Vec<u8>>, json, id),
            )
            .expect("bare update");
        self.conn.query_drop("COMMIT").expect("commit");
    }
}

// ---------------------------------------------------------------------------------------------
// The fixture
// ---------------------------------------------------------------------------------------------

struct Fixture {
    uri: String,
    database: String,
    /// The server URI with the fixture's database.
    db_uri: String,
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
        let database = format!("t_b{}", random_hex());
        bare_conn(uri)
            .query_drop(format!("CREATE DATABASE `{database}`"))
            .expect("create the bench database");
        let db_uri = with_database(uri, &database);
        let store = Store::create(
            MysqlBackend::connect(&db_uri).expect("connect"),
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
            "built a {n}-record MySQL store (database {database}) in {:.2} s ({:.2} ms per \
             save_token insert)",
            built.as_secs_f64(),
            built.as_secs_f64() * 1e3 / n as f64
        );

        let mut admin = bare_conn(&db_uri);
        admin
            .query_drop("CREATE TABLE bare_records LIKE tokenvault_records")
            .expect("create the baseline table");
        let mut sizes = vec![0; n];
        let records = store.backend().list().expect("list");
        let mut rows = Vec::with_capacity(n);
        for token in store.get_tokens().expect("get_tokens") {
            let name = token.user_name().expect("set").to_owned();
            let user: usize = name["user".len()..name.len() - "@example.com".len()]
                .parse()
                .expect("userN@example.com");
            let id = token.id().expect("saved").to_owned();
            let sealed = &records.iter().find(|r| r.id == id).expect("listed").sealed;
            sizes[user] = sealed.len();
            let mut json = plain_json(&token);
            json.resize(sealed.len().max(json.len()), b' ');
            rows.push((
                id.into_bytes(),
                sha(&name),
                sha(&secret_of(&token, TokenField::AccessToken)),
                sha(&secret_of(&token, TokenField::RefreshToken)),
                None::<Vec<u8>>,
                json,
            ));
        }
        admin.query_drop("START TRANSACTION").expect("begin");
        admin
            .exec_batch(
                format!("INSERT INTO bare_records ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"),
                rows,
            )
            .expect("insert baseline rows");
        admin.query_drop("COMMIT").expect("commit");
        admin
            .query_drop("ANALYZE TABLE bare_records, tokenvault_records")
            .expect("analyze");
        let bare = Bare::connect(&db_uri);
        Self {
            uri: uri.to_owned(),
            database,
            db_uri,
            n,
            secret,
            store,
            bare,
            sizes,
            generation: 0,
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = bare_conn(&self.uri).query_drop(format!("DROP DATABASE `{}`", self.database));
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
/// (`user % clients == thread`); `save(client, user, generation)` does one save.
fn throughput<C>(
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

// ---------------------------------------------------------------------------------------------
// The ratio table (criterion's estimates, read back as benches/core.rs does)
// ---------------------------------------------------------------------------------------------

fn print_table(dir: &Path, since: SystemTime, n: usize, rates: &[(usize, f64, f64)]) {
    println!();
    println!(
        "tokenvault on MySQL/MariaDB vs the bare client on an identical table, {n} records: \
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
            format!("saves/s, {clients} concurrent client(s), median"),
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
    let Some(uri) = env::var("TOKENVAULT_TEST_MYSQL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        println!(
            "skipping the MySQL benches: TOKENVAULT_TEST_MYSQL is not set \
             (`eval \"$(bash .ci/services/mariadb.sh start)\"` starts a server)"
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

    // Alternating rounds, medians: load from other processes drifts, and hits both sides alike.
    let (rounds, duration) = if benchmarking {
        (THROUGHPUT_ROUNDS, Duration::from_secs(1))
    } else {
        (1, Duration::from_millis(200))
    };
    let mut rates = Vec::new();
    let store_uri = with_params(&fx.db_uri, "pool_min=1&pool_max=1");
    let (db_uri, secret, sizes) = (fx.db_uri.clone(), fx.secret.clone(), fx.sizes.clone());
    for clients in CLIENTS {
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            ours.push(throughput(
                clients,
                n,
                duration,
                || {
                    Store::open(
                        MysqlBackend::connect(&store_uri).expect("connect"),
                        &credential(),
                    )
                    .expect("open store")
                },
                |store, user, generation| {
                    let mut t = record(user, generation, &secret);
                    store.save_token(&mut t).expect("save_token");
                },
            ));
            base.push(throughput(
                clients,
                n,
                duration,
                || Bare::connect(&db_uri),
                |bare, user, generation| {
                    bare.save(&record(user, generation, &secret), sizes[user as usize]);
                },
            ));
        }
        eprintln!(
            "{clients} client(s), saves/s per round: tokenvault {ours:.0?}, baseline {base:.0?}"
        );
        rates.push((clients, median(ours), median(base)));
    }
    if benchmarking {
        print_table(&dir, since, fx.n, &rates);
    }
}
