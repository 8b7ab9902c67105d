//! Route handlers: decode, validate with `memory_contract::validate`, call
//! the store, encode. Nothing here knows which backend is behind the store.

use super::error::{ApiError, ApiResult};
use super::extract::{decode_value, JsonBody, LargeJsonBody, PathParam, QueryParams};
use super::AppState;
use crate::store::SearchQuery;
use axum::extract::{OriginalUri, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use memory_contract::validate::{self, excerpt};
use memory_contract::{
    limits, BatchItemResult, BatchResponse, BatchWrite, ChecksumQuery, ChecksumResponse, ErrorCode,
    ForgetRequest, Health, ListQuery, ListResponse, MemoryWrite, Namespace, NamespaceListResponse,
    NamespacePatch, NamespaceUpsert, RankMode, SearchRequest, SearchResponse, WriteAck,
    CONTRACT_VERSION,
};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

type AppStateRef = State<Arc<AppState>>;

/// How long health waits for the store's ping.
const HEALTH_PING_BUDGET: Duration = Duration::from_secs(2);

/// `GET /v1/health`: 200 `ok`, or 503 `degraded` while storage is unreachable.
pub async fn health(State(state): AppStateRef) -> Response {
    let capabilities = state.capabilities();
    let problem = match tokio::time::timeout(HEALTH_PING_BUDGET, state.store.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!(
            "no answer within {} s",
            HEALTH_PING_BUDGET.as_secs()
        )),
    };
    match problem {
        None => Json(Health {
            status: "ok".to_string(),
            version: CONTRACT_VERSION.to_string(),
            capabilities,
            embedding_dimension: (state.features.embedding && !state.options.v1_only)
                .then_some(state.features.embedding_dim),
        })
        .into_response(),
        Some(cause) => {
            tracing::warn!(%cause, "health: storage ping failed");
            // The Health shape for v1 clients, plus the envelope fields that
            // every non-2xx answer carries.
            let body = serde_json::json!({
                "status": "degraded",
                "version": CONTRACT_VERSION,
                "capabilities": capabilities,
                "code": ErrorCode::Unavailable.as_str(),
                "message": "storage is unreachable; the plugin keeps retrying",
            });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

/// `PUT /v1/namespaces/{name}`.
pub async fn upsert_namespace(
    State(state): AppStateRef,
    PathParam(name): PathParam<String>,
    JsonBody(body): JsonBody<NamespaceUpsert>,
) -> ApiResult<Json<Namespace>> {
    validate::namespace_name("name", &name)?;
    validate::namespace_metadata(body.metadata.as_ref())?;
    Ok(Json(state.store.upsert_namespace(&name, &body).await?))
}

/// `GET /v1/namespaces/{name}` (extension `list`).
pub async fn get_namespace(
    State(state): AppStateRef,
    PathParam(name): PathParam<String>,
) -> ApiResult<Json<Namespace>> {
    validate::namespace_name("name", &name)?;
    match state.store.get_namespace(&name).await? {
        Some(ns) => Ok(Json(ns)),
        None => Err(namespace_not_found(&name)),
    }
}

/// `PATCH /v1/namespaces/{name}`.
pub async fn patch_namespace(
    State(state): AppStateRef,
    PathParam(name): PathParam<String>,
    JsonBody(body): JsonBody<NamespacePatch>,
) -> ApiResult<Json<Namespace>> {
    validate::namespace_name("name", &name)?;
    validate::namespace_patch(&body)?;
    Ok(Json(state.store.patch_namespace(&name, &body).await?))
}

/// `DELETE /v1/namespaces/{name}`.
pub async fn delete_namespace(
    State(state): AppStateRef,
    PathParam(name): PathParam<String>,
) -> ApiResult<StatusCode> {
    validate::namespace_name("name", &name)?;
    state.store.delete_namespace(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/namespaces/{name}/memories`: 201 with the id written.
pub async fn write_memory(
    State(state): AppStateRef,
    PathParam(name): PathParam<String>,
    JsonBody(mut write): JsonBody<MemoryWrite>,
) -> ApiResult<(StatusCode, Json<WriteAck>)> {
    validate::namespace_name("name", &name)?;
    validate::memory_write(&write)?;
    check_write_embedding(&state, "embedding", &write)?;
    if state.options.v1_only {
        // Plain v1 has no `created_at` on writes; ignore it as an unknown field.
        write.created_at = None;
    }
    let ack = state.store.write_memory(&name, &write).await?;
    Ok((StatusCode::CREATED, Json(ack)))
}

/// `POST /v1/search`.
///
/// Extension `hybrid`: `mode` names the ranking (`fulltext`, `semantic`,
/// `hybrid`); without it the v1 rules apply. A plugin that does not
/// advertise `hybrid` (v1-only, or no embedding search) ignores `mode` as
/// an unknown field, the way v1-only ignores `created_at` on writes.
pub async fn search(
    State(state): AppStateRef,
    JsonBody(mut req): JsonBody<SearchRequest>,
) -> ApiResult<Json<SearchResponse>> {
    if !state.hybrid() {
        req.mode = None;
    }
    let limit = validate::search_request(&req)?;
    // A full-text ranking asked for by name leaves the embedding out.
    let uses_embedding = req.mode != Some(RankMode::Fulltext);
    if let Some(embedding) = req.embedding.as_ref().filter(|_| uses_embedding) {
        if !state.features.embedding {
            return Err(ApiError::bad_request(
                "semantic search is not available on this plugin (no `embedding` capability: \
                 the database has no pgvector); search by `query` instead",
            ));
        }
        check_dimension(&state, "embedding", embedding)?;
    }
    let mut namespaces: Vec<String> = Vec::with_capacity(req.namespaces.len());
    for ns in req.namespaces {
        if !namespaces.contains(&ns) {
            namespaces.push(ns);
        }
    }
    let mut kinds = Vec::new();
    for kind in req.kinds.unwrap_or_default() {
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    let query = SearchQuery {
        namespaces,
        query: req
            .query
            .map(|q| q.trim().to_string())
            .filter(|q| !q.is_empty()),
        kinds,
        limit,
        embedding: req.embedding.filter(|_| uses_embedding),
    };
    let memories = match req.mode {
        None => state.store.search(&query).await?,
        Some(mode) => state.store.search_ranked(&query, mode).await?,
    };
    Ok(Json(SearchResponse { memories }))
}

/// `DELETE /v1/memories/{id}` with body `{requested_by_namespace}`: 204.
pub async fn forget(
    State(state): AppStateRef,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody<ForgetRequest>,
) -> ApiResult<StatusCode> {
    let id = validate::uuid("id", &id)?;
    validate::forget_request(&body)?;
    state.store.forget(id, &body.requested_by_namespace).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A batch body before its items are decoded: each item is decoded on its
/// own so that one malformed item does not sink the others.
#[derive(Deserialize)]
pub struct RawBatch {
    writes: Vec<serde_json::Value>,
}

/// `POST /v1/memories/batch` (extension `batch`): results in input order.
pub async fn write_batch(
    State(state): AppStateRef,
    LargeJsonBody(raw): LargeJsonBody<RawBatch>,
) -> ApiResult<Json<BatchResponse>> {
    if raw.writes.len() > limits::BATCH_ITEMS_MAX {
        return Err(ApiError::bad_request(format!(
            "writes: {} writes given; at most {} per batch",
            raw.writes.len(),
            limits::BATCH_ITEMS_MAX
        ))
        .with_details(serde_json::json!({ "field": "writes" })));
    }

    // Slot i holds item i's early error, or None while it waits for the store.
    let mut results: Vec<Option<BatchItemResult>> = Vec::with_capacity(raw.writes.len());
    let mut accepted: Vec<BatchWrite> = Vec::new();
    let mut accepted_slots: Vec<usize> = Vec::new();
    for (i, value) in raw.writes.into_iter().enumerate() {
        match check_batch_item(&state, i, value) {
            Ok(item) => {
                accepted.push(item);
                accepted_slots.push(i);
                results.push(None);
            }
            Err(e) => results.push(Some(BatchItemResult::Err { error: e.envelope })),
        }
    }

    if !accepted.is_empty() {
        let stored = state.store.write_batch(&accepted).await?;
        if stored.len() != accepted.len() {
            return Err(ApiError::internal(&format!(
                "store answered {} results for a batch of {}",
                stored.len(),
                accepted.len()
            )));
        }
        for (slot, outcome) in accepted_slots.into_iter().zip(stored) {
            results[slot] = Some(match outcome {
                Ok(ack) => BatchItemResult::Ok(ack),
                Err(e) => BatchItemResult::Err {
                    error: ApiError::from(e).envelope,
                },
            });
        }
    }

    let results = results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| BatchItemResult::Err {
                error: ApiError::internal(&"batch item without a result").envelope,
            })
        })
        .collect();
    Ok(Json(BatchResponse { results }))
}

/// Decodes and validates batch item `index`.
fn check_batch_item(
    state: &AppState,
    index: usize,
    value: serde_json::Value,
) -> ApiResult<BatchWrite> {
    let item: BatchWrite =
        decode_value(value).map_err(|m| ApiError::bad_request(format!("writes[{index}]: {m}")))?;
    validate::batch_item(index, &item)?;
    check_write_embedding(state, &format!("writes[{index}].embedding"), &item.write)?;
    Ok(item)
}

/// Query of the list route, taken as text so that a bad value gets a
/// contract error message rather than a decoder's.
#[derive(Deserialize)]
pub struct RawListQuery {
    after: Option<String>,
    limit: Option<String>,
}

/// `GET /v1/namespaces/{name}/memories?after=&limit=` (extension `list`).
pub async fn list_memories(
    State(state): AppStateRef,
    PathParam(name): PathParam<String>,
    QueryParams(raw): QueryParams<RawListQuery>,
) -> ApiResult<Json<ListResponse>> {
    validate::namespace_name("name", &name)?;
    let (after, limit) = page_query(raw)?;
    Ok(Json(state.store.list_memories(&name, after, limit).await?))
}

/// `GET /v1/memories?after=&limit=` (extension `scan`): every live memory
/// of every live namespace, ordered by id.
pub async fn scan_memories(
    State(state): AppStateRef,
    QueryParams(raw): QueryParams<RawScanQuery>,
) -> ApiResult<Json<ListResponse>> {
    let (after, limit) = page_query(RawListQuery {
        after: raw.after,
        limit: raw.limit,
    })?;
    let before = raw
        .before
        .filter(|b| !b.is_empty())
        .map(|b| validate::uuid("before", &b))
        .transpose()?;
    let embeddings = match raw.embedding.as_deref() {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "embedding: {:?} is not a boolean; expected true or false",
                excerpt(other, 32)
            ))
            .with_details(serde_json::json!({ "field": "embedding" })))
        }
    };
    Ok(Json(
        state
            .store
            .scan_memories(after, before, limit, embeddings)
            .await?,
    ))
}

/// `GET /v1/namespaces?after=&limit=` (extension `list`): every live
/// namespace, with or without memories, ordered by name.
pub async fn list_namespaces(
    State(state): AppStateRef,
    QueryParams(raw): QueryParams<RawListQuery>,
) -> ApiResult<Json<NamespaceListResponse>> {
    let after = raw.after.filter(|a| !a.is_empty());
    if let Some(a) = &after {
        validate::namespace_name("after", a)?;
    }
    let (_, limit) = page_query(RawListQuery {
        after: None,
        limit: raw.limit,
    })?;
    Ok(Json(
        state.store.list_namespaces(after.as_deref(), limit).await?,
    ))
}

/// Query of the scan route, taken as text like [`RawListQuery`].
#[derive(Deserialize)]
pub struct RawScanQuery {
    after: Option<String>,
    before: Option<String>,
    limit: Option<String>,
    embedding: Option<String>,
}

/// `GET /v1/memories/checksums?prefix=&created_at=` (extension `checksum`):
/// per bucket of ids, the count and XOR of the digests of every live memory
/// of every live namespace (the memories scan pages through).
pub async fn memory_checksums(
    State(state): AppStateRef,
    QueryParams(raw): QueryParams<RawChecksumQuery>,
) -> ApiResult<Json<ChecksumResponse>> {
    let query = ChecksumQuery {
        prefix: match raw.prefix.as_deref().filter(|p| !p.is_empty()) {
            None => None,
            Some(p) => Some(p.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "prefix: {:?} is not an integer; expected 1..={} hex digits",
                    excerpt(p, 32),
                    limits::CHECKSUM_PREFIX_MAX
                ))
                .with_details(serde_json::json!({ "field": "prefix" }))
            })?),
        },
        created_at: match raw.created_at.as_deref().filter(|c| !c.is_empty()) {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "created_at: {:?} is not a boolean; expected true or false",
                    excerpt(other, 32)
                ))
                .with_details(serde_json::json!({ "field": "created_at" })))
            }
        },
    };
    let prefix = validate::checksum_prefix(query.prefix)?;
    let created_at = query.created_at.unwrap_or(false);
    Ok(Json(
        state.store.memory_checksums(prefix, created_at).await?,
    ))
}

/// Query of the checksum route, taken as text like [`RawListQuery`].
#[derive(Deserialize)]
pub struct RawChecksumQuery {
    prefix: Option<String>,
    created_at: Option<String>,
}

/// Validates the `after` and `limit` of a paged route.
fn page_query(raw: RawListQuery) -> ApiResult<(Option<uuid::Uuid>, u32)> {
    let query = ListQuery {
        after: raw.after.filter(|a| !a.is_empty()),
        limit: match raw.limit.as_deref().filter(|l| !l.is_empty()) {
            None => None,
            Some(l) => Some(l.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "limit: {:?} is not an integer; expected 1..={}",
                    excerpt(l, 32),
                    limits::LIST_LIMIT_MAX
                ))
                .with_details(serde_json::json!({ "field": "limit" }))
            })?),
        },
    };
    let after = query
        .after
        .as_deref()
        .map(|a| validate::uuid("after", a))
        .transpose()?;
    let limit = validate::list_limit(query.limit)?;
    Ok((after, limit))
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): AppStateRef) -> Response {
    let body = state.metrics.render(
        state.store.pool_stats(),
        &state.store.write_group_stats(),
        state.features.backend,
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// 404 envelope for a path no route serves.
pub async fn route_not_found(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::not_found(format!(
        "no route for {method} {}",
        excerpt(uri.path(), 200)
    ))
}

/// 405 envelope for a known path asked with the wrong method.
pub async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::BadRequest,
        format!(
            "method {method} is not allowed on {}",
            excerpt(uri.path(), 200)
        ),
    )
}

fn namespace_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("namespace {name:?} does not exist"))
}

/// A written embedding must have the store's dimension when the store can
/// search by embedding.
fn check_write_embedding(state: &AppState, field: &str, write: &MemoryWrite) -> ApiResult<()> {
    match &write.embedding {
        Some(e) if state.features.embedding => check_dimension(state, field, e),
        _ => Ok(()),
    }
}

fn check_dimension(state: &AppState, field: &str, embedding: &[f32]) -> ApiResult<()> {
    let want = state.features.embedding_dim;
    if embedding.len() != want {
        return Err(ApiError::bad_request(format!(
            "{field}: embedding has {} dimensions; this plugin stores {want}",
            embedding.len()
        ))
        .with_details(serde_json::json!({ "field": field })));
    }
    Ok(())
}
