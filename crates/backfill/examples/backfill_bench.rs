//! Benchmark of the migration: apply and verify against their in-database
//! floors, and the naive per-row method.
//!
//! Builds a legacy table of `--rows` memories (default 1,000,000) over
//! `--workspaces` workspaces (default 10,000: orgs of ten, a root and nine
//! children), in one fresh database on the machine's PostgreSQL that also
//! holds the plugin's schemas, then measures:
//!
//! - (a) apply floor: mapping and copying every row with `INSERT ... SELECT`
//!   inside the database (namespaces first, then records);
//! - (b) `memory-backfill -apply` (the real binary, as a child process) through
//!   our plugin (Postgres store, served over HTTP by this process);
//! - (c) the naive per-row method on `--naive-rows` rows (default 20,000),
//!   extrapolated to all rows;
//! - (d) verify floor: one anti-join inside the database;
//! - (e) `memory-backfill -verify -all`.
//!
//! Peak memory of the child processes is their VmHWM.
//!
//! ```text
//! cargo build --release -p memory-backfill --bins --examples
//! target/release/examples/backfill_bench [--rows N] [--workspaces N] [--naive-rows N]
//! ```

use anyhow::{bail, Context, Result};
use memory_backfill::legacy;
use memory_backfill::plugin::Plugin;
use memory_client::{Client, ClientConfig};
use memory_plugin::server::{self, ServerConfig};
use memory_plugin::store::postgres::{PgOptions, PgStore};
use sqlx::PgPool;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    rows: u64,
    workspaces: u64,
    naive_rows: u64,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        rows: 1_000_000,
        workspaces: 10_000,
        naive_rows: 20_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--rows" => args.rows = value.parse().context("--rows")?,
            "--workspaces" => args.workspaces = value.parse().context("--workspaces")?,
            "--naive-rows" => args.naive_rows = value.parse().context("--naive-rows")?,
            other => bail!("unknown flag {other}; see the example's doc comment"),
        }
    }
    if args.workspaces < 10 || args.rows == 0 {
        bail!("--workspaces must be at least 10 and --rows at least 1");
    }
    Ok(args)
}

const LEGACY_SQL: &str = include_str!("../tests/fixtures/legacy_schema.sql");

/// Orgs of ten workspaces; rows spread over them, 70% LOCAL, 20% TEAM, 10%
/// GLOBAL, English-like contents of 60 to 300 characters.
async fn build_legacy(pool: &PgPool, args: &Args) -> Result<()> {
    sqlx::raw_sql(LEGACY_SQL).execute(pool).await?;
    sqlx::query(
        "INSERT INTO workspaces (id, name, parent_id, status)
         SELECT md5('ws' || g)::uuid, 'ws ' || g,
                CASE WHEN g % 10 = 0 THEN NULL ELSE md5('ws' || (g - g % 10))::uuid END,
                CASE WHEN g % 97 = 0 THEN 'removed' WHEN g % 3 = 0 THEN NULL ELSE 'active' END
           FROM generate_series(0, $1 - 1) g",
    )
    .bind(args.workspaces as i64)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO agent_memories (id, workspace_id, content, scope, created_at, updated_at)
         SELECT gen_random_uuid(),
                md5('ws' || (g % $2))::uuid,
                'note ' || g || ' the deploy of service ' || (g % 113) || ' needs review before friday; '
                  || repeat('customer asked about pricing and latency budgets. ', (1 + g % 5)::int),
                CASE WHEN g % 10 < 7 THEN 'LOCAL' WHEN g % 10 < 9 THEN 'TEAM' ELSE 'GLOBAL' END,
                now() - (g || ' seconds')::interval,
                now()
           FROM generate_series(1, $1) g",
    )
    .bind(args.rows as i64)
    .bind(args.workspaces as i64)
    .execute(pool)
    .await?;
    sqlx::raw_sql("ANALYZE workspaces; ANALYZE agent_memories;")
        .execute(pool)
        .await?;
    Ok(())
}

