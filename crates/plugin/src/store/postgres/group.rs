//! Group commit of single writes on Postgres.
//!
//! A group is written the way a batch is: its writes go into the one
//! `INSERT ... SELECT FROM unnest(..)` statement, which on its own is a
//! transaction (one round trip, one commit, one log flush for the whole
//! group). A group in which an id repeats is cut into runs without repeats,
//! each its own transaction, committed in order, so that the later write of
//! an id lands on top of the earlier one as if they had come one after the
//! other. Should a run's statement fail (a write the database refuses), the
//! run is written again, in one transaction, with a savepoint around each
//! write: a refused write is rolled back to its savepoint and answers its
//! own error, the others commit. Writes keep the ids they were given first,
//! so writing them again cannot duplicate anything.
//!
//! Every transaction here takes its rows in id order (a run has no repeated
//! id, so its order is free), and none spans two runs: two committers can
//! then wait for each other's rows but never both at once, so they cannot
//! deadlock. Transient failures (a deadlock with another client of the
//! table, a serialization failure, a lost connection) are run again a few
//! times.
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

/// Committers for a pool of `max_connections` on a host with `cpus`
/// processors, unless `requested` names a number (then that, leaving at
/// least one connection for reads).
///
/// Each committer's group is one statement, run by one database backend
/// on one core. Groups in flight at the same time share log flushes, but
/// each pays its own statement, plan and commit, so committers beyond
/// what the database can run in parallel only cut the same writes into
/// smaller groups. The default is therefore half the host's processors
/// (the database usually shares or mirrors them), at least one, at most
/// 16, and never more than the pool's size minus two. Each committer has
/// a connection of its own, taken out of the pool's size (see
/// [`super::WRITE_SESSION_SETTING`]), so at least two stay for reads; a pool
/// of one connection shares it. A committer takes the first write that
/// arrives at once (a lone writer waits for nothing), so a group grows
/// only while every committer is busy. On a 2-processor host that is one
/// committer, which gathered 1.1-1.3 times the writes of two and 1.3-1.5
/// times those of four, at 8 and at 32 writers (see README).
pub(crate) fn committers(max_connections: u32, cpus: usize, requested: Option<usize>) -> usize {
    let pool = (max_connections as usize).max(1);
    match requested {
        Some(n) => n.clamp(1, pool.saturating_sub(1).max(1)),
        None => (cpus / 2).clamp(1, 16).min(pool.saturating_sub(2).max(1)),
    }
}

