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
//! `<output dir>/<group>/<bench>/new/estimates.json` and printed as a ratio table, followed by
//! saves per second with 1, 4 and 16 concurrent clients (threads, each with its own store
//! handle and one connection; each client updates users of its own), for tokenvault and for
//! the baseline, measured in ABBA order (tokenvault, baseline, baseline, tokenvault) so that
//! other load on the machine hits both alike. The benches, the throughput runs and the table
//! are shared with benches/mysql.rs in benches/support/db.rs.

#[path = "support/mod.rs"]
mod support;

#[path = "support/db.rs"]
mod db;

use std::time::{Duration, Instant};

use db::{baseline_rows, secret_of, sha, with_params};
use postgres::{Client, NoTls, Statement};
use support::{client_secret, credential, plain_json, record};
use tokenvault::backend::PostgresBackend;
use tokenvault::{EncryptedStore, OAuthToken, TokenField, TokenStore};

type Store = EncryptedStore<PostgresBackend>;

const DEFAULT_RECORDS: usize = 2_000;
const TEST_MODE_RECORDS: usize = 200;
const CLIENTS: [usize; 3] = [1, 4, 16];

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
        let schema = format!("b_{}", db::random_hex());
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
        let (sizes, rows) = baseline_rows(&store, n);
        let mut tx = admin.transaction().expect("begin");
        let insert = tx
            .prepare(&format!(
                "INSERT INTO \"{schema}\".bare_records({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
            ))
            .expect("prepare");
        for row in rows {
            tx.execute(
                &insert,
                &[
                    &row.id,
                    &row.user_name_tag,
                    &row.access_token_tag,
                    &row.refresh_token_tag,
                    &None::<Vec<u8>>,
                    &row.json,
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

fn main() {
    let max_clients = *CLIENTS.iter().max().unwrap();
    let Some(setup) = db::Setup::start(
        "PostgreSQL",
        "TOKENVAULT_TEST_POSTGRES",
        "postgres.sh",
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
            db::throughput(
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
            db::throughput(
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
        db::print_table("PostgreSQL", fx.n, &dir, since, &rates, "");
    }
}
