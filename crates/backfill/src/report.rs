//! What a run found, in a form for people (text) and machines (`--json`).
//!
//! Counters are exact; lists of individual rows (skips, errors, mismatches)
//! keep the first [`DETAIL_CAP`] entries so a run over a million broken rows
//! still prints a bounded report, and say how many were left out.

use crate::mapping::{Scope, SkipReason};
use memory_contract::validate::excerpt;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use uuid::Uuid;

/// Most individual entries a report list keeps.
pub const DETAIL_CAP: usize = 1000;

/// Characters of content shown in an excerpt.
pub const EXCERPT_CHARS: usize = 60;

/// A bounded list: keeps the first entries, counts the rest.
#[derive(Debug, Clone, Serialize)]
pub struct Capped<T> {
    pub items: Vec<T>,
    /// Entries not kept because the list was full.
    pub omitted: u64,
}

impl<T> Default for Capped<T> {
    fn default() -> Self {
        Capped {
            items: Vec::new(),
            omitted: 0,
        }
    }
}

impl<T> Capped<T> {
    /// Adds an entry, or counts it when full.
    pub fn push(&mut self, item: T) {
        if self.items.len() < DETAIL_CAP {
            self.items.push(item);
        } else {
            self.omitted += 1;
        }
    }

    /// Appends another list, keeping the cap.
    pub fn absorb(&mut self, other: Capped<T>) {
        for item in other.items {
            self.push(item);
        }
        self.omitted += other.omitted;
    }

    /// Kept plus omitted.
    pub fn total(&self) -> u64 {
        self.items.len() as u64 + self.omitted
    }
}

/// One skipped row.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedRow {
    pub id: Uuid,
    pub reason: SkipReason,
    pub detail: String,
}

/// One row that failed to be written.
#[derive(Debug, Clone, Serialize)]
pub struct RowError {
    /// None when the failure is not tied to one row (a namespace, the checkpoint).
    pub id: Option<Uuid>,
    pub namespace: Option<String>,
    pub message: String,
}

/// Counts gathered while scanning and mapping (shared by apply and dry-run).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScanCounts {
    /// Legacy rows read in this run.
    pub scanned: u64,
    /// Rows that map to a namespace (before size checks), per legacy scope.
    pub per_scope: BTreeMap<Scope, u64>,
    /// Rows to be written, per target namespace kind.
    pub per_namespace_kind: BTreeMap<String, u64>,
    /// Skipped rows per reason.
    pub skipped: BTreeMap<SkipReason, u64>,
    /// GLOBAL rows of workspaces that are not roots, sent to their org.
    pub global_from_non_root: u64,
    /// Rows of workspaces whose status is `removed` (migrated all the same).
    pub removed_workspace_rows: u64,
    /// Rows whose workspace's upward walk ended on a cycle, a dangling parent
    /// or the 50-hop cap (placed all the same; listed so operators can look).
    pub irregular_tree_rows: BTreeMap<String, u64>,
    /// First skipped rows with their reasons.
    pub skipped_rows: Capped<SkippedRow>,
}

impl ScanCounts {
    /// Total skipped rows.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

/// The final report of `-apply`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    pub mode: &'static str,
    /// `batch` or `single` (v1 writes).
    pub write_path: String,
    pub counts: ScanCounts,
    /// Rows acknowledged by the plugin in this run.
    pub written: u64,
    /// Rows left alone because an earlier run's checkpoint already covers them.
    pub unchanged: u64,
    /// Rows that failed to be written.
    pub errors: u64,
    pub error_rows: Capped<RowError>,
    /// Namespaces created in this run / found already present (kept as they were).
    pub namespaces_created: u64,
    pub namespaces_existing: u64,
    /// Namespaces upserted without a prior GET (v1 plugin: metadata/expiry reset).
    pub namespaces_upserted_blind: u64,
    /// Rows after the checkpoint that no run has covered yet.
    pub remaining: u64,
    /// Where the checkpoint stands after this run.
    pub checkpoint: Option<Uuid>,
    /// The namespace and memory holding the checkpoint (not migrated data;
    /// kept after the run). None for a `-workspace` run, which does not use it.
    pub checkpoint_namespace: Option<&'static str>,
    pub checkpoint_id: Option<Uuid>,
    /// The run went through the end of the table.
    pub complete: bool,
    /// Why the run stopped early, if it did.
    pub stopped: Option<String>,
    /// Columns not carried to the plugin, with rows holding non-default values.
    pub not_carried: BTreeMap<String, u64>,
    /// `-embed`: the embedder (one line, never a secret); None without `-embed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedder: Option<String>,
    /// `-embed`: rows given a freshly computed embedding in this run.
    pub embedded: u64,
    /// `-embed -restart`: rows left as they were because the plugin's copy
    /// already holds an embedding and the same content and namespace.
    pub already_embedded: u64,
    /// `-embed`: seconds the embedder worked (summed over batches).
    pub embed_seconds: f64,
    pub elapsed_seconds: f64,
}

