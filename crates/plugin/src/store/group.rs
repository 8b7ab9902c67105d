//! Group commit of single writes.
//!
//! `POST /v1/namespaces/{name}/memories` carries one memory; committing each
//! in a transaction of its own costs one log flush per write. Here every
//! single write goes into a queue, and committer tasks take whatever is
//! queued when they come round (never waiting for more: a lone write is
//! taken at once), up to [`MAX_GROUP`] writes, write them together
//! (normally one transaction; a store cuts a group where an id repeats),
//! commit, and only then answer each caller. A write that fails inside a
//! group fails alone (the store's group writer isolates it); a write whose
//! transaction did not commit is never acknowledged. The committers count their groups, by size, and the time
//! they took ([`GroupStats`], in `/metrics`).

use super::{StoreError, StoreResult};
use async_trait::async_trait;
use futures::FutureExt;
use memory_contract::{BatchWrite, MemoryWrite, WriteAck};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot, Mutex};

/// Most writes one committer takes into one transaction.
pub const MAX_GROUP: usize = 256;

/// Writes that may wait in the queue before callers wait to enqueue.
const QUEUE_CAPACITY: usize = 8192;

/// What a committer runs: every write of `writes` written together
/// (normally one transaction) and committed before it returns; one answer
/// per write, in order.
#[async_trait]
pub(crate) trait GroupWriter: Send + Sync + 'static {
    async fn write_group(&self, writes: &[BatchWrite]) -> Vec<StoreResult<WriteAck>>;
}

/// One write in a group of its own: what a store runs for a single write
/// when it has no queue.
pub(crate) async fn write_alone(
    writer: &dyn GroupWriter,
    namespace: &str,
    write: &MemoryWrite,
) -> StoreResult<WriteAck> {
    let group = [BatchWrite {
        namespace: namespace.to_string(),
        write: write.clone(),
    }];
    writer.write_group(&group).await.pop().unwrap_or_else(|| {
        Err(StoreError::Internal(
            "a write group gave no answer".to_string(),
        ))
    })
}

/// A write waiting for its group, and where its answer goes.
struct Pending {
    write: BatchWrite,
    reply: oneshot::Sender<StoreResult<WriteAck>>,
}

/// Upper bounds of the group-size buckets of [`GroupStats`].
pub const GROUP_SIZE_BUCKETS: [u64; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/// What the committers have done since the store opened: how many groups,
/// of which sizes, how many writes and how long the groups took, from the
/// committer taking a group to its commit (or failure), before the answers
/// go out. Failed groups count too. A store without a queue reports zeros.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupStats {
    /// Groups by size: `sizes[i]` counts the groups of at most
    /// `GROUP_SIZE_BUCKETS[i]` writes and more than the bound before
    /// (not cumulative).
    pub sizes: [u64; GROUP_SIZE_BUCKETS.len()],
    pub groups: u64,
    pub writes: u64,
    pub seconds: f64,
}

/// The committers' running counts behind [`GroupStats`].
#[derive(Debug, Default)]
struct Tally {
    sizes: [AtomicU64; GROUP_SIZE_BUCKETS.len()],
    groups: AtomicU64,
    writes: AtomicU64,
    micros: AtomicU64,
}

