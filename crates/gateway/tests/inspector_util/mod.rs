//! Helpers shared by the inspector's tests: REST calls with a token, and
//! seeding many memories straight into the plugin through its batch route.

#![allow(dead_code)]

use chrono::{Duration, Utc};
use memory_contract::{
    BatchItemResult, BatchRequest, BatchWrite, MemoryKind, MemorySource, MemoryWrite,
    NamespaceKind, NamespaceUpsert,
};
use serde_json::Value;
use uuid::Uuid;

/// How a test call authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    Bearer(String),
}

/// One REST call: the status and the JSON body (`Null` when empty).
pub async fn rest(
    base: &str,
    method: reqwest::Method,
    path: &str,
    auth: &Auth,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = client.request(method, format!("{base}{path}"));
    if let Auth::Bearer(token) = auth {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: non-JSON {text:?}: {e}"))
    };
    (status, json)
}

/// Asserts the error envelope: `{"code": <code>, "message": <non-empty>}`.
pub fn assert_envelope(what: &str, body: &Value, code: &str) {
    assert_eq!(body["code"], code, "{what}: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
}

/// Writes `count` memories into `namespace` through the plugin's batch
/// route, `content(i)` each, created one second apart (the newest is
/// `i = 0`); returns their ids.
pub async fn seed(
    plugin_url: &str,
    namespace: &str,
    count: usize,
    kind_of: impl Fn(usize) -> MemoryKind,
    content: impl Fn(usize) -> String,
) -> Vec<Uuid> {
    let client = memory_client::Client::new(memory_client::ClientConfig::new(plugin_url))
        .expect("plugin client");
    client.refresh_capabilities().await.expect("plugin health");
    let kind = match namespace.split_once(':').map(|(k, _)| k) {
        Some("workspace") => NamespaceKind::Workspace,
        Some("team") => NamespaceKind::Team,
        Some("org") => NamespaceKind::Org,
        _ => NamespaceKind::Custom,
    };
    client
        .upsert_namespace(
            namespace,
            &NamespaceUpsert {
                kind,
                expires_at: None,
                metadata: None,
            },
        )
        .await
        .expect("namespace");
    let now = Utc::now();
    let mut ids = Vec::with_capacity(count);
    let all: Vec<usize> = (0..count).collect();
    for chunk in all.chunks(1000) {
        let writes = chunk
            .iter()
            .map(|&i| {
                let mut write = MemoryWrite::new(content(i), kind_of(i), MemorySource::Agent);
                write.id = Some(Uuid::new_v4());
                write.created_at = Some(now - Duration::seconds(i as i64 + 1));
                BatchWrite {
                    namespace: namespace.to_string(),
                    write,
                }
            })
            .collect();
        let answer = client
            .write_batch(&BatchRequest { writes })
            .await
            .expect("batch");
        for result in answer.results {
            match result {
                BatchItemResult::Ok(ack) => ids.push(ack.id),
                BatchItemResult::Err { error } => panic!("batch item failed: {error:?}"),
            }
        }
    }
    ids
}
