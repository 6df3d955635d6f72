//! SQLite backend (the default store): one database file, WAL journal, one connection per
//! store, every write an `IMMEDIATE` transaction, every statement prepared and bound.
//!
//! Schema (version 1):
//! ```sql
//! tokenvault_meta(key TEXT PRIMARY KEY, value BLOB)          -- 'schema_version', 'header'
//! tokenvault_records(id TEXT PRIMARY KEY, user_name_tag BLOB UNIQUE, access_token_tag BLOB UNIQUE,
//!                    refresh_token_tag BLOB UNIQUE, grant_token_tag BLOB UNIQUE, sealed BLOB NOT NULL)
//! tokenvault_audit(seq INTEGER PRIMARY KEY, entry BLOB NOT NULL)   -- only once a store's
//!                    audit trail is turned on (older builds ignore it; the header says it is on)
//! ```
//! The file carries `PRAGMA application_id = 0x544B5631` ("TKV1"), so a database that is not
//! ours is refused rather than written to.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};

use super::{
    AuditRow, Backend, HeldLock, LookupField, LookupTags, RecordRef, StoredRecord, Tag, Transaction,
};
use crate::store::{BackendError, BackendErrorKind, Result};

/// "TKV1": marks a SQLite file as a tokenvault store.
const APPLICATION_ID: i32 = 0x544B_5631;
/// The schema this build writes. Older schemas are migrated on open; newer ones refused.
pub const SCHEMA_VERSION: i64 = 1;
/// How long a writer waits for another process's transaction before reporting `Busy`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
    CREATE TABLE tokenvault_meta (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL);
    CREATE TABLE tokenvault_records (
        id TEXT PRIMARY KEY NOT NULL,
        user_name_tag BLOB UNIQUE,
        access_token_tag BLOB UNIQUE,
        refresh_token_tag BLOB UNIQUE,
        grant_token_tag BLOB UNIQUE,
        sealed BLOB NOT NULL
    );
";

const COLUMNS: &str =
    "id, user_name_tag, access_token_tag, refresh_token_tag, grant_token_tag, sealed";

/// One lookup statement per tag column (in `LookupField::ALL` order): column names are
/// constants, values always bound.
const FIND_BY_TAG: [&str; 4] = [
    "SELECT id, user_name_tag, access_token_tag, refresh_token_tag, grant_token_tag, sealed FROM tokenvault_records WHERE user_name_tag = ?1",
    "SELECT id, user_name_tag, access_token_tag, refresh_token_tag, grant_token_tag, sealed FROM tokenvault_records WHERE access_token_tag = ?1",
    "SELECT id, user_name_tag, access_token_tag, refresh_token_tag, grant_token_tag, sealed FROM tokenvault_records WHERE refresh_token_tag = ?1",
    "SELECT id, user_name_tag, access_token_tag, refresh_token_tag, grant_token_tag, sealed FROM tokenvault_records WHERE grant_token_tag = ?1",
];

/// A store in one SQLite database file.
pub struct SqliteBackend {
    conn: Mutex<Connection>,
    path: PathBuf,
}

fn error(kind: BackendErrorKind, message: impl Into<String>) -> BackendError {
    BackendError::new(kind, message.into())
}

/// Maps SQLite errors onto the portable kinds.
fn sql_error(e: rusqlite::Error) -> BackendError {
    let kind = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => BackendErrorKind::Busy,
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => BackendErrorKind::Corrupt,
        Some(ErrorCode::ConstraintViolation) => BackendErrorKind::Conflict,
        Some(
            ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen
            | ErrorCode::PermissionDenied
            | ErrorCode::ReadOnly
            | ErrorCode::TooBig,
        ) => BackendErrorKind::Io,
        _ => BackendErrorKind::Other,
    };
    BackendError::new(kind, e)
}

