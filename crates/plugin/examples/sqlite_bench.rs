//! Benchmark of the SQLite store at the size of `memory-bench`'s default run:
//! batch load, single writes, each search mode over three namespaces, and
//! the process's peak resident memory.
//!
//! ```text
//! cargo run --release -p memory-plugin --example sqlite_bench -- \
//!     [--rows N] [--workspaces N] [--batch N] [--searches N] [--dim N] \
//!     [--random-ids] [--path FILE] [--reuse [--append N]]
//! ```
//!
//! The data set has `memory-bench`'s shape, generated here from a fixed seed:
//! workspace trees (a tenth roots, two thirds of the rest their children,
//! the others grandchildren), memories spread uniformly over workspaces,
//! 70% in `workspace:<id>`, 20% in `team:<parent>`, 10% in `org:<root>`, each
//! 50 to 500 characters cut from six random phrases of a fixed vocabulary.
//! Batches of `--batch` (default 1000, the batch route's limit) are written
//! through [`Store::write_batch`], ids in ascending order as a backfill or
//! a plugin swap sends them (`--random-ids`: in random order). Each search
//! names one workspace's three namespaces (workspace, team, org), limit 20.
//!
//! Defaults: 1,000,000 rows over 10,000 workspaces, 500 searches per mode,
//! no embeddings (`--dim N` adds N-dimensional ones and the semantic mode),
//! a fresh file in the system temp dir, removed at the end. A `--path` file
//! is kept; `--reuse` skips the load when that file already holds rows
//! (made by this program with the same `--workspaces`), and `--append N`
//! then loads N more rows into it (ids above the first load's), which
//! measures the load rate at the file's size without loading it again.
//!
//! Peak RSS is `VmHWM` of this process, which holds the store and the
//! generator (a few MiB).

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use memory_contract::{
    BatchWrite, MemoryKind, MemorySource, MemoryWrite, NamespaceKind, NamespaceUpsert,
};
use memory_plugin::store::sqlite::{SqliteOptions, SqliteStore};
use memory_plugin::store::{SearchQuery, Store};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use uuid::Uuid;

struct Args {
    rows: usize,
    workspaces: usize,
    batch: usize,
    searches: usize,
    dim: usize,
    random_ids: bool,
    path: Option<PathBuf>,
    reuse: bool,
    append: usize,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        rows: 1_000_000,
        workspaces: 10_000,
        batch: 1000,
        searches: 500,
        dim: 0,
        random_ids: false,
        path: None,
        reuse: false,
        append: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--random-ids" => {
                args.random_ids = true;
                continue;
            }
            "--reuse" => {
                args.reuse = true;
                continue;
            }
            _ => {}
        }
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--rows" => args.rows = value.parse().context("--rows")?,
            "--workspaces" => args.workspaces = value.parse().context("--workspaces")?,
            "--batch" => args.batch = value.parse().context("--batch")?,
            "--searches" => args.searches = value.parse().context("--searches")?,
            "--dim" => args.dim = value.parse().context("--dim")?,
            "--path" => args.path = Some(PathBuf::from(value)),
            "--append" => args.append = value.parse().context("--append")?,
            other => bail!("unknown flag {other}; see the file's doc comment"),
        }
    }
    if args.rows == 0 || args.workspaces == 0 || args.batch == 0 || args.searches == 0 {
        bail!("--rows, --workspaces, --batch and --searches must be at least 1");
    }
    if args.reuse && args.path.is_none() {
        bail!("--reuse needs --path");
    }
    if args.append > 0 && !args.reuse {
        bail!("--append needs --reuse");
    }
    Ok(args)
}

/// `memory-bench`'s vocabulary (crates/bench/src/legacy.rs), space separated.
const VOCABULARY: &str = "\
agent memory deploy rollback customer invoice kubernetes cluster database migration \
     schema latency throughput incident postmortem alert dashboard metric budget forecast \
     quarter roadmap feature release branch review merge conflict pipeline artifact container \
     registry secret token rotation certificate expiry renewal contract vendor support ticket \
     escalation priority severity outage recovery backup restore snapshot replica failover \
     region zone network firewall gateway proxy cache eviction queue consumer producer \
     partition offset retention compaction index query planner vacuum checkpoint summary \
     meeting decision owner deadline estimate sprint standup retro design document proposal \
     approval legal privacy consent audit compliance policy access permission role group team \
     organisation workspace project milestone blocker dependency upgrade version library \
     runtime compiler benchmark profile flamegraph memory leak allocation thread async future \
     channel mutex deadlock timeout retry breaker backoff jitter health probe readiness \
     liveness scaling autoscaler capacity quota limit billing refund payment subscription \
     trial onboarding churn feedback survey interview user persona journey funnel conversion \
     experiment variant rollout flag toggle config environment staging production sandbox \
     preview the a of and to in for with on after before because should must never always \
     prefers asked noted agreed reported fixed broke moved renamed removed added checked \
     verified failed Monday Tuesday Friday January March October Alice Bob Chen Dana Emeka \
     Fatima Zürich São Paulo München café naïve résumé Ελλάδα 東京 данные 50% under_score v2.3.1 \
     #42 e-mail O'Brien";

