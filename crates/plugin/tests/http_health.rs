//! Health follows the database: 503 `degraded` while it is away, 200 again
//! once it is back, without a restart. Uses a private cluster the test stops.

mod http_support;

use http_support::*;
use memory_plugin::server::ServerConfig;
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn health_turns_503_degraded_when_the_database_goes_away_and_200_when_it_returns() {
    let mut cluster = memory_testkit::StoppableCluster::start().await;
    let store = memory_plugin::store::postgres::PgStore::connect(
        cluster.url(),
        memory_plugin::store::postgres::PgOptions {
            embedding_dim: DIM,
            ..Default::default()
        },
    )
    .await
    .expect("store on the stoppable cluster");
    let server = memory_plugin::server::spawn(std::sync::Arc::new(store), ServerConfig::default())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let health = || async {
        read(
            http.get(format!("{}/v1/health", server.url()))
                .send()
                .await
                .unwrap(),
        )
        .await
    };

    let (status, body) = health().await;
    assert_eq!(status, StatusCode::OK, "{body}");

    cluster.stop().await;
    let (status, body) = health().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["version"], "1.0.0");
    assert!(body["capabilities"].is_array());
    assert_envelope(&body, "unavailable");

    // Other routes answer 503 `unavailable` too, never a 500.
    let (status, body) = read(
        http.post(format!("{}/v1/search", server.url()))
            .json(&json!({"namespaces": ["team:any"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_envelope(&body, "unavailable");

    cluster.start_again().await;
    // The pool reconnects by itself; allow it a generous while.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = health().await;
        if status == StatusCode::OK {
            assert_eq!(body["status"], "ok");
            break;
        }
        assert!(Instant::now() < deadline, "health still {status}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
