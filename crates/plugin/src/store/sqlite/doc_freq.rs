//! How many memories contain each search phrase (document frequencies, the
//! `n(i)` of bm25's IDF), remembered between searches.
//!
//! Counting a common word walks its whole posting list: about 10 ms at a
//! million rows, per word, per search. The counts change only when the
//! table does, so each is kept with the state of the table it was counted
//! at, and that state (one row of `memory_fts_changes`, kept by triggers;
//! see `fts_change_log.sql`) is read again by every search:
//!
//! - `high_water`, the highest row key ever given out: rows above the mark
//!   a count was taken at are exactly the rows appended since;
//! - `logged`, the position in `memory_fts_log`, which records every other
//!   change of the indexed text (deletes, rewrites, an insert under a key
//!   used before) with its row key and +1 or -1;
//! - `log_floor`, up to where the log has been trimmed.
//!
//! A remembered count is brought up to date by counting the phrase among
//! the appended rows (FTS5 seeks to them) and summing the log entries since
//! the count that match the phrase and concern rows the count saw (keys at
//! or below its high-water mark). Only a count older than the log's floor
//! is taken again. Every count and every state is read inside the search's
//! own read transaction, so the frequencies always describe the very
//! snapshot the search ranks: the scores are exact, never stale, also with
//! other processes writing the same file.

use super::db_error;
use crate::store::StoreResult;
use sqlx::SqliteConnection;
use std::collections::HashMap;
use std::sync::Mutex;

/// Phrases remembered at most; the cache starts afresh beyond that.
const MAX_PHRASES: usize = 10_000;

/// The state of the table a count describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TableState {
    high_water: i64,
    logged: i64,
    log_floor: i64,
}

impl TableState {
    async fn read(conn: &mut SqliteConnection) -> StoreResult<TableState> {
        let (high_water, logged, log_floor): (i64, i64, i64) = sqlx::query_as(
            "SELECT high_water, logged, log_floor FROM memory_fts_changes WHERE id = 1",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| db_error("reading the full-text index state", e))?;
        Ok(TableState {
            high_water,
            logged,
            log_floor,
        })
    }

    /// Whether a count taken at `earlier` can be brought up to `self` from
    /// the appended rows and the log.
    fn reaches_from(&self, earlier: &TableState) -> bool {
        earlier.logged >= self.log_floor
            && self.logged >= earlier.logged
            && self.high_water >= earlier.high_water
    }
}

#[derive(Debug, Clone, Copy)]
struct Count {
    docs: i64,
    at: TableState,
}

/// Document frequencies by phrase, shared by every search of one store.
#[derive(Debug, Default)]
pub(super) struct DocFreqCache {
    counts: Mutex<HashMap<String, Count>>,
}

impl DocFreqCache {
    /// The number of rows whose content holds each of `phrases` (FTS5
    /// phrases, quoted), in the snapshot `conn`'s transaction reads.
    pub(super) async fn doc_freqs(
        &self,
        conn: &mut SqliteConnection,
        phrases: &[String],
    ) -> StoreResult<Vec<i64>> {
        let now = TableState::read(conn).await?;
        let mut out = Vec::with_capacity(phrases.len());
        for phrase in phrases {
            let cached = self.lock().get(phrase).copied();
            let docs = match cached {
                Some(c) if c.at == now => c.docs,
                Some(c) if now.reaches_from(&c.at) => {
                    c.docs + changes_since(conn, phrase, &c.at).await?
                }
                _ => count(conn, phrase).await?,
            };
            self.remember(phrase, Count { docs, at: now });
            out.push(docs);
        }
        Ok(out)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Count>> {
        // A panic elsewhere cannot leave a count half-written: recover.
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn remember(&self, phrase: &str, count: Count) {
        let mut counts = self.lock();
        if let Some(known) = counts.get(phrase) {
            // A search on an older snapshot does not replace a newer count.
            if count.at.logged < known.at.logged || count.at.high_water < known.at.high_water {
                return;
            }
        } else if counts.len() >= MAX_PHRASES {
            counts.clear();
        }
        counts.insert(phrase.to_string(), count);
    }
}

/// The MATCH expression of `phrase` in the content column.
fn in_content(phrase: &str) -> String {
    format!("{{content}} : {phrase}")
}

/// Rows whose content holds `phrase`, counted on the whole index.
async fn count(conn: &mut SqliteConnection, phrase: &str) -> StoreResult<i64> {
    sqlx::query_scalar("SELECT count(*) FROM memory_records_fts WHERE memory_records_fts MATCH ?1")
        .bind(in_content(phrase))
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| db_error("counting a full-text phrase", e))
}

/// How the number of rows holding `phrase` changed since `at`: the rows
/// appended above its high-water mark that hold it, plus the log entries
/// since it, for rows at or below that mark, whose text holds it.
async fn changes_since(
    conn: &mut SqliteConnection,
    phrase: &str,
    at: &TableState,
) -> StoreResult<i64> {
    let expression = in_content(phrase);
    let appended: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM memory_records_fts
         WHERE memory_records_fts MATCH ?1 AND rowid > ?2",
    )
    .bind(&expression)
    .bind(at.high_water)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| db_error("counting a full-text phrase in new rows", e))?;
    let logged: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(delta), 0) FROM memory_fts_log
         WHERE memory_fts_log MATCH ?1 AND rowid > ?2 AND seq <= ?3",
    )
    .bind(&expression)
    .bind(at.logged)
    .bind(at.high_water)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| db_error("reading the full-text change log", e))?;
    Ok(appended + logged)
}
