//! Group commit of single writes on Postgres.
//!
//! A group is written the way a batch is: its writes go into the one
//! `INSERT ... SELECT FROM unnest(..)` statement, which on its own is a
//! transaction (one round trip, one commit, one log flush for the whole
//! group). A group in which an id repeats is cut into runs without repeats,
//! run in order inside one transaction, so that the later write of an id
//! lands on top of the earlier one as if they had come one after the other.
//! Should that fail (a write the database refuses), the group is written
//! again, in one transaction, with a savepoint around each write: a
//! refused write is rolled back to its savepoint and answers its own
//! error, the others commit. Writes keep the ids they were given first, so
//! writing them again cannot duplicate anything.
//!
//! Several committers run at once (see [`committers`]): Postgres flushes
//! the log once for every transaction committing at the same moment, so
//! groups in flight together share flushes too.

use super::{id_conflict, namespace_not_found, PgStore, PreparedRow};
use crate::store::group::{runs_without_repeats, same_error, GroupQueue, GroupWriter};
use crate::store::{StoreError, StoreResult};
use async_trait::async_trait;
use memory_contract::{BatchWrite, WriteAck};
use sqlx::Connection;
use std::collections::HashSet;
use std::sync::Arc;
use uuid::Uuid;

/// Committers for a pool of `max_connections`: all but two connections of
/// the pool (at least one, at most 16). A committer takes the first write
/// that arrives at once (a lone writer waits for nothing), so a group grows
/// only while every committer is busy: with fewer committers than writers
/// in flight, writes would queue behind groups of one. With the default
/// pool of 10, eight groups are in flight at most, each holding about
/// four writes at 32 writers; two connections stay free for reads (a
/// committer holds its connection only while its group is in flight).
pub(crate) fn committers(max_connections: u32) -> usize {
    (max_connections as usize).saturating_sub(2).clamp(1, 16)
}

/// Starts the committers of `store` (which must not hold a queue itself).
pub(super) fn start(store: &PgStore) -> GroupQueue {
    GroupQueue::start(
        committers(store.max_connections),
        Arc::new(store.clone()) as Arc<dyn GroupWriter>,
    )
}

#[async_trait]
impl GroupWriter for PgStore {
    async fn write_group(&self, writes: &[BatchWrite]) -> Vec<StoreResult<WriteAck>> {
        PgStore::write_group(self, writes).await
    }
}

/// What happened to one write of a group before the namespace lookup.
enum Outcome {
    /// Written; committed once the group has.
    Written,
    /// The statement wrote nothing: the namespace is not live, or the id
    /// lives in another namespace.
    Skipped,
    Failed(StoreError),
}

impl PgStore {
    /// Writes `writes` as single writes committed together, and answers
    /// each as [`crate::store::Store::write_memory`] would have answered it
    /// alone, in order: a write succeeds only once the transaction holding
    /// it has committed; a refused write fails alone; a later write of the
    /// same id applies on top of an earlier one. This is what a group
    /// committer runs; public so that tests can hand it a group.
    pub async fn write_group(&self, writes: &[BatchWrite]) -> Vec<StoreResult<WriteAck>> {
        let ids: Vec<Uuid> = writes
            .iter()
            .map(|w| w.write.id.unwrap_or_else(Uuid::new_v4))
            .collect();
        let mut outcomes: Vec<Option<Outcome>> = writes
            .iter()
            .map(|w| {
                let embedding = w.write.embedding.as_deref()?;
                self.check_embedding(embedding).err().map(Outcome::Failed)
            })
            .collect();
        let todo: Vec<usize> = (0..writes.len())
            .filter(|&i| outcomes[i].is_none())
            .collect();
        if !todo.is_empty() {
            let done = match self.group_in_runs(writes, &ids, &todo).await {
                Ok(written) => Ok(todo
                    .iter()
                    .map(|&i| match written.contains(&i) {
                        true => Outcome::Written,
                        false => Outcome::Skipped,
                    })
                    .collect::<Vec<_>>()),
                Err(e) => {
                    tracing::debug!(error = %e, writes = todo.len(),
                        "group statement failed; writing the group again, one savepoint per write");
                    self.group_one_by_one(writes, &ids, &todo).await
                }
            };
            match done {
                Ok(done) => {
                    for (&i, outcome) in todo.iter().zip(done) {
                        outcomes[i] = Some(outcome);
                    }
                }
                // The transaction did not commit: nothing of it stands.
                Err(e) => {
                    for &i in &todo {
                        outcomes[i] = Some(Outcome::Failed(same_error(&e)));
                    }
                }
            }
        }
        self.answers(writes, &ids, outcomes).await
    }

