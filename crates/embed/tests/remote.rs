//! The remote embedder against a real HTTP server on an ephemeral port: an
//! axum app speaking the OpenAI embeddings dialect, with routes that fail in
//! the ways real endpoints do.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use memory_embed::{
    build_embedder, EmbedConfig, EmbedError, EmbedMode, Embedder, RemoteConfig, RemoteEmbedder,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KEY: &str = "sk-test-very-secret-key";
const DIM: usize = 4;

/// One request as the server saw it: its authorization header and body.
type Seen = (Option<String>, Value);

#[derive(Clone, Default)]
struct Server {
    /// Requests seen per mode.
    seen: Arc<Mutex<HashMap<String, Vec<Seen>>>>,
}

impl Server {
    fn count(&self, mode: &str) -> usize {
        self.seen.lock().unwrap().get(mode).map_or(0, Vec::len)
    }
    fn requests(&self, mode: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .get(mode)
            .cloned()
            .unwrap_or_default()
    }
}

/// A vector that identifies its text: its length in bytes, in chars, its
/// first byte, and 1.
fn vector_of(text: &str, dim: usize) -> Vec<f32> {
    let mut v = vec![
        text.len() as f32,
        text.chars().count() as f32,
        f32::from(text.bytes().next().unwrap_or(0)),
        1.0,
    ];
    v.resize(dim, 0.5);
    v
}

fn answer(inputs: &[String], dim: usize) -> Value {
    // Reversed, as a server may: the client must order by `index`.
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .rev()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": vector_of(t, dim)}))
        .collect();
    json!({"object": "list", "data": data, "model": "test-model", "usage": {"prompt_tokens": 1, "total_tokens": 1}})
}

async fn embeddings(
    State(server): State<Server>,
    mode: Option<Path<String>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mode = mode.map_or_else(|| "ok".to_string(), |Path(m)| m);
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let attempt = {
        let mut seen = server.seen.lock().unwrap();
        let list = seen.entry(mode.clone()).or_default();
        list.push((auth.clone(), body.clone()));
        list.len()
    };
    let inputs: Vec<String> = body["input"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    match mode.as_str() {
        "ok" => {
            if auth.as_deref() != Some(&format!("Bearer {KEY}")) {
                return (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({"error": {"message": "bad key"}})),
                )
                    .into_response();
            }
            Json(answer(&inputs, DIM)).into_response()
        }
        "noauth" => Json(answer(&inputs, DIM)).into_response(),
        "flaky" if attempt <= 2 => (StatusCode::SERVICE_UNAVAILABLE, "warming up").into_response(),
        "flaky" => Json(answer(&inputs, DIM)).into_response(),
        "ratelimited" if attempt == 1 => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "0")],
            "slow down",
        )
            .into_response(),
        "ratelimited" => Json(answer(&inputs, DIM)).into_response(),
        "broken" => (StatusCode::INTERNAL_SERVER_ERROR, "database on fire").into_response(),
        "badrequest" => (
            StatusCode::BAD_REQUEST,
            format!("{{\"error\":\"model not found (you sent key {KEY})\"}}"),
        )
            .into_response(),
        "wrongdim" => Json(answer(&inputs, 6)).into_response(),
        "short" => {
            let mut a = answer(&inputs, DIM);
            a["data"].as_array_mut().unwrap().pop();
            Json(a).into_response()
        }
        "dupindex" => Json(json!({"data": [
            {"index": 0, "embedding": [1.0, 0.0, 0.0, 0.0]},
            {"index": 0, "embedding": [1.0, 0.0, 0.0, 0.0]}
        ]}))
        .into_response(),
        "noindex" => {
            // Some servers leave `index` out and answer in order.
            let data: Vec<Value> = inputs
                .iter()
                .map(|t| json!({"embedding": vector_of(t, DIM)}))
                .collect();
            Json(json!({"data": data})).into_response()
        }
        "garbage" => (StatusCode::OK, "<html>proxy login</html>").into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Json(answer(&inputs, DIM)).into_response()
        }
        _ => (StatusCode::NOT_FOUND, "no such mode").into_response(),
    }
}

async fn start() -> (Server, SocketAddr) {
    let server = Server::default();
    let app = Router::new()
        .route("/v1/embeddings", post(embeddings))
        .route("/{mode}/v1/embeddings", post(embeddings))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (server, addr)
}

fn config(url: String) -> RemoteConfig {
    let mut c = RemoteConfig::new(url, "test-model");
    c.api_key = Some(KEY.to_string());
    c.initial_backoff = Duration::from_millis(5);
    c.max_backoff = Duration::from_millis(40);
    c.timeout = Duration::from_secs(3);
    c
}

