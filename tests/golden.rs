//! Golden stores: headers and sealed records made once by an early build and committed under
//! `tests/vectors/golden/`. Every later build must keep opening them, byte for byte: this is the
//! compatibility promise of the on-disk format (see SECURITY.md §3 and tests/vectors/README.md).
//!
//! - `golden_stores_keep_opening` loads each case into a `MemoryBackend` and checks what the
//!   library makes of it: the exact tokens, lookups through the stored blind-index tags, the
//!   expected error for the negative cases, and that an old store can still be written and
//!   rotated.
//! - `golden_bytes_follow_the_documented_format` re-implements SECURITY.md's description of
//!   the bytes with the primitives alone (HKDF, HMAC, AES-256-GCM, Argon2id), without the
//!   library, and opens the same stores with it: the document and the code cannot drift apart.
//! - `generate_golden` (ignored) wrote the files once. Records use random nonces, so running it
//!   again gives different bytes: it refuses to overwrite existing files.
//! - `annotate_golden_header` (ignored) prints the annotated byte dump used in SECURITY.md.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use tokenvault::backend::{AuditRow, Backend, LookupTags, MemoryBackend, StoredRecord};
use tokenvault::{
    AuditMode, Credential, EncryptedStore, Error, Finding, LookupField, OAuthToken, RawKey,
    RecordSetCheck, Subject, Tag, TokenStore,
};

// ---------------------------------------------------------------------------------------------
// Case files
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Opens; every record opens to its token; lookups by tag find it; verify is clean.
    Ok,
    /// `EncryptedStore::open` fails with `Error::WrongKey`.
    WrongKey,
    /// Opens; the records in `tampered` fail with `Tampered { Record(id) }`.
    TamperedRecord,
    /// Opens; every record opens by id, but lookups through the tags of the records in
    /// `tampered` fail with `Tampered`, and `verify` lists them.
    TamperedTags,
    /// `EncryptedStore::open` fails with `Tampered { Header }`.
    TamperedHeader,
}

impl Expect {
    fn parse(text: &str) -> Expect {
        match text {
            "ok" => Expect::Ok,
            "wrong-key" => Expect::WrongKey,
            "tampered-record" => Expect::TamperedRecord,
            "tampered-tags" => Expect::TamperedTags,
            "tampered-header" => Expect::TamperedHeader,
            other => panic!("unknown expect {other:?}"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Expect::Ok => "ok",
            Expect::WrongKey => "wrong-key",
            Expect::TamperedRecord => "tampered-record",
            Expect::TamperedTags => "tampered-tags",
            Expect::TamperedHeader => "tampered-header",
        }
    }
}

#[derive(Clone, Debug)]
enum CaseKey {
    Raw([u8; 32]),
    Passphrase(String),
}

impl CaseKey {
    fn credential(&self) -> Credential {
        match self {
            CaseKey::Raw(bytes) => Credential::raw_key(RawKey::from_bytes(*bytes)),
            CaseKey::Passphrase(p) => Credential::passphrase(p.clone()),
        }
    }
}

#[derive(Clone, Debug)]
struct Case {
    name: String,
    comments: Vec<String>,
    expect: Expect,
    key: CaseKey,
    header: Vec<u8>,
    /// In file order (which is id order).
    records: Vec<StoredRecord>,
    /// Record id → the token as `serde_json::to_string(&token.expose_secrets())`.
    tokens: BTreeMap<String, String>,
    tampered: BTreeSet<String>,
    /// The audit log's entries (`audit.<seq>` lines), by number.
    audit: Vec<AuditRow>,
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/golden")
}

fn unhex(what: &str, text: &str) -> Vec<u8> {
    assert!(
        text.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{what}: hex must be lowercase"
    );
    hex::decode(text).unwrap_or_else(|e| panic!("{what}: bad hex: {e}"))
}

fn parse_tags(what: &str, text: &str) -> LookupTags {
    let parts: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(
        parts.len(),
        4,
        "{what}: four tags (user_name access_token refresh_token grant_token), '-' for none"
    );
    let mut tags = LookupTags::default();
    for (slot, part) in tags.0.iter_mut().zip(parts) {
        if part != "-" {
            let bytes: [u8; 32] = unhex(what, part)
                .try_into()
                .unwrap_or_else(|_| panic!("{what}: a tag is 32 bytes"));
            *slot = Some(Tag(bytes));
        }
    }
    tags
}

fn render_tags(tags: &LookupTags) -> String {
    tags.0
        .iter()
        .map(|t| t.map_or_else(|| "-".to_owned(), |t| hex::encode(t.as_bytes())))
        .collect::<Vec<_>>()
        .join(" ")
}

fn read_case(path: &Path) -> Case {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).unwrap();
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut comments = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            comments.push(comment.trim().to_owned());
            continue;
        }
        let (k, v) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("{name}: no ':' in {line:?}"));
        let (k, v) = (k.trim().to_owned(), v.trim().to_owned());
        assert!(
            fields.insert(k.clone(), v).is_none(),
            "{name}: duplicate {k}"
        );
        order.push(k);
    }
    let take = |fields: &mut BTreeMap<String, String>, k: &str| {
        fields
            .remove(k)
            .unwrap_or_else(|| panic!("{name}: missing {k}"))
    };
    let expect = Expect::parse(&take(&mut fields, "expect"));
    let key = match (fields.remove("raw_key"), fields.remove("passphrase")) {
        (Some(hex), None) => CaseKey::Raw(
            unhex("raw_key", &hex)
                .try_into()
                .unwrap_or_else(|_| panic!("{name}: raw_key is 32 bytes")),
        ),
        (None, Some(p)) => CaseKey::Passphrase(p),
        _ => panic!("{name}: exactly one of raw_key, passphrase"),
    };
    let header = unhex("header", &take(&mut fields, "header"));
    let tampered = fields
        .remove("tampered")
        .map(|v| v.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();

    let mut records = Vec::new();
    let mut tokens = BTreeMap::new();
    let mut audit = Vec::new();
    for k in &order {
        let Some(v) = fields.remove(k) else { continue };
        if let Some(seq) = k.strip_prefix("audit.") {
            let seq: u64 = seq
                .parse()
                .unwrap_or_else(|_| panic!("{name}: {k}: not a number"));
            audit.push(AuditRow {
                seq,
                entry: unhex(k, &v),
            });
        } else if let Some(id) = k.strip_prefix("token.") {
            tokens.insert(id.to_owned(), v);
        } else if let Some(rest) = k.strip_prefix("record.") {
            if rest.ends_with(".tags") {
                continue; // read with its record
            }
            let id = rest.to_owned();
            let tags_key = format!("record.{id}.tags");
            let tags = fields
                .remove(&tags_key)
                .unwrap_or_else(|| panic!("{name}: missing {tags_key}"));
            records.push(StoredRecord {
                id: id.clone(),
                tags: parse_tags(&tags_key, &tags),
                sealed: unhex(k, &v),
            });
        } else {
            panic!("{name}: unknown field {k}");
        }
    }
    assert!(fields.is_empty(), "{name}: stray fields {fields:?}");
    for id in tokens.keys() {
        assert!(
            records.iter().any(|r| &r.id == id),
            "{name}: token.{id} without record.{id}"
        );
    }
    if matches!(
        expect,
        Expect::Ok | Expect::TamperedRecord | Expect::TamperedTags
    ) {
        for r in &records {
            assert!(
                tokens.contains_key(&r.id),
                "{name}: record.{} has no token line",
                r.id
            );
        }
    }
    Case {
        name,
        comments,
        expect,
        key,
        header,
        records,
        tokens,
        tampered,
        audit,
    }
}

