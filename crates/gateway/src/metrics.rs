//! Gateway metrics in the Prometheus text format: tool calls by tool and
//! outcome, denials, redactions by class, and tool latency.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram buckets, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

#[derive(Debug, Default)]
struct Counters {
    calls: BTreeMap<(String, &'static str), u64>,
    denials: BTreeMap<String, u64>,
    redactions: BTreeMap<String, u64>,
    latency: BTreeMap<String, Histogram>,
}

/// The gateway's metrics registry.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
}

impl Metrics {
    /// Records one finished tool call (or REST call) and its outcome.
    pub fn record_call(&self, tool: &str, outcome: &'static str, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        *c.calls.entry((tool.to_string(), outcome)).or_default() += 1;
        if outcome == "denied" {
            *c.denials.entry(tool.to_string()).or_default() += 1;
        }
        let h = c.latency.entry(tool.to_string()).or_default();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            h.buckets[i] += 1;
        }
        h.count += 1;
        h.sum_seconds += secs;
    }

    /// Counts one redacted secret of `class`.
    pub fn record_redaction(&self, class: &str) {
        let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        *c.redactions.entry(class.to_string()).or_default() += 1;
    }

    /// Renders every metric.
    pub fn render(&self) -> String {
        let c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        out.push_str("# HELP memory_gateway_tool_calls_total Tool calls by tool and outcome.\n");
        out.push_str("# TYPE memory_gateway_tool_calls_total counter\n");
        for ((tool, outcome), n) in &c.calls {
            let _ = writeln!(
                out,
                "memory_gateway_tool_calls_total{{tool=\"{tool}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str("# HELP memory_gateway_denials_total Calls refused by the namespace rules.\n");
        out.push_str("# TYPE memory_gateway_denials_total counter\n");
        for (tool, n) in &c.denials {
            let _ = writeln!(out, "memory_gateway_denials_total{{tool=\"{tool}\"}} {n}");
        }
        out.push_str(
            "# HELP memory_gateway_redactions_total Secrets redacted before storage, by class.\n",
        );
        out.push_str("# TYPE memory_gateway_redactions_total counter\n");
        for (class, n) in &c.redactions {
            let _ = writeln!(
                out,
                "memory_gateway_redactions_total{{class=\"{class}\"}} {n}"
            );
        }
        out.push_str("# HELP memory_gateway_tool_duration_seconds Tool call latency.\n");
        out.push_str("# TYPE memory_gateway_tool_duration_seconds histogram\n");
        for (tool, h) in &c.latency {
            let mut cumulative = 0;
            for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
                cumulative += h.buckets[i];
                let _ = writeln!(
                    out,
                    "memory_gateway_tool_duration_seconds_bucket{{tool=\"{tool}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "memory_gateway_tool_duration_seconds_bucket{{tool=\"{tool}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "memory_gateway_tool_duration_seconds_sum{{tool=\"{tool}\"}} {}",
                h.sum_seconds
            );
            let _ = writeln!(
                out,
                "memory_gateway_tool_duration_seconds_count{{tool=\"{tool}\"}} {}",
                h.count
            );
        }
        out
    }
}
