//! Command-line flags and the validated plan they turn into.
//!
//! Parsing happens in two stages: clap checks the raw flags, then
//! [`Options::into_plan`] fills in the sizes that depend on `--quick` and
//! rejects combinations that cannot run, before any database is touched.

use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

/// Default admin URL of the PostgreSQL server the scratch database goes on.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Raw flags of `memory-bench`.
#[derive(Debug, Parser)]
#[command(
    name = "memory-bench",
    version,
    about = "Measures the memory plugin and memory-backfill against floors measured in the same run",
    long_about = "Builds a legacy data set in a scratch Postgres database, runs memory-backfill and the \
                  memory-plugin server as child processes, and prints every figure next to the floor it is \
                  measured against (the same work done directly inside the database). The scratch database \
                  and temporary files are removed at the end, also on error or Ctrl-C."
)]
pub struct Options {
    /// Small sizes and short load phases (finishes in under a minute); checks nothing about speed.
    #[arg(long)]
    pub quick: bool,

    /// Legacy agent_memories rows to generate [default: 1000000; quick: 20000].
    #[arg(long, value_name = "N")]
    pub rows: Option<u64>,

    /// Legacy workspaces to generate [default: 10000; quick: 200].
    #[arg(long, value_name = "N")]
    pub workspaces: Option<u64>,

    /// Rows of the SQLite search table, loaded through the batch route
    /// [default: same as --rows; quick: 5000]. Postgres searches run on the
    /// backfilled table of --rows rows.
    #[arg(long, value_name = "N")]
    pub search_rows: Option<u64>,

    /// Rows migrated by the naive per-row method before extrapolating
    /// [default: 20000; quick: 200].
    #[arg(long, value_name = "N")]
    pub naive_rows: Option<u64>,

    /// Most operations per concurrency level of the commit load [default: 20000; quick: 200].
    #[arg(long, value_name = "N")]
    pub commit_ops: Option<u64>,

    /// Longest time per concurrency level of the commit load, in seconds [default: 10; quick: 1].
    #[arg(long, value_name = "SECONDS")]
    pub commit_seconds: Option<f64>,

    /// Search requests per mode [default: 500; quick: 40].
    #[arg(long, value_name = "N")]
    pub search_requests: Option<u64>,

    /// Admin URL of the PostgreSQL server for the scratch database.
    #[arg(
        long,
        value_name = "URL",
        env = "MEMORY_BENCH_DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        hide_env_values = true
    )]
    pub database_url: String,

    /// Directory holding the memory-plugin and memory-backfill binaries
    /// [default: the directory of this executable].
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,

    /// Do not run `cargo build --release -p memory-plugin -p memory-backfill` first.
    #[arg(long)]
    pub no_build: bool,

    /// Also measure semantic search, on the shared PostgreSQL 18 cluster with
    /// pgvector that memory-testkit provides (set up on first use).
    #[arg(long)]
    pub semantic: bool,

    /// Measure semantic search on this PostgreSQL server with pgvector
    /// (admin URL) instead of memory-testkit's cluster; implies --semantic.
    #[arg(
        long,
        value_name = "URL",
        env = "MEMORY_BENCH_PG18_URL",
        hide_env_values = true
    )]
    pub pg18_url: Option<String>,

    /// Rows of the semantic-search table on PostgreSQL 18 [default: same as --rows; quick: 2000].
    #[arg(long, value_name = "N")]
    pub semantic_rows: Option<u64>,

    /// Embedding dimension for the semantic-search table.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub embedding_dim: usize,

    /// Which part to run: all (the full benchmark), backfill (sections a-d:
    /// legacy data, in-database copy, backfill apply and verify, naive
    /// per-row), pg-batch (the Postgres store's batch write against INSERT
    /// ... SELECT) or sqlite-million (a SQLite plugin loaded through the
    /// batch route with --rows generated memories over --workspaces
    /// workspaces: load rate, searches, peak RSS).
    #[arg(long, value_enum, default_value_t = Section::All)]
    pub section: Section,

    /// sqlite-million: keep the SQLite file here; when it already holds
    /// memories the load is skipped and only the searches and memory are measured.
    #[arg(long, value_name = "FILE")]
    pub sqlite_path: Option<PathBuf>,

    /// Measure retrieval quality only: recall@5 and MRR@10 of full-text,
    /// semantic and hybrid search over the built-in evaluation set (a SQLite
    /// plugin, the local all-MiniLM-L6-v2 model; no Postgres needed).
    #[arg(long)]
    pub quality: bool,

    /// Measure the local embedding model's speed only (one 50-word memory:
    /// p50 and p99; batches of 64: memories/s). Combines with --quality.
    #[arg(long)]
    pub embedding: bool,

    /// Threads of the local embedding model for --quality and --embedding
    /// [default: memory-embed's, min(cores, 4)].
    #[arg(long, value_name = "N")]
    pub embed_threads: Option<usize>,

    /// Exit 1 when a figure misses its target (never in --quick mode).
    #[arg(long)]
    pub fail_on_miss: bool,

    /// Print the machine report as JSON on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,

    /// Also print the table as Markdown.
    #[arg(long)]
    pub markdown: bool,
}

