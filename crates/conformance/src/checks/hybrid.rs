//! Extension `hybrid`: a search naming `mode: "hybrid"` answers a ranking of
//! the requested namespaces only, within the limit, and a missing
//! ingredient (query or embedding) is 400 with the envelope.

use super::expect_error;
use crate::context::{contents, CheckCtx};
use crate::outcome::{describe_client_error, ensure, pass, CheckResult, Failure};
use memory_contract::{MemoryKind, MemorySource, MemoryWrite, RankMode, SearchRequest};
use reqwest::Method;
use serde_json::json;

pub(crate) async fn search_hybrid(ctx: &CheckCtx) -> CheckResult {
    let dim = ctx.suite.embedding_dim;
    if dim < 2 {
        return Err(Failure::new(
            "--embedding-dim of at least 2",
            format!("{dim}"),
        ));
    }
    let axis = |i: usize| {
        let mut v = vec![0.0f32; dim];
        v[i] = 1.0;
        v
    };
    let mine = ctx.namespace("hybrid").await?;
    // A neighbour sharing the name as a prefix, which must not leak in.
    let other = format!("{mine}-other");
    ctx.create(&other).await?;
    let writes = [
        (&mine, "Descale the coffee machine on Fridays", axis(1)),
        (&mine, "The espresso maker needs fresh beans", axis(0)),
        (&mine, "Lunch orders go to the office manager", axis(0)),
        (&mine, "Coffee machine filters are in the cupboard", axis(1)),
        (&other, "The coffee machine of another team", axis(0)),
    ];
    for (namespace, content, embedding) in writes {
        let mut write = MemoryWrite::new(content, MemoryKind::Fact, MemorySource::Agent);
        write.embedding = Some(embedding);
        ctx.client()
            .write_memory(namespace, &write)
            .await
            .map_err(|e| {
                Failure::new(
                    "a write with an embedding to succeed",
                    format!(
                        "{} (the suite sent {dim} dimensions; pass --embedding-dim with the \
                         plugin's dimension)",
                        describe_client_error(&e)
                    ),
                )
            })?;
    }
    let request = |limit: i64| SearchRequest {
        namespaces: vec![mine.clone()],
        query: Some("coffee machine".into()),
        embedding: Some(axis(0)),
        limit: Some(limit),
        mode: Some(RankMode::Hybrid),
        ..SearchRequest::default()
    };
    let every = ctx.search(request(100)).await?;
    ensure(
        !every.is_empty() && every.iter().all(|m| m.namespace == mine),
        format!("a hybrid search of {mine} to answer memories of {mine} only"),
        || {
            format!(
                "{:?}",
                every
                    .iter()
                    .map(|m| (m.namespace.as_str(), m.content.as_str()))
                    .collect::<Vec<_>>()
            )
        },
    )?;
    let scores: Vec<Option<f64>> = every.iter().map(|m| m.score).collect();
    ensure(
        scores.iter().all(Option::is_some) && scores.windows(2).all(|w| w[0] >= w[1]),
        "every hybrid result to carry a score, best first",
        || format!("{scores:?}"),
    )?;
    let limited = ctx.search(request(2)).await?;
    ensure(limited.len() == 2, "limit 2 to answer 2 memories", || {
        format!("{:?}", contents(&limited))
    })?;

    let missing = [
        (
            "mode hybrid without an embedding",
            json!({ "namespaces": [mine], "query": "coffee machine", "mode": "hybrid" }),
        ),
        (
            "mode hybrid without a query",
            json!({ "namespaces": [mine], "embedding": axis(0), "mode": "hybrid" }),
        ),
    ];
    for (what, body) in missing {
        let answer = ctx
            .raw(Method::POST, &["v1", "search"], Some(&body.to_string()))
            .await?;
        expect_error(what, &answer, &[400], Some("bad_request"))?;
    }
    pass()
}
