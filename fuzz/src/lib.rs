//! Helpers shared by the fuzz targets and the seed generator (`examples/make_seeds.rs`).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use tokenvault::backend::{AuditRow, Backend, LookupTags, MemoryBackend, StoredRecord};
use tokenvault::{Credential, EncryptedStore, RawKey, Tag};

/// The raw key of the store in `fixtures/store.header`, and of every store the targets open.
/// A raw-key credential runs no passphrase KDF, so opening a store costs microseconds.
pub const KEY: [u8; 32] = [0x42; 32];

/// The user name of the first token in the fixture store (a `find_token` query in `record`).
pub const SEED_USER: &str = "ann@example.com";

/// Record id used by `record` inputs whose flags carry no id.
pub const DEFAULT_RECORD_ID: &str = "0123456789abcdef";

/// Flag bit of a `record` input: an id (length byte, UTF-8 bytes) follows the flags.
pub const RECORD_HAS_ID: u8 = 0x10;

/// The credential for [`KEY`].
pub fn credential() -> Credential {
    Credential::raw_key(RawKey::from_bytes(KEY))
}

/// A memory backend holding `header` (if any) and `records`.
pub fn memory_backend(header: Option<&[u8]>, records: Vec<StoredRecord>) -> MemoryBackend {
    let backend = MemoryBackend::new();
    let mut records = Some(records);
    backend
        .transact(&mut |tx| {
            if let Some(h) = header {
                tx.put_header(h)?;
            }
            for r in records.take().unwrap_or_default() {
                tx.put(r)?;
            }
            Ok(())
        })
        .expect("a memory backend takes any header and one record");
    backend
}

/// A new, empty store in memory, unlocked by [`KEY`].
pub fn fresh_store() -> EncryptedStore<MemoryBackend> {
    EncryptedStore::create(MemoryBackend::new(), &credential()).expect("create a memory store")
}

/// `$TMPDIR/tokenvault-fuzz-<pid>/<name>` (the directory is created, mode 0700). `fuzz/run.sh`
/// points `TMPDIR` at a directory of its own and removes it afterwards.
pub fn scratch_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tokenvault-fuzz-{}", std::process::id()));
    if !dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .expect("create the scratch directory");
    }
    dir.join(name)
}

/// Replaces the file at `path` with `bytes` (mode 0600, as the file store wants its files).
pub fn write_private(path: &PathBuf, bytes: &[u8]) {
    let _ = fs::remove_file(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .expect("create a scratch file");
    file.write_all(bytes).expect("write a scratch file");
}

/// Decodes a `record` input:
///
/// ```text
/// flags (1: bits 0-3 = tag mask, bit 4 = RECORD_HAS_ID)
/// [id length (1) | id (UTF-8)]      if RECORD_HAS_ID, else the id is DEFAULT_RECORD_ID
/// tags (32 each, one per mask bit, in LookupField::ALL order)
/// sealed bytes (the rest)
/// ```
///
/// `None` for an input too short for what its flags announce, or an id that is not UTF-8.
pub fn decode_record(data: &[u8]) -> Option<StoredRecord> {
    let (&flags, mut rest) = data.split_first()?;
    let id = if flags & RECORD_HAS_ID != 0 {
        let (&len, after) = rest.split_first()?;
        let (id, after) = after.split_at_checked(usize::from(len))?;
        rest = after;
        std::str::from_utf8(id).ok()?.to_owned()
    } else {
        DEFAULT_RECORD_ID.to_owned()
    };
    let mut tags = LookupTags::default();
    for (i, slot) in tags.0.iter_mut().enumerate() {
        if flags & (1 << i) != 0 {
            let (tag, after) = rest.split_first_chunk::<32>()?;
            *slot = Some(Tag(*tag));
            rest = after;
        }
    }
    Some(StoredRecord {
        id,
        tags,
        sealed: rest.to_vec(),
    })
}

/// The `record` input that [`decode_record`] turns into `record` (ids of up to 255 bytes).
pub fn encode_record(record: &StoredRecord) -> Vec<u8> {
    let mut flags = RECORD_HAS_ID;
    for (i, tag) in record.tags.0.iter().enumerate() {
        if tag.is_some() {
            flags |= 1 << i;
        }
    }
    let id_len = u8::try_from(record.id.len()).expect("ids of up to 255 bytes");
    let mut out = vec![flags, id_len];
    out.extend_from_slice(record.id.as_bytes());
    for tag in record.tags.0.iter().flatten() {
        out.extend_from_slice(tag.as_bytes());
    }
    out.extend_from_slice(&record.sealed);
    out
}

/// Imports `rows` into a fresh store as `tokenvault import` does, checks that the import
/// failed no row-independent way and that it inserted as many records as the store then
/// holds, and returns the stored tokens.
pub fn check_import(rows: Vec<tokenvault::import::Row>) -> Vec<tokenvault::OAuthToken> {
    use tokenvault::TokenStore;
    let store = fresh_store();
    let summary = tokenvault::import::import(&store, rows, &mut |_| {})
        .unwrap_or_else(|e| panic!("import into a fresh memory store failed: {e}"));
    let stored = store.get_tokens().expect("read back what was imported");
    assert_eq!(
        stored.len() as u64,
        summary.inserted,
        "records in the store vs records the import inserted"
    );
    assert_eq!(
        summary.read,
        summary.inserted + summary.updated + summary.refused.len() as u64,
        "rows read vs rows inserted, updated or refused"
    );
    stored
}

/// Decodes an `audit_log` input: audit-log rows, each `seq (8, big-endian) | length (2) |
/// entry bytes`, until the input ends (a short last row is dropped).
pub fn decode_audit_rows(mut data: &[u8]) -> Vec<AuditRow> {
    let mut rows = Vec::new();
    while data.len() >= 10 {
        let seq = u64::from_be_bytes(data[..8].try_into().expect("8 bytes"));
        let len = usize::from(u16::from_be_bytes([data[8], data[9]]));
        let Some(entry) = data.get(10..10 + len) else {
            break;
        };
        rows.push(AuditRow {
            seq,
            entry: entry.to_vec(),
        });
        data = &data[10 + len..];
    }
    rows
}

/// The `audit_log` input that [`decode_audit_rows`] turns back into `rows`.
pub fn encode_audit_rows(rows: &[AuditRow]) -> Vec<u8> {
    let mut out = Vec::new();
    for row in rows {
        out.extend_from_slice(&row.seq.to_be_bytes());
        let len = u16::try_from(row.entry.len()).expect("a seed entry under 64 KiB");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&row.entry);
    }
    out
}
