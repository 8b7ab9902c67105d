//! What the remote embedder logs while retrying: the endpoint, never the
//! API key. In a test binary of its own, because the log capture is the
//! process-wide subscriber (a thread-scoped one races with other tests over
//! tracing's per-callsite cache).

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use memory_embed::{Embedder, RemoteConfig, RemoteEmbedder};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KEY: &str = "sk-test-very-secret-key";

/// A `MakeWriter` that keeps everything logged.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn retry_logs_name_the_endpoint_but_never_the_key() {
    let logs = Captured::default();
    tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::TRACE)
        .init();

    // Every other request fails with 503.
    let calls = Arc::new(AtomicUsize::new(0));
    let app = Router::new().route(
        "/flaky/v1/embeddings",
        post(move |Json(body): Json<Value>| {
            let calls = Arc::clone(&calls);
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) & 1 == 0 {
                    return (StatusCode::SERVICE_UNAVAILABLE, "warming up").into_response();
                }
                let n = body["input"].as_array().map_or(0, Vec::len);
                let data: Vec<Value> = (0..n)
                    .map(|i| json!({"index": i, "embedding": [1.0, 0.0]}))
                    .collect();
                Json(json!({ "data": data })).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut config = RemoteConfig::new(format!("http://{addr}/flaky"), "test-model");
    config.api_key = Some(KEY.to_string());
    config.initial_backoff = Duration::from_millis(5);
    let shown = format!("{config:?}");
    assert!(
        shown.contains("<redacted>") && !shown.contains(KEY),
        "{shown}"
    );
    let embedder = RemoteEmbedder::new(config).unwrap();
    embedder.embed(&["x".to_string()]).await.unwrap();
    embedder.embed(&["y".to_string()]).await.unwrap();

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("retrying") && text.contains("/flaky/v1/embeddings") && text.contains("503"),
        "{text}"
    );
    assert!(!text.contains(KEY), "{text}");
}
