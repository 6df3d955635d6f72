//! The README's library example: open (or create) a SQLite store by URI, save a token, get a
//! valid access token. Run: `cargo run --example library --features oauth`.

use std::time::{Duration, SystemTime};

use tokenvault::{AccessOptions, Credential, OAuthToken, StoreOptions, TokenStore};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = Credential::passphrase("correct horse battery staple");
    let dir = std::env::temp_dir().join("tokenvault-example");
    let uri = format!("sqlite:{}", dir.join("tokens.db").display());
    let store = match tokenvault::open(&uri, &key) {
        Err(tokenvault::Error::NoStore) => tokenvault::create(&uri, &key, StoreOptions::default())?,
        opened => opened?,
    };
    // Save what the OAuth server returned; `save_token` sets the id.
    let mut token = OAuthToken::new()
        .with_user_name("ann@example.com")
        .with_client_id("1000.CLIENT")
        .with_client_secret("client-secret")
        .with_refresh_token("1000.refresh")
        .with_access_token("1000.access")
        .with_expiry_after(SystemTime::now(), Duration::from_secs(3600))
        .with_api_domain("https://www.zohoapis.com");
    store.save_token(&mut token)?;
    // A valid access token; an expired one is refreshed once for every thread and process.
    let ann = OAuthToken::new().with_user_name("ann@example.com");
    let access = store.access_token(&ann, &AccessOptions::default())?;
    println!("Authorization: Zoho-oauthtoken {}", access.expose_secret());
    Ok(())
}
