//! Every memory tool through the real gateway, over MCP (rmcp's client), in
//! front of the real plugin on PostgreSQL 15.

mod common;

use common::{call, err_text, ok_json, Env};
use memory_gateway::limit::RateLimit;
use serde_json::json;

#[tokio::test]
async fn every_tool_is_listed_with_a_schema_and_a_description() {
    let env = Env::start().await;
    let mcp = env.mcp(env.a.child).await;
    let tools = mcp.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(
        names,
        [
            "commit_memory",
            "recall_memory",
            "commit_memory_v2",
            "search_memory",
            "commit_summary",
            "list_writable_namespaces",
            "list_readable_namespaces",
            "forget_memory"
        ]
    );
    for t in &tools {
        assert!(
            t.description.as_deref().unwrap_or("").len() > 40,
            "{} needs a description",
            t.name
        );
        assert_eq!(
            t.input_schema.get("type"),
            Some(&json!("object")),
            "{}",
            t.name
        );
    }
}

#[tokio::test]
async fn commit_and_recall_follow_the_legacy_scopes() {
    let env = Env::start().await;
    let mcp = env.mcp(env.a.child).await;
    let local = ok_json(&mcp, "commit_memory", json!({"content": "likes green tea"})).await;
    assert_eq!(local["scope"], "LOCAL");
    let team = ok_json(
        &mcp,
        "commit_memory",
        json!({"content": "the team ships on Fridays", "scope": "team"}),
    )
    .await;
    assert_eq!(team["scope"], "TEAM");
    // The gateway's ids are version 7: time first, in the order made.
    let ids: Vec<uuid::Uuid> = [&local, &team]
        .iter()
        .map(|ack| ack["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ids.iter().all(|id| id.get_version_num() == 7), "{ids:?}");
    assert!(ids[0] < ids[1], "{ids:?}");
    let msg = err_text(
        &mcp,
        "commit_memory",
        json!({"content": "x", "scope": "GLOBAL"}),
    )
    .await;
    assert!(msg.contains("LOCAL") && msg.contains("TEAM"), "{msg}");
    let msg = err_text(
        &mcp,
        "commit_memory",
        json!({"content": "x", "scope": "PLANET"}),
    )
    .await;
    assert!(msg.contains("unknown scope"), "{msg}");

    // Stored where the mapping says, as the agent's.
    let own = env.stored(&format!("workspace:{}", env.a.child)).await;
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].content, "likes green tea");
    let shared = env.stored(&format!("team:{}", env.a.root)).await;
    assert_eq!(shared.len(), 1);

    let (_, text) = call(&mcp, "recall_memory", json!({"scope": "LOCAL"})).await;
    let rows: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["scope"], "LOCAL");
    assert_eq!(rows[0]["content"], "likes green tea");
    let rows = ok_json(&mcp, "recall_memory", json!({"scope": "TEAM"})).await;
    assert_eq!(rows.as_array().unwrap().len(), 2);
    let rows = ok_json(&mcp, "recall_memory", json!({"query": "Fridays"})).await;
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["scope"], "TEAM");

    // A sibling sees the team memory but not the private one.
    let sibling = env.mcp(env.a.sibling).await;
    let rows = ok_json(&sibling, "recall_memory", json!({})).await;
    assert_eq!(rows.as_array().unwrap().len(), 1);
    let (is_error, text) = call(&sibling, "recall_memory", json!({"scope": "LOCAL"})).await;
    assert!(!is_error);
    assert_eq!(text, "No memories found.");
}

