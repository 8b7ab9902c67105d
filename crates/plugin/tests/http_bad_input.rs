//! Every client mistake answers a 4xx with the error envelope, never a 5xx
//! or a dropped connection. Real HTTP, fresh PostgreSQL 15 database per test.

mod http_support;

use http_support::*;
use memory_contract::limits;
use memory_plugin::server::ServerConfig;
use reqwest::{Method, StatusCode};
use serde_json::json;

const WRITE: &str = "/v1/namespaces/team:bad/memories";

async fn server_with_namespace() -> Harness {
    let h = pg_server(ServerConfig::default()).await;
    h.namespace("team:bad").await;
    h
}

#[track_caller]
fn assert_bad_request(status: StatusCode, body: &serde_json::Value, mentions: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_envelope(body, "bad_request");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(mentions),
        "message {message:?} should mention {mentions:?}"
    );
}

#[tokio::test]
async fn invalid_json_answers_400_saying_so() {
    let h = server_with_namespace().await;
    for raw in [
        "{\"content\": ",
        "not json",
        r#"{"content":"a","kind":"fact","source":"agent"} trailing"#,
        "\u{0}",
    ] {
        let (status, body) = h
            .raw(Method::POST, WRITE, raw, Some("application/json"))
            .await;
        assert_bad_request(status, &body, "JSON");
    }
    let (status, body) = h.raw(Method::POST, WRITE, "", None).await;
    assert_bad_request(status, &body, "empty");
}

