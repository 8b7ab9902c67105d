//! Group commit of single writes on SQLite.
//!
//! Every write already goes through the one writer connection; here the
//! single writes queued while it was busy go through it together, written
//! as a batch is (`batch`): the checks of a single write per item, then
//! one upsert statement per run of items without a repeated id (so the
//! later write of an id lands on top of the earlier one), each statement a
//! transaction of its own. A group is normally one statement: one WAL
//! append, one commit, and one trip to the driver's thread. A statement the
//! database refuses is rolled back alone and its items are written again
//! one by one, each in a transaction of its own, so that only the failing
//! one fails. One committer: there is one writer connection.

use super::{codec, db_error, SqliteStore};
use crate::store::group::{same_error, GroupQueue, GroupWriter};
use crate::store::StoreResult;
use async_trait::async_trait;
use memory_contract::{BatchWrite, WriteAck};
use std::sync::Arc;

/// Starts the committer of `store` (which must not hold a queue itself).
pub(super) fn start(store: &SqliteStore) -> GroupQueue {
    GroupQueue::start(1, Arc::new(store.clone()) as Arc<dyn GroupWriter>)
}

#[async_trait]
impl GroupWriter for SqliteStore {
    async fn write_group(&self, writes: &[BatchWrite]) -> Vec<StoreResult<WriteAck>> {
        SqliteStore::write_group(self, writes).await
    }
}

impl SqliteStore {
    /// Writes `writes` as single writes committed together, and answers
    /// each as [`crate::store::Store::write_memory`] would have answered it
    /// alone, in order; each is acknowledged only once the statement
    /// holding it has committed. When the writer connection cannot be had,
    /// every write gets that error. This is what the group committer runs;
    /// public so that tests can hand it a group.
    pub async fn write_group(&self, writes: &[BatchWrite]) -> Vec<StoreResult<WriteAck>> {
        match self.write_group_on_writer(writes).await {
            Ok(results) => results,
            Err(e) => writes.iter().map(|_| Err(same_error(&e))).collect(),
        }
    }

    async fn write_group_on_writer(
        &self,
        writes: &[BatchWrite],
    ) -> StoreResult<Vec<StoreResult<WriteAck>>> {
        let now = codec::encode_time("now", codec::now())?;
        let mut conn = self
            .writer
            .acquire()
            .await
            .map_err(|e| db_error("starting write", e))?;
        Ok(self.write_batch_on(&mut conn, writes, &now).await)
    }
}
