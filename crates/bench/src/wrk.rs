//! The plugin's single-write load from `wrk`, when it is installed.
//!
//! The floor of those figures is `pgbench`, a lean C client in a process of
//! its own. Driving the plugin from this process's async HTTP client
//! instead would charge the plugin's side with a heavier client sharing the
//! same cores: on a 2-core machine the in-process client measured the plugin
//! at 0.61x pgbench, where wrk later measured 1.09x (see README). So where
//! `wrk` (Debian's package `wrk`) is found, it posts the single writes, as
//! an operator trying the plugin would: `wrk -t min(N,2) -c N -d T
//! --latency` with a Lua script that
//! rotates the requests over the run's namespaces and contents (the bodies
//! are the JSON the contract's client sends). Without `wrk` the in-process
//! load generator runs, and the report says so.
//!
//! Throughput counts 2xx answers only; latency percentiles are wrk's own
//! (`--latency`), over every request.

use crate::load::LoadSummary;
use anyhow::{Context, Result};
use memory_contract::{MemoryKind, MemorySource, MemoryWrite};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where `wrk` is: `/usr/bin/wrk`, or `PATH`.
pub fn find() -> Option<PathBuf> {
    crate::tool::find(Path::new("/usr/bin/wrk"), "wrk")
}

/// The Lua script posting one single write per request to
/// `/v1/namespaces/{namespace}/memories`, namespaces and contents taken in
/// turn.
///
/// # Errors
///
/// When `namespaces` or `contents` is empty.
pub fn write_script(namespaces: &[String], contents: &[String]) -> Result<String> {
    anyhow::ensure!(
        !namespaces.is_empty() && !contents.is_empty(),
        "the wrk script needs namespaces and contents"
    );
    let mut lua = String::from(
        "-- memory-bench: one single write per request, namespaces and contents in turn\n\
         local paths = {\n",
    );
    for name in namespaces {
        lua.push_str(&format!(
            "  {},\n",
            lua_string(&format!("/v1/namespaces/{name}/memories"))
        ));
    }
    lua.push_str("}\nlocal bodies = {\n");
    for content in contents {
        let write = MemoryWrite::new(content.clone(), MemoryKind::Fact, MemorySource::Agent);
        let body = serde_json::to_string(&write).context("cannot encode a write")?;
        lua.push_str(&format!("  {},\n", lua_string(&body)));
    }
    lua.push_str(
        "}\n\
         local headers = { [\"Content-Type\"] = \"application/json\" }\n\
         local n = 0\n\
         request = function()\n\
         \x20 n = n + 1\n\
         \x20 return wrk.format(\"POST\", paths[(n % #paths) + 1], headers, bodies[(n % #bodies) + 1])\n\
         end\n",
    );
    Ok(lua)
}

/// `text` as a Lua long string: no escapes are interpreted inside, and the
/// level is chosen so that its closing bracket does not occur in `text`.
fn lua_string(text: &str) -> String {
    let mut level = 0;
    loop {
        let close = format!("]{}]", "=".repeat(level));
        if !text.contains(&close) && !text.ends_with(&format!("]{}", "=".repeat(level))) {
            let eq = "=".repeat(level);
            return format!("[{eq}[{text}]{eq}]");
        }
        level += 1;
    }
}

/// Runs `wrk` with `script` against `base_url` from `clients` connections
/// for `time`.
///
/// # Errors
///
/// When wrk cannot run, fails, or prints no summary.
pub async fn run(
    binary: &Path,
    base_url: &str,
    script: &Path,
    clients: usize,
    time: Duration,
) -> Result<LoadSummary> {
    let clients = clients.max(1);
    let seconds = time.as_secs_f64().ceil().max(1.0) as u64;
    let mut command = tokio::process::Command::new(binary);
    command
        .args(["-t", &clients.clamp(1, 2).to_string()])
        .args(["-c", &clients.to_string()])
        .args(["-d", &format!("{seconds}s")])
        .args(["--timeout", "30s"])
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(base_url);
    let stdout = crate::tool::stdout_of(command, binary).await?;
    parse_report(&stdout, clients)
}

