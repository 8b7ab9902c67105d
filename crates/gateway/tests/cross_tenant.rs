//! Nothing crosses a tenant boundary: two organisations, every tool from
//! every workspace, with forged namespaces, the other organisation's memory
//! ids, a removed workspace, a re-parent between two calls, and bad tokens.

mod common;

use common::{call, connect, err_text, ok_json, Env, Org, SECRET};
use memory_gateway::auth::{self, Caller, Secret};
use serde_json::{json, Value};
use uuid::Uuid;

/// Seeds each live workspace of `org` with a private memory and a team
/// memory, and the root with an org memory; returns every id written.
async fn seed(env: &Env, org: &Org, tag: &str) -> Vec<(String, String)> {
    let mut written = Vec::new();
    for ws in org.live() {
        let mcp = env.mcp(ws).await;
        let own = ok_json(
            &mcp,
            "commit_memory",
            json!({"content": format!("{tag} private of {ws}")}),
        )
        .await;
        written.push((
            own["id"].as_str().unwrap().to_string(),
            format!("workspace:{ws}"),
        ));
        let team = ok_json(
            &mcp,
            "commit_memory",
            json!({"content": format!("{tag} team note from {ws}"), "scope": "TEAM"}),
        )
        .await;
        let team_ns = env
            .gw()
            .access(ws)
            .await
            .unwrap()
            .team_namespace()
            .to_string();
        written.push((team["id"].as_str().unwrap().to_string(), team_ns));
    }
    let root = env.mcp(org.root).await;
    let org_ns = format!("org:{}", org.root);
    let ack = ok_json(
        &root,
        "commit_memory_v2",
        json!({"content": format!("{tag} org-wide policy"), "namespace": org_ns}),
    )
    .await;
    written.push((ack["id"].as_str().unwrap().to_string(), org_ns));
    written
}

/// Every namespace name a tool answer mentions.
fn namespaces_in(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "namespace" || k == "name" {
                    if let Some(s) = v.as_str() {
                        out.push(s.to_string());
                    }
                }
                out.extend(namespaces_in(v));
            }
        }
        Value::Array(items) => items.iter().for_each(|v| out.extend(namespaces_in(v))),
        _ => {}
    }
    out
}

fn belongs_to(ns: &str, org: &Org) -> bool {
    org.live()
        .iter()
        .chain([&org.removed])
        .any(|w| ns.ends_with(&w.to_string()))
}

#[tokio::test]
async fn no_tool_crosses_between_organisations() {
    let env = Env::start().await;
    let a_ids = seed(&env, &env.a, "ALPHA").await;
    let b_ids = seed(&env, &env.b, "BETA").await;

    for (mine, theirs, their_ids, their_tag) in [
        (env.a, env.b, &b_ids, "BETA"),
        (env.b, env.a, &a_ids, "ALPHA"),
    ] {
        let forged: Vec<String> = [theirs.root, theirs.child, theirs.grandchild]
            .iter()
            .flat_map(|w| {
                [
                    format!("workspace:{w}"),
                    format!("team:{w}"),
                    format!("org:{w}"),
                ]
            })
            .chain([
                "custom:anything".to_string(),
                "workspace:*".to_string(),
                String::new(),
            ])
            .collect();
        for ws in mine.live() {
            let mcp = env.mcp(ws).await;
            // Reads: nothing of the other organisation, whatever is asked.
            for query in [None, Some(their_tag), Some("team"), Some("policy")] {
                let mut args = json!({});
                if let Some(q) = query {
                    args["query"] = json!(q);
                }
                let (_, text) = call(&mcp, "recall_memory", args.clone()).await;
                assert!(!text.contains(their_tag), "{ws} recalled {text}");
                args["namespaces"] = json!(forged);
                let found = ok_json(&mcp, "search_memory", args).await;
                assert_eq!(
                    found,
                    json!({"memories": []}),
                    "{ws} searched forged namespaces"
                );
            }
            let all = ok_json(&mcp, "search_memory", json!({"limit": 100})).await;
            assert!(!all.to_string().contains(their_tag));
            for ns in namespaces_in(&all) {
                assert!(belongs_to(&ns, &mine), "{ws} saw {ns}");
            }
            for tool in ["list_readable_namespaces", "list_writable_namespaces"] {
                let listed = ok_json(&mcp, tool, json!({})).await;
                for ns in namespaces_in(&listed) {
                    assert!(belongs_to(&ns, &mine), "{tool} of {ws} lists {ns}");
                }
            }
            // Writes into forged namespaces are refused.
            for ns in &forged {
                if ns.is_empty() {
                    continue;
                }
                for tool in ["commit_memory_v2", "commit_summary"] {
                    let msg =
                        err_text(&mcp, tool, json!({"content": "intrusion", "namespace": ns}))
                            .await;
                    assert!(msg.contains("may not write"), "{tool} into {ns}: {msg}");
                }
                let msg = err_text(
                    &mcp,
                    "forget_memory",
                    json!({"memory_id": Uuid::new_v4().to_string(), "namespace": ns}),
                )
                .await;
                assert!(msg.contains("may not write"), "forget in {ns}: {msg}");
            }
            // The other organisation's ids cannot be forgotten, named or not.
            for (id, ns) in their_ids {
                err_text(&mcp, "forget_memory", json!({"memory_id": id})).await;
                err_text(
                    &mcp,
                    "forget_memory",
                    json!({"memory_id": id, "namespace": ns}),
                )
                .await;
            }
        }
    }
    // Every memory of both organisations is still there.
    for (id, ns) in a_ids.iter().chain(b_ids.iter()) {
        let stored = env.stored(ns).await;
        assert!(
            stored.iter().any(|m| m.id.to_string() == *id),
            "{id} lost from {ns}"
        );
        assert!(stored.iter().all(|m| m.content != "intrusion"));
    }
    assert_eq!(env.stored("custom:anything").await.len(), 0);
}

