//! The target plugin: its client, what it advertises, and namespace creation.
//!
//! Capabilities are read once from `/v1/health`; every extension is used only
//! when advertised. Namespaces are created at most once per run, lazily, the
//! first time a write needs them; where the plugin can `GET` a namespace
//! (`list`), one that exists is left alone so its metadata and expiry stay.

use memory_client::{Client, ClientConfig, ClientError};
use memory_contract::{capability, ErrorCode, NamespaceKind, NamespaceUpsert};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;
use url::Url;

/// Per-request timeout when `MEMORY_PLUGIN_TIMEOUT` is not set: a 4 MiB batch
/// on a busy plugin takes longer than an interactive call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// What the plugin advertises, as the backfill uses it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Capabilities {
    pub batch: bool,
    pub list: bool,
    pub scan: bool,
    pub checksum: bool,
    pub created_at: bool,
    pub embedding: bool,
    pub fts: bool,
}

/// A connected plugin.
#[derive(Clone, Debug)]
pub struct Plugin {
    pub client: Client,
    pub caps: Capabilities,
    /// Base URL for messages, password masked.
    pub display: String,
}

/// Failure to reach the plugin at start.
#[derive(Debug, thiserror::Error)]
pub enum PluginConnectError {
    #[error("MEMORY_PLUGIN_URL: {0}")]
    Config(String),
    #[error("plugin at {url} is unreachable: {cause}")]
    Unreachable { url: String, cause: String },
}

impl Plugin {
    /// Builds the client (token and timeout from `MEMORY_PLUGIN_TOKEN` and
    /// `MEMORY_PLUGIN_TIMEOUT`) and reads the plugin's capabilities.
    ///
    /// # Errors
    ///
    /// [`PluginConnectError`] when the configuration is unusable or the
    /// plugin does not answer a healthy `/v1/health`.
    pub async fn connect(url: &Url) -> Result<Plugin, PluginConnectError> {
        let display = crate::config::redact_url(url);
        let env = |name: &str| std::env::var(name).ok();
        let mut config = ClientConfig::from_lookup(|name| {
            if name == memory_client::ENV_URL {
                Some(url.to_string())
            } else {
                env(name)
            }
        })
        .map_err(|e| PluginConnectError::Config(e.to_string()))?;
        if env(memory_client::ENV_TIMEOUT).is_none_or_empty() {
            config = config.timeout(DEFAULT_TIMEOUT);
        }
        let client = Client::new(config).map_err(|e| PluginConnectError::Config(e.to_string()))?;
        Self::from_client(client, display).await
    }

    /// Reads capabilities through an existing client.
    ///
    /// # Errors
    ///
    /// [`PluginConnectError::Unreachable`] when `/v1/health` fails.
    pub async fn from_client(
        client: Client,
        display: String,
    ) -> Result<Plugin, PluginConnectError> {
        let health = client
            .health()
            .await
            .map_err(|e| PluginConnectError::Unreachable {
                url: display.clone(),
                cause: one_line(&e),
            })?;
        if health.status != "ok" {
            return Err(PluginConnectError::Unreachable {
                url: display,
                cause: format!("health status is {:?}", health.status),
            });
        }
        let caps = Capabilities {
            batch: health.supports(capability::BATCH),
            list: health.supports(capability::LIST),
            scan: health.supports(capability::SCAN),
            checksum: health.supports(capability::CHECKSUM),
            created_at: health.supports(capability::CREATED_AT),
            embedding: health.supports(capability::EMBEDDING),
            fts: health.supports(capability::FTS),
        };
        Ok(Plugin {
            client,
            caps,
            display,
        })
    }
}

trait EmptyOpt {
    fn is_none_or_empty(&self) -> bool;
}

impl EmptyOpt for Option<String> {
    fn is_none_or_empty(&self) -> bool {
        self.as_deref().map(|s| s.trim().is_empty()).unwrap_or(true)
    }
}

/// A client error on one line.
pub fn one_line(e: &ClientError) -> String {
    e.to_string().replace('\n', " ")
}

/// True for failures that may pass if tried later (the plugin or the network
/// is down); false for answers that will not change (bad request, conflict).
pub fn is_transient(e: &ClientError) -> bool {
    match e {
        ClientError::Transport(_) | ClientError::Timeout | ClientError::CircuitOpen => true,
        ClientError::Api { status, .. } => *status >= 500 || *status == 429,
        ClientError::Decode { .. } => true,
        ClientError::Config(_) | ClientError::Validation(_) | ClientError::Unsupported(_) => false,
    }
}

/// True for an error code a batch item may recover from on a later try.
pub fn is_transient_code(code: &ErrorCode) -> bool {
    matches!(code, ErrorCode::Internal | ErrorCode::Unavailable)
}

/// How a namespace came to exist in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    Created,
    Existing,
    UpsertedBlind,
}

/// Creates namespaces once per run; concurrent callers of the same name wait
/// for the first. A failed attempt is not remembered, so a later batch tries
/// again.
#[derive(Default)]
pub struct NamespaceEnsurer {
    cells: Mutex<HashMap<String, Arc<OnceCell<Ensured>>>>,
    pub created: AtomicU64,
    pub existing: AtomicU64,
    pub upserted_blind: AtomicU64,
}

impl NamespaceEnsurer {
    /// Makes sure `name` exists.
    ///
    /// # Errors
    ///
    /// The client error of the GET or PUT.
    pub async fn ensure(
        &self,
        plugin: &Plugin,
        name: &str,
        kind: NamespaceKind,
    ) -> Result<Ensured, ClientError> {
        let cell = {
            let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
            cells.entry(name.to_string()).or_default().clone()
        };
        let outcome = cell
            .get_or_try_init(|| async {
                if plugin.caps.list {
                    if plugin.client.get_namespace(name).await?.is_some() {
                        self.existing.fetch_add(1, Ordering::Relaxed);
                        return Ok::<Ensured, ClientError>(Ensured::Existing);
                    }
                    upsert(plugin, name, kind).await?;
                    self.created.fetch_add(1, Ordering::Relaxed);
                    Ok(Ensured::Created)
                } else {
                    upsert(plugin, name, kind).await?;
                    self.upserted_blind.fetch_add(1, Ordering::Relaxed);
                    Ok(Ensured::UpsertedBlind)
                }
            })
            .await?;
        Ok(*outcome)
    }
}

async fn upsert(plugin: &Plugin, name: &str, kind: NamespaceKind) -> Result<(), ClientError> {
    plugin
        .client
        .upsert_namespace(
            name,
            &NamespaceUpsert {
                kind,
                expires_at: None,
                metadata: None,
            },
        )
        .await
        .map(drop)
}
