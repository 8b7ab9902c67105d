//! The `scan` method: `-verify -all` through the `scan` extension, one pass
//! over both sides in id order.
//!
//! The id space is cut in [`LEGACY_STREAMS`] halves, each merged by a task of
//! its own. For a half, the legacy rows come from one query in id order
//! (Postgres reads the table once and sorts; nothing walks the primary key
//! row by row), and the plugin's memories of every namespace come from
//! `scan` requests over small id intervals, several in flight, consumed in
//! order. A legacy row's expected namespace comes from the mapping apply
//! uses; the plugin row with the same id says where the memory really is. So
//! every kind of mismatch is known at once: a legacy id the plugin holds
//! nowhere is missing, one it holds in another namespace is in the wrong
//! namespace. Rows apply skips (unknown scope, no workspace, a workspace not
//! in the table, blank or oversized content) are listed as skips by the same
//! pass. Memory: the intervals in flight, each about [`INTERVAL_ROWS`] rows.

use super::compare::{compare, may_be_too_large};
use super::report::{Mismatch, MismatchKind, VerifyError, VerifyReport};
use super::selection::estimated_rows;
use super::task::AbortOnDrop;
use crate::checkpoint::CHECKPOINT_NAMESPACE;
use crate::legacy::{self, LegacyError, LegacyRow};
use crate::mapping::{self, Carry, Scope, Skip};
use crate::plugin::{self, Plugin};
use crate::progress::Counters;
use crate::report::content_excerpt;
use crate::resolver::{Placement, WorkspaceTree};
use futures::{StreamExt, TryStreamExt};
use memory_client::Client;
use memory_contract::{limits, Memory, NamespaceKind};
use sqlx::PgPool;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use uuid::Uuid;

/// Legacy queries (and merging tasks) at once.
const LEGACY_STREAMS: usize = 2;

/// Legacy rows an id interval of the plugin's scan is sized for.
const INTERVAL_ROWS: f64 = 800.0;

/// Most intervals per legacy stream.
const MAX_INTERVALS: usize = 1 << 16;

/// Rows between two progress updates.
const PROGRESS_EVERY: u64 = 1000;

/// One slice of the id space: ids greater than `after` and at most `upto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct IdRange {
    pub(super) after: Option<Uuid>,
    pub(super) upto: Option<Uuid>,
}

impl IdRange {
    /// The ids from `low` to `high`, both included.
    pub(super) fn between(low: Uuid, high: Uuid) -> IdRange {
        IdRange {
            after: low.as_u128().checked_sub(1).map(Uuid::from_u128),
            upto: (high != Uuid::max()).then_some(high),
        }
    }

    const ALL: IdRange = IdRange {
        after: None,
        upto: None,
    };

    fn contains(&self, id: Uuid) -> bool {
        self.after.is_none_or(|a| id > a) && self.upto.is_none_or(|u| id <= u)
    }

    /// The exclusive upper bound the scan route takes.
    fn before(&self) -> Option<Uuid> {
        self.upto
            .and_then(|u| u.as_u128().checked_add(1))
            .map(Uuid::from_u128)
    }

    /// Cuts the range into `n` consecutive ranges of equal width.
    fn split(self, n: usize) -> Vec<IdRange> {
        let low = self.after.map_or(0, |a| a.as_u128());
        let high = self.upto.map_or(u128::MAX, |u| u.as_u128());
        let n = (n.max(1) as u128).min(high.saturating_sub(low).max(1));
        let step = (high - low) / n;
        let cut = |i: u128| Uuid::from_u128(low + step * i);
        (0..n)
            .map(|i| IdRange {
                after: if i == 0 { self.after } else { Some(cut(i)) },
                upto: if i + 1 == n {
                    self.upto
                } else {
                    Some(cut(i + 1))
                },
            })
            .collect()
    }
}

/// A workspace's placement with its three namespace names.
pub(super) struct Placed {
    pub(super) placement: Placement,
    pub(super) workspace: Box<str>,
    pub(super) team: Box<str>,
    pub(super) org: Box<str>,
}

