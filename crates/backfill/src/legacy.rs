//! Reading the legacy tables.
//!
//! `agent_memories` is read in id order with keyset pagination
//! (`WHERE id > $last ORDER BY id LIMIT n`), which the id index serves without
//! sorting the table; each page is consumed as a stream, so memory stays
//! bounded whatever the row sizes. Columns that only some installs have
//! (`embedding`, `updated_at`, the `namespace` label, `workspaces.status`) are
//! detected first and read only when present; `embedding` is read as text so
//! no pgvector support is needed here.

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use tokio::sync::mpsc;
use uuid::Uuid;

/// Failure while reading the legacy database.
#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    /// A required table is missing.
    #[error("table {0} not found (check DATABASE_URL's database and search_path)")]
    MissingTable(&'static str),
    /// A required column is missing.
    #[error("column {table}.{column} not found; this does not look like the legacy schema")]
    MissingColumn {
        table: &'static str,
        column: &'static str,
    },
    /// Any query failure, with what was being read.
    #[error("{context}: {source}")]
    Query {
        context: String,
        #[source]
        source: sqlx::Error,
    },
}

impl LegacyError {
    pub(crate) fn query(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> LegacyError {
        let context = context.into();
        move |source| LegacyError::Query { context, source }
    }
}

/// Which optional columns this install has.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LegacySchema {
    /// `agent_memories.embedding` exists.
    pub has_embedding: bool,
    /// Declared dimension of `embedding` (`vector(1536)` -> 1536), when known.
    pub embedding_dim: Option<u32>,
    /// `agent_memories.updated_at` exists.
    pub has_updated_at: bool,
    /// `agent_memories.namespace` (the old free-form label) exists.
    pub has_namespace_label: bool,
    /// `workspaces.status` exists.
    pub has_status: bool,
}

/// One `agent_memories` row.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyRow {
    pub id: Uuid,
    pub workspace_id: Option<Uuid>,
    /// NULL content is treated as blank.
    pub content: Option<String>,
    pub scope: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    /// The old `namespace` label (default `general`).
    pub label: Option<String>,
    /// pgvector text form, e.g. `[0.1,0.2]`; an empty string when the scan
    /// only asked whether there is one.
    pub embedding: Option<String>,
}

async fn columns_of(
    pool: &PgPool,
    table: &'static str,
) -> Result<Option<Vec<(String, i32)>>, LegacyError> {
    // to_regclass honours search_path, like the unqualified names used later.
    let rows = sqlx::query(
        "SELECT a.attname::text AS name, a.atttypmod AS typmod
           FROM pg_attribute a
          WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .map_err(LegacyError::query(format!(
        "failed to inspect table {table}"
    )))?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let name: String = r
            .try_get("name")
            .map_err(LegacyError::query("failed to read a column name"))?;
        let typmod: i32 = r
            .try_get("typmod")
            .map_err(LegacyError::query("failed to read a column type"))?;
        out.push((name, typmod));
    }
    Ok(Some(out))
}

/// Checks the legacy tables and finds the optional columns.
///
/// # Errors
///
/// [`LegacyError`] when a table or required column is missing, or a query fails.
pub async fn inspect(pool: &PgPool) -> Result<LegacySchema, LegacyError> {
    let memories = columns_of(pool, "agent_memories")
        .await?
        .ok_or(LegacyError::MissingTable("agent_memories"))?;
    let workspaces = columns_of(pool, "workspaces")
        .await?
        .ok_or(LegacyError::MissingTable("workspaces"))?;
    let has = |cols: &[(String, i32)], name: &str| cols.iter().any(|(n, _)| n == name);
    for column in ["id", "workspace_id", "content", "scope", "created_at"] {
        if !has(&memories, column) {
            return Err(LegacyError::MissingColumn {
                table: "agent_memories",
                column: leak_name(column),
            });
        }
    }
    for column in ["id", "parent_id"] {
        if !has(&workspaces, column) {
            return Err(LegacyError::MissingColumn {
                table: "workspaces",
                column: leak_name(column),
            });
        }
    }
    let embedding = memories.iter().find(|(n, _)| n == "embedding");
    Ok(LegacySchema {
        has_embedding: embedding.is_some(),
        // pgvector stores the dimension itself as the type modifier.
        embedding_dim: embedding
            .and_then(|(_, m)| u32::try_from(*m).ok())
            .filter(|d| *d > 0),
        has_updated_at: has(&memories, "updated_at"),
        has_namespace_label: has(&memories, "namespace"),
        has_status: has(&workspaces, "status"),
    })
}

fn leak_name(name: &str) -> &'static str {
    match name {
        "id" => "id",
        "workspace_id" => "workspace_id",
        "content" => "content",
        "scope" => "scope",
        "created_at" => "created_at",
        _ => "parent_id",
    }
}

impl LegacySchema {
    /// The select list every reader uses, in [`LegacyRow`] order.
    pub fn select_list(&self, with_embedding: bool) -> String {
        format!(
            "id, workspace_id, content, scope::text AS scope, created_at, {}, {}, {}",
            if self.has_updated_at {
                "updated_at"
            } else {
                "NULL::timestamptz AS updated_at"
            },
            if self.has_namespace_label {
                "namespace::text AS label"
            } else {
                "NULL::text AS label"
            },
            match (self.has_embedding, with_embedding) {
                (true, true) => "embedding::text AS embedding",
                // Only whether there is one (an empty marker), for the
                // not-carried count, without moving the vector itself.
                (true, false) => "CASE WHEN embedding IS NULL THEN NULL ELSE '' END AS embedding",
                (false, _) => "NULL::text AS embedding",
            },
        )
    }
}

