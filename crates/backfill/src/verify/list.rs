//! The `list` method: the exact check of any scope, through the `list`
//! extension (the dry-run's diff uses it too, by [`list_compare`]).
//!
//! Workspaces are grouped into units that share no target namespace (in a
//! healthy tree, one org each: its workspaces, teams and org), and units are
//! packed into batches of about [`BATCH_ROWS`] legacy rows. For each batch:
//!
//! - one legacy query reads the batch's rows once, through the `workspace_id`
//!   index, with each row's target namespace computed inside the query from
//!   the placements sent along as arrays, sorted by (namespace, id);
//! - a task lists the batch's namespaces from the plugin in that same order,
//!   `concurrency` requests ahead;
//! - the two sorted streams are merged by id.
//!
//! Two batches run at once, so one batch's legacy query overlaps another's
//! listing. What is held: the rows of the pages in flight, the bounded
//! mismatch lists, and the ids of plugin rows found where no legacy row puts
//! them (to tell a row in the wrong namespace from a missing one).

use super::compare::{compare, may_be_too_large};
use super::report::{Mismatch, MismatchKind, VerifyError, VerifyReport};
use super::search::search_terms;
use super::selection::{estimated_rows, SCOPE_SQL};
use super::task::AbortOnDrop;
use crate::legacy::{self, LegacyError, LegacyRow};
use crate::mapping::{self, Carry, Scope};
use crate::plugin::{self, Plugin};
use crate::progress::Counters;
use crate::report::content_excerpt;
use crate::resolver::Resolver;
use futures::{StreamExt, TryStreamExt};
use memory_client::ClientError;
use memory_contract::{limits, ListResponse, Memory, NamespaceKind, SearchRequest};
use sqlx::{PgPool, Row};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use uuid::Uuid;

/// Legacy rows a batch aims at (an estimate: the table's row count over its
/// workspaces). Small enough for Postgres to sort in its default `work_mem`.
const BATCH_ROWS: f64 = 8_000.0;

/// Most workspaces in one batch (the size of the arrays sent with the query).
const BATCH_WORKSPACES: usize = 2_000;

/// Rows per workspace assumed when the table has no statistics.
const DEFAULT_ROWS_PER_WORKSPACE: f64 = 100.0;

/// Batches merged at once.
const BATCHES_IN_FLIGHT: usize = 2;

/// Most plugin rows remembered as "in an unexpected place".
const EXTRAS_CAP: usize = 200_000;

/// A legacy row not found in its namespace, to be classified at the end.
struct MissingCandidate {
    id: Uuid,
    workspace: Option<Uuid>,
    expected: String,
    excerpt: String,
}

/// Workspaces checked together, with their (workspace, team, org) targets.
#[derive(Debug, Default)]
struct Batch {
    members: Vec<(Uuid, Uuid, Uuid)>,
}

/// What one batch's merge produced.
#[derive(Default)]
struct BatchOutcome {
    checked: u64,
    report: VerifyReport,
    missing: Vec<MissingCandidate>,
    /// Plugin rows listed in a namespace where no legacy row of the batch
    /// expects them, with that namespace.
    extras: Vec<(Uuid, Arc<str>)>,
}

/// Batched merge for plugins with `list`.
pub(super) struct ListEngine<'r> {
    report: &'r mut VerifyReport,
    carry: Carry,
    counters: Arc<Counters>,
}

impl<'r> ListEngine<'r> {
    pub(super) fn new(report: &'r mut VerifyReport, carry: Carry, counters: Arc<Counters>) -> Self {
        ListEngine {
            report,
            carry,
            counters,
        }
    }

