//! In-memory backend: for tests and short-lived processes. Nothing survives the process.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{AuditRow, Backend, HeldLock, LookupField, RecordRef, StoredRecord, Tag, Transaction};
use crate::store::{BackendError, BackendErrorKind, Result};

/// Keeps sealed records in a map behind one mutex; a transaction holds the mutex throughout
/// and undoes its writes if the step fails.
#[derive(Default)]
pub struct MemoryBackend {
    state: Mutex<State>,
    names: Arc<NamedLocks>,
}

/// The names locked through [`Backend::lock`], within this process.
#[derive(Default)]
struct NamedLocks {
    held: Mutex<HashSet<String>>,
    released: Condvar,
}

struct NamedLock {
    locks: Arc<NamedLocks>,
    name: String,
}

impl HeldLock for NamedLock {}

impl Drop for NamedLock {
    fn drop(&mut self) {
        self.locks
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.name);
        self.locks.released.notify_all();
    }
}

/// Records, header and tag index; shared with the file backend, which persists it.
#[derive(Default, Clone)]
pub(super) struct State {
    pub(super) header: Option<Vec<u8>>,
    /// By id. A hash map, not a B-tree: a lookup is one probe instead of a dozen string
    /// comparisons that each miss the cache; `sorted()` gives the by-id order when needed.
    pub(super) records: HashMap<String, StoredRecord>,
    index: [HashMap<Tag, String>; 4],
    /// The audit log, by sequence number.
    pub(super) audit: BTreeMap<u64, Vec<u8>>,
}

impl MemoryBackend {
    /// An empty backend (no store created yet).
    pub fn new() -> Self {
        Self::default()
    }

    fn guard(&self) -> MutexGuard<'_, State> {
        // A panic inside a step unwinds through the transaction, whose drop restores the state
        // (see `MemoryTransaction`), so a poisoned mutex still guards a consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Every record, by id (the order `Backend::list` promises).
    pub(super) fn sorted(&self) -> Vec<&StoredRecord> {
        let mut records: Vec<&StoredRecord> = self.records.values().collect();
        records.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        records
    }

    /// [`Backend::scan`] over the records, in hash-map order.
    pub(super) fn scan(
        &self,
        with_tags: bool,
        visit: &mut dyn FnMut(RecordRef<'_>) -> Result<(), BackendError>,
    ) -> Result<(), BackendError> {
        for record in self.records.values() {
            visit(RecordRef::of(record, with_tags))?;
        }
        Ok(())
    }

    /// The audit entries numbered above `after`, in order.
    pub(super) fn audit_after(&self, after: u64) -> Vec<AuditRow> {
        let first = match after {
            0 => 0, // every entry, a planted number 0 included
            _ => match after.checked_add(1) {
                Some(first) => first,
                None => return Vec::new(),
            },
        };
        self.audit
            .range(first..)
            .map(|(&seq, entry)| AuditRow {
                seq,
                entry: entry.clone(),
            })
            .collect()
    }

    pub(super) fn find(&self, field: LookupField, tag: &Tag) -> Option<StoredRecord> {
        let id = self.index[field.index()].get(tag)?;
        self.records.get(id).cloned()
    }

    fn remove(&mut self, id: &str) -> Option<StoredRecord> {
        let old = self.records.remove(id)?;
        for (field, tag) in old.tags.iter() {
            self.index[field.index()].remove(tag);
        }
        Some(old)
    }

    pub(super) fn insert(
        &mut self,
        record: StoredRecord,
    ) -> Result<Option<StoredRecord>, BackendError> {
        for (field, tag) in record.tags.iter() {
            if let Some(owner) = self.index[field.index()].get(tag)
                && *owner != record.id
            {
                return Err(BackendError::new(
                    crate::BackendErrorKind::Conflict,
                    format!("{field} tag already used by record {owner:?}"),
                ));
            }
        }
        let old = self.remove(&record.id);
        for (field, tag) in record.tags.iter() {
            self.index[field.index()].insert(*tag, record.id.clone());
        }
        self.records.insert(record.id.clone(), record);
        Ok(old)
    }
}

/// Undo log entry: how to restore what a write replaced.
enum Undo {
    Header(Option<Vec<u8>>),
    Record {
        id: String,
        old: Option<StoredRecord>,
    },
    All(Box<State>),
    AuditAppended(u64),
    AuditCleared(BTreeMap<u64, Vec<u8>>),
}

/// A transaction over the state: every write is logged, and dropping the transaction without
/// [`commit`](Self::commit) undoes them all. Undo on drop (not on an `Err` path only) is what
/// makes a panicking step or persist leave the state as it was, as a rusqlite transaction does.
struct MemoryTransaction<'a> {
    state: &'a mut State,
    undo: Vec<Undo>,
}

