//! The axum HTTP layer serving the Memory Plugin v1 contract and this
//! project's extensions on top of any [`Store`].
//!
//! [`router`] builds the whole application: the seven v1 routes, the
//! extension routes (left out in v1-only mode), `/metrics`, envelopes for
//! unknown routes (404) and wrong methods (405), bearer-token auth, and one
//! observing layer that assigns request ids, logs, counts and catches panics.

pub mod error;
pub mod extract;
mod handlers;
pub mod metrics;
mod middleware;

use crate::store::{Store, StoreFeatures};
use axum::routing::{get, post};
use axum::Router;
use memory_contract::{capability, route};
use std::sync::Arc;

pub use error::{ApiError, ApiResult};
pub use metrics::Metrics;

/// How the HTTP layer behaves, beyond the store it serves.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// When set, every route but `/v1/health` needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Serve plain v1: no extension advertised or routed.
    pub v1_only: bool,
}

/// What every handler shares.
pub(crate) struct AppState {
    pub store: Arc<dyn Store>,
    /// Read once: a store's features are fixed when it is opened.
    pub features: StoreFeatures,
    pub options: HttpOptions,
    pub metrics: Metrics,
}

impl AppState {
    /// The capabilities `/v1/health` advertises.
    pub fn capabilities(&self) -> Vec<String> {
        let mut caps = vec![capability::FTS.to_string()];
        if self.features.embedding {
            caps.push(capability::EMBEDDING.to_string());
        }
        caps.extend(
            [capability::TTL, capability::PIN, capability::PROPAGATION]
                .iter()
                .map(|c| c.to_string()),
        );
        if !self.options.v1_only {
            caps.extend(
                capability::EXTENSIONS
                    .iter()
                    .filter(|c| **c != capability::HYBRID || self.hybrid())
                    .map(|c| c.to_string()),
            );
        }
        caps
    }

    /// Extension `hybrid` is served: both full-text and embedding search
    /// work, and the plugin is not v1-only.
    pub fn hybrid(&self) -> bool {
        self.features.embedding && !self.options.v1_only
    }
}

/// The route template `/metrics` is served at.
pub const METRICS_ROUTE: &str = "/metrics";

/// Builds the application serving `store`.
pub fn router(store: Arc<dyn Store>, options: HttpOptions) -> Router {
    let state = Arc::new(AppState {
        features: store.features(),
        store,
        options,
        metrics: Metrics::default(),
    });
    let v1_only = state.options.v1_only;

    // In v1-only mode the extension routes answer 404 as if they did not
    // exist; routing them explicitly keeps the neighbouring v1 routes from
    // turning them into 405s (`/v1/memories/batch` and
    // `/v1/memories/checksums` would match `{id}`).
    let namespace_get = if v1_only {
        get(handlers::route_not_found)
    } else {
        get(handlers::get_namespace)
    };
    let namespace_memories_get = if v1_only {
        get(handlers::route_not_found)
    } else {
        get(handlers::list_memories)
    };
    let scan_get = if v1_only {
        get(handlers::route_not_found)
    } else {
        get(handlers::scan_memories)
    };
    let checksums_get = if v1_only {
        get(handlers::route_not_found)
    } else {
        get(handlers::memory_checksums)
    };
    let namespaces_get = if v1_only {
        get(handlers::route_not_found)
    } else {
        get(handlers::list_namespaces)
    };
    let batch_post = if v1_only {
        post(handlers::route_not_found)
    } else {
        post(handlers::write_batch)
    };

    Router::new()
        .route(route::HEALTH, get(handlers::health))
        .route(route::NAMESPACES, namespaces_get)
        .route(
            route::NAMESPACE,
            namespace_get
                .put(handlers::upsert_namespace)
                .patch(handlers::patch_namespace)
                .delete(handlers::delete_namespace),
        )
        .route(
            route::NAMESPACE_MEMORIES,
            namespace_memories_get.post(handlers::write_memory),
        )
        .route(route::SEARCH, post(handlers::search))
        .route(route::MEMORY, axum::routing::delete(handlers::forget))
        .route(route::BATCH, batch_post)
        .route(route::MEMORIES, scan_get)
        .route(route::CHECKSUMS, checksums_get)
        .route(METRICS_ROUTE, get(handlers::metrics))
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .fallback(handlers::route_not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::require_token,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::observe,
        ))
        .with_state(state)
}
