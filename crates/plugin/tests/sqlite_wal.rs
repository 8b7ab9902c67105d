//! The SQLite store's write-ahead log under steady single writes. With
//! writers that never pause, a commit lands during every checkpoint, and
//! SQLite starts the log over only when a write begins after a checkpoint
//! has copied all of it; without the checkpoint task holding the writer for
//! a last pass, the log grew to the writer's own backstop (16,384 pages,
//! 64 MiB), where the writer checkpointed by itself while every queued
//! write waited. Here it must start over well before that.

use memory_contract::{MemoryKind, MemorySource, MemoryWrite, NamespaceKind, NamespaceUpsert};
use memory_plugin::store::sqlite::{SqliteOptions, SqliteStore};
use memory_plugin::store::Store;
use memory_testkit::TempDir;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Writers posting single writes back to back.
const WRITERS: usize = 32;

/// Single writes in all: each changes a few pages, so the log is written
/// many times over the backstop's 16,384 pages.
const WRITES: u64 = 40_000;

/// The most the log file may reach: the task brings the log back once it
/// holds 4,096 pages (16 MiB), and the writers go on adding to it until
/// the task's passes have caught up. How much they add depends on how fast
/// they write and on the share of the cores the task gets: 33 to 41 MiB in
/// all on an idle 2-core machine, 40.6 MiB while a release build held both
/// cores (see README). Left to the writer's own backstop, the log reaches
/// 64 MiB and more; the limit keeps an eighth of that as margin.
const WAL_LIMIT: u64 = 56 << 20;

/// Time after which the test gives up writing, however far it got.
const TIME_LIMIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_single_writes_keep_the_log_short() {
    let dir = TempDir::new("sqlite-wal");
    let url = dir.sqlite_url("wal.db");
    let wal = dir.path("wal.db-wal");
    let store = Arc::new(
        SqliteStore::open(&url, SqliteOptions { embedding_dim: 8 })
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}")),
    );
    let namespaces: Vec<String> = (0..64).map(|i| format!("workspace:wal{i}")).collect();
    for name in &namespaces {
        store
            .upsert_namespace(
                name,
                &NamespaceUpsert {
                    kind: NamespaceKind::Workspace,
                    expires_at: None,
                    metadata: None,
                },
            )
            .await
            .expect("namespace");
    }

    let written = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = Arc::clone(&store);
        let written = Arc::clone(&written);
        let namespaces = namespaces.clone();
        writers.push(tokio::spawn(async move {
            loop {
                let n = written.fetch_add(1, Ordering::Relaxed);
                if n >= WRITES || started.elapsed() > TIME_LIMIT {
                    return;
                }
                let content = format!(
                    "writer {w} memory {n}: the release train leaves on Friday, \
                     the rollback plan is in the runbook, owner team {}",
                    n % 97
                );
                let write = MemoryWrite::new(content, MemoryKind::Fact, MemorySource::Agent);
                store
                    .write_memory(&namespaces[(n as usize) % namespaces.len()], &write)
                    .await
                    .expect("single write");
            }
        }));
    }
    let sampler = {
        let done = Arc::clone(&done);
        let wal = wal.clone();
        tokio::spawn(async move {
            let mut largest = 0u64;
            while !done.load(Ordering::Relaxed) {
                if let Ok(meta) = std::fs::metadata(&wal) {
                    largest = largest.max(meta.len());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            largest
        })
    };
    for writer in writers {
        writer.await.expect("writer task");
    }
    done.store(true, Ordering::Relaxed);
    let largest = sampler.await.expect("sampler");
    let writes = written.load(Ordering::Relaxed).min(WRITES);
    let pages = std::fs::metadata(dir.path("wal.db"))
        .map(|m| m.len() / 4096)
        .unwrap_or(0);
    eprintln!(
        "{writes} writes in {:.1} s; database {pages} pages; largest WAL {:.1} MiB",
        started.elapsed().as_secs_f64(),
        largest as f64 / (1 << 20) as f64
    );
    assert!(
        largest <= WAL_LIMIT,
        "the WAL reached {largest} bytes under steady writes (limit {WAL_LIMIT})"
    );
    store.close().await;
}