/// Builds the summary from wrk's report (run with `--latency`).
///
/// # Errors
///
/// When the report has no request count or no 50% / 99% line.
pub fn parse_report(stdout: &str, clients: usize) -> Result<LoadSummary> {
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    let (requests, seconds) = lines
        .iter()
        .find_map(|l| {
            let (count, rest) = l.split_once(" requests in ")?;
            let count = count.trim().parse::<u64>().ok()?;
            let span = rest.split(',').next()?.trim();
            Some((count, duration_ms(span)? / 1000.0))
        })
        .context("wrk printed no \"N requests in T\" line")?;
    let percentile = |p: &str| {
        lines.iter().find_map(|l| {
            let rest = l.strip_prefix(p)?;
            duration_ms(rest.trim())
        })
    };
    let p50_ms = percentile("50%").context("wrk printed no 50% latency (run with --latency)")?;
    let p99_ms = percentile("99%").context("wrk printed no 99% latency (run with --latency)")?;
    let non_2xx = lines
        .iter()
        .find_map(|l| {
            l.strip_prefix("Non-2xx or 3xx responses:")?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    let socket_errors: u64 = lines
        .iter()
        .find_map(|l| l.strip_prefix("Socket errors:"))
        .map(|rest| {
            rest.split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    let ok = requests.saturating_sub(non_2xx);
    let errors = non_2xx + socket_errors;
    Ok(LoadSummary {
        clients,
        ok,
        errors,
        first_error: (errors > 0).then(|| {
            format!("wrk: {non_2xx} answers other than 2xx/3xx, {socket_errors} socket errors")
        }),
        seconds,
        per_second: if seconds > 0.0 {
            ok as f64 / seconds
        } else {
            0.0
        },
        p50_ms,
        p99_ms,
    })
}

/// A wrk duration (`812.00us`, `1.25ms`, `2.01s`, `1.00m`) in milliseconds.
fn duration_ms(text: &str) -> Option<f64> {
    let text = text.split_whitespace().next()?;
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return None,
    };
    Some(value * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 10s test @ http://127.0.0.1:9311
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     7.07ms   14.43ms 251.57ms   98.02%
    Req/Sec     2.92k   504.43     3.73k    78.50%
  Latency Distribution
     50%  812.00us
     75%    6.48ms
     90%    8.16ms
     99%    1.44s
  58175 requests in 10.03s, 13.31MB read
  Non-2xx or 3xx responses: 175
  Socket errors: connect 0, read 2, write 0, timeout 3
Requests/sec:   5802.49
Transfer/sec:      1.33MB
";

    #[test]
    fn report_makes_a_summary() {
        let s = parse_report(REPORT, 32).unwrap();
        assert_eq!(s.clients, 32);
        assert_eq!(s.ok, 58_000);
        assert_eq!(s.errors, 180);
        assert!((s.seconds - 10.03).abs() < 1e-9);
        assert!((s.per_second - 58_000.0 / 10.03).abs() < 1e-6);
        assert!((s.p50_ms - 0.812).abs() < 1e-9);
        assert!((s.p99_ms - 1440.0).abs() < 1e-9);
        assert!(s.first_error.unwrap().contains("175 answers"));
    }

    #[test]
    fn a_clean_report_has_no_errors() {
        let clean: String = REPORT
            .lines()
            .filter(|l| !l.contains("Non-2xx") && !l.contains("Socket errors"))
            .map(|l| format!("{l}\n"))
            .collect();
        let s = parse_report(&clean, 32).unwrap();
        assert_eq!(s.ok, 58_175);
        assert_eq!(s.errors, 0);
        assert!(s.first_error.is_none());
    }

    #[test]
    fn a_report_without_percentiles_is_refused() {
        let bare: String = REPORT
            .lines()
            .filter(|l| !l.trim_start().starts_with("99%"))
            .map(|l| format!("{l}\n"))
            .collect();
        let e = parse_report(&bare, 32).unwrap_err().to_string();
        assert!(e.contains("99%"), "{e}");
        assert!(parse_report("", 1).is_err());
    }

    #[test]
    fn durations_convert_to_milliseconds() {
        assert_eq!(duration_ms("250.00us"), Some(0.25));
        assert_eq!(duration_ms("3.50ms"), Some(3.5));
        assert_eq!(duration_ms("2.00s"), Some(2000.0));
        assert_eq!(duration_ms("1.00m"), Some(60_000.0));
        assert_eq!(duration_ms("12"), None);
        assert_eq!(duration_ms("1.0xs"), None);
    }

    #[test]
    fn long_strings_never_close_early() {
        assert_eq!(lua_string("plain"), "[[plain]]");
        assert_eq!(lua_string("a]]b"), "[=[a]]b]=]");
        assert_eq!(lua_string("a]=]b]]"), "[==[a]=]b]]]==]");
        assert_eq!(lua_string("ends]"), "[=[ends]]=]");
    }

    #[test]
    fn the_script_posts_each_write_as_the_client_would() {
        let lua = write_script(
            &["workspace:a".to_string(), "team:b".to_string()],
            &["he said \"ship it\"".to_string()],
        )
        .unwrap();
        assert!(
            lua.contains("[[/v1/namespaces/workspace:a/memories]]"),
            "{lua}"
        );
        assert!(lua.contains("[[/v1/namespaces/team:b/memories]]"), "{lua}");
        assert!(lua.contains(r#""content":"he said \"ship it\"""#), "{lua}");
        assert!(lua.contains("request = function()"), "{lua}");
        assert!(write_script(&[], &["x".to_string()]).is_err());
    }
}
