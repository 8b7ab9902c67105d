//! The client against small local HTTP servers that misbehave on purpose:
//! slow answers, 5xx, non-envelope and empty error bodies, garbage success
//! bodies. Each server answers from a script and records what it received.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use memory_client::{
    BreakerPolicy, BreakerState, Client, ClientConfig, ClientError, ManualClock, RetryPolicy,
};
use memory_contract::{
    ErrorCode, MemoryKind, MemorySource, MemoryWrite, NamespaceKind, NamespaceUpsert, SearchRequest,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// One scripted answer.
#[derive(Clone)]
struct Answer {
    status: u16,
    body: &'static str,
    delay: Duration,
}

fn answer(status: u16, body: &'static str) -> Answer {
    Answer {
        status,
        body,
        delay: Duration::ZERO,
    }
}

const HEALTH_OK: &str = r#"{"status":"ok","version":"1.0.0","capabilities":["ttl","pin","list"]}"#;
const HEALTH_BATCH: &str = r#"{"status":"ok","version":"1.0.0","capabilities":["batch"]}"#;
const SEARCH_EMPTY: &str = r#"{"memories":[]}"#;

/// What the server saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    path: String,
    authorization: Option<String>,
}

#[derive(Default)]
struct Script {
    answers: Vec<Answer>,
    seen: Vec<Seen>,
}

/// A local server answering from a script: request n gets answer n, the
/// last answer repeats.
struct ScriptedServer {
    url: String,
    script: Arc<Mutex<Script>>,
}

impl ScriptedServer {
    async fn start(answers: Vec<Answer>) -> ScriptedServer {
        let script = Arc::new(Mutex::new(Script {
            answers,
            seen: Vec::new(),
        }));
        let app = axum::Router::new()
            .fallback(scripted_answer)
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a local port");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ScriptedServer {
            url: format!("http://{addr}"),
            script,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.script.lock().expect("script lock").seen.clone()
    }

    fn set_answers(&self, answers: Vec<Answer>) {
        let mut script = self.script.lock().expect("script lock");
        script.answers = answers;
    }

    fn client(&self, configure: impl FnOnce(ClientConfig) -> ClientConfig) -> Client {
        Client::new(configure(ClientConfig::new(self.url.clone()))).expect("client")
    }
}

async fn scripted_answer(
    State(script): State<Arc<Mutex<Script>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    _body: Bytes,
) -> Response {
    let answer = {
        let mut script = script.lock().expect("script lock");
        let n = script.seen.len();
        script.seen.push(Seen {
            method,
            path: uri.path().to_string(),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        });
        let last = script.answers.len().saturating_sub(1);
        script.answers[n.min(last)].clone()
    };
    tokio::time::sleep(answer.delay).await;
    let status = StatusCode::from_u16(answer.status).expect("valid status");
    (
        status,
        [("content-type", "application/json")],
        answer.body.to_string(),
    )
        .into_response()
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        max_elapsed: Duration::from_secs(5),
    }
}

fn search_one() -> SearchRequest {
    SearchRequest {
        namespaces: vec!["workspace:a".into()],
        ..SearchRequest::default()
    }
}

fn note() -> MemoryWrite {
    MemoryWrite::new("note", MemoryKind::Fact, MemorySource::Agent)
}

#[tokio::test]
async fn slow_answer_becomes_timeout() {
    let server = ScriptedServer::start(vec![Answer {
        delay: Duration::from_secs(3),
        ..answer(200, HEALTH_OK)
    }])
    .await;
    let client = server.client(|c| {
        c.timeout(Duration::from_millis(200))
            .retry(RetryPolicy::none())
    });
    let err = client.health().await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout), "{err:?}");
}