/// The part of the benchmark a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Section {
    All,
    Backfill,
    PgBatch,
    SqliteMillion,
}

/// The validated sizes and settings of one run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub quick: bool,
    pub rows: u64,
    pub workspaces: u64,
    pub search_rows: u64,
    pub naive_rows: u64,
    pub commit_ops: u64,
    pub commit_time: Duration,
    pub commit_levels: Vec<usize>,
    pub search_requests: u64,
    pub database_url: url::Url,
    pub bin_dir: Option<PathBuf>,
    pub build: bool,
    pub pg18_url: Option<url::Url>,
    pub semantic: bool,
    pub semantic_rows: u64,
    pub embedding_dim: usize,
    pub fail_on_miss: bool,
    pub json: bool,
    pub markdown: bool,
    pub quality: bool,
    pub embedding: bool,
    pub embed_threads: Option<usize>,
    pub section: Section,
    pub sqlite_path: Option<PathBuf>,
}

impl Options {
    /// Fills in defaults and checks the flags together.
    ///
    /// # Errors
    ///
    /// A one-line message naming the flag that cannot be used.
    pub fn into_plan(self) -> Result<Plan, String> {
        let quick = self.quick;
        let pick = |given: Option<u64>, full: u64, small: u64| {
            given.unwrap_or(if quick { small } else { full })
        };
        let rows = pick(self.rows, 1_000_000, 20_000);
        let workspaces = pick(self.workspaces, 10_000, 200);
        let search_rows = self
            .search_rows
            .unwrap_or(if quick { rows.min(5_000) } else { rows });
        let naive_rows = match self.naive_rows {
            Some(n) => n,
            None => (if quick { 200 } else { 20_000 }).min(rows),
        };
        let commit_ops = pick(self.commit_ops, 20_000, 200);
        let search_requests = pick(self.search_requests, 500, 40);
        let semantic_rows = pick(self.semantic_rows, rows, 2_000);
        let commit_seconds = self
            .commit_seconds
            .unwrap_or(if quick { 1.0 } else { 10.0 });

        if rows == 0 {
            return Err("--rows must be at least 1".into());
        }
        if workspaces == 0 {
            return Err("--workspaces must be at least 1".into());
        }
        if workspaces > rows.max(1) * 10 {
            return Err(format!(
                "--workspaces={workspaces} is far more than --rows={rows}; most workspaces would be empty"
            ));
        }
        if naive_rows == 0 || naive_rows > rows {
            return Err(format!(
                "--naive-rows must be between 1 and --rows ({rows}), got {naive_rows}"
            ));
        }
        if search_rows == 0 {
            return Err("--search-rows must be at least 1".into());
        }
        if commit_ops == 0 {
            return Err("--commit-ops must be at least 1".into());
        }
        if !(commit_seconds.is_finite() && commit_seconds > 0.0 && commit_seconds <= 3600.0) {
            return Err(format!(
                "--commit-seconds must be between 0 and 3600, got {commit_seconds}"
            ));
        }
        if search_requests == 0 {
            return Err("--search-requests must be at least 1".into());
        }
        if self.embedding_dim == 0 || self.embedding_dim > 16_000 {
            return Err(format!(
                "--embedding-dim must be between 1 and 16000, got {}",
                self.embedding_dim
            ));
        }
        if self.sqlite_path.is_some() && self.section != Section::SqliteMillion {
            return Err("--sqlite-path is only used with --section sqlite-million".into());
        }
        let database_url = parse_postgres_url("--database-url", &self.database_url)?;
        let pg18_url = match self.pg18_url.as_deref() {
            Some(raw) if !raw.trim().is_empty() => Some(parse_postgres_url("--pg18-url", raw)?),
            _ => None,
        };
        Ok(Plan {
            quick,
            rows,
            workspaces,
            search_rows,
            naive_rows,
            commit_ops,
            commit_time: Duration::from_secs_f64(commit_seconds),
            commit_levels: vec![1, 8, 32],
            search_requests,
            database_url,
            bin_dir: self.bin_dir,
            build: !self.no_build,
            semantic: self.semantic || pg18_url.is_some(),
            pg18_url,
            semantic_rows,
            embedding_dim: self.embedding_dim,
            fail_on_miss: self.fail_on_miss && !quick,
            json: self.json,
            markdown: self.markdown,
            quality: self.quality,
            embedding: self.embedding,
            embed_threads: self.embed_threads,
            section: self.section,
            sqlite_path: self.sqlite_path,
        })
    }
}

