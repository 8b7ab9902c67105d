//! Every route of the contract and its extensions over real HTTP, on a fresh
//! PostgreSQL 15 database per test (and the main paths on SQLite too).

mod http_support;

use http_support::*;
use memory_contract::checksum::{memory_digest, Accumulator};
use memory_plugin::server::ServerConfig;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashSet;

fn caps(body: &Value) -> Vec<String> {
    body["capabilities"]
        .as_array()
        .expect("capabilities array")
        .iter()
        .map(|c| c.as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn health_reports_ok_with_v1_and_extension_capabilities_but_no_embedding_on_pg15() {
    let h = pg_server(ServerConfig::default()).await;
    let (status, body) = h.get("/v1/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], "1.0.0");
    assert_eq!(
        caps(&body),
        [
            "fts",
            "ttl",
            "pin",
            "propagation",
            "batch",
            "list",
            "created_at",
            "scan",
            "checksum"
        ]
    );
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_a_supplied_one_is_echoed() {
    let h = pg_server(ServerConfig::default()).await;
    let resp = h.request(Method::GET, "/v1/health").send().await.unwrap();
    let generated = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    let resp = h
        .request(Method::GET, "/no/such/route")
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-abc-123");
}

#[tokio::test]
async fn namespace_put_get_patch_delete_follow_the_contract() {
    let h = pg_server(ServerConfig::default()).await;
    let path = "/v1/namespaces/team:alpha";

    let (status, ns) = h
        .call(
            Method::PUT,
            path,
            Some(json!({"kind": "team", "metadata": {"a": 1}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ns}");
    assert_eq!(ns["name"], "team:alpha");
    assert_eq!(ns["kind"], "team");
    assert_eq!(ns["metadata"], json!({"a": 1}));
    assert!(ns["created_at"].is_string());

    // PUT is idempotent and replaces metadata.
    let (status, again) = h
        .call(
            Method::PUT,
            path,
            Some(json!({"kind": "team", "metadata": {"b": 2}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["metadata"], json!({"b": 2}));
    assert_eq!(again["created_at"], ns["created_at"]);

    let (status, got) = h.get(path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["metadata"], json!({"b": 2}));

    let (status, patched) = h
        .call(
            Method::PATCH,
            path,
            Some(json!({"expires_at": "2999-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["expires_at"], "2999-01-01T00:00:00Z");
    assert_eq!(patched["metadata"], json!({"b": 2}));

    let (status, body) = h.call(Method::PATCH, path, Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_envelope(&body, "bad_request");

    let (status, body) = h
        .call(
            Method::PATCH,
            "/v1/namespaces/team:absent",
            Some(json!({"metadata": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_envelope(&body, "not_found");

    let (status, body) = h.call(Method::DELETE, path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null, "204 has no body");

    let (status, body) = h.call(Method::DELETE, path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_envelope(&body, "not_found");
    let (status, body) = h.get(path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_envelope(&body, "not_found");
}

#[tokio::test]
async fn write_answers_201_and_search_returns_every_field() {
    let h = pg_server(ServerConfig::default()).await;
    h.namespace("workspace:w1").await;
    let id = h
        .write(
            "workspace:w1",
            json!({
                "content": "the deploy pipeline uses blue green releases",
                "kind": "summary",
                "source": "runtime",
                "expires_at": "2999-01-01T00:00:00Z",
                "propagation": {"hops": [1, 2], "note": "x"},
                "pin": true
            }),
        )
        .await;
    uuid::Uuid::parse_str(&id).expect("plugin-made id is a UUID");

    let found = h
        .search(json!({"namespaces": ["workspace:w1"], "query": "deploy pipeline"}))
        .await;
    assert_eq!(found.len(), 1);
    let m = &found[0];
    assert_eq!(m["id"], id.as_str());
    assert_eq!(m["namespace"], "workspace:w1");
    assert_eq!(m["kind"], "summary");
    assert_eq!(m["source"], "runtime");
    assert_eq!(m["pin"], true);
    assert_eq!(m["propagation"], json!({"hops": [1, 2], "note": "x"}));
    assert_eq!(m["expires_at"], "2999-01-01T00:00:00Z");
    assert!(m["created_at"].is_string());
    assert!(m["score"].is_number(), "full-text search has a score: {m}");

    // Newest first without a query, kinds filter respected.
    h.write("workspace:w1", fact("second memory")).await;
    let recent = h.search(json!({"namespaces": ["workspace:w1"]})).await;
    assert_eq!(recent.len(), 2);
    let only_facts = h
        .search(json!({"namespaces": ["workspace:w1"], "kinds": ["fact"]}))
        .await;
    assert_eq!(only_facts.len(), 1);
    assert_eq!(only_facts[0]["content"], "second memory");
    let limited = h
        .search(json!({"namespaces": ["workspace:w1"], "limit": 1}))
        .await;
    assert_eq!(limited.len(), 1);
}

#[tokio::test]
async fn search_matches_namespaces_exactly() {
    let h = pg_server(ServerConfig::default()).await;
    h.namespace("team:ab").await;
    h.namespace("team:abc").await;
    h.write("team:ab", fact("in ab")).await;
    h.write("team:abc", fact("in abc")).await;
    let found = h.search(json!({"namespaces": ["team:ab"]})).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["content"], "in ab");
}

#[tokio::test]
async fn write_to_a_missing_namespace_answers_404_naming_it() {
    let h = pg_server(ServerConfig::default()).await;
    let (status, body) = h
        .post("/v1/namespaces/team:ghost/memories", fact("x"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_envelope(&body, "not_found");
    assert!(
        body["message"].as_str().unwrap().contains("team:ghost"),
        "{body}"
    );
}

#[tokio::test]
async fn forget_deletes_only_when_the_memory_is_in_the_named_namespace() {
    let h = pg_server(ServerConfig::default()).await;
    h.namespace("team:a").await;
    h.namespace("team:b").await;
    let id = h.write("team:a", fact("forget me")).await;
    let path = format!("/v1/memories/{id}");

    let (status, body) = h
        .call(
            Method::DELETE,
            &path,
            Some(json!({"requested_by_namespace": "team:b"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_envelope(&body, "not_found");
    assert_eq!(h.search(json!({"namespaces": ["team:a"]})).await.len(), 1);

    let (status, body) = h
        .call(
            Method::DELETE,
            &path,
            Some(json!({"requested_by_namespace": "team:a"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(h.search(json!({"namespaces": ["team:a"]})).await.is_empty());

    let (status, _) = h
        .call(
            Method::DELETE,
            &path,
            Some(json!({"requested_by_namespace": "team:a"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_memories() {
    let h = pg_server(ServerConfig::default()).await;
    h.namespace("team:gone").await;
    h.write("team:gone", fact("one")).await;
    let (status, _) = h
        .call(Method::DELETE, "/v1/namespaces/team:gone", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    h.namespace("team:gone").await;
    assert!(h
        .search(json!({"namespaces": ["team:gone"]}))
        .await
        .is_empty());
}

#[tokio::test]
async fn batch_answers_in_input_order_and_one_bad_item_does_not_sink_the_others() {
    let h = pg_server(ServerConfig::default()).await;
    h.namespace("team:batch").await;
    let fixed = uuid::Uuid::new_v4().to_string();
    let (status, body) = h
        .post(
            "/v1/memories/batch",
            json!({"writes": [
                {"namespace": "team:batch", "content": "first", "kind": "fact", "source": "agent"},
                {"namespace": "team:batch", "content": "bad kind", "kind": "rumour", "source": "agent"},
                {"namespace": "team:batch", "content": "   ", "kind": "fact", "source": "agent"},
                {"namespace": "team:missing", "content": "no ns", "kind": "fact", "source": "agent"},
                {"namespace": "Bad Name", "content": "x", "kind": "fact", "source": "agent"},
                {"namespace": "team:batch", "id": fixed, "content": "old one", "kind": "fact",
                 "source": "user", "created_at": "2001-02-03T04:05:06Z"},
                "not an object"
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 7);
    assert!(results[0]["id"].is_string(), "{}", results[0]);
    assert_eq!(results[0]["namespace"], "team:batch");
    assert_envelope(&results[1]["error"], "bad_request");
    assert!(results[1]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("writes[1]"));
    assert_envelope(&results[2]["error"], "bad_request");
    assert!(results[2]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("content"));
    assert_envelope(&results[3]["error"], "not_found");
    assert_envelope(&results[4]["error"], "bad_request");
    assert_eq!(results[5]["id"], fixed.as_str());
    assert_envelope(&results[6]["error"], "bad_request");

    // The good items are stored; created_at is kept (extension `created_at`).
    let (status, page) = h.get("/v1/namespaces/team:batch/memories").await;
    assert_eq!(status, StatusCode::OK);
    let memories = page["memories"].as_array().unwrap();
    assert_eq!(memories.len(), 2);
    let old = memories.iter().find(|m| m["id"] == fixed.as_str()).unwrap();
    assert_eq!(old["created_at"], "2001-02-03T04:05:06Z");
}

#[tokio::test]
async fn batch_of_nothing_answers_an_empty_result_list() {
    let h = pg_server(ServerConfig::default()).await;
    let (status, body) = h.post("/v1/memories/batch", json!({"writes": []})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"results": []}));
}

#[tokio::test]
async fn list_pages_through_every_memory_in_id_order() {
    let h = pg_server(ServerConfig::default()).await;
    h.namespace("team:list").await;
    let mut written = HashSet::new();
    for i in 0..5 {
        written.insert(h.write("team:list", fact(&format!("memory {i}"))).await);
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/namespaces/team:list/memories?limit=2&after={a}"),
            None => "/v1/namespaces/team:list/memories?limit=2".to_string(),
        };
        let (status, page) = h.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let memories = page["memories"].as_array().unwrap();
        assert!(memories.len() <= 2);
        seen.extend(
            memories
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_string()),
        );
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
        assert!(seen.len() <= 5, "paging does not end: {seen:?}");
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "ordered by id");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), written);

    let (status, body) = h.get("/v1/namespaces/team:nobody/memories").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_envelope(&body, "not_found");
}

#[tokio::test]
async fn scan_pages_through_every_namespace_in_id_order_and_checks_its_query() {
    let h = pg_server(ServerConfig::default()).await;
    let mut written = Vec::new();
    for ns in ["team:scan-one", "workspace:scan-two", "org:scan-three"] {
        h.namespace(ns).await;
        for i in 0..3 {
            let id = h.write(ns, fact(&format!("{ns} memory {i}"))).await;
            written.push((id, ns.to_string()));
        }
    }
    written.sort();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/memories?limit=4&after={a}"),
            None => "/v1/memories?limit=4".to_string(),
        };
        let (status, page) = h.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let memories = page["memories"].as_array().unwrap();
        assert!(memories.len() <= 4);
        seen.extend(memories.iter().map(|m| {
            (
                m["id"].as_str().unwrap().to_string(),
                m["namespace"].as_str().unwrap().to_string(),
            )
        }));
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
        assert!(seen.len() <= 9, "paging does not end: {seen:?}");
    }
    assert_eq!(seen, written, "every memory of every namespace, by id");

    for (path, field) in [
        ("/v1/memories?after=not-a-uuid", "after"),
        ("/v1/memories?before=12345", "before"),
        ("/v1/memories?limit=1001", "limit"),
        ("/v1/memories?limit=-1", "limit"),
        ("/v1/memories?limit=ten", "limit"),
        ("/v1/memories?embedding=yes", "embedding"),
        ("/v1/namespaces?after=Not%20A%20Name", "after"),
        ("/v1/namespaces?limit=1001", "limit"),
    ] {
        let (status, body) = h.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_envelope(&body, "bad_request");
        assert!(
            body["message"].as_str().unwrap().contains(field),
            "{path}: {body}"
        );
    }
    let (status, body) = h.post("/v1/memories", json!({})).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");

    // The namespace listing, empty namespaces included, by name.
    h.namespace("custom:scan-empty").await;
    let (status, page) = h.get("/v1/namespaces?limit=2").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let names: Vec<&str> = page["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["custom:scan-empty", "org:scan-three"], "{page}");
    assert_eq!(page["next_after"], "org:scan-three");
    let (status, rest) = h.get("/v1/namespaces?after=org:scan-three").await;
    assert_eq!(status, StatusCode::OK, "{rest}");
    assert_eq!(rest["namespaces"].as_array().unwrap().len(), 2, "{rest}");
    assert!(rest.get("next_after").is_none(), "{rest}");
}

/// The checksum buckets the contract's definition gives for `memories`
/// (`(id, namespace, content, created_at)` as the wire returns them).
fn expected_buckets(memories: &[Value], prefix: u32, created_at: bool) -> Value {
    let mut buckets = Accumulator::new(prefix);
    for m in memories {
        let id = uuid::Uuid::parse_str(m["id"].as_str().unwrap()).unwrap();
        let at = chrono::DateTime::parse_from_rfc3339(m["created_at"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc);
        buckets.add(
            id,
            memory_digest(
                id,
                m["namespace"].as_str().unwrap(),
                m["content"].as_str().unwrap(),
                created_at.then_some(at),
            ),
        );
    }
    serde_json::to_value(buckets.into_wire()).unwrap()
}

/// Checksums of every memory over HTTP, and the answers to a bad query;
/// the same on both stores.
async fn checksums_follow_the_contract(h: &Harness) {
    for ns in ["team:sum-one", "workspace:sum-two"] {
        h.namespace(ns).await;
        for i in 0..4 {
            let mut write = fact(&format!("{ns} memory {i} ✓"));
            if i % 2 == 1 {
                write["created_at"] = json!("2019-05-06T07:08:09.101112Z");
            }
            h.write(ns, write).await;
        }
    }
    let (status, page) = h.get("/v1/memories?limit=1000").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let memories = page["memories"].as_array().unwrap().clone();
    assert_eq!(memories.len(), 8);

    for (query, prefix, created_at) in [
        ("", 2, false),
        ("?prefix=0", 2, false),
        ("?prefix=1", 1, false),
        ("?prefix=2&created_at=true", 2, true),
        ("?prefix=4&created_at=false", 4, false),
        ("?created_at=true", 2, true),
        ("?prefix=&created_at=", 2, false),
    ] {
        let path = format!("/v1/memories/checksums{query}");
        let (status, body) = h.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["prefix"], prefix, "{path}: {body}");
        assert_eq!(body["created_at"], created_at, "{path}: {body}");
        assert_eq!(
            body["buckets"],
            expected_buckets(&memories, prefix, created_at),
            "{path}"
        );
    }

    // Deleting a memory changes its bucket.
    let (_, before) = h.get("/v1/memories/checksums?prefix=1").await;
    let victim = &memories[0];
    let (status, _) = h
        .call(
            Method::DELETE,
            &format!("/v1/memories/{}", victim["id"].as_str().unwrap()),
            Some(json!({"requested_by_namespace": victim["namespace"]})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, after) = h.get("/v1/memories/checksums?prefix=1").await;
    assert_eq!(after["buckets"], expected_buckets(&memories[1..], 1, false));
    assert_ne!(before["buckets"], after["buckets"]);

    for (query, field) in [
        ("prefix=5", "prefix"),
        ("prefix=-1", "prefix"),
        ("prefix=x", "prefix"),
        ("prefix=1.5", "prefix"),
        ("prefix=99999999999999999999", "prefix"),
        ("created_at=maybe", "created_at"),
        ("created_at=1", "created_at"),
    ] {
        let path = format!("/v1/memories/checksums?{query}");
        let (status, body) = h.get(&path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_envelope(&body, "bad_request");
        assert_eq!(body["details"]["field"], field, "{path}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(field),
            "{path}: {body}"
        );
    }
    // The route sits beside `/v1/memories/{id}` without taking its place.
    let (status, body) = h.post("/v1/memories/checksums", json!({})).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_envelope(&body, "bad_request");
    let (status, body) = h
        .call(
            Method::DELETE,
            &format!("/v1/memories/{}", memories[1]["id"].as_str().unwrap()),
            Some(json!({"requested_by_namespace": memories[1]["namespace"]})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

#[tokio::test]
async fn checksums_digest_every_memory_by_id_prefix_and_check_their_query_on_pg15() {
    checksums_follow_the_contract(&pg_server(ServerConfig::default()).await).await;
}

#[tokio::test]
async fn checksums_digest_every_memory_by_id_prefix_and_check_their_query_on_sqlite() {
    checksums_follow_the_contract(&sqlite_server(ServerConfig::default()).await).await;
}

#[tokio::test]
async fn created_at_on_a_single_write_is_kept() {
    let h = pg_server(ServerConfig::default()).await;
    h.namespace("team:aged").await;
    let mut write = fact("old memory");
    write["created_at"] = json!("2010-06-01T12:00:00Z");
    h.write("team:aged", write).await;
    let found = h.search(json!({"namespaces": ["team:aged"]})).await;
    assert_eq!(found[0]["created_at"], "2010-06-01T12:00:00Z");
}

#[tokio::test]
async fn v1_only_mode_advertises_and_routes_no_extension() {
    let h = pg_server(ServerConfig {
        v1_only: true,
        ..ServerConfig::default()
    })
    .await;
    let (status, body) = h.get("/v1/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(caps(&body), ["fts", "ttl", "pin", "propagation"]);

    h.namespace("team:plain").await;
    let (status, body) = h
        .post(
            "/v1/memories/batch",
            json!({"writes": [{"namespace": "team:plain", "content": "x", "kind": "fact", "source": "agent"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_envelope(&body, "not_found");
    let (status, body) = h.get("/v1/namespaces/team:plain/memories").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_envelope(&body, "not_found");
    let (status, body) = h.get("/v1/namespaces/team:plain").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_envelope(&body, "not_found");
    let (status, body) = h.get("/v1/memories").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_envelope(&body, "not_found");
    let (status, body) = h.get("/v1/namespaces").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_envelope(&body, "not_found");
    for path in [
        "/v1/memories/checksums",
        "/v1/memories/checksums?prefix=2&created_at=true",
        "/v1/memories/checksums?prefix=9",
    ] {
        let (status, body) = h.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_envelope(&body, "not_found");
    }

    // `created_at` is an unknown field to plain v1: ignored, not stored.
    let mut write = fact("plain write");
    write["created_at"] = json!("2001-01-01T00:00:00Z");
    h.write("team:plain", write).await;
    let found = h.search(json!({"namespaces": ["team:plain"]})).await;
    let created = found[0]["created_at"].as_str().unwrap();
    assert!(
        !created.starts_with("2001"),
        "created_at was honoured: {created}"
    );
}

#[tokio::test]
async fn a_configured_token_guards_every_route_but_health() {
    let mut h = pg_server(ServerConfig {
        token: Some("s3cret-token".to_string()),
        ..ServerConfig::default()
    })
    .await;
    // With the right token everything works.
    h.namespace("team:auth").await;
    let resp = h.request(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    h.token = None;
    let (status, body) = h.get("/v1/health").await;
    assert_eq!(status, StatusCode::OK, "health stays open: {body}");
    for (method, path, body) in [
        (
            Method::PUT,
            "/v1/namespaces/team:auth",
            Some(json!({"kind": "team"})),
        ),
        (
            Method::POST,
            "/v1/namespaces/team:auth/memories",
            Some(fact("x")),
        ),
        (
            Method::POST,
            "/v1/search",
            Some(json!({"namespaces": ["team:auth"]})),
        ),
        (Method::GET, "/metrics", None),
        (Method::GET, "/v1/namespaces/team:auth/memories", None),
        (Method::GET, "/v1/memories/checksums", None),
    ] {
        let (status, body) = h.call(method.clone(), path, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_envelope(&body, "unauthorized");
    }

    h.token = Some("wrong-token".to_string());
    let (status, body) = h
        .post("/v1/search", json!({"namespaces": ["team:auth"]}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_envelope(&body, "unauthorized");

    let resp = h
        .http
        .post(h.url("/v1/search"))
        .header("authorization", "Basic czNjcmV0LXRva2Vu")
        .json(&json!({"namespaces": ["team:auth"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_and_show_the_pool() {
    let h = pg_server(ServerConfig::default()).await;
    h.get("/v1/health").await;
    h.get("/v1/health").await;
    h.get("/v1/namespaces/Bad%20Name").await;
    h.get("/nowhere").await;
    let resp = h.request(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    for needle in [
        "memory_plugin_http_requests_total{method=\"GET\",route=\"/v1/health\",status=\"200\"} 2",
        "memory_plugin_http_requests_total{method=\"GET\",route=\"/v1/namespaces/{name}\",status=\"400\"} 1",
        "memory_plugin_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1",
        "memory_plugin_http_request_duration_seconds_bucket{route=\"/v1/health\",le=\"+Inf\"} 2",
        "memory_plugin_http_request_duration_seconds_count{route=\"/v1/health\"} 2",
        "# TYPE memory_plugin_db_pool_size gauge",
        "memory_plugin_db_pool_max{backend=\"postgres\"} 10",
        "memory_plugin_db_pool_idle{backend=\"postgres\"}",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[tokio::test]
async fn the_main_routes_work_the_same_on_sqlite() {
    let h = sqlite_server(ServerConfig::default()).await;
    let (status, body) = h.get("/v1/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        caps(&body),
        [
            "fts",
            "embedding",
            "ttl",
            "pin",
            "propagation",
            "batch",
            "list",
            "created_at",
            "scan",
            "checksum",
            "hybrid"
        ]
    );
    h.namespace("workspace:lite").await;
    h.namespace("workspace:other").await;
    let id = h
        .write("workspace:lite", fact("we deployed the service on friday"))
        .await;
    let found = h
        .search(json!({"namespaces": ["workspace:lite"], "query": "deploying"}))
        .await;
    assert_eq!(found.len(), 1, "stemmed full-text search");
    assert_eq!(found[0]["id"], id.as_str());

    let mut moved = fact("steal");
    moved["id"] = json!(id);
    let (status, body) = h
        .post("/v1/namespaces/workspace:other/memories", moved)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_envelope(&body, "conflict");

    let (status, body) = h
        .post(
            "/v1/memories/batch",
            json!({"writes": [
                {"namespace": "workspace:lite", "content": "b1", "kind": "fact", "source": "agent"},
                {"namespace": "workspace:none", "content": "b2", "kind": "fact", "source": "agent"}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["results"][0]["id"].is_string());
    assert_envelope(&body["results"][1]["error"], "not_found");

    let (status, page) = h.get("/v1/namespaces/workspace:lite/memories").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["memories"].as_array().unwrap().len(), 2);

    let (status, _) = h
        .call(
            Method::DELETE,
            &format!("/v1/memories/{id}"),
            Some(json!({"requested_by_namespace": "workspace:lite"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = h
        .call(Method::DELETE, "/v1/namespaces/workspace:lite", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_finish_and_then_refuses_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = memory_testkit::pg15().await;
    let store = memory_plugin::store::postgres::PgStore::connect(db.url(), Default::default())
        .await
        .unwrap();
    let server = memory_plugin::server::spawn(std::sync::Arc::new(store), ServerConfig::default())
        .await
        .unwrap();
    let addr = server.addr();
    let created = reqwest::Client::new()
        .put(format!("{}/v1/namespaces/team:drain", server.url()))
        .json(&json!({"kind": "team"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::OK);

    // A write whose body arrives in two halves, with shutdown in between.
    let body = br#"{"content":"written while draining","kind":"fact","source":"agent"}"#;
    let (first, second) = body.split_at(20);
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/namespaces/team:drain/memories HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(first).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let stopping = tokio::spawn(server.shutdown());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !stopping.is_finished(),
        "shutdown waits for the in-flight request"
    );

    socket.write_all(second).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = socket.read(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 201"), "{text}");
    drop(socket);

    tokio::time::timeout(std::time::Duration::from_secs(10), stopping)
        .await
        .expect("shutdown completes once the request is done")
        .unwrap()
        .unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
