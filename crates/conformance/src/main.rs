//! `memory-plugin-conformance`: runs the conformance suite against a plugin
//! URL and prints one line per check and a summary (or `--json`).
//! Exit status: 0 when nothing failed, 1 when a check failed, 2 on usage or
//! configuration errors.

use anyhow::Context as _;
use clap::Parser;
use memory_conformance::{catalogue, run, SuiteConfig, SuiteError, DEFAULT_EMBEDDING_DIM};
use std::process::ExitCode;
use std::time::Duration;

/// Checks that a Memory Plugin v1 server honours the contract.
#[derive(Debug, Parser)]
#[command(name = "memory-plugin-conformance", version)]
struct Cli {
    /// Base URL of the plugin, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "MEMORY_PLUGIN_URL")]
    url: Option<String>,
    /// Bearer token for the plugin.
    #[arg(long, env = "MEMORY_PLUGIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print a JSON report instead of lines.
    #[arg(long)]
    json: bool,
    /// Run only these checks (space- or comma-separated, repeatable).
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    only: Vec<String>,
    /// Dimension of the embeddings the embedding check sends.
    #[arg(long, default_value_t = DEFAULT_EMBEDDING_DIM)]
    embedding_dim: usize,
    /// Timeout of each request, e.g. 10s or 500ms.
    #[arg(long, default_value = "10s", value_parser = parse_timeout)]
    timeout: Duration,
    /// List the checks and what each means, then exit.
    #[arg(long)]
    list: bool,
}

fn parse_timeout(raw: &str) -> Result<Duration, String> {
    memory_client::parse_timeout(raw)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // clap exits 2 for usage errors and 0 for --help/--version.
        Err(e) => e.exit(),
    };
    match run_cli(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("memory-plugin-conformance: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run_cli(cli: Cli) -> anyhow::Result<ExitCode> {
    if cli.list {
        for check in catalogue() {
            match check.requires {
                Some(cap) => println!("{} [needs {cap}]: {}", check.name, check.about),
                None => println!("{}: {}", check.name, check.about),
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let url = cli
        .url
        .context("no plugin URL: pass --url URL or set MEMORY_PLUGIN_URL")?;
    let config = SuiteConfig {
        url,
        token: cli.token.filter(|t| !t.is_empty()),
        only: cli.only,
        embedding_dim: cli.embedding_dim,
        timeout: cli.timeout,
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let report = match runtime.block_on(run(&config)) {
        Ok(report) => report,
        Err(e @ (SuiteError::Config(_) | SuiteError::UnknownCheck { .. })) => {
            return Err(anyhow::Error::new(e))
        }
    };
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("cannot encode the JSON report")?
        );
    } else {
        print!("{}", report.text());
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
