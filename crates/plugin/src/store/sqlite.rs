//! SQLite backend: the zero-setup default, one database file and no server.
//!
//! Layout and semantics match the Postgres store (DESIGN section 4): the
//! same table names, upsert on id, `Conflict` for an id in another
//! namespace, expired rows treated as absent. What differs is how it is
//! served:
//! - full-text search uses an FTS5 index with the `porter unicode61`
//!   tokenizer, kept in step with `memory_records` by triggers. The index
//!   holds each row's namespace too, so a search reads only the rows of
//!   the namespaces it names, and ranks them by bm25 with document
//!   frequencies remembered between searches (`rank`, `doc_freq`): the
//!   same scores as FTS5's `bm25()`, without walking every posting list
//!   of the query's words on every search;
//! - semantic search compares embeddings exactly (cosine similarity in
//!   `f64`) over the live rows of the searched namespaces, inside SQLite
//!   with the `memory_cosine` function (`cosine`), so only the best rows
//!   leave the database; a hybrid search ranks both sides by id in one read
//!   transaction and reads in full only the memories it answers;
//! - every write goes through one writer connection, so writers queue in
//!   this process instead of meeting SQLite's "database is locked"; readers
//!   use their own pool and, in WAL mode, never wait for the writer;
//! - a batch is written by one statement (`batch`), and WAL checkpoints run
//!   on a connection of their own (`checkpoint`), not inside a writer's
//!   commit;
//! - the page caches are bounded in total and nothing is memory-mapped, so
//!   resident memory stays near 100 MiB whatever the size of the file.

mod batch;
mod checkpoint;
mod codec;
mod cosine;
mod dimension;
mod doc_freq;
mod group;
mod migrate;
mod rank;
mod text_query;
pub use text_query::STOP_WORDS;

use crate::store::{
    hybrid, PoolStats, SearchQuery, Store, StoreError, StoreFeatures, StoreResult, SweepReport,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use codec::{MEMORY_COLUMNS, NAMESPACE_COLUMNS};
use futures::TryStreamExt;
use memory_contract::checksum::{memory_digest, Accumulator};
use memory_contract::{
    BatchWrite, ChecksumResponse, ListResponse, Memory, MemoryWrite, Namespace,
    NamespaceListResponse, NamespacePatch, NamespaceUpsert, RankMode, WriteAck,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqliteConnection, SqlitePool, Transaction};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The single-memory upsert. The WHERE on DO UPDATE keeps a row that lives
/// in another namespace untouched; RETURNING then yields nothing, which is
/// the conflict. A row that had expired counts as new, so it takes a new
/// creation time unless the write carries one. Public so that benchmarks
/// measure the very statement the store runs.
pub const WRITE_MEMORY_SQL: &str = "INSERT INTO memory_records
                 (id, namespace, content, kind, source, expires_at, propagation, pin, embedding,
                  created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, coalesce(?10, ?11))
             ON CONFLICT (id) DO UPDATE SET
                 content = excluded.content,
                 kind = excluded.kind,
                 source = excluded.source,
                 expires_at = excluded.expires_at,
                 propagation = excluded.propagation,
                 pin = excluded.pin,
                 embedding = excluded.embedding,
                 created_at = coalesce(?10, CASE
                     WHEN memory_records.expires_at IS NOT NULL
                          AND memory_records.expires_at <= ?11 THEN ?11
                     ELSE memory_records.created_at END)
             WHERE memory_records.namespace = excluded.namespace
             RETURNING id";

/// The batch route's upsert: many memories per statement (see `batch`).
pub use batch::{write_batch_array, WRITE_BATCH_SQL};
pub use dimension::DEFAULT_EMBEDDING_DIM;

/// How long a connection waits for a lock held by another process (another
/// `memory-plugin`, the `sqlite3` shell) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a write may queue for the writer connection. Writes are short,
/// so reaching this means the store is badly overloaded; the caller then
/// gets `Unavailable`, never a lock error.
const WRITE_QUEUE_TIMEOUT: Duration = Duration::from_secs(120);

/// Most reader connections of a file database.
const MAX_READERS: u32 = 8;

// Memory. SQLite keeps a page cache per connection, and every page it holds
// (or maps) counts in the process's resident memory. The caches below
// bound the store at about 32 + 32 MiB of pages whatever the number of
// cores; nothing is memory-mapped (`mmap_size` 0, SQLite's default): a
// mapped file counts in resident memory page by page as it is read, per
// connection, up to the whole file, and at a million rows the reads it
// saved were not what searches waited for (the full-text index was).

/// Page cache of the writer connection, in KiB (negative: a size, not a
/// page count, in SQLite's terms). Writes touch index pages all over the
/// file; twice this gained nothing measurable at a million rows.
const WRITER_CACHE_KIB: &str = "-32768";

/// Page cache shared out among the reader connections, in KiB.
const READERS_CACHE_KIB: u32 = 32768;

/// Rows the sweep deletes per statement, so that queued writes get the
/// writer between chunks instead of waiting for one huge delete.
const SWEEP_CHUNK: i64 = 2000;

/// Options of [`SqliteStore::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Dimension every embedding must have (default 1536); a file that
    /// already holds embeddings of another dimension does not open. See
    /// [`SqliteStore::open_with_default_dimension`] to take the stored
    /// dimension, or [`DEFAULT_EMBEDDING_DIM`] for a file without any.
    pub embedding_dim: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            embedding_dim: 1536,
        }
    }
}

/// A [`Store`] on a SQLite file (or a private in-memory database).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Exactly one connection: every write queues here.
    writer: SqlitePool,
    /// Read-only connections; the writer pool itself for an in-memory database.
    reader: SqlitePool,
    in_memory: bool,
    embedding_dim: usize,
    /// Document frequencies of full-text phrases, shared by every search.
    doc_freqs: Arc<doc_freq::DocFreqCache>,
    /// WAL checkpoints off the writer (file databases only).
    checkpointer: Option<Arc<checkpoint::Checkpointer>>,
    /// Queue of single writes to the group committer (see `group`); `None`
    /// in the committer's own copy of the store.
    group: Option<crate::store::group::GroupQueue>,
}