/// `memory-bench`'s full-text terms: words that occur in many rows.
const SEARCH_TERMS: &[&str] = &[
    "deploy rollback",
    "customer invoice",
    "database migration",
    "incident",
    "latency",
    "backup restore",
    "kubernetes cluster",
    "meeting decision",
    "certificate expiry",
    "queue consumer",
];

/// `memory-bench`'s one-character substring queries.
const SUBSTRING_CHARS: &[&str] = &["q", "z", "x", "k", "j", "v", "y", "w"];

/// Phrases in the dictionary contents are cut from.
const PHRASES: usize = 4096;

/// Workspaces whose three namespaces the searches name.
const SEARCH_SETS: usize = 200;

/// SplitMix64: a small deterministic generator, enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn uuid(&mut self) -> Uuid {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

/// The workspace trees and the namespaces their memories go to.
struct Tree {
    ids: Vec<Uuid>,
    parent: Vec<Option<usize>>,
}

impl Tree {
    fn new(workspaces: usize, rng: &mut Rng) -> Tree {
        let roots = (workspaces / 10).clamp(1, workspaces);
        let rest = workspaces - roots;
        let children = if rest < 3 { rest } else { rest * 2 / 3 };
        let parent = (0..workspaces)
            .map(|i| {
                if i < roots {
                    None
                } else if i < roots + children {
                    Some((i - roots) % roots)
                } else {
                    Some(roots + (i - roots - children) % children)
                }
            })
            .collect();
        Tree {
            ids: (0..workspaces).map(|_| rng.uuid()).collect(),
            parent,
        }
    }

    fn root(&self, mut i: usize) -> usize {
        while let Some(p) = self.parent[i] {
            i = p;
        }
        i
    }

    fn workspace(&self, i: usize) -> String {
        format!("workspace:{}", self.ids[i])
    }

    fn team(&self, i: usize) -> String {
        format!("team:{}", self.ids[self.parent[i].unwrap_or(i)])
    }

    fn org(&self, i: usize) -> String {
        format!("org:{}", self.ids[self.root(i)])
    }

    /// Every namespace a memory can land in, with its kind.
    fn namespaces(&self) -> Vec<(String, NamespaceKind)> {
        let mut all = std::collections::BTreeMap::new();
        for i in 0..self.ids.len() {
            all.insert(self.workspace(i), NamespaceKind::Workspace);
            all.insert(self.team(i), NamespaceKind::Team);
            all.insert(self.org(i), NamespaceKind::Org);
        }
        all.into_iter().collect()
    }
}

/// Generates the memories, batch by batch, always the same for one seed.
struct Generator {
    rng: Rng,
    phrases: Vec<String>,
    now: DateTime<Utc>,
    next_id: u128,
    id_step: u128,
    random_ids: bool,
    dim: usize,
}

