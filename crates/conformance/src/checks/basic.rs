//! Health and namespace lifecycle checks.

use crate::checks::expect_error;
use crate::context::CheckCtx;
use crate::outcome::{describe_client_error, ensure, pass, warn, CheckResult, Failure};
use memory_contract::{NamespaceKind, NamespacePatch, NamespaceUpsert};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// `GET /v1/health` answers 200 `{status: "ok", version: "1.x", capabilities: [strings]}`.
pub(crate) async fn health(ctx: &CheckCtx) -> CheckResult {
    let answer = ctx.raw(Method::GET, &["v1", "health"], None).await?;
    ensure(answer.status == 200, "GET /v1/health to answer 200", || {
        answer.describe()
    })?;
    let body = answer.json();
    let body = body
        .as_ref()
        .and_then(Value::as_object)
        .ok_or_else(|| Failure::new("a JSON object from /v1/health", answer.describe()))?;
    ensure(
        body.get("status").and_then(Value::as_str) == Some("ok"),
        "health status \"ok\"",
        || {
            format!(
                "status {}",
                body.get("status").map_or("absent".into(), Value::to_string)
            )
        },
    )?;
    let version = body.get("version").and_then(Value::as_str);
    ensure(
        version.is_some_and(|v| v.starts_with("1.")),
        format!(
            "health version of contract 1 (\"{}\")",
            memory_contract::CONTRACT_VERSION
        ),
        || {
            format!(
                "version {}",
                body.get("version")
                    .map_or("absent".into(), Value::to_string)
            )
        },
    )?;
    let caps = body.get("capabilities");
    if matches!(caps, None | Some(Value::Null)) {
        return warn(format!(
            "capabilities is {}; send [] when there are none (lenient clients read it as empty)",
            if caps.is_some() { "null" } else { "absent" }
        ));
    }
    let caps = caps.and_then(Value::as_array);
    ensure(
        caps.is_some_and(|c| c.iter().all(Value::is_string)),
        "capabilities: an array of strings",
        || {
            format!(
                "capabilities {}",
                body.get("capabilities")
                    .map_or("absent".into(), Value::to_string)
            )
        },
    )?;
    pass()
}

fn upsert(kind: NamespaceKind, metadata: Option<Value>) -> NamespaceUpsert {
    NamespaceUpsert {
        kind,
        expires_at: None,
        metadata,
    }
}

/// PUT twice creates once: same `created_at`, the second body's metadata,
/// memories kept.
pub(crate) async fn namespace_upsert_idempotent(ctx: &CheckCtx) -> CheckResult {
    let name = ctx.name("ns");
    let put = |metadata: Value| {
        let name = name.clone();
        async move {
            ctx.client()
                .upsert_namespace(&name, &upsert(NamespaceKind::Custom, Some(metadata)))
                .await
                .map_err(|e| Failure::step(&format!("PUT namespace {name}"), e))
        }
    };
    let first = put(json!({"v": 1})).await?;
    ensure(
        first.name == name && first.kind == NamespaceKind::Custom,
        format!("PUT to answer the namespace {name} of kind custom"),
        || format!("{first:?}"),
    )?;
    ensure(
        first.metadata == Some(json!({"v": 1})),
        "PUT to return the metadata it stored ({\"v\":1})",
        || format!("metadata {:?}", first.metadata),
    )?;
    let ack = ctx.write(&name, "survives a second PUT").await?;
    let second = put(json!({"v": 1})).await?;
    ensure(
        second.created_at == first.created_at,
        "a repeated PUT to keep created_at",
        || format!("created_at {} then {}", first.created_at, second.created_at),
    )?;
    let third = put(json!({"v": 2})).await?;
    ensure(
        third.metadata == Some(json!({"v": 2})),
        "a PUT with new metadata to replace it ({\"v\":2})",
        || format!("metadata {:?}", third.metadata),
    )?;
    ensure(
        third.created_at == first.created_at,
        "a PUT with new metadata to keep created_at",
        || format!("created_at {} then {}", first.created_at, third.created_at),
    )?;
    let memories = ctx.recent(&[&name]).await?;
    ensure(
        memories.iter().any(|m| m.id == ack.id),
        "memories of a namespace to survive a repeated PUT",
        || format!("memory {} missing after the second PUT", ack.id),
    )?;
    pass()
}