impl ApplyReport {
    /// Exit code: 1 when any row failed or the run stopped early.
    pub fn exit_code(&self) -> u8 {
        if self.errors > 0 || self.stopped.is_some() {
            1
        } else {
            0
        }
    }
}

pub(crate) fn write_scan_counts(out: &mut String, c: &ScanCounts) {
    let _ = writeln!(out, "  scanned:            {}", c.scanned);
    let scopes: Vec<String> = c
        .per_scope
        .iter()
        .map(|(s, n)| format!("{}={n}", s.as_str()))
        .collect();
    let _ = writeln!(out, "  per scope:          {}", or_none(scopes.join(" ")));
    let kinds: Vec<String> = c
        .per_namespace_kind
        .iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    let _ = writeln!(out, "  per namespace kind: {}", or_none(kinds.join(" ")));
    let _ = writeln!(out, "  skipped:            {}", c.skipped_total());
    for reason in SkipReason::ALL {
        if let Some(n) = c.skipped.get(&reason) {
            let _ = writeln!(out, "    {:<20}{n}", reason.as_str());
        }
    }
    if c.global_from_non_root > 0 {
        let _ = writeln!(
            out,
            "  GLOBAL rows of non-root workspaces (sent to their org): {}",
            c.global_from_non_root
        );
    }
    if c.removed_workspace_rows > 0 {
        let _ = writeln!(
            out,
            "  rows of removed workspaces (migrated): {}",
            c.removed_workspace_rows
        );
    }
    for (why, n) in &c.irregular_tree_rows {
        let _ = writeln!(out, "  rows whose workspace tree walk ended on {why}: {n}");
    }
    for s in &c.skipped_rows.items {
        let _ = writeln!(out, "  skip {} {}: {}", s.id, s.reason.as_str(), s.detail);
    }
    if c.skipped_rows.omitted > 0 {
        let _ = writeln!(
            out,
            "  ... {} more skipped rows not listed",
            c.skipped_rows.omitted
        );
    }
}

fn or_none(s: String) -> String {
    if s.is_empty() {
        "none".into()
    } else {
        s
    }
}

impl fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "memory-backfill apply summary ({} writes)",
            self.write_path
        );
        write_scan_counts(&mut out, &self.counts);
        let _ = writeln!(out, "  written:            {}", self.written);
        let _ = writeln!(
            out,
            "  unchanged:          {} (covered by the checkpoint of earlier runs)",
            self.unchanged
        );
        let _ = writeln!(out, "  errors:             {}", self.errors);
        for e in &self.error_rows.items {
            let id = e.id.map(|i| i.to_string()).unwrap_or_else(|| "-".into());
            let ns = e.namespace.as_deref().unwrap_or("-");
            let _ = writeln!(out, "    error {id} {ns}: {}", e.message);
        }
        if self.error_rows.omitted > 0 {
            let _ = writeln!(
                out,
                "    ... {} more errors not listed",
                self.error_rows.omitted
            );
        }
        let _ = writeln!(
            out,
            "  namespaces:         {} created, {} already present{}",
            self.namespaces_created,
            self.namespaces_existing,
            if self.namespaces_upserted_blind > 0 {
                format!(
                    ", {} upserted without a GET (v1 plugin: existing metadata/expiry reset)",
                    self.namespaces_upserted_blind
                )
            } else {
                String::new()
            }
        );
        for (col, n) in &self.not_carried {
            let _ = writeln!(
                out,
                "  not carried:        {col} ({n} rows with a non-default value)"
            );
        }
        if let Some(embedder) = &self.embedder {
            let _ = writeln!(
                out,
                "  embedded:           {} by {embedder} ({:.1} embedded/s while embedding, {:.1}/s over the run)",
                self.embedded,
                rate(self.embedded, self.embed_seconds),
                rate(self.embedded, self.elapsed_seconds)
            );
            if self.already_embedded > 0 {
                let _ = writeln!(
                    out,
                    "  already embedded:   {} (the plugin's copy has an embedding and the same content; left alone)",
                    self.already_embedded
                );
            }
        }
        let _ = writeln!(out, "  remaining:          {}", self.remaining);
        let _ = writeln!(
            out,
            "  checkpoint:         {}{}",
            self.checkpoint
                .map(|c| c.to_string())
                .unwrap_or_else(|| "none".into()),
            if self.complete {
                " (table complete)"
            } else {
                ""
            }
        );
        if let (Some(ns), Some(id)) = (self.checkpoint_namespace, self.checkpoint_id) {
            let _ = writeln!(
                out,
                "  checkpoint memory:  {id} in {ns} (kept; remove it after the cutover with -forget-checkpoint)"
            );
        }
        if let Some(why) = &self.stopped {
            let _ = writeln!(out, "  stopped early:      {why}");
        }
        let _ = writeln!(out, "  elapsed:            {:.1} s", self.elapsed_seconds);
        f.write_str(&out)
    }
}

/// `n` per second over `secs` (0 when no time passed).
pub fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// A content excerpt for reports, cut on a character boundary.
pub fn content_excerpt(content: &str) -> String {
    excerpt(content, EXCERPT_CHARS)
}
