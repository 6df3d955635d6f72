//! Rekey (SECURITY.md §2, Rekey): revocation. A new store id, store key, data key and index key;
//! every record re-sealed and re-tagged; the slots made anew from the credentials given. After
//! it nothing derived from an old header or credential opens a current record.

use super::audit::{self, AuditMode, AuditOutcome, Event, op};
use super::freshness::{FreshnessKeys, RecordSet};
use super::sealing::{self, SealUnder};
use super::{EncryptedStore, tags_under, witness};
use crate::backend::Backend;
use crate::crypto::{Argon2Params, IndexKey, Key, label, random_array, role};
#[cfg(feature = "keychain")]
use crate::format::header::SlotKind;
use crate::format::header::{
    self, DataKeyEntry, Freshness, Header, MAX_PASSPHRASE_SLOTS, MAX_SLOTS,
};
use crate::format::hex;
use crate::keys::Credential;
use crate::store::{Error, Result};

/// What [`EncryptedStore::rekey`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RekeyReport {
    /// The store's new id (hex): its old id, keychain entry and witness are retired.
    pub store_id: String,
    /// Records re-sealed.
    pub resealed: usize,
    /// Key slots the store has now (one per credential given).
    pub slots: usize,
    /// The old store id's OS keychain entry could not be deleted (it opens nothing current;
    /// delete it with `keychain::delete_entry`).
    pub old_keychain_entry_kept: bool,
}

/// Checks the new credentials as `add_slot` would, before any KDF runs.
fn check_credentials(credentials: &[Credential]) -> Result<()> {
    let count = |kind: fn(&Credential) -> bool| credentials.iter().filter(|c| kind(c)).count();
    if credentials.is_empty() {
        return Err(Error::Refused {
            reason: "rekey needs at least one credential for the new key",
        });
    }
    if credentials.len() > MAX_SLOTS {
        return Err(Error::Refused {
            reason: "a store holds at most 32 key slots",
        });
    }
    if count(|c| matches!(c, Credential::Passphrase(_))) > MAX_PASSPHRASE_SLOTS {
        return Err(Error::Refused {
            reason: "a store holds at most 4 passphrase slots",
        });
    }
    #[cfg(feature = "keychain")]
    if count(|c| matches!(c, Credential::Keychain)) > 1 {
        return Err(Error::Refused {
            reason: "a keychain holds one key per store",
        });
    }
    Ok(())
}