#[tokio::test]
async fn org_writes_are_audited_and_org_reads_are_marked() {
    let env = Env::start().await;
    let root = env.mcp(env.a.root).await;
    let org = format!("org:{}", env.a.root);
    let ack = ok_json(
        &root,
        "commit_memory_v2",
        json!({"content": "all staff: use the new VPN", "namespace": org}),
    )
    .await;
    assert_eq!(ack["namespace"], org);
    let id = ack["id"].as_str().unwrap().to_string();

    let audit = env.gw().directory().audit_log().await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].namespace, org);
    assert_eq!(audit[0].workspace, Some(env.a.root));
    assert_eq!(audit[0].memory_id.to_string(), id);
    assert_eq!(
        audit[0].content_sha256.as_deref(),
        Some(memory_gateway::service::sha256_hex("all staff: use the new VPN").as_str())
    );
    // Non-org writes are not audited.
    ok_json(&root, "commit_memory", json!({"content": "private"})).await;
    assert_eq!(env.gw().directory().audit_log().await.unwrap().len(), 1);

    let grandchild = env.mcp(env.a.grandchild).await;
    let rows = ok_json(&grandchild, "recall_memory", json!({})).await;
    let expected = format!("[MEMORY id={id} scope=ORG ns={org}]: all staff: use the new VPN");
    assert_eq!(rows[0]["content"], expected);
    assert_eq!(rows[0]["scope"], "GLOBAL");
    let found = ok_json(&grandchild, "search_memory", json!({"query": "VPN"})).await;
    assert_eq!(found["memories"][0]["content"], expected);
    // The grandchild may read the org but not write it.
    let msg = err_text(
        &grandchild,
        "commit_memory_v2",
        json!({"content": "x", "namespace": org}),
    )
    .await;
    assert!(msg.contains("may not write"), "{msg}");
}

#[tokio::test]
async fn secrets_are_redacted_before_they_reach_the_plugin() {
    let env = Env::start().await;
    let mcp = env.mcp(env.a.child).await;
    ok_json(
        &mcp,
        "commit_memory",
        json!({"content": "deploy with GITHUB_TOKEN=ghp_Zq8Lr4TnVb7Xc2Wm9Kd1Hs6Jf3Pa5Ye0Ui8O and postgres://app:s3cr3tpass@db:5432/x"}),
    )
    .await;
    let stored = env.stored(&format!("workspace:{}", env.a.child)).await;
    assert_eq!(stored.len(), 1);
    let text = &stored[0].content;
    assert!(
        !text.contains("ghp_Zq8Lr4TnVb7Xc2Wm9Kd1Hs6Jf3Pa5Ye0Ui8O"),
        "{text}"
    );
    assert!(!text.contains("s3cr3tpass"), "{text}");
    assert!(text.contains("[REDACTED:"), "{text}");
    assert!(text.starts_with("deploy with GITHUB_TOKEN="), "{text}");
    let metrics = env.gw().metrics().render();
    assert!(
        metrics.contains("memory_gateway_redactions_total{class="),
        "{metrics}"
    );
}

