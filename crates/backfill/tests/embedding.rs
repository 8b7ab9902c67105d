//! Embeddings travel when the legacy table has them and the plugin takes the
//! same dimension (PostgreSQL 18 with pgvector on both sides).

mod common;

use common::*;
use memory_backfill::legacy;
use memory_plugin::server::{self, ServerConfig};
use memory_plugin::store::postgres::{PgOptions, PgStore};
use std::sync::Arc;

async fn legacy_with_vectors() -> (memory_testkit::TestDb, sqlx::PgPool) {
    let db = memory_testkit::pg18().await;
    let pool = db.connect().await;
    sqlx::raw_sql(LEGACY_SCHEMA_SQL)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE EXTENSION IF NOT EXISTS vector;
         ALTER TABLE agent_memories ADD COLUMN embedding vector(3);
         INSERT INTO workspaces (id, parent_id) VALUES ('00000000-0000-4000-8000-000000000001', NULL);
         INSERT INTO agent_memories (id, workspace_id, content, scope, embedding) VALUES
           ('00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-000000000001', 'with vector', 'LOCAL', '[0.5,-1.25,3]'),
           ('00000000-0000-4000-8000-0000000000a2', '00000000-0000-4000-8000-000000000001', 'without vector', 'LOCAL', NULL);",
    )
    .execute(&pool)
    .await
    .unwrap();
    (db, pool)
}

async fn plugin_with_dim(
    dim: usize,
) -> (memory_testkit::TestDb, sqlx::PgPool, server::SpawnedServer) {
    let db = memory_testkit::pg18().await;
    let store = PgStore::connect(
        db.url(),
        PgOptions {
            embedding_dim: dim,
            ..PgOptions::default()
        },
    )
    .await
    .expect("plugin store on pg18");
    let srv = server::spawn(Arc::new(store), ServerConfig::default())
        .await
        .unwrap();
    let pool = db.connect().await;
    (db, pool, srv)
}

#[tokio::test]
async fn embeddings_travel_when_the_dimension_matches_and_are_reported_when_not() {
    let (_legacy_db, legacy_pool) = legacy_with_vectors().await;
    let schema = legacy::inspect(&legacy_pool).await.unwrap();
    assert!(schema.has_embedding);
    assert_eq!(schema.embedding_dim, Some(3));

    let (_db, pool, srv) = plugin_with_dim(3).await;
    let plugin = connect_plugin(srv.url()).await;
    assert!(plugin.caps.embedding, "pg18 plugin advertises embedding");
    let report = memory_backfill::runner::run_with(
        &plan(&["-apply"]),
        &legacy_pool,
        &schema,
        &plugin,
        false,
    )
    .await
    .unwrap();
    let r = apply_report(report);
    assert_eq!((r.written, r.errors), (2, 0), "{r}");
    assert!(!r.not_carried.contains_key("embedding"), "{r}");
    let stored: Option<String> = sqlx::query_scalar(
        "SELECT embedding::text FROM memory_plugin.memory_records WHERE id = '00000000-0000-4000-8000-0000000000a1'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stored.as_deref(), Some("[0.5,-1.25,3]"));

    // A plugin of another dimension: rows still travel, the embedding column is named as not carried.
    let (_db4, _pool4, srv4) = plugin_with_dim(4).await;
    let plugin4 = connect_plugin(srv4.url()).await;
    let report = memory_backfill::runner::run_with(
        &plan(&["-apply"]),
        &legacy_pool,
        &schema,
        &plugin4,
        false,
    )
    .await
    .unwrap();
    let r = apply_report(report);
    assert_eq!((r.written, r.errors), (2, 0), "{r}");
    assert_eq!(r.not_carried.get("embedding"), Some(&1), "{r}");
}