/// PATCH changes only the fields present; 404 when absent; 400 when empty.
pub(crate) async fn namespace_patch(ctx: &CheckCtx) -> CheckResult {
    let name = ctx.name("ns");
    ctx.client()
        .upsert_namespace(&name, &upsert(NamespaceKind::Custom, Some(json!({"a": 1}))))
        .await
        .map_err(|e| Failure::step("PUT namespace", e))?;
    let patched = ctx
        .client()
        .patch_namespace(
            &name,
            &NamespacePatch {
                expires_at: None,
                metadata: Some(json!({"b": 2})),
            },
        )
        .await
        .map_err(|e| Failure::step("PATCH metadata", e))?;
    ensure(
        patched.metadata == Some(json!({"b": 2})) && patched.kind == NamespaceKind::Custom,
        "PATCH {metadata:{b:2}} to set metadata to {b:2} and keep kind custom",
        || format!("kind {}, metadata {:?}", patched.kind, patched.metadata),
    )?;
    let expiry = crate::context::from_now(Duration::from_secs(3600));
    let patched = ctx
        .client()
        .patch_namespace(
            &name,
            &NamespacePatch {
                expires_at: Some(expiry),
                metadata: None,
            },
        )
        .await
        .map_err(|e| Failure::step("PATCH expires_at", e))?;
    let close = patched
        .expires_at
        .is_some_and(|e| (e - expiry).num_milliseconds().abs() <= 1000);
    ensure(
        close && patched.metadata == Some(json!({"b": 2})),
        format!("PATCH {{expires_at}} to set expires_at {expiry} and keep metadata {{b:2}}"),
        || {
            format!(
                "expires_at {:?}, metadata {:?}",
                patched.expires_at, patched.metadata
            )
        },
    )?;
    let empty = ctx
        .raw(Method::PATCH, &["v1", "namespaces", &name], Some("{}"))
        .await?;
    expect_error(
        "PATCH with an empty body {}",
        &empty,
        &[400, 422],
        Some("bad_request"),
    )?;
    let absent = ctx.name("absent");
    let missing = ctx
        .raw(
            Method::PATCH,
            &["v1", "namespaces", &absent],
            Some(r#"{"metadata":{"x":1}}"#),
        )
        .await?;
    expect_error(
        "PATCH of an absent namespace",
        &missing,
        &[404],
        Some("not_found"),
    )?;
    pass()
}

/// DELETE answers 204, takes the memories along, and 404 the second time.
pub(crate) async fn namespace_delete(ctx: &CheckCtx) -> CheckResult {
    let name = ctx.namespace("ns").await?;
    let ack = ctx.write(&name, "goes with its namespace").await?;
    let first = ctx
        .raw(Method::DELETE, &["v1", "namespaces", &name], None)
        .await?;
    ensure(
        first.status == 204,
        "DELETE namespace to answer 204",
        || first.describe(),
    )?;
    let again = ctx
        .raw(Method::DELETE, &["v1", "namespaces", &name], None)
        .await?;
    expect_error(
        "a second DELETE of the namespace",
        &again,
        &[404],
        Some("not_found"),
    )?;
    match ctx
        .client()
        .write_memory(
            &name,
            &memory_contract::MemoryWrite::new(
                "into a deleted namespace",
                memory_contract::MemoryKind::Fact,
                memory_contract::MemorySource::Agent,
            ),
        )
        .await
    {
        Err(e) if e.status() == Some(404) => {}
        Ok(ack) => {
            return Err(Failure::new(
                "a write into a deleted namespace to answer 404",
                format!("201 with id {}", ack.id),
            ))
        }
        Err(e) => {
            return Err(Failure::new(
                "a write into a deleted namespace to answer 404",
                describe_client_error(&e),
            ))
        }
    }
    ctx.create(&name).await?;
    let memories = ctx.recent(&[&name]).await?;
    ensure(
        !memories.iter().any(|m| m.id == ack.id),
        "a deleted namespace's memories to be gone, also after it is created again",
        || format!("memory {} still returned", ack.id),
    )?;
    pass()
}

/// With a token configured, a request without it is refused with 401 and
/// the envelope, and nothing is created.
pub(crate) async fn token_enforced(ctx: &CheckCtx) -> CheckResult {
    if ctx.suite.token.is_none() {
        return Ok(crate::outcome::Verdict::Skip(
            "no --token given; run with the plugin's token to check that it is enforced".into(),
        ));
    }
    let name = ctx.name("ns");
    let url = ctx.suite.url(&["v1", "namespaces", &name]);
    let answer = ctx
        .suite
        .raw
        .put(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(r#"{"kind": "custom"}"#)
        .send()
        .await
        .map_err(|e| {
            Failure::new(
                "an answer to a PUT without token",
                e.without_url().to_string(),
            )
        })?;
    let status = answer.status().as_u16();
    let body = answer.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    let answer = crate::context::RawAnswer { status, body };
    expect_error("a PUT without the token", &answer, &[401, 403], None)?;
    pass()
}
