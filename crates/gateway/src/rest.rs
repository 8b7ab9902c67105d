//! The REST surface behind the memory inspector (and any other UI): the
//! same token, namespace rules, redaction and audit as the agents' tools.
//!
//! | route | answer |
//! |---|---|
//! | `GET /v2/whoami` | `{admin, workspace?}` |
//! | `GET /admin/workspaces` | `{workspaces:[…]}` (admin only) |
//! | `GET /workspaces/{id}/v2/namespaces` | `{workspace, display_name, readable, writable, semantic_search}` |
//! | `GET /workspaces/{id}/v2/memories` | `{memories, next_after, mode}` |
//! | `DELETE /workspaces/{id}/v2/memories/{memory_id}` | 204 |
//! | `POST /workspaces/{id}/memories` | 201 `{id, scope}` (the legacy commit) |
//!
//! A workspace token may use only its own workspace's paths (403
//! otherwise); an admin token may view and tidy any workspace, and every
//! deletion it makes is audited. Errors carry the envelope
//! `{"code","message"}`.
//!
//! Listing without `q` walks the selected namespaces (workspace, team, org)
//! through the plugin's `list` extension, which pages in id order: the
//! cursor `next_after` is `<namespace>/<last id>`, so every memory appears
//! exactly once however many pages it takes, and each page is sorted newest
//! first. A plugin without `list` answers its 100 newest (no cursor); a
//! search (`q`) answers its best matches in one page; with `mode=semantic`
//! (offered when `semantic_search` is true) the query's embedding ranks
//! them too, as `recall_memory` does.

use crate::auth::Caller;
use crate::http::{envelope, AppState};
use crate::service::{self, CommitMemoryArgs, ForgetMemoryArgs, Gateway, ToolError};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use memory_client::ClientError;
use memory_contract::{Memory, MemoryKind, NamespaceKind};
use memory_namespace::{NamespaceEntry, WorkspaceAccess};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::future::Future;
use std::time::Instant;
use uuid::Uuid;

/// Rows a listing page holds unless `limit` says otherwise.
pub const DEFAULT_PAGE: u32 = 100;
/// Most rows one listing page may ask for.
pub const MAX_PAGE: u32 = 1000;
/// Most rows a search (or a listing without the `list` extension) answers.
pub const MAX_SEARCH: u32 = 100;
/// Plugin pages one listing request reads at most before answering with
/// what it has and a cursor (a `kind` filter can skip many rows).
const MAX_PLUGIN_PAGES: usize = 20;

/// A refused call: its status, envelope code and sentence.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
    outcome: &'static str,
}

impl Refusal {
    fn bad_request(message: impl Into<String>) -> Self {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
            outcome: "invalid",
        }
    }

    fn forbidden(message: impl Into<String>) -> Self {
        Refusal {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: message.into(),
            outcome: "denied",
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Refusal {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
            outcome: "not_found",
        }
    }
}

