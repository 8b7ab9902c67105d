//! The workspace directory: where the gateway reads the live workspace tree
//! on every call, and where it keeps its audit table.
//!
//! - Postgres (`DATABASE_URL=postgres://…`): the platform's own database.
//!   Its `workspaces` table is read, never written; the gateway creates only
//!   its audit table there.
//! - SQLite (the default, `sqlite:./memory-gateway.db`): the gateway's own
//!   file, holding a `workspaces` table managed with `memory-gateway
//!   workspace add|list|remove`, and the audit table.
//!
//! Either way one workspace's namespaces come from one recursive query over
//! its ancestors, walked by `memory-namespace`: the same rules as the
//! backfill, re-read on every call so that a re-parent or a removal applies
//! to the next one.

use memory_namespace::{WorkspaceAccess, WorkspaceTree, MAX_HOPS};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{PgPool, Row, SqlitePool};
use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

/// The default gateway database.
pub const DEFAULT_DATABASE_URL: &str = "sqlite:./memory-gateway.db";

/// A failure of the gateway's database.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("{0}")]
    Config(String),
    #[error("the workspace database is unavailable: {0}")]
    Unavailable(String),
}

impl From<sqlx::Error> for DirectoryError {
    fn from(e: sqlx::Error) -> Self {
        DirectoryError::Unavailable(e.to_string())
    }
}

/// One workspace as the directory lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorkspaceRow {
    pub id: Uuid,
    pub name: Option<String>,
    pub parent_id: Option<Uuid>,
    pub status: Option<String>,
}

#[derive(Debug, Clone)]
enum Backend {
    Postgres {
        pool: PgPool,
        has_status: bool,
        has_name: bool,
    },
    Sqlite {
        pool: SqlitePool,
        path: PathBuf,
    },
}

/// The live workspace tree and the audit table.
#[derive(Debug, Clone)]
pub struct Directory {
    backend: Backend,
}

/// `url` with any password replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

