//! The suite's report: one line per check and a summary, as text or JSON.

use crate::checks::CheckInfo;
use crate::outcome::{CheckResult, Verdict};
use serde::Serialize;
use std::fmt::Write as _;
use std::time::Duration;

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// The plugin did what the check wants.
    Pass,
    /// The plugin works but is sloppy (for example an empty list sent as
    /// `null`): lenient clients cope, strict ones may not. Not a failure.
    Warn,
    /// The plugin broke the rule the check tests.
    Fail,
    /// Not run: a capability is not advertised or health is unreadable.
    Skip,
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The check's name.
    pub name: &'static str,
    /// How it ended.
    pub status: CheckStatus,
    /// Why it was skipped, the warning, or a note on a pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// On failure: what the contract wants.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// On failure: what the plugin did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seen: Option<String>,
    /// What the check means.
    pub about: &'static str,
    /// How long it took, cleanup included.
    pub duration_ms: u64,
}

impl CheckReport {
    pub(crate) fn new(info: CheckInfo, result: CheckResult, took: Duration) -> Self {
        let (status, reason, expected, seen) = match result {
            Ok(Verdict::Pass(note)) => (CheckStatus::Pass, note, None, None),
            Ok(Verdict::Warn(note)) => (CheckStatus::Warn, Some(note), None, None),
            Ok(Verdict::Skip(reason)) => (CheckStatus::Skip, Some(reason), None, None),
            Err(f) => (CheckStatus::Fail, None, Some(f.expected), Some(f.seen)),
        };
        CheckReport {
            name: info.name,
            status,
            reason,
            expected,
            seen,
            about: info.about,
            duration_ms: took.as_millis() as u64,
        }
    }

    /// The report's one line.
    pub fn line(&self) -> String {
        match self.status {
            CheckStatus::Pass => match &self.reason {
                Some(note) => format!("PASS {} ({} ms; note: {note})", self.name, self.duration_ms),
                None => format!("PASS {} ({} ms)", self.name, self.duration_ms),
            },
            CheckStatus::Warn => format!(
                "WARN {}: {}",
                self.name,
                self.reason.as_deref().unwrap_or("sloppy")
            ),
            CheckStatus::Skip => format!(
                "SKIP {}: {}",
                self.name,
                self.reason.as_deref().unwrap_or("skipped")
            ),
            CheckStatus::Fail => format!(
                "FAIL {}: expected {}; saw {}",
                self.name,
                self.expected.as_deref().unwrap_or("?"),
                self.seen.as_deref().unwrap_or("?")
            ),
        }
    }
}

/// Counts over all checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Checks that passed without a warning.
    pub passed: usize,
    /// Checks that passed with a warning.
    pub warned: usize,
    /// Checks that failed.
    pub failed: usize,
    /// Checks that were skipped.
    pub skipped: usize,
    /// Checks reported.
    pub total: usize,
    /// Length of the whole run.
    pub duration_ms: u64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The plugin's base URL (password masked).
    pub url: String,
    /// The run's unique id, part of every namespace name it used.
    pub run_id: String,
    /// What `/v1/health` advertised.
    pub capabilities: Vec<String>,
    /// One entry per check, in run order.
    pub checks: Vec<CheckReport>,
    /// Counts.
    pub summary: Summary,
}

impl Report {
    pub(crate) fn new(
        url: String,
        run_id: String,
        capabilities: Vec<String>,
        checks: Vec<CheckReport>,
        took: Duration,
    ) -> Self {
        let count = |s: CheckStatus| checks.iter().filter(|c| c.status == s).count();
        let summary = Summary {
            passed: count(CheckStatus::Pass),
            warned: count(CheckStatus::Warn),
            failed: count(CheckStatus::Fail),
            skipped: count(CheckStatus::Skip),
            total: checks.len(),
            duration_ms: took.as_millis() as u64,
        };
        Report {
            url,
            run_id,
            capabilities,
            checks,
            summary,
        }
    }

    /// True when no check failed (warnings do not count).
    pub fn passed(&self) -> bool {
        self.summary.failed == 0
    }

    /// The check called `name`, if it ran.
    pub fn check(&self, name: &str) -> Option<&CheckReport> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// One line per check and a summary line.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for check in &self.checks {
            let _ = writeln!(out, "{}", check.line());
        }
        let s = &self.summary;
        let warned = if s.warned > 0 {
            format!(", {} warned", s.warned)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "summary: {} passed{warned}, {} failed, {} skipped of {} checks in {:.1} s",
            s.passed,
            s.failed,
            s.skipped,
            s.total,
            s.duration_ms as f64 / 1000.0
        );
        out
    }
}
