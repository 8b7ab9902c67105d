//! Postgres backend of [`Store`].
//!
//! The plugin owns one schema (default `memory_plugin`): it creates and
//! migrates it at start (migrations embedded from `migrations/postgres`, under
//! a `pg_advisory_lock` so concurrent starts are safe) and sets every pooled
//! connection's `search_path` to it. Semantic search uses pgvector when the
//! `vector` extension can be installed; otherwise the `embedding` column is
//! never created and [`StoreFeatures::embedding`] is false.
//!
//! Writes, single or batched, go through one `INSERT ... SELECT FROM unnest(..)
//! ON CONFLICT (id) DO UPDATE ... WHERE same namespace` statement, so a batch
//! of a thousand items is one round trip. Single writes are committed in
//! groups (see `group`): the writes queued at one moment share one
//! transaction and one log flush.

mod group;
mod upkeep;

use super::{PoolStats, SearchQuery, Store, StoreError, StoreFeatures, StoreResult, SweepReport};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use memory_contract::checksum::{memory_digest_bytes, Accumulator};
use memory_contract::{
    BatchWrite, ChecksumResponse, ListResponse, Memory, MemoryWrite, Namespace,
    NamespaceListResponse, NamespacePatch, NamespaceUpsert, WriteAck,
};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Executor, Row};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

/// Versioned migrations, applied in order, each once, in its own transaction.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "namespaces and memories",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "index for newest first: (namespace, pin, created_at, id)",
        include_str!("../../migrations/postgres/0002_recent_index.sql"),
    ),
];

/// Adds `embedding vector({dim})`; applied at start whenever pgvector is
/// available and the column is missing.
const EMBEDDING_COLUMN_SQL: &str = include_str!("../../migrations/postgres/embedding.sql");

/// HNSW index on `embedding`.
/// The HNSW index of embeddings, as the plugin creates it (public so that
/// a benchmark can rebuild the very same index after a bulk load).
pub const EMBEDDING_INDEX_SQL: &str = include_str!("../../migrations/postgres/embedding_index.sql");

/// Semantic search compares every candidate exactly up to this many rows
/// with an embedding in the searched namespaces, and uses HNSW above it.
const EXACT_SEARCH_MAX_ROWS: i64 = 10_000;

/// Semantic search first compares up to this many candidates in one
/// statement, which answers outright when they are all the candidates
/// there are (in the benchmark's data set, a search's three namespaces
/// hold a few hundred); only above it does the search count the candidates and
/// choose between the exact comparison and the HNSW index.
pub const FIRST_PASS_MAX_ROWS: i64 = 1_000;

/// pgvector's largest dimension for an HNSW index on `vector`.
const HNSW_MAX_DIM: usize = 2000;

/// pgvector's largest dimension for a `vector` column.
const VECTOR_MAX_DIM: usize = 16000;

/// Columns of `memory_records` that make up a [`Memory`], in row order.
const MEMORY_COLUMNS: &str =
    "id, namespace, content, kind, source, expires_at, propagation, pin, created_at";

/// A row or namespace is live when it has no expiry or expires in the future.
const LIVE: &str = "(expires_at IS NULL OR expires_at > now())";

/// Filter of every search mode: exact namespace names (`$1`), live rows in
/// live namespaces, and the kinds in `$2` unless it is empty.
const SEARCH_FILTER: &str = "namespace = ANY($1)
    AND (expires_at IS NULL OR expires_at > now())
    AND namespace IN (SELECT name FROM memory_namespaces
                      WHERE name = ANY($1) AND (expires_at IS NULL OR expires_at > now()))
    AND (cardinality($2::text[]) = 0 OR kind = ANY($2))";

/// Newest first (no query): a merge of per-namespace index scans. For each
/// live namespace named in `$1`, the index on `(namespace, pin DESC,
/// created_at DESC, id)` yields that namespace's first `$3` live rows of the
/// wanted kinds in order, without reading the rest; the outer sort merges at
/// most `$3` rows per namespace. The straightforward statement (`namespace =
/// ANY($1)` sorted as a whole) reads and sorts every row of every searched
/// namespace instead: 65–250 ms next to 0.7 ms for a search naming an org
/// namespace of 200,000 memories.
pub fn recent_search_sql() -> String {
    newest_first_sql("")
}

/// Semantic search's first pass ([`PgStore::semantic_search`]): the
/// distances of at most `$5` candidates (`$4` the query vector), the best
/// `$3` of them with their score, and on every row how many it compared
/// (`candidates`). `MATERIALIZED` keeps the planner from ordering by the
/// HNSW index, which yields only its nearest rows before the namespace
/// filter. Public so that benchmarks run the statement the store runs.
pub fn first_pass_semantic_sql() -> String {
    format!(
        "WITH compared AS MATERIALIZED (
             SELECT {MEMORY_COLUMNS}, embedding <=> $4::vector AS distance
             FROM memory_records
             WHERE {SEARCH_FILTER} AND embedding IS NOT NULL
             LIMIT $5
         )
         SELECT {MEMORY_COLUMNS}, 1 - distance AS score,
                (SELECT count(*) FROM compared) AS candidates
         FROM compared
         ORDER BY distance, id
         LIMIT $3"
    )
}

/// The merge of per-namespace index scans behind [`recent_search_sql`]
/// and [`substring_search_sql`], with `row_filter` (empty, or `AND …` on
/// `r`) as the only difference: each namespace's scan stops after `$3`
/// rows that pass it.
fn newest_first_sql(row_filter: &str) -> String {
    format!(
        "SELECT m.*, NULL::float8 AS score
     FROM memory_namespaces ns
     CROSS JOIN LATERAL (
         SELECT {MEMORY_COLUMNS}
         FROM memory_records r
         WHERE r.namespace = ns.name
           AND (r.expires_at IS NULL OR r.expires_at > now())
           AND (cardinality($2::text[]) = 0 OR r.kind = ANY($2))
           {row_filter}
         ORDER BY r.pin DESC, r.created_at DESC, r.id
         LIMIT $3) m
     WHERE ns.name = ANY($1) AND (ns.expires_at IS NULL OR ns.expires_at > now())
     ORDER BY m.pin DESC, m.created_at DESC, m.id
     LIMIT $3"
    )
}

