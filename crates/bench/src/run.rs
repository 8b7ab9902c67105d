//! The benchmark run, step by step, and the cleanup that follows it whatever
//! happens.
//!
//! Order: legacy data; floor (a), the in-database copy; (b) backfill apply;
//! (d) verify-all and its anti-join floor; (c) the naive slice; (f) search
//! and (e) commit load on the Postgres plugin against direct SQL; (i) the
//! gateway in front of it against the plugin alone; (h) its peak memory; (g)
//! the same plugin figures on SQLite; (j) the plugin swap, `memory-migrate`
//! from that SQLite plugin (restarted on its file) to a fresh Postgres plugin,
//! against (b)'s apply time. Everything lives in one scratch database and one
//! temporary directory, both removed at the end, also after an error, a panic
//! or Ctrl-C.

use crate::child::MeasuredChild;
use crate::floors::{self, Mode, FLOOR_SCHEMA, MIGRATE_SCHEMA, NAIVE_SCHEMA, PLUGIN_SCHEMA};
use crate::legacy::{self, LegacySize, LegacyStats, SEARCH_TERMS, SUBSTRING_CHARS};
use crate::load::{run_load, LoadBounds, LoadSummary};
use crate::machine::Machine;
use crate::options::{Plan, Section};
use crate::plugin::{PluginHttp, PluginProcess};
use crate::report::{Figure, Target, Unit};
use crate::scratch::ScratchDb;
use crate::semantic::{self, Pg18Database, SemanticSetup};
use crate::sqlite_floors::{self, SqliteFloor};
use crate::{naive, progress};
use anyhow::{bail, Context, Result};
use futures::{StreamExt, TryStreamExt};
use memory_contract::{
    BatchRequest, BatchWrite, MemoryKind, MemorySource, MemoryWrite, NamespaceKind, SearchRequest,
};
use serde::Serialize;
use sqlx::PgPool;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

const MIB: f64 = 1024.0 * 1024.0;
/// Peak memory bar of the backfill (apply and verify).
const BACKFILL_RSS_TARGET: f64 = 64.0 * MIB;
/// Peak memory bar of `memory-migrate -apply` (section j).
const MIGRATE_RSS_TARGET: f64 = 64.0 * MIB;
/// The SQLite plugin's file in the run's temporary directory (sections g and j).
const SQLITE_FILE: &str = "bench.sqlite";
/// Connections of the plugin's pool: the largest load level, so the plugin
/// is not held to fewer connections than its direct-SQL floor.
const PLUGIN_MAX_CONNECTIONS: usize = 32;
/// Namespace sets the search figures cycle through.
const SEARCH_NAMESPACE_SETS: i64 = 200;
/// Results per search request (the contract's default).
const SEARCH_LIMIT: i64 = 20;

/// The binaries under test.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub plugin: PathBuf,
    pub backfill: PathBuf,
    pub gateway: PathBuf,
    pub migrate: PathBuf,
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub machine: Machine,
    pub command: String,
    pub quick: bool,
    pub legacy: LegacyStats,
    pub figures: Vec<Figure>,
    /// Facts shown under the table.
    pub notes: Vec<String>,
    /// Correctness problems (a child failed, parity broken, load errors).
    pub failures: Vec<String>,
    pub total_seconds: f64,
}

impl Outcome {
    /// Records a figure and shows it at once, so a long run that fails late
    /// still leaves its earlier figures in the log.
    pub fn add(&mut self, figure: Figure) {
        progress(&format!(
            "    = {}: {}{}",
            figure.name,
            crate::report::format_value(figure.value, figure.unit),
            figure
                .ratio
                .map_or(String::new(), |r| format!(" ({r:.2}x floor)"))
        ));
        self.figures.push(figure);
    }

    /// Figures whose target was missed.
    pub fn misses(&self) -> Vec<&Figure> {
        self.figures
            .iter()
            .filter(|f| f.met == Some(false))
            .collect()
    }
}

/// Builds the binaries under test with cargo when this executable sits in a
/// cargo target directory of this workspace.
///
/// # Errors
///
/// When cargo fails.
pub fn build_binaries() -> Result<()> {
    build_release(&[
        "memory-plugin",
        "memory-backfill",
        "memory-gateway",
        "memory-migrate",
    ])
}

