//! Embeddings travel when the legacy table has them and the plugin takes the
//! same dimension (PostgreSQL 18 with pgvector on both sides).

mod common;

use common::*;
use memory_backfill::legacy;
use memory_plugin::store::postgres::PgOptions;

/// A legacy table on PostgreSQL 18 with an `embedding vector(3)` column:
/// one row with a vector, one without.
async fn legacy_with_vectors() -> Legacy {
    let legacy = Legacy::on(memory_testkit::pg18().await).await;
    sqlx::raw_sql(
        "CREATE EXTENSION IF NOT EXISTS vector;
         ALTER TABLE agent_memories ADD COLUMN embedding vector(3);
         INSERT INTO workspaces (id, parent_id) VALUES ('00000000-0000-4000-8000-000000000001', NULL);
         INSERT INTO agent_memories (id, workspace_id, content, scope, embedding) VALUES
           ('00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-000000000001', 'with vector', 'LOCAL', '[0.5,-1.25,3]'),
           ('00000000-0000-4000-8000-0000000000a2', '00000000-0000-4000-8000-000000000001', 'without vector', 'LOCAL', NULL);",
    )
    .execute(&legacy.pool)
    .await
    .unwrap();
    legacy
}

/// Our plugin on PostgreSQL 18 keeping `dim`-dimension embeddings.
async fn plugin_with_dim(dim: usize) -> TargetPlugin {
    let options = PgOptions {
        embedding_dim: dim,
        ..PgOptions::default()
    };
    TargetPlugin::start_on(memory_testkit::pg18().await, options, false).await
}

#[tokio::test]
async fn embeddings_travel_when_the_dimension_matches_and_are_reported_when_not() {
    let legacy = legacy_with_vectors().await;
    let schema = legacy::inspect(&legacy.pool).await.unwrap();
    assert!(schema.has_embedding);
    assert_eq!(schema.embedding_dim, Some(3));

    let target = plugin_with_dim(3).await;
    assert!(
        target.plugin.caps.embedding,
        "pg18 plugin advertises embedding"
    );
    let r = apply_report(run(&legacy, &target, &["-apply"]).await);
    assert_eq!((r.written, r.errors), (2, 0), "{r}");
    assert!(!r.not_carried.contains_key("embedding"), "{r}");
    let stored: Option<String> = sqlx::query_scalar(
        "SELECT embedding::text FROM memory_plugin.memory_records WHERE id = '00000000-0000-4000-8000-0000000000a1'",
    )
    .fetch_one(&target.pool)
    .await
    .unwrap();
    assert_eq!(stored.as_deref(), Some("[0.5,-1.25,3]"));

    // A plugin of another dimension: rows still travel, the embedding column is named as not carried.
    let target4 = plugin_with_dim(4).await;
    let r = apply_report(run(&legacy, &target4, &["-apply"]).await);
    assert_eq!((r.written, r.errors), (2, 0), "{r}");
    assert_eq!(r.not_carried.get("embedding"), Some(&1), "{r}");
}