/// Extension `checksum`: the rows `scan_memories` pages through (live
/// memories whose namespace is live), read in one statement (one snapshot)
/// in physical order and folded in Rust as they stream in. Hashing in SQL
/// is not an option: Postgres has no XXH3, and its `md5()` costs several
/// times the read. Scan's filter tests "no namespace has expired, or this
/// row's namespace is live"; here it is a semi-join on the live
/// namespaces, the same set since every memory's namespace exists (foreign
/// key).
const CHECKSUM_ROWS_SQL: &str = "SELECT r.id, r.namespace, r.content, r.created_at
 FROM memory_records r
 WHERE (r.expires_at IS NULL OR r.expires_at > now())
   AND r.namespace IN (SELECT n.name FROM memory_namespaces n
                       WHERE n.expires_at IS NULL OR n.expires_at > now())";

/// Options of [`PgStore::connect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// Schema holding the plugin's tables; created if missing.
    pub schema: String,
    /// Dimension of every embedding (pgvector column type).
    pub embedding_dim: usize,
    /// Apply migrations at start. When false, the schema must already exist.
    pub migrate: bool,
    /// Largest number of connections the store opens, the group
    /// committers' included.
    pub max_connections: u32,
    /// Group committers for single writes, each with a connection of its
    /// own out of `max_connections`; `None`: half the host's processors,
    /// between 1 and 16, at most the pool's size minus two; a requested
    /// number leaves at least one connection for reads (see
    /// `group::committers`).
    pub write_committers: Option<usize>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            schema: "memory_plugin".to_string(),
            embedding_dim: 1536,
            migrate: true,
            max_connections: 10,
            write_committers: None,
        }
    }
}

/// [`Store`] on a Postgres database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The group committers' connections, whose sessions plan the write
    /// statement once (see [`WRITE_SESSION_SETTING`]); `None` when the pool
    /// size (1) leaves no room for them, and the committer shares `pool`.
    writer: Option<PgPool>,
    embedding: bool,
    embedding_dim: usize,
    /// pgvector 0.8+: filtered HNSW scans continue until `LIMIT` rows match.
    iterative_scan: bool,
    max_connections: u32,
    /// Group committers, each with a connection of `writer` while its
    /// group is in flight.
    committers: usize,
    /// Background upkeep (pending list, statistics), told of every row written.
    upkeep: upkeep::Upkeep,
    /// Queue of single writes to the group committers; `None` in the
    /// committers' own copy of the store.
    group: Option<super::group::GroupQueue>,
}

/// What start-up found out about pgvector.
#[derive(Debug, Default)]
struct VectorSupport {
    /// `memory_records.embedding` exists with the configured dimension.
    enabled: bool,
    /// Schema holding the extension's types and operators, when installed.
    extension_schema: Option<String>,
    /// The installed pgvector has `hnsw.iterative_scan` (0.8.0 and later).
    iterative_scan: bool,
}

impl PgStore {
    /// Connects, migrates when `opts.migrate` is set, and detects pgvector.
    ///
    /// # Errors
    ///
    /// `BadRequest` for an invalid URL, schema name or dimension, or an
    /// existing `embedding` column of another dimension; `Unavailable` when
    /// the database cannot be reached; `Internal` when a migration fails.
    /// No error text contains the URL's password.
    pub async fn connect(url: &str, opts: PgOptions) -> StoreResult<PgStore> {
        validate_schema_name(&opts.schema)?;
        if opts.embedding_dim == 0 || opts.embedding_dim > VECTOR_MAX_DIM {
            return Err(StoreError::BadRequest(format!(
                "embedding dimension must be between 1 and {VECTOR_MAX_DIM}, got {}",
                opts.embedding_dim
            )));
        }
        if opts.max_connections == 0 {
            return Err(StoreError::BadRequest(
                "max_connections must be at least 1".to_string(),
            ));
        }
        let password = url_password(url);
        let scrub = |e: StoreError| scrub_error(e, password.as_deref());
        let connect_opts = PgConnectOptions::from_str(url).map_err(|e| {
            scrub(StoreError::BadRequest(format!(
                "invalid Postgres database URL: {e}"
            )))
        })?;
        let connect_opts = connect_opts.application_name("memory-plugin");

        // Migrations and detection run on a dedicated connection: the
        // advisory lock is session-level and must not leak into the pool.
        let mut conn = PgConnection::connect_with(&connect_opts)
            .await
            .map_err(|e| scrub(db_error("cannot connect to Postgres", e)))?;
        let setup = if opts.migrate {
            migrate(&mut conn, &opts.schema, opts.embedding_dim).await
        } else {
            detect(&mut conn, &opts.schema, opts.embedding_dim).await
        };
        // Closing also releases the advisory lock if unlocking failed.
        let _ = conn.close().await;
        let vector = setup.map_err(scrub)?;

        let search_path = format!(
            "SET search_path TO {}",
            search_path(&opts.schema, vector.extension_schema.as_deref())
        );
        let committers = group::committers(
            opts.max_connections,
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            opts.write_committers,
        );
        // The committers' connections come out of the pool size; one
        // connection alone is shared (its writes are then planned as the
        // reads are).
        let split = opts.max_connections >= 2;
        let readers = match split {
            true => opts.max_connections - committers as u32,
            false => opts.max_connections,
        };
        let pool = open_pool(readers, search_path.clone(), &connect_opts)
            .await
            .map_err(scrub)?;
        let writer = match split {
            true => Some(
                open_pool(
                    committers as u32,
                    format!(
                        "{search_path}; SET {} = {}",
                        WRITE_SESSION_SETTING.0, WRITE_SESSION_SETTING.1
                    ),
                    &connect_opts,
                )
                .await
                .map_err(scrub)?,
            ),
            false => None,
        };

        let upkeep = upkeep::Upkeep::start(pool.clone());
        let mut store = PgStore {
            pool,
            writer,
            embedding: vector.enabled,
            embedding_dim: opts.embedding_dim,
            iterative_scan: vector.iterative_scan,
            max_connections: opts.max_connections,
            committers,
            upkeep,
            group: None,
        };
        store.group = Some(group::start(&store));
        Ok(store)
    }

    /// The connection pool, for callers that need raw access (tests, tools).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The group committers' connection pool ([`PgStore::pool`] when the
    /// pool size is 1); public for tests.
    pub fn writer_pool(&self) -> &PgPool {
        self.writer.as_ref().unwrap_or(&self.pool)
    }

    /// Refuses an embedding this store cannot take.
    fn check_embedding(&self, embedding: &[f32]) -> StoreResult<()> {
        if !self.embedding {
            return Err(StoreError::BadRequest(
                "semantic search and embeddings are not available on this database \
                 (the pgvector extension is not installed)"
                    .to_string(),
            ));
        }
        if embedding.len() != self.embedding_dim {
            return Err(StoreError::BadRequest(format!(
                "embedding has {} dimensions; this store expects {}",
                embedding.len(),
                self.embedding_dim
            )));
        }
        Ok(())
    }

