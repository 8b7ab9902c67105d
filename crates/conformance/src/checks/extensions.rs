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

/// `scan`: every namespace's memories by id. The plugin may hold other data,
/// so each row is found by scanning from the id just before it (`after` is
/// exclusive, so the first memory answered must be that row).
pub(crate) async fn scan_paging(ctx: &CheckCtx) -> CheckResult {
    let first = ctx.namespace("first").await?;
    let second = ctx.namespace("second").await?;
    let mut written: Vec<(Uuid, String, String)> = Vec::new();
    for (ns, n) in [(&first, 3), (&second, 2)] {
        for i in 0..n {
            let content = format!("scanned {i} in {ns}");
            let id = ctx.write(ns, &content).await?.id;
            written.push((id, ns.clone(), content));
        }
    }
    written.sort();
    for (id, ns, content) in &written {
        let before = Uuid::from_u128(id.as_u128().wrapping_sub(1));
        let page = ctx
            .client()
            .scan_memories(Some(before), None, 1)
            .await
            .map_err(|e| Failure::step("scan one memory", e))?;
        let got = page.memories.first();
        ensure(
            got.is_some_and(|m| m.id == *id && m.namespace == *ns && m.content == *content),
            format!("scan after {before} (limit 1) to answer {id} of {ns} first"),
            || {
                format!(
                    "{:?}",
                    got.map(|m| (m.id, m.namespace.clone(), m.content.clone()))
                )
            },
        )?;
        ensure(
            page.memories.len() == 1 && page.next_after == Some(*id),
            "a full page of 1 with next_after = its id",
            || {
                format!(
                    "{} memories, next_after {:?}",
                    page.memories.len(),
                    page.next_after
                )
            },
        )?;
    }
    // `before` bounds the scan from above, exclusively.
    let (low, high) = (written[0].0, written[1].0);
    let page = ctx
        .client()
        .scan_memories(
            Some(Uuid::from_u128(low.as_u128().wrapping_sub(1))),
            Some(high),
            10,
        )
        .await
        .map_err(|e| Failure::step("scan between two ids", e))?;
    let ids: Vec<Uuid> = page.memories.iter().map(|m| m.id).collect();
    ensure(
        ids.first() == Some(&low) && !ids.contains(&high) && ids.iter().all(|id| *id < high),
        format!("a scan with before={high} to start at {low} and stop before {high}"),
        || format!("{ids:?}"),
    )?;
    // A page of several is ascending.
    let lowest = Uuid::from_u128(written[0].0.as_u128().wrapping_sub(1));
    let page = ctx
        .client()
        .scan_memories(Some(lowest), None, 50)
        .await
        .map_err(|e| Failure::step("scan a page of 50", e))?;
    let ids: Vec<Uuid> = page.memories.iter().map(|m| m.id).collect();
    ensure(
        ids.windows(2).all(|w| w[0] < w[1]) && ids.first() == Some(&written[0].0),
        "a page in ascending id order starting at the lowest id written",
        || format!("{ids:?}"),
    )?;
    // A forgotten memory is no longer scanned.
    let (gone, gone_ns, _) = &written[0];
    ctx.client()
        .forget(*gone, gone_ns)
        .await
        .map_err(|e| Failure::step("forget a memory", e))?;
    let page = ctx
        .client()
        .scan_memories(Some(lowest), None, 1)
        .await
        .map_err(|e| Failure::step("scan after forgetting", e))?;
    ensure(
        page.memories.first().map(|m| m.id) != Some(*gone),
        format!("{gone} gone from the scan once forgotten"),
        || format!("{:?}", page.memories.first().map(|m| m.id)),
    )?;
    for (query, what) in [
        ([("after", "not-a-uuid")], "scan with a non-UUID after"),
        ([("before", "not-a-uuid")], "scan with a non-UUID before"),
        ([("limit", "1001")], "scan with limit 1001"),
    ] {
        let answer = ctx
            .raw_with_query(Method::GET, &["v1", "memories"], &query, None)
            .await?;
        expect_error(what, &answer, &[400], Some("bad_request"))?;
    }
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