/// The select list of a parity check: the columns verify compares and the
/// mapping reads, the others as NULLs (still decodable by [`decode_row`]).
pub const VERIFY_SELECT: &str = "id, workspace_id, content, scope::text AS scope, created_at, \
     NULL::timestamptz AS updated_at, NULL::text AS label, NULL::text AS embedding";

/// Decodes one row of [`LegacySchema::select_list`].
///
/// # Errors
///
/// The driver error when a column has an unexpected type.
pub fn decode_row(row: &PgRow) -> Result<LegacyRow, sqlx::Error> {
    Ok(LegacyRow {
        id: row.try_get("id")?,
        workspace_id: row.try_get("workspace_id")?,
        content: row.try_get("content")?,
        scope: row.try_get("scope")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        label: row.try_get("label")?,
        embedding: row.try_get("embedding")?,
    })
}

/// What part of the table a scan covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanFilter {
    /// Every row with id greater than `after` (all rows when `None`).
    After(Option<Uuid>),
    /// Every row of one workspace.
    Workspace(Uuid),
}

/// Rows per keyset page.
pub const PAGE_ROWS: i64 = 1000;

/// Rows buffered between the reader task and its consumer.
const SCAN_BUFFER_ROWS: usize = 128;

/// Streams legacy rows in id order from a task that owns one connection.
///
/// Pages are `LIMIT`ed keyset queries and every page is itself consumed as a
/// stream: rows cross a small bounded channel, so a slow consumer holds back
/// the database instead of filling memory, whatever the row sizes. Dropping
/// the receiver stops the task.
pub fn spawn_scan(
    pool: PgPool,
    schema: &LegacySchema,
    filter: ScanFilter,
    with_embedding: bool,
) -> mpsc::Receiver<Result<LegacyRow, LegacyError>> {
    let select = schema.select_list(with_embedding);
    let (tx, rx) = mpsc::channel(SCAN_BUFFER_ROWS);
    tokio::spawn(async move {
        if let Err(e) = scan_into(&pool, &select, filter, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    rx
}

async fn scan_into(
    pool: &PgPool,
    select: &str,
    filter: ScanFilter,
    tx: &mpsc::Sender<Result<LegacyRow, LegacyError>>,
) -> Result<(), LegacyError> {
    let mut conn = pool.acquire().await.map_err(LegacyError::query(
        "failed to open a legacy database connection",
    ))?;
    let decode_err = || LegacyError::query("failed to decode an agent_memories row");
    if let ScanFilter::Workspace(ws) = filter {
        // One workspace's rows: the workspace_id index finds them, a small
        // sort orders them.
        let sql =
            format!("SELECT {select} FROM agent_memories WHERE workspace_id = $1 ORDER BY id");
        let mut rows = sqlx::query(&sql).bind(ws).fetch(&mut *conn);
        while let Some(r) = rows.try_next().await.map_err(LegacyError::query(format!(
            "failed to read agent_memories of workspace {ws}"
        )))? {
            let row = decode_row(&r).map_err(decode_err())?;
            if tx.send(Ok(row)).await.is_err() {
                return Ok(());
            }
        }
        return Ok(());
    }
    let ScanFilter::After(mut last) = filter else {
        return Ok(());
    };
    // The limit is a literal so the planner always sees how few rows a page
    // wants and walks the id index instead of sorting.
    let first_sql = format!("SELECT {select} FROM agent_memories ORDER BY id LIMIT {PAGE_ROWS}");
    let next_sql =
        format!("SELECT {select} FROM agent_memories WHERE id > $1 ORDER BY id LIMIT {PAGE_ROWS}");
    loop {
        let context = match last {
            Some(l) => format!("failed to read agent_memories page after id={l}"),
            None => "failed to read the first agent_memories page".to_string(),
        };
        let query = match last {
            None => sqlx::query(&first_sql),
            Some(l) => sqlx::query(&next_sql).bind(l),
        };
        let mut rows = query.fetch(&mut *conn);
        let mut in_page = 0i64;
        while let Some(r) = rows
            .try_next()
            .await
            .map_err(LegacyError::query(context.clone()))?
        {
            let row = decode_row(&r).map_err(decode_err())?;
            in_page += 1;
            last = Some(row.id);
            if tx.send(Ok(row)).await.is_err() {
                return Ok(());
            }
        }
        if in_page < PAGE_ROWS {
            return Ok(());
        }
    }
}

/// Rows with id greater than `after` (all when `None`).
///
/// # Errors
///
/// [`LegacyError::Query`].
pub async fn count_after(pool: &PgPool, after: Option<Uuid>) -> Result<u64, LegacyError> {
    let n: i64 = match after {
        None => {
            sqlx::query_scalar("SELECT count(*) FROM agent_memories")
                .fetch_one(pool)
                .await
        }
        Some(a) => {
            sqlx::query_scalar("SELECT count(*) FROM agent_memories WHERE id > $1")
                .bind(a)
                .fetch_one(pool)
                .await
        }
    }
    .map_err(LegacyError::query("failed to count agent_memories rows"))?;
    Ok(n.max(0) as u64)
}

/// Rows of one workspace.
///
/// # Errors
///
/// [`LegacyError::Query`].
pub async fn count_workspace(pool: &PgPool, workspace: Uuid) -> Result<u64, LegacyError> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM agent_memories WHERE workspace_id = $1")
        .bind(workspace)
        .fetch_one(pool)
        .await
        .map_err(LegacyError::query("failed to count a workspace's rows"))?;
    Ok(n.max(0) as u64)
}