    /// Checks every row of `workspaces` (all of them in the tree).
    pub(super) async fn check(
        &mut self,
        pool: &PgPool,
        plugin: &Plugin,
        resolver: &mut Resolver,
        workspaces: &[Uuid],
        concurrency: usize,
    ) -> Result<(), VerifyError> {
        let per_workspace = rows_per_workspace(pool, resolver.tree().len()).await;
        let batches = plan_batches(resolver, workspaces, per_workspace);
        let sql = Arc::new(batch_sql());
        let carry = self.carry;
        let concurrency = concurrency.max(1);
        let results = futures::stream::iter(batches.into_iter().map(|batch| {
            let pool = pool.clone();
            let plugin = plugin.clone();
            let sql = sql.clone();
            async move { merge_batch(&pool, &plugin, &sql, batch, carry, concurrency).await }
        }))
        .buffer_unordered(BATCHES_IN_FLIGHT);
        futures::pin_mut!(results);
        let mut extras: HashMap<Uuid, Arc<str>> = HashMap::new();
        let mut candidates: Vec<MissingCandidate> = Vec::new();
        while let Some(outcome) = results.next().await {
            let mut outcome = outcome?;
            Counters::add(&self.counters.scanned, outcome.checked);
            outcome.report.rows_checked = outcome.checked;
            self.report.absorb(outcome.report);
            for (id, ns) in outcome.extras {
                if extras.len() < EXTRAS_CAP {
                    extras.insert(id, ns);
                }
            }
            for c in outcome.missing {
                if candidates.len() < crate::report::DETAIL_CAP * 10 {
                    candidates.push(c);
                } else {
                    self.report.mismatch(Mismatch {
                        kind: MismatchKind::Missing,
                        id: c.id,
                        workspace: c.workspace,
                        expected_namespace: c.expected,
                        found_namespace: None,
                        excerpt: c.excerpt,
                        detail: None,
                    });
                }
            }
        }
        // A row missing from its namespace but listed elsewhere is in the wrong place.
        for c in candidates {
            let found = match extras.get(&c.id) {
                Some(ns) => Some(ns.to_string()),
                None => find_elsewhere(plugin, resolver, &c).await,
            };
            self.report.mismatch(Mismatch {
                kind: if found.is_some() {
                    MismatchKind::WrongNamespace
                } else {
                    MismatchKind::Missing
                },
                id: c.id,
                workspace: c.workspace,
                expected_namespace: c.expected,
                found_namespace: found,
                excerpt: c.excerpt,
                detail: None,
            });
        }
        Ok(())
    }
}

/// Exact comparison through `list` of every row of `workspaces`, as used by
/// the dry-run diff. The plugin must advertise `list`.
///
/// # Errors
///
/// [`VerifyError`] when the legacy side cannot be read.
pub(crate) async fn list_compare(
    pool: &PgPool,
    plugin: &Plugin,
    resolver: &mut Resolver,
    workspaces: &[Uuid],
    carry: Carry,
    concurrency: usize,
) -> Result<VerifyReport, VerifyError> {
    let mut report = VerifyReport::default();
    let counters = Arc::new(Counters::default());
    let mut engine = ListEngine::new(&mut report, carry, counters);
    engine
        .check(pool, plugin, resolver, workspaces, concurrency)
        .await?;
    Ok(report)
}

/// Average legacy rows per workspace, from the planner's statistics.
async fn rows_per_workspace(pool: &PgPool, workspaces: usize) -> f64 {
    match estimated_rows(pool).await {
        Some(t) if workspaces > 0 => t / workspaces as f64,
        _ => DEFAULT_ROWS_PER_WORKSPACE,
    }
}

