//! `OAuthToken`'s `Deserialize` (`src/token.rs`). A token that parses must survive
//! `expose_secrets` serialization and a second parse unchanged, and its `Debug` must not
//! depend on the values of its four secret fields (they are redacted).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenvault::OAuthToken;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = serde_json::from_slice::<OAuthToken>(data) else {
        return;
    };
    let _ = token.check_bounds();
    let _ = token.is_expired();
    let _ = token.expires_at();

    let json = serde_json::to_vec(&token.expose_secrets()).expect("serialize a token");
    let again: OAuthToken = serde_json::from_slice(&json).expect("a serialized token parses");
    assert_eq!(again, token, "token changed in a JSON round trip");

    let mut blanked = token.clone();
    if token.client_secret().is_some() {
        blanked.set_client_secret(Some("x".into()));
    }
    if token.refresh_token().is_some() {
        blanked.set_refresh_token(Some("x".into()));
    }
    if token.access_token().is_some() {
        blanked.set_access_token(Some("x".into()));
    }
    if token.grant_token().is_some() {
        blanked.set_grant_token(Some("x".into()));
    }
    assert_eq!(
        format!("{token:?}"),
        format!("{blanked:?}"),
        "Debug shows something of a secret"
    );
});