fn texts(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn embeds_in_input_order_with_the_bearer_key_and_model() {
    let (server, addr) = start().await;
    // Base URL without the suffix.
    let embedder = RemoteEmbedder::new(config(format!("http://{addr}"))).unwrap();
    assert_eq!(embedder.endpoint(), format!("http://{addr}/v1/embeddings"));
    assert_eq!(embedder.dimension(), 0, "unknown before the first answer");
    let input = texts(&["a", "bbb", "cc", "dddd", "ééé"]);
    let out = embedder.embed(&input).await.unwrap();
    assert_eq!(out.len(), input.len());
    for (t, v) in input.iter().zip(&out) {
        assert_eq!(v, &vector_of(t, DIM), "{t}");
    }
    assert_eq!(embedder.dimension(), DIM);
    assert!(
        embedder.describe().contains("4 dimensions"),
        "{}",
        embedder.describe()
    );
    assert!(!embedder.describe().contains(KEY));

    let seen = server.requests("ok");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0.as_deref(), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(seen[0].1, json!({"model": "test-model", "input": input}));

    // With the full suffix, and an empty input sends nothing.
    let embedder = RemoteEmbedder::new(config(format!("http://{addr}/v1/embeddings/"))).unwrap();
    assert!(embedder.embed(&[]).await.unwrap().is_empty());
    assert_eq!(server.count("ok"), 1);
    assert_eq!(embedder.probe().await.unwrap(), DIM);
}

#[tokio::test]
async fn long_lists_are_split_into_requests_and_kept_in_order() {
    let (server, addr) = start().await;
    let mut c = config(format!("http://{addr}/v1"));
    c.batch_size = 2;
    let embedder = RemoteEmbedder::new(c).unwrap();
    let input: Vec<String> = (0..5).map(|i| "x".repeat(i + 1)).collect();
    let out = embedder.embed(&input).await.unwrap();
    assert_eq!(server.count("ok"), 3);
    for (t, v) in input.iter().zip(&out) {
        assert_eq!(v, &vector_of(t, DIM));
    }
}

#[tokio::test]
async fn no_key_means_no_authorization_header_and_missing_index_means_in_order() {
    let (server, addr) = start().await;
    let mut c = config(format!("http://{addr}/noauth"));
    c.api_key = None;
    let out = RemoteEmbedder::new(c)
        .unwrap()
        .embed(&texts(&["q", "rr"]))
        .await
        .unwrap();
    assert_eq!(out[1], vector_of("rr", DIM));
    assert_eq!(server.requests("noauth")[0].0, None);

    let out = RemoteEmbedder::new(config(format!("http://{addr}/noindex")))
        .unwrap()
        .embed(&texts(&["q", "rr", "sss"]))
        .await
        .unwrap();
    assert_eq!(out[2], vector_of("sss", DIM));
}

#[tokio::test]
async fn retries_5xx_and_429_then_succeeds() {
    let (server, addr) = start().await;
    let embedder = RemoteEmbedder::new(config(format!("http://{addr}/flaky"))).unwrap();
    let out = embedder.embed(&texts(&["hello"])).await.unwrap();
    assert_eq!(out[0], vector_of("hello", DIM));
    assert_eq!(server.count("flaky"), 3, "two 503s, then success");

    let embedder = RemoteEmbedder::new(config(format!("http://{addr}/ratelimited"))).unwrap();
    embedder.embed(&texts(&["hello"])).await.unwrap();
    assert_eq!(server.count("ratelimited"), 2);
}

#[tokio::test]
async fn retries_are_bounded_and_the_error_says_so() {
    let (server, addr) = start().await;
    let mut c = config(format!("http://{addr}/broken"));
    c.max_retries = 2;
    let err = RemoteEmbedder::new(c)
        .unwrap()
        .embed(&texts(&["x"]))
        .await
        .unwrap_err();
    assert_eq!(server.count("broken"), 3);
    match &err {
        EmbedError::Status {
            status,
            attempts,
            body,
            ..
        } => {
            assert_eq!((*status, *attempts), (500, 3));
            assert!(body.contains("database on fire"), "{body}");
        }
        other => panic!("expected a status error, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("500") && msg.contains("3 attempt"), "{msg}");
}

#[tokio::test]
async fn client_errors_are_not_retried_and_never_show_the_key() {
    let (server, addr) = start().await;
    let embedder = RemoteEmbedder::new(config(format!("http://{addr}/badrequest"))).unwrap();
    let err = embedder.embed(&texts(&["x"])).await.unwrap_err();
    assert_eq!(server.count("badrequest"), 1);
    let shown = format!("{err} {err:?}");
    assert!(
        shown.contains("400") && shown.contains("model not found"),
        "{shown}"
    );
    assert!(!shown.contains(KEY), "{shown}");

    // A wrong key: 401, once.
    let mut c = config(format!("http://{addr}"));
    c.api_key = Some("sk-wrong".to_string());
    let err = RemoteEmbedder::new(c)
        .unwrap()
        .embed(&texts(&["x"]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EmbedError::Status {
                status: 401,
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_dimension_mismatch_names_both_dimensions() {
    let (_server, addr) = start().await;
    let mut c = config(format!("http://{addr}/wrongdim"));
    c.expected_dimension = Some(DIM);
    let embedder = RemoteEmbedder::new(c).unwrap();
    assert_eq!(embedder.dimension(), DIM);
    let err = embedder.embed(&texts(&["x"])).await.unwrap_err();
    assert!(
        matches!(
            err,
            EmbedError::DimensionMismatch {
                expected: 4,
                actual: 6,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("6-dimensional") && msg.contains("4 dimensions"),
        "{msg}"
    );
    assert!(msg.contains("test-model"), "{msg}");

    // Without an expected dimension the first answer sets it, and a later
    // answer of another length is refused.
    let embedder = RemoteEmbedder::new(config(format!("http://{addr}/wrongdim"))).unwrap();
    embedder.embed(&texts(&["x"])).await.unwrap();
    assert_eq!(embedder.dimension(), 6);
}

#[tokio::test]
async fn malformed_answers_are_refused_clearly() {
    let (_server, addr) = start().await;
    for (mode, needle) in [
        ("short", "1 embeddings for 2 inputs"),
        ("dupindex", "index 0 appears twice"),
        ("garbage", "not an embeddings answer"),
    ] {
        let embedder = RemoteEmbedder::new(config(format!("http://{addr}/{mode}"))).unwrap();
        let err = embedder.embed(&texts(&["x", "y"])).await.unwrap_err();
        assert!(
            matches!(err, EmbedError::BadResponse { .. }),
            "{mode}: {err:?}"
        );
        assert!(err.to_string().contains(needle), "{mode}: {err}");
    }
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_retried_then_reported() {
    let (server, addr) = start().await;
    let mut c = config(format!("http://{addr}/slow"));
    c.timeout = Duration::from_millis(200);
    c.max_retries = 1;
    let err = RemoteEmbedder::new(c)
        .unwrap()
        .embed(&texts(&["x"]))
        .await
        .unwrap_err();
    assert_eq!(server.count("slow"), 2);
    match &err {
        EmbedError::Transport {
            attempts, message, ..
        } => {
            assert_eq!(*attempts, 2);
            assert!(message.contains("timed out"), "{message}");
        }
        other => panic!("expected a transport error, got {other:?}"),
    }

    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut c = config(format!("http://user:pw-secret@127.0.0.1:{port}"));
    c.max_retries = 2;
    let err = RemoteEmbedder::new(c)
        .unwrap()
        .embed(&texts(&["x"]))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, EmbedError::Transport { attempts: 3, .. }),
        "{err:?}"
    );
    assert!(msg.contains("connection failed"), "{msg}");
    assert!(!msg.contains("pw-secret"), "{msg}");
}

#[tokio::test]
async fn from_env_style_configuration_builds_a_remote_embedder() {
    let (_server, addr) = start().await;
    let vars: HashMap<&str, String> = HashMap::from([
        ("MEMORY_EMBED", "remote".to_string()),
        ("MEMORY_EMBED_URL", format!("http://{addr}/v1/embeddings")),
        ("MEMORY_EMBED_MODEL", "test-model".to_string()),
        ("MEMORY_EMBED_API_KEY", KEY.to_string()),
        ("MEMORY_EMBED_DIMENSION", DIM.to_string()),
    ]);
    let cfg = EmbedConfig::from_lookup(|n| vars.get(n).cloned()).unwrap();
    assert_eq!(cfg.mode, EmbedMode::Remote);
    let embedder = build_embedder(&cfg).unwrap().expect("an embedder");
    assert_eq!(embedder.dimension(), DIM);
    let out = embedder.embed(&texts(&["hi"])).await.unwrap();
    assert_eq!(out[0], vector_of("hi", DIM));

    let off =
        EmbedConfig::from_lookup(|n| (n == "MEMORY_EMBED").then(|| "off".to_string())).unwrap();
    assert!(build_embedder(&off).unwrap().is_none());
}