impl SqliteBackend {
    /// Opens the store database at `path`, creating it (mode 0600) with the current schema if
    /// it does not exist. The parent directory must exist.
    ///
    /// # Errors
    /// [`BackendErrorKind::Corrupt`] for a file that is not SQLite or a database that is not a
    /// tokenvault store (nothing is written to it); [`BackendErrorKind::NotSupported`] for a
    /// schema newer than this build; [`BackendErrorKind::Insecure`] for a store file that is a
    /// symbolic link, owned by another user or writable by others (SQLite itself opens its
    /// `-wal` and `-shm` files with `O_NOFOLLOW`); [`BackendErrorKind::Io`] if it cannot be
    /// created or opened.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, BackendError> {
        let path = path.as_ref().to_path_buf();
        super::private_files::check_store_file(&path)?;
        // Create the file ourselves so it is 0600 from the first byte; SQLite gives its -wal
        // and -shm files the database file's permissions.
        match super::private_files::create_new_private(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(BackendError::new(BackendErrorKind::Io, e)),
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&path, flags).map_err(sql_error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_error)?;
        // Temporary tables and indices in memory: nothing of ours in temp files.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(sql_error)?;
        Self::check_ownership(&conn)?;
        let mode = Self::enable_wal(&conn)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(error(
                BackendErrorKind::Io,
                format!("SQLite refused WAL mode (journal mode is {mode})"),
            ));
        }
        // FULL: a committed transaction survives power loss, not only a process crash.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql_error)?;
        Self::create_or_migrate(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Switches to WAL. SQLite answers this pragma with SQLITE_BUSY at once, without the busy
    /// timeout, while another process holds the write lock (e.g. creating the schema), so wait
    /// out the timeout here.
    fn enable_wal(conn: &Connection) -> Result<String, BackendError> {
        let deadline = Instant::now() + BUSY_TIMEOUT;
        loop {
            match conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)) {
                Ok(mode) => return Ok(mode),
                Err(e)
                    if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                        && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(sql_error(e)),
            }
        }
    }

    /// Refuses a database that is neither empty nor ours. Reads only.
    fn check_ownership(conn: &Connection) -> Result<(), BackendError> {
        // One statement, so both values come from one snapshot: read separately, another
        // process creating the store between them would make a new store look foreign.
        let (app_id, tables): (i32, i64) = conn
            .query_row(
                "SELECT (SELECT application_id FROM pragma_application_id), (SELECT count(*) FROM sqlite_master)",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .map_err(|e| match e.sqlite_error_code() {
                Some(ErrorCode::NotADatabase) => error(
                    BackendErrorKind::Corrupt,
                    "not a SQLite database (and so not a tokenvault store)",
                ),
                _ => sql_error(e),
            })?;
        if app_id == APPLICATION_ID {
            return Ok(());
        }
        if app_id != 0 || tables > 0 {
            return Err(error(
                BackendErrorKind::Corrupt,
                "this SQLite database is not a tokenvault store; refusing to touch it",
            ));
        }
        Ok(())
    }

    fn create_or_migrate(conn: &mut Connection) -> Result<(), BackendError> {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_error)?;
        // Re-check inside the write lock: another process may have created it meanwhile.
        let app_id: i32 = tx
            .pragma_query_value(None, "application_id", |row| row.get(0))
            .map_err(sql_error)?;
        if app_id != APPLICATION_ID {
            tx.execute_batch(SCHEMA).map_err(sql_error)?;
            tx.execute(
                "INSERT INTO tokenvault_meta(key, value) VALUES ('schema_version', ?1)",
                params![SCHEMA_VERSION],
            )
            .map_err(sql_error)?;
            tx.pragma_update(None, "application_id", APPLICATION_ID)
                .map_err(sql_error)?;
        }
        let version: i64 = tx
            .query_row(
                "SELECT value FROM tokenvault_meta WHERE key = 'schema_version'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(sql_error)?
            .ok_or_else(|| {
                error(
                    BackendErrorKind::Corrupt,
                    "tokenvault database without a schema version",
                )
            })?;
        super::check_schema_version(version, SCHEMA_VERSION)?;
        tx.commit().map_err(sql_error)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic mid-transaction drops the rusqlite transaction, which rolls back; the
        // connection stays usable.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn tag_column(value: Option<impl AsRef<[u8]>>) -> Result<Option<Tag>, BackendError> {
    value
        .map(|bytes| {
            <[u8; 32]>::try_from(bytes.as_ref())
                .map(Tag)
                .map_err(|_| error(BackendErrorKind::Corrupt, "a lookup tag is not 32 bytes"))
        })
        .transpose()
}

/// A row as read: id, the four tag columns, sealed bytes.
type Row = (String, [Option<Vec<u8>>; 4], Vec<u8>);

fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((
        row.get(0)?,
        [row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?],
        row.get(5)?,
    ))
}

fn to_record((id, tags, sealed): Row) -> Result<StoredRecord, BackendError> {
    let [a, b, c, d] = tags;
    Ok(StoredRecord {
        id,
        tags: LookupTags([
            tag_column(a)?,
            tag_column(b)?,
            tag_column(c)?,
            tag_column(d)?,
        ]),
        sealed,
    })
}

// Queries shared by reads outside and inside transactions.

fn read_header(conn: &Connection) -> Result<Option<Vec<u8>>, BackendError> {
    conn.prepare_cached("SELECT value FROM tokenvault_meta WHERE key = 'header'")
        .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)).optional())
        .map_err(sql_error)
}