impl Placed {
    fn new(placement: Placement) -> Placed {
        let name = |kind, id| mapping::namespace_name(kind, id).into_boxed_str();
        Placed {
            placement,
            workspace: name(NamespaceKind::Workspace, placement.workspace),
            team: name(NamespaceKind::Team, placement.team),
            org: name(NamespaceKind::Org, placement.org),
        }
    }

    /// Where a row of this scope goes.
    pub(super) fn namespace(&self, scope: Scope) -> &str {
        match scope {
            Scope::Local => &self.workspace,
            Scope::Team => &self.team,
            Scope::Global => &self.org,
        }
    }
}

/// Every workspace of the tree that has a placement, with its names.
pub(super) fn placements(tree: &WorkspaceTree) -> Arc<HashMap<Uuid, Placed>> {
    Arc::new(
        tree.ids()
            .filter_map(|id| tree.place(id).map(|p| (id, Placed::new(p))))
            .collect(),
    )
}

/// Where apply writes a row, or why it skips it: apply's mapping, with its
/// size rule checked only for a content that could be too large.
pub(super) fn judge<'p>(
    row: &LegacyRow,
    places: &'p HashMap<Uuid, Placed>,
    carry: Carry,
) -> Result<&'p str, Skip> {
    let (scope, placed) = mapping::place_row(row, |ws| places.get(&ws))?;
    if may_be_too_large(row.content.as_deref().unwrap_or("")) {
        let target = mapping::target_with(row, |_| Some(placed.placement))?;
        mapping::to_write(row, &target, carry)?;
    }
    Ok(placed.namespace(scope))
}

/// What a check of every legacy row works with.
pub(super) struct WholeTable<'a> {
    pub(super) pool: &'a PgPool,
    pub(super) plugin: &'a Plugin,
    /// Every workspace's placement and namespace names, resolved once.
    pub(super) places: Arc<HashMap<Uuid, Placed>>,
    pub(super) carry: Carry,
    pub(super) concurrency: usize,
    pub(super) counters: &'a Arc<Counters>,
}

impl WholeTable<'_> {
    /// The merge of one id range, its plugin side read over `intervals`
    /// intervals, `fetchers` at a time.
    pub(super) fn half(&self, range: IdRange, intervals: usize, fetchers: usize) -> Half {
        Half {
            pool: self.pool.clone(),
            client: self.plugin.client.clone(),
            places: self.places.clone(),
            range,
            intervals,
            fetchers,
            carry: self.carry,
            counters: self.counters.clone(),
        }
    }
}

/// Checks every legacy row against the plugin's scan.
pub(super) async fn check(table: &WholeTable<'_>) -> Result<VerifyReport, VerifyError> {
    let rows = estimated_rows(table.pool).await.unwrap_or(0.0);
    let intervals =
        ((rows / LEGACY_STREAMS as f64 / INTERVAL_ROWS).ceil() as usize).clamp(1, MAX_INTERVALS);
    let fetchers = (table.concurrency / LEGACY_STREAMS).max(1);
    let tasks: Vec<_> = IdRange::ALL
        .split(LEGACY_STREAMS)
        .into_iter()
        .map(|half| AbortOnDrop(tokio::spawn(table.half(half, intervals, fetchers).merge())))
        .collect();
    let mut report = VerifyReport::default();
    for mut task in tasks {
        match (&mut task.0).await {
            Ok(part) => report.absorb(part?),
            Err(e) => {
                report.error(format!("a verify task failed: {e}"));
            }
        }
    }
    Ok(report)
}

/// The legacy rows of a range, in id order.
fn range_sql(range: IdRange) -> String {
    let bounds = match (range.after, range.upto) {
        (Some(_), Some(_)) => "id > $1 AND id <= $2",
        (Some(_), None) => "id > $1 AND $2::uuid IS NULL",
        (None, Some(_)) => "$1::uuid IS NULL AND id <= $2",
        (None, None) => "$1::uuid IS NULL AND $2::uuid IS NULL",
    };
    format!(
        "SELECT {} FROM agent_memories WHERE {bounds} ORDER BY id",
        legacy::VERIFY_SELECT
    )
}

