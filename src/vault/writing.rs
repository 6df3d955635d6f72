//! Every write goes through here: inside one backend transaction, the records written, the
//! header that summarises them (write counter, record-set summary, seal counter) and, when the
//! audit trail is on, the log entries that record them change together, so no crash or
//! concurrent writer can leave them out of step.

use std::sync::Arc;

use super::audit::{self, AuditMode, AuditOutcome, Event, op};
use super::freshness::RecordSet;
use super::{EncryptedStore, HeaderState, SEAL_LIMIT, SEAL_WARNING};
use crate::backend::{Backend, StoredRecord, Transaction};
use crate::format::header::{Freshness, Header};
use crate::store::{Error, Result};

/// The header a write transaction will leave, built up as records are written.
pub(super) struct Write {
    pub header: Header,
    set: RecordSet,
    /// The operation, as the audit log names it.
    operation: &'static str,
    /// Whether this write appends to the audit log.
    logging: bool,
    /// Its log entries so far.
    events: Vec<Event>,
    /// Records written or deleted.
    touched: u64,
}

/// A committed write's header, to become the handle's cached state.
pub(super) struct Written {
    bytes: Vec<u8>,
    header: Header,
    set: RecordSet,
    data_keys: Arc<std::collections::BTreeMap<u32, crate::crypto::AeadKey>>,
}

impl Write {
    /// Counts `n` seals of the active key: at most 2^32 per key (random 96-bit nonces); from
    /// 2^31 on, the write warns once.
    pub fn take_seals(&mut self, n: u64) -> Result<()> {
        let active = self.header.active_key;
        let entry = self
            .header
            .key_mut(active)
            .expect("active key is in the header (checked at parse)");
        if SEAL_LIMIT.saturating_sub(entry.seals) < n {
            return Err(Error::SealLimitReached { key_id: active });
        }
        entry.seals += n;
        Ok(())
    }

    /// The summary of the records as this write leaves them (so far).
    pub fn record_set(&self) -> RecordSet {
        self.set
    }

    /// Queues an entry; it is appended by `finish_write` if this write logs (the header it
    /// began from has the trail on, or `log_anyway` was called).
    pub fn log(&mut self, event: Event) {
        self.events.push(event);
    }

    /// Whether this write appends to the log.
    pub fn logs(&self) -> bool {
        self.logging
    }

    /// Logs this write with `detail` even if the trail was off when it began (turning it on).
    pub fn log_anyway(&mut self, detail: &str) {
        self.logging = true;
        self.events.push(Event {
            operation: self.operation,
            record: None,
            outcome: AuditOutcome::Ok,
            detail: detail.to_owned(),
        });
    }

    /// Notes a record written or deleted: an entry of its own for the operations that name
    /// records (a save, a delete), a count for the others (a rotation re-seals every record).
    fn touch(&mut self, id: &str, detail: &str) {
        self.touched += 1;
        if self.logging && op::names_records(self.operation) {
            self.events.push(Event {
                operation: self.operation,
                record: Some(id.to_owned()),
                outcome: AuditOutcome::Ok,
                detail: detail.to_owned(),
            });
        }
    }
}

impl<B: Backend> EncryptedStore<B> {
    /// Begins a write of `operation` (named as the audit log names it) inside `tx` from
    /// `state` (the header `tx` read). A layout-version-1 header gets its record-set summary
    /// here, from every record: the upgrade to version 2.
    pub(super) fn begin_write(
        &self,
        tx: &mut dyn Transaction,
        state: &HeaderState,
        operation: &'static str,
    ) -> Result<Write> {
        let logging = state
            .header
            .audit
            .is_some_and(|a| AuditMode::from_code(a.mode) != AuditMode::Off);
        let mut write = Write {
            header: state.header.clone(),
            set: state.record_set.unwrap_or_default(),
            operation,
            logging,
            events: Vec::new(),
            touched: 0,
        };
        if state.record_set.is_none() {
            self.recount(tx, &mut write)?;
        }
        Ok(write)
    }

    /// Summarises the records as they are in `tx`, whatever the header said.
    pub(super) fn recount(&self, tx: &mut dyn Transaction, write: &mut Write) -> Result<u64> {
        let mut set = RecordSet::default();
        for r in tx.list()? {
            set.add(&self.freshness, &r.id, &r.sealed);
        }
        write.set = set;
        Ok(set.count)
    }

