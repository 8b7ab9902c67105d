//! The legacy answer shapes of `commit_memory` and `recall_memory`, pinned
//! by golden files under `tests/golden/` (ids and times normalised). Agents
//! written for the platform parse these; a change here breaks them.
//! `UPDATE_GOLDEN=1` rewrites the files.

mod common;

use common::{call, ok_json, Env};
use serde_json::json;
use std::path::PathBuf;

fn normalise(text: &str, ids: &[(String, &str)]) -> String {
    let mut out = text.to_string();
    for (id, label) in ids {
        out = out.replace(id.as_str(), label);
    }
    // RFC 3339 times with microseconds, as the plugin sends them.
    let re = regex::Regex::new(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z").unwrap();
    re.replace_all(&out, "<time>").into_owned()
}

fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("{actual}\n")).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(actual, expected.trim_end_matches('\n'), "{name} changed");
}

#[tokio::test]
async fn legacy_commit_and_recall_shapes_match_the_golden_files() {
    let env = Env::start().await;
    let root = env.mcp(env.a.root).await;
    let child = env.mcp(env.a.child).await;
    let org = ok_json(
        &root,
        "commit_memory_v2",
        json!({"content": "Use the staging cluster for load tests.", "namespace": format!("org:{}", env.a.root)}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (_, team) = call(
        &child,
        "commit_memory",
        json!({"content": "Release train leaves Thursday.", "scope": "TEAM"}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (_, local) = call(
        &child,
        "commit_memory",
        json!({"content": "I prefer short answers."}),
    )
    .await;
    let (_, global) = call(
        &child,
        "commit_memory",
        json!({"content": "x", "scope": "GLOBAL"}),
    )
    .await;
    let (_, recall_all) = call(&child, "recall_memory", json!({})).await;
    let (_, recall_team) = call(
        &child,
        "recall_memory",
        json!({"query": "Thursday", "scope": "TEAM"}),
    )
    .await;
    let (_, recall_none) = call(&child, "recall_memory", json!({"query": "zebra"})).await;

    let id = |s: &str| {
        serde_json::from_str::<serde_json::Value>(s).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let ids = vec![
        (org["id"].as_str().unwrap().to_string(), "<org-memory-id>"),
        (id(&team), "<team-memory-id>"),
        (id(&local), "<local-memory-id>"),
        (env.a.root.to_string(), "<root-workspace>"),
    ];
    check("commit_memory_local.json", &normalise(&local, &ids));
    check("commit_memory_team.json", &normalise(&team, &ids));
    check("commit_memory_global.txt", &normalise(&global, &ids));
    check("recall_memory_all.json", &normalise(&recall_all, &ids));
    check(
        "recall_memory_team_query.json",
        &normalise(&recall_team, &ids),
    );
    check("recall_memory_none.txt", &normalise(&recall_none, &ids));
}
