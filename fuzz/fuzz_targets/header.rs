//! The store header (`src/format/header.rs`): arbitrary bytes planted as a memory backend's
//! header, then `inspect` and `EncryptedStore::open` with a raw key. A raw-key credential runs
//! no passphrase KDF, and out-of-bound Argon2 parameters are refused at parse, so no input
//! can make this slow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenvault::backend::Backend;
use tokenvault::{EncryptedStore, OAuthToken, TokenStore, inspect};
use tokenvault_fuzz::{credential, memory_backend};

fuzz_target!(|data: &[u8]| {
    let backend = memory_backend(Some(data), Vec::new());
    let inspected = inspect(&backend);
    let Ok(store) = EncryptedStore::open(backend, &credential()) else {
        return;
    };
    assert!(inspected.is_ok(), "open succeeded where inspect failed");
    let _ = store.slots();
    let _ = store.key_usage();
    let _ = store.get_tokens();
    let _ = store.verify();
    // A header that opens must be rewritten (write counter, seal count, record-set summary)
    // into one that opens again.
    let mut token = OAuthToken::new()
        .with_user_name("fuzz@example.com")
        .with_refresh_token("1000.refresh");
    if store.save_token(&mut token).is_ok() {
        let header = store.backend().read_header().unwrap().unwrap();
        let again = EncryptedStore::open(memory_backend(Some(&header), Vec::new()), &credential());
        assert!(again.is_ok(), "a header the store rewrote does not open");
    }
});
