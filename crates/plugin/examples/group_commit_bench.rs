//! Single writes per second with group commit, at 1, 8 and 32 concurrent
//! writers, on the store a URL names:
//!
//! ```text
//! cargo run --release -p memory-plugin --example group_commit_bench -- URL [SECONDS]
//! ```
//!
//! URL is `postgres://...` (the plugin's schema is created there) or
//! `sqlite:PATH`. Three ways of writing, each for SECONDS (default 10) per
//! point:
//! - `http`: `POST /v1/namespaces/{name}/memories` to the real server on
//!   loopback (keep-alive connections, one per writer), group commit on;
//! - `store`: `Store::write_memory`, group commit on, no HTTP;
//! - `one-per-tx`: each write in a transaction of its own (the store's
//!   group step called with one write), no HTTP: the write path without
//!   group commit, the floor to compare with.
//!
//! Prints writes/s and the p50 and p99 latency of each point.

use memory_contract::{BatchWrite, WriteAck};
use memory_contract::{MemoryKind, MemorySource, MemoryWrite, NamespaceKind, NamespaceUpsert};
use memory_plugin::server::{spawn, ServerConfig};
use memory_plugin::store::postgres::{PgOptions, PgStore};
use memory_plugin::store::sqlite::{SqliteOptions, SqliteStore};
use memory_plugin::store::{Store, StoreResult};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NAMESPACE: &str = "team:bench";
const CONTENT: &str = "a single write of about this size, as agents send them";

#[derive(Clone)]
enum Backend {
    Pg(PgStore),
    Sqlite(SqliteStore),
}

impl Backend {
    fn store(&self) -> Arc<dyn Store> {
        match self {
            Backend::Pg(s) => Arc::new(s.clone()),
            Backend::Sqlite(s) => Arc::new(s.clone()),
        }
    }

    async fn one_per_tx(&self, write: &MemoryWrite) -> StoreResult<WriteAck> {
        let group = [BatchWrite {
            namespace: NAMESPACE.to_string(),
            write: write.clone(),
        }];
        let mut results = match self {
            Backend::Pg(s) => s.write_group(&group).await,
            Backend::Sqlite(s) => s.write_group(&group).await,
        };
        results.pop().expect("one answer")
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Http,
    Store,
    OnePerTx,
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args
        .first()
        .expect("usage: group_commit_bench URL [SECONDS]");
    let seconds: u64 = args.get(1).map_or(10, |s| s.parse().expect("seconds"));
    let backend = if url.starts_with("sqlite:") {
        Backend::Sqlite(
            SqliteStore::open(url, SqliteOptions { embedding_dim: 3 })
                .await
                .expect("open SQLite"),
        )
    } else {
        Backend::Pg(
            PgStore::connect(
                url,
                PgOptions {
                    embedding_dim: 3,
                    ..PgOptions::default()
                },
            )
            .await
            .expect("connect Postgres"),
        )
    };
    let store = backend.store();
    store
        .upsert_namespace(
            NAMESPACE,
            &NamespaceUpsert {
                kind: NamespaceKind::Team,
                expires_at: None,
                metadata: None,
            },
        )
        .await
        .expect("namespace");
    let server = spawn(Arc::clone(&store), ServerConfig::default())
        .await
        .expect("server");
    let write_url = format!("{}/v1/namespaces/{NAMESPACE}/memories", server.url());
    println!(
        "backend {} ; {seconds} s per point",
        store.features().backend
    );
    println!(
        "{:<11} {:>6} {:>10} {:>9} {:>9}",
        "mode", "conns", "writes/s", "p50 ms", "p99 ms"
    );
    for conns in [1usize, 8, 32] {
        for (mode, name) in [
            (Mode::OnePerTx, "one-per-tx"),
            (Mode::Store, "store"),
            (Mode::Http, "http"),
        ] {
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let mut tasks = Vec::new();
            for _ in 0..conns {
                let (backend, store) = (backend.clone(), Arc::clone(&store));
                let http = reqwest::Client::new();
                let write_url = write_url.clone();
                tasks.push(tokio::spawn(async move {
                    let write = MemoryWrite::new(CONTENT, MemoryKind::Fact, MemorySource::Agent);
                    let body = serde_json::to_value(&write).unwrap();
                    let mut latencies = Vec::new();
                    while Instant::now() < deadline {
                        let start = Instant::now();
                        match mode {
                            Mode::OnePerTx => {
                                backend.one_per_tx(&write).await.expect("write");
                            }
                            Mode::Store => {
                                store.write_memory(NAMESPACE, &write).await.expect("write");
                            }
                            Mode::Http => {
                                let resp = http.post(&write_url).json(&body).send().await.unwrap();
                                assert_eq!(resp.status().as_u16(), 201);
                                resp.bytes().await.unwrap();
                            }
                        }
                        latencies.push(start.elapsed());
                    }
                    latencies
                }));
            }
            let started = Instant::now();
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            let elapsed = started.elapsed().as_secs_f64();
            all.sort_unstable();
            let pct = |p: f64| all[((all.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0;
            println!(
                "{name:<11} {conns:>6} {:>10.0} {:>9.3} {:>9.3}",
                all.len() as f64 / elapsed,
                pct(0.5),
                pct(0.99)
            );
        }
    }
}
