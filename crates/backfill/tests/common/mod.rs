//! Shared setup for the backfill's integration tests: a legacy PG15 database
//! built from fixture SQL, our plugin served over HTTP on port 0 with its
//! store in another fresh PG15 database, and helpers to read both sides
//! directly (the tests' oracle never goes through the code under test).
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use memory_backfill::cli::{self, Parsed, Plan};
use memory_backfill::legacy::{self, LegacySchema};
use memory_backfill::plugin::Plugin;
use memory_backfill::runner::{self, RunReport};
use memory_client::{BreakerPolicy, Client, ClientConfig, RetryPolicy};
use memory_contract::Memory;
use memory_plugin::server::{self, ServerConfig, SpawnedServer};
use memory_plugin::store::postgres::{PgOptions, PgStore};
use memory_testkit::TestDb;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

pub const BIN: &str = env!("CARGO_BIN_EXE_memory-backfill");

/// Runs the binary with `args` and `env`, and none of its settings from
/// this process's environment.
pub fn backfill(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for name in [
        "DATABASE_URL",
        "MEMORY_PLUGIN_URL",
        "MEMORY_PLUGIN_TOKEN",
        "MEMORY_PLUGIN_TIMEOUT",
        "MEMORY_EMBED",
        "MEMORY_EMBED_MODEL_DIR",
        "MEMORY_EMBED_URL",
    ] {
        cmd.env_remove(name);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run memory-backfill")
}

pub const LEGACY_SCHEMA_SQL: &str = include_str!("../fixtures/legacy_schema.sql");

/// A legacy database with the fixture schema.
pub struct Legacy {
    pub db: TestDb,
    pub pool: PgPool,
}

impl Legacy {
    /// On a fresh PostgreSQL 15 database.
    pub async fn new() -> Legacy {
        Legacy::on(memory_testkit::pg15().await).await
    }

    /// On `db`, a fresh database.
    pub async fn on(db: TestDb) -> Legacy {
        let pool = db.connect().await;
        sqlx::raw_sql(LEGACY_SCHEMA_SQL)
            .execute(&pool)
            .await
            .expect("legacy fixture schema");
        Legacy { db, pool }
    }

    pub async fn workspace(&self, id: Uuid, parent: Option<Uuid>, status: Option<&str>) {
        sqlx::query("INSERT INTO workspaces (id, name, parent_id, status) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(format!("ws {id}"))
            .bind(parent)
            .bind(status)
            .execute(&self.pool)
            .await
            .expect("insert workspace");
    }

    pub async fn memory(
        &self,
        id: Uuid,
        ws: Option<Uuid>,
        scope: Option<&str>,
        content: Option<&str>,
    ) {
        sqlx::query(
            "INSERT INTO agent_memories (id, workspace_id, content, scope, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(id)
        .bind(ws)
        .bind(content)
        .bind(scope)
        .bind(fixed_time(id))
        .execute(&self.pool)
        .await
        .expect("insert memory");
    }

    /// `n` LOCAL rows with distinct searchable contents for one workspace.
    pub async fn bulk_local(&self, ws: Uuid, n: i64, tag: &str) {
        sqlx::query(
            "INSERT INTO agent_memories (id, workspace_id, content, scope, created_at, updated_at)
             SELECT gen_random_uuid(), $1,
                    'memory ' || $3 || ' number ' || g || ' about topic' || g || 'zeta',
                    'LOCAL', now() - (g || ' minutes')::interval, now()
               FROM generate_series(1, $2) g",
        )
        .bind(ws)
        .bind(n)
        .bind(tag)
        .execute(&self.pool)
        .await
        .expect("bulk insert");
    }

    pub async fn schema(&self) -> LegacySchema {
        legacy::inspect(&self.pool)
            .await
            .expect("inspect legacy schema")
    }

    pub async fn count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM agent_memories")
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }
}

/// A deterministic, microsecond-exact creation time per row.
pub fn fixed_time(id: Uuid) -> DateTime<Utc> {
    let secs = 1_600_000_000 + (id.as_u128() % 100_000_000) as i64;
    Utc.timestamp_opt(secs, 123_456_000)
        .single()
        .expect("valid time")
}

/// Our plugin on a fresh PG15 database, served over HTTP.
pub struct TargetPlugin {
    pub db: TestDb,
    pub pool: PgPool,
    pub server: SpawnedServer,
    pub plugin: Plugin,
}

impl TargetPlugin {
    /// On a fresh PostgreSQL 15 database.
    pub async fn start(v1_only: bool) -> TargetPlugin {
        TargetPlugin::start_on(memory_testkit::pg15().await, PgOptions::default(), v1_only).await
    }

    /// On `db`, a fresh database, with the store's `options`.
    pub async fn start_on(db: TestDb, options: PgOptions, v1_only: bool) -> TargetPlugin {
        let store = PgStore::connect(db.url(), options)
            .await
            .expect("plugin store");
        let server = server::spawn(
            Arc::new(store),
            ServerConfig {
                v1_only,
                ..ServerConfig::default()
            },
        )
        .await
        .expect("spawn plugin");
        let plugin = connect_plugin(server.url()).await;
        let pool = db.connect().await;
        TargetPlugin {
            db,
            pool,
            server,
            plugin,
        }
    }

    pub fn url(&self) -> &str {
        self.server.url()
    }

    /// Every stored memory outside the checkpoint namespace:
    /// id -> (namespace, content, created_at).
    pub async fn records(&self) -> BTreeMap<Uuid, (String, String, DateTime<Utc>)> {
        let rows: Vec<(Uuid, String, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT id, namespace, content, created_at FROM memory_plugin.memory_records
              WHERE namespace <> 'custom:memory-backfill'",
        )
        .fetch_all(&self.pool)
        .await
        .expect("read plugin records");
        rows.into_iter()
            .map(|(id, ns, c, t)| (id, (ns, c, t)))
            .collect()
    }

    pub async fn exec(&self, sql: &str) {
        sqlx::raw_sql(sql)
            .execute(&self.pool)
            .await
            .expect("plugin-side SQL");
    }
}

/// Every memory `c` holds, with its embedding, page after page of `scan`.
pub async fn scan_with_embeddings(c: &Client) -> Vec<Memory> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = c
            .scan_memories_with_embeddings(after, None, 1000)
            .await
            .expect("scan");
        out.extend(page.memories);
        match page.next_after {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
}

/// A client with no retries and no breaker, so failures show at once.
pub async fn connect_plugin(url: &str) -> Plugin {
    let client = Client::new(
        ClientConfig::new(url)
            .timeout(Duration::from_secs(30))
            .retry(RetryPolicy::none())
            .breaker(BreakerPolicy::disabled()),
    )
    .expect("client");
    Plugin::from_client(client, url.to_string())
        .await
        .expect("plugin reachable")
}

pub fn plan(args: &[&str]) -> Plan {
    match cli::parse(args.iter().copied()) {
        Ok(Parsed::Run(p)) => p,
        other => panic!("bad test plan {args:?}: {other:?}"),
    }
}

/// Runs a plan in process.
pub async fn run(legacy: &Legacy, target: &TargetPlugin, args: &[&str]) -> RunReport {
    try_run(legacy, &target.plugin, args)
        .await
        .expect("run starts")
}

/// Runs a plan in process against `plugin`: the report, or why the run
/// did not start.
pub async fn try_run(
    legacy: &Legacy,
    plugin: &Plugin,
    args: &[&str],
) -> Result<RunReport, runner::FatalError> {
    let schema = legacy.schema().await;
    runner::run_with(&plan(args), &legacy.pool, &schema, plugin, false).await
}

pub fn apply_report(r: RunReport) -> memory_backfill::report::ApplyReport {
    match r {
        RunReport::Apply(a) => a,
        other => panic!("expected an apply report, got {other:?}"),
    }
}

pub fn verify_report(r: RunReport) -> memory_backfill::verify::VerifyReport {
    match r {
        RunReport::Verify(v) => v,
        other => panic!("expected a verify report, got {other:?}"),
    }
}

pub fn dry_run_report(r: RunReport) -> memory_backfill::dry_run::DryRunReport {
    match r {
        RunReport::DryRun(d) => d,
        other => panic!("expected a dry-run report, got {other:?}"),
    }
}

/// Legacy rows as the plugin should hold them: id -> (content, created_at).
pub async fn legacy_rows(legacy: &Legacy) -> BTreeMap<Uuid, (String, DateTime<Utc>)> {
    let rows: Vec<(Uuid, Option<String>, DateTime<Utc>)> =
        sqlx::query_as("SELECT id, content, created_at FROM agent_memories")
            .fetch_all(&legacy.pool)
            .await
            .expect("legacy rows");
    rows.into_iter()
        .map(|(id, c, t)| (id, (c.unwrap_or_default(), t)))
        .collect()
}

pub fn uuid(n: u128) -> Uuid {
    // Spread ids so their order is not their creation order.
    Uuid::from_u128(
        n.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) ^ 0x4000_0000_0000_8000,
    )
}
