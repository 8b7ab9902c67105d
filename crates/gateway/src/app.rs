//! Configuration and assembly: settings from flags and environment, the
//! plugin client (or an embedded SQLite plugin), the workspace directory, the
//! signing secret, and the HTTP server.

use crate::auth::Secret;
use crate::directory::{redact_url, Directory, DEFAULT_DATABASE_URL};
use crate::http::{router, AppState};
use crate::limit::{RateLimit, RateLimiter};
use crate::service::{EmbedUse, Gateway};
use anyhow::Context as _;
use memory_client::{BreakerPolicy, Client, ClientConfig};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Where the embedded plugin keeps its memories when no plugin URL is set.
pub const DEFAULT_STORE_URL: &str = "sqlite:./memory-gateway-memories.db";
/// Default listen address.
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:9200";
/// Name of the generated secret's file, beside the gateway's database.
pub const SECRET_FILE: &str = "memory-gateway.secret";

/// Settings shared by every command.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Base URL of the Memory Plugin v1 server. Unset: an embedded SQLite
    /// plugin in this process (see --store-url).
    #[arg(long, env = "MEMORY_PLUGIN_URL", global = true)]
    pub plugin_url: Option<String>,
    /// Bearer token the plugin requires, if any.
    #[arg(
        long,
        env = "MEMORY_PLUGIN_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub plugin_token: Option<String>,
    /// Per-attempt timeout of plugin requests (`2`, `2s`, `500ms`, `1m`).
    #[arg(long, env = "MEMORY_PLUGIN_TIMEOUT", default_value = "2s", global = true, value_parser = parse_duration)]
    pub plugin_timeout: Duration,
    /// The embedded plugin's database, used only when no plugin URL is set.
    #[arg(long, env = "MEMORY_GATEWAY_STORE_URL", default_value = DEFAULT_STORE_URL, global = true)]
    pub store_url: String,
    /// The platform's Postgres (its `workspaces` table is read, never
    /// written), or `sqlite:PATH` for the gateway's own workspace table.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true, hide_env_values = true, hide_default_value = false)]
    pub database_url: String,
    /// Address the HTTP server listens on.
    #[arg(long, env = "MEMORY_GATEWAY_LISTEN_ADDR", default_value = DEFAULT_LISTEN_ADDR, global = true)]
    pub listen_addr: SocketAddr,
    /// HS256 secret that signs tokens (at least 16 characters). Unset: a
    /// random one kept in memory-gateway.secret beside the gateway's
    /// database (mode 0600), created on first use.
    #[arg(
        long,
        env = "MEMORY_GATEWAY_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub secret: Option<String>,
    /// Tool calls per second each workspace may sustain; 0 turns the limit off.
    #[arg(
        long,
        env = "MEMORY_GATEWAY_RATE_LIMIT",
        default_value_t = 50.0,
        global = true
    )]
    pub rate_limit: f64,
    /// Tool calls a workspace may make in a burst.
    #[arg(
        long,
        env = "MEMORY_GATEWAY_RATE_BURST",
        default_value_t = 200.0,
        global = true
    )]
    pub rate_burst: f64,
    /// Embeddings for recall by meaning: `local` (all-MiniLM-L6-v2 in this
    /// process), `remote` (an OpenAI-compatible endpoint) or `off`. Unset:
    /// remote when --embed-url is set, else local when the model files are
    /// found, else off (one log line says how to turn it on).
    #[arg(long, env = "MEMORY_EMBED", global = true)]
    pub embed: Option<String>,
    /// Directory holding the local model's model.safetensors,
    /// tokenizer.json and config.json.
    #[arg(long, env = "MEMORY_EMBED_MODEL_DIR", global = true)]
    pub embed_model_dir: Option<PathBuf>,
    /// Threads the local model may use (default: the cores, at most 4).
    #[arg(long, env = "MEMORY_EMBED_THREADS", global = true)]
    pub embed_threads: Option<String>,
    /// The remote embedding endpoint (OpenAI-compatible `/v1/embeddings`).
    #[arg(long, env = "MEMORY_EMBED_URL", global = true)]
    pub embed_url: Option<String>,
    /// The `model` the remote endpoint is asked for.
    #[arg(long, env = "MEMORY_EMBED_MODEL", global = true)]
    pub embed_model: Option<String>,
    /// Bearer token of the remote endpoint (never logged).
    #[arg(
        long,
        env = "MEMORY_EMBED_API_KEY",
        global = true,
        hide_env_values = true
    )]
    pub embed_api_key: Option<String>,
    /// The dimension the remote model must return (default: the plugin's).
    #[arg(long, env = "MEMORY_EMBED_DIMENSION", global = true)]
    pub embed_dimension: Option<String>,
    /// Log filter (tracing EnvFilter syntax, e.g. `info,memory_gateway=debug`).
    #[arg(
        long,
        env = "MEMORY_GATEWAY_LOG",
        default_value = "info",
        global = true
    )]
    pub log: String,
}

