//! Semantic-search figures on PostgreSQL 18 with pgvector (the machine's
//! PostgreSQL 15 has no pgvector). Optional: `--semantic` uses the shared
//! throwaway cluster of `memory-testkit`, `--pg18-url` a server of your own.
//!
//! A plugin with a small embedding dimension is loaded through the batch
//! route with legacy rows and random unit vectors; then the same
//! semantic-search requests go through the plugin and, as the floor,
//! straight to the database with the plugin's statement.
//!
//! The plugin keeps its HNSW index up to date row by row, which makes a
//! load of a million vectors take hours. So the index is dropped before the
//! load and built afterwards with the plugin's own statement, as an
//! operator would for a bulk import; searches then use exactly the index
//! the plugin would have.

use crate::floors::{self, Mode, PLUGIN_SCHEMA};
use crate::load::{run_load, LoadBounds, LoadSummary};
use crate::plugin::{PluginHttp, PluginProcess};
use anyhow::{bail, Context, Result};
use memory_contract::{capability, SearchRequest};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What the semantic phase measured.
pub struct SemanticResult {
    pub rows: u64,
    pub load_seconds: f64,
    /// Time to build the HNSW index after the load.
    pub index_seconds: f64,
    pub via_plugin: LoadSummary,
    pub direct: LoadSummary,
    /// The naive statement ([`floors::naive_search_sql`]).
    pub naive: LoadSummary,
    pub plugin_peak_rss: u64,
}

/// A random unit vector of `dim` components.
pub fn random_unit_vector(rng: &mut StdRng, dim: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// pgvector's text form of a vector.
pub fn vector_literal(v: &[f32]) -> String {
    let parts: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("[{}]", parts.join(","))
}

/// Settings of the semantic phase.
pub struct SemanticSetup<'a> {
    pub plugin_binary: &'a Path,
    pub log_dir: &'a Path,
    /// URL of an empty database on a server with pgvector.
    pub database_url: &'a url::Url,
    /// The legacy database, with `bench_floor.bench_resolved`.
    pub legacy: &'a PgPool,
    pub rows: u64,
    pub dim: usize,
    pub requests: u64,
    pub quick: bool,
    pub namespace_sets: &'a [Vec<String>],
}

/// Runs the semantic phase.
///
/// # Errors
///
/// When the plugin cannot start, does not advertise `embedding`, or a load
/// step fails.
pub async fn measure(setup: SemanticSetup<'_>) -> Result<SemanticResult> {
    let plugin = PluginProcess::start(
        "plugin-pg18",
        setup.plugin_binary,
        setup.database_url.as_str(),
        &[
            ("MEMORY_PLUGIN_EMBEDDING_DIM", setup.dim.to_string()),
            ("MEMORY_PLUGIN_MAX_CONNECTIONS", "8".to_string()),
        ],
        setup.log_dir,
    )
    .await?;
    let http = plugin.handle();
    let health = http.health().await?;
    if !health.supports(capability::EMBEDDING) {
        plugin.stop().await;
        bail!("the plugin on PostgreSQL 18 does not advertise `embedding`; is pgvector installed?");
    }

    let pool = floors::schema_pool(setup.database_url, PLUGIN_SCHEMA, 1).await?;
    sqlx::query("DROP INDEX IF EXISTS memory_records_embedding_hnsw_idx")
        .execute(&pool)
        .await
        .context("failed to drop the HNSW index before the load")?;
    let started = std::time::Instant::now();
    crate::run::create_all_namespaces(setup.legacy, &http).await?;
    let mut rng = StdRng::seed_from_u64(0xe5bed);
    let dim = setup.dim;
    let rows = crate::run::load_through_batches(setup.legacy, &http, setup.rows, move |_| {
        Some(random_unit_vector(&mut rng, dim))
    })
    .await?;
    let load_seconds = started.elapsed().as_secs_f64();

    let started = std::time::Instant::now();
    for setting in [
        "SET maintenance_work_mem = '1GB'",
        "SET max_parallel_maintenance_workers = 1",
    ] {
        sqlx::query(setting).execute(&pool).await?;
    }
    sqlx::raw_sql(memory_plugin::store::postgres::EMBEDDING_INDEX_SQL)
        .execute(&pool)
        .await
        .context("failed to build the HNSW index")?;
    let index_seconds = started.elapsed().as_secs_f64();
    sqlx::query("ANALYZE memory_records").execute(&pool).await?;
    let mut rng = StdRng::seed_from_u64(0x9e7);
    let queries: Arc<Vec<Vec<f32>>> =
        Arc::new((0..64).map(|_| random_unit_vector(&mut rng, dim)).collect());
    let sets = Arc::new(setup.namespace_sets.to_vec());
    let (via_plugin, direct, naive) =
        search(&http, &pool, &queries, &sets, setup.requests, setup.quick).await;
    pool.close().await;
    let exit = plugin.stop().await;
    Ok(SemanticResult {
        rows,
        load_seconds,
        index_seconds,
        via_plugin,
        direct,
        naive,
        plugin_peak_rss: exit.peak_rss_bytes,
    })
}