/// `cargo build --release -p <package>...` in this workspace, when this
/// executable was built from one (else nothing).
///
/// # Errors
///
/// When cargo cannot run or fails.
pub(crate) fn build_release(packages: &[&str]) -> Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if !workspace.join("Cargo.toml").exists() {
        return Ok(());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    progress(&format!("building {} (release)", packages.join(", ")));
    let mut args = vec!["build", "--release"];
    for package in packages {
        args.extend(["-p", package]);
    }
    let status = std::process::Command::new(cargo)
        .args(&args)
        .current_dir(&workspace)
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("cannot run cargo to build {}", packages.join(", ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Finds `memory-plugin`, `memory-backfill`, `memory-gateway` and
/// `memory-migrate` in `dir` or next to this executable. Whether they exist
/// is checked when a run starts ([`Binaries::require`]), for the ones its
/// section needs.
///
/// # Errors
///
/// When this executable's directory cannot be found.
pub fn locate_binaries(dir: Option<&Path>) -> Result<Binaries> {
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::current_exe()
            .context("cannot find this executable's path")?
            .parent()
            .map(Path::to_path_buf)
            .context("this executable has no parent directory")?,
    };
    Ok(Binaries {
        plugin: dir.join("memory-plugin"),
        backfill: dir.join("memory-backfill"),
        gateway: dir.join("memory-gateway"),
        migrate: dir.join("memory-migrate"),
    })
}

impl Binaries {
    /// Checks that the binaries `section` runs exist.
    ///
    /// # Errors
    ///
    /// When one is missing; the message says how to build them.
    pub fn require(&self, section: Section) -> Result<()> {
        let needed: Vec<&PathBuf> = match section {
            Section::All => vec![&self.plugin, &self.backfill, &self.gateway, &self.migrate],
            Section::Backfill => vec![&self.plugin, &self.backfill],
            Section::SqliteMillion => vec![&self.plugin],
            Section::PgBatch => Vec::new(),
        };
        for bin in needed {
            if !bin.is_file() {
                bail!(
                    "{} not found; build it with `cargo build --release -p memory-plugin -p memory-backfill -p memory-gateway -p memory-migrate` \
                     or pass --bin-dir",
                    bin.display()
                );
            }
        }
        Ok(())
    }
}

/// Shared state of one run.
#[derive(Clone)]
struct Ctx {
    plan: Plan,
    bins: Binaries,
    scratch: ScratchDb,
    work_dir: PathBuf,
}

/// Runs the whole benchmark and removes the scratch database and the
/// temporary directory afterwards, whatever happened.
///
/// # Errors
///
/// Setup failures and failures of a step; correctness problems that do not
/// stop the run are in [`Outcome::failures`] instead.
pub async fn run(plan: Plan, bins: Binaries, command: String) -> Result<Outcome> {
    bins.require(plan.section)?;
    match plan.section {
        Section::SqliteMillion => return crate::sqlite_million::run(&plan, &bins, command).await,
        Section::PgBatch => return crate::pg_batch::run(&plan, command).await,
        Section::All | Section::Backfill => {}
    }
    let started = Instant::now();
    let work_dir = std::env::temp_dir().join(format!("memory-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("cannot create {}", work_dir.display()))?;
    let scratch = match ScratchDb::create(&plan.database_url).await {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&work_dir);
            return Err(e);
        }
    };
    progress(&format!("scratch database {}", scratch.name()));
    let ctx = Ctx {
        plan,
        bins,
        scratch: scratch.clone(),
        work_dir: work_dir.clone(),
    };

    // The run is a task so that a panic inside it still reaches the cleanup
    // below, and Ctrl-C can abort it (dropping it kills the children).
    let mut task = tokio::spawn(bench(ctx, command));
    let result = tokio::select! {
        joined = &mut task => match joined {
            Ok(r) => r,
            Err(e) => Err(anyhow::anyhow!("the benchmark panicked: {e}")),
        },
        _ = tokio::signal::ctrl_c() => {
            task.abort();
            let _ = task.await;
            Err(anyhow::anyhow!("interrupted"))
        }
    };

    progress(&format!("dropping scratch database {}", scratch.name()));
    let dropped = scratch.drop_database().await;
    let _ = std::fs::remove_dir_all(&work_dir);
    let mut outcome = result?;
    dropped?;
    outcome.total_seconds = started.elapsed().as_secs_f64();
    Ok(outcome)
}

async fn bench(ctx: Ctx, command: String) -> Result<Outcome> {
    let plan = &ctx.plan;
    let pool = ctx.scratch.pool(8).await?;
    let postgres: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&pool)
        .await?;
    let mut out = Outcome {
        machine: Machine::describe(format!("PostgreSQL {postgres}")),
        command,
        quick: plan.quick,
        legacy: LegacyStats::default(),
        figures: Vec::new(),
        notes: Vec::new(),
        failures: Vec::new(),
        total_seconds: 0.0,
    };

    progress(&format!(
        "building legacy data: {} rows over {} workspaces",
        plan.rows, plan.workspaces
    ));
    out.legacy = legacy::build(
        &pool,
        LegacySize {
            rows: plan.rows,
            workspaces: plan.workspaces,
        },
    )
    .await?;
    let l = &out.legacy;
    out.notes.push(format!(
        "legacy data: {} rows ({} LOCAL / {} TEAM / {} GLOBAL), {}..{} chars (avg {:.0}), {:.0} MiB; \
         {} workspaces ({} roots, {} children, {} grandchildren, {} removed); built in {:.1} s",
        l.rows, l.local_rows, l.team_rows, l.global_rows, l.min_chars, l.max_chars, l.avg_chars,
        l.table_bytes as f64 / MIB, l.workspaces, l.roots, l.children, l.grandchildren, l.removed,
        l.build_seconds
    ));
    out.notes.push(
        "embeddings: PostgreSQL 15 has no pgvector, so the legacy table has no embedding column \
         and the Postgres figures have no semantic mode"
            .into(),
    );

    // The floor's tables come from the plugin's own migration.
    migrate_schema(&ctx, FLOOR_SCHEMA).await?;
    migrate_schema(&ctx, NAIVE_SCHEMA).await?;

    // (a) floor: the copy inside the database.
    checkpoint(&pool).await;
    progress("(a) floor: INSERT ... SELECT inside the database");
    let copy = floors::copy_inside_database(&pool).await?;
    progress(&format!(
        "    {} rows, {} namespaces in {:.2} s",
        copy.rows,
        copy.namespaces,
        copy.elapsed.as_secs_f64()
    ));
    // Later steps look workspaces up in the resolution table; index it
    // outside the floor's timing.
    for ddl in [
        "ALTER TABLE bench_floor.bench_resolved ADD PRIMARY KEY (workspace_id)",
        "ANALYZE bench_floor.bench_resolved",
    ] {
        sqlx::query(ddl).execute(&pool).await?;
    }

    // (b) backfill -apply through the plugin.
    let plugin = start_pg_plugin(&ctx, PLUGIN_SCHEMA, "plugin-postgres").await?;
    checkpoint(&pool).await;
    progress("(b) memory-backfill -apply");
    let apply = run_backfill(
        &ctx,
        "backfill-apply",
        &["-apply", "--json"],
        plugin.base_url(),
    )
    .await?;
    if !apply.exit.success() {
        out.failures.push(format!(
            "memory-backfill -apply ended with {}: {}",
            apply.exit.describe(),
            apply.stderr_tail
        ));
    }
    // Rows in the mapped namespaces only: the backfill keeps its checkpoint
    // in a `custom:` namespace of the plugin.
    let migrated: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {PLUGIN_SCHEMA}.memory_records WHERE namespace NOT LIKE 'custom:%'"
    ))
    .fetch_one(&pool)
    .await?;
    if migrated as u64 != copy.rows {
        out.failures.push(format!(
            "after apply the plugin holds {migrated} rows, the in-database copy {}",
            copy.rows
        ));
    }
    let apply_secs = apply.exit.elapsed.as_secs_f64();
    let floor_secs = copy.elapsed.as_secs_f64();
    out.add(
        Figure::against(
            "b",
            format!("backfill -apply, {} rows", copy.rows),
            apply_secs,
            Unit::Seconds,
            "(a) INSERT..SELECT",
            floor_secs,
        )
        .with_target(Target::RatioAtMost(1.25)),
    );
    out.add(Figure::against(
        "b",
        "backfill -apply rate",
        migrated as f64 / apply_secs.max(1e-9),
        Unit::PerSecond,
        "(a)",
        copy.rows as f64 / floor_secs.max(1e-9),
    ));
    out.add(
        Figure::plain(
            "b",
            "backfill -apply peak RSS",
            apply.exit.peak_rss_bytes as f64,
            Unit::Bytes,
        )
        .with_target(Target::ValueBelow(BACKFILL_RSS_TARGET)),
    );

    // (d) verify -all against the anti-join.
    checkpoint(&pool).await;
    progress("(d) memory-backfill -verify -all");
    let verify = run_backfill(
        &ctx,
        "backfill-verify",
        &["-verify", "-all", "--json"],
        plugin.base_url(),
    )
    .await?;
    if !verify.exit.success() {
        out.failures.push(format!(
            "memory-backfill -verify -all ended with {}: {}",
            verify.exit.describe(),
            verify.stderr_tail
        ));
    }
    let method = verify.verify_method();
    if method.as_deref() != Some("checksum") {
        out.failures.push(format!(
            "memory-backfill -verify -all used method {method:?}, not checksum"
        ));
    }
    progress("(d) memory-backfill -verify -all -verify-method=scan, for comparison");
    let by_scan = run_backfill(
        &ctx,
        "backfill-verify-scan",
        &["-verify", "-all", "-verify-method=scan", "--json"],
        plugin.base_url(),
    )
    .await?;
    if !by_scan.exit.success() {
        out.failures.push(format!(
            "memory-backfill -verify -all -verify-method=scan ended with {}: {}",
            by_scan.exit.describe(),
            by_scan.stderr_tail
        ));
    }
    progress("(d) floor: anti-join inside the database");
    let anti = floors::anti_join(&pool, PLUGIN_SCHEMA).await?;
    if anti.mismatches != 0 {
        out.failures.push(format!(
            "the anti-join finds {} legacy rows missing or different in the plugin",
            anti.mismatches
        ));
    }
    out.add(
        Figure::against(
            "d",
            "backfill -verify -all",
            verify.exit.elapsed.as_secs_f64(),
            Unit::Seconds,
            "anti-join",
            anti.elapsed.as_secs_f64(),
        )
        .with_target(Target::RatioAtMost(3.0)),
    );
    out.add(Figure::against(
        "d",
        "backfill -verify -all, method scan",
        by_scan.exit.elapsed.as_secs_f64(),
        Unit::Seconds,
        "anti-join",
        anti.elapsed.as_secs_f64(),
    ));
    out.add(
        Figure::plain(
            "d",
            "backfill -verify -all peak RSS",
            verify.exit.peak_rss_bytes as f64,
            Unit::Bytes,
        )
        .with_target(Target::ValueBelow(BACKFILL_RSS_TARGET)),
    );

    // (c) the naive per-row method on a slice, on its own plugin schema.
    progress(&format!(
        "(c) naive per-row method on {} rows",
        plan.naive_rows
    ));
    let naive_plugin = start_pg_plugin(&ctx, NAIVE_SCHEMA, "plugin-naive").await?;
    let naive_run = naive::migrate_slice(&pool, &naive_plugin.handle(), plan.naive_rows).await;
    naive_plugin.stop().await;
    let naive_run = naive_run?;
    let naive_total = naive_run.extrapolate(copy.rows).as_secs_f64();
    out.add(
        Figure::against(
            "c",
            format!(
                "naive per-row, {} rows extrapolated from {}",
                copy.rows, naive_run.rows
            ),
            naive_total,
            Unit::Seconds,
            "(b) apply",
            apply_secs,
        )
        .with_target(Target::RatioAtLeast(30.0))
        .with_note(format!(
            "naive slice: {} rows in {:.2} s ({:.0} rows/s)",
            naive_run.rows,
            naive_run.elapsed.as_secs_f64(),
            naive_run.rows as f64 / naive_run.elapsed.as_secs_f64().max(1e-9)
        )),
    );

    if plan.section == Section::Backfill {
        plugin.stop().await;
        pool.close().await;
        return Ok(out);
    }

    // (f) search and (e) commit load on the Postgres plugin.
    let namespace_sets = floors::search_namespace_sets(&pool, SEARCH_NAMESPACE_SETS).await?;
    if namespace_sets.is_empty() {
        bail!("no workspace holds memories; nothing to search");
    }
    let search_pool = floors::schema_pool(ctx.scratch.url(), PLUGIN_SCHEMA, 1).await?;
    for mode in [Mode::Recent, Mode::Substring, Mode::FullText] {
        progress(&format!("(f) Postgres search, {} mode", mode.name()));
        let (via_plugin, direct, naive) =
            measure_search_pg(plan, &plugin.handle(), &search_pool, mode, &namespace_sets).await;
        let label = format!("Postgres search {} ({} rows)", mode.name(), migrated);
        push_latency_figures(&mut out, "f", &label, &via_plugin, &direct, "store SQL");
        crate::targets::push_naive_search(&mut out, "f", &label, &via_plugin, &naive);
    }
    search_pool.close().await;

    let write_namespaces: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT name FROM {PLUGIN_SCHEMA}.memory_namespaces WHERE kind = 'workspace' ORDER BY name LIMIT 1000"
    ))
    .fetch_all(&pool)
    .await?;
    let contents = Arc::new(legacy::phrase_dictionary(1000, 7));
    let write_namespaces = Arc::new(write_namespaces);
    let driver = WriteDriver::choose(&ctx.work_dir, &write_namespaces, &contents)?;
    out.notes.push(driver.note());
    let pgbench_scripts = match crate::pgbench::find() {
        Some(binary) => {
            let scripts = crate::pgbench::write_scripts(
                &ctx.work_dir,
                PLUGIN_SCHEMA,
                &write_namespaces,
                &contents,
            )?;
            out.notes.push(format!(
                "pgbench floor: {} -n -c N -j min(N,2) -T {} with {} one-line INSERT scripts \
                 (one row of the plugin's shape per transaction into {PLUGIN_SCHEMA}.memory_records), \
                 run right after the plugin's load at the same N; writes/s is pgbench's tps, \
                 p50/p99 come from its per-transaction log (--log)",
                binary.display(),
                plan.commit_time.as_secs_f64().ceil().max(1.0),
                scripts.len()
            ));
            Some((binary, scripts))
        }
        None => {
            out.notes.push(
                "pgbench not found (/usr/bin/pgbench, pg_config --bindir, PATH): the pgbench single-write floor is skipped"
                    .into(),
            );
            None
        }
    };
    for &clients in &plan.commit_levels {
        progress(&format!("(e) Postgres commits, {clients} clients"));
        let via_plugin = commit_load_plugin(
            plan,
            &driver,
            &plugin.handle(),
            clients,
            &write_namespaces,
            &contents,
        )
        .await;
        if let Some((binary, scripts)) = &pgbench_scripts {
            progress(&format!("(e) pgbench floor, {clients} clients"));
            match crate::pgbench::run(
                binary,
                ctx.scratch.url(),
                scripts,
                clients,
                plan.commit_time,
                &ctx.work_dir,
            )
            .await
            {
                Ok(floor) => {
                    load_failures(&mut out, &format!("pgbench, {clients} clients"), &floor);
                    crate::targets::push_write_figures(
                        &mut out,
                        &crate::targets::WriteCase {
                            section: "e",
                            label: &format!("Postgres single write, {clients} clients"),
                            clients,
                            floor: crate::targets::WriteFloor::Pgbench,
                            floor_name: "pgbench",
                        },
                        &via_plugin,
                        &floor,
                    );
                }
                Err(e) => out
                    .failures
                    .push(format!("pgbench floor at {clients} clients: {e:#}")),
            }
        }
        let direct_pool =
            floors::write_pool(ctx.scratch.url(), PLUGIN_SCHEMA, clients as u32).await?;
        let direct = {
            let pool = direct_pool.clone();
            let names = Arc::clone(&write_namespaces);
            let contents = Arc::clone(&contents);
            run_load(clients, commit_bounds(plan), move |_, i| {
                let pool = pool.clone();
                let names = Arc::clone(&names);
                let contents = Arc::clone(&contents);
                async move {
                    let ns = &names[(i as usize) % names.len()];
                    let content = &contents[(i as usize) % contents.len()];
                    floors::insert_one(&pool, ns, content).await
                }
            })
            .await
        };
        direct_pool.close().await;
        push_throughput_figures(
            &mut out,
            "e",
            &format!("Postgres commit, {clients} clients"),
            &via_plugin,
            &direct,
            "store INSERT",
        );
    }

    // (i) the gateway in front of the same plugin.
    crate::gateway::gateway_figures(
        crate::gateway::GatewaySetup {
            binary: &ctx.bins.gateway,
            database_url: ctx.scratch.url().as_str(),
            plugin: &plugin.handle(),
            plugin_url: plugin.base_url(),
            pool: &pool,
            log_dir: &ctx.work_dir,
            search_bounds: search_bounds(plan),
            commit_bounds: commit_bounds(plan),
            terms: SEARCH_TERMS,
        },
        &mut out,
    )
    .await?;

    // (h) the Postgres plugin's peak memory.
    let exit = plugin.stop().await;
    out.add(Figure::plain(
        "h",
        "plugin (Postgres) peak RSS",
        exit.peak_rss_bytes as f64,
        Unit::Bytes,
    ));
    out.notes.push(format!(
        "plugin runs with MEMORY_PLUGIN_MAX_CONNECTIONS={PLUGIN_MAX_CONNECTIONS} and MEMORY_PLUGIN_LOG=warn; \
         direct-SQL floors use a pool of one connection per client"
    ));

    // (g) the same plugin figures on SQLite.
    sqlite_figures(
        &ctx,
        &pool,
        &namespace_sets,
        &driver,
        &write_namespaces,
        &contents,
        &mut out,
    )
    .await?;

    // (j) the SQLite plugin's memories moved to a fresh Postgres plugin.
    plugin_swap(
        &ctx,
        &pool,
        BackfillApply {
            seconds: apply_secs,
            rows: migrated as u64,
        },
        &mut out,
    )
    .await?;

    // Semantic search, where a server with pgvector is available.
    if plan.semantic {
        semantic_figures(&ctx, &pool, &namespace_sets, &mut out).await?;
    } else {
        out.notes.push(
            "semantic search not measured (run with --semantic or --pg18-url for PostgreSQL 18 with pgvector)"
                .into(),
        );
    }

    pool.close().await;
    Ok(out)
}