fn render_case(case: &Case) -> String {
    let mut out = String::new();
    for c in &case.comments {
        out += &format!("# {c}\n");
    }
    out += &format!("expect: {}\n", case.expect.name());
    match &case.key {
        CaseKey::Raw(bytes) => out += &format!("raw_key: {}\n", hex::encode(bytes)),
        CaseKey::Passphrase(p) => out += &format!("passphrase: {p}\n"),
    }
    if !case.tampered.is_empty() {
        let ids: Vec<&str> = case.tampered.iter().map(String::as_str).collect();
        out += &format!("tampered: {}\n", ids.join(" "));
    }
    out += &format!("header: {}\n", hex::encode(&case.header));
    for r in &case.records {
        out += &format!("record.{}: {}\n", r.id, hex::encode(&r.sealed));
        out += &format!("record.{}.tags: {}\n", r.id, render_tags(&r.tags));
        if let Some(json) = case.tokens.get(&r.id) {
            out += &format!("token.{}: {json}\n", r.id);
        }
    }
    for row in &case.audit {
        out += &format!("audit.{}: {}\n", row.seq, hex::encode(&row.entry));
    }
    out
}

fn all_cases() -> Vec<Case> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("tests/vectors/golden exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    paths.iter().map(|p| read_case(p)).collect()
}