    /// Writes the prepared rows in one statement; returns the ids written.
    async fn insert_rows(&self, rows: &[PreparedRow<'_>]) -> StoreResult<HashSet<Uuid>> {
        self.insert_rows_on(&self.pool, rows).await
    }

    /// [`PgStore::insert_rows`] on a given connection or transaction.
    async fn insert_rows_on<'c, E>(
        &self,
        executor: E,
        rows: &[PreparedRow<'_>],
    ) -> StoreResult<HashSet<Uuid>>
    where
        E: sqlx::PgExecutor<'c>,
    {
        let mut ids = Vec::with_capacity(rows.len());
        let mut namespaces = Vec::with_capacity(rows.len());
        let mut contents = Vec::with_capacity(rows.len());
        let mut kinds = Vec::with_capacity(rows.len());
        let mut sources = Vec::with_capacity(rows.len());
        let mut expires = Vec::with_capacity(rows.len());
        let mut propagations = Vec::with_capacity(rows.len());
        let mut pins = Vec::with_capacity(rows.len());
        let mut created = Vec::with_capacity(rows.len());
        let mut embeddings = Vec::with_capacity(rows.len());
        for row in rows {
            ids.push(row.id);
            namespaces.push(row.namespace);
            contents.push(row.write.content.as_str());
            kinds.push(row.write.kind.as_str());
            sources.push(row.write.source.as_str());
            expires.push(row.write.expires_at);
            propagations.push(row.write.propagation.clone());
            pins.push(row.write.pin.unwrap_or(false));
            created.push(row.write.created_at);
            if self.embedding {
                embeddings.push(row.write.embedding.as_deref().map(vector_literal));
            }
        }
        let sql = if self.embedding {
            INSERT_WITH_EMBEDDING_SQL
        } else {
            INSERT_SQL
        };
        let mut query = sqlx::query(sql)
            .bind(&ids)
            .bind(&namespaces)
            .bind(&contents)
            .bind(&kinds)
            .bind(&sources)
            .bind(&expires)
            .bind(&propagations)
            .bind(&pins)
            .bind(&created);
        if self.embedding {
            query = query.bind(&embeddings);
        }
        let written =
            query
                .fetch_all(executor)
                .await
                .map_err(|e| match foreign_key_violation(&e) {
                    // A namespace deleted between our check and the insert.
                    true => {
                        StoreError::NotFound("namespace was deleted during the write".to_string())
                    }
                    false => db_error("cannot write memories", e),
                })?;
        self.upkeep.written(written.len());
        written
            .iter()
            .map(|r| {
                r.try_get::<Uuid, _>(0)
                    .map_err(|e| db_error("cannot read id", e))
            })
            .collect()
    }

    /// Semantic mode: nearest embeddings first, score = 1 - cosine distance.
    ///
    /// HNSW is approximate, and filtering its candidates by namespace can
    /// miss rows of a small namespace entirely. So when the searched
    /// namespaces hold at most [`EXACT_SEARCH_MAX_ROWS`] rows with an
    /// embedding, every one is compared (exact); only above that does the
    /// HNSW index serve the search, with iterative scanning where pgvector
    /// has it. Up to [`FIRST_PASS_MAX_ROWS`] candidates, one statement
    /// counts and compares them at once.
    async fn semantic_search(
        &self,
        query: &SearchQuery,
        kinds: &[&str],
        embedding: &[f32],
    ) -> StoreResult<Vec<Memory>> {
        let literal = vector_literal(embedding);
        // One statement, one round trip, one read of the candidates: it
        // compares at most FIRST_PASS_MAX_ROWS + 1 of them and says how many
        // it found; when that is not more than FIRST_PASS_MAX_ROWS, they were
        // all, and its ranking is the exact one.
        let rows = sqlx::query(&first_pass_semantic_sql())
            .bind(&query.namespaces)
            .bind(kinds)
            .bind(i64::from(query.limit))
            .bind(&literal)
            .bind(FIRST_PASS_MAX_ROWS + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("search failed", e))?;
        let compared: i64 = match rows.first() {
            Some(row) => row
                .try_get("candidates")
                .map_err(|e| db_error("cannot read candidates", e))?,
            None => 0,
        };
        if compared <= FIRST_PASS_MAX_ROWS {
            return rows.iter().map(memory_from_row).collect();
        }
        self.large_semantic_search(query, kinds, &literal).await
    }

    /// [`PgStore::semantic_search`] when the searched namespaces hold more
    /// than [`FIRST_PASS_MAX_ROWS`] candidates: counts them up to
    /// [`EXACT_SEARCH_MAX_ROWS`] and compares every one below it, or lets
    /// the HNSW index serve the search above it.
    async fn large_semantic_search(
        &self,
        query: &SearchQuery,
        kinds: &[&str],
        literal: &str,
    ) -> StoreResult<Vec<Memory>> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_error("cannot begin search", e))?;
        let candidates: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM (
                 SELECT 1 FROM memory_records
                 WHERE {SEARCH_FILTER} AND embedding IS NOT NULL
                 LIMIT $3
             ) AS bounded"
        ))
        .bind(&query.namespaces)
        .bind(kinds)
        .bind(EXACT_SEARCH_MAX_ROWS + 1)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| db_error("search failed", e))?;
        let sql = if candidates <= EXACT_SEARCH_MAX_ROWS {
            // MATERIALIZED keeps the planner from ordering by the HNSW index.
            format!(
                "WITH candidates AS MATERIALIZED (
                     SELECT {MEMORY_COLUMNS}, embedding <=> $4::vector AS distance
                     FROM memory_records
                     WHERE {SEARCH_FILTER} AND embedding IS NOT NULL
                 )
                 SELECT {MEMORY_COLUMNS}, 1 - distance AS score
                 FROM candidates
                 ORDER BY distance, id
                 LIMIT $3"
            )
        } else {
            if self.iterative_scan {
                // Without it an HNSW scan yields its ef_search nearest rows
                // and then filters them; iterative scanning goes on until
                // LIMIT rows match, in exact distance order.
                sqlx::query("SET LOCAL hnsw.iterative_scan = strict_order")
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db_error("cannot configure search", e))?;
            }
            format!(
                "SELECT {MEMORY_COLUMNS}, 1 - (embedding <=> $4::vector) AS score
                 FROM memory_records
                 WHERE {SEARCH_FILTER} AND embedding IS NOT NULL
                 ORDER BY embedding <=> $4::vector
                 LIMIT $3"
            )
        };
        let rows = sqlx::query(&sql)
            .bind(&query.namespaces)
            .bind(kinds)
            .bind(i64::from(query.limit))
            .bind(literal)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| db_error("search failed", e))?;
        tx.commit()
            .await
            .map_err(|e| db_error("search failed", e))?;
        rows.iter().map(memory_from_row).collect()
    }

    /// Which of `names` are live namespaces.
    async fn live_namespaces(&self, names: &[&str]) -> StoreResult<HashSet<String>> {
        let rows: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT name FROM memory_namespaces WHERE name = ANY($1) AND {LIVE}"
        ))
        .bind(names)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_error("cannot read namespaces", e))?;
        Ok(rows.into_iter().collect())
    }
}

