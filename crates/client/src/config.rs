//! Client configuration: base URL, timeout, token, retry and breaker policy.
//!
//! [`ClientConfig::from_env`] reads `MEMORY_PLUGIN_URL`, `MEMORY_PLUGIN_TIMEOUT`
//! and `MEMORY_PLUGIN_TOKEN`; every error names the variable at fault. The
//! token is held in a [`Token`], whose `Debug` never shows it.

use crate::breaker::{Clock, SystemClock};
use crate::error::ClientError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Environment variable holding the plugin's base URL.
pub const ENV_URL: &str = "MEMORY_PLUGIN_URL";
/// Environment variable holding the per-request timeout (`2`, `2s`, `500ms`).
pub const ENV_TIMEOUT: &str = "MEMORY_PLUGIN_TIMEOUT";
/// Environment variable holding the bearer token.
pub const ENV_TOKEN: &str = "MEMORY_PLUGIN_TOKEN";

/// Per-request timeout used when none is configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// A bearer token. `Debug` and `Display` print `***`, so the token never
/// reaches logs or error messages.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Token(token.into())
    }

    /// The token itself, for building the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// When and how often a request that is safe to repeat is retried.
///
/// Only transport errors (timeouts included) and 502/503/504 answers are
/// retried, and only for requests that are safe to repeat. The delay before
/// retry `n` (1-based) is drawn uniformly from `[d/2, d]` where
/// `d = min(initial_backoff * 2^(n-1), max_backoff)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included; 1 disables retries.
    pub max_attempts: u32,
    /// Base of the exponential backoff.
    pub initial_backoff: Duration,
    /// Cap on a single backoff delay.
    pub max_backoff: Duration,
    /// No retry starts once this much time has passed since the first attempt
    /// (counting the delay before it).
    pub max_elapsed: Duration,
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }
}

impl Default for RetryPolicy {
    /// 3 attempts, backoff from 100 ms up to 2 s, at most 10 s in total.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            max_elapsed: Duration::from_secs(10),
        }
    }
}

/// When the circuit breaker opens and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failed calls (a call that ended, after its retries, in a
    /// transport error, a timeout or a 5xx) that open the breaker; 0
    /// disables the breaker. Retries of one call count once.
    pub failure_threshold: u32,
    /// How long the breaker stays open before letting one probe through.
    pub open_for: Duration,
}

impl BreakerPolicy {
    /// A breaker that never opens.
    pub fn disabled() -> Self {
        BreakerPolicy {
            failure_threshold: 0,
            ..BreakerPolicy::default()
        }
    }
}

impl Default for BreakerPolicy {
    /// Opens after 3 consecutive failed calls, for 60 s.
    fn default() -> Self {
        BreakerPolicy {
            failure_threshold: 3,
            open_for: Duration::from_secs(60),
        }
    }
}

/// Everything a [`crate::Client`] needs. Build with [`ClientConfig::new`] or
/// [`ClientConfig::from_env`], then adjust with the builder methods.
#[derive(Clone)]
pub struct ClientConfig {
    pub(crate) base_url: String,
    pub(crate) timeout: Duration,
    pub(crate) token: Option<Token>,
    pub(crate) retry: RetryPolicy,
    pub(crate) breaker: BreakerPolicy,
    pub(crate) clock: Arc<dyn Clock>,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &redact_url(&self.base_url))
            .field("timeout", &self.timeout)
            .field("token", &self.token)
            .field("retry", &self.retry)
            .field("breaker", &self.breaker)
            .finish()
    }
}

impl ClientConfig {
    /// A configuration for the plugin at `base_url` (http or https; a
    /// trailing slash is fine) with the defaults: 2 s timeout, no token,
    /// [`RetryPolicy::default`], [`BreakerPolicy::default`], system clock.
    /// The URL is checked by [`crate::Client::new`].
    pub fn new(base_url: impl Into<String>) -> Self {
        ClientConfig {
            base_url: base_url.into(),
            timeout: DEFAULT_TIMEOUT,
            token: None,
            retry: RetryPolicy::default(),
            breaker: BreakerPolicy::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Reads `MEMORY_PLUGIN_URL` (required), `MEMORY_PLUGIN_TIMEOUT` and
    /// `MEMORY_PLUGIN_TOKEN` from the process environment.
    ///
    /// # Errors
    /// [`ClientError::Config`] naming the variable that is missing or invalid.
    pub fn from_env() -> Result<Self, ClientError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`ClientConfig::from_env`], with variables read through `lookup`
    /// (for callers that keep their environment elsewhere, and for tests).
    ///
    /// # Errors
    /// [`ClientError::Config`] naming the variable that is missing or invalid.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ClientError> {
        let url = lookup(ENV_URL)
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                ClientError::Config(format!(
                    "{ENV_URL} is not set; expected the plugin's base URL, e.g. http://127.0.0.1:8080"
                ))
            })?;
        parse_base_url(&url)
            .map_err(|reason| ClientError::Config(format!("{ENV_URL}: {reason}")))?;
        let mut config = ClientConfig::new(url);
        if let Some(raw) = lookup(ENV_TIMEOUT).filter(|t| !t.trim().is_empty()) {
            config.timeout = parse_timeout(&raw)
                .map_err(|reason| ClientError::Config(format!("{ENV_TIMEOUT}: {reason}")))?;
        }
        if let Some(token) = lookup(ENV_TOKEN).filter(|t| !t.trim().is_empty()) {
            config.token = Some(Token::new(token.trim()));
        }
        Ok(config)
    }

    /// Sets the per-attempt timeout (connect, send and read the whole answer).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the bearer token sent as `Authorization: Bearer <token>`.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Token::new(token));
        self
    }

    /// Sets the retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the circuit breaker policy.
    pub fn breaker(mut self, breaker: BreakerPolicy) -> Self {
        self.breaker = breaker;
        self
    }

    /// Sets the clock the circuit breaker reads (tests inject a
    /// [`crate::ManualClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The configured base URL, with any password in it masked.
    pub fn base_url(&self) -> String {
        redact_url(&self.base_url)
    }

    /// The configured per-attempt timeout.
    pub fn timeout_value(&self) -> Duration {
        self.timeout
    }
}

