//! The floors: the same work done directly inside Postgres, with no HTTP, no
//! JSON and no client process in between. Each figure of the report is
//! divided by one of these.
//!
//! The write statement is the plugin's own (`INSERT_SQL`) and the search
//! statements are built from the store's column list and filter, so a ratio
//! measures what the plugin adds around the same SQL, not a different query
//! plan. The naive search statements ([`naive_search_sql`]) are a second
//! floor: what a plugin author would write first.

// The plugin's own write statement (without embeddings), so the floor runs
// exactly what the store runs.
use anyhow::{Context, Result};
use memory_plugin::store::postgres::{INSERT_SQL, WRITE_SESSION_SETTING};
use sqlx::PgPool;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Schema the plugin serves the backfill from (its default).
pub const PLUGIN_SCHEMA: &str = "memory_plugin";
/// Schema the in-database copy (floor a) writes into.
pub const FLOOR_SCHEMA: &str = "bench_floor";
/// Schema the naive per-row baseline writes into.
pub const NAIVE_SCHEMA: &str = "bench_naive";
/// Schema of the Postgres plugin `memory-migrate` moves the SQLite plugin's
/// memories into (section j).
pub const MIGRATE_SCHEMA: &str = "bench_migrate";

/// Namespace resolution of every workspace, as DESIGN section 5 defines it:
/// team = parent (self for a root or a dangling parent), org = highest
/// ancestor reached in at most 50 hops without revisiting a workspace.
const RESOLVE_SQL: &str = "
    CREATE TABLE bench_floor.bench_resolved AS
    WITH RECURSIVE up (workspace_id, ancestor, next_parent, hops, path) AS (
        SELECT w.id, w.id, w.parent_id, 0, ARRAY[w.id] FROM workspaces w
        UNION ALL
        SELECT u.workspace_id, p.id, p.parent_id, u.hops + 1, u.path || p.id
        FROM up u JOIN workspaces p ON p.id = u.next_parent
        WHERE u.hops < 50 AND p.id <> ALL (u.path)
    ),
    top AS (
        SELECT DISTINCT ON (workspace_id) workspace_id, ancestor AS root_id
        FROM up ORDER BY workspace_id, hops DESC
    )
    SELECT w.id AS workspace_id, coalesce(p.id, w.id) AS team_id, top.root_id
    FROM workspaces w
    LEFT JOIN workspaces p ON p.id = w.parent_id
    JOIN top ON top.workspace_id = w.id";

/// Result of the in-database copy.
#[derive(Debug, Clone, Copy)]
pub struct CopyFloor {
    pub elapsed: Duration,
    pub namespaces: u64,
    pub rows: u64,
}

/// Floor (a): resolve every workspace and copy every mappable legacy row
/// into the plugin tables of [`FLOOR_SCHEMA`] (created beforehand by the
/// plugin's own migration), namespaces included, in one transaction.
///
/// # Errors
///
/// Any failing statement.
pub async fn copy_inside_database(pool: &PgPool) -> Result<CopyFloor> {
    let started = Instant::now();
    let mut tx = pool.begin().await?;
    sqlx::query(RESOLVE_SQL)
        .execute(&mut *tx)
        .await
        .context("floor: resolving namespaces failed")?;
    let namespaces = sqlx::query(
        "INSERT INTO bench_floor.memory_namespaces (name, kind)
         SELECT DISTINCT name, kind FROM bench_floor.bench_resolved r,
             LATERAL (VALUES ('workspace:' || r.workspace_id, 'workspace'),
                             ('team:' || r.team_id, 'team'),
                             ('org:' || r.root_id, 'org')) AS n (name, kind)
         ON CONFLICT (name) DO NOTHING",
    )
    .execute(&mut *tx)
    .await
    .context("floor: creating namespaces failed")?
    .rows_affected();
    let rows = sqlx::query(
        "INSERT INTO bench_floor.memory_records (id, namespace, content, kind, source, created_at)
         SELECT m.id,
                CASE m.scope
                    WHEN 'LOCAL' THEN 'workspace:' || r.workspace_id
                    WHEN 'TEAM' THEN 'team:' || r.team_id
                    ELSE 'org:' || r.root_id
                END,
                m.content, 'fact', 'agent', m.created_at
         FROM agent_memories m
         JOIN bench_floor.bench_resolved r ON r.workspace_id = m.workspace_id
         WHERE m.scope IN ('LOCAL', 'TEAM', 'GLOBAL') AND btrim(m.content) <> ''",
    )
    .execute(&mut *tx)
    .await
    .context("floor: copying rows failed")?
    .rows_affected();
    tx.commit().await?;
    Ok(CopyFloor {
        elapsed: started.elapsed(),
        namespaces,
        rows,
    })
}