/// Every plugin memory of `range`, in id order, page by page, but the
/// backfill's own (its checkpoint namespace): they are not migrated rows. A
/// plugin that answers ids past the range (it ignored `before`) is cut off
/// there.
async fn fetch_interval(client: Client, range: IdRange) -> Result<Vec<Memory>, String> {
    let mut out: Vec<Memory> = Vec::new();
    let mut after = range.after;
    // The last id read, kept or not.
    let mut last: Option<Uuid> = None;
    loop {
        let page = client
            .scan_memories(after, range.before(), limits::LIST_LIMIT_MAX)
            .await
            .map_err(|e| {
                format!(
                    "cannot scan the plugin's memories after {}: {}",
                    after.map_or_else(|| "the start".to_string(), |id| id.to_string()),
                    plugin::one_line(&e)
                )
            })?;
        let full = page.next_after.is_some() && !page.memories.is_empty();
        for m in page.memories {
            if last.is_some_and(|last| last >= m.id) {
                return Err("the plugin's scan is not in id order; cannot merge".into());
            }
            if !range.contains(m.id) {
                if range.upto.is_some_and(|u| m.id > u) {
                    return Ok(out);
                }
                return Err(format!(
                    "the plugin's scan after {} answered {}; cannot merge",
                    after.unwrap_or_default(),
                    m.id
                ));
            }
            last = Some(m.id);
            if m.namespace != CHECKPOINT_NAMESPACE {
                out.push(m);
            }
        }
        match (full, last) {
            (true, Some(last)) => after = Some(last),
            _ => return Ok(out),
        }
    }
}

/// One legacy stream and the plugin intervals it is merged with.
pub(super) struct Half {
    pub(super) pool: PgPool,
    pub(super) client: Client,
    /// Every workspace's placement and namespace names, resolved once.
    pub(super) places: Arc<HashMap<Uuid, Placed>>,
    pub(super) range: IdRange,
    pub(super) intervals: usize,
    pub(super) fetchers: usize,
    pub(super) carry: Carry,
    pub(super) counters: Arc<Counters>,
}

