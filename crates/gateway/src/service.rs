//! The gateway's operations, independent of the transport that carries them
//! (MCP over HTTP or stdio, the REST surface): every call re-derives the
//! caller's namespaces from the live tree, checks them, redacts before
//! writing, audits org writes and marks org reads.

use crate::directory::{AuditEntry, Directory, DirectoryError};
use crate::limit::RateLimiter;
use crate::metrics::Metrics;
use chrono::{DateTime, Utc};
use memory_client::{Client, ClientError};
use memory_contract::{
    capability, ErrorCode, Memory, MemoryKind, MemorySource, MemoryWrite, NamespaceKind,
    NamespaceUpsert, RankMode, SearchRequest, WriteAck,
};
use memory_embed::Embedder;
use memory_namespace::{LegacyScope, NamespaceEntry, WorkspaceAccess};
use memory_redact::Redactor;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Largest memory content the gateway accepts, in bytes.
pub const MAX_CONTENT_BYTES: usize = 32 * 1024;
/// Most memories `recall_memory` returns.
pub const RECALL_LIMIT: i64 = 50;
/// How long a summary lives unless the caller says otherwise.
pub const SUMMARY_TTL: Duration = Duration::from_secs(30 * 86_400);
/// Longest wait for one embedding; past it the write goes on without one
/// and the search by keywords only.
pub const EMBED_BUDGET: Duration = Duration::from_secs(10);

/// How the gateway uses its embedder with the plugin it talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedUse {
    /// No vectors: no embedder, a plugin without `embedding`, or a
    /// dimension the plugin does not store.
    Off,
    /// Vectors on writes; a query's vector alone ranks a search (the v1
    /// rule: an embedding wins over a query).
    Semantic,
    /// Vectors on writes; a search sends the query and its vector with
    /// `mode: hybrid` (the plugin fuses both rankings).
    Hybrid,
}

/// What to do given the plugin's advertised capabilities and dimension and
/// the embedder's dimension (0 while a remote embedder has not answered
/// yet). `Err((plugin, embedder))` when the dimensions are known to differ.
///
/// # Errors
///
/// The two dimensions, when both are known and differ.
pub fn embed_use(
    embedding: bool,
    hybrid: bool,
    plugin_dimension: Option<usize>,
    embedder_dimension: usize,
) -> Result<EmbedUse, (usize, usize)> {
    if !embedding {
        return Ok(EmbedUse::Off);
    }
    if let Some(p) = plugin_dimension {
        if embedder_dimension != 0 && p != embedder_dimension {
            return Err((p, embedder_dimension));
        }
    }
    Ok(if hybrid {
        EmbedUse::Hybrid
    } else {
        EmbedUse::Semantic
    })
}

/// The search request for `query` with its vector (if any) under `how`.
pub fn search_request(
    namespaces: Vec<String>,
    query: Option<String>,
    kinds: Option<Vec<MemoryKind>>,
    limit: i64,
    vector: Option<Vec<f32>>,
    how: EmbedUse,
) -> SearchRequest {
    let (embedding, mode) = match (vector, how) {
        (Some(v), EmbedUse::Hybrid) if query.is_some() => (Some(v), Some(RankMode::Hybrid)),
        (Some(v), EmbedUse::Semantic | EmbedUse::Hybrid) => (Some(v), None),
        _ => (None, None),
    };
    SearchRequest {
        namespaces,
        query,
        kinds,
        limit: Some(limit),
        embedding,
        mode,
    }
}

/// Whether a plugin's refusal is about an embedding's dimension.
fn refuses_dimension(e: &ClientError) -> bool {
    match e {
        ClientError::Api { status: 400, error } => {
            let m = error.message.to_ascii_lowercase();
            m.contains("dimension")
        }
        ClientError::Validation(v) => v.to_string().to_ascii_lowercase().contains("dimension"),
        _ => false,
    }
}

/// The embedder and what the gateway learnt about the plugin's vectors.
struct Embedding {
    embedder: Arc<dyn Embedder>,
    /// The plugin refused a vector for its dimension: no more vectors.
    refused: AtomicBool,
    /// The plugin dimension the last mismatch line was logged for (0: none).
    mismatch_logged: AtomicUsize,
}

/// Why a call was refused or failed. Every message is a sentence an agent
/// can act on; none holds content or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// The arguments are wrong (the message names the argument).
    #[error("{0}")]
    Invalid(String),
    /// The namespace rules forbid it.
    #[error("{0}")]
    Denied(String),
    /// No such memory where the caller may act.
    #[error("{0}")]
    NotFound(String),
    /// The workspace made too many calls.
    #[error("{0}")]
    RateLimited(String),
    /// The plugin or the workspace database does not answer.
    #[error("{0}")]
    Unavailable(String),
}

impl ToolError {
    /// The metrics label of the outcome.
    pub fn outcome(&self) -> &'static str {
        match self {
            ToolError::Invalid(_) => "invalid",
            ToolError::Denied(_) => "denied",
            ToolError::NotFound(_) => "not_found",
            ToolError::RateLimited(_) => "rate_limited",
            ToolError::Unavailable(_) => "unavailable",
        }
    }
}

impl From<DirectoryError> for ToolError {
    fn from(e: DirectoryError) -> Self {
        tracing::warn!(error = %e, "workspace database failed");
        ToolError::Unavailable(
            "the workspace directory is unavailable right now, so access cannot be checked; \
             nothing was read or written; try again shortly"
                .to_string(),
        )
    }
}

