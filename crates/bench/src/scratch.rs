//! The scratch database every run works in, and its removal.
//!
//! Its name carries the benchmark's process id (`memory_bench_<pid>_<secs>`),
//! so a later run can tell the leftovers of a run that was killed outright
//! (its process is gone) from a run still going, and drop only the former.

use anyhow::{Context, Result};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use std::str::FromStr;
use std::time::Duration;

/// Prefix of every scratch database name.
pub const SCRATCH_PREFIX: &str = "memory_bench_";

/// A database created for one run; call [`ScratchDb::drop_database`] at the end.
#[derive(Debug, Clone)]
pub struct ScratchDb {
    admin_url: url::Url,
    name: String,
    url: url::Url,
}

impl ScratchDb {
    /// Creates a fresh database on the server of `admin_url`.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached or refuses `CREATE DATABASE`.
    pub async fn create(admin_url: &url::Url) -> Result<ScratchDb> {
        let mut admin = connect_admin(admin_url).await?;
        drop_stale(&mut admin).await;
        let secs = chrono::Utc::now().timestamp();
        let name = format!("{SCRATCH_PREFIX}{}_{secs}", std::process::id());
        sqlx::query(&format!(
            "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'"
        ))
        .execute(&mut admin)
        .await
        .with_context(|| format!("failed to create scratch database {name}"))?;
        let _ = admin.close().await;
        let mut url = admin_url.clone();
        url.set_path(&format!("/{name}"));
        Ok(ScratchDb {
            admin_url: admin_url.clone(),
            name,
            url,
        })
    }

    /// Database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// URL of the scratch database (may hold the admin password; never print it).
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// A pool on the scratch database.
    ///
    /// # Errors
    ///
    /// When the database cannot be reached.
    pub async fn pool(&self, max_connections: u32) -> Result<PgPool> {
        let opts = connect_options(&self.url)?;
        PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts)
            .await
            .with_context(|| format!("failed to connect to scratch database {}", self.name))
    }

    /// Drops the database, ending any session still connected to it.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached or refuses the drop.
    pub async fn drop_database(&self) -> Result<()> {
        let mut admin = connect_admin(&self.admin_url).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await
        .with_context(|| format!("failed to drop scratch database {}", self.name))?;
        let _ = admin.close().await;
        Ok(())
    }
}

/// Connect options for `url`, with statement logging off (the benchmark
/// issues millions of statements).
///
/// # Errors
///
/// When the URL is not a usable Postgres URL.
pub fn connect_options(url: &url::Url) -> Result<PgConnectOptions> {
    let opts = PgConnectOptions::from_str(url.as_str())
        .context("the database URL is not a valid Postgres URL")?;
    Ok(opts.disable_statement_logging())
}

async fn connect_admin(admin_url: &url::Url) -> Result<PgConnection> {
    let opts = connect_options(admin_url)?;
    tokio::time::timeout(Duration::from_secs(15), PgConnection::connect_with(&opts))
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "timed out connecting to {}",
                crate::options::redact_url(admin_url)
            )
        })?
        .with_context(|| {
            format!(
                "cannot connect to PostgreSQL at {} (set --database-url)",
                crate::options::redact_url(admin_url)
            )
        })
}

/// Drops scratch databases left by runs whose process no longer exists.
/// Failures are ignored: this is housekeeping, not the benchmark.
async fn drop_stale(admin: &mut PgConnection) {
    let names: Vec<String> =
        match sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE $1")
            .bind(format!("{SCRATCH_PREFIX}%"))
            .fetch_all(&mut *admin)
            .await
        {
            Ok(names) => names,
            Err(_) => return,
        };
    for name in names {
        let Some(pid) = owner_pid(&name) else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        eprintln!("memory-bench: dropping {name}, left by an earlier run that did not finish");
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut *admin)
            .await;
    }
}

/// The process id embedded in a scratch database name.
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(SCRATCH_PREFIX)?;
    let (pid, secs) = rest.split_once('_')?;
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_is_read_from_scratch_names_only() {
        assert_eq!(owner_pid("memory_bench_1234_1700000000"), Some(1234));
        assert_eq!(owner_pid("memory_bench_x_1"), None);
        assert_eq!(owner_pid("memory_bench_12"), None);
        assert_eq!(owner_pid("other_1234_1"), None);
    }
}
