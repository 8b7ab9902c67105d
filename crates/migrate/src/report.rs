//! What a run found, for people (text) and machines (`--json`).

use crate::cli::Mode;
use crate::compare::DiffKind;
use memory_backfill::report::Capped;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use uuid::Uuid;

/// One memory or namespace the run could not move or read.
#[derive(Debug, Clone, Serialize)]
pub struct RowError {
    pub id: Option<Uuid>,
    pub namespace: Option<String>,
    /// The target's (or source's) own message.
    pub message: String,
}

/// One difference between the two sides.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    pub kind: DiffKind,
    pub id: Uuid,
    /// The source's namespace (the target's for `extra`).
    pub namespace: String,
    /// The target's namespace when it holds the id elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_namespace: Option<String>,
}

/// Everything a run prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: Mode,
    pub source: String,
    pub target: String,
    /// How the source is read, in one line.
    pub source_mode: String,
    /// How the sides are compared (verify) or how writes are sent (apply).
    pub method: String,
    /// Apply: whether the run resumed from a checkpoint and what it left.
    pub checkpoint: String,
    /// Selected source memories read.
    pub scanned: u64,
    /// Selected memories the target already holds exactly.
    pub identical: u64,
    /// Memories written (apply) or that would be written (dry-run) because the target lacks them.
    pub created: u64,
    /// Memories written (apply) or that would be written (dry-run) because the target's row differs.
    pub updated: u64,
    /// Memories already expired when read, not moved.
    pub skipped_expired: u64,
    pub namespaces_created: u64,
    pub namespaces_existing: u64,
    /// Namespaces written without reading first (the target lacks `list`).
    pub namespaces_upserted_blind: u64,
    /// Dry-run: namespaces `-apply` would create.
    pub namespaces_to_create: Vec<String>,
    pub namespaces_skipped_expired: u64,
    /// Verify: buckets compared by digest, and those that differed.
    pub buckets_compared: u64,
    pub buckets_differing: u64,
    /// Differences by kind (verify; dry-run counts wrong namespaces too).
    pub differences: BTreeMap<&'static str, u64>,
    pub difference_rows: Capped<Difference>,
    pub errors: u64,
    pub error_rows: Capped<RowError>,
    /// Fields that exist on one side and are not carried, and why.
    pub not_carried: Vec<String>,
    /// False when `-limit` stopped the run early.
    pub complete: bool,
    pub stopped: Option<String>,
    /// `-embed`: the embedder (one line, never a secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedder: Option<String>,
    /// `-embed`: memories given a freshly computed embedding.
    pub embedded: u64,
    /// `-embed`: seconds the embedder worked (summed over its calls).
    pub embed_seconds: f64,
    pub elapsed_seconds: f64,
}

impl Report {
    pub fn new(mode: Mode, source: String, target: String) -> Report {
        Report {
            mode,
            source,
            target,
            source_mode: String::new(),
            method: String::new(),
            checkpoint: String::new(),
            scanned: 0,
            identical: 0,
            created: 0,
            updated: 0,
            skipped_expired: 0,
            namespaces_created: 0,
            namespaces_existing: 0,
            namespaces_upserted_blind: 0,
            namespaces_to_create: Vec::new(),
            namespaces_skipped_expired: 0,
            buckets_compared: 0,
            buckets_differing: 0,
            differences: BTreeMap::new(),
            difference_rows: Capped::default(),
            errors: 0,
            error_rows: Capped::default(),
            not_carried: Vec::new(),
            complete: true,
            stopped: None,
            embedder: None,
            embedded: 0,
            embed_seconds: 0.0,
            elapsed_seconds: 0.0,
        }
    }

    /// Records a difference.
    pub fn differ(&mut self, d: Difference) {
        *self.differences.entry(d.kind.as_str()).or_default() += 1;
        self.difference_rows.push(d);
    }

    /// Records a row that failed.
    pub fn error(&mut self, e: RowError) {
        self.errors += 1;
        self.error_rows.push(e);
    }

    /// Total differences of every kind.
    pub fn difference_total(&self) -> u64 {
        self.differences.values().sum()
    }