/// Starts a plugin on `schema` of the scratch database.
async fn start_pg_plugin(ctx: &Ctx, schema: &str, label: &str) -> Result<PluginProcess> {
    PluginProcess::start(
        label,
        &ctx.bins.plugin,
        ctx.scratch.url().as_str(),
        &[
            ("MEMORY_PLUGIN_SCHEMA", schema.to_string()),
            (
                "MEMORY_PLUGIN_MAX_CONNECTIONS",
                PLUGIN_MAX_CONNECTIONS.to_string(),
            ),
        ],
        &ctx.work_dir,
    )
    .await
}

/// Lets the plugin create its tables in `schema`, then stops it.
async fn migrate_schema(ctx: &Ctx, schema: &str) -> Result<()> {
    let plugin = start_pg_plugin(ctx, schema, &format!("plugin-migrate-{schema}")).await?;
    plugin.stop().await;
    Ok(())
}

/// Flushes dirty buffers so one step's writes are not paid by the next.
async fn checkpoint(pool: &PgPool) {
    let _ = sqlx::query("CHECKPOINT").execute(pool).await;
}

struct ToolRun {
    exit: crate::child::ChildExit,
    stderr_tail: String,
    stdout: String,
}

impl ToolRun {
    /// The `method` of a `--json` verify report, if stdout holds one.
    fn verify_method(&self) -> Option<String> {
        let report: serde_json::Value = serde_json::from_str(self.stdout.trim()).ok()?;
        report.get("method")?.as_str().map(str::to_string)
    }
}

