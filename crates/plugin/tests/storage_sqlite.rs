//! The shared storage suite on SQLite: once on a database file (the real
//! configuration: WAL, a writer and a reader pool) and once on an in-memory
//! database (one connection shared by readers and the writer).

mod common;

use memory_plugin::store::sqlite::{SqliteOptions, SqliteStore};
use memory_plugin::store::Store;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Options the suite uses: a small embedding dimension keeps vectors short.
fn suite_options() -> SqliteOptions {
    SqliteOptions { embedding_dim: 16 }
}

/// A directory of its own under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "memory-plugin-storage-sqlite-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn fresh_file_store() -> (Arc<dyn Store>, TempDir) {
    let dir = TempDir::new();
    let url = format!("sqlite:{}", dir.0.join("memory.db").display());
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