impl MemoryTransaction<'_> {
    fn commit(mut self) {
        self.undo.clear();
    }
}

impl Drop for MemoryTransaction<'_> {
    fn drop(&mut self) {
        while let Some(undo) = self.undo.pop() {
            match undo {
                Undo::Header(old) => self.state.header = old,
                Undo::Record { id, old } => {
                    self.state.remove(&id);
                    if let Some(old) = old {
                        // Undone in reverse order, each restore lands in the state it was taken
                        // from, where its tags were unique: it cannot conflict. (No panic here:
                        // this may run while a panic unwinds.)
                        let _ = self.state.insert(old);
                    }
                }
                Undo::All(old) => *self.state = *old,
                Undo::AuditAppended(seq) => {
                    self.state.audit.remove(&seq);
                }
                Undo::AuditCleared(old) => self.state.audit = old,
            }
        }
    }
}

impl Transaction for MemoryTransaction<'_> {
    fn header(&mut self) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.state.header.clone())
    }

    fn put_header(&mut self, header: &[u8]) -> Result<(), BackendError> {
        let old = self.state.header.replace(header.to_vec());
        self.undo.push(Undo::Header(old));
        Ok(())
    }

    fn get(&mut self, id: &str) -> Result<Option<StoredRecord>, BackendError> {
        Ok(self.state.records.get(id).cloned())
    }

    fn find_by_tag(
        &mut self,
        field: LookupField,
        tag: &Tag,
    ) -> Result<Option<StoredRecord>, BackendError> {
        Ok(self.state.find(field, tag))
    }

    fn list(&mut self) -> Result<Vec<StoredRecord>, BackendError> {
        Ok(self.state.sorted().into_iter().cloned().collect())
    }

    fn put(&mut self, record: StoredRecord) -> Result<(), BackendError> {
        let id = record.id.clone();
        let old = self.state.insert(record)?;
        self.undo.push(Undo::Record { id, old });
        Ok(())
    }

    fn delete(&mut self, id: &str) -> Result<bool, BackendError> {
        let old = self.state.remove(id);
        let existed = old.is_some();
        self.undo.push(Undo::Record {
            id: id.to_owned(),
            old,
        });
        Ok(existed)
    }

    fn delete_all(&mut self) -> Result<(), BackendError> {
        // The undo snapshot is the whole state, header and log included; only the records go.
        let old = std::mem::take(self.state);
        self.state.header.clone_from(&old.header);
        self.state.audit.clone_from(&old.audit);
        self.undo.push(Undo::All(Box::new(old)));
        Ok(())
    }

    fn audit_append(&mut self, seq: u64, entry: &[u8]) -> Result<(), BackendError> {
        if self.state.audit.contains_key(&seq) {
            return Err(BackendError::new(
                BackendErrorKind::Conflict,
                format!("audit entry {seq} already exists"),
            ));
        }
        self.state.audit.insert(seq, entry.to_vec());
        self.undo.push(Undo::AuditAppended(seq));
        Ok(())
    }

    fn audit_read(&mut self, after: u64) -> Result<Vec<AuditRow>, BackendError> {
        Ok(self.state.audit_after(after))
    }

    fn audit_clear(&mut self) -> Result<(), BackendError> {
        let old = std::mem::take(&mut self.state.audit);
        self.undo.push(Undo::AuditCleared(old));
        Ok(())
    }
}

/// Runs `step` on `state`, then `persist`; if either fails or panics, every write of `step` is
/// undone.
pub(super) fn transact_then(
    state: &mut State,
    step: &mut dyn FnMut(&mut dyn Transaction) -> Result<()>,
    persist: &mut dyn FnMut(&State) -> Result<()>,
) -> Result<()> {
    let mut tx = MemoryTransaction {
        state,
        undo: Vec::new(),
    };
    // On an error, or a panic unwinding through here, dropping `tx` undoes every write.
    step(&mut tx).and_then(|()| persist(tx.state))?;
    tx.commit();
    Ok(())
}

