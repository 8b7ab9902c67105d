//! `--section pg-batch`: the Postgres store's batch write (`write_batch`,
//! in this process, the code behind the batch route) against the fastest
//! load of the same rows inside the database.
//!
//! On a scratch database: `--rows` generated memories ([`crate::generated`])
//! over the namespaces of `--workspaces` workspaces are written through
//! `PgStore::write_batch` in batches of 1000 (the route's limit), each with
//! its id and `created_at` as a migration tool sends them; only the time
//! inside `write_batch` counts, not the generation. The floor then copies
//! the same rows into a second, identically migrated schema with one
//! `INSERT ... SELECT`.

use crate::generated::{Generator, Tree};
use crate::machine::Machine;
use crate::options::Plan;
use crate::progress;
use crate::report::{Figure, Unit};
use crate::run::Outcome;
use crate::scratch::ScratchDb;
use anyhow::{bail, Context, Result};
use memory_plugin::store::postgres::{PgOptions, PgStore};
use memory_plugin::store::Store;
use std::time::{Duration, Instant};

/// Schema of the store under test and of the floor's copy.
const STORE_SCHEMA: &str = "bench_batch";
const FLOOR_SCHEMA: &str = "bench_batch_floor";
const BATCH: usize = 1000;
const TREE_SEED: u64 = 0x7ee5;
const ROWS_SEED: u64 = 0x5eed;

/// Runs the section on a scratch database, removed at the end.
///
/// # Errors
///
/// When the database cannot be set up or a batch fails.
pub async fn run(plan: &Plan, command: String) -> Result<Outcome> {
    let started = Instant::now();
    let scratch = ScratchDb::create(&plan.database_url).await?;
    progress(&format!("scratch database {}", scratch.name()));
    // Ctrl-C still drops the scratch database.
    let result = tokio::select! {
        r = measure(plan, &scratch, command) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    progress(&format!("dropping scratch database {}", scratch.name()));
    let dropped = scratch.drop_database().await;
    let mut out = result?;
    dropped?;
    out.total_seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

async fn measure(plan: &Plan, scratch: &ScratchDb, command: String) -> Result<Outcome> {
    let connect = |schema: &str| {
        PgStore::connect(
            scratch.url().as_str(),
            PgOptions {
                schema: schema.to_string(),
                ..PgOptions::default()
            },
        )
    };
    let store = connect(STORE_SCHEMA)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the store on {STORE_SCHEMA}: {e}"))?;
    let floor = connect(FLOOR_SCHEMA)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the store on {FLOOR_SCHEMA}: {e}"))?;
    let postgres: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(store.pool())
        .await?;
    let mut out = Outcome {
        machine: Machine::describe(format!("PostgreSQL {postgres}")),
        command,
        quick: plan.quick,
        legacy: Default::default(),
        figures: Vec::new(),
        notes: Vec::new(),
        failures: Vec::new(),
        total_seconds: 0.0,
    };

    let tree = Tree::new(plan.workspaces as usize, TREE_SEED);
    let (names, kinds): (Vec<String>, Vec<String>) = tree
        .namespaces()
        .into_iter()
        .map(|(name, kind)| (name, kind.as_str().to_string()))
        .unzip();
    for schema in [STORE_SCHEMA, FLOOR_SCHEMA] {
        sqlx::query(&format!(
            "INSERT INTO {schema}.memory_namespaces (name, kind)
             SELECT * FROM unnest($1::text[], $2::text[])"
        ))
        .bind(&names)
        .bind(&kinds)
        .execute(store.pool())
        .await
        .with_context(|| format!("cannot create the namespaces in {schema}"))?;
    }

    let rows = plan.rows;
    progress(&format!(
        "(pg-batch) write_batch: {rows} memories over {} namespaces, batches of {BATCH}",
        names.len()
    ));
    let _ = sqlx::query("CHECKPOINT").execute(store.pool()).await;
    let mut generator = Generator::new(rows, ROWS_SEED);
    let mut in_store = Duration::ZERO;
    let mut done = 0u64;
    while done < rows {
        let n = (BATCH as u64).min(rows - done) as usize;
        let writes = generator.batch(&tree, n);
        let t0 = Instant::now();
        let results = store
            .write_batch(&writes)
            .await
            .map_err(|e| anyhow::anyhow!("write_batch at row {done}: {e}"))?;
        in_store += t0.elapsed();
        if let Some((i, Err(e))) = results.iter().enumerate().find(|(_, r)| r.is_err()) {
            bail!("item {i} of the batch at row {done} failed: {e}");
        }
        done += n as u64;
    }

    progress("(pg-batch) floor: INSERT ... SELECT inside the database");
    let _ = sqlx::query("CHECKPOINT").execute(store.pool()).await;
    let t0 = Instant::now();
    let copied = sqlx::query(&format!(
        "INSERT INTO {FLOOR_SCHEMA}.memory_records
             (id, namespace, content, kind, source, expires_at, propagation, pin, created_at)
         SELECT id, namespace, content, kind, source, expires_at, propagation, pin, created_at
         FROM {STORE_SCHEMA}.memory_records"
    ))
    .execute(store.pool())
    .await
    .context("floor INSERT ... SELECT")?
    .rows_affected();
    let in_database = t0.elapsed();
    if copied != rows {
        out.failures.push(format!(
            "the store holds {copied} memories after write_batch of {rows}"
        ));
    }
    store.pool().close().await;
    floor.pool().close().await;

    let store_secs = in_store.as_secs_f64();
    let floor_secs = in_database.as_secs_f64();
    out.add(Figure::against(
        "k",
        format!("Postgres write_batch, {rows} rows"),
        store_secs,
        Unit::Seconds,
        "INSERT..SELECT",
        floor_secs,
    ));
    out.add(Figure::against(
        "k",
        "Postgres write_batch rate",
        rows as f64 / store_secs.max(1e-9),
        Unit::PerSecond,
        "INSERT..SELECT",
        rows as f64 / floor_secs.max(1e-9),
    ));
    out.notes.push(format!(
        "pg-batch: {rows} generated memories over {} namespaces ({} workspaces) through \
         PgStore::write_batch in this process, batches of {BATCH}, time inside write_batch only; \
         floor: one INSERT ... SELECT of the same rows into an identically migrated schema",
        names.len(),
        tree.len()
    ));
    Ok(out)
}