/// Where a `sqlite:` URL points.
struct ParsedUrl {
    options: SqliteConnectOptions,
    in_memory: bool,
}

/// Parses `sqlite:PATH`, `sqlite://PATH` or `sqlite::memory:` (query
/// parameters as sqlx accepts them). Errors never echo the URL itself.
fn parse_url(url: &str) -> StoreResult<ParsedUrl> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| {
            let scheme = url.split(':').next().unwrap_or_default();
            StoreError::BadRequest(format!(
                "a SQLite database URL starts with \"sqlite:\" (sqlite:PATH, sqlite://PATH or \
                 sqlite::memory:); this one starts with {scheme:?}"
            ))
        })?;
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    let memory_mode = params
        .split('&')
        .any(|p| p.eq_ignore_ascii_case("mode=memory"));
    let in_memory = database == ":memory:" || memory_mode;
    if database.is_empty() && !in_memory {
        return Err(StoreError::BadRequest(
            "the SQLite database URL names no file; use sqlite:PATH or sqlite::memory:".into(),
        ));
    }
    let options = SqliteConnectOptions::from_str(&format!("sqlite:{rest}")).map_err(|e| {
        StoreError::BadRequest(format!("invalid SQLite database URL for {database:?}: {e}"))
    })?;
    Ok(ParsedUrl { options, in_memory })
}

/// Prepares a connection to the store's file as the store prepares each of
/// its own: registers the full-text ranking function (see `rank`) and the
/// cosine similarity (see `cosine`), which SQLite keeps per connection.
/// Public so that benchmarks can run the store's statements
/// ([`full_text_sql`], [`semantic_search_sql`]) on connections of their own.
///
/// # Errors
///
/// When the SQLite library offers no FTS5 or refuses the function.
pub async fn prepare_connection(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr().cast();
    // SAFETY: the handle is an open connection, locked for this thread
    // until `handle` drops.
    unsafe { rank::register(db).and_then(|()| cosine::register(db)) }
        .map_err(|e| sqlx::Error::Configuration(e.into()))
}

/// The semantic search statement the store runs. Parameters: `?1` the JSON
/// array of namespaces, `?2` now (fixed-width RFC 3339 text), `?3` a JSON
/// array of kinds or NULL, `?4` the query vector as a blob of little-endian
/// `f32`, `?5` its Euclidean norm, `?6` the limit. Order: cosine similarity
/// descending, then pinned, newer, later written; rows whose similarity is
/// undefined have a NULL score and come last. Run it on a connection
/// prepared by [`prepare_connection`].
pub fn semantic_search_sql() -> String {
    semantic_search_sql_selecting(MEMORY_COLUMNS)
}

/// [`semantic_search_sql`] selecting `columns` (of `memory_records r`) and
/// the score.
fn semantic_search_sql_selecting(columns: &str) -> String {
    format!(
        "SELECT {columns}, {cosine}(r.embedding, ?4, ?5) AS score
         FROM memory_records r
         WHERE {filter} AND r.embedding IS NOT NULL
         ORDER BY score DESC, r.pin DESC, r.created_at DESC, r.seq DESC
         LIMIT ?6",
        cosine = cosine::FUNCTION,
        filter = SearchFilter::SQL,
    )
}

/// The full-text search statement the store runs. Parameters: `?1` the
/// JSON array of namespaces, `?2` now (fixed-width RFC 3339 text), `?3` a
/// JSON array of kinds or NULL, `?4` the MATCH expression and `?6` the
/// document frequencies (both from [`full_text_arguments`]), `?5` the
/// limit. Run it on a connection prepared by [`prepare_connection`].
pub fn full_text_sql() -> String {
    full_text_sql_selecting(MEMORY_COLUMNS)
}

/// [`full_text_sql`] selecting `columns` (of `memory_records r`) and the
/// score.
fn full_text_sql_selecting(columns: &str) -> String {
    // CROSS JOIN keeps the index as the outer loop: probing it once per row
    // of the namespaces would cost far more than one MATCH.
    format!(
        "SELECT {columns}, {score}(memory_records_fts, ?6) AS score
         FROM memory_records_fts
         CROSS JOIN memory_records r ON r.seq = memory_records_fts.rowid
         WHERE memory_records_fts MATCH ?4 AND {filter}
         ORDER BY score DESC, r.pin DESC, r.created_at DESC, r.seq DESC
         LIMIT ?5",
        score = rank::FUNCTION,
        filter = SearchFilter::SQL
    )
}

/// The arguments `?4` (MATCH expression) and `?6` (document frequencies,
/// counted now, without the store's cache) of [`full_text_sql`] for a
/// search of `text` in `namespaces`; `None` when the text holds no word.
///
/// # Errors
///
/// When counting fails.
pub async fn full_text_arguments(
    conn: &mut SqliteConnection,
    text: &str,
    namespaces: &[String],
) -> StoreResult<Option<(String, Vec<u8>)>> {
    let Some(phrases) = text_query::fts_phrases(text) else {
        return Ok(None);
    };
    let counts = doc_freq::DocFreqCache::default()
        .doc_freqs(conn, &phrases)
        .await?;
    Ok(Some((
        text_query::match_in_namespaces(&phrases, namespaces),
        counts.iter().flat_map(|n| n.to_le_bytes()).collect(),
    )))
}

