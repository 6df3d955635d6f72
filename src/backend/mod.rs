//! Storage backends: where sealed records live. A backend never sees plaintext.
//!
//! # Writing a backend
//! A backend stores three things and interprets none of them:
//! - the **header**: one opaque byte string (absent until the store is created);
//! - **records**: for each record id, the sealed bytes and up to four blind-index [`Tag`]s
//!   ([`LookupTags`], one per [`LookupField`]);
//! - an **index** from `(field, tag)` to record id, so [`Backend::find_by_tag`] is one indexed
//!   lookup (a hash map, a B-tree, an SQL index — not a scan).
//!
//! It must provide one atomic step, [`Backend::transact`]: the closure's reads see one
//! consistent state, no other writer (thread or process) interleaves, and its writes land all
//! together when it returns `Ok` and not at all when it returns `Err` or the process dies. The
//! vault does every match-then-write inside it, which is how `save_token` avoids duplicates and
//! lost updates. Reads outside a transaction ([`Backend::get`], [`Backend::find_by_tag`],
//! [`Backend::list`], [`Backend::read_header`]) need only see some committed state.
//!
//! The vault keeps tag values unique per field (it checks inside the transaction before it
//! writes); a backend may enforce that too (SQL: a unique index per tag column), and should
//! report a violation as [`BackendErrorKind::Conflict`](crate::BackendErrorKind::Conflict).
//! Errors are [`BackendError`]s with a portable kind; their messages may be shown to users, so
//! they must not include record bytes.
//!
//! # The audit log (optional)
//! A store with its audit trail on also keeps an append-only log: entries numbered 1, 2, 3, …
//! each an opaque byte string, appended inside the same transaction as the change it records
//! ([`Transaction::audit_append`]). A backend that keeps no log leaves the four audit methods
//! at their defaults ([`NotSupported`](crate::BackendErrorKind::NotSupported)); the vault then
//! refuses to turn the trail on and works as before. Log storage is created by
//! [`Backend::prepare_audit`], outside any transaction (MySQL commits on DDL), only when a
//! store turns its trail on: stores without one never need the privilege to create it.
//!
//! [`testing::Instrumented`] wraps any backend to record what it is given and inject failures.

mod file;
mod lockfile;
mod memory;
#[cfg(feature = "mysql")]
pub(crate) mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
mod private_files;
#[cfg(any(feature = "mysql", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
pub mod testing;

#[cfg(feature = "mysql")]
pub use self::mysql::{MysqlBackend, SCHEMA_VERSION as MYSQL_SCHEMA_VERSION};
pub use file::FileBackend;
pub use memory::MemoryBackend;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresBackend, SCHEMA_VERSION as POSTGRES_SCHEMA_VERSION};
pub use private_files::TEMP_SUFFIX;
#[cfg(feature = "sqlite")]
pub use sqlite::{SCHEMA_VERSION as SQLITE_SCHEMA_VERSION, SqliteBackend};

pub use crate::crypto::Tag;
pub use crate::matching::LookupField;
use std::time::Duration;

use crate::store::{BackendError, Result};

/// The blind-index tags of one record, one slot per [`LookupField`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LookupTags(pub [Option<Tag>; 4]);

impl LookupTags {
    /// The tag of `field`, if the record has a value there.
    pub fn get(&self, field: LookupField) -> Option<&Tag> {
        self.0[field.index()].as_ref()
    }

    /// Every `(field, tag)` the record has.
    pub fn iter(&self) -> impl Iterator<Item = (LookupField, &Tag)> {
        LookupField::ALL
            .into_iter()
            .filter_map(|f| self.get(f).map(|t| (f, t)))
    }
}

/// One record as a backend stores it: id, lookup tags and sealed bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// The record id (not secret; chosen by the vault or the application).
    pub id: String,
    /// Blind-index tags.
    pub tags: LookupTags,
    /// The sealed record (see SECURITY.md for the layout). Opaque to the backend.
    pub sealed: Vec<u8>,
}

/// One record as [`Backend::scan`] hands it over, borrowed from the backend for the call.
#[derive(Clone, Copy, Debug)]
pub struct RecordRef<'a> {
    /// The record id.
    pub id: &'a str,
    /// Blind-index tags, if the scan was asked for them (else empty).
    pub tags: LookupTags,
    /// The sealed record.
    pub sealed: &'a [u8],
}

impl<'a> RecordRef<'a> {
    /// `record`, borrowed, with its tags if `with_tags`.
    pub fn of(record: &'a StoredRecord, with_tags: bool) -> Self {
        Self {
            id: &record.id,
            tags: if with_tags {
                record.tags
            } else {
                LookupTags::default()
            },
            sealed: &record.sealed,
        }
    }
}

/// Storage for one store: header, sealed records and their tag index.
///
/// Object safe: `Box<dyn Backend>` and `Arc<dyn Backend>` are backends too.
pub trait Backend: Send + Sync {
    /// The header bytes, or `None` if no store has been created here.
    ///
    /// # Errors
    /// A [`BackendError`] if storage cannot be read.
    fn read_header(&self) -> Result<Option<Vec<u8>>, BackendError>;