impl Generator {
    /// `rows` ids ascending over the UUID space from `first` on.
    fn new(rows: usize, first: u128, random_ids: bool, dim: usize) -> Generator {
        let mut rng = Rng(0x5eed);
        let words: Vec<&str> = VOCABULARY.split_whitespace().collect();
        let phrases = (0..PHRASES)
            .map(|_| {
                let n = 6 + rng.below(13);
                (0..n)
                    .map(|_| words[rng.below(words.len())])
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        Generator {
            rng,
            phrases,
            now: Utc::now(),
            next_id: first,
            // Ascending ids spread evenly over the rest of the UUID space.
            id_step: (u128::MAX - first) / (rows as u128 + 1),
            random_ids,
            dim,
        }
    }

    fn content(&mut self) -> String {
        let mut text = String::new();
        for k in 0..6 {
            if k > 0 {
                text.push(' ');
            }
            text.push_str(&self.phrases[self.rng.below(self.phrases.len())]);
        }
        let len = 51 + self.rng.below(450);
        let cut: String = text.chars().take(len).collect();
        cut.trim_end().to_string()
    }

    fn id(&mut self) -> Uuid {
        if self.random_ids {
            return self.rng.uuid();
        }
        self.next_id += self.id_step;
        // Keep the version and variant bits of a v4 UUID.
        let raw = self.next_id.to_be_bytes();
        uuid::Builder::from_random_bytes(raw).into_uuid()
    }

    fn batch(&mut self, tree: &Tree, n: usize) -> Vec<BatchWrite> {
        (0..n)
            .map(|_| {
                let w = self.rng.below(tree.ids.len());
                let scope = self.rng.unit();
                let namespace = if scope < 0.7 {
                    tree.workspace(w)
                } else if scope < 0.9 {
                    tree.team(w)
                } else {
                    tree.org(w)
                };
                let mut write =
                    MemoryWrite::new(self.content(), MemoryKind::Fact, MemorySource::Agent);
                write.id = Some(self.id());
                let age = (self.rng.unit() * 730.0 * 86_400.0) as i64;
                write.created_at = Some(self.now - ChronoDuration::seconds(age));
                if self.dim > 0 {
                    write.embedding = Some(vector(&mut self.rng, self.dim));
                }
                BatchWrite { namespace, write }
            })
            .collect()
    }
}

fn vector(rng: &mut Rng, dim: usize) -> Vec<f32> {
    (0..dim).map(|_| rng.unit() as f32 * 2.0 - 1.0).collect()
}

/// p50, p99 and mean of `samples`, in milliseconds.
fn latency(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let n = samples.len().max(1);
    let at = |q: usize| samples[((n * q).div_ceil(100)).clamp(1, n) - 1];
    let mean = samples.iter().sum::<Duration>() / n as u32;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, mean {:.2} ms",
        ms(at(50)),
        ms(at(99)),
        ms(mean)
    )
}

/// The `/proc/self/status` lines about memory, in MiB.
fn memory_status() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or_else(|| "?".to_string(), |kb| format!("{:.1}", kb / 1024.0))
    };
    format!(
        "VmHWM {} MiB (peak), VmRSS {} MiB = RssAnon {} + RssFile {} + RssShmem {}",
        field("VmHWM:"),
        field("VmRSS:"),
        field("RssAnon:"),
        field("RssFile:"),
        field("RssShmem:")
    )
}

/// Sizes of the database file and its WAL, in MiB.
fn file_sizes(path: &std::path::Path) -> String {
    let size = |suffix: &str| {
        std::fs::metadata(format!("{}{suffix}", path.display())).map_or_else(
            |_| "-".to_string(),
            |m| format!("{:.1} MiB", m.len() as f64 / 1048576.0),
        )
    };
    format!("database {}, WAL {}", size(""), size("-wal"))
}

async fn count_rows(store: &SqliteStore) -> Result<usize> {
    let mut total = 0;
    let mut after = None;
    loop {
        let page = store.scan_memories(after, None, 1000, false).await?;
        total += page.memories.len();
        match page.next_after {
            Some(next) => after = Some(next),
            None => return Ok(total),
        }
    }
}

