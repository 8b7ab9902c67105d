//! `-dry-run`: everything apply would do, without writing anywhere.
//!
//! Reads and maps the rows apply would read (same filters), counts them per
//! scope, namespace kind and skip reason, names the columns that would not
//! travel, checks which target namespaces already exist, and, when the plugin
//! can list, compares every row with what the plugin holds (new, identical,
//! different). Only reads: GET, search and list on the plugin; SELECT on the
//! legacy database.

use crate::apply::{count_skip, count_target, NotCarried};
use crate::checkpoint::{self, CheckpointSlot};
use crate::cli::Plan;
use crate::legacy::{self, LegacyError, LegacySchema, ScanFilter};
use crate::mapping;
use crate::plugin::{self, Capabilities, Plugin};
use crate::progress::{Counters, Progress};
use crate::report::{write_scan_counts, Capped, ScanCounts};
use crate::resolver::{Resolver, WorkspaceTree};
use crate::verify::{self, MismatchKind, VerifyError};
use futures::StreamExt;
use memory_contract::{NamespaceKind, SearchRequest};
use serde::Serialize;
use sqlx::PgPool;
use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::time::Instant;
use uuid::Uuid;

/// Rows new / identical / different in the plugin, by id.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Diff {
    /// Not in the plugin yet: apply will create them.
    pub new: u64,
    /// Already there, same namespace, content (and created_at when carried).
    pub identical: u64,
    /// There with another content or created_at: apply will overwrite them.
    pub different: u64,
    /// The id lives in another namespace: apply will fail on them (409).
    pub in_other_namespace: u64,
}

/// The report of `-dry-run`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DryRunReport {
    pub mode: &'static str,
    pub capabilities: Capabilities,
    /// `batch` or `single`.
    pub write_path: &'static str,
    pub counts: ScanCounts,
    /// Columns that will not travel, with rows holding non-default values.
    pub not_carried: BTreeMap<String, u64>,
    /// Notes on carried columns (e.g. why embeddings do not travel).
    pub notes: Vec<String>,
    /// Distinct target namespaces per kind.
    pub namespaces_needed: BTreeMap<String, u64>,
    /// With `list`: target namespaces that exist already (kept as they are).
    pub namespaces_existing: Option<u64>,
    /// Without `list`: namespaces known to exist (they hold memories), whose
    /// metadata and expiry a v1 upsert would reset. Empty namespaces cannot
    /// be seen through v1, so any other needed namespace might be reset too.
    pub namespaces_reset_by_upsert: Capped<String>,
    /// With `list` and no `-limit`: the comparison with the plugin.
    pub diff: Option<Diff>,
    /// The stored checkpoint, and rows after it.
    pub checkpoint: Option<Uuid>,
    /// The namespace and memory apply keeps its checkpoint in (not migrated
    /// data). None with `-workspace`, which does not use it.
    pub checkpoint_namespace: Option<&'static str>,
    pub checkpoint_id: Option<Uuid>,
    pub remaining_after_checkpoint: Option<u64>,
    pub errors: u64,
    pub error_messages: Capped<String>,
    pub elapsed_seconds: f64,
}

impl DryRunReport {
    /// 1 when the plugin could not be read for part of the report.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.errors > 0)
    }
}

