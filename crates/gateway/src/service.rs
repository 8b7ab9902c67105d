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
    ErrorCode, Memory, MemoryKind, MemorySource, MemoryWrite, NamespaceKind, NamespaceUpsert,
    SearchRequest, WriteAck,
};
use memory_namespace::{LegacyScope, NamespaceEntry, WorkspaceAccess};
use memory_redact::Redactor;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Largest memory content the gateway accepts, in bytes.
pub const MAX_CONTENT_BYTES: usize = 32 * 1024;
/// Most memories `recall_memory` returns.
pub const RECALL_LIMIT: i64 = 50;
/// How long a summary lives unless the caller says otherwise.
pub const SUMMARY_TTL: Duration = Duration::from_secs(30 * 86_400);

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
            last_access: std::sync::Mutex::new(std::collections::HashMap::new()),
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

    /// Whether the gateway can turn a query into an embedding. It cannot
    /// yet, so semantic search is offered nowhere, even when the plugin
    /// advertises `embedding`.
    pub fn can_embed(&self) -> bool {
        false
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
                    self.search(namespaces, query, None, RECALL_LIMIT, "recalling memories")
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
                    self.search(namespaces, query, kinds, limit, "searching memories")
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

    /// Searches the plugin. The caller has already checked `namespaces`
    /// against the workspace's access; rows of other namespaces are dropped.
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
        let request = SearchRequest {
            namespaces,
            query,
            kinds,
            limit: Some(limit),
            embedding: None,
            mode: None,
        };
        let answer = self
            .plugin
            .search(&request)
            .await
            .map_err(|e| plugin_error(e, doing))?;
        // The plugin trusts the namespace list; keep only what was asked, in
        // case a plugin answers more.
        Ok(answer
            .memories
            .into_iter()
            .filter(|m| request.namespaces.contains(&m.namespace))
            .collect())
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
        let write = MemoryWrite {
            // The id makes the write an upsert, so the client may retry it.
            id: Some(Uuid::new_v4()),
            content: stored.clone(),
            kind,
            source: MemorySource::Agent,
            expires_at,
            propagation: None,
            pin,
            embedding: None,
            created_at: None,
        };
        let ack = match self.plugin.write_memory(namespace, &write).await {
            Ok(ack) => ack,
            Err(ClientError::Api { status: 404, error }) if error.code == ErrorCode::NotFound => {
                self.ensure_namespace(namespace).await?;
                self.plugin
                    .write_memory(namespace, &write)
                    .await
                    .map_err(|e| plugin_error(e, "saving the memory"))?
            }
            Err(e) => return Err(plugin_error(e, "saving the memory")),
        };
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

/// SHA-256 of `text`, as 64 lowercase hex digits.
pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