async fn run_backfill(ctx: &Ctx, label: &str, args: &[&str], plugin_url: &str) -> Result<ToolRun> {
    run_measured(
        ctx,
        label,
        &ctx.bins.backfill,
        args,
        &[
            ("DATABASE_URL", ctx.scratch.url().to_string()),
            ("MEMORY_PLUGIN_URL", plugin_url.to_string()),
        ],
    )
    .await
}

/// Runs one of the tools under test to its end, measuring time and peak
/// memory, and keeps its output.
async fn run_measured(
    ctx: &Ctx,
    label: &str,
    binary: &Path,
    args: &[&str],
    env: &[(&str, String)],
) -> Result<ToolRun> {
    let mut child = MeasuredChild::spawn(label, binary, args, env, &ctx.work_dir)
        .with_context(|| format!("failed to start {}", binary.display()))?;
    let exit = child.wait(Duration::from_secs(6 * 3600)).await;
    progress(&format!(
        "    {} in {:.2} s, peak RSS {:.1} MiB",
        exit.describe(),
        exit.elapsed.as_secs_f64(),
        exit.peak_rss_bytes as f64 / MIB
    ));
    Ok(ToolRun {
        stderr_tail: child.stderr_tail(1500),
        stdout: child.stdout_text(),
        exit,
    })
}