/// Groups `workspaces` into batches such that no target namespace is split
/// between two batches (a union-find over shared namespaces), in the order
/// of the workspaces given.
fn plan_batches(resolver: &mut Resolver, workspaces: &[Uuid], per_workspace: f64) -> Vec<Batch> {
    let mut placed: Vec<(Uuid, Uuid, Uuid)> = Vec::with_capacity(workspaces.len());
    let mut seen = std::collections::HashSet::with_capacity(workspaces.len());
    for ws in workspaces {
        if !seen.insert(*ws) {
            continue;
        }
        if let Some(p) = resolver.place(*ws) {
            placed.push((p.workspace, p.team, p.org));
        }
    }
    drop(seen);
    let mut parent: Vec<u32> = (0..placed.len() as u32).collect();
    fn find(parent: &mut [u32], mut i: u32) -> u32 {
        while parent[i as usize] != i {
            let up = parent[parent[i as usize] as usize];
            parent[i as usize] = up;
            i = up;
        }
        i
    }
    // Namespaces by (kind, id): the first workspace that targets each.
    let mut owner: HashMap<(u8, Uuid), u32> = HashMap::with_capacity(placed.len() * 2);
    for (i, (w, t, o)) in placed.iter().enumerate() {
        let i = i as u32;
        for key in [(0u8, *w), (1, *t), (2, *o)] {
            let first = *owner.entry(key).or_insert(i);
            let (a, b) = (find(&mut parent, first), find(&mut parent, i));
            if a != b {
                // The smaller root stays, so units keep the input order.
                let (keep, join) = if a < b { (a, b) } else { (b, a) };
                parent[join as usize] = keep;
            }
        }
    }
    drop(owner);
    let mut units: Vec<Vec<u32>> = Vec::new();
    let mut unit_of_root: HashMap<u32, usize> = HashMap::new();
    for i in 0..placed.len() as u32 {
        let root = find(&mut parent, i);
        let u = *unit_of_root.entry(root).or_insert_with(|| {
            units.push(Vec::new());
            units.len() - 1
        });
        units[u].push(i);
    }
    let per_workspace = per_workspace.max(f64::MIN_POSITIVE);
    let mut batches = Vec::new();
    let mut current = Batch::default();
    for unit in units {
        let grown = current.members.len() + unit.len();
        if !current.members.is_empty()
            && (grown as f64 * per_workspace > BATCH_ROWS || grown > BATCH_WORKSPACES)
        {
            batches.push(std::mem::take(&mut current));
        }
        current
            .members
            .extend(unit.into_iter().map(|i| placed[i as usize]));
    }
    if !current.members.is_empty() {
        batches.push(current);
    }
    batches
}

/// The legacy query of a batch: `$1` workspaces, `$2`..`$4` the index of
/// their workspace, team and org namespace. Rows of unknown scope are left
/// out (they are listed as skips by their own query).
fn batch_sql() -> String {
    format!(
        "SELECT CASE {SCOPE_SQL} WHEN 'LOCAL' THEN t.l WHEN 'TEAM' THEN t.tm ELSE t.o END AS verify_ns,
                {select}
           FROM unnest($1::uuid[], $2::int4[], $3::int4[], $4::int4[]) AS t(ws, l, tm, o)
           JOIN agent_memories ON agent_memories.workspace_id = t.ws
          WHERE {SCOPE_SQL} IN ('LOCAL', 'TEAM', 'GLOBAL')
          ORDER BY 1, agent_memories.id",
        select = legacy::VERIFY_SELECT
    )
}

/// The namespaces of a batch, in index order, and the query's arrays.
struct Indexed {
    names: Vec<(Arc<str>, NamespaceKind)>,
    workspaces: Vec<Uuid>,
    local: Vec<i32>,
    team: Vec<i32>,
    org: Vec<i32>,
}

fn index_batch(batch: &Batch) -> Indexed {
    let mut at: HashMap<(u8, Uuid), i32> = HashMap::new();
    let mut out = Indexed {
        names: Vec::new(),
        workspaces: Vec::with_capacity(batch.members.len()),
        local: Vec::with_capacity(batch.members.len()),
        team: Vec::with_capacity(batch.members.len()),
        org: Vec::with_capacity(batch.members.len()),
    };
    for (w, t, o) in &batch.members {
        let mut idx = [0i32; 3];
        for (slot, (tag, kind, id)) in [
            (0u8, NamespaceKind::Workspace, *w),
            (1, NamespaceKind::Team, *t),
            (2, NamespaceKind::Org, *o),
        ]
        .into_iter()
        .enumerate()
        {
            idx[slot] = *at.entry((tag, id)).or_insert_with(|| {
                out.names
                    .push((mapping::namespace_name(kind, id).into(), kind));
                (out.names.len() - 1) as i32
            });
        }
        out.workspaces.push(*w);
        out.local.push(idx[0]);
        out.team.push(idx[1]);
        out.org.push(idx[2]);
    }
    out
}