    /// The fast path: each run of the group as one statement, sorted by id
    /// (concurrent groups then lock rows in one order); one run is a
    /// transaction on its own, several share one. The indexes written.
    async fn group_in_runs(
        &self,
        writes: &[BatchWrite],
        ids: &[Uuid],
        todo: &[usize],
    ) -> StoreResult<HashSet<usize>> {
        let todo_ids: Vec<Uuid> = todo.iter().map(|&i| ids[i]).collect();
        let runs = runs_without_repeats(&todo_ids);
        let mut written = HashSet::with_capacity(todo.len());
        let rows_of = |run: &std::ops::Range<usize>| {
            let mut members: Vec<usize> = todo[run.clone()].to_vec();
            members.sort_unstable_by_key(|&i| ids[i]);
            let rows: Vec<PreparedRow<'_>> = members.iter().map(|&i| row(writes, ids, i)).collect();
            (members, rows)
        };
        if let [run] = runs.as_slice() {
            let (members, rows) = rows_of(run);
            let ids_written = self.insert_rows_on(&self.pool, &rows).await?;
            written.extend(
                members
                    .into_iter()
                    .filter(|&i| ids_written.contains(&ids[i])),
            );
            return Ok(written);
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| super::db_error("cannot begin a write group", e))?;
        for run in &runs {
            let (members, rows) = rows_of(run);
            let ids_written = self.insert_rows_on(&mut *tx, &rows).await?;
            written.extend(
                members
                    .into_iter()
                    .filter(|&i| ids_written.contains(&ids[i])),
            );
        }
        tx.commit()
            .await
            .map_err(|e| super::db_error("cannot commit a write group", e))?;
        Ok(written)
    }

    /// The careful path: one transaction, a savepoint per write. `Err`
    /// when the transaction itself could not begin or commit.
    async fn group_one_by_one(
        &self,
        writes: &[BatchWrite],
        ids: &[Uuid],
        todo: &[usize],
    ) -> StoreResult<Vec<Outcome>> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| super::db_error("cannot begin a write group", e))?;
        let mut outcomes = Vec::with_capacity(todo.len());
        for &i in todo {
            let mut savepoint = tx
                .begin()
                .await
                .map_err(|e| super::db_error("cannot set a savepoint", e))?;
            let one = [row(writes, ids, i)];
            match self.insert_rows_on(&mut *savepoint, &one).await {
                Ok(written) => {
                    savepoint
                        .commit()
                        .await
                        .map_err(|e| super::db_error("cannot release a savepoint", e))?;
                    outcomes.push(match written.contains(&ids[i]) {
                        true => Outcome::Written,
                        false => Outcome::Skipped,
                    });
                }
                Err(e) => {
                    savepoint
                        .rollback()
                        .await
                        .map_err(|e| super::db_error("cannot roll back to a savepoint", e))?;
                    outcomes.push(Outcome::Failed(e));
                }
            }
        }
        tx.commit()
            .await
            .map_err(|e| super::db_error("cannot commit a write group", e))?;
        Ok(outcomes)
    }

    /// Each write's answer, after the commit: a write the statement
    /// skipped is `NotFound` when its namespace is not live, else
    /// `Conflict` (its id lives in another namespace).
    async fn answers(
        &self,
        writes: &[BatchWrite],
        ids: &[Uuid],
        outcomes: Vec<Option<Outcome>>,
    ) -> Vec<StoreResult<WriteAck>> {
        let skipped: Vec<&str> = outcomes
            .iter()
            .zip(writes)
            .filter(|(o, _)| matches!(o, Some(Outcome::Skipped)))
            .map(|(_, w)| w.namespace.as_str())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let live = match skipped.is_empty() {
            true => Ok(HashSet::new()),
            false => self.live_namespaces(&skipped).await,
        };
        outcomes
            .into_iter()
            .enumerate()
            .map(|(i, outcome)| {
                let namespace = writes[i].namespace.as_str();
                match outcome {
                    Some(Outcome::Written) => Ok(WriteAck {
                        id: ids[i],
                        namespace: namespace.to_string(),
                    }),
                    Some(Outcome::Skipped) => match &live {
                        Ok(live) if live.contains(namespace) => Err(id_conflict(ids[i], namespace)),
                        Ok(_) => Err(namespace_not_found(namespace)),
                        Err(e) => Err(same_error(e)),
                    },
                    Some(Outcome::Failed(e)) => Err(e),
                    None => Err(StoreError::Internal(
                        "a write of the group was lost".to_string(),
                    )),
                }
            })
            .collect()
    }
}

fn row<'a>(writes: &'a [BatchWrite], ids: &[Uuid], i: usize) -> PreparedRow<'a> {
    PreparedRow {
        id: ids[i],
        namespace: &writes[i].namespace,
        write: &writes[i].write,
    }
}