/// Maps a sqlx error to a [`StoreError`]; `context` says what was being done.
fn db_error(context: &str, e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(format!("{context}: {e}")),
        sqlx::Error::Database(db) => {
            // Extended result codes keep the primary code in the low byte.
            let primary = db
                .code()
                .and_then(|c| c.parse::<i32>().ok())
                .map(|c| c & 0xff);
            match primary {
                // SQLITE_BUSY, SQLITE_LOCKED: another process held the
                // database longer than the busy timeout.
                Some(5) | Some(6) => {
                    StoreError::Unavailable(format!("{context}: database busy: {e}"))
                }
                // SQLITE_CANTOPEN, SQLITE_IOERR, SQLITE_FULL, SQLITE_READONLY
                Some(14) | Some(10) | Some(13) | Some(8) => {
                    StoreError::Unavailable(format!("{context}: {e}"))
                }
                _ => StoreError::Internal(format!("{context}: {e}")),
            }
        }
        _ => StoreError::Internal(format!("{context}: {e}")),
    }
}

fn namespace_not_found(name: &str) -> StoreError {
    StoreError::NotFound(format!("namespace {name:?} does not exist"))
}

/// The answer to a write whose id lives in another namespace.
fn conflict(id: Uuid) -> StoreError {
    StoreError::Conflict(format!(
        "memory {id} already exists in another namespace; it was not changed"
    ))
}

fn namespace_expired(name: &str) -> StoreError {
    StoreError::NotFound(format!("namespace {name:?} has expired"))
}

/// A JSON array of strings, for `IN (SELECT value FROM json_each(?))`: one
/// fixed statement whatever the list length.
fn json_list<T: AsRef<str>>(items: &[T]) -> String {
    serde_json::Value::from(items.iter().map(|s| s.as_ref()).collect::<Vec<_>>()).to_string()
}

/// Whether a namespace can be written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NamespaceState {
    Live,
    Absent,
    Expired,
}

impl NamespaceState {
    /// `Ok` for a live namespace, else `NotFound` naming it.
    fn require(self, name: &str) -> StoreResult<()> {
        match self {
            NamespaceState::Live => Ok(()),
            NamespaceState::Absent => Err(namespace_not_found(name)),
            NamespaceState::Expired => Err(namespace_expired(name)),
        }
    }
}

/// Reads whether namespace `name` exists and is live at `now`.
async fn namespace_state(
    conn: &mut SqliteConnection,
    name: &str,
    now: &str,
) -> StoreResult<NamespaceState> {
    let row: Option<Option<String>> =
        sqlx::query_scalar("SELECT expires_at FROM memory_namespaces WHERE name = ?1")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| db_error("reading namespace", e))?;
    Ok(match row {
        None => NamespaceState::Absent,
        Some(Some(expires_at)) if expires_at.as_str() <= now => NamespaceState::Expired,
        Some(_) => NamespaceState::Live,
    })
}

/// Checks that namespace `name` exists and has not expired at `now`.
async fn require_live_namespace(
    conn: &mut SqliteConnection,
    name: &str,
    now: &str,
) -> StoreResult<()> {
    namespace_state(conn, name, now).await?.require(name)
}

/// Namespace states already read inside one write transaction; a batch
/// names the same few namespaces many times, and no namespace changes
/// while the transaction holds the write lock.
type KnownNamespaces = HashMap<String, NamespaceState>;

impl SqliteStore {
    /// Opens (creating if missing) the database `url` points to and brings
    /// its schema up to date.
    ///
    /// `url` is `sqlite:PATH` or `sqlite://PATH` (the file is created when
    /// missing; its directory must exist), or `sqlite::memory:` for a
    /// private in-memory database that lives as long as the store.
    ///
    /// # Errors
    ///
    /// `BadRequest` for a URL that is not a SQLite URL or an embedding
    /// dimension of 0; `Unavailable` when the file cannot be opened;
    /// `Internal` when a migration fails.
    pub async fn open(url: &str, opts: SqliteOptions) -> StoreResult<SqliteStore> {
        if opts.embedding_dim == 0 {
            return Err(StoreError::BadRequest(
                "the embedding dimension must be at least 1".into(),
            ));
        }
        Self::open_with_dimension(url, Some(opts.embedding_dim)).await
    }

    /// Opens like [`SqliteStore::open`], with the embedding dimension of the
    /// embeddings the file already holds, or [`DEFAULT_EMBEDDING_DIM`] (384)
    /// when it holds none.
    ///
    /// # Errors
    ///
    /// As [`SqliteStore::open`].
    pub async fn open_with_default_dimension(url: &str) -> StoreResult<SqliteStore> {
        Self::open_with_dimension(url, None).await
    }

    /// Opens with `embedding_dim` when given (at least 1; it must match the
    /// stored embeddings), else the stored or default dimension.
    async fn open_with_dimension(
        url: &str,
        embedding_dim: Option<usize>,
    ) -> StoreResult<SqliteStore> {
        let ParsedUrl { options, in_memory } = parse_url(url)?;
        if !in_memory {
            let file = options.get_filename();
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                if !dir.is_dir() {
                    return Err(StoreError::Unavailable(format!(
                        "cannot open SQLite database {}: directory {} does not exist",
                        file.display(),
                        dir.display()
                    )));
                }
            }
        }
        let base = options.foreign_keys(true).busy_timeout(BUSY_TIMEOUT);
        let location = if in_memory {
            ":memory:".to_string()
        } else {
            base.get_filename().display().to_string()
        };
        let open_error =
            |e: sqlx::Error| db_error(&format!("cannot open SQLite database {location}"), e);

        // A larger page cache than SQLite's 2 MiB default keeps the id and
        // full-text indexes of a sizeable store in memory while writing.
        let mut writer_options = base
            .clone()
            .create_if_missing(true)
            .pragma("cache_size", WRITER_CACHE_KIB);
        if !in_memory {
            // WAL lets readers work while the writer writes; NORMAL sync is
            // durable against crashes of the process in WAL mode, and a
            // checkpoint syncs the WAL (see `checkpoint`: a task runs them
            // every 100 ms, the writer only if that task falls behind).
            writer_options = writer_options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .pragma("wal_autocheckpoint", checkpoint::WRITER_BACKSTOP_PAGES);
        }
        // One connection that never idles out: writes serialise on it, and
        // an in-memory database lives exactly as long as it does.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(WRITE_QUEUE_TIMEOUT)
            .idle_timeout(None)
            .max_lifetime(None)
            .after_connect(|conn, _| Box::pin(prepare_connection(conn)))
            .connect_with(writer_options.clone())
            .await
            .map_err(open_error)?;

