//! Every statement the backend runs (the schema name validated and quoted into their text,
//! every value bound), and the queries over them, shared by reads outside and inside
//! transactions. The queries return raw rows: decoding happens after, so that a decoding
//! failure is not mistaken for a connection failure.

use super::config::SCHEMA_NAME;
use super::pool::PgConn;
use super::{BackendError, BackendErrorKind, error};
use crate::backend::sql::row::{TAG_COLUMNS, lookup_tags};
use crate::backend::{AuditRow, LookupField, StoredRecord, Tag};

/// Every statement this backend runs, by index into [`Sql::text`] and the per-connection cache.
#[derive(Clone, Copy)]
pub(super) enum Q {
    Header,
    Get,
    FindUserName,
    FindAccessToken,
    FindRefreshToken,
    FindGrantToken,
    List,
    PutHeader,
    Put,
    Delete,
    DeleteAll,
    AuditExists,
    AuditAppend,
    AuditRead,
    AuditClear,
}
pub(super) const STATEMENTS: usize = 15;

const COLUMNS: &str =
    "id, user_name_tag, access_token_tag, refresh_token_tag, grant_token_tag, sealed";

/// The statements with the (validated, quoted) schema name in them.
pub(super) struct Sql {
    pub(super) text: [String; STATEMENTS],
    /// `BEGIN` and the writer lock, sent as one simple query (one round trip).
    pub(super) begin: String,
    /// The schema name, bound into [`AUDIT_EXISTS`].
    pub(super) schema: String,
}

/// The audit log's table (optional: created by `prepare_audit`, never at connect), qualified.
pub(super) fn audit_table(schema: &str) -> String {
    format!("\"{schema}\".tokenvault_audit")
}

/// Whether the audit table exists in schema `$1`. A statement naming a missing table would
/// fail and abort the transaction, so this is asked first. A read of the catalog under the
/// statement's snapshot, which sees every table committed before the statement (rather than
/// `to_regclass`, whose name lookup goes through the session's catalog cache).
pub(super) const AUDIT_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables \
     WHERE schemaname = $1 AND tablename = 'tokenvault_audit')";

