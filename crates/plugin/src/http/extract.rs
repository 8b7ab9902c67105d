//! Request decoding that answers every client mistake with the envelope.
//!
//! axum's stock extractors answer with plain-text rejections and insist on a
//! `Content-Type`, so bodies are read here instead: any content type is
//! accepted (existing v1 clients may omit it), the size limit is enforced
//! while streaming (413), and type errors name the offending field through
//! `serde_path_to_error`.
//!
//! An oversized body is read to its end and thrown away (up to
//! [`DRAIN_FACTOR`] times the limit, for at most [`DRAIN_TIMEOUT`]) before
//! the 413 goes out: a client that writes its whole body before reading the
//! answer would otherwise meet a connection reset while still sending and
//! never see the 413.

use super::error::{ApiError, ApiResult};
use axum::body::BodyDataStream;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header::{CONTENT_LENGTH, EXPECT};
use futures::StreamExt;
use memory_contract::limits;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// How much of an oversized body is read and discarded before the 413, as
/// a multiple of the limit: bodies up to this size end cleanly.
pub const DRAIN_FACTOR: u64 = 4;

/// How long discarding an oversized body may take before the 413 goes out
/// anyway (and the connection is closed).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A path parameter decoded by axum, with rejections turned into envelopes.
#[derive(Debug, FromRequestParts)]
#[from_request(via(Path), rejection(ApiError))]
pub struct PathParam<T>(pub T);

/// A query string decoded by axum, with rejections turned into envelopes.
#[derive(Debug, FromRequestParts)]
#[from_request(via(Query), rejection(ApiError))]
pub struct QueryParams<T>(pub T);

/// A JSON body of at most [`limits::BODY_MAX_BYTES`], whatever its
/// `Content-Type`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// A JSON body of at most [`limits::BATCH_BODY_MAX_BYTES`] (batch route).
#[derive(Debug)]
pub struct LargeJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> ApiResult<Self> {
        let bytes = read_body(req, limits::BODY_MAX_BYTES).await?;
        decode_json(&bytes).map(JsonBody)
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for LargeJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> ApiResult<Self> {
        let bytes = read_body(req, limits::BATCH_BODY_MAX_BYTES).await?;
        decode_json(&bytes).map(LargeJsonBody)
    }
}

/// Reads the whole body, refusing it with 413 once it passes `limit`. The
/// rest of an oversized body is discarded first (see the module doc).
pub async fn read_body(req: Request, limit: usize) -> ApiResult<Vec<u8>> {
    let cap = (limit as u64).saturating_mul(DRAIN_FACTOR);
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // A declared length over the limit is refused without keeping anything.
    // The body is discarded unless the client waits for `100 Continue`
    // before sending it (then nothing was sent) or it is beyond the cap.
    if let Some(n) = declared.filter(|n| *n > limit as u64) {
        let waits_for_continue = req
            .headers()
            .get(EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if !waits_for_continue && n <= cap {
            discard(req.into_body().into_data_stream(), 0, cap).await;
        }
        return Err(ApiError::payload_too_large(limit));
    }
    let mut stream = req.into_body().into_data_stream();
    let mut buf = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request(format!("could not read the request body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            let seen = (buf.len() + chunk.len()) as u64;
            drop(buf);
            discard(stream, seen, cap).await;
            return Err(ApiError::payload_too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// Reads and drops the rest of `stream` until it ends, more than `cap`
/// bytes in all (counting the `seen` ones) have come, or [`DRAIN_TIMEOUT`]
/// passes. Read to its end, the connection stays usable.
async fn discard(mut stream: BodyDataStream, mut seen: u64, cap: u64) {
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while seen <= cap {
            match stream.next().await {
                Some(Ok(chunk)) => seen += chunk.len() as u64,
                Some(Err(_)) | None => break,
            }
        }
    })
    .await;
}

/// Decodes `bytes` as one JSON value of type `T`.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "request body is empty; expected a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(describe_json_error)?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("request body is not valid JSON: {e}")))?;
    Ok(value)
}

/// Decodes one JSON value (already parsed) as `T`, naming the field at fault.
pub fn decode_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("field `{path}`: {}", e.inner())
        }
    })
}

fn describe_json_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.inner();
    if inner.is_syntax() || inner.is_eof() || inner.is_io() {
        return ApiError::bad_request(format!("request body is not valid JSON: {inner}"));
    }
    if path == "." {
        ApiError::bad_request(format!("request body has the wrong shape: {inner}"))
    } else {
        ApiError::bad_request(format!("field `{path}`: {inner}"))
            .with_details(serde_json::json!({ "field": path }))
    }
}