type FirstPage = (usize, Result<ListResponse, ClientError>);

/// Merges one batch: its legacy rows (sorted by namespace, id) against the
/// plugin's listing of its namespaces, fetched ahead by a task of its own.
async fn merge_batch(
    pool: &PgPool,
    plugin: &Plugin,
    sql: &str,
    batch: Batch,
    carry: Carry,
    concurrency: usize,
) -> Result<BatchOutcome, VerifyError> {
    let indexed = index_batch(&batch);
    drop(batch);
    let names: Arc<[(Arc<str>, NamespaceKind)]> = indexed.names.into();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<FirstPage>(concurrency);
    let lister = {
        let names = names.clone();
        let plugin = plugin.clone();
        tokio::spawn(async move {
            let pages = futures::stream::iter(0..names.len())
                .map(|i| {
                    let plugin = &plugin;
                    let name = names[i].0.clone();
                    async move {
                        let page = plugin
                            .client
                            .list_memories(&name, None, limits::LIST_LIMIT_MAX)
                            .await;
                        (i, page)
                    }
                })
                .buffered(concurrency);
            futures::pin_mut!(pages);
            while let Some(item) = pages.next().await {
                if tx.send(item).await.is_err() {
                    break;
                }
            }
        })
    };
    let _stop_lister = AbortOnDrop(lister);

    let mut out = BatchOutcome::default();
    let mut rows = sqlx::query(sql)
        .bind(&indexed.workspaces)
        .bind(&indexed.local)
        .bind(&indexed.team)
        .bind(&indexed.org)
        .fetch(pool);
    let legacy_err =
        || LegacyError::query("failed to read the legacy rows of a batch of workspaces");
    let mut current: Option<NamespaceMerge> = None;
    while let Some(r) = rows.try_next().await.map_err(legacy_err())? {
        let ns: i32 = r
            .try_get("verify_ns")
            .map_err(LegacyError::query("bad namespace index"))?;
        let row = legacy::decode_row(&r).map_err(LegacyError::query("failed to decode a row"))?;
        let ns = usize::try_from(ns).unwrap_or(usize::MAX);
        if current.as_ref().map(|c| c.index) != Some(ns) {
            if let Some(done) = current.take() {
                if ns < done.index {
                    return Err(
                        LegacyError::query("legacy rows came out of namespace order")(
                            sqlx::Error::Protocol("ORDER BY not honoured".into()),
                        )
                        .into(),
                    );
                }
                done.finish(plugin, &mut out).await;
            }
            // Namespaces of the batch without legacy rows are passed over.
            let first = loop {
                match rx.recv().await {
                    Some((i, page)) if i == ns => break page,
                    Some(_) => continue,
                    None => {
                        return Err(LegacyError::query("a namespace index outside the batch")(
                            sqlx::Error::Protocol(format!("namespace index {ns}")),
                        )
                        .into())
                    }
                }
            };
            let Some((name, kind)) = names.get(ns).cloned() else {
                continue;
            };
            current = Some(NamespaceMerge::start(plugin, ns, name, kind, first, &mut out).await);
        }
        if let Some(merge) = current.as_mut() {
            merge.row(plugin, row, carry, &mut out).await;
        }
    }
    if let Some(done) = current.take() {
        done.finish(plugin, &mut out).await;
    }
    Ok(out)
}

/// The merge of one namespace: the legacy rows that map to it, in id order,
/// against the plugin's pages of it, in id order.
struct NamespaceMerge {
    index: usize,
    name: Arc<str>,
    kind: NamespaceKind,
    page: VecDeque<Memory>,
    after: Option<Uuid>,
    done: bool,
    failed: bool,
    last_plugin_id: Option<Uuid>,
    current: Option<Memory>,
    checked: u64,
}

