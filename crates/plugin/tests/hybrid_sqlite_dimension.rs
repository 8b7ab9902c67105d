//! The SQLite store's embedding dimension when none is configured: 384 (the
//! gateway's built-in all-MiniLM-L6-v2) for a file without embeddings, the
//! stored embeddings' dimension for a file that has some, and a start-up
//! error when a configured dimension contradicts them; `/v1/health` reports
//! the dimension in effect. Real SQLite files, real HTTP.

mod common;

use memory_contract::{MemoryKind, MemorySource, MemoryWrite, NamespaceKind};
use memory_plugin::server::{spawn, ServerConfig};
use memory_plugin::store::sqlite::{SqliteOptions, SqliteStore, DEFAULT_EMBEDDING_DIM};
use memory_plugin::store::{open, OpenOptions, Store, StoreError};
use memory_testkit::TempDir;
use std::sync::Arc;

async fn health_dimension(store: Arc<dyn Store>) -> serde_json::Value {
    let server = spawn(store, ServerConfig::default()).await.unwrap();
    let health: serde_json::Value = reqwest::get(format!("{}/v1/health", server.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    health["embedding_dimension"].clone()
}

/// Leaves the SQLite file at `url` holding one `dim`-dimension embedding.
async fn file_with_an_embedding(url: &str, dim: usize) {
    let store = SqliteStore::open(url, SqliteOptions { embedding_dim: dim })
        .await
        .unwrap();
    common::namespaces::create(&store, NamespaceKind::Team, ["team:dim"]).await;
    let mut write = MemoryWrite::new("a vector", MemoryKind::Fact, MemorySource::Agent);
    write.embedding = Some(vec![0.5; dim]);
    store.write_memory("team:dim", &write).await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn a_new_file_without_a_configured_dimension_takes_384_and_health_says_so() {
    let dir = TempDir::new("dim-default");
    let url = dir.sqlite_url("new.db");
    assert_eq!(DEFAULT_EMBEDDING_DIM, 384);
    let store = open(Some(&url), &OpenOptions::default()).await.unwrap();
    assert_eq!(store.features().embedding_dim, 384);
    assert_eq!(health_dimension(store).await, 384);
}

#[tokio::test]
async fn a_file_holding_embeddings_keeps_their_dimension() {
    let dir = TempDir::new("dim-stored");
    let url = dir.sqlite_url("kept.db");
    file_with_an_embedding(&url, 5).await;
    let store = open(Some(&url), &OpenOptions::default()).await.unwrap();
    assert_eq!(store.features().embedding_dim, 5);
    assert_eq!(health_dimension(store).await, 5);

    // The same dimension, configured, opens too.
    let same = SqliteStore::open(&url, SqliteOptions { embedding_dim: 5 }).await;
    assert_eq!(same.unwrap().features().embedding_dim, 5);
}

#[tokio::test]
async fn a_configured_dimension_contradicting_stored_embeddings_does_not_open() {
    let dir = TempDir::new("dim-conflict");
    let url = dir.sqlite_url("conflict.db");
    file_with_an_embedding(&url, 384).await;
    let options = OpenOptions {
        embedding_dim: 1536,
        ..OpenOptions::default()
    };
    match open(Some(&url), &options).await {
        Err(StoreError::BadRequest(message)) => {
            assert!(
                message.contains("1536")
                    && message.contains("384")
                    && message.contains("MEMORY_PLUGIN_EMBEDDING_DIM"),
                "{message}"
            );
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn a_file_without_embeddings_takes_a_configured_dimension() {
    let dir = TempDir::new("dim-configured");
    let url = dir.sqlite_url("configured.db");
    {
        let store = SqliteStore::open(&url, SqliteOptions { embedding_dim: 8 })
            .await
            .unwrap();
        store.close().await;
    }
    // Nothing stored yet: an explicit dimension wins, none means 384.
    let options = OpenOptions {
        embedding_dim: 12,
        ..OpenOptions::default()
    };
    let store = open(Some(&url), &options).await.unwrap();
    assert_eq!(store.features().embedding_dim, 12);
    drop(store);
    let store = open(Some(&url), &OpenOptions::default()).await.unwrap();
    assert_eq!(store.features().embedding_dim, 384);
}

/// The binary: an explicit MEMORY_PLUGIN_EMBEDDING_DIM that contradicts the
/// file stops the start with exit code 2 and one line naming both numbers.
#[tokio::test]
async fn the_binary_refuses_to_start_on_a_contradicting_dimension() {
    let dir = TempDir::new("dim-binary");
    let url = dir.sqlite_url("bin.db");
    file_with_an_embedding(&url, 3).await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_memory-plugin"))
        .env("MEMORY_PLUGIN_DATABASE_URL", &url)
        .env("MEMORY_PLUGIN_EMBEDDING_DIM", "384")
        .env("MEMORY_PLUGIN_LISTEN_ADDR", "127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("already holds embeddings"))
        .unwrap_or_else(|| panic!("no explanation in:\n{stderr}"));
    assert!(line.contains("384") && line.contains('3'), "{line}");
}
