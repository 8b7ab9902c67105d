//! The shared storage suite on SQLite: once on a database file (the real
//! configuration: WAL, a writer and a reader pool) and once on an in-memory
//! database (one connection shared by readers and the writer).

mod common;

use memory_plugin::store::sqlite::{SqliteOptions, SqliteStore};
use memory_plugin::store::Store;
use memory_testkit::TempDir;
use std::sync::Arc;

/// Options the suite uses: a small embedding dimension keeps vectors short.
fn suite_options() -> SqliteOptions {
    SqliteOptions { embedding_dim: 16 }
}

async fn fresh_file_store() -> (Arc<dyn Store>, TempDir) {
    let dir = TempDir::new("storage-sqlite");
    let url = dir.sqlite_url("memory.db");
    let store = SqliteStore::open(&url, suite_options())
        .await
        .unwrap_or_else(|e| panic!("SqliteStore::open({url}) failed: {e}"));
    (Arc::new(store) as Arc<dyn Store>, dir)
}

async fn fresh_memory_store() -> (Arc<dyn Store>, ()) {
    let store = SqliteStore::open("sqlite::memory:", suite_options())
        .await
        .unwrap_or_else(|e| panic!("SqliteStore::open(sqlite::memory:) failed: {e}"));
    (Arc::new(store) as Arc<dyn Store>, ())
}

mod file_db {
    use super::*;
    crate::common::storage_suite!(fresh_file_store());
}

mod memory_db {
    use super::*;
    crate::common::storage_suite!(fresh_memory_store());
}
