//! The HTTP layer's one error type and its mapping to status codes.
//!
//! Every non-2xx answer carries the contract's error envelope
//! `{code, message, details?}`. Client mistakes become 4xx with a message
//! that names the field at fault; storage failures are mapped by
//! [`StoreError`] variant, and the cause of a 500 is logged, never sent.

use crate::store::StoreError;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use memory_contract::{ErrorCode, ErrorEnvelope, ValidationError};

/// A failed request: the status and the envelope sent with it.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub envelope: ErrorEnvelope,
}

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            envelope: ErrorEnvelope::new(code, message),
        }
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }

    /// 413 with the `bad_request` code: the body is over `limit` bytes.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BadRequest,
            format!("request body is larger than the limit of {limit} bytes"),
        )
        .with_details(serde_json::json!({ "limit_bytes": limit }))
    }

    /// 500 `internal` with a plain message; `cause` is logged only.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(cause = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error; the plugin's log has the cause",
        )
    }

    /// The same error with `details` attached to its envelope.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.envelope.details = Some(details);
        self
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        let field = e.field.clone();
        ApiError::bad_request(e.to_string()).with_details(serde_json::json!({ "field": field }))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => ApiError::not_found(m),
            StoreError::Conflict(m) => Self::new(StatusCode::CONFLICT, ErrorCode::Conflict, m),
            StoreError::BadRequest(m) => ApiError::bad_request(m),
            StoreError::Unavailable(m) => {
                tracing::warn!(cause = %m, "storage unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unavailable,
                    "storage is unavailable; try again later",
                )
            }
            e @ StoreError::Internal(_) => ApiError::internal(&e),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        ApiError::bad_request(format!("invalid path parameter: {}", e.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::bad_request(format!("invalid query string: {}", e.body_text()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.envelope)).into_response()
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_their_statuses_and_codes() {
        let cases = [
            (StoreError::NotFound("x".into()), 404, "not_found"),
            (StoreError::Conflict("x".into()), 409, "conflict"),
            (StoreError::BadRequest("x".into()), 400, "bad_request"),
            (StoreError::Unavailable("x".into()), 503, "unavailable"),
            (StoreError::Internal("secret cause".into()), 500, "internal"),
        ];
        for (err, status, code) in cases {
            let api = ApiError::from(err);
            assert_eq!(api.status.as_u16(), status);
            assert_eq!(api.envelope.code.as_str(), code);
            assert!(!api.envelope.message.contains("secret cause"));
        }
    }

    #[test]
    fn validation_error_names_the_field() {
        let api = ApiError::from(ValidationError::new(
            "writes[3].content",
            "content is blank",
        ));
        assert_eq!(api.status, StatusCode::BAD_REQUEST);
        assert!(api.envelope.message.contains("writes[3].content"));
        assert_eq!(
            api.envelope.details,
            Some(serde_json::json!({ "field": "writes[3].content" }))
        );
    }
}
