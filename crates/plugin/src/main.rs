//! `memory-plugin`: serves the Memory Plugin v1 contract on Postgres or a
//! SQLite file. The binary is glue: read the settings, set up logging, open
//! the store, bind, serve until SIGINT/SIGTERM.
//!
//! Exit codes: 0 after a clean shutdown, 2 for a configuration or startup
//! error (one line on standard error, passwords redacted), 1 when serving
//! fails after start.

use anyhow::{Context, Result};
use clap::Parser;
use memory_plugin::config::{self, Cli, LogFormat, Settings};
use memory_plugin::server;
use memory_plugin::store::{self, OpenOptions};
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// Failure of `run`, with the exit code it maps to.
enum Failure {
    /// Bad settings, or the store/listener could not be set up: exit 2.
    Startup(anyhow::Error),
    /// The server stopped on an error after it had started: exit 1.
    Serving(anyhow::Error),
}

fn main() -> ExitCode {
    // clap prints usage errors itself and exits 2.
    let cli = Cli::parse();
    let secrets = cli
        .database_url
        .as_deref()
        .map(config::url_secrets)
        .unwrap_or_default()
        .into_iter()
        .chain(cli.token.clone().filter(|t| !t.is_empty()))
        .collect::<Vec<_>>();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Startup(e)) => {
            eprintln!(
                "memory-plugin: error: {}",
                config::scrub(&one_line(&e), &secrets)
            );
            ExitCode::from(2)
        }
        Err(Failure::Serving(e)) => {
            eprintln!(
                "memory-plugin: error: {}",
                config::scrub(&one_line(&e), &secrets)
            );
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

fn run(cli: Cli) -> Result<(), Failure> {
    let settings = cli
        .into_settings()
        .context("invalid configuration")
        .map_err(Failure::Startup)?;
    init_logging(&settings).map_err(Failure::Startup)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(Failure::Startup)?;
    runtime.block_on(start_and_serve(settings))
}

fn init_logging(settings: &Settings) -> Result<()> {
    let filter = EnvFilter::try_new(&settings.log)
        .with_context(|| format!("MEMORY_PLUGIN_LOG {:?} is not a valid filter", settings.log))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let installed = match settings.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

async fn start_and_serve(settings: Settings) -> Result<(), Failure> {
    let shown_url = config::redact_url(&settings.database_url);
    tracing::info!(
        database = %shown_url,
        backend = ?settings.backend,
        v1_only = settings.server.v1_only,
        auth = settings.server.token.is_some(),
        "starting memory-plugin {}",
        env!("CARGO_PKG_VERSION")
    );
    let store = store::open(
        Some(&settings.database_url),
        &OpenOptions {
            schema: settings.schema.clone(),
            embedding_dim: settings.embedding_dim.unwrap_or(store::BACKEND_DEFAULT_DIM),
            migrate: settings.migrate,
            max_connections: settings.max_connections,
            write_committers: settings.write_committers,
        },
    )
    .await
    .with_context(|| format!("cannot open the database {shown_url}"))
    .map_err(Failure::Startup)?;
    let features = store.features();
    let shutdown = shutdown_signal()
        .context("cannot install signal handlers")
        .map_err(Failure::Startup)?;

    let listener = tokio::net::TcpListener::bind(settings.listen_addr.as_str())
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen_addr))
        .map_err(Failure::Startup)?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")
        .map_err(Failure::Startup)?;
    if !addr.ip().is_loopback() && settings.server.token.is_none() {
        tracing::warn!(
            %addr,
            "listening on a non-loopback address without MEMORY_PLUGIN_TOKEN: anyone who can \
             reach this port can read and write every memory"
        );
    }
    tracing::info!(
        %addr,
        backend = features.backend,
        embedding = features.embedding,
        "listening on {addr}"
    );

    server::serve(listener, store, settings.server, shutdown)
        .await
        .context("server stopped on an error")
        .map_err(Failure::Serving)?;
    tracing::info!("stopped");
    Ok(())
}

/// Registers SIGINT and SIGTERM handlers now (so a signal that arrives
/// while the server starts is not lost) and returns a future that completes
/// on the first of them.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("SIGINT received"),
                _ = terminate.recv() => tracing::info!("SIGTERM received"),
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("Ctrl-C received");
        })
    }
}
