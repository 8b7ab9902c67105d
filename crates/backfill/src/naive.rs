//! The naive per-row migration, kept as a yardstick for benchmarks.
//!
//! For every legacy row, in id order and one at a time: a recursive query
//! resolves the row's workspace (cycle-safe, 50-hop cap), one PUT upserts the
//! target namespace, one single write sends the row. It is what a first
//! migration script would do; [`crate::apply`] must beat it by far. The
//! mapping rules are the same as apply's, so both produce the same data.

use crate::legacy::{self, LegacyError, LegacyRow, LegacySchema};
use crate::mapping::{self, Carry, Scope};
use crate::plugin::Plugin;
use crate::resolver::{Placement, WalkEnd};
use memory_contract::NamespaceUpsert;
use sqlx::{PgPool, Row};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// What the naive run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct NaiveReport {
    pub scanned: u64,
    pub written: u64,
    pub skipped: u64,
    pub errors: u64,
    pub elapsed: Duration,
}

/// The per-row lookup: the row's parent and the last workspace the upward
/// walk reaches (cycle-safe through the visited path, at most 50 hops).
const RESOLVE_ONE_SQL: &str = "
WITH RECURSIVE up(id, parent_id, depth, path) AS (
    SELECT id, parent_id, 0, ARRAY[id] FROM workspaces WHERE id = $1
  UNION ALL
    SELECT w.id, w.parent_id, up.depth + 1, up.path || w.id
      FROM up JOIN workspaces w ON w.id = up.parent_id
     WHERE up.depth < 50 AND NOT (w.id = ANY (up.path))
)
SELECT (SELECT parent_id FROM up WHERE depth = 0) AS parent,
       (SELECT id FROM up ORDER BY depth DESC LIMIT 1) AS org,
       EXISTS (SELECT 1 FROM up) AS found";

async fn resolve_one(pool: &PgPool, ws: Uuid) -> Result<Option<Placement>, sqlx::Error> {
    let row = sqlx::query(RESOLVE_ONE_SQL)
        .bind(ws)
        .fetch_one(pool)
        .await?;
    if !row.try_get::<bool, _>("found")? {
        return Ok(None);
    }
    let parent: Option<Uuid> = row.try_get("parent")?;
    let org: Option<Uuid> = row.try_get("org")?;
    Ok(Some(Placement {
        workspace: ws,
        team: parent.unwrap_or(ws),
        org: org.unwrap_or(ws),
        is_root: parent.is_none(),
        removed: false,
        walk_end: WalkEnd::Root,
    }))
}

/// Migrates up to `limit` rows the naive way, sequentially.
///
/// # Errors
///
/// [`LegacyError`] when the legacy side cannot be read; plugin failures are
/// counted per row.
pub async fn apply_naive(
    pool: &PgPool,
    plugin: &Plugin,
    schema: &LegacySchema,
    limit: u64,
) -> Result<NaiveReport, LegacyError> {
    let started = Instant::now();
    let carry = Carry {
        created_at: plugin.caps.created_at,
        embedding: false,
    };
    let mut report = NaiveReport::default();
    let mut rows = legacy::spawn_scan(pool.clone(), schema, legacy::ScanFilter::After(None), false);
    while report.scanned < limit {
        let Some(next) = rows.recv().await else {
            break;
        };
        let row = next?;
        report.scanned += 1;
        match migrate_one(pool, plugin, &row, carry).await {
            Ok(true) => report.written += 1,
            Ok(false) => report.skipped += 1,
            Err(_) => report.errors += 1,
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

async fn migrate_one(
    pool: &PgPool,
    plugin: &Plugin,
    row: &LegacyRow,
    carry: Carry,
) -> Result<bool, String> {
    let Some(scope) = row.scope.as_deref().and_then(Scope::parse) else {
        return Ok(false);
    };
    let Some(ws) = row.workspace_id else {
        return Ok(false);
    };
    let Some(placement) = resolve_one(pool, ws).await.map_err(|e| e.to_string())? else {
        return Ok(false);
    };
    if memory_contract::validate::content("content", row.content.as_deref().unwrap_or("")).is_err()
    {
        return Ok(false);
    }
    let kind = scope.namespace_kind();
    let ns_id = match scope {
        Scope::Local => placement.workspace,
        Scope::Team => placement.team,
        Scope::Global => placement.org,
    };
    let target = mapping::Target {
        scope,
        namespace: mapping::namespace_name(kind, ns_id),
        kind,
        placement,
        global_from_non_root: scope == Scope::Global && !placement.is_root,
    };
    let Ok((item, _)) = mapping::to_write(row, &target, carry) else {
        return Ok(false);
    };
    plugin
        .client
        .upsert_namespace(
            &item.namespace,
            &NamespaceUpsert {
                kind,
                expires_at: None,
                metadata: None,
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    plugin
        .client
        .write_memory(&item.namespace, &item.write)
        .await
        .map_err(|e| e.to_string())?;
    Ok(true)
}
