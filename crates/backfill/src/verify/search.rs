//! The `search` method: a workspace checked with v1 searches only, for a
//! plugin without the `list` extension.
//!
//! For each workspace, the legacy rows are mapped as apply maps them, then
//! each namespace the workspace reads (its own, its team's, its org's) is
//! searched for its first 100 memories. A legacy row not among them is
//! looked for with a full-text search built from its content
//! ([`search_terms`]). A namespace that answered fewer than 100 memories was
//! seen whole, so a row absent from it is surely missing; a row not found in
//! a larger namespace cannot be settled by v1, and makes the workspace
//! *unverified* (with the reason), never a mismatch.

use super::compare::compare;
use super::report::{Mismatch, MismatchKind, Unverified, VerifyError, VerifyReport};
use crate::legacy::{self, LegacyError, LegacyRow};
use crate::mapping::{self, Carry, SkipReason};
use crate::plugin::{self, Plugin};
use crate::progress::Counters;
use crate::report::content_excerpt;
use crate::resolver::Resolver;
use memory_contract::{limits, Memory, NamespaceKind, SearchRequest};
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// Checks `workspaces` one after the other, by searches.
pub(super) async fn check(
    pool: &PgPool,
    plugin: &Plugin,
    resolver: &mut Resolver,
    workspaces: &[Uuid],
    carry: Carry,
    counters: &Counters,
    report: &mut VerifyReport,
) -> Result<(), VerifyError> {
    for ws in workspaces {
        check_workspace_by_search(pool, plugin, resolver, *ws, carry, report).await?;
        Counters::add(&counters.scanned, 1);
    }
    Ok(())
}

/// Builds a full-text query likely to match `content`: its longest distinct
/// words (letters and digits), at most eight.
pub fn search_terms(content: &str) -> Option<String> {
    let mut words: Vec<&str> = content
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .collect();
    words.sort_by_key(|w| std::cmp::Reverse(w.chars().count()));
    let mut seen = HashSet::new();
    let picked: Vec<&str> = words
        .into_iter()
        .filter(|w| seen.insert(w.to_lowercase()))
        .take(8)
        .collect();
    if picked.is_empty() {
        None
    } else {
        Some(picked.join(" "))
    }
}

/// v1 check of one workspace, by searches.
async fn check_workspace_by_search(
    pool: &PgPool,
    plugin: &Plugin,
    resolver: &mut Resolver,
    ws: Uuid,
    carry: Carry,
    report: &mut VerifyReport,
) -> Result<(), VerifyError> {
    let sql = format!(
        "SELECT {} FROM agent_memories WHERE workspace_id = $1 ORDER BY id",
        legacy::VERIFY_SELECT
    );
    let raw = sqlx::query(&sql)
        .bind(ws)
        .fetch_all(pool)
        .await
        .map_err(LegacyError::query(format!(
            "failed to read rows of workspace {ws}"
        )))?;
    let mut rows: Vec<LegacyRow> = Vec::with_capacity(raw.len());
    for r in &raw {
        rows.push(legacy::decode_row(r).map_err(LegacyError::query("failed to decode a row"))?);
    }
    drop(raw);
    // Map every row; keep the ones apply would write.
    let mut expected: Vec<(LegacyRow, String)> = Vec::new();
    for row in rows {
        match mapping::target_for(&row, resolver) {
            Ok(t) => match mapping::to_write(&row, &t, carry) {
                Ok(_) => expected.push((row, t.namespace)),
                Err(skip) => report.skip(row.id, skip.reason, skip.detail),
            },
            // Unknown scopes were listed already, per workspace.
            Err(skip) if skip.reason == SkipReason::UnknownScope => {}
            Err(skip) => report.skip(row.id, skip.reason, skip.detail),
        }
    }
    if expected.is_empty() {
        return Ok(());
    }
    let Some(p) = resolver.place(ws) else {
        return Ok(());
    };
    let mut readable = vec![
        mapping::namespace_name(NamespaceKind::Workspace, p.workspace),
        mapping::namespace_name(NamespaceKind::Team, p.team),
        mapping::namespace_name(NamespaceKind::Org, p.org),
    ];
    readable.dedup();
    let mut seen: HashMap<Uuid, Memory> = HashMap::new();
    let mut complete: HashSet<String> = HashSet::new();
    for ns in &readable {
        let req = SearchRequest {
            namespaces: vec![ns.clone()],
            limit: Some(i64::from(limits::SEARCH_LIMIT_MAX)),
            ..SearchRequest::default()
        };
        match plugin.client.search(&req).await {
            Ok(resp) => {
                if resp.memories.len() < limits::SEARCH_LIMIT_MAX as usize {
                    complete.insert(ns.clone());
                }
                for m in resp.memories {
                    seen.insert(m.id, m);
                }
            }
            Err(e) if e.is_not_found() => {
                complete.insert(ns.clone());
            }
            Err(e) => {
                report.error(format!("cannot search {ns}: {}", plugin::one_line(&e)));
                return Ok(());
            }
        }
    }
    let mut not_found = 0u64;
    for (row, ns) in &expected {
        report.rows_checked += 1;
        if let Some(m) = seen.get(&row.id) {
            compare(row, ns, m, carry, report);
            continue;
        }
        // Not on any first page: a targeted search by content.
        let content = row.content.as_deref().unwrap_or("");
        let found = match search_terms(content) {
            Some(q) => {
                let req = SearchRequest {
                    namespaces: readable.clone(),
                    query: Some(q),
                    limit: Some(i64::from(limits::SEARCH_LIMIT_MAX)),
                    ..SearchRequest::default()
                };
                match plugin.client.search(&req).await {
                    Ok(resp) => resp.memories.into_iter().find(|m| m.id == row.id),
                    Err(e) => {
                        report.error(format!(
                            "cannot search workspace {ws}'s namespaces: {}",
                            plugin::one_line(&e)
                        ));
                        return Ok(());
                    }
                }
            }
            None => None,
        };
        match found {
            Some(m) => compare(row, ns, &m, carry, report),
            None if complete.contains(ns) => report.mismatch(Mismatch {
                kind: MismatchKind::Missing,
                id: row.id,
                workspace: Some(ws),
                expected_namespace: ns.clone(),
                found_namespace: None,
                excerpt: content_excerpt(content),
                detail: None,
            }),
            None => not_found += 1,
        }
    }
    if not_found > 0 {
        report.unverified.push(Unverified {
            workspace: ws,
            reason: format!(
                "{not_found} rows not found by search in namespaces holding 100 or more memories; \
                 v1 cannot list them exactly (verify against a plugin with the list extension)"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms_pick_long_words() {
        assert_eq!(
            search_terms("the quick brownish fox jumps").as_deref(),
            Some("brownish quick jumps the fox")
        );
        assert_eq!(search_terms("%% __ !!"), None);
    }
}
