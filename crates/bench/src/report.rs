//! The report: every figure next to its floor, the ratio between them, the
//! target and whether it was met; printed as a table and, on request, as
//! JSON.
//!
//! Ratios are always "cost over floor" (time over time, or floor throughput
//! over plugin throughput), so 1.0 is the floor and bigger is slower, except
//! for "speed-up" figures whose target is a minimum.

use serde::Serialize;
use std::fmt::Write as _;

/// Unit of a figure's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Seconds,
    Milliseconds,
    PerSecond,
    Bytes,
    Ratio,
    Count,
}

/// What a figure must reach.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Target {
    /// The ratio to the floor must be at most this.
    RatioAtMost(f64),
    /// The ratio to the floor must be at least this.
    RatioAtLeast(f64),
    /// The value must be below this (same unit as the value).
    ValueBelow(f64),
    /// The value must be at most this (same unit as the value).
    ValueAtMost(f64),
    /// The value must be at least this (same unit as the value).
    ValueAtLeast(f64),
}

impl Target {
    fn describe(self, unit: Unit) -> String {
        match self {
            Target::RatioAtMost(r) => format!("<= {}x", trim_float(r)),
            Target::RatioAtLeast(r) => format!(">= {}x", trim_float(r)),
            Target::ValueBelow(v) => format!("< {}", format_value(v, unit)),
            Target::ValueAtMost(v) => format!("<= {}", format_value(v, unit)),
            Target::ValueAtLeast(v) => format!(">= {}", format_value(v, unit)),
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// Section letter of the issue (a..h).
    pub section: String,
    pub name: String,
    pub value: f64,
    pub unit: Unit,
    /// What the floor is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub met: Option<bool>,
    /// Free text shown under the table (sizes, caveats).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Figure {
    /// A figure without a floor.
    pub fn plain(section: &str, name: impl Into<String>, value: f64, unit: Unit) -> Figure {
        Figure {
            section: section.to_string(),
            name: name.into(),
            value,
            unit,
            floor_name: None,
            floor: None,
            ratio: None,
            target: None,
            met: None,
            note: None,
        }
    }

    /// A figure with its floor; the ratio is `value / floor` for times and
    /// `floor / value` for throughputs, so a bigger ratio always means slower.
    pub fn against(
        section: &str,
        name: impl Into<String>,
        value: f64,
        unit: Unit,
        floor_name: impl Into<String>,
        floor: f64,
    ) -> Figure {
        let ratio = match unit {
            Unit::PerSecond if value > 0.0 => Some(floor / value),
            Unit::PerSecond => None,
            _ if floor > 0.0 => Some(value / floor),
            _ => None,
        };
        Figure {
            floor_name: Some(floor_name.into()),
            floor: Some(floor),
            ratio,
            ..Figure::plain(section, name, value, unit)
        }
    }

    /// Sets the target and decides whether it was met.
    pub fn with_target(mut self, target: Target) -> Figure {
        self.met = match target {
            Target::RatioAtMost(max) => self.ratio.map(|r| r <= max),
            Target::RatioAtLeast(min) => self.ratio.map(|r| r >= min),
            Target::ValueBelow(limit) => Some(self.value < limit),
            Target::ValueAtMost(limit) => Some(self.value <= limit),
            Target::ValueAtLeast(limit) => Some(self.value >= limit),
        };
        self.target = Some(target);
        self
    }

    /// Adds a note shown under the table.
    pub fn with_note(mut self, note: impl Into<String>) -> Figure {
        self.note = Some(note.into());
        self
    }
}

/// Formats `value` in `unit` for humans.
pub fn format_value(value: f64, unit: Unit) -> String {
    match unit {
        Unit::Seconds => format!("{value:.2} s"),
        Unit::Milliseconds => {
            if value < 10.0 {
                format!("{value:.2} ms")
            } else {
                format!("{value:.1} ms")
            }
        }
        Unit::PerSecond => format!("{}/s", group_digits(value.round() as u64)),
        Unit::Bytes => format!("{:.1} MiB", value / (1024.0 * 1024.0)),
        Unit::Ratio => format!("{value:.1}x"),
        Unit::Count => group_digits(value.round() as u64),
    }
}

/// `1234567` as `1,234,567`.
pub fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut groups: Vec<&str> = Vec::new();
    let mut end = digits.len();
    while end > 3 {
        groups.push(&digits[end - 3..end]);
        end -= 3;
    }
    groups.push(&digits[..end]);
    groups.reverse();
    groups.join(",")
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Renders the figures as an aligned text table with the columns figure,
/// value, floor, ratio, target, met.
pub fn render_table(figures: &[Figure]) -> String {
    let header = ["", "figure", "value", "floor", "ratio", "target", "met?"];
    let rows: Vec<[String; 7]> = figures
        .iter()
        .map(|f| {
            [
                f.section.clone(),
                f.name.clone(),
                format_value(f.value, f.unit),
                match (&f.floor_name, f.floor) {
                    (Some(name), Some(v)) => format!("{} ({name})", format_value(v, f.unit)),
                    _ => "-".into(),
                },
                f.ratio.map_or("-".into(), |r| format!("{r:.2}x")),
                f.target.map_or("-".into(), |t| t.describe(f.unit)),
                match f.met {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => "-".into(),
                },
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[String], out: &mut String| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths.iter()).enumerate() {
            if i > 0 {
                text.push_str(" | ");
            }
            // Numbers right-aligned, names left-aligned.
            if (2..=4).contains(&i) {
                let _ = write!(text, "{cell:>w$}");
            } else {
                let _ = write!(text, "{cell:<w$}");
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(&header.map(String::from), &mut out);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    let _ = writeln!(out, "{}", rule.join("-+-"));
    for row in &rows {
        line(row, &mut out);
    }
    out
}

/// Renders the figures as a Markdown table.
pub fn render_markdown(figures: &[Figure]) -> String {
    let mut out = String::from(
        "| | figure | value | floor | ratio | target | met? |\n|---|---|---:|---:|---:|---|---|\n",
    );
    for f in figures {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            f.section,
            f.name,
            format_value(f.value, f.unit),
            match (&f.floor_name, f.floor) {
                (Some(name), Some(v)) => format!("{} ({name})", format_value(v, f.unit)),
                _ => "-".into(),
            },
            f.ratio.map_or("-".into(), |r| format!("{r:.2}x")),
            f.target.map_or("-".into(), |t| t.describe(f.unit)),
            match f.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "-",
            }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_ratios_divide_by_the_floor_and_throughput_ratios_invert() {
        let t = Figure::against("b", "apply", 12.5, Unit::Seconds, "copy", 10.0);
        assert_eq!(t.ratio, Some(1.25));
        let q = Figure::against("e", "commits", 500.0, Unit::PerSecond, "insert", 2000.0);
        assert_eq!(q.ratio, Some(4.0));
    }

    #[test]
    fn targets_decide_met() {
        let ok = Figure::against("b", "apply", 12.0, Unit::Seconds, "copy", 10.0)
            .with_target(Target::RatioAtMost(1.25));
        assert_eq!(ok.met, Some(true));
        let slow = Figure::against("b", "apply", 13.0, Unit::Seconds, "copy", 10.0)
            .with_target(Target::RatioAtMost(1.25));
        assert_eq!(slow.met, Some(false));
        let speedup = Figure::against("c", "speed-up", 900.0, Unit::Seconds, "apply", 30.0)
            .with_target(Target::RatioAtLeast(30.0));
        assert_eq!(speedup.met, Some(true));
        let rss = Figure::plain("b", "peak RSS", 70.0 * 1048576.0, Unit::Bytes)
            .with_target(Target::ValueBelow(64.0 * 1048576.0));
        assert_eq!(rss.met, Some(false));
        let fast = Figure::plain("g", "p50", 5.0, Unit::Milliseconds)
            .with_target(Target::ValueAtMost(5.0));
        assert_eq!(fast.met, Some(true));
        let slow_load = Figure::plain("g", "load", 19_999.0, Unit::PerSecond)
            .with_target(Target::ValueAtLeast(20_000.0));
        assert_eq!(slow_load.met, Some(false));
    }

    #[test]
    fn table_has_a_line_per_figure_and_shows_misses() {
        let figures = vec![
            Figure::against("b", "apply", 13.0, Unit::Seconds, "copy", 10.0)
                .with_target(Target::RatioAtMost(1.25)),
            Figure::plain("h", "plugin peak RSS", 30.0 * 1048576.0, Unit::Bytes),
        ];
        let table = render_table(&figures);
        assert_eq!(table.lines().count(), 4, "{table}");
        assert!(table.contains("NO"), "{table}");
        assert!(table.contains("1.30x"), "{table}");
        assert!(table.contains("30.0 MiB"), "{table}");
        let md = render_markdown(&figures);
        assert_eq!(md.lines().count(), 4, "{md}");
    }

    #[test]
    fn digits_are_grouped() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1_000_000), "1,000,000");
    }
}
