//! Running the HTTP layer: bind, serve until a shutdown signal, sweep
//! expired rows in the background, and stop gracefully (in-flight requests
//! finish, then the call returns).
//!
//! [`serve`] takes a bound listener and a shutdown future so that the binary
//! and the tests drive the same code; [`spawn`] is the tests' shortcut.

use crate::http::{self, HttpOptions};
use crate::store::Store;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// Settings of a running server that are not the store's.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// When set, every route but `/v1/health` needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Serve plain v1: no extension advertised or routed.
    pub v1_only: bool,
    /// How often expired memories and namespaces are deleted; zero disables
    /// the sweep (expired rows are still never returned).
    pub sweep_interval: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            token: None,
            v1_only: false,
            sweep_interval: Duration::from_secs(30),
        }
    }
}

/// Serves the contract on `listener` until `shutdown` completes, then stops
/// accepting, lets in-flight requests finish and returns.
///
/// # Errors
///
/// Returns the I/O error that stopped the accept loop.
pub async fn serve(
    listener: TcpListener,
    store: Arc<dyn Store>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = http::router(
        store.clone(),
        HttpOptions {
            token: config.token.clone().filter(|t| !t.is_empty()),
            v1_only: config.v1_only,
        },
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let sweeper = tokio::spawn(sweep_periodically(store, config.sweep_interval, stop_rx));
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections, finishing in-flight requests");
        })
        .await;
    let _ = stop_tx.send(true);
    let _ = sweeper.await;
    result
}

/// Calls [`Store::sweep_expired`] every `interval` until `stop` turns true.
async fn sweep_periodically(
    store: Arc<dyn Store>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    if interval.is_zero() {
        return;
    }
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick completes at once; skip it so a sweep never races startup.
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match store.sweep_expired(chrono::Utc::now()).await {
            Ok(report) if report.memories > 0 || report.namespaces > 0 => tracing::info!(
                memories = report.memories,
                namespaces = report.namespaces,
                "sweep removed expired rows"
            ),
            Ok(_) => tracing::debug!("sweep found nothing expired"),
            Err(e) => tracing::warn!(error = %e, "sweep failed; retrying at the next interval"),
        }
    }
}

/// A server running in a background task on `127.0.0.1`, for tests and
/// embedding. Dropping it (or calling [`SpawnedServer::shutdown`]) stops it.
pub struct SpawnedServer {
    url: String,
    addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl SpawnedServer {
    /// Base URL such as `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bound address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Stops accepting, waits for in-flight requests and for the task.
    ///
    /// # Errors
    ///
    /// Returns the server's I/O error, if it stopped on one.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.unwrap_or_else(|e| Err(std::io::Error::other(e))),
            None => Ok(()),
        }
    }
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Binds `127.0.0.1:0` and serves `store` in a background task.
///
/// # Errors
///
/// Returns the error of binding the listener.
pub async fn spawn(store: Arc<dyn Store>, config: ServerConfig) -> std::io::Result<SpawnedServer> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, store, config, async move {
        // A dropped sender also means stop.
        let _ = stop_rx.await;
    }));
    Ok(SpawnedServer {
        url: format!("http://{addr}"),
        addr,
        stop: Some(stop_tx),
        task: Some(task),
    })
}
