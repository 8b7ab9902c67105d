//! Memory writes, forget, and the id idempotency key.

use crate::checks::expect_error;
use crate::context::{contents, in_namespace, CheckCtx};
use crate::outcome::{describe_client_error, ensure, pass, CheckResult, Failure, Verdict};
use chrono::Utc;
use futures::future::join_all;
use memory_contract::{MemoryKind, MemorySource, MemoryWrite, WriteAck};
use reqwest::Method;
use serde_json::json;
use std::collections::HashSet;
use uuid::Uuid;

/// Write (201 `{id, namespace}`), find it by search with every field, forget
/// it (204), and it is gone; a second forget is 404.
pub(crate) async fn memory_round_trip(ctx: &CheckCtx) -> CheckResult {
    let ns = ctx.namespace("ns").await?;
    let body = json!({"content": "round trip memory", "kind": "summary", "source": "user"});
    let answer = ctx
        .raw(
            Method::POST,
            &["v1", "namespaces", &ns, "memories"],
            Some(&body.to_string()),
        )
        .await?;
    ensure(answer.status == 201, "a memory write to answer 201", || {
        answer.describe()
    })?;
    let ack: WriteAck = serde_json::from_slice(&answer.body).map_err(|e| {
        Failure::new(
            "a write answer {id, namespace}",
            format!("{} ({e})", answer.describe()),
        )
    })?;
    ensure(
        ack.namespace == ns,
        format!("the write answer to name namespace {ns}"),
        || format!("namespace {}", ack.namespace),
    )?;
    let found = ctx.recent(&[&ns]).await?;
    let memory = found.iter().find(|m| m.id == ack.id).ok_or_else(|| {
        Failure::new(
            format!("search to return the memory {} just written", ack.id),
            format!("{} memories without it", found.len()),
        )
    })?;
    let age = Utc::now() - memory.created_at;
    ensure(
        memory.content == "round trip memory"
            && memory.kind == MemoryKind::Summary
            && memory.source == MemorySource::User
            && memory.namespace == ns
            && !memory.pin
            && age.num_minutes().abs() < 10,
        "the memory as written: content, kind summary, source user, pin false, created_at now",
        || format!("{memory:?}"),
    )?;
    let forget_body = json!({ "requested_by_namespace": ns }).to_string();
    let id = ack.id.to_string();
    let forgot = ctx
        .raw(Method::DELETE, &["v1", "memories", &id], Some(&forget_body))
        .await?;
    ensure(forgot.status == 204, "forget to answer 204", || {
        forgot.describe()
    })?;
    let after = ctx.recent(&[&ns]).await?;
    ensure(
        !after.iter().any(|m| m.id == ack.id),
        "a forgotten memory to be gone from search",
        || format!("memory {} still returned", ack.id),
    )?;
    let again = ctx
        .raw(Method::DELETE, &["v1", "memories", &id], Some(&forget_body))
        .await?;
    expect_error(
        "a second forget of the same memory",
        &again,
        &[404],
        Some("not_found"),
    )?;
    pass()
}

/// A write into a namespace that does not exist is 404.
pub(crate) async fn write_missing_namespace(ctx: &CheckCtx) -> CheckResult {
    let ns = ctx.name("absent");
    let body = json!({"content": "nowhere to go", "kind": "fact", "source": "agent"});
    let answer = ctx
        .raw(
            Method::POST,
            &["v1", "namespaces", &ns, "memories"],
            Some(&body.to_string()),
        )
        .await?;
    expect_error(
        "a write into an absent namespace",
        &answer,
        &[404],
        Some("not_found"),
    )?;
    pass()
}

/// Forget on behalf of another namespace is 404 and leaves the memory.
pub(crate) async fn forget_wrong_namespace(ctx: &CheckCtx) -> CheckResult {
    let owner = ctx.namespace("owner").await?;
    let other = ctx.namespace("other").await?;
    let ack = ctx.write(&owner, "not yours to forget").await?;
    let body = json!({ "requested_by_namespace": other }).to_string();
    let answer = ctx
        .raw(
            Method::DELETE,
            &["v1", "memories", &ack.id.to_string()],
            Some(&body),
        )
        .await?;
    let status_ok = expect_error(
        "forget from a namespace the memory is not in",
        &answer,
        &[404],
        Some("not_found"),
    );
    let still = ctx.recent(&[&owner]).await?;
    ensure(
        still.iter().any(|m| m.id == ack.id),
        "the memory to stay after a forget from the wrong namespace",
        || format!("memory {} is gone from {owner}", ack.id),
    )?;
    status_ok?;
    pass()
}

/// The same id written twice: one row holding the second content.
pub(crate) async fn id_upsert(ctx: &CheckCtx) -> CheckResult {
    let ns = ctx.namespace("ns").await?;
    let id = Uuid::new_v4();
    let mut write = MemoryWrite::new("first version", MemoryKind::Fact, MemorySource::Agent);
    write.id = Some(id);
    let first = ctx.write_full(&ns, &write).await?;
    write.content = "second version".into();
    let second = ctx.write_full(&ns, &write).await?;
    ensure(
        first.id == id && second.id == id,
        format!("both writes to answer the id they carried ({id})"),
        || format!("ids {} and {}", first.id, second.id),
    )?;
    let found = ctx.recent(&[&ns]).await?;
    ensure(
        found.len() == 1 && found[0].id == id && found[0].content == "second version",
        "one row with that id, holding the second content",
        || format!("{} rows: {:?}", found.len(), contents(&found)),
    )?;
    pass()
}