/// A memory backend holding exactly the case's bytes, loaded through the public `Backend` API.
fn load(case: &Case) -> MemoryBackend {
    let backend = MemoryBackend::new();
    backend
        .transact(&mut |tx| {
            tx.put_header(&case.header)?;
            for r in &case.records {
                tx.put(r.clone())?;
            }
            for row in &case.audit {
                tx.audit_append(row.seq, &row.entry)?;
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{}: loading: {e}", case.name));
    backend
}

/// A sealed record's generation (SECURITY.md §3.3): bytes 5..13 of a version-2 record, 0 for
/// version 1.
fn generation_of(sealed: &[u8]) -> u64 {
    match sealed[0] {
        2 => u64::from_be_bytes(sealed[5..13].try_into().unwrap()),
        _ => 0,
    }
}

fn json(token: &OAuthToken) -> String {
    serde_json::to_string(&token.expose_secrets()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The test: every golden case, through the library
// ---------------------------------------------------------------------------------------------

/// The queries the Zoho matching rules turn into one lookup by `field`, for `token`'s values.
fn lookup_queries(token: &OAuthToken) -> Vec<(LookupField, OAuthToken)> {
    let mut queries = Vec::new();
    if let Some(u) = token.user_name() {
        queries.push((LookupField::UserName, OAuthToken::new().with_user_name(u)));
    }
    if let Some(a) = token.access_token() {
        queries.push((
            LookupField::AccessToken,
            OAuthToken::new().with_access_token(a.expose_secret()),
        ));
    }
    if let (Some(c), Some(s)) = (token.client_id(), token.client_secret()) {
        let client = OAuthToken::new()
            .with_client_id(c)
            .with_client_secret(s.expose_secret());
        if let Some(g) = token.grant_token() {
            queries.push((
                LookupField::GrantToken,
                client.clone().with_grant_token(g.expose_secret()),
            ));
        }
        if let Some(r) = token.refresh_token() {
            queries.push((
                LookupField::RefreshToken,
                client.with_refresh_token(r.expose_secret()),
            ));
        }
    }
    queries
}

fn check_case(case: &Case) {
    let name = &case.name;
    let backend = load(case);
    let credential = case.key.credential();
    let opened = EncryptedStore::open(&backend, &credential);
    let store = match (case.expect, opened) {
        (Expect::WrongKey, Err(Error::WrongKey)) => return,
        (
            Expect::TamperedHeader,
            Err(Error::Tampered {
                what: Subject::Header,
            }),
        ) => return,
        (Expect::WrongKey | Expect::TamperedHeader, other) => {
            panic!("{name}: expected {:?}, got {other:?}", case.expect)
        }
        (_, Ok(store)) => store,
        (_, Err(e)) => panic!("{name}: does not open: {e:?}"),
    };

    // Layout 3: the log checks against the header, entry by entry, before anything is added.
    if !case.audit.is_empty() {
        let trail = store.audit_trail().unwrap();
        assert!(trail.is_intact(), "{name}: {:?}", trail.problems);
        assert_eq!(trail.entries.len(), case.audit.len(), "{name}");
        assert_eq!(trail.expected, case.audit.len() as u64, "{name}");
    }

    let tampered_records = case.expect == Expect::TamperedRecord;
    let tampered_tags = case.expect == Expect::TamperedTags;
    assert!(
        case.expect == Expect::Ok || !case.tampered.is_empty(),
        "{name}: a tampered case names its records"
    );

    // By id: the exact token, or the named integrity error.
    for r in &case.records {
        let got = store.find_token_by_id(&r.id);
        if tampered_records && case.tampered.contains(&r.id) {
            match got {
                Err(Error::Tampered {
                    what: Subject::Record(id),
                }) => assert_eq!(id, r.id, "{name}"),
                other => panic!("{name}: record {} must fail, got {other:?}", r.id),
            }
            continue;
        }
        let token = got
            .unwrap_or_else(|e| panic!("{name}: record {}: {e}", r.id))
            .unwrap_or_else(|| panic!("{name}: record {} missing", r.id));
        assert_eq!(json(&token), case.tokens[&r.id], "{name}: record {}", r.id);
    }

    // By the stored blind-index tags, as the Zoho matching rules look records up.
    for (id, expected) in &case.tokens {
        let token: OAuthToken = serde_json::from_str(expected).unwrap();
        let queries = lookup_queries(&token);
        assert!(!queries.is_empty(), "{name}: record {id} has lookup fields");
        for (field, query) in queries {
            let found = store.find_token(&query);
            if case.tampered.contains(id) {
                assert!(
                    matches!(found, Err(Error::Tampered { .. })),
                    "{name}: lookup of record {id} by {field} must fail, got {found:?}"
                );
                continue;
            }
            let found = found
                .unwrap_or_else(|e| panic!("{name}: lookup of {id} by {field}: {e}"))
                .unwrap_or_else(|| panic!("{name}: lookup of {id} by {field} found nothing"));
            // find_token merges the stored record into the query; every query field is a
            // value of the stored record, so the merge is the record itself.
            assert_eq!(json(&found), *expected, "{name}: lookup of {id} by {field}");
        }
    }

    // verify: every record opens and its tags are the ones its values give. Golden stores
    // predate record-set summaries (header layout 1): nothing to compare against yet.
    let report = store.verify().unwrap();
    let summarized = case.header[8] >= 2;
    assert_eq!(
        report.record_set,
        if summarized {
            RecordSetCheck::Intact
        } else {
            RecordSetCheck::NotSummarized
        },
        "{name}"
    );
    // Nothing vouches for a layout-1 store's record set: not clean until summarised.
    assert_eq!(
        report.is_clean(),
        summarized && case.tampered.is_empty(),
        "{name}"
    );
    let failed: BTreeSet<String> = report.failed.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(failed, case.tampered, "{name}: verify");
    assert_eq!(
        report.ok,
        case.records.len() - case.tampered.len(),
        "{name}"
    );
    if tampered_records || tampered_tags {
        return;
    }

    // An old store stays writable: update a record, rotate the data key, reopen. Every write
    // seals in the current record version with the record's generation advanced (a version-1
    // record counts as generation 0): the store upgrades record by record.
    assert_eq!(store.get_tokens().unwrap().len(), case.records.len());
    let generations = |backend: &MemoryBackend| -> BTreeMap<String, (u8, u64)> {
        backend
            .list()
            .unwrap()
            .into_iter()
            .map(|r| (r.id.clone(), (r.sealed[0], generation_of(&r.sealed))))
            .collect()
    };
    let before = generations(&backend);
    let first = &case.records[0].id;
    let mut update = OAuthToken::new()
        .with_id(first)
        .with_access_token("golden-updated-access");
    store.save_token(&mut update).unwrap();
    let mut expected = before.clone();
    expected.insert(first.clone(), (2, before[first].1 + 1));
    assert_eq!(generations(&backend), expected, "{name}: after one save");
    // That first write upgraded the header to layout 2, summarising every record: from now
    // on a record rolled back to its golden copy is named.
    let header = backend.read_header().unwrap().unwrap();
    assert_eq!(
        header[8],
        case.header[8].max(2),
        "{name}: header layout after the first write"
    );
    assert_eq!(store.verify().unwrap().record_set, RecordSetCheck::Intact);
    let updated = backend.get(first).unwrap().unwrap();
    let golden = case
        .records
        .iter()
        .find(|r| &r.id == first)
        .unwrap()
        .clone();
    backend
        .transact(&mut |tx| Ok(tx.put(golden.clone())?))
        .unwrap();
    let RecordSetCheck::Changed(findings) = store.verify().unwrap().record_set else {
        panic!("{name}: a rolled-back record went unnoticed");
    };
    assert_eq!(
        findings,
        [Finding::NotLatest {
            id: first.clone(),
            found: before[first].1,
            latest: before[first].1 + 1
        }],
        "{name}"
    );
    backend
        .transact(&mut |tx| Ok(tx.put(updated.clone())?))
        .unwrap();
    let rotation = store.rotate().unwrap();
    assert_eq!(rotation.resealed, case.records.len(), "{name}");
    let expected: BTreeMap<_, _> = expected
        .into_iter()
        .map(|(id, (_, generation))| (id, (2, generation + 1)))
        .collect();
    assert_eq!(generations(&backend), expected, "{name}: after rotate");
    drop(store);
    let store = EncryptedStore::open(&backend, &credential).unwrap();
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{name}: {report:?}");
    let found = store
        .find_token(&OAuthToken::new().with_access_token("golden-updated-access"))
        .unwrap()
        .unwrap_or_else(|| panic!("{name}: updated record not found"));
    assert_eq!(found.id(), Some(first.as_str()));
}

#[test]
fn golden_stores_keep_opening() {
    let cases = all_cases();
    let count = |f: &dyn Fn(&Case) -> bool| cases.iter().filter(|c| f(c)).count();
    // The set is fixed: a case that disappears is a regression of this test.
    assert!(cases.len() >= 8, "only {} golden cases", cases.len());
    assert!(count(&|c| c.expect == Expect::Ok && matches!(c.key, CaseKey::Raw(_))) >= 1);
    assert!(count(&|c| c.expect == Expect::Ok && matches!(c.key, CaseKey::Passphrase(_))) >= 1);
    for expect in [
        Expect::WrongKey,
        Expect::TamperedRecord,
        Expect::TamperedTags,
        Expect::TamperedHeader,
    ] {
        assert!(count(&|c| c.expect == expect) >= 1, "no {expect:?} case");
    }
    for case in &cases {
        check_case(case);
    }
}

// ---------------------------------------------------------------------------------------------
// An independent reading of the format, from SECURITY.md alone
// ---------------------------------------------------------------------------------------------

mod spec {
    //! SECURITY.md §2–§4 in code, using the primitives directly. Nothing from tokenvault.

    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use aes_gcm::{Aes256Gcm, Nonce};
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    pub fn lp(parts: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in parts {
            out.extend_from_slice(&u32::try_from(p.len()).unwrap().to_be_bytes());
            out.extend_from_slice(p);
        }
        out
    }

    pub fn hkdf(salt: Option<&[u8]>, ikm: &[u8], info: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        hkdf::Hkdf::<Sha256>::new(salt, ikm)
            .expand(info, &mut out)
            .unwrap();
        out
    }

    pub fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key).unwrap();
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// AES-256-GCM open of `nonce (12) | ciphertext | tag (16)`.
    pub fn open(key: &[u8; 32], nonce: &[u8], ct_and_tag: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        let nonce: [u8; 12] = nonce.try_into().unwrap();
        Aes256Gcm::new_from_slice(key)
            .unwrap()
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ct_and_tag,
                    aad,
                },
            )
            .ok()
    }

    pub fn argon2id(passphrase: &[u8], salt: &[u8], m: u32, t: u32, p: u32) -> [u8; 32] {
        use argon2::{Algorithm, Argon2, Params, Version};
        let mut out = [0u8; 32];
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(m, t, p, Some(32)).unwrap(),
        )
        .hash_password_into(passphrase, salt, &mut out)
        .unwrap();
        out
    }

    /// One named field of a byte layout.
    pub struct Field {
        pub offset: usize,
        pub len: usize,
        pub name: String,
    }

    /// A cursor that names every byte it hands out.
    pub struct Layout<'a> {
        pub bytes: &'a [u8],
        pub at: usize,
        pub fields: Vec<Field>,
    }

    impl<'a> Layout<'a> {
        pub fn new(bytes: &'a [u8]) -> Self {
            Self {
                bytes,
                at: 0,
                fields: Vec::new(),
            }
        }
        pub fn take(&mut self, len: usize, name: impl Into<String>) -> &'a [u8] {
            let out = &self.bytes[self.at..self.at + len];
            self.fields.push(Field {
                offset: self.at,
                len,
                name: name.into(),
            });
            self.at += len;
            out
        }
        pub fn u8(&mut self, name: &str) -> u8 {
            self.take(1, name)[0]
        }
        pub fn u16(&mut self, name: &str) -> u16 {
            u16::from_be_bytes(self.take(2, name).try_into().unwrap())
        }
        pub fn u32(&mut self, name: &str) -> u32 {
            u32::from_be_bytes(self.take(4, name).try_into().unwrap())
        }
        pub fn u64(&mut self, name: &str) -> u64 {
            u64::from_be_bytes(self.take(8, name).try_into().unwrap())
        }
    }

    pub enum SlotBody {
        Passphrase {
            m: u32,
            t: u32,
            p: u32,
            salt: Vec<u8>,
        },
        RawKey {
            salt: Vec<u8>,
        },
    }

    pub struct Slot {
        pub id: u32,
        pub kind: u8,
        /// The body without the wrapped key (the slot's parameters).
        pub params: Vec<u8>,
        pub body: SlotBody,
        pub wrapped: Vec<u8>,
    }

    pub struct DataKey {
        pub id: u32,
        pub seals: u64,
        pub commitment: Vec<u8>,
        pub wrapped: Vec<u8>,
    }

    pub struct Header {
        /// 1 (the first releases) or 2 (with the write counter and record-set summary).
        pub layout: u8,
        /// Layouts 2 and 3: the write counter and the sealed record-set summary.
        pub summary: Option<(u64, Vec<u8>)>,
        /// Layout 3: the audit mode, the log's entry count and its last entry's MAC.
        pub audit: Option<(u8, u64, Vec<u8>)>,
        pub store_id: Vec<u8>,
        pub commitment: Vec<u8>,
        pub slots: Vec<Slot>,
        pub keys: Vec<DataKey>,
        pub active: u32,
        pub mac: Vec<u8>,
        pub fields: Vec<Field>,
    }

    /// The header, as SECURITY.md §3.1 lays it out.
    pub fn parse_header(bytes: &[u8]) -> Header {
        let mut l = Layout::new(bytes);
        assert_eq!(l.take(8, "magic \"TKNVAULT\""), b"TKNVAULT");
        let layout = l.u8("layout version = 2 (1: the first releases; 3: with an audit trail)");
        assert!((1..=3).contains(&layout), "layout version {layout}");
        let store_id = l.take(16, "store id").to_vec();
        assert_eq!(l.u8("AEAD algorithm = 1 (AES-256-GCM)"), 1);
        assert_eq!(l.u8("index algorithm = 1 (HMAC-SHA256)"), 1);
        let commitment = l.take(32, "store-key commitment").to_vec();
        let slot_count = l.u8("slot count");
        let mut slots = Vec::new();
        for n in 0..slot_count {
            let id = l.u32(&format!("slot[{n}] id"));
            let kind = l.u8(&format!("slot[{n}] kind"));
            let len = usize::from(l.u16(&format!("slot[{n}] body length")));
            let start = l.at;
            let body = match kind {
                1 => {
                    assert_eq!(l.u8(&format!("slot[{n}] kdf = 1 (Argon2id v0x13)")), 1);
                    let m = l.u32(&format!("slot[{n}] Argon2id m (KiB)"));
                    let t = l.u32(&format!("slot[{n}] Argon2id t"));
                    let p = l.u32(&format!("slot[{n}] Argon2id p"));
                    let salt = l.take(16, format!("slot[{n}] salt")).to_vec();
                    SlotBody::Passphrase { m, t, p, salt }
                }
                2 => SlotBody::RawKey {
                    salt: l.take(16, format!("slot[{n}] salt")).to_vec(),
                },
                other => panic!("slot kind {other} is not in the golden stores"),
            };
            let params = bytes[start..l.at].to_vec();
            let wrapped = l
                .take(
                    60,
                    format!("slot[{n}] wrapped store key: nonce 12 | key 32 | tag 16"),
                )
                .to_vec();
            assert_eq!(l.at - start, len, "slot body length");
            slots.push(Slot {
                id,
                kind,
                params,
                body,
                wrapped,
            });
        }
        let key_count = l.u8("data-key count");
        let mut keys = Vec::new();
        for n in 0..key_count {
            keys.push(DataKey {
                id: l.u32(&format!("key[{n}] key id")),
                seals: l.u64(&format!("key[{n}] seals made")),
                commitment: l.take(32, format!("key[{n}] commitment")).to_vec(),
                wrapped: l
                    .take(
                        60,
                        format!("key[{n}] wrapped data key: nonce 12 | key 32 | tag 16"),
                    )
                    .to_vec(),
            });
        }
        let active = l.u32("active key id");
        let summary = (layout >= 2).then(|| {
            (
                l.u64("write counter"),
                l.take(
                    76,
                    "record-set summary: nonce 12 | count, digest, locator 48 | tag 16",
                )
                .to_vec(),
            )
        });
        let audit = (layout == 3).then(|| {
            (
                l.u8("audit mode (0 off, 1 changes, 2 all)"),
                l.u64("audit entries"),
                l.take(32, "audit head: the last entry's MAC").to_vec(),
            )
        });
        let mac = l.take(32, "header MAC").to_vec();
        assert_eq!(l.at, bytes.len(), "trailing bytes");
        Header {
            layout,
            summary,
            audit,
            store_id,
            commitment,
            slots,
            keys,
            active,
            mac,
            fields: l.fields,
        }
    }
}

