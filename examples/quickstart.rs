//! The main job: create a passphrase-protected SQLite store (the default backend) in a
//! temporary directory, save and find tokens the way the Zoho SDKs do, rotate the data key, and
//! show that no secret reaches the backend or the disk.
//!
//! Run: `cargo run --release --example quickstart`

use std::time::Instant;

use tokenvault::backend::SqliteBackend;
use tokenvault::backend::testing::Instrumented;
use tokenvault::{Credential, EncryptedStore, OAuthToken, TokenField, TokenStore};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The default backend, wrapped to record every byte it is handed.
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("tokens.db");
    let backend = Instrumented::new(SqliteBackend::open(&db)?);
    let passphrase = Credential::passphrase("correct horse battery staple");

    let started = Instant::now();
    let store = EncryptedStore::create(backend, &passphrase)?;
    println!(
        "created store {} (Argon2id m=64 MiB t=3 p=4: {:.0} ms)",
        store.store_id(),
        started.elapsed().as_secs_f64() * 1e3
    );

    // What the Zoho SDK saves after exchanging a grant token.
    let secrets = ["1000.4f1d…refresh", "1000.9a2c…access", "client-secret-42"];
    let mut token = OAuthToken::new()
        .with_user_name("ann@example.com")
        .with_client_id("1000.ANNCLIENT")
        .with_client_secret(secrets[2])
        .with_refresh_token(secrets[0])
        .with_access_token(secrets[1])
        .with_expiry_time(1_900_000_000_000)
        .with_api_domain("https://www.zohoapis.com");
    store.save_token(&mut token)?;
    println!(
        "saved token for ann@example.com as id {}",
        token.id().unwrap_or("?")
    );

    // An hour later the SDK refreshes and saves by user name: an update, not a duplicate.
    let mut refreshed = OAuthToken::new()
        .with_user_name("ann@example.com")
        .with_access_token("1000.b7e1…access-2");
    store.save_token(&mut refreshed)?;
    println!("records after refresh: {}", store.get_tokens()?.len());

    // The SDK finds the token by refresh token plus client credentials (rule 3).
    let query = OAuthToken::new()
        .with_client_id("1000.ANNCLIENT")
        .with_client_secret(secrets[2])
        .with_refresh_token(secrets[0]);
    let found = store.find_token(&query)?.ok_or("token not found")?;
    println!("found by refresh token: {found:?}");
    let access = found
        .expose_field(TokenField::AccessToken)
        .unwrap_or_default();
    println!(
        "  its access token, exposed on purpose: {}",
        access.as_str()
    );

    let report = store.rotate()?;
    println!(
        "rotated to data key {} ({} record re-sealed)",
        report.key_id, report.resealed
    );
    let verify = store.verify()?;
    println!("verify: {} ok, {} failed", verify.ok, verify.failed.len());

    // Everything the backend received, and every file in the store's directory (database,
    // WAL, shared memory), searched for every secret, the user name and the passphrase.
    let needles = [
        secrets[0],
        secrets[1],
        secrets[2],
        "1000.b7e1…access-2",
        "ann@example.com",
        "correct horse",
    ];
    let mut haystacks = vec![("backend input".to_string(), store.backend().written_bytes())];
    for entry in std::fs::read_dir(dir.path())? {
        let path = entry?.path();
        haystacks.push((path.display().to_string(), std::fs::read(&path)?));
    }
    let mut leaks = 0;
    for (name, bytes) in &haystacks {
        for needle in needles {
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                println!("LEAK of {needle:?} in {name}");
                leaks += 1;
            }
        }
        println!("  searched {name}: {} bytes", bytes.len());
    }
    println!("plaintext secrets found: {leaks}");

    // The store reopens only with the passphrase.
    let backend = store.into_backend();
    drop(backend);
    let backend = SqliteBackend::open(&db)?; // a fresh connection, as another process would
    match EncryptedStore::open(&backend, &Credential::passphrase("wrong")) {
        Err(e) => println!("open with a wrong passphrase: {e}"),
        Ok(_) => return Err("a wrong passphrase opened the store".into()),
    }
    let reopened = EncryptedStore::open(&backend, &passphrase)?;
    println!("reopened: {} record(s)", reopened.get_tokens()?.len());
    if leaks > 0 {
        return Err("plaintext reached the backend".into());
    }
    Ok(())
}
