//! Sealed records (`src/format/record.rs` and the vault's checks around it): a record whose
//! id, blind-index tags and sealed bytes come from the input (layout: `decode_record` in
//! `fuzz/src/lib.rs`) is planted beside the header of a real store (`fuzz/fixtures/`, made
//! with the raw key `KEY`), which is then opened and read: `find_token_by_id`, `get_tokens`,
//! `find_token`, `verify`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tokenvault::backend::Backend;
use tokenvault::{EncryptedStore, OAuthToken, TokenStore};
use tokenvault_fuzz::{SEED_USER, credential, decode_record, fresh_store, memory_backend};

/// The header of the store the seeds' records were sealed in (see fuzz/seeds/README.md).
const FIXTURE_HEADER: &[u8] = include_bytes!("../fixtures/store.header");

/// The fixture header, or, if this build cannot open it (the header format changed: make the
/// seeds again), a fresh store's header, so that the target still runs.
fn header() -> &'static [u8] {
    static HEADER: OnceLock<Vec<u8>> = OnceLock::new();
    HEADER.get_or_init(|| {
        match EncryptedStore::open(
            memory_backend(Some(FIXTURE_HEADER), Vec::new()),
            &credential(),
        ) {
            Ok(_) => FIXTURE_HEADER.to_vec(),
            Err(e) => {
                eprintln!(
                    "WARNING: fuzz/fixtures/store.header does not open ({e}); using a fresh store, \
                     so no seed record opens: make the seeds again (fuzz/seeds/README.md)"
                );
                fresh_store().backend().read_header().unwrap().unwrap()
            }
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(record) = decode_record(data) else {
        return;
    };
    let id = record.id.clone();
    let store = EncryptedStore::open(memory_backend(Some(header()), vec![record]), &credential())
        .expect("the fixture header opens");
    let by_id = store.find_token_by_id(&id);
    let all = store.get_tokens();
    let _ = store.find_token(&OAuthToken::new().with_user_name(SEED_USER));
    let report = store
        .verify()
        .expect("verify fails only for the header, which is intact");
    if report.ok == 1 {
        // The record opened and its tags match: every read must agree.
        assert_eq!(all.expect("get_tokens after verify ok").len(), 1);
        let token = by_id
            .expect("find_token_by_id after verify ok")
            .expect("the record is there");
        assert_eq!(token.id(), Some(id.as_str()));
    }
});