impl fmt::Display for DryRunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "memory-backfill dry-run summary (nothing written; apply would use {} writes)",
            self.write_path
        );
        write_scan_counts(&mut out, &self.counts);
        let kinds: Vec<String> = self
            .namespaces_needed
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        let _ = writeln!(out, "  namespaces needed:  {}", kinds.join(" "));
        if let Some(n) = self.namespaces_existing {
            let _ = writeln!(out, "  namespaces present: {n} (kept as they are)");
        }
        if !self.capabilities.list {
            let _ = writeln!(
                out,
                "  v1 plugin: upserting a namespace resets its metadata and expiry; {} needed namespaces hold memories already and would be reset (empty ones cannot be seen through v1):",
                self.namespaces_reset_by_upsert.total()
            );
            for n in &self.namespaces_reset_by_upsert.items {
                let _ = writeln!(out, "    {n}");
            }
            if self.namespaces_reset_by_upsert.omitted > 0 {
                let _ = writeln!(
                    out,
                    "    ... {} more",
                    self.namespaces_reset_by_upsert.omitted
                );
            }
        }
        for (col, n) in &self.not_carried {
            let _ = writeln!(
                out,
                "  not carried:        {col} ({n} rows with a non-default value)"
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "  note:               {note}");
        }
        match &self.diff {
            Some(d) => {
                let _ = writeln!(
                    out,
                    "  diff with plugin:   {} new, {} identical, {} different, {} in another namespace",
                    d.new, d.identical, d.different, d.in_other_namespace
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "  diff with plugin:   not computed ({})",
                    if self.capabilities.list {
                        "not with -limit"
                    } else {
                        "the plugin does not advertise list"
                    }
                );
            }
        }
        if let Some(r) = self.remaining_after_checkpoint {
            let _ = writeln!(
                out,
                "  checkpoint:         {} ({r} rows after it)",
                self.checkpoint
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "none".into())
            );
        }
        if let (Some(ns), Some(id)) = (self.checkpoint_namespace, self.checkpoint_id) {
            let _ = writeln!(
                out,
                "  checkpoint memory:  {id} in {ns} (apply's resume point, not a migrated row; kept after apply, -forget-checkpoint removes it)"
            );
        }
        let _ = writeln!(out, "  errors:             {}", self.errors);
        for e in &self.error_messages.items {
            let _ = writeln!(out, "    {e}");
        }
        let _ = writeln!(out, "  elapsed:            {:.1} s", self.elapsed_seconds);
        f.write_str(&out)
    }
}

