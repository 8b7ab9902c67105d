//! One freshly created database per test, dropped again when the test ends.
//!
//! Database names carry the creating process id (`memtest_<pid>_<random>`),
//! so a later process can drop the databases of test processes that were
//! killed before their `Drop` ran.

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor};
use std::str::FromStr;
use std::time::Duration;
use url::Url;

/// Prefix of every database this harness creates.
const NAME_PREFIX: &str = "memtest_";

/// How long to wait for the admin connection before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A database created for one test. Dropping it drops the database
/// (best effort, with `WITH (FORCE)` so open connections do not block it).
#[derive(Debug)]
pub struct TestDb {
    name: String,
    url: String,
    admin_url: String,
}

impl TestDb {
    /// Creates a uniquely named database on the server behind `admin_url`.
    pub(crate) async fn create(admin_url: &str) -> Result<TestDb, String> {
        let mut admin = admin_connect(admin_url).await?;
        sweep_orphans(&mut admin, admin_url).await;
        let name = format!(
            "{NAME_PREFIX}{}_{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        // template0: nobody ever connects to it, so concurrent creates from
        // many test processes cannot trip over "source database is being
        // accessed by other users".
        admin
            .execute(
                format!("CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'").as_str(),
            )
            .await
            .map_err(|e| {
                format!(
                    "CREATE DATABASE {name} on {} failed: {e}",
                    redact(admin_url)
                )
            })?;
        let _ = admin.close().await;
        let url = with_database(admin_url, &name)?;
        Ok(TestDb {
            name,
            url,
            admin_url: admin_url.to_string(),
        })
    }

    /// URL of this test's database (`postgres://...`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Name of this test's database.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A small connection pool on this test's database.
    ///
    /// # Panics
    ///
    /// When the database cannot be reached.
    pub async fn connect(&self) -> PgPool {
        let options = match PgConnectOptions::from_str(&self.url) {
            Ok(o) => o.disable_statement_logging(),
            Err(e) => panic!(
                "memory-testkit: bad test database URL {}: {e}",
                redact(&self.url)
            ),
        };
        match PgPoolOptions::new()
            .max_connections(5)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await
        {
            Ok(pool) => pool,
            Err(e) => panic!(
                "memory-testkit: cannot connect to test database {}: {e}",
                redact(&self.url)
            ),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop cannot await, and may run inside a runtime that must not be
        // blocked on itself: do the work on a fresh thread with its own
        // runtime and wait for it, so the database is gone when the test
        // process exits.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let worker = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut admin) = admin_connect(&admin_url).await {
                    let _ = drop_database(&mut admin, &name).await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = worker.join();
    }
}

/// Connects to the admin database with a timeout and without statement logs.
pub(crate) async fn admin_connect(admin_url: &str) -> Result<PgConnection, String> {
    let options = PgConnectOptions::from_str(admin_url)
        .map_err(|e| format!("bad admin URL {}: {e}", redact(admin_url)))?
        .disable_statement_logging();
    match tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(format!("cannot connect to {}: {e}", redact(admin_url))),
        Err(_) => Err(format!(
            "cannot connect to {}: no answer within {CONNECT_TIMEOUT:?}",
            redact(admin_url)
        )),
    }
}

async fn drop_database(admin: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    admin
        .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
        .await
        .map(|_| ())
}

/// Drops, once per process and server, the databases left behind by test
/// processes that no longer exist. Only for servers on this machine, where
/// the process ids mean something.
async fn sweep_orphans(admin: &mut PgConnection, admin_url: &str) {
    let local = Url::parse(admin_url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| matches!(h, "127.0.0.1" | "localhost" | "::1" | "[::1]"))
        })
        .unwrap_or(false);
    if !local || !first_sweep_of(admin_url) {
        return;
    }
    let names: Vec<String> = match sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname LIKE 'memtest\\_%'",
    )
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
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = drop_database(admin, &name).await;
        }
    }
}

/// True the first time this process sees `admin_url`.
fn first_sweep_of(admin_url: &str) -> bool {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    seen.get_or_insert_with(HashSet::new)
        .insert(admin_url.to_string())
}

/// The process id encoded in a harness database name.
fn owner_pid(name: &str) -> Option<u32> {
    name.strip_prefix(NAME_PREFIX)?
        .split('_')
        .next()?
        .parse()
        .ok()
}

/// `admin_url` with its database path replaced by `name`.
pub(crate) fn with_database(admin_url: &str, name: &str) -> Result<String, String> {
    let mut url =
        Url::parse(admin_url).map_err(|e| format!("bad admin URL {}: {e}", redact(admin_url)))?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

/// `url` with any password replaced, for messages.
pub(crate) fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<unparsable URL>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_reads_the_pid_from_a_harness_name() {
        assert_eq!(owner_pid("memtest_1234_abcdef012345"), Some(1234));
        assert_eq!(owner_pid("other_1234_abc"), None);
        assert_eq!(owner_pid("memtest_x_abc"), None);
    }

    #[test]
    fn with_database_replaces_only_the_path() {
        assert_eq!(
            with_database(
                "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
                "db1"
            )
            .unwrap(),
            "postgres://postgres@127.0.0.1:5432/db1?sslmode=disable"
        );
    }

    #[test]
    fn redact_hides_passwords() {
        let shown = redact("postgres://u:secret@h:1/db");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("u:***@h"), "{shown}");
    }
}
