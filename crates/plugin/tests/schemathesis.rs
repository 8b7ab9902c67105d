//! Property-based check of the live server against the OpenAPI document:
//! schemathesis (pinned, installed into the test virtualenv under `target/`)
//! sends generated valid and invalid requests to every documented route of
//! a server on a fresh PostgreSQL 15 database, and fails on any 5xx answer
//! or any answer whose body does not match the document.

use memory_plugin::server::{spawn, ServerConfig};
use memory_plugin::store::{open, OpenOptions};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// The schemathesis release this check is written against.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// Time budget schemathesis spends generating requests.
const FUZZ_SECONDS: u64 = 90;

/// Hard limit on the whole schemathesis run, beyond which the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// Fixed so that a failure can be reproduced with the same requests.
const SEED: &str = "20261126";

fn document() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/memory-plugin-v1.yaml")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let venv_bin =
        tokio::task::spawn_blocking(|| memory_testkit::venv::ensure_installed(SCHEMATHESIS, false))
            .await
            .expect("install task")
            .unwrap_or_else(|e| panic!("cannot install {SCHEMATHESIS}: {e}"));

    // The server logs the cause of every 500; shown with the test's output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("memory_plugin=error")
        .with_test_writer()
        .try_init();

    let db = memory_testkit::pg15().await;
    let store = open(Some(db.url()), &OpenOptions::default())
        .await
        .expect("open the Postgres store");
    let server = spawn(store, ServerConfig::default())
        .await
        .expect("spawn the plugin server");

    // Something for the documented examples to find.
    let http = reqwest::Client::new();
    let put = http
        .put(format!("{}/v1/namespaces/workspace:w1", server.url()))
        .json(&serde_json::json!({"kind": "workspace"}))
        .send()
        .await
        .expect("seed namespace");
    assert_eq!(put.status(), 200, "seeding the namespace failed");

    let report_dir = tempdir("schemathesis-report");
    let mut st = tokio::process::Command::new(venv_bin.join("st"));
    st.arg("run")
        .arg(document())
        .args(["--url", server.url()])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-time", &FUZZ_SECONDS.to_string()])
        .args(["--max-examples", "60"])
        .args(["--seed", SEED])
        // One worker: the machine's Python 3.11 trips over concurrent
        // `ast.parse` calls inside hypothesis when several threads generate.
        .args(["--workers", "1"])
        .args(["--request-timeout", "10"])
        .arg("--report-dir")
        .arg(&report_dir)
        .args(["--suppress-health-check", "all"])
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // schemathesis and hypothesis keep caches in the working directory;
        // keep them out of the source tree.
        .current_dir(&report_dir)
        .kill_on_drop(true);
    let run = st.output();
    let output = match tokio::time::timeout(RUN_LIMIT, run).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => panic!("cannot run schemathesis from {}: {e}", venv_bin.display()),
        Err(_) => panic!("schemathesis did not finish within {RUN_LIMIT:?}"),
    };
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_dir_all(&report_dir);
    assert!(
        output.status.success(),
        "schemathesis found problems ({}); reproduce with --seed {SEED}:\n{text}",
        output.status
    );
    let _ = server.shutdown().await;
}

fn tempdir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create report dir");
    dir
}

/// Found by schemathesis: a JSON number near the f64 limits in metadata or
/// propagation was stored (jsonb keeps it exactly), but reading it back
/// failed ("number out of range"), so the namespace answered 500 on every
/// read and search afterwards. Numbers must come back exactly as written.
#[tokio::test]
async fn extreme_json_numbers_in_metadata_and_propagation_come_back_exactly() {
    let db = memory_testkit::pg15().await;
    let store = open(Some(db.url()), &OpenOptions::default())
        .await
        .expect("open the Postgres store");
    let server = spawn(store, ServerConfig::default())
        .await
        .expect("spawn the plugin server");
    let http = reqwest::Client::new();
    let extremes = serde_json::json!({
        "max": f64::MAX,
        "min": f64::MIN,
        "tiny": -6.555364416829742e-242,
        "near_max": 1.79e308,
    });

    let put = http
        .put(format!("{}/v1/namespaces/team:extremes", server.url()))
        .json(&serde_json::json!({"kind": "team", "metadata": extremes}))
        .send()
        .await
        .expect("PUT namespace");
    assert_eq!(
        put.status(),
        200,
        "{}",
        put.text().await.unwrap_or_default()
    );
    let namespace: serde_json::Value = put.json().await.expect("namespace JSON");
    assert_eq!(namespace["metadata"], extremes);

    let write = http
        .post(format!(
            "{}/v1/namespaces/team:extremes/memories",
            server.url()
        ))
        .json(&serde_json::json!({
            "content": "numbers at the edge", "kind": "fact", "source": "agent",
            "propagation": extremes,
        }))
        .send()
        .await
        .expect("POST memory");
    assert_eq!(
        write.status(),
        201,
        "{}",
        write.text().await.unwrap_or_default()
    );

    let search = http
        .post(format!("{}/v1/search", server.url()))
        .json(&serde_json::json!({"namespaces": ["team:extremes"]}))
        .send()
        .await
        .expect("POST search");
    assert_eq!(
        search.status(),
        200,
        "{}",
        search.text().await.unwrap_or_default()
    );
    let found: serde_json::Value = search.json().await.expect("search JSON");
    assert_eq!(found["memories"][0]["propagation"], extremes);

    let get = http
        .get(format!("{}/v1/namespaces/team:extremes", server.url()))
        .send()
        .await
        .expect("GET namespace");
    assert_eq!(
        get.status(),
        200,
        "{}",
        get.text().await.unwrap_or_default()
    );
    let _ = server.shutdown().await;
}