/// Maps a plugin failure to what the agent is told.
pub fn plugin_error(e: ClientError, doing: &str) -> ToolError {
    match &e {
        ClientError::Api { status, error } if *status < 500 && *status != 429 => {
            tracing::warn!(status, code = %error.code, "plugin refused a request while {doing}");
            ToolError::Invalid(format!(
                "the memory store refused the request while {doing}: {}",
                error.message
            ))
        }
        _ => {
            tracing::warn!(error = %e, "memory store unavailable while {doing}");
            ToolError::Unavailable(format!(
                "the memory store is unavailable right now ({}); nothing was changed while {doing}; try again shortly",
                match e {
                    ClientError::Timeout => "it did not answer in time".to_string(),
                    ClientError::CircuitOpen => "it failed repeatedly and is being given a pause".to_string(),
                    ClientError::Api { status, .. } => format!("it answered {status}"),
                    ClientError::Decode { .. } => "it sent an answer that could not be read".to_string(),
                    _ => "it cannot be reached".to_string(),
                }
            ))
        }
    }
}

fn denied_write(ns: &str, access: &WorkspaceAccess) -> ToolError {
    let writable: Vec<&str> = access.writable().map(|e| e.name.as_str()).collect();
    ToolError::Denied(format!(
        "this workspace may not write to namespace {ns:?}; it may write to: {}",
        writable.join(", ")
    ))
}

/// Arguments of `commit_memory`.
#[derive(Debug, Deserialize)]
pub struct CommitMemoryArgs {
    pub content: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

/// Arguments of `recall_memory`.
#[derive(Debug, Default, Deserialize)]
pub struct RecallMemoryArgs {
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

/// Arguments of `commit_memory_v2`.
#[derive(Debug, Deserialize)]
pub struct CommitMemoryV2Args {
    pub content: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub pin: Option<bool>,
}

/// Arguments of `search_memory`.
#[derive(Debug, Default, Deserialize)]
pub struct SearchMemoryArgs {
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub namespaces: Option<Vec<String>>,
    #[serde(default)]
    pub kinds: Option<Vec<String>>,
    #[serde(default)]
    pub limit: Option<i64>,
}

/// Arguments of `commit_summary`.
#[derive(Debug, Deserialize)]
pub struct CommitSummaryArgs {
    pub content: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// Arguments of `forget_memory`.
#[derive(Debug, Deserialize)]
pub struct ForgetMemoryArgs {
    pub memory_id: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
}

/// A tool's answer: the text the agent reads, and whether it is an error.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolAnswer {
    pub text: String,
    pub is_error: bool,
}

/// A memory as an agent sees it: org memories carry the shared-text prefix.
fn shown_content(m: &Memory) -> String {
    if m.namespace.starts_with("org:") {
        format!(
            "[MEMORY id={} scope=ORG ns={}]: {}",
            m.id, m.namespace, m.content
        )
    } else {
        m.content.clone()
    }
}

/// A row of `recall_memory`'s answer, fields in the platform's order.
#[derive(serde::Serialize)]
struct RecallRow<'a> {
    id: Uuid,
    content: String,
    scope: &'a str,
    created_at: DateTime<Utc>,
}

/// A memory in `search_memory`'s answer, fields in the contract's order.
#[derive(serde::Serialize)]
pub struct FoundMemory<'a> {
    id: Uuid,
    namespace: &'a str,
    content: String,
    kind: &'a str,
    source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
    pin: bool,
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f64>,
}

fn found(m: &Memory) -> FoundMemory<'_> {
    FoundMemory {
        id: m.id,
        namespace: &m.namespace,
        content: shown_content(m),
        kind: m.kind.as_str(),
        source: m.source.as_str(),
        expires_at: m.expires_at,
        pin: m.pin,
        created_at: m.created_at,
        score: m.score,
    }
}

#[derive(serde::Serialize)]
struct SearchAnswer<'a> {
    memories: Vec<FoundMemory<'a>>,
}

fn parse_args<T: serde::de::DeserializeOwned>(tool: &str, args: Value) -> Result<T, ToolError> {
    let args = if args.is_null() { json!({}) } else { args };
    serde_json::from_value(args)
        .map_err(|e| ToolError::Invalid(format!("bad arguments for {tool}: {e}")))
}

fn required_content(content: Option<String>) -> Result<String, ToolError> {
    let content = content.ok_or_else(|| {
        ToolError::Invalid("`content` is required: the text to remember".to_string())
    })?;
    if content.trim().is_empty() {
        return Err(ToolError::Invalid(
            "`content` must not be blank".to_string(),
        ));
    }
    if content.len() > MAX_CONTENT_BYTES {
        return Err(ToolError::Invalid(format!(
            "`content` is {} bytes; the limit is {} bytes (32 KiB): split it or summarise it",
            content.len(),
            MAX_CONTENT_BYTES
        )));
    }
    if content.contains('\0') {
        return Err(ToolError::Invalid(
            "`content` must not contain NUL characters".to_string(),
        ));
    }
    Ok(content)
}

fn parse_expires_at(
    text: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, ToolError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let at = DateTime::parse_from_rfc3339(text)
        .map_err(|_| {
            ToolError::Invalid(format!(
                "`expires_at` {text:?} is not an RFC 3339 time such as 2026-12-31T23:59:00Z"
            ))
        })?
        .with_timezone(&Utc);
    if at <= now {
        return Err(ToolError::Invalid(format!(
            "`expires_at` {text:?} is in the past; give a future time or leave it out"
        )));
    }
    Ok(Some(at))
}

/// A memory kind from `fact`, `summary` or `checkpoint` (any case).
///
/// # Errors
///
/// `Invalid` naming the accepted kinds.
pub fn parse_kind(text: &str) -> Result<MemoryKind, ToolError> {
    text.trim().to_ascii_lowercase().parse().map_err(|_| {
        ToolError::Invalid(format!(
            "unknown kind {text:?}: use fact, summary or checkpoint"
        ))
    })
}