impl NamespaceMerge {
    async fn start(
        plugin: &Plugin,
        index: usize,
        name: Arc<str>,
        kind: NamespaceKind,
        first: Result<ListResponse, ClientError>,
        out: &mut BatchOutcome,
    ) -> Self {
        let mut merge = NamespaceMerge {
            index,
            name,
            kind,
            page: VecDeque::new(),
            after: None,
            done: false,
            failed: false,
            last_plugin_id: None,
            current: None,
            checked: 0,
        };
        merge.take_page(first, out);
        merge.current = merge.next_plugin(plugin, out).await;
        merge
    }

    fn take_page(&mut self, page: Result<ListResponse, ClientError>, out: &mut BatchOutcome) {
        match page {
            Ok(resp) => {
                self.done = resp.next_after.is_none() || resp.memories.is_empty();
                self.after = resp.next_after.or(resp.memories.last().map(|m| m.id));
                self.page.extend(resp.memories);
            }
            Err(e) if e.is_not_found() => self.done = true,
            Err(e) => {
                self.failed = true;
                out.report.error(format!(
                    "cannot list {}: {}",
                    self.name,
                    plugin::one_line(&e)
                ));
            }
        }
    }

    /// The next plugin memory of the namespace, paging as needed.
    async fn next_plugin(&mut self, plugin: &Plugin, out: &mut BatchOutcome) -> Option<Memory> {
        loop {
            if let Some(m) = self.page.pop_front() {
                return Some(m);
            }
            if self.done || self.failed {
                return None;
            }
            let page = plugin
                .client
                .list_memories(&self.name, self.after, limits::LIST_LIMIT_MAX)
                .await;
            self.take_page(page, out);
        }
    }

    async fn row(&mut self, plugin: &Plugin, row: LegacyRow, carry: Carry, out: &mut BatchOutcome) {
        // Same skip rules as apply (scope and workspace are known good here).
        if let Some(skip) = mapping::content_skip(&row) {
            out.report.skip(row.id, skip.reason, skip.detail);
            return;
        }
        let content = row.content.as_deref().unwrap_or("");
        if may_be_too_large(content) {
            let target = self.target();
            if let Err(skip) = mapping::to_write(&row, &target, carry) {
                out.report.skip(row.id, skip.reason, skip.detail);
                return;
            }
        }
        if self.failed {
            return;
        }
        self.checked += 1;
        // Plugin rows before this id are rows legacy does not put here.
        while let Some(m) = self.current.take_if(|m| m.id < row.id) {
            if self.last_plugin_id.is_some_and(|l| l >= m.id) {
                out.report.error(format!(
                    "the plugin listed {} out of id order; cannot merge",
                    self.name
                ));
                self.failed = true;
                return;
            }
            self.last_plugin_id = Some(m.id);
            if out.extras.len() < EXTRAS_CAP {
                out.extras.push((m.id, self.name.clone()));
            }
            self.current = self.next_plugin(plugin, out).await;
        }
        if self.failed {
            return;
        }
        match self.current.take_if(|m| m.id == row.id) {
            Some(m) => {
                compare(&row, &self.name, &m, carry, &mut out.report);
                self.last_plugin_id = Some(m.id);
                self.current = self.next_plugin(plugin, out).await;
            }
            None => out.missing.push(MissingCandidate {
                id: row.id,
                workspace: row.workspace_id,
                expected: self.name.to_string(),
                excerpt: content_excerpt(content),
            }),
        }
    }

    /// The rest of the plugin's rows are extras; counts the namespace's rows
    /// as checked unless its listing failed.
    async fn finish(mut self, plugin: &Plugin, out: &mut BatchOutcome) {
        while let Some(m) = self.current.take() {
            if out.extras.len() >= EXTRAS_CAP {
                break;
            }
            out.extras.push((m.id, self.name.clone()));
            self.current = self.next_plugin(plugin, out).await;
        }
        if !self.failed {
            out.checked += self.checked;
        }
    }

    fn target(&self) -> mapping::Target {
        mapping::Target {
            scope: scope_of(self.kind),
            namespace: self.name.to_string(),
            kind: self.kind,
            placement: crate::resolver::Placement {
                workspace: Uuid::nil(),
                team: Uuid::nil(),
                org: Uuid::nil(),
                is_root: true,
                removed: false,
                walk_end: crate::resolver::WalkEnd::Root,
            },
            global_from_non_root: false,
        }
    }
}

