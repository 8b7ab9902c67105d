//! Wire types and validation of the Memory Plugin v1 contract and of this
//! project's extensions (`batch`, `list`, `created_at`, `scan`, `checksum`,
//! `hybrid`).
//!
//! This crate does no I/O. The plugin server, the client, the conformance
//! suite and the backfill all depend on it, so the wire is defined once.
//!
//! Compatibility rules, shared by every type here:
//! - optional fields are omitted when absent and accept `null` or absence on
//!   input;
//! - unknown input fields are ignored, so older and newer peers interoperate;
//! - a list in an answer (`memories`, `results`, `buckets`, `capabilities`)
//!   that a peer sends as `null` or leaves out decodes as empty, and a `null`
//!   `pin` as `false`: some v1 plugins answer an empty search with
//!   `{"memories":null}`. What this crate encodes always carries the list.

pub mod checksum;
pub mod validate;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

pub use validate::ValidationError;

/// Decodes a list that a lenient peer may send as `null`: `null` is empty.
/// With `#[serde(default)]` an absent list is empty too.
fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// Decodes a flag that a lenient peer may send as `null`: `null` is false.
fn null_as_false<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(false))
}

/// The contract version a conforming plugin reports in `/v1/health`.
pub const CONTRACT_VERSION: &str = "1.0.0";

/// Capability names advertised in [`Health::capabilities`].
pub mod capability {
    /// Full-text search for queries of two or more characters.
    pub const FTS: &str = "fts";
    /// Semantic search by embedding; only advertised when it really works.
    pub const EMBEDDING: &str = "embedding";
    /// Memories and namespaces may expire.
    pub const TTL: &str = "ttl";
    /// Pinned memories sort first where there is no score.
    pub const PIN: &str = "pin";
    /// `propagation` JSON is stored and returned.
    pub const PROPAGATION: &str = "propagation";
    /// Extension: `POST /v1/memories/batch`.
    pub const BATCH: &str = "batch";
    /// Extension: `GET /v1/namespaces/{name}/memories` and `GET /v1/namespaces/{name}`.
    pub const LIST: &str = "list";
    /// Extension: a memory write may carry `created_at`.
    pub const CREATED_AT: &str = "created_at";
    /// Extension: `GET /v1/memories` pages through every live memory of
    /// every live namespace, ordered by id, optionally within an id range
    /// (a migration's parity check).
    pub const SCAN: &str = "scan";
    /// Extension: `GET /v1/memories/checksums` digests every live memory of
    /// every live namespace per id-prefix bucket, so that a parity check
    /// reads only the buckets that differ.
    pub const CHECKSUM: &str = "checksum";
    /// Extension: a search may name its ranking with `mode`
    /// (`fulltext`, `semantic`, `hybrid`); `hybrid` fuses the full-text and
    /// vector rankings by reciprocal rank fusion (see [`crate::RankMode`]).
    /// Advertised only where both full-text and embedding search work, so
    /// never without [`EMBEDDING`].
    pub const HYBRID: &str = "hybrid";

    /// The capabilities defined by v1 itself.
    pub const V1: &[&str] = &[FTS, EMBEDDING, TTL, PIN, PROPAGATION];
    /// The capabilities added by this project's extensions.
    pub const EXTENSIONS: &[&str] = &[BATCH, LIST, CREATED_AT, SCAN, CHECKSUM, HYBRID];
}

