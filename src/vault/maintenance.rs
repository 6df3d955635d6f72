//! Key maintenance on an open store: passphrase change, key slots, data-key rotation, verify.

use super::audit::op;
use super::freshness::{Finding, RecordSet};
use super::{EncryptedStore, SEAL_LIMIT, SEAL_WARNING, sealing, tampered};
use crate::backend::Backend;
use crate::crypto::{Argon2Params, Key, role};
use crate::format::header::{
    self, DataKeyEntry, MAX_KEYS, MAX_PASSPHRASE_SLOTS, MAX_SLOTS, SlotKind,
};
use crate::format::{hex, record};
#[cfg(feature = "keychain")]
use crate::keys::keychain::LocalEntry;
use crate::keys::{Credential, SlotInfo, StoreInfo, slot_kind};
use crate::store::{Error, Result};

/// Records re-sealed per transaction during rotation: small enough to keep each transaction
/// short, large enough that commits do not dominate.
const ROTATE_BATCH: usize = 256;

/// Reads the header of the store in `backend` without unlocking it.
///
/// # Errors
/// [`Error::NoStore`] if there is none; [`Error::UnsupportedFormat`], [`Error::Tampered`] or
/// [`Error::KdfParamsOutOfBounds`] for a header that does not parse; storage errors.
pub fn inspect(backend: &dyn Backend) -> Result<StoreInfo> {
    let bytes = backend.read_header()?.ok_or(Error::NoStore)?;
    let header = header::Header::read(&bytes)?;
    Ok(StoreInfo {
        store_id: hex(&header.store_id),
        slots: header
            .slots
            .iter()
            .map(|s| SlotInfo {
                id: s.id,
                kind: slot_kind(&s.kind),
                opened_with: false,
            })
            .collect(),
    })
}

/// How much of the active data key's nonce budget is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyUsage {
    /// The active data key.
    pub key_id: u32,
    /// Seals reserved so far (an upper bound on seals made).
    pub seals_reserved: u64,
    /// 2^32: no seal beyond it.
    pub limit: u64,
    /// True from 2^31 on: rotate.
    pub rotation_advised: bool,
    /// Data keys in the header (more than one: a rotation is unfinished).
    pub data_keys: usize,
}

/// The outcome of [`EncryptedStore::verify`].
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Records opened successfully.
    pub ok: usize,
    /// Records that failed, with why.
    pub failed: Vec<(String, Error)>,
    /// Whether the records are the ones the last write left (SECURITY.md §3.5).
    pub record_set: RecordSetCheck,
    /// The summary of the records as found (what
    /// [`accept_records`](EncryptedStore::accept_records) accepts, if they are still these).
    found: RecordSet,
}

impl VerifyReport {
    /// Every record opens and the record set is the one the last write left. A store without
    /// a summary is not clean: nothing vouches for its record set (an old store not written
    /// since, or an old header put back over a newer store).
    pub fn is_clean(&self) -> bool {
        self.failed.is_empty() && self.record_set == RecordSetCheck::Intact
    }
}

/// What [`EncryptedStore::verify`] found of the record set as a whole.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordSetCheck {
    /// The records are exactly those the last write left.
    #[default]
    Intact,
    /// The header has no summary: a store made by a release without them and not written
    /// since (its next write, or [`accept_records`](EncryptedStore::accept_records), adds
    /// one), or such an old header put back over a newer store. Nothing to compare against.
    NotSummarized,
    /// The records differ from what the last write left: rolled back, deleted, put back or
    /// copied in outside the store.
    Changed(Vec<Finding>),
}

/// The outcome of [`EncryptedStore::rotate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotationReport {
    /// The new active data key.
    pub key_id: u32,
    /// Records re-sealed by this call.
    pub resealed: usize,
    /// Whether this call finished a rotation an earlier one had begun.
    pub resumed: bool,
}