        migrate::run(&writer).await?;
        let embedding_dim = dimension::resolve(embedding_dim, dimension::stored(&writer).await?)?;

        let checkpointer = if in_memory {
            None
        } else {
            Some(Arc::new(
                checkpoint::Checkpointer::start(writer_options, writer.clone())
                    .await
                    .map_err(open_error)?,
            ))
        };

        let reader = if in_memory {
            writer.clone()
        } else {
            let readers = std::thread::available_parallelism()
                .map_or(4, |n| n.get() as u32 * 2)
                .clamp(2, MAX_READERS);
            SqlitePoolOptions::new()
                .max_connections(readers)
                .acquire_timeout(WRITE_QUEUE_TIMEOUT)
                .after_connect(|conn, _| Box::pin(prepare_connection(conn)))
                .connect_with(
                    base.read_only(true)
                        .pragma("cache_size", format!("-{}", READERS_CACHE_KIB / readers))
                        .pragma("mmap_size", "0"),
                )
                .await
                .map_err(open_error)?
        };

        tracing::info!(database = %location, "SQLite store open");
        let mut store = SqliteStore {
            writer,
            reader,
            in_memory,
            embedding_dim,
            doc_freqs: Arc::default(),
            checkpointer,
            group: None,
        };
        store.group = Some(group::start(&store));
        Ok(store)
    }

    /// The journal mode the database runs in (`wal` for a file).
    ///
    /// # Errors
    ///
    /// When the database cannot be queried.
    pub async fn journal_mode(&self) -> StoreResult<String> {
        sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&self.writer)
            .await
            .map_err(|e| db_error("reading journal mode", e))
    }

    /// The schema version recorded in the database.
    ///
    /// # Errors
    ///
    /// When the database cannot be queried.
    pub async fn schema_version(&self) -> StoreResult<i64> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM memory_schema_migrations")
                .fetch_one(&self.reader)
                .await
                .map_err(|e| db_error("reading schema version", e))?;
        Ok(version.unwrap_or(0))
    }

    /// Closes every connection; a file database is checkpointed by SQLite as
    /// its last connection closes.
    pub async fn close(&self) {
        if !self.in_memory {
            self.reader.close().await;
        }
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.close().await;
        }
        self.writer.close().await;
    }

    fn check_dimension(&self, field: &str, embedding: &[f32]) -> StoreResult<()> {
        if embedding.len() != self.embedding_dim {
            return Err(StoreError::BadRequest(format!(
                "{field} has {} dimensions; this store expects {}",
                embedding.len(),
                self.embedding_dim
            )));
        }
        Ok(())
    }

    /// Writes one memory on the writer connection, inside the caller's
    /// transaction. A failed item changes nothing: every check runs before
    /// the single upsert statement, which SQLite applies atomically.
    async fn write_in_tx(
        &self,
        conn: &mut SqliteConnection,
        namespace: &str,
        write: &MemoryWrite,
        now: &str,
        known: &mut KnownNamespaces,
    ) -> StoreResult<WriteAck> {
        if let Some(embedding) = &write.embedding {
            self.check_dimension("embedding", embedding)?;
        }
        let expires_at = codec::encode_opt_time("expires_at", write.expires_at)?;
        let created_at = codec::encode_opt_time("created_at", write.created_at)?;
        let state = match known.get(namespace) {
            Some(state) => *state,
            None => {
                let state = namespace_state(conn, namespace, now).await?;
                known.insert(namespace.to_string(), state);
                state
            }
        };
        state.require(namespace)?;

        let id = write.id.unwrap_or_else(crate::store::fresh_id);
        let stored: Option<String> = sqlx::query_scalar(WRITE_MEMORY_SQL)
            .bind(id.to_string())
            .bind(namespace)
            .bind(&write.content)
            .bind(write.kind.as_str())
            .bind(write.source.as_str())
            .bind(expires_at)
            .bind(codec::encode_json(write.propagation.as_ref()))
            .bind(i64::from(write.pin.unwrap_or(false)))
            .bind(write.embedding.as_deref().map(codec::encode_embedding))
            .bind(created_at)
            .bind(now)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| db_error("writing memory", e))?;
        match stored {
            Some(_) => Ok(WriteAck {
                id,
                namespace: namespace.to_string(),
            }),
            None => Err(conflict(id)),
        }
    }

    /// Names among `names` of namespaces that exist and are live at `now`.
    async fn live_namespaces(
        conn: &mut SqliteConnection,
        names: &[String],
        now: &str,
    ) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT name FROM memory_namespaces
             WHERE name IN (SELECT value FROM json_each(?1))
               AND (expires_at IS NULL OR expires_at > ?2)",
        )
        .bind(json_list(names))
        .bind(now)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| db_error("reading namespaces", e))
    }

    /// Opens a search's read transaction (every statement of the search
    /// sees its snapshot) and finds which of the namespaces it names are
    /// live; `None` when none is.
    async fn begin_search(
        &self,
        query: &SearchQuery,
    ) -> StoreResult<Option<(Transaction<'static, Sqlite>, Vec<String>, SearchFilter)>> {
        if let Some(embedding) = &query.embedding {
            self.check_dimension("embedding", embedding)?;
        }
        let now = codec::encode_time("now", codec::now())?;
        let mut tx = self
            .reader
            .begin()
            .await
            .map_err(|e| db_error("starting search", e))?;
        let live = Self::live_namespaces(&mut tx, &query.namespaces, &now).await?;
        if live.is_empty() {
            return Ok(None);
        }
        let kinds: Vec<&str> = query.kinds.iter().map(|k| k.as_str()).collect();
        let filter = SearchFilter {
            namespaces: json_list(&live),
            now,
            kinds: (!kinds.is_empty()).then(|| json_list(&kinds)),
        };
        Ok(Some((tx, live, filter)))
    }

    /// A hybrid search in one read transaction: each side ranks only ids
    /// (no content leaves SQLite for a candidate that will not be shown),
    /// the two rankings are fused, and only the memories kept are read.
    async fn search_hybrid(
        &self,
        text: &SearchQuery,
        vector: &SearchQuery,
        limit: usize,
    ) -> StoreResult<Vec<Memory>> {
        let Some((mut tx, live, filter)) = self.begin_search(vector).await? else {
            return Ok(Vec::new());
        };
        let words = text.query.as_deref().map(str::trim).unwrap_or_default();
        let embedding = vector.embedding.as_deref().unwrap_or_default();
        let candidate = |row: &SqliteRow, _: f64| codec::candidate_from_row(row);
        let by_text = self
            .full_text_rows(
                &mut tx,
                &filter,
                &live,
                words,
                i64::from(text.limit),
                CANDIDATE_COLUMNS,
                candidate,
            )
            .await?;
        let by_vector = self
            .semantic_rows(
                &mut tx,
                &filter,
                embedding,
                i64::from(vector.limit),
                CANDIDATE_COLUMNS,
                candidate,
            )
            .await?;
        let fused = hybrid::fuse_by(&[by_text, by_vector], limit, |c| (c.id, c.created_at));
        let seqs: Vec<i64> = fused.iter().map(|(c, _)| c.seq).collect();
        let rows = sqlx::query(&format!(
            "SELECT r.seq, {MEMORY_COLUMNS} FROM memory_records r
             WHERE r.seq IN (SELECT value FROM json_each(?1))"
        ))
        .bind(serde_json::Value::from(seqs).to_string())
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| db_error("reading memories", e))?;
        tx.rollback()
            .await
            .map_err(|e| db_error("ending search", e))?;
        let mut by_seq = HashMap::with_capacity(rows.len());
        for row in &rows {
            let seq: i64 = row.try_get("seq").map_err(|e| db_error("reading row", e))?;
            by_seq.insert(seq, codec::memory_from_row(row)?);
        }
        fused
            .into_iter()
            .map(|(c, score)| {
                let mut memory = by_seq.remove(&c.seq).ok_or_else(|| {
                    StoreError::Internal(format!("memory {} vanished during the search", c.id))
                })?;
                memory.score = Some(score);
                Ok(memory)
            })
            .collect()
    }

    /// Semantic search: SQLite scores every candidate with `memory_cosine`
    /// and keeps the best `limit` (see [`semantic_search_sql`]), so only
    /// those rows, not every stored vector, leave the database.
    async fn search_semantic(
        &self,
        conn: &mut SqliteConnection,
        filter: &SearchFilter,
        embedding: &[f32],
        limit: i64,
    ) -> StoreResult<Vec<Memory>> {
        self.semantic_rows(
            conn,
            filter,
            embedding,
            limit,
            MEMORY_COLUMNS,
            scored_memory,
        )
        .await
    }

    /// The best `limit` rows by cosine similarity, `columns` of each made
    /// into a `T` by `make` (given the row and its score).
    async fn semantic_rows<T>(
        &self,
        conn: &mut SqliteConnection,
        filter: &SearchFilter,
        embedding: &[f32],
        limit: i64,
        columns: &str,
        make: impl Fn(&SqliteRow, f64) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        let query_norm = codec::norm(embedding);
        if query_norm == 0.0 {
            return Err(StoreError::BadRequest(
                "embedding: every component is 0, so it has no direction to compare by cosine \
                 similarity"
                    .into(),
            ));
        }
        let rows = sqlx::query(&semantic_search_sql_selecting(columns))
            .bind(&filter.namespaces)
            .bind(&filter.now)
            .bind(&filter.kinds)
            .bind(codec::encode_embedding(embedding))
            .bind(query_norm)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| db_error("searching by embedding", e))?;
        let mut found = Vec::with_capacity(rows.len());
        for row in &rows {
            // NULL sorts last: a stored vector cosine similarity cannot be
            // computed with (another dimension, all zeros) is never a match.
            let Some(score) = row
                .try_get::<Option<f64>, _>("score")
                .map_err(|e| db_error("reading score", e))?
            else {
                break;
            };
            found.push(make(row, score)?);
        }
        Ok(found)
    }

    /// Full-text search: the MATCH names the namespaces too, so FTS5 visits
    /// only their rows; each is scored by `memory_fts_score`, which gives
    /// what `-bm25()` gives on the content alone (see `rank`), from document
    /// frequencies the cache keeps up to date (see `doc_freq`).
    async fn search_full_text(
        &self,
        conn: &mut SqliteConnection,
        filter: &SearchFilter,
        namespaces: &[String],
        text: &str,
        limit: i64,
    ) -> StoreResult<Vec<Memory>> {
        self.full_text_rows(
            conn,
            filter,
            namespaces,
            text,
            limit,
            MEMORY_COLUMNS,
            scored_memory,
        )
        .await
    }

    /// The best `limit` rows by full-text rank, `columns` of each made into
    /// a `T` by `make` (given the row and its score).
    #[allow(clippy::too_many_arguments)]
    async fn full_text_rows<T>(
        &self,
        conn: &mut SqliteConnection,
        filter: &SearchFilter,
        namespaces: &[String],
        text: &str,
        limit: i64,
        columns: &str,
        make: impl Fn(&SqliteRow, f64) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        let Some(phrases) = text_query::fts_phrases(text) else {
            return Ok(Vec::new());
        };
        let doc_freqs = self.doc_freqs.doc_freqs(conn, &phrases).await?;
        let doc_freqs: Vec<u8> = doc_freqs.iter().flat_map(|n| n.to_le_bytes()).collect();
        let expression = text_query::match_in_namespaces(&phrases, namespaces);
        let rows = sqlx::query(&full_text_sql_selecting(columns))
            .bind(&filter.namespaces)
            .bind(&filter.now)
            .bind(&filter.kinds)
            .bind(expression)
            .bind(limit)
            .bind(doc_freqs)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| db_error("full-text search", e))?;
        rows.iter()
            .map(|row| {
                let score = row
                    .try_get("score")
                    .map_err(|e| db_error("reading score", e))?;
                make(row, score)
            })
            .collect()
    }

    async fn search_unscored(
        conn: &mut SqliteConnection,
        filter: &SearchFilter,
        substring: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<Memory>> {
        let patterns = substring.map(substring_argument);
        let rows: Vec<SqliteRow> = sqlx::query(&unscored_search_sql())
            .bind(&filter.namespaces)
            .bind(&filter.now)
            .bind(&filter.kinds)
            .bind(patterns)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| db_error("searching memories", e))?;
        rows.iter().map(codec::memory_from_row).collect()
    }
}

