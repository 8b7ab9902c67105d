//! Extension `hybrid` over real HTTP, on a SQLite file and on PostgreSQL 18
//! with pgvector: reciprocal rank fusion of the full-text and vector
//! rankings with exact scores, the forced `fulltext` and `semantic` modes,
//! the 400s for a missing ingredient, and v1 unchanged without `mode`.
//!
//! The corpus (embedding dimension 3, query "coffee machine", query vector
//! [1, 0, 0]) is built so that each ranking alone misses one of the two
//! relevant memories at limit 2:
//!
//! | memory      | full-text rank | cosine | vector rank |
//! |-------------|----------------|--------|-------------|
//! | TEXTUAL     | 1              | 0.0995 | 3           |
//! | SEMANTIC    | -              | 1      | 1           |
//! | DISTRACTOR  | -              | 0.8    | 2           |
//! | ORTHOGONAL  | -              | 0      | 4           |
//!
//! Fused: TEXTUAL 1/61 + 1/63, SEMANTIC 1/61, DISTRACTOR 1/62, ORTHOGONAL 1/64.
//! Left out on both sides: a memory of another namespace, an expired one and
//! (with `kinds: [fact]`) a summary, each matching the text and the vector.

mod http_support;

use http_support::*;
use memory_plugin::server::ServerConfig;
use reqwest::StatusCode;
use serde_json::{json, Value};

const TEXTUAL: &str = "Descale the coffee machine every Friday afternoon";
const SEMANTIC: &str = "The espresso maker in the kitchen needs fresh beans";
const DISTRACTOR: &str = "Lunch orders go to the office manager";
const ORTHOGONAL: &str = "Quarterly planning happens in room four";
const OTHER_NAMESPACE: &str = "The coffee machine in the other team's kitchen";
const EXPIRED: &str = "Old note: coffee machine moved to floor two";
const SUMMARY: &str = "Summary: coffee machine and espresso maker rules";

const NS: &str = "team:hybrid";
const QUERY_VECTOR: [f32; 3] = [1.0, 0.0, 0.0];

async fn corpus(h: &Harness) {
    h.namespace(NS).await;
    h.namespace("team:elsewhere").await;
    for (content, embedding) in [
        (TEXTUAL, [0.1, 0.0, 1.0]),
        (SEMANTIC, [1.0, 0.0, 0.0]),
        (DISTRACTOR, [0.8, 0.6, 0.0]),
        (ORTHOGONAL, [0.0, 1.0, 0.0]),
    ] {
        let mut write = fact(content);
        write["embedding"] = json!(embedding);
        h.write(NS, write).await;
    }
    let mut other = fact(OTHER_NAMESPACE);
    other["embedding"] = json!([1.0, 0.0, 0.0]);
    h.write("team:elsewhere", other).await;
    let mut expired = fact(EXPIRED);
    expired["embedding"] = json!([1.0, 0.0, 0.0]);
    expired["expires_at"] = json!("2020-01-01T00:00:00Z");
    h.write(NS, expired).await;
    let summary = json!({
        "content": SUMMARY,
        "kind": "summary",
        "source": "agent",
        "embedding": [1.0, 0.0, 0.0],
    });
    h.write(NS, summary).await;
}

fn request(mode: Option<&str>, limit: u32) -> Value {
    let mut body = json!({
        "namespaces": [NS],
        "query": "coffee machine",
        "embedding": QUERY_VECTOR,
        "kinds": ["fact"],
        "limit": limit,
    });
    if let Some(mode) = mode {
        body["mode"] = json!(mode);
    }
    body
}

fn contents(memories: &[Value]) -> Vec<&str> {
    memories
        .iter()
        .map(|m| m["content"].as_str().expect("content"))
        .collect()
}

fn scores(memories: &[Value]) -> Vec<f64> {
    memories
        .iter()
        .map(|m| {
            m["score"]
                .as_f64()
                .expect("every ranked memory has a score")
        })
        .collect()
}