/// Parses `2`, `2s`, `500ms` or `1m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || format!("bad duration {t:?}: use e.g. 2, 2s, 500ms or 1m");
    let (n, scale_ms) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60_000)
    } else {
        (t, 1000)
    };
    let n: u64 = n.trim().parse().map_err(|_| bad())?;
    if n == 0 {
        return Err(bad());
    }
    Ok(Duration::from_millis(n.saturating_mul(scale_ms)))
}

/// A plugin the gateway runs itself, kept alive with the gateway.
pub struct EmbeddedPlugin {
    server: memory_plugin::server::SpawnedServer,
}

impl EmbeddedPlugin {
    /// The embedded plugin's URL (loopback).
    pub fn url(&self) -> &str {
        self.server.url()
    }
}

/// A gateway ready to serve, with what it owns.
pub struct Assembled {
    pub gateway: Arc<Gateway>,
    pub embedded: Option<EmbeddedPlugin>,
}

impl Settings {
    /// The signing secret: configured, or kept in a file beside the
    /// gateway's database (created on first use).
    ///
    /// # Errors
    ///
    /// A secret that is too short, or a file that cannot be read or made.
    pub fn signing_secret(&self, directory: &Directory) -> anyhow::Result<Secret> {
        if let Some(text) = self.secret.as_deref().filter(|s| !s.trim().is_empty()) {
            return Secret::from_text(text).map_err(anyhow::Error::msg);
        }
        Secret::load_or_create(&self.secret_file(directory)).map_err(anyhow::Error::msg)
    }

    /// Where a generated secret is kept.
    pub fn secret_file(&self, directory: &Directory) -> PathBuf {
        let dir = directory
            .sqlite_path()
            .and_then(|p| p.parent())
            .map(PathBuf::from)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        dir.join(SECRET_FILE)
    }

    /// Opens the workspace directory.
    ///
    /// # Errors
    ///
    /// A bad or unreachable `DATABASE_URL`.
    pub async fn directory(&self) -> anyhow::Result<Directory> {
        Directory::connect(&self.database_url)
            .await
            .with_context(|| {
                format!(
                    "cannot open the workspace database {}",
                    redact_url(&self.database_url)
                )
            })
    }

