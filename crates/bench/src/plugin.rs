//! The plugin under test: a `memory-plugin` child process, and the few HTTP
//! calls the benchmark makes to it (plain `reqwest` with the contract's wire
//! types, so no retry or breaker logic sits between the load and the server).

use crate::child::{ChildExit, MeasuredChild};
use anyhow::{bail, Context, Result};
use memory_contract::{
    BatchItemResult, BatchRequest, BatchResponse, Health, MemoryWrite, NamespaceKind,
    NamespaceUpsert, SearchRequest, SearchResponse,
};
use std::path::Path;
use std::time::{Duration, Instant};

/// A running plugin server.
pub struct PluginProcess {
    child: MeasuredChild,
    base_url: String,
    http: reqwest::Client,
}

impl PluginProcess {
    /// Starts `memory-plugin` on a free local port with `database_url` and
    /// the extra `env`, and waits until `/v1/health` answers 200.
    ///
    /// # Errors
    ///
    /// When it cannot start, exits, or is not healthy within a minute; the
    /// message carries the end of its stderr.
    pub async fn start(
        label: &str,
        binary: &Path,
        database_url: &str,
        env: &[(&str, String)],
        log_dir: &Path,
    ) -> Result<PluginProcess> {
        let port = free_port()?;
        let mut all_env = vec![
            ("MEMORY_PLUGIN_DATABASE_URL", database_url.to_string()),
            ("MEMORY_PLUGIN_LISTEN_ADDR", format!("127.0.0.1:{port}")),
            ("MEMORY_PLUGIN_LOG", "warn".to_string()),
        ];
        all_env.extend(env.iter().cloned());
        Self::start_server(label, binary, port, &all_env, log_dir).await
    }

    /// Starts `memory-gateway` on a free local port with the extra `env`
    /// and waits until its `/v1/health` answers 200.
    ///
    /// # Errors
    ///
    /// As [`PluginProcess::start`].
    pub async fn start_gateway(
        label: &str,
        binary: &Path,
        env: &[(&str, String)],
        log_dir: &Path,
    ) -> Result<PluginProcess> {
        let port = free_port()?;
        let mut all_env = vec![
            ("MEMORY_GATEWAY_LISTEN_ADDR", format!("127.0.0.1:{port}")),
            ("MEMORY_GATEWAY_LOG", "warn".to_string()),
        ];
        all_env.extend(env.iter().cloned());
        Self::start_server(label, binary, port, &all_env, log_dir).await
    }

    async fn start_server(
        label: &str,
        binary: &Path,
        port: u16,
        env: &[(&str, String)],
        log_dir: &Path,
    ) -> Result<PluginProcess> {
        let child = MeasuredChild::spawn(label, binary, &[], env, log_dir)
            .with_context(|| format!("failed to start {}", binary.display()))?;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .timeout(Duration::from_secs(120))
            .build()
            .context("failed to build the HTTP client")?;
        let mut plugin = PluginProcess {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            http,
        };
        plugin.wait_healthy(Duration::from_secs(60)).await?;
        Ok(plugin)
    }

