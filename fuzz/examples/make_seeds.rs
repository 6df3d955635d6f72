//! Writes `fuzz/fixtures/store.header` and the seeds of the binary and JSON targets under
//! `fuzz/seeds/` (see `fuzz/seeds/README.md`). Run from anywhere:
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example make_seeds
//! ```
//!
//! The store is random (store id, keys, nonces), so every run writes different bytes: the
//! header fixture and the `record` seeds must come from the same run.

use std::fs;
use std::path::{Path, PathBuf};

use tokenvault::backend::{Backend, FileBackend, MemoryBackend};
use tokenvault::import::{json, zoho_csv};
use tokenvault::{Argon2Params, AuditMode, Credential, EncryptedStore, OAuthToken, TokenStore};
use tokenvault_fuzz::{
    SEED_USER, credential, decode_audit_rows, decode_record, encode_audit_rows, encode_record,
    memory_backend,
};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn write(rel: &str, bytes: &[u8]) {
    let path = fuzz_dir().join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, bytes).unwrap();
    println!("{:>6} bytes  fuzz/{rel}", bytes.len());
}

fn tokens() -> Vec<OAuthToken> {
    vec![
        OAuthToken::new()
            .with_user_name(SEED_USER)
            .with_client_id("1000.ABC")
            .with_client_secret("client-secret")
            .with_refresh_token("1000.refresh.ann")
            .with_access_token("1000.access.ann")
            .with_expiry_time(1_900_000_000_000)
            .with_redirect_url("https://app.example.com/cb")
            .with_api_domain("https://www.zohoapis.com"),
        OAuthToken::new()
            .with_id("bob-1")
            .with_client_id("1000.BOB")
            .with_client_secret("bob\nsecret")
            .with_grant_token("1000.grant.bob"),
    ]
}

fn save_all<B: Backend>(store: &EncryptedStore<B>) {
    for mut t in tokens() {
        store.save_token(&mut t).unwrap();
    }
}

