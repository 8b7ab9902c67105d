//! Semantic search over real HTTP on PostgreSQL 18 with pgvector.

mod http_support;

use http_support::*;
use memory_plugin::server::ServerConfig;
use reqwest::StatusCode;
use serde_json::json;

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

#[tokio::test]
async fn semantic_search_on_pg18_ranks_the_nearest_first_with_score_one_minus_distance() {
    let h = pg_server_on(memory_testkit::pg18().await, ServerConfig::default()).await;
    let (_, health) = h.get("/v1/health").await;
    assert!(
        health["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("embedding")),
        "{health}"
    );

    h.namespace("team:vec").await;
    let vectors = [
        ("far", vec![0.0, 0.0, 1.0]),
        ("near", vec![0.9, 0.1, 0.0]),
        ("same", vec![1.0, 0.0, 0.0]),
        ("middle", vec![0.5, 0.0, 0.5]),
    ];
    for (content, embedding) in &vectors {
        let mut write = fact(content);
        write["embedding"] = json!(embedding);
        h.write("team:vec", write).await;
    }
    h.write("team:vec", fact("no embedding at all")).await;

    let probe = [1.0, 0.0, 0.0];
    let found = h
        .search(json!({"namespaces": ["team:vec"], "embedding": probe, "limit": 10}))
        .await;
    let order: Vec<&str> = found
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(&order[..4], ["same", "near", "middle", "far"], "{found:?}");
    for m in found.iter().take(4) {
        let content = m["content"].as_str().unwrap();
        let (_, v) = vectors.iter().find(|(c, _)| *c == content).unwrap();
        let expected = cosine(&probe, v);
        let score = m["score"].as_f64().expect("semantic results carry a score");
        assert!(
            (score - expected).abs() < 1e-4,
            "{content}: {score} vs {expected}"
        );
    }
}

#[tokio::test]
async fn embeddings_of_the_wrong_dimension_answer_400_on_pg18() {
    let h = pg_server_on(memory_testkit::pg18().await, ServerConfig::default()).await;
    h.namespace("team:dim").await;
    let mut write = fact("two dims");
    write["embedding"] = json!([1.0, 0.0]);
    let (status, body) = h.post("/v1/namespaces/team:dim/memories", write).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_envelope(&body, "bad_request");
    assert!(
        body["message"].as_str().unwrap().contains("dimension"),
        "{body}"
    );

    let (status, body) = h
        .post(
            "/v1/search",
            json!({"namespaces": ["team:dim"], "embedding": [1.0, 0.0, 0.0, 0.0]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_envelope(&body, "bad_request");
}