/// Limits that are part of the contract as this project serves it.
pub mod limits {
    /// Longest namespace name, in characters.
    pub const NAMESPACE_NAME_MAX: usize = 256;
    /// Default number of search results when `limit` is absent or 0.
    pub const SEARCH_LIMIT_DEFAULT: u32 = 20;
    /// Largest accepted search `limit`.
    pub const SEARCH_LIMIT_MAX: u32 = 100;
    /// Most namespaces one search may name.
    pub const SEARCH_NAMESPACES_MAX: usize = 64;
    /// Most writes in one batch request.
    pub const BATCH_ITEMS_MAX: usize = 1000;
    /// Default page size of the `list` extension.
    pub const LIST_LIMIT_DEFAULT: u32 = 100;
    /// Largest page size of the `list` extension.
    pub const LIST_LIMIT_MAX: u32 = 1000;
    /// Body limit of every route but batch, in bytes.
    pub const BODY_MAX_BYTES: usize = 1024 * 1024;
    /// Body limit of the batch route, in bytes.
    pub const BATCH_BODY_MAX_BYTES: usize = 16 * 1024 * 1024;
    /// Default bucket prefix length (hex digits) of the `checksum` extension.
    pub const CHECKSUM_PREFIX_DEFAULT: u32 = 2;
    /// Longest bucket prefix (hex digits) of the `checksum` extension.
    pub const CHECKSUM_PREFIX_MAX: u32 = 4;
}

/// Route paths, relative to the plugin's base URL.
pub mod route {
    pub const HEALTH: &str = "/v1/health";
    pub const NAMESPACE: &str = "/v1/namespaces/{name}";
    pub const NAMESPACE_MEMORIES: &str = "/v1/namespaces/{name}/memories";
    pub const SEARCH: &str = "/v1/search";
    pub const MEMORY: &str = "/v1/memories/{id}";
    pub const BATCH: &str = "/v1/memories/batch";
    /// Extension `scan`.
    pub const MEMORIES: &str = "/v1/memories";
    /// Extension `checksum`.
    pub const CHECKSUMS: &str = "/v1/memories/checksums";
    /// Extension `list`: every live namespace, by name.
    pub const NAMESPACES: &str = "/v1/namespaces";
}

/// Error codes carried in [`ErrorEnvelope::code`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadRequest,
    NotFound,
    Forbidden,
    Internal,
    Unavailable,
    /// Extension: an id already lives in another namespace.
    Conflict,
    /// Extension: a token is configured and the request did not carry it.
    Unauthorized,
    /// A code this version does not know; kept verbatim.
    Other(String),
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Other(s) => s,
        }
    }

    /// Parses a wire code; unknown codes become [`ErrorCode::Other`].
    pub fn parse(s: &str) -> ErrorCode {
        match s {
            "bad_request" => ErrorCode::BadRequest,
            "not_found" => ErrorCode::NotFound,
            "forbidden" => ErrorCode::Forbidden,
            "internal" => ErrorCode::Internal,
            "unavailable" => ErrorCode::Unavailable,
            "conflict" => ErrorCode::Conflict,
            "unauthorized" => ErrorCode::Unauthorized,
            other => ErrorCode::Other(other.to_string()),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(ErrorCode::parse(&s))
    }
}

/// The body of every non-2xx answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl ErrorEnvelope {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorEnvelope {
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }
}

impl fmt::Display for ErrorEnvelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// `GET /v1/health` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// `ok`, or `degraded` (with status 503) while storage is unreachable.
    pub status: String,
    pub version: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub capabilities: Vec<String>,
    /// Our extension: the dimension every embedding must have, present
    /// when `embedding` is advertised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_dimension: Option<usize>,
}

impl Health {
    /// True when the plugin advertises `capability`.
    pub fn supports(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }
}

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident, $field:literal { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $wire)] $variant),+
        }

        impl $name {
            /// Every value, in wire spelling order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value as it appears on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = ValidationError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($wire => Ok($name::$variant),)+
                    other => Err(ValidationError::new(
                        $field,
                        format!(
                            "unknown value {:?}; expected one of: {}",
                            other,
                            [$($wire),+].join(", ")
                        ),
                    )),
                }
            }
        }
    };
}

wire_enum!(
    /// Kind of a namespace.
    NamespaceKind, "kind" {
        Workspace => "workspace",
        Team => "team",
        Org => "org",
        Custom => "custom",
    }
);

wire_enum!(
    /// Kind of a memory.
    MemoryKind, "kind" {
        Fact => "fact",
        Summary => "summary",
        Checkpoint => "checkpoint",
    }
);

