//! How long `rekey` takes on a SQLite store of N records (issue 15 asks for 100k "well under a
//! minute"). The store is built quickly: N `save_token`s into a `MemoryBackend`, then moved
//! into a fresh SQLite file in one transaction (the file is what N durable saves would leave).
//! Then one `rekey` to a new raw key is timed, and the result checked with `verify`.
//!
//! ```text
//! cargo run --release --example rekey_timing            # 100,000 records
//! cargo run --release --example rekey_timing -- 10000   # another size
//! ```

use std::time::Instant;

use tokenvault::backend::{Backend, MemoryBackend, SqliteBackend};
use tokenvault::{Argon2Params, Credential, EncryptedStore, OAuthToken, RawKey, TokenStore};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 100_000,
    };
    let old = Credential::raw_key(RawKey::from_bytes([1; 32]));
    let new = Credential::raw_key(RawKey::from_bytes([2; 32]));

    let memory = MemoryBackend::new();
    let store = EncryptedStore::create(&memory, &old)?;
    for i in 0..n {
        let mut token = OAuthToken::new()
            .with_user_name(format!("user{i}@example.com"))
            .with_client_id("1000.EXAMPLECLIENTID")
            .with_client_secret("example-client-secret-0123456789abcdef")
            .with_refresh_token(format!("1000.{i:032x}.refresh"))
            .with_access_token(format!("1000.{i:032x}.access"))
            .with_expiry_time(1_900_000_000_000)
            .with_api_domain("https://www.zohoapis.com");
        store.save_token(&mut token)?;
    }
    drop(store);
    let dir = tempfile::tempdir()?;
    let sqlite = SqliteBackend::open(dir.path().join("tokens.db"))?;
    let header = memory.read_header()?.ok_or("no header")?;
    let records = memory.list()?;
    sqlite.transact(&mut |tx| {
        tx.put_header(&header)?;
        for r in &records {
            tx.put(r.clone())?;
        }
        Ok(())
    })?;
    drop(records);

    let store = EncryptedStore::open(sqlite, &old)?;
    let started = Instant::now();
    let (store, report) = store.rekey(&[new], Argon2Params::default(), &mut |_, _| {})?;
    let took = started.elapsed();
    let verify = store.verify()?;
    assert!(
        verify.is_clean() && verify.ok == n,
        "rekeyed store verifies"
    );
    println!(
        "rekey of {} SQLite records: {:.2} s ({:.1} µs a record); verify after: {} ok",
        report.resealed,
        took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / n as f64,
        verify.ok
    );
    Ok(())
}
