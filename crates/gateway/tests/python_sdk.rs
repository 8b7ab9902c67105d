//! The gateway driven by a client no one here wrote: the official Python MCP
//! SDK (`mcp` on PyPI, installed on first use into a virtualenv under
//! `target/testkit/`), over Streamable HTTP with a token and over stdio.

mod common;

use common::Env;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;

/// The pinned SDK release the tests run.
const MCP_SDK: &str = "mcp==2.3.0";

fn python() -> PathBuf {
    let bin = memory_testkit::venv::ensure_installed_apart("mcp", MCP_SDK)
        .unwrap_or_else(|e| panic!("cannot install the Python MCP SDK: {e}"));
    bin.join("python")
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/mcp_client.py")
}

fn run(args: &[String]) -> Value {
    let out = Command::new(python())
        .arg(script())
        .args(args)
        .output()
        .expect("run the Python client");
    assert!(
        out.status.success(),
        "the Python MCP client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The SDK logs a warning for any answer it did not expect (a session
    // end other than 200/204, say).
    assert!(
        !stderr.contains("WARNING") && !stderr.contains("failed"),
        "the Python MCP client complained:\n{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("bad output {stdout:?}: {e}"))
}

/// Every tool once, then the refusals; the answers as an agent reads them.
fn scenario(org_ns: &str, other_org_ns: &str) -> Value {
    json!([
        {"tool": "commit_memory", "arguments": {"content": "prefers tabs; API_KEY=sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdEFGH"}},
        {"tool": "commit_memory", "arguments": {"content": "the team ships on Fridays", "scope": "TEAM"}},
        {"tool": "commit_memory", "arguments": {"content": "everyone", "scope": "GLOBAL"}},
        {"tool": "recall_memory", "arguments": {"scope": "LOCAL"}},
        {"tool": "commit_memory_v2", "arguments": {"content": "checkpoint 7", "kind": "checkpoint", "pin": true}},
        {"tool": "commit_summary", "arguments": {"content": "summary of the day"}},
        {"tool": "search_memory", "arguments": {"query": "Fridays"}},
        {"tool": "search_memory", "arguments": {"namespaces": [other_org_ns]}},
        {"tool": "list_writable_namespaces", "arguments": {}},
        {"tool": "list_readable_namespaces", "arguments": {}},
        {"tool": "commit_memory_v2", "arguments": {"content": "x", "namespace": org_ns}},
        {"tool": "commit_memory_v2", "arguments": {"content": "x", "kind": "rumour"}},
        {"tool": "forget_memory", "arguments": {"memory_id": "00000000-0000-0000-0000-000000000001"}}
    ])
}

fn check(out: &Value) {
    let tools: Vec<&str> = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools.len(), 8, "{tools:?}");
    for t in out["tools"].as_array().unwrap() {
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
    }
    let calls = out["calls"].as_array().unwrap();
    let errors: Vec<bool> = calls
        .iter()
        .map(|c| c["is_error"].as_bool().unwrap())
        .collect();
    assert_eq!(
        errors,
        [false, false, true, false, false, false, false, false, false, false, true, true, true],
        "{calls:#?}"
    );
    let text = |i: usize| calls[i]["text"].as_str().unwrap();
    let local: Value = serde_json::from_str(text(0)).unwrap();
    assert_eq!(local["scope"], "LOCAL");
    let recalled: Value = serde_json::from_str(text(3)).unwrap();
    let content = recalled[0]["content"].as_str().unwrap();
    assert!(
        content.starts_with("prefers tabs; API_KEY=[REDACTED:"),
        "{content}"
    );
    assert!(!content.contains("sk-ant-api03"), "{content}");
    let found: Value = serde_json::from_str(text(6)).unwrap();
    assert_eq!(found["memories"][0]["content"], "the team ships on Fridays");
    assert_eq!(text(7), r#"{"memories":[]}"#);
    let writable: Value = serde_json::from_str(text(8)).unwrap();
    assert_eq!(writable.as_array().unwrap().len(), 2);
    let readable: Value = serde_json::from_str(text(9)).unwrap();
    assert_eq!(readable.as_array().unwrap().len(), 3);
    assert!(text(10).contains("may not write"));
    assert!(text(11).contains("unknown kind"));
    assert!(text(12).contains("no memory"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_uses_every_tool_over_streamable_http() {
    let env = Env::start().await;
    let args = vec![
        "http".to_string(),
        env.mcp_url(),
        env.token(env.a.child),
        scenario(
            &format!("org:{}", env.a.root),
            &format!("org:{}", env.b.root),
        )
        .to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || run(&args))
        .await
        .unwrap();
    check(&out);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_uses_every_tool_over_stdio() {
    let dir = std::env::temp_dir().join(format!("memory-gateway-stdio-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let database = format!("sqlite:{}", dir.join("gateway.db").display());
    let store = format!("sqlite:{}", dir.join("memories.db").display());
    let bin = env!("CARGO_BIN_EXE_memory-gateway");
    let add = |name: &str, parent: Option<&str>| {
        let mut cmd = Command::new(bin);
        cmd.args([
            "workspace",
            "add",
            "--name",
            name,
            "--database-url",
            &database,
        ]);
        if let Some(p) = parent {
            cmd.args(["--parent", p]);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let root = add("acme", None);
    let child = add("research", Some(&root));
    let other = add("globex", None);
    let args = vec![
        "stdio".to_string(),
        scenario(&format!("org:{root}"), &format!("org:{other}")).to_string(),
        bin.to_string(),
        "stdio".to_string(),
        "--workspace".to_string(),
        child,
        "--database-url".to_string(),
        database,
        "--store-url".to_string(),
        store,
    ];
    let out = tokio::task::spawn_blocking(move || run(&args))
        .await
        .unwrap();
    check(&out);
    let _ = std::fs::remove_dir_all(&dir);
}