fn parse_scope(text: Option<&str>) -> Result<Option<LegacyScope>, ToolError> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => LegacyScope::parse(t).map(Some).ok_or_else(|| {
            ToolError::Invalid(format!("unknown scope {t:?}: use LOCAL, TEAM or GLOBAL"))
        }),
    }
}

/// The namespace a write names, or the caller's own when it names none.
fn chosen_or_own(namespace: Option<String>, access: &WorkspaceAccess) -> String {
    namespace
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| access.workspace_namespace().to_string())
}

fn namespace_kind(name: &str) -> NamespaceKind {
    match name.split_once(':').map(|(k, _)| k) {
        Some("workspace") => NamespaceKind::Workspace,
        Some("team") => NamespaceKind::Team,
        Some("org") => NamespaceKind::Org,
        _ => NamespaceKind::Custom,
    }
}

/// The gateway: the workspace directory, the plugin, and the rules between.
pub struct Gateway {
    directory: Directory,
    plugin: Client,
    redactor: Redactor,
    metrics: Metrics,
    limiter: RateLimiter,
    /// The embedder, when embedding is on.
    embedding: Option<Embedding>,
    /// The access each workspace had at its last call: only a guess that
    /// lets a read start while the access is derived again (see
    /// [`Gateway::read_as`]); never used to allow anything by itself.
    last_access: std::sync::Mutex<std::collections::HashMap<Uuid, WorkspaceAccess>>,
}

/// Most workspaces whose last access is remembered.
const LAST_ACCESS_CAP: usize = 100_000;

