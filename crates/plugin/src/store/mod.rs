//! Storage behind the HTTP layer.
//!
//! The HTTP layer decodes and validates requests with `memory-contract`, then
//! calls one [`Store`] method. Every backend keeps the same semantics, checked
//! by one shared suite of storage tests (`tests/storage_*.rs`).

pub mod group;
pub mod hybrid;
pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use memory_contract::{
    BatchWrite, ChecksumResponse, ListResponse, Memory, MemoryKind, MemoryWrite, Namespace,
    NamespaceListResponse, NamespacePatch, NamespaceUpsert, RankMode, WriteAck,
};
use uuid::Uuid;

/// The id of a write that brings none: a version-7 UUID (RFC 9562), whose
/// first 48 bits are the Unix time in milliseconds and whose next bits count
/// up within a millisecond, so that the ids this process makes sort in the
/// order it made them.
///
/// Every index holding ids (the primary key or `UNIQUE` id, and
/// `(namespace, id)`) then takes new rows at its end: a group of writes
/// changes a few pages there instead of one random page per write across
/// the whole index, which is what a database's log and its checkpoints pay
/// for. Ids a caller brings are kept as they are, whatever their version.
pub fn fresh_id() -> Uuid {
    Uuid::now_v7()
}

/// What a store failed at. The HTTP layer maps each variant to a status.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// 404: the namespace or memory does not exist (or has expired).
    #[error("{0}")]
    NotFound(String),
    /// 409: the id already lives in another namespace.
    #[error("{0}")]
    Conflict(String),
    /// 400: the request is well formed but this store cannot serve it
    /// (embedding of the wrong dimension, semantic search without support).
    #[error("{0}")]
    BadRequest(String),
    /// 503: the database cannot be reached.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// 500: anything else; the message is logged, not sent to clients.
    #[error("storage error: {0}")]
    Internal(String),
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// What a backend can do, fixed when it is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFeatures {
    /// Semantic search works (pgvector present, or in-process cosine).
    pub embedding: bool,
    /// Dimension every embedding must have.
    pub embedding_dim: usize,
    /// Backend name for logs and metrics (`postgres`, `sqlite`).
    pub backend: &'static str,
}

/// A validated search, as the store receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    /// Exact namespace names (no prefix matching), deduplicated.
    pub namespaces: Vec<String>,
    /// Trimmed query text; `None` when absent or blank.
    pub query: Option<String>,
    /// Empty means every kind.
    pub kinds: Vec<MemoryKind>,
    /// 1..=100.
    pub limit: u32,
    pub embedding: Option<Vec<f32>>,
}

/// Connection-pool figures for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

/// What one sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub memories: u64,
    pub namespaces: u64,
}

/// Storage of namespaces and memories with the semantics of DESIGN section 3.
///
/// Rules every implementation keeps:
/// - expired namespaces and memories behave as absent everywhere (never
///   returned, a write to an expired namespace is `NotFound`);
/// - a write carrying an id upserts on that id; an id that lives in another
///   namespace is `Conflict` and nothing changes;
/// - search matches namespace names exactly.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Fixed capabilities of this backend.
    fn features(&self) -> StoreFeatures;

    /// Cheap round trip to the database, for health checks.
    async fn ping(&self) -> StoreResult<()>;

    /// Creates the namespace or replaces its kind, expiry and metadata.
    async fn upsert_namespace(&self, name: &str, req: &NamespaceUpsert) -> StoreResult<Namespace>;

    /// The namespace, or `None` when it is absent or expired.
    async fn get_namespace(&self, name: &str) -> StoreResult<Option<Namespace>>;

    /// Changes the fields present in `patch`; `NotFound` when absent.
    async fn patch_namespace(&self, name: &str, patch: &NamespacePatch) -> StoreResult<Namespace>;

    /// Deletes the namespace and its memories; `NotFound` when absent.
    async fn delete_namespace(&self, name: &str) -> StoreResult<()>;

    /// Writes one memory into `namespace`.
    async fn write_memory(&self, namespace: &str, write: &MemoryWrite) -> StoreResult<WriteAck>;

    /// Writes many memories; one result per item, in input order. One bad
    /// item does not sink the others. Items are already validated.
    async fn write_batch(&self, writes: &[BatchWrite]) -> StoreResult<Vec<StoreResult<WriteAck>>> {
        let mut out = Vec::with_capacity(writes.len());
        for w in writes {
            out.push(self.write_memory(&w.namespace, &w.write).await);
        }
        Ok(out)
    }

    /// Searches the given namespaces; see [`SearchQuery`].
    async fn search(&self, query: &SearchQuery) -> StoreResult<Vec<Memory>>;

    /// Searches with the ranking `mode` names (extension `hybrid`):
    /// `semantic` ranks by the embedding only, `fulltext` by the query only
    /// (2+ characters), `hybrid` fuses both rankings by reciprocal rank
    /// fusion ([`hybrid::fuse`]). Only for a store whose features include
    /// `embedding`, except `fulltext`.
    async fn search_ranked(&self, query: &SearchQuery, mode: RankMode) -> StoreResult<Vec<Memory>> {
        hybrid::ranked_search(self, query, mode).await
    }

    /// One page of a namespace's live memories ordered by id, after `after`.
    /// `NotFound` when the namespace is absent or expired.
    async fn list_memories(
        &self,
        namespace: &str,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<ListResponse>;

    /// One page of every live memory in every live namespace, ordered by id,
    /// with ids strictly between `after` and `before` (extension `scan`).
    /// With `embeddings`, each memory carries its stored embedding.
    async fn scan_memories(
        &self,
        after: Option<Uuid>,
        before: Option<Uuid>,
        limit: u32,
        embeddings: bool,
    ) -> StoreResult<ListResponse>;

    /// One page of every live namespace, with or without memories, ordered
    /// by name, with names strictly after `after` (extension `list`).
    async fn list_namespaces(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<NamespaceListResponse>;

    /// Digests of every live memory in every live namespace (exactly the
    /// memories [`Store::scan_memories`] pages through), per bucket of ids
    /// sharing their first `prefix` hex digits, with each memory's
    /// `created_at` in its digest when `created_at` is set (extension
    /// `checksum`; the digest is defined in [`memory_contract::checksum`]).
    /// `prefix` is already validated (1..=4). Non-empty buckets only,
    /// ordered by name.
    async fn memory_checksums(
        &self,
        prefix: u32,
        created_at: bool,
    ) -> StoreResult<ChecksumResponse>;

    /// Deletes memory `id` if it lives in `namespace`; `NotFound` otherwise.
    async fn forget(&self, id: Uuid, namespace: &str) -> StoreResult<()>;

    /// Deletes memories and namespaces whose expiry is at or before `now`.
    async fn sweep_expired(&self, now: DateTime<Utc>) -> StoreResult<SweepReport>;

    /// Pool figures for `/metrics`.
    fn pool_stats(&self) -> PoolStats;

    /// The group committers' figures for `/metrics` (zeros when single
    /// writes are not grouped).
    fn write_group_stats(&self) -> group::GroupStats {
        group::GroupStats::default()
    }
}

/// Database used by [`open`] when no URL is given: a SQLite file in the
/// working directory, created if missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite:./memory-plugin.db";

/// [`OpenOptions::embedding_dim`] that leaves the dimension to the backend.
pub const BACKEND_DEFAULT_DIM: usize = 0;

/// Options of [`open`], for whichever backend the URL selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    /// Postgres schema holding the plugin's tables.
    pub schema: String,
    /// Dimension every embedding must have; [`BACKEND_DEFAULT_DIM`] (0,
    /// the default) leaves it to the backend: 1536 on Postgres; on SQLite
    /// the dimension of the embeddings the file already holds, or 384
    /// (all-MiniLM-L6-v2, the gateway's built-in model) when it holds none.
    /// On SQLite a given dimension must match the stored embeddings.
    pub embedding_dim: usize,
    /// Apply migrations at start (Postgres; SQLite always creates its schema).
    pub migrate: bool,
    /// Largest number of pooled connections (Postgres).
    pub max_connections: u32,
    /// Group committers for single writes (Postgres); `None`: derived from
    /// the host's processors and the pool (see
    /// [`postgres::PgOptions::write_committers`]).
    pub write_committers: Option<usize>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        let pg = postgres::PgOptions::default();
        OpenOptions {
            schema: pg.schema,
            embedding_dim: BACKEND_DEFAULT_DIM,
            migrate: pg.migrate,
            max_connections: pg.max_connections,
            write_committers: pg.write_committers,
        }
    }
}