fn commit_bounds(plan: &Plan) -> LoadBounds {
    LoadBounds {
        max_ops: plan.commit_ops,
        max_time: plan.commit_time,
    }
}

pub(crate) fn search_bounds(plan: &Plan) -> LoadBounds {
    LoadBounds {
        max_ops: plan.search_requests,
        max_time: if plan.quick {
            Duration::from_secs(5)
        } else {
            Duration::from_secs(60)
        },
    }
}

/// What posts the plugin's single writes: `wrk` when installed (see
/// [`crate::wrk`]), else this process's load generator.
enum WriteDriver {
    Wrk { binary: PathBuf, script: PathBuf },
    InProcess,
}

impl WriteDriver {
    /// `wrk` with a script over `names` and `contents` written into `dir`,
    /// when wrk is found.
    fn choose(dir: &Path, names: &[String], contents: &[String]) -> Result<Self> {
        let Some(binary) = crate::wrk::find() else {
            return Ok(WriteDriver::InProcess);
        };
        let script = dir.join("wrk-single-writes.lua");
        std::fs::write(&script, crate::wrk::write_script(names, contents)?)
            .with_context(|| format!("cannot write {}", script.display()))?;
        Ok(WriteDriver::Wrk { binary, script })
    }

    fn note(&self) -> String {
        match self {
            WriteDriver::Wrk { binary, .. } => format!(
                "plugin single writes: {} -t min(N,2) -c N -d T --latency, a Lua script posting one \
                 write per request over the same namespaces and contents as the floors (2xx answers \
                 counted; p50/p99 are wrk's)",
                binary.display()
            ),
            WriteDriver::InProcess => "plugin single writes: wrk not found (apt-get install wrk), so this \
                 process's own HTTP client posts them; it shares the cores with the plugin and costs \
                 the plugin's side writes the pgbench floor does not pay"
                .to_string(),
        }
    }
}

async fn commit_load_plugin(
    plan: &Plan,
    driver: &WriteDriver,
    plugin: &PluginHttp,
    clients: usize,
    names: &Arc<Vec<String>>,
    contents: &Arc<Vec<String>>,
) -> LoadSummary {
    if let WriteDriver::Wrk { binary, script } = driver {
        match crate::wrk::run(binary, plugin.base_url(), script, clients, plan.commit_time).await {
            Ok(summary) => return summary,
            Err(e) => {
                return LoadSummary {
                    clients,
                    ok: 0,
                    errors: 1,
                    first_error: Some(format!("{e:#}")),
                    seconds: 0.0,
                    per_second: 0.0,
                    p50_ms: 0.0,
                    p99_ms: 0.0,
                }
            }
        }
    }
    let plugin = plugin.clone();
    let names = Arc::clone(names);
    let contents = Arc::clone(contents);
    run_load(clients, commit_bounds(plan), move |_, i| {
        let plugin = plugin.clone();
        let names = Arc::clone(&names);
        let contents = Arc::clone(&contents);
        async move {
            let ns = &names[(i as usize) % names.len()];
            let write = MemoryWrite::new(
                contents[(i as usize) % contents.len()].clone(),
                MemoryKind::Fact,
                MemorySource::Agent,
            );
            plugin.write(ns, &write).await
        }
    })
    .await
}

/// The query text of request `i` in `mode`.
fn search_text(mode: Mode, i: u64) -> Option<&'static str> {
    match mode {
        Mode::FullText => Some(SEARCH_TERMS[(i as usize) % SEARCH_TERMS.len()]),
        Mode::Substring => Some(SUBSTRING_CHARS[(i as usize) % SUBSTRING_CHARS.len()]),
        Mode::Recent | Mode::Semantic => None,
    }
}

fn search_request(mode: Mode, namespaces: &[String], i: u64) -> SearchRequest {
    SearchRequest {
        namespaces: namespaces.to_vec(),
        query: search_text(mode, i).map(str::to_string),
        kinds: None,
        limit: Some(SEARCH_LIMIT),
        embedding: None,
        mode: None,
    }
}

/// Sequential searches through the plugin, with the store's statement and
/// with the naive statement, after a short warm-up of each: (plugin, store
/// SQL, naive SQL).
async fn measure_search_pg(
    plan: &Plan,
    plugin: &PluginHttp,
    pool: &PgPool,
    mode: Mode,
    sets: &[Vec<String>],
) -> (LoadSummary, LoadSummary, LoadSummary) {
    let sets = Arc::new(sets.to_vec());
    let direct_with = |sql: floors::SearchStatement| {
        let pool = pool.clone();
        let sets = Arc::clone(&sets);
        let sql = Arc::new(sql);
        move |_: usize, i: u64| {
            let pool = pool.clone();
            let sets = Arc::clone(&sets);
            let sql = Arc::clone(&sql);
            async move {
                let ns = &sets[(i as usize) % sets.len()];
                let text = search_text(mode, i).map(|t| match mode {
                    Mode::Substring => memory_plugin::store::postgres::substring_argument(t),
                    _ => t.to_string(),
                });
                floors::search_direct(&pool, &sql, ns, text.as_deref(), SEARCH_LIMIT)
                    .await
                    .map(|_| ())
            }
        }
    };
    let direct_op = direct_with(floors::search_sql(mode));
    let naive_op = direct_with(floors::naive_search_sql(mode));
    let plugin_op = {
        let plugin = plugin.clone();
        let sets = Arc::clone(&sets);
        move |_: usize, i: u64| {
            let plugin = plugin.clone();
            let sets = Arc::clone(&sets);
            async move {
                let request = search_request(mode, &sets[(i as usize) % sets.len()], i);
                plugin.search(&request).await.map(|_| ())
            }
        }
    };
    let warm = LoadBounds {
        max_ops: 20,
        max_time: Duration::from_secs(10),
    };
    run_load(1, warm, plugin_op.clone()).await;
    run_load(1, warm, direct_op.clone()).await;
    run_load(1, warm, naive_op.clone()).await;
    let via_plugin = run_load(1, search_bounds(plan), plugin_op).await;
    let direct = run_load(1, search_bounds(plan), direct_op).await;
    let naive = run_load(1, search_bounds(plan), naive_op).await;
    (via_plugin, direct, naive)
}