    /// 0 clean, 1 differences (verify) or row errors.
    pub fn exit_code(&self) -> u8 {
        let differs = self.mode == Mode::Verify && self.difference_total() > 0;
        if self.errors > 0 || differs {
            1
        } else {
            0
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let _ = writeln!(out, "memory-migrate {}", self.mode.flag());
        let _ = writeln!(out, "  from:   {}", self.source);
        let _ = writeln!(out, "  to:     {}", self.target);
        let _ = writeln!(out, "  source: {}", self.source_mode);
        let _ = writeln!(out, "  method: {}", self.method);
        if !self.checkpoint.is_empty() {
            let _ = writeln!(out, "  checkpoint: {}", self.checkpoint);
        }
        let _ = writeln!(out, "memories scanned: {}", self.scanned);
        let _ = writeln!(out, "  identical on the target: {}", self.identical);
        match self.mode {
            Mode::Apply => {
                let _ = writeln!(out, "  written (new): {}", self.created);
                let _ = writeln!(out, "  written (differed): {}", self.updated);
            }
            Mode::DryRun => {
                let _ = writeln!(out, "  would create: {}", self.created);
                let _ = writeln!(out, "  would rewrite (differs): {}", self.updated);
            }
            Mode::Verify => {}
        }
        let _ = writeln!(out, "  skipped (expired): {}", self.skipped_expired);
        if let Some(embedder) = &self.embedder {
            let _ = writeln!(
                out,
                "  embedded: {} by {embedder} ({:.1} embedded/s while embedding, {:.1}/s over the run)",
                self.embedded,
                memory_backfill::report::rate(self.embedded, self.embed_seconds),
                memory_backfill::report::rate(self.embedded, self.elapsed_seconds)
            );
        }
        if self.mode != Mode::Verify {
            let _ = writeln!(
                out,
                "namespaces: {} created, {} already on the target, {} written blind, {} skipped (expired)",
                self.namespaces_created,
                self.namespaces_existing,
                self.namespaces_upserted_blind,
                self.namespaces_skipped_expired
            );
        }
        if !self.namespaces_to_create.is_empty() {
            let _ = writeln!(
                out,
                "namespaces -apply would create ({}): {}",
                self.namespaces_to_create.len(),
                self.namespaces_to_create.join(", ")
            );
        }
        if self.buckets_compared > 0 {
            let _ = writeln!(
                out,
                "checksum buckets: {} compared, {} differ",
                self.buckets_compared, self.buckets_differing
            );
        }
        if self.differences.is_empty() {
            if self.mode == Mode::Verify {
                let _ = writeln!(out, "differences: none");
            }
        } else {
            let _ = writeln!(out, "differences: {}", self.difference_total());
            for (kind, n) in &self.differences {
                let _ = writeln!(out, "  {kind}: {n}");
            }
            for d in &self.difference_rows.items {
                let elsewhere = d
                    .target_namespace
                    .as_deref()
                    .map(|t| format!(" (target: {t})"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {} {} {}{elsewhere}",
                    d.kind.as_str(),
                    d.id,
                    d.namespace
                );
            }
            if self.difference_rows.omitted > 0 {
                let _ = writeln!(out, "  ... {} more", self.difference_rows.omitted);
            }
        }
        let _ = writeln!(out, "errors: {}", self.errors);
        for e in &self.error_rows.items {
            let id = e.id.map(|i| i.to_string()).unwrap_or_else(|| "-".into());
            let ns = e.namespace.as_deref().unwrap_or("-");
            let _ = writeln!(out, "  {id} {ns}: {}", e.message);
        }
        if self.error_rows.omitted > 0 {
            let _ = writeln!(out, "  ... {} more", self.error_rows.omitted);
        }
        for n in &self.not_carried {
            let _ = writeln!(out, "not carried: {n}");
        }
        if let Some(why) = &self.stopped {
            let _ = writeln!(out, "stopped early: {why}; run again to continue");
        }
        let _ = writeln!(out, "elapsed: {:.1}s", self.elapsed_seconds);
        f.write_str(&out)
    }
}
