//! Progress on stderr while a run works.
//!
//! On a terminal: one line redrawn in place with rows done, rate and ETA
//! (and with `-embed`, memories embedded and their rate).
//! Otherwise (logs, CI): a plain line every few seconds. The counters are
//! atomics so the workers update them without locks.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counters the workers bump.
#[derive(Debug, Default)]
pub struct Counters {
    pub scanned: AtomicU64,
    pub written: AtomicU64,
    pub skipped: AtomicU64,
    pub errors: AtomicU64,
    /// Texts embedded (`-embed`); shown with its own rate once non-zero.
    pub embedded: AtomicU64,
}

impl Counters {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// A running progress display; stop it with [`Progress::finish`].
pub struct Progress {
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts drawing. `total` is the number of rows expected, when known.
    /// `enabled = false` draws nothing (used by `--json` runs and tests).
    pub fn start(label: &'static str, total: Option<u64>, enabled: bool) -> Progress {
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let task = enabled.then(|| {
            let counters = counters.clone();
            let stop = stop.clone();
            tokio::spawn(async move { draw_loop(label, total, counters, stop).await })
        });
        Progress {
            counters,
            stop,
            task,
        }
    }

    /// The counters to update.
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Stops drawing and clears the terminal line.
    pub async fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

async fn draw_loop(
    label: &'static str,
    total: Option<u64>,
    c: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let tick = if tty {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(5)
    };
    let mut last_plain = Instant::now();
    loop {
        tokio::time::sleep(if tty {
            tick
        } else {
            Duration::from_millis(200)
        })
        .await;
        let done = stop.load(Ordering::Relaxed);
        let scanned = c.scanned.load(Ordering::Relaxed);
        let written = c.written.load(Ordering::Relaxed);
        let skipped = c.skipped.load(Ordering::Relaxed);
        let errors = c.errors.load(Ordering::Relaxed);
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let rate = scanned as f64 / secs;
        let eta = match total {
            Some(t) if rate > 0.0 && t > scanned => {
                format!(" eta {}", human_duration((t - scanned) as f64 / rate))
            }
            _ => String::new(),
        };
        let of_total = total.map(|t| format!("/{t}")).unwrap_or_default();
        let pct = match total {
            Some(t) if t > 0 => format!(" ({:.1}%)", scanned as f64 * 100.0 / t as f64),
            _ => String::new(),
        };
        let embedded = c.embedded.load(Ordering::Relaxed);
        let embedding = if embedded > 0 {
            format!(
                ", {embedded} embedded ({:.1} embedded/s)",
                embedded as f64 / secs
            )
        } else {
            String::new()
        };
        let line = format!(
            "{label}: {scanned}{of_total}{pct} scanned, {written} written, {skipped} skipped, {errors} errors, {rate:.0} rows/s{embedding}{eta}"
        );
        let mut err = std::io::stderr().lock();
        if tty {
            let _ = write!(err, "\r\x1b[2K{line}");
            if done {
                let _ = write!(err, "\r\x1b[2K");
            }
            let _ = err.flush();
        } else if last_plain.elapsed() >= tick && !done {
            let _ = writeln!(err, "{line}");
            last_plain = Instant::now();
        }
        if done {
            return;
        }
    }
}

fn human_duration(secs: f64) -> String {
    let s = secs.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}