/// One write ready for the insert statement.
struct PreparedRow<'a> {
    id: Uuid,
    namespace: &'a str,
    write: &'a MemoryWrite,
}

/// The write statement. Input arrays are unnested into rows; only rows whose
/// namespace is live are inserted (the `FOR KEY SHARE` lock keeps those
/// namespaces from being deleted until commit). Each distinct namespace of
/// the input is looked up by its key, one index probe each, whatever the
/// plan's row estimates: written as a join, the plan made once for every
/// group (see [`WRITE_SESSION_SETTING`]) read the whole namespace table for
/// each group when it held about a thousand namespaces (0.25 ms a group).
/// An existing id is updated
/// only when it lives in the same namespace; otherwise no row comes back and
/// the caller reports a conflict (a memory is never moved, even once
/// expired).
///
/// `created_at`: a write without one keeps the creation time of the row it
/// updates, unless that row had expired (then it is a new memory, created
/// now). `now()` is the statement's transaction time, so
/// `EXCLUDED.created_at = now()` means "not given".
macro_rules! insert_sql {
    ($emb_col:literal, $emb_param:literal, $emb_type:literal, $emb_value:literal, $emb_set:literal) => {
        concat!(
            "WITH input AS (
                SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                                     $6::timestamptz[], $7::jsonb[], $8::bool[], $9::timestamptz[]",
            $emb_param,
            ") AS t(id, namespace, content, kind, source, expires_at, propagation, pin, created_at",
            $emb_type,
            ")
            ),
            live AS (
                SELECT n.name
                FROM (SELECT DISTINCT namespace FROM input) w
                CROSS JOIN LATERAL (
                    SELECT name FROM memory_namespaces
                    WHERE name = w.namespace
                      AND (expires_at IS NULL OR expires_at > now())
                    FOR KEY SHARE
                ) n
            )
            INSERT INTO memory_records AS m
                (id, namespace, content, kind, source, expires_at, propagation, pin, created_at",
            $emb_col,
            ")
            SELECT i.id, i.namespace, i.content, i.kind, i.source, i.expires_at, i.propagation,
                   i.pin, COALESCE(i.created_at, now())",
            $emb_value,
            "
            FROM input i JOIN live ON live.name = i.namespace
            ON CONFLICT (id) DO UPDATE SET
                content = EXCLUDED.content,
                kind = EXCLUDED.kind,
                source = EXCLUDED.source,
                expires_at = EXCLUDED.expires_at,
                propagation = EXCLUDED.propagation,
                pin = EXCLUDED.pin,
                created_at = CASE
                    WHEN EXCLUDED.created_at <> now() THEN EXCLUDED.created_at
                    WHEN m.expires_at IS NOT NULL AND m.expires_at <= now() THEN now()
                    ELSE m.created_at
                END",
            $emb_set,
            "
            WHERE m.namespace = EXCLUDED.namespace
            RETURNING m.id"
        )
    };
}

/// What every group committer's session sets once connected: the write
/// statement is planned once per session, for any group (a generic plan),
/// instead of again for each group. Left to choose, Postgres plans each
/// group anew whenever it expects a plan made for the group's own size to
/// be cheaper, which costs about as much as running the statement (0.2-0.3
/// ms here). The statement's plan does not depend on the values written: it
/// unnests the group, looks each namespace up by its key and inserts. Public
/// so that benchmarks run the statement as the store does.
pub const WRITE_SESSION_SETTING: (&str, &str) = ("plan_cache_mode", "force_generic_plan");

/// A pool of at most `max` connections, each running `setup` (one or more
/// `SET` statements) once connected.
async fn open_pool(
    max: u32,
    setup: String,
    connect_opts: &PgConnectOptions,
) -> StoreResult<PgPool> {
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(5))
        // No ping before each use: it is a round trip of its own, which
        // doubled the cost of a one-statement request. A connection that
        // died while idle fails its statement instead (503; a write group
        // is run again, up to three times).
        .test_before_acquire(false)
        .after_connect(move |conn, _meta| {
            let setup = setup.clone();
            Box::pin(async move {
                conn.execute(setup.as_str()).await?;
                Ok(())
            })
        })
        .connect_with(connect_opts.clone())
        .await
        .map_err(|e| db_error("cannot connect to Postgres", e))
}

/// The write statement for a database without pgvector. Public so that
/// benchmarks measure the very statement the store runs.
pub const INSERT_SQL: &str = insert_sql!("", "", "", "", "");
const INSERT_WITH_EMBEDDING_SQL: &str = insert_sql!(
    ", embedding",
    ", $10::text[]",
    ", embedding",
    ", i.embedding::vector",
    ", embedding = EXCLUDED.embedding"
);

