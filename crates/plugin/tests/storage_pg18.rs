//! The shared storage suite on PostgreSQL 18 with pgvector (semantic search
//! enabled), plus the Postgres-only and pgvector-only checks.

mod common;

use common::postgres as pg;
use memory_plugin::store::postgres::{PgOptions, PgStore};
use memory_plugin::store::{Store, StoreError};
use memory_testkit::TestDb;
use std::sync::Arc;

async fn fresh_store() -> (Arc<dyn Store>, TestDb) {
    pg::suite_store(memory_testkit::pg18().await).await
}

common::storage_suite!(fresh_store());

#[tokio::test]
async fn embedding_is_a_feature_with_pgvector_and_hnsw_indexed() {
    let db = memory_testkit::pg18().await;
    let store = pg::connect(&db, PgOptions::default()).await;
    let features = store.features();
    assert!(features.embedding);
    assert_eq!(features.embedding_dim, 1536);
    let column_type: String = sqlx::query_scalar(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
         WHERE attrelid = 'memory_plugin.memory_records'::regclass AND attname = 'embedding'",
    )
    .fetch_one(store.pool())
    .await
    .expect("embedding column");
    assert_eq!(column_type, "vector(1536)");
    let index: String = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes
         WHERE schemaname = 'memory_plugin' AND indexname = 'memory_records_embedding_hnsw_idx'",
    )
    .fetch_one(store.pool())
    .await
    .expect("HNSW index");
    assert!(
        index.contains("hnsw") && index.contains("vector_cosine_ops"),
        "{index}"
    );
}

#[tokio::test]
async fn start_with_another_embedding_dimension_fails_clearly() {
    let db = memory_testkit::pg18().await;
    let opts = |dim| PgOptions {
        embedding_dim: dim,
        ..PgOptions::default()
    };
    pg::connect(&db, opts(8)).await;
    for migrate in [true, false] {
        let result = PgStore::connect(
            db.url(),
            PgOptions {
                migrate,
                ..opts(12)
            },
        )
        .await;
        match result {
            Err(StoreError::BadRequest(msg)) => {
                assert!(msg.contains('8') && msg.contains("12"), "{msg}");
            }
            other => panic!("expected a dimension error, got {:?}", other.err()),
        }
    }
    // The original dimension still works.
    assert!(pg::connect(&db, opts(8)).await.features().embedding);
}

#[tokio::test]
async fn dimension_above_hnsw_limit_works_without_index() {
    let db = memory_testkit::pg18().await;
    let store = pg::connect(
        &db,
        PgOptions {
            embedding_dim: 3000,
            ..PgOptions::default()
        },
    )
    .await;
    assert!(store.features().embedding);
    let store: Arc<dyn Store> = Arc::new(store);
    common::cases::semantic_search_ranks_nearest_first_or_is_refused(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_migrating_at_once_on_a_fresh_database_both_succeed() {
    pg::two_stores_migrating_at_once_both_succeed(memory_testkit::pg18().await).await;
}

#[tokio::test]
async fn restart_on_migrated_database_keeps_data() {
    pg::restart_on_migrated_database_keeps_data(memory_testkit::pg18().await).await;
}

#[tokio::test]
async fn custom_schema_holds_every_table_and_index() {
    pg::custom_schema_holds_every_table_and_index(memory_testkit::pg18().await).await;
}

/// With the planner forced onto the HNSW index, a search of a small
/// namespace whose rows are far from the probe still finds them: the index
/// alone would hand back only its nearest candidates (all from the big
/// namespace) and the filter would leave nothing.
#[tokio::test]
async fn semantic_search_of_small_namespace_finds_rows_past_the_hnsw_candidates() {
    use memory_contract::{BatchWrite, MemoryKind, MemorySource, MemoryWrite};
    let db = memory_testkit::pg18().await;
    let admin = db.connect().await;
    sqlx::raw_sql(&format!(
        "ALTER DATABASE \"{0}\" SET enable_seqscan = off; \
         ALTER DATABASE \"{0}\" SET enable_sort = off;",
        db.name()
    ))
    .execute(&admin)
    .await
    .expect("planner settings");
    let store = pg::connect(&db, pg::suite_options()).await;
    let dim = store.features().embedding_dim;
    common::cases::make_namespace(&store, "team:big").await;
    common::cases::make_namespace(&store, "team:small").await;
    let vector = |main: usize, noise: f32| {
        let mut v = vec![0.0f32; dim];
        v[main] = 1.0;
        v[(main + 1) % dim] = noise;
        v
    };
    let writes: Vec<BatchWrite> = (0..2000)
        .map(|i| {
            let mut w = MemoryWrite::new(format!("big {i}"), MemoryKind::Fact, MemorySource::Agent);
            w.embedding = Some(vector(0, (i as f32) / 2000.0));
            BatchWrite {
                namespace: "team:big".to_string(),
                write: w,
            }
        })
        .chain((0..3).map(|i| {
            let mut w =
                MemoryWrite::new(format!("small {i}"), MemoryKind::Fact, MemorySource::Agent);
            // Far from the probe, at decreasing similarity.
            let mut v = vector(5, 0.0);
            v[0] = 0.3 - 0.1 * i as f32;
            w.embedding = Some(v);
            BatchWrite {
                namespace: "team:small".to_string(),
                write: w,
            }
        }))
        .collect();
    let results = store.write_batch(&writes).await.expect("batch");
    assert!(results.iter().all(|r| r.is_ok()));
    sqlx::query("ANALYZE memory_records")
        .execute(store.pool())
        .await
        .expect("analyze");
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT id FROM memory_records WHERE namespace = ANY('{team:small}')
         ORDER BY embedding <=> (SELECT embedding FROM memory_records LIMIT 1) LIMIT 3",
    )
    .fetch_all(store.pool())
    .await
    .expect("explain");
    assert!(
        plan.iter().any(|l| l.contains("hnsw")),
        "the planner should use the HNSW index: {plan:?}"
    );
    let found = store
        .search(&memory_plugin::store::SearchQuery {
            namespaces: vec!["team:small".to_string()],
            query: None,
            kinds: Vec::new(),
            limit: 3,
            embedding: Some(vector(0, 0.0)),
        })
        .await
        .expect("search");
    let contents: Vec<&str> = found.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["small 0", "small 1", "small 2"]);
}

