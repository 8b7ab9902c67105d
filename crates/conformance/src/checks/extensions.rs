//! This project's extensions, each checked only when advertised.

use crate::checks::expect_error;
use crate::context::{contents, CheckCtx};
use crate::outcome::{ensure, pass, CheckResult, Failure};
use chrono::{DateTime, Utc};
use memory_contract::{BatchItemResult, BatchResponse, MemoryKind, MemorySource, MemoryWrite};
use reqwest::Method;
use serde_json::json;
use std::collections::HashSet;
use uuid::Uuid;

/// `batch`: results in input order; bad items fail alone.
pub(crate) async fn batch_mixed(ctx: &CheckCtx) -> CheckResult {
    let ns = ctx.namespace("ns").await?;
    let absent = ctx.name("absent");
    let id = Uuid::new_v4();
    let body = json!({ "writes": [
        { "namespace": ns, "id": id, "content": "first", "kind": "fact", "source": "agent" },
        { "namespace": ns, "content": "   ", "kind": "fact", "source": "agent" },
        { "namespace": ns, "content": "third", "kind": "summary", "source": "runtime" },
        { "namespace": absent, "content": "fourth", "kind": "fact", "source": "agent" },
    ]});
    let answer = ctx
        .raw(
            Method::POST,
            &["v1", "memories", "batch"],
            Some(&body.to_string()),
        )
        .await?;
    ensure(answer.status == 200, "a mixed batch to answer 200", || {
        answer.describe()
    })?;
    let batch: BatchResponse = serde_json::from_slice(&answer.body).map_err(|e| {
        Failure::new(
            "a batch answer {results: [...]}",
            format!("{} ({e})", answer.describe()),
        )
    })?;
    let shape: Vec<String> = batch
        .results
        .iter()
        .map(|r| match r {
            BatchItemResult::Ok(ack) => format!("ok {} in {}", ack.id, ack.namespace),
            BatchItemResult::Err { error } => format!("error {}", error.code),
        })
        .collect();
    let expected_shape = matches!(
        batch.results.as_slice(),
        [
            BatchItemResult::Ok(a),
            BatchItemResult::Err { error: e1 },
            BatchItemResult::Ok(c),
            BatchItemResult::Err { error: e3 },
        ] if a.id == id && a.namespace == ns && c.namespace == ns
            && e1.code.as_str() == "bad_request" && e3.code.as_str() == "not_found"
    );
    ensure(
        expected_shape,
        format!("results in input order: [ok {id}, error bad_request, ok, error not_found]"),
        || format!("{shape:?}"),
    )?;
    let found = ctx.recent(&[&ns]).await?;
    let mut got = contents(&found);
    got.sort_unstable();
    ensure(
        got == ["first", "third"],
        "the two good items stored",
        || format!("{got:?}"),
    )?;
    pass()
}

/// `list`: pages ordered by id, `next_after` until the last page, every row
/// once; GET of a namespace is 200 or 404.
pub(crate) async fn list_paging(ctx: &CheckCtx) -> CheckResult {
    let ns = ctx.namespace("ns").await?;
    let mut written = HashSet::new();
    for i in 0..5 {
        written.insert(ctx.write(&ns, &format!("listed {i}")).await?.id);
    }
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = Vec::new();
    loop {
        let page = ctx
            .client()
            .list_memories(&ns, after, 2)
            .await
            .map_err(|e| Failure::step("list a page of 2", e))?;
        pages.push(page.memories.len());
        seen.extend(page.memories.iter().map(|m| m.id));
        match page.next_after {
            Some(next) if pages.len() < 10 => after = Some(next),
            _ => break,
        }
    }
    let ascending = seen.windows(2).all(|w| w[0] < w[1]);
    let all: HashSet<Uuid> = seen.iter().copied().collect();
    ensure(
        ascending && all == written && seen.len() == 5,
        "5 rows, each once, in ascending id order, over pages of 2",
        || format!("pages of {pages:?}, ids {seen:?}"),
    )?;
    ensure(
        pages == [2, 2, 1],
        "pages of [2, 2, 1] with no next_after on the last",
        || format!("pages of {pages:?}"),
    )?;
    let got = ctx
        .client()
        .get_namespace(&ns)
        .await
        .map_err(|e| Failure::step("GET the namespace", e))?;
    ensure(
        got.as_ref().is_some_and(|n| n.name == ns),
        format!("GET /v1/namespaces/{ns} to answer the namespace"),
        || format!("{got:?}"),
    )?;
    let absent = ctx.name("absent");
    let answer = ctx
        .raw(Method::GET, &["v1", "namespaces", &absent], None)
        .await?;
    expect_error(
        "GET of an absent namespace",
        &answer,
        &[404],
        Some("not_found"),
    )?;
    let answer = ctx
        .raw(
            Method::GET,
            &["v1", "namespaces", &absent, "memories"],
            None,
        )
        .await?;
    expect_error(
        "list of an absent namespace",
        &answer,
        &[404],
        Some("not_found"),
    )?;
    pass()
}

/// `created_at`: a write's `created_at` is stored and returned.
pub(crate) async fn created_at_kept(ctx: &CheckCtx) -> CheckResult {
    let ns = ctx.namespace("ns").await?;
    let when: DateTime<Utc> = "2020-01-02T03:04:05Z"
        .parse()
        .map_err(|e| Failure::new("a valid timestamp", format!("{e}")))?;
    let mut write = MemoryWrite::new("migrated memory", MemoryKind::Fact, MemorySource::Runtime);
    write.created_at = Some(when);
    let ack = ctx.write_full(&ns, &write).await?;
    let found = ctx.recent(&[&ns]).await?;
    let got = found.iter().find(|m| m.id == ack.id).map(|m| m.created_at);
    ensure(got == Some(when), format!("created_at {when} kept"), || {
        format!("{got:?}")
    })?;
    pass()
}