/// Runs `-dry-run`.
///
/// # Errors
///
/// [`VerifyError`] when the legacy side cannot be read.
pub async fn run(
    pool: &PgPool,
    plugin: &Plugin,
    schema: &LegacySchema,
    plan: &Plan,
    show_progress: bool,
) -> Result<DryRunReport, VerifyError> {
    let started = Instant::now();
    let tree = WorkspaceTree::load(pool, schema.has_status).await?;
    let carry = verify::assumed_carry(plugin, schema);
    let mut report = DryRunReport {
        mode: "dry-run",
        capabilities: plugin.caps,
        write_path: if plugin.caps.batch { "batch" } else { "single" },
        ..DryRunReport::default()
    };
    if schema.has_embedding {
        report.notes.push(if carry.embedding {
            format!(
                "embeddings ({} dimensions) travel if the plugin accepts that dimension; apply checks with one probe write",
                schema.embedding_dim.unwrap_or(0)
            )
        } else {
            "embeddings do not travel: the plugin does not advertise embedding (or the column has no dimension)".into()
        });
    }
    if !carry.created_at {
        report
            .notes
            .push("created_at does not travel: the plugin does not advertise created_at; migrated memories get the time of the write".into());
    }

    let filter = match plan.workspace {
        Some(ws) => ScanFilter::Workspace(ws),
        None => ScanFilter::After(None),
    };
    let total = match plan.workspace {
        Some(ws) => legacy::count_workspace(pool, ws).await?,
        None => legacy::count_after(pool, None).await?,
    };
    let progress = Progress::start(
        "dry-run",
        Some(plan.limit.map_or(total, |l| l.min(total))),
        show_progress,
    );
    let counters = progress.counters();
    let mut resolver = Resolver::new(tree.clone());
    let mut rows = legacy::spawn_scan(pool.clone(), schema, filter, false);
    let mut not_carried = NotCarried::default();
    let mut created_at_rows = 0u64;
    let mut needed: HashMap<String, NamespaceKind> = HashMap::new();
    while let Some(next) = rows.recv().await {
        if plan.limit.is_some_and(|l| report.counts.scanned >= l) {
            break;
        }
        let row = next?;
        report.counts.scanned += 1;
        Counters::add(&counters.scanned, 1);
        not_carried.observe(&row, carry);
        if row.created_at.is_some() {
            created_at_rows += 1;
        }
        let mapped = mapping::target_for(&row, &mut resolver).and_then(|t| {
            mapping::to_write(&row, &t, carry)?;
            Ok(t)
        });
        match mapped {
            Ok(t) => {
                count_target(&mut report.counts, &t);
                *report
                    .counts
                    .per_namespace_kind
                    .entry(t.kind.as_str().to_string())
                    .or_default() += 1;
                needed.entry(t.namespace).or_insert(t.kind);
            }
            Err(skip) => {
                Counters::add(&counters.skipped, 1);
                count_skip(&mut report.counts, row.id, skip);
            }
        }
    }
    drop(rows);
    progress.finish().await;
    report.not_carried = not_carried.into_map(carry, created_at_rows);
    for kind in needed.values() {
        *report
            .namespaces_needed
            .entry(kind.as_str().to_string())
            .or_default() += 1;
    }
    check_namespaces(
        plugin,
        needed,
        plan.effective_concurrency(true) * 2,
        &mut report,
    )
    .await;

    if plugin.caps.list && plan.limit.is_none() {
        let workspaces: Vec<Uuid> = match plan.workspace {
            Some(ws) => vec![ws],
            None => tree.ids().collect(),
        };
        let mut resolver = Resolver::new(tree);
        let compared = verify::list_compare(
            pool,
            plugin,
            &mut resolver,
            &workspaces,
            carry,
            plan.verify_concurrency(),
        )
        .await?;
        let count = |k| compared.mismatch_counts.get(&k).copied().unwrap_or(0);
        report.diff = Some(Diff {
            new: count(MismatchKind::Missing),
            identical: compared.rows_matched,
            // A row whose content and created_at both differ counts once.
            different: compared
                .mismatches
                .items
                .iter()
                .filter(|m| {
                    matches!(
                        m.kind,
                        MismatchKind::ContentDiffers | MismatchKind::CreatedAtDiffers
                    )
                })
                .map(|m| m.id)
                .collect::<std::collections::HashSet<_>>()
                .len() as u64,
            in_other_namespace: count(MismatchKind::WrongNamespace),
        });
        for e in compared.error_messages.items {
            report.errors += 1;
            report.error_messages.push(e);
        }
    }

    if plan.workspace.is_none() {
        match CheckpointSlot::for_legacy(pool).await {
            Ok(slot) => {
                report.checkpoint_namespace = Some(checkpoint::CHECKPOINT_NAMESPACE);
                report.checkpoint_id = Some(slot.id);
                match checkpoint::load(plugin, &slot).await {
                    Ok(cp) => {
                        report.checkpoint = cp.and_then(|c| c.cursor);
                        report.remaining_after_checkpoint =
                            Some(legacy::count_after(pool, report.checkpoint).await?);
                    }
                    Err(e) => {
                        report.errors += 1;
                        report.error_messages.push(format!(
                            "cannot read the checkpoint: {}",
                            plugin::one_line(&e)
                        ));
                    }
                }
            }
            Err(e) => {
                return Err(VerifyError::Legacy(LegacyError::Query {
                    context: "failed to identify the legacy table".into(),
                    source: match e {
                        checkpoint::IdentityError(s) => s,
                    },
                }))
            }
        }
    }
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Which needed namespaces exist: GET with `list`, a one-row search without.
async fn check_namespaces(
    plugin: &Plugin,
    needed: HashMap<String, NamespaceKind>,
    concurrency: usize,
    report: &mut DryRunReport,
) {
    let mut names: Vec<String> = needed.into_keys().collect();
    names.sort_unstable();
    let list = plugin.caps.list;
    let probes = futures::stream::iter(names.into_iter().map(|name| {
        let plugin = plugin.clone();
        async move {
            let exists = if list {
                plugin
                    .client
                    .get_namespace(&name)
                    .await
                    .map(|n| n.is_some())
            } else {
                let req = SearchRequest {
                    namespaces: vec![name.clone()],
                    limit: Some(1),
                    ..SearchRequest::default()
                };
                match plugin.client.search(&req).await {
                    Ok(r) => Ok(!r.memories.is_empty()),
                    Err(e) if e.is_not_found() => Ok(false),
                    Err(e) => Err(e),
                }
            };
            (name, exists)
        }
    }))
    .buffered(concurrency.max(1));
    futures::pin_mut!(probes);
    let mut existing = 0u64;
    while let Some((name, exists)) = probes.next().await {
        match exists {
            Ok(true) => {
                existing += 1;
                if !list {
                    report.namespaces_reset_by_upsert.push(name);
                }
            }
            Ok(false) => {}
            Err(e) => {
                report.errors += 1;
                report.error_messages.push(format!(
                    "cannot check namespace {name}: {}",
                    plugin::one_line(&e)
                ));
            }
        }
    }
    if list {
        report.namespaces_existing = Some(existing);
    }
}