#[async_trait]
impl Store for PgStore {
    fn features(&self) -> StoreFeatures {
        StoreFeatures {
            embedding: self.embedding,
            embedding_dim: self.embedding_dim,
            backend: "postgres",
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(|e| db_error("ping failed", e))?;
        Ok(())
    }

    async fn upsert_namespace(&self, name: &str, req: &NamespaceUpsert) -> StoreResult<Namespace> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_error("cannot begin transaction", e))?;
        // An expired namespace counts as absent: PUT creates a new one rather
        // than reviving the old memories and creation time.
        sqlx::query(
            "DELETE FROM memory_namespaces
             WHERE name = $1 AND expires_at IS NOT NULL AND expires_at <= now()",
        )
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(|e| db_error("cannot replace expired namespace", e))?;
        let row = sqlx::query(
            "INSERT INTO memory_namespaces AS n (name, kind, expires_at, metadata)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET
                 kind = EXCLUDED.kind,
                 expires_at = EXCLUDED.expires_at,
                 metadata = EXCLUDED.metadata
             RETURNING name, kind, expires_at, metadata, created_at",
        )
        .bind(name)
        .bind(req.kind.as_str())
        .bind(req.expires_at)
        .bind(&req.metadata)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| db_error("cannot upsert namespace", e))?;
        tx.commit()
            .await
            .map_err(|e| db_error("cannot commit namespace", e))?;
        namespace_from_row(&row)
    }

    async fn get_namespace(&self, name: &str) -> StoreResult<Option<Namespace>> {
        let row = sqlx::query(&format!(
            "SELECT name, kind, expires_at, metadata, created_at
             FROM memory_namespaces WHERE name = $1 AND {LIVE}"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db_error("cannot read namespace", e))?;
        row.as_ref().map(namespace_from_row).transpose()
    }

    async fn patch_namespace(&self, name: &str, patch: &NamespacePatch) -> StoreResult<Namespace> {
        let row = sqlx::query(&format!(
            "UPDATE memory_namespaces SET
                 expires_at = COALESCE($2, expires_at),
                 metadata = COALESCE($3, metadata)
             WHERE name = $1 AND {LIVE}
             RETURNING name, kind, expires_at, metadata, created_at"
        ))
        .bind(name)
        .bind(patch.expires_at)
        .bind(&patch.metadata)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db_error("cannot patch namespace", e))?;
        match row {
            Some(row) => namespace_from_row(&row),
            None => Err(namespace_not_found(name)),
        }
    }

    async fn delete_namespace(&self, name: &str) -> StoreResult<()> {
        let done = sqlx::query(&format!(
            "DELETE FROM memory_namespaces WHERE name = $1 AND {LIVE}"
        ))
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("cannot delete namespace", e))?;
        if done.rows_affected() == 0 {
            return Err(namespace_not_found(name));
        }
        Ok(())
    }

    async fn write_memory(&self, namespace: &str, write: &MemoryWrite) -> StoreResult<WriteAck> {
        if let Some(embedding) = &write.embedding {
            self.check_embedding(embedding)?;
        }
        match &self.group {
            Some(queue) => queue.submit(namespace, write).await,
            None => super::group::write_alone(self, namespace, write).await,
        }
    }

    async fn write_batch(&self, writes: &[BatchWrite]) -> StoreResult<Vec<StoreResult<WriteAck>>> {
        let mut results: Vec<Option<StoreResult<WriteAck>>> = Vec::with_capacity(writes.len());
        let mut ids = Vec::with_capacity(writes.len());
        // Last index of every id among the items that passed the checks:
        // within one batch the last write of an id wins.
        let mut last_of_id: HashMap<Uuid, usize> = HashMap::with_capacity(writes.len());
        for (i, item) in writes.iter().enumerate() {
            let id = item.write.id.unwrap_or_else(crate::store::fresh_id);
            ids.push(id);
            match item
                .write
                .embedding
                .as_deref()
                .map(|e| self.check_embedding(e))
            {
                Some(Err(e)) => results.push(Some(Err(e))),
                _ => {
                    results.push(None);
                    last_of_id.insert(id, i);
                }
            }
        }
        // Sorted by id so that concurrent batches lock rows in one order and
        // cannot deadlock on each other.
        let mut winners: Vec<usize> = last_of_id.values().copied().collect();
        winners.sort_unstable_by_key(|&i| ids[i]);
        let rows: Vec<PreparedRow<'_>> = winners
            .iter()
            .map(|&i| PreparedRow {
                id: ids[i],
                namespace: &writes[i].namespace,
                write: &writes[i].write,
            })
            .collect();
        let written = if rows.is_empty() {
            HashSet::new()
        } else {
            self.insert_rows(&rows).await?
        };
        let missing: Vec<&str> = rows
            .iter()
            .filter(|r| !written.contains(&r.id))
            .map(|r| r.namespace)
            .collect();
        let live = if missing.is_empty() {
            HashSet::new()
        } else {
            self.live_namespaces(&missing).await?
        };
        let outcome = |id: Uuid, namespace: &str| -> StoreResult<WriteAck> {
            if written.contains(&id) {
                Ok(WriteAck {
                    id,
                    namespace: namespace.to_string(),
                })
            } else if !live.contains(namespace) {
                Err(namespace_not_found(namespace))
            } else {
                Err(id_conflict(id, namespace))
            }
        };
        Ok(results
            .into_iter()
            .enumerate()
            .map(|(i, checked)| {
                if let Some(err) = checked {
                    return err;
                }
                let id = ids[i];
                let namespace = writes[i].namespace.as_str();
                let winner = last_of_id[&id];
                if winner == i || writes[winner].namespace == namespace {
                    outcome(id, namespace)
                } else {
                    Err(StoreError::Conflict(format!(
                        "memory {id} is written again later in this batch to namespace {}",
                        writes[winner].namespace
                    )))
                }
            })
            .collect())
    }

    async fn search(&self, query: &SearchQuery) -> StoreResult<Vec<Memory>> {
        let kinds: Vec<&str> = query.kinds.iter().map(|k| k.as_str()).collect();
        if let Some(embedding) = &query.embedding {
            self.check_embedding(embedding)?;
            return self.semantic_search(query, &kinds, embedding).await;
        }
        let limit = i64::from(query.limit);
        let text = query.query.as_deref().map(str::trim).unwrap_or("");
        // Mode by query length, as the contract fixes it: 2+ characters
        // full-text, 1 substring, none newest first.
        let q = if text.chars().count() >= 2 {
            sqlx::query(&full_text_search_sql())
                .bind(&query.namespaces)
                .bind(&kinds)
                .bind(limit)
                .bind(text)
                .fetch_all(&self.pool)
                .await
        } else if !text.is_empty() {
            sqlx::query(&substring_search_sql())
                .bind(&query.namespaces)
                .bind(&kinds)
                .bind(limit)
                .bind(escape_like(text))
                .fetch_all(&self.pool)
                .await
        } else {
            sqlx::query(&recent_search_sql())
                .bind(&query.namespaces)
                .bind(&kinds)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
        };
        q.map_err(|e| db_error("search failed", e))?
            .iter()
            .map(memory_from_row)
            .collect()
    }

    async fn list_memories(
        &self,
        namespace: &str,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<ListResponse> {
        if self.live_namespaces(&[namespace]).await?.is_empty() {
            return Err(namespace_not_found(namespace));
        }
        let rows = sqlx::query(&format!(
            "SELECT {MEMORY_COLUMNS}, NULL::float8 AS score
             FROM memory_records
             WHERE namespace = $1 AND {LIVE} AND ($2::uuid IS NULL OR id > $2)
             ORDER BY id
             LIMIT $3"
        ))
        .bind(namespace)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_error("cannot list memories", e))?;
        let memories = rows
            .iter()
            .map(memory_from_row)
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
        // Bounds are written into the statement only when given (rather than
        // `$2 IS NULL OR id > $2`), so that every page is a range scan of the
        // primary key. The namespace of each row is looked up only while
        // some namespace has expired and awaits the sweep (the first test is
        // one probe of the partial expiry index, evaluated once per
        // statement).
        let from = match (after.is_some(), before.is_some()) {
            (true, true) => "id > $2 AND id < $3",
            (true, false) => "id > $2 AND $3::uuid IS NULL",
            (false, true) => "$2::uuid IS NULL AND id < $3",
            (false, false) => "$2::uuid IS NULL AND $3::uuid IS NULL",
        };
        // pgvector casts a vector to `real[]`, which decodes as `Vec<f32>`.
        let embedding = if embeddings && self.embedding {
            ", embedding::real[] AS embedding"
        } else {
            ""
        };
        let rows = sqlx::query(&format!(
            "SELECT {MEMORY_COLUMNS}, NULL::float8 AS score{embedding}
             FROM memory_records r
             WHERE {from} AND {LIVE}
               AND (NOT EXISTS (SELECT 1 FROM memory_namespaces
                                WHERE expires_at IS NOT NULL AND expires_at <= now())
                    OR EXISTS (SELECT 1 FROM memory_namespaces n
                               WHERE n.name = r.namespace
                                 AND (n.expires_at IS NULL OR n.expires_at > now())))
             ORDER BY id
             LIMIT $1"
        ))
        .bind(i64::from(limit))
        .bind(after)
        .bind(before)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_error("cannot scan memories", e))?;
        let memories = rows
            .iter()
            .map(|row| {
                let mut memory = memory_from_row(row)?;
                if !embedding.is_empty() {
                    memory.embedding = get(row, "embedding")?;
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
        let rows = sqlx::query(&format!(
            "SELECT name, kind, expires_at, metadata, created_at
             FROM memory_namespaces
             WHERE ($1::text IS NULL OR name > $1) AND {LIVE}
             ORDER BY name
             LIMIT $2"
        ))
        .bind(after)
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_error("cannot list namespaces", e))?;
        let namespaces = rows
            .iter()
            .map(namespace_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(super::namespace_page_of(namespaces, limit.max(1)))
    }

    async fn memory_checksums(
        &self,
        prefix: u32,
        created_at: bool,
    ) -> StoreResult<ChecksumResponse> {
        let mut rows = sqlx::query(CHECKSUM_ROWS_SQL).fetch(&self.pool);
        let mut buckets = Accumulator::new(prefix);
        while let Some(row) = rows
            .try_next()
            .await
            .map_err(|e| db_error("cannot read memories to checksum", e))?
        {
            // By position, and the text columns as the bytes Postgres sent
            // (UTF-8, the connection's client encoding): a million rows are read.
            let read = |e: sqlx::Error| StoreError::Internal(format!("cannot read a memory: {e}"));
            let id: Uuid = row.try_get(0).map_err(read)?;
            let namespace: &[u8] = row.try_get_unchecked(1).map_err(read)?;
            let content: &[u8] = row.try_get_unchecked(2).map_err(read)?;
            let at: DateTime<Utc> = row.try_get(3).map_err(read)?;
            buckets.add(
                id,
                memory_digest_bytes(id, namespace, content, created_at.then_some(at)),
            );
        }
        Ok(ChecksumResponse {
            prefix,
            created_at,
            buckets: buckets.into_wire(),
        })
    }

    async fn forget(&self, id: Uuid, namespace: &str) -> StoreResult<()> {
        let done = sqlx::query(&format!(
            "DELETE FROM memory_records
             WHERE id = $1 AND namespace = $2 AND {LIVE}
               AND namespace IN (SELECT name FROM memory_namespaces WHERE name = $2 AND {LIVE})"
        ))
        .bind(id)
        .bind(namespace)
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("cannot forget memory", e))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "memory {id} not found in namespace {namespace}"
            )));
        }
        Ok(())
    }

    async fn sweep_expired(&self, now: DateTime<Utc>) -> StoreResult<SweepReport> {
        // Memories first (their own expiry or their namespace's), so the
        // report counts every memory removed, then the namespaces.
        let memories = sqlx::query(
            "DELETE FROM memory_records
             WHERE (expires_at IS NOT NULL AND expires_at <= $1)
                OR namespace IN (SELECT name FROM memory_namespaces
                                 WHERE expires_at IS NOT NULL AND expires_at <= $1)",
        )
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("sweep of memories failed", e))?
        .rows_affected();
        let namespaces = sqlx::query(
            "DELETE FROM memory_namespaces WHERE expires_at IS NOT NULL AND expires_at <= $1",
        )
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("sweep of namespaces failed", e))?
        .rows_affected();
        Ok(SweepReport {
            memories,
            namespaces,
        })
    }

    fn write_group_stats(&self) -> crate::store::group::GroupStats {
        self.group
            .as_ref()
            .map(|queue| queue.stats())
            .unwrap_or_default()
    }

    fn pool_stats(&self) -> PoolStats {
        let pools = std::iter::once(&self.pool).chain(self.writer.as_ref());
        let (size, idle) = pools.fold((0u32, 0u32), |(size, idle), pool| {
            let pool_idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
            (size + pool.size(), idle.saturating_add(pool_idle))
        });
        PoolStats {
            size,
            idle,
            max: self.max_connections,
        }
    }
}

