//! A backend wrapper for tests of the vault and of other backends: it records every byte
//! handed to storage and can make transactions fail.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{AuditRow, Backend, LookupField, RecordRef, StoredRecord, Tag, Transaction};
use crate::store::{BackendError, BackendErrorKind, Result};

/// Wraps a backend, recording what it is given and injecting failures on request.
pub struct Instrumented<B> {
    inner: B,
    written: Mutex<Vec<u8>>,
    failing_transactions: AtomicUsize,
}

impl<B: Backend> Instrumented<B> {
    /// Wraps `inner`.
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            written: Mutex::new(Vec::new()),
            failing_transactions: AtomicUsize::new(0),
        }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Everything written so far (headers, ids, tags, sealed bytes), concatenated.
    pub fn written_bytes(&self) -> Vec<u8> {
        self.written.lock().expect("not poisoned").clone()
    }

    /// Makes the next `n` transactions fail after their step ran, as a commit failure would
    /// (a full disk, a lost connection): the inner backend rolls them back.
    pub fn fail_next_transactions(&self, n: usize) {
        self.failing_transactions.store(n, Ordering::SeqCst);
    }

    fn record(&self, bytes: &[u8]) {
        self.written
            .lock()
            .expect("not poisoned")
            .extend_from_slice(bytes);
    }
}

struct Recording<'a, B> {
    inner: &'a mut dyn Transaction,
    owner: &'a Instrumented<B>,
}

impl<B: Backend> Transaction for Recording<'_, B> {
    fn header(&mut self) -> Result<Option<Vec<u8>>, BackendError> {
        self.inner.header()
    }
    fn put_header(&mut self, header: &[u8]) -> Result<(), BackendError> {
        self.owner.record(header);
        self.inner.put_header(header)
    }
    fn get(&mut self, id: &str) -> Result<Option<StoredRecord>, BackendError> {
        self.inner.get(id)
    }
    fn find_by_tag(
        &mut self,
        field: LookupField,
        tag: &Tag,
    ) -> Result<Option<StoredRecord>, BackendError> {
        self.inner.find_by_tag(field, tag)
    }
    fn list(&mut self) -> Result<Vec<StoredRecord>, BackendError> {
        self.inner.list()
    }
    fn put(&mut self, record: StoredRecord) -> Result<(), BackendError> {
        self.owner.record(record.id.as_bytes());
        for (_, tag) in record.tags.iter() {
            self.owner.record(tag.as_bytes());
        }
        self.owner.record(&record.sealed);
        self.inner.put(record)
    }
    fn delete(&mut self, id: &str) -> Result<bool, BackendError> {
        self.inner.delete(id)
    }
    fn delete_all(&mut self) -> Result<(), BackendError> {
        self.inner.delete_all()
    }
    fn audit_append(&mut self, seq: u64, entry: &[u8]) -> Result<(), BackendError> {
        self.owner.record(entry);
        self.inner.audit_append(seq, entry)
    }
    fn audit_read(&mut self, after: u64) -> Result<Vec<AuditRow>, BackendError> {
        self.inner.audit_read(after)
    }
    fn audit_clear(&mut self) -> Result<(), BackendError> {
        self.inner.audit_clear()
    }
}

impl<B: Backend> Backend for Instrumented<B> {
    fn read_header(&self) -> Result<Option<Vec<u8>>, BackendError> {
        self.inner.read_header()
    }
    fn get(&self, id: &str) -> Result<Option<StoredRecord>, BackendError> {
        self.inner.get(id)
    }
    fn find_by_tag(
        &self,
        field: LookupField,
        tag: &Tag,
    ) -> Result<Option<StoredRecord>, BackendError> {
        self.inner.find_by_tag(field, tag)
    }
    fn list(&self) -> Result<Vec<StoredRecord>, BackendError> {
        self.inner.list()
    }
    fn scan(
        &self,
        with_tags: bool,
        visit: &mut dyn FnMut(RecordRef<'_>) -> Result<(), BackendError>,
    ) -> Result<(), BackendError> {
        self.inner.scan(with_tags, visit)
    }
    fn prepare_audit(&self) -> Result<(), BackendError> {
        self.inner.prepare_audit()
    }
    fn transact(&self, step: &mut dyn FnMut(&mut dyn Transaction) -> Result<()>) -> Result<()> {
        let fail = self
            .failing_transactions
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        self.inner.transact(&mut |tx| {
            step(&mut Recording {
                inner: tx,
                owner: self,
            })?;
            if fail {
                return Err(
                    BackendError::new(BackendErrorKind::Io, "injected commit failure").into(),
                );
            }
            Ok(())
        })
    }
}