wire_enum!(
    /// Who wrote a memory.
    MemorySource, "source" {
        Agent => "agent",
        Runtime => "runtime",
        User => "user",
    }
);

/// A namespace as the plugin returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Namespace {
    pub name: String,
    pub kind: NamespaceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

/// `PUT /v1/namespaces/{name}` body. Idempotent; replaces expiry and metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceUpsert {
    pub kind: NamespaceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

/// `PATCH /v1/namespaces/{name}` body; at least one field must be present.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamespacePatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

/// `POST /v1/namespaces/{name}/memories` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryWrite {
    /// Idempotency key: a write carrying an id upserts the memory with that id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    pub content: String,
    pub kind: MemoryKind,
    pub source: MemorySource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Opaque JSON, stored and returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
    /// Extension `created_at`: the memory's original creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
}

impl MemoryWrite {
    /// A write with only the required fields set.
    pub fn new(content: impl Into<String>, kind: MemoryKind, source: MemorySource) -> Self {
        MemoryWrite {
            id: None,
            content: content.into(),
            kind,
            source,
            expires_at: None,
            propagation: None,
            pin: None,
            embedding: None,
            created_at: None,
        }
    }
}

/// `201` answer to a memory write, and a successful batch item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteAck {
    pub id: Uuid,
    pub namespace: String,
}

/// A stored memory as search and list return it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub id: Uuid,
    pub namespace: String,
    pub content: String,
    pub kind: MemoryKind,
    pub source: MemorySource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "null_as_false")]
    pub pin: bool,
    pub created_at: DateTime<Utc>,
    /// Present in semantic (1 - cosine distance) and full-text (rank) modes,
    /// and in `hybrid` mode, where it is the fused score of
    /// [`RankMode::Hybrid`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Extension `scan` with `embedding=true`: the stored embedding, when
    /// the memory has one. Never present in v1 answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
}

/// `POST /v1/search` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchRequest {
    /// Authoritative list of namespaces to search (at least one).
    pub namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinds: Option<Vec<MemoryKind>>,
    /// 1..=100; absent or 0 means 20. Signed so that a negative value is
    /// reported as a validation error rather than a decoding error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
    /// Extension `hybrid`: which ranking a search asks for. Absent, the v1
    /// rules apply unchanged (an embedding wins over a query). A plugin
    /// that does not advertise `hybrid` ignores it (as an unknown field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<RankMode>,
}

/// Extension `hybrid`: the ranking a [`SearchRequest`] asks for by name.
///
/// A mode whose ingredient is missing is refused with 400 `bad_request`:
/// `semantic` needs `embedding`, `fulltext` needs a `query` of two or more
/// characters (after trimming; a one-character query is v1's substring
/// search, asked for without `mode`), and `hybrid` needs both.
///
/// Hybrid score (reciprocal rank fusion): each ranking contributes its best
/// [`HYBRID_CANDIDATES`] memories, ranked from 1; a memory's score is the
/// sum, over the rankings it appears in, of `1 / (60 + rank)`, so it lies
/// in `(0, 2/61]`. Results are ordered by that score, ties newer
/// `created_at` first, then by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RankMode {
    /// Full-text ranking of `query` only (an `embedding` is ignored).
    Fulltext,
    /// Vector ranking of `embedding` only (a `query` is ignored).
    Semantic,
    /// Both rankings fused by reciprocal rank fusion; needs `query` and
    /// `embedding`.
    Hybrid,
}

/// Extension `hybrid`: the constant `k` of reciprocal rank fusion; rank `r`
/// (from 1) in one ranking contributes `1 / (k + r)`.
pub const HYBRID_RRF_K: u32 = 60;

/// Extension `hybrid`: how many of its best memories each ranking (full-text
/// and vector) contributes to the fusion: the largest search limit.
pub const HYBRID_CANDIDATES: u32 = limits::SEARCH_LIMIT_MAX;