/// Applies migrations under an advisory lock; returns whether pgvector
/// embeddings are available.
async fn migrate(conn: &mut PgConnection, schema: &str, dim: usize) -> StoreResult<VectorSupport> {
    // One lock per schema: two plugins on different schemas do not wait for
    // each other, two on the same schema run one after the other.
    let lock_key = format!("memory-plugin migrate {schema}");
    sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
        .bind(&lock_key)
        .execute(&mut *conn)
        .await
        .map_err(|e| db_error("cannot take the migration lock", e))?;
    let result = migrate_locked(conn, schema, dim).await;
    let _ = sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
        .bind(&lock_key)
        .execute(&mut *conn)
        .await;
    result
}

async fn migrate_locked(
    conn: &mut PgConnection,
    schema: &str,
    dim: usize,
) -> StoreResult<VectorSupport> {
    let ident = quote_ident(schema);
    let setup = format!(
        "CREATE SCHEMA IF NOT EXISTS {ident};
         SET search_path TO {ident}, public;
         CREATE TABLE IF NOT EXISTS schema_migrations (
             version     integer     PRIMARY KEY,
             description text        NOT NULL,
             applied_at  timestamptz NOT NULL DEFAULT now()
         );"
    );
    sqlx::raw_sql(&setup)
        .execute(&mut *conn)
        .await
        .map_err(|e| db_error(&format!("cannot create schema {schema}"), e))?;
    let applied: Vec<i32> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| db_error("cannot read schema_migrations", e))?;
    for (version, description, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        let mut tx = conn
            .begin()
            .await
            .map_err(|e| db_error("cannot begin migration", e))?;
        sqlx::raw_sql(sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| migration_error(*version, e))?;
        sqlx::query("INSERT INTO schema_migrations (version, description) VALUES ($1, $2)")
            .bind(version)
            .bind(description)
            .execute(&mut *tx)
            .await
            .map_err(|e| migration_error(*version, e))?;
        tx.commit()
            .await
            .map_err(|e| migration_error(*version, e))?;
    }

    if let Some(existing) = embedding_column_dim(conn, schema).await? {
        check_column_dim(existing, dim)?;
        return vector_support(conn).await;
    }
    if !ensure_vector_extension(conn).await? {
        return Ok(VectorSupport::default());
    }
    let support = vector_support(conn).await?;
    // The extension may live in another schema than ours or public.
    sqlx::raw_sql(&format!(
        "SET search_path TO {}",
        search_path(schema, support.extension_schema.as_deref())
    ))
    .execute(&mut *conn)
    .await
    .map_err(|e| db_error("cannot set search_path", e))?;
    let mut tx = conn
        .begin()
        .await
        .map_err(|e| db_error("cannot begin migration", e))?;
    sqlx::raw_sql(&EMBEDDING_COLUMN_SQL.replace("{dim}", &dim.to_string()))
        .execute(&mut *tx)
        .await
        .map_err(|e| db_error("cannot add the embedding column", e))?;
    if dim <= HNSW_MAX_DIM {
        sqlx::raw_sql(EMBEDDING_INDEX_SQL)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error("cannot create the HNSW index on embedding", e))?;
    } else {
        tracing::warn!(
            dim,
            "embedding dimension is above pgvector's HNSW limit of {HNSW_MAX_DIM}; \
             semantic search will scan without an index"
        );
    }
    tx.commit()
        .await
        .map_err(|e| db_error("cannot add the embedding column", e))?;
    Ok(support)
}

