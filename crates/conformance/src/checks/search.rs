//! Search modes and what search must (not) return: expiry, pins,
//! propagation, exact namespace matching, empty lists as `[]`.

use crate::context::{contents, from_now, CheckCtx, RawAnswer};
use crate::outcome::{describe_client_error, ensure, pass, warn, CheckResult, Failure, StepResult};
use memory_contract::{capability, Memory, MemoryKind, MemorySource, MemoryWrite, SearchRequest};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

fn request(namespaces: &[&str], query: Option<&str>) -> SearchRequest {
    SearchRequest {
        namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
        query: query.map(str::to_string),
        limit: Some(100),
        ..SearchRequest::default()
    }
}

/// A small pause so that successive writes get distinct creation times.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(15)).await;
}

/// No query: newest first; `limit` is honoured.
pub(crate) async fn search_recent(ctx: &CheckCtx) -> CheckResult {
    let ns = ctx.namespace("ns").await?;
    for content in ["oldest", "middle", "newest"] {
        ctx.write(&ns, content).await?;
        tick().await;
    }
    let found = ctx.recent(&[&ns]).await?;
    ensure(
        contents(&found) == ["newest", "middle", "oldest"],
        "newest first: [newest, middle, oldest]",
        || format!("{:?}", contents(&found)),
    )?;
    let limited = ctx
        .search(SearchRequest {
            limit: Some(2),
            ..request(&[&ns], None)
        })
        .await?;
    ensure(
        contents(&limited) == ["newest", "middle"],
        "limit 2 to return the two newest",
        || format!("{:?}", contents(&limited)),
    )?;
    pass()
}

/// `kinds` keeps only the kinds named.
pub(crate) async fn search_kinds_filter(ctx: &CheckCtx) -> CheckResult {
    let ns = ctx.namespace("ns").await?;
    ctx.write(&ns, "a fact").await?;
    ctx.write_full(
        &ns,
        &MemoryWrite::new("a summary", MemoryKind::Summary, MemorySource::Runtime),
    )
    .await?;
    let found = ctx
        .search(SearchRequest {
            kinds: Some(vec![MemoryKind::Summary]),
            ..request(&[&ns], None)
        })
        .await?;
    ensure(
        contents(&found) == ["a summary"],
        "kinds [summary] to return only the summary",
        || format!("{:?}", contents(&found)),
    )?;
    pass()
}

/// A one-character query: case-insensitive substring, with `%` and `_`
/// taken literally.
pub(crate) async fn search_substring(ctx: &CheckCtx) -> CheckResult {
    let ns = ctx.namespace("ns").await?;
    for content in [
        "Quiet morning",
        "100% sure",
        "snake_case name",
        "plain text",
    ] {
        ctx.write(&ns, content).await?;
    }
    let cases: [(&str, &[&str]); 3] = [
        ("q", &["Quiet morning"]),
        ("%", &["100% sure"]),
        ("_", &["snake_case name"]),
    ];
    for (query, expected) in cases {
        let found = ctx.search(request(&[&ns], Some(query))).await?;
        ensure(
            contents(&found) == expected,
            format!("query {query:?} to match only {expected:?} (case-insensitive substring, wildcards escaped)"),
            || format!("{:?}", contents(&found)),
        )?;
    }
    pass()
}

/// A query of two or more characters: English full-text with stemming and a
/// score.
pub(crate) async fn search_fts(ctx: &CheckCtx) -> CheckResult {
    let ns = ctx.namespace("ns").await?;
    ctx.write(&ns, "The foxes were jumping over the fences")
        .await?;
    ctx.write(&ns, "A completely unrelated sentence about tea")
        .await?;
    let found = ctx.search(request(&[&ns], Some("fox jumps"))).await?;
    ensure(
        contents(&found) == ["The foxes were jumping over the fences"],
        "query \"fox jumps\" to match only \"The foxes were jumping over the fences\" (English stemming)",
        || format!("{:?}", contents(&found)),
    )?;
    ensure(
        found[0].score.is_some(),
        "full-text results to carry a score",
        || "no score".into(),
    )?;
    pass()
}

