//! Floors of the SQLite figures: the plugin's own SQLite statements run
//! directly on the same database file, through sqlx, with no HTTP between.
//!
//! Like the plugin, writes go through a single connection (SQLite admits one
//! writer at a time) and reads through a pool, with WAL and `synchronous =
//! NORMAL`. The statements and their arguments come from the store itself
//! (`memory_plugin::store::sqlite`), and the readers are prepared by the
//! store's `prepare_connection` (its full-text ranking function).

use crate::floors::Mode;
use anyhow::{Context, Result};
use memory_contract::{BatchWrite, MemoryKind, MemorySource, MemoryWrite};
use memory_plugin::store::sqlite;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::Path;
use std::time::Duration;

/// A writer and a reader pool on one SQLite file.
pub struct SqliteFloor {
    pub writer: SqlitePool,
    pub reader: SqlitePool,
}

impl SqliteFloor {
    /// Opens the file the plugin created.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened.
    pub async fn open(path: &Path, readers: u32) -> Result<SqliteFloor> {
        let base = SqliteConnectOptions::new()
            .filename(path)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(base.clone())
            .await
            .with_context(|| format!("cannot open {}", path.display()))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(readers.max(1))
            .after_connect(|conn, _| Box::pin(sqlite::prepare_connection(conn)))
            .connect_with(base.read_only(true))
            .await
            .with_context(|| format!("cannot open {} for reading", path.display()))?;
        Ok(SqliteFloor { writer, reader })
    }

    /// Closes both pools.
    pub async fn close(self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// The store's timestamp form: fixed-width RFC 3339 UTC with microseconds.
fn now_text() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// One memory written as the plugin writes a group of one: its upsert
/// statement (which writes only into a live namespace) on an array of one
/// row built by the store, a transaction of its own on the writer.
///
/// # Errors
///
/// When the statement fails or writes nothing.
pub async fn insert_one(floor: &SqliteFloor, namespace: &str, content: &str) -> Result<()> {
    let rows = sqlite::write_batch_array(&[BatchWrite {
        namespace: namespace.to_string(),
        write: MemoryWrite::new(content.to_string(), MemoryKind::Fact, MemorySource::Agent),
    }])?;
    let written = sqlx::query(sqlite::WRITE_BATCH_SQL)
        .bind(rows)
        .bind(now_text())
        .bind(false)
        .execute(&floor.writer)
        .await?
        .rows_affected();
    anyhow::ensure!(
        written == 1,
        "insert wrote {written} rows (is namespace {namespace} live?)"
    );
    Ok(())
}

/// The plugin's SQLite search statement for `mode`, from the store itself
/// (semantic search is done in process there, so it has no SQL floor).
pub fn search_sql(mode: Mode) -> Option<String> {
    match mode {
        Mode::FullText => Some(sqlite::full_text_sql()),
        Mode::Substring | Mode::Recent => Some(sqlite::unscored_search_sql()),
        Mode::Semantic => None,
    }
}

/// The argument `?4` of [`search_sql`] for `mode` and the request's text,
/// built by the store: the MATCH expression naming the namespaces, or the
/// JSON list of LIKE patterns.
pub fn search_argument(mode: Mode, text: Option<&str>, namespaces: &[String]) -> Option<String> {
    let text = text?;
    match mode {
        Mode::FullText => sqlite::full_text_match(text, namespaces),
        Mode::Substring => Some(sqlite::substring_argument(text)),
        Mode::Recent | Mode::Semantic => None,
    }
}

/// Document frequencies (`?6` of the full-text statement) of each text,
/// counted once by the store's own function, as the plugin remembers them
/// between searches.
///
/// # Errors
///
/// When counting fails.
pub async fn doc_freqs(
    floor: &SqliteFloor,
    texts: &[&str],
) -> Result<std::collections::HashMap<String, Vec<u8>>> {
    let mut conn = floor.reader.acquire().await?;
    let mut out = std::collections::HashMap::new();
    for text in texts {
        let counted = sqlite::full_text_arguments(&mut conn, text, &[])
            .await
            .map_err(|e| anyhow::anyhow!("counting document frequencies: {e}"))?;
        if let Some((_, freqs)) = counted {
            out.insert((*text).to_string(), freqs);
        }
    }
    Ok(out)
}

/// Runs one search directly on the reader pool; `doc_freqs` is `?6` of
/// the full-text statement (unused by the others).
///
/// # Errors
///
/// When the query fails.
pub async fn search_direct(
    floor: &SqliteFloor,
    sql: &str,
    namespaces: &[String],
    argument: Option<&str>,
    doc_freqs: Option<&[u8]>,
    limit: i64,
) -> Result<usize> {
    let rows = sqlx::query(sql)
        .bind(serde_json::Value::from(namespaces.to_vec()).to_string())
        .bind(now_text())
        .bind(None::<String>)
        .bind(argument)
        .bind(limit)
        .bind(doc_freqs)
        .fetch_all(&floor.reader)
        .await?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_come_from_the_store() {
        let names = vec!["workspace:a".to_string()];
        let fts = search_argument(Mode::FullText, Some("deploy rollback"), &names).unwrap();
        assert!(fts.contains("\"deploy\" \"rollback\""), "{fts}");
        assert!(fts.contains("namespace_key"), "{fts}");
        let arg = search_argument(Mode::Substring, Some("q"), &names).unwrap();
        assert_eq!(arg, r#"["%Q%","%q%"]"#);
        assert_eq!(search_argument(Mode::Recent, Some("x"), &names), None);
        assert!(search_sql(Mode::Semantic).is_none());
    }
}