#[tokio::test]
async fn wrong_types_answer_400_naming_the_field() {
    let h = server_with_namespace().await;
    let cases = [
        (
            WRITE,
            json!({"content": 5, "kind": "fact", "source": "agent"}),
            "content",
        ),
        (
            WRITE,
            json!({"content": "x", "kind": "rumour", "source": "agent"}),
            "kind",
        ),
        (
            WRITE,
            json!({"content": "x", "kind": "fact", "source": "agent", "pin": "yes"}),
            "pin",
        ),
        (WRITE, json!({"content": "x", "kind": "fact"}), "source"),
        (
            WRITE,
            json!({"content": "x", "kind": "fact", "source": "agent", "expires_at": "tomorrow"}),
            "expires_at",
        ),
        (
            WRITE,
            json!({"content": "x", "kind": "fact", "source": "agent", "embedding": ["a"]}),
            "embedding",
        ),
        (WRITE, json!([1, 2]), "body"),
        (
            "/v1/search",
            json!({"namespaces": "team:bad"}),
            "namespaces",
        ),
        (
            "/v1/search",
            json!({"namespaces": ["team:bad"], "limit": "ten"}),
            "limit",
        ),
        (
            "/v1/search",
            json!({"namespaces": ["team:bad"], "kinds": ["gossip"]}),
            "kinds",
        ),
        ("/v1/memories/batch", json!({"writes": {"a": 1}}), "writes"),
        ("/v1/memories/batch", json!({}), "writes"),
    ];
    for (path, body, field) in cases {
        let (status, answer) = h.post(path, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {answer}");
        assert_envelope(&answer, "bad_request");
        if field != "body" {
            assert!(
                answer["message"].as_str().unwrap().contains(field),
                "{path} {body}: {answer} should name {field}"
            );
        }
    }
    let (status, answer) = h
        .call(
            Method::PUT,
            "/v1/namespaces/team:x",
            Some(json!({"kind": "planet"})),
        )
        .await;
    assert_bad_request(status, &answer, "kind");
}

#[tokio::test]
async fn json_bodies_are_accepted_whatever_the_content_type() {
    let h = server_with_namespace().await;
    let body = r#"{"content":"no header","kind":"fact","source":"agent"}"#;
    let (status, ack) = h.raw(Method::POST, WRITE, body, None).await;
    assert_eq!(status, StatusCode::CREATED, "{ack}");
    let (status, ack) = h.raw(Method::POST, WRITE, body, Some("text/plain")).await;
    assert_eq!(status, StatusCode::CREATED, "{ack}");
}

#[tokio::test]
async fn a_body_over_one_mebibyte_answers_413_with_the_envelope() {
    let h = server_with_namespace().await;
    // Exactly at the limit is read (and then judged on its content).
    let filler = "a".repeat(limits::BODY_MAX_BYTES - 50);
    let at_limit = format!(r#"{{"content":"{filler}","kind":"fact","source":"agent"}}"#);
    assert!(at_limit.len() <= limits::BODY_MAX_BYTES);
    let (status, body) = h.raw(Method::POST, WRITE, at_limit, None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let over = vec![b' '; limits::BODY_MAX_BYTES + 1];
    let (status, body) = h.raw(Method::POST, WRITE, over.clone(), None).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_envelope(&body, "bad_request");

    // The same without a Content-Length (chunked): the limit holds while streaming.
    let (status, body) = chunked_post(&h, "/v1/search", &over).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("\"code\":\"bad_request\""), "{body}");
}

/// POSTs `body` with `Transfer-Encoding: chunked` over a raw socket and
/// returns the status code and the response text.
async fn chunked_post(h: &Harness, path: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(h.server.addr())
        .await
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(64 * 1024) {
        let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
        frame.extend_from_slice(chunk);
        frame.extend_from_slice(b"\r\n");
        // The server may answer and close before everything is sent.
        if socket.write_all(&frame).await.is_err() {
            break;
        }
    }
    let _ = socket.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Writes `head` and then `body` completely, and only then reads the whole
/// answer (the way Python's urllib does). Panics if the server cuts the
/// connection while the body is still being written.
async fn write_all_then_read(h: &Harness, head: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(h.server.addr())
        .await
        .unwrap();
    socket.write_all(head.as_bytes()).await.unwrap();
    // In pieces with short pauses, as a slow client would: the server has
    // time to answer (and, without discarding, close) mid-body.
    for piece in body.chunks(256 * 1024) {
        socket
            .write_all(piece)
            .await
            .expect("the server lets the whole body be written");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let mut answer = Vec::new();
    socket
        .read_to_end(&mut answer)
        .await
        .expect("the answer can be read");
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// The answer's JSON body (after the blank line that ends the head).
fn envelope_of(text: &str) -> serde_json::Value {
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("no JSON body ({e}): {text:?}"))
}

/// A client that writes a 2 MiB body in full before reading always gets the
/// 413 envelope, never a reset connection: the plugin reads and discards the
/// rest of an oversized body (up to 4x the limit) before answering.
#[tokio::test]
async fn an_oversized_body_written_in_full_before_reading_always_gets_its_413() {
    let h = sqlite_server(ServerConfig::default()).await;
    let body = vec![b' '; 2 * 1024 * 1024];
    let head = format!(
        "POST /v1/search HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    for attempt in 0..50 {
        let (status, text) = write_all_then_read(&h, &head, &body).await;
        assert_eq!(status, 413, "attempt {attempt}: {text:?}");
        let envelope = envelope_of(&text);
        assert_envelope(&envelope, "bad_request");
        assert_eq!(
            envelope["details"]["limit_bytes"],
            limits::BODY_MAX_BYTES,
            "{envelope}"
        );
    }

    // Chunked, without a declared length: the same.
    let mut chunked = Vec::new();
    for chunk in body.chunks(64 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = "POST /v1/search HTTP/1.1\r\nHost: localhost\r\n\
                Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    for attempt in 0..10 {
        let (status, text) = write_all_then_read(&h, head, &chunked).await;
        assert_eq!(status, 413, "chunked attempt {attempt}: {text:?}");
        assert_envelope(&envelope_of(&text), "bad_request");
    }

    // Drained to its end, the connection stays usable: a second request on
    // it is answered.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(h.server.addr())
        .await
        .unwrap();
    let keep = format!(
        "POST /v1/search HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    socket.write_all(keep.as_bytes()).await.unwrap();
    socket.write_all(&body).await.unwrap();
    socket
        .write_all(b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert_eq!(text.matches("HTTP/1.1 ").count(), 2, "{text}");
    assert!(text.contains("HTTP/1.1 200"), "{text}");
}

#[tokio::test]
async fn a_batch_over_sixteen_mebibytes_or_a_thousand_items_is_refused() {
    let h = server_with_namespace().await;
    let over = vec![b' '; limits::BATCH_BODY_MAX_BYTES + 1];
    let (status, body) = h.raw(Method::POST, "/v1/memories/batch", over, None).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_envelope(&body, "bad_request");

    // Between 1 and 16 MiB a batch is accepted.
    let item = json!({"namespace": "team:bad", "content": "c".repeat(2000), "kind": "fact", "source": "agent"});
    let writes: Vec<_> = (0..1000).map(|_| item.clone()).collect();
    let body = serde_json::to_vec(&json!({ "writes": writes })).unwrap();
    assert!(body.len() > limits::BODY_MAX_BYTES);
    let (status, answer) = h.raw(Method::POST, "/v1/memories/batch", body, None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        &answer.to_string()[..200.min(answer.to_string().len())]
    );
    assert_eq!(answer["results"].as_array().unwrap().len(), 1000);

    let small = json!({"namespace": "team:bad", "content": "x", "kind": "fact", "source": "agent"});
    let writes: Vec<_> = (0..=limits::BATCH_ITEMS_MAX)
        .map(|_| small.clone())
        .collect();
    let (status, body) = h
        .post("/v1/memories/batch", json!({ "writes": writes }))
        .await;
    assert_bad_request(status, &body, "1000");
}

#[tokio::test]
async fn unknown_routes_answer_404_and_wrong_methods_405_with_the_envelope() {
    let h = pg_server(ServerConfig::default()).await;
    for path in [
        "/",
        "/v2/health",
        "/v1/namespace",
        "/v1/namespaces/team:a/memories/x",
    ] {
        let (status, body) = h.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_envelope(&body, "not_found");
    }
    for (method, path) in [
        (Method::GET, "/v1/search"),
        (Method::POST, "/v1/health"),
        (
            Method::PATCH,
            "/v1/memories/3f8e0c1e-8f7a-4c39-9a55-5d0b0f1e2a3b",
        ),
        (Method::DELETE, "/v1/namespaces/team:a/memories"),
        (Method::POST, "/metrics"),
    ] {
        let (status, body) = h.call(method.clone(), path, None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_envelope(&body, "bad_request");
    }
}

#[tokio::test]
async fn nul_bytes_anywhere_answer_400() {
    let h = server_with_namespace().await;
    // In the path.
    let (status, body) = h
        .call(
            Method::PUT,
            "/v1/namespaces/team:a%00b",
            Some(json!({"kind": "team"})),
        )
        .await;
    assert_bad_request(status, &body, "name");
    let (status, body) = h
        .post("/v1/namespaces/team:bad%00/memories", fact("x"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // In body strings, nested JSON included.
    for (path, body) in [
        (WRITE, fact("nul \u{0} inside")),
        (
            WRITE,
            json!({"content": "x", "kind": "fact", "source": "agent", "propagation": {"k": "v\u{0}"}}),
        ),
        (
            WRITE,
            json!({"content": "x", "kind": "fact", "source": "agent", "propagation": {"k\u{0}": 1}}),
        ),
        (
            "/v1/search",
            json!({"namespaces": ["team:bad"], "query": "a\u{0}b"}),
        ),
        ("/v1/search", json!({"namespaces": ["team:bad\u{0}"]})),
    ] {
        let (status, answer) = h.post(path, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {answer}");
        assert_envelope(&answer, "bad_request");
    }
    let (status, body) = h
        .call(
            Method::PUT,
            "/v1/namespaces/team:meta",
            Some(json!({"kind": "team", "metadata": {"a": "\u{0}"}})),
        )
        .await;
    assert_bad_request(status, &body, "metadata");
    let (status, body) = h
        .call(
            Method::PATCH,
            "/v1/namespaces/team:bad",
            Some(json!({"metadata": ["\u{0}"]})),
        )
        .await;
    assert_bad_request(status, &body, "metadata");
    let (status, body) = h
        .call(
            Method::DELETE,
            "/v1/memories/3f8e0c1e-8f7a-4c39-9a55-5d0b0f1e2a3b",
            Some(json!({"requested_by_namespace": "team:bad\u{0}"})),
        )
        .await;
    assert_bad_request(status, &body, "requested_by_namespace");
    // In the query string.
    let (status, body) = h.get("/v1/namespaces/team:bad/memories?after=%00").await;
    assert_bad_request(status, &body, "after");
    // A batch item with a NUL fails alone.
    let (status, body) = h
        .post(
            "/v1/memories/batch",
            json!({"writes": [
                {"namespace": "team:bad", "content": "ok", "kind": "fact", "source": "agent"},
                {"namespace": "team:bad", "content": "\u{0}", "kind": "fact", "source": "agent"}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["results"][0]["id"].is_string());
    assert_envelope(&body["results"][1]["error"], "bad_request");
}

#[tokio::test]
async fn non_uuid_ids_in_path_body_or_query_answer_400() {
    let h = server_with_namespace().await;
    let (status, body) = h
        .call(
            Method::DELETE,
            "/v1/memories/not-a-uuid",
            Some(json!({"requested_by_namespace": "team:bad"})),
        )
        .await;
    assert_bad_request(status, &body, "UUID");
    let mut write = fact("x");
    write["id"] = json!("12345");
    let (status, body) = h.post(WRITE, write).await;
    assert_bad_request(status, &body, "id");
    let (status, body) = h.get("/v1/namespaces/team:bad/memories?after=zzz").await;
    assert_bad_request(status, &body, "after");
}

#[tokio::test]
async fn contract_limits_and_rules_answer_400() {
    let h = server_with_namespace().await;
    let many: Vec<String> = (0..=limits::SEARCH_NAMESPACES_MAX)
        .map(|i| format!("team:n{i}"))
        .collect();
    let (status, body) = h.post("/v1/search", json!({ "namespaces": many })).await;
    assert_bad_request(status, &body, "64");
    let (status, body) = h.post("/v1/search", json!({ "namespaces": [] })).await;
    assert_bad_request(status, &body, "namespaces");
    for limit in [-1, 101, 100000] {
        let (status, body) = h
            .post(
                "/v1/search",
                json!({"namespaces": ["team:bad"], "limit": limit}),
            )
            .await;
        assert_bad_request(status, &body, "limit");
    }
    let (status, _) = h
        .post(
            "/v1/search",
            json!({"namespaces": ["team:bad"], "limit": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "0 means the default");
    for query in ["limit=0", "limit=1000", ""] {
        let (status, body) = h
            .get(&format!("/v1/namespaces/team:bad/memories?{query}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
    }
    for query in ["limit=1001", "limit=-5", "limit=ten"] {
        let (status, body) = h
            .get(&format!("/v1/namespaces/team:bad/memories?{query}"))
            .await;
        assert_bad_request(status, &body, "limit");
    }
    let (status, body) = h.post(WRITE, fact(" \n\t ")).await;
    assert_bad_request(status, &body, "content");
    let (status, body) = h.post(WRITE, fact("")).await;
    assert_bad_request(status, &body, "content");
}

#[tokio::test]
async fn bad_namespace_names_answer_400_in_path_and_body() {
    let h = server_with_namespace().await;
    for name in ["nocolon", "Team:x", "team:", "team:a%20b", "team:a%2Fb"] {
        let (status, body) = h
            .call(
                Method::PUT,
                &format!("/v1/namespaces/{name}"),
                Some(json!({"kind": "team"})),
            )
            .await;
        assert_bad_request(status, &body, "name");
        let (status, body) = h
            .post(&format!("/v1/namespaces/{name}/memories"), fact("x"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
    }
    let long = format!("team:{}", "a".repeat(300));
    let (status, body) = h.get(&format!("/v1/namespaces/{long}")).await;
    assert_bad_request(status, &body, "256");
    let (status, body) = h
        .post("/v1/search", json!({"namespaces": ["team:ok", "BAD"]}))
        .await;
    assert_bad_request(status, &body, "namespaces[1]");
    let (status, body) = h
        .call(
            Method::DELETE,
            "/v1/memories/3f8e0c1e-8f7a-4c39-9a55-5d0b0f1e2a3b",
            Some(json!({"requested_by_namespace": "nope"})),
        )
        .await;
    assert_bad_request(status, &body, "requested_by_namespace");
}

#[tokio::test]
async fn missing_bodies_answer_400() {
    let h = server_with_namespace().await;
    let (status, body) = h
        .call(
            Method::DELETE,
            "/v1/memories/3f8e0c1e-8f7a-4c39-9a55-5d0b0f1e2a3b",
            None,
        )
        .await;
    assert_bad_request(status, &body, "empty");
    let (status, body) = h.call(Method::PUT, "/v1/namespaces/team:x", None).await;
    assert_bad_request(status, &body, "empty");
    let (status, body) = h.call(Method::POST, "/v1/search", None).await;
    assert_bad_request(status, &body, "empty");
}

#[tokio::test]
async fn semantic_search_on_pg15_answers_400_naming_the_missing_capability() {
    let h = server_with_namespace().await;
    let (status, body) = h
        .post(
            "/v1/search",
            json!({"namespaces": ["team:bad"], "embedding": [0.1, 0.2, 0.3]}),
        )
        .await;
    assert_bad_request(status, &body, "embedding");
}