    /// Writes `record`, replacing `replaced` (the record stored under its id, if any).
    pub(super) fn put_record(
        &self,
        tx: &mut dyn Transaction,
        write: &mut Write,
        record: StoredRecord,
        replaced: Option<&StoredRecord>,
    ) -> Result<()> {
        debug_assert!(replaced.is_none_or(|r| r.id == record.id));
        if let Some(old) = replaced {
            write.set.remove(&self.freshness, &old.id, &old.sealed);
        }
        write.set.add(&self.freshness, &record.id, &record.sealed);
        write.touch(
            &record.id,
            if replaced.is_some() {
                "updated"
            } else {
                "inserted"
            },
        );
        tx.put(record)?;
        Ok(())
    }

    /// Deletes `record` (as read inside `tx`).
    pub(super) fn delete_record(
        &self,
        tx: &mut dyn Transaction,
        write: &mut Write,
        record: &StoredRecord,
    ) -> Result<()> {
        if tx.delete(&record.id)? {
            write
                .set
                .remove(&self.freshness, &record.id, &record.sealed);
            write.touch(&record.id, "");
        }
        Ok(())
    }

    /// Deletes every record.
    pub(super) fn delete_all_records(
        &self,
        tx: &mut dyn Transaction,
        write: &mut Write,
    ) -> Result<()> {
        if write.logging {
            for record in tx.list()? {
                write.touch(&record.id, "");
            }
        }
        tx.delete_all()?;
        write.set = RecordSet::default();
        Ok(())
    }

    /// Ends the write: the header, its write counter advanced and its summary sealed anew, is
    /// written inside `tx`. Returns what [`install`](Self::install) takes once committed.
    pub(super) fn finish_write(
        &self,
        tx: &mut dyn Transaction,
        state: &HeaderState,
        write: Write,
    ) -> Result<Written> {
        let Write {
            mut header,
            set,
            operation,
            logging,
            mut events,
            touched,
        } = write;
        if logging {
            if events.is_empty() {
                events.push(Event {
                    operation,
                    record: None,
                    outcome: AuditOutcome::Ok,
                    detail: if touched > 0 {
                        format!("{touched} record(s)")
                    } else {
                        String::new()
                    },
                });
            }
            let head = header
                .audit
                .as_mut()
                .expect("a write logs only with an audit head");
            audit::append(tx, self.audit_key.expose(), &self.store_id, head, &events)?;
        }
        if let Some(active) = header.key(header.active_key)
            && active.seals >= SEAL_WARNING
        {
            log::warn!(
                "data key {} has made {} of its 2^32 seals: rotate the data key (`tokenvault rotate`)",
                active.id,
                active.seals
            );
        }
        let writes = header
            .freshness
            .as_ref()
            .map_or(0, |f| f.writes)
            .checked_add(1)
            .ok_or(Error::Refused {
                reason: "the store's write counter is exhausted",
            })?;
        header.freshness = Some(Freshness {
            writes,
            record_set: set.seal(&self.freshness, &self.store_id, writes)?,
        });
        let bytes = header.write(self.header_mac_key.expose());
        tx.put_header(&bytes)?;
        Ok(Written {
            bytes,
            header,
            set,
            data_keys: state.data_keys.clone(),
        })
    }

    /// Makes a committed write's header the cached one (its data keys are those of the state
    /// it began from) and tells the witness.
    pub(super) fn install(&self, written: Written) -> Result<()> {
        let state = Arc::new(HeaderState {
            bytes: written.bytes,
            header: written.header,
            data_keys: written.data_keys,
            record_set: Some(written.set),
        });
        self.witness_saw(&state.header);
        self.cache(&state);
        Ok(())
    }

    /// Rewrites the header inside one transaction (slots, data keys); the new header is
    /// loaded again afterwards, as its keys may have changed.
    pub(super) fn update_header(
        &self,
        operation: &'static str,
        mutate: &mut dyn FnMut(&mut Header) -> Result<()>,
    ) -> Result<()> {
        let mut written = None;
        self.backend.transact(&mut |tx| {
            let state = self.state_in(tx)?;
            let mut write = self.begin_write(tx, &state, operation)?;
            mutate(&mut write.header)?;
            written = Some(self.finish_write(tx, &state, write)?);
            Ok(())
        })?;
        self.reload(written.expect("set by a committed step"))
    }

    /// [`install`](Self::install) for a write that changed the header's keys: its header is
    /// loaded again from its bytes.
    pub(super) fn reload(&self, written: Written) -> Result<()> {
        let state = Arc::new(self.load(written.bytes)?);
        self.witness_saw(&state.header);
        self.cache(&state);
        Ok(())
    }
}