#[test]
fn golden_bytes_follow_the_documented_format() {
    const COMMIT: &[u8] = b"tokenvault commit";
    let (mut checked, mut summarized) = (0, 0);
    for case in all_cases().iter().filter(|c| c.expect == Expect::Ok) {
        let name = &case.name;
        let h = spec::parse_header(&case.header);
        assert_eq!(h.slots.len(), 1, "{name}");
        let slot = &h.slots[0];

        // credential → KEK
        let kek = match (&case.key, &slot.body) {
            (CaseKey::Raw(raw), spec::SlotBody::RawKey { salt }) => {
                assert_eq!(slot.kind, 2);
                spec::hkdf(Some(salt), raw, b"tokenvault raw-key slot v1")
            }
            (CaseKey::Passphrase(pw), spec::SlotBody::Passphrase { m, t, p, salt }) => {
                assert_eq!(slot.kind, 1);
                assert_eq!((*m, *t, *p), (65536, 3, 4), "{name}: default Argon2id");
                spec::argon2id(pw.as_bytes(), salt, *m, *t, *p)
            }
            _ => panic!("{name}: slot kind does not fit the key"),
        };
        // KEK → store key
        let slot_ad = spec::lp(&[
            b"tokenvault slot",
            &[1],
            &h.store_id,
            &slot.id.to_be_bytes(),
            &[slot.kind],
            &slot.params,
        ]);
        let store_key: [u8; 32] =
            spec::open(&kek, &slot.wrapped[..12], &slot.wrapped[12..], &slot_ad)
                .unwrap_or_else(|| panic!("{name}: slot does not open"))
                .try_into()
                .unwrap();
        assert_eq!(spec::hmac(&store_key, &[COMMIT]).as_slice(), h.commitment);
        // header MAC
        let mac_key = spec::hkdf(None, &store_key, b"tokenvault header mac v1");
        let body = &case.header[..case.header.len() - 32];
        assert_eq!(spec::hmac(&mac_key, &[body]).as_slice(), h.mac, "{name}");
        // store key → data keys
        let wrap_key = spec::hkdf(None, &store_key, b"tokenvault data-key wrap v1");
        let mut data_keys = BTreeMap::new();
        for k in &h.keys {
            let ad = spec::lp(&[
                b"tokenvault data key",
                &[1],
                &h.store_id,
                &k.id.to_be_bytes(),
            ]);
            let dk: [u8; 32] = spec::open(&wrap_key, &k.wrapped[..12], &k.wrapped[12..], &ad)
                .unwrap_or_else(|| panic!("{name}: data key {} does not open", k.id))
                .try_into()
                .unwrap();
            assert_eq!(spec::hmac(&dk, &[COMMIT]).as_slice(), k.commitment);
            // Layout 1 reserved seals ahead in blocks (their sizes changed between builds): at
            // least one for every record sealed under the key. Layout 2 counts exactly, but a
            // record saved twice took two seals.
            let sealed_under = case
                .records
                .iter()
                .filter(|r| r.sealed[1..5] == k.id.to_be_bytes())
                .count() as u64;
            assert!(k.seals >= sealed_under, "{name}: seals counted");
            data_keys.insert(k.id, dk);
        }
        assert!(data_keys.contains_key(&h.active));
        // records
        let k_idx = spec::hkdf(None, &store_key, b"tokenvault index v1");
        for r in &case.records {
            let s = &r.sealed;
            let key_id_bytes: [u8; 4] = s[1..5].try_into().unwrap();
            let key_id = u32::from_be_bytes(key_id_bytes);
            let expected = &case.tokens[&r.id];
            let value: serde_json::Value = serde_json::from_str(expected).unwrap();
            match s[0] {
                1 => {
                    let ad = spec::lp(&[
                        b"tokenvault record",
                        &[1],
                        &h.store_id,
                        &key_id_bytes,
                        r.id.as_bytes(),
                    ]);
                    let plaintext = spec::open(&data_keys[&key_id], &s[5..17], &s[17..], &ad)
                        .unwrap_or_else(|| panic!("{name}: record {} does not open", r.id));
                    // The plaintext is the token's JSON without its id (which the AD binds).
                    let id_member = format!("\"id\":{},", serde_json::to_string(&r.id).unwrap());
                    assert!(expected.starts_with(&format!("{{{id_member}")));
                    let without_id = expected.replacen(&id_member, "", 1);
                    assert_eq!(String::from_utf8(plaintext).unwrap(), without_id, "{name}");
                }
                2 => {
                    let generation = &s[5..13];
                    assert!(
                        u64::from_be_bytes(generation.try_into().unwrap()) >= 1,
                        "{name}"
                    );
                    let ad = spec::lp(&[
                        b"tokenvault record",
                        &[2],
                        &h.store_id,
                        &key_id_bytes,
                        generation,
                        r.id.as_bytes(),
                    ]);
                    let plaintext = spec::open(&data_keys[&key_id], &s[13..25], &s[25..], &ad)
                        .unwrap_or_else(|| panic!("{name}: record {} does not open", r.id));
                    // The plaintext: the nine fields but the id, in order, each a 4-byte
                    // big-endian length and UTF-8 bytes (length 0: unset).
                    let mut body = spec::Layout::new(&plaintext);
                    let mut set = 0;
                    for field in [
                        "user_name",
                        "client_id",
                        "client_secret",
                        "refresh_token",
                        "access_token",
                        "grant_token",
                        "expiry_time",
                        "redirect_url",
                        "api_domain",
                    ] {
                        let len = body.u32(field) as usize;
                        let bytes = body.take(len, field);
                        let got = (len > 0).then(|| std::str::from_utf8(bytes).unwrap());
                        assert_eq!(
                            got,
                            value[field].as_str(),
                            "{name}: record {} {field}",
                            r.id
                        );
                        set += usize::from(got.is_some());
                    }
                    assert_eq!(
                        body.at,
                        plaintext.len(),
                        "{name}: record {}: trailing bytes",
                        r.id
                    );
                    let members = value.as_object().unwrap().len();
                    assert_eq!(set + 1, members, "{name}: record {}: every field", r.id);
                }
                v => panic!("{name}: record version {v}"),
            }
            // Blind-index tags: HMAC-SHA256(K_idx, field name || 0x00 || value).
            for (i, field) in ["user_name", "access_token", "refresh_token", "grant_token"]
                .iter()
                .enumerate()
            {
                let want = value[field]
                    .as_str()
                    .map(|v| Tag(spec::hmac(&k_idx, &[field.as_bytes(), &[0], v.as_bytes()])));
                assert_eq!(r.tags.0[i], want, "{name}: record {} tag {field}", r.id);
            }
        }
        // Layout 2: the record-set summary (§3.5), recomputed from the records.
        assert_eq!(h.summary.is_some(), h.layout >= 2, "{name}");
        if let Some((writes, sealed)) = &h.summary {
            // One key per write: HKDF of the box root with the write counter as salt.
            let box_root = spec::hkdf(None, &store_key, b"tokenvault record set box v1");
            let box_key = spec::hkdf(
                Some(&writes.to_be_bytes()),
                &box_root,
                b"tokenvault record set box key",
            );
            let ad = spec::lp(&[b"tokenvault record set", &h.store_id, &writes.to_be_bytes()]);
            let summary = spec::open(&box_key, &sealed[..12], &sealed[12..], &ad)
                .unwrap_or_else(|| panic!("{name}: the record-set summary does not open"));
            let k_f = spec::hkdf(None, &store_key, b"tokenvault record set element v1");
            let k_g = spec::hkdf(None, &store_key, b"tokenvault record set locator v1");
            let (mut digest, mut locator) = ([0u8; 32], 0u64);
            for r in &case.records {
                let f = spec::hmac(&k_f, &[&spec::lp(&[r.id.as_bytes(), &r.sealed])]);
                // digest += f (mod 2^256), big-endian byte by byte.
                let mut carry = 0u16;
                for i in (0..32).rev() {
                    let sum = u16::from(digest[i]) + u16::from(f[i]) + carry;
                    digest[i] = sum as u8;
                    carry = sum >> 8;
                }
                let g = u64::from_be_bytes(
                    spec::hmac(&k_g, &[r.id.as_bytes()])[..8]
                        .try_into()
                        .unwrap(),
                ) | 1;
                locator = locator.wrapping_add(g.wrapping_mul(generation_of(&r.sealed)));
            }
            let mut want = (case.records.len() as u64).to_be_bytes().to_vec();
            want.extend_from_slice(&digest);
            want.extend_from_slice(&locator.to_be_bytes());
            assert_eq!(summary, want, "{name}: count | digest | locator");
            summarized += 1;
        }
        // Layout 3: the audit log (§3.7), each entry's MAC chained to the one before, the last
        // one's and the count in the header.
        assert_eq!(h.audit.is_some(), !case.audit.is_empty(), "{name}");
        if let Some((mode, entries, head)) = &h.audit {
            assert!(*mode <= 2, "{name}: audit mode");
            let k_audit = spec::hkdf(None, &store_key, b"tokenvault audit chain v1");
            let mut previous = [0u8; 32];
            for (n, row) in (1u64..).zip(&case.audit) {
                assert_eq!(row.seq, n, "{name}: audit entries numbered from 1");
                let mut e = spec::Layout::new(&row.entry);
                assert_eq!(e.u8("entry version"), 1);
                assert_eq!(e.u64("seq"), n, "{name}: entry {n} carries its number");
                e.u64("time, ms since the Unix epoch");
                assert!(e.u8("outcome") <= 2);
                let op_len = usize::from(e.u8("operation length"));
                let op = std::str::from_utf8(e.take(op_len, "operation")).unwrap();
                assert!(
                    !op.is_empty() && op.is_ascii(),
                    "{name}: entry {n} operation"
                );
                let record_len = usize::from(e.u16("record id length"));
                e.take(record_len, "record id");
                for what in ["OS user", "host"] {
                    let len = usize::from(e.u8(what));
                    e.take(len, what);
                }
                let detail_len = usize::from(e.u16("detail length"));
                e.take(detail_len, "detail");
                let body = &row.entry[..e.at];
                let mac = e.take(32, "entry MAC");
                assert_eq!(e.at, row.entry.len(), "{name}: entry {n}: trailing bytes");
                let want = spec::hmac(
                    &k_audit,
                    &[b"tokenvault audit entry", &h.store_id, &previous, body],
                );
                assert_eq!(mac, want, "{name}: entry {n}'s MAC");
                previous = want;
            }
            assert_eq!(
                *entries,
                case.audit.len() as u64,
                "{name}: the header's count"
            );
            assert_eq!(head, &previous, "{name}: the header's head");
        }
        checked += 1;
    }
    assert!(checked >= 2);
    assert!(summarized >= 1, "no golden store with header layout 2");
}