/// Loads `rows` memories in batches of `batch`, generating the next batch
/// while the store writes the current one; prints the rate every tenth.
async fn load(
    store: &SqliteStore,
    tree: &Tree,
    generator: &mut Generator,
    rows: usize,
    batch: usize,
) -> Result<()> {
    let started = Instant::now();
    let mut loaded = 0;
    let mut tenth_started = Instant::now();
    let mut tenth_rows = 0;
    let tenth = (rows / 10).max(1);
    let mut next = generator.batch(tree, batch.min(rows));
    while !next.is_empty() {
        let writes = next;
        let writing = {
            let store = store.clone();
            tokio::spawn(async move {
                let results = store.write_batch(&writes).await?;
                for r in &results {
                    if let Err(e) = r {
                        bail!("batch item failed: {e}");
                    }
                }
                Ok(writes.len())
            })
        };
        let remaining = rows - loaded;
        let upcoming = remaining.saturating_sub(batch).min(batch);
        next = generator.batch(tree, upcoming);
        let written = writing.await??;
        loaded += written;
        tenth_rows += written;
        if tenth_rows >= tenth || loaded == rows {
            let secs = tenth_started.elapsed().as_secs_f64();
            println!(
                "  {loaded} rows, last {tenth_rows} at {:.0} rows/s",
                tenth_rows as f64 / secs
            );
            tenth_started = Instant::now();
            tenth_rows = 0;
        }
    }
    let load = started.elapsed();
    println!(
        "batch load: {} rows in {load:.2?}: {:.0} rows/s (batches of {})",
        rows,
        rows as f64 / load.as_secs_f64(),
        batch
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let (path, temporary) = match &args.path {
        Some(p) => (p.clone(), false),
        None => (
            std::env::temp_dir().join(format!("memory-plugin-bench-{}.db", std::process::id())),
            true,
        ),
    };
    let reuse = args.reuse && path.exists();
    let opened = Instant::now();
    let store = SqliteStore::open(
        &format!("sqlite:{}", path.display()),
        SqliteOptions {
            embedding_dim: args.dim.max(1),
        },
    )
    .await
    .context("open store")?;
    println!(
        "open: {:.2?} ({})",
        opened.elapsed(),
        if reuse { "existing file" } else { "new file" }
    );
    let mut rng = Rng(0x7ee5);
    let tree = Tree::new(args.workspaces, &mut rng);

    let mut generator = Generator::new(args.rows, 0, args.random_ids, args.dim);
    if reuse {
        println!(
            "reusing {} ({} rows)",
            path.display(),
            count_rows(&store).await?
        );
        if args.append > 0 {
            // Above every id of a first load of up to 2^32 rows.
            let first = u128::MAX - (u128::MAX >> 32);
            let mut more = Generator::new(args.append, first, args.random_ids, args.dim);
            load(&store, &tree, &mut more, args.append, args.batch).await?;
            println!("after load: {}", memory_status());
            println!("files: {}", file_sizes(&path));
        }
    } else {
        let started = Instant::now();
        let namespaces = tree.namespaces();
        for (name, kind) in &namespaces {
            store
                .upsert_namespace(
                    name,
                    &NamespaceUpsert {
                        kind: *kind,
                        expires_at: None,
                        metadata: None,
                    },
                )
                .await?;
        }
        println!(
            "namespaces: {} in {:.2?}",
            namespaces.len(),
            started.elapsed()
        );

        load(&store, &tree, &mut generator, args.rows, args.batch).await?;
        println!("after load: {}", memory_status());
        println!("files: {}", file_sizes(&path));
    }

    let single_namespace = tree.workspace(0);
    let mut single = Vec::new();
    for _ in 0..1000 {
        let mut w = generator.batch(&tree, 1).remove(0).write;
        w.id = None;
        let t = Instant::now();
        store.write_memory(&single_namespace, &w).await?;
        single.push(t.elapsed());
    }
    println!("single write (1000, sequential): {}", latency(single));

    let mut picker = Rng(0x5e7);
    let sets: Vec<Vec<String>> = (0..SEARCH_SETS)
        .map(|_| {
            let w = picker.below(args.workspaces);
            vec![tree.workspace(w), tree.team(w), tree.org(w)]
        })
        .collect();
    let query = |i: usize, text: Option<&str>, embedding: Option<Vec<f32>>| SearchQuery {
        namespaces: sets[i % sets.len()].clone(),
        query: text.map(str::to_string),
        kinds: Vec::new(),
        limit: 20,
        embedding,
    };
    let mut modes = vec!["recent", "substring", "full-text"];
    if args.dim > 0 {
        modes.push("semantic");
    }
    for mode in modes {
        let mut samples = Vec::with_capacity(args.searches);
        let mut found = 0;
        for i in 0..args.searches + 20 {
            let q = match mode {
                "recent" => query(i, None, None),
                "substring" => query(i, Some(SUBSTRING_CHARS[i % SUBSTRING_CHARS.len()]), None),
                "full-text" => query(i, Some(SEARCH_TERMS[i % SEARCH_TERMS.len()]), None),
                _ => query(i, None, Some(vector(&mut picker, args.dim))),
            };
            let t = Instant::now();
            let answer = store.search(&q).await?;
            // The first 20 warm up and are not counted.
            if i >= 20 {
                samples.push(t.elapsed());
                found += answer.len();
            }
        }
        println!(
            "search {mode} (3 namespaces, limit 20, {} requests, {:.1} results each): {}",
            args.searches,
            found as f64 / args.searches as f64,
            latency(samples)
        );
    }
    println!("end: {}", memory_status());
    store.close().await;
    if temporary {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
    Ok(())
}
