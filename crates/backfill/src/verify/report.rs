//! Stage three of `-verify`: what it hands back.
//!
//! Every method fills the same [`VerifyReport`]: the rows it compared and
//! matched, each [`Mismatch`] with its [`MismatchKind`], the workspaces it
//! could not check exactly ([`Unverified`]), the rows apply would skip, and
//! errors met on the way. Parts of the check (a batch, a half of the id
//! space, the skip queries) fill reports of their own, which
//! [`VerifyReport::absorb`] adds up. The summary a person reads is the
//! report's `Display`; `--json` serializes the same struct. A
//! [`VerifyError`] is the one failure that stops the run before there is a
//! report.

use crate::legacy::LegacyError;
use crate::mapping::SkipReason;
use crate::report::{Capped, SkippedRow};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
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

    pub(super) fn mismatch(&mut self, m: Mismatch) {
        *self.mismatch_counts.entry(m.kind).or_default() += 1;
        self.mismatches.push(m);
    }

    pub(super) fn skip(&mut self, id: Uuid, reason: SkipReason, detail: String) {
        *self.skipped.entry(reason).or_default() += 1;
        self.skipped_rows.push(SkippedRow { id, reason, detail });
    }

    pub(super) fn error(&mut self, message: String) {
        self.errors += 1;
        self.error_messages.push(message);
    }

    /// Adds the rows, mismatches, skips and errors of a part of the check.
    pub(super) fn absorb(&mut self, part: VerifyReport) {
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
