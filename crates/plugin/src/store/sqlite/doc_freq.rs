//! How many memories contain each search phrase (document frequencies, the
//! `n(i)` of bm25's IDF), remembered between searches.
//!
//! Counting a common word walks its whole posting list: milliseconds at a
//! million rows, per word, per search. The counts change only when the
//! table does, so each is kept with the state of the table it was counted
//! at, and that state is read again (three integers) by every search:
//!
//! - `max_seq`, the highest row key: rows are only ever appended above it;
//! - `inserted` and `removed`, counters that triggers on `memory_records`
//!   keep in `memory_fts_changes` (an insert; a delete or a change of
//!   content or namespace).
//!
//! When nothing was removed since a count and exactly the rows above its
//! `max_seq` were inserted, the count is brought up to date by counting the
//! phrase among those new rows only (FTS5 seeks to them). Any removal, or
//! rows that appeared below `max_seq` (only a hand-made insert does that),
//! means counting again. Every count and every state is read inside the
//! search's own read transaction, so the frequencies always describe the
//! very snapshot the search ranks: the scores are exact, never stale, also
//! with other processes writing the same file.

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
    max_seq: i64,
    inserted: i64,
    removed: i64,
}

impl TableState {
    async fn read(conn: &mut SqliteConnection) -> StoreResult<TableState> {
        let (max_seq, inserted, removed): (i64, i64, i64) = sqlx::query_as(
            "SELECT coalesce((SELECT max(seq) FROM memory_records), 0), inserted, removed
             FROM memory_fts_changes",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| db_error("reading the full-text index state", e))?;
        Ok(TableState {
            max_seq,
            inserted,
            removed,
        })
    }

    /// Whether `self` is `earlier` plus appended rows only, as far as the
    /// counters tell; the caller still checks where the new rows are.
    fn only_appended_since(&self, earlier: &TableState) -> bool {
        self.removed == earlier.removed
            && self.inserted >= earlier.inserted
            && self.max_seq >= earlier.max_seq
    }

    /// Whether `self` is at least as recent as `other`.
    fn not_older_than(&self, other: &TableState) -> bool {
        self.inserted >= other.inserted && self.removed >= other.removed
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
        // Rows above a given max_seq, counted once per search.
        let mut appended: HashMap<i64, i64> = HashMap::new();
        let mut out = Vec::with_capacity(phrases.len());
        for phrase in phrases {
            let cached = self.lock().get(phrase).copied();
            let docs = match cached {
                Some(c) if c.at == now => c.docs,
                Some(c) if now.only_appended_since(&c.at) => {
                    let new_rows = match appended.get(&c.at.max_seq) {
                        Some(n) => *n,
                        None => {
                            let n = rows_above(conn, c.at.max_seq).await?;
                            appended.insert(c.at.max_seq, n);
                            n
                        }
                    };
                    if new_rows == now.inserted - c.at.inserted {
                        c.docs + count(conn, phrase, Some(c.at.max_seq)).await?
                    } else {
                        count(conn, phrase, None).await?
                    }
                }
                _ => count(conn, phrase, None).await?,
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
            if !count.at.not_older_than(&known.at) {
                return;
            }
        } else if counts.len() >= MAX_PHRASES {
            counts.clear();
        }
        counts.insert(phrase.to_string(), count);
    }
}

async fn rows_above(conn: &mut SqliteConnection, seq: i64) -> StoreResult<i64> {
    sqlx::query_scalar("SELECT count(*) FROM memory_records WHERE seq > ?1")
        .bind(seq)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| db_error("counting new memories", e))
}

/// Rows whose content holds `phrase`, all of them or those above `after`.
async fn count(conn: &mut SqliteConnection, phrase: &str, after: Option<i64>) -> StoreResult<i64> {
    let expression = format!("{{content}} : {phrase}");
    let query = match after {
        Some(seq) => sqlx::query_scalar(
            "SELECT count(*) FROM memory_records_fts
             WHERE memory_records_fts MATCH ?1 AND rowid > ?2",
        )
        .bind(expression)
        .bind(seq),
        None => sqlx::query_scalar(
            "SELECT count(*) FROM memory_records_fts WHERE memory_records_fts MATCH ?1",
        )
        .bind(expression),
    };
    query
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| db_error("counting a full-text phrase", e))
}
