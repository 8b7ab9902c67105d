//! The memory inspector: one HTML page, one script and one stylesheet,
//! built into the binary and served at `/ui`, `/ui/app.js` and
//! `/ui/app.css` (and `/` redirects to `/ui`).
//!
//! The page holds no data and no secret: it asks for a token (or takes it
//! once from `#token=` in the address), keeps it in `sessionStorage`, and
//! calls the REST surface ([`crate::rest`]) with `Authorization: Bearer`.
//! Every answer carries a strict Content-Security-Policy: no inline script
//! or style, no other origin, no framing. The script sets every text that
//! comes from a memory with `textContent`, never as HTML.

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");

/// The Content-Security-Policy of the page and its assets.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: String) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    (headers, body).into_response()
}

/// The page, with the gateway's version filled in (the asset URLs carry it,
/// so an upgrade is never served a stale script).
async fn page() -> Response {
    asset(
        "text/html; charset=utf-8",
        INDEX_HTML.replace("{{version}}", env!("CARGO_PKG_VERSION")),
    )
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS.to_string())
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", APP_CSS.to_string())
}

/// `/`, `/ui` and its two assets; no token needed to fetch them.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/ui", get(page))
        .route("/ui/", get(page))
        .route("/ui/app.js", get(script))
        .route("/ui/app.css", get(stylesheet))
}