/// Starts the committers of `store` (which must not hold a queue itself).
pub(super) fn start(store: &PgStore) -> GroupQueue {
    GroupQueue::start(
        store.committers,
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
            .map(|w| w.write.id.unwrap_or_else(crate::store::fresh_id))
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
        let todo_ids: Vec<Uuid> = todo.iter().map(|&i| ids[i]).collect();
        for run in runs_without_repeats(&todo_ids) {
            let mut members: Vec<usize> = todo[run].to_vec();
            members.sort_unstable_by_key(|&i| ids[i]);
            let done = match self.run_retried(writes, &ids, &members).await {
                Ok(written) => Ok(members
                    .iter()
                    .map(|&i| match written.contains(&ids[i]) {
                        true => Outcome::Written,
                        false => Outcome::Skipped,
                    })
                    .collect::<Vec<_>>()),
                Err(e) => {
                    tracing::debug!(error = %e, writes = members.len(),
                        "group statement failed; writing the run again, one savepoint per write");
                    self.run_one_by_one(writes, &ids, &members).await
                }
            };
            match done {
                Ok(done) => {
                    for (&i, outcome) in members.iter().zip(done) {
                        outcomes[i] = Some(outcome);
                    }
                }
                // The transaction did not commit: nothing of it stands.
                Err(e) => {
                    for &i in &members {
                        outcomes[i] = Some(Outcome::Failed(same_error(&e)));
                    }
                }
            }
        }
        self.answers(writes, &ids, outcomes).await
    }

    /// The fast path: one run (no repeated id, `members` in id order) as
    /// one statement, its own transaction; the ids written. Run again (up
    /// to [`RETRIES`] times, after a short pause) when it fails with a
    /// transient error; the failed attempt committed nothing.
    async fn run_retried(
        &self,
        writes: &[BatchWrite],
        ids: &[Uuid],
        members: &[usize],
    ) -> StoreResult<HashSet<Uuid>> {
        let rows: Vec<PreparedRow<'_>> = members.iter().map(|&i| row(writes, ids, i)).collect();
        let mut attempt = 0;
        loop {
            match self.insert_rows_on(self.writer_pool(), &rows).await {
                Err(StoreError::Unavailable(e)) if attempt < RETRIES => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "write group failed; running it again");
                    tokio::time::sleep(retry_pause(attempt)).await;
                }
                done => return done,
            }
        }
    }

    /// The careful path for one run (`members` in id order): one
    /// transaction, a savepoint per write. `Err` when the transaction
    /// itself could not begin or commit.
    async fn run_one_by_one(
        &self,
        writes: &[BatchWrite],
        ids: &[Uuid],
        members: &[usize],
    ) -> StoreResult<Vec<Outcome>> {
        let mut tx = self
            .writer_pool()
            .begin()
            .await
            .map_err(|e| super::db_error("cannot begin a write group", e))?;
        let mut outcomes = Vec::with_capacity(members.len());
        for &i in members {
            let one = [row(writes, ids, i)];
            let mut attempt = 0;
            let outcome = loop {
                let mut savepoint = tx
                    .begin()
                    .await
                    .map_err(|e| super::db_error("cannot set a savepoint", e))?;
                match self.insert_rows_on(&mut *savepoint, &one).await {
                    Ok(written) => {
                        savepoint
                            .commit()
                            .await
                            .map_err(|e| super::db_error("cannot release a savepoint", e))?;
                        break match written.contains(&ids[i]) {
                            true => Outcome::Written,
                            false => Outcome::Skipped,
                        };
                    }
                    Err(e) => {
                        savepoint
                            .rollback()
                            .await
                            .map_err(|e| super::db_error("cannot roll back to a savepoint", e))?;
                        // A deadlock chose this write as its victim: the
                        // savepoint undid it, and it may simply run again.
                        if matches!(e, StoreError::Unavailable(_)) && attempt < RETRIES {
                            attempt += 1;
                            tokio::time::sleep(retry_pause(attempt)).await;
                            continue;
                        }
                        break Outcome::Failed(e);
                    }
                }
            };
            outcomes.push(outcome);
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

/// Further attempts after a transient failure (a deadlock between two
/// groups, a serialization failure, a lost connection).
const RETRIES: u32 = 3;

/// The pause before attempt `attempt` (1, 2, …): 2, 4, 8 ms, plus up to
/// as much again taken from the clock, so that two groups that deadlocked
/// do not meet again at the same moment.
fn retry_pause(attempt: u32) -> std::time::Duration {
    let base = 2u64 << attempt.saturating_sub(1).min(4);
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_micros()) % (base * 1000));
    std::time::Duration::from_micros(base * 1000 + jitter)
}

fn row<'a>(writes: &'a [BatchWrite], ids: &[Uuid], i: usize) -> PreparedRow<'a> {
    PreparedRow {
        id: ids[i],
        namespace: &writes[i].namespace,
        write: &writes[i].write,
    }
}

#[cfg(test)]
mod tests {
    use super::committers;

    #[test]
    fn committers_follow_the_host_and_the_pool() {
        // Half the processors, at least one.
        assert_eq!(committers(10, 1, None), 1);
        assert_eq!(committers(10, 2, None), 1);
        assert_eq!(committers(10, 8, None), 4);
        // Two connections stay free for reads.
        assert_eq!(committers(10, 64, None), 8);
        assert_eq!(committers(2, 8, None), 1);
        assert_eq!(committers(1, 8, None), 1);
        // At most 16.
        assert_eq!(committers(100, 128, None), 16);
        // A requested number wins, leaving one connection for reads.
        assert_eq!(committers(10, 2, Some(6)), 6);
        assert_eq!(committers(10, 2, Some(50)), 9);
        assert_eq!(committers(10, 2, Some(0)), 1);
        assert_eq!(committers(2, 2, Some(2)), 1);
        // A pool of one is shared.
        assert_eq!(committers(1, 2, Some(4)), 1);
    }
}
