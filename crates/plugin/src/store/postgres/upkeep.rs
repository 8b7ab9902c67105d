//! Background upkeep after writes: the full-text index's pending list and
//! the table's planner statistics.
//!
//! **The pending list.** The GIN index on `search_tsv` takes new entries
//! into a pending list (`fastupdate`, on by default), which is cheap for
//! the insert. Once the list outgrows `gin_pending_list_limit` (4 MB unless
//! configured), the insert that overflows it moves the whole list into the
//! index before it returns: tens to hundreds of milliseconds in which that
//! write, and with group commit every write of its group, waits. Every
//! search also reads the whole list. So the upkeep task moves the list into
//! the index in the background, at most every [`INTERVAL`] and only after
//! rows were written, with `gin_clean_pending_list`. An insert that
//! overflows the list while a clean is under way does not wait for it
//! (Postgres lets one process clean at a time and the others go on).
//!
//! **Statistics.** How a full-text search is planned depends on how common
//! its words are: a rare word is best found through the GIN index, a common
//! one by reading the searched namespaces' rows. Without statistics the
//! planner takes every word for rare, and a search of three small
//! namespaces for a common word went through the whole index (11 ms instead
//! of 1.8 ms at 100,000 rows). Autovacuum gathers statistics, but only
//! some time after a bulk load (its naptime is a minute). So once the rows
//! written since the last `ANALYZE` reach a tenth of the table (at least
//! [`ANALYZE_MIN_ROWS`]), the task runs `ANALYZE memory_records`, which
//! reads a sample and blocks neither reads nor writes.
//!
//! Should the database refuse either statement (the plugin's role does not
//! own the table, as can happen with `--skip-migrate`; a read-only server),
//! one warning is logged and that part of the upkeep stops; autovacuum and
//! the inserts then do it, as without this task.

use sqlx::postgres::PgPool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Least time between two rounds of upkeep.
pub(super) const INTERVAL: Duration = Duration::from_millis(200);

/// Rows written before statistics are gathered again, at least.
pub(super) const ANALYZE_MIN_ROWS: u64 = 1000;

/// Moves the pending list into the index; answers the pages it removed.
const CLEAN_SQL: &str = "SELECT gin_clean_pending_list('memory_records_search_tsv_idx'::regclass)";

/// The table's estimated rows, as the planner knows them (-1 or 0 before
/// the first `ANALYZE`).
const ROWS_SQL: &str =
    "SELECT reltuples::bigint FROM pg_class WHERE oid = 'memory_records'::regclass";

/// The store's end of the upkeep task: every clone of the store shares it,
/// and the task stops once the last clone is gone.
#[derive(Debug, Clone)]
pub(super) struct Upkeep {
    /// Rows written since the task last looked.
    written: Arc<AtomicU64>,
    /// Dropped with the last clone of the store, which closes the channel
    /// and so ends the task.
    _alive: mpsc::Sender<()>,
}

impl Upkeep {
    /// Starts the task on `pool` (whose connections find the plugin's
    /// schema on their search path).
    pub(super) fn start(pool: PgPool) -> Upkeep {
        let (alive, gone) = mpsc::channel(1);
        let written = Arc::new(AtomicU64::new(0));
        tokio::spawn(upkeep_loop(pool, Arc::clone(&written), gone));
        Upkeep {
            written,
            _alive: alive,
        }
    }

    /// Tells the task that `rows` rows were written.
    pub(super) fn written(&self, rows: usize) {
        if rows > 0 {
            self.written.fetch_add(rows as u64, Ordering::Relaxed);
        }
    }
}

/// Which parts of the upkeep still run.
struct Parts {
    clean: bool,
    analyze: bool,
}

async fn upkeep_loop(pool: PgPool, written: Arc<AtomicU64>, mut gone: mpsc::Receiver<()>) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut parts = Parts {
        clean: true,
        analyze: true,
    };
    let mut since_analyze = 0u64;
    // Rows to write before the table's size is looked up again: the size
    // is read only once this many have been written, not every round.
    let mut next_look = ANALYZE_MIN_ROWS;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = gone.recv() => return,
        }
        let new_rows = written.swap(0, Ordering::Relaxed);
        if new_rows == 0 {
            continue;
        }
        since_analyze += new_rows;
        let round = async {
            if parts.clean {
                let cleaned = sqlx::query_scalar::<_, i64>(CLEAN_SQL)
                    .fetch_one(&pool)
                    .await;
                parts.clean = keep_going(
                    cleaned.map(drop),
                    "clean the full-text index's pending list",
                );
            }
            if parts.analyze && since_analyze >= next_look {
                let rows = sqlx::query_scalar::<_, i64>(ROWS_SQL)
                    .fetch_one(&pool)
                    .await;
                let due = match rows {
                    Ok(rows) => {
                        next_look = analyze_threshold(rows);
                        since_analyze >= next_look
                    }
                    Err(_) => false,
                };
                if due {
                    let analyzed = sqlx::query("ANALYZE memory_records").execute(&pool).await;
                    if analyzed.is_ok() {
                        since_analyze = 0;
                        next_look = ANALYZE_MIN_ROWS;
                    }
                    parts.analyze =
                        keep_going(analyzed.map(drop), "gather the memories' statistics");
                }
            }
        };
        tokio::select! {
            _ = round => {}
            _ = gone.recv() => return,
        }
        if !parts.clean && !parts.analyze {
            return;
        }
    }
}

/// Rows written that call for a new `ANALYZE` of a table the planner
/// thinks holds `rows` rows: a tenth of them, at least [`ANALYZE_MIN_ROWS`].
pub(super) fn analyze_threshold(rows: i64) -> u64 {
    (rows.max(0) as u64 / 10).max(ANALYZE_MIN_ROWS)
}

/// Whether to go on with a part of the upkeep after `done`: a refusal
/// that will not go away stops it (with one warning); other failures (a
/// lost connection, a busy server) are tried again next round.
fn keep_going(done: Result<(), sqlx::Error>, what: &str) -> bool {
    match done {
        Ok(()) => true,
        Err(e) if refused_for_good(&e) => {
            tracing::warn!(
                error = %e,
                "cannot {what} in the background; the database will do it itself \
                 (slower writes or searches now and then)"
            );
            false
        }
        Err(e) => {
            tracing::debug!(error = %e, "cannot {what} this time");
            true
        }
    }
}

/// Errors that will not go away by trying again: no privilege on the
/// index, a read-only server, a missing index or function.
fn refused_for_good(e: &sqlx::Error) -> bool {
    let Some(db) = e.as_database_error() else {
        return false;
    };
    matches!(
        db.code().as_deref(),
        Some("42501" | "25006" | "42P01" | "42883" | "0A000" | "55000")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_follow_a_tenth_of_the_table() {
        assert_eq!(analyze_threshold(-1), ANALYZE_MIN_ROWS);
        assert_eq!(analyze_threshold(0), ANALYZE_MIN_ROWS);
        assert_eq!(analyze_threshold(5_000), ANALYZE_MIN_ROWS);
        assert_eq!(analyze_threshold(1_000_000), 100_000);
    }
}