/// A vector of `dim` components in [-0.5, 0.5), the same for the same seed.
fn pseudo_random_vector(seed: usize, dim: usize) -> Vec<f32> {
    let mut x = (seed as u64 + 1).wrapping_mul(0x9e3779b97f4a7c15);
    (0..dim)
        .map(|_| {
            x ^= x >> 31;
            x = x.wrapping_mul(0xbf58476d1ce4e5b9);
            ((x >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

/// Above the exact-search threshold the HNSW index serves the search (with
/// iterative scanning); an exact match planted among many rows ranks first.
#[tokio::test]
async fn semantic_search_of_large_namespace_uses_the_index_and_finds_the_nearest() {
    use memory_contract::{BatchWrite, MemoryKind, MemorySource, MemoryWrite};
    let db = memory_testkit::pg18().await;
    let store = pg::connect(&db, pg::suite_options()).await;
    let dim = store.features().embedding_dim;
    common::cases::make_namespace(&store, "org:large").await;
    let pseudo_random = |seed: usize| pseudo_random_vector(seed, dim);
    let probe = pseudo_random(999_999);
    let mut writes: Vec<BatchWrite> = (0..10_500)
        .map(|i| {
            let mut w = MemoryWrite::new(format!("row {i}"), MemoryKind::Fact, MemorySource::Agent);
            w.embedding = Some(pseudo_random(i));
            BatchWrite {
                namespace: "org:large".to_string(),
                write: w,
            }
        })
        .collect();
    writes[7_777].write.embedding = Some(probe.clone());
    writes[7_777].write.content = "the planted match".to_string();
    // Building the index once after the load is much faster than growing
    // it row by row.
    sqlx::query("DROP INDEX memory_records_embedding_hnsw_idx")
        .execute(store.pool())
        .await
        .expect("drop index");
    for chunk in writes.chunks(1000) {
        let results = store.write_batch(chunk).await.expect("batch");
        assert!(results.iter().all(|r| r.is_ok()));
    }
    sqlx::raw_sql(include_str!("../migrations/postgres/embedding_index.sql"))
        .execute(store.pool())
        .await
        .expect("create index");
    let found = store
        .search(&memory_plugin::store::SearchQuery {
            namespaces: vec!["org:large".to_string()],
            query: None,
            kinds: Vec::new(),
            limit: 5,
            embedding: Some(probe),
        })
        .await
        .expect("search");
    assert_eq!(found.len(), 5);
    assert_eq!(found[0].content, "the planted match");
    let score = found[0].score.expect("score");
    assert!((score - 1.0).abs() < 1e-5, "score {score}");
    assert!(found.windows(2).all(|w| w[0].score >= w[1].score));
}

/// Semantic search ranks exactly whichever way it goes: answered by its
/// first statement (1,000 candidates, the most it answers alone), one past
/// it (1,001: counted, then compared), and well past it (2,500). Each
/// answer is the brute-force top 10 of the namespace, with its cosine
/// similarities, although another namespace holds rows equal to the probe.
#[tokio::test]
async fn semantic_search_is_exact_on_both_sides_of_the_first_pass() {
    use memory_contract::{BatchWrite, MemoryKind, MemorySource, MemoryWrite};
    let db = memory_testkit::pg18().await;
    let store = pg::connect(&db, pg::suite_options()).await;
    let dim = store.features().embedding_dim;
    let pseudo_random = |seed: usize| pseudo_random_vector(seed, dim);
    let probe = pseudo_random(1_000_000);
    common::cases::make_namespace(&store, "team:decoys").await;
    let decoys: Vec<BatchWrite> = (0..50)
        .map(|i| {
            let mut w =
                MemoryWrite::new(format!("decoy {i}"), MemoryKind::Fact, MemorySource::Agent);
            w.embedding = Some(probe.clone());
            BatchWrite {
                namespace: "team:decoys".to_string(),
                write: w,
            }
        })
        .collect();
    assert!(store
        .write_batch(&decoys)
        .await
        .expect("batch")
        .iter()
        .all(|r| r.is_ok()));
    for (n, offset) in [(1_000usize, 0usize), (1_001, 10_000), (2_500, 20_000)] {
        let namespace = format!("workspace:n{n}");
        common::cases::make_namespace(&store, &namespace).await;
        let rows: Vec<(String, Vec<f32>)> = (0..n)
            .map(|i| (format!("{n} row {i}"), pseudo_random(offset + i)))
            .collect();
        let writes: Vec<BatchWrite> = rows
            .iter()
            .map(|(content, v)| {
                let mut w =
                    MemoryWrite::new(content.clone(), MemoryKind::Fact, MemorySource::Agent);
                w.embedding = Some(v.clone());
                BatchWrite {
                    namespace: namespace.clone(),
                    write: w,
                }
            })
            .collect();
        for chunk in writes.chunks(1000) {
            assert!(store
                .write_batch(chunk)
                .await
                .expect("batch")
                .iter()
                .all(|r| r.is_ok()));
        }
        let mut expected: Vec<(f64, &str)> = rows
            .iter()
            .map(|(content, v)| {
                (
                    common::cases::cosine_similarity(&probe, v),
                    content.as_str(),
                )
            })
            .collect();
        expected.sort_by(|a, b| b.0.total_cmp(&a.0));
        let found = store
            .search(&memory_plugin::store::SearchQuery {
                namespaces: vec![namespace.clone()],
                query: None,
                kinds: Vec::new(),
                limit: 10,
                embedding: Some(probe.clone()),
            })
            .await
            .expect("search");
        assert_eq!(found.len(), 10, "{n} candidates");
        for (memory, (similarity, content)) in found.iter().zip(&expected) {
            assert_eq!(memory.content, *content, "{n} candidates");
            let score = memory.score.expect("score");
            assert!(
                (score - similarity).abs() < 1e-5,
                "{n} candidates: {score} against {similarity}"
            );
        }
    }
}

/// Uses a private cluster (PostgreSQL 18 binaries) that the test stops and starts.
#[tokio::test]
async fn store_is_unavailable_while_the_database_is_down_and_recovers() {
    let mut cluster = memory_testkit::StoppableCluster::start().await;
    let store = PgStore::connect(cluster.url(), PgOptions::default())
        .await
        .expect("connect");
    store.ping().await.expect("ping while up");
    cluster.stop().await;
    let down = store.ping().await;
    assert!(
        matches!(down, Err(StoreError::Unavailable(_))),
        "ping while down: {down:?}"
    );
    let search = store.search(&common::cases::query(&["team:any"])).await;
    assert!(
        matches!(search, Err(StoreError::Unavailable(_))),
        "search while down: {search:?}"
    );
    cluster.start_again().await;
    let mut last = Err(StoreError::Unavailable("not tried".to_string()));
    for _ in 0..20 {
        last = store.ping().await;
        if last.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    last.expect("ping after the database came back");
}
