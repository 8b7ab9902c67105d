//! `--section sqlite-million`: a SQLite plugin (the release binary, as a
//! child process) loaded through the batch route with `--rows` generated
//! memories over `--workspaces` workspaces ([`crate::generated`]), then
//! searched over three namespaces (a workspace's workspace, team and org)
//! in each mode, against the store's own statements on the same file, and
//! the plugin's peak resident memory over the whole section.
//!
//! Batches of 1000 (the route's limit), two requests in flight, ids
//! ascending. With `--sqlite-path FILE` the file is kept; when it already
//! holds memories (from an earlier run with the same `--workspaces`) the
//! load is skipped.

use crate::generated::{Generator, Tree};
use crate::load::LoadBounds;
use crate::machine::Machine;
use crate::options::Plan;
use crate::plugin::{PluginHttp, PluginProcess};
use crate::report::{Figure, Target, Unit};
use crate::run::{measure_search_sqlite, push_latency_figures, Binaries, Outcome};
use crate::sqlite_floors::SqliteFloor;
use crate::{floors::Mode, progress, targets};
use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use memory_contract::BatchRequest;
use std::path::Path;
use std::time::{Duration, Instant};

const MIB: f64 = 1024.0 * 1024.0;
/// Seeds of the workspace tree, the memories and the searched sets.
const TREE_SEED: u64 = 0x7ee5;
const ROWS_SEED: u64 = 0x5eed;
const SETS_SEED: u64 = 0x5e7;
/// Workspaces whose three namespaces the searches name.
const SEARCH_SETS: usize = 200;
/// Memories per batch request.
const BATCH: usize = 1000;

/// Runs the section; the temporary directory (and the file, unless
/// `--sqlite-path` names it) is removed at the end.
///
/// # Errors
///
/// When the plugin cannot start or a load request fails.
pub async fn run(plan: &Plan, bins: &Binaries, command: String) -> Result<Outcome> {
    let started = Instant::now();
    let work_dir = std::env::temp_dir().join(format!("memory-bench-sqlite-{}", std::process::id()));
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("cannot create {}", work_dir.display()))?;
    let file = plan
        .sqlite_path
        .clone()
        .unwrap_or_else(|| work_dir.join("million.sqlite"));
    let mut out = Outcome {
        machine: Machine::describe("SQLite (no Postgres in this section)".to_string()),
        command,
        quick: plan.quick,
        legacy: Default::default(),
        figures: Vec::new(),
        notes: Vec::new(),
        failures: Vec::new(),
        total_seconds: 0.0,
    };
    // Ctrl-C still removes the temporary directory (and stops the plugin).
    let result = tokio::select! {
        r = measure(plan, bins, &file, &work_dir, &mut out) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    let _ = std::fs::remove_dir_all(&work_dir);
    result?;
    out.total_seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

async fn measure(
    plan: &Plan,
    bins: &Binaries,
    file: &Path,
    work_dir: &Path,
    out: &mut Outcome,
) -> Result<()> {
    let mut plugin = PluginProcess::start(
        "plugin-sqlite-million",
        &bins.plugin,
        &format!("sqlite:{}", file.display()),
        &[],
        work_dir,
    )
    .await?;
    let http = plugin.handle();
    let result = async {
        let tree = Tree::new(plan.workspaces as usize, TREE_SEED);
        let floor = SqliteFloor::open(file, 4).await?;
        let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM memory_records")
            .fetch_one(&floor.reader)
            .await
            .context("cannot count the memories in the SQLite file")?;
        let rows = if existing > 0 {
            out.notes.push(format!(
                "sqlite-million: {} already holds {existing} memories; load skipped",
                file.display()
            ));
            existing as u64
        } else {
            load(plan, &http, &tree, out).await?
        };
        out.notes
            .push(format!("sqlite-million: {}", file_sizes(file)));
        let sets = tree.search_sets(SEARCH_SETS, SETS_SEED);
        let bounds = LoadBounds {
            max_ops: plan.search_requests,
            max_time: Duration::from_secs(if plan.quick { 5 } else { 60 }),
        };
        for mode in [Mode::Recent, Mode::Substring, Mode::FullText] {
            progress(&format!("(sqlite-million) search, {} mode", mode.name()));
            let (via_plugin, direct) =
                measure_search_sqlite(&http, &floor, mode, &sets, bounds).await?;
            push_latency_figures(
                out,
                "g",
                &format!("SQLite search {} ({rows} rows, 3 namespaces)", mode.name()),
                &via_plugin,
                &direct,
                "store SQL",
            );
            if mode == Mode::FullText {
                targets::sqlite_fts_targets(out, rows, plan.quick, &via_plugin);
            }
        }
        floor.close().await;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    plugin.sample_peak();
    let exit = plugin.stop().await;
    result?;
    out.add(
        Figure::plain(
            "h",
            "plugin (SQLite) peak RSS",
            exit.peak_rss_bytes as f64,
            Unit::Bytes,
        )
        .with_target(Target::ValueAtMost(targets::SQLITE_PEAK_RSS)),
    );
    Ok(())
}

/// Creates the namespaces and loads `--rows` memories through the batch
/// route; adds the load-rate figure and returns the rows loaded.
async fn load(plan: &Plan, http: &PluginHttp, tree: &Tree, out: &mut Outcome) -> Result<u64> {
    let namespaces = tree.namespaces();
    progress(&format!(
        "(sqlite-million) creating {} namespaces",
        namespaces.len()
    ));
    futures::stream::iter(namespaces)
        .map(|(name, kind)| {
            let http = http.clone();
            async move {
                http.put_namespace(&name, kind)
                    .await
                    .with_context(|| format!("cannot create namespace {name}"))
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await?;

    let rows = plan.rows;
    progress(&format!(
        "(sqlite-million) loading {rows} memories over {} workspaces through the batch route",
        tree.len()
    ));
    let mut generator = Generator::new(rows, ROWS_SEED);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut in_flight = futures::stream::FuturesUnordered::new();
    while sent < rows {
        let n = (BATCH as u64).min(rows - sent) as usize;
        let request = BatchRequest {
            writes: generator.batch(tree, n),
        };
        sent += n as u64;
        let http = http.clone();
        in_flight.push(tokio::spawn(async move { http.batch(&request).await }));
        if in_flight.len() >= 2 {
            if let Some(done) = in_flight.next().await {
                done??;
            }
        }
    }
    while let Some(done) = in_flight.next().await {
        done??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut figure = Figure::plain(
        "g",
        format!("SQLite load through the batch route, {sent} rows"),
        sent as f64 / seconds.max(1e-9),
        Unit::PerSecond,
    )
    .with_note(format!(
        "sqlite-million load: {sent} rows in {seconds:.1} s (batches of {BATCH}, two in flight, \
         generated in this process while the plugin writes)"
    ));
    if let Some(target) = targets::sqlite_load_target(sent) {
        figure = figure.with_target(target);
    }
    out.add(figure);
    Ok(sent)
}

/// Sizes of the database file and its WAL.
fn file_sizes(path: &Path) -> String {
    let size = |suffix: &str| {
        std::fs::metadata(format!("{}{suffix}", path.display())).map_or_else(
            |_| "-".to_string(),
            |m| format!("{:.1} MiB", m.len() as f64 / MIB),
        )
    };
    format!("database file {}, WAL {}", size(""), size("-wal"))
}
