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
//! The benches, the throughput runs and the table are benches/postgres.rs's (shared in
//! benches/support/db.rs), so the two backends' tables can be compared; records and scattered
//! order come from benches/support/mod.rs. criterion's estimates of this run are read back
//! from `<output dir>/<group>/<bench>/new/estimates.json` and printed as a ratio table,
//! followed by saves per second with 1, 4 and 16 concurrent clients (threads, each with its
//! own store handle and one connection; each client updates users of its own), for tokenvault
//! and for the baseline: the median of 5 one-second rounds, the two sides alternating, so that
//! load from other processes weighs on both alike.

#[path = "support/mod.rs"]
mod support;

#[path = "support/db.rs"]
mod db;

use std::time::{Duration, Instant};

use db::{baseline_rows, secret_of, sha, with_params};
use mysql::prelude::Queryable;
use mysql::{Conn, Statement};
use support::{client_secret, credential, median, plain_json, record};
use tokenvault::backend::MysqlBackend;
use tokenvault::{EncryptedStore, OAuthToken, TokenField, TokenStore};

type Store = EncryptedStore<MysqlBackend>;

const DEFAULT_RECORDS: usize = 2_000;
const TEST_MODE_RECORDS: usize = 200;
const CLIENTS: [usize; 3] = [1, 4, 16];
/// Alternating one-second rounds per side and client count; the table shows the medians.
const THROUGHPUT_ROUNDS: usize = 5;

/// `uri` with its path replaced by `/database`.
fn with_database(uri: &str, database: &str) -> String {
    let mut url = url::Url::parse(uri).expect("TOKENVAULT_TEST_MYSQL is a URL");
    url.set_path(&format!("/{database}"));
    url.into()
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
        let database = format!("t_b{}", db::random_hex());
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
        let (sizes, rows) = baseline_rows(&store, n);
        let rows: Vec<_> = rows
            .into_iter()
            .map(|row| {
                (
                    row.id.into_bytes(),
                    row.user_name_tag,
                    row.access_token_tag,
                    row.refresh_token_tag,
                    None::<Vec<u8>>,
                    row.json,
                )
            })
            .collect();
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

fn main() {
    let max_clients = *CLIENTS.iter().max().unwrap();
    let Some(setup) = db::Setup::start(
        "MySQL",
        "TOKENVAULT_TEST_MYSQL",
        "mariadb.sh",
        DEFAULT_RECORDS,
        TEST_MODE_RECORDS,
        max_clients,
    ) else {
        return;
    };
    let db::Setup {
        uri,
        n,
        benchmarking,
        listing,
        criterion: mut c,
        dir,
        since,
    } = setup;

    let mut fx = Fixture::build(&uri, n);
    db::bench_find(&mut c, fx.n, &fx.store, |user| fx.bare.find(user));
    db::bench_save(
        &mut c,
        &fx.store,
        &fx.secret,
        &mut fx.generation,
        &fx.sizes,
        |t, size| fx.bare.save(t, size),
    );
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
            ours.push(db::throughput(
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
            base.push(db::throughput(
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
        db::print_table("MySQL/MariaDB", fx.n, &dir, since, &rates, ", median");
    }
}
