//! A private PostgreSQL cluster that one test owns and may stop and start,
//! for checking how a server behaves while its database is away.

use crate::cluster;
use std::path::{Path, PathBuf};

/// A private cluster (PostgreSQL 18 binaries) on a free port of 127.0.0.1.
/// It is stopped and its files removed when dropped.
#[derive(Debug)]
pub struct StoppableCluster {
    bin: PathBuf,
    root: PathBuf,
    port: u16,
    url: String,
    running: bool,
}

impl StoppableCluster {
    /// Creates and starts a fresh cluster.
    ///
    /// # Panics
    ///
    /// When no cluster can be made; the message says what to install or set.
    pub async fn start() -> StoppableCluster {
        match tokio::task::spawn_blocking(create).await {
            Ok(Ok(cluster)) => cluster,
            Ok(Err(e)) => panic!("memory-testkit: no stoppable cluster: {e}"),
            Err(e) => panic!("memory-testkit: stoppable cluster setup panicked: {e}"),
        }
    }

    /// URL of the cluster's `postgres` database. It stays the same across
    /// [`stop`](Self::stop) and [`start_again`](Self::start_again).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The cluster's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// True while the server runs.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Stops the server (fast shutdown: open connections are cut). Nothing
    /// answers on the port afterwards until [`start_again`](Self::start_again).
    ///
    /// # Panics
    ///
    /// When `pg_ctl stop` fails.
    pub async fn stop(&mut self) {
        if !self.running {
            return;
        }
        let (bin, root) = (self.bin.clone(), self.root.clone());
        let result = tokio::task::spawn_blocking(move || {
            cluster::stop_cluster(&bin, &root, &root.join("data"), "fast")
        })
        .await;
        match result {
            Ok(Ok(())) => self.running = false,
            Ok(Err(e)) => panic!("memory-testkit: stopping the cluster failed: {e}"),
            Err(e) => panic!("memory-testkit: stopping the cluster panicked: {e}"),
        }
    }

    /// Starts the server again on the same port, with the same data.
    ///
    /// # Panics
    ///
    /// When the server does not come up.
    pub async fn start_again(&mut self) {
        if self.running {
            return;
        }
        let (bin, root, port) = (self.bin.clone(), self.root.clone(), self.port);
        let result = tokio::task::spawn_blocking(move || start_in(&bin, &root, port)).await;
        match result {
            Ok(Ok(())) => self.running = true,
            Ok(Err(e)) => panic!("memory-testkit: restarting the cluster failed: {e}"),
            Err(e) => panic!("memory-testkit: restarting the cluster panicked: {e}"),
        }
    }
}

impl Drop for StoppableCluster {
    fn drop(&mut self) {
        if self.running {
            let _ =
                cluster::stop_cluster(&self.bin, &self.root, &self.root.join("data"), "immediate");
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn create() -> Result<StoppableCluster, String> {
    let bin = cluster::pg18_binaries()?;
    let root = std::env::temp_dir().join(format!(
        "memory-testkit-cluster-{}",
        uuid::Uuid::new_v4().simple()
    ));
    cluster::prepare_dir(&root)?;
    // From here on the directory is ours: build the value first so that
    // Drop cleans up whatever fails next.
    let mut cluster = StoppableCluster {
        bin,
        root,
        port: 0,
        url: String::new(),
        running: false,
    };
    cluster::init_cluster(&cluster.bin, &cluster.root, &cluster.root.join("data"))?;
    let mut last_error = String::new();
    for _ in 0..3 {
        let port = cluster::free_port()?;
        match start_in(&cluster.bin, &cluster.root, port) {
            Ok(()) => {
                cluster.port = port;
                cluster.url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
                cluster.running = true;
                return Ok(cluster);
            }
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

fn start_in(bin: &Path, root: &Path, port: u16) -> Result<(), String> {
    cluster::start_cluster(
        bin,
        root,
        &root.join("data"),
        &root.join("postgres.log"),
        port,
    )
}