/// What a hybrid search's sides select: enough to fuse, not to answer.
const CANDIDATE_COLUMNS: &str = "r.seq, r.id, r.created_at";

/// A memory from its row, with its score.
fn scored_memory(row: &SqliteRow, score: f64) -> StoreResult<Memory> {
    let mut memory = codec::memory_from_row(row)?;
    memory.score = Some(score);
    Ok(memory)
}

/// The conditions every search mode shares, bound as parameters 1 to 3.
struct SearchFilter {
    /// JSON array of live namespace names.
    namespaces: String,
    now: String,
    /// JSON array of kinds, or `None` for every kind.
    kinds: Option<String>,
}

impl SearchFilter {
    /// Live memories of the listed namespaces and kinds (table alias `r`).
    const SQL: &'static str = "r.namespace IN (SELECT value FROM json_each(?1))
               AND (r.expires_at IS NULL OR r.expires_at > ?2)
               AND (?3 IS NULL OR r.kind IN (SELECT value FROM json_each(?3)))";
}

#[async_trait]
impl Store for SqliteStore {
    fn features(&self) -> StoreFeatures {
        StoreFeatures {
            embedding: true,
            embedding_dim: self.embedding_dim,
            backend: "sqlite",
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        // Reads a page of the file (unlike `SELECT 1`), so a broken disk or
        // a file that became unreadable shows up in health checks.
        sqlx::query("SELECT max(version) FROM memory_schema_migrations")
            .execute(&self.reader)
            .await
            .map_err(|e| db_error("ping", e))?;
        Ok(())
    }

    async fn upsert_namespace(&self, name: &str, req: &NamespaceUpsert) -> StoreResult<Namespace> {
        let expires_at = codec::encode_opt_time("expires_at", req.expires_at)?;
        let now = codec::encode_time("now", codec::now())?;
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| db_error("starting write", e))?;
        // An expired namespace is absent: writing it again starts afresh,
        // without the memories it held.
        sqlx::query(
            "DELETE FROM memory_namespaces
             WHERE name = ?1 AND expires_at IS NOT NULL AND expires_at <= ?2",
        )
        .bind(name)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(|e| db_error("replacing expired namespace", e))?;
        let row = sqlx::query(&format!(
            "INSERT INTO memory_namespaces (name, kind, expires_at, metadata, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (name) DO UPDATE SET
                 kind = excluded.kind,
                 expires_at = excluded.expires_at,
                 metadata = excluded.metadata
             RETURNING {NAMESPACE_COLUMNS}"
        ))
        .bind(name)
        .bind(req.kind.as_str())
        .bind(expires_at)
        .bind(codec::encode_json(req.metadata.as_ref()))
        .bind(&now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| db_error("writing namespace", e))?;
        let namespace = codec::namespace_from_row(&row)?;
        tx.commit()
            .await
            .map_err(|e| db_error("committing namespace", e))?;
        Ok(namespace)
    }

