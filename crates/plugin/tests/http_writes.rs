//! Idempotent writes, conflicts and expiry over real HTTP on a fresh
//! PostgreSQL 15 database per test.

mod http_support;

use http_support::*;
use memory_plugin::server::ServerConfig;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

#[tokio::test]
async fn writing_the_same_id_twice_leaves_one_row_with_the_second_content() {
    let h = pg_server(ServerConfig::default()).await;
    h.namespace("team:idem").await;
    let id = uuid::Uuid::new_v4().to_string();
    for content in ["first version", "second version"] {
        let mut write = fact(content);
        write["id"] = json!(id);
        assert_eq!(h.write("team:idem", write).await, id);
    }
    let found = h.search(json!({"namespaces": ["team:idem"]})).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["content"], "second version");
}

#[tokio::test]
async fn fifty_concurrent_writes_with_one_id_leave_one_row() {
    let h = pg_server(ServerConfig::default()).await;
    h.namespace("team:race").await;
    let id = uuid::Uuid::new_v4().to_string();
    let writes = (0..50).map(|i| {
        let mut write = fact(&format!("version {i}"));
        write["id"] = json!(id);
        h.post("/v1/namespaces/team:race/memories", write)
    });
    for (status, ack) in futures::future::join_all(writes).await {
        assert_eq!(status, StatusCode::CREATED, "{ack}");
        assert_eq!(ack["id"], id.as_str());
    }
    let (status, page) = h.get("/v1/namespaces/team:race/memories").await;
    assert_eq!(status, StatusCode::OK);
    let memories = page["memories"].as_array().unwrap();
    assert_eq!(memories.len(), 1, "{page}");
    assert!(memories[0]["content"]
        .as_str()
        .unwrap()
        .starts_with("version "));
}

