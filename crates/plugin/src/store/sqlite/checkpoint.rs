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
//!
//! Copying is not enough to keep the WAL short, though. SQLite starts the
//! log over from its beginning only when a write transaction begins while
//! every frame in it has been copied, and a writer that never pauses
//! always has a commit landing during the task's checkpoint. Under steady
//! writes the WAL then grew to the backstop, and the writer's own
//! checkpoint there (its `fsync`s above all) held up every queued write for
//! about 100 ms, every 0.7 to 1.1 s at a million rows: the tail of single
//! writes under load. So once the WAL holds [`RESTART_FRAMES`], the task
//! checkpoints again until a pass finds few new frames, then holds the
//! writer connection for one last pass (the frames committed during the
//! previous one) and lets go; the writer's next transaction starts the log
//! over. That pass costs what its `fsync`s cost: 2 to 90 ms, about 50 at
//! the median, on the machine of the README's figures. Should the passes
//! not catch up, the task leaves the writer alone until the next tick; a
//! reader that keeps the log from starting over makes it wait longer
//! ([`Holds`]).

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// How often the task checkpoints.
const INTERVAL: Duration = Duration::from_millis(100);

/// WAL pages after which the writer checkpoints by itself (SQLite's
/// `wal_autocheckpoint`): only reached if the task falls behind.
pub(super) const WRITER_BACKSTOP_PAGES: &str = "16384";

/// WAL frames (pages) from which the task brings the log back to its
/// start: 16 MiB of 4 KiB pages, a quarter of the backstop.
const RESTART_FRAMES: i64 = 4096;

/// New frames a catching-up pass may find and still let the next pass run
/// with the writer held (1 MiB).
const HOLD_MAX_FRAMES: i64 = 256;

/// Catching-up passes before the task gives up until the next tick.
const CATCH_UP_PASSES: usize = 8;

/// The checkpoint task and its connection; stops when dropped.
#[derive(Debug)]
pub(super) struct Checkpointer {
    pool: SqlitePool,
    task: tokio::task::JoinHandle<()>,
}

impl Checkpointer {
    /// Opens the task's connection with `options` (the writer's, without
    /// its page cache) and starts the task.
    pub(super) async fn start(
        options: SqliteConnectOptions,
        writer: SqlitePool,
    ) -> Result<Checkpointer, sqlx::Error> {
        let mut wal = options.get_filename().as_os_str().to_owned();
        wal.push("-wal");
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.pragma("cache_size", "-256"))
            .await?;
        let task = tokio::spawn(run(pool.clone(), writer, PathBuf::from(wal)));
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

async fn run(pool: SqlitePool, writer: SqlitePool, wal: PathBuf) {
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut holds = Holds::default();
    loop {
        ticks.tick().await;
        let Some(frames) = pass(&pool).await else {
            if pool.is_closed() {
                return;
            }
            continue;
        };
        // The WAL header matters only to tell how the last hold went.
        let generation = match holds.awaiting() {
            true => log_generation(&wal).await,
            false => None,
        };
        if holds.may_hold(frames, generation) {
            holds.held(restart_log(&pool, &writer, &wal, frames).await);
        }
    }
}

/// The WAL file's checkpoint sequence number (its header's bytes 12 to 15,
/// big-endian), which SQLite increases each time the log starts over; `None`
/// when there is no log file or it has no header yet.
async fn log_generation(wal: &Path) -> Option<u32> {
    let mut file = tokio::fs::File::open(wal).await.ok()?;
    let mut header = [0u8; 16];
    file.read_exact(&mut header).await.ok()?;
    Some(u32::from_be_bytes([
        header[12], header[13], header[14], header[15],
    ]))
}

/// When the task may hold the writer. A reader whose snapshot still needs
/// the log keeps SQLite from starting it over, so holding the writer helps
/// only once that reader is done: when the writer has written since the
/// last hold without starting the log over (the WAL header's sequence
/// number is the same, the log longer), the task lets twice as many ticks
/// pass as before (up to [`MAX_WAIT_TICKS`]) before the next hold.
#[derive(Debug, Default)]
struct Holds {
    /// The log's generation and frames when the writer was last held, until
    /// the writer has written again.
    last: Option<(u32, i64)>,
    /// Ticks still to let pass before the next hold.
    wait: u32,
    /// The wait after the next hold that does not start the log over, halved.
    backoff: u32,
}

/// Longest wait between two holds that did not start the log over (5 s).
const MAX_WAIT_TICKS: u32 = 50;

impl Holds {
    /// Whether a hold's outcome is still to be told (by the log's
    /// generation at a later tick).
    fn awaiting(&self) -> bool {
        self.last.is_some()
    }