/// Prints the raw-key golden header field by field (the dump in SECURITY.md §3).
#[test]
#[ignore = "prints documentation; run with --ignored --nocapture"]
fn annotate_golden_header() {
    let case = read_case(&golden_dir().join("rawkey-store.txt"));
    let h = spec::parse_header(&case.header);
    println!("offset  len  bytes  field");
    for f in &h.fields {
        let bytes = &case.header[f.offset..f.offset + f.len];
        println!(
            "{:>6}  {:>3}  {}  {}",
            f.offset,
            f.len,
            hex::encode(bytes),
            f.name
        );
    }
    // Intermediate values, derived from the published test key (so not secrets either).
    let CaseKey::Raw(raw) = &case.key else {
        unreachable!()
    };
    let slot = &h.slots[0];
    let spec::SlotBody::RawKey { salt } = &slot.body else {
        unreachable!()
    };
    let kek = spec::hkdf(Some(salt), raw, b"tokenvault raw-key slot v1");
    let slot_ad = spec::lp(&[
        b"tokenvault slot",
        &[1],
        &h.store_id,
        &slot.id.to_be_bytes(),
        &[slot.kind],
        &slot.params,
    ]);
    let store_key = spec::open(&kek, &slot.wrapped[..12], &slot.wrapped[12..], &slot_ad).unwrap();
    let wrap_key = spec::hkdf(None, &store_key, b"tokenvault data-key wrap v1");
    let key = &h.keys[0];
    let dk_ad = spec::lp(&[
        b"tokenvault data key",
        &[1],
        &h.store_id,
        &key.id.to_be_bytes(),
    ]);
    let data_key = spec::open(&wrap_key, &key.wrapped[..12], &key.wrapped[12..], &dk_ad).unwrap();
    println!("\nKEK            {}", hex::encode(kek));
    println!("slot AD        {}", hex::encode(&slot_ad));
    println!("store key      {}", hex::encode(&store_key));
    println!(
        "header MAC key {}",
        hex::encode(spec::hkdf(None, &store_key, b"tokenvault header mac v1"))
    );
    println!("wrap key       {}", hex::encode(wrap_key));
    println!("data-key AD    {}", hex::encode(&dk_ad));
    println!("data key 1     {}", hex::encode(&data_key));
    println!(
        "K_idx          {}",
        hex::encode(spec::hkdf(None, &store_key, b"tokenvault index v1"))
    );
    for r in &case.records {
        let ad = spec::lp(&[
            b"tokenvault record",
            &[1],
            &h.store_id,
            &r.sealed[1..5],
            r.id.as_bytes(),
        ]);
        let data_key: [u8; 32] = data_key.clone().try_into().unwrap();
        let plaintext = spec::open(&data_key, &r.sealed[5..17], &r.sealed[17..], &ad).unwrap();
        println!("\nrecord {}:", r.id);
        println!("  AD        {}", hex::encode(&ad));
        println!("  plaintext {}", String::from_utf8_lossy(&plaintext));
        let s = &r.sealed;
        println!("     0    1  {}  version", hex::encode(&s[..1]));
        println!("     1    4  {}  key id", hex::encode(&s[1..5]));
        println!("     5   12  {}  nonce", hex::encode(&s[5..17]));
        let n = s.len() - 16;
        println!(
            "    17  {:>3}  {}  ciphertext",
            n - 17,
            hex::encode(&s[17..n])
        );
        println!("{:>6}   16  {}  tag", n, hex::encode(&s[n..]));
    }
}