#[tokio::test]
async fn search_is_retried_after_503_and_succeeds() {
    let server = ScriptedServer::start(vec![
        answer(503, r#"{"code":"unavailable","message":"db down"}"#),
        answer(200, SEARCH_EMPTY),
    ])
    .await;
    let client = server.client(|c| c.retry(fast_retries()));
    let found = client.search(&search_one()).await.expect("retried search");
    assert!(found.memories.is_empty());
    assert_eq!(server.seen().len(), 2, "one failed attempt, one retry");
}

#[tokio::test]
async fn write_without_id_is_not_retried_after_503() {
    let server = ScriptedServer::start(vec![
        answer(503, r#"{"code":"unavailable","message":"db down"}"#),
        answer(
            201,
            r#"{"id":"5f0c3c39-1a53-4b8e-9a36-1f7a3d5c2b10","namespace":"workspace:a"}"#,
        ),
    ])
    .await;
    let client = server.client(|c| c.retry(fast_retries()));
    let err = client
        .write_memory("workspace:a", &note())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503), "{err:?}");
    assert_eq!(
        server.seen().len(),
        1,
        "a write without id must be sent once"
    );
}

#[tokio::test]
async fn write_with_id_is_retried_after_502() {
    let server = ScriptedServer::start(vec![
        answer(502, ""),
        answer(
            201,
            r#"{"id":"5f0c3c39-1a53-4b8e-9a36-1f7a3d5c2b10","namespace":"workspace:a"}"#,
        ),
    ])
    .await;
    let client = server.client(|c| c.retry(fast_retries()));
    let mut write = note();
    write.id = Some(Uuid::parse_str("5f0c3c39-1a53-4b8e-9a36-1f7a3d5c2b10").expect("uuid"));
    client
        .write_memory("workspace:a", &write)
        .await
        .expect("retried write");
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn retries_stop_after_max_attempts() {
    let server = ScriptedServer::start(vec![answer(504, "")]).await;
    let client = server.client(|c| c.retry(fast_retries()).breaker(BreakerPolicy::disabled()));
    let err = client.search(&search_one()).await.unwrap_err();
    assert_eq!(err.status(), Some(504));
    assert_eq!(server.seen().len(), 3);
}

#[tokio::test]
async fn a_500_is_not_retried() {
    let server =
        ScriptedServer::start(vec![answer(500, r#"{"code":"internal","message":"boom"}"#)]).await;
    let client = server.client(|c| c.retry(fast_retries()));
    let err = client.search(&search_one()).await.unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn breaker_opens_after_three_failures_fails_fast_and_probes_after_60s() {
    let server =
        ScriptedServer::start(vec![answer(500, r#"{"code":"internal","message":"boom"}"#)]).await;
    let clock = Arc::new(ManualClock::new());
    let client = server.client(|c| c.retry(RetryPolicy::none()).clock(clock.clone()));
    for _ in 0..3 {
        let err = client.health().await.unwrap_err();
        assert_eq!(err.status(), Some(500));
    }
    assert!(matches!(client.breaker_state(), BreakerState::Open { .. }));
    let err = client.health().await.unwrap_err();
    assert!(matches!(err, ClientError::CircuitOpen), "{err:?}");
    assert_eq!(server.seen().len(), 3, "fast fail sends nothing");

    clock.advance(Duration::from_secs(59));
    assert!(matches!(
        client.health().await,
        Err(ClientError::CircuitOpen)
    ));

    // The probe fails: the breaker opens again for another 60 s.
    clock.advance(Duration::from_secs(1));
    assert_eq!(client.health().await.unwrap_err().status(), Some(500));
    assert_eq!(server.seen().len(), 4);
    assert!(matches!(
        client.health().await,
        Err(ClientError::CircuitOpen)
    ));

    // The next probe succeeds: closed again, calls flow.
    server.set_answers(vec![answer(200, HEALTH_OK)]);
    clock.advance(Duration::from_secs(60));
    client.health().await.expect("probe succeeds");
    assert_eq!(client.breaker_state(), BreakerState::Closed { failures: 0 });
    client
        .health()
        .await
        .expect("closed breaker lets calls through");
}

/// The breaker counts calls, not attempts: a call whose three attempts all
/// got 503 is one failure; three such calls open it.
#[tokio::test]
async fn breaker_counts_calls_not_retry_attempts() {
    let server = ScriptedServer::start(vec![answer(
        503,
        r#"{"code":"unavailable","message":"db down"}"#,
    )])
    .await;
    let clock = Arc::new(ManualClock::new());
    let client = server.client(|c| c.retry(fast_retries()).clock(clock.clone()));

    let err = client.search(&search_one()).await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(server.seen().len(), 3, "three attempts");
    assert_eq!(client.breaker_state(), BreakerState::Closed { failures: 1 });

    let err = client.search(&search_one()).await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(client.breaker_state(), BreakerState::Closed { failures: 2 });
    let err = client.search(&search_one()).await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(server.seen().len(), 9);
    assert!(
        matches!(client.breaker_state(), BreakerState::Open { .. }),
        "{:?}",
        client.breaker_state()
    );
    assert!(matches!(
        client.search(&search_one()).await,
        Err(ClientError::CircuitOpen)
    ));
    assert_eq!(server.seen().len(), 9, "fast fail sends nothing");

    // The probe is one call with its retries: 503, then 200 closes it.
    server.set_answers(vec![answer(503, ""), answer(200, SEARCH_EMPTY)]);
    clock.advance(Duration::from_secs(60));
    client
        .search(&search_one())
        .await
        .expect("probe retried into success");
    assert_eq!(client.breaker_state(), BreakerState::Closed { failures: 0 });
}

/// A call that fails on its first attempts and then succeeds resets the count.
#[tokio::test]
async fn a_call_that_succeeds_after_retries_is_a_success() {
    let server = ScriptedServer::start(vec![
        answer(503, ""),
        answer(503, ""),
        answer(200, SEARCH_EMPTY),
        answer(503, ""),
    ])
    .await;
    let client = server.client(|c| c.retry(fast_retries()));
    client
        .search(&search_one())
        .await
        .expect("third attempt succeeds");
    assert_eq!(client.breaker_state(), BreakerState::Closed { failures: 0 });
    let _ = client.search(&search_one()).await.unwrap_err();
    assert_eq!(client.breaker_state(), BreakerState::Closed { failures: 1 });
}

#[tokio::test]
async fn half_open_breaker_lets_only_one_probe_through() {
    let server = ScriptedServer::start(vec![answer(500, "")]).await;
    let clock = Arc::new(ManualClock::new());
    let client = server.client(|c| c.retry(RetryPolicy::none()).clock(clock.clone()));
    for _ in 0..3 {
        let _ = client.health().await;
    }
    server.set_answers(vec![Answer {
        delay: Duration::from_millis(300),
        ..answer(200, HEALTH_OK)
    }]);
    clock.advance(Duration::from_secs(60));
    let (a, b, c) = tokio::join!(client.health(), client.health(), client.health());
    let outcomes = [a, b, c];
    let probes = outcomes.iter().filter(|r| r.is_ok()).count();
    let fast_fails = outcomes
        .iter()
        .filter(|r| matches!(r, Err(ClientError::CircuitOpen)))
        .count();
    assert_eq!((probes, fast_fails), (1, 2));
    assert_eq!(server.seen().len(), 4);
}

#[tokio::test]
async fn client_errors_never_trip_the_breaker() {
    let server =
        ScriptedServer::start(vec![answer(404, r#"{"code":"not_found","message":"no"}"#)]).await;
    let client = server.client(|c| c.retry(RetryPolicy::none()));
    for _ in 0..10 {
        let err = client.delete_namespace("workspace:a").await.unwrap_err();
        assert_eq!(err.status(), Some(404));
    }
    assert_eq!(client.breaker_state(), BreakerState::Closed { failures: 0 });
    assert_eq!(server.seen().len(), 10);
}

#[tokio::test]
async fn a_success_resets_the_failure_count() {
    let server = ScriptedServer::start(vec![
        answer(500, ""),
        answer(500, ""),
        answer(200, HEALTH_OK),
        answer(500, ""),
        answer(500, ""),
        answer(200, HEALTH_OK),
    ])
    .await;
    let client = server.client(|c| c.retry(RetryPolicy::none()));
    for _ in 0..5 {
        let _ = client.health().await;
    }
    assert_eq!(client.breaker_state(), BreakerState::Closed { failures: 2 });
    client.health().await.expect("breaker still closed");
}

#[tokio::test]
async fn transport_errors_count_towards_the_breaker() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let client = Client::new(
        ClientConfig::new(format!("http://127.0.0.1:{port}")).retry(RetryPolicy::none()),
    )
    .expect("client");
    for _ in 0..3 {
        let err = client.health().await.unwrap_err();
        assert!(matches!(err, ClientError::Transport(_)), "{err:?}");
    }
    assert!(matches!(
        client.health().await,
        Err(ClientError::CircuitOpen)
    ));
}

#[tokio::test]
async fn non_envelope_error_body_gets_a_synthesized_envelope() {
    let server = ScriptedServer::start(vec![answer(502, "<html>Bad Gateway</html>")]).await;
    let client = server.client(|c| c.retry(RetryPolicy::none()));
    let err = client.health().await.unwrap_err();
    match &err {
        ClientError::Api { status, error } => {
            assert_eq!(*status, 502);
            assert_eq!(error.code, ErrorCode::Unavailable);
            assert!(error.message.contains("Bad Gateway"), "{}", error.message);
        }
        other => panic!("expected Api, got {other:?}"),
    }
    assert!(err.is_synthesized());
}

#[tokio::test]
async fn empty_error_body_gets_a_synthesized_envelope() {
    let server = ScriptedServer::start(vec![answer(404, "")]).await;
    let client = server.client(|c| c.retry(RetryPolicy::none()));
    let err = client.delete_namespace("workspace:a").await.unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::NotFound), "{err:?}");
    assert!(err.is_synthesized());
    assert!(err.to_string().contains("empty body"), "{err}");
}

#[tokio::test]
async fn real_envelope_is_decoded_verbatim() {
    let server = ScriptedServer::start(vec![answer(
        409,
        r#"{"code":"conflict","message":"id lives elsewhere","details":{"namespace":"workspace:b"}}"#,
    )])
    .await;
    let client = server.client(|c| c.retry(RetryPolicy::none()));
    let err = client
        .write_memory("workspace:a", &note())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::Conflict));
    assert!(!err.is_synthesized());
}

#[tokio::test]
async fn garbage_success_body_is_a_decode_error() {
    let server = ScriptedServer::start(vec![answer(200, "{not json")]).await;
    let client = server.client(|c| c.retry(RetryPolicy::none()));
    let err = client.search(&search_one()).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Decode { status: 200, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn wrong_shape_success_body_is_a_decode_error() {
    let server = ScriptedServer::start(vec![answer(200, r#"{"memories":"none"}"#)]).await;
    let client = server.client(|c| c.retry(RetryPolicy::none()));
    let err = client.search(&search_one()).await.unwrap_err();
    assert!(matches!(err, ClientError::Decode { .. }), "{err:?}");
}

/// A v1 peer that sends empty lists as `null` or leaves them out: the client
/// reads them as empty lists instead of failing to decode.
#[tokio::test]
async fn null_or_absent_lists_are_read_as_empty() {
    let server = ScriptedServer::start(vec![
        answer(200, r#"{"status":"ok","version":"1.0.0","capabilities":null}"#),
        answer(200, r#"{"status":"ok","version":"1.0.0"}"#),
        answer(
            200,
            r#"{"status":"ok","version":"1.0.0","capabilities":["list","scan","checksum"]}"#,
        ),
        answer(200, r#"{"memories":null}"#),
        answer(200, r#"{}"#),
        answer(200, r#"{"memories":null,"next_after":null}"#),
        answer(200, r#"{"next_after":null}"#),
        answer(200, r#"{"prefix":2,"created_at":false,"buckets":null}"#),
        answer(
            200,
            r#"{"memories":[{"id":"5f0c3c39-1a53-4b8e-9a36-1f7a3d5c2b10","namespace":"workspace:a","content":"c","kind":"fact","source":"agent","pin":null,"expires_at":null,"propagation":null,"score":null,"created_at":"2026-01-01T00:00:00Z"}]}"#,
        ),
    ])
    .await;
    let client = server.client(|c| c.retry(RetryPolicy::none()));
    assert!(client
        .health()
        .await
        .expect("null capabilities")
        .capabilities
        .is_empty());
    assert!(client
        .health()
        .await
        .expect("absent capabilities")
        .capabilities
        .is_empty());
    client.refresh_capabilities().await.expect("health");
    let search = client.search(&search_one()).await.expect("null memories");
    assert!(search.memories.is_empty());
    let search = client.search(&search_one()).await.expect("absent memories");
    assert!(search.memories.is_empty());
    let page = client
        .list_memories("workspace:a", None, 10)
        .await
        .expect("list");
    assert!(page.memories.is_empty() && page.next_after.is_none());
    let page = client.scan_memories(None, None, 10).await.expect("scan");
    assert!(page.memories.is_empty() && page.next_after.is_none());
    let sums = client.memory_checksums(2, false).await.expect("checksums");
    assert!(sums.buckets.is_empty());
    let found = client
        .search(&search_one())
        .await
        .expect("null optional fields");
    let memory = &found.memories[0];
    assert!(!memory.pin);
    assert_eq!(
        (memory.expires_at, &memory.propagation, memory.score),
        (None, &None, None)
    );
    assert_eq!(server.seen().len(), 9);
    assert_eq!(client.breaker_state(), BreakerState::Closed { failures: 0 });
}

/// A batch answered with `"results": null` for writes that were sent is
/// still refused: the plugin did not say what became of them.
#[tokio::test]
async fn batch_with_null_results_for_sent_writes_is_a_decode_error() {
    let server = ScriptedServer::start(vec![
        answer(200, HEALTH_BATCH),
        answer(200, r#"{"results":null}"#),
    ])
    .await;
    let client = server.client(|c| c.retry(RetryPolicy::none()));
    client.refresh_capabilities().await.expect("health");
    let write = memory_contract::BatchWrite {
        namespace: "workspace:a".into(),
        write: note(),
    };
    let err = client
        .write_batch(&memory_contract::BatchRequest {
            writes: vec![write],
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Decode { ref message, .. } if message.contains("0 results")),
        "{err:?}"
    );
}

#[tokio::test]
async fn trailing_slash_in_base_url_gives_clean_paths() {
    let server = ScriptedServer::start(vec![answer(200, HEALTH_OK)]).await;
    let client = Client::new(ClientConfig::new(format!("{}/", server.url))).expect("client");
    client.health().await.expect("health");
    assert_eq!(server.seen()[0].path, "/v1/health");
}

#[tokio::test]
async fn namespace_names_are_path_escaped() {
    let server = ScriptedServer::start(vec![answer(
        200,
        r#"{"name":"custom:a.b:c","kind":"custom","created_at":"2026-01-01T00:00:00Z"}"#,
    )])
    .await;
    let client = server.client(|c| c);
    client
        .upsert_namespace(
            "custom:a.b:c",
            &NamespaceUpsert {
                kind: NamespaceKind::Custom,
                expires_at: None,
                metadata: None,
            },
        )
        .await
        .expect("upsert");
    let seen = server.seen();
    assert_eq!(seen[0].method, Method::PUT);
    assert_eq!(seen[0].path, "/v1/namespaces/custom:a.b:c");
}

#[tokio::test]
async fn token_is_sent_as_bearer_header_and_never_shown() {
    let server = ScriptedServer::start(vec![answer(500, "")]).await;
    let client = server.client(|c| c.token("very-secret-token").retry(RetryPolicy::none()));
    let err = client.health().await.unwrap_err();
    assert_eq!(
        server.seen()[0].authorization.as_deref(),
        Some("Bearer very-secret-token")
    );
    assert!(!format!("{err:?} {err}").contains("very-secret-token"));
    assert!(!format!("{client:?}").contains("very-secret-token"));
}

#[tokio::test]
async fn invalid_requests_are_refused_without_sending() {
    let server = ScriptedServer::start(vec![answer(200, SEARCH_EMPTY)]).await;
    let client = server.client(|c| c);
    let blank = MemoryWrite::new("   ", MemoryKind::Fact, MemorySource::Agent);
    assert!(matches!(
        client.write_memory("workspace:a", &blank).await,
        Err(ClientError::Validation(_))
    ));
    assert!(matches!(
        client.write_memory("Workspace:a", &note()).await,
        Err(ClientError::Validation(_))
    ));
    let too_many = SearchRequest {
        limit: Some(101),
        ..search_one()
    };
    assert!(matches!(
        client.search(&too_many).await,
        Err(ClientError::Validation(_))
    ));
    assert!(matches!(
        client.forget(Uuid::new_v4(), "no-colon").await,
        Err(ClientError::Validation(_))
    ));
    assert!(matches!(
        client.list_memories("workspace:a", None, 1001).await,
        Err(ClientError::Validation(_))
    ));
    assert!(server.seen().is_empty(), "nothing may be sent");
}

#[tokio::test]
async fn extension_calls_are_refused_when_not_advertised() {
    let server = ScriptedServer::start(vec![answer(
        200,
        r#"{"status":"ok","version":"1.0.0","capabilities":["ttl"]}"#,
    )])
    .await;
    let client = server.client(|c| c);
    client.refresh_capabilities().await.expect("health");
    assert!(client.supports("ttl"));
    assert!(!client.supports("list"));
    let err = client.get_namespace("workspace:a").await.unwrap_err();
    assert!(
        matches!(err, ClientError::Unsupported(ref c) if c == "list"),
        "{err:?}"
    );
    assert_eq!(server.seen().len(), 1, "only the health call was sent");
}

#[tokio::test]
async fn retries_stop_when_the_time_budget_is_spent() {
    let server = ScriptedServer::start(vec![answer(503, "")]).await;
    let client = server.client(|c| {
        c.breaker(BreakerPolicy::disabled()).retry(RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_elapsed: Duration::from_millis(300),
        })
    });
    let err = client.search(&search_one()).await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    // The first retry fits in 300 ms (delay <= 200 ms); the second cannot
    // (elapsed >= 100 ms plus a delay >= 200 ms).
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn batch_of_only_invalid_items_is_answered_locally() {
    let server = ScriptedServer::start(vec![answer(200, HEALTH_BATCH), answer(500, "")]).await;
    let client = server.client(|c| c);
    let batch = memory_contract::BatchRequest {
        writes: vec![
            memory_contract::BatchWrite {
                namespace: "NoColon".into(),
                write: note(),
            },
            memory_contract::BatchWrite {
                namespace: "workspace:a".into(),
                write: MemoryWrite::new(" ", MemoryKind::Fact, MemorySource::Agent),
            },
        ],
    };
    let results = client
        .write_batch(&batch)
        .await
        .expect("local results")
        .results;
    assert_eq!(results.len(), 2);
    for (i, r) in results.iter().enumerate() {
        match r {
            memory_contract::BatchItemResult::Err { error } => {
                assert_eq!(error.code, ErrorCode::BadRequest);
                assert!(
                    error.message.contains(&format!("writes[{i}]")),
                    "{}",
                    error.message
                );
            }
            other => panic!("expected a local error, got {other:?}"),
        }
    }
    let paths: Vec<String> = server.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(
        paths,
        ["/v1/health"],
        "only the capability snapshot is fetched"
    );
}

#[tokio::test]
async fn batch_answer_with_wrong_result_count_is_a_decode_error() {
    let server = ScriptedServer::start(vec![
        answer(200, HEALTH_BATCH),
        answer(200, r#"{"results":[]}"#),
    ])
    .await;
    let client = server.client(|c| c);
    let batch = memory_contract::BatchRequest {
        writes: vec![memory_contract::BatchWrite {
            namespace: "workspace:a".into(),
            write: note(),
        }],
    };
    let err = client.write_batch(&batch).await.unwrap_err();
    assert!(matches!(err, ClientError::Decode { .. }), "{err:?}");
}
