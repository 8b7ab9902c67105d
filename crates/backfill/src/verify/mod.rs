//! `-verify`: parity between the legacy table and the plugin.
//!
//! Four methods ([`VerifyMethod`]), all in bounded memory:
//!
//! - [`checksum`] (`-all` with the `checksum` and `scan` extensions):
//!   digests per id bucket on both sides, then a [`scan`] merge of the
//!   buckets that differ;
//! - [`scan`] (`-all` with the `scan` extension): one pass over both sides in
//!   id order;
//! - [`list`] (the `list` extension): each target namespace's legacy rows
//!   merged by id with the plugin's pages of that namespace, in batches of
//!   workspaces that share namespaces;
//! - search, below.
//!
//! Without `list` (a v1-only plugin) a workspace is checked with searches:
//! each readable namespace's first 100 memories, then for every row not seen
//! there a targeted full-text search built from its content. A namespace that
//! returned fewer than 100 memories was seen whole, so a row absent from it is
//! definitely missing; a row not found in a larger namespace makes the
//! workspace *unverified* (with the reason), never a mismatch.
//!
//! The backfill's own checkpoint memories (namespace
//! `custom:memory-backfill`) are never counted as plugin rows: `checksum`
//! takes them out of the plugin's buckets, `scan` drops them from its pages,
//! and `list` and search read only the namespaces legacy rows map to.

mod checksum;
mod list;
mod scan;

use crate::cli::{Plan, VerifyMethod, VerifyScope};
use crate::legacy::{self, LegacyError, LegacyRow, LegacySchema};
use crate::mapping::{self, Carry, SkipReason};
use crate::plugin::{self, Plugin};
use crate::report::{content_excerpt, Capped, SkippedRow};
use crate::resolver::{Resolver, WorkspaceTree};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use memory_contract::{limits, Memory, NamespaceKind, SearchRequest};
use serde::Serialize;
use sqlx::{PgPool, Row};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::{self, Write as _};
use std::time::Instant;
use uuid::Uuid;

/// Kinds of mismatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MismatchKind {
    Missing,
    WrongNamespace,
    ContentDiffers,
    CreatedAtDiffers,
}

impl MismatchKind {
    /// The kind's name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            MismatchKind::Missing => "missing",
            MismatchKind::WrongNamespace => "wrong_namespace",
            MismatchKind::ContentDiffers => "content_differs",
            MismatchKind::CreatedAtDiffers => "created_at_differs",
        }
    }
}

/// One legacy row the plugin does not hold as it should.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    pub kind: MismatchKind,
    pub id: Uuid,
    pub workspace: Option<Uuid>,
    pub expected_namespace: String,
    /// Where the row was found, when it was found somewhere else.
    pub found_namespace: Option<String>,
    /// The legacy content, cut on a character boundary.
    pub excerpt: String,
    /// What differs (the plugin's excerpt, or both timestamps).
    pub detail: Option<String>,
}

/// A workspace that could not be checked exactly.
#[derive(Debug, Clone, Serialize)]
pub struct Unverified {
    pub workspace: Uuid,
    pub reason: String,
}

/// The report of `-verify`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub mode: &'static str,
    /// `checksum` (exact, digests per id bucket, then the buckets that
    /// differ row by row), `scan` (exact, one pass in id order), `list`
    /// (exact, per namespace) or `search` (v1).
    pub method: &'static str,
    /// What was verified: `sample`, `workspace` or `all`.
    pub scope: String,
    /// Seed of the sample (pass it to `-seed` to repeat the same sample).
    pub seed: Option<i64>,
    /// The sampled workspaces (sample mode only).
    pub sampled: Vec<Uuid>,
    pub workspaces_checked: u64,
    /// Legacy rows compared with the plugin.
    pub rows_checked: u64,
    pub rows_matched: u64,
    pub mismatch_counts: BTreeMap<MismatchKind, u64>,
    pub mismatches: Capped<Mismatch>,
    /// Rows apply skips, per reason (not mismatches).
    pub skipped: BTreeMap<SkipReason, u64>,
    pub skipped_rows: Capped<SkippedRow>,
    pub unverified: Capped<Unverified>,
    pub errors: u64,
    pub error_messages: Capped<String>,
    pub warnings: Vec<String>,
    pub elapsed_seconds: f64,
}

impl VerifyReport {
    /// 0 only when nothing differs, nothing is unverified and nothing failed.
    pub fn exit_code(&self) -> u8 {
        if self.mismatches.total() > 0 || self.unverified.total() > 0 || self.errors > 0 {
            1
        } else {
            0
        }
    }

    fn mismatch(&mut self, m: Mismatch) {
        *self.mismatch_counts.entry(m.kind).or_default() += 1;
        self.mismatches.push(m);
    }

    fn skip(&mut self, id: Uuid, reason: SkipReason, detail: String) {
        *self.skipped.entry(reason).or_default() += 1;
        self.skipped_rows.push(SkippedRow { id, reason, detail });
    }

    fn error(&mut self, message: String) {
        self.errors += 1;
        self.error_messages.push(message);
    }

