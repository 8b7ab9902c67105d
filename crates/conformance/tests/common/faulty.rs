//! A deliberately faulty plugin: an HTTP proxy in front of our real plugin
//! that breaks one contract rule at a time, so tests can show the suite
//! notices each broken rule. With [`Fault::None`] it passes everything
//! through and only records the namespaces it saw created.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// The rule the proxy breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Breaks nothing.
    None,
    /// Drops `id` from memory writes, so every write makes a new row.
    IgnoreId,
    /// Gives writes without id the same fixed id, so they overwrite each other.
    FixedIdForNewWrites,
    /// Search also returns namespaces that merely start with a requested name
    /// (case-insensitively).
    LeakPrefixMatches,
    /// Forget deletes the memory whatever namespace asks.
    ForgetIgnoresNamespace,
    /// Forget of an absent memory answers 204 instead of 404.
    ForgetAlways204,
    /// A body that is not JSON gets a 500.
    BadJsonIs500,
    /// Error answers lose their envelope (plain text body).
    DropErrorEnvelope,
    /// A write with an id living in another namespace moves it there.
    MoveIdsAcrossNamespaces,
    /// Drops `expires_at` from memory writes, so expired rows are returned.
    ReturnExpiredRows,
    /// Sorts unscored search results newest first, ignoring pins.
    IgnorePinOrder,
    /// Reverses newest-first search results.
    OldestFirst,
    /// Drops `kinds` from searches.
    IgnoreKinds,
    /// Reverses the results of scored (embedding, full-text) searches.
    ReverseScoredResults,
    /// Clamps search `limit` to 100 instead of refusing it.
    AcceptLimitOver100,
    /// Accepts blank content by filling it in.
    AcceptBlankContent,
    /// Health answer without `version`.
    HealthWithoutVersion,
    /// Health answer with `"capabilities": null` (sloppy, not broken).
    HealthCapabilitiesNull,
    /// Health answer with `capabilities` a string (broken).
    HealthCapabilitiesString,
    /// A second PUT of a namespace answers 409.
    UpsertNotIdempotent,
    /// Batch results come back reversed.
    BatchOutOfOrder,
    /// List pages come back in descending id order.
    ListOutOfOrder,
    /// Scan pages come back in descending id order.
    ScanOutOfOrder,
    /// Checksum answers carry each bucket's digest with its first hex digit
    /// flipped.
    ChecksumDigestFlipped,
    /// Checksum answers lose their last bucket.
    ChecksumDropsBucket,
    /// Drops `created_at` from writes.
    DropCreatedAt,
    /// Drops `propagation` from search results.
    DropPropagation,
    /// Drops `mode` from searches, so a hybrid search runs by the v1 rules.
    IgnoreMode,
}

const FIXED_ID: &str = "00000000-0000-4000-8000-000000000001";

struct Proxy {
    fault: Fault,
    upstream: String,
    http: reqwest::Client,
    /// Namespaces created (PUT answered 2xx) through the proxy.
    namespaces: Mutex<HashSet<String>>,
    /// Namespace names any PUT named, answered or not.
    put_names: Mutex<HashSet<String>>,
    /// Memory id -> namespace, from write answers.
    homes: Mutex<HashMap<String, String>>,
}

/// A running faulty proxy.
pub struct FaultyPlugin {
    pub url: String,
    proxy: Arc<Proxy>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultyPlugin {
    /// Starts a proxy breaking `fault` in front of the plugin at `upstream`.
    pub async fn start(upstream: &str, fault: Fault) -> FaultyPlugin {
        let proxy = Arc::new(Proxy {
            fault,
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            namespaces: Mutex::new(HashSet::new()),
            put_names: Mutex::new(HashSet::new()),
            homes: Mutex::new(HashMap::new()),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(proxy.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FaultyPlugin {
            url: format!("http://{addr}"),
            proxy,
            task,
        }
    }

    /// Every namespace name a PUT went through the proxy for.
    pub fn namespaces_seen(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .proxy
            .namespaces
            .lock()
            .expect("lock")
            .iter()
            .cloned()
            .collect();
        names.sort();
        names
    }
}

impl Drop for FaultyPlugin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn envelope(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"code": code, "message": message})),
    )
        .into_response()
}