    async fn get_namespace(&self, name: &str) -> StoreResult<Option<Namespace>> {
        let now = codec::encode_time("now", codec::now())?;
        let row = sqlx::query(&format!(
            "SELECT {NAMESPACE_COLUMNS} FROM memory_namespaces
             WHERE name = ?1 AND (expires_at IS NULL OR expires_at > ?2)"
        ))
        .bind(name)
        .bind(now)
        .fetch_optional(&self.reader)
        .await
        .map_err(|e| db_error("reading namespace", e))?;
        row.as_ref().map(codec::namespace_from_row).transpose()
    }

    async fn patch_namespace(&self, name: &str, patch: &NamespacePatch) -> StoreResult<Namespace> {
        let expires_at = codec::encode_opt_time("expires_at", patch.expires_at)?;
        let now = codec::encode_time("now", codec::now())?;
        let row = sqlx::query(&format!(
            "UPDATE memory_namespaces SET
                 expires_at = coalesce(?2, expires_at),
                 metadata = coalesce(?3, metadata)
             WHERE name = ?1 AND (expires_at IS NULL OR expires_at > ?4)
             RETURNING {NAMESPACE_COLUMNS}"
        ))
        .bind(name)
        .bind(expires_at)
        .bind(codec::encode_json(patch.metadata.as_ref()))
        .bind(now)
        .fetch_optional(&self.writer)
        .await
        .map_err(|e| db_error("updating namespace", e))?;
        match row {
            Some(row) => codec::namespace_from_row(&row),
            None => Err(namespace_not_found(name)),
        }
    }

