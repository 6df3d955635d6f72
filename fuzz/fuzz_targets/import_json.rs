//! tokenvault's JSON export, read by the importer (`src/import/json.rs`). The tokens it reads
//! must survive `json::write` and a second read unchanged, importing them must only refuse
//! rows, and the store's own export must re-import byte for byte (as `tokenvault export
//! --format json` then `import` promise).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenvault::OAuthToken;
use tokenvault::import::json;
use tokenvault_fuzz::check_import;

fn round_trip(tokens: &[OAuthToken]) -> Vec<OAuthToken> {
    let mut text = Vec::new();
    json::write(&mut text, tokens).expect("write JSON to memory");
    json::read(text.as_slice())
        .expect("the JSON json::write made reads")
        .into_iter()
        .map(|r| r.token.expect("every token json::write made reads"))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(rows) = json::read(data) else {
        return;
    };
    let tokens: Vec<OAuthToken> = rows
        .iter()
        .filter_map(|r| r.token.as_ref().ok().cloned())
        .collect();
    assert_eq!(
        round_trip(&tokens),
        tokens,
        "tokens changed in a JSON round trip"
    );
    let stored = check_import(rows);
    assert_eq!(
        round_trip(&stored),
        stored,
        "the store's export does not re-import as it was"
    );
});