    /// The embedding configuration: these settings (flags or their
    /// `MEMORY_EMBED*` variables), the environment for the rest (where the
    /// model files are looked for).
    ///
    /// # Errors
    ///
    /// A bad value, naming its variable.
    pub fn embed_config(&self) -> anyhow::Result<memory_embed::EmbedConfig> {
        let set = |name: &str| -> Option<String> {
            match name {
                "MEMORY_EMBED" => self.embed.clone(),
                "MEMORY_EMBED_MODEL_DIR" => self
                    .embed_model_dir
                    .as_ref()
                    .map(|d| d.display().to_string()),
                "MEMORY_EMBED_THREADS" => self.embed_threads.clone(),
                "MEMORY_EMBED_URL" => self.embed_url.clone(),
                "MEMORY_EMBED_MODEL" => self.embed_model.clone(),
                "MEMORY_EMBED_API_KEY" => self.embed_api_key.clone(),
                "MEMORY_EMBED_DIMENSION" => self.embed_dimension.clone(),
                other => std::env::var(other).ok(),
            }
        };
        memory_embed::EmbedConfig::from_lookup(set).map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Builds the embedder the settings ask for (`None`: off), logging
    /// which one it is, or the one line saying how to turn it on.
    ///
    /// # Errors
    ///
    /// A bad setting, or model files that cannot be loaded.
    pub async fn embedder(&self) -> anyhow::Result<Option<Arc<dyn memory_embed::Embedder>>> {
        let config = self.embed_config()?;
        if let Some(notice) = &config.notice {
            tracing::info!("{notice}");
            return Ok(None);
        }
        let shown = config.describe();
        let embedder = tokio::task::spawn_blocking(move || memory_embed::build_embedder(&config))
            .await
            .context("the embedder's loader stopped")?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        match &embedder {
            Some(e) => {
                tracing::info!(embedder = %e.describe(), "{shown}: memories and queries are embedded for recall by meaning")
            }
            None => tracing::info!("{shown} (MEMORY_EMBED=off): recall by keywords only"),
        }
        Ok(embedder)
    }

    /// Connects everything: directory, plugin (or the embedded one).
    ///
    /// # Errors
    ///
    /// A bad setting, an unreachable database, or an embedded store that
    /// cannot be opened. An unreachable plugin is not an error: tools say
    /// the store is unavailable until it answers.
    pub async fn assemble(&self) -> anyhow::Result<Assembled> {
        let directory = self.directory().await?;
        let embedder = self.embedder().await?;
        let (plugin_url, embedded) = match self
            .plugin_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        {
            Some(url) => (url.to_string(), None),
            None => {
                // The store's own default dimension: that of the embeddings the
                // file holds, else the local model's (a mismatch is logged).
                let options = memory_plugin::store::OpenOptions::default();
                let store = memory_plugin::store::open(Some(&self.store_url), &options)
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "cannot open the embedded store {}: {e}",
                            redact_url(&self.store_url)
                        )
                    })?;
                let server = memory_plugin::server::spawn(
                    store,
                    memory_plugin::server::ServerConfig::default(),
                )
                .await
                .context("cannot start the embedded plugin")?;
                tracing::info!(store = %redact_url(&self.store_url), "no MEMORY_PLUGIN_URL: memories kept by an embedded SQLite plugin");
                (server.url().to_string(), Some(EmbeddedPlugin { server }))
            }
        };
        let mut config = ClientConfig::new(plugin_url.clone())
            .timeout(self.plugin_timeout)
            // Fail fast while the plugin is down, and probe again soon so
            // the gateway recovers within seconds of its return.
            .breaker(BreakerPolicy {
                failure_threshold: 3,
                open_for: Duration::from_secs(5),
            });
        if let Some(token) = self.plugin_token.as_deref().filter(|t| !t.is_empty()) {
            config = config.token(token);
        }
        let plugin = Client::new(config).map_err(|e| anyhow::anyhow!("{e}"))?;
        match plugin.refresh_capabilities().await {
            Ok(caps) => {
                tracing::info!(plugin = %redact_url(&plugin_url), capabilities = ?caps, "plugin answered")
            }
            Err(e) => {
                tracing::warn!(plugin = %redact_url(&plugin_url), error = %e, "plugin not answering yet; tools report the store unavailable until it does")
            }
        }
        let limiter = RateLimiter::new(RateLimit {
            per_second: self.rate_limit.max(0.0),
            burst: self.rate_burst.max(1.0),
        });
        let gateway = Gateway::new(directory, plugin, limiter).with_embedder(embedder);
        if gateway.embedder().is_some() {
            // Logs the dimension mismatch now, when the plugin answered.
            match gateway.embed_use_now() {
                EmbedUse::Off if gateway.plugin().capabilities().is_some() && !gateway.plugin().supports("embedding") => {
                    tracing::info!("the plugin does not advertise `embedding`: memories are stored without embeddings and recalled by keywords")
                }
                EmbedUse::Off => {}
                EmbedUse::Semantic => tracing::info!("the plugin takes embeddings (no `hybrid`): a recall with a query is ranked by its embedding"),
                EmbedUse::Hybrid => tracing::info!("the plugin takes embeddings and `hybrid`: a recall with a query ranks by keywords and meaning together"),
            }
        }
        Ok(Assembled {
            gateway: Arc::new(gateway),
            embedded,
        })
    }
}

/// Serves the HTTP surface on `listener` until `shutdown` completes.
///
/// # Errors
///
/// The I/O error that stopped the server.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stop = CancellationToken::new();
    let app = router(state, stop.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            stop.cancel();
        })
        .await
}

/// A gateway serving on an ephemeral loopback port in a background task
/// (tests, benchmarks). Dropping it stops the server.
pub struct SpawnedGateway {
    pub url: String,
    pub state: AppState,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl SpawnedGateway {
    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SpawnedGateway {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Binds `127.0.0.1:0` and serves `state` in a background task.
///
/// # Errors
///
/// The error of binding.
pub async fn spawn(state: AppState) -> std::io::Result<SpawnedGateway> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let signal = stop.clone();
    let task = tokio::spawn(serve(listener, state.clone(), async move {
        signal.cancelled().await
    }));
    Ok(SpawnedGateway {
        url: format!("http://{addr}"),
        state,
        stop,
        task: Some(task),
    })
}