impl Half {
    pub(super) async fn merge(self) -> Result<VerifyReport, VerifyError> {
        let mut out = VerifyReport::default();
        // The plugin side is fetched by a task of its own, so that it runs
        // while Postgres sorts the legacy half and while rows are merged.
        let (tx, mut pages) = tokio::sync::mpsc::channel(self.fetchers);
        let client = self.client.clone();
        let intervals = self.range.split(self.intervals);
        let mut unreceived = intervals.len();
        let fetchers = self.fetchers;
        let _fetching = AbortOnDrop(tokio::spawn(async move {
            let fetched = futures::stream::iter(intervals)
                .map(move |interval| fetch_interval(client.clone(), interval))
                .buffered(fetchers);
            futures::pin_mut!(fetched);
            while let Some(interval) = fetched.next().await {
                let failed = interval.is_err();
                if tx.send(interval).await.is_err() || failed {
                    break;
                }
            }
        }));
        let mut plugin_rows: VecDeque<Memory> = VecDeque::new();
        // The next plugin memory; `Err` once the plugin failed.
        macro_rules! next_plugin {
            () => {
                loop {
                    if let Some(m) = plugin_rows.pop_front() {
                        break Ok(Some(m));
                    }
                    match pages.recv().await {
                        Some(Ok(rows)) => {
                            unreceived -= 1;
                            plugin_rows.extend(rows);
                        }
                        Some(Err(e)) => break Err(e),
                        None if unreceived == 0 => break Ok(None),
                        None => break Err("the plugin's scan stopped before its end".to_string()),
                    }
                }
            };
        }
        let sql = range_sql(self.range);
        let mut rows = sqlx::query(&sql)
            .bind(self.range.after)
            .bind(self.range.upto)
            .fetch(&self.pool);
        let legacy_err = || LegacyError::query("failed to read legacy rows in id order");
        let mut current: Option<Memory> = match next_plugin!() {
            Ok(m) => m,
            Err(e) => {
                out.error(e);
                return Ok(out);
            }
        };
        let mut unreported = 0u64;
        while let Some(r) = rows.try_next().await.map_err(legacy_err())? {
            let row =
                legacy::decode_row(&r).map_err(LegacyError::query("failed to decode a row"))?;
            let expected = match judge(&row, &self.places, self.carry) {
                Ok(namespace) => namespace,
                Err(skip) => {
                    out.skip(row.id, skip.reason, skip.detail);
                    continue;
                }
            };
            let content = row.content.as_deref().unwrap_or("");
            // Plugin memories before this id are not legacy rows: extras are fine.
            let mut failed = None;
            while current.as_ref().is_some_and(|m| m.id < row.id) {
                match next_plugin!() {
                    Ok(next) => current = next,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = failed {
                out.error(e);
                break;
            }
            out.rows_checked += 1;
            unreported += 1;
            if unreported >= PROGRESS_EVERY {
                Counters::add(&self.counters.scanned, unreported);
                unreported = 0;
            }
            match current.take_if(|m| m.id == row.id) {
                Some(m) => {
                    compare(&row, expected, &m, self.carry, &mut out);
                    match next_plugin!() {
                        Ok(next) => current = next,
                        Err(e) => {
                            out.error(e);
                            break;
                        }
                    }
                }
                None => out.mismatch(Mismatch {
                    kind: MismatchKind::Missing,
                    id: row.id,
                    workspace: row.workspace_id,
                    expected_namespace: expected.to_string(),
                    found_namespace: None,
                    excerpt: content_excerpt(content),
                    detail: None,
                }),
            }
        }
        Counters::add(&self.counters.scanned, unreported);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_id_space_once() {
        for n in [1, 2, 7, 32] {
            let ranges = IdRange::ALL.split(n);
            assert_eq!(ranges.len(), n);
            assert_eq!(ranges[0].after, None);
            assert_eq!(ranges[n - 1].upto, None);
            for w in ranges.windows(2) {
                assert_eq!(w[0].upto, w[1].after);
            }
            for probe in [
                0u128,
                1,
                u128::MAX / 3,
                u128::MAX / 2,
                u128::MAX - 1,
                u128::MAX,
            ] {
                let id = Uuid::from_u128(probe);
                assert_eq!(
                    ranges.iter().filter(|r| r.contains(id)).count(),
                    1,
                    "{id} in exactly one of {n} ranges"
                );
            }
        }
    }

    #[test]
    fn a_range_splits_into_its_own_pieces() {
        let half = IdRange::ALL.split(2)[1];
        let parts = half.split(5);
        assert_eq!(parts.len(), 5);
        assert_eq!(parts[0].after, half.after);
        assert_eq!(parts[4].upto, None);
        for w in parts.windows(2) {
            assert_eq!(w[0].upto, w[1].after);
        }
        // A range narrower than the pieces asked for splits less.
        let tiny = IdRange {
            after: Some(Uuid::from_u128(10)),
            upto: Some(Uuid::from_u128(13)),
        };
        assert_eq!(tiny.split(100).len(), 3);
        assert_eq!(tiny.before(), Some(Uuid::from_u128(14)));
        assert_eq!(IdRange::ALL.before(), None);
        let top = IdRange {
            after: None,
            upto: Some(Uuid::max()),
        };
        assert_eq!(top.before(), None);
    }

    #[test]
    fn a_range_between_two_ids_holds_both() {
        let low = Uuid::from_u128(0xabc0 << 112);
        let high = Uuid::from_u128(((0xabc1 << 112) - 1) | (0xabc0 << 112));
        let r = IdRange::between(low, high);
        assert!(r.contains(low) && r.contains(high));
        assert!(!r.contains(Uuid::from_u128(low.as_u128() - 1)));
        assert!(!r.contains(Uuid::from_u128(high.as_u128() + 1)));
        assert_eq!(IdRange::between(Uuid::nil(), Uuid::max()), IdRange::ALL);
    }

    #[test]
    fn range_queries_bind_both_bounds() {
        let r = IdRange {
            after: Some(Uuid::nil()),
            upto: None,
        };
        assert!(range_sql(r).contains("id > $1 AND $2::uuid IS NULL"));
        assert!(range_sql(IdRange::ALL).ends_with("ORDER BY id"));
    }
}