impl Tally {
    fn record(&self, writes: usize, took: std::time::Duration) {
        let writes = writes as u64;
        // A group above the last bound (none, while MAX_GROUP is that
        // bound) is counted in `groups` alone, the histogram's +Inf.
        if let Some(bucket) = GROUP_SIZE_BUCKETS.iter().position(|&bound| writes <= bound) {
            self.sizes[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.groups.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(writes, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn stats(&self) -> GroupStats {
        GroupStats {
            sizes: std::array::from_fn(|i| self.sizes[i].load(Ordering::Relaxed)),
            groups: self.groups.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            seconds: self.micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// The store's end of the queue. Committers stop once every clone of it
/// has been dropped and the queue is empty.
#[derive(Debug, Clone)]
pub(crate) struct GroupQueue {
    sender: mpsc::Sender<Pending>,
    tally: Arc<Tally>,
}

impl GroupQueue {
    /// Starts `committers` tasks (at least one) on the current runtime.
    pub(crate) fn start(committers: usize, writer: Arc<dyn GroupWriter>) -> GroupQueue {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let receiver = Arc::new(Mutex::new(receiver));
        let tally = Arc::new(Tally::default());
        for _ in 0..committers.max(1) {
            tokio::spawn(commit_loop(
                Arc::clone(&receiver),
                Arc::clone(&writer),
                Arc::clone(&tally),
            ));
        }
        GroupQueue { sender, tally }
    }

    /// The committers' figures so far.
    pub(crate) fn stats(&self) -> GroupStats {
        self.tally.stats()
    }

    /// Queues one write and waits until the transaction holding it has
    /// committed (or failed).
    pub(crate) async fn submit(
        &self,
        namespace: &str,
        write: &MemoryWrite,
    ) -> StoreResult<WriteAck> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            write: BatchWrite {
                namespace: namespace.to_string(),
                write: write.clone(),
            },
            reply,
        };
        self.sender
            .send(pending)
            .await
            .map_err(|_| StoreError::Unavailable("the write queue is closed".to_string()))?;
        answer.await.map_err(|_| {
            StoreError::Internal("the write committer stopped before answering".to_string())
        })?
    }
}

/// One committer: whoever holds the receiver waits for the next write,
/// takes it with everything queued behind it, lets go of the receiver (so
/// another committer can gather the next group meanwhile), and commits.
async fn commit_loop(
    receiver: Arc<Mutex<mpsc::Receiver<Pending>>>,
    writer: Arc<dyn GroupWriter>,
    tally: Arc<Tally>,
) {
    let mut group: Vec<Pending> = Vec::with_capacity(MAX_GROUP);
    loop {
        let taken = receiver.lock().await.recv_many(&mut group, MAX_GROUP).await;
        if taken == 0 {
            return;
        }
        let (writes, replies): (Vec<BatchWrite>, Vec<_>) =
            group.drain(..).map(|p| (p.write, p.reply)).unzip();
        let started = Instant::now();
        let results = AssertUnwindSafe(writer.write_group(&writes))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                tracing::error!("a write group panicked; its writes are answered with an error");
                Vec::new()
            });
        let took = started.elapsed();
        tally.record(writes.len(), took);
        tracing::debug!(
            writes = writes.len(),
            ms = took.as_secs_f64() * 1000.0,
            "write group done"
        );
        let mut results = results.into_iter();
        for reply in replies {
            let result = results.next().unwrap_or_else(|| {
                Err(StoreError::Internal(
                    "the write group ended without an answer for this write".to_string(),
                ))
            });
            // The caller may have gone away; its write stands regardless.
            let _ = reply.send(result);
        }
    }
}

/// Splits `len` writes whose ids are `ids` into runs of consecutive writes
/// in which no id repeats: each run can be one statement, and running them
/// in order applies a repeated id's later write on top of the earlier one.
pub(crate) fn runs_without_repeats(ids: &[uuid::Uuid]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut start = 0;
    for (i, id) in ids.iter().enumerate() {
        if !seen.insert(*id) {
            runs.push(start..i);
            seen.clear();
            seen.insert(*id);
            start = i;
        }
    }
    if start < ids.len() {
        runs.push(start..ids.len());
    }
    runs
}

/// A copy of `e`, for each write of a group that shares it.
pub(crate) fn same_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::NotFound(m) => StoreError::NotFound(m.clone()),
        StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
        StoreError::BadRequest(m) => StoreError::BadRequest(m.clone()),
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Internal(m) => StoreError::Internal(m.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn tally_sorts_groups_into_size_buckets() {
        let tally = Tally::default();
        for writes in [1, 1, 3, 8, 9, 256, 300] {
            tally.record(writes, std::time::Duration::from_millis(2));
        }
        let stats = tally.stats();
        // Buckets: ≤1, ≤2, ≤4, ≤8, ≤16, ≤32, ≤64, ≤128, ≤256; above
        // that only in the count.
        assert_eq!(stats.sizes, [2, 0, 1, 1, 1, 0, 0, 0, 1]);
        assert_eq!(stats.groups, 7);
        assert_eq!(stats.writes, 578);
        assert!((stats.seconds - 0.014).abs() < 1e-9, "{}", stats.seconds);
    }

    #[test]
    fn runs_split_at_a_repeated_id() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let c = Uuid::new_v4();
        assert_eq!(
            runs_without_repeats(&[]),
            Vec::<std::ops::Range<usize>>::new()
        );
        assert_eq!(runs_without_repeats(&[a, b, c]), vec![0..3]);
        assert_eq!(
            runs_without_repeats(&[a, b, a, c, a]),
            vec![0..2, 2..4, 4..5]
        );
        assert_eq!(runs_without_repeats(&[a, a]), vec![0..1, 1..2]);
    }
}