impl<B: Backend> EncryptedStore<B> {
    /// Changes the passphrase: re-wraps the store key in the passphrase slot under a key
    /// derived from `new` (fresh salt, same Argon2id cost). Records are not touched.
    ///
    /// The slot changed is the one this handle was opened with if it is a passphrase slot,
    /// else the store's only passphrase slot.
    ///
    /// # Errors
    /// [`Error::Refused`] if `new` is not a passphrase or the slot to change is ambiguous or
    /// missing; storage and integrity errors.
    pub fn change_passphrase(&self, new: &Credential) -> Result<()> {
        self.log_failure(
            op::CHANGE_PASSPHRASE,
            None,
            self.change_passphrase_unlogged(new),
        )
    }

    fn change_passphrase_unlogged(&self, new: &Credential) -> Result<()> {
        if !matches!(new, Credential::Passphrase(_)) {
            return Err(Error::Refused {
                reason: "the new credential is not a passphrase",
            });
        }
        self.update_header(op::CHANGE_PASSPHRASE, &mut |header| {
            let passphrase_slots: Vec<usize> = (0..header.slots.len())
                .filter(|&i| matches!(header.slots[i].kind, SlotKind::Passphrase { .. }))
                .collect();
            let index = passphrase_slots
                .iter()
                .copied()
                .find(|&i| header.slots[i].id == self.opened_slot)
                .or(match passphrase_slots.as_slice() {
                    [only] => Some(*only),
                    _ => None,
                })
                .ok_or(Error::Refused {
                    reason: "no single passphrase slot to change (see slots())",
                })?;
            let SlotKind::Passphrase { params, .. } = header.slots[index].kind else {
                unreachable!()
            };
            let id = header.slots[index].id;
            header.slots[index] = new.new_slot(id, &self.store_id, &self.store_key, params)?;
            Ok(())
        })
    }

    /// Adds a key slot for `credential` (Argon2id cost `argon2` if it is a passphrase) and
    /// returns its id. A keychain slot stores a new secret in this machine's OS keychain; a
    /// keychain holds one key per store, so a second keychain slot is refused while this
    /// keychain's entry opens one (a keychain slot made on another machine does not count).
    ///
    /// # Errors
    /// [`Error::Refused`] past 32 slots (4 passphrase slots) or for a second keychain slot on
    /// one keychain; [`Error::Keychain`]; storage and integrity errors. On error the header is
    /// unchanged and no keychain entry is left behind.
    pub fn add_slot(&self, credential: &Credential, argon2: Argon2Params) -> Result<u32> {
        self.log_failure(
            op::ADD_SLOT,
            None,
            self.add_slot_unlogged(credential, argon2),
        )
    }

    fn add_slot_unlogged(&self, credential: &Credential, argon2: Argon2Params) -> Result<u32> {
        #[cfg(feature = "keychain")]
        if matches!(credential, Credential::Keychain) && self.keychain_slot_here()?.is_some() {
            return Err(Error::Refused {
                reason: "this OS keychain already holds a key slot of this store",
            });
        }
        let mut added = 0;
        let result = self.update_header(op::ADD_SLOT, &mut |header| {
            if header.slots.len() >= MAX_SLOTS {
                return Err(Error::Refused {
                    reason: "a store holds at most 32 key slots",
                });
            }
            let passphrase_slots = header
                .slots
                .iter()
                .filter(|s| matches!(s.kind, SlotKind::Passphrase { .. }))
                .count();
            if matches!(credential, Credential::Passphrase(_))
                && passphrase_slots >= MAX_PASSPHRASE_SLOTS
            {
                return Err(Error::Refused {
                    reason: "a store holds at most 4 passphrase slots",
                });
            }
            added = super::next_id(header.slots.iter().map(|s| s.id))?;
            header.slots.push(credential.new_slot(
                added,
                &self.store_id,
                &self.store_key,
                argon2,
            )?);
            Ok(())
        });
        if result.is_err() {
            // No slot of this keychain existed (checked above): a new entry is ours to remove.
            credential.discard_new_slot(&self.store_id);
        }
        result.map(|()| added)
    }

