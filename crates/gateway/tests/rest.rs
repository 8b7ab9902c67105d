//! The inspector's REST surface: every route for every kind of caller, the
//! namespace rules, cursor paging, deletion and its audit, the legacy
//! commit's redaction, an unreachable plugin, and the page's headers.

mod common;
mod inspector_util;

use common::{spawn_gateway, Env};
use inspector_util::{assert_envelope, rest, seed, Auth};
use memory_contract::MemoryKind;
use memory_gateway::auth::{self, Caller, Secret};
use memory_gateway::limit::RateLimit;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashSet;
use uuid::Uuid;

fn admin(env: &Env) -> Auth {
    Auth::Bearer(auth::issue(&env.secret, Caller::Admin, None))
}

fn own(env: &Env, ws: Uuid) -> Auth {
    Auth::Bearer(env.token(ws))
}

/// Callers other than the path's own workspace and the operator.
fn strangers(env: &Env) -> Vec<(&'static str, Auth, u16, &'static str)> {
    let forged = auth::issue(
        &Secret::from_text("another-secret-0123456789").unwrap(),
        Caller::Admin,
        None,
    );
    vec![
        (
            "another org's workspace",
            own(env, env.b.child),
            403,
            "forbidden",
        ),
        ("no token", Auth::None, 401, "unauthorized"),
        (
            "a malformed token",
            Auth::Bearer("not-a-token".into()),
            401,
            "unauthorized",
        ),
        (
            "a token of another secret",
            Auth::Bearer(forged),
            401,
            "unauthorized",
        ),
    ]
}