/// Opens the store a database URL selects: `postgres://` or `postgresql://`
/// -> [`postgres::PgStore`]; `sqlite:` or no URL -> [`sqlite::SqliteStore`]
/// (at [`DEFAULT_DATABASE_URL`] when absent).
///
/// # Errors
///
/// `BadRequest` for an unsupported scheme, and whatever the backend's
/// constructor answers (never with the URL's password in the text).
pub async fn open(
    database_url: Option<&str>,
    opts: &OpenOptions,
) -> StoreResult<std::sync::Arc<dyn Store>> {
    let url = database_url
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .unwrap_or(DEFAULT_DATABASE_URL);
    let scheme = url
        .split_once(':')
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    match scheme.as_str() {
        "postgres" | "postgresql" => {
            let pg_default_dim = postgres::PgOptions::default().embedding_dim;
            let store = postgres::PgStore::connect(
                url,
                postgres::PgOptions {
                    schema: opts.schema.clone(),
                    embedding_dim: match opts.embedding_dim {
                        BACKEND_DEFAULT_DIM => pg_default_dim,
                        dim => dim,
                    },
                    migrate: opts.migrate,
                    max_connections: opts.max_connections,
                    write_committers: opts.write_committers,
                },
            )
            .await?;
            Ok(std::sync::Arc::new(store))
        }
        "sqlite" => {
            let store = match opts.embedding_dim {
                BACKEND_DEFAULT_DIM => {
                    sqlite::SqliteStore::open_with_default_dimension(url).await?
                }
                embedding_dim => {
                    sqlite::SqliteStore::open(url, sqlite::SqliteOptions { embedding_dim }).await?
                }
            };
            Ok(std::sync::Arc::new(store))
        }
        _ => Err(StoreError::BadRequest(format!(
            "unsupported database URL scheme {scheme:?}; use postgres://, postgresql:// or sqlite:"
        ))),
    }
}

/// One page of `list` or `scan`: a full page points on with `next_after`
/// (the next one may be empty); a short page is the last.
/// A page of namespaces of at most `limit`, with `next_after` set when full.
pub(crate) fn namespace_page_of(namespaces: Vec<Namespace>, limit: u32) -> NamespaceListResponse {
    let next_after = if limit > 0 && namespaces.len() == limit as usize {
        namespaces.last().map(|n| n.name.clone())
    } else {
        None
    };
    NamespaceListResponse {
        namespaces,
        next_after,
    }
}

pub(crate) fn page_of(memories: Vec<Memory>, limit: u32) -> ListResponse {
    let next_after = if limit > 0 && memories.len() == limit as usize {
        memories.last().map(|m| m.id)
    } else {
        None
    };
    ListResponse {
        memories,
        next_after,
    }
}
