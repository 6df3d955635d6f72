//! The Zoho SDKs' FileStore CSV importer (`src/import/zoho_csv.rs`): read, then what the CLI
//! does with the rows. The tokens it reads must survive `zoho_csv::write` and a second read
//! unchanged (`tokenvault export --format zoho-csv` then `import`), and importing them into a
//! store must only refuse rows, never fail.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenvault::OAuthToken;
use tokenvault::import::zoho_csv;
use tokenvault_fuzz::check_import;

fuzz_target!(|data: &[u8]| {
    let Ok(rows) = zoho_csv::read(data) else {
        return;
    };
    let tokens: Vec<OAuthToken> = rows
        .iter()
        .filter_map(|r| r.token.as_ref().ok().cloned())
        .collect();
    let mut csv = Vec::new();
    zoho_csv::write(&mut csv, &tokens).expect("write CSV to memory");
    let again: Vec<OAuthToken> = zoho_csv::read(csv.as_slice())
        .expect("the CSV zoho_csv::write made reads")
        .into_iter()
        .map(|r| r.token.expect("every row zoho_csv::write made reads"))
        .collect();
    assert_eq!(again, tokens, "tokens changed in a CSV round trip");
    check_import(rows);
});