#[tokio::test]
async fn a_hundred_concurrent_writes_without_id_get_a_hundred_distinct_ids() {
    let h = pg_server(ServerConfig::default()).await;
    h.namespace("team:many").await;
    let writes =
        (0..100).map(|i| h.post("/v1/namespaces/team:many/memories", fact(&format!("m{i}"))));
    let mut ids = HashSet::new();
    for (status, ack) in futures::future::join_all(writes).await {
        assert_eq!(status, StatusCode::CREATED, "{ack}");
        ids.insert(ack["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 100);
    let (_, page) = h.get("/v1/namespaces/team:many/memories?limit=1000").await;
    let stored: HashSet<String> = page["memories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(stored, ids);
}

/// Ids the plugin makes are version 7 and sort in the order it made them:
/// one single write after another, then the items of one batch, then a
/// group of concurrent single writes (each later than everything before);
/// an id the caller brings is kept whatever its version.
async fn made_ids_are_time_ordered(h: &Harness) {
    h.namespace("team:order").await;
    let version = |id: &str| uuid::Uuid::parse_str(id).unwrap().get_version_num();
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(h.write("team:order", fact(&format!("single {i}"))).await);
    }
    let items: Vec<_> = (0..5)
        .map(|i| {
            json!({"namespace": "team:order", "content": format!("batched {i}"),
                        "kind": "fact", "source": "agent"})
        })
        .collect();
    let (status, body) = h
        .post("/v1/memories/batch", json!({ "writes": items }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for result in body["results"].as_array().unwrap() {
        made.push(result["id"].as_str().unwrap().to_string());
    }
    let before_group = made.last().unwrap().clone();
    let group = (0..16).map(|i| {
        h.post(
            "/v1/namespaces/team:order/memories",
            fact(&format!("concurrent {i}")),
        )
    });
    let mut concurrent = Vec::new();
    for (status, ack) in futures::future::join_all(group).await {
        assert_eq!(status, StatusCode::CREATED, "{ack}");
        concurrent.push(ack["id"].as_str().unwrap().to_string());
    }
    for id in made.iter().chain(&concurrent) {
        assert_eq!(version(id), 7, "{id}");
    }
    let parsed =
        |ids: &[String]| -> Vec<uuid::Uuid> { ids.iter().map(|id| id.parse().unwrap()).collect() };
    let made = parsed(&made);
    assert!(made.windows(2).all(|w| w[0] < w[1]), "{made:?}");
    let first_concurrent = parsed(&concurrent).into_iter().min().unwrap();
    assert!(first_concurrent > before_group.parse::<uuid::Uuid>().unwrap());
    assert_eq!(concurrent.iter().collect::<HashSet<_>>().len(), 16);

    let brought = uuid::Uuid::new_v4().to_string();
    let mut write = fact("brought its own id");
    write["id"] = json!(brought);
    assert_eq!(h.write("team:order", write).await, brought);
}

#[tokio::test]
async fn ids_the_postgres_plugin_makes_are_time_ordered() {
    made_ids_are_time_ordered(&pg_server(ServerConfig::default()).await).await;
}

#[tokio::test]
async fn ids_the_sqlite_plugin_makes_are_time_ordered() {
    made_ids_are_time_ordered(&sqlite_server(ServerConfig::default()).await).await;
}

#[tokio::test]
async fn an_id_living_in_another_namespace_answers_409_and_changes_nothing() {
    let h = pg_server(ServerConfig::default()).await;
    h.namespace("workspace:owner").await;
    h.namespace("workspace:thief").await;
    let id = h.write("workspace:owner", fact("original")).await;

    let mut stolen = fact("overwritten");
    stolen["id"] = json!(id);
    let (status, body) = h
        .post("/v1/namespaces/workspace:thief/memories", stolen.clone())
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_envelope(&body, "conflict");

    // The batch route refuses it the same way, for that item only.
    let mut item = stolen;
    item["namespace"] = json!("workspace:thief");
    let (status, body) = h
        .post("/v1/memories/batch", json!({"writes": [item]}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_envelope(&body["results"][0]["error"], "conflict");

    let owner = h.search(json!({"namespaces": ["workspace:owner"]})).await;
    assert_eq!(owner.len(), 1);
    assert_eq!(owner[0]["content"], "original");
    assert!(h
        .search(json!({"namespaces": ["workspace:thief"]}))
        .await
        .is_empty());
}

#[tokio::test]
async fn an_expired_memory_is_never_returned_and_the_sweep_removes_it() {
    let h = pg_server(ServerConfig {
        sweep_interval: Duration::from_secs(1),
        ..ServerConfig::default()
    })
    .await;
    h.namespace("team:ttl").await;
    let expires = chrono::Utc::now() + chrono::Duration::seconds(1);
    let mut write = fact("short lived");
    write["expires_at"] = json!(expires.to_rfc3339());
    h.write("team:ttl", write).await;
    h.write("team:ttl", fact("long lived")).await;
    assert_eq!(h.search(json!({"namespaces": ["team:ttl"]})).await.len(), 2);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    for body in [
        json!({"namespaces": ["team:ttl"]}),
        json!({"namespaces": ["team:ttl"], "query": "short lived"}),
        json!({"namespaces": ["team:ttl"], "query": "s"}),
    ] {
        let found = h.search(body).await;
        assert!(
            found.iter().all(|m| m["content"] != "short lived"),
            "{found:?}"
        );
    }
    let (_, page) = h.get("/v1/namespaces/team:ttl/memories").await;
    assert_eq!(page["memories"].as_array().unwrap().len(), 1);

    // The periodic sweep deletes the row itself.
    let pool = h.db.as_ref().unwrap().connect().await;
    let mut rows = i64::MAX;
    for _ in 0..100 {
        rows = sqlx::query_scalar("SELECT count(*) FROM memory_plugin.memory_records")
            .fetch_one(&pool)
            .await
            .unwrap();
        if rows == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rows, 1, "the sweep removed the expired row");
}

#[tokio::test]
async fn an_expired_namespace_behaves_as_absent() {
    let h = pg_server(ServerConfig::default()).await;
    let expires = chrono::Utc::now() + chrono::Duration::seconds(1);
    let (status, _) = h
        .call(
            reqwest::Method::PUT,
            "/v1/namespaces/team:brief",
            Some(json!({"kind": "team", "expires_at": expires.to_rfc3339()})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    h.write("team:brief", fact("soon gone")).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = h
        .post("/v1/namespaces/team:brief/memories", fact("too late"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_envelope(&body, "not_found");
    let (status, _) = h.get("/v1/namespaces/team:brief").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
