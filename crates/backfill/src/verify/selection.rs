//! Stage one of `-verify`: what is checked.
//!
//! First the method ([`choose_method`]): the one `-verify-method` asks for if
//! the plugin advertises its extension, or for `auto` the best it does. Then
//! the workspaces ([`pick_workspaces`]): the one `-workspace` names, every
//! workspace of the tree for `-all`, or a random sample drawn by Postgres
//! once `setseed` got the run's seed (mapped by [`seed_fraction`]), so that
//! `-seed` draws the same sample again.
//!
//! The legacy rows checked are the rows of those workspaces that apply would
//! write. Rows apply skips before it can place them are never compared, but
//! listed as skips by queries of their own, which run while the method
//! compares: a scope apply does not know ([`unknown_scope_skips`]), a
//! workspace missing from the table ([`dangling_skips`]), and for `-all`
//! those and a NULL workspace in one pass ([`unplaceable_skips`]). `scan` and
//! `checksum` read the whole table anyway and list them in that pass. Rows
//! apply skips for their content (blank, too large) are told apart by each
//! method as it meets them.
//!
//! The plugin rows checked are the ones in the namespaces legacy rows map to
//! (`list`, `search`), or every plugin memory in id order (`scan`,
//! `checksum`) but the backfill's own checkpoint memories (namespace
//! `custom:memory-backfill`), which are never counted as plugin rows.

use super::report::{VerifyError, VerifyReport};
use crate::cli::{Plan, VerifyMethod, VerifyScope};
use crate::legacy::{LegacyError, LegacySchema};
use crate::mapping::SkipReason;
use crate::plugin::Plugin;
use crate::resolver::WorkspaceTree;
use chrono::Utc;
use futures::TryStreamExt;
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// What the selection hands to the comparison.
pub(super) struct Selection {
    /// The method this run uses (never `auto`).
    pub(super) method: VerifyMethod,
    /// The legacy workspace tree, which places every workspace.
    pub(super) tree: WorkspaceTree,
    /// The workspaces picked, whether the table knows them or not.
    pub(super) picked: Vec<Uuid>,
}

/// Chooses the method, loads the workspace tree and picks the workspaces,
/// writing the method, scope, seed and sample into `report`.
///
/// # Errors
///
/// [`VerifyError`] when the method is not offered or the legacy side cannot
/// be read.
pub(super) async fn select(
    pool: &PgPool,
    plugin: &Plugin,
    schema: &LegacySchema,
    plan: &Plan,
    report: &mut VerifyReport,
) -> Result<Selection, VerifyError> {
    let method = choose_method(plugin, plan)?;
    let tree = WorkspaceTree::load(pool, schema.has_status).await?;
    report.method = method.as_str();
    let seed = match plan.verify {
        VerifyScope::Sample(_) => Some(
            plan.seed
                .unwrap_or_else(|| (Utc::now().timestamp_subsec_nanos() as i64) % 1_000_000),
        ),
        _ => None,
    };
    report.seed = seed;
    report.scope = match plan.verify {
        VerifyScope::Sample(n) => format!("sample of {n} workspaces"),
        VerifyScope::Workspace(w) => format!("workspace {w}"),
        VerifyScope::All => "all workspaces".into(),
    };
    let picked =
        pick_workspaces(pool, schema, &tree, plan.verify, seed.unwrap_or(0), report).await?;
    report.workspaces_checked = picked.len() as u64;
    if matches!(plan.verify, VerifyScope::Sample(_)) {
        report.sampled = picked.clone();
    }
    Ok(Selection {
        method,
        tree,
        picked,
    })
}

/// The picked workspaces the table knows, in the order picked. A workspace
/// it does not know gets a warning, and its rows are listed as skips, not
/// checked.
pub(super) async fn known_workspaces(
    pool: &PgPool,
    tree: &WorkspaceTree,
    picked: Vec<Uuid>,
    report: &mut VerifyReport,
) -> Result<Vec<Uuid>, LegacyError> {
    let mut known = Vec::with_capacity(picked.len());
    for ws in picked {
        if tree.get(ws).is_some() {
            known.push(ws);
        } else {
            report
                .warnings
                .push(format!("workspace {ws} is not in the workspaces table"));
            dangling_skips(pool, ws, report).await?;
        }
    }
    Ok(known)
}

