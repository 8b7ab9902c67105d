//! A sloppy but working v1 peer: an HTTP proxy in front of a real plugin
//! that answers the way some other implementations do. Every empty list in
//! a 2xx JSON answer (`memories`, `results`, `buckets`, `capabilities`) is
//! sent as `null` (or left out), and every optional memory field the plugin
//! omitted is sent as `null`. Requests go through unchanged.
//!
//! The reference Go plugin answers an empty search with `{"memories":null}`;
//! tests of the client, the conformance suite and the backfill run against
//! this proxy to show they take such answers.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How the proxy sends an empty list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmptyList {
    /// `"memories": null`.
    Null,
    /// The key is left out.
    Absent,
}

/// List-valued keys of the contract's answers.
const LIST_KEYS: &[&str] = &["memories", "results", "buckets", "capabilities"];
/// Optional keys of a memory that the proxy sends as `null` when absent.
const OPTIONAL_MEMORY_KEYS: &[&str] = &["expires_at", "propagation", "score"];

struct Proxy {
    upstream: String,
    http: reqwest::Client,
    empty: EmptyList,
    rewritten: AtomicU64,
}

/// A running sloppy proxy; stops when dropped.
pub struct SloppyPlugin {
    url: String,
    proxy: Arc<Proxy>,
    task: tokio::task::JoinHandle<()>,
}

impl SloppyPlugin {
    /// Starts a proxy on an ephemeral port of 127.0.0.1 in front of the
    /// plugin at `upstream`.
    ///
    /// # Panics
    /// When no local port can be bound.
    pub async fn start(upstream: &str, empty: EmptyList) -> SloppyPlugin {
        let proxy = Arc::new(Proxy {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            empty,
            rewritten: AtomicU64::new(0),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(proxy.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("memory-testkit: bind the sloppy proxy");
        let addr = listener.local_addr().expect("proxy address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        SloppyPlugin {
            url: format!("http://{addr}"),
            proxy,
            task,
        }
    }

    /// The proxy's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many empty lists it has rewritten so far.
    pub fn lists_rewritten(&self) -> u64 {
        self.proxy.rewritten.load(Ordering::Relaxed)
    }
}

impl Drop for SloppyPlugin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const FORWARDED: &[&str] = &["authorization", "content-type", "x-request-id"];

async fn forward(
    State(proxy): State<Arc<Proxy>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = proxy
        .http
        .request(method, format!("{}{path_and_query}", proxy.upstream))
        .body(body);
    for name in FORWARDED {
        if let Some(value) = headers.get(*name) {
            request = request.header(*name, value.clone());
        }
    }
    let answer = match request.send().await {
        Ok(a) => a,
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!("sloppy proxy: upstream unreachable: {e}"),
            )
                .into_response()
        }
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = answer.headers().get("content-type").cloned();
    let bytes = answer.bytes().await.unwrap_or_default();
    let body = if status.is_success() {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(mut json) => {
                let n = sloppify(&mut json, proxy.empty);
                proxy.rewritten.fetch_add(n, Ordering::Relaxed);
                serde_json::to_vec(&json).unwrap_or_else(|_| bytes.to_vec())
            }
            Err(_) => bytes.to_vec(),
        }
    } else {
        bytes.to_vec()
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    if let Some(ct) = content_type {
        response
            .headers_mut()
            .insert(HeaderName::from_static("content-type"), ct);
    }
    response
}

/// Rewrites an answer the sloppy way; returns how many empty lists changed.
fn sloppify(json: &mut Value, empty: EmptyList) -> u64 {
    let Some(object) = json.as_object_mut() else {
        return 0;
    };
    let mut rewritten = 0;
    for key in LIST_KEYS {
        let is_empty = object
            .get(*key)
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty);
        if is_empty {
            rewritten += 1;
            match empty {
                EmptyList::Null => {
                    object.insert((*key).to_string(), Value::Null);
                }
                EmptyList::Absent => {
                    object.remove(*key);
                }
            }
        }
    }
    if let Some(Value::Array(memories)) = object.get_mut("memories") {
        for memory in memories.iter_mut().filter_map(Value::as_object_mut) {
            for key in OPTIONAL_MEMORY_KEYS {
                memory.entry(*key).or_insert(Value::Null);
            }
        }
    }
    rewritten
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_lists_become_null_or_absent_and_optional_fields_null() {
        let mut search = json!({"memories": []});
        assert_eq!(sloppify(&mut search, EmptyList::Null), 1);
        assert_eq!(search, json!({"memories": null}));
        let mut search = json!({"memories": []});
        sloppify(&mut search, EmptyList::Absent);
        assert_eq!(search, json!({}));
        let mut health = json!({"status": "ok", "version": "1.0.0", "capabilities": []});
        sloppify(&mut health, EmptyList::Null);
        assert_eq!(health["capabilities"], Value::Null);
        let mut found = json!({"memories": [{"id": "x", "pin": false}]});
        assert_eq!(sloppify(&mut found, EmptyList::Null), 0);
        assert_eq!(
            found,
            json!({"memories": [{"id": "x", "pin": false, "expires_at": null, "propagation": null, "score": null}]})
        );
    }
}
