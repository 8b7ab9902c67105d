//! Floors of the SQLite figures: the plugin's own SQLite statements run
//! directly on the same database file, through sqlx, with no HTTP between.
//!
//! Like the plugin, writes go through a single connection (SQLite admits one
//! writer at a time) and reads through a pool, with WAL and `synchronous =
//! NORMAL`. The statements mirror `crates/plugin/src/store/sqlite.rs`.

use crate::floors::Mode;
use anyhow::{Context, Result};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::Path;
use std::time::Duration;
use uuid::Uuid;

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

/// One memory written with the plugin's statements: the live-namespace
/// check and the upsert, in one transaction on the writer.
///
/// # Errors
///
/// When a statement fails or nothing is written.
pub async fn insert_one(floor: &SqliteFloor, namespace: &str, content: &str) -> Result<()> {
    let now = now_text();
    let mut tx = floor.writer.begin().await?;
    let live: Option<String> = sqlx::query_scalar(
        "SELECT name FROM memory_namespaces WHERE name = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
    )
    .bind(namespace)
    .bind(&now)
    .fetch_optional(&mut *tx)
    .await?;
    anyhow::ensure!(live.is_some(), "namespace {namespace} is not live");
    let stored: Option<String> = sqlx::query_scalar(memory_plugin::store::sqlite::WRITE_MEMORY_SQL)
        .bind(Uuid::new_v4().to_string())
        .bind(namespace)
        .bind(content)
        .bind("fact")
        .bind("agent")
        .bind(None::<String>)
        .bind(None::<String>)
        .bind(0i64)
        .bind(None::<Vec<u8>>)
        .bind(None::<String>)
        .bind(&now)
        .fetch_optional(&mut *tx)
        .await?;
    anyhow::ensure!(stored.is_some(), "insert wrote nothing");
    tx.commit().await?;
    Ok(())
}

const MEMORY_COLUMNS: &str =
    "r.id, r.namespace, r.content, r.kind, r.source, r.expires_at, r.propagation, r.pin, r.created_at";
const FILTER: &str = "r.namespace IN (SELECT value FROM json_each(?1))
               AND (r.expires_at IS NULL OR r.expires_at > ?2)
               AND (?3 IS NULL OR r.kind IN (SELECT value FROM json_each(?3)))";

/// The plugin's SQLite search statement for `mode` (semantic search is done
/// in process there, so it has no SQL floor).
pub fn search_sql(mode: Mode) -> Option<String> {
    match mode {
        Mode::FullText => Some(format!(
            "SELECT {MEMORY_COLUMNS}, -bm25(memory_records_fts) AS score
             FROM memory_records_fts
             JOIN memory_records r ON r.seq = memory_records_fts.rowid
             WHERE memory_records_fts MATCH ?4 AND {FILTER}
             ORDER BY bm25(memory_records_fts), r.pin DESC, r.created_at DESC, r.seq DESC
             LIMIT ?5"
        )),
        Mode::Substring | Mode::Recent => Some(format!(
            "SELECT {MEMORY_COLUMNS} FROM memory_records r
             WHERE {FILTER}
               AND (?4 IS NULL OR EXISTS (
                   SELECT 1 FROM json_each(?4) AS p WHERE r.content LIKE p.value ESCAPE '\\'))
             ORDER BY r.pin DESC, r.created_at DESC, r.seq DESC
             LIMIT ?5"
        )),
        Mode::Semantic => None,
    }
}

/// The argument `?4` of [`search_sql`] for `mode` and the request's text:
/// an FTS5 expression of quoted words, or the JSON list of LIKE patterns.
pub fn search_argument(mode: Mode, text: Option<&str>) -> Option<String> {
    let text = text?;
    match mode {
        Mode::FullText => Some(
            text.split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(|w| format!("\"{w}\""))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        Mode::Substring => {
            let mut variants = vec![text.to_string(), text.to_lowercase(), text.to_uppercase()];
            variants.sort();
            variants.dedup();
            let patterns: Vec<String> = variants
                .into_iter()
                .map(|v| {
                    format!(
                        "%{}%",
                        v.replace('\\', "\\\\")
                            .replace('%', "\\%")
                            .replace('_', "\\_")
                    )
                })
                .collect();
            Some(serde_json::Value::from(patterns).to_string())
        }
        Mode::Recent | Mode::Semantic => None,
    }
}

/// Runs one search directly on the reader pool.
///
/// # Errors
///
/// When the query fails.
pub async fn search_direct(
    floor: &SqliteFloor,
    sql: &str,
    namespaces: &[String],
    argument: Option<&str>,
    limit: i64,
) -> Result<usize> {
    let rows = sqlx::query(sql)
        .bind(serde_json::Value::from(namespaces.to_vec()).to_string())
        .bind(now_text())
        .bind(None::<String>)
        .bind(argument)
        .bind(limit)
        .fetch_all(&floor.reader)
        .await?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_text_argument_quotes_every_word() {
        assert_eq!(
            search_argument(Mode::FullText, Some("deploy rollback")).as_deref(),
            Some("\"deploy\" \"rollback\"")
        );
    }

    #[test]
    fn substring_argument_lists_case_variants_as_like_patterns() {
        let arg = search_argument(Mode::Substring, Some("q")).unwrap();
        assert_eq!(arg, r#"["%Q%","%q%"]"#);
        assert_eq!(search_argument(Mode::Recent, Some("x")), None);
    }
}