impl Directory {
    /// Connects to `url` (`postgres://`, `postgresql://` or `sqlite:PATH`),
    /// creating the SQLite file and its tables, or the audit table in
    /// Postgres, when missing.
    ///
    /// # Errors
    ///
    /// A bad URL, an unreachable database, or a Postgres database without a
    /// `workspaces` table.
    pub async fn connect(url: &str) -> Result<Self, DirectoryError> {
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("postgres" | "postgresql") => Self::connect_postgres(url).await,
            Some("sqlite") => Self::open_sqlite(url).await,
            _ => Err(DirectoryError::Config(format!(
                "DATABASE_URL {:?} must start with postgres://, postgresql:// or sqlite:",
                redact_url(url)
            ))),
        }
    }

    async fn connect_postgres(url: &str) -> Result<Self, DirectoryError> {
        let options = sqlx::postgres::PgConnectOptions::from_str(url).map_err(|e| {
            DirectoryError::Config(format!("bad DATABASE_URL {}: {e}", redact_url(url)))
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options)
            .await
            .map_err(|e| {
                DirectoryError::Unavailable(format!("cannot connect to {}: {e}", redact_url(url)))
            })?;
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_name = 'workspaces' AND table_schema = ANY(current_schemas(false))",
        )
        .fetch_all(&pool)
        .await?;
        if !columns.iter().any(|c| c == "id") || !columns.iter().any(|c| c == "parent_id") {
            return Err(DirectoryError::Config(format!(
                "{} has no workspaces(id, parent_id) table on its search path",
                redact_url(url)
            )));
        }
        let has_status = columns.iter().any(|c| c == "status");
        let has_name = columns.iter().any(|c| c == "name");
        if !has_status {
            tracing::warn!("workspaces has no status column: no workspace counts as removed");
        }
        // The audit table is the one thing the gateway writes here; a
        // database user without CREATE keeps working, with audit failures
        // logged at each org write.
        if let Err(e) = sqlx::query(
            "CREATE TABLE IF NOT EXISTS memory_gateway_audit ( \
               id bigserial PRIMARY KEY, \
               at timestamptz NOT NULL DEFAULT now(), \
               action text NOT NULL, \
               actor text NOT NULL, \
               workspace uuid, \
               namespace text NOT NULL, \
               memory_id uuid NOT NULL, \
               content_sha256 text)",
        )
        .execute(&pool)
        .await
        {
            tracing::warn!(error = %e, "cannot create memory_gateway_audit; org writes will log their audit failures");
        }
        Ok(Directory {
            backend: Backend::Postgres {
                pool,
                has_status,
                has_name,
            },
        })
    }

    async fn open_sqlite(url: &str) -> Result<Self, DirectoryError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| DirectoryError::Config(format!("bad DATABASE_URL {url}: {e}")))?
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(false);
        let path = options.get_filename().to_path_buf();
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| DirectoryError::Unavailable(format!("cannot open {url}: {e}")))?;
        for statement in [
            "CREATE TABLE IF NOT EXISTS workspaces ( \
               id TEXT PRIMARY KEY, \
               name TEXT NOT NULL, \
               parent_id TEXT, \
               status TEXT NOT NULL DEFAULT 'active', \
               created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))",
            "CREATE INDEX IF NOT EXISTS workspaces_parent ON workspaces(parent_id)",
            "CREATE TABLE IF NOT EXISTS memory_gateway_audit ( \
               id INTEGER PRIMARY KEY AUTOINCREMENT, \
               at TEXT NOT NULL, \
               action TEXT NOT NULL, \
               actor TEXT NOT NULL, \
               workspace TEXT, \
               namespace TEXT NOT NULL, \
               memory_id TEXT NOT NULL, \
               content_sha256 TEXT)",
        ] {
            sqlx::query(statement).execute(&pool).await?;
        }
        Ok(Directory {
            backend: Backend::Sqlite { pool, path },
        })
    }

    /// The SQLite file, when the directory is one (the signing secret lives
    /// beside it).
    pub fn sqlite_path(&self) -> Option<&std::path::Path> {
        match &self.backend {
            Backend::Sqlite { path, .. } => Some(path),
            Backend::Postgres { .. } => None,
        }
    }

    /// `postgres` or `sqlite`.
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Postgres { .. } => "postgres",
            Backend::Sqlite { .. } => "sqlite",
        }
    }

    /// The namespaces `workspace` may use now; `None` when it does not exist
    /// or is removed.
    ///
    /// # Errors
    ///
    /// [`DirectoryError::Unavailable`] when the database does not answer.
    pub async fn access(&self, workspace: Uuid) -> Result<Option<WorkspaceAccess>, DirectoryError> {
        let (tree, names) = match &self.backend {
            Backend::Postgres {
                pool,
                has_status,
                has_name,
            } => WorkspaceTree::load_chain(pool, workspace, *has_status, *has_name)
                .await
                .map_err(|e| DirectoryError::Unavailable(e.to_string()))?,
            Backend::Sqlite { pool, .. } => sqlite_chain(pool, workspace).await?,
        };
        Ok(WorkspaceAccess::resolve(&tree, &names, workspace))
    }

    /// Answers when the database is reachable.
    ///
    /// # Errors
    ///
    /// [`DirectoryError::Unavailable`] otherwise.
    pub async fn ping(&self) -> Result<(), DirectoryError> {
        match &self.backend {
            Backend::Postgres { pool, .. } => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
            Backend::Sqlite { pool, .. } => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }

    /// Records an audited act: a write to an `org:` namespace, or an
    /// operator's deletion.
    ///
    /// # Errors
    ///
    /// When the row cannot be written (callers log it and go on).
    pub async fn audit(&self, entry: &AuditEntry) -> Result<(), DirectoryError> {
        match &self.backend {
            Backend::Postgres { pool, .. } => {
                sqlx::query(
                    "INSERT INTO memory_gateway_audit \
                     (at, action, actor, workspace, namespace, memory_id, content_sha256) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(entry.at)
                .bind(entry.action)
                .bind(&entry.actor)
                .bind(entry.workspace)
                .bind(&entry.namespace)
                .bind(entry.memory_id)
                .bind(&entry.content_sha256)
                .execute(pool)
                .await?;
            }
            Backend::Sqlite { pool, .. } => {
                sqlx::query(
                    "INSERT INTO memory_gateway_audit \
                     (at, action, actor, workspace, namespace, memory_id, content_sha256) \
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(
                    entry
                        .at
                        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                )
                .bind(entry.action)
                .bind(&entry.actor)
                .bind(entry.workspace.map(|w| w.to_string()))
                .bind(&entry.namespace)
                .bind(entry.memory_id.to_string())
                .bind(&entry.content_sha256)
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }

    /// Every audit row, oldest first (for operators and tests).
    ///
    /// # Errors
    ///
    /// When the table cannot be read.
    pub async fn audit_log(&self) -> Result<Vec<AuditEntry>, DirectoryError> {
        let mut out = Vec::new();
        match &self.backend {
            Backend::Postgres { pool, .. } => {
                let rows = sqlx::query(AUDIT_LOG_SQL).fetch_all(pool).await?;
                for r in rows {
                    let action: String = r.try_get("action")?;
                    out.push(AuditEntry {
                        at: r.try_get("at")?,
                        action: AuditEntry::action_name(&action),
                        actor: r.try_get("actor")?,
                        workspace: r.try_get("workspace")?,
                        namespace: r.try_get("namespace")?,
                        memory_id: r.try_get("memory_id")?,
                        content_sha256: r.try_get("content_sha256")?,
                    });
                }
            }
            Backend::Sqlite { pool, .. } => {
                let rows = sqlx::query(AUDIT_LOG_SQL).fetch_all(pool).await?;
                for r in rows {
                    let at: String = r.try_get("at")?;
                    let action: String = r.try_get("action")?;
                    let workspace: Option<String> = r.try_get("workspace")?;
                    let memory_id: String = r.try_get("memory_id")?;
                    out.push(AuditEntry {
                        at: chrono::DateTime::parse_from_rfc3339(&at)
                            .map(|t| t.with_timezone(&chrono::Utc))
                            .unwrap_or_default(),
                        action: AuditEntry::action_name(&action),
                        actor: r.try_get("actor")?,
                        workspace: workspace.and_then(|w| Uuid::parse_str(&w).ok()),
                        namespace: r.try_get("namespace")?,
                        memory_id: Uuid::parse_str(&memory_id).unwrap_or_default(),
                        content_sha256: r.try_get("content_sha256")?,
                    });
                }
            }
        }
        Ok(out)
    }

    fn sqlite_pool(&self) -> Result<&SqlitePool, DirectoryError> {
        match &self.backend {
            Backend::Sqlite { pool, .. } => Ok(pool),
            Backend::Postgres { .. } => Err(DirectoryError::Config(
                "workspaces live in the platform's Postgres database, which the gateway never \
                 writes; manage them there (the workspace commands work on the gateway's own \
                 SQLite file, used when DATABASE_URL is unset)"
                    .to_string(),
            )),
        }
    }

    /// Adds a workspace (SQLite directory only) and returns its id.
    ///
    /// # Errors
    ///
    /// On Postgres, for an unknown or removed parent, or a database failure.
    pub async fn add_workspace(
        &self,
        name: &str,
        parent: Option<Uuid>,
        id: Option<Uuid>,
    ) -> Result<Uuid, DirectoryError> {
        let pool = self.sqlite_pool()?;
        let name = name.trim();
        if name.is_empty() {
            return Err(DirectoryError::Config(
                "--name must not be blank".to_string(),
            ));
        }
        if let Some(parent) = parent {
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM workspaces WHERE id = ?")
                    .bind(parent.to_string())
                    .fetch_optional(pool)
                    .await?;
            match status.as_deref() {
                None => {
                    return Err(DirectoryError::Config(format!(
                        "no workspace {parent} to be the parent"
                    )))
                }
                Some("removed") => {
                    return Err(DirectoryError::Config(format!(
                        "the parent {parent} is removed"
                    )))
                }
                Some(_) => {}
            }
        }
        let id = id.unwrap_or_else(Uuid::new_v4);
        sqlx::query("INSERT INTO workspaces (id, name, parent_id) VALUES (?, ?, ?)")
            .bind(id.to_string())
            .bind(name)
            .bind(parent.map(|p| p.to_string()))
            .execute(pool)
            .await
            .map_err(|e| match e {
                sqlx::Error::Database(d) if d.is_unique_violation() => {
                    DirectoryError::Config(format!("workspace {id} already exists"))
                }
                other => other.into(),
            })?;
        Ok(id)
    }

    /// Moves a workspace under another parent (or makes it a root).
    ///
    /// # Errors
    ///
    /// On Postgres, for an unknown workspace, or a database failure.
    pub async fn set_parent(&self, id: Uuid, parent: Option<Uuid>) -> Result<(), DirectoryError> {
        let pool = self.sqlite_pool()?;
        let done = sqlx::query("UPDATE workspaces SET parent_id = ? WHERE id = ?")
            .bind(parent.map(|p| p.to_string()))
            .bind(id.to_string())
            .execute(pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(DirectoryError::Config(format!("no workspace {id}")));
        }
        Ok(())
    }

    /// Marks a workspace removed: from then on it has no namespaces. Its
    /// memories stay in the plugin.
    ///
    /// # Errors
    ///
    /// On Postgres, for an unknown workspace, or a database failure.
    pub async fn remove_workspace(&self, id: Uuid) -> Result<(), DirectoryError> {
        let pool = self.sqlite_pool()?;
        let done = sqlx::query("UPDATE workspaces SET status = 'removed' WHERE id = ?")
            .bind(id.to_string())
            .execute(pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(DirectoryError::Config(format!("no workspace {id}")));
        }
        Ok(())
    }

    /// Every workspace, by name.
    ///
    /// # Errors
    ///
    /// When the table cannot be read.
    pub async fn list_workspaces(&self) -> Result<Vec<WorkspaceRow>, DirectoryError> {
        match &self.backend {
            Backend::Sqlite { pool, .. } => {
                let rows = sqlx::query(
                    "SELECT id, name, parent_id, status FROM workspaces ORDER BY name, id",
                )
                .fetch_all(pool)
                .await?;
                rows.into_iter()
                    .map(|r| {
                        let id: String = r.try_get("id")?;
                        let parent: Option<String> = r.try_get("parent_id")?;
                        Ok(WorkspaceRow {
                            id: Uuid::parse_str(&id).unwrap_or_default(),
                            name: r.try_get("name")?,
                            parent_id: parent.and_then(|p| Uuid::parse_str(&p).ok()),
                            status: r.try_get("status")?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(Into::into)
            }
            Backend::Postgres {
                pool,
                has_status,
                has_name,
            } => {
                let sql =
                    format!(
                    "SELECT id, {} AS name, parent_id, {} AS status FROM workspaces ORDER BY 2, 1",
                    if *has_name { "name::text" } else { "NULL::text" },
                    if *has_status { "status::text" } else { "NULL::text" },
                );
                let rows = sqlx::query(&sql).fetch_all(pool).await?;
                rows.into_iter()
                    .map(|r| {
                        Ok(WorkspaceRow {
                            id: r.try_get("id")?,
                            name: r.try_get("name")?,
                            parent_id: r.try_get("parent_id")?,
                            status: r.try_get("status")?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(Into::into)
            }
        }
    }
}

/// One workspace and its ancestors from the gateway's SQLite table, as
/// `WorkspaceTree::load_chain` reads them from Postgres.
async fn sqlite_chain(
    pool: &SqlitePool,
    workspace: Uuid,
) -> Result<(WorkspaceTree, HashMap<Uuid, String>), DirectoryError> {
    let sql = format!(
        "WITH RECURSIVE chain(id, parent_id, name, removed, depth) AS ( \
           SELECT id, parent_id, name, status IS 'removed', 0 FROM workspaces WHERE id = ? \
           UNION ALL \
           SELECT w.id, w.parent_id, w.name, w.status IS 'removed', c.depth + 1 \
           FROM workspaces w JOIN chain c ON w.id = c.parent_id WHERE c.depth < {} \
         ) SELECT id, parent_id, name, removed FROM chain",
        MAX_HOPS + 1
    );
    let rows = sqlx::query(&sql)
        .bind(workspace.to_string())
        .fetch_all(pool)
        .await?;
    let mut nodes = Vec::with_capacity(rows.len());
    let mut names = HashMap::new();
    for r in rows {
        let id: String = r.try_get("id")?;
        let parent: Option<String> = r.try_get("parent_id")?;
        let removed: bool = r.try_get("removed")?;
        let name: Option<String> = r.try_get("name")?;
        let Ok(id) = Uuid::parse_str(&id) else {
            continue;
        };
        // A parent id that is not a UUID cannot name a workspace: a root.
        let parent = parent.and_then(|p| Uuid::parse_str(&p).ok());
        if let Some(name) = name {
            names.insert(id, name);
        }
        nodes.push((id, parent, removed));
    }
    Ok((WorkspaceTree::from_nodes(nodes), names))
}

/// Every audit row, oldest first; the same on both backends.
const AUDIT_LOG_SQL: &str =
    "SELECT at, action, actor, workspace, namespace, memory_id, content_sha256 \
     FROM memory_gateway_audit ORDER BY id";

/// One audited act.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    pub at: chrono::DateTime<chrono::Utc>,
    /// `write` or `delete`.
    pub action: &'static str,
    /// `workspace:<id>` or `admin`.
    pub actor: String,
    pub workspace: Option<Uuid>,
    pub namespace: String,
    pub memory_id: Uuid,
    /// SHA-256 of the stored content, hex; never the text itself.
    pub content_sha256: Option<String>,
}

impl AuditEntry {
    fn action_name(text: &str) -> &'static str {
        match text {
            "write" => "write",
            "delete" => "delete",
            _ => "other",
        }
    }
}
