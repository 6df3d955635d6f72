//! The Zoho SQL stores' `oauthtoken` table, read from a SQLite file
//! (`src/import/zoho_sqlite.rs`): the input is written to a file and read, and the rows are
//! imported into a store (which must only refuse rows, never fail).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenvault::import::zoho_sqlite;
use tokenvault_fuzz::{check_import, scratch_path, write_private};

fuzz_target!(|data: &[u8]| {
    let path = scratch_path("zoho.db");
    write_private(&path, data);
    if let Ok(rows) = zoho_sqlite::read(&path) {
        check_import(rows);
    }
});