// ---------------------------------------------------------------------------------------------
// The one-time generator
// ---------------------------------------------------------------------------------------------

/// The fixed raw key of the raw-key golden store: bytes 0x00..=0x1f.
fn golden_raw_key() -> [u8; 32] {
    std::array::from_fn(|i| u8::try_from(i).unwrap())
}

const GOLDEN_PASSPHRASE: &str = "tokenvault golden store passphrase (a test vector, not a secret)";

fn full_token() -> OAuthToken {
    OAuthToken::new()
        .with_user_name("ann@example.com")
        .with_client_id("1000.GOLDENCLIENTID")
        .with_client_secret("golden-client-secret")
        .with_refresh_token("1000.golden.refresh.ann")
        .with_access_token("1000.golden.access.ann")
        .with_grant_token("1000.golden.grant.ann")
        .with_expiry_time(1_900_000_000_000)
        .with_redirect_url("https://example.com/oauth/callback")
        .with_api_domain("https://www.zohoapis.com")
}

fn minimal_token() -> OAuthToken {
    OAuthToken::new()
        .with_user_name("bob@example.com")
        .with_refresh_token("1000.golden.refresh.bob")
}

/// Values that JSON must escape, and non-ASCII text, so the plaintext encoding is pinned too.
fn escapes_token() -> OAuthToken {
    OAuthToken::new()
        .with_user_name("zo\u{eb} \"q\" back\\slash\ttab \u{1f511}")
        .with_access_token("1000.golden.access.zo\u{eb}/\u{1}")
        .with_expiry_time(1)
}

