//! Load generation: run one operation from N concurrent clients, bounded by
//! a count and a time, and summarise throughput and latency percentiles.
//!
//! The same runner drives the plugin over HTTP and the direct SQL floors, so
//! both sides of every ratio are measured by the same code.

use serde::Serialize;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Throughput and latency of one load phase.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LoadSummary {
    /// Concurrent clients.
    pub clients: usize,
    /// Operations that succeeded.
    pub ok: u64,
    /// Operations that failed.
    pub errors: u64,
    /// First error message seen, if any.
    pub first_error: Option<String>,
    /// Wall time of the phase, in seconds.
    pub seconds: f64,
    /// Successful operations per second.
    pub per_second: f64,
    /// Median latency, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, in milliseconds.
    pub p99_ms: f64,
}

/// Limits of one load phase: whichever is reached first ends it.
#[derive(Debug, Clone, Copy)]
pub struct LoadBounds {
    pub max_ops: u64,
    pub max_time: Duration,
}

/// Runs `op(client_index, op_index)` from `clients` concurrent tasks until
/// `bounds` is reached, and summarises the successful operations.
pub async fn run_load<F, Fut, E>(clients: usize, bounds: LoadBounds, op: F) -> LoadSummary
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let op = Arc::new(op);
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + bounds.max_time;
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients.max(1) {
        let op = Arc::clone(&op);
        let issued = Arc::clone(&issued);
        tasks.push(tokio::spawn(async move {
            let mut latencies_us: Vec<u64> = Vec::new();
            let mut errors = 0u64;
            let mut first_error = None;
            loop {
                if Instant::now() >= deadline {
                    break;
                }
                let index = issued.fetch_add(1, Ordering::Relaxed);
                if index >= bounds.max_ops {
                    break;
                }
                let t0 = Instant::now();
                match op(client, index).await {
                    Ok(()) => latencies_us.push(t0.elapsed().as_micros() as u64),
                    Err(e) => {
                        errors += 1;
                        if first_error.is_none() {
                            first_error = Some(e.to_string());
                        }
                    }
                }
            }
            (latencies_us, errors, first_error)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok((lat, err, first)) => {
                all.extend(lat);
                errors += err;
                if first_error.is_none() {
                    first_error = first;
                }
            }
            Err(join) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("load task failed: {join}"));
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    summarise(clients, all, errors, first_error, seconds)
}

fn summarise(
    clients: usize,
    mut latencies_us: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
    seconds: f64,
) -> LoadSummary {
    latencies_us.sort_unstable();
    let ok = latencies_us.len() as u64;
    LoadSummary {
        clients,
        ok,
        errors,
        first_error,
        seconds,
        per_second: if seconds > 0.0 {
            ok as f64 / seconds
        } else {
            0.0
        },
        p50_ms: percentile(&latencies_us, 50.0) as f64 / 1000.0,
        p99_ms: percentile(&latencies_us, 99.0) as f64 / 1000.0,
    }
}

/// Nearest-rank percentile of sorted values; 0 when empty.
pub fn percentile(sorted: &[u64], pct: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50.0), 50);
        assert_eq!(percentile(&values, 99.0), 99);
        assert_eq!(percentile(&values, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[tokio::test]
    async fn load_stops_at_the_operation_count_and_counts_errors() {
        let summary = run_load(
            4,
            LoadBounds {
                max_ops: 100,
                max_time: Duration::from_secs(30),
            },
            |_, i| async move {
                if i % 10 == 0 {
                    Err(format!("op {i} failed"))
                } else {
                    Ok(())
                }
            },
        )
        .await;
        assert_eq!(summary.ok + summary.errors, 100);
        assert_eq!(summary.errors, 10);
        assert!(summary.first_error.unwrap().contains("failed"));
        assert_eq!(summary.clients, 4);
    }

    #[tokio::test]
    async fn load_stops_at_the_time_bound() {
        let summary = run_load(
            2,
            LoadBounds {
                max_ops: u64::MAX,
                max_time: Duration::from_millis(200),
            },
            |_, _| async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok::<(), String>(())
            },
        )
        .await;
        assert!(summary.ok > 0);
        assert!(summary.ok < 1000);
        assert!(summary.p50_ms >= 9.0, "{summary:?}");
    }
}