/// The rows apply would skip before placing them, as a report of skips
/// only. Nothing is queried for `scan` and `checksum`: their own pass over
/// the table lists these rows.
pub(super) async fn unplaced_skips(
    pool: &PgPool,
    method: VerifyMethod,
    scope: VerifyScope,
    picked: Vec<Uuid>,
) -> Result<VerifyReport, LegacyError> {
    let mut skips = VerifyReport::default();
    if matches!(method, VerifyMethod::Scan | VerifyMethod::Checksum) {
        // The method's own pass over the table lists them.
    } else if scope == VerifyScope::All {
        unplaceable_skips(pool, &mut skips).await?;
    } else {
        unknown_scope_skips(pool, &picked, &mut skips).await?;
    }
    Ok(skips)
}

/// Picks the workspaces to verify.
async fn pick_workspaces(
    pool: &PgPool,
    schema: &LegacySchema,
    tree: &WorkspaceTree,
    scope: VerifyScope,
    seed: i64,
    report: &mut VerifyReport,
) -> Result<Vec<Uuid>, LegacyError> {
    match scope {
        VerifyScope::Workspace(w) => Ok(vec![w]),
        VerifyScope::All => {
            let mut ids: Vec<Uuid> = tree.ids().collect();
            ids.sort_unstable();
            Ok(ids)
        }
        VerifyScope::Sample(n) => {
            if !schema.has_status {
                report
                    .warnings
                    .push("workspaces has no status column; sampling among all workspaces".into());
            }
            let sql = if schema.has_status {
                "SELECT id FROM workspaces WHERE status IS DISTINCT FROM 'removed' ORDER BY random() LIMIT $1"
            } else {
                "SELECT id FROM workspaces ORDER BY random() LIMIT $1"
            };
            // setseed and random() must run on the same session.
            let mut conn = pool
                .acquire()
                .await
                .map_err(LegacyError::query("failed to open a legacy connection"))?;
            sqlx::query("SELECT setseed($1)")
                .bind(seed_fraction(seed))
                .execute(&mut *conn)
                .await
                .map_err(LegacyError::query("failed to seed the sample"))?;
            let ids: Vec<Uuid> = sqlx::query_scalar(sql)
                .bind(i64::from(n))
                .fetch_all(&mut *conn)
                .await
                .map_err(LegacyError::query("failed to sample workspaces"))?;
            Ok(ids)
        }
    }
}

/// The method this run uses: the one asked for, if the plugin offers it.
fn choose_method(plugin: &Plugin, plan: &Plan) -> Result<VerifyMethod, VerifyError> {
    let all = plan.verify == VerifyScope::All;
    let missing = |cap: &str| {
        VerifyError::Unsupported(format!(
            "-verify-method={cap}: the plugin at {} does not advertise the {cap:?} extension",
            plugin.display
        ))
    };
    Ok(match plan.verify_method {
        VerifyMethod::Auto if all && plugin.caps.checksum && plugin.caps.scan => {
            VerifyMethod::Checksum
        }
        VerifyMethod::Auto if all && plugin.caps.scan => VerifyMethod::Scan,
        VerifyMethod::Auto if plugin.caps.list => VerifyMethod::List,
        VerifyMethod::Auto => VerifyMethod::Search,
        VerifyMethod::Checksum if !plugin.caps.checksum => return Err(missing("checksum")),
        VerifyMethod::Checksum | VerifyMethod::Scan if !plugin.caps.scan => {
            return Err(missing("scan"))
        }
        VerifyMethod::List if !plugin.caps.list => return Err(missing("list")),
        other => other,
    })
}

/// Maps any integer seed into `setseed`'s range [-1, 1].
pub fn seed_fraction(seed: i64) -> f64 {
    (seed.rem_euclid(2_000_001) as f64 - 1_000_000.0) / 1_000_000.0
}

/// A row's scope in SQL, compared as apply compares it: blanks trimmed,
/// case ignored.
pub(super) const SCOPE_SQL: &str = "upper(btrim(scope::text, E' \\t\\n\\r\\f\\v'))";

/// The rows of `workspaces` whose scope is not one apply knows.
async fn unknown_scope_skips(
    pool: &PgPool,
    workspaces: &[Uuid],
    report: &mut VerifyReport,
) -> Result<(), LegacyError> {
    let sql = format!(
        "SELECT id, scope::text AS scope FROM agent_memories WHERE workspace_id = ANY($1)
           AND ({SCOPE_SQL} IS NULL OR {SCOPE_SQL} NOT IN ('LOCAL', 'TEAM', 'GLOBAL')) ORDER BY id"
    );
    for chunk in workspaces.chunks(5000) {
        let mut rows = sqlx::query(&sql).bind(chunk).fetch(pool);
        while let Some(r) = rows
            .try_next()
            .await
            .map_err(LegacyError::query("failed to read rows of unknown scope"))?
        {
            let id: Uuid = r.try_get("id").map_err(LegacyError::query("bad id"))?;
            let scope: Option<String> = r
                .try_get("scope")
                .map_err(LegacyError::query("bad scope"))?;
            report.skip(
                id,
                SkipReason::UnknownScope,
                format!("scope {scope:?} is not LOCAL, TEAM or GLOBAL"),
            );
        }
    }
    Ok(())
}