    async fn wait_healthy(&mut self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(exit) = self.child.try_reap() {
                bail!(
                    "{} exited during start ({}): {}",
                    self.child.label(),
                    exit.describe(),
                    self.child.stderr_tail(2000)
                );
            }
            if let Ok(resp) = self.http.get(self.url("/v1/health")).send().await {
                if resp.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} was not healthy within {:?}: {}",
                    self.child.label(),
                    within,
                    self.child.stderr_tail(2000)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Base URL, like `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A cheap clonable handle for load tasks.
    pub fn handle(&self) -> PluginHttp {
        PluginHttp {
            base_url: self.base_url.clone(),
            http: self.http.clone(),
        }
    }

    /// Current peak resident memory, in bytes.
    pub fn sample_peak(&mut self) -> u64 {
        self.child.sample_peak()
    }

    /// Stops the server (SIGTERM, then SIGKILL after 15 s) and reports its exit.
    pub async fn stop(mut self) -> ChildExit {
        self.child.stop(Duration::from_secs(15)).await
    }

    /// End of the server's stderr, for error messages.
    pub fn stderr_tail(&self) -> String {
        self.child.stderr_tail(2000)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }
}

/// HTTP calls to a plugin.
#[derive(Clone)]
pub struct PluginHttp {
    base_url: String,
    http: reqwest::Client,
}

impl PluginHttp {
    /// Base URL, like `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The HTTP client (shared connection pool), for other servers of a run.
    pub fn http_client(&self) -> reqwest::Client {
        self.http.clone()
    }

    /// `GET /v1/health`.
    ///
    /// # Errors
    ///
    /// On a transport error or a non-2xx answer.
    pub async fn health(&self) -> Result<Health> {
        let resp = self
            .http
            .get(format!("{}/v1/health", self.base_url))
            .send()
            .await?;
        decode(resp).await
    }

    /// `PUT /v1/namespaces/{name}`.
    ///
    /// # Errors
    ///
    /// On a transport error or a non-2xx answer.
    pub async fn put_namespace(&self, name: &str, kind: NamespaceKind) -> Result<()> {
        let body = NamespaceUpsert {
            kind,
            expires_at: None,
            metadata: None,
        };
        let resp = self
            .http
            .put(format!("{}/v1/namespaces/{name}", self.base_url))
            .json(&body)
            .send()
            .await?;
        check(resp).await
    }

    /// `POST /v1/namespaces/{ns}/memories`.
    ///
    /// # Errors
    ///
    /// On a transport error or a non-2xx answer.
    pub async fn write(&self, namespace: &str, write: &MemoryWrite) -> Result<()> {
        let resp = self
            .http
            .post(format!(
                "{}/v1/namespaces/{namespace}/memories",
                self.base_url
            ))
            .json(write)
            .send()
            .await?;
        check(resp).await
    }

    /// `POST /v1/memories/batch`; fails when any item failed.
    ///
    /// # Errors
    ///
    /// On a transport error, a non-2xx answer or a failed item.
    pub async fn batch(&self, request: &BatchRequest) -> Result<()> {
        let resp = self
            .http
            .post(format!("{}/v1/memories/batch", self.base_url))
            .json(request)
            .send()
            .await?;
        let answer: BatchResponse = decode(resp).await?;
        if let Some(BatchItemResult::Err { error }) = answer
            .results
            .iter()
            .find(|r| matches!(r, BatchItemResult::Err { .. }))
        {
            bail!("batch item failed: {error}");
        }
        if answer.results.len() != request.writes.len() {
            bail!(
                "batch answered {} results for {} writes",
                answer.results.len(),
                request.writes.len()
            );
        }
        Ok(())
    }

    /// `POST /v1/search`; returns how many memories came back.
    ///
    /// # Errors
    ///
    /// On a transport error or a non-2xx answer.
    pub async fn search(&self, request: &SearchRequest) -> Result<usize> {
        let resp = self
            .http
            .post(format!("{}/v1/search", self.base_url))
            .json(request)
            .send()
            .await?;
        let answer: SearchResponse = decode(resp).await?;
        Ok(answer.memories.len())
    }
}

async fn check(resp: reqwest::Response) -> Result<()> {
    let status = resp.status();
    if status.is_success() {
        // Read the body so the connection goes back to the pool.
        let _ = resp.bytes().await;
        return Ok(());
    }
    let body = resp.text().await.unwrap_or_default();
    bail!("HTTP {status}: {}", truncate(&body, 300))
}

async fn decode<T: serde::de::DeserializeOwned>(resp: reqwest::Response) -> Result<T> {
    let status = resp.status();
    let body = resp.bytes().await?;
    if !status.is_success() {
        bail!(
            "HTTP {status}: {}",
            truncate(&String::from_utf8_lossy(&body), 300)
        );
    }
    serde_json::from_slice(&body).with_context(|| format!("cannot decode the HTTP {status} answer"))
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// A local TCP port that was free a moment ago.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("no free local port")?;
    Ok(listener.local_addr()?.port())
}
