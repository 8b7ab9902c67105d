//! Request decoding that answers every client mistake with the envelope.
//!
//! axum's stock extractors answer with plain-text rejections and insist on a
//! `Content-Type`, so bodies are read here instead: any content type is
//! accepted (existing v1 clients may omit it), the size limit is enforced
//! while streaming (413), and type errors name the offending field through
//! `serde_path_to_error`.

use super::error::{ApiError, ApiResult};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header::CONTENT_LENGTH;
use futures::StreamExt;
use memory_contract::limits;
use serde::de::DeserializeOwned;

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

/// Reads the whole body, refusing it with 413 as soon as it passes `limit`.
pub async fn read_body(req: Request, limit: usize) -> ApiResult<Vec<u8>> {
    // A declared length over the limit is refused before reading anything.
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::payload_too_large(limit));
    }
    let mut stream = req.into_body().into_data_stream();
    let mut buf = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request(format!("could not read the request body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
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