/// Result of the in-database parity check.
#[derive(Debug, Clone, Copy)]
pub struct AntiJoinFloor {
    pub elapsed: Duration,
    /// Legacy rows missing from the plugin or with different content.
    pub mismatches: i64,
}

/// Floor (d): one anti-join of the legacy rows against the plugin rows of
/// `schema`: rows missing or whose content differs.
///
/// # Errors
///
/// When the query fails.
pub async fn anti_join(pool: &PgPool, schema: &str) -> Result<AntiJoinFloor> {
    let started = Instant::now();
    let mismatches: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM agent_memories m
         LEFT JOIN {schema}.memory_records r ON r.id = m.id
         WHERE r.id IS NULL OR r.content <> m.content"
    ))
    .fetch_one(pool)
    .await
    .context("floor: anti-join failed")?;
    Ok(AntiJoinFloor {
        elapsed: started.elapsed(),
        mismatches,
    })
}

/// Floor (e): one memory written with the plugin's statement, on a pool
/// whose `search_path` is the plugin schema, with an id such as the plugin
/// makes ([`memory_plugin::store::fresh_id`]).
///
/// # Errors
///
/// When the insert fails or writes nothing.
pub async fn insert_one(pool: &PgPool, namespace: &str, content: &str) -> Result<()> {
    let written: Vec<Uuid> = sqlx::query_scalar(INSERT_SQL)
        .bind(vec![memory_plugin::store::fresh_id()])
        .bind(vec![namespace])
        .bind(vec![content])
        .bind(vec!["fact"])
        .bind(vec!["agent"])
        .bind(vec![None::<chrono::DateTime<chrono::Utc>>])
        .bind(vec![None::<serde_json::Value>])
        .bind(vec![false])
        .bind(vec![None::<chrono::DateTime<chrono::Utc>>])
        .fetch_all(pool)
        .await?;
    anyhow::ensure!(written.len() == 1, "insert wrote {} rows", written.len());
    Ok(())
}

/// Search modes measured by the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Recent,
    Substring,
    FullText,
    Semantic,
}

impl Mode {
    /// Name used in the report.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Recent => "recent",
            Mode::Substring => "substring",
            Mode::FullText => "full-text",
            Mode::Semantic => "semantic",
        }
    }
}

use memory_plugin::store::postgres::{
    first_pass_semantic_sql, full_text_search_sql, recent_search_sql, substring_search_sql,
    FIRST_PASS_MAX_ROWS, SEARCH_COLUMNS_SQL as MEMORY_COLUMNS,
};

/// A search statement of the benchmark, and the value of its `$5` when it
/// has one: the semantic first pass's bound on the candidates it compares,
/// bound as the store binds it.
#[derive(Debug, Clone)]
pub struct SearchStatement {
    pub sql: String,
    pub max_candidates: Option<i64>,
}

impl SearchStatement {
    fn plain(sql: String) -> SearchStatement {
        SearchStatement {
            sql,
            max_candidates: None,
        }
    }
}

/// The plugin's search statement for `mode`: the store's own statements
/// (`memory_plugin::store::postgres`); `$4` is the query text (escaped by
/// the store's `substring_argument` for ILIKE) or the vector literal. The
/// semantic statement is the store's first pass, which answers every
/// search of up to `FIRST_PASS_MAX_ROWS` candidates (the benchmark's
/// namespaces hold a few hundred), with `$5` bound to the store's value.
pub fn search_sql(mode: Mode) -> SearchStatement {
    match mode {
        Mode::Semantic => SearchStatement {
            sql: first_pass_semantic_sql(),
            max_candidates: Some(FIRST_PASS_MAX_ROWS + 1),
        },
        Mode::FullText => SearchStatement::plain(full_text_search_sql()),
        Mode::Substring => SearchStatement::plain(substring_search_sql()),
        Mode::Recent => SearchStatement::plain(recent_search_sql()),
    }
}

/// The statement a plugin author would write first for `mode`: one query
/// over `namespace = ANY($1)` and live rows, sorted as the store sorts
/// (no check that the namespaces themselves are live, no kind filter
/// beyond `$2`). Parameters as in [`search_sql`].
pub fn naive_search_sql(mode: Mode) -> SearchStatement {
    SearchStatement::plain(naive_sql_text(mode))
}

