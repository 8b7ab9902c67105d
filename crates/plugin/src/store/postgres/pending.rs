//! Keeping the full-text index's pending list short.
//!
//! The GIN index on `search_tsv` takes new entries into a pending list
//! (`fastupdate`, on by default), which is cheap for the insert. Once the
//! list outgrows `gin_pending_list_limit` (4 MB unless configured), the
//! insert that overflows it moves the whole list into the index before it
//! returns: tens to hundreds of milliseconds in which that write, and with
//! group commit every write of its group, waits. Every search also reads
//! the whole list.
//!
//! So a cleaner task moves the list into the index in the background, at
//! most every [`CLEAN_INTERVAL`] and only after rows were written, with
//! `gin_clean_pending_list`. An insert that overflows the list while a
//! clean is under way does not wait for it (Postgres lets one process
//! clean at a time and the others go on), so in practice no write pays
//! for the list. Should the database refuse the function (the plugin's
//! role does not own the index, as can happen with `--skip-migrate`; a
//! read-only server), one warning is logged and the cleaner stops: the
//! inserts then clean the list themselves, as without it.

use sqlx::postgres::PgPool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

/// Least time between two cleans.
pub(super) const CLEAN_INTERVAL: Duration = Duration::from_millis(200);

/// The statement that moves the pending list into the index; it answers
/// the number of pending-list pages it removed.
pub(super) const CLEAN_SQL: &str =
    "SELECT gin_clean_pending_list('memory_records_search_tsv_idx'::regclass)";

/// The store's end of the cleaner: every clone of the store shares it, and
/// the cleaner stops once the last clone is gone.
#[derive(Debug, Clone)]
pub(super) struct PendingList {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Rows written since the cleaner last looked.
    written: AtomicU64,
    /// Dropped with the last clone of the store, which ends the cleaner.
    _alive: mpsc::Sender<()>,
}

impl PendingList {
    /// Starts the cleaner on `pool` (whose connections find the plugin's
    /// schema on their search path).
    pub(super) fn start(pool: PgPool) -> PendingList {
        let (alive, gone) = mpsc::channel(1);
        let shared = Arc::new(Shared {
            written: AtomicU64::new(0),
            _alive: alive,
        });
        tokio::spawn(clean_loop(pool, Arc::downgrade(&shared), gone));
        PendingList { shared }
    }

    /// Tells the cleaner that `rows` rows were written.
    pub(super) fn written(&self, rows: usize) {
        if rows > 0 {
            self.shared
                .written
                .fetch_add(rows as u64, Ordering::Relaxed);
        }
    }
}

async fn clean_loop(pool: PgPool, shared: Weak<Shared>, mut gone: mpsc::Receiver<()>) {
    let mut tick = tokio::time::interval(CLEAN_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = gone.recv() => return,
        }
        let Some(state) = shared.upgrade() else {
            return;
        };
        let written = state.written.swap(0, Ordering::Relaxed);
        drop(state);
        if written == 0 {
            continue;
        }
        let cleaned = tokio::select! {
            r = sqlx::query_scalar::<_, i64>(CLEAN_SQL).fetch_one(&pool) => r,
            _ = gone.recv() => return,
        };
        match cleaned {
            Ok(pages) => tracing::trace!(pages, written, "full-text pending list cleaned"),
            Err(e) if refused_for_good(&e) => {
                tracing::warn!(
                    error = %e,
                    "cannot clean the full-text index's pending list in the background; \
                     inserts will clean it themselves (slower writes now and then)"
                );
                return;
            }
            // A lost connection or a busy server: the next tick tries again,
            // with the rows written meanwhile.
            Err(e) => tracing::debug!(error = %e, "cleaning the full-text pending list failed"),
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
