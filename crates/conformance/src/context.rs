//! What a check works with: the plugin's address, a typed client, a raw HTTP
//! client for inputs the typed client would refuse to send, and the
//! namespaces the check created (deleted after it, pass or fail).

use crate::outcome::{Failure, StepResult};
use chrono::{DateTime, Utc};
use memory_client::{BreakerPolicy, Client, ClientConfig, ClientError, RetryPolicy};
use memory_contract::{
    Memory, MemoryKind, MemorySource, MemoryWrite, NamespaceKind, NamespaceUpsert, SearchRequest,
    WriteAck,
};
use reqwest::header::AUTHORIZATION;
use reqwest::Method;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Shared by every check of one run.
pub(crate) struct Suite {
    pub client: Client,
    pub raw: reqwest::Client,
    pub base: url::Url,
    pub token: Option<String>,
    /// Unique per run; every namespace name starts with it.
    pub run_id: String,
    pub capabilities: Vec<String>,
    pub embedding_dim: usize,
}

impl Suite {
    pub fn new(
        url: &str,
        token: Option<String>,
        timeout: Duration,
        embedding_dim: usize,
    ) -> Result<Suite, ClientError> {
        let mut config = ClientConfig::new(url)
            .timeout(timeout)
            // The suite wants to see every answer as the plugin gives it.
            .retry(RetryPolicy::none())
            .breaker(BreakerPolicy::disabled());
        if let Some(t) = &token {
            config = config.token(t.clone());
        }
        let client = Client::new(config)?;
        let mut base = url::Url::parse(url.trim())
            .map_err(|e| ClientError::Config(format!("base URL: {e}")))?;
        if let Ok(mut segments) = base.path_segments_mut() {
            segments.pop_if_empty();
        }
        let raw = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| ClientError::Config(format!("cannot build the HTTP client: {e}")))?;
        let run_id = uuid::Uuid::new_v4().simple().to_string()[..10].to_string();
        Ok(Suite {
            client,
            raw,
            base,
            token,
            run_id,
            capabilities: Vec::new(),
            embedding_dim,
        })
    }

    pub fn supports(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    /// The base URL with `segments` appended, each percent-escaped.
    pub fn url(&self, segments: &[&str]) -> url::Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.extend(segments);
        }
        url
    }

    /// A raw request with the token attached.
    pub fn raw_request(&self, method: Method, url: url::Url) -> reqwest::RequestBuilder {
        let mut request = self.raw.request(method, url);
        if let Some(t) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        request
    }
}

/// A raw answer: status and body.
#[derive(Debug, Clone)]
pub(crate) struct RawAnswer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl RawAnswer {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// A short, printable form of the answer for failure messages.
    pub fn describe(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        if text.is_empty() {
            format!("{} with an empty body", self.status)
        } else {
            format!(
                "{} {}",
                self.status,
                memory_contract::validate::excerpt(text, 200)
            )
        }
    }
}

/// One check's view: the suite plus the namespaces it made.
pub(crate) struct CheckCtx {
    pub suite: Arc<Suite>,
    pub check: &'static str,
    created: Mutex<Vec<String>>,
    counter: AtomicUsize,
}

impl CheckCtx {
    pub fn new(suite: Arc<Suite>, check: &'static str) -> Self {
        CheckCtx {
            suite,
            check,
            created: Mutex::new(Vec::new()),
            counter: AtomicUsize::new(0),
        }
    }

    pub fn client(&self) -> &Client {
        &self.suite.client
    }