    async fn delete_namespace(&self, name: &str) -> StoreResult<()> {
        let now = codec::encode_time("now", codec::now())?;
        // An expired namespace is absent: not deleted here (the sweep
        // removes it), reported as not found.
        let deleted = sqlx::query(
            "DELETE FROM memory_namespaces
             WHERE name = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
        )
        .bind(name)
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(|e| db_error("deleting namespace", e))?;
        if deleted.rows_affected() == 0 {
            return Err(namespace_not_found(name));
        }
        Ok(())
    }

    async fn write_memory(&self, namespace: &str, write: &MemoryWrite) -> StoreResult<WriteAck> {
        match &self.group {
            Some(queue) => queue.submit(namespace, write).await,
            None => super::group::write_alone(self, namespace, write).await,
        }
    }

    async fn write_batch(&self, writes: &[BatchWrite]) -> StoreResult<Vec<StoreResult<WriteAck>>> {
        let now = codec::encode_time("now", codec::now())?;
        // The writer connection for the whole batch; each statement of it
        // is a transaction of its own (see `batch`).
        let mut conn = self
            .writer
            .acquire()
            .await
            .map_err(|e| db_error("starting batch", e))?;
        Ok(self.write_batch_on(&mut conn, writes, &now).await)
    }

    async fn search(&self, query: &SearchQuery) -> StoreResult<Vec<Memory>> {
        let Some((mut tx, live, filter)) = self.begin_search(query).await? else {
            return Ok(Vec::new());
        };
        let limit = i64::from(query.limit.max(1));
        // The text is trimmed here too, so a store called directly behaves
        // like one behind the HTTP layer.
        let text = query
            .query
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let memories = match (&query.embedding, text) {
            (Some(embedding), _) => {
                self.search_semantic(&mut tx, &filter, embedding, limit)
                    .await?
            }
            (None, Some(text)) if text.chars().count() >= 2 => {
                self.search_full_text(&mut tx, &filter, &live, text, limit)
                    .await?
            }
            (None, Some(text)) => {
                Self::search_unscored(&mut tx, &filter, Some(text), limit).await?
            }
            (None, None) => Self::search_unscored(&mut tx, &filter, None, limit).await?,
        };
        tx.rollback()
            .await
            .map_err(|e| db_error("ending search", e))?;
        Ok(memories)
    }

    /// A hybrid search runs both its sides in one read transaction and
    /// reads in full only the memories it answers (see `search_hybrid`).
    async fn search_ranked(&self, query: &SearchQuery, mode: RankMode) -> StoreResult<Vec<Memory>> {
        match hybrid::plan(query, mode)? {
            hybrid::Ranking::One(q) => self.search(&q).await,
            hybrid::Ranking::Fused {
                text,
                vector,
                limit,
            } => self.search_hybrid(&text, &vector, limit).await,
        }
    }