impl Sql {
    pub(super) fn new(schema: &str) -> Self {
        debug_assert!(SCHEMA_NAME.accepts(schema));
        let meta = format!("\"{schema}\".tokenvault_meta");
        let records = format!("\"{schema}\".tokenvault_records");
        let audit = audit_table(schema);
        let find = |column: &str| format!("SELECT {COLUMNS} FROM {records} WHERE {column} = $1");
        let [user_name, access_token, refresh_token, grant_token] = TAG_COLUMNS.map(find);
        let text = [
            format!("SELECT value FROM {meta} WHERE key = 'header'"),
            format!("SELECT {COLUMNS} FROM {records} WHERE id = $1"),
            user_name,
            access_token,
            refresh_token,
            grant_token,
            format!("SELECT {COLUMNS} FROM {records} ORDER BY id"),
            format!(
                "INSERT INTO {meta}(key, value) VALUES ('header', $1)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ),
            format!(
                "INSERT INTO {records}({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (id) DO UPDATE SET user_name_tag = EXCLUDED.user_name_tag,
                     access_token_tag = EXCLUDED.access_token_tag,
                     refresh_token_tag = EXCLUDED.refresh_token_tag,
                     grant_token_tag = EXCLUDED.grant_token_tag, sealed = EXCLUDED.sealed"
            ),
            format!("DELETE FROM {records} WHERE id = $1"),
            format!("DELETE FROM {records}"),
            AUDIT_EXISTS.to_owned(),
            format!("INSERT INTO {audit}(seq, entry) VALUES ($1, $2)"),
            format!("SELECT seq, entry FROM {audit} WHERE seq > $1 OR $1 = 0 ORDER BY seq"),
            format!("DELETE FROM {audit}"),
        ];
        let begin = format!(
            "BEGIN ISOLATION LEVEL READ COMMITTED; \
             SELECT 1 FROM {meta} WHERE key = 'schema_version' FOR UPDATE"
        );
        Self {
            text,
            begin,
            schema: schema.to_owned(),
        }
    }

    pub(super) fn find(field: LookupField) -> Q {
        match field {
            LookupField::UserName => Q::FindUserName,
            LookupField::AccessToken => Q::FindAccessToken,
            LookupField::RefreshToken => Q::FindRefreshToken,
            LookupField::GrantToken => Q::FindGrantToken,
        }
    }
}

/// A row as read: id, the four tag columns, sealed bytes.
pub(super) type Row = (String, [Option<Vec<u8>>; 4], Vec<u8>);

fn read_row(row: &postgres::Row) -> Result<Row, postgres::Error> {
    Ok((
        row.try_get(0)?,
        [
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
            row.try_get(4)?,
        ],
        row.try_get(5)?,
    ))
}

/// Decodes a row as read (see [`lookup_tags`] for the tag columns).
pub(super) fn to_record((id, mut tags, sealed): Row) -> Result<StoredRecord, BackendError> {
    Ok(StoredRecord {
        id,
        tags: lookup_tags(|i| Ok(tags[i].take()))?,
        sealed,
    })
}

pub(super) fn header(c: &mut PgConn, sql: &Sql) -> Result<Option<Vec<u8>>, postgres::Error> {
    let s = c.statement(sql, Q::Header)?;
    Ok(c.client.query_opt(&s, &[])?.map(|r| r.get(0)))
}

pub(super) fn get(c: &mut PgConn, sql: &Sql, id: &str) -> Result<Option<Row>, postgres::Error> {
    if id.contains('\0') {
        return Ok(None); // PostgreSQL text cannot hold NUL: no such record can exist
    }
    let s = c.statement(sql, Q::Get)?;
    c.client
        .query_opt(&s, &[&id])?
        .as_ref()
        .map(read_row)
        .transpose()
}

pub(super) fn find(
    c: &mut PgConn,
    sql: &Sql,
    field: LookupField,
    tag: &Tag,
) -> Result<Option<Row>, postgres::Error> {
    let s = c.statement(sql, Sql::find(field))?;
    // A unique index per tag column: at most one row.
    c.client
        .query_opt(&s, &[&tag.as_bytes().as_slice()])?
        .as_ref()
        .map(read_row)
        .transpose()
}

pub(super) fn list(c: &mut PgConn, sql: &Sql) -> Result<Vec<Row>, postgres::Error> {
    let s = c.statement(sql, Q::List)?;
    c.client.query(&s, &[])?.iter().map(read_row).collect()
}

pub(super) fn put_header(c: &mut PgConn, sql: &Sql, header: &[u8]) -> Result<(), postgres::Error> {
    let s = c.statement(sql, Q::PutHeader)?;
    c.client.execute(&s, &[&header]).map(drop)
}

pub(super) fn put(c: &mut PgConn, sql: &Sql, r: &StoredRecord) -> Result<(), postgres::Error> {
    let s = c.statement(sql, Q::Put)?;
    let tag = |f: LookupField| r.tags.get(f).map(|t| t.as_bytes().as_slice());
    c.client
        .execute(
            &s,
            &[
                &r.id,
                &tag(LookupField::UserName),
                &tag(LookupField::AccessToken),
                &tag(LookupField::RefreshToken),
                &tag(LookupField::GrantToken),
                &r.sealed,
            ],
        )
        .map(drop)
}

pub(super) fn delete(c: &mut PgConn, sql: &Sql, id: &str) -> Result<bool, postgres::Error> {
    if id.contains('\0') {
        return Ok(false);
    }
    let s = c.statement(sql, Q::Delete)?;
    Ok(c.client.execute(&s, &[&id])? > 0)
}

pub(super) fn delete_all(c: &mut PgConn, sql: &Sql) -> Result<(), postgres::Error> {
    let s = c.statement(sql, Q::DeleteAll)?;
    c.client.execute(&s, &[]).map(drop)
}

/// Whether the audit table exists (it does once `prepare_audit` has committed).
pub(super) fn audit_exists(c: &mut PgConn, sql: &Sql) -> Result<bool, postgres::Error> {
    let s = c.statement(sql, Q::AuditExists)?;
    c.client.query_one(&s, &[&sql.schema])?.try_get(0)
}

pub(super) fn audit_append(
    c: &mut PgConn,
    sql: &Sql,
    seq: i64,
    entry: &[u8],
) -> Result<(), postgres::Error> {
    let s = c.statement(sql, Q::AuditAppend)?;
    c.client.execute(&s, &[&seq, &entry]).map(drop)
}

/// An audit row as read: entry number and bytes.
pub(super) type AuditRaw = (i64, Vec<u8>);

pub(super) fn audit_read(
    c: &mut PgConn,
    sql: &Sql,
    after: i64,
) -> Result<Vec<AuditRaw>, postgres::Error> {
    let s = c.statement(sql, Q::AuditRead)?;
    c.client
        .query(&s, &[&after])?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

pub(super) fn audit_clear(c: &mut PgConn, sql: &Sql) -> Result<(), postgres::Error> {
    let s = c.statement(sql, Q::AuditClear)?;
    c.client.execute(&s, &[]).map(drop)
}

/// Decodes an audit row as read. A negative number (planted: the vault writes none) is handed
/// over as its two's-complement `u64`, beyond any count the header can hold, so the vault
/// names that row rather than the whole read failing.
pub(super) fn to_audit_row((seq, entry): AuditRaw) -> AuditRow {
    AuditRow {
        seq: seq.cast_unsigned(),
        entry,
    }
}

/// An audit entry number as stored (BIGINT): numbers above `i64::MAX` are refused.
pub(super) fn audit_seq(seq: u64) -> Result<i64, BackendError> {
    i64::try_from(seq).map_err(|_| {
        error(
            BackendErrorKind::Other,
            format!(
                "audit entry number {seq} is out of range: the PostgreSQL backend stores at most {}",
                i64::MAX
            ),
        )
    })
}