fn naive_sql_text(mode: Mode) -> String {
    const NAIVE_FILTER: &str = "namespace = ANY($1)
         AND (expires_at IS NULL OR expires_at > now())
         AND (cardinality($2::text[]) = 0 OR kind = ANY($2))";
    match mode {
        Mode::Semantic => format!(
            "SELECT {MEMORY_COLUMNS}, 1 - (embedding <=> $4::vector) AS score
             FROM memory_records
             WHERE {NAIVE_FILTER} AND embedding IS NOT NULL
             ORDER BY embedding <=> $4::vector
             LIMIT $3"
        ),
        Mode::FullText => format!(
            "SELECT {MEMORY_COLUMNS}, ts_rank(search_tsv, websearch_to_tsquery('english', $4))::float8 AS score
             FROM memory_records
             WHERE {NAIVE_FILTER} AND search_tsv @@ websearch_to_tsquery('english', $4)
             ORDER BY score DESC, pin DESC, created_at DESC, id
             LIMIT $3"
        ),
        Mode::Substring => format!(
            "SELECT {MEMORY_COLUMNS}, NULL::float8 AS score
             FROM memory_records
             WHERE {NAIVE_FILTER} AND content ILIKE '%' || $4 || '%' ESCAPE '\\'
             ORDER BY pin DESC, created_at DESC, id
             LIMIT $3"
        ),
        Mode::Recent => format!(
            "SELECT {MEMORY_COLUMNS}, NULL::float8 AS score
             FROM memory_records
             WHERE {NAIVE_FILTER}
             ORDER BY pin DESC, created_at DESC, id
             LIMIT $3"
        ),
    }
}

/// Runs one search directly, fetching every returned row as the plugin does.
///
/// # Errors
///
/// When the query fails.
pub async fn search_direct(
    pool: &PgPool,
    statement: &SearchStatement,
    namespaces: &[String],
    text: Option<&str>,
    limit: i64,
) -> Result<usize> {
    let no_kinds: Vec<String> = Vec::new();
    let mut query = sqlx::query(&statement.sql)
        .bind(namespaces)
        .bind(&no_kinds)
        .bind(limit);
    if let Some(text) = text {
        query = query.bind(text);
    }
    if let Some(bound) = statement.max_candidates {
        query = query.bind(bound);
    }
    Ok(query.fetch_all(pool).await?.len())
}

/// A pool whose connections use `schema` first, then `public`, as the plugin's do.
///
/// # Errors
///
/// When the database cannot be reached.
pub async fn schema_pool(url: &url::Url, schema: &str, max_connections: u32) -> Result<PgPool> {
    open_schema_pool(url, schema, max_connections, &[]).await
}

/// [`schema_pool`] whose sessions run the plugin's write statement as its
/// group committers' sessions do ([`WRITE_SESSION_SETTING`]: planned once
/// per session), for the store-statement write floor.
///
/// # Errors
///
/// When the pool cannot connect.
pub async fn write_pool(url: &url::Url, schema: &str, max_connections: u32) -> Result<PgPool> {
    open_schema_pool(url, schema, max_connections, &[WRITE_SESSION_SETTING]).await
}

async fn open_schema_pool(
    url: &url::Url,
    schema: &str,
    max_connections: u32,
    settings: &[(&str, &str)],
) -> Result<PgPool> {
    // `public` after the plugin schema: that is where pgvector's type lives.
    // No space after the comma: the value travels in a `-c` startup option.
    let search_path = format!("{schema},public");
    let opts = crate::scratch::connect_options(url)?
        .options([("search_path", search_path.as_str())])
        .options(settings.iter().copied());
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(max_connections)
        .acquire_timeout(Duration::from_secs(60))
        .connect_with(opts)
        .await
        .with_context(|| format!("failed to open a pool on schema {schema}"))
}

/// Three readable namespaces per workspace (workspace, team, org), for
/// `count` workspaces picked at random from those that hold memories.
///
/// # Errors
///
/// When the query fails.
pub async fn search_namespace_sets(pool: &PgPool, count: i64) -> Result<Vec<Vec<String>>> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT 'workspace:' || r.workspace_id, 'team:' || r.team_id, 'org:' || r.root_id
         FROM bench_floor.bench_resolved r
         WHERE EXISTS (SELECT 1 FROM agent_memories m WHERE m.workspace_id = r.workspace_id)
         ORDER BY md5(r.workspace_id::text)
         LIMIT $1",
    )
    .bind(count)
    .fetch_all(pool)
    .await
    .context("failed to pick namespaces for the search figures")?;
    Ok(rows.into_iter().map(|(a, b, c)| vec![a, b, c]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_semantic_first_pass_binds_a_candidate_bound() {
        let semantic = search_sql(Mode::Semantic);
        assert!(semantic.sql.contains("$5"));
        assert_eq!(semantic.max_candidates, Some(FIRST_PASS_MAX_ROWS + 1));
        for mode in [Mode::Recent, Mode::Substring, Mode::FullText] {
            let store = search_sql(mode);
            assert!(!store.sql.contains("$5"), "{}", mode.name());
            assert_eq!(store.max_candidates, None);
        }
        for mode in [
            Mode::Recent,
            Mode::Substring,
            Mode::FullText,
            Mode::Semantic,
        ] {
            let naive = naive_search_sql(mode);
            assert!(!naive.sql.contains("$5"), "{}", mode.name());
            assert_eq!(naive.max_candidates, None);
        }
    }
}
