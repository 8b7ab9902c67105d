//! The `memory-plugin-conformance` binary: output and exit codes.

mod common;

use common::faulty::{Fault, FaultyPlugin};
use memory_plugin::server::ServerConfig;
use std::process::Output;
use tokio::process::Command;

async fn conformance(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_memory-plugin-conformance"))
        .args(args)
        .env_remove("MEMORY_PLUGIN_URL")
        .env_remove("MEMORY_PLUGIN_TOKEN")
        .output()
        .await
        .expect("run memory-plugin-conformance")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_exits_0_against_our_plugin_with_a_line_per_check() {
    let plugin = common::sqlite_plugin(ServerConfig {
        token: Some("bin-token".into()),
        ..ServerConfig::default()
    })
    .await;
    let out = conformance(&["--url", plugin.url(), "--token", "bin-token"]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let checks = memory_conformance::catalogue();
    for check in &checks {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("PASS {} ", check.name))),
            "no PASS line for {}:\n{text}",
            check.name
        );
    }
    assert!(
        text.contains(&format!("summary: {} passed, 0 failed", checks.len())),
        "{text}"
    );
    assert!(!text.contains("bin-token") && !stderr(&out).contains("bin-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_exits_1_against_a_faulty_plugin_and_names_the_check() {
    let plugin = common::sqlite_plugin(ServerConfig::default()).await;
    let proxy = FaultyPlugin::start(plugin.url(), Fault::LeakPrefixMatches).await;
    let out = conformance(&[
        "--url",
        &proxy.url,
        "--only",
        "exact_namespace_matching,health",
    ])
    .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(text.contains("PASS health"), "{text}");
    assert!(
        text.contains("FAIL exact_namespace_matching: expected"),
        "{text}"
    );
    assert!(
        text.contains("summary: 1 passed, 1 failed, 0 skipped of 2 checks"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_json_report_is_machine_readable() {
    let plugin = common::sqlite_plugin(ServerConfig::default()).await;
    let proxy = FaultyPlugin::start(plugin.url(), Fault::IgnoreId).await;
    let out = conformance(&[
        "--url",
        &proxy.url,
        "--json",
        "--only",
        "id_upsert",
        "search_recent",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["summary"]["failed"], 1);
    assert_eq!(report["summary"]["passed"], 1);
    let checks = report["checks"].as_array().expect("checks");
    assert_eq!(checks[0]["name"], "id_upsert");
    assert_eq!(checks[0]["status"], "fail");
    assert!(checks[0]["expected"]
        .as_str()
        .is_some_and(|e| !e.is_empty()));
    assert!(checks[0]["seen"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(checks[1]["status"], "pass");
}

#[tokio::test]
async fn binary_exits_2_on_usage_errors() {
    let no_url = conformance(&[]).await;
    assert_eq!(no_url.status.code(), Some(2));
    assert!(stderr(&no_url).contains("--url"), "{}", stderr(&no_url));

    let bad_flag = conformance(&["--url", "http://127.0.0.1:1", "--bogus"]).await;
    assert_eq!(bad_flag.status.code(), Some(2));

    let bad_scheme = conformance(&["--url", "ftp://127.0.0.1:1"]).await;
    assert_eq!(bad_scheme.status.code(), Some(2));
    assert!(
        stderr(&bad_scheme).contains("http"),
        "{}",
        stderr(&bad_scheme)
    );

    let unknown = conformance(&["--url", "http://127.0.0.1:1", "--only", "no_such_check"]).await;
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("no_such_check"),
        "{}",
        stderr(&unknown)
    );

    let bad_timeout = conformance(&["--url", "http://127.0.0.1:1", "--timeout", "soon"]).await;
    assert_eq!(bad_timeout.status.code(), Some(2));
}

#[tokio::test]
async fn binary_exits_1_when_nothing_listens() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let out = conformance(&["--url", &format!("http://127.0.0.1:{port}")]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL health"), "{text}");
    assert!(
        text.contains("SKIP id_upsert: cannot read /v1/health"),
        "{text}"
    );
}