    async fn list_memories(
        &self,
        namespace: &str,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<ListResponse> {
        let now = codec::encode_time("now", codec::now())?;
        let mut tx = self
            .reader
            .begin()
            .await
            .map_err(|e| db_error("starting list", e))?;
        require_live_namespace(&mut tx, namespace, &now).await?;
        let limit = limit.max(1);
        let rows = sqlx::query(&format!(
            "SELECT {MEMORY_COLUMNS} FROM memory_records r
             WHERE r.namespace = ?1
               AND (r.expires_at IS NULL OR r.expires_at > ?2)
               AND (?3 IS NULL OR r.id > ?3)
             ORDER BY r.id
             LIMIT ?4"
        ))
        .bind(namespace)
        .bind(&now)
        .bind(after.map(|id| id.to_string()))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| db_error("listing memories", e))?;
        tx.rollback()
            .await
            .map_err(|e| db_error("ending list", e))?;
        let memories = rows
            .iter()
            .map(codec::memory_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(super::page_of(memories, limit))
    }

    async fn scan_memories(
        &self,
        after: Option<Uuid>,
        before: Option<Uuid>,
        limit: u32,
        embeddings: bool,
    ) -> StoreResult<ListResponse> {
        let now = codec::encode_time("now", codec::now())?;
        let limit = limit.max(1);
        let from = match (after.is_some(), before.is_some()) {
            (true, true) => "r.id > ?2 AND r.id < ?4",
            (true, false) => "r.id > ?2 AND ?4 IS NULL",
            (false, true) => "?2 IS NULL AND r.id < ?4",
            (false, false) => "?2 IS NULL AND ?4 IS NULL",
        };
        let embedding = if embeddings { ", r.embedding" } else { "" };
        let rows = sqlx::query(&format!(
            "SELECT {MEMORY_COLUMNS}{embedding} FROM memory_records r
             JOIN memory_namespaces n ON n.name = r.namespace
             WHERE {from}
               AND (r.expires_at IS NULL OR r.expires_at > ?1)
               AND (n.expires_at IS NULL OR n.expires_at > ?1)
             ORDER BY r.id
             LIMIT ?3"
        ))
        .bind(&now)
        .bind(after.map(|id| id.to_string()))
        .bind(i64::from(limit))
        .bind(before.map(|id| id.to_string()))
        .fetch_all(&self.reader)
        .await
        .map_err(|e| db_error("scanning memories", e))?;
        let memories = rows
            .iter()
            .map(|row| {
                let mut memory = codec::memory_from_row(row)?;
                if embeddings {
                    let blob: Option<Vec<u8>> = row.try_get("embedding").map_err(|e| {
                        StoreError::Internal(format!("reading column embedding: {e}"))
                    })?;
                    memory.embedding = blob.as_deref().map(codec::decode_embedding).transpose()?;
                }
                Ok(memory)
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(super::page_of(memories, limit))
    }

    async fn list_namespaces(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<NamespaceListResponse> {
        let now = codec::encode_time("now", codec::now())?;
        let limit = limit.max(1);
        let rows = sqlx::query(&format!(
            "SELECT {NAMESPACE_COLUMNS} FROM memory_namespaces
             WHERE (?1 IS NULL OR name > ?1) AND (expires_at IS NULL OR expires_at > ?2)
             ORDER BY name
             LIMIT ?3"
        ))
        .bind(after)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(|e| db_error("listing namespaces", e))?;
        let namespaces = rows
            .iter()
            .map(codec::namespace_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(super::namespace_page_of(namespaces, limit))
    }

    async fn memory_checksums(
        &self,
        prefix: u32,
        created_at: bool,
    ) -> StoreResult<ChecksumResponse> {
        // The rows and liveness rules of `scan_memories`, read in one
        // statement (one read transaction, so one snapshot) and folded as
        // they stream in: no more than one row is held at a time.
        let now = codec::encode_time("now", codec::now())?;
        let mut rows = sqlx::query(
            "SELECT r.id, r.namespace, r.content, r.created_at FROM memory_records r
             JOIN memory_namespaces n ON n.name = r.namespace
             WHERE (r.expires_at IS NULL OR r.expires_at > ?1)
               AND (n.expires_at IS NULL OR n.expires_at > ?1)",
        )
        .bind(&now)
        .fetch(&self.reader);
        let mut buckets = Accumulator::new(prefix);
        while let Some(row) = rows
            .try_next()
            .await
            .map_err(|e| db_error("reading memories to checksum", e))?
        {
            let fields = codec::ChecksumFields::from_row(&row)?;
            let at = if created_at {
                Some(fields.created_at()?)
            } else {
                None
            };
            buckets.add(
                fields.id,
                memory_digest(fields.id, fields.namespace, fields.content, at),
            );
        }
        Ok(ChecksumResponse {
            prefix,
            created_at,
            buckets: buckets.into_wire(),
        })
    }

    async fn forget(&self, id: Uuid, namespace: &str) -> StoreResult<()> {
        let now = codec::encode_time("now", codec::now())?;
        // Only a live memory of a live namespace is forgotten; expired rows
        // are absent and left to the sweep.
        let deleted = sqlx::query(
            "DELETE FROM memory_records
             WHERE id = ?1 AND namespace = ?2
               AND (expires_at IS NULL OR expires_at > ?3)
               AND namespace IN (SELECT name FROM memory_namespaces
                                 WHERE name = ?2 AND (expires_at IS NULL OR expires_at > ?3))",
        )
        .bind(id.to_string())
        .bind(namespace)
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(|e| db_error("deleting memory", e))?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "memory {id} not found in namespace {namespace:?}"
            )));
        }
        Ok(())
    }

    async fn sweep_expired(&self, now: DateTime<Utc>) -> StoreResult<SweepReport> {
        let now = codec::encode_time("now", now)?;
        let mut report = SweepReport::default();
        // Expired memories first, then the memories of expired namespaces
        // (counted as memories too), then the namespaces. Each chunk is its
        // own statement so queued writes run in between.
        for condition in [
            "expires_at <= ?1",
            "namespace IN (SELECT name FROM memory_namespaces WHERE expires_at <= ?1)",
        ] {
            loop {
                let deleted = sqlx::query(&format!(
                    "DELETE FROM memory_records WHERE seq IN (
                         SELECT seq FROM memory_records WHERE {condition} LIMIT ?2)"
                ))
                .bind(&now)
                .bind(SWEEP_CHUNK)
                .execute(&self.writer)
                .await
                .map_err(|e| db_error("sweeping expired memories", e))?
                .rows_affected();
                report.memories += deleted;
                if deleted < SWEEP_CHUNK as u64 {
                    break;
                }
            }
        }
        report.namespaces = sqlx::query("DELETE FROM memory_namespaces WHERE expires_at <= ?1")
            .bind(&now)
            .execute(&self.writer)
            .await
            .map_err(|e| db_error("sweeping expired namespaces", e))?
            .rows_affected();
        if report.memories > 0 || report.namespaces > 0 {
            tracing::debug!(
                memories = report.memories,
                namespaces = report.namespaces,
                "swept expired rows"
            );
        }
        Ok(report)
    }

    fn write_group_stats(&self) -> crate::store::group::GroupStats {
        self.group
            .as_ref()
            .map(|queue| queue.stats())
            .unwrap_or_default()
    }

    fn pool_stats(&self) -> PoolStats {
        let mut stats = PoolStats {
            size: self.writer.size(),
            idle: self.writer.num_idle() as u32,
            max: 1,
        };
        if !self.in_memory {
            stats.size += self.reader.size();
            stats.idle += self.reader.num_idle() as u32;
            stats.max += self.reader.options().get_max_connections();
        }
        stats
    }
}

/// The search statement of the substring and newest-first modes, as the
/// store runs it. Parameters: `?1` to `?3` as in [`full_text_sql`], `?4`
/// the LIKE patterns from [`substring_argument`] or NULL for newest first,
/// `?5` the limit. Public so that benchmarks run the store's statement.
pub fn unscored_search_sql() -> String {
    format!(
        "SELECT {MEMORY_COLUMNS} FROM memory_records r
         WHERE {}
           AND (?4 IS NULL OR EXISTS (
               SELECT 1 FROM json_each(?4) AS p WHERE r.content LIKE p.value ESCAPE '\\'))
         ORDER BY r.pin DESC, r.created_at DESC, r.seq DESC
         LIMIT ?5",
        SearchFilter::SQL
    )
}

/// The argument `?4` of [`unscored_search_sql`] for a substring search of
/// `needle`: a JSON array of LIKE patterns.
pub fn substring_argument(needle: &str) -> String {
    json_list(&text_query::substring_patterns(needle))
}

/// The MATCH expression (`?4` of [`full_text_sql`]) the store builds for a
/// search of `text` in `namespaces`, without counting document frequencies;
/// `None` when the text holds no word.
pub fn full_text_match(text: &str, namespaces: &[String]) -> Option<String> {
    let phrases = text_query::fts_phrases(text)?;
    Some(text_query::match_in_namespaces(&phrases, namespaces))
}
