//! This project's extensions, each checked only when advertised.

use crate::checks::expect_error;
use crate::context::{contents, CheckCtx};
use crate::outcome::{ensure, pass, CheckResult, Failure, StepResult};
use chrono::{DateTime, Utc};
use memory_contract::checksum::{self, Accumulator};
use memory_contract::{
    capability, BatchItemResult, BatchResponse, MemoryKind, MemorySource, MemoryWrite,
};
use reqwest::Method;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashSet};
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
/// once; GET of a namespace is 200 or 404; the namespace listing holds an
/// empty namespace.
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
    // GET /v1/namespaces lists namespaces by name, empty ones too. The
    // plugin may hold others, so the listing starts just below the empty
    // one's name (a proper prefix sorts first).
    let empty = ctx.namespace("empty").await?;
    let below = &empty[..empty.len() - 1];
    let listed = ctx
        .client()
        .list_namespaces(Some(below), 1000)
        .await
        .map_err(|e| Failure::step("GET /v1/namespaces", e))?;
    let names: Vec<&str> = listed.namespaces.iter().map(|n| n.name.as_str()).collect();
    ensure(
        names.first() == Some(&empty.as_str()) && names.windows(2).all(|w| w[0] < w[1]),
        format!("GET /v1/namespaces?after={below} to start with the empty namespace {empty}, names ascending"),
        || format!("{names:?}"),
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

/// Bucket prefix the `checksum` check reads: 65536 buckets, so the few
/// memories it writes land in buckets of their own unless the plugin holds
/// very many memories, and a wrong digest cannot hide among others.
const CHECKSUM_PREFIX: u32 = 4;

/// Count and digest per bucket name, as a plugin answered them.
type Buckets = BTreeMap<String, (u64, u128)>;

/// `checksum`: per-bucket digests follow writes and deletes exactly. The
/// plugin may hold other data, so the check works on differences: taken
/// before and after its own writes, each bucket its memories fall in must
/// change by exactly their count and the XOR of their digests (computed
/// from the memories as search returns them), every other bucket must stay
/// as it was, and deleting its namespaces must bring every bucket back.
pub(crate) async fn checksum_tracks_writes(ctx: &CheckCtx) -> CheckResult {
    let before_plain = checksums(ctx, CHECKSUM_PREFIX, false, "before the writes").await?;
    let before_aged = checksums(ctx, CHECKSUM_PREFIX, true, "before the writes").await?;

    // Fresh ids, two of them sharing a bucket, so that one bucket must hold
    // the XOR of two digests; one memory with an explicit creation time when
    // the plugin takes it.
    let first = ctx.namespace("first").await?;
    let second = ctx.namespace("second").await?;
    let shared = Uuid::new_v4();
    let mate = Uuid::from_u128(
        (shared.as_u128() & !((1u128 << 112) - 1))
            | (Uuid::new_v4().as_u128() & ((1u128 << 112) - 1)),
    );
    let mut writes: Vec<(&str, Uuid, &str, Option<DateTime<Utc>>)> = vec![
        (&first, shared, "checksummed one: déjà vu ✓", None),
        (&first, mate, "checksummed two, same bucket", None),
        (
            &second,
            Uuid::new_v4(),
            "checksummed three\nover two lines",
            None,
        ),
    ];
    if ctx.suite.supports(capability::CREATED_AT) {
        let when = "2021-03-04T05:06:07.123456Z"
            .parse()
            .map_err(|e| Failure::new("a valid timestamp", format!("{e}")))?;
        writes.push((
            &second,
            Uuid::new_v4(),
            "checksummed four, migrated",
            Some(when),
        ));
    }
    for (ns, id, content, created_at) in &writes {
        let mut write = MemoryWrite::new(*content, MemoryKind::Fact, MemorySource::Agent);
        write.id = Some(*id);
        write.created_at = *created_at;
        let ack = ctx.write_full(ns, &write).await?;
        ensure(
            ack.id == *id,
            format!("the write of id {id} to be acknowledged with it"),
            || format!("acknowledged as {}", ack.id),
        )?;
    }

    // The memories as the plugin returns them.
    let found = ctx.recent(&[&first, &second]).await?;
    let mut plain = Accumulator::new(CHECKSUM_PREFIX);
    let mut aged = Accumulator::new(CHECKSUM_PREFIX);
    for (ns, id, _, _) in &writes {
        let memory = found.iter().find(|m| m.id == *id && m.namespace == *ns);
        let Some(m) = memory else {
            return Err(Failure::new(
                format!("search over {first} and {second} to return memory {id} of {ns}"),
                format!("ids {:?}", found.iter().map(|m| m.id).collect::<Vec<_>>()),
            ));
        };
        plain.add(
            m.id,
            checksum::memory_digest(m.id, &m.namespace, &m.content, None),
        );
        aged.add(
            m.id,
            checksum::memory_digest(m.id, &m.namespace, &m.content, Some(m.created_at)),
        );
    }

    let after_plain = checksums(ctx, CHECKSUM_PREFIX, false, "after the writes").await?;
    let after_aged = checksums(ctx, CHECKSUM_PREFIX, true, "after the writes").await?;
    expect_delta(
        &before_plain,
        &after_plain,
        &plain.to_map(),
        "with created_at=false after the writes:",
    )?;
    expect_delta(
        &before_aged,
        &after_aged,
        &aged.to_map(),
        "with created_at=true after the writes:",
    )?;

    // Deleting the namespaces takes their memories out of every bucket.
    for ns in [&first, &second] {
        ctx.client()
            .delete_namespace(ns)
            .await
            .map_err(|e| Failure::step(&format!("DELETE namespace {ns}"), e))?;
    }
    for (created_at, before) in [(false, &before_plain), (true, &before_aged)] {
        let now = checksums(ctx, CHECKSUM_PREFIX, created_at, "after the deletes").await?;
        expect_delta(
            before,
            &now,
            &BTreeMap::new(),
            &format!("with created_at={created_at}, once the namespaces written to are deleted:"),
        )?;
    }

    for prefix in ["5", "-1", "x"] {
        let answer = ctx
            .raw_with_query(
                Method::GET,
                &["v1", "memories", "checksums"],
                &[("prefix", prefix)],
                None,
            )
            .await?;
        expect_error(
            &format!("checksums with prefix={prefix}"),
            &answer,
            &[400],
            Some("bad_request"),
        )?;
    }
    pass()
}

/// Reads the checksums and checks the answer's shape: the prefix and
/// created_at asked for, bucket names of `prefix` lowercase hex digits in
/// ascending order, counts of at least 1, digests of 32 lowercase hex digits.
async fn checksums(
    ctx: &CheckCtx,
    prefix: u32,
    created_at: bool,
    when: &str,
) -> StepResult<Buckets> {
    let what = format!("GET /v1/memories/checksums?prefix={prefix}&created_at={created_at} {when}");
    let answer = ctx
        .client()
        .memory_checksums(prefix, created_at)
        .await
        .map_err(|e| Failure::step(&what, e))?;
    ensure(
        answer.prefix == prefix && answer.created_at == created_at,
        format!("{what}: an answer with prefix {prefix} and created_at {created_at}"),
        || format!("prefix {}, created_at {}", answer.prefix, answer.created_at),
    )?;
    let lower_hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let mut buckets = Buckets::new();
    let mut last: Option<&str> = None;
    for bucket in &answer.buckets {
        let digest = checksum::parse_digest(&bucket.digest).filter(|_| lower_hex(&bucket.digest));
        let well_formed = bucket.prefix.len() == prefix as usize
            && lower_hex(&bucket.prefix)
            && bucket.count >= 1
            && digest.is_some()
            && !matches!(last, Some(l) if l >= bucket.prefix.as_str());
        let Some(digest) = digest.filter(|_| well_formed) else {
            return Err(Failure::new(
                format!(
                    "{what}: buckets named by {prefix} lowercase hex digits in ascending order, \
                     each with a count of at least 1 and a digest of 32 lowercase hex digits"
                ),
                format!(
                    "bucket {:?} (count {}, digest {:?}) after {last:?}",
                    bucket.prefix, bucket.count, bucket.digest
                ),
            ));
        };
        last = Some(&bucket.prefix);
        buckets.insert(bucket.prefix.clone(), (bucket.count, digest));
    }
    Ok(buckets)
}

/// Checks that `after` is `before` with `delta` added: the buckets in
/// `delta` changed by exactly its count and XOR, every other bucket as it
/// was. Names the first few buckets that differ.
fn expect_delta(
    before: &Buckets,
    after: &Buckets,
    delta: &BTreeMap<u32, (u64, u128)>,
    what: &str,
) -> StepResult<()> {
    let delta: BTreeMap<String, (u64, u128)> = delta
        .iter()
        .map(|(index, v)| (checksum::bucket_name(*index, CHECKSUM_PREFIX), *v))
        .collect();
    let names: BTreeSet<&String> = before
        .keys()
        .chain(after.keys())
        .chain(delta.keys())
        .collect();
    let show = |v: Option<(u64, u128)>| match v {
        Some((count, digest)) => {
            format!("count {count}, digest {}", checksum::format_digest(digest))
        }
        None => "absent".to_string(),
    };
    let mut wrong = Vec::new();
    for name in names {
        let was = before.get(name).copied();
        let expected = match delta.get(name) {
            None => was,
            Some((count, digest)) => {
                let (old_count, old_digest) = was.unwrap_or((0, 0));
                Some((old_count + count, old_digest ^ digest))
            }
        };
        let got = after.get(name).copied();
        if got != expected {
            let role = if delta.contains_key(name) {
                "touched"
            } else {
                "untouched"
            };
            wrong.push(format!(
                "{role} bucket {name}: expected {}, got {} (before: {})",
                show(expected),
                show(got),
                show(was)
            ));
        }
    }
    let expected = if delta.is_empty() {
        format!("checksums {what} every bucket as it was")
    } else {
        let touched: Vec<String> = delta
            .iter()
            .map(|(name, (count, _))| format!("{name} +{count}"))
            .collect();
        format!(
            "checksums {what} each bucket of the new memories ({}) changed by exactly their count \
             and the XOR of their digests, every other bucket unchanged",
            touched.join(", ")
        )
    };
    ensure(wrong.is_empty(), expected, || {
        let more = wrong.len().saturating_sub(3);
        let mut shown = wrong[..wrong.len().min(3)].join("; ");
        if more > 0 {
            shown.push_str(&format!("; and {more} more"));
        }
        shown
    })
}