/// Embedding given: cosine similarity, best first, score = 1 - distance.
pub(crate) async fn search_embedding(ctx: &CheckCtx) -> CheckResult {
    let dim = ctx.suite.embedding_dim;
    if dim < 2 {
        return Err(Failure::new(
            "--embedding-dim of at least 2",
            format!("{dim}"),
        ));
    }
    let ns = ctx.namespace("ns").await?;
    let axis = |i: usize| {
        let mut v = vec![0.0f32; dim];
        v[i] = 1.0;
        v
    };
    let mut diagonal = vec![0.0f32; dim];
    diagonal[0] = std::f32::consts::FRAC_1_SQRT_2;
    diagonal[1] = std::f32::consts::FRAC_1_SQRT_2;
    for (content, embedding) in [
        ("along x", axis(0)),
        ("along y", axis(1)),
        ("diagonal", diagonal),
    ] {
        let mut write = MemoryWrite::new(content, MemoryKind::Fact, MemorySource::Agent);
        write.embedding = Some(embedding);
        ctx.client().write_memory(&ns, &write).await.map_err(|e| {
            let mut seen = describe_client_error(&e);
            if e.status() == Some(400) {
                seen.push_str(&format!(
                    " (the suite sent {dim} dimensions; pass --embedding-dim with the plugin's dimension)"
                ));
            }
            Failure::new("a write with an embedding to succeed", seen)
        })?;
    }
    let found = ctx
        .client()
        .search(&SearchRequest {
            embedding: Some(axis(0)),
            ..request(&[&ns], None)
        })
        .await
        .map_err(|e| Failure::step("search by embedding", e))?
        .memories;
    ensure(
        contents(&found) == ["along x", "diagonal", "along y"],
        "nearest first: [along x, diagonal, along y]",
        || format!("{:?}", contents(&found)),
    )?;
    let scores: Vec<Option<f64>> = found.iter().map(|m| m.score).collect();
    let expected = [1.0, std::f64::consts::FRAC_1_SQRT_2, 0.0];
    let close = scores
        .iter()
        .zip(expected)
        .all(|(s, e)| s.is_some_and(|s| (s - e).abs() < 0.01));
    ensure(
        close,
        "scores 1 - cosine distance: [1.0, 0.707, 0.0]",
        || format!("{scores:?}"),
    )?;
    pass()
}

/// Search names namespaces exactly: no prefix, child or case-folded matches.
pub(crate) async fn exact_namespace_matching(ctx: &CheckCtx) -> CheckResult {
    let base = ctx.name("ns");
    let neighbours = [
        format!("{base}x"),
        format!("{base}:child"),
        format!("{base}-2"),
        base.replace("conformance", "CONFORMANCE"),
    ];
    ctx.create(&base).await?;
    ctx.write(&base, "mine").await?;
    for (i, n) in neighbours.iter().enumerate() {
        ctx.create(n).await?;
        ctx.write(n, &format!("neighbour {i}")).await?;
    }
    let mut queries = vec![None, Some("m")];
    if ctx.suite.supports(memory_contract::capability::FTS) {
        queries.push(Some("mine"));
    }
    for query in queries {
        let found = ctx.search(request(&[&base], query)).await?;
        ensure(
            found.iter().all(|m| m.namespace == base) && contents(&found) == ["mine"],
            format!(
                "search of [{base}] (query {:?}) to return only its own memory",
                query.unwrap_or("")
            ),
            || leak_report(&found),
        )?;
    }
    let two = ctx.search(request(&[&base, &neighbours[1]], None)).await?;
    let mut got = contents(&two);
    got.sort_unstable();
    ensure(
        got == ["mine", "neighbour 1"],
        "search of two namespaces to return exactly their two memories",
        || leak_report(&two),
    )?;
    pass()
}