    /// Adds the rows, mismatches, skips and errors of a part of the check.
    fn absorb(&mut self, part: VerifyReport) {
        self.rows_checked += part.rows_checked;
        self.rows_matched += part.rows_matched;
        for (k, n) in part.mismatch_counts {
            *self.mismatch_counts.entry(k).or_default() += n;
        }
        self.mismatches.absorb(part.mismatches);
        for (reason, n) in part.skipped {
            *self.skipped.entry(reason).or_default() += n;
        }
        self.skipped_rows.absorb(part.skipped_rows);
        self.unverified.absorb(part.unverified);
        self.errors += part.errors;
        self.error_messages.absorb(part.error_messages);
        self.warnings.extend(part.warnings);
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        for w in &self.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        for m in &self.mismatches.items {
            let _ = writeln!(
                out,
                "{} {} expected in {}{}: {:?}{}",
                m.kind.as_str(),
                m.id,
                m.expected_namespace,
                m.found_namespace
                    .as_ref()
                    .map(|n| format!(", found in {n}"))
                    .unwrap_or_default(),
                m.excerpt,
                m.detail
                    .as_ref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            );
        }
        if self.mismatches.omitted > 0 {
            let _ = writeln!(
                out,
                "... {} more mismatches not listed",
                self.mismatches.omitted
            );
        }
        for u in &self.unverified.items {
            let _ = writeln!(out, "unverified workspace {}: {}", u.workspace, u.reason);
        }
        for e in &self.error_messages.items {
            let _ = writeln!(out, "error: {e}");
        }
        for s in &self.skipped_rows.items {
            let _ = writeln!(out, "skipped {} {}: {}", s.id, s.reason.as_str(), s.detail);
        }
        let _ = writeln!(
            out,
            "memory-backfill verify summary ({} method, {}{})",
            self.method,
            self.scope,
            self.seed.map(|s| format!(", seed {s}")).unwrap_or_default()
        );
        let _ = writeln!(out, "  workspaces checked: {}", self.workspaces_checked);
        let _ = writeln!(out, "  rows checked:       {}", self.rows_checked);
        let _ = writeln!(out, "  rows matched:       {}", self.rows_matched);
        let _ = writeln!(out, "  mismatches:         {}", self.mismatches.total());
        for (k, n) in &self.mismatch_counts {
            let _ = writeln!(out, "    {:<20}{n}", k.as_str());
        }
        let skipped: u64 = self.skipped.values().sum();
        let _ = writeln!(out, "  skipped (as apply): {skipped}");
        for (r, n) in &self.skipped {
            let _ = writeln!(out, "    {:<20}{n}", r.as_str());
        }
        let _ = writeln!(out, "  unverified:         {}", self.unverified.total());
        let _ = writeln!(out, "  errors:             {}", self.errors);
        let _ = writeln!(
            out,
            "  result:             {}",
            if self.exit_code() == 0 {
                "PASS"
            } else {
                "FAIL"
            }
        );
        let _ = writeln!(out, "  elapsed:            {:.1} s", self.elapsed_seconds);
        f.write_str(&out)
    }
}

/// Failure that stops verification before it starts.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Legacy(#[from] LegacyError),
    #[error(transparent)]
    Tree(#[from] crate::resolver::TreeLoadError),
    /// The method asked for is one the plugin does not offer.
    #[error("{0}")]
    Unsupported(String),
}

