//! The token endpoint's answer (`tokenvault::oauth::parse_token_response`): the first two
//! input bytes are the HTTP status (big-endian, modulo 600), the rest the body. An accepted answer must
//! carry what the parser promises: an access token and an expiry, every value non-empty,
//! within 16 KiB and free of control characters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenvault::oauth::parse_token_response;

fn check_text(value: Option<&str>, what: &str) {
    if let Some(v) = value {
        assert!(!v.is_empty(), "{what} is empty");
        assert!(v.len() <= 16 * 1024, "{what} is over 16 KiB");
        assert!(
            !v.chars().any(char::is_control),
            "{what} has control characters"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((status, body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let status = u16::from_be_bytes(*status) % 600;
    let Ok(token) = parse_token_response(status, body) else {
        return;
    };
    assert!(status < 300 || status >= 400, "accepted a redirect");
    assert!(status < 400, "accepted an error status");
    let access = token
        .access_token()
        .expect("an accepted answer has an access token");
    check_text(Some(access.expose_secret()), "access_token");
    check_text(
        token.refresh_token().map(|t| t.expose_secret()),
        "refresh_token",
    );
    check_text(token.api_domain(), "api_domain");
    assert!(
        token.expiry_time().is_some(),
        "an accepted answer has an expiry"
    );
    assert!(
        token.check_bounds().is_ok(),
        "an accepted answer is out of bounds"
    );
});
