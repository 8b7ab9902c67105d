//! The client's error type.

use memory_contract::{ErrorCode, ErrorEnvelope, ValidationError};

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The configuration is unusable (the message names the setting).
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// The request breaks a contract rule; nothing was sent.
    #[error("request refused before sending: {0}")]
    Validation(#[from] ValidationError),
    /// The plugin answered with a non-2xx status. When its body was not an
    /// error envelope, `error` is synthesised from the status (see
    /// [`ClientError::is_synthesized`]).
    #[error("plugin answered {status}: {error}")]
    Api {
        /// HTTP status of the answer.
        status: u16,
        /// The plugin's error envelope (or one made from the status).
        error: ErrorEnvelope,
    },
    /// The request could not be sent or its answer not read.
    #[error("transport error: {0}")]
    Transport(String),
    /// No complete answer within the configured timeout.
    #[error("request timed out")]
    Timeout,
    /// The circuit breaker is open after repeated failures; nothing was sent.
    #[error(
        "circuit breaker open: the plugin failed repeatedly, calls fail fast until the next probe"
    )]
    CircuitOpen,
    /// A success answer whose body is not what the contract promises.
    #[error("cannot decode the plugin's {status} answer: {message}")]
    Decode {
        /// HTTP status of the answer.
        status: u16,
        /// What was wrong with the body, with its first characters.
        message: String,
    },
    /// The plugin's capability snapshot lacks the extension this call needs.
    #[error("the plugin does not advertise the {0:?} capability")]
    Unsupported(String),
}

/// Key set in `details` of an envelope the client made up because the
/// plugin's error body was empty or not an envelope.
pub const SYNTHESIZED_DETAIL: &str = "synthesized";

impl ClientError {
    /// The HTTP status of an [`ClientError::Api`] or [`ClientError::Decode`] error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The envelope's code of an [`ClientError::Api`] error.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            ClientError::Api { error, .. } => Some(&error.code),
            _ => None,
        }
    }

    /// True for an API error whose envelope the client synthesised because
    /// the plugin sent an empty or non-envelope error body.
    pub fn is_synthesized(&self) -> bool {
        match self {
            ClientError::Api { error, .. } => error
                .details
                .as_ref()
                .and_then(|d| d.get(SYNTHESIZED_DETAIL))
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
            _ => false,
        }
    }

    /// True when the plugin answered 404.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

/// The envelope code a bare status most likely means.
pub(crate) fn code_for_status(status: u16) -> ErrorCode {
    match status {
        400 | 413 | 422 => ErrorCode::BadRequest,
        401 => ErrorCode::Unauthorized,
        403 => ErrorCode::Forbidden,
        404 => ErrorCode::NotFound,
        409 => ErrorCode::Conflict,
        502..=504 => ErrorCode::Unavailable,
        500..=599 => ErrorCode::Internal,
        other => ErrorCode::Other(format!("http_{other}")),
    }
}

/// Decodes an error body into an envelope, or synthesises one.
pub(crate) fn envelope_from_body(status: u16, body: &[u8]) -> ErrorEnvelope {
    if let Ok(envelope) = serde_json::from_slice::<ErrorEnvelope>(body) {
        return envelope;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let message = if text.is_empty() {
        format!("HTTP {status} with an empty body")
    } else {
        format!(
            "HTTP {status} without an error envelope: {}",
            memory_contract::validate::excerpt(text, 200)
        )
    };
    ErrorEnvelope::new(code_for_status(status), message)
        .with_details(serde_json::json!({ SYNTHESIZED_DETAIL: true }))
}