/// 50 concurrent writes of one id: all succeed, one row remains.
pub(crate) async fn id_concurrent_same(ctx: &CheckCtx) -> CheckResult {
    let ns = ctx.namespace("ns").await?;
    let id = Uuid::new_v4();
    let writes = (0..50).map(|i| {
        let ns = ns.clone();
        async move {
            let mut write = MemoryWrite::new(
                format!("concurrent version {i}"),
                MemoryKind::Fact,
                MemorySource::Agent,
            );
            write.id = Some(id);
            ctx.client().write_memory(&ns, &write).await
        }
    });
    let results = join_all(writes).await;
    let failures: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(describe_client_error))
        .collect();
    ensure(
        failures.is_empty(),
        "all 50 concurrent writes of one id to succeed",
        || format!("{} failed, first: {}", failures.len(), failures[0]),
    )?;
    let found = ctx.recent(&[&ns]).await?;
    ensure(
        found.len() == 1
            && found[0].id == id
            && found[0].content.starts_with("concurrent version "),
        "exactly one row with that id after 50 concurrent writes",
        || format!("{} rows: {:?}", found.len(), contents(&found)),
    )?;
    pass()
}

/// An id that lives in namespace A, written to B: not moved, not
/// overwritten (this project answers 409 `conflict`).
pub(crate) async fn id_other_namespace(ctx: &CheckCtx) -> CheckResult {
    let home = ctx.namespace("home").await?;
    let intruder = ctx.namespace("intruder").await?;
    let id = Uuid::new_v4();
    let mut write = MemoryWrite::new("original", MemoryKind::Fact, MemorySource::Agent);
    write.id = Some(id);
    ctx.write_full(&home, &write).await?;
    write.content = "overwritten from another namespace".into();
    let second = ctx.client().write_memory(&intruder, &write).await;
    let found = ctx.recent(&[&home, &intruder]).await?;
    let in_home = in_namespace(&found, &home);
    let in_intruder = in_namespace(&found, &intruder);
    ensure(
        in_home.len() == 1 && in_home[0].id == id && in_home[0].content == "original",
        format!("the memory to stay in {home} with its original content"),
        || {
            format!(
                "{home} holds {:?}; {intruder} holds {:?}",
                in_home.iter().map(|m| &m.content).collect::<Vec<_>>(),
                in_intruder.iter().map(|m| &m.content).collect::<Vec<_>>()
            )
        },
    )?;
    ensure(
        !in_intruder.iter().any(|m| m.id == id),
        format!("no row with id {id} in {intruder}"),
        || format!("{intruder} holds it"),
    )?;
    match second {
        Err(e) if e.status() == Some(409) => pass(),
        Err(e) if e.status().is_some_and(|s| (400..500).contains(&s)) => {
            Ok(Verdict::Pass(Some(format!(
                "refused with {} rather than 409 conflict",
                describe_client_error(&e)
            ))))
        }
        Err(e) => Err(Failure::new(
            "409 conflict for an id that lives in another namespace",
            describe_client_error(&e),
        )),
        Ok(ack) => Ok(Verdict::Pass(Some(format!(
            "answered 2xx (ack namespace {}) rather than 409 conflict, though nothing moved",
            ack.namespace
        )))),
    }
}

/// 100 concurrent writes without id: 100 distinct ids, 100 rows.
pub(crate) async fn concurrent_writes_without_id(ctx: &CheckCtx) -> CheckResult {
    let ns = ctx.namespace("ns").await?;
    let writes = (0..100).map(|i| {
        let ns = ns.clone();
        async move {
            ctx.client()
                .write_memory(
                    &ns,
                    &MemoryWrite::new(
                        format!("parallel {i}"),
                        MemoryKind::Fact,
                        MemorySource::Agent,
                    ),
                )
                .await
        }
    });
    let results = join_all(writes).await;
    let mut ids = HashSet::new();
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(ack) => {
                ids.insert(ack.id);
            }
            Err(e) => failures.push(describe_client_error(&e)),
        }
    }
    ensure(
        failures.is_empty(),
        "all 100 concurrent writes without id to succeed",
        || format!("{} failed, first: {}", failures.len(), failures[0]),
    )?;
    ensure(ids.len() == 100, "100 distinct ids", || {
        format!("{} distinct ids", ids.len())
    })?;
    let found = ctx.recent(&[&ns]).await?;
    let stored: HashSet<Uuid> = found.iter().map(|m| m.id).collect();
    ensure(
        stored == ids,
        "search (limit 100) to return exactly the 100 rows written",
        || {
            format!(
                "{} rows, {} of them among the acks",
                found.len(),
                stored.intersection(&ids).count()
            )
        },
    )?;
    pass()
}