fn get(conn: &Connection, id: &str) -> Result<Option<StoredRecord>, BackendError> {
    let sql = format!("SELECT {COLUMNS} FROM tokenvault_records WHERE id = ?1");
    let row = conn
        .prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_row(params![id], read_row).optional())
        .map_err(sql_error)?;
    row.map(to_record).transpose()
}

fn find_by_tag(
    conn: &Connection,
    field: LookupField,
    tag: &Tag,
) -> Result<Option<StoredRecord>, BackendError> {
    let row = conn
        .prepare_cached(FIND_BY_TAG[field.index()])
        .and_then(|mut stmt| {
            stmt.query_row(params![tag.as_bytes().as_slice()], read_row)
                .optional()
        })
        .map_err(sql_error)?;
    row.map(to_record).transpose()
}

/// Rows in table (rowid) order, each borrowed from SQLite's own buffers for the visit: one
/// statement, so one read transaction and one consistent state.
fn scan(
    conn: &Connection,
    with_tags: bool,
    visit: &mut dyn FnMut(RecordRef<'_>) -> Result<(), BackendError>,
) -> Result<(), BackendError> {
    let sql = if with_tags {
        format!("SELECT {COLUMNS} FROM tokenvault_records")
    } else {
        "SELECT id, sealed FROM tokenvault_records".to_owned()
    };
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_error)?;
    let mut rows = stmt.query([]).map_err(sql_error)?;
    while let Some(row) = rows.next().map_err(sql_error)? {
        let id = row
            .get_ref(0)
            .and_then(|v| Ok(v.as_str()?))
            .map_err(sql_error)?;
        let mut tags = LookupTags::default();
        if with_tags {
            for (i, tag) in tags.0.iter_mut().enumerate() {
                let bytes = row
                    .get_ref(1 + i)
                    .and_then(|v| Ok(v.as_blob_or_null()?))
                    .map_err(sql_error)?;
                *tag = tag_column(bytes)?;
            }
        }
        let sealed = row
            .get_ref(if with_tags { 5 } else { 1 })
            .and_then(|v| Ok(v.as_blob()?))
            .map_err(sql_error)?;
        visit(RecordRef { id, tags, sealed })?;
    }
    Ok(())
}

fn list(conn: &Connection) -> Result<Vec<StoredRecord>, BackendError> {
    // Read in table (rowid) order and sort in memory: `ORDER BY id` would walk the id index and
    // fetch every row from a random place in the table (measured: 0.36 s against 0.15 s for
    // 100k records).
    let sql = format!("SELECT {COLUMNS} FROM tokenvault_records");
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_error)?;
    let rows = stmt.query_map([], read_row).map_err(sql_error)?;
    let mut records = rows
        .map(|row| row.map_err(sql_error).and_then(to_record))
        .collect::<Result<Vec<_>, _>>()?;
    records.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    Ok(records)
}

struct SqliteTransaction<'a> {
    tx: &'a rusqlite::Transaction<'a>,
}