    /// The record with this id.
    ///
    /// # Errors
    /// A [`BackendError`] if storage cannot be read.
    fn get(&self, id: &str) -> Result<Option<StoredRecord>, BackendError>;

    /// The record whose tag for `field` is `tag` (one indexed lookup).
    ///
    /// # Errors
    /// A [`BackendError`] if storage cannot be read.
    fn find_by_tag(
        &self,
        field: LookupField,
        tag: &Tag,
    ) -> Result<Option<StoredRecord>, BackendError>;

    /// Every record, in a stable order (by id).
    ///
    /// # Errors
    /// A [`BackendError`] if storage cannot be read.
    fn list(&self) -> Result<Vec<StoredRecord>, BackendError>;

    /// Calls `visit` with every record, in whatever order the storage keeps them (a whole-store
    /// read: `get_tokens`, `verify`, `rotate`, exports). A record is borrowed for the call;
    /// `with_tags`: whether its lookup tags are read too (else [`RecordRef::tags`] is empty).
    /// The scan sees one committed state where the storage allows (SQLite: one read
    /// transaction), and may hold the backend's lock meanwhile: `visit` must not call back
    /// into the backend (the vault's visitor only copies). It hands over exactly the records
    /// [`list`](Self::list) returns (the conformance suite checks it). The default goes through
    /// `list`; a backend overrides it to avoid copying and sorting every record.
    ///
    /// # Errors
    /// A [`BackendError`] if storage cannot be read, or the first error `visit` returns (the
    /// scan stops there).
    fn scan(
        &self,
        with_tags: bool,
        visit: &mut dyn FnMut(RecordRef<'_>) -> Result<(), BackendError>,
    ) -> Result<(), BackendError> {
        for record in self.list()? {
            visit(RecordRef::of(&record, with_tags))?;
        }
        Ok(())
    }

    /// Runs `step` as one atomic, isolated read-modify-write (see the module docs). Returns
    /// what `step` returned; on `Err` (from `step` or from committing) nothing was written.
    ///
    /// # Errors
    /// The closure's error, or a [`BackendError`] if the transaction cannot begin or commit.
    fn transact(&self, step: &mut dyn FnMut(&mut dyn Transaction) -> Result<()>) -> Result<()>;

    /// Takes the exclusive lock `name` (e.g. one record's refresh), shared by every process
    /// using this store, waiting at most `timeout`; it is released when the returned value is
    /// dropped, and by the OS or server when the holder dies. Used by
    /// [`EncryptedStore::refresh_with`](crate::EncryptedStore::refresh_with) so that one
    /// process, not all, spends a refresh token. Optional: the default is
    /// [`BackendErrorKind::NotSupported`](crate::BackendErrorKind::NotSupported).
    ///
    /// # Errors
    /// [`BackendErrorKind::Busy`](crate::BackendErrorKind::Busy) when `timeout` passes; I/O or
    /// connection errors.
    fn lock(&self, name: &str, timeout: Duration) -> Result<Box<dyn HeldLock>, BackendError> {
        let _ = (name, timeout);
        Err(BackendError::new(
            crate::BackendErrorKind::NotSupported,
            "this backend has no cross-process locks",
        ))
    }

    /// Creates the audit log's storage if it does not exist yet (a table, a file section);
    /// idempotent, safe while other processes use the store. Called outside any transaction
    /// when a store turns its audit trail on. Optional: the default is
    /// [`NotSupported`](crate::BackendErrorKind::NotSupported), and then every audit method is.
    ///
    /// # Errors
    /// [`NotSupported`](crate::BackendErrorKind::NotSupported) for a backend without a log;
    /// storage errors (e.g. no privilege to create a table).
    fn prepare_audit(&self) -> Result<(), BackendError> {
        Err(no_audit_log())
    }
}

/// The error of a backend that keeps no audit log.
fn no_audit_log() -> BackendError {
    BackendError::new(
        crate::BackendErrorKind::NotSupported,
        "this backend keeps no audit log",
    )
}

/// One audit-log entry as a backend keeps it: its sequence number and opaque bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    /// 1 for the first entry, then one more for each.
    pub seq: u64,
    /// The entry (its format and MAC are the vault's; see SECURITY.md).
    pub entry: Vec<u8>,
}

/// The one verdict every SQL backend gives on the schema version it finds: `supported` is
/// fine; a newer one is refused as [`NotSupported`](crate::BackendErrorKind::NotSupported)
/// (upgrade tokenvault); anything else is [`Corrupt`](crate::BackendErrorKind::Corrupt).
/// Older versions a backend can migrate are handled by it before calling this.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub(crate) fn check_schema_version(found: i64, supported: i64) -> Result<(), BackendError> {
    use crate::BackendErrorKind;
    match found {
        v if v == supported => Ok(()),
        v if v > supported => Err(BackendError::new(
            BackendErrorKind::NotSupported,
            format!(
                "store schema version {v} is newer than this build supports ({supported}); upgrade tokenvault"
            ),
        )),
        v => Err(BackendError::new(
            BackendErrorKind::Corrupt,
            format!("unknown store schema version {v}"),
        )),
    }
}