#[tokio::test]
async fn v2_tools_take_kinds_expiry_pins_and_summaries() {
    let env = Env::start().await;
    let mcp = env.mcp(env.a.child).await;
    let team = format!("team:{}", env.a.root);
    let ack = ok_json(
        &mcp,
        "commit_memory_v2",
        json!({"content": "step 3 of the migration done", "namespace": team, "kind": "checkpoint", "pin": true, "expires_at": "2099-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(ack["namespace"], team);
    let summary = ok_json(
        &mcp,
        "commit_summary",
        json!({"content": "today we fixed the login bug"}),
    )
    .await;
    assert_eq!(summary["kind"], "summary");
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(summary["expires_at"].clone()).unwrap();
    let days = (expires - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!((29.9..=30.1).contains(&days), "{days}");

    let found = ok_json(&mcp, "search_memory", json!({"kinds": ["checkpoint"]})).await;
    let m = &found["memories"][0];
    assert_eq!(found["memories"].as_array().unwrap().len(), 1);
    assert_eq!(m["kind"], "checkpoint");
    assert_eq!(m["pin"], true);
    assert_eq!(m["source"], "agent");
    assert_eq!(m["expires_at"], "2099-01-01T00:00:00Z");
    let found = ok_json(
        &mcp,
        "search_memory",
        json!({"kinds": ["summary"], "limit": 5}),
    )
    .await;
    assert_eq!(
        found["memories"][0]["content"],
        "today we fixed the login bug"
    );

    let writable = ok_json(&mcp, "list_writable_namespaces", json!({})).await;
    assert_eq!(writable.as_array().unwrap().len(), 2);
    let readable = ok_json(&mcp, "list_readable_namespaces", json!({})).await;
    let r = readable.as_array().unwrap();
    assert_eq!(r.len(), 3);
    assert_eq!(r[2]["kind"], "org");
    assert_eq!(r[2]["writable"], false);
    assert_eq!(r[2]["display_name"], "alpha");
    assert_eq!(r[0]["display_name"], "alpha-child");
    assert!(r[0]["description"].as_str().unwrap().len() > 10);

    let id = ack["id"].as_str().unwrap();
    assert_eq!(
        ok_json(&mcp, "forget_memory", json!({"memory_id": id})).await,
        json!({"forgotten": true})
    );
    let msg = err_text(&mcp, "forget_memory", json!({"memory_id": id})).await;
    assert!(msg.contains("no memory"), "{msg}");
}

#[tokio::test]
async fn bad_arguments_are_tool_errors_that_name_the_problem() {
    let env = Env::start().await;
    let mcp = env.mcp(env.a.child).await;
    let cases = [
        (
            "commit_memory",
            json!({"content": "x".repeat(32 * 1024 + 1)}),
            "32 KiB",
        ),
        ("commit_memory", json!({}), "`content` is required"),
        ("commit_memory", json!({"content": "   "}), "blank"),
        ("commit_memory", json!({"content": 42}), "bad arguments"),
        (
            "commit_memory_v2",
            json!({"content": "x", "kind": "opinion"}),
            "unknown kind",
        ),
        (
            "commit_memory_v2",
            json!({"content": "x", "expires_at": "next tuesday"}),
            "RFC 3339",
        ),
        (
            "commit_memory_v2",
            json!({"content": "x", "expires_at": "2001-01-01T00:00:00Z"}),
            "in the past",
        ),
        (
            "commit_summary",
            json!({"content": "x", "expires_at": "soon"}),
            "RFC 3339",
        ),
        ("search_memory", json!({"limit": 500}), "out of range"),
        ("search_memory", json!({"kinds": ["nope"]}), "unknown kind"),
        ("recall_memory", json!({"scope": "ORG"}), "unknown scope"),
        (
            "forget_memory",
            json!({"memory_id": "not-a-uuid"}),
            "not a memory id",
        ),
        ("forget_memory", json!({}), "`memory_id` is required"),
    ];
    for (tool, args, needle) in cases {
        let msg = err_text(&mcp, tool, args.clone()).await;
        assert!(
            msg.contains(needle),
            "{tool} {args}: {msg:?} lacks {needle:?}"
        );
    }
    // Exactly 32 KiB is fine; nothing was written by the refused calls.
    ok_json(
        &mcp,
        "commit_memory",
        json!({"content": "y".repeat(32 * 1024)}),
    )
    .await;
    assert_eq!(
        env.stored(&format!("workspace:{}", env.a.child))
            .await
            .len(),
        1
    );
    // The session survives all of it.
    ok_json(&mcp, "list_readable_namespaces", json!({})).await;
}

#[tokio::test]
async fn a_runaway_workspace_is_rate_limited_alone() {
    let env = Env::start_with(RateLimit {
        per_second: 0.01,
        burst: 5.0,
    })
    .await;
    let noisy = env.mcp(env.a.child).await;
    for _ in 0..5 {
        ok_json(&noisy, "list_readable_namespaces", json!({})).await;
    }
    let msg = err_text(&noisy, "list_readable_namespaces", json!({})).await;
    assert!(msg.contains("rate limit"), "{msg}");
    let quiet = env.mcp(env.a.sibling).await;
    ok_json(&quiet, "list_readable_namespaces", json!({})).await;
    let metrics = env.gw().metrics().render();
    assert!(
        metrics.contains("memory_gateway_tool_calls_total{tool=\"list_readable_namespaces\",outcome=\"rate_limited\"} 1"),
        "{metrics}"
    );
}