/// The carry rules verify assumes (no probe writes: verify writes nothing).
pub fn assumed_carry(plugin: &Plugin, schema: &LegacySchema) -> Carry {
    Carry {
        created_at: plugin.caps.created_at,
        embedding: plugin.caps.embedding && schema.has_embedding && schema.embedding_dim.is_some(),
    }
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

/// Runs `-verify`.
///
/// # Errors
///
/// [`VerifyError`] when the legacy side cannot be read at all.
pub async fn run(
    pool: &PgPool,
    plugin: &Plugin,
    schema: &LegacySchema,
    plan: &Plan,
    show_progress: bool,
) -> Result<VerifyReport, VerifyError> {
    let started = Instant::now();
    let method = choose_method(plugin, plan)?;
    let tree = WorkspaceTree::load(pool, schema.has_status).await?;
    let mut report = VerifyReport {
        mode: "verify",
        method: method.as_str(),
        ..VerifyReport::default()
    };
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
    let workspaces = pick_workspaces(
        pool,
        schema,
        &tree,
        plan.verify,
        seed.unwrap_or(0),
        &mut report,
    )
    .await?;
    report.workspaces_checked = workspaces.len() as u64;
    if matches!(plan.verify, VerifyScope::Sample(_)) {
        report.sampled = workspaces.clone();
    }
    let carry = assumed_carry(plugin, schema);
    let progress = crate::progress::Progress::start("verify", None, show_progress);
    let counters = progress.counters();

    // Rows apply would skip before placing them are listed by their own
    // queries, which run while the namespaces are merged.
    let listing_scope = workspaces.clone();
    let all = plan.verify == VerifyScope::All;
    let skip_listing = async move {
        let mut skips = VerifyReport::default();
        if matches!(method, VerifyMethod::Scan | VerifyMethod::Checksum) {
            // The method's own pass over the table lists them.
        } else if all {
            unplaceable_skips(pool, &mut skips).await?;
        } else {
            unknown_scope_skips(pool, &listing_scope, &mut skips).await?;
        }
        Ok::<VerifyReport, LegacyError>(skips)
    };
    // A workspace that is not in the table: its rows are skips, not checks.
    let mut known = Vec::with_capacity(workspaces.len());
    for ws in workspaces {
        if tree.get(ws).is_some() {
            known.push(ws);
        } else {
            report
                .warnings
                .push(format!("workspace {ws} is not in the workspaces table"));
            dangling_skips(pool, ws, &mut report).await?;
        }
    }
    let workspaces = known;
    let mut resolver = Resolver::new(tree);
    let concurrency = plan.verify_concurrency();
    let checking = async {
        if matches!(method, VerifyMethod::Scan | VerifyMethod::Checksum) {
            let table = scan::WholeTable {
                pool,
                plugin,
                places: scan::placements(resolver.tree()),
                carry,
                concurrency,
                counters: &counters,
            };
            let part = if method == VerifyMethod::Scan {
                scan::check(&table).await?
            } else {
                // A fall-back to a full merge says so in its report.
                let part = checksum::check(&table).await?;
                report.method = part.method;
                part
            };
            report.absorb(part);
            Ok(())
        } else if method == VerifyMethod::List {
            let mut engine = list::ListEngine::new(&mut report, carry, counters.clone());
            engine
                .check(pool, plugin, &mut resolver, &workspaces, concurrency)
                .await
        } else {
            for ws in &workspaces {
                check_workspace_by_search(pool, plugin, &mut resolver, *ws, carry, &mut report)
                    .await?;
                crate::progress::Counters::add(&counters.scanned, 1);
            }
            Ok(())
        }
    };
    let (checked, skips) = tokio::join!(checking, skip_listing);
    checked?;
    report.absorb(skips?);
    progress.finish().await;
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    Ok(report)
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
    let counters = std::sync::Arc::new(crate::progress::Counters::default());
    let mut engine = list::ListEngine::new(&mut report, carry, counters);
    engine
        .check(pool, plugin, resolver, workspaces, concurrency)
        .await?;
    Ok(report)
}

const SCOPE_SQL: &str = "upper(btrim(scope::text, E' \\t\\n\\r\\f\\v'))";

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

/// Aborts a task when dropped, so that a failing merge stops its helpers.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// Whether a content could make a write larger than the plugin accepts
/// (JSON escaping at most sextuples a character's bytes), so that apply's
/// `too_large` rule must be checked.
fn may_be_too_large(content: &str) -> bool {
    may_be_too_large_len(content.len())
}

/// [`may_be_too_large`] of a content of `len` bytes.
fn may_be_too_large_len(len: usize) -> bool {
    len.saturating_mul(6) + 4096 > limits::BODY_MAX_BYTES
}

/// Compares one plugin memory with the legacy row of the same id.
fn compare(
    row: &LegacyRow,
    expected_ns: &str,
    found: &Memory,
    carry: Carry,
    report: &mut VerifyReport,
) {
    let content = row.content.as_deref().unwrap_or("");
    let base = |kind, detail| Mismatch {
        kind,
        id: row.id,
        workspace: row.workspace_id,
        expected_namespace: expected_ns.to_string(),
        found_namespace: (found.namespace != expected_ns).then(|| found.namespace.clone()),
        excerpt: content_excerpt(content),
        detail,
    };
    if found.namespace != expected_ns {
        report.mismatch(base(MismatchKind::WrongNamespace, None));
        return;
    }
    let mut ok = true;
    if found.content != content {
        ok = false;
        report.mismatch(base(
            MismatchKind::ContentDiffers,
            Some(format!(
                "plugin holds {:?}",
                content_excerpt(&found.content)
            )),
        ));
    }
    if carry.created_at {
        if let Some(expected) = row.created_at {
            if !same_instant(expected, found.created_at) {
                ok = false;
                report.mismatch(base(
                    MismatchKind::CreatedAtDiffers,
                    Some(format!(
                        "legacy {} vs plugin {}",
                        expected.to_rfc3339(),
                        found.created_at.to_rfc3339()
                    )),
                ));
            }
        }
    }
    if ok {
        report.rows_matched += 1;
    }
}

/// Equal to the microsecond (Postgres' precision).
fn same_instant(a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    a.timestamp_micros() == b.timestamp_micros()
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

    #[test]
    fn only_huge_contents_need_the_size_check() {
        assert!(!may_be_too_large(&"x".repeat(500)));
        assert!(may_be_too_large(&"x".repeat(limits::BODY_MAX_BYTES)));
    }

    #[test]
    fn seeds_map_into_setseed_range() {
        for s in [i64::MIN, -1, 0, 1, 42, i64::MAX] {
            let f = seed_fraction(s);
            assert!((-1.0..=1.0).contains(&f), "{s} -> {f}");
        }
        assert_eq!(seed_fraction(7), seed_fraction(7));
    }
}