pub(crate) fn load_failures(out: &mut Outcome, label: &str, summary: &LoadSummary) {
    if summary.errors > 0 {
        out.failures.push(format!(
            "{label}: {} of {} operations failed; first: {}",
            summary.errors,
            summary.errors + summary.ok,
            summary.first_error.as_deref().unwrap_or("?")
        ));
    }
}

pub(crate) fn push_latency_figures(
    out: &mut Outcome,
    section: &str,
    label: &str,
    via_plugin: &LoadSummary,
    direct: &LoadSummary,
    floor_name: &str,
) {
    load_failures(out, &format!("{label} via plugin"), via_plugin);
    load_failures(out, &format!("{label} direct"), direct);
    out.add(Figure::against(
        section,
        format!("{label} p50"),
        via_plugin.p50_ms,
        Unit::Milliseconds,
        floor_name,
        direct.p50_ms,
    ));
    out.add(Figure::against(
        section,
        format!("{label} p99"),
        via_plugin.p99_ms,
        Unit::Milliseconds,
        floor_name,
        direct.p99_ms,
    ));
}

fn push_throughput_figures(
    out: &mut Outcome,
    section: &str,
    label: &str,
    via_plugin: &LoadSummary,
    direct: &LoadSummary,
    floor_name: &str,
) {
    out.add(Figure::against(
        section,
        format!("{label}: throughput"),
        via_plugin.per_second,
        Unit::PerSecond,
        floor_name,
        direct.per_second,
    ));
    push_latency_figures(out, section, label, via_plugin, direct, floor_name);
}

/// (g): a SQLite plugin loaded through the batch route, then the same
/// search and commit figures against the plugin's SQL run directly on the file.
async fn sqlite_figures(
    ctx: &Ctx,
    pool: &PgPool,
    namespace_sets: &[Vec<String>],
    driver: &WriteDriver,
    write_namespaces: &Arc<Vec<String>>,
    contents: &Arc<Vec<String>>,
    out: &mut Outcome,
) -> Result<()> {
    let plan = &ctx.plan;
    let file = ctx.work_dir.join(SQLITE_FILE);
    let mut plugin = PluginProcess::start(
        "plugin-sqlite",
        &ctx.bins.plugin,
        &format!("sqlite:{}", file.display()),
        &[],
        &ctx.work_dir,
    )
    .await?;
    let http = plugin.handle();
    let rows = plan.search_rows.min(plan.rows);
    progress(&format!(
        "(g) loading {rows} rows into SQLite through the batch route"
    ));
    let load_started = Instant::now();
    create_all_namespaces(pool, &http).await?;
    let loaded = load_through_batches(pool, &http, rows, |_| None).await?;
    let load_secs = load_started.elapsed().as_secs_f64();
    out.add(
        Figure::plain(
            "g",
            format!("SQLite load through the batch route, {loaded} rows"),
            loaded as f64 / load_secs.max(1e-9),
            Unit::PerSecond,
        )
        .with_note(format!("SQLite load: {loaded} rows in {load_secs:.1} s")),
    );
    if let Some(target) = crate::targets::sqlite_load_target(loaded) {
        if let Some(figure) = out.figures.last_mut() {
            *figure = figure.clone().with_target(target);
        }
    }

    let floor = SqliteFloor::open(&file, 4).await?;
    for mode in [Mode::Recent, Mode::Substring, Mode::FullText] {
        progress(&format!("(g) SQLite search, {} mode", mode.name()));
        let (via_plugin, direct) =
            measure_search_sqlite(&http, &floor, mode, namespace_sets, search_bounds(plan)).await?;
        push_latency_figures(
            out,
            "g",
            &format!("SQLite search {} ({loaded} rows)", mode.name()),
            &via_plugin,
            &direct,
            "store SQL",
        );
        if mode == Mode::FullText {
            crate::targets::sqlite_fts_targets(out, loaded, plan.quick, &via_plugin);
        }
    }

    for &clients in &plan.commit_levels {
        progress(&format!("(g) SQLite commits, {clients} clients"));
        let via_plugin =
            commit_load_plugin(plan, driver, &http, clients, write_namespaces, contents).await;
        let direct = {
            let writer = floor.writer.clone();
            let reader = floor.reader.clone();
            let names = Arc::clone(write_namespaces);
            let contents = Arc::clone(contents);
            run_load(clients, commit_bounds(plan), move |_, i| {
                let floor = SqliteFloor {
                    writer: writer.clone(),
                    reader: reader.clone(),
                };
                let names = Arc::clone(&names);
                let contents = Arc::clone(&contents);
                async move {
                    let ns = &names[(i as usize) % names.len()];
                    let content = &contents[(i as usize) % contents.len()];
                    sqlite_floors::insert_one(&floor, ns, content).await
                }
            })
            .await
        };
        load_failures(
            out,
            &format!("SQLite commit, {clients} clients via plugin"),
            &via_plugin,
        );
        load_failures(
            out,
            &format!("SQLite commit, {clients} clients direct"),
            &direct,
        );
        crate::targets::push_write_figures(
            out,
            &crate::targets::WriteCase {
                section: "g",
                label: &format!("SQLite single write, {clients} clients"),
                clients,
                floor: crate::targets::WriteFloor::SqliteInsert,
                floor_name: "store INSERT, 1 row/tx",
            },
            &via_plugin,
            &direct,
        );
    }
    floor.close().await;
    plugin.sample_peak();
    let exit = plugin.stop().await;
    out.add(
        Figure::plain(
            "h",
            "plugin (SQLite) peak RSS",
            exit.peak_rss_bytes as f64,
            Unit::Bytes,
        )
        .with_target(Target::ValueAtMost(crate::targets::SQLITE_PEAK_RSS)),
    );
    out.notes.push(
        "SQLite floors run the plugin's statements on the same file: one writer connection \
         (SQLite admits one writer at a time), a pool of readers"
            .into(),
    );
    Ok(())
}