impl<B: Backend> EncryptedStore<B> {
    /// Rekeys the store: revokes every old credential, header copy and key.
    ///
    /// The new slots (one per credential, in order; passphrases at Argon2id cost `argon2`)
    /// are made first, then every record is re-sealed and re-tagged and the header replaced in
    /// **one** transaction, calling `progress(done, total)` as records are re-sealed: a crash
    /// at any point leaves the store as it was (the old credentials open it, and the next call
    /// does it all), never half rekeyed. Writers wait for the transaction; readers see the old
    /// store until it commits. Handles opened before get [`Error::Rekeyed`]; this one is
    /// consumed and the rekeyed store returned. A keychain entry of the old store id on this
    /// machine is deleted, and a witness told that the old id is retired.
    ///
    /// # Errors
    /// [`Error::Refused`] for no credential or too many of a kind; Argon2id, keychain,
    /// storage and integrity errors (a record that does not open stops the rekey: run
    /// [`verify`](Self::verify)). On error nothing in the store changed.
    pub fn rekey(
        self,
        credentials: &[Credential],
        argon2: Argon2Params,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(Self, RekeyReport)> {
        check_credentials(credentials)?;
        let store_id: [u8; 16] = random_array()?;
        let store_key = Key::<role::Store>::random()?;
        let discard = || {
            credentials
                .iter()
                .for_each(|c| c.discard_new_slot(&store_id))
        };
        let mut slots = Vec::with_capacity(credentials.len());
        for (id, credential) in (1..).zip(credentials) {
            match credential.new_slot(id, &store_id, &store_key, argon2) {
                Ok(slot) => slots.push(slot),
                Err(e) => {
                    discard();
                    return Err(e);
                }
            }
        }
        let data_key = Key::<role::Data>::random()?;
        let data_aead = data_key.aead();
        let wrap_key = store_key.derive::<role::Data>(label::DATA_KEY_WRAP).aead();
        let index = IndexKey::new(&store_key);
        let freshness = FreshnessKeys::new(&store_key);
        let mac_key: Key<role::Data> = store_key.derive(label::HEADER_MAC);
        let audit_key: Key<role::Data> = store_key.derive(audit::CHAIN_LABEL);

        let mut written = None;
        let mut attempted = 0;
        let result = self.backend.transact(&mut |tx| {
            let state = self.state_in(tx)?;
            // A key id no old header has: a handle opened before meets a key it does not know
            // in every record, reads the header again and learns of the rekey.
            let key_id = super::next_id(state.header.keys.iter().map(|k| k.id))?;
            let under = SealUnder {
                store_id: &store_id,
                key_id,
                key: &data_aead,
            };
            let records = tx.list()?;
            let total = records.len();
            let mut set = RecordSet::default();
            for (done, old) in (1..).zip(&records) {
                let token = self.open_with(&state, old)?;
                let generation = sealing::next_generation(sealing::generation_of(old))?;
                let record = under.seal(&token, &old.id, tags_under(&index, &token), generation)?;
                set.add(&freshness, &record.id, &record.sealed);
                tx.put(record)?;
                progress(done, total);
            }
            let writes =
                witness::writes_of(&state.header)
                    .checked_add(1)
                    .ok_or(Error::Refused {
                        reason: "the store's write counter is exhausted",
                    })?;
            let mut header = Header {
                store_id,
                store_key_commitment: store_key.commitment(),
                slots: slots.clone(),
                keys: vec![DataKeyEntry {
                    id: key_id,
                    seals: total as u64,
                    commitment: data_key.commitment(),
                    wrapped: wrap_key
                        .wrap_key(&data_key, &header::data_key_ad(&store_id, key_id))?,
                }],
                active_key: key_id,
                freshness: None,
                audit: None,
            };
            header.freshness = Some(Freshness {
                writes,
                record_set: set.seal(&freshness, &store_id, writes)?,
            });
            if let Some(head) = &state.header.audit {
                // The log is re-chained under the new key (after its check under the old one),
                // and the rekey logged under it.
                let mut head = audit::rechain(
                    tx,
                    (self.audit_key.expose(), &self.store_id),
                    (audit_key.expose(), &store_id),
                    head,
                )?;
                if AuditMode::from_code(head.mode) != AuditMode::Off {
                    let event = Event {
                        operation: op::REKEY,
                        record: None,
                        outcome: AuditOutcome::Ok,
                        detail: format!("{total} record(s)"),
                    };
                    audit::append(tx, audit_key.expose(), &store_id, &mut head, &[event])?;
                }
                header.audit = Some(head);
            }
            let bytes = header.write(mac_key.expose());
            attempted = total;
            tx.put_header(&bytes)?;
            written = Some((bytes, total, Some(state.header.clone())));
            Ok(())
        });
        if let Err(e) = result {
            // A commit whose outcome the server could not confirm may have happened: then the
            // new slots are the only way in, and must be kept. Only a header read back that
            // is not the new one says the rekey did not happen.
            match self.backend.read_header() {
                Ok(Some(bytes)) if Header::read(&bytes).is_ok_and(|h| h.store_id == store_id) => {
                    written = Some((bytes, attempted, None));
                }
                Ok(_) => {
                    discard();
                    return self.log_failure(op::REKEY, None, Err(e));
                }
                // Unknown: a new keychain entry stays (the store may need it); the old or the
                // new credential opens the store, whichever the outcome was.
                Err(_) => return Err(e),
            }
        }
        let (bytes, resealed, old_header) = written.expect("set by a committed step");
        // Committed: what follows only tidies up, and never fails the rekey.
        self.witness_retire(&self.store_id);
        #[cfg_attr(not(feature = "keychain"), allow(unused_mut))]
        let mut old_keychain_entry_kept = false;
        #[cfg(feature = "keychain")]
        if old_header.as_ref().is_none_or(|h| {
            h.slots
                .iter()
                .any(|s| matches!(s.kind, SlotKind::Keychain { .. }))
        }) && let Err(e) = crate::keys::keychain::delete(&self.store_id)
        {
            // It opens nothing current any more; it is only clutter.
            log::warn!("the old store's keychain entry could not be deleted: {e}");
            old_keychain_entry_kept = true;
        }
        #[cfg(not(feature = "keychain"))]
        let _ = old_header;
        let slots = credentials.len();
        let EncryptedStore {
            backend, witness, ..
        } = self;
        let store = Self::unlocked(backend, store_key, 1, bytes, witness)?;
        store.witness_saw(&store.state().header);
        Ok((
            store,
            RekeyReport {
                store_id: hex(&store_id),
                resealed,
                slots,
                old_keychain_entry_kept,
            },
        ))
    }
}