/// Writes one memory into `a.child`'s own namespace through the gateway.
async fn commit(env: &Env, content: &str) -> String {
    let (status, body) = rest(
        &env.gateway.url,
        Method::POST,
        &format!("/workspaces/{}/memories", env.a.child),
        &own(env, env.a.child),
        Some(json!({"content": content})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn every_route_answers_each_caller_as_it_should() {
    let env = Env::start().await;
    let base = env.gateway.url.clone();
    let ws = env.a.child;
    let me = own(&env, ws);
    let op = admin(&env);

    // Reads.
    for path in [
        format!("/workspaces/{ws}/v2/namespaces"),
        format!("/workspaces/{ws}/v2/memories"),
    ] {
        for (who, auth) in [("own workspace", &me), ("admin", &op)] {
            let (status, body) = rest(&base, Method::GET, &path, auth, None).await;
            assert_eq!(status, 200, "{who} GET {path}: {body}");
        }
        for (who, auth, status, code) in strangers(&env) {
            let (got, body) = rest(&base, Method::GET, &path, &auth, None).await;
            assert_eq!(got, status, "{who} GET {path}: {body}");
            assert_envelope(&format!("{who} GET {path}"), &body, code);
        }
    }
    let (_, namespaces) = rest(
        &base,
        Method::GET,
        &format!("/workspaces/{ws}/v2/namespaces"),
        &me,
        None,
    )
    .await;
    let readable: Vec<&str> = namespaces["readable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        readable,
        [
            format!("workspace:{ws}"),
            format!("team:{}", env.a.root),
            format!("org:{}", env.a.root)
        ]
    );
    for entry in namespaces["readable"].as_array().unwrap() {
        for field in ["name", "kind", "display_name", "description"] {
            assert!(entry[field].is_string(), "{entry}");
        }
    }
    let writable: Vec<&str> = namespaces["writable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(writable, readable[..2]);
    assert_eq!(namespaces["semantic_search"], false);

    // The legacy commit: the workspace itself only.
    let path = format!("/workspaces/{ws}/memories");
    let (status, body) = rest(
        &base,
        Method::POST,
        &path,
        &me,
        Some(json!({"content": "the build needs node 20", "scope": "LOCAL"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["scope"], "LOCAL");
    let (status, body) = rest(
        &base,
        Method::POST,
        &path,
        &op,
        Some(json!({"content": "x"})),
    )
    .await;
    assert_eq!(status, 403, "admin POST: {body}");
    assert_envelope("admin POST", &body, "forbidden");
    for (who, auth, status, code) in strangers(&env) {
        let (got, body) = rest(
            &base,
            Method::POST,
            &path,
            &auth,
            Some(json!({"content": "intruder"})),
        )
        .await;
        assert_eq!(got, status, "{who} POST: {body}");
        assert_envelope(&format!("{who} POST"), &body, code);
    }
    assert_eq!(env.stored(&format!("workspace:{ws}")).await.len(), 1);

    // Deletion.
    for (who, auth, status, code) in strangers(&env) {
        let id = commit(&env, "kept").await;
        let path = format!("/workspaces/{ws}/v2/memories/{id}");
        let (got, body) = rest(&base, Method::DELETE, &path, &auth, None).await;
        assert_eq!(got, status, "{who} DELETE: {body}");
        assert_envelope(&format!("{who} DELETE"), &body, code);
    }
    assert_eq!(env.stored(&format!("workspace:{ws}")).await.len(), 5);
    for (who, auth) in [("own workspace", &me), ("admin", &op)] {
        let id = commit(&env, "to forget").await;
        let path = format!("/workspaces/{ws}/v2/memories/{id}");
        let (status, body) = rest(&base, Method::DELETE, &path, auth, None).await;
        assert_eq!(status, 204, "{who} DELETE: {body}");
        assert_eq!(body, Value::Null);
        let (status, body) = rest(&base, Method::DELETE, &path, auth, None).await;
        assert_eq!(status, 404, "{who} DELETE again: {body}");
        assert_envelope("DELETE again", &body, "not_found");
    }
    assert_eq!(env.stored(&format!("workspace:{ws}")).await.len(), 5);

    // The operator's workspace list, and who a token is.
    let (status, body) = rest(&base, Method::GET, "/admin/workspaces", &op, None).await;
    assert_eq!(status, 200, "{body}");
    let listed: HashSet<&str> = body["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert!(listed.contains(env.a.root.to_string().as_str()));
    assert!(listed.contains(env.b.grandchild.to_string().as_str()));
    let (status, body) = rest(&base, Method::GET, "/admin/workspaces", &me, None).await;
    assert_eq!(status, 403, "{body}");
    assert_envelope("workspace lists workspaces", &body, "forbidden");
    for (who, auth, status, code) in strangers(&env).into_iter().skip(1) {
        let (got, body) = rest(&base, Method::GET, "/admin/workspaces", &auth, None).await;
        assert_eq!(got, status, "{who}: {body}");
        assert_envelope(who, &body, code);
    }
    let (status, body) = rest(&base, Method::GET, "/v2/whoami", &me, None).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"admin": false, "workspace": ws}));
    let (_, body) = rest(&base, Method::GET, "/v2/whoami", &op, None).await;
    assert_eq!(body, json!({"admin": true}));

    // Bad input, unknown and removed workspaces, wrong methods.
    for (path, code, status) in [
        (
            "/workspaces/nope/v2/namespaces".to_string(),
            "bad_request",
            400,
        ),
        (
            format!("/workspaces/{ws}/v2/memories?limit=0"),
            "bad_request",
            400,
        ),
        (
            format!("/workspaces/{ws}/v2/memories?limit=5000"),
            "bad_request",
            400,
        ),
        (
            format!("/workspaces/{ws}/v2/memories?kind=opinion"),
            "bad_request",
            400,
        ),
        (
            format!("/workspaces/{ws}/v2/memories?after=garbage"),
            "bad_request",
            400,
        ),
        (
            format!("/workspaces/{ws}/v2/memories?q=node&after=workspace:{ws}/"),
            "bad_request",
            400,
        ),
    ] {
        let (got, body) = rest(&base, Method::GET, &path, &me, None).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_envelope(&path, &body, code);
    }
    let unknown = Uuid::new_v4();
    let (status, body) = rest(
        &base,
        Method::GET,
        &format!("/workspaces/{unknown}/v2/namespaces"),
        &op,
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_envelope("admin, unknown workspace", &body, "not_found");
    let removed = env.a.removed;
    let (status, body) = rest(
        &base,
        Method::GET,
        &format!("/workspaces/{removed}/v2/memories"),
        &own(&env, removed),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_envelope("removed workspace", &body, "forbidden");
    let (status, body) = rest(
        &base,
        Method::PUT,
        &format!("/workspaces/{ws}/v2/namespaces"),
        &me,
        None,
    )
    .await;
    assert_eq!(status, 405, "{body}");
    assert_envelope("PUT", &body, "method_not_allowed");

    let metrics = env.gw().metrics().render();
    assert!(
        metrics.contains(r#"memory_gateway_tool_calls_total{tool="rest_memories",outcome="ok"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"memory_gateway_tool_calls_total{tool="rest_forget",outcome="denied"}"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn namespaces_outside_the_readable_set_are_refused_and_read_only_ones_kept() {
    let env = Env::start().await;
    let base = env.gateway.url.clone();
    let ws = env.a.child;
    let me = own(&env, ws);
    let op = admin(&env);
    let org = format!("org:{}", env.a.root);
    let org_ids = seed(
        env.plugin.url(),
        &org,
        3,
        |_| MemoryKind::Fact,
        |i| format!("org policy {i}"),
    )
    .await;

    for ns in [
        format!("workspace:{}", env.a.sibling),
        format!("team:{}", env.a.child),
        format!("org:{}", env.b.root),
        format!("workspace:{}", env.b.child),
        "custom:anything".to_string(),
    ] {
        for auth in [&me, &op] {
            let (status, body) = rest(
                &base,
                Method::GET,
                &format!("/workspaces/{ws}/v2/memories?namespace={ns}"),
                auth,
                None,
            )
            .await;
            assert_eq!(status, 403, "{ns}: {body}");
            assert_envelope(&ns, &body, "forbidden");
        }
    }

    // The org namespace is readable here, shared, and read-only for the child.
    let (status, body) = rest(
        &base,
        Method::GET,
        &format!("/workspaces/{ws}/v2/memories?namespace={org}"),
        &me,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rows = body["memories"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for row in rows {
        assert_eq!(row["shared"], true, "{row}");
        assert_eq!(row["can_forget"], false, "{row}");
        assert_eq!(row["namespace_kind"], "org", "{row}");
        assert!(row["content"].as_str().unwrap().starts_with("org policy"));
    }
    let target = org_ids[0];
    let path = format!("/workspaces/{ws}/v2/memories/{target}?namespace={org}");
    let (status, body) = rest(&base, Method::DELETE, &path, &me, None).await;
    assert_eq!(status, 403, "{body}");
    assert_envelope("child deletes an org memory", &body, "forbidden");
    let (status, body) = rest(
        &base,
        Method::DELETE,
        &format!(
            "/workspaces/{ws}/v2/memories/{target}?namespace=org:{}",
            env.b.root
        ),
        &op,
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");

    // The operator may, and it is audited; the memory is gone.
    let (status, body) = rest(&base, Method::DELETE, &path, &op, None).await;
    assert_eq!(status, 204, "{body}");
    let (_, body) = rest(
        &base,
        Method::GET,
        &format!("/workspaces/{ws}/v2/memories?namespace={org}"),
        &op,
        None,
    )
    .await;
    let left: Vec<&str> = body["memories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(left.len(), 2);
    assert!(!left.contains(&target.to_string().as_str()));
    for row in body["memories"].as_array().unwrap() {
        assert_eq!(row["can_forget"], true, "admin may forget: {row}");
    }
    // Without a namespace the operator's deletion finds it among the readable ones.
    let other = org_ids[1];
    let (status, _) = rest(
        &base,
        Method::DELETE,
        &format!("/workspaces/{ws}/v2/memories/{other}"),
        &op,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let audit = env.gw().directory().audit_log().await.unwrap();
    let deletions: Vec<_> = audit.iter().filter(|e| e.action == "delete").collect();
    assert_eq!(deletions.len(), 2, "{audit:?}");
    for (entry, id) in deletions.iter().zip([target, other]) {
        assert_eq!(entry.actor, "admin");
        assert_eq!(entry.workspace, Some(ws));
        assert_eq!(entry.namespace, org);
        assert_eq!(entry.memory_id, id);
    }
}

#[tokio::test]
async fn listing_pages_through_every_memory_exactly_once_newest_first_per_page() {
    let env = Env::start().await;
    let base = env.gateway.url.clone();
    let ws = env.a.child;
    let me = own(&env, ws);
    let own_ns = format!("workspace:{ws}");
    let team_ns = format!("team:{}", env.a.root);
    let kind_of = |i: usize| {
        if i.is_multiple_of(5) {
            MemoryKind::Summary
        } else {
            MemoryKind::Fact
        }
    };
    let mut expected: HashSet<Uuid> = seed(env.plugin.url(), &own_ns, 250, kind_of, |i| {
        format!("note number {i} about the deploy")
    })
    .await
    .into_iter()
    .collect();
    expected.extend(
        seed(env.plugin.url(), &team_ns, 40, kind_of, |i| {
            format!("team note {i}")
        })
        .await,
    );
    // Another organisation's memories never show.
    seed(
        env.plugin.url(),
        &format!("workspace:{}", env.b.child),
        20,
        kind_of,
        |i| format!("beta {i}"),
    )
    .await;

    let walk = |query: String| {
        let base = base.clone();
        let me = me.clone();
        async move {
            let mut seen: Vec<Uuid> = Vec::new();
            let mut after: Option<String> = None;
            let mut pages = 0;
            loop {
                let mut path = format!("/workspaces/{ws}/v2/memories?limit=100{query}");
                if let Some(a) = &after {
                    path.push_str(&format!("&after={}", urlencode(a)));
                }
                let (status, body) = rest(&base, Method::GET, &path, &me, None).await;
                assert_eq!(status, 200, "{path}: {body}");
                assert_eq!(body["mode"], "list");
                let rows = body["memories"].as_array().unwrap();
                assert!(rows.len() <= 100);
                let created: Vec<&str> = rows
                    .iter()
                    .map(|r| r["created_at"].as_str().unwrap())
                    .collect();
                let times: Vec<chrono::DateTime<chrono::Utc>> =
                    created.iter().map(|c| c.parse().unwrap()).collect();
                assert!(
                    times.windows(2).all(|w| w[0] >= w[1]),
                    "a page is newest first"
                );
                seen.extend(
                    rows.iter()
                        .map(|r| r["id"].as_str().unwrap().parse::<Uuid>().unwrap()),
                );
                pages += 1;
                assert!(pages < 50, "the cursor does not end");
                match body["next_after"].as_str() {
                    Some(next) => after = Some(next.to_string()),
                    None => break,
                }
            }
            (seen, pages)
        }
    };

    let (seen, pages) = walk(String::new()).await;
    assert_eq!(seen.len(), 290, "every memory once");
    assert_eq!(seen.iter().copied().collect::<HashSet<_>>(), expected);
    assert!(pages >= 3, "{pages}");

    let (seen, _) = walk(format!("&namespace={own_ns}")).await;
    assert_eq!(seen.len(), 250);
    let (seen, _) = walk("&kind=summary".to_string()).await;
    assert_eq!(seen.len(), 50 + 8);

    // A search answers one page of matches, no cursor.
    let (status, body) = rest(
        &base,
        Method::GET,
        &format!("/workspaces/{ws}/v2/memories?q=deploy&limit=20"),
        &me,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mode"], "search");
    assert_eq!(body["next_after"], Value::Null);
    let rows = body["memories"].as_array().unwrap();
    assert_eq!(rows.len(), 20);
    assert!(rows
        .iter()
        .all(|r| r["content"].as_str().unwrap().contains("deploy")));
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn the_legacy_commit_redacts_like_the_tools() {
    let env = Env::start().await;
    let ws = env.a.child;
    let (status, body) = rest(
        &env.gateway.url,
        Method::POST,
        &format!("/workspaces/{ws}/memories"),
        &own(&env, ws),
        Some(json!({
            "content": "deploy with GITHUB_TOKEN=ghp_Zq8Lr4TnVb7Xc2Wm9Kd1Hs6Jf3Pa5Ye0Ui8O please",
            "scope": "TEAM"
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["scope"], "TEAM");
    let stored = env.stored(&format!("team:{}", env.a.root)).await;
    assert_eq!(stored.len(), 1);
    assert!(
        !stored[0].content.contains("ghp_Zq8"),
        "{}",
        stored[0].content
    );
    assert!(
        stored[0].content.contains("[REDACTED:"),
        "{}",
        stored[0].content
    );

    for (body, code) in [
        (json!({"content": "x", "scope": "GLOBAL"}), "forbidden"),
        (json!({"content": "   "}), "bad_request"),
        (json!({"scope": "LOCAL"}), "bad_request"),
        (json!({"content": 5}), "bad_request"),
    ] {
        let (status, answer) = rest(
            &env.gateway.url,
            Method::POST,
            &format!("/workspaces/{ws}/memories"),
            &own(&env, ws),
            Some(body.clone()),
        )
        .await;
        assert!(status == 400 || status == 403, "{body}: {answer}");
        assert_envelope(&body.to_string(), &answer, code);
    }
}

#[tokio::test]
async fn an_unreachable_plugin_is_503_unavailable_not_an_empty_list() {
    let env = Env::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let gateway = spawn_gateway(
        env.platform.url(),
        &format!("http://{addr}"),
        RateLimit::default(),
    )
    .await;
    let token = Auth::Bearer(env.token(env.a.child));
    for query in ["", "?q=anything"] {
        let (status, body) = rest(
            &gateway.url,
            Method::GET,
            &format!("/workspaces/{}/v2/memories{query}", env.a.child),
            &token,
            None,
        )
        .await;
        assert_eq!(status, 503, "{body}");
        assert_envelope("plugin down", &body, "unavailable");
    }
    // The namespaces come from the directory and still answer.
    let (status, _) = rest(
        &gateway.url,
        Method::GET,
        &format!("/workspaces/{}/v2/namespaces", env.a.child),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_page_and_its_assets_carry_a_strict_policy() {
    let env = Env::start().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let root = client
        .get(format!("{}/", env.gateway.url))
        .send()
        .await
        .unwrap();
    assert!(root.status().is_redirection());
    assert_eq!(root.headers()["location"], "/ui");
    for (path, kind) in [
        ("/ui", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
    ] {
        let response = client
            .get(format!("{}{path}", env.gateway.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        let csp = headers["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let body = response.text().await.unwrap();
        if kind == "text/html" {
            assert!(!body.contains("<script>"), "no inline script");
            assert!(!body.contains("style="), "no inline style");
            assert!(!body.contains("{{version}}"));
            assert!(body.contains("/ui/app.js"));
        }
        if kind == "text/javascript" {
            assert!(!body.contains("innerHTML"), "text only");
        }
    }
}