fn scope_of(kind: NamespaceKind) -> Scope {
    match kind {
        NamespaceKind::Team => Scope::Team,
        NamespaceKind::Org => Scope::Global,
        _ => Scope::Local,
    }
}

/// Searches the row's workspace's readable namespaces for its id.
async fn find_elsewhere(
    plugin: &Plugin,
    resolver: &mut Resolver,
    c: &MissingCandidate,
) -> Option<String> {
    let ws = c.workspace?;
    let p = resolver.place(ws)?;
    let mut namespaces = vec![
        mapping::namespace_name(NamespaceKind::Workspace, p.workspace),
        mapping::namespace_name(NamespaceKind::Team, p.team),
        mapping::namespace_name(NamespaceKind::Org, p.org),
    ];
    namespaces.retain(|n| n != &c.expected);
    namespaces.dedup();
    let query = search_terms(&c.excerpt);
    let req = SearchRequest {
        namespaces,
        query,
        limit: Some(i64::from(limits::SEARCH_LIMIT_MAX)),
        ..SearchRequest::default()
    };
    let found = plugin.client.search(&req).await.ok()?;
    found
        .memories
        .into_iter()
        .find(|m| m.id == c.id)
        .map(|m| m.namespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolver::WorkspaceTree;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn batches_never_split_a_namespace() {
        // Two orgs: 1 (children 2, 3; 4 under 2) and 10 (child 11).
        let tree = WorkspaceTree::from_nodes([
            (id(1), None, false),
            (id(2), Some(id(1)), false),
            (id(3), Some(id(1)), false),
            (id(4), Some(id(2)), false),
            (id(10), None, false),
            (id(11), Some(id(10)), false),
        ]);
        let mut resolver = Resolver::new(tree);
        let all: Vec<Uuid> = [4, 11, 1, 2, 3, 10].map(id).to_vec();
        // One row per workspace: every unit exceeds the budget on its own.
        let batches = plan_batches(&mut resolver, &all, BATCH_ROWS);
        assert_eq!(batches.len(), 2);
        let ws = |b: &Batch| {
            let mut v: Vec<Uuid> = b.members.iter().map(|m| m.0).collect();
            v.sort();
            v
        };
        assert_eq!(ws(&batches[0]), [1, 2, 3, 4].map(id).to_vec());
        assert_eq!(ws(&batches[1]), [10, 11].map(id).to_vec());
        // Small units share a batch.
        let batches = plan_batches(&mut resolver, &all, 1.0);
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].members.len(), 6);
    }

    #[test]
    fn cycles_and_repeats_are_one_unit_each() {
        // 8 <-> 9 is a cycle with no root, 10 hangs under 8; 7 is alone.
        let tree = WorkspaceTree::from_nodes([
            (id(8), Some(id(9)), false),
            (id(9), Some(id(8)), false),
            (id(10), Some(id(8)), false),
            (id(7), None, false),
        ]);
        let mut resolver = Resolver::new(tree);
        let batches = plan_batches(&mut resolver, &[8, 9, 10, 7, 8].map(id), BATCH_ROWS);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].members.len(), 3);
        assert_eq!(batches[1].members.len(), 1);
    }

    #[test]
    fn batch_indexes_share_namespaces() {
        let b = Batch {
            members: vec![(id(1), id(1), id(1)), (id(2), id(1), id(1))],
        };
        let ix = index_batch(&b);
        let names: Vec<&str> = ix.names.iter().map(|(n, _)| n.as_ref()).collect();
        assert_eq!(
            names,
            [
                format!("workspace:{}", id(1)),
                format!("team:{}", id(1)),
                format!("org:{}", id(1)),
                format!("workspace:{}", id(2)),
            ]
        );
        assert_eq!(ix.local, [0, 3]);
        assert_eq!(ix.team, [1, 1]);
        assert_eq!(ix.org, [2, 2]);
    }
}