fn main() {
    // header + record: one memory store under the raw key; its header is the `record`
    // target's fixture and its records that target's seeds.
    let store = EncryptedStore::create(MemoryBackend::new(), &credential()).unwrap();
    save_all(&store);
    let header = store.backend().read_header().unwrap().unwrap();
    write("fixtures/store.header", &header);
    write("seeds/header/raw-key.bin", &header);
    for (i, record) in store.backend().list().unwrap().iter().enumerate() {
        let input = encode_record(record);
        // What the `record` target does with this seed: it must open for real.
        let planted = decode_record(&input).unwrap();
        let again =
            EncryptedStore::open(memory_backend(Some(&header), vec![planted]), &credential())
                .unwrap();
        assert_eq!(
            again.verify().unwrap().ok,
            1,
            "record seed {i} does not open"
        );
        write(&format!("seeds/record/{i}.bin"), &input);
    }
    // The same store with a passphrase slot too (Argon2id at the floor: it runs once, here).
    let floor = Argon2Params::new(19 * 1024, 2, 1).unwrap();
    store
        .add_slot(&Credential::passphrase("correct horse battery"), floor)
        .unwrap();
    write(
        "seeds/header/raw-key-and-passphrase.bin",
        &store.backend().read_header().unwrap().unwrap(),
    );

    // audit_log: a store with its audit trail on; its header is the target's fixture and its
    // log the seed (whole, and without its last entry).
    let audited = EncryptedStore::create(MemoryBackend::new(), &credential()).unwrap();
    audited.set_audit_mode(AuditMode::All).unwrap();
    save_all(&audited);
    audited.find_token_by_id("bob-1").unwrap();
    let mut rows = Vec::new();
    audited
        .backend()
        .transact(&mut |tx| {
            rows = tx.audit_read(0)?;
            Ok(())
        })
        .unwrap();
    write(
        "fixtures/audit.header",
        &audited.backend().read_header().unwrap().unwrap(),
    );
    let input = encode_audit_rows(&rows);
    assert_eq!(decode_audit_rows(&input), rows);
    write("seeds/audit_log/whole.bin", &input);
    write(
        "seeds/audit_log/tail-cut.bin",
        &encode_audit_rows(&rows[..rows.len() - 1]),
    );

    // file_store: a real file store with two records, and one just created (no records).
    let dir = std::env::temp_dir().join(format!("tokenvault-make-seeds-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    for (name, save, audit) in [
        ("two-records.tv", true, false),
        ("empty.tv", false, false),
        ("audited.tv", true, true),
    ] {
        let path = dir.join(name);
        let store =
            EncryptedStore::create(FileBackend::open(&path).unwrap(), &credential()).unwrap();
        if audit {
            store.set_audit_mode(AuditMode::Changes).unwrap();
        }
        if save {
            save_all(&store);
        }
        drop(store);
        write(
            &format!("seeds/file_store/{name}"),
            &fs::read(&path).unwrap(),
        );
    }
    fs::remove_dir_all(&dir).unwrap();

    // zoho_csv: two of the importer's test fixtures, and what `export --format zoho-csv` writes.
    let fixtures = fuzz_dir().join("../tests/fixtures/zoho");
    for name in ["python-filestore.csv", "legacy-9col.csv"] {
        write(
            &format!("seeds/zoho_csv/{name}"),
            &fs::read(fixtures.join(name)).unwrap(),
        );
    }
    let mut csv = Vec::new();
    zoho_csv::write(&mut csv, &tokens()).unwrap();
    write("seeds/zoho_csv/export.csv", &csv);

    // import_json: what `export --format json` writes, and one bare object.
    let mut export = Vec::new();
    json::write(&mut export, &tokens()).unwrap();
    write("seeds/import_json/export.json", &export);
    write(
        "seeds/import_json/object.json",
        br#"{"user_name":"u@example.com","refresh_token":"1000.r","expiry_time":"1767229200000"}"#,
    );

    // token_json: every field (Zoho's keys), and the accepted variants.
    let every_field = tokens()[0]
        .clone()
        .with_id("1")
        .with_grant_token("1000.grant.ann");
    let full = serde_json::to_vec(&every_field.expose_secrets()).unwrap();
    write("seeds/token_json/full.json", &full);
    write(
        "seeds/token_json/variants.json",
        br#"{"id":"7","access_token":"1000.a","expiry_time":1767229200000,"redirect_uri":"https://x/cb","grant_token":""}"#,
    );

    // token_response: 2 bytes of status (big-endian), then the body.
    let answers: [(u16, &str, &[u8]); 4] = [
        (
            200,
            "zoho",
            br#"{"access_token":"1000.x","expires_in":3600,"api_domain":"https://www.zohoapis.com","token_type":"Bearer"}"#,
        ),
        (
            200,
            "rotated",
            br#"{"access_token":"1000.y","refresh_token":"1000.r2","expires_in_sec":"3600","token_type":"Bearer"}"#,
        ),
        (200, "error-200", br#"{"error":"invalid_code"}"#),
        (400, "error-400", br#"{"error":"invalid_client","error_description":"x"}"#),
    ];
    for (status, name, body) in answers {
        let mut input = status.to_be_bytes().to_vec();
        input.extend_from_slice(body);
        write(&format!("seeds/token_response/{name}.bin"), &input);
    }

    // store_uri: one per backend.
    for (name, uri) in [
        ("sqlite", "sqlite:/tmp/t.db"),
        ("file", "file:/x"),
        ("memory", "memory:"),
        (
            "postgres",
            "postgres://u:pw-secret-1@127.0.0.1:5432/db?sslmode=disable",
        ),
        ("mysql", "mysql://u:pw-secret-2@localhost/db"),
        ("raw-at", "postgresql://ann:pa@ss-Wd9@db.example/tv"),
    ] {
        write(&format!("seeds/store_uri/{name}.txt"), uri.as_bytes());
    }
}