/// The rows of a workspace that is not in the table (those of a known
/// scope: the others are listed by [`unknown_scope_skips`]).
async fn dangling_skips(
    pool: &PgPool,
    ws: Uuid,
    report: &mut VerifyReport,
) -> Result<(), LegacyError> {
    let sql = format!(
        "SELECT id FROM agent_memories WHERE workspace_id = $1
           AND {SCOPE_SQL} IN ('LOCAL', 'TEAM', 'GLOBAL') ORDER BY id"
    );
    let ids: Vec<Uuid> = sqlx::query_scalar(&sql)
        .bind(ws)
        .fetch_all(pool)
        .await
        .map_err(LegacyError::query(
            "failed to read rows of an unknown workspace",
        ))?;
    for id in ids {
        report.skip(
            id,
            SkipReason::DanglingWorkspace,
            format!("workspace {ws} is not in the workspaces table"),
        );
    }
    Ok(())
}

/// Every row apply would skip before placing it: unknown scope, NULL
/// workspace, or a workspace not in the table (checked in that order, as
/// apply does), in one pass over the table.
async fn unplaceable_skips(pool: &PgPool, report: &mut VerifyReport) -> Result<(), LegacyError> {
    let sql = format!(
        "SELECT m.id, m.workspace_id, m.scope::text AS scope,
                ({SCOPE_SQL} IS NOT NULL AND {SCOPE_SQL} IN ('LOCAL', 'TEAM', 'GLOBAL')) AS scope_ok
           FROM agent_memories m
          WHERE {SCOPE_SQL} IS NULL OR {SCOPE_SQL} NOT IN ('LOCAL', 'TEAM', 'GLOBAL')
             OR m.workspace_id IS NULL
             OR NOT EXISTS (SELECT 1 FROM workspaces w WHERE w.id = m.workspace_id)"
    );
    let mut rows = sqlx::query(&sql).fetch(pool);
    while let Some(r) = rows.try_next().await.map_err(LegacyError::query(
        "failed to read rows no workspace can claim",
    ))? {
        let id: Uuid = r.try_get("id").map_err(LegacyError::query("bad id"))?;
        let ws: Option<Uuid> = r
            .try_get("workspace_id")
            .map_err(LegacyError::query("bad workspace_id"))?;
        let scope: Option<String> = r
            .try_get("scope")
            .map_err(LegacyError::query("bad scope"))?;
        let scope_ok: bool = r
            .try_get("scope_ok")
            .map_err(LegacyError::query("bad scope"))?;
        match (scope_ok, ws) {
            (false, _) => report.skip(
                id,
                SkipReason::UnknownScope,
                format!("scope {scope:?} is not LOCAL, TEAM or GLOBAL"),
            ),
            (true, None) => report.skip(id, SkipReason::NoWorkspace, "workspace_id is NULL".into()),
            (true, Some(w)) => report.skip(
                id,
                SkipReason::DanglingWorkspace,
                format!("workspace {w} is not in the workspaces table"),
            ),
        }
    }
    Ok(())
}

/// Rows of `agent_memories` by the planner's statistics (`None` when it has
/// none yet). The methods size their batches, id intervals and buckets by
/// it.
pub(super) async fn estimated_rows(pool: &PgPool) -> Option<f64> {
    let tuples: Option<f32> = sqlx::query_scalar(
        "SELECT reltuples FROM pg_class WHERE oid = to_regclass('agent_memories')",
    )
    .fetch_optional(pool)
    .await
    .ok()
    .flatten();
    tuples.filter(|t| *t > 0.0).map(f64::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_map_into_setseed_range() {
        for s in [i64::MIN, -1, 0, 1, 42, i64::MAX] {
            let f = seed_fraction(s);
            assert!((-1.0..=1.0).contains(&f), "{s} -> {f}");
        }
        assert_eq!(seed_fraction(7), seed_fraction(7));
    }
}