/// Workspace -> (parent, org) computed inside the database, same rules as the tool.
const WS_MAP_SQL: &str = "
CREATE TEMP TABLE ws_map AS
WITH RECURSIVE up(start, id, parent_id, depth, path) AS (
    SELECT id, id, parent_id, 0, ARRAY[id] FROM workspaces
  UNION ALL
    SELECT up.start, w.id, w.parent_id, up.depth + 1, up.path || w.id
      FROM up JOIN workspaces w ON w.id = up.parent_id
     WHERE up.depth < 50 AND NOT (w.id = ANY (up.path))
)
SELECT DISTINCT ON (up.start) up.start AS ws, s.parent_id AS parent, up.id AS org
  FROM up JOIN workspaces s ON s.id = up.start
 ORDER BY up.start, up.depth DESC;
CREATE UNIQUE INDEX ON ws_map (ws);
ANALYZE ws_map;";

const TARGET_NS_EXPR: &str = "CASE upper(btrim(m.scope))
        WHEN 'LOCAL' THEN 'workspace:' || m.workspace_id
        WHEN 'TEAM' THEN 'team:' || coalesce(wm.parent, m.workspace_id)
        ELSE 'org:' || wm.org END";

async fn floor_apply(pool: &PgPool, schema: &str) -> Result<Duration> {
    let started = Instant::now();
    let mut tx = pool.begin().await?;
    sqlx::raw_sql(WS_MAP_SQL).execute(&mut *tx).await?;
    let filter = "upper(btrim(m.scope)) IN ('LOCAL', 'TEAM', 'GLOBAL') AND btrim(m.content) <> ''";
    sqlx::raw_sql(&format!(
        "INSERT INTO {schema}.memory_namespaces (name, kind)
         SELECT DISTINCT {TARGET_NS_EXPR},
                CASE upper(btrim(m.scope)) WHEN 'LOCAL' THEN 'workspace' WHEN 'TEAM' THEN 'team' ELSE 'org' END
           FROM agent_memories m JOIN ws_map wm ON wm.ws = m.workspace_id WHERE {filter};
         INSERT INTO {schema}.memory_records (id, namespace, content, kind, source, pin, created_at)
         SELECT m.id, {TARGET_NS_EXPR}, m.content, 'fact', 'runtime', false, m.created_at
           FROM agent_memories m JOIN ws_map wm ON wm.ws = m.workspace_id WHERE {filter};"
    ))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(started.elapsed())
}

async fn floor_verify(pool: &PgPool, schema: &str) -> Result<(Duration, i64)> {
    let started = Instant::now();
    let mut conn = pool.acquire().await?;
    sqlx::raw_sql(WS_MAP_SQL).execute(&mut *conn).await?;
    let bad: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM agent_memories m JOIN ws_map wm ON wm.ws = m.workspace_id
           LEFT JOIN {schema}.memory_records r ON r.id = m.id
          WHERE upper(btrim(m.scope)) IN ('LOCAL', 'TEAM', 'GLOBAL') AND btrim(m.content) <> ''
            AND (r.id IS NULL OR r.content <> m.content OR r.namespace <> {TARGET_NS_EXPR}
                 OR r.created_at <> m.created_at)"
    ))
    .fetch_one(&mut *conn)
    .await?;
    sqlx::raw_sql("DROP TABLE ws_map")
        .execute(&mut *conn)
        .await?;
    Ok((started.elapsed(), bad))
}

