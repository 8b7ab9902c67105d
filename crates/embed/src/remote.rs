//! Any OpenAI-compatible `POST /v1/embeddings` endpoint.

use crate::{EmbedError, Embedder, RemoteConfig};
use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The remote embedder. Safe to share; requests from many tasks run
/// concurrently over one connection pool.
pub struct RemoteEmbedder {
    config: RemoteConfig,
    request_url: String,
    shown_url: String,
    http: reqwest::Client,
    /// The expected dimension, or the one the first answer had (0: none yet).
    dimension: AtomicUsize,
}

#[derive(Serialize)]
struct Request<'a> {
    model: &'a str,
    input: &'a [String],
}

#[derive(Deserialize)]
struct Response {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    embedding: Vec<f32>,
    index: Option<usize>,
}

impl RemoteEmbedder {
    /// An embedder for `config.url`. No request is sent yet.
    ///
    /// # Errors
    ///
    /// [`EmbedError::Config`] when the URL is not http(s), the model is
    /// empty, or the API key cannot go in a header.
    pub fn new(config: RemoteConfig) -> Result<Self, EmbedError> {
        let endpoint = endpoint_url(&config.url)?;
        if config.model.trim().is_empty() {
            return Err(EmbedError::Config(
                "the remote embedder needs a model name (MEMORY_EMBED_MODEL)".to_string(),
            ));
        }
        if let Some(key) = &config.api_key {
            if reqwest::header::HeaderValue::from_str(&format!("Bearer {key}")).is_err() {
                return Err(EmbedError::Config(
                    "MEMORY_EMBED_API_KEY holds characters that cannot be sent in an HTTP header"
                        .to_string(),
                ));
            }
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| EmbedError::Config(format!("cannot build the HTTP client: {e}")))?;
        let shown_url = redact_url(&endpoint);
        Ok(RemoteEmbedder {
            dimension: AtomicUsize::new(config.expected_dimension.unwrap_or(0)),
            config,
            request_url: endpoint,
            shown_url,
            http,
        })
    }

    /// The full URL requests go to, without credentials.
    pub fn endpoint(&self) -> &str {
        &self.shown_url
    }

    /// Embeds one short text to learn (or check) the endpoint's dimension,
    /// and returns it.
    ///
    /// # Errors
    ///
    /// As [`Embedder::embed`].
    pub async fn probe(&self) -> Result<usize, EmbedError> {
        let v = self.embed(&["dimension probe".to_string()]).await?;
        Ok(v.first().map_or(0, Vec::len))
    }

    async fn embed_chunk(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let body = Request {
            model: &self.config.model,
            input: texts,
        };
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let mut request = self.http.post(&self.request_url).json(&body);
            if let Some(key) = &self.config.api_key {
                request = request.bearer_auth(key);
            }
            let retry_left = attempt <= self.config.max_retries;
            match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        let bytes =
                            response
                                .bytes()
                                .await
                                .map_err(|e| EmbedError::BadResponse {
                                    url: self.shown_url.clone(),
                                    message: format!(
                                        "cannot read the body: {}",
                                        describe_transport(&e)
                                    ),
                                })?;
                        return self.parse(&bytes, texts.len());
                    }
                    let retry_after = retry_after(response.headers());
                    let retryable =
                        status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                    if retryable && retry_left {
                        tracing::warn!(
                            endpoint = %self.shown_url,
                            status = status.as_u16(),
                            attempt,
                            "embedding endpoint answered an error status; retrying"
                        );
                        tokio::time::sleep(self.backoff(attempt, retry_after)).await;
                        continue;
                    }
                    let text = response.text().await.unwrap_or_default();
                    return Err(EmbedError::Status {
                        url: self.shown_url.clone(),
                        status: status.as_u16(),
                        attempts: attempt,
                        body: self.snippet(&text),
                    });
                }
                Err(e) => {
                    let message = describe_transport(&e);
                    if retry_left {
                        tracing::warn!(
                            endpoint = %self.shown_url,
                            attempt,
                            error = %message,
                            "embedding endpoint unreachable; retrying"
                        );
                        tokio::time::sleep(self.backoff(attempt, None)).await;
                        continue;
                    }
                    return Err(EmbedError::Transport {
                        url: self.shown_url.clone(),
                        attempts: attempt,
                        message,
                    });
                }
            }
        }
    }

    fn parse(&self, bytes: &[u8], sent: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
        let bad = |message: String| EmbedError::BadResponse {
            url: self.shown_url.clone(),
            message,
        };
        let response: Response = serde_json::from_slice(bytes).map_err(|e| {
            bad(format!(
                "not an embeddings answer ({e}): {}",
                self.snippet(&String::from_utf8_lossy(bytes))
            ))
        })?;
        if response.data.len() != sent {
            return Err(bad(format!(
                "{} embeddings for {sent} inputs",
                response.data.len()
            )));
        }
        let mut slots: Vec<Option<Vec<f32>>> = vec![None; sent];
        for (position, item) in response.data.into_iter().enumerate() {
            let index = item.index.unwrap_or(position);
            let slot = slots
                .get_mut(index)
                .ok_or_else(|| bad(format!("index {index} out of range for {sent} inputs")))?;
            if slot.is_some() {
                return Err(bad(format!("index {index} appears twice")));
            }
            *slot = Some(item.embedding);
        }
        let vectors: Vec<Vec<f32>> = slots.into_iter().map(Option::unwrap_or_default).collect();
        for v in &vectors {
            self.check_dimension(v.len())?;
            if v.iter().any(|x| !x.is_finite()) {
                return Err(bad(
                    "a vector holds a value that is not a finite number".to_string()
                ));
            }
        }
        Ok(vectors)
    }

    fn check_dimension(&self, actual: usize) -> Result<(), EmbedError> {
        let expected =
            match self
                .dimension
                .compare_exchange(0, actual, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => actual,
                Err(known) => known,
            };
        if actual == 0 || actual != expected {
            return Err(EmbedError::DimensionMismatch {
                source_name: format!(
                    "the embedding endpoint {} (model {})",
                    self.shown_url, self.config.model
                ),
                expected,
                actual,
            });
        }
        Ok(())
    }

    /// Exponential backoff with jitter, or the server's `Retry-After`,
    /// never longer than `max_backoff`.
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let cap = self.config.max_backoff;
        if let Some(wait) = retry_after {
            return wait.min(cap);
        }
        let base = self
            .config
            .initial_backoff
            .saturating_mul(1u32 << (attempt - 1).min(16))
            .min(cap);
        // Between half and all of it, so many clients do not retry in step.
        let factor = rand::thread_rng().gen_range(0.5..=1.0);
        base.mul_f64(factor)
    }

    /// The start of an answer body for an error message, with the API key
    /// blanked out should the server echo it.
    fn snippet(&self, text: &str) -> String {
        let mut text: String = text.trim().chars().take(300).collect();
        if let Some(key) = self.config.api_key.as_deref().filter(|k| !k.is_empty()) {
            text = text.replace(key, "<redacted>");
        }
        if text.is_empty() {
            "(empty body)".to_string()
        } else {
            text
        }
    }
}

