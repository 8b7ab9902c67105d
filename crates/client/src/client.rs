//! The HTTP client: one method per route and extension.
//!
//! Every call is validated with `memory_contract::validate` first, then sent
//! through the circuit breaker (one permit per call, however many attempts);
//! requests that are safe to repeat are retried
//! on transport errors and 502/503/504 with jittered exponential backoff.

use crate::breaker::{BreakerState, CircuitBreaker, Outcome};
use crate::config::{parse_base_url, redact_url, ClientConfig, RetryPolicy};
use crate::error::{envelope_from_body, ClientError};
use memory_contract::{
    capability, validate, BatchItemResult, BatchRequest, BatchResponse, BatchWrite,
    ChecksumResponse, ErrorCode, ErrorEnvelope, ForgetRequest, Health, ListResponse, MemoryWrite,
    Namespace, NamespaceListResponse, NamespacePatch, NamespaceUpsert, SearchRequest,
    SearchResponse, WriteAck,
};
use rand::Rng;
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Whether a request may be sent again after a failure that left its effect
/// unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    Safe,
    Unsafe,
}

/// A request ready to send, possibly several times.
struct Outgoing {
    method: Method,
    url: url::Url,
    body: Option<Vec<u8>>,
    repeat: Repeat,
    /// Per-attempt timeout when it differs from the configured one.
    timeout: Option<Duration>,
}

/// A 2xx answer.
struct Reply {
    status: u16,
    body: Vec<u8>,
}

/// An async client for any Memory Plugin v1 server. Cheap to clone; clones
/// share the connection pool, breaker and capability snapshot.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: url::Url,
    auth: Option<HeaderValue>,
    timeout: Duration,
    retry: RetryPolicy,
    breaker: CircuitBreaker,
    capabilities: RwLock<Option<Health>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &redact_url(self.inner.base.as_str()))
            .field("timeout", &self.inner.timeout)
            .field("token", &self.inner.auth.as_ref().map(|_| "***"))
            .field("retry", &self.inner.retry)
            .field("breaker", &self.inner.breaker.state())
            .finish()
    }
}

