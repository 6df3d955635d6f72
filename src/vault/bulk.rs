//! Whole-store steps that must stay correct while other processes write: pruning expired
//! records and copying a store into another (resumably).

use std::time::SystemTime;

use super::audit::op;
use super::{EncryptedStore, Saved};
use crate::backend::Backend;
use crate::matching::LookupField;
use crate::store::{Error, Result, TokenStore};
use crate::token::OAuthToken;

/// What [`EncryptedStore::copy_into`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Records created in the destination.
    pub inserted: u64,
    /// Records the destination already had (a resumed copy), updated to the source's values.
    pub updated: u64,
}

impl<B: Backend> EncryptedStore<B> {
    /// Deletes every record whose expiry time is known and at or before `now`, and returns
    /// their ids. Each deletion is one atomic step that re-reads and re-opens the record inside
    /// the backend's transaction, so a record that another process refreshed after the scan is
    /// kept. Records without an expiry time are never pruned.
    ///
    /// # Errors
    /// Storage and integrity errors; records pruned before the error stay deleted.
    pub fn prune_expired(&self, now: SystemTime) -> Result<Vec<String>> {
        self.log_failure(op::PRUNE, None, self.prune_expired_unlogged(now))
    }

    fn prune_expired_unlogged(&self, now: SystemTime) -> Result<Vec<String>> {
        let expired = |token: &OAuthToken| token.expires_at().is_some_and(|at| at <= now);
        let candidates: Vec<String> = self
            .get_tokens_unlogged()?
            .iter()
            .filter(|t| expired(t))
            .filter_map(|t| t.id().map(str::to_owned))
            .collect();
        let mut pruned = Vec::with_capacity(candidates.len());
        for id in candidates {
            let mut written = None;
            self.backend.transact(&mut |tx| {
                written = None;
                let Some(record) = tx.get(&id)? else {
                    return Ok(()); // deleted meanwhile
                };
                let state = self.state_in(tx)?;
                if expired(&self.open_with(&state, &record)?) {
                    let mut write = self.begin_write(tx, &state, op::PRUNE)?;
                    self.delete_record(tx, &mut write, &record)?;
                    written = Some(self.finish_write(tx, &state, write)?);
                }
                Ok(())
            })?;
            if let Some(written) = written {
                self.install(written)?;
                pruned.push(id);
            }
        }
        Ok(pruned)
    }

    /// Copies every record into `dest` (another store, under its own keys), keeping ids;
    /// `progress(done, total)` is called after each record. Running it again after an
    /// interruption resumes: records already copied are saved again with the same values.
    ///
    /// # Errors
    /// [`Error::Conflict`] if `dest` holds a record with the same id or lookup value for
    /// another user (nothing of that record is written; earlier records stay copied); storage
    /// and integrity errors of either store.
    pub fn copy_into<D: Backend>(
        &self,
        dest: &EncryptedStore<D>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<CopyReport> {
        let tokens = self.get_tokens()?;
        let total = tokens.len() as u64;
        let mut report = CopyReport::default();
        for (done, mut token) in (1..).zip(tokens) {
            if let Some(id) = token.id()
                && let Some(existing) = dest.find_token_by_id(id)?
                && existing.user_name() != token.user_name()
            {
                return Err(Error::Conflict {
                    field: LookupField::UserName,
                    existing_id: id.to_owned(),
                });
            }
            match dest.save(&mut token)? {
                Saved::Inserted => report.inserted += 1,
                Saved::Updated => report.updated += 1,
            }
            progress(done, total);
        }
        Ok(report)
    }
}
