//! Plugins for the suite's tests: our real plugin on SQLite or Postgres,
//! spawned in-process on port 0.

#![allow(dead_code)]

pub mod faulty;

use memory_plugin::server::{spawn, ServerConfig, SpawnedServer};
use memory_plugin::store::postgres::{PgOptions, PgStore};
use memory_plugin::store::sqlite::{SqliteOptions, SqliteStore};
use memory_plugin::store::Store;
use std::path::PathBuf;
use std::sync::Arc;

/// A running plugin and whatever keeps its storage alive.
pub struct Plugin {
    pub server: SpawnedServer,
    _db: Option<memory_testkit::TestDb>,
    sqlite_file: Option<PathBuf>,
}

impl Plugin {
    pub fn url(&self) -> &str {
        self.server.url()
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        if let Some(path) = &self.sqlite_file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

async fn serve(store: Arc<dyn Store>, config: ServerConfig) -> SpawnedServer {
    spawn(store, config).await.expect("spawn the plugin")
}

/// Our plugin on a fresh SQLite file in the temp directory.
pub async fn sqlite_plugin(config: ServerConfig) -> Plugin {
    let path = std::env::temp_dir().join(format!("conformance-{}.db", uuid::Uuid::new_v4()));
    let store = SqliteStore::open(
        &format!("sqlite:{}", path.display()),
        SqliteOptions::default(),
    )
    .await
    .expect("open SQLite store");
    Plugin {
        server: serve(Arc::new(store), config).await,
        _db: None,
        sqlite_file: Some(path),
    }
}

async fn pg_plugin(db: memory_testkit::TestDb, config: ServerConfig) -> Plugin {
    let store = PgStore::connect(db.url(), PgOptions::default())
        .await
        .expect("connect Postgres store");
    Plugin {
        server: serve(Arc::new(store), config).await,
        _db: Some(db),
        sqlite_file: None,
    }
}

/// Our plugin on a fresh database of the machine's PostgreSQL 15.
pub async fn pg15_plugin(config: ServerConfig) -> Plugin {
    pg_plugin(memory_testkit::pg15().await, config).await
}

/// Our plugin on a fresh database of PostgreSQL 18 with pgvector.
pub async fn pg18_plugin(config: ServerConfig) -> Plugin {
    pg_plugin(memory_testkit::pg18().await, config).await
}