impl From<ToolError> for Refusal {
    fn from(e: ToolError) -> Self {
        let outcome = e.outcome();
        let (status, code) = match &e {
            ToolError::Invalid(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ToolError::Denied(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ToolError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ToolError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ToolError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        };
        Refusal {
            status,
            code,
            message: e.to_string(),
            outcome,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        envelope(self.status, self.code, self.message)
    }
}

/// Runs a handler's body, records the call in the metrics, and turns a
/// refusal into the envelope.
async fn timed(
    state: &AppState,
    route: &'static str,
    body: impl Future<Output = Result<Response, Refusal>>,
) -> Response {
    let started = Instant::now();
    let result = body.await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(r) => r.outcome,
    };
    state
        .gateway
        .metrics()
        .record_call(route, outcome, started.elapsed());
    match result {
        Ok(response) => response,
        Err(refusal) => {
            tracing::info!(route, outcome, "REST call refused: {}", refusal.message);
            refusal.into_response()
        }
    }
}

fn parse_uuid(what: &str, raw: &str) -> Result<Uuid, Refusal> {
    Uuid::parse_str(raw.trim())
        .map_err(|_| Refusal::bad_request(format!("{what} {raw:?} is not a UUID")))
}

/// The access of workspace `ws` once `caller` may view it; a workspace
/// caller's call is taken from its rate-limit bucket.
async fn open(gw: &Gateway, caller: Caller, ws: Uuid) -> Result<WorkspaceAccess, Refusal> {
    match caller {
        Caller::Workspace(own) if own != ws => Err(Refusal::forbidden(format!(
            "this token speaks for workspace {own}; it may not view workspace {ws}"
        ))),
        Caller::Workspace(own) => {
            gw.check_rate(own)?;
            Ok(gw.access(ws).await?)
        }
        Caller::Admin => match gw.access(ws).await {
            Err(ToolError::Denied(_)) => Err(Refusal::not_found(format!(
                "no workspace {ws}, or it has been removed"
            ))),
            other => Ok(other?),
        },
    }
}

/// `GET /v2/whoami`: who the token speaks for.
async fn whoami(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> Response {
    timed(&state, "rest_whoami", async move {
        Ok(Json(match caller {
            Caller::Admin => json!({"admin": true}),
            Caller::Workspace(ws) => json!({"admin": false, "workspace": ws}),
        })
        .into_response())
    })
    .await
}

/// `GET /admin/workspaces`: every workspace, for an operator's picker.
async fn admin_workspaces(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Response {
    timed(&state, "rest_admin_workspaces", async {
        if caller != Caller::Admin {
            return Err(Refusal::forbidden(
                "only an operator's token (memory-gateway token --admin) lists workspaces",
            ));
        }
        let rows = state
            .gateway
            .directory()
            .list_workspaces()
            .await
            .map_err(ToolError::from)?;
        Ok(Json(json!({ "workspaces": rows })).into_response())
    })
    .await
}

#[derive(Serialize)]
struct NamespacesAnswer<'a> {
    workspace: Uuid,
    display_name: &'a str,
    readable: &'a [NamespaceEntry],
    writable: Vec<&'a NamespaceEntry>,
    /// True only when the plugin advertises `embedding` and the gateway can
    /// embed a query.
    semantic_search: bool,
}

/// `GET /workspaces/{id}/v2/namespaces`.
async fn namespaces(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    timed(&state, "rest_namespaces", async {
        let Path(raw) = path.map_err(|e| Refusal::bad_request(e.body_text()))?;
        let ws = parse_uuid("workspace id", &raw)?;
        let gw = &state.gateway;
        let access = open(gw, caller, ws).await?;
        let answer = NamespacesAnswer {
            workspace: ws,
            display_name: &access.readable()[0].display_name,
            readable: access.readable(),
            writable: access.writable().collect(),
            semantic_search: gw.can_embed() && gw.plugin().supports("embedding"),
        };
        Ok(Json(answer).into_response())
    })
    .await
}

/// Query of `GET /workspaces/{id}/v2/memories`; every field is text so that
/// a bad value gets a sentence naming it.
#[derive(Debug, Default, Deserialize)]
struct ListParams {
    namespace: Option<String>,
    q: Option<String>,
    kind: Option<String>,
    limit: Option<String>,
    after: Option<String>,
    /// `fulltext` (the default) or `semantic`: the search by meaning
    /// (hybrid when the plugin offers it), when the gateway embeds.
    mode: Option<String>,
}

/// A memory as the inspector shows it: the stored text (never prefixed),
/// with what the page needs to mark it.
#[derive(Serialize)]
struct Row<'a> {
    id: Uuid,
    namespace: &'a str,
    namespace_kind: NamespaceKind,
    namespace_display_name: &'a str,
    content: &'a str,
    kind: &'static str,
    source: &'static str,
    pin: bool,
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f64>,
    /// An org memory: every workspace of the organisation reads it.
    shared: bool,
    /// Whether this caller may forget it here.
    can_forget: bool,
}

#[derive(Serialize)]
struct MemoriesAnswer<'a> {
    memories: Vec<Row<'a>>,
    /// Pass as `after` for the next page; null on the last one.
    next_after: Option<String>,
    /// `list` (cursor paging), `recent` (the newest, no cursor) or `search`.
    mode: &'static str,
}

/// Where a listing resumes: a namespace and the last id seen in it.
fn parse_cursor(raw: &str, selected: &[String]) -> Result<(usize, Option<Uuid>), Refusal> {
    let bad = || {
        Refusal::bad_request(format!(
            "`after` {raw:?} is not a cursor of this listing: pass the `next_after` of the previous page with the same namespace"
        ))
    };
    let (ns, id) = raw.rsplit_once('/').ok_or_else(bad)?;
    let index = selected.iter().position(|s| s == ns).ok_or_else(bad)?;
    let id = match id {
        "" => None,
        id => Some(Uuid::parse_str(id).map_err(|_| bad())?),
    };
    Ok((index, id))
}

/// One listing page through the plugin's `list` extension: namespaces in
/// order, each in id order from the cursor, until `limit` rows are kept.
async fn list_page(
    gw: &Gateway,
    selected: &[String],
    kinds: Option<&[MemoryKind]>,
    limit: u32,
    start: (usize, Option<Uuid>),
) -> Result<(Vec<Memory>, Option<String>), ToolError> {
    let fetch = if kinds.is_some() { MAX_PAGE } else { limit };
    let mut rows: Vec<Memory> = Vec::new();
    let mut pages = 0;
    for (index, ns) in selected.iter().enumerate().skip(start.0) {
        let mut after = if index == start.0 { start.1 } else { None };
        loop {
            if pages == MAX_PLUGIN_PAGES {
                let at = after.map(|a| a.to_string()).unwrap_or_default();
                return Ok((rows, Some(format!("{ns}/{at}"))));
            }
            pages += 1;
            let page = match gw.plugin().list_memories(ns, after, fetch).await {
                Ok(page) => page,
                // A namespace nobody wrote yet does not exist in the plugin.
                Err(ClientError::Api { status: 404, .. }) => break,
                Err(e) => return Err(service::plugin_error(e, "listing memories")),
            };
            for m in page.memories {
                let id = m.id;
                if m.namespace != *ns || kinds.is_some_and(|k| !k.contains(&m.kind)) {
                    continue;
                }
                rows.push(m);
                if rows.len() >= limit as usize {
                    return Ok((rows, Some(format!("{ns}/{id}"))));
                }
            }
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    Ok((rows, None))
}

fn parse_limit(raw: Option<&str>, max: u32) -> Result<u32, Refusal> {
    match raw.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(DEFAULT_PAGE.min(max)),
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n.min(max)),
            _ => Err(Refusal::bad_request(format!(
                "`limit` {text:?} must be a number from 1 to {MAX_PAGE}"
            ))),
        },
    }
}