    /// A fresh namespace name unique to this run and check, registered for
    /// deletion after the check. Nothing is created.
    pub fn name(&self, tag: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "custom:conformance-{}-{}-{tag}{n}",
            self.suite.run_id,
            self.check.replace('_', "-")
        );
        self.register(&name);
        name
    }

    /// Registers a name made elsewhere for deletion after the check.
    pub fn register(&self, name: &str) {
        let mut created = self.created.lock().unwrap_or_else(|p| p.into_inner());
        if !created.iter().any(|n| n == name) {
            created.push(name.to_string());
        }
    }

    /// Creates a fresh namespace (kind `custom`) and returns its name.
    pub async fn namespace(&self, tag: &str) -> StepResult<String> {
        let name = self.name(tag);
        self.create(&name).await?;
        Ok(name)
    }

    /// Creates (PUT) namespace `name`, registered for deletion.
    pub async fn create(&self, name: &str) -> StepResult<()> {
        self.register(name);
        self.client()
            .upsert_namespace(
                name,
                &NamespaceUpsert {
                    kind: NamespaceKind::Custom,
                    expires_at: None,
                    metadata: None,
                },
            )
            .await
            .map(drop)
            .map_err(|e| Failure::step(&format!("PUT namespace {name}"), e))
    }

    /// Deletes every namespace the check registered; 404 is fine, and so is
    /// 400 for a name the plugin refuses (it was never created). Raw requests
    /// are used so that even a bad name a faulty plugin accepted is removed.
    /// Returns the problems met, for the report.
    pub async fn cleanup(&self) -> Vec<String> {
        let names = std::mem::take(&mut *self.created.lock().unwrap_or_else(|p| p.into_inner()));
        let mut problems = Vec::new();
        for name in names {
            let valid = memory_contract::validate::namespace_name("name", &name).is_ok();
            match self
                .raw(Method::DELETE, &["v1", "namespaces", &name], None)
                .await
            {
                Ok(a) if (200..300).contains(&a.status) || a.status == 404 => {}
                Ok(a) if !valid && a.status == 400 => {}
                Ok(a) => problems.push(format!("DELETE namespace {name}: {}", a.describe())),
                Err(f) => problems.push(format!("DELETE namespace {name}: {}", f.seen)),
            }
        }
        problems
    }

    /// Writes `content` (a `fact` from the `agent`) into `namespace`.
    pub async fn write(&self, namespace: &str, content: &str) -> StepResult<WriteAck> {
        self.write_full(
            namespace,
            &MemoryWrite::new(content, MemoryKind::Fact, MemorySource::Agent),
        )
        .await
    }

    /// Writes `write` into `namespace`.
    pub async fn write_full(&self, namespace: &str, write: &MemoryWrite) -> StepResult<WriteAck> {
        self.client()
            .write_memory(namespace, write)
            .await
            .map_err(|e| Failure::step(&format!("write a memory into {namespace}"), e))
    }

    /// Newest-first search (no query) over `namespaces`, limit 100.
    pub async fn recent(&self, namespaces: &[&str]) -> StepResult<Vec<Memory>> {
        self.search(SearchRequest {
            namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
            limit: Some(100),
            ..SearchRequest::default()
        })
        .await
    }

    /// Runs `req` and returns its memories.
    pub async fn search(&self, req: SearchRequest) -> StepResult<Vec<Memory>> {
        let what = format!(
            "search {:?} query {:?}",
            req.namespaces,
            req.query.as_deref().unwrap_or("")
        );
        self.client()
            .search(&req)
            .await
            .map(|r| r.memories)
            .map_err(|e| Failure::step(&what, e))
    }

    /// Sends a raw request with an optional raw body (sent as JSON content).
    pub async fn raw(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&str>,
    ) -> StepResult<RawAnswer> {
        self.raw_with_query(method, segments, &[], body).await
    }

    /// [`CheckCtx::raw`] with query parameters.
    pub async fn raw_with_query(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&str>,
    ) -> StepResult<RawAnswer> {
        let mut url = self.suite.url(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let what = format!("{method} {}", url.path());
        let mut request = self.suite.raw_request(method, url);
        if let Some(b) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        let response = request.send().await.map_err(|e| {
            Failure::new(
                format!("an answer to {what}"),
                format!("transport error: {}", e.without_url()),
            )
        })?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| {
                Failure::new(
                    format!("the body of the answer to {what}"),
                    format!("transport error: {}", e.without_url()),
                )
            })?
            .to_vec();
        Ok(RawAnswer { status, body })
    }
}

/// Memories of `namespace` among `memories`.
pub(crate) fn in_namespace<'a>(memories: &'a [Memory], namespace: &str) -> Vec<&'a Memory> {
    memories
        .iter()
        .filter(|m| m.namespace == namespace)
        .collect()
}

/// Contents of `memories`, in order, for messages.
pub(crate) fn contents(memories: &[Memory]) -> Vec<&str> {
    memories.iter().map(|m| m.content.as_str()).collect()
}

/// `now + by`, for expiries.
pub(crate) fn from_now(by: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(by).unwrap_or_else(|_| chrono::Duration::zero())
}
