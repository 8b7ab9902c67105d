//! The single-write floor of the Postgres figures: `pgbench` running a
//! one-line `INSERT` of the plugin's row shape into the plugin's table, one
//! row per transaction, at the same client counts as the plugin's load.
//!
//! Throughput is what pgbench reports (`tps`, without the initial
//! connection time). Latency percentiles come from pgbench's
//! per-transaction log (`--log`): the time from sending each transaction to
//! its commit as pgbench's client sees it, the same span the load generator
//! measures around each plugin request.

use crate::load::{percentile, LoadSummary};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Scripts pgbench picks from at random (equal weights), each with its own
/// namespace and content, so rows spread over namespaces as the plugin's do.
const SCRIPTS: usize = 16;

/// Where `pgbench` is: `/usr/bin/pgbench`, `pg_config --bindir`, or `PATH`.
pub fn find() -> Option<PathBuf> {
    let fixed = PathBuf::from("/usr/bin/pgbench");
    if fixed.is_file() {
        return Some(fixed);
    }
    if let Ok(out) = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
    {
        if out.status.success() {
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let candidate = Path::new(&dir).join("pgbench");
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    crate::tool::on_path("pgbench")
}

/// The statement of one script: a row of the plugin's shape (id, namespace,
/// content, kind, source; the rest default, the tsvector generated).
pub fn insert_statement(schema: &str, namespace: &str, content: &str) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    format!(
        "INSERT INTO {schema}.memory_records (id, namespace, content, kind, source) \
         VALUES (gen_random_uuid(), {}, {}, 'fact', 'agent');\n",
        quote(namespace),
        quote(content)
    )
}

/// Writes the scripts into `dir` and returns their paths.
///
/// # Errors
///
/// When a file cannot be written.
pub fn write_scripts(
    dir: &Path,
    schema: &str,
    namespaces: &[String],
    contents: &[String],
) -> Result<Vec<PathBuf>> {
    anyhow::ensure!(
        !namespaces.is_empty() && !contents.is_empty(),
        "pgbench scripts need namespaces and contents"
    );
    (0..SCRIPTS)
        .map(|k| {
            let path = dir.join(format!("pgbench-insert-{k}.sql"));
            let statement = insert_statement(
                schema,
                &namespaces[k % namespaces.len()],
                &contents[k % contents.len()],
            );
            std::fs::write(&path, statement)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(path)
        })
        .collect()
}

/// Runs `pgbench -n -c clients -j min(2, clients) -T seconds` with
/// `scripts` against `url`, logging every transaction under `dir`.
///
/// # Errors
///
/// When pgbench cannot run or fails.
pub async fn run(
    binary: &Path,
    url: &url::Url,
    scripts: &[PathBuf],
    clients: usize,
    time: Duration,
    dir: &Path,
) -> Result<LoadSummary> {
    let seconds = time.as_secs_f64().ceil().max(1.0) as u64;
    let prefix = dir.join(format!("pgbench-log-c{clients}"));
    let mut command = tokio::process::Command::new(binary);
    command
        .arg("-n")
        .args(["-c", &clients.to_string()])
        .args(["-j", &clients.clamp(1, 2).to_string()])
        .args(["-T", &seconds.to_string()])
        .arg("--log")
        .arg(format!("--log-prefix={}", prefix.display()));
    for script in scripts {
        command.arg("-f").arg(script);
    }
    if let Some(host) = url.host_str() {
        command.args(["-h", host]);
    }
    command.args(["-p", &url.port().unwrap_or(5432).to_string()]);
    if !url.username().is_empty() {
        command.args(["-U", url.username()]);
    }
    if let Some(password) = url.password() {
        command.env("PGPASSWORD", password);
    }
    command
        .arg(url.path().trim_start_matches('/'))
        .current_dir(dir);
    let stdout = crate::tool::stdout_of(command, binary).await?;
    let mut latencies = read_logs(dir, &prefix)?;
    latencies.sort_unstable();
    let summary = parse_summary(&stdout, clients, seconds as f64, &latencies)?;
    Ok(summary)
}

/// Latencies (µs) of every logged transaction: the third field of each
/// line of `prefix.<pid>` and `prefix.<pid>.<thread>`; the files are
/// removed once read.
fn read_logs(dir: &Path, prefix: &Path) -> Result<Vec<u64>> {
    let stem = prefix
        .file_name()
        .and_then(|n| n.to_str())
        .context("pgbench log prefix has no name")?
        .to_string();
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.starts_with(&format!("{stem}.")) {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        out.extend(parse_log(&text));
        let _ = std::fs::remove_file(&path);
    }
    Ok(out)
}

/// Latencies (µs) of the lines of one per-transaction log:
/// `client_id transaction_no time script_no time_epoch time_us`; failed or
/// skipped transactions (a non-numeric time) are left out.
pub fn parse_log(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|line| line.split_whitespace().nth(2)?.parse::<u64>().ok())
        .collect()
}

/// Builds the summary from pgbench's report and the logged latencies.
pub fn parse_summary(
    stdout: &str,
    clients: usize,
    seconds: f64,
    sorted_latencies_us: &[u64],
) -> Result<LoadSummary> {
    let field = |prefix: &str| {
        stdout.lines().find_map(|l| {
            l.trim()
                .strip_prefix(prefix)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
        })
    };
    let tps = field("tps =").context("pgbench printed no tps")?;
    let processed = field("number of transactions actually processed:").unwrap_or(0.0);
    let failed = field("number of failed transactions:").unwrap_or(0.0);
    Ok(LoadSummary {
        clients,
        ok: processed as u64,
        errors: failed as u64,
        first_error: (failed > 0.0).then(|| format!("pgbench: {failed} failed transactions")),
        seconds,
        per_second: tps,
        p50_ms: percentile(sorted_latencies_us, 50.0) as f64 / 1000.0,
        p99_ms: percentile(sorted_latencies_us, 99.0) as f64 / 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_quotes_its_literals() {
        let s = insert_statement("memory_plugin", "workspace:a", "O'Brien said");
        assert!(s.contains("'O''Brien said'"), "{s}");
        assert!(
            s.starts_with("INSERT INTO memory_plugin.memory_records"),
            "{s}"
        );
        assert!(s.trim_end().ends_with(';'), "{s}");
    }

    #[test]
    fn report_and_log_make_a_summary() {
        let stdout = "transaction type: multiple scripts\n\
                      number of transactions actually processed: 1234\n\
                      number of failed transactions: 0 (0.000%)\n\
                      latency average = 0.810 ms\n\
                      tps = 1234.567890 (without initial connection time)\n";
        let mut lat =
            parse_log("0 0 800 3 1700000000 1\n1 0 1200 0 1700000000 2\n0 1 failed 0 1 1\n");
        lat.sort_unstable();
        assert_eq!(lat, vec![800, 1200]);
        let s = parse_summary(stdout, 8, 10.0, &lat).unwrap();
        assert_eq!(s.ok, 1234);
        assert_eq!(s.errors, 0);
        assert!((s.per_second - 1234.56789).abs() < 1e-6);
        assert_eq!(s.p50_ms, 0.8);
        assert_eq!(s.p99_ms, 1.2);
        assert!(parse_summary("nothing", 1, 1.0, &[]).is_err());
    }
}