/// `GET /workspaces/{id}/v2/memories?namespace=&q=&kind=&limit=&after=`.
async fn memories(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Response {
    timed(&state, "rest_memories", async {
        let Path(raw) = path.map_err(|e| Refusal::bad_request(e.body_text()))?;
        let Query(params) = query.map_err(|e| Refusal::bad_request(e.body_text()))?;
        let ws = parse_uuid("workspace id", &raw)?;
        let gw = &state.gateway;
        let access = open(gw, caller, ws).await?;
        let selected: Vec<String> = match params
            .namespace
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            None => access.readable().iter().map(|e| e.name.clone()).collect(),
            Some(ns) if access.can_read(ns) => vec![ns.to_string()],
            Some(ns) => {
                return Err(Refusal::forbidden(format!(
                    "workspace {ws} may not read namespace {ns:?}; it reads: {}",
                    access
                        .readable()
                        .iter()
                        .map(|e| e.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        };
        let kinds: Option<Vec<MemoryKind>> =
            match params.kind.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
                None => None,
                Some(list) => Some(
                    list.split(',')
                        .map(service::parse_kind)
                        .collect::<Result<_, _>>()?,
                ),
            };
        let query = params
            .q
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(str::to_string);
        let by_meaning = match params
            .mode
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
        {
            None | Some("fulltext") => false,
            Some("semantic") => true,
            Some(other) => {
                return Err(Refusal::bad_request(format!(
                    "unknown mode {other:?}: use fulltext or semantic"
                )))
            }
        };
        let after = params
            .after
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty());
        if gw.plugin().capabilities().is_none() {
            // The plugin was down when the gateway started: look again.
            let _ = gw.plugin().refresh_capabilities().await;
        }
        let (mut found, next_after, mode) = if query.is_none() && gw.plugin().supports("list") {
            let limit = parse_limit(params.limit.as_deref(), MAX_PAGE)?;
            let start = match after {
                Some(raw) => parse_cursor(raw, &selected)?,
                None => (0, None),
            };
            let (rows, next) = list_page(gw, &selected, kinds.as_deref(), limit, start).await?;
            (rows, next, "list")
        } else {
            if after.is_some() {
                return Err(Refusal::bad_request(
                    "`after` pages a listing; a search (or a plugin without the list extension) answers one page",
                ));
            }
            let limit = parse_limit(params.limit.as_deref(), MAX_SEARCH)?;
            let mode = if query.is_some() { "search" } else { "recent" };
            let rows = if by_meaning {
                gw.search_by_meaning(
                    selected.clone(),
                    query,
                    kinds,
                    i64::from(limit),
                    "listing memories",
                    &service::QueryVector::new(),
                )
                .await?
            } else {
                gw.search(
                    selected.clone(),
                    query,
                    kinds,
                    i64::from(limit),
                    "listing memories",
                )
                .await?
            };
            (rows, None, mode)
        };
        if mode == "list" {
            found.sort_by(|a, b| {
                b.created_at
                    .cmp(&a.created_at)
                    .then_with(|| b.id.cmp(&a.id))
            });
        }
        let admin = caller == Caller::Admin;
        let memories = found
            .iter()
            .filter_map(|m| {
                let entry = access.entry(&m.namespace)?;
                Some(Row {
                    id: m.id,
                    namespace: &m.namespace,
                    namespace_kind: entry.kind,
                    namespace_display_name: &entry.display_name,
                    content: &m.content,
                    kind: m.kind.as_str(),
                    source: m.source.as_str(),
                    pin: m.pin,
                    expires_at: m.expires_at,
                    created_at: m.created_at,
                    score: m.score,
                    shared: entry.kind == NamespaceKind::Org,
                    can_forget: admin || entry.writable,
                })
            })
            .collect();
        Ok(Json(MemoriesAnswer {
            memories,
            next_after,
            mode,
        })
        .into_response())
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
struct ForgetParams {
    namespace: Option<String>,
}

/// `DELETE /workspaces/{id}/v2/memories/{memory_id}?namespace=`.
async fn forget(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<ForgetParams>, QueryRejection>,
) -> Response {
    timed(&state, "rest_forget", async {
        let Path((raw_ws, raw_id)) = path.map_err(|e| Refusal::bad_request(e.body_text()))?;
        let Query(params) = query.map_err(|e| Refusal::bad_request(e.body_text()))?;
        let ws = parse_uuid("workspace id", &raw_ws)?;
        let id = parse_uuid("memory id", &raw_id)?;
        let gw = &state.gateway;
        open(gw, caller, ws).await?;
        match caller {
            Caller::Admin => {
                gw.forget_as_admin(ws, id, params.namespace).await?;
            }
            Caller::Workspace(_) => {
                let args = ForgetMemoryArgs {
                    memory_id: Some(id.to_string()),
                    namespace: params.namespace,
                };
                gw.forget_memory(ws, args).await?;
            }
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

/// `POST /workspaces/{id}/memories` `{content, scope}`: the legacy commit.
async fn commit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    timed(&state, "rest_commit", async {
        let Path(raw) = path.map_err(|e| Refusal::bad_request(e.body_text()))?;
        let ws = parse_uuid("workspace id", &raw)?;
        let gw = &state.gateway;
        open(gw, caller, ws).await?;
        if caller == Caller::Admin {
            return Err(Refusal::forbidden(
                "an operator's token views and forgets memories; writing one needs the workspace's own token",
            ));
        }
        let Json(body) = body.map_err(|e| Refusal::bad_request(e.body_text()))?;
        let args: CommitMemoryArgs = serde_json::from_value(body)
            .map_err(|e| Refusal::bad_request(format!("bad body: {e}; send {{\"content\", \"scope\"}}")))?;
        let ack = gw.commit_memory(ws, args).await?;
        Ok((StatusCode::CREATED, Json(ack)).into_response())
    })
    .await
}

/// The REST routes; the caller puts them behind the bearer-token check.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/whoami", get(whoami))
        .route("/admin/workspaces", get(admin_workspaces))
        .route("/workspaces/{id}/v2/namespaces", get(namespaces))
        .route("/workspaces/{id}/v2/memories", get(memories))
        .route("/workspaces/{id}/v2/memories/{memory_id}", delete(forget))
        .route("/workspaces/{id}/memories", post(commit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_name_a_selected_namespace() {
        let selected = vec!["workspace:a".to_string(), "team:b".to_string()];
        let id = Uuid::new_v4();
        assert_eq!(
            parse_cursor(&format!("team:b/{id}"), &selected).unwrap(),
            (1, Some(id))
        );
        assert_eq!(parse_cursor("workspace:a/", &selected).unwrap(), (0, None));
        assert!(parse_cursor(&format!("org:c/{id}"), &selected).is_err());
        assert!(parse_cursor("team:b/nope", &selected).is_err());
        assert!(parse_cursor("garbage", &selected).is_err());
    }

    #[test]
    fn limits_are_checked_and_capped() {
        assert_eq!(parse_limit(None, MAX_PAGE).unwrap(), DEFAULT_PAGE);
        assert_eq!(parse_limit(Some("500"), MAX_SEARCH).unwrap(), MAX_SEARCH);
        assert!(parse_limit(Some("0"), MAX_PAGE).is_err());
        assert!(parse_limit(Some("1001"), MAX_PAGE).is_err());
        assert!(parse_limit(Some("ten"), MAX_PAGE).is_err());
    }
}