/// Parses and checks a base URL: absolute, http or https, no query or
/// fragment. The returned URL has its trailing slash removed from the path.
pub(crate) fn parse_base_url(raw: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(raw.trim())
        .map_err(|e| format!("{:?} is not a URL ({e})", redact_url(raw)))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "{:?} has scheme {:?}; expected http or https",
            redact_url(raw),
            url.scheme()
        ));
    }
    if url.host().is_none() {
        return Err(format!("{:?} has no host", redact_url(raw)));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{:?} carries a query or fragment; expected a base URL such as http://host:port",
            redact_url(raw)
        ));
    }
    Ok(url)
}

/// Parses a timeout: a number of seconds (`2`, `0.5`) or a number with a unit
/// (`2s`, `500ms`, `1m`). Zero is refused because it would fail every call.
pub fn parse_timeout(raw: &str) -> Result<Duration, String> {
    let s = raw.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number.parse().map_err(|_| {
        format!("{raw:?} is not a duration; expected seconds (\"2\") or a number with ms/s/m (\"500ms\", \"2s\")")
    })?;
    let seconds = match unit.trim() {
        "" | "s" | "sec" | "secs" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        other => {
            return Err(format!(
                "{raw:?} has unknown unit {other:?}; expected ms, s or m"
            ))
        }
    };
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(format!("{raw:?} must be greater than zero"));
    }
    if seconds > 86_400.0 {
        return Err(format!("{raw:?} is longer than a day"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The URL with any password replaced by `***`, for messages.
pub(crate) fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_accepts_bare_seconds_and_units() {
        assert_eq!(parse_timeout("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_timeout("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout(" 1.5 "), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_timeout("1m"), Ok(Duration::from_secs(60)));
    }

    #[test]
    fn timeout_refuses_garbage_zero_and_unknown_units() {
        assert!(parse_timeout("soon").is_err());
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("5h").is_err());
        assert!(parse_timeout("").is_err());
        assert!(parse_timeout("-1").is_err());
    }

    #[test]
    fn from_lookup_names_the_variable_at_fault() {
        let missing = ClientConfig::from_lookup(|_| None).unwrap_err().to_string();
        assert!(missing.contains(ENV_URL), "{missing}");

        let bad_scheme = ClientConfig::from_lookup(|k| (k == ENV_URL).then(|| "ftp://x".into()))
            .unwrap_err()
            .to_string();
        assert!(
            bad_scheme.contains(ENV_URL) && bad_scheme.contains("http"),
            "{bad_scheme}"
        );

        let bad_timeout = ClientConfig::from_lookup(|k| match k {
            ENV_URL => Some("http://127.0.0.1:1".into()),
            ENV_TIMEOUT => Some("fast".into()),
            _ => None,
        })
        .unwrap_err()
        .to_string();
        assert!(bad_timeout.contains(ENV_TIMEOUT), "{bad_timeout}");
    }

    #[test]
    fn from_lookup_reads_all_three_variables() {
        let config = ClientConfig::from_lookup(|k| match k {
            ENV_URL => Some("http://127.0.0.1:9/".into()),
            ENV_TIMEOUT => Some("500ms".into()),
            ENV_TOKEN => Some("s3cret-token".into()),
            _ => None,
        })
        .expect("valid config");
        assert_eq!(config.timeout, Duration::from_millis(500));
        assert_eq!(
            config.token.as_ref().map(Token::expose),
            Some("s3cret-token")
        );
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret-token"), "{debug}");
    }

    #[test]
    fn debug_masks_password_in_base_url() {
        let config = ClientConfig::new("http://user:hunter2@127.0.0.1:9");
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