impl Client {
    /// Builds a client from `config`.
    ///
    /// # Errors
    /// [`ClientError::Config`] when the base URL is not an http(s) URL, the
    /// token cannot be a header value, or the HTTP stack cannot start.
    pub fn new(config: ClientConfig) -> Result<Client, ClientError> {
        let mut base = parse_base_url(&config.base_url)
            .map_err(|reason| ClientError::Config(format!("base URL: {reason}")))?;
        // Drop one trailing slash so that segments are appended after it.
        if let Ok(mut segments) = base.path_segments_mut() {
            segments.pop_if_empty();
        }
        let auth = match &config.token {
            Some(token) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .map_err(|_| {
                        ClientError::Config(
                            "token contains characters not allowed in an HTTP header".into(),
                        )
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        if config.retry.max_attempts == 0 {
            return Err(ClientError::Config(
                "retry.max_attempts must be at least 1".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("memory-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                auth,
                timeout: config.timeout,
                retry: config.retry,
                breaker: crate::breaker::CircuitBreaker::new(config.breaker, config.clock),
                capabilities: RwLock::new(None),
            }),
        })
    }

    /// Builds a client from `MEMORY_PLUGIN_URL`, `MEMORY_PLUGIN_TIMEOUT` and
    /// `MEMORY_PLUGIN_TOKEN`.
    ///
    /// # Errors
    /// [`ClientError::Config`] naming the variable at fault.
    pub fn from_env() -> Result<Client, ClientError> {
        Client::new(ClientConfig::from_env()?)
    }

    /// The base URL requests go to (password masked).
    pub fn base_url(&self) -> String {
        redact_url(self.inner.base.as_str())
    }

    /// The circuit breaker's current state.
    pub fn breaker_state(&self) -> BreakerState {
        self.inner.breaker.state()
    }

    // ---- capabilities ----------------------------------------------------

    /// `GET /v1/health`. A successful answer also replaces the capability
    /// snapshot.
    ///
    /// # Errors
    /// [`ClientError::Api`] with status 503 when the plugin's storage is
    /// down; transport, timeout, breaker and decode errors as for any call.
    pub async fn health(&self) -> Result<Health, ClientError> {
        let url = self.url(&["v1", "health"]);
        let health: Health = self
            .call_json(Method::GET, url, None::<&()>, Repeat::Safe)
            .await?;
        self.set_capabilities(health.clone());
        Ok(health)
    }

    /// Reads `/v1/health` and stores its capability list as the snapshot
    /// that [`Client::supports`] consults.
    ///
    /// # Errors
    /// As [`Client::health`].
    pub async fn refresh_capabilities(&self) -> Result<Vec<String>, ClientError> {
        Ok(self.health().await?.capabilities)
    }

    /// True when the last capability snapshot lists `capability`; false when
    /// it does not, or when no snapshot was taken yet.
    pub fn supports(&self, capability: &str) -> bool {
        self.snapshot()
            .map(|h| h.supports(capability))
            .unwrap_or(false)
    }

    /// The capability list of the last snapshot, if one was taken.
    pub fn capabilities(&self) -> Option<Vec<String>> {
        self.snapshot().map(|h| h.capabilities)
    }

    /// The embedding dimension the last snapshot advertised (our extension
    /// field of `/v1/health`), if any.
    pub fn embedding_dimension(&self) -> Option<usize> {
        self.snapshot().and_then(|h| h.embedding_dimension)
    }

    fn snapshot(&self) -> Option<Health> {
        self.inner
            .capabilities
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_capabilities(&self, health: Health) {
        *self
            .inner
            .capabilities
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(health);
    }

    /// Refuses an extension call unless the plugin advertises `capability`.
    /// Without a snapshot one is taken first: a v1-only plugin answers an
    /// extension route with a plain 404, which `get_namespace` would
    /// otherwise read as "absent".
    async fn require(&self, capability: &str) -> Result<(), ClientError> {
        let health = match self.snapshot() {
            Some(h) => h,
            None => self.health().await?,
        };
        if health.supports(capability) {
            Ok(())
        } else {
            Err(ClientError::Unsupported(capability.to_string()))
        }
    }

    // ---- namespaces ------------------------------------------------------

    /// `PUT /v1/namespaces/{name}`: creates the namespace or replaces its
    /// kind, expiry and metadata. Retried when it fails in transit.
    ///
    /// # Errors
    /// [`ClientError::Validation`] for a bad name or metadata; otherwise as
    /// for any call.
    pub async fn upsert_namespace(
        &self,
        name: &str,
        req: &NamespaceUpsert,
    ) -> Result<Namespace, ClientError> {
        validate::namespace_name("name", name)?;
        validate::namespace_metadata(req.metadata.as_ref())?;
        let url = self.url(&["v1", "namespaces", name]);
        self.call_json(Method::PUT, url, Some(req), Repeat::Safe)
            .await
    }

    /// Extension `list`: `GET /v1/namespaces/{name}`; `None` when the
    /// namespace does not exist (or has expired).
    ///
    /// # Errors
    /// [`ClientError::Unsupported`] when the plugin does not advertise `list`
    /// (a snapshot is taken first if there is none);
    /// [`ClientError::Validation`] for a bad name.
    pub async fn get_namespace(&self, name: &str) -> Result<Option<Namespace>, ClientError> {
        validate::namespace_name("name", name)?;
        self.require(capability::LIST).await?;
        let url = self.url(&["v1", "namespaces", name]);
        match self
            .call_json(Method::GET, url, None::<&()>, Repeat::Safe)
            .await
        {
            Ok(ns) => Ok(Some(ns)),
            Err(ClientError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Extension `list`: `GET /v1/namespaces?after=&limit=`, one page of
    /// every live namespace (with or without memories), ordered by name.
    /// Pass the page's `next_after` as `after` to get the next one.
    ///
    /// # Errors
    /// [`ClientError::Unsupported`] when the plugin does not advertise `list`;
    /// [`ClientError::Validation`] for a bad `after` or a limit outside 1..=1000.
    pub async fn list_namespaces(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<NamespaceListResponse, ClientError> {
        if let Some(after) = after {
            validate::namespace_name("after", after)?;
        }
        let limit = validate::list_limit(Some(i64::from(limit)))?;
        self.require(capability::LIST).await?;
        let mut url = self.url(&["v1", "namespaces"]);
        {
            let mut query = url.query_pairs_mut();
            if let Some(after) = after {
                query.append_pair("after", after);
            }
            query.append_pair("limit", &limit.to_string());
        }
        self.call_json(Method::GET, url, None::<&()>, Repeat::Safe)
            .await
    }

    /// `PATCH /v1/namespaces/{name}`: changes the fields present.
    ///
    /// # Errors
    /// [`ClientError::Validation`] for a bad name or an empty patch;
    /// [`ClientError::Api`] 404 when the namespace is absent.
    pub async fn patch_namespace(
        &self,
        name: &str,
        patch: &NamespacePatch,
    ) -> Result<Namespace, ClientError> {
        validate::namespace_name("name", name)?;
        validate::namespace_patch(patch)?;
        let url = self.url(&["v1", "namespaces", name]);
        self.call_json(Method::PATCH, url, Some(patch), Repeat::Unsafe)
            .await
    }

    /// `DELETE /v1/namespaces/{name}`: deletes it and its memories.
    ///
    /// # Errors
    /// [`ClientError::Validation`] for a bad name; [`ClientError::Api`] 404
    /// when the namespace is absent.
    pub async fn delete_namespace(&self, name: &str) -> Result<(), ClientError> {
        validate::namespace_name("name", name)?;
        let url = self.url(&["v1", "namespaces", name]);
        self.call(Method::DELETE, url, None::<&()>, Repeat::Unsafe)
            .await
            .map(drop)
    }

    // ---- memories --------------------------------------------------------

    /// `POST /v1/namespaces/{name}/memories`. Retried only when the write
    /// carries an id (the plugin then upserts, so a repeat is harmless).
    ///
    /// # Errors
    /// [`ClientError::Validation`] for a bad name, blank content, bad
    /// propagation or embedding; [`ClientError::Api`] 404 for an absent
    /// namespace, 409 when the id lives in another namespace.
    pub async fn write_memory(
        &self,
        namespace: &str,
        write: &MemoryWrite,
    ) -> Result<WriteAck, ClientError> {
        validate::namespace_name("namespace", namespace)?;
        validate::memory_write(write)?;
        let repeat = if write.id.is_some() {
            Repeat::Safe
        } else {
            Repeat::Unsafe
        };
        let url = self.url(&["v1", "namespaces", namespace, "memories"]);
        self.call_json(Method::POST, url, Some(write), repeat).await
    }

    /// Extension `batch`: `POST /v1/memories/batch`. Results come back in
    /// input order. An item that breaks a contract rule is not sent: its
    /// result is a `bad_request` error made here, and the valid items still
    /// go. Retried only when every item carries an id.
    ///
    /// # Errors
    /// [`ClientError::Unsupported`] when the plugin does not advertise `batch`
    /// (a snapshot is taken first if there is none);
    /// [`ClientError::Validation`] when the batch has too many items;
    /// [`ClientError::Decode`] when the plugin returns a different number of
    /// results than items sent.
    pub async fn write_batch(&self, req: &BatchRequest) -> Result<BatchResponse, ClientError> {
        validate::batch_request(req)?;
        self.require(capability::BATCH).await?;
        let mut results: Vec<Option<BatchItemResult>> = Vec::with_capacity(req.writes.len());
        let mut to_send: Vec<BatchWrite> = Vec::with_capacity(req.writes.len());
        for (index, item) in req.writes.iter().enumerate() {
            match validate::batch_item(index, item) {
                Ok(()) => {
                    results.push(None);
                    to_send.push(item.clone());
                }
                Err(e) => results.push(Some(BatchItemResult::Err {
                    error: ErrorEnvelope::new(ErrorCode::BadRequest, e.to_string())
                        .with_details(serde_json::json!({ "field": e.field })),
                })),
            }
        }
        if !to_send.is_empty() {
            let repeat = if to_send.iter().all(|w| w.write.id.is_some()) {
                Repeat::Safe
            } else {
                Repeat::Unsafe
            };
            let sent = to_send.len();
            let url = self.url(&["v1", "memories", "batch"]);
            let answer: BatchResponse = self
                .call_json(
                    Method::POST,
                    url,
                    Some(&BatchRequest { writes: to_send }),
                    repeat,
                )
                .await?;
            if answer.results.len() != sent {
                return Err(ClientError::Decode {
                    status: 200,
                    message: format!(
                        "batch of {sent} writes answered with {} results",
                        answer.results.len()
                    ),
                });
            }
            let mut answered = answer.results.into_iter();
            for slot in results.iter_mut().filter(|r| r.is_none()) {
                *slot = answered.next();
            }
        }
        Ok(BatchResponse {
            results: results.into_iter().flatten().collect(),
        })
    }

    /// `POST /v1/search`. Retried when it fails in transit.
    ///
    /// # Errors
    /// [`ClientError::Validation`] for no or bad namespaces, a limit outside
    /// 1..=100, or a bad embedding.
    pub async fn search(&self, req: &SearchRequest) -> Result<SearchResponse, ClientError> {
        validate::search_request(req)?;
        let url = self.url(&["v1", "search"]);
        self.call_json(Method::POST, url, Some(req), Repeat::Safe)
            .await
    }

    /// Extension `list`: one page of a namespace's memories ordered by id,
    /// after `after`; `limit` 0 means the plugin's default (100), at most 1000.
    ///
    /// # Errors
    /// [`ClientError::Unsupported`] when the plugin does not advertise `list`
    /// (a snapshot is taken first if there is none);
    /// [`ClientError::Validation`] for a bad name or limit;
    /// [`ClientError::Api`] 404 for an absent namespace.
    pub async fn list_memories(
        &self,
        namespace: &str,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<ListResponse, ClientError> {
        validate::namespace_name("namespace", namespace)?;
        let limit = validate::list_limit(Some(i64::from(limit)))?;
        self.require(capability::LIST).await?;
        let mut url = self.url(&["v1", "namespaces", namespace, "memories"]);
        {
            let mut query = url.query_pairs_mut();
            if let Some(after) = after {
                query.append_pair("after", &after.to_string());
            }
            query.append_pair("limit", &limit.to_string());
        }
        self.call_json(Method::GET, url, None::<&()>, Repeat::Safe)
            .await
    }

    /// Extension `scan`: `GET /v1/memories?after=&before=&limit=`, one page
    /// of every live memory of every live namespace, ordered by id, with ids
    /// strictly between `after` and `before` when given. Pass the page's
    /// `next_after` as `after` to get the next one.
    ///
    /// # Errors
    /// [`ClientError::Unsupported`] when the plugin does not advertise `scan`;
    /// [`ClientError::Validation`] for a limit outside 1..=1000.
    pub async fn scan_memories(
        &self,
        after: Option<Uuid>,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<ListResponse, ClientError> {
        self.scan(after, before, limit, false).await
    }

    /// As [`Client::scan_memories`], with `embedding=true`: each memory
    /// carries its stored embedding, when it has one.
    ///
    /// # Errors
    /// As [`Client::scan_memories`].
    pub async fn scan_memories_with_embeddings(
        &self,
        after: Option<Uuid>,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<ListResponse, ClientError> {
        self.scan(after, before, limit, true).await
    }

    async fn scan(
        &self,
        after: Option<Uuid>,
        before: Option<Uuid>,
        limit: u32,
        embeddings: bool,
    ) -> Result<ListResponse, ClientError> {
        let limit = validate::list_limit(Some(i64::from(limit)))?;
        self.require(capability::SCAN).await?;
        let mut url = self.url(&["v1", "memories"]);
        {
            let mut query = url.query_pairs_mut();
            if let Some(after) = after {
                query.append_pair("after", &after.to_string());
            }
            if let Some(before) = before {
                query.append_pair("before", &before.to_string());
            }
            query.append_pair("limit", &limit.to_string());
            if embeddings {
                query.append_pair("embedding", "true");
            }
        }
        self.call_json(Method::GET, url, None::<&()>, Repeat::Safe)
            .await
    }

    /// Extension `checksum`: `GET /v1/memories/checksums`, the digest of
    /// every live memory per bucket of ids sharing their first `prefix` hex
    /// digits, with `created_at` in each digest when asked for.
    ///
    /// # Errors
    /// [`ClientError::Unsupported`] when the plugin does not advertise
    /// `checksum`; [`ClientError::Validation`] for a prefix outside 1..=4.
    pub async fn memory_checksums(
        &self,
        prefix: u32,
        created_at: bool,
    ) -> Result<ChecksumResponse, ClientError> {
        self.memory_checksums_within(prefix, created_at, Duration::ZERO)
            .await
    }

    /// [`Client::memory_checksums`] with a per-attempt timeout of at least
    /// `at_least`: the plugin reads its whole table to answer, which takes
    /// longer than an interactive call on a large store.
    ///
    /// # Errors
    /// As [`Client::memory_checksums`].
    pub async fn memory_checksums_within(
        &self,
        prefix: u32,
        created_at: bool,
        at_least: Duration,
    ) -> Result<ChecksumResponse, ClientError> {
        let prefix = validate::checksum_prefix(Some(i64::from(prefix)))?;
        self.require(capability::CHECKSUM).await?;
        let mut url = self.url(&["v1", "memories", "checksums"]);
        url.query_pairs_mut()
            .append_pair("prefix", &prefix.to_string())
            .append_pair("created_at", if created_at { "true" } else { "false" });
        let reply = self
            .send_with_retries(Outgoing {
                method: Method::GET,
                url,
                body: None,
                repeat: Repeat::Safe,
                timeout: (at_least > self.inner.timeout).then_some(at_least),
            })
            .await?;
        decode_reply(&reply)
    }

    /// `DELETE /v1/memories/{id}` on behalf of `namespace`: deletes the
    /// memory only if it lives there.
    ///
    /// # Errors
    /// [`ClientError::Validation`] for a bad namespace name;
    /// [`ClientError::Api`] 404 when the memory is not in that namespace.
    pub async fn forget(&self, id: Uuid, namespace: &str) -> Result<(), ClientError> {
        let req = ForgetRequest {
            requested_by_namespace: namespace.to_string(),
        };
        validate::forget_request(&req)?;
        let url = self.url(&["v1", "memories", &id.to_string()]);
        self.call(Method::DELETE, url, Some(&req), Repeat::Unsafe)
            .await
            .map(drop)
    }

    // ---- plumbing --------------------------------------------------------

    /// The base URL with `segments` appended, each percent-escaped.
    fn url(&self, segments: &[&str]) -> url::Url {
        let mut url = self.inner.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.extend(segments);
        }
        url
    }

    async fn call_json<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        url: url::Url,
        body: Option<&B>,
        repeat: Repeat,
    ) -> Result<T, ClientError> {
        let reply = self.call(method, url, body, repeat).await?;
        decode_reply(&reply)
    }

    async fn call<B: Serialize>(
        &self,
        method: Method,
        url: url::Url,
        body: Option<&B>,
        repeat: Repeat,
    ) -> Result<Reply, ClientError> {
        let body = match body {
            Some(b) => Some(serde_json::to_vec(b).map_err(|e| {
                ClientError::Transport(format!("cannot encode the request body: {e}"))
            })?),
            None => None,
        };
        self.send_with_retries(Outgoing {
            method,
            url,
            body,
            repeat,
            timeout: None,
        })
        .await
    }

    /// Sends `out`, retrying it when that is safe. The breaker counts the
    /// call once, however many attempts it took.
    async fn send_with_retries(&self, out: Outgoing) -> Result<Reply, ClientError> {
        let Some(permit) = self.inner.breaker.admit() else {
            return Err(ClientError::CircuitOpen);
        };
        let result = self.attempts(&out).await;
        permit.record(match &result {
            Ok(_) => Outcome::Alive,
            Err(ClientError::Api { status, .. }) if *status < 500 => Outcome::Alive,
            Err(_) => Outcome::Failed,
        });
        result
    }

    async fn attempts(&self, out: &Outgoing) -> Result<Reply, ClientError> {
        let policy = &self.inner.retry;
        let started = Instant::now();
        let mut attempt: u32 = 1;
        loop {
            let result = self.send_once(out).await;
            let error = match result {
                Ok(reply) => return Ok(reply),
                Err(e) => e,
            };
            let retryable = matches!(
                error,
                ClientError::Transport(_)
                    | ClientError::Timeout
                    | ClientError::Api {
                        status: 502..=504,
                        ..
                    }
            );
            if out.repeat == Repeat::Unsafe || !retryable || attempt >= policy.max_attempts {
                return Err(error);
            }
            let delay = backoff(policy, attempt);
            if started.elapsed() + delay > policy.max_elapsed {
                return Err(error);
            }
            tracing::debug!(
                method = %out.method,
                path = out.url.path(),
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %error,
                "retrying plugin request"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
            // Other calls may have opened the breaker meanwhile; then stop
            // and report the real failure rather than the breaker.
            if matches!(self.inner.breaker.state(), BreakerState::Open { .. }) {
                return Err(error);
            }
        }
    }

    async fn send_once(&self, out: &Outgoing) -> Result<Reply, ClientError> {
        let mut request = self.inner.http.request(out.method.clone(), out.url.clone());
        if let Some(auth) = &self.inner.auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        if let Some(timeout) = out.timeout {
            request = request.timeout(timeout);
        }
        if let Some(body) = &out.body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(&out.method, &out.url, e))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| transport_error(&out.method, &out.url, e))?
            .to_vec();
        if (200..300).contains(&status) {
            Ok(Reply { status, body })
        } else {
            Err(ClientError::Api {
                status,
                error: envelope_from_body(status, &body),
            })
        }
    }
}

/// A 2xx answer's JSON body.
fn decode_reply<T: DeserializeOwned>(reply: &Reply) -> Result<T, ClientError> {
    serde_json::from_slice(&reply.body).map_err(|e| ClientError::Decode {
        status: reply.status,
        message: format!(
            "{e}; body starts with {:?}",
            validate::excerpt(&String::from_utf8_lossy(&reply.body), 120)
        ),
    })
}

/// The delay before retry number `attempt` (1-based): exponential, capped,
/// drawn from the upper half so that concurrent clients spread out.
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
    let full = policy
        .initial_backoff
        .saturating_mul(factor)
        .min(policy.max_backoff);
    let half = full / 2;
    let extra = if half.is_zero() {
        Duration::ZERO
    } else {
        rand::thread_rng().gen_range(Duration::ZERO..=half)
    };
    half + extra
}

/// Maps a reqwest error to a client error without its URL (which may carry
/// credentials); the message names method and path instead.
fn transport_error(method: &Method, url: &url::Url, e: reqwest::Error) -> ClientError {
    if e.is_timeout() {
        return ClientError::Timeout;
    }
    let e = e.without_url();
    let mut message = format!("{method} {}: {e}", url.path());
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    ClientError::Transport(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_within_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(800),
            max_elapsed: Duration::from_secs(60),
        };
        for _ in 0..50 {
            let first = backoff(&policy, 1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = backoff(&policy, 3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let tenth = backoff(&policy, 10);
            assert!(tenth >= Duration::from_millis(400) && tenth <= Duration::from_millis(800));
        }
    }

    #[test]
    fn url_escapes_segments_and_tolerates_trailing_slash() {
        let client = Client::new(ClientConfig::new("http://127.0.0.1:9/prefix/")).expect("client");
        let url = client.url(&["v1", "namespaces", "custom:a/b c", "memories"]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/prefix/v1/namespaces/custom:a%2Fb%20c/memories"
        );
        let plain = Client::new(ClientConfig::new("http://127.0.0.1:9")).expect("client");
        assert_eq!(
            plain.url(&["v1", "health"]).as_str(),
            "http://127.0.0.1:9/v1/health"
        );
    }

    #[test]
    fn debug_never_shows_the_token() {
        let client = Client::new(ClientConfig::new("http://127.0.0.1:9").token("tok-123-secret"))
            .expect("client");
        let debug = format!("{client:?}");
        assert!(!debug.contains("tok-123-secret"), "{debug}");
    }

    #[test]
    fn new_refuses_non_http_base_url() {
        let err = Client::new(ClientConfig::new("ftp://x")).unwrap_err();
        assert!(matches!(err, ClientError::Config(_)), "{err}");
        let err = Client::new(ClientConfig::new("not a url")).unwrap_err();
        assert!(err.to_string().contains("not a URL"), "{err}");
    }
}
