//! Wires a [`Plan`] to the environment and runs it.
//!
//! Everything that can go wrong before rows flow (configuration, reaching the
//! database or the plugin, reading the schema) is a [`FatalError`] with
//! exit code 2; what happens to rows is in the mode's report.

use crate::cli::{Mode, Plan};
use crate::config::{self, ConfigError, LegacyDbConfig};
use crate::embedding::{self, EmbedSetup};
use crate::legacy::{self, LegacySchema};
use crate::plugin::Plugin;
use crate::report::ApplyReport;
use crate::{apply, checkpoint, dry_run, verify};
use serde::Serialize;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::fmt;
use std::time::Duration;

/// A failure that ends the run with exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum FatalError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Setup(String),
}

/// The report of any mode.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum RunReport {
    Apply(ApplyReport),
    DryRun(dry_run::DryRunReport),
    Verify(verify::VerifyReport),
    ForgetCheckpoint(checkpoint::ForgetReport),
}

impl RunReport {
    /// The process exit code this report calls for (0 or 1).
    pub fn exit_code(&self) -> u8 {
        match self {
            RunReport::Apply(r) => r.exit_code(),
            RunReport::DryRun(r) => r.exit_code(),
            RunReport::Verify(r) => r.exit_code(),
            RunReport::ForgetCheckpoint(r) => r.exit_code(),
        }
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunReport::Apply(r) => r.fmt(f),
            RunReport::DryRun(r) => r.fmt(f),
            RunReport::Verify(r) => r.fmt(f),
            RunReport::ForgetCheckpoint(r) => r.fmt(f),
        }
    }
}

/// Connects to the legacy database and checks that it answers.
///
/// # Errors
///
/// [`FatalError::Unreachable`] with the URL's password redacted.
pub async fn connect_legacy(
    cfg: &LegacyDbConfig,
    max_connections: u32,
) -> Result<PgPool, FatalError> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(15))
        .connect_with(cfg.options.clone())
        .await
        .map_err(|e| {
            FatalError::Unreachable(format!(
                "cannot connect to the legacy database at {}: {}",
                cfg.display,
                cfg.scrub(&e.to_string()).replace('\n', " ")
            ))
        })?;
    Ok(pool)
}

/// Reads the environment, connects to both sides and runs the plan.
///
/// # Errors
///
/// [`FatalError`] for anything that stops the run before rows flow.
pub async fn run(plan: &Plan, show_progress: bool) -> Result<RunReport, FatalError> {
    let db = config::legacy_db_from_env()?;
    let plugin_url = config::plugin_url_from_env()?;
    // -embed: the embedder is loaded (or refused) before anything connects.
    let embed = match plan.embed {
        true => Some(
            embedding::embedder_from_env()
                .await
                .map_err(FatalError::Setup)?,
        ),
        false => None,
    };
    // Apply reads with one streaming connection; verify and the dry-run diff
    // read one namespace per concurrent merge.
    let connections = match plan.mode {
        Mode::Apply => 4,
        Mode::ForgetCheckpoint => 1,
        Mode::DryRun | Mode::Verify => plan.verify_concurrency() as u32 + 3,
    };
    let pool = connect_legacy(&db, connections).await?;
    let schema = legacy::inspect(&pool)
        .await
        .map_err(|e| FatalError::Setup(db.scrub(&e.to_string())))?;
    let plugin = Plugin::connect(&plugin_url).await.map_err(|e| match e {
        crate::plugin::PluginConnectError::Config(m) => {
            FatalError::Setup(format!("MEMORY_PLUGIN_URL: {m}"))
        }
        other => FatalError::Unreachable(other.to_string()),
    })?;
    run_with_embedder(plan, &pool, &schema, &plugin, embed.as_ref(), show_progress).await
}

/// Runs the plan against connections the caller made (without an
/// embedder: a `-embed` plan goes through [`run_with_embedder`]).
///
/// # Errors
///
/// [`FatalError::Setup`] when the run cannot start.
pub async fn run_with(
    plan: &Plan,
    pool: &PgPool,
    schema: &LegacySchema,
    plugin: &Plugin,
    show_progress: bool,
) -> Result<RunReport, FatalError> {
    run_with_embedder(plan, pool, schema, plugin, None, show_progress).await
}

/// Checks that the plugin stores vectors of the embedder's dimension,
/// before anything is written. A plugin that advertises `embedding` without
/// its `embedding_dimension` is asked with one probe write.
///
/// # Errors
///
/// [`FatalError::Setup`] with a one-line message naming both dimensions.
pub async fn check_embed_target(plugin: &Plugin, setup: &EmbedSetup) -> Result<(), FatalError> {
    let advertised = plugin.client.embedding_dimension();
    embedding::check_target(&plugin.display, plugin.caps.embedding, advertised, setup)
        .map_err(FatalError::Setup)?;
    if advertised.is_none() {
        apply::probe_embedding_dim(plugin, setup.dimension)
            .await
            .map_err(|why| {
                FatalError::Setup(format!(
                    "-embed: the embedder ({}) makes {}-dimension vectors and {why}; nothing was written",
                    setup.describe(),
                    setup.dimension
                ))
            })?;
    }
    Ok(())
}

/// [`run_with`] with the embedder of a `-embed` plan.
///
/// # Errors
///
/// [`FatalError::Setup`] when the run cannot start: also for `-embed`
/// without an embedder, or a plugin that does not take its vectors.
pub async fn run_with_embedder(
    plan: &Plan,
    pool: &PgPool,
    schema: &LegacySchema,
    plugin: &Plugin,
    embed: Option<&EmbedSetup>,
    show_progress: bool,
) -> Result<RunReport, FatalError> {
    let embed = match (plan.embed && plan.mode == Mode::Apply, embed) {
        (true, Some(setup)) => {
            check_embed_target(plugin, setup).await?;
            Some(setup)
        }
        (true, None) => {
            return Err(FatalError::Setup(
                "-embed needs an embedder (MEMORY_EMBED=local or remote); nothing was written"
                    .into(),
            ))
        }
        (false, _) => None,
    };
    match plan.mode {
        Mode::Apply => apply::run(apply::ApplyContext {
            pool,
            plugin,
            schema,
            plan,
            show_progress,
            embed,
        })
        .await
        .map(RunReport::Apply)
        .map_err(|e| FatalError::Setup(e.to_string())),
        Mode::DryRun => dry_run::run(pool, plugin, schema, plan, show_progress)
            .await
            .map(RunReport::DryRun)
            .map_err(|e| FatalError::Setup(e.to_string())),
        Mode::Verify => verify::run(pool, plugin, schema, plan, show_progress)
            .await
            .map(RunReport::Verify)
            .map_err(|e| FatalError::Setup(e.to_string())),
        Mode::ForgetCheckpoint => checkpoint::forget(pool, plugin)
            .await
            .map(RunReport::ForgetCheckpoint)
            .map_err(|e| FatalError::Setup(e.to_string())),
    }
}
