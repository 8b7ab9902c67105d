//! Conformance suite for Memory Plugin v1 servers.
//!
//! [`run`] drives every check against a plugin URL and returns a [`Report`]:
//! one [`CheckReport`] per check (pass, fail with expected vs seen, or skip
//! with a reason) and a summary. Checks that need a capability run only when
//! `/v1/health` advertises it. Each check works in namespaces named
//! `custom:conformance-<run id>-<check>-...` and deletes them afterwards,
//! whether it passed or not. The binary `memory-plugin-conformance` prints
//! the report; tests call [`run`] directly.

#![warn(missing_docs)]

mod checks;
mod context;
mod outcome;
mod report;

pub use checks::{catalogue, CheckInfo};
pub use outcome::Failure;
pub use report::{CheckReport, CheckStatus, Report, Summary};

use context::{CheckCtx, Suite};
use futures::FutureExt;
use outcome::Verdict;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Default dimension of the embeddings the `search_embedding` check sends.
pub const DEFAULT_EMBEDDING_DIM: usize = 1536;

/// What to run, against which plugin.
#[derive(Debug, Clone)]
pub struct SuiteConfig {
    /// The plugin's base URL (http or https).
    pub url: String,
    /// Bearer token, when the plugin wants one.
    pub token: Option<String>,
    /// Names of the checks to run; empty runs all of them.
    pub only: Vec<String>,
    /// Dimension of the embeddings sent by `search_embedding`.
    pub embedding_dim: usize,
    /// Timeout of each request.
    pub timeout: Duration,
}

impl SuiteConfig {
    /// All checks against `url`, no token, 1536-dimension embeddings, 10 s
    /// request timeout.
    pub fn new(url: impl Into<String>) -> Self {
        SuiteConfig {
            url: url.into(),
            token: None,
            only: Vec::new(),
            embedding_dim: DEFAULT_EMBEDDING_DIM,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Why the suite could not start at all.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// The URL is unusable.
    #[error("{0}")]
    Config(String),
    /// `--only` names a check that does not exist.
    #[error("unknown check {name:?}; known checks: {known}")]
    UnknownCheck {
        /// The name given.
        name: String,
        /// Every known name, comma-separated.
        known: String,
    },
}

/// Runs the suite and returns its report. Plugin misbehaviour of any kind
/// is a failed check, never an error of this function.
///
/// # Errors
/// [`SuiteError`] when the configuration is unusable.
pub async fn run(config: &SuiteConfig) -> Result<Report, SuiteError> {
    let all = checks::all();
    for name in &config.only {
        if !all.iter().any(|c| c.info.name == name) {
            return Err(SuiteError::UnknownCheck {
                name: name.clone(),
                known: all
                    .iter()
                    .map(|c| c.info.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    let mut suite = Suite::new(
        &config.url,
        config.token.clone(),
        config.timeout,
        config.embedding_dim,
    )
    .map_err(|e| SuiteError::Config(e.to_string()))?;
    let started = Instant::now();

    // Capabilities decide what runs; the health check judges the answer.
    let health = suite.client.health().await;
    if let Ok(h) = &health {
        suite.capabilities = h.capabilities.clone();
    }
    let suite = Arc::new(suite);

    let mut reports = Vec::new();
    for check in all {
        let info = check.info;
        // An unreadable health answer is always reported, so that a run
        // limited by `only` cannot pass by skipping everything.
        let forced = info.name == "health" && health.is_err();
        if !config.only.is_empty() && !config.only.iter().any(|n| n == info.name) && !forced {
            continue;
        }
        let began = Instant::now();
        let verdict = match (&health, info.requires) {
            (Err(e), _) if info.name != "health" => Ok(Verdict::Skip(format!(
                "cannot read /v1/health ({}), so the plugin's capabilities are unknown",
                outcome::describe_client_error(e)
            ))),
            (_, Some(cap)) if !suite.supports(cap) => Ok(Verdict::Skip(format!(
                "the plugin does not advertise {cap:?}"
            ))),
            _ => run_one(&suite, &check).await,
        };
        reports.push(CheckReport::new(info, verdict, began.elapsed()));
    }
    let mut shown_url = suite.base.clone();
    if shown_url.password().is_some() {
        let _ = shown_url.set_password(Some("***"));
    }
    Ok(Report::new(
        shown_url.to_string(),
        suite.run_id.clone(),
        suite.capabilities.clone(),
        reports,
        started.elapsed(),
    ))
}

/// Runs one check, turns a panic into a failure, and deletes what it made.
async fn run_one(suite: &Arc<Suite>, check: &checks::Check) -> outcome::CheckResult {
    let ctx = CheckCtx::new(suite.clone(), check.info.name);
    let result = match AssertUnwindSafe((check.run)(&ctx)).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(Failure::new(
                "the check to run to its end",
                format!("it panicked: {message}"),
            ))
        }
    };
    let problems = ctx.cleanup().await;
    match (result, problems.is_empty()) {
        (Ok(_), false) => Err(Failure::new(
            "the check's namespaces to be deleted afterwards",
            problems.join("; "),
        )),
        (result, _) => result,
    }
}