/// A lock held until dropped (see [`Backend::lock`]).
pub trait HeldLock: Send {}

/// The operations available inside [`Backend::transact`]. Reads see the transaction's own
/// writes.
pub trait Transaction {
    /// The header bytes, or `None` before the store is created.
    ///
    /// # Errors
    /// A [`BackendError`] on a storage failure.
    fn header(&mut self) -> Result<Option<Vec<u8>>, BackendError>;

    /// Replaces the header.
    ///
    /// # Errors
    /// A [`BackendError`] on a storage failure.
    fn put_header(&mut self, header: &[u8]) -> Result<(), BackendError>;

    /// The record with this id.
    ///
    /// # Errors
    /// A [`BackendError`] on a storage failure.
    fn get(&mut self, id: &str) -> Result<Option<StoredRecord>, BackendError>;

    /// The record whose tag for `field` is `tag`.
    ///
    /// # Errors
    /// A [`BackendError`] on a storage failure.
    fn find_by_tag(
        &mut self,
        field: LookupField,
        tag: &Tag,
    ) -> Result<Option<StoredRecord>, BackendError>;

    /// Every record, by id.
    ///
    /// # Errors
    /// A [`BackendError`] on a storage failure.
    fn list(&mut self) -> Result<Vec<StoredRecord>, BackendError>;

    /// Inserts the record, or replaces the record with the same id (tags included).
    ///
    /// # Errors
    /// A [`BackendError`] on a storage failure or a tag uniqueness violation.
    fn put(&mut self, record: StoredRecord) -> Result<(), BackendError>;

    /// Deletes the record with this id; `false` if there was none.
    ///
    /// # Errors
    /// A [`BackendError`] on a storage failure.
    fn delete(&mut self, id: &str) -> Result<bool, BackendError>;

    /// Deletes every record (the header and the audit log stay).
    ///
    /// # Errors
    /// A [`BackendError`] on a storage failure.
    fn delete_all(&mut self) -> Result<(), BackendError>;

    /// Appends an audit-log entry numbered `seq`. A `seq` already in the log is a
    /// [`Conflict`](crate::BackendErrorKind::Conflict) (the vault numbers entries from the
    /// header, so a conflict means the log and the header disagree). Optional, as
    /// [`Backend::prepare_audit`].
    ///
    /// # Errors
    /// [`NotSupported`](crate::BackendErrorKind::NotSupported), `Conflict`, storage failures.
    fn audit_append(&mut self, seq: u64, entry: &[u8]) -> Result<(), BackendError> {
        let _ = (seq, entry);
        Err(no_audit_log())
    }

    /// The audit-log entries numbered above `after`, by number; `after = 0`: every entry,
    /// including any numbered 0 (or, in a signed SQL column, below: handed over as the
    /// two's-complement `u64`), which no build writes but storage may hold. A log whose
    /// storage was never prepared reads as empty.
    ///
    /// # Errors
    /// [`NotSupported`](crate::BackendErrorKind::NotSupported), storage failures.
    fn audit_read(&mut self, after: u64) -> Result<Vec<AuditRow>, BackendError> {
        let _ = after;
        Err(no_audit_log())
    }

    /// Deletes every audit-log entry (a rekey re-MACs the whole log under its new key, as one
    /// clear and appends in one transaction).
    ///
    /// # Errors
    /// [`NotSupported`](crate::BackendErrorKind::NotSupported), storage failures.
    fn audit_clear(&mut self) -> Result<(), BackendError> {
        Err(no_audit_log())
    }
}

macro_rules! forward_backend {
    ($($wrapper:ty),*) => {$(
        impl<B: Backend + ?Sized> Backend for $wrapper {
            fn read_header(&self) -> Result<Option<Vec<u8>>, BackendError> {
                (**self).read_header()
            }
            fn get(&self, id: &str) -> Result<Option<StoredRecord>, BackendError> {
                (**self).get(id)
            }
            fn find_by_tag(&self, field: LookupField, tag: &Tag) -> Result<Option<StoredRecord>, BackendError> {
                (**self).find_by_tag(field, tag)
            }
            fn list(&self) -> Result<Vec<StoredRecord>, BackendError> {
                (**self).list()
            }
            fn scan(&self, with_tags: bool, visit: &mut dyn FnMut(RecordRef<'_>) -> Result<(), BackendError>) -> Result<(), BackendError> {
                (**self).scan(with_tags, visit)
            }
            fn transact(&self, step: &mut dyn FnMut(&mut dyn Transaction) -> Result<()>) -> Result<()> {
                (**self).transact(step)
            }
            fn lock(&self, name: &str, timeout: Duration) -> Result<Box<dyn HeldLock>, BackendError> {
                (**self).lock(name, timeout)
            }
            fn prepare_audit(&self) -> Result<(), BackendError> {
                (**self).prepare_audit()
            }
        }
    )*};
}

forward_backend!(Box<B>, std::sync::Arc<B>, &B);