/// Creates a store, saves `tokens`, and returns the case it makes.
fn make_store(name: &str, key: CaseKey, tokens: Vec<OAuthToken>, comments: Vec<String>) -> Case {
    let backend = MemoryBackend::new();
    let credential = key.credential();
    let store = EncryptedStore::create(&backend, &credential).unwrap();
    let mut ids = Vec::new();
    for mut token in tokens {
        store.save_token(&mut token).unwrap();
        ids.push(token.id().unwrap().to_owned());
    }
    let mut case = Case {
        name: name.to_owned(),
        comments,
        expect: Expect::Ok,
        key,
        header: backend.read_header().unwrap().unwrap(),
        records: backend.list().unwrap(),
        tokens: BTreeMap::new(),
        tampered: BTreeSet::new(),
        audit: Vec::new(),
    };
    for id in &ids {
        let token = store.find_token_by_id(id).unwrap().unwrap();
        case.tokens.insert(id.clone(), json(&token));
    }
    case
}

#[test]
#[ignore = "wrote the header-layout-2 golden file once; the committed file is the truth"]
fn generate_golden_header_v2() {
    let file = "h2-rawkey-store.txt";
    assert!(
        !golden_dir().join(file).exists(),
        "{file} exists: it must not be regenerated"
    );
    let updated_bob = minimal_token().with_access_token("1000.golden.access.bob");
    let case = make_store(
        file,
        CaseKey::Raw(golden_raw_key()),
        vec![full_token(), minimal_token(), escapes_token(), updated_bob],
        vec![
            "made once by tests/golden.rs generate_golden_header_v2 (tokenvault 0.1.0, header \
             layout 2, record version 2); never regenerated"
                .to_owned(),
            "raw-key store (raw key = bytes 00..1f) with a write counter and a sealed record-set \
             summary (SECURITY.md §3.5): the records of v2-rawkey-store.txt, saved anew"
                .to_owned(),
        ],
    );
    assert_eq!(case.header[8], 2);
    std::fs::write(golden_dir().join(file), render_case(&case)).unwrap();
}

#[test]
#[ignore = "wrote the header-layout-3 golden file once; the committed file is the truth"]
fn generate_golden_header_v3() {
    let file = "h3-audit-store.txt";
    assert!(
        !golden_dir().join(file).exists(),
        "{file} exists: it must not be regenerated"
    );
    let backend = MemoryBackend::new();
    let key = CaseKey::Raw(golden_raw_key());
    let store = EncryptedStore::create(&backend, &key.credential()).unwrap();
    store.set_audit_mode(AuditMode::All).unwrap();
    let mut ids = Vec::new();
    for mut token in [full_token(), minimal_token(), escapes_token()] {
        store.save_token(&mut token).unwrap();
        ids.push(token.id().unwrap().to_owned());
    }
    store.delete_token(&ids[2]).unwrap();
    let mut case = Case {
        name: file.to_owned(),
        comments: vec![
            "made once by tests/golden.rs generate_golden_header_v3 (tokenvault 0.1.0, header \
             layout 3, record version 2); never regenerated"
                .to_owned(),
            "raw-key store (raw key = bytes 00..1f) with its audit trail on (mode all, SECURITY.md \
             §3.7): audit_on, three saves, a delete, then a find_by_id of each remaining record"
                .to_owned(),
        ],
        expect: Expect::Ok,
        key,
        header: Vec::new(),
        records: backend.list().unwrap(),
        tokens: BTreeMap::new(),
        tampered: BTreeSet::new(),
        audit: Vec::new(),
    };
    for id in &ids[..2] {
        let token = store.find_token_by_id(id).unwrap().unwrap();
        case.tokens.insert(id.clone(), json(&token));
    }
    case.header = backend.read_header().unwrap().unwrap();
    backend
        .transact(&mut |tx| {
            case.audit = tx.audit_read(0)?;
            Ok(())
        })
        .unwrap();
    assert_eq!(case.header[8], 3);
    assert_eq!(case.audit.len(), 7);
    std::fs::write(golden_dir().join(file), render_case(&case)).unwrap();
}

#[test]
#[ignore = "wrote the record-version-2 golden files once; the committed files are the truth"]
fn generate_golden_record_v2() {
    let dir = golden_dir();
    let existing = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("v2-")
        })
        .count();
    assert!(
        existing == 0,
        "the v2-* golden files exist: they must not be regenerated"
    );
    let made = "made once by tests/golden.rs generate_golden_record_v2 (tokenvault 0.1.0, record \
                version 2); never regenerated";
    let updated_bob = minimal_token().with_access_token("1000.golden.access.bob");
    let raw = make_store(
        "v2-rawkey-store.txt",
        CaseKey::Raw(golden_raw_key()),
        vec![full_token(), minimal_token(), escapes_token(), updated_bob],
        vec![
            made.to_owned(),
            "raw-key store (raw key = bytes 00..1f), records in version 2: all ten fields; \
             user_name + refresh_token saved, then saved again with an access token \
             (generation 2); escapes and non-ASCII"
                .to_owned(),
        ],
    );
    let id_of = |user: &str| -> String {
        raw.tokens
            .iter()
            .find(|(_, j)| j.contains(&format!("\"user_name\":\"{user}\"")))
            .map(|(id, _)| id.clone())
            .unwrap()
    };
    let (ann, bob) = (id_of("ann@example.com"), id_of("bob@example.com"));
    assert_eq!(
        generation_of(&raw.records.iter().find(|r| r.id == bob).unwrap().sealed),
        2
    );
    let mut cases = vec![raw.clone()];
    /// A negative case: its file, its comment, the record it tampers with, and how.
    type Variant<'a> = (&'static str, String, &'a String, fn(&mut Vec<u8>));
    let variants: [Variant<'_>; 3] = [
        (
            "v2-rawkey-tampered-record.txt",
            format!(
                "v2-rawkey-store.txt with byte 30 of record {ann} (in the ciphertext) xor 0x01"
            ),
            &ann,
            |sealed| sealed[30] ^= 0x01,
        ),
        (
            "v2-rawkey-relabelled-generation.txt",
            format!(
                "v2-rawkey-store.txt with the generation of record {bob} relabelled from 2 to 1 \
                 (the associated data binds it)"
            ),
            &bob,
            |sealed| sealed[12] = 1,
        ),
        (
            "v2-rawkey-downgraded-version.txt",
            format!(
                "v2-rawkey-store.txt with record {ann} relabelled as record version 1 (the \
                 associated data binds the version)"
            ),
            &ann,
            |sealed| sealed[0] = 1,
        ),
    ];
    for (file, comment, id, tamper) in variants {
        let mut c = raw.clone();
        c.name = file.into();
        c.comments = vec![made.into(), comment];
        c.expect = Expect::TamperedRecord;
        tamper(&mut c.records.iter_mut().find(|r| &r.id == id).unwrap().sealed);
        c.tampered = [id.clone()].into();
        cases.push(c);
    }
    for case in &cases {
        std::fs::write(dir.join(&case.name), render_case(case)).unwrap();
    }
}

