//! The naive per-row migration, the baseline the backfill is compared with:
//! sequentially, for every legacy row, one recursive namespace lookup, one
//! namespace upsert and one single write. Run on a slice and extrapolated.

use crate::plugin::PluginHttp;
use anyhow::{Context, Result};
use memory_contract::{MemoryKind, MemorySource, MemoryWrite, NamespaceKind};
use sqlx::PgPool;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// One workspace's team and org, walking up at most 50 hops without cycles.
const LOOKUP_SQL: &str = "
    WITH RECURSIVE up (id, parent_id, hops, path) AS (
        SELECT w.id, w.parent_id, 0, ARRAY[w.id] FROM workspaces w WHERE w.id = $1
        UNION ALL
        SELECT p.id, p.parent_id, u.hops + 1, u.path || p.id
        FROM up u JOIN workspaces p ON p.id = u.parent_id
        WHERE u.hops < 50 AND p.id <> ALL (u.path)
    )
    SELECT (SELECT coalesce(max(id::text) FILTER (WHERE hops = 1), $1::text) FROM up)::uuid AS team_id,
           (SELECT id FROM up ORDER BY hops DESC LIMIT 1) AS root_id";

/// What the naive run did.
#[derive(Debug, Clone, Copy)]
pub struct NaiveRun {
    pub rows: u64,
    pub elapsed: Duration,
}

impl NaiveRun {
    /// Time the naive method would take for `total_rows`, at this rate.
    pub fn extrapolate(&self, total_rows: u64) -> Duration {
        if self.rows == 0 {
            return Duration::ZERO;
        }
        self.elapsed.mul_f64(total_rows as f64 / self.rows as f64)
    }
}

/// Migrates the first `rows` legacy rows (by id) one at a time into `plugin`.
///
/// # Errors
///
/// The first failing lookup or write; the naive method has no error handling
/// worth measuring.
pub async fn migrate_slice(pool: &PgPool, plugin: &PluginHttp, rows: u64) -> Result<NaiveRun> {
    type LegacyRow = (
        Uuid,
        Option<Uuid>,
        String,
        String,
        chrono::DateTime<chrono::Utc>,
    );
    let slice: Vec<LegacyRow> = sqlx::query_as(
        "SELECT id, workspace_id, content, scope, created_at FROM agent_memories ORDER BY id LIMIT $1",
    )
    .bind(rows as i64)
    .fetch_all(pool)
    .await
    .context("naive: failed to read the legacy slice")?;

    let started = Instant::now();
    let mut migrated = 0u64;
    for (id, workspace_id, content, scope, created_at) in slice {
        let Some(workspace_id) = workspace_id else {
            continue;
        };
        let (team_id, root_id): (Option<Uuid>, Option<Uuid>) = sqlx::query_as(LOOKUP_SQL)
            .bind(workspace_id)
            .fetch_one(pool)
            .await
            .with_context(|| format!("naive: lookup of workspace {workspace_id} failed"))?;
        let (namespace, kind) = match scope.as_str() {
            "LOCAL" => (
                format!("workspace:{workspace_id}"),
                NamespaceKind::Workspace,
            ),
            "TEAM" => (
                format!("team:{}", team_id.unwrap_or(workspace_id)),
                NamespaceKind::Team,
            ),
            "GLOBAL" => (
                format!("org:{}", root_id.unwrap_or(workspace_id)),
                NamespaceKind::Org,
            ),
            _ => continue,
        };
        plugin
            .put_namespace(&namespace, kind)
            .await
            .with_context(|| format!("naive: namespace upsert of {namespace} failed"))?;
        let mut write = MemoryWrite::new(content, MemoryKind::Fact, MemorySource::Agent);
        write.id = Some(id);
        write.created_at = Some(created_at);
        plugin
            .write(&namespace, &write)
            .await
            .with_context(|| format!("naive: write of {id} failed"))?;
        migrated += 1;
    }
    Ok(NaiveRun {
        rows: migrated,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extrapolation_scales_linearly() {
        let run = NaiveRun {
            rows: 20_000,
            elapsed: Duration::from_secs(40),
        };
        assert_eq!(run.extrapolate(1_000_000), Duration::from_secs(2000));
        let empty = NaiveRun {
            rows: 0,
            elapsed: Duration::from_secs(1),
        };
        assert_eq!(empty.extrapolate(10), Duration::ZERO);
    }
}