/// Without migrating: checks the schema exists and detects embeddings.
async fn detect(conn: &mut PgConnection, schema: &str, dim: usize) -> StoreResult<VectorSupport> {
    let table = format!("{}.memory_records", quote_ident(schema));
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(&table)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| db_error("cannot inspect the schema", e))?;
    if exists.is_none() {
        return Err(StoreError::BadRequest(format!(
            "table {schema}.memory_records does not exist and migrations are disabled; \
             start once with migrations enabled"
        )));
    }
    match embedding_column_dim(conn, schema).await? {
        Some(existing) => {
            check_column_dim(existing, dim)?;
            vector_support(conn).await
        }
        None => Ok(VectorSupport::default()),
    }
}

/// Where pgvector is installed and what it supports; called when the
/// `embedding` column exists or has just been made possible.
async fn vector_support(conn: &mut PgConnection) -> StoreResult<VectorSupport> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, e.extversion
         FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
         WHERE e.extname = 'vector'",
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| db_error("cannot inspect extensions", e))?;
    let Some((schema, version)) = row else {
        return Err(StoreError::Internal(
            "memory_records.embedding exists but the vector extension is not installed".to_string(),
        ));
    };
    Ok(VectorSupport {
        enabled: true,
        extension_schema: Some(schema),
        iterative_scan: version_at_least(&version, (0, 8)),
    })
}

/// True when a `major.minor[.patch]` version is at least `min`.
fn version_at_least(version: &str, min: (u32, u32)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= min
}

/// The search_path of every connection: our schema first, then the schema
/// holding pgvector (if elsewhere), then public.
fn search_path(schema: &str, extension_schema: Option<&str>) -> String {
    let mut schemas = vec![schema];
    if let Some(ext) = extension_schema {
        if ext != schema && ext != "public" {
            schemas.push(ext);
        }
    }
    schemas.push("public");
    schemas
        .into_iter()
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Dimension of `memory_records.embedding`, or `None` when there is no such column.
async fn embedding_column_dim(conn: &mut PgConnection, schema: &str) -> StoreResult<Option<i32>> {
    let table = format!("{}.memory_records", quote_ident(schema));
    // For pgvector's `vector(n)` the type modifier is n itself.
    sqlx::query_scalar(
        "SELECT atttypmod FROM pg_attribute
         WHERE attrelid = $1::regclass AND attname = 'embedding' AND NOT attisdropped",
    )
    .bind(&table)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| db_error("cannot inspect memory_records.embedding", e))
}

fn check_column_dim(existing: i32, configured: usize) -> StoreResult<()> {
    if usize::try_from(existing).ok() != Some(configured) {
        return Err(StoreError::BadRequest(format!(
            "memory_records.embedding holds vectors of dimension {existing}, but the configured \
             embedding dimension (MEMORY_PLUGIN_EMBEDDING_DIM) is {configured}; configure \
             {existing} or migrate the column by hand"
        )));
    }
    Ok(())
}

/// Installs pgvector when possible; returns whether it is installed.
async fn ensure_vector_extension(conn: &mut PgConnection) -> StoreResult<bool> {
    let installed_sql = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector')";
    let installed: bool = sqlx::query_scalar(installed_sql)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| db_error("cannot inspect extensions", e))?;
    if installed {
        return Ok(true);
    }
    let available: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| db_error("cannot inspect extensions", e))?;
    if !available {
        tracing::info!("pgvector is not available; semantic search is disabled");
        return Ok(false);
    }
    // Into public, where other users of the database expect it; into the
    // first schema of search_path (ours) when public is missing.
    for create in [
        "CREATE EXTENSION IF NOT EXISTS vector SCHEMA public",
        "CREATE EXTENSION IF NOT EXISTS vector",
    ] {
        match sqlx::raw_sql(create).execute(&mut *conn).await {
            Ok(_) => break,
            // Another process may have created it at the same moment (the
            // advisory lock is per schema), or we lack the privilege.
            Err(e) => tracing::warn!(error = %e, "{create} failed"),
        }
    }
    sqlx::query_scalar(installed_sql)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| db_error("cannot inspect extensions", e))
}

fn migration_error(version: i32, e: sqlx::Error) -> StoreError {
    db_error(&format!("migration {version} failed"), e)
}