    /// Removes key slot `id`. The last slot cannot be removed. Removing this machine's keychain
    /// slot also deletes its OS keychain entry.
    ///
    /// # Errors
    /// [`Error::Refused`] for the last slot or an unknown id; storage, integrity and keychain
    /// errors.
    pub fn remove_slot(&self, id: u32) -> Result<()> {
        self.log_failure(op::REMOVE_SLOT, None, self.remove_slot_unlogged(id))
    }

    fn remove_slot_unlogged(&self, id: u32) -> Result<()> {
        #[cfg(feature = "keychain")]
        let local_entry = LocalEntry::of_slot(&self.fresh_state()?.header, id);
        self.update_header(op::REMOVE_SLOT, &mut |header| {
            if header.slots.len() == 1 {
                return Err(Error::Refused {
                    reason: "cannot remove the last key slot",
                });
            }
            let before = header.slots.len();
            header.slots.retain(|s| s.id != id);
            if header.slots.len() == before {
                return Err(Error::Refused {
                    reason: "no key slot with that id",
                });
            }
            Ok(())
        })?;
        #[cfg(feature = "keychain")]
        if let Some(entry) = local_entry {
            entry.delete()?;
        }
        Ok(())
    }

    /// The id of the keychain slot that this machine's OS keychain opens, if any.
    ///
    /// # Errors
    /// Keychain errors other than a missing entry; storage and integrity errors.
    #[cfg(feature = "keychain")]
    pub fn keychain_slot_here(&self) -> Result<Option<u32>> {
        let state = self.fresh_state()?;
        Ok(LocalEntry::find(&state.header)?.map(|entry| entry.slot()))
    }

    /// Deletes this machine's OS keychain entry for the store, if one of its keychain slots
    /// uses it (for destroying a store). Returns whether an entry was deleted.
    ///
    /// # Errors
    /// Keychain errors; storage and integrity errors.
    #[cfg(feature = "keychain")]
    pub fn forget_keychain_entry(&self) -> Result<bool> {
        let state = self.fresh_state()?;
        match LocalEntry::find(&state.header)? {
            Some(entry) => entry.delete().map(|()| true),
            None => Ok(false),
        }
    }

    /// The store's key slots.
    ///
    /// # Errors
    /// Storage and integrity errors (the header is re-read).
    pub fn slots(&self) -> Result<Vec<SlotInfo>> {
        let state = self.fresh_state()?;
        Ok(state
            .header
            .slots
            .iter()
            .map(|s| SlotInfo {
                id: s.id,
                kind: slot_kind(&s.kind),
                opened_with: s.id == self.opened_slot,
            })
            .collect())
    }

    /// Nonce budget of the active data key.
    ///
    /// # Errors
    /// Storage and integrity errors (the header is re-read).
    pub fn key_usage(&self) -> Result<KeyUsage> {
        let state = self.fresh_state()?;
        let active = state
            .header
            .key(state.header.active_key)
            .expect("checked at parse");
        Ok(KeyUsage {
            key_id: active.id,
            seals_reserved: active.seals,
            limit: SEAL_LIMIT,
            rotation_advised: active.seals >= SEAL_WARNING,
            data_keys: state.header.keys.len(),
        })
    }

    /// Rotates the data key: a new random key becomes active, every record is re-sealed under
    /// it in batches, and the old key is dropped from the header once no record uses it.
    /// Records stay readable throughout; an interrupted rotation is finished by the next call.
    ///
    /// # Errors
    /// Storage and integrity errors; a record that fails to open stops the rotation (run
    /// [`verify`](Self::verify)) and leaves the store readable.
    pub fn rotate(&self) -> Result<RotationReport> {
        self.rotate_with_progress(&mut |_, _| {})
    }