async fn search(
    http: &PluginHttp,
    pool: &PgPool,
    queries: &Arc<Vec<Vec<f32>>>,
    sets: &Arc<Vec<Vec<String>>>,
    requests: u64,
    quick: bool,
) -> (LoadSummary, LoadSummary, LoadSummary) {
    let plugin_op = {
        let http = http.clone();
        let queries = Arc::clone(queries);
        let sets = Arc::clone(sets);
        move |_: usize, i: u64| {
            let http = http.clone();
            let request = SearchRequest {
                namespaces: sets[(i as usize) % sets.len()].clone(),
                query: None,
                kinds: None,
                limit: Some(20),
                embedding: Some(queries[(i as usize) % queries.len()].clone()),
                mode: None,
            };
            async move { http.search(&request).await.map(|_| ()) }
        }
    };
    let direct_with = |sql: floors::SearchStatement| {
        let pool = pool.clone();
        let queries = Arc::clone(queries);
        let sets = Arc::clone(sets);
        let sql = Arc::new(sql);
        move |_: usize, i: u64| {
            let pool = pool.clone();
            let sql = Arc::clone(&sql);
            let namespaces = sets[(i as usize) % sets.len()].clone();
            let literal = vector_literal(&queries[(i as usize) % queries.len()]);
            async move {
                floors::search_direct(&pool, &sql, &namespaces, Some(&literal), 20)
                    .await
                    .map(|_| ())
            }
        }
    };
    let direct_op = direct_with(floors::search_sql(Mode::Semantic));
    let naive_op = direct_with(floors::naive_search_sql(Mode::Semantic));
    let warm = LoadBounds {
        max_ops: 20,
        max_time: Duration::from_secs(10),
    };
    let bounds = LoadBounds {
        max_ops: requests,
        max_time: Duration::from_secs(if quick { 5 } else { 60 }),
    };
    run_load(1, warm, plugin_op.clone()).await;
    run_load(1, warm, direct_op.clone()).await;
    run_load(1, warm, naive_op.clone()).await;
    let via_plugin = run_load(1, bounds, plugin_op).await;
    let direct = run_load(1, bounds, direct_op).await;
    let naive = run_load(1, bounds, naive_op).await;
    (via_plugin, direct, naive)
}

/// Provides an empty database on a server with pgvector: a scratch database
/// on `--pg18-url`, or one from `memory-testkit`'s shared cluster.
pub enum Pg18Database {
    Scratch(crate::scratch::ScratchDb),
    Testkit(memory_testkit::TestDb),
}

impl Pg18Database {
    /// Creates the database.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached or set up.
    pub async fn create(admin_url: Option<&url::Url>) -> Result<Pg18Database> {
        if let Some(url) = admin_url {
            return Ok(Pg18Database::Scratch(
                crate::scratch::ScratchDb::create(url).await?,
            ));
        }
        // The testkit panics with a how-to message when it cannot help;
        // run it in a task so that becomes an error here.
        let db = tokio::spawn(memory_testkit::pg18())
            .await
            .map_err(|e| anyhow::anyhow!("no PostgreSQL 18 cluster with pgvector: {e}"))?;
        Ok(Pg18Database::Testkit(db))
    }

    /// URL of the database.
    ///
    /// # Errors
    ///
    /// When the testkit's URL does not parse.
    pub fn url(&self) -> Result<url::Url> {
        match self {
            Pg18Database::Scratch(s) => Ok(s.url().clone()),
            Pg18Database::Testkit(t) => url::Url::parse(t.url()).context("bad PostgreSQL 18 URL"),
        }
    }

    /// Drops the database.
    pub async fn drop_database(self) {
        match self {
            Pg18Database::Scratch(s) => {
                let _ = s.drop_database().await;
            }
            Pg18Database::Testkit(t) => drop(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_vectors_have_unit_length_and_pgvector_text_form() {
        let mut rng = StdRng::seed_from_u64(1);
        let v = random_unit_vector(&mut rng, 64);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        assert_eq!(vector_literal(&[0.5, -1.0]), "[0.5,-1]");
    }
}
