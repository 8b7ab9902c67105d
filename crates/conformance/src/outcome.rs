//! How a check ends: pass (maybe with a note), warn (the plugin works but
//! is sloppy, for example an empty list sent as `null`), skip with a reason,
//! or fail with what was expected and what was seen.

use memory_client::ClientError;
use serde::Serialize;

/// What a check expected and what the plugin did instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// What the contract wants.
    pub expected: String,
    /// What the plugin did.
    pub seen: String,
}

impl Failure {
    /// A failure with both sides spelled out.
    pub fn new(expected: impl Into<String>, seen: impl Into<String>) -> Self {
        Failure {
            expected: expected.into(),
            seen: seen.into(),
        }
    }

    /// A step the check relies on failed with a client error.
    pub(crate) fn step(what: &str, error: ClientError) -> Self {
        Failure::new(format!("{what} to succeed"), describe_client_error(&error))
    }
}

/// Result of one step inside a check.
pub(crate) type StepResult<T> = Result<T, Failure>;

/// How a check that did not fail ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Pass(Option<String>),
    /// Works, but not as the contract spells it; lenient clients cope.
    Warn(String),
    Skip(String),
}

/// Result of a whole check body.
pub(crate) type CheckResult = Result<Verdict, Failure>;

/// Passes.
pub(crate) fn pass() -> CheckResult {
    Ok(Verdict::Pass(None))
}

/// Passes with a warning: the plugin is sloppy, not broken.
pub(crate) fn warn(note: impl Into<String>) -> CheckResult {
    Ok(Verdict::Warn(note.into()))
}

/// Fails with `expected`/`seen` unless `condition` holds.
pub(crate) fn ensure(
    condition: bool,
    expected: impl Into<String>,
    seen: impl FnOnce() -> String,
) -> StepResult<()> {
    if condition {
        Ok(())
    } else {
        Err(Failure::new(expected, seen()))
    }
}

/// A client error in words, with the plugin's envelope where there is one.
pub(crate) fn describe_client_error(error: &ClientError) -> String {
    match error {
        ClientError::Api { status, error: env } if error.is_synthesized() => {
            format!("{status} without an error envelope ({})", env.message)
        }
        ClientError::Api { status, error } => {
            format!(
                "{status} {{code: {}, message: {:?}}}",
                error.code, error.message
            )
        }
        other => other.to_string(),
    }
}
