//! Bad inputs get a 4xx answer with the error envelope, never a 5xx.

use crate::checks::expect_error;
use crate::context::CheckCtx;
use crate::outcome::{ensure, pass, CheckResult};
use reqwest::Method;
use serde_json::json;

/// Syntactically bad JSON and wrong types on every route with a body.
pub(crate) async fn error_bad_json(ctx: &CheckCtx) -> CheckResult {
    let ns = ctx.namespace("ns").await?;
    let cases: [(&str, Method, Vec<&str>, &str); 5] = [
        (
            "truncated JSON on a memory write",
            Method::POST,
            vec!["v1", "namespaces", &ns, "memories"],
            r#"{"content": "x","#,
        ),
        (
            "truncated JSON on search",
            Method::POST,
            vec!["v1", "search"],
            r#"{"namespaces": ["#,
        ),
        (
            "non-JSON on namespace PUT",
            Method::PUT,
            vec!["v1", "namespaces", &ns],
            "kind=custom",
        ),
        (
            "content of the wrong type",
            Method::POST,
            vec!["v1", "namespaces", &ns, "memories"],
            r#"{"content": 5, "kind": "fact", "source": "agent"}"#,
        ),
        (
            "unknown memory kind",
            Method::POST,
            vec!["v1", "namespaces", &ns, "memories"],
            r#"{"content": "x", "kind": "rumour", "source": "agent"}"#,
        ),
    ];
    for (what, method, path, body) in cases {
        let answer = ctx.raw(method, &path, Some(body)).await?;
        expect_error(what, &answer, &[400, 422], Some("bad_request"))?;
    }
    pass()
}

/// Namespace names outside `^[a-z]+:[A-Za-z0-9_:.\-]+$` or over 256 chars.
pub(crate) async fn error_bad_namespace_name(ctx: &CheckCtx) -> CheckResult {
    let long = format!("custom:{}", "a".repeat(250));
    let put_body = r#"{"kind": "custom"}"#;
    for name in [
        "nocolon",
        "Upper:case",
        "custom:has space",
        "custom:",
        long.as_str(),
    ] {
        ctx.register(name);
        let answer = ctx
            .raw(Method::PUT, &["v1", "namespaces", name], Some(put_body))
            .await?;
        expect_error(
            &format!(
                "PUT of the bad namespace name {:?}",
                memory_contract::validate::excerpt(name, 40)
            ),
            &answer,
            &[400],
            Some("bad_request"),
        )?;
    }
    let search = json!({ "namespaces": ["Bad:name"] }).to_string();
    let answer = ctx
        .raw(Method::POST, &["v1", "search"], Some(&search))
        .await?;
    expect_error(
        "search naming the bad namespace \"Bad:name\"",
        &answer,
        &[400],
        Some("bad_request"),
    )?;
    pass()
}

/// Search `limit` 101 (and -1) is refused; 100 is fine.
pub(crate) async fn error_limit_101(ctx: &CheckCtx) -> CheckResult {
    let ns = ctx.namespace("ns").await?;
    for limit in [101, -1] {
        let body = json!({ "namespaces": [ns], "limit": limit }).to_string();
        let answer = ctx
            .raw(Method::POST, &["v1", "search"], Some(&body))
            .await?;
        expect_error(
            &format!("search with limit {limit}"),
            &answer,
            &[400],
            Some("bad_request"),
        )?;
    }
    let body = json!({ "namespaces": [ns], "limit": 100 }).to_string();
    let answer = ctx
        .raw(Method::POST, &["v1", "search"], Some(&body))
        .await?;
    ensure(
        answer.status == 200,
        "search with limit 100 to answer 200",
        || answer.describe(),
    )?;
    pass()
}

/// Blank content (empty or whitespace only) is refused.
pub(crate) async fn error_blank_content(ctx: &CheckCtx) -> CheckResult {
    let ns = ctx.namespace("ns").await?;
    for content in ["", "   \n\t"] {
        let body = json!({ "content": content, "kind": "fact", "source": "agent" }).to_string();
        let answer = ctx
            .raw(
                Method::POST,
                &["v1", "namespaces", &ns, "memories"],
                Some(&body),
            )
            .await?;
        expect_error(
            &format!("a write with content {content:?}"),
            &answer,
            &[400],
            Some("bad_request"),
        )?;
    }
    pass()
}

/// A NUL character in content is refused (many stores cannot keep one).
pub(crate) async fn error_nul_in_content(ctx: &CheckCtx) -> CheckResult {
    let ns = ctx.namespace("ns").await?;
    let body =
        json!({ "content": "before\u{0}after", "kind": "fact", "source": "agent" }).to_string();
    let answer = ctx
        .raw(
            Method::POST,
            &["v1", "namespaces", &ns, "memories"],
            Some(&body),
        )
        .await?;
    expect_error(
        "a write whose content holds a NUL character",
        &answer,
        &[400],
        Some("bad_request"),
    )?;
    pass()
}

/// A non-UUID id in a write body or in the forget path is refused.
pub(crate) async fn error_non_uuid_id(ctx: &CheckCtx) -> CheckResult {
    let ns = ctx.namespace("ns").await?;
    let body = json!({ "id": "not-a-uuid", "content": "x", "kind": "fact", "source": "agent" })
        .to_string();
    let answer = ctx
        .raw(
            Method::POST,
            &["v1", "namespaces", &ns, "memories"],
            Some(&body),
        )
        .await?;
    expect_error(
        "a write with id \"not-a-uuid\"",
        &answer,
        &[400, 422],
        Some("bad_request"),
    )?;
    let forget = json!({ "requested_by_namespace": ns }).to_string();
    let answer = ctx
        .raw(
            Method::DELETE,
            &["v1", "memories", "not-a-uuid"],
            Some(&forget),
        )
        .await?;
    expect_error("DELETE /v1/memories/not-a-uuid", &answer, &[400, 404], None)?;
    pass()
}

/// An unknown route is 404 and a wrong method 405 (or 404), with the envelope.
pub(crate) async fn error_unknown_route(ctx: &CheckCtx) -> CheckResult {
    let answer = ctx.raw(Method::GET, &["v1", "no-such-route"], None).await?;
    expect_error("GET /v1/no-such-route", &answer, &[404], None)?;
    let answer = ctx.raw(Method::DELETE, &["v1", "search"], None).await?;
    expect_error(
        "DELETE /v1/search (wrong method)",
        &answer,
        &[405, 404],
        None,
    )?;
    pass()
}