impl Transaction for SqliteTransaction<'_> {
    fn header(&mut self) -> Result<Option<Vec<u8>>, BackendError> {
        read_header(self.tx)
    }

    fn put_header(&mut self, header: &[u8]) -> Result<(), BackendError> {
        self.tx
            .prepare_cached(
                "INSERT INTO tokenvault_meta(key, value) VALUES ('header', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut stmt| stmt.execute(params![header]))
            .map(drop)
            .map_err(sql_error)
    }

    fn get(&mut self, id: &str) -> Result<Option<StoredRecord>, BackendError> {
        get(self.tx, id)
    }

    fn find_by_tag(
        &mut self,
        field: LookupField,
        tag: &Tag,
    ) -> Result<Option<StoredRecord>, BackendError> {
        find_by_tag(self.tx, field, tag)
    }

    fn list(&mut self) -> Result<Vec<StoredRecord>, BackendError> {
        list(self.tx)
    }

    fn put(&mut self, record: StoredRecord) -> Result<(), BackendError> {
        let tag = |f: LookupField| record.tags.get(f).map(|t| t.as_bytes().to_vec());
        self.tx
            .prepare_cached(
                "INSERT INTO tokenvault_records(id, user_name_tag, access_token_tag, refresh_token_tag, grant_token_tag, sealed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(id) DO UPDATE SET user_name_tag = excluded.user_name_tag,
                     access_token_tag = excluded.access_token_tag, refresh_token_tag = excluded.refresh_token_tag,
                     grant_token_tag = excluded.grant_token_tag, sealed = excluded.sealed",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    record.id,
                    tag(LookupField::UserName),
                    tag(LookupField::AccessToken),
                    tag(LookupField::RefreshToken),
                    tag(LookupField::GrantToken),
                    record.sealed,
                ])
            })
            .map(drop)
            .map_err(sql_error)
    }

    fn delete(&mut self, id: &str) -> Result<bool, BackendError> {
        self.tx
            .prepare_cached("DELETE FROM tokenvault_records WHERE id = ?1")
            .and_then(|mut stmt| stmt.execute(params![id]))
            .map(|n| n > 0)
            .map_err(sql_error)
    }

    fn delete_all(&mut self) -> Result<(), BackendError> {
        self.tx
            .execute("DELETE FROM tokenvault_records", [])
            .map(drop)
            .map_err(sql_error)
    }

    fn audit_append(&mut self, seq: u64, entry: &[u8]) -> Result<(), BackendError> {
        let seq = i64::try_from(seq)
            .map_err(|_| error(BackendErrorKind::Other, "audit entry number out of range"))?;
        self.tx
            .prepare_cached("INSERT INTO tokenvault_audit(seq, entry) VALUES (?1, ?2)")
            .and_then(|mut stmt| stmt.execute(params![seq, entry]))
            .map(drop)
            .map_err(sql_error)
    }

    fn audit_read(&mut self, after: u64) -> Result<Vec<AuditRow>, BackendError> {
        if !audit_table_exists(self.tx)? {
            return Ok(Vec::new());
        }
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        let mut stmt = self
            .tx
            .prepare_cached(
                "SELECT seq, entry FROM tokenvault_audit WHERE seq > ?1 OR ?1 = 0 ORDER BY seq",
            )
            .map_err(sql_error)?;
        let rows = stmt
            .query_map(params![after], |row| {
                // Whatever was put in the column is handed over as bytes (a value of another
                // type as none): the vault names the entry that does not check, rather than
                // the whole read failing on one planted value.
                let entry = match row.get_ref(1)? {
                    ValueRef::Blob(b) | ValueRef::Text(b) => b.to_vec(),
                    _ => Vec::new(),
                };
                Ok((row.get::<_, i64>(0)?, entry))
            })
            .map_err(sql_error)?;
        // A negative number (planted: the vault writes none) is handed over as its
        // two's-complement `u64`, beyond any count the header can hold: the vault names it.
        rows.map(|row| {
            let (seq, entry) = row.map_err(sql_error)?;
            Ok(AuditRow {
                seq: seq.cast_unsigned(),
                entry,
            })
        })
        .collect()
    }

    fn audit_clear(&mut self) -> Result<(), BackendError> {
        if !audit_table_exists(self.tx)? {
            return Ok(());
        }
        self.tx
            .execute("DELETE FROM tokenvault_audit", [])
            .map(drop)
            .map_err(sql_error)
    }
}

fn audit_table_exists(conn: &Connection) -> Result<bool, BackendError> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tokenvault_audit')",
    )
    .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
    .map_err(sql_error)
}

impl Backend for SqliteBackend {
    fn read_header(&self) -> Result<Option<Vec<u8>>, BackendError> {
        read_header(&self.lock())
    }

    fn get(&self, id: &str) -> Result<Option<StoredRecord>, BackendError> {
        get(&self.lock(), id)
    }

    fn find_by_tag(
        &self,
        field: LookupField,
        tag: &Tag,
    ) -> Result<Option<StoredRecord>, BackendError> {
        find_by_tag(&self.lock(), field, tag)
    }

    fn list(&self) -> Result<Vec<StoredRecord>, BackendError> {
        list(&self.lock())
    }

    fn scan(
        &self,
        with_tags: bool,
        visit: &mut dyn FnMut(RecordRef<'_>) -> Result<(), BackendError>,
    ) -> Result<(), BackendError> {
        scan(&self.lock(), with_tags, visit)
    }

    fn lock(&self, name: &str, timeout: Duration) -> Result<Box<dyn HeldLock>, BackendError> {
        super::lockfile::lock(&self.path, name, timeout)
    }

    fn prepare_audit(&self) -> Result<(), BackendError> {
        self.lock()
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS tokenvault_audit (
                     seq INTEGER PRIMARY KEY NOT NULL, entry BLOB NOT NULL)",
            )
            .map_err(sql_error)
    }

    fn transact(&self, step: &mut dyn FnMut(&mut dyn Transaction) -> Result<()>) -> Result<()> {
        let mut conn = self.lock();
        // IMMEDIATE takes the write lock up front: a deferred transaction that later upgrades
        // fails with SQLITE_BUSY at once instead of waiting out the busy timeout.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_error)?;
        step(&mut SqliteTransaction { tx: &tx })?; // dropping `tx` on error rolls back
        tx.commit().map_err(sql_error)?;
        Ok(())
    }
}
