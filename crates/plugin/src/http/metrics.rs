//! Request metrics in the Prometheus text exposition format.
//!
//! Written by hand to keep the dependency tree small: a counter of requests
//! by method, route template and status, a latency histogram by route, the
//! store's pool gauges, and the sizes and time of its write groups, rendered
//! on each scrape of `/metrics`.

use crate::store::group::{GroupStats, GROUP_SIZE_BUCKETS};
use crate::store::PoolStats;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram buckets, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default)]
struct Histogram {
    /// Count per bucket (not cumulative; summed when rendered).
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

#[derive(Debug, Default)]
struct Counters {
    /// (method, route, status) -> count.
    requests: BTreeMap<(String, String, u16), u64>,
    /// route -> latency histogram.
    latency: BTreeMap<String, Histogram>,
}

/// The server's metrics registry; shared by every request.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
}

impl Metrics {
    /// Records one finished request.
    pub fn record(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        // A poisoned lock only means another request panicked mid-update;
        // the counters are still usable.
        let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        *c.requests
            .entry((method.to_string(), route.to_string(), status))
            .or_default() += 1;
        let h = c.latency.entry(route.to_string()).or_default();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            h.buckets[i] += 1;
        }
        h.count += 1;
        h.sum_seconds += secs;
    }

    /// Renders every metric, with `pool` as the current pool figures and
    /// `groups` as the write groups so far.
    pub fn render(&self, pool: PoolStats, groups: &GroupStats, backend: &str) -> String {
        let c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();

        out.push_str("# HELP memory_plugin_http_requests_total HTTP requests served, by method, route template and status.\n");
        out.push_str("# TYPE memory_plugin_http_requests_total counter\n");
        for ((method, route, status), n) in &c.requests {
            let _ = writeln!(
                out,
                "memory_plugin_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape_label(method),
                escape_label(route)
            );
        }

        out.push_str("# HELP memory_plugin_http_request_duration_seconds Time to answer a request, by route template.\n");
        out.push_str("# TYPE memory_plugin_http_request_duration_seconds histogram\n");
        for (route, h) in &c.latency {
            write_histogram(
                &mut out,
                "memory_plugin_http_request_duration_seconds",
                &format!("route=\"{}\"", escape_label(route)),
                LATENCY_BUCKETS.iter().zip(h.buckets.iter().copied()),
                h.count,
                h.sum_seconds,
            );
        }

        let backend = escape_label(backend);
        for (name, help, value) in [
            (
                "memory_plugin_db_pool_size",
                "Open database connections.",
                pool.size,
            ),
            (
                "memory_plugin_db_pool_idle",
                "Idle database connections.",
                pool.idle,
            ),
            (
                "memory_plugin_db_pool_max",
                "Most database connections the pool may open.",
                pool.max,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name}{{backend=\"{backend}\"}} {value}");
        }

        out.push_str("# HELP memory_plugin_write_group_size Single writes taken together into one transaction, per group (failed groups included).\n");
        out.push_str("# TYPE memory_plugin_write_group_size histogram\n");
        write_histogram(
            &mut out,
            "memory_plugin_write_group_size",
            &format!("backend=\"{backend}\""),
            GROUP_SIZE_BUCKETS.iter().zip(groups.sizes.iter().copied()),
            groups.groups,
            groups.writes,
        );
        out.push_str("# HELP memory_plugin_write_group_seconds_total Time the write groups took, from a committer taking the group to its commit or failure.\n");
        out.push_str("# TYPE memory_plugin_write_group_seconds_total counter\n");
        let _ = writeln!(
            out,
            "memory_plugin_write_group_seconds_total{{backend=\"{backend}\"}} {}",
            groups.seconds
        );
        out
    }
}

/// Writes the lines of one histogram series: a cumulative `_bucket` line
/// per bound (from per-bucket counts), `+Inf`, `_sum` and `_count`.
/// `labels` are the series' own, already escaped (`name="value",...`).
fn write_histogram<B: std::fmt::Display>(
    out: &mut String,
    name: &str,
    labels: &str,
    buckets: impl Iterator<Item = (B, u64)>,
    count: u64,
    sum: impl std::fmt::Display,
) {
    let mut cumulative = 0;
    for (bound, n) in buckets {
        cumulative += n;
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
}

/// Escapes a label value as the text format requires.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_counts_requests_and_accumulates_buckets() {
        let m = Metrics::default();
        m.record("GET", "/v1/health", 200, Duration::from_millis(2));
        m.record("GET", "/v1/health", 200, Duration::from_millis(300));
        m.record("POST", "/v1/search", 400, Duration::from_millis(1));
        let mut sizes = [0; GROUP_SIZE_BUCKETS.len()];
        sizes[0] = 3; // three groups of one
        sizes[3] = 1; // one of 5 to 8
        let groups = GroupStats {
            sizes,
            groups: 4,
            writes: 10,
            seconds: 0.25,
        };
        let text = m.render(
            PoolStats {
                size: 3,
                idle: 2,
                max: 10,
            },
            &groups,
            "postgres",
        );
        assert!(text.contains(
            "memory_plugin_http_requests_total{method=\"GET\",route=\"/v1/health\",status=\"200\"} 2"
        ));
        assert!(text.contains(
            "memory_plugin_http_requests_total{method=\"POST\",route=\"/v1/search\",status=\"400\"} 1"
        ));
        assert!(text.contains(
            "memory_plugin_http_request_duration_seconds_bucket{route=\"/v1/health\",le=\"0.25\"} 1"
        ));
        assert!(text.contains(
            "memory_plugin_http_request_duration_seconds_bucket{route=\"/v1/health\",le=\"0.5\"} 2"
        ));
        assert!(text
            .contains("memory_plugin_http_request_duration_seconds_count{route=\"/v1/health\"} 2"));
        assert!(text.contains("memory_plugin_db_pool_max{backend=\"postgres\"} 10"));
        assert!(text.contains("memory_plugin_db_pool_idle{backend=\"postgres\"} 2"));
        assert!(
            text.contains("memory_plugin_write_group_size_bucket{backend=\"postgres\",le=\"1\"} 3")
        );
        assert!(
            text.contains("memory_plugin_write_group_size_bucket{backend=\"postgres\",le=\"4\"} 3")
        );
        assert!(
            text.contains("memory_plugin_write_group_size_bucket{backend=\"postgres\",le=\"8\"} 4")
        );
        assert!(text
            .contains("memory_plugin_write_group_size_bucket{backend=\"postgres\",le=\"+Inf\"} 4"));
        assert!(text.contains("memory_plugin_write_group_size_sum{backend=\"postgres\"} 10"));
        assert!(text.contains("memory_plugin_write_group_size_count{backend=\"postgres\"} 4"));
        assert!(text.contains("memory_plugin_write_group_seconds_total{backend=\"postgres\"} 0.25"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
