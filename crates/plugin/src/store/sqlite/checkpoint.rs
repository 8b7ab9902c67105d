//! Checkpoints of the write-ahead log on a connection and a thread of their
//! own.
//!
//! A checkpoint copies the pages the WAL holds back into the database file
//! and syncs both files; with `synchronous = NORMAL` it is the moment the
//! recent commits become safe from a power loss (a crash of the process
//! alone loses nothing either way). SQLite runs it by default inside the
//! commit that takes the WAL past 1000 pages, on the writer connection, so
//! the writes queued behind that commit wait for it; at a million rows a
//! batch of 1000 memories changes about 1500 pages, so nearly every batch
//! paid for a checkpoint (15 to 30% of the writer's time in profiles,
//! mostly random page writes into the file and `fsync`).
//!
//! Here a task asks for a passive checkpoint every [`INTERVAL`] on its own
//! connection: it copies what the writer has committed while the writer
//! goes on (passive checkpoints take no lock a writer or reader needs), on
//! the other core. The WAL is thus synced at least every [`INTERVAL`] while
//! there are writes, however few (the default waits for 1000 pages, which a
//! quiet store may take hours to write). The writer keeps SQLite's own
//! checkpoint as a backstop at [`WRITER_BACKSTOP_PAGES`], should this task
//! fall behind.

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use std::time::Duration;

/// How often the task checkpoints.
const INTERVAL: Duration = Duration::from_millis(100);

/// WAL pages after which the writer checkpoints by itself (SQLite's
/// `wal_autocheckpoint`): only reached if the task falls behind.
pub(super) const WRITER_BACKSTOP_PAGES: &str = "16384";

/// The checkpoint task and its connection; stops when dropped.
#[derive(Debug)]
pub(super) struct Checkpointer {
    pool: SqlitePool,
    task: tokio::task::JoinHandle<()>,
}

impl Checkpointer {
    /// Opens the task's connection with `options` (the writer's, without
    /// its page cache) and starts the task.
    pub(super) async fn start(options: SqliteConnectOptions) -> Result<Checkpointer, sqlx::Error> {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.pragma("cache_size", "-256"))
            .await?;
        let task = tokio::spawn(run(pool.clone()));
        Ok(Checkpointer { pool, task })
    }

    /// Stops the task and closes its connection.
    pub(super) async fn close(&self) {
        self.task.abort();
        self.pool.close().await;
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(pool: SqlitePool) {
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        // (busy, pages in the WAL, pages copied); busy only means another
        // connection was checkpointing, which is as good.
        let outcome: Result<(i64, i64, i64), _> = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&pool)
            .await;
        if let Err(e) = outcome {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(error = %e, "SQLite WAL checkpoint failed; will try again");
        }
    }
}