/// (b)'s apply, the yardstick of (j).
struct BackfillApply {
    seconds: f64,
    rows: u64,
}

/// (j): `memory-migrate -apply`, then `-verify`, from the SQLite plugin of
/// (g) (restarted on the same file) to a fresh Postgres plugin on
/// [`MIGRATE_SCHEMA`], against (b)'s apply time for as many rows.
async fn plugin_swap(
    ctx: &Ctx,
    pool: &PgPool,
    backfill: BackfillApply,
    out: &mut Outcome,
) -> Result<()> {
    let file = ctx.work_dir.join(SQLITE_FILE);
    let source_rows: i64 = {
        let floor = SqliteFloor::open(&file, 1).await?;
        let count = sqlx::query_scalar("SELECT count(*) FROM memory_records")
            .fetch_one(&floor.reader)
            .await;
        floor.close().await;
        count.context("cannot count the SQLite plugin's memories")?
    };
    let source = PluginProcess::start(
        "plugin-sqlite-source",
        &ctx.bins.plugin,
        &format!("sqlite:{}", file.display()),
        &[],
        &ctx.work_dir,
    )
    .await?;
    let target = match start_pg_plugin(ctx, MIGRATE_SCHEMA, "plugin-migrate-target").await {
        Ok(t) => t,
        Err(e) => {
            source.stop().await;
            return Err(e);
        }
    };
    let result = async {
        checkpoint(pool).await;
        progress(&format!(
            "(j) memory-migrate -apply: {source_rows} memories, SQLite plugin to Postgres plugin"
        ));
        let apply = run_migrate(
            ctx,
            "migrate-apply",
            "-apply",
            source.base_url(),
            target.base_url(),
        )
        .await?;
        progress("(j) memory-migrate -verify");
        let verify = run_migrate(
            ctx,
            "migrate-verify",
            "-verify",
            source.base_url(),
            target.base_url(),
        )
        .await?;
        Ok::<_, anyhow::Error>((apply, verify))
    }
    .await;
    target.stop().await;
    source.stop().await;
    let (apply, verify) = result?;

    if !apply.exit.success() {
        out.failures.push(format!(
            "memory-migrate -apply ended with {}: {}",
            apply.exit.describe(),
            apply.stderr_tail
        ));
    }
    if !verify.exit.success() {
        out.failures.push(format!(
            "memory-migrate -verify ended with {}: {}",
            verify.exit.describe(),
            verify.stderr_tail
        ));
    }
    let moved: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {MIGRATE_SCHEMA}.memory_records"
    ))
    .fetch_one(pool)
    .await?;
    if moved != source_rows {
        out.failures.push(format!(
            "after memory-migrate -apply the Postgres plugin holds {moved} memories, the SQLite plugin {source_rows}"
        ));
    }

    // (b)'s time for as many rows as (j) moves: the SQLite plugin holds the
    // (g) load plus (g)'s commits, which need not be (b)'s row count.
    let rows = source_rows.max(0) as u64;
    let floor_secs = if backfill.rows == 0 || backfill.rows == rows {
        backfill.seconds
    } else {
        backfill.seconds * rows as f64 / backfill.rows as f64
    };
    let floor_name = if backfill.rows == rows {
        "(b) apply".to_string()
    } else {
        format!("(b) apply, scaled to {rows} rows")
    };
    let apply_secs = apply.exit.elapsed.as_secs_f64();
    out.add(
        Figure::against(
            "j",
            format!("migrate SQLite -> Postgres -apply, {rows} rows"),
            apply_secs,
            Unit::Seconds,
            floor_name,
            floor_secs,
        )
        .with_target(Target::RatioAtMost(1.25))
        .with_note(format!(
            "plugin swap: memory-migrate -apply moved {moved} memories in {apply_secs:.2} s; (b) backfill -apply moved {} rows in {:.2} s",
            backfill.rows, backfill.seconds
        )),
    );
    out.add(Figure::against(
        "j",
        "migrate -apply rate",
        moved as f64 / apply_secs.max(1e-9),
        Unit::PerSecond,
        "(b) apply rate",
        backfill.rows as f64 / backfill.seconds.max(1e-9),
    ));
    out.add(
        Figure::plain(
            "j",
            "migrate -apply peak RSS",
            apply.exit.peak_rss_bytes as f64,
            Unit::Bytes,
        )
        .with_target(Target::ValueBelow(MIGRATE_RSS_TARGET)),
    );
    out.add(Figure::plain(
        "j",
        "migrate -verify",
        verify.exit.elapsed.as_secs_f64(),
        Unit::Seconds,
    ));
    Ok(())
}

/// Runs `memory-migrate <mode> --json` from `from` to `to`.
async fn run_migrate(ctx: &Ctx, label: &str, mode: &str, from: &str, to: &str) -> Result<ToolRun> {
    let from_arg = format!("-from={from}");
    let to_arg = format!("-to={to}");
    run_measured(
        ctx,
        label,
        &ctx.bins.migrate,
        &[mode, "--json", &from_arg, &to_arg],
        &[],
    )
    .await
}