    /// Whether to bring a log of `frames` frames, of generation
    /// `generation` (read only while [`Holds::awaiting`]), back to its
    /// start now.
    fn may_hold(&mut self, frames: i64, generation: Option<u32>) -> bool {
        if let Some((last, held_frames)) = self.last {
            if generation != Some(last) {
                // Started over.
                self.last = None;
                self.backoff = 0;
            } else if frames > held_frames {
                // Written to without starting over.
                self.last = None;
                self.backoff = (self.backoff * 2).clamp(1, MAX_WAIT_TICKS);
                self.wait = self.backoff;
            } else {
                // Not written to since: its next write starts it over.
                return false;
            }
        }
        if frames < RESTART_FRAMES {
            return false;
        }
        if self.wait > 0 {
            self.wait -= 1;
            return false;
        }
        true
    }

    /// Notes the log's generation and frames just after a hold of the
    /// writer (`None`: no hold, or no generation to compare).
    fn held(&mut self, log: Option<(u32, i64)>) {
        self.last = log;
    }
}

/// One passive checkpoint on the task's connection: the frames the WAL
/// held (SQLite reports -1 when there is no log), or `None` when it failed.
/// Busy only means another connection was checkpointing, which is as good.
async fn pass(pool: &SqlitePool) -> Option<i64> {
    // (busy, frames in the WAL, frames copied)
    let outcome: Result<(i64, i64, i64), _> = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(pool)
        .await;
    match outcome {
        Ok((_, frames, _)) => Some(frames),
        Err(e) => {
            if !pool.is_closed() {
                tracing::warn!(error = %e, "SQLite WAL checkpoint failed; will try again");
            }
            None
        }
    }
}

/// Brings a WAL of `frames` frames, just checkpointed, back to its start:
/// passes until one finds at most [`HOLD_MAX_FRAMES`] new frames, then one
/// more with the writer connection held, so that no commit lands between
/// it and the writer's next transaction, which then starts the log over.
/// Gives up (until the next tick) when the passes do not catch up, when
/// the log started over meanwhile, or when the writer is closed. The log's
/// generation and frames while the writer was held (read before letting
/// go, so before the writer can start the log over), if it was.
async fn restart_log(
    pool: &SqlitePool,
    writer: &SqlitePool,
    wal: &Path,
    mut frames: i64,
) -> Option<(u32, i64)> {
    let mut caught_up = false;
    for _ in 0..CATCH_UP_PASSES {
        let now = pass(pool).await?;
        if now < frames {
            // The log started over (the writer's backstop, or an idle moment).
            return None;
        }
        let fresh = now - frames;
        frames = now;
        if fresh <= HOLD_MAX_FRAMES {
            caught_up = true;
            break;
        }
    }
    if !caught_up {
        return None;
    }
    let held = writer.acquire().await.ok()?;
    let started = std::time::Instant::now();
    let copied = pass(pool).await;
    let generation = log_generation(wal).await;
    drop(held);
    let log = generation.zip(copied);
    tracing::debug!(
        frames = copied.unwrap_or(-1),
        held_ms = started.elapsed().as_secs_f64() * 1000.0,
        "WAL checkpointed with the writer held; the next write starts the log over"
    );
    log
}

#[cfg(test)]
mod tests {
    use super::{Holds, MAX_WAIT_TICKS, RESTART_FRAMES};

    #[test]
    fn holds_wait_longer_while_the_log_does_not_start_over() {
        let long = RESTART_FRAMES;
        let mut holds = Holds::default();
        // A short log is left alone; a long one is brought back.
        assert!(!holds.may_hold(long - 1, Some(1)));
        assert!(holds.may_hold(long, Some(1)));
        holds.held(Some((1, long)));
        // Not written to since the hold: nothing to do, nothing learnt.
        assert!(!holds.may_hold(long, Some(1)));
        assert_eq!(holds.backoff, 0);
        // Started over (generation 2): the next long log is brought back
        // at once.
        assert!(holds.may_hold(long * 2, Some(2)));
        holds.held(Some((2, long * 2)));
        // Written to without starting over: one tick's wait, then two,
        // then four.
        let mut frames = long * 2;
        for wait in [1, 2, 4] {
            frames += 1;
            for _ in 0..wait {
                assert!(!holds.may_hold(frames, Some(2)));
            }
            assert!(holds.may_hold(frames, Some(2)));
            holds.held(Some((2, frames)));
        }
        // The waits stop growing at MAX_WAIT_TICKS.
        for _ in 0..20 {
            frames += 1;
            let mut waited = 0;
            while !holds.may_hold(frames, Some(2)) {
                waited += 1;
            }
            assert!(waited <= MAX_WAIT_TICKS);
            holds.held(Some((2, frames)));
        }
        assert_eq!(holds.backoff, MAX_WAIT_TICKS);
        // Once the log starts over, the waits are forgotten.
        assert!(holds.may_hold(long, Some(3)));
        assert_eq!(holds.backoff, 0);
        // A tick on which the passes did not catch up (no hold) leaves the
        // waits as they were, and the next tick may try again.
        holds.held(None);
        assert!(holds.may_hold(long, Some(3)));
        assert_eq!(holds.backoff, 0);
    }
}
