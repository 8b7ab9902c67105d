//! The gateway's HTTP surface: MCP over Streamable HTTP at `/mcp` behind
//! bearer-token auth, `/v1/health` and `/metrics`, the REST surface of the
//! memory inspector ([`crate::rest`], same auth) and its page at `/ui`
//! ([`crate::ui`]).

use crate::auth::{self, AuthError, Secret};
use crate::mcp::MemoryTools;
use crate::service::Gateway;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What the routes share.
#[derive(Clone)]
pub struct AppState {
    pub gateway: Arc<Gateway>,
    pub secret: Secret,
}

/// The error envelope with a status.
pub fn envelope(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"code": code, "message": message.into()})),
    )
        .into_response()
}

fn unauthorized(e: &AuthError) -> Response {
    let mut response = envelope(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string());
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

/// Verifies the bearer token and puts the [`auth::Caller`] in the request's
/// extensions; anything else is 401 before any tool runs.
async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = auth::bearer(header).and_then(|token| auth::verify(&state.secret, token));
    match caller {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(e) => {
            tracing::info!(path = %request.uri().path(), "refused a request: {e}");
            unauthorized(&e)
        }
    }
}

/// Plugin and database reachability: 200 when both answer, else 503.
async fn health(State(state): State<AppState>) -> Response {
    let budget = Duration::from_secs(2);
    let plugin = tokio::time::timeout(budget, state.gateway.plugin().health()).await;
    let plugin_ok = matches!(plugin, Ok(Ok(_)));
    let database = tokio::time::timeout(budget, state.gateway.directory().ping()).await;
    let database_ok = matches!(database, Ok(Ok(())));
    let ok = plugin_ok && database_ok;
    let body = json!({
        "status": if ok { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "plugin": if plugin_ok { "ok" } else { "unavailable" },
        "database": if database_ok { "ok" } else { "unavailable" },
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.gateway.metrics().render(),
    )
        .into_response()
}

async fn not_found() -> Response {
    envelope(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed() -> Response {
    envelope(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not answer that method",
    )
}

/// The whole HTTP surface. `stop` ends open MCP streams at shutdown.
pub fn router(state: AppState, stop: CancellationToken) -> Router {
    let gateway = state.gateway.clone();
    let mcp = StreamableHttpService::new(
        move || Ok(MemoryTools::per_request(gateway.clone())),
        Arc::new(LocalSessionManager::default()),
        // Every request carries a bearer token that a page from another
        // origin cannot supply, so the Host check against DNS rebinding is
        // not needed and would break deployments behind a name.
        //
        // Stateless, with plain JSON answers: every tool call is one POST
        // answered by one JSON body, with no session to keep or route, since
        // the gateway keeps no state between calls anyway (each re-derives
        // the caller from its token and its namespaces from the tree).
        StreamableHttpServerConfig::default()
            .disable_allowed_hosts()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_sse_keep_alive(None)
            .with_cancellation_token(stop),
    );
    let protected = Router::new()
        .nest_service("/mcp", mcp)
        .layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/v1/health", get(health))
        .route("/metrics", get(metrics))
        .merge(protected)
        .merge(
            crate::rest::routes()
                .route_layer(middleware::from_fn_with_state(state.clone(), require_token)),
        )
        .merge(crate::ui::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}