/// Parses a Postgres URL; the error never repeats the URL (it may hold a password).
fn parse_postgres_url(flag: &str, raw: &str) -> Result<url::Url, String> {
    let parsed = url::Url::parse(raw.trim()).map_err(|e| {
        format!("{flag} is not a valid URL ({e}); expected postgres://user@host:port/db")
    })?;
    match parsed.scheme() {
        "postgres" | "postgresql" => {}
        other => {
            return Err(format!(
                "{flag} has scheme {other:?}; expected postgres:// or postgresql://"
            ))
        }
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{flag} has no host"));
    }
    Ok(parsed)
}

/// The URL with any password replaced by `***`, for output.
pub fn redact_url(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        // set_password only fails for URLs that cannot have credentials.
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: &[&str]) -> Result<Plan, String> {
        let mut full = vec!["memory-bench"];
        full.extend_from_slice(args);
        Options::try_parse_from(full)
            .map_err(|e| e.to_string())?
            .into_plan()
    }

    #[test]
    fn default_sizes_are_the_full_benchmark() {
        let p = plan(&[]).unwrap();
        assert_eq!(p.rows, 1_000_000);
        assert_eq!(p.workspaces, 10_000);
        assert_eq!(p.search_rows, 1_000_000);
        assert_eq!(p.naive_rows, 20_000);
        assert_eq!(p.commit_levels, vec![1, 8, 32]);
        assert!(!p.quick);
    }

    #[test]
    fn quick_shrinks_every_size_and_never_fails_on_speed() {
        let p = plan(&["--quick", "--fail-on-miss"]).unwrap();
        assert_eq!(p.rows, 20_000);
        assert_eq!(p.workspaces, 200);
        assert!(p.naive_rows <= p.rows);
        assert!(p.commit_time <= Duration::from_secs(2));
        assert!(p.search_rows <= 5_000);
        assert!(!p.fail_on_miss);
    }

    #[test]
    fn explicit_sizes_win_over_quick() {
        let p = plan(&[
            "--quick",
            "--rows",
            "5000",
            "--workspaces=50",
            "--naive-rows=100",
        ])
        .unwrap();
        assert_eq!(
            (p.rows, p.workspaces, p.naive_rows, p.search_rows),
            (5000, 50, 100, 5000)
        );
    }

    #[test]
    fn naive_slice_larger_than_the_table_is_refused() {
        let err = plan(&["--rows=100", "--workspaces=10", "--naive-rows=1000"]).unwrap_err();
        assert!(err.contains("--naive-rows"), "{err}");
    }

    #[test]
    fn sections_parse_and_sqlite_path_needs_its_section() {
        assert_eq!(plan(&[]).unwrap().section, Section::All);
        let p = plan(&["--section", "sqlite-million", "--sqlite-path", "/tmp/x.db"]).unwrap();
        assert_eq!(p.section, Section::SqliteMillion);
        assert_eq!(
            p.sqlite_path.as_deref(),
            Some(std::path::Path::new("/tmp/x.db"))
        );
        assert_eq!(
            plan(&["--section=pg-batch"]).unwrap().section,
            Section::PgBatch
        );
        assert_eq!(
            plan(&["--section=backfill"]).unwrap().section,
            Section::Backfill
        );
        let err = plan(&["--sqlite-path", "/tmp/x.db"]).unwrap_err();
        assert!(err.contains("--section sqlite-million"), "{err}");
        assert!(plan(&["--section=nope"]).is_err());
    }

    #[test]
    fn non_postgres_url_is_refused_without_echoing_it() {
        let err = plan(&["--database-url", "mysql://u:secret@h/db"]).unwrap_err();
        assert!(err.contains("--database-url"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn redacted_url_hides_the_password() {
        let url = url::Url::parse("postgres://bob:hunter2@db:5432/x").unwrap();
        let shown = redact_url(&url);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("bob"), "{shown}");
    }
}