#[test]
#[ignore = "wrote tests/vectors/golden once; the committed files are the truth"]
fn generate_golden() {
    let dir = golden_dir();
    let existing = std::fs::read_dir(&dir).map_or(0, |d| d.count());
    assert!(
        existing == 0,
        "{dir:?} already holds golden files: they are the compatibility promise and must not be \
         regenerated (random nonces would change every byte). Delete them only if the format \
         version changes."
    );
    std::fs::create_dir_all(&dir).unwrap();
    let made = "made once by tests/golden.rs generate_golden (tokenvault 0.1.0, format version 1); \
                never regenerated";

    let raw = make_store(
        "rawkey-store.txt",
        CaseKey::Raw(golden_raw_key()),
        vec![full_token(), minimal_token(), escapes_token()],
        vec![
            made.to_owned(),
            "raw-key store: raw key = bytes 00..1f; three records: all ten fields; \
             user_name + refresh_token; JSON escapes and non-ASCII"
                .to_owned(),
        ],
    );
    let pass = make_store(
        "passphrase-store.txt",
        CaseKey::Passphrase(GOLDEN_PASSPHRASE.to_owned()),
        vec![full_token(), minimal_token()],
        vec![
            made.to_owned(),
            "passphrase store: default Argon2id (m = 65536 KiB, t = 3, p = 4); two records: \
             all ten fields; user_name + refresh_token"
                .to_owned(),
            "the passphrase is a published test vector, not a secret".to_owned(),
        ],
    );
    let id_of = |case: &Case, user: &str| -> String {
        case.tokens
            .iter()
            .find(|(_, j)| j.contains(&format!("\"user_name\":\"{user}\"")))
            .map(|(id, _)| id.clone())
            .unwrap()
    };
    let ann = id_of(&raw, "ann@example.com");
    let bob = id_of(&raw, "bob@example.com");

    let mut cases = vec![raw.clone(), pass.clone()];

    let mut c = raw.clone();
    c.name = "rawkey-wrong-key.txt".into();
    c.comments = vec![
        made.into(),
        "the header of rawkey-store.txt opened with another raw key (bytes 20..3f)".into(),
    ];
    c.expect = Expect::WrongKey;
    c.key = CaseKey::Raw(std::array::from_fn(|i| u8::try_from(i + 0x20).unwrap()));
    c.records.clear();
    c.tokens.clear();
    cases.push(c);

    let mut c = pass.clone();
    c.name = "passphrase-wrong-passphrase.txt".into();
    c.comments = vec![
        made.into(),
        "the header of passphrase-store.txt opened with another passphrase".into(),
    ];
    c.expect = Expect::WrongKey;
    c.key = CaseKey::Passphrase(format!("{GOLDEN_PASSPHRASE}!"));
    c.records.clear();
    c.tokens.clear();
    cases.push(c);

    let mut c = raw.clone();
    c.name = "rawkey-tampered-record.txt".into();
    c.comments = vec![
        made.into(),
        format!(
            "rawkey-store.txt with one byte of record {ann} flipped (byte 20, in the \
             ciphertext: xor 0x01); the other records still open"
        ),
    ];
    c.expect = Expect::TamperedRecord;
    c.records.iter_mut().find(|r| r.id == ann).unwrap().sealed[20] ^= 0x01;
    c.tampered = [ann.clone()].into();
    cases.push(c);

    let mut c = raw.clone();
    c.name = "rawkey-moved-records.txt".into();
    c.comments = vec![
        made.into(),
        format!(
            "rawkey-store.txt with the sealed bytes of records {ann} and {bob} exchanged (tags \
             stay with the ids): the associated data binds the record id, so neither opens"
        ),
    ];
    c.expect = Expect::TamperedRecord;
    let sealed_ann = c
        .records
        .iter()
        .find(|r| r.id == ann)
        .unwrap()
        .sealed
        .clone();
    let sealed_bob = c
        .records
        .iter()
        .find(|r| r.id == bob)
        .unwrap()
        .sealed
        .clone();
    for r in &mut c.records {
        if r.id == ann {
            r.sealed = sealed_bob.clone();
        } else if r.id == bob {
            r.sealed = sealed_ann.clone();
        }
    }
    c.tampered = [ann.clone(), bob.clone()].into();
    cases.push(c);

    let mut c = raw.clone();
    c.name = "rawkey-swapped-tags.txt".into();
    c.comments = vec![
        made.into(),
        format!(
            "rawkey-store.txt with the tag columns of records {ann} and {bob} exchanged: both \
             still open by id, but every lookup through the swapped tags must fail (the opened \
             record lacks the looked-up value) and verify must list both"
        ),
    ];
    c.expect = Expect::TamperedTags;
    let tags_ann = c.records.iter().find(|r| r.id == ann).unwrap().tags;
    let tags_bob = c.records.iter().find(|r| r.id == bob).unwrap().tags;
    for r in &mut c.records {
        if r.id == ann {
            r.tags = tags_bob;
        } else if r.id == bob {
            r.tags = tags_ann;
        }
    }
    c.tampered = [ann.clone(), bob.clone()].into();
    cases.push(c);

    let mut c = raw.clone();
    c.name = "rawkey-tampered-header.txt".into();
    c.comments = vec![
        made.into(),
        "rawkey-store.txt with the last byte of the header (in its MAC) xor 0x01".into(),
    ];
    c.expect = Expect::TamperedHeader;
    *c.header.last_mut().unwrap() ^= 0x01;
    c.records.clear();
    c.tokens.clear();
    cases.push(c);

    for case in &cases {
        std::fs::write(dir.join(&case.name), render_case(case)).unwrap();
    }
    // What was written reads back as what was meant.
    for case in &cases {
        let back = read_case(&dir.join(&case.name));
        assert_eq!(render_case(&back), render_case(case));
    }
}