/// Maps a database error: lost or refused connections are `Unavailable`,
/// everything else `Internal`.
fn db_error(context: &str, e: sqlx::Error) -> StoreError {
    let unavailable = match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 57P01..03: shutdown / starting up;
            // 53300: too many connections; 28: invalid authorization;
            // 3D000: database does not exist; 40P01 / 40001: deadlock or
            // serialization failure (the transaction was rolled back and
            // may simply be run again).
            code.starts_with("08")
                || code.starts_with("28")
                || matches!(
                    &*code,
                    "57P01" | "57P02" | "57P03" | "53300" | "3D000" | "40P01" | "40001"
                )
        }),
        _ => false,
    };
    if unavailable {
        StoreError::Unavailable(format!("{context}: {e}"))
    } else {
        StoreError::Internal(format!("{context}: {e}"))
    }
}

fn foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23503"))
}

fn namespace_not_found(name: &str) -> StoreError {
    StoreError::NotFound(format!("namespace {name} not found"))
}

fn id_conflict(id: Uuid, namespace: &str) -> StoreError {
    StoreError::Conflict(format!(
        "memory {id} already exists in another namespace; it cannot be written to {namespace}"
    ))
}

fn namespace_from_row(row: &PgRow) -> StoreResult<Namespace> {
    let kind: String = get(row, "kind")?;
    Ok(Namespace {
        name: get(row, "name")?,
        kind: kind
            .parse()
            .map_err(|e| StoreError::Internal(format!("bad namespace kind in database: {e}")))?,
        expires_at: get(row, "expires_at")?,
        metadata: get(row, "metadata")?,
        created_at: get(row, "created_at")?,
    })
}

fn memory_from_row(row: &PgRow) -> StoreResult<Memory> {
    let kind: String = get(row, "kind")?;
    let source: String = get(row, "source")?;
    Ok(Memory {
        id: get(row, "id")?,
        namespace: get(row, "namespace")?,
        content: get(row, "content")?,
        kind: kind
            .parse()
            .map_err(|e| StoreError::Internal(format!("bad memory kind in database: {e}")))?,
        source: source
            .parse()
            .map_err(|e| StoreError::Internal(format!("bad memory source in database: {e}")))?,
        expires_at: get(row, "expires_at")?,
        propagation: get(row, "propagation")?,
        pin: get(row, "pin")?,
        created_at: get(row, "created_at")?,
        score: get(row, "score")?,
        embedding: None,
    })
}

fn get<'r, T>(row: &'r PgRow, column: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column)
        .map_err(|e| StoreError::Internal(format!("cannot read column {column}: {e}")))
}

/// pgvector's text form, `[1,2.5,-3]`; parsed by the `::vector` cast.
fn vector_literal(v: &[f32]) -> String {
    let mut s = String::with_capacity(v.len() * 10 + 2);
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&x.to_string());
    }
    s.push(']');
    s
}

/// Escapes `\`, `%` and `_` so a LIKE pattern matches them literally.
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Schema names are plain lowercase identifiers, so they never need quoting
/// in psql and cannot smuggle SQL.
fn validate_schema_name(name: &str) -> StoreResult<()> {
    let mut chars = name.chars();
    let valid_first = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let valid_rest = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid_first || !valid_rest || name.len() > 63 {
        return Err(StoreError::BadRequest(format!(
            "invalid schema name {name:?}: use 1 to 63 lowercase letters, digits or \
             underscores, not starting with a digit"
        )));
    }
    Ok(())
}

/// Double-quotes an identifier (defence in depth after validation).
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The password in a database URL, to scrub from error texts.
fn url_password(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let raw = parsed.password()?;
    let decoded = percent_decode(raw);
    Some(decoded).filter(|p| !p.is_empty())
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("p={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

/// Removes the password (raw and URL-encoded) from an error message.
fn scrub_error(e: StoreError, password: Option<&str>) -> StoreError {
    let Some(password) = password else {
        return e;
    };
    let encoded: String = url::form_urlencoded::byte_serialize(password.as_bytes()).collect();
    let scrub = |msg: String| msg.replace(password, "***").replace(&encoded, "***");
    match e {
        StoreError::NotFound(m) => StoreError::NotFound(scrub(m)),
        StoreError::Conflict(m) => StoreError::Conflict(scrub(m)),
        StoreError::BadRequest(m) => StoreError::BadRequest(scrub(m)),
        StoreError::Unavailable(m) => StoreError::Unavailable(scrub(m)),
        StoreError::Internal(m) => StoreError::Internal(scrub(m)),
    }
}

/// The columns every search returns, in row order (before `score`). Public
/// so that benchmarks build their floors from the store's own pieces.
pub const SEARCH_COLUMNS_SQL: &str = MEMORY_COLUMNS;

/// The full-text search statement: namespaces `$1`, kinds `$2`, limit `$3`,
/// query text `$4` (websearch syntax, English).
pub fn full_text_search_sql() -> String {
    format!(
        "SELECT {MEMORY_COLUMNS}, ts_rank(search_tsv, q)::float8 AS score
         FROM memory_records, websearch_to_tsquery('english', $4) AS q
         WHERE {SEARCH_FILTER} AND search_tsv @@ q
         ORDER BY score DESC, pin DESC, created_at DESC, id
         LIMIT $3"
    )
}

/// The substring (1-character query) statement: parameters as in
/// [`full_text_search_sql`], `$4` from [`substring_argument`]. Substring
/// matches are ordered newest first, so this is the newest-first merge with
/// the ILIKE test inside each namespace's index scan: a one-character query
/// matches most rows, and each scan stops after `$3` matches instead of
/// testing and sorting every row of the namespace.
pub fn substring_search_sql() -> String {
    newest_first_sql("AND r.content ILIKE '%' || $4 || '%' ESCAPE '\\'")
}

/// The ILIKE argument `$4` the substring mode binds for `text`.
pub fn substring_argument(text: &str) -> String {
    escape_like(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_like_escapes_wildcards_and_backslash() {
        assert_eq!(escape_like(r"50%_a\b"), r"50\%\_a\\b");
    }

    #[test]
    fn schema_names_are_validated() {
        assert!(validate_schema_name("memory_plugin").is_ok());
        assert!(validate_schema_name("_x1").is_ok());
        for bad in [
            "",
            "1abc",
            "Memory",
            "a-b",
            "a\"b",
            "a;drop",
            &"a".repeat(64),
        ] {
            assert!(validate_schema_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn scrub_removes_raw_and_encoded_password() {
        let pw = url_password("postgres://u:s%40cret@h/db").expect("password");
        assert_eq!(pw, "s@cret");
        let e = scrub_error(
            StoreError::Unavailable("x s@cret y s%40cret".to_string()),
            Some(&pw),
        );
        assert_eq!(e.to_string(), "storage unavailable: x *** y ***");
    }

    #[test]
    fn vector_literal_is_pgvector_text() {
        assert_eq!(vector_literal(&[1.0, -0.5, 3.25]), "[1,-0.5,3.25]");
    }
}