impl Gateway {
    pub fn new(directory: Directory, plugin: Client, limiter: RateLimiter) -> Self {
        Gateway {
            directory,
            plugin,
            redactor: Redactor::new(),
            metrics: Metrics::default(),
            limiter,
            embedding: None,
            last_access: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// The same gateway embedding memories and queries with `embedder`
    /// (`None`: keyword search only, as without this call).
    pub fn with_embedder(mut self, embedder: Option<Arc<dyn Embedder>>) -> Self {
        self.embedding = embedder.map(|embedder| Embedding {
            embedder,
            refused: AtomicBool::new(false),
            mismatch_logged: AtomicUsize::new(0),
        });
        self
    }

    /// The embedder, when one is configured.
    pub fn embedder(&self) -> Option<&Arc<dyn Embedder>> {
        self.embedding.as_ref().map(|e| &e.embedder)
    }

    /// How vectors are used with the plugin as last seen (its `/v1/health`
    /// capabilities, refreshed whenever the gateway's health is asked and
    /// whenever none is known). A known dimension mismatch logs one line
    /// naming both numbers (once per plugin dimension) and turns vectors
    /// off.
    pub async fn embed_use(&self) -> EmbedUse {
        let Some(e) = &self.embedding else {
            return EmbedUse::Off;
        };
        if e.refused.load(Ordering::Relaxed) {
            return EmbedUse::Off;
        }
        if self.plugin.capabilities().is_none() {
            // The plugin was down at start: look again.
            let _ = self.plugin.refresh_capabilities().await;
        }
        self.embed_use_now()
    }

    /// [`Gateway::embed_use`] from the capability snapshot as it is.
    pub fn embed_use_now(&self) -> EmbedUse {
        let Some(e) = &self.embedding else {
            return EmbedUse::Off;
        };
        if e.refused.load(Ordering::Relaxed) {
            return EmbedUse::Off;
        }
        match embed_use(
            self.plugin.supports(capability::EMBEDDING),
            self.plugin.supports(capability::HYBRID),
            self.plugin.embedding_dimension(),
            e.embedder.dimension(),
        ) {
            Ok(how) => how,
            Err((plugin, embedder)) => {
                if e.mismatch_logged.swap(plugin, Ordering::Relaxed) != plugin {
                    tracing::warn!(
                        plugin_dimension = plugin,
                        embedder_dimension = embedder,
                        "embedding disabled: the plugin stores {plugin}-dimensional embeddings but the embedder ({}) makes {embedder}-dimensional ones; memories are written and recalled without embeddings (keyword search only). Set MEMORY_PLUGIN_EMBEDDING_DIM={embedder} on the plugin, or choose an embedder of {plugin} dimensions",
                        e.embedder.describe()
                    );
                }
                EmbedUse::Off
            }
        }
    }

    /// The vector of `text`, or `None` (logged without the text) when the
    /// embedder fails or takes longer than [`EMBED_BUDGET`].
    async fn embed_text(&self, text: &str, what: &str) -> Option<Vec<f32>> {
        let e = self.embedding.as_ref()?;
        let started = Instant::now();
        let answer =
            tokio::time::timeout(EMBED_BUDGET, e.embedder.embed(&[text.to_string()])).await;
        match answer {
            Ok(Ok(mut vectors)) if vectors.len() == 1 => {
                let v = vectors.pop().unwrap_or_default();
                if v.is_empty() || v.iter().any(|x| !x.is_finite()) {
                    tracing::warn!(
                        what,
                        "the embedder answered an unusable vector; going on without an embedding"
                    );
                    return None;
                }
                tracing::debug!(
                    what,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "embedded"
                );
                Some(v)
            }
            Ok(Ok(vectors)) => {
                tracing::warn!(what, answered = vectors.len(), "the embedder answered the wrong number of vectors; going on without an embedding");
                None
            }
            Ok(Err(err)) => {
                tracing::warn!(what, error = %err, "embedding failed; going on without an embedding");
                None
            }
            Err(_) => {
                tracing::warn!(
                    what,
                    budget_s = EMBED_BUDGET.as_secs(),
                    "embedding took too long; going on without an embedding"
                );
                None
            }
        }
    }

    /// Notes that the plugin refused a vector for its dimension: vectors
    /// stop for this plugin (logged once).
    fn stop_embedding(&self, e: &ClientError, length: usize) {
        if let Some(emb) = &self.embedding {
            if !emb.refused.swap(true, Ordering::Relaxed) {
                let message = match e {
                    ClientError::Api { error, .. } => error.message.clone(),
                    other => other.to_string(),
                };
                tracing::warn!(
                    embedder_dimension = length,
                    "embedding disabled: the plugin refused a {length}-dimensional embedding ({message}); memories are written and recalled without embeddings from now on"
                );
            }
        }
    }

    /// Runs the read `plan` for `ws` under its access as derived now.
    ///
    /// The access is always derived again from the live tree. When the
    /// workspace's previous access is known, the read under it starts at
    /// the same time (reads only: nothing changes), and its answer is kept
    /// only if the fresh access is the same; otherwise it is thrown away and
    /// the read runs again under the fresh access. A removed workspace gets
    /// its refusal, whatever the guess returned. This hides the tree lookup
    /// behind the plugin's search for the common case of an unchanged tree.
    ///
    /// # Errors
    ///
    /// The access refusal, or the read's own error.
    pub async fn read_as<T, F, Fut>(&self, ws: Uuid, plan: F) -> Result<T, ToolError>
    where
        F: Fn(&WorkspaceAccess) -> Fut,
        Fut: std::future::Future<Output = Result<T, ToolError>>,
    {
        let guess = self
            .last_access
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ws)
            .cloned();
        let (fresh, speculative) = match &guess {
            Some(g) => {
                let (fresh, read) = tokio::join!(self.access(ws), plan(g));
                (fresh, Some(read))
            }
            None => (self.access(ws).await, None),
        };
        let fresh = match fresh {
            Ok(a) => a,
            Err(e) => {
                self.last_access
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&ws);
                return Err(e);
            }
        };
        {
            let mut last = self.last_access.lock().unwrap_or_else(|p| p.into_inner());
            if last.len() >= LAST_ACCESS_CAP && !last.contains_key(&ws) {
                last.clear();
            }
            last.insert(ws, fresh.clone());
        }
        match (guess, speculative) {
            (Some(g), Some(read)) if g == fresh => read,
            _ => plan(&fresh).await,
        }
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    pub fn plugin(&self) -> &Client {
        &self.plugin
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The caller's namespaces now.
    ///
    /// # Errors
    ///
    /// `Denied` when the workspace does not exist or is removed.
    pub async fn access(&self, workspace: Uuid) -> Result<WorkspaceAccess, ToolError> {
        self.directory.access(workspace).await?.ok_or_else(|| {
            ToolError::Denied(format!(
                "workspace {workspace} does not exist or has been removed, so it has no memory namespaces"
            ))
        })
    }

    /// Whether the gateway can turn a query into an embedding the plugin
    /// takes (an embedder, a plugin advertising `embedding`, and no known
    /// dimension mismatch).
    pub fn can_embed(&self) -> bool {
        self.embed_use_now() != EmbedUse::Off
    }

    /// Takes one call from `workspace`'s rate-limit bucket (REST calls
    /// count like tool calls).
    ///
    /// # Errors
    ///
    /// `RateLimited` with the wait when the bucket is empty.
    pub fn check_rate(&self, workspace: Uuid) -> Result<(), ToolError> {
        self.limiter.take(workspace).map_err(|wait| {
            ToolError::RateLimited(format!(
                "rate limit reached for this workspace; retry in {wait:.1} s"
            ))
        })
    }

    /// Runs one tool for `workspace`: rate limit, the tool, metrics.
    pub async fn call_tool(&self, workspace: Uuid, tool: &str, args: Value) -> ToolAnswer {
        let started = Instant::now();
        let result = match self.check_rate(workspace) {
            Err(e) => Err(e),
            Ok(()) => self.dispatch(workspace, tool, args).await,
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        self.metrics.record_call(tool, outcome, started.elapsed());
        match result {
            Ok(text) => ToolAnswer {
                text,
                is_error: false,
            },
            Err(e) => {
                tracing::info!(%workspace, tool, outcome, "tool call refused: {e}");
                ToolAnswer {
                    text: e.to_string(),
                    is_error: true,
                }
            }
        }
    }

    async fn dispatch(&self, ws: Uuid, tool: &str, args: Value) -> Result<String, ToolError> {
        let to_text = |v: Value| v.to_string();
        match tool {
            "commit_memory" => self
                .commit_memory(ws, parse_args(tool, args)?)
                .await
                .map(to_text),
            "recall_memory" => self.recall_memory(ws, parse_args(tool, args)?).await,
            "commit_memory_v2" => self
                .commit_memory_v2(ws, parse_args(tool, args)?)
                .await
                .map(to_text),
            "search_memory" => self.search_memory(ws, parse_args(tool, args)?).await,
            "commit_summary" => self.commit_summary(ws, parse_args(tool, args)?).await,
            "list_writable_namespaces" => {
                let access = self.access(ws).await?;
                let entries: Vec<&NamespaceEntry> = access.writable().collect();
                Ok(json!(entries).to_string())
            }
            "list_readable_namespaces" => {
                let access = self.access(ws).await?;
                Ok(json!(access.readable()).to_string())
            }
            "forget_memory" => self
                .forget_memory(ws, parse_args(tool, args)?)
                .await
                .map(to_text),
            other => Err(ToolError::Invalid(format!("unknown tool {other:?}"))),
        }
    }

    /// `commit_memory`: the legacy scope shim.
    ///
    /// # Errors
    ///
    /// [`ToolError`] for bad arguments, GLOBAL, or an unavailable store.
    pub async fn commit_memory(
        &self,
        ws: Uuid,
        args: CommitMemoryArgs,
    ) -> Result<Value, ToolError> {
        let content = required_content(args.content)?;
        let scope = parse_scope(args.scope.as_deref())?.unwrap_or(LegacyScope::Local);
        let access = self.access(ws).await?;
        let namespace =
            match scope {
                LegacyScope::Local => access.workspace_namespace().to_string(),
                LegacyScope::Team => access.team_namespace().to_string(),
                LegacyScope::Global => return Err(ToolError::Denied(
                    "agents cannot write GLOBAL memories; use scope LOCAL (this workspace only) \
                     or TEAM (shared with your team)"
                        .to_string(),
                )),
            };
        let ack = self
            .write(
                ws,
                &access,
                &namespace,
                &content,
                MemoryKind::Fact,
                None,
                None,
            )
            .await?;
        Ok(json!({"id": ack.id, "scope": scope.as_str()}))
    }

    /// `recall_memory`: the legacy recall, a JSON array or `No memories found.`.
    ///
    /// # Errors
    ///
    /// [`ToolError`] for a bad scope or an unavailable store.
    pub async fn recall_memory(
        &self,
        ws: Uuid,
        args: RecallMemoryArgs,
    ) -> Result<String, ToolError> {
        let scope = parse_scope(args.scope.as_deref())?;
        let query = args.query;
        let vector = &QueryVector::new();
        let memories = self
            .read_as(ws, |access| {
                let namespaces: Vec<String> = match scope {
                    Some(LegacyScope::Local) => vec![access.workspace_namespace().to_string()],
                    Some(LegacyScope::Team) => vec![
                        access.workspace_namespace().to_string(),
                        access.team_namespace().to_string(),
                    ],
                    Some(LegacyScope::Global) | None => {
                        access.readable().iter().map(|e| e.name.clone()).collect()
                    }
                };
                let query = query.clone();
                async move {
                    self.search_by_meaning(
                        namespaces,
                        query,
                        None,
                        RECALL_LIMIT,
                        "recalling memories",
                        vector,
                    )
                    .await
                }
            })
            .await?;
        if memories.is_empty() {
            return Ok("No memories found.".to_string());
        }
        let rows: Vec<RecallRow> = memories
            .iter()
            .map(|m| RecallRow {
                id: m.id,
                content: shown_content(m),
                scope: LegacyScope::of_namespace(&m.namespace)
                    .map(|s| s.as_str())
                    .unwrap_or("CUSTOM"),
                created_at: m.created_at,
            })
            .collect();
        Ok(serde_json::to_string(&rows).unwrap_or_default())
    }

    /// `commit_memory_v2`.
    ///
    /// # Errors
    ///
    /// [`ToolError`] for bad arguments, a namespace the caller may not
    /// write, or an unavailable store.
    pub async fn commit_memory_v2(
        &self,
        ws: Uuid,
        args: CommitMemoryV2Args,
    ) -> Result<Value, ToolError> {
        let content = required_content(args.content)?;
        let kind = match args.kind.as_deref() {
            None => MemoryKind::Fact,
            Some(k) => parse_kind(k)?,
        };
        let expires_at = parse_expires_at(args.expires_at.as_deref(), Utc::now())?;
        let access = self.access(ws).await?;
        let namespace = chosen_or_own(args.namespace, &access);
        let ack = self
            .write(
                ws, &access, &namespace, &content, kind, expires_at, args.pin,
            )
            .await?;
        Ok(json!({"id": ack.id, "namespace": ack.namespace}))
    }

    /// `commit_summary`: a `summary` that expires after 30 days by default.
    ///
    /// # Errors
    ///
    /// As [`Gateway::commit_memory_v2`].
    pub async fn commit_summary(
        &self,
        ws: Uuid,
        args: CommitSummaryArgs,
    ) -> Result<String, ToolError> {
        let content = required_content(args.content)?;
        let now = Utc::now();
        let expires_at = parse_expires_at(args.expires_at.as_deref(), now)?
            .unwrap_or_else(|| now + chrono::Duration::from_std(SUMMARY_TTL).unwrap_or_default());
        let access = self.access(ws).await?;
        let namespace = chosen_or_own(args.namespace, &access);
        let ack = self
            .write(
                ws,
                &access,
                &namespace,
                &content,
                MemoryKind::Summary,
                Some(expires_at),
                None,
            )
            .await?;
        #[derive(serde::Serialize)]
        struct SummaryAck {
            id: Uuid,
            namespace: String,
            kind: &'static str,
            expires_at: DateTime<Utc>,
        }
        Ok(serde_json::to_string(&SummaryAck {
            id: ack.id,
            namespace: ack.namespace,
            kind: "summary",
            expires_at,
        })
        .unwrap_or_default())
    }

    /// `search_memory`: the requested namespaces intersected with the
    /// readable ones.
    ///
    /// # Errors
    ///
    /// [`ToolError`] for bad arguments or an unavailable store.
    pub async fn search_memory(
        &self,
        ws: Uuid,
        args: SearchMemoryArgs,
    ) -> Result<String, ToolError> {
        let limit = match args.limit {
            None | Some(0) => 20,
            Some(n) if (1..=100).contains(&n) => n,
            Some(n) => {
                return Err(ToolError::Invalid(format!(
                    "`limit` {n} is out of range: use 1 to 100"
                )))
            }
        };
        let kinds = match args.kinds {
            None => None,
            Some(list) if list.is_empty() => None,
            Some(list) => Some(
                list.iter()
                    .map(|k| parse_kind(k))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let requested = args.namespaces;
        let query = args.query;
        let vector = &QueryVector::new();
        let memories = self
            .read_as(ws, |access| {
                let namespaces: Vec<String> = match &requested {
                    None => access.readable().iter().map(|e| e.name.clone()).collect(),
                    Some(list) if list.is_empty() => {
                        access.readable().iter().map(|e| e.name.clone()).collect()
                    }
                    Some(list) => {
                        let mut kept: Vec<String> = Vec::new();
                        for name in list {
                            let name = name.trim().to_string();
                            if access.can_read(&name) && !kept.contains(&name) {
                                kept.push(name);
                            }
                        }
                        kept
                    }
                };
                let query = query.clone();
                let kinds = kinds.clone();
                async move {
                    if namespaces.is_empty() {
                        // Nothing readable was asked for: an empty answer.
                        return Ok(Vec::new());
                    }
                    self.search_by_meaning(
                        namespaces,
                        query,
                        kinds,
                        limit,
                        "searching memories",
                        vector,
                    )
                    .await
                }
            })
            .await?;
        let answer = SearchAnswer {
            memories: memories.iter().map(found).collect(),
        };
        Ok(serde_json::to_string(&answer).unwrap_or_default())
    }

    /// `forget_memory`: deletes a memory from a namespace the caller may
    /// write (the given one, or the first writable one holding it).
    ///
    /// # Errors
    ///
    /// [`ToolError`] for a bad id, a namespace the caller may not write, a
    /// memory not found there, or an unavailable store.
    pub async fn forget_memory(
        &self,
        ws: Uuid,
        args: ForgetMemoryArgs,
    ) -> Result<Value, ToolError> {
        let raw = args.memory_id.ok_or_else(|| {
            ToolError::Invalid(
                "`memory_id` is required: the id of the memory to forget".to_string(),
            )
        })?;
        let id = Uuid::parse_str(raw.trim()).map_err(|_| {
            ToolError::Invalid(format!("`memory_id` {raw:?} is not a memory id (a UUID)"))
        })?;
        let access = self.access(ws).await?;
        let candidates: Vec<String> = match args
            .namespace
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
        {
            Some(ns) => {
                if !access.can_write(&ns) {
                    return Err(denied_write(&ns, &access));
                }
                vec![ns]
            }
            None => access.writable().map(|e| e.name.clone()).collect(),
        };
        match self.forget_in_first(id, &candidates).await? {
            Some(ns) => {
                tracing::info!(workspace = %ws, namespace = %ns, memory = %id, "memory forgotten");
                Ok(json!({"forgotten": true}))
            }
            None => Err(ToolError::NotFound(format!(
                "no memory {id} in {}; only memories in namespaces this workspace may write can be forgotten",
                candidates.join(", ")
            ))),
        }
    }

    /// An operator's deletion in `workspace`'s namespaces: any namespace it
    /// may read (the given one, or the first holding the memory), audited
    /// with actor `admin`. Answers the namespace the memory was in.
    ///
    /// # Errors
    ///
    /// `Denied` for a namespace outside the workspace's readable set,
    /// `NotFound` when no such memory is there, `Unavailable` for the store.
    pub async fn forget_as_admin(
        &self,
        ws: Uuid,
        id: Uuid,
        namespace: Option<String>,
    ) -> Result<String, ToolError> {
        let access = self.access(ws).await?;
        let candidates: Vec<String> = match namespace
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
        {
            Some(ns) if access.can_read(&ns) => vec![ns],
            Some(ns) => {
                return Err(ToolError::Denied(format!(
                    "namespace {ns:?} is not one of workspace {ws}'s namespaces"
                )))
            }
            None => access.readable().iter().map(|e| e.name.clone()).collect(),
        };
        let Some(ns) = self.forget_in_first(id, &candidates).await? else {
            return Err(ToolError::NotFound(format!(
                "no memory {id} in {}",
                candidates.join(", ")
            )));
        };
        tracing::info!(workspace = %ws, namespace = %ns, memory = %id, "memory forgotten by an operator");
        self.record_audit(AuditEntry {
            at: Utc::now(),
            action: "delete",
            actor: "admin".to_string(),
            workspace: Some(ws),
            namespace: ns.clone(),
            memory_id: id,
            content_sha256: None,
        })
        .await;
        Ok(ns)
    }

    /// Deletes `id` from the first of `namespaces` that holds it; `None`
    /// when none does. The plugin deletes only in the namespace named, so
    /// an id from elsewhere is never touched.
    async fn forget_in_first(
        &self,
        id: Uuid,
        namespaces: &[String],
    ) -> Result<Option<String>, ToolError> {
        for ns in namespaces {
            match self.plugin.forget(id, ns).await {
                Ok(()) => return Ok(Some(ns.clone())),
                Err(ClientError::Api { status: 404, .. }) => continue,
                Err(e) => return Err(plugin_error(e, "forgetting a memory")),
            }
        }
        Ok(None)
    }

    /// Writes an audit row; a failure is logged, never fatal (the act it
    /// records has happened).
    async fn record_audit(&self, entry: AuditEntry) {
        if let Err(e) = self.directory.audit(&entry).await {
            tracing::error!(
                workspace = ?entry.workspace,
                namespace = %entry.namespace,
                memory = %entry.memory_id,
                action = entry.action,
                error = %e,
                "audit write failed; the act it records has happened"
            );
        }
    }

    /// Searches the plugin by keywords only. The caller has already checked
    /// `namespaces` against the workspace's access; rows of other namespaces
    /// are dropped.
    ///
    /// # Errors
    ///
    /// `Invalid` for an oversized query, `Unavailable` for the store.
    pub async fn search(
        &self,
        namespaces: Vec<String>,
        query: Option<String>,
        kinds: Option<Vec<MemoryKind>>,
        limit: i64,
        doing: &str,
    ) -> Result<Vec<Memory>, ToolError> {
        let query = clean_query(query)?;
        let request = search_request(namespaces, query, kinds, limit, None, EmbedUse::Off);
        self.run_search(request, doing).await
    }

    /// As [`Gateway::search`], with the query's vector when the gateway
    /// embeds and the plugin takes vectors: `mode: hybrid` when the plugin
    /// advertises `hybrid`, else the vector alone ranks (v1 semantics).
    /// `vector` holds the query's vector once computed, so a read that runs
    /// twice (see [`Gateway::read_as`]) embeds once. When the embedder
    /// fails, the search runs by keywords.
    ///
    /// # Errors
    ///
    /// As [`Gateway::search`].
    pub async fn search_by_meaning(
        &self,
        namespaces: Vec<String>,
        query: Option<String>,
        kinds: Option<Vec<MemoryKind>>,
        limit: i64,
        doing: &str,
        vector: &QueryVector,
    ) -> Result<Vec<Memory>, ToolError> {
        let query = clean_query(query)?;
        let (how, v) = match &query {
            None => (EmbedUse::Off, None),
            Some(q) => vector
                .get_or_init(|| async {
                    let how = self.embed_use().await;
                    if how == EmbedUse::Off {
                        return (how, None);
                    }
                    // The text is redacted as a memory would be: a secret in
                    // a query never reaches a remote embedder.
                    let redacted = self.redactor.redact(q).text.into_owned();
                    (how, self.embed_text(&redacted, "a query").await)
                })
                .await
                .clone(),
        };
        let request = search_request(namespaces, query, kinds, limit, v, how);
        let length = request.embedding.as_ref().map_or(0, Vec::len);
        match self.plugin.search(&request).await {
            Err(e) if length > 0 && refuses_dimension(&e) => {
                self.stop_embedding(&e, length);
                let mut plain = request;
                plain.embedding = None;
                plain.mode = None;
                self.run_search(plain, doing).await
            }
            answer => Ok(kept(&request, answer.map_err(|e| plugin_error(e, doing))?)),
        }
    }

    async fn run_search(
        &self,
        request: SearchRequest,
        doing: &str,
    ) -> Result<Vec<Memory>, ToolError> {
        let answer = self
            .plugin
            .search(&request)
            .await
            .map_err(|e| plugin_error(e, doing))?;
        Ok(kept(&request, answer))
    }

    /// Checks, redacts, writes (creating the namespace when missing) and
    /// audits an org write.
    #[allow(clippy::too_many_arguments)]
    async fn write(
        &self,
        ws: Uuid,
        access: &WorkspaceAccess,
        namespace: &str,
        content: &str,
        kind: MemoryKind,
        expires_at: Option<DateTime<Utc>>,
        pin: Option<bool>,
    ) -> Result<WriteAck, ToolError> {
        if !access.can_write(namespace) {
            return Err(denied_write(namespace, access));
        }
        let redaction = self.redactor.redact(content);
        for class in &redaction.classes {
            self.metrics.record_redaction(class.as_str());
            tracing::info!(workspace = %ws, namespace, class = class.as_str(), "redacted a secret before storage");
        }
        let stored = redaction.text.into_owned();
        // The vector is of the redacted text: what is stored is what is
        // embedded, and a secret never reaches a remote embedder.
        let embedding = match self.embed_use().await {
            EmbedUse::Off => None,
            EmbedUse::Semantic | EmbedUse::Hybrid => self.embed_text(&stored, "a memory").await,
        };
        let mut write = MemoryWrite {
            // The id makes the write an upsert, so the client may retry it.
            // Version 7 (time first): the plugin's id indexes take new rows
            // at their end, as with the ids the plugin makes itself.
            id: Some(Uuid::now_v7()),
            content: stored.clone(),
            kind,
            source: MemorySource::Agent,
            expires_at,
            propagation: None,
            pin,
            embedding,
            created_at: None,
        };
        let ack = match self.write_creating(namespace, &write).await {
            Err(WriteFailure::Plugin(e)) if write.embedding.is_some() && refuses_dimension(&e) => {
                let length = write.embedding.as_ref().map_or(0, Vec::len);
                self.stop_embedding(&e, length);
                write.embedding = None;
                self.write_creating(namespace, &write).await
            }
            other => other,
        };
        let ack = ack.map_err(|e| match e {
            WriteFailure::Namespace(t) => t,
            WriteFailure::Plugin(e) => plugin_error(e, "saving the memory"),
        })?;
        if namespace.starts_with("org:") {
            self.record_audit(AuditEntry {
                at: Utc::now(),
                action: "write",
                actor: format!("workspace:{ws}"),
                workspace: Some(ws),
                namespace: namespace.to_string(),
                memory_id: ack.id,
                content_sha256: Some(sha256_hex(&stored)),
            })
            .await;
        }
        Ok(ack)
    }

    /// Writes `write`, creating `namespace` first when the plugin does not
    /// know it.
    async fn write_creating(
        &self,
        namespace: &str,
        write: &MemoryWrite,
    ) -> Result<WriteAck, WriteFailure> {
        match self.plugin.write_memory(namespace, write).await {
            Ok(ack) => Ok(ack),
            Err(ClientError::Api { status: 404, error }) if error.code == ErrorCode::NotFound => {
                self.ensure_namespace(namespace)
                    .await
                    .map_err(WriteFailure::Namespace)?;
                self.plugin
                    .write_memory(namespace, write)
                    .await
                    .map_err(WriteFailure::Plugin)
            }
            Err(e) => Err(WriteFailure::Plugin(e)),
        }
    }

    /// Creates `namespace` in the plugin unless it exists (with `list`, an
    /// existing namespace keeps its settings).
    async fn ensure_namespace(&self, namespace: &str) -> Result<(), ToolError> {
        if self.plugin.supports("list") {
            match self.plugin.get_namespace(namespace).await {
                Ok(Some(_)) => return Ok(()),
                Ok(None) => {}
                Err(e) => return Err(plugin_error(e, "creating the namespace")),
            }
        }
        let upsert = NamespaceUpsert {
            kind: namespace_kind(namespace),
            expires_at: None,
            metadata: None,
        };
        self.plugin
            .upsert_namespace(namespace, &upsert)
            .await
            .map(|_| ())
            .map_err(|e| plugin_error(e, "creating the namespace"))
    }
}

/// Why [`Gateway::write_creating`] failed.
enum WriteFailure {
    /// Creating the missing namespace failed (already told as a tool error).
    Namespace(ToolError),
    /// The write itself failed.
    Plugin(ClientError),
}

/// A query's vector, computed at most once per call: how it was used, and
/// the vector (`None` when embedding is off or failed).
pub type QueryVector = tokio::sync::OnceCell<(EmbedUse, Option<Vec<f32>>)>;

/// The trimmed query, `None` when blank.
fn clean_query(query: Option<String>) -> Result<Option<String>, ToolError> {
    let query = query
        .map(|q| q.trim().to_string())
        .filter(|q| !q.is_empty());
    if let Some(q) = &query {
        if q.len() > MAX_CONTENT_BYTES {
            return Err(ToolError::Invalid(format!(
                "`query` is {} bytes; the limit is {MAX_CONTENT_BYTES}",
                q.len()
            )));
        }
    }
    Ok(query)
}

/// The plugin trusts the namespace list; keep only what was asked, in case
/// a plugin answers more.
fn kept(request: &SearchRequest, answer: memory_contract::SearchResponse) -> Vec<Memory> {
    answer
        .memories
        .into_iter()
        .filter(|m| request.namespaces.contains(&m.namespace))
        .collect()
}

/// SHA-256 of `text`, as 64 lowercase hex digits.
pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_use_of_vectors_follows_the_plugins_capabilities_and_dimension() {
        assert_eq!(embed_use(false, false, None, 384), Ok(EmbedUse::Off));
        assert_eq!(embed_use(false, true, Some(384), 384), Ok(EmbedUse::Off));
        assert_eq!(
            embed_use(true, false, Some(384), 384),
            Ok(EmbedUse::Semantic)
        );
        assert_eq!(embed_use(true, true, Some(384), 384), Ok(EmbedUse::Hybrid));
        // A v1 peer names no dimension: vectors are sent.
        assert_eq!(embed_use(true, false, None, 384), Ok(EmbedUse::Semantic));
        // A remote embedder that has not answered yet: sent too.
        assert_eq!(embed_use(true, true, Some(1536), 0), Ok(EmbedUse::Hybrid));
        assert_eq!(embed_use(true, true, Some(1536), 384), Err((1536, 384)));
    }

    #[test]
    fn search_requests_carry_the_vector_as_the_plugin_takes_it() {
        let ns = || vec!["workspace:a".to_string()];
        let q = || Some("release".to_string());
        let v = || Some(vec![0.5f32, 0.5]);

        let hybrid = search_request(ns(), q(), None, 50, v(), EmbedUse::Hybrid);
        assert_eq!(hybrid.mode, Some(RankMode::Hybrid));
        assert_eq!(hybrid.query.as_deref(), Some("release"));
        assert_eq!(hybrid.embedding, v());
        assert_eq!(hybrid.limit, Some(50));
        let wire = serde_json::to_value(&hybrid).unwrap();
        assert_eq!(wire["mode"], "hybrid");

        let semantic = search_request(ns(), q(), None, 20, v(), EmbedUse::Semantic);
        assert_eq!(semantic.mode, None);
        assert_eq!(semantic.embedding, v());
        assert_eq!(semantic.mode(), memory_contract::SearchMode::Semantic);
        assert!(serde_json::to_value(&semantic)
            .unwrap()
            .get("mode")
            .is_none());

        // No vector (off, or the embedder failed): the keyword search of today.
        for how in [EmbedUse::Off, EmbedUse::Semantic, EmbedUse::Hybrid] {
            let plain = search_request(ns(), q(), None, 20, None, how);
            assert_eq!(plain.embedding, None);
            assert_eq!(plain.mode, None);
            assert_eq!(plain.mode(), memory_contract::SearchMode::FullText);
        }
        let off = search_request(ns(), q(), None, 20, v(), EmbedUse::Off);
        assert_eq!((off.embedding, off.mode), (None, None));
    }

    #[test]
    fn only_a_refusal_naming_the_dimension_stops_vectors() {
        let api = |status: u16, message: &str| ClientError::Api {
            status,
            error: memory_contract::ErrorEnvelope {
                code: ErrorCode::BadRequest,
                message: message.to_string(),
                details: None,
            },
        };
        assert!(refuses_dimension(&api(
            400,
            "embedding has 384 dimensions; this store expects 1536"
        )));
        assert!(!refuses_dimension(&api(400, "content is empty")));
        assert!(!refuses_dimension(&api(503, "dimension store down")));
        assert!(!refuses_dimension(&ClientError::Timeout));
    }
}
