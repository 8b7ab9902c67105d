//! A plugin that is down or slow gives tool errors saying the memory store
//! is unavailable, within the client's timeout; the gateway stays up and
//! recovers when the plugin returns. `/v1/health` says which side is down.

mod common;

use common::{connect, err_text, ok_json, spawn_gateway, Env};
use memory_client::{BreakerPolicy, Client, ClientConfig};
use memory_gateway::auth::{self, Caller, Secret};
use memory_gateway::directory::Directory;
use memory_gateway::http::AppState;
use memory_gateway::limit::{RateLimit, RateLimiter};
use memory_gateway::service::Gateway;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

async fn serve_plugin(
    listener: TcpListener,
    store: Arc<dyn memory_plugin::store::Store>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(memory_plugin::server::serve(
        listener,
        store,
        Default::default(),
        async move {
            let _ = rx.await;
        },
    ));
    (tx, task)
}

#[tokio::test]
async fn a_plugin_outage_is_a_tool_error_and_the_gateway_recovers() {
    let env = Env::start().await;
    let plugin_db = memory_testkit::pg15().await;
    let store = memory_plugin::store::open(Some(plugin_db.url()), &Default::default())
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, task) = serve_plugin(listener, store.clone()).await;
    let gateway = spawn_gateway(
        env.platform.url(),
        &format!("http://{addr}"),
        RateLimit::default(),
    )
    .await;
    let token = auth::issue(&gateway.state.secret, Caller::Workspace(env.a.child), None);
    let mcp = connect(&format!("{}/mcp", gateway.url), &token).await;
    ok_json(
        &mcp,
        "commit_memory",
        json!({"content": "before the outage"}),
    )
    .await;
    let health = reqwest::get(format!("{}/v1/health", gateway.url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let _ = stop.send(());
    task.await.unwrap().unwrap();
    for tool in ["commit_memory", "recall_memory"] {
        let started = Instant::now();
        let msg = err_text(&mcp, tool, json!({"content": "during the outage"})).await;
        assert!(msg.contains("memory store is unavailable"), "{tool}: {msg}");
        assert!(started.elapsed() < Duration::from_secs(15));
    }
    let health = reqwest::get(format!("{}/v1/health", gateway.url))
        .await
        .unwrap();
    assert_eq!(health.status(), 503);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["plugin"], "unavailable");
    assert_eq!(body["database"], "ok");

    // The plugin comes back on the same address: the same session recovers.
    let listener = TcpListener::bind(addr).await.unwrap();
    let (_stop, _task) = serve_plugin(listener, store).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (is_error, text) = common::call(&mcp, "recall_memory", json!({})).await;
        if !is_error {
            assert!(text.contains("before the outage"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let health = reqwest::get(format!("{}/v1/health", gateway.url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn a_plugin_that_never_answers_times_out_as_unavailable() {
    let env = Env::start().await;
    // Accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let directory = Directory::connect(env.platform.url()).await.unwrap();
    let client = Client::new(
        ClientConfig::new(format!("http://{addr}"))
            .timeout(Duration::from_millis(300))
            .breaker(BreakerPolicy {
                failure_threshold: 3,
                open_for: Duration::from_secs(5),
            }),
    )
    .unwrap();
    let state = AppState {
        gateway: Arc::new(Gateway::new(
            directory,
            client,
            RateLimiter::new(RateLimit::default()),
        )),
        secret: Secret::from_text(common::SECRET).unwrap(),
    };
    let gateway = memory_gateway::app::spawn(state).await.unwrap();
    let token = auth::issue(&gateway.state.secret, Caller::Workspace(env.a.child), None);
    let mcp = connect(&format!("{}/mcp", gateway.url), &token).await;
    let started = Instant::now();
    let msg = err_text(&mcp, "search_memory", json!({"query": "anything"})).await;
    assert!(
        msg.contains("memory store is unavailable") && msg.contains("in time"),
        "{msg}"
    );
    // Three attempts of 300 ms with backoff, not a hang.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The gateway itself still answers.
    ok_json(&mcp, "list_readable_namespaces", json!({})).await;
}