/// Creates every namespace the mapping can produce, eight requests at a time.
pub(crate) async fn create_all_namespaces(pool: &PgPool, http: &PluginHttp) -> Result<()> {
    let names: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT name, kind FROM bench_floor.bench_resolved r,
             LATERAL (VALUES ('workspace:' || r.workspace_id, 'workspace'),
                             ('team:' || r.team_id, 'team'),
                             ('org:' || r.root_id, 'org')) AS n (name, kind)",
    )
    .fetch_all(pool)
    .await?;
    futures::stream::iter(names)
        .map(|(name, kind)| {
            let http = http.clone();
            async move {
                let kind = match kind.as_str() {
                    "workspace" => NamespaceKind::Workspace,
                    "team" => NamespaceKind::Team,
                    _ => NamespaceKind::Org,
                };
                http.put_namespace(&name, kind)
                    .await
                    .with_context(|| format!("cannot create namespace {name}"))
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Streams the first `rows` legacy rows (by id), mapped in SQL, into the
/// plugin in batches of 1000 with two requests in flight; `embedding_for`
/// gives each row's embedding, if any.
pub(crate) async fn load_through_batches(
    pool: &PgPool,
    http: &PluginHttp,
    rows: u64,
    mut embedding_for: impl FnMut(Uuid) -> Option<Vec<f32>>,
) -> Result<u64> {
    type Mapped = (Uuid, String, String, chrono::DateTime<chrono::Utc>);
    const PAGE: i64 = 1000;
    let mut after = Uuid::nil();
    let mut sent = 0u64;
    let mut in_flight = futures::stream::FuturesUnordered::new();
    while sent < rows {
        let take = PAGE.min((rows - sent) as i64);
        let page: Vec<Mapped> = sqlx::query_as(
            "SELECT m.id,
                    CASE m.scope WHEN 'LOCAL' THEN 'workspace:' || r.workspace_id
                                 WHEN 'TEAM' THEN 'team:' || r.team_id
                                 ELSE 'org:' || r.root_id END,
                    m.content, m.created_at
             FROM agent_memories m
             JOIN bench_floor.bench_resolved r ON r.workspace_id = m.workspace_id
             WHERE m.id > $1
             ORDER BY m.id
             LIMIT $2",
        )
        .bind(after)
        .bind(take)
        .fetch_all(pool)
        .await
        .context("cannot read legacy rows for the SQLite load")?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.0;
        sent += page.len() as u64;
        let request = BatchRequest {
            writes: page
                .into_iter()
                .map(|(id, namespace, content, created_at)| {
                    let mut write =
                        MemoryWrite::new(content, MemoryKind::Fact, MemorySource::Agent);
                    write.id = Some(id);
                    write.created_at = Some(created_at);
                    write.embedding = embedding_for(id);
                    BatchWrite { namespace, write }
                })
                .collect(),
        };
        let http = http.clone();
        in_flight.push(async move { http.batch(&request).await });
        if in_flight.len() >= 2 {
            if let Some(done) = in_flight.next().await {
                done?;
            }
        }
    }
    while let Some(done) = in_flight.next().await {
        done?;
    }
    Ok(sent)
}

/// Semantic-search figures on PostgreSQL 18 with pgvector.
async fn semantic_figures(
    ctx: &Ctx,
    pool: &PgPool,
    namespace_sets: &[Vec<String>],
    out: &mut Outcome,
) -> Result<()> {
    let plan = &ctx.plan;
    progress("(f) semantic search on PostgreSQL 18 with pgvector: preparing the database");
    let db = Pg18Database::create(plan.pg18_url.as_ref()).await?;
    let result = async {
        let url = db.url()?;
        let rows = plan.semantic_rows.min(plan.rows);
        progress(&format!(
            "(f) loading {rows} rows with {}-dimension embeddings through the batch route",
            plan.embedding_dim
        ));
        semantic::measure(SemanticSetup {
            plugin_binary: &ctx.bins.plugin,
            log_dir: &ctx.work_dir,
            database_url: &url,
            legacy: pool,
            rows,
            dim: plan.embedding_dim,
            requests: plan.search_requests,
            quick: plan.quick,
            namespace_sets,
        })
        .await
    }
    .await;
    db.drop_database().await;
    let result = result?;
    let label = format!(
        "PG18 search semantic ({} rows, dim {})",
        result.rows, plan.embedding_dim
    );
    push_latency_figures(
        out,
        "f",
        &label,
        &result.via_plugin,
        &result.direct,
        "store SQL",
    );
    crate::targets::push_naive_search(out, "f", &label, &result.via_plugin, &result.naive);
    out.add(Figure::plain(
        "h",
        "plugin (PG18, pgvector) peak RSS",
        result.plugin_peak_rss as f64,
        Unit::Bytes,
    ));
    out.notes.push(format!(
        "semantic: {} rows with random unit vectors loaded in {:.1} s on PostgreSQL 18 with pgvector, \
         then the plugin's HNSW index built in {:.1} s",
        result.rows, result.load_seconds, result.index_seconds
    ));
    Ok(())
}

/// Sequential searches of `mode` through a SQLite plugin and with the
/// store's own statement on the same file, after a short warm-up of each.
///
/// # Errors
///
/// When the full-text document frequencies cannot be counted.
pub(crate) async fn measure_search_sqlite(
    http: &PluginHttp,
    floor: &SqliteFloor,
    mode: Mode,
    namespace_sets: &[Vec<String>],
    bounds: LoadBounds,
) -> Result<(LoadSummary, LoadSummary)> {
    let Some(sql) = sqlite_floors::search_sql(mode) else {
        bail!("no SQLite statement for {} search", mode.name());
    };
    let freqs = if mode == Mode::FullText {
        sqlite_floors::doc_freqs(floor, SEARCH_TERMS).await?
    } else {
        Default::default()
    };
    let freqs = Arc::new(freqs);
    let sql = Arc::new(sql);
    let sets = Arc::new(namespace_sets.to_vec());
    let plugin_op = {
        let http = http.clone();
        let sets = Arc::clone(&sets);
        move |_: usize, i: u64| {
            let http = http.clone();
            let sets = Arc::clone(&sets);
            async move {
                let request = search_request(mode, &sets[(i as usize) % sets.len()], i);
                http.search(&request).await.map(|_| ())
            }
        }
    };
    let pools = Arc::new((floor.writer.clone(), floor.reader.clone()));
    let direct_op = {
        let sets = Arc::clone(&sets);
        let sql = Arc::clone(&sql);
        move |_: usize, i: u64| {
            let sets = Arc::clone(&sets);
            let sql = Arc::clone(&sql);
            let pools = Arc::clone(&pools);
            let freqs = Arc::clone(&freqs);
            async move {
                let floor = SqliteFloor {
                    writer: pools.0.clone(),
                    reader: pools.1.clone(),
                };
                let names = &sets[(i as usize) % sets.len()];
                let text = search_text(mode, i);
                let argument = sqlite_floors::search_argument(mode, text, names);
                let doc_freqs = text.and_then(|t| freqs.get(t)).map(Vec::as_slice);
                sqlite_floors::search_direct(
                    &floor,
                    &sql,
                    names,
                    argument.as_deref(),
                    doc_freqs,
                    SEARCH_LIMIT,
                )
                .await
                .map(|_| ())
            }
        }
    };
    let warm = LoadBounds {
        max_ops: 20,
        max_time: Duration::from_secs(10),
    };
    run_load(1, warm, plugin_op.clone()).await;
    run_load(1, warm, direct_op.clone()).await;
    let via_plugin = run_load(1, bounds, plugin_op).await;
    let direct = run_load(1, bounds, direct_op).await;
    Ok((via_plugin, direct))
}
