//! Store URIs (`tokenvault::uri::StoreUri::parse`) and their redacting `Display`. For a server
//! URI `scheme://user:PASSWORD@host...`, the password must not appear in what `Display`
//! prints. Checked only where that promise is unambiguous: the password is the text between
//! the first ':' of the user information and the last '@', is at least 8 bytes, has no '@',
//! and does not appear in the `Display` of the same URI with another password (so it is not
//! also the user, host or database name). `sqlite:` and `file:` URIs hold paths, shown as
//! given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenvault::uri::StoreUri;

/// The byte range of the password in `scheme://user:PASSWORD@host...`, if there is one.
fn password_range(input: &str) -> Option<std::ops::Range<usize>> {
    let start = input.find("://")? + 3;
    let at = start + input[start..].rfind('@')?;
    let colon = start + input[start..at].find(':')?;
    Some(colon + 1..at)
}

/// Whether `render` shows the password of `input` (parsed as `uri`).
fn shows_password(input: &str, uri: &StoreUri, render: fn(&StoreUri) -> String) -> bool {
    let Some(range) = password_range(input) else {
        return false;
    };
    let password = &input[range.clone()];
    if password.len() < 8 || password.contains('@') || !render(uri).contains(password) {
        return false;
    }
    // The password shows: fine only if it shows with another password too (it is also some
    // other part of the URI, or of the text around it).
    let other = format!("{}Qz7Kp2Wx{}", &input[..range.start], &input[range.end..]);
    match StoreUri::parse(&other) {
        Ok(other_uri) => !render(&other_uri).contains(password),
        Err(_) => true,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = StoreUri::parse(input) else {
        return;
    };
    let _ = uri.path();
    if matches!(uri, StoreUri::Server(_)) {
        assert!(
            !shows_password(input, &uri, |u| u.to_string()),
            "Display shows the password: {input:?} -> {uri}"
        );
        assert!(
            !shows_password(input, &uri, |u| format!("{u:?}")),
            "Debug shows the password: {input:?} -> {uri:?}"
        );
    } else {
        let _ = (uri.to_string(), format!("{uri:?}"));
    }
});