impl Backend for MemoryBackend {
    fn read_header(&self) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.guard().header.clone())
    }

    fn get(&self, id: &str) -> Result<Option<StoredRecord>, BackendError> {
        Ok(self.guard().records.get(id).cloned())
    }

    fn find_by_tag(
        &self,
        field: LookupField,
        tag: &Tag,
    ) -> Result<Option<StoredRecord>, BackendError> {
        Ok(self.guard().find(field, tag))
    }

    fn list(&self) -> Result<Vec<StoredRecord>, BackendError> {
        Ok(self.guard().sorted().into_iter().cloned().collect())
    }

    fn scan(
        &self,
        with_tags: bool,
        visit: &mut dyn FnMut(RecordRef<'_>) -> Result<(), BackendError>,
    ) -> Result<(), BackendError> {
        self.guard().scan(with_tags, visit)
    }

    fn transact(&self, step: &mut dyn FnMut(&mut dyn Transaction) -> Result<()>) -> Result<()> {
        transact_then(&mut self.guard(), step, &mut |_| Ok(()))
    }

    fn prepare_audit(&self) -> Result<(), BackendError> {
        Ok(())
    }

    fn lock(&self, name: &str, timeout: Duration) -> Result<Box<dyn HeldLock>, BackendError> {
        // A timeout past what the clock can represent waits without a deadline.
        let deadline = Instant::now().checked_add(timeout);
        let mut held = self
            .names
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while held.contains(name) {
            let left = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                return Err(BackendError::new(
                    BackendErrorKind::Busy,
                    "the lock was held past the timeout",
                ));
            }
            held = self
                .names
                .released
                .wait_timeout(held, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        held.insert(name.to_owned());
        Ok(Box::new(NamedLock {
            locks: self.names.clone(),
            name: name.to_owned(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::LookupTags;
    use crate::store::Error;

    fn rec(id: &str, tag: u8) -> StoredRecord {
        let mut tags = LookupTags::default();
        tags.0[0] = Some(Tag([tag; 32]));
        StoredRecord {
            id: id.into(),
            tags,
            sealed: vec![tag],
        }
    }

    #[test]
    fn failed_step_rolls_back_every_write() {
        let b = MemoryBackend::new();
        b.transact(&mut |tx| {
            tx.put_header(b"h1")?;
            Ok(tx.put(rec("a", 1))?)
        })
        .unwrap();
        let err = b.transact(&mut |tx| {
            tx.put_header(b"h2")?;
            tx.put(rec("a", 2))?;
            tx.put(rec("b", 3))?;
            tx.delete("a")?;
            tx.delete_all()?;
            Err(Error::Random)
        });
        assert!(matches!(err, Err(Error::Random)));
        assert_eq!(b.read_header().unwrap().as_deref(), Some(&b"h1"[..]));
        assert_eq!(b.list().unwrap(), vec![rec("a", 1)]);
        assert_eq!(
            b.find_by_tag(LookupField::UserName, &Tag([1; 32])).unwrap(),
            Some(rec("a", 1))
        );
        assert_eq!(
            b.find_by_tag(LookupField::UserName, &Tag([2; 32])).unwrap(),
            None
        );
    }

    #[test]
    fn failed_delete_all_keeps_header_and_records() {
        let b = MemoryBackend::new();
        b.transact(&mut |tx| {
            tx.put_header(b"h1")?;
            Ok(tx.put(rec("a", 1))?)
        })
        .unwrap();
        let err = b.transact(&mut |tx| {
            tx.delete_all()?;
            assert_eq!(
                tx.header()?.as_deref(),
                Some(&b"h1"[..]),
                "delete_all keeps the header"
            );
            Err(Error::Random)
        });
        assert!(err.is_err());
        assert_eq!(b.read_header().unwrap().as_deref(), Some(&b"h1"[..]));
        assert_eq!(b.list().unwrap(), vec![rec("a", 1)]);
    }

    #[test]
    fn replacing_a_record_moves_its_tags_and_duplicates_are_refused() {
        let b = MemoryBackend::new();
        b.transact(&mut |tx| Ok(tx.put(rec("a", 1))?)).unwrap();
        b.transact(&mut |tx| Ok(tx.put(rec("a", 2))?)).unwrap();
        assert_eq!(
            b.find_by_tag(LookupField::UserName, &Tag([1; 32])).unwrap(),
            None
        );
        let dup = b.transact(&mut |tx| tx.put(rec("b", 2)).map_err(Into::into));
        assert!(
            matches!(dup, Err(Error::Backend(e)) if e.kind() == crate::BackendErrorKind::Conflict)
        );
    }
}