    /// [`rotate`](Self::rotate), calling `progress(done, total)` after each batch.
    ///
    /// # Errors
    /// As [`rotate`](Self::rotate).
    pub fn rotate_with_progress(
        &self,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<RotationReport> {
        self.log_failure(
            op::ROTATE,
            None,
            self.rotate_with_progress_unlogged(progress),
        )
    }

    fn rotate_with_progress_unlogged(
        &self,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<RotationReport> {
        let mut resumed = false;
        self.update_header(op::ROTATE, &mut |header| {
            resumed = header.keys.len() > 1;
            if resumed {
                return Ok(()); // finish the rotation already begun, towards its active key
            }
            if header.keys.len() >= MAX_KEYS {
                return Err(Error::Refused {
                    reason: "too many data keys",
                });
            }
            let id = super::next_id(header.keys.iter().map(|k| k.id))?;
            let key = Key::<role::Data>::random()?;
            let wrapped = self
                .wrap_key
                .wrap_key(&key, &header::data_key_ad(&self.store_id, id))?;
            header.keys.push(DataKeyEntry {
                id,
                seals: 0,
                commitment: key.commitment(),
                wrapped,
            });
            header.active_key = id;
            Ok(())
        })?;

        let mut resealed = 0;
        let key_id = loop {
            let active = self.fresh_state()?.header.active_key;
            let mut stale: Vec<String> = Vec::new();
            self.backend.scan(false, &mut |r| {
                if !record::key_id_of(r.sealed).is_ok_and(|k| k == active) {
                    stale.push(r.id.to_owned());
                }
                Ok(())
            })?;
            stale.sort_unstable();
            if stale.is_empty() {
                break active;
            }
            let total = stale.len();
            for (n, batch) in stale.chunks(ROTATE_BATCH).enumerate() {
                resealed += self.reseal_batch(batch)?;
                progress((n * ROTATE_BATCH + batch.len()).min(total), total);
            }
        };
        // Drop retired keys, checking inside the transaction that no record still uses them.
        let mut written = None;
        self.backend.transact(&mut |tx| {
            let state = self.state_in(tx)?;
            let active = state.header.active_key;
            for r in tx.list()? {
                if !record::key_id_of(&r.sealed).is_ok_and(|k| k == active) {
                    return Err(Error::Refused {
                        reason: "records still use a retired key; run rotate again",
                    });
                }
            }
            let mut write = self.begin_write(tx, &state, op::ROTATE)?;
            write.header.keys.retain(|k| k.id == active);
            written = Some(self.finish_write(tx, &state, write)?);
            Ok(())
        })?;
        // Loaded again rather than installed: the retired keys must go from memory too.
        self.reload(written.expect("set by a committed step"))?;
        Ok(RotationReport {
            key_id,
            resealed,
            resumed,
        })
    }

    /// Re-seals the records of `ids` that are not under the active key, in one transaction.
    fn reseal_batch(&self, ids: &[String]) -> Result<usize> {
        let mut done = 0;
        let mut written = None;
        self.backend.transact(&mut |tx| {
            done = 0;
            let state = self.state_in(tx)?;
            let active = state.header.active_key;
            let mut write = self.begin_write(tx, &state, op::ROTATE)?;
            for id in ids {
                let Some(r) = tx.get(id)? else { continue };
                if record::key_id_of(&r.sealed).is_ok_and(|k| k == active) {
                    continue;
                }
                // Re-sealing is a save: the generation advances.
                let generation = sealing::next_generation(sealing::generation_of(&r))?;
                let token = self.open_with(&state, &r)?;
                write.take_seals(1)?;
                let resealed = self.seal(&state, &token, id, self.tags_of(&token), generation)?;
                self.put_record(tx, &mut write, resealed, Some(&r))?;
                done += 1;
            }
            written = Some(self.finish_write(tx, &state, write)?);
            Ok(())
        })?;
        self.install(written.expect("set by a committed step"))?;
        Ok(done)
    }

    /// Recomputes the record-set summary from the records as they are now, in one
    /// transaction, and returns how many it counted: how a store from an older release gets
    /// a summary before its first write (the upgrade), and how records that
    /// [`verify`](Self::verify) reported are accepted once dealt with (restored from a
    /// backup, or judged harmless). Until then every later verify keeps reporting them.
    /// `checked` is the verify the caller looked at: if the records changed since, what would
    /// be accepted is not what was seen, and nothing is done. (Writes that leave the records
    /// as they were — a slot change, a logged read — do not count: the records are compared,
    /// not the write counter.)
    ///
    /// # Errors
    /// [`Error::Refused`] if the records changed since `checked`; storage and integrity
    /// errors.
    pub fn accept_records(&self, checked: &VerifyReport) -> Result<u64> {
        self.log_failure(
            op::ACCEPT_RECORDS,
            None,
            self.accept_records_unlogged(checked),
        )
    }

    fn accept_records_unlogged(&self, checked: &VerifyReport) -> Result<u64> {
        let mut outcome = None;
        self.backend.transact(&mut |tx| {
            let state = self.state_in(tx)?;
            let mut write = self.begin_write(tx, &state, op::ACCEPT_RECORDS)?;
            let count = self.recount(tx, &mut write)?;
            if write.record_set() != checked.found {
                return Err(Error::Refused {
                    reason: "the records changed since that verify; verify again",
                });
            }
            if write.logs() {
                write.log(super::audit::Event {
                    operation: op::ACCEPT_RECORDS,
                    record: None,
                    outcome: super::audit::AuditOutcome::Ok,
                    detail: format!("{count} record(s)"),
                });
            }
            outcome = Some((count, self.finish_write(tx, &state, write)?));
            Ok(())
        })?;
        let (count, written) = outcome.expect("set by a committed step");
        self.install(written)?;
        Ok(count)
    }

    /// Opens every record and checks its lookup tags; lists the ids that fail. The header is
    /// checked first (an error if it fails).
    ///
    /// # Errors
    /// Header integrity and storage errors; record failures go into the report.
    pub fn verify(&self) -> Result<VerifyReport> {
        let report = self.log_failed_read(op::VERIFY, None, self.verify_unlogged())?;
        self.log_read(op::VERIFY, None, super::audit::AuditOutcome::Ok, || {
            format!("{} ok, {} failed", report.ok, report.failed.len())
        })?;
        Ok(report)
    }

    fn verify_unlogged(&self) -> Result<VerifyReport> {
        let (state, batch) = self.scan_with_header(true)?;
        let mut checked: Vec<Option<Error>> =
            std::iter::repeat_with(|| None).take(batch.len()).collect();
        self.open_batch(&batch, &mut checked, |i, opened, slot| {
            *slot = match opened {
                Ok(token) if self.tags_of(&token) == batch.tags(i) => None,
                Ok(_) => Some(tampered(batch.id(i))),
                Err(e) => Some(e),
            };
        })?;
        let mut report = VerifyReport::default();
        for (i, failure) in checked.into_iter().enumerate() {
            match failure {
                None => report.ok += 1,
                Some(e) => report.failed.push((batch.id(i).to_owned(), e)),
            }
        }
        let records = || (0..batch.len()).map(|i| (batch.id(i), batch.sealed(i)));
        for (id, sealed) in records() {
            report.found.add(&self.freshness, id, sealed);
        }
        report.record_set = match &state.record_set {
            None => RecordSetCheck::NotSummarized,
            Some(expected) => {
                let findings = expected.explain(&report.found, &self.freshness, records());
                if findings.is_empty() {
                    RecordSetCheck::Intact
                } else {
                    RecordSetCheck::Changed(findings)
                }
            }
        };
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::MemoryBackend;
    use crate::keys::RawKey;
    use crate::store::KeySlotKind;
    use crate::store::TokenStore;
    use crate::token::OAuthToken;
    use crate::vault::SEAL_LIMIT;

    fn store() -> EncryptedStore<MemoryBackend> {
        EncryptedStore::create(
            MemoryBackend::new(),
            &Credential::raw_key(RawKey::from_bytes([1; 32])),
        )
        .unwrap()
    }

    /// Sets the active key's seal counter, as if that many seals had been reserved.
    fn set_seals(store: &EncryptedStore<MemoryBackend>, seals: u64) {
        store
            .update_header(op::ROTATE, &mut |h| {
                let active = h.active_key;
                h.key_mut(active).unwrap().seals = seals;
                Ok(())
            })
            .unwrap();
    }

    fn save(store: &EncryptedStore<MemoryBackend>, user: &str) -> Result<()> {
        store.save_token(
            &mut OAuthToken::new()
                .with_user_name(user)
                .with_refresh_token(user),
        )
    }

    #[test]
    fn no_matching_slot_names_the_kinds_as_values() {
        let s = store();
        s.add_slot(
            &Credential::raw_key(RawKey::from_bytes([2; 32])),
            Argon2Params::default(),
        )
        .unwrap();
        let passphrase = Credential::passphrase("pw");
        let e = EncryptedStore::open(s.into_backend(), &passphrase).unwrap_err();
        let Error::NoMatchingSlot { kind, available } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(*kind, KeySlotKind::Passphrase);
        assert_eq!(available, &[KeySlotKind::RawKey, KeySlotKind::RawKey]);
        assert_eq!(
            e.to_string(),
            "this store has no passphrase key slot; open it with one of its slots: raw key, raw key"
        );
    }

    #[test]
    fn every_seal_is_counted_and_every_write_advances_the_header() {
        let s = store();
        let writes = |s: &EncryptedStore<MemoryBackend>| {
            let bytes = s.backend.read_header().unwrap().unwrap();
            header::Header::read(&bytes)
                .unwrap()
                .freshness
                .unwrap()
                .writes
        };
        assert_eq!(writes(&s), 1, "creation is the first write");
        for i in 0..10 {
            save(&s, &format!("u{i}")).unwrap();
        }
        assert_eq!(s.key_usage().unwrap().seals_reserved, 10);
        assert_eq!(writes(&s), 11);
        let first = s.get_tokens().unwrap()[0].id().unwrap().to_owned();
        s.delete_token(&first).unwrap();
        assert_eq!(writes(&s), 12);
        // A failed write changes nothing.
        assert!(s.delete_token("0000000000000000").is_err());
        assert_eq!(writes(&s), 12);
        assert_eq!(s.key_usage().unwrap().seals_reserved, 10);
    }

    #[test]
    fn warning_from_2_pow_31_and_refusal_at_2_pow_32() {
        let s = store();
        set_seals(&s, SEAL_WARNING - 1);
        assert!(!s.key_usage().unwrap().rotation_advised);
        save(&s, "a").unwrap();
        assert!(
            s.key_usage().unwrap().rotation_advised,
            "the seal crossed 2^31"
        );

        set_seals(&s, SEAL_LIMIT - 2);
        save(&s, "b").unwrap();
        save(&s, "c").unwrap();
        assert_eq!(s.key_usage().unwrap().seals_reserved, SEAL_LIMIT);
        let before = s.get_tokens().unwrap();
        assert!(matches!(
            save(&s, "d"),
            Err(Error::SealLimitReached { key_id: 1 })
        ));
        assert_eq!(s.get_tokens().unwrap(), before, "nothing written");

        // Rotation needs seals of the new key only, and restores the budget.
        let report = s.rotate().unwrap();
        assert_eq!(report.key_id, 2);
        assert_eq!(report.resealed, 3);
        save(&s, "d").unwrap();
        let usage = s.key_usage().unwrap();
        assert!(!usage.rotation_advised);
        assert_eq!(usage.data_keys, 1);
    }

    #[test]
    fn counter_cannot_be_rolled_back_without_the_header_key() {
        // The counter lives in the authenticated header: editing it breaks the MAC.
        let s = store();
        save(&s, "a").unwrap();
        let mut bytes = s.backend.read_header().unwrap().unwrap();
        let header = crate::format::header::Header::read(&bytes).unwrap();
        // From the end: MAC, record-set box, writes, active key id, wrapped key, commitment.
        let seals_at = bytes.len() - 32 - 76 - 8 - 4 - 60 - 32 - 8;
        assert_eq!(
            &bytes[seals_at..seals_at + 8],
            &header.keys[0].seals.to_be_bytes()
        );
        bytes[seals_at + 7] ^= 0xff; // the counter changed, the MAC not recomputed
        s.backend
            .transact(&mut |tx| Ok(tx.put_header(&bytes)?))
            .unwrap();
        assert!(matches!(
            save(&s, "b"),
            Err(Error::Tampered {
                what: crate::Subject::Header
            })
        ));
    }
}
