//! The shared storage suite on the machine's PostgreSQL 15 (no pgvector),
//! plus the Postgres-only checks.

mod common;

use common::postgres as pg;
use memory_plugin::store::postgres::PgOptions;
use memory_plugin::store::{Store, StoreError};
use memory_testkit::TestDb;
use std::sync::Arc;

async fn fresh_store() -> (Arc<dyn Store>, TestDb) {
    pg::suite_store(memory_testkit::pg15().await).await
}

common::storage_suite!(fresh_store());

#[tokio::test]
async fn embedding_is_not_a_feature_without_pgvector() {
    let db = memory_testkit::pg15().await;
    let store = pg::connect(&db, PgOptions::default()).await;
    let features = store.features();
    assert!(!features.embedding);
    assert_eq!(features.embedding_dim, 1536);
    assert_eq!(features.backend, "postgres");
    let has_column: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns
         WHERE table_schema = 'memory_plugin' AND table_name = 'memory_records'
           AND column_name = 'embedding')",
    )
    .fetch_one(store.pool())
    .await
    .expect("inspect columns");
    assert!(!has_column, "no embedding column without pgvector");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_migrating_at_once_on_a_fresh_database_both_succeed() {
    pg::two_stores_migrating_at_once_both_succeed(memory_testkit::pg15().await).await;
}

#[tokio::test]
async fn restart_on_migrated_database_keeps_data() {
    pg::restart_on_migrated_database_keeps_data(memory_testkit::pg15().await).await;
}

#[tokio::test]
async fn custom_schema_holds_every_table_and_index() {
    pg::custom_schema_holds_every_table_and_index(memory_testkit::pg15().await).await;
}

#[tokio::test]
async fn invalid_schema_name_is_refused() {
    pg::invalid_schema_name_is_refused(memory_testkit::pg15().await).await;
}

#[tokio::test]
async fn skip_migrate_on_empty_database_fails_clearly() {
    pg::skip_migrate_on_empty_database_fails_clearly(memory_testkit::pg15().await).await;
}

#[tokio::test]
async fn unreachable_database_is_unavailable_without_password() {
    pg::unreachable_database_is_unavailable_without_password().await;
}

#[tokio::test]
async fn pool_stats_report_the_configured_maximum() {
    pg::pool_stats_report_the_configured_maximum(memory_testkit::pg15().await).await;
}

#[tokio::test]
async fn invalid_embedding_dimension_option_is_refused() {
    let db = memory_testkit::pg15().await;
    let result = memory_plugin::store::postgres::PgStore::connect(
        db.url(),
        PgOptions {
            embedding_dim: 0,
            ..PgOptions::default()
        },
    )
    .await;
    assert!(matches!(result, Err(StoreError::BadRequest(_))));
}
