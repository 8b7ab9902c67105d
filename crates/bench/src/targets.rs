//! The targets of issue 17 for single writes, searches against the naive
//! statement, and the SQLite store at a million rows, and the figures that
//! carry them.
//!
//! Ratios follow the report's rule (bigger is slower): a throughput target
//! "plugin at least k times the floor" is a ratio of at most `1/k`.

use crate::load::LoadSummary;
use crate::report::{Figure, Target, Unit};
use crate::run::Outcome;

const MIB: f64 = 1024.0 * 1024.0;

/// Rows from which the SQLite million-row targets apply.
pub const MILLION: u64 = 1_000_000;
/// SQLite full-text p50 and p99 at a million rows, in ms.
pub const SQLITE_FTS_P50_MS: f64 = 5.0;
pub const SQLITE_FTS_P99_MS: f64 = 25.0;
/// SQLite batch load at a million rows, rows/s.
pub const SQLITE_LOAD_PER_SECOND: f64 = 20_000.0;
/// SQLite plugin peak RSS.
pub const SQLITE_PEAK_RSS: f64 = 128.0 * MIB;

/// Which single-write floor a comparison is against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFloor {
    /// pgbench's one-line INSERT (Postgres).
    Pgbench,
    /// One row per transaction with the store's statement (SQLite).
    SqliteInsert,
}

/// The throughput target of single writes at `clients` against `floor`, as
/// the report's ratio (floor over plugin).
pub fn write_throughput_target(floor: WriteFloor, clients: usize) -> Option<Target> {
    match (floor, clients) {
        (WriteFloor::Pgbench, 32) => Some(Target::RatioAtMost(1.0 / 1.5)),
        (WriteFloor::Pgbench, 8) => Some(Target::RatioAtMost(1.0 / 1.2)),
        (WriteFloor::SqliteInsert, 32) => Some(Target::RatioAtMost(1.0 / 2.0)),
        _ => None,
    }
}

fn maybe_target(figure: Figure, target: Option<Target>) -> Figure {
    match target {
        Some(t) => figure.with_target(t),
        None => figure,
    }
}

/// What one single-write comparison is.
#[derive(Clone, Copy)]
pub struct WriteCase<'a> {
    pub section: &'a str,
    pub label: &'a str,
    pub clients: usize,
    pub floor: WriteFloor,
    pub floor_name: &'a str,
}

/// Throughput, p50 and p99 of the plugin's single writes against a
/// single-write floor, with the targets: throughput per
/// [`write_throughput_target`], p50 at one client at most 1.1x the floor's,
/// p99 at 32 clients at most the floor's.
pub fn push_write_figures(
    out: &mut Outcome,
    case: &WriteCase<'_>,
    via_plugin: &LoadSummary,
    floor: &LoadSummary,
) {
    let WriteCase {
        section,
        label,
        clients,
        floor: kind,
        floor_name,
    } = *case;
    out.add(maybe_target(
        Figure::against(
            section,
            format!("{label}: throughput"),
            via_plugin.per_second,
            Unit::PerSecond,
            floor_name,
            floor.per_second,
        ),
        write_throughput_target(kind, clients),
    ));
    out.add(maybe_target(
        Figure::against(
            section,
            format!("{label} p50"),
            via_plugin.p50_ms,
            Unit::Milliseconds,
            floor_name,
            floor.p50_ms,
        ),
        (clients == 1).then_some(Target::RatioAtMost(1.1)),
    ));
    out.add(maybe_target(
        Figure::against(
            section,
            format!("{label} p99"),
            via_plugin.p99_ms,
            Unit::Milliseconds,
            floor_name,
            floor.p99_ms,
        ),
        (clients == 32).then_some(Target::RatioAtMost(1.0)),
    ));
}

/// The plugin's search latency against the naive statement: p50 with the
/// target "at most the naive statement's", p99 shown.
pub fn push_naive_search(
    out: &mut Outcome,
    section: &str,
    label: &str,
    via_plugin: &LoadSummary,
    naive: &LoadSummary,
) {
    if naive.errors > 0 {
        out.failures.push(format!(
            "{label} naive SQL: {} of {} operations failed; first: {}",
            naive.errors,
            naive.errors + naive.ok,
            naive.first_error.as_deref().unwrap_or("?")
        ));
    }
    out.add(
        Figure::against(
            section,
            format!("{label} p50"),
            via_plugin.p50_ms,
            Unit::Milliseconds,
            "naive SQL",
            naive.p50_ms,
        )
        .with_target(Target::RatioAtMost(1.0)),
    );
    out.add(Figure::against(
        section,
        format!("{label} p99"),
        via_plugin.p99_ms,
        Unit::Milliseconds,
        "naive SQL",
        naive.p99_ms,
    ));
}

/// The SQLite full-text targets, shown as their own figures when the file
/// holds at least a million rows (outside --quick).
pub fn sqlite_fts_targets(out: &mut Outcome, rows: u64, quick: bool, via_plugin: &LoadSummary) {
    if quick || rows < MILLION {
        return;
    }
    out.add(
        Figure::plain(
            "g",
            format!("SQLite full-text p50 at {rows} rows"),
            via_plugin.p50_ms,
            Unit::Milliseconds,
        )
        .with_target(Target::ValueAtMost(SQLITE_FTS_P50_MS)),
    );
    out.add(
        Figure::plain(
            "g",
            format!("SQLite full-text p99 at {rows} rows"),
            via_plugin.p99_ms,
            Unit::Milliseconds,
        )
        .with_target(Target::ValueAtMost(SQLITE_FTS_P99_MS)),
    );
}

/// The SQLite batch-load target, which applies from a million rows on.
pub fn sqlite_load_target(rows: u64) -> Option<Target> {
    (rows >= MILLION).then_some(Target::ValueAtLeast(SQLITE_LOAD_PER_SECOND))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_targets_by_floor_and_clients() {
        assert_eq!(
            write_throughput_target(WriteFloor::Pgbench, 32),
            Some(Target::RatioAtMost(1.0 / 1.5))
        );
        assert_eq!(write_throughput_target(WriteFloor::Pgbench, 1), None);
        assert_eq!(
            write_throughput_target(WriteFloor::SqliteInsert, 32),
            Some(Target::RatioAtMost(0.5))
        );
        // Plugin at 1.6x pgbench meets ">= 1.5x"; at 1.4x it does not.
        let t = write_throughput_target(WriteFloor::Pgbench, 32).unwrap();
        let ok =
            Figure::against("e", "w", 1600.0, Unit::PerSecond, "pgbench", 1000.0).with_target(t);
        assert_eq!(ok.met, Some(true));
        let miss =
            Figure::against("e", "w", 1400.0, Unit::PerSecond, "pgbench", 1000.0).with_target(t);
        assert_eq!(miss.met, Some(false));
    }

    #[test]
    fn load_target_only_from_a_million_rows() {
        assert_eq!(sqlite_load_target(5_000), None);
        assert!(sqlite_load_target(MILLION).is_some());
    }
}