#[tokio::test]
async fn a_removed_workspace_has_no_namespaces_from_the_next_call_on() {
    let env = Env::start().await;
    let removed = env.mcp(env.a.removed).await;
    for (tool, args) in [
        ("commit_memory", json!({"content": "x"})),
        ("recall_memory", json!({})),
        ("search_memory", json!({})),
        ("list_readable_namespaces", json!({})),
        (
            "forget_memory",
            json!({"memory_id": Uuid::new_v4().to_string()}),
        ),
    ] {
        let msg = err_text(&removed, tool, args).await;
        assert!(msg.contains("removed"), "{tool}: {msg}");
    }
    // A live workspace removed between two calls loses access on the second.
    let child = env.mcp(env.a.sibling).await;
    ok_json(
        &child,
        "commit_memory",
        json!({"content": "before removal"}),
    )
    .await;
    env.set_status(env.a.sibling, "removed").await;
    let msg = err_text(&child, "recall_memory", json!({})).await;
    assert!(msg.contains("removed"), "{msg}");
    // An unknown workspace with a valid token is no better off.
    let ghost = env.mcp(Uuid::new_v4()).await;
    err_text(&ghost, "commit_memory", json!({"content": "x"})).await;
}

#[tokio::test]
async fn a_re_parent_between_two_calls_applies_to_the_second() {
    let env = Env::start().await;
    let child = env.mcp(env.a.child).await;
    let before = ok_json(&child, "list_readable_namespaces", json!({})).await;
    assert_eq!(before[2]["name"], format!("org:{}", env.a.root));
    ok_json(
        &child,
        "commit_memory",
        json!({"content": "alpha team secret plan", "scope": "TEAM"}),
    )
    .await;
    let beta_child = env.mcp(env.b.child).await;
    ok_json(
        &beta_child,
        "commit_memory",
        json!({"content": "beta team lunch on Tuesday", "scope": "TEAM"}),
    )
    .await;
    // A first read remembers the access; the next one starts under it while
    // the tree is read again, and must follow the tree, not the guess.
    let (_, text) = call(&child, "recall_memory", json!({"scope": "TEAM"})).await;
    assert!(
        text.contains("alpha team secret plan") && !text.contains("beta team"),
        "{text}"
    );

    // Move alpha's child (and so its grandchild) under beta's root.
    env.set_parent(env.a.child, Some(env.b.root)).await;
    let after = ok_json(&child, "list_readable_namespaces", json!({})).await;
    assert_eq!(after[1]["name"], format!("team:{}", env.b.root));
    assert_eq!(after[2]["name"], format!("org:{}", env.b.root));
    let (_, text) = call(&child, "recall_memory", json!({"scope": "TEAM"})).await;
    assert!(!text.contains("alpha team secret plan"), "{text}");
    assert!(text.contains("beta team lunch on Tuesday"), "{text}");
    let found = ok_json(&child, "search_memory", json!({"query": "secret plan"})).await;
    assert_eq!(found, json!({"memories": []}));
    let msg = err_text(
        &child,
        "commit_memory_v2",
        json!({"content": "x", "namespace": format!("team:{}", env.a.root)}),
    )
    .await;
    assert!(msg.contains("may not write"), "{msg}");
    let grandchild = env.mcp(env.a.grandchild).await;
    let g = ok_json(&grandchild, "list_readable_namespaces", json!({})).await;
    assert_eq!(g[2]["name"], format!("org:{}", env.b.root));

    // A cycle or a dangling parent never hangs or leaks: it answers.
    env.set_parent(env.a.root, Some(env.a.grandchild)).await;
    env.set_parent(env.a.child, Some(env.a.root)).await;
    let looped = ok_json(&grandchild, "list_readable_namespaces", json!({})).await;
    for ns in namespaces_in(&looped) {
        assert!(belongs_to(&ns, &env.a), "{ns}");
    }
    env.set_parent(env.a.sibling, Some(Uuid::new_v4())).await;
    let sibling = env.mcp(env.a.sibling).await;
    ok_json(&sibling, "list_readable_namespaces", json!({})).await;
}

