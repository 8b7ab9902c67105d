//! Speed of the in-process embedder: latency for one 50-word memory (p50,
//! p99) and throughput for batches of 64.
//!
//! ```sh
//! MEMORY_EMBED_MODEL_DIR=target/testkit/all-MiniLM-L6-v2 \
//!     cargo run --release -p memory-embed --example embed_bench -- [--threads N] [--single N] [--batches N]
//! ```
//!
//! Without `MEMORY_EMBED_MODEL_DIR` the default locations are searched;
//! `MEMORY_EMBED_PRECISION=f32` measures the f32 products.
//!
//! `memory-bench --embedding` measures the same figures (on real memory
//! texts, next to the issue's targets) as a section of the benchmark; this
//! example stays for quick runs inside this crate (`--threads`,
//! `--batch-size`).

use memory_embed::{Embedder, LocalConfig, LocalEmbedder, Precision};
use std::time::{Duration, Instant};

const WORDS: &[&str] = &[
    "deploy",
    "release",
    "friday",
    "team",
    "agreed",
    "database",
    "migration",
    "namespace",
    "agent",
    "memory",
    "checkpoint",
    "summary",
    "rollback",
    "staging",
    "production",
    "latency",
    "customer",
    "invoice",
    "quarterly",
    "review",
    "meeting",
    "decided",
    "postgres",
    "index",
    "query",
    "search",
    "vector",
    "token",
    "budget",
    "incident",
    "owner",
    "schedule",
    "the",
    "a",
    "we",
    "to",
    "on",
    "and",
    "of",
    "for",
    "with",
    "after",
    "before",
    "because",
    "should",
    "will",
    "not",
    "every",
];

/// A deterministic 50-word "memory"; `seed` varies the words.
fn memory(seed: usize) -> String {
    let mut state = seed as u64 * 0x9E37_79B9_7F4A_7C15 + 1;
    (0..50)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            WORDS[(state % WORDS.len() as u64) as usize]
        })
        .collect::<Vec<_>>()
        .join(" ")
        + "."
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// CPU time (user + system) this process has used so far, from
/// `/proc/self/stat` (Linux; `None` elsewhere). On a shared machine the
/// wall-clock figures include time other processes took; CPU time does not.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel reports clock ticks of 1/100 s on every Linux we run on.
    Some(Duration::from_millis(ticks * 10))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let mut config = LocalConfig::default();
    let mut singles = 200usize;
    let mut batches = 8usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match arg.as_str() {
            "--threads" => config.threads = value("--threads"),
            "--single" => singles = value("--single"),
            "--batches" => batches = value("--batches"),
            "--batch-size" => config.batch_size = value("--batch-size"),
            other => panic!(
                "unknown argument {other}; expected --threads, --single, --batches, --batch-size"
            ),
        }
    }
    let (singles, batches) = (singles.max(1), batches.max(1));
    if let Some(dir) = std::env::var_os("MEMORY_EMBED_MODEL_DIR") {
        config.model_dir = Some(dir.into());
    }
    if let Ok(precision) = std::env::var("MEMORY_EMBED_PRECISION") {
        config.precision = Precision::parse(&precision).unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        });
    }
    let started = Instant::now();
    let embedder = LocalEmbedder::load(&config).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    println!("model: {}", embedder.describe());
    println!("load: {:.0} ms", ms(started.elapsed()));
    let tokens = embedder.count_tokens(&memory(0)).unwrap();
    println!("one memory: 50 words, {tokens} tokens");

    // Warm up (first calls allocate and start threads).
    for i in 0..5 {
        embedder.embed_blocking(&[memory(i)]).unwrap();
    }

    let mut times = Vec::with_capacity(singles);
    let cpu_before = cpu_time();
    let wall_before = Instant::now();
    for i in 0..singles {
        let text = [memory(1000 + i)];
        let t = Instant::now();
        embedder.embed_blocking(&text).unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "single memory: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({singles} calls)",
        ms(percentile(&times, 0.50)),
        ms(percentile(&times, 0.99)),
        ms(*times.last().unwrap())
    );
    if let (Some(before), Some(after)) = (cpu_before, cpu_time()) {
        println!(
            "single memory: {:.2} ms CPU time per call on average ({:.2} ms wall on average)",
            ms(after - before) / singles as f64,
            ms(wall_before.elapsed()) / singles as f64
        );
    }

    let batch_texts: Vec<Vec<String>> = (0..batches)
        .map(|b| (0..64).map(|i| memory(100_000 + b * 64 + i)).collect())
        .collect();
    embedder.embed_blocking(&batch_texts[0]).unwrap();
    let cpu_before = cpu_time();
    let t = Instant::now();
    let mut per_batch = Vec::with_capacity(batches);
    for texts in &batch_texts {
        let b = Instant::now();
        embedder.embed_blocking(texts).unwrap();
        per_batch.push(b.elapsed());
    }
    let total = t.elapsed();
    per_batch.sort();
    println!(
        "batches of 64: {:.0} memories/s ({batches} batches, {:.0} ms per batch p50)",
        (batches * 64) as f64 / total.as_secs_f64(),
        ms(percentile(&per_batch, 0.5))
    );
    if let (Some(before), Some(after)) = (cpu_before, cpu_time()) {
        println!(
            "batches of 64: {:.0} memories per CPU-second ({} threads)",
            (batches * 64) as f64 / (after - before).as_secs_f64(),
            config.threads
        );
    }
}
