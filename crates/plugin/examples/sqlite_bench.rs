//! Benchmark of the SQLite store: batch load, single writes, and each search
//! mode over the loaded data.
//!
//! ```text
//! cargo run --release -p memory-plugin --example sqlite_bench -- \
//!     [--rows N] [--namespaces N] [--dim N] [--path FILE]
//! ```
//!
//! Defaults: 100,000 rows over 100 namespaces, 384-dimensional embeddings,
//! a fresh file in the system temp dir (removed at the end; a `--path` file
//! is kept).

use anyhow::{bail, Context, Result};
use chrono::{Duration as ChronoDuration, Utc};
use memory_contract::{BatchWrite, MemoryKind, MemorySource, MemoryWrite, NamespaceKind};
use memory_plugin::store::sqlite::{SqliteOptions, SqliteStore};
use memory_plugin::store::{SearchQuery, Store};
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Args {
    rows: usize,
    namespaces: usize,
    dim: usize,
    path: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        rows: 100_000,
        namespaces: 100,
        dim: 384,
        path: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--rows" => args.rows = value.parse().context("--rows")?,
            "--namespaces" => args.namespaces = value.parse().context("--namespaces")?,
            "--dim" => args.dim = value.parse().context("--dim")?,
            "--path" => args.path = Some(PathBuf::from(value)),
            other => bail!("unknown flag {other}; see the file's doc comment"),
        }
    }
    if args.rows == 0 || args.namespaces == 0 || args.dim == 0 {
        bail!("--rows, --namespaces and --dim must be at least 1");
    }
    Ok(args)
}

const WORDS: &[&str] = &[
    "deploy",
    "rollback",
    "database",
    "migration",
    "customer",
    "invoice",
    "latency",
    "cache",
    "incident",
    "review",
    "budget",
    "roadmap",
    "kubernetes",
    "cluster",
    "backup",
    "schedule",
];

fn content(i: usize) -> String {
    let w = |k: usize| WORDS[(i / k) % WORDS.len()];
    format!(
        "memory {i}: the {} of the {} needs a {} before the {}",
        w(1),
        w(3),
        w(7),
        w(11)
    )
}

fn vector(i: usize, dim: usize) -> Vec<f32> {
    (0..dim)
        .map(|d| (((i * 7919 + d * 104_729) % 2003) as f32 / 1001.5) - 1.0)
        .collect()
}

/// Mean and 95th percentile of `samples`.
fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len().max(1) as u32;
    let p95 = samples[(samples.len() * 95 / 100).min(samples.len() - 1)];
    format!("mean {mean:?}, p95 {p95:?}")
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let (path, temporary) = match &args.path {
        Some(p) => (p.clone(), false),
        None => (
            std::env::temp_dir().join(format!("memory-plugin-bench-{}.db", std::process::id())),
            true,
        ),
    };
    let store = SqliteStore::open(
        &format!("sqlite:{}", path.display()),
        SqliteOptions {
            embedding_dim: args.dim,
        },
    )
    .await
    .context("open store")?;
    let names: Vec<String> = (0..args.namespaces)
        .map(|n| format!("team:bench{n}"))
        .collect();
    for name in &names {
        store
            .upsert_namespace(
                name,
                &memory_contract::NamespaceUpsert {
                    kind: NamespaceKind::Team,
                    expires_at: None,
                    metadata: None,
                },
            )
            .await?;
    }

    let started = Instant::now();
    let now = Utc::now();
    let mut loaded = 0;
    while loaded < args.rows {
        let batch: Vec<BatchWrite> = (loaded..(loaded + 1000).min(args.rows))
            .map(|i| {
                let mut w = MemoryWrite::new(content(i), MemoryKind::Fact, MemorySource::Agent);
                w.id = Some(uuid::Uuid::new_v4());
                w.created_at = Some(now - ChronoDuration::seconds(i as i64));
                w.embedding = Some(vector(i, args.dim));
                BatchWrite {
                    namespace: names[i % names.len()].clone(),
                    write: w,
                }
            })
            .collect();
        for r in store.write_batch(&batch).await? {
            r?;
        }
        loaded += batch.len();
    }
    let load = started.elapsed();
    println!(
        "batch load: {} rows in {load:.2?} ({:.0} rows/s, batches of 1000)",
        args.rows,
        args.rows as f64 / load.as_secs_f64()
    );

    let mut single = Vec::new();
    for i in 0..1000 {
        let mut w = MemoryWrite::new(content(i), MemoryKind::Fact, MemorySource::Agent);
        w.embedding = Some(vector(i, args.dim));
        let t = Instant::now();
        store.write_memory(&names[i % names.len()], &w).await?;
        single.push(t.elapsed());
    }
    println!("single write (1000, sequential): {}", summary(single));

    let searched: Vec<String> = names.iter().take(3).cloned().collect();
    let base = SearchQuery {
        namespaces: searched,
        query: None,
        kinds: Vec::new(),
        limit: 20,
        embedding: None,
    };
    let modes: [(&str, SearchQuery); 4] = [
        ("recent", base.clone()),
        (
            "full-text",
            SearchQuery {
                query: Some("deploying databases".into()),
                ..base.clone()
            },
        ),
        (
            "substring",
            SearchQuery {
                query: Some("k".into()),
                ..base.clone()
            },
        ),
        (
            "semantic",
            SearchQuery {
                embedding: Some(vector(42, args.dim)),
                ..base.clone()
            },
        ),
    ];
    let per_namespace = args.rows / args.namespaces;
    for (label, q) in &modes {
        let mut samples = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            store.search(q).await?;
            samples.push(t.elapsed());
        }
        println!(
            "search {label} (3 namespaces of ~{per_namespace} rows, limit 20): {}",
            summary(samples)
        );
    }
    store.close().await;
    if temporary {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
    Ok(())
}