/// Runs the real binary; returns wall time, peak RSS in KiB, exit code.
fn run_tool(
    bin: &PathBuf,
    args: &[&str],
    db_url: &str,
    plugin_url: &str,
) -> Result<(Duration, u64, i32)> {
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(args)
        .env("DATABASE_URL", db_url)
        .env("MEMORY_PLUGIN_URL", plugin_url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let code = loop {
        if let Ok(status) = std::fs::read_to_string(&status_path) {
            if let Some(kib) = status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
            {
                peak = peak.max(kib);
            }
        }
        if let Some(status) = child.try_wait()? {
            break status.code().unwrap_or(-1);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        use std::io::Read;
        let _ = s.read_to_string(&mut out);
    }
    eprintln!("{out}");
    Ok((elapsed, peak, code))
}

fn tool_path() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("BENCH_BACKFILL_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    // target/<profile>/examples/backfill_bench -> target/<profile>/memory-backfill
    let bin = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("memory-backfill"))
        .context("cannot locate target directory")?;
    if !bin.exists() {
        bail!(
            "{} not found; run cargo build --release -p memory-backfill --bins first",
            bin.display()
        );
    }
    Ok(bin)
}

async fn plugin_on(url: &str, schema: &str) -> Result<(server::SpawnedServer, Plugin)> {
    let store = PgStore::connect(
        url,
        PgOptions {
            schema: schema.to_string(),
            ..PgOptions::default()
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("plugin store: {e}"))?;
    let srv = server::spawn(Arc::new(store), ServerConfig::default()).await?;
    let client = Client::new(ClientConfig::new(srv.url()).timeout(Duration::from_secs(60)))?;
    let plugin = Plugin::from_client(client, srv.url().to_string()).await?;
    Ok((srv, plugin))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let bin = tool_path()?;
    let db = memory_testkit::pg15().await;
    let pool = db.connect().await;
    eprintln!(
        "building {} legacy rows over {} workspaces...",
        args.rows, args.workspaces
    );
    build_legacy(&pool, &args).await?;

    // (a) floor
    let (floor_srv, _) = plugin_on(db.url(), "bench_floor").await?;
    drop(floor_srv);
    let floor = floor_apply(&pool, "bench_floor").await?;
    eprintln!("floor apply: {:.2} s", floor.as_secs_f64());

    // (b) the tool
    let (srv, _plugin) = plugin_on(db.url(), "memory_plugin").await?;
    let (apply_time, apply_rss, apply_code) = run_tool(&bin, &["-apply"], db.url(), srv.url())?;
    eprintln!(
        "backfill apply: {:.2} s, exit {apply_code}",
        apply_time.as_secs_f64()
    );

    // (d) verify floor and (e) verify
    let (vfloor, bad) = floor_verify(&pool, "memory_plugin").await?;
    let (verify_time, verify_rss, verify_code) =
        run_tool(&bin, &["-verify", "-all"], db.url(), srv.url())?;
    drop(srv);

    // (c) naive on a slice
    let (naive_srv, naive_plugin) = plugin_on(db.url(), "bench_naive").await?;
    let schema = legacy::inspect(&pool).await?;
    let naive =
        memory_backfill::naive::apply_naive(&pool, &naive_plugin, &schema, args.naive_rows).await?;
    drop(naive_srv);
    let naive_full = naive.elapsed.as_secs_f64() * args.rows as f64 / naive.scanned.max(1) as f64;

    let rate = |d: f64| args.rows as f64 / d.max(1e-9);
    println!("| method | rows | seconds | rows/s | vs floor | peak RSS |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| (a) INSERT ... SELECT floor | {} | {:.2} | {:.0} | 1.00x | - |",
        args.rows,
        floor.as_secs_f64(),
        rate(floor.as_secs_f64())
    );
    println!(
        "| (b) memory-backfill -apply (exit {apply_code}) | {} | {:.2} | {:.0} | {:.2}x | {:.1} MiB |",
        args.rows,
        apply_time.as_secs_f64(),
        rate(apply_time.as_secs_f64()),
        apply_time.as_secs_f64() / floor.as_secs_f64(),
        apply_rss as f64 / 1024.0
    );
    println!(
        "| (c) naive per-row ({} rows measured, extrapolated) | {} | {:.1} | {:.0} | {:.1}x | - |",
        naive.scanned,
        args.rows,
        naive_full,
        rate(naive_full),
        naive_full / floor.as_secs_f64()
    );
    println!(
        "| (d) anti-join verify floor ({bad} bad) | {} | {:.2} | {:.0} | 1.00x | - |",
        args.rows,
        vfloor.as_secs_f64(),
        rate(vfloor.as_secs_f64())
    );
    println!(
        "| (e) memory-backfill -verify -all (exit {verify_code}) | {} | {:.2} | {:.0} | {:.2}x | {:.1} MiB |",
        args.rows,
        verify_time.as_secs_f64(),
        rate(verify_time.as_secs_f64()),
        verify_time.as_secs_f64() / vfloor.as_secs_f64(),
        verify_rss as f64 / 1024.0
    );
    println!(
        "apply speed-up over naive: {:.1}x",
        naive_full / apply_time.as_secs_f64()
    );
    Ok(())
}
