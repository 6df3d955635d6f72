//! What the audit trail costs (SECURITY.md §3.7): a save (an update of one record) and a find
//! by user name, on three stores of N records each — audit off (the baseline), mode changes,
//! mode all — measured in the same run, in rounds that take turns (so that other load on the
//! machine hits every store alike), medians printed with their ratio to the baseline. On the
//! memory backend (CPU only) and on SQLite (durable: every write an fsync).
//!
//! ```text
//! cargo run --release --example audit_cost            # 1,000 records, 9 rounds
//! cargo run --release --example audit_cost -- 10000 5
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use tokenvault::backend::{Backend, MemoryBackend, SqliteBackend};
use tokenvault::{AuditMode, Credential, EncryptedStore, OAuthToken, RawKey, TokenStore};

const MODES: [AuditMode; 3] = [AuditMode::Off, AuditMode::Changes, AuditMode::All];

fn token(i: usize, n: u64) -> OAuthToken {
    OAuthToken::new()
        .with_user_name(format!("user{i}@example.com"))
        .with_client_id("1000.EXAMPLECLIENTID")
        .with_client_secret("example-client-secret-0123456789abcdef")
        .with_refresh_token(format!("1000.{i:032x}.refresh"))
        .with_access_token(format!("1000.{i:032x}.{n}.access"))
        .with_expiry_time(1_900_000_000_000)
        .with_api_domain("https://www.zohoapis.com")
}

fn store<B: Backend>(backend: B, records: usize, mode: AuditMode) -> EncryptedStore<B> {
    let key = Credential::raw_key(RawKey::from_bytes([7; 32]));
    let store = EncryptedStore::create(backend, &key).expect("create");
    // Filled before the trail is on, so that every store starts with the same records.
    for i in 0..records {
        store.save_token(&mut token(i, 0)).expect("save");
    }
    store.set_audit_mode(mode).expect("audit mode");
    store
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn measure<B: Backend>(label: &str, stores: &[EncryptedStore<B>], rounds: usize, ops: usize) {
    let mut saves = vec![Vec::new(); stores.len()];
    let mut finds = vec![Vec::new(); stores.len()];
    for (n, round) in (1u64..).zip(0..rounds) {
        // ABBA order: the first store first in even rounds, last in odd ones.
        let order: Vec<usize> = if round % 2 == 0 {
            (0..stores.len()).collect()
        } else {
            (0..stores.len()).rev().collect()
        };
        for &s in &order {
            let store = &stores[s];
            let started = Instant::now();
            for i in 0..ops {
                let mut t = token(i, n);
                store.save_token(&mut t).expect("save");
            }
            saves[s].push(started.elapsed() / ops as u32);
            let started = Instant::now();
            for i in 0..ops {
                let q = OAuthToken::new().with_user_name(format!("user{i}@example.com"));
                black_box(store.find_token(&q).expect("find"));
            }
            finds[s].push(started.elapsed() / ops as u32);
        }
    }
    let base = (median(saves[0].clone()), median(finds[0].clone()));
    for (s, mode) in MODES.iter().enumerate() {
        let (save, find) = (median(saves[s].clone()), median(finds[s].clone()));
        println!(
            "{label:<7} audit {:<8} save (update) {:>9.2} µs ({:.2}×)   find by user_name {:>7.2} µs ({:.2}×)",
            mode.name(),
            save.as_secs_f64() * 1e6,
            save.as_secs_f64() / base.0.as_secs_f64(),
            find.as_secs_f64() * 1e6,
            find.as_secs_f64() / base.1.as_secs_f64(),
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let records: usize = args.next().map_or(Ok(1000), |a| a.parse())?;
    let rounds: usize = args.next().map_or(Ok(9), |a| a.parse())?;

    let memory: Vec<_> = MODES
        .iter()
        .map(|&m| store(MemoryBackend::new(), records, m))
        .collect();
    measure("memory", &memory, rounds, 2000);

    let dir = tempfile::tempdir()?;
    let sqlite: Vec<_> = MODES
        .iter()
        .enumerate()
        .map(|(i, &m)| {
            let backend = SqliteBackend::open(dir.path().join(format!("{i}.db"))).expect("open");
            store(backend, records.min(1000), m)
        })
        .collect();
    measure("sqlite", &sqlite, rounds, 50);
    Ok(())
}
