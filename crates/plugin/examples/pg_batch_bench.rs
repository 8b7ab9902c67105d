//! Benchmark of `PgStore::write_batch` against the fastest in-database load.
//!
//! Loads `--rows` memories (default 1,000,000) spread over `--namespaces`
//! namespaces through `write_batch` in batches of `--batch` (default 1000,
//! the contract's batch limit), each with an id and `created_at` as the
//! migration tool sends them. Then loads the same rows into a second,
//! identically migrated schema with one `INSERT ... SELECT` inside the
//! database, and prints both times and their ratio.
//!
//! ```text
//! cargo run --release -p memory-plugin --example pg_batch_bench -- \
//!     [--rows N] [--batch N] [--namespaces N] [--url postgres://...]
//! ```
//!
//! Without `--url` it uses a fresh database on the machine's PostgreSQL 15
//! (memory-testkit), dropped at the end.

use anyhow::{bail, Context, Result};
use chrono::{Duration as ChronoDuration, Utc};
use memory_contract::{BatchWrite, MemoryKind, MemorySource, MemoryWrite, NamespaceKind};
use memory_plugin::store::postgres::{PgOptions, PgStore};
use memory_plugin::store::Store;
use std::time::{Duration, Instant};
use uuid::Uuid;

struct Args {
    rows: usize,
    batch: usize,
    namespaces: usize,
    url: Option<String>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        rows: 1_000_000,
        batch: 1000,
        namespaces: 1000,
        url: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--rows" => args.rows = value.parse().context("--rows")?,
            "--batch" => args.batch = value.parse().context("--batch")?,
            "--namespaces" => args.namespaces = value.parse().context("--namespaces")?,
            "--url" => args.url = Some(value),
            other => bail!("unknown flag {other}; see the example's doc comment"),
        }
    }
    if args.batch == 0 || args.namespaces == 0 {
        bail!("--batch and --namespaces must be at least 1");
    }
    Ok(args)
}

/// Deterministic English-like text, so full-text indexing does real work.
fn content(seed: u64) -> String {
    const WORDS: &[&str] = &[
        "deploy",
        "service",
        "database",
        "memory",
        "agent",
        "team",
        "release",
        "review",
        "customer",
        "incident",
        "fixed",
        "running",
        "pipeline",
        "schedule",
        "meeting",
        "notes",
        "budget",
        "report",
        "migration",
        "checkpoint",
        "summary",
        "prefers",
        "config",
        "token",
        "cluster",
        "latency",
        "regression",
        "feature",
        "design",
        "backlog",
        "weekly",
        "the",
        "with",
        "after",
        "before",
        "because",
        "should",
        "never",
        "always",
        "remember",
    ];
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let len = 12 + (x % 28) as usize;
    let mut words = Vec::with_capacity(len);
    for _ in 0..len {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51afd7ed558ccd);
        x ^= x >> 29;
        words.push(WORDS[(x % WORDS.len() as u64) as usize]);
    }
    format!("{} (#{seed})", words.join(" "))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let _db;
    let url = match &args.url {
        Some(url) => url.clone(),
        None => {
            let db = memory_testkit::pg15().await;
            let url = db.url().to_string();
            _db = db;
            url
        }
    };
    let store = PgStore::connect(&url, PgOptions::default())
        .await
        .context("connect (schema memory_plugin)")?;
    let baseline = PgStore::connect(
        &url,
        PgOptions {
            schema: "memory_plugin_baseline".to_string(),
            ..PgOptions::default()
        },
    )
    .await
    .context("connect (schema memory_plugin_baseline)")?;

    let names: Vec<String> = (0..args.namespaces)
        .map(|i| format!("workspace:{:08}", i))
        .collect();
    for name in &names {
        let upsert = memory_contract::NamespaceUpsert {
            kind: NamespaceKind::Workspace,
            expires_at: None,
            metadata: None,
        };
        store.upsert_namespace(name, &upsert).await?;
        baseline.upsert_namespace(name, &upsert).await?;
    }

    println!(
        "loading {} rows in batches of {} over {} namespaces",
        args.rows, args.batch, args.namespaces
    );
    let start_time = Utc::now();
    let mut in_store = Duration::ZERO;
    let mut done = 0usize;
    while done < args.rows {
        let n = args.batch.min(args.rows - done);
        let writes: Vec<BatchWrite> = (done..done + n)
            .map(|i| {
                let mut write =
                    MemoryWrite::new(content(i as u64), MemoryKind::Fact, MemorySource::Agent);
                write.id = Some(Uuid::new_v4());
                write.created_at = Some(start_time - ChronoDuration::seconds(i as i64));
                BatchWrite {
                    namespace: names[i % names.len()].clone(),
                    write,
                }
            })
            .collect();
        let started = Instant::now();
        let results = store.write_batch(&writes).await?;
        in_store += started.elapsed();
        if let Some((i, Err(e))) = results.iter().enumerate().find(|(_, r)| r.is_err()) {
            bail!("item {} of batch at row {done} failed: {e}", i);
        }
        done += n;
    }

    let started = Instant::now();
    sqlx::query(
        "INSERT INTO memory_plugin_baseline.memory_records
             (id, namespace, content, kind, source, expires_at, propagation, pin, created_at)
         SELECT id, namespace, content, kind, source, expires_at, propagation, pin, created_at
         FROM memory_plugin.memory_records",
    )
    .execute(store.pool())
    .await
    .context("baseline INSERT ... SELECT")?;
    let in_database = started.elapsed();

    let ratio = in_store.as_secs_f64() / in_database.as_secs_f64();
    println!(
        "write_batch:             {:>8.2} s ({:.0} rows/s)",
        in_store.as_secs_f64(),
        args.rows as f64 / in_store.as_secs_f64()
    );
    println!(
        "INSERT ... SELECT:       {:>8.2} s ({:.0} rows/s)",
        in_database.as_secs_f64(),
        args.rows as f64 / in_database.as_secs_f64()
    );
    println!("ratio write_batch / INSERT ... SELECT: {ratio:.2}");
    Ok(())
}
