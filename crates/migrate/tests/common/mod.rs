//! Shared setup for memory-migrate's integration tests: our plugin served
//! in-process over a SQLite file or a fresh PostgreSQL database, a plan
//! between two of them, and a read of every memory a plugin holds.
#![allow(dead_code)]

use memory_client::{Client, ClientConfig};
use memory_contract::Memory;
use memory_migrate::cli::{Mode, Plan, Selection};
use memory_plugin::server::{ServerConfig, SpawnedServer};
use memory_plugin::store::OpenOptions;
use memory_testkit::TestDb;
use std::path::PathBuf;
use std::process::{Command, Output};
use uuid::Uuid;

pub const BIN: &str = env!("CARGO_BIN_EXE_memory-migrate");

/// Runs the binary with `args` and `env`, and none of its settings from
/// this process's environment.
pub fn migrate(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for name in [
        "MEMORY_MIGRATE_FROM",
        "MEMORY_MIGRATE_TO",
        "MEMORY_EMBED",
        "MEMORY_EMBED_MODEL_DIR",
        "MEMORY_EMBED_URL",
    ] {
        cmd.env_remove(name);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run memory-migrate")
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A plugin and what keeps its store alive.
pub struct Plugin {
    pub server: SpawnedServer,
    pub _db: Option<TestDb>,
    pub _dir: Option<TempDir>,
}

impl Plugin {
    pub fn url(&self) -> String {
        self.server.url().to_string()
    }

    pub fn client(&self) -> Client {
        Client::new(ClientConfig::new(self.server.url())).expect("client")
    }
}

/// Our plugin over the store at `url`.
pub async fn serve(url: &str, options: OpenOptions, config: ServerConfig) -> SpawnedServer {
    let store = memory_plugin::store::open(Some(url), &options)
        .await
        .expect("plugin store");
    memory_plugin::server::spawn(store, config)
        .await
        .expect("plugin server")
}

/// Our plugin on a fresh SQLite file.
pub async fn sqlite_plugin_with(options: OpenOptions, config: ServerConfig) -> Plugin {
    let dir = std::env::temp_dir().join(format!("memory-migrate-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite:{}", dir.join("plugin.db").display());
    Plugin {
        server: serve(&url, options, config).await,
        _db: None,
        _dir: Some(TempDir(dir)),
    }
}

pub async fn sqlite_plugin() -> Plugin {
    sqlite_plugin_with(OpenOptions::default(), ServerConfig::default()).await
}

/// Our plugin on a SQLite file keeping `dim`-dimension embeddings (what
/// MEMORY_PLUGIN_EMBEDDING_DIM sets).
pub async fn sqlite_plugin_of_dim(dim: usize) -> Plugin {
    let options = OpenOptions {
        embedding_dim: dim,
        ..OpenOptions::default()
    };
    sqlite_plugin_with(options, ServerConfig::default()).await
}

/// Our plugin on a fresh PostgreSQL 15 database: no pgvector, so no
/// embeddings at all.
pub async fn postgres_plugin() -> Plugin {
    let db = memory_testkit::pg15().await;
    Plugin {
        server: serve(db.url(), OpenOptions::default(), ServerConfig::default()).await,
        _db: Some(db),
        _dir: None,
    }
}

/// Our plugin on a fresh PostgreSQL 18 database with pgvector, keeping
/// embeddings of `dim` dimensions.
pub async fn pg18_plugin(dim: usize) -> Plugin {
    let db = memory_testkit::pg18().await;
    let options = OpenOptions {
        embedding_dim: dim,
        ..OpenOptions::default()
    };
    Plugin {
        server: serve(db.url(), options, ServerConfig::default()).await,
        _db: Some(db),
        _dir: None,
    }
}

/// A plan in `mode` from one plugin to another, everything else default.
pub fn plan(mode: Mode, from: &Plugin, to: &Plugin) -> Plan {
    Plan {
        mode,
        from: from.url(),
        from_database: None,
        from_schema: "memory_plugin".into(),
        to: to.url(),
        from_token: None,
        to_token: None,
        limit: None,
        selection: Selection::default(),
        skip_embeddings: false,
        embed: false,
        json: false,
    }
}

/// Every memory `c` holds, in id order, page after page of `scan`; with
/// `embeddings`, each with its stored embedding.
pub async fn scan_all(c: &Client, embeddings: bool) -> Vec<Memory> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = if embeddings {
            c.scan_memories_with_embeddings(after, None, 1000).await
        } else {
            c.scan_memories(after, None, 1000).await
        }
        .expect("scan");
        out.extend(page.memories);
        match page.next_after {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
}