#[tokio::test]
async fn bad_tokens_get_401_before_any_tool_runs() {
    let env = Env::start().await;
    let url = env.mcp_url();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let expired = {
        // Signed with the right secret, expired a minute ago.
        let header = base64_url(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = base64_url(
            format!(
                r#"{{"sub":"{}","exp":{}}}"#,
                env.a.child,
                chrono::Utc::now().timestamp() - 60
            )
            .as_bytes(),
        );
        sign(&format!("{header}.{claims}"))
    };
    let unsigned = format!(
        "{}.{}.",
        base64_url(br#"{"alg":"none"}"#),
        base64_url(format!(r#"{{"sub":"{}"}}"#, env.a.child).as_bytes())
    );
    let other_secret = auth::issue(
        &Secret::from_text("some-other-secret-0123456789").unwrap(),
        Caller::Workspace(env.a.child),
        None,
    );
    let valid = env.token(env.a.child);
    let (h, rest) = valid.split_once('.').unwrap();
    let (_, s) = rest.split_once('.').unwrap();
    let tampered = format!(
        "{h}.{}.{s}",
        base64_url(format!(r#"{{"sub":"{}"}}"#, env.b.root).as_bytes())
    );
    let http = reqwest::Client::new();
    for (label, header) in [
        ("missing", None),
        ("empty", Some("Bearer ".to_string())),
        ("basic", Some("Basic dXNlcjpwYXNz".to_string())),
        ("garbage", Some("Bearer not.a.jwt".to_string())),
        ("expired", Some(format!("Bearer {expired}"))),
        ("unsigned", Some(format!("Bearer {unsigned}"))),
        ("other secret", Some(format!("Bearer {other_secret}"))),
        ("tampered", Some(format!("Bearer {tampered}"))),
    ] {
        let mut req = http
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .json(&init);
        if let Some(h) = header {
            req = req.header("authorization", h);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 401, "{label}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "unauthorized", "{label}");
        assert!(body["message"].as_str().unwrap().len() > 10, "{label}");
    }
    // Nothing was written by any of them, and a good token still works.
    let mcp = connect(&url, &valid).await;
    ok_json(&mcp, "list_readable_namespaces", json!({})).await;
    // An admin token cannot use the agents' tools.
    let admin = connect(&url, &auth::issue(&env.secret, Caller::Admin, None)).await;
    let msg = err_text(&admin, "recall_memory", json!({})).await;
    assert!(msg.contains("admin"), "{msg}");
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn sign(input: &str) -> String {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", base64_url(&mac.finalize().into_bytes()))
}