/// The search mode a [`SearchRequest`] selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchMode {
    /// Embedding given: cosine similarity, score = 1 - distance.
    Semantic,
    /// Query of two or more characters: English full-text, score = rank.
    FullText,
    /// One-character query: case-insensitive substring.
    Substring,
    /// Neither: newest first, pinned first.
    Recent,
    /// Extension `hybrid`, asked for by name: both rankings fused.
    Hybrid,
}

impl SearchRequest {
    /// The mode this request selects: the one `mode` names when present
    /// (extension `hybrid`), otherwise by the v1 rules (embedding wins over
    /// query).
    pub fn mode(&self) -> SearchMode {
        match self.mode {
            Some(RankMode::Fulltext) => return SearchMode::FullText,
            Some(RankMode::Semantic) => return SearchMode::Semantic,
            Some(RankMode::Hybrid) => return SearchMode::Hybrid,
            None => {}
        }
        if self.embedding.is_some() {
            return SearchMode::Semantic;
        }
        match self.query.as_deref().map(|q| q.trim().chars().count()) {
            None | Some(0) => SearchMode::Recent,
            Some(1) => SearchMode::Substring,
            Some(_) => SearchMode::FullText,
        }
    }
}

/// `POST /v1/search` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResponse {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub memories: Vec<Memory>,
}

/// `DELETE /v1/memories/{id}` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgetRequest {
    pub requested_by_namespace: String,
}

/// One item of a batch: a memory write with its target namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchWrite {
    pub namespace: String,
    #[serde(flatten)]
    pub write: MemoryWrite,
}

/// Extension `batch`: `POST /v1/memories/batch` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRequest {
    pub writes: Vec<BatchWrite>,
}

/// One result of a batch, in input order: an ack or the item's error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BatchItemResult {
    Ok(WriteAck),
    Err { error: ErrorEnvelope },
}

/// Extension `batch`: answer to `POST /v1/memories/batch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResponse {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub results: Vec<BatchItemResult>,
}

/// Extension `list`: query of `GET /v1/namespaces/{name}/memories`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListQuery {
    /// Exclusive lower bound on the memory id (a UUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// 1..=1000; absent or 0 means 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// Extension `scan`: query of `GET /v1/memories`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScanQuery {
    /// Exclusive lower bound on the memory id (a UUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Exclusive upper bound on the memory id (a UUID), so that disjoint id
    /// ranges can be read in parallel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// 1..=1000; absent or 0 means 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// When true, each memory carries its stored `embedding` (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<bool>,
}

/// Extension `list`: query of `GET /v1/namespaces`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamespaceListQuery {
    /// Exclusive lower bound on the namespace name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// 1..=1000; absent or 0 means 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// Extension `list`: one page of every live namespace, ordered by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceListResponse {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub namespaces: Vec<Namespace>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// Extension `checksum`: query of `GET /v1/memories/checksums`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChecksumQuery {
    /// Hex digits of the id that name a bucket, 1..=4; absent or 0 means 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<i64>,
    /// Whether each memory's `created_at` enters its digest (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<bool>,
}

/// Extension `checksum`: the digest of every live memory of every live
/// namespace, per bucket of ids sharing their first `prefix` hex digits.
/// How a digest is computed is [`checksum`]'s documentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChecksumResponse {
    /// Hex digits per bucket name.
    pub prefix: u32,
    /// Whether `created_at` entered the digests.
    pub created_at: bool,
    /// Non-empty buckets only, ordered by name.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub buckets: Vec<ChecksumBucket>,
}

/// One bucket of [`ChecksumResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksumBucket {
    /// The ids' first hex digits (lowercase).
    pub prefix: String,
    /// Memories in the bucket.
    pub count: u64,
    /// 32 lowercase hex digits: the XOR of the memories' XXH3-128 digests.
    pub digest: String,
}

/// Extension `list`: one page of a namespace's memories, ordered by id
/// (extension `scan`: of every namespace's memories).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListResponse {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub memories: Vec<Memory>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<Uuid>,
}