async fn forward(
    State(proxy): State<Arc<Proxy>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let fault = proxy.fault;
    let mut body_json: Option<Value> = serde_json::from_slice(&body).ok();

    if fault == Fault::BadJsonIs500 && !body.is_empty() && body_json.is_none() {
        return envelope(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "could not parse",
        );
    }

    // Request rewriting.
    match (method.as_str(), segments.as_slice()) {
        ("PUT", ["v1", "namespaces", name]) => {
            let fresh = proxy
                .put_names
                .lock()
                .expect("lock")
                .insert(name.to_string());
            if fault == Fault::UpsertNotIdempotent && !fresh {
                return envelope(StatusCode::CONFLICT, "conflict", "namespace exists");
            }
        }
        ("POST", ["v1", "namespaces", name, "memories"]) => {
            if let Some(Value::Object(write)) = body_json.as_mut() {
                match fault {
                    Fault::IgnoreId => {
                        write.remove("id");
                    }
                    Fault::FixedIdForNewWrites if !write.contains_key("id") => {
                        write.insert("id".into(), json!(FIXED_ID));
                    }
                    Fault::ReturnExpiredRows => {
                        write.remove("expires_at");
                    }
                    Fault::DropCreatedAt => {
                        write.remove("created_at");
                    }
                    Fault::AcceptBlankContent
                        if write
                            .get("content")
                            .and_then(Value::as_str)
                            .is_some_and(|c| c.trim().is_empty()) =>
                    {
                        write.insert("content".into(), json!("(blank)"));
                    }
                    Fault::MoveIdsAcrossNamespaces => {
                        let id = write.get("id").and_then(Value::as_str).map(str::to_string);
                        let home = id
                            .as_ref()
                            .and_then(|id| proxy.homes.lock().expect("lock").get(id).cloned());
                        if let (Some(id), Some(home)) = (id, home) {
                            if home != *name {
                                let _ = proxy
                                    .http
                                    .delete(format!("{}/v1/memories/{id}", proxy.upstream))
                                    .headers(auth_only(&headers))
                                    .json(&json!({"requested_by_namespace": home}))
                                    .send()
                                    .await;
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        ("DELETE", ["v1", "memories", id]) if fault == Fault::ForgetIgnoresNamespace => {
            let home = proxy.homes.lock().expect("lock").get(*id).cloned();
            if let (Some(home), Some(Value::Object(req))) = (home, body_json.as_mut()) {
                req.insert("requested_by_namespace".into(), json!(home));
            }
        }
        ("POST", ["v1", "search"]) => {
            if let Some(Value::Object(req)) = body_json.as_mut() {
                match fault {
                    Fault::LeakPrefixMatches => {
                        let requested: Vec<String> = req
                            .get("namespaces")
                            .and_then(Value::as_array)
                            .map(|a| {
                                a.iter()
                                    .filter_map(Value::as_str)
                                    .map(str::to_lowercase)
                                    .collect()
                            })
                            .unwrap_or_default();
                        let known = proxy.namespaces.lock().expect("lock").clone();
                        let widened: Vec<Value> = known
                            .into_iter()
                            .filter(|k| requested.iter().any(|r| k.to_lowercase().starts_with(r)))
                            .map(Value::String)
                            .collect();
                        if !widened.is_empty() {
                            req.insert("namespaces".into(), Value::Array(widened));
                        }
                    }
                    Fault::IgnoreKinds => {
                        req.remove("kinds");
                    }
                    Fault::IgnoreMode => {
                        req.remove("mode");
                    }
                    Fault::AcceptLimitOver100
                        if req
                            .get("limit")
                            .and_then(Value::as_i64)
                            .is_some_and(|l| l > 100) =>
                    {
                        req.insert("limit".into(), json!(100));
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }

    // Forward.
    let url = match uri.query() {
        Some(q) => format!("{}{path}?{q}", proxy.upstream),
        None => format!("{}{path}", proxy.upstream),
    };
    let mut request = proxy
        .http
        .request(method.clone(), url)
        .headers(auth_only(&headers));
    if !body.is_empty() {
        let bytes = match &body_json {
            Some(v) => serde_json::to_vec(v).expect("encode JSON"),
            None => body.to_vec(),
        };
        request = request
            .header("content-type", "application/json")
            .body(bytes);
    }
    let upstream = match request.send().await {
        Ok(r) => r,
        Err(e) => return envelope(StatusCode::BAD_GATEWAY, "unavailable", &e.to_string()),
    };
    let mut status = upstream.status().as_u16();
    let answer = upstream.bytes().await.unwrap_or_default();
    let mut answer_json: Option<Value> = serde_json::from_slice(&answer).ok();

    // Answer rewriting.
    if let (true, Some(ack)) = ((200..300).contains(&status), answer_json.as_ref()) {
        if let (Some(id), Some(ns)) = (
            ack.get("id").and_then(Value::as_str),
            ack.get("namespace").and_then(Value::as_str),
        ) {
            proxy
                .homes
                .lock()
                .expect("lock")
                .insert(id.to_string(), ns.to_string());
        }
    }
    match (method.as_str(), segments.as_slice()) {
        ("PUT", ["v1", "namespaces", name]) if (200..300).contains(&status) => {
            proxy
                .namespaces
                .lock()
                .expect("lock")
                .insert(name.to_string());
        }
        ("GET", ["v1", "health"]) if fault == Fault::HealthWithoutVersion => {
            if let Some(Value::Object(h)) = answer_json.as_mut() {
                h.remove("version");
            }
        }
        ("GET", ["v1", "health"]) if fault == Fault::HealthCapabilitiesNull => {
            if let Some(Value::Object(h)) = answer_json.as_mut() {
                h.insert("capabilities".into(), Value::Null);
            }
        }
        ("GET", ["v1", "health"]) if fault == Fault::HealthCapabilitiesString => {
            if let Some(Value::Object(h)) = answer_json.as_mut() {
                h.insert("capabilities".into(), json!("fts"));
            }
        }
        ("DELETE", ["v1", "memories", _]) if fault == Fault::ForgetAlways204 && status == 404 => {
            status = 204;
            answer_json = None;
        }
        ("POST", ["v1", "search"]) => {
            if let Some(memories) = answer_json
                .as_mut()
                .and_then(|a| a.get_mut("memories"))
                .and_then(Value::as_array_mut)
            {
                let scored = memories
                    .iter()
                    .any(|m| m.get("score").is_some_and(|s| !s.is_null()));
                match fault {
                    Fault::IgnorePinOrder if !scored => memories.sort_by(|a, b| {
                        let at = |m: &Value| {
                            m.get("created_at")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string()
                        };
                        at(b).cmp(&at(a))
                    }),
                    Fault::OldestFirst if !scored => memories.reverse(),
                    Fault::ReverseScoredResults if scored => memories.reverse(),
                    Fault::DropPropagation => {
                        for m in memories.iter_mut() {
                            if let Some(m) = m.as_object_mut() {
                                m.remove("propagation");
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        ("POST", ["v1", "memories", "batch"]) if fault == Fault::BatchOutOfOrder => {
            if let Some(results) = answer_json
                .as_mut()
                .and_then(|a| a.get_mut("results"))
                .and_then(Value::as_array_mut)
            {
                results.reverse();
            }
        }
        ("GET", ["v1", "namespaces", _, "memories"]) if fault == Fault::ListOutOfOrder => {
            if let Some(memories) = answer_json
                .as_mut()
                .and_then(|a| a.get_mut("memories"))
                .and_then(Value::as_array_mut)
            {
                memories.reverse();
            }
        }
        ("GET", ["v1", "memories", "checksums"]) => {
            if let Some(buckets) = answer_json
                .as_mut()
                .and_then(|a| a.get_mut("buckets"))
                .and_then(Value::as_array_mut)
            {
                match fault {
                    Fault::ChecksumDigestFlipped => {
                        for bucket in buckets.iter_mut() {
                            if let Some(digest) = bucket.get("digest").and_then(Value::as_str) {
                                let mut digits: Vec<char> = digest.chars().collect();
                                if let Some(d) = digits.first_mut().and_then(|c| c.to_digit(16)) {
                                    digits[0] = std::char::from_digit(d ^ 1, 16).unwrap_or('0');
                                }
                                bucket["digest"] = json!(digits.into_iter().collect::<String>());
                            }
                        }
                    }
                    Fault::ChecksumDropsBucket => {
                        buckets.pop();
                    }
                    _ => {}
                }
            }
        }
        ("GET", ["v1", "memories"]) if fault == Fault::ScanOutOfOrder => {
            if let Some(memories) = answer_json
                .as_mut()
                .and_then(|a| a.get_mut("memories"))
                .and_then(Value::as_array_mut)
            {
                memories.reverse();
            }
        }
        _ => {}
    }

    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    if fault == Fault::DropErrorEnvelope && status.as_u16() >= 400 {
        return (status, "something went wrong").into_response();
    }
    match (status, answer_json) {
        (StatusCode::NO_CONTENT, _) => status.into_response(),
        (_, Some(v)) => (status, axum::Json(v)).into_response(),
        (_, None) => (status, answer.to_vec()).into_response(),
    }
}

fn auth_only(headers: &HeaderMap) -> reqwest::header::HeaderMap {
    let mut out = reqwest::header::HeaderMap::new();
    if let Some(v) = headers.get("authorization") {
        if let Ok(v) = reqwest::header::HeaderValue::from_bytes(v.as_bytes()) {
            out.insert(reqwest::header::AUTHORIZATION, v);
        }
    }
    out
}