fn leak_report(found: &[Memory]) -> String {
    found
        .iter()
        .map(|m| format!("{:?} from {}", m.content, m.namespace))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A memory expiring in 1 s is visible before and gone 2 s after writing.
pub(crate) async fn ttl_eviction(ctx: &CheckCtx) -> CheckResult {
    let ns = ctx.namespace("ns").await?;
    let mut write = MemoryWrite::new("short lived", MemoryKind::Fact, MemorySource::Agent);
    write.expires_at = Some(from_now(Duration::from_secs(1)));
    let written_at = tokio::time::Instant::now();
    let ack = ctx.write_full(&ns, &write).await?;
    ctx.write(&ns, "long lived").await?;
    let before = ctx.recent(&[&ns]).await?;
    ensure(
        before.iter().any(|m| m.id == ack.id),
        "a memory to be visible before its expiry (1 s after writing)",
        || format!("{:?}", contents(&before)),
    )?;
    tokio::time::sleep_until(written_at + Duration::from_secs(2)).await;
    let after = ctx.recent(&[&ns]).await?;
    ensure(
        contents(&after) == ["long lived"],
        "the expired memory gone 2 s after writing (expires_at was 1 s ahead)",
        || format!("{:?}", contents(&after)),
    )?;
    let substring = ctx.search(request(&[&ns], Some("s"))).await?;
    ensure(
        !substring.iter().any(|m| m.id == ack.id),
        "the expired memory gone from substring search too",
        || format!("{:?}", contents(&substring)),
    )?;
    pass()
}

/// Pinned memories come first where there is no score (newest-first and
/// substring modes).
pub(crate) async fn pin_first(ctx: &CheckCtx) -> CheckResult {
    let ns = ctx.namespace("ns").await?;
    let mut pinned = MemoryWrite::new("pinned old", MemoryKind::Fact, MemorySource::Agent);
    pinned.pin = Some(true);
    ctx.write_full(&ns, &pinned).await?;
    tick().await;
    ctx.write(&ns, "plain middle").await?;
    tick().await;
    ctx.write(&ns, "plain new").await?;
    let found = ctx.recent(&[&ns]).await?;
    ensure(
        contents(&found) == ["pinned old", "plain new", "plain middle"],
        "pinned first, then newest first: [pinned old, plain new, plain middle]",
        || format!("{:?}", contents(&found)),
    )?;
    ensure(
        found[0].pin,
        "the pinned memory returned with pin true",
        || "pin false".into(),
    )?;
    let substring = ctx.search(request(&[&ns], Some("l"))).await?;
    ensure(
        substring.first().map(|m| m.content.as_str()) == Some("pinned old"),
        "pinned first in substring mode (query \"l\")",
        || format!("{:?}", contents(&substring)),
    )?;
    pass()
}

/// `propagation` JSON comes back exactly as written.
pub(crate) async fn propagation_round_trip(ctx: &CheckCtx) -> CheckResult {
    let ns = ctx.namespace("ns").await?;
    let propagation = json!({
        "origin": "workspace:1",
        "hops": [1, 2.5, {"deep": true, "none": null}],
        "note": "ünïcode ✓",
    });
    let mut write = MemoryWrite::new("carries propagation", MemoryKind::Fact, MemorySource::Agent);
    write.propagation = Some(propagation.clone());
    let ack = ctx.write_full(&ns, &write).await?;
    let found = ctx.recent(&[&ns]).await?;
    let got = found
        .iter()
        .find(|m| m.id == ack.id)
        .map(|m| m.propagation.clone());
    ensure(
        got == Some(Some(propagation.clone())),
        format!("propagation returned as written: {propagation}"),
        || format!("{got:?}"),
    )?;
    pass()
}

/// An empty list is sent as `[]`: the search of an empty namespace and, when
/// advertised, an empty `list` or `scan` page. `null` or a missing list is
/// a warning: lenient clients read it as empty, strict ones fail to decode.
pub(crate) async fn empty_lists(ctx: &CheckCtx) -> CheckResult {
    let ns = ctx.namespace("empty").await?;
    let mut sloppy = Vec::new();
    let body = json!({ "namespaces": [ns] }).to_string();
    let answer = ctx
        .raw(Method::POST, &["v1", "search"], Some(&body))
        .await?;
    judge_empty_list(
        "the search of an empty namespace",
        &answer,
        "memories",
        &mut sloppy,
    )?;
    if ctx.suite.supports(capability::LIST) {
        let answer = ctx
            .raw(Method::GET, &["v1", "namespaces", &ns, "memories"], None)
            .await?;
        judge_empty_list(
            "the list of an empty namespace",
            &answer,
            "memories",
            &mut sloppy,
        )?;
    }
    if ctx.suite.supports(capability::SCAN) {
        let after = Uuid::max().to_string();
        let answer = ctx
            .raw_with_query(
                Method::GET,
                &["v1", "memories"],
                &[("after", after.as_str())],
                None,
            )
            .await?;
        judge_empty_list(
            "a scan after the largest id",
            &answer,
            "memories",
            &mut sloppy,
        )?;
    }
    if sloppy.is_empty() {
        pass()
    } else {
        warn(format!(
            "{}; send [] (lenient clients read it as empty, strict ones fail)",
            sloppy.join("; ")
        ))
    }
}

/// A 200 answer whose `key` is `[]`; `null` or absent goes to `sloppy`,
/// anything else fails.
fn judge_empty_list(
    what: &str,
    answer: &RawAnswer,
    key: &str,
    sloppy: &mut Vec<String>,
) -> StepResult<()> {
    ensure(
        answer.status == 200,
        format!("{what} to answer 200"),
        || answer.describe(),
    )?;
    let body = answer.json();
    let object = body
        .as_ref()
        .and_then(Value::as_object)
        .ok_or_else(|| Failure::new(format!("a JSON object from {what}"), answer.describe()))?;
    match object.get(key) {
        Some(Value::Array(list)) if list.is_empty() => {}
        None => sloppy.push(format!("{what} leaves out {key:?}")),
        Some(Value::Null) => sloppy.push(format!("{what} answers \"{key}\": null")),
        Some(_) => {
            return Err(Failure::new(
                format!("{what}: \"{key}\": []"),
                answer.describe(),
            ))
        }
    }
    Ok(())
}