/// Each ranking alone misses one relevant memory at limit 2; hybrid finds
/// both, with the fused scores computed by hand.
async fn hybrid_finds_what_each_ranking_alone_misses(h: &Harness) {
    corpus(h).await;

    let text_only = h.search(request(Some("fulltext"), 2)).await;
    assert_eq!(contents(&text_only), [TEXTUAL], "full-text misses SEMANTIC");
    assert!(scores(&text_only)[0] > 0.0);

    let vector_only = h.search(request(Some("semantic"), 2)).await;
    assert_eq!(
        contents(&vector_only),
        [SEMANTIC, DISTRACTOR],
        "semantic misses TEXTUAL"
    );

    let fused = h.search(request(Some("hybrid"), 2)).await;
    assert_eq!(contents(&fused), [TEXTUAL, SEMANTIC]);
    assert_eq!(scores(&fused), [1.0 / 61.0 + 1.0 / 63.0, 1.0 / 61.0]);

    let all = h.search(request(Some("hybrid"), 100)).await;
    assert_eq!(contents(&all), [TEXTUAL, SEMANTIC, DISTRACTOR, ORTHOGONAL]);
    assert_eq!(
        scores(&all),
        [1.0 / 61.0 + 1.0 / 63.0, 1.0 / 61.0, 1.0 / 62.0, 1.0 / 64.0]
    );

    // Without the kinds filter the summary, first or second in both
    // rankings (it ties SEMANTIC's vector), leads.
    let mut any_kind = request(Some("hybrid"), 100);
    any_kind.as_object_mut().unwrap().remove("kinds");
    let every = h.search(any_kind).await;
    assert_eq!(every.len(), 5, "{:?}", contents(&every));
    assert_eq!(contents(&every)[0], SUMMARY);
    let possible = [2.0 / 61.0, 1.0 / 61.0 + 1.0 / 62.0, 2.0 / 62.0];
    assert!(
        possible.contains(&scores(&every)[0]),
        "{:?}",
        scores(&every)
    );
}

/// Without `mode`, an embedding still wins (v1), exactly as `semantic`.
async fn without_mode_v1_is_unchanged(h: &Harness) {
    let v1 = h.search(request(None, 2)).await;
    let semantic = h.search(request(Some("semantic"), 2)).await;
    assert_eq!(v1, semantic);
    let cosine = scores(&v1);
    assert!((cosine[0] - 1.0).abs() < 1e-6, "{cosine:?}");
    assert!((cosine[1] - 0.8).abs() < 1e-6, "{cosine:?}");
    let mut text = request(None, 5);
    text.as_object_mut().unwrap().remove("embedding");
    assert_eq!(
        h.search(text).await,
        h.search(request(Some("fulltext"), 5)).await
    );
}