#[async_trait::async_trait]
impl Embedder for RemoteEmbedder {
    fn dimension(&self) -> usize {
        self.dimension.load(Ordering::Acquire)
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(self.config.batch_size.max(1)) {
            out.extend(self.embed_chunk(chunk).await?);
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        let dimension = match self.dimension() {
            0 => "dimension not known yet".to_string(),
            d => format!("{d} dimensions"),
        };
        format!(
            "remote embeddings at {} (model {}, {dimension})",
            self.shown_url, self.config.model
        )
    }
}

/// `url` as the full endpoint: a base URL gets `/v1/embeddings`, a URL
/// ending in `/v1` gets `/embeddings`; one already ending in
/// `/embeddings` is kept. Query strings are kept.
fn endpoint_url(url: &str) -> Result<String, EmbedError> {
    let mut parsed = reqwest::Url::parse(url.trim()).map_err(|e| {
        EmbedError::Config(format!(
            "MEMORY_EMBED_URL {:?} is not a URL: {e}",
            redact_url(url)
        ))
    })?;
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return Err(EmbedError::Config(format!(
            "MEMORY_EMBED_URL {:?}: only http and https are supported",
            redact_url(url)
        )));
    }
    let path = parsed.path().trim_end_matches('/').to_string();
    let path = if path.ends_with("/embeddings") {
        path
    } else if path.ends_with("/v1") {
        format!("{path}/embeddings")
    } else {
        format!("{path}/v1/embeddings")
    };
    parsed.set_path(&path);
    Ok(parsed.to_string())
}

/// `url` without its user name and password (for messages and logs).
pub(crate) fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            if !parsed.username().is_empty() || parsed.password().is_some() {
                let _ = parsed.set_username("");
                let _ = parsed.set_password(None);
            }
            parsed.to_string()
        }
        // Not a URL: show only up to an `@`, which may follow credentials.
        Err(_) => match url.rfind('@') {
            Some(at) => format!("<redacted>@{}", &url[at + 1..]),
            None => url.to_string(),
        },
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

fn describe_transport(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    // reqwest's message may carry the URL, credentials included.
    let mut message = e.to_string();
    if let Some(url) = e.url() {
        message = message.replace(url.as_str(), &redact_url(url.as_str()));
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    format!("{kind}: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_accepts_base_urls_and_full_urls() {
        let cases = [
            (
                "http://127.0.0.1:8080",
                "http://127.0.0.1:8080/v1/embeddings",
            ),
            (
                "http://127.0.0.1:8080/",
                "http://127.0.0.1:8080/v1/embeddings",
            ),
            ("http://h/v1", "http://h/v1/embeddings"),
            ("http://h/v1/", "http://h/v1/embeddings"),
            ("http://h/v1/embeddings", "http://h/v1/embeddings"),
            (
                "https://h/openai/v1/embeddings/",
                "https://h/openai/v1/embeddings",
            ),
            ("https://h/proxy", "https://h/proxy/v1/embeddings"),
            (
                "https://h/x?api-version=2",
                "https://h/x/v1/embeddings?api-version=2",
            ),
        ];
        for (given, want) in cases {
            assert_eq!(endpoint_url(given).unwrap(), want, "{given}");
        }
        assert!(endpoint_url("ftp://h")
            .unwrap_err()
            .to_string()
            .contains("http"));
        assert!(endpoint_url("not a url").is_err());
    }

    #[test]
    fn credentials_never_show() {
        assert_eq!(redact_url("https://u:p@h/v1"), "https://h/v1");
        assert_eq!(redact_url("garbage u:p@h"), "<redacted>@h");
        let err = endpoint_url("http://u:secret@[bad")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
    }
}