/// A missing ingredient is 400 with the envelope and a message naming it.
async fn missing_ingredients_are_400(h: &Harness) {
    let cases = [
        ("hybrid", Some("coffee machine"), false, "embedding"),
        ("hybrid", None, true, "query"),
        ("hybrid", Some("c"), true, "1-character"),
        (
            "semantic",
            Some("coffee machine"),
            false,
            "needs an embedding",
        ),
        ("fulltext", None, true, "none was given"),
        ("fulltext", Some("c"), true, "substring"),
    ];
    for (mode, query, embedding, expected) in cases {
        let mut body = json!({ "namespaces": [NS], "mode": mode });
        if let Some(q) = query {
            body["query"] = json!(q);
        }
        if embedding {
            body["embedding"] = json!(QUERY_VECTOR);
        }
        let (status, answer) = h.post("/v1/search", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_envelope(&answer, "bad_request");
        assert!(
            answer["message"].as_str().unwrap().contains(expected),
            "{body}: {answer}"
        );
        assert!(
            answer["message"].as_str().unwrap().contains(mode),
            "{body}: {answer}"
        );
    }
    let (status, answer) = h
        .post(
            "/v1/search",
            json!({ "namespaces": [NS], "query": "coffee machine", "mode": "blend" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_envelope(&answer, "bad_request");
}

async fn advertises_hybrid(h: &Harness, dimension: usize) {
    let (status, health) = h.get("/v1/health").await;
    assert_eq!(status, StatusCode::OK);
    let caps = health["capabilities"].as_array().unwrap();
    assert!(caps.contains(&json!("hybrid")), "{health}");
    assert!(caps.contains(&json!("embedding")), "{health}");
    assert_eq!(health["embedding_dimension"], dimension);
}

#[tokio::test]
async fn sqlite_hybrid_fuses_both_rankings_with_exact_scores() {
    let h = sqlite_server(ServerConfig::default()).await;
    advertises_hybrid(&h, DIM).await;
    hybrid_finds_what_each_ranking_alone_misses(&h).await;
    without_mode_v1_is_unchanged(&h).await;
    missing_ingredients_are_400(&h).await;
}

#[tokio::test]
async fn pg18_hybrid_fuses_both_rankings_with_exact_scores() {
    let h = pg_server_on(memory_testkit::pg18().await, ServerConfig::default()).await;
    advertises_hybrid(&h, DIM).await;
    hybrid_finds_what_each_ranking_alone_misses(&h).await;
    without_mode_v1_is_unchanged(&h).await;
    missing_ingredients_are_400(&h).await;
}

/// Equal fused scores: the newer memory first, then the smaller id.
#[tokio::test]
async fn sqlite_equal_fused_scores_put_the_newer_first() {
    let h = sqlite_server(ServerConfig::default()).await;
    h.namespace(NS).await;
    // OLD is only in the text ranking, NEW only in the vector ranking, each
    // first there: 1/61 each.
    let mut old = fact("coffee machine manual");
    old["created_at"] = json!("2026-01-01T00:00:00Z");
    h.write(NS, old).await;
    let mut new = fact("espresso maker");
    new["embedding"] = json!([1.0, 0.0, 0.0]);
    new["created_at"] = json!("2026-06-01T00:00:00Z");
    h.write(NS, new).await;
    let mut body = request(Some("hybrid"), 10);
    body.as_object_mut().unwrap().remove("kinds");
    let fused = h.search(body).await;
    assert_eq!(
        contents(&fused),
        ["espresso maker", "coffee machine manual"]
    );
    assert_eq!(scores(&fused), [1.0 / 61.0, 1.0 / 61.0]);
}

/// v1-only does not advertise `hybrid` and ignores `mode` like any unknown
/// field: a hybrid request without an embedding is a v1 full-text search.
#[tokio::test]
async fn v1_only_neither_advertises_nor_honours_mode() {
    let h = sqlite_server(ServerConfig {
        v1_only: true,
        ..ServerConfig::default()
    })
    .await;
    let (_, health) = h.get("/v1/health").await;
    assert!(
        !health["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("hybrid")),
        "{health}"
    );
    corpus(&h).await;
    let mut body = request(Some("hybrid"), 5);
    body.as_object_mut().unwrap().remove("embedding");
    let v1 = h.search(body).await;
    assert_eq!(contents(&v1), [TEXTUAL]);
    // With both, the embedding wins as in v1, whatever mode says.
    let semantic = h.search(request(Some("fulltext"), 2)).await;
    assert_eq!(contents(&semantic), [SEMANTIC, DISTRACTOR]);
}

/// Without pgvector there is no embedding search, so no `hybrid` either,
/// and `mode` is ignored.
#[tokio::test]
async fn pg15_without_pgvector_does_not_advertise_hybrid() {
    let h = pg_server(ServerConfig::default()).await;
    let (_, health) = h.get("/v1/health").await;
    let caps = health["capabilities"].as_array().unwrap();
    assert!(!caps.contains(&json!("hybrid")), "{health}");
    h.namespace(NS).await;
    h.write(NS, fact(TEXTUAL)).await;
    let found = h
        .search(json!({ "namespaces": [NS], "query": "coffee machine", "mode": "hybrid" }))
        .await;
    assert_eq!(contents(&found), [TEXTUAL]);
}
