//! Validation of every rule the contract puts on input.
//!
//! Each function returns a [`ValidationError`] that names the offending field
//! and says why it was refused, so servers can answer 400 with a useful
//! message and clients can refuse a request before sending it.

use crate::{
    limits, BatchRequest, ForgetRequest, MemoryWrite, NamespacePatch, RankMode, SearchRequest,
};
use std::fmt;
use uuid::Uuid;

/// A rule of the contract that an input breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// The field at fault, as a path (`namespaces[2]`, `writes[0].content`).
    pub field: String,
    /// Why the value was refused.
    pub reason: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error, with its field nested under `prefix`.
    pub fn under(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() {
            prefix.to_string()
        } else if self.field.starts_with('[') {
            format!("{prefix}{}", self.field)
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ValidationError {}

type Result<T = ()> = std::result::Result<T, ValidationError>;

/// Checks a namespace name: 1..=256 characters matching
/// `^[a-z]+:[A-Za-z0-9_:.\-]+$`.
pub fn namespace_name(field: &str, name: &str) -> Result {
    if name.is_empty() {
        return Err(ValidationError::new(field, "namespace name is empty"));
    }
    let len = name.chars().count();
    if len > limits::NAMESPACE_NAME_MAX {
        return Err(ValidationError::new(
            field,
            format!(
                "namespace name is {len} characters long; the maximum is {}",
                limits::NAMESPACE_NAME_MAX
            ),
        ));
    }
    let Some((prefix, rest)) = name.split_once(':') else {
        return Err(ValidationError::new(
            field,
            format!(
                "namespace name {name:?} has no ':'; expected <kind>:<id>, e.g. workspace:1234"
            ),
        ));
    };
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(ValidationError::new(
            field,
            format!(
                "namespace name {:?}: the part before ':' must be lowercase letters a-z",
                excerpt(name, 64)
            ),
        ));
    }
    if rest.is_empty() {
        return Err(ValidationError::new(
            field,
            format!("namespace name {name:?} has nothing after ':'"),
        ));
    }
    if let Some(bad) = rest
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.' | '-')))
    {
        return Err(ValidationError::new(
            field,
            format!(
                "namespace name {:?} contains {bad:?}; allowed after ':' are A-Z a-z 0-9 _ : . -",
                excerpt(name, 64)
            ),
        ));
    }
    Ok(())
}

/// Checks a namespace kind spelled as a string.
pub fn namespace_kind(field: &str, kind: &str) -> Result<crate::NamespaceKind> {
    kind.parse::<crate::NamespaceKind>()
        .map_err(|e| ValidationError::new(field, e.reason))
}

/// Checks a memory kind spelled as a string.
pub fn memory_kind(field: &str, kind: &str) -> Result<crate::MemoryKind> {
    kind.parse::<crate::MemoryKind>()
        .map_err(|e| ValidationError::new(field, e.reason))
}

/// Checks a memory source spelled as a string.
pub fn memory_source(field: &str, source: &str) -> Result<crate::MemorySource> {
    source
        .parse::<crate::MemorySource>()
        .map_err(|e| ValidationError::new(field, e.reason))
}

/// Checks that memory content is not blank (empty or only whitespace).
pub fn content(field: &str, content: &str) -> Result {
    if content.trim().is_empty() {
        return Err(ValidationError::new(
            field,
            "content is blank; a memory needs some non-whitespace text",
        ));
    }
    no_nul(field, content)
}

/// Checks that a string holds no NUL character (storage cannot keep one).
pub fn no_nul(field: &str, value: &str) -> Result {
    if value.contains('\0') {
        return Err(ValidationError::new(
            field,
            "contains a NUL character (\\u0000)",
        ));
    }
    Ok(())
}

/// Checks that no string inside a JSON value (keys included) holds a NUL.
pub fn json_no_nul(field: &str, value: &serde_json::Value) -> Result {
    fn walk(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(a) => a.iter().any(walk),
            serde_json::Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || walk(v)),
            _ => false,
        }
    }
    if walk(value) {
        return Err(ValidationError::new(
            field,
            "contains a NUL character (\\u0000)",
        ));
    }
    Ok(())
}

/// Resolves a search limit: absent or 0 means 20; 1..=100 is kept; anything
/// else is refused.
pub fn search_limit(limit: Option<i64>) -> Result<u32> {
    bounded_limit(
        "limit",
        limit,
        limits::SEARCH_LIMIT_DEFAULT,
        limits::SEARCH_LIMIT_MAX,
    )
}

/// Resolves a checksum bucket prefix: absent or 0 means 2 hex digits;
/// 1..=4 is kept.
pub fn checksum_prefix(prefix: Option<i64>) -> Result<u32> {
    match prefix {
        None | Some(0) => Ok(limits::CHECKSUM_PREFIX_DEFAULT),
        Some(n) if n >= 1 && n <= i64::from(limits::CHECKSUM_PREFIX_MAX) => Ok(n as u32),
        Some(n) => Err(ValidationError::new(
            "prefix",
            format!(
                "prefix {n} is out of range; expected 1..={} hex digits, or 0/absent for {}",
                limits::CHECKSUM_PREFIX_MAX,
                limits::CHECKSUM_PREFIX_DEFAULT
            ),
        )),
    }
}

/// Resolves a list page size: absent or 0 means 100; 1..=1000 is kept.
pub fn list_limit(limit: Option<i64>) -> Result<u32> {
    bounded_limit(
        "limit",
        limit,
        limits::LIST_LIMIT_DEFAULT,
        limits::LIST_LIMIT_MAX,
    )
}

fn bounded_limit(field: &str, limit: Option<i64>, default: u32, max: u32) -> Result<u32> {
    match limit {
        None | Some(0) => Ok(default),
        Some(n) if n >= 1 && n <= i64::from(max) => Ok(n as u32),
        Some(n) => Err(ValidationError::new(
            field,
            format!("limit {n} is out of range; expected 1..={max}, or 0/absent for {default}"),
        )),
    }
}

/// Parses a UUID given as text (path segment, query parameter).
pub fn uuid(field: &str, value: &str) -> Result<Uuid> {
    Uuid::parse_str(value)
        .map_err(|_| ValidationError::new(field, format!("{:?} is not a UUID", excerpt(value, 64))))
}

/// Checks an embedding: non-empty and every component finite.
pub fn embedding(field: &str, embedding: &[f32]) -> Result {
    if embedding.is_empty() {
        return Err(ValidationError::new(field, "embedding is empty"));
    }
    if let Some(i) = embedding.iter().position(|x| !x.is_finite()) {
        return Err(ValidationError::new(
            format!("{field}[{i}]"),
            "embedding component is not a finite number",
        ));
    }
    Ok(())
}

/// Checks a memory write (`POST /v1/namespaces/{name}/memories` body).
pub fn memory_write(write: &MemoryWrite) -> Result {
    content("content", &write.content)?;
    if let Some(p) = &write.propagation {
        json_no_nul("propagation", p)?;
    }
    if let Some(e) = &write.embedding {
        embedding("embedding", e)?;
    }
    Ok(())
}

/// Checks a namespace patch: at least one field present.
pub fn namespace_patch(patch: &NamespacePatch) -> Result {
    if patch.expires_at.is_none() && patch.metadata.is_none() {
        return Err(ValidationError::new(
            "body",
            "a patch needs at least one of expires_at, metadata",
        ));
    }
    namespace_metadata(patch.metadata.as_ref())
}

/// Checks namespace metadata (upsert or patch): a JSON object without NUL
/// characters.
pub fn namespace_metadata(metadata: Option<&serde_json::Value>) -> Result {
    match metadata {
        Some(m) if !m.is_object() => Err(ValidationError::new(
            "metadata",
            "metadata must be a JSON object",
        )),
        Some(m) => json_no_nul("metadata", m),
        None => Ok(()),
    }
}

/// Checks a search request and returns its effective limit.
pub fn search_request(req: &SearchRequest) -> Result<u32> {
    if req.namespaces.is_empty() {
        return Err(ValidationError::new(
            "namespaces",
            "at least one namespace is required",
        ));
    }
    if req.namespaces.len() > limits::SEARCH_NAMESPACES_MAX {
        return Err(ValidationError::new(
            "namespaces",
            format!(
                "{} namespaces given; at most {} per search",
                req.namespaces.len(),
                limits::SEARCH_NAMESPACES_MAX
            ),
        ));
    }
    for (i, ns) in req.namespaces.iter().enumerate() {
        namespace_name(&format!("namespaces[{i}]"), ns)?;
    }
    if let Some(q) = &req.query {
        no_nul("query", q)?;
    }
    if let Some(e) = &req.embedding {
        embedding("embedding", e)?;
    }
    if let Some(mode) = req.mode {
        rank_mode_ingredients(mode, req.query.as_deref(), req.embedding.is_some())?;
    }
    search_limit(req.limit)
}

/// Checks that a search naming its ranking (extension `hybrid`) carries
/// what that ranking needs: `semantic` an embedding, `fulltext` a query of
/// two or more characters after trimming, `hybrid` both.
pub fn rank_mode_ingredients(mode: RankMode, query: Option<&str>, has_embedding: bool) -> Result {
    let mode_name = match mode {
        RankMode::Fulltext => "fulltext",
        RankMode::Semantic => "semantic",
        RankMode::Hybrid => "hybrid",
    };
    if matches!(mode, RankMode::Fulltext | RankMode::Hybrid) {
        let chars = query.map_or(0, |q| q.trim().chars().count());
        if chars < 2 {
            let got = match chars {
                0 => "none was given".to_string(),
                _ => "this one has 1 (a 1-character query is a substring search: send it \
                      without mode)"
                    .to_string(),
            };
            return Err(ValidationError::new(
                "query",
                format!(
                    "mode {mode_name:?} ranks by full text and needs a query of 2 or more \
                     characters; {got}"
                ),
            ));
        }
    }
    if matches!(mode, RankMode::Semantic | RankMode::Hybrid) && !has_embedding {
        return Err(ValidationError::new(
            "embedding",
            format!("mode {mode_name:?} ranks by vector similarity and needs an embedding"),
        ));
    }
    Ok(())
}

/// Checks a forget request: it must name a valid namespace.
pub fn forget_request(req: &ForgetRequest) -> Result {
    namespace_name("requested_by_namespace", &req.requested_by_namespace)
}

/// Checks the shape of a batch (item count); items are checked one by one
/// with [`batch_item`] so that one bad item does not sink the others.
pub fn batch_request(req: &BatchRequest) -> Result {
    if req.writes.len() > limits::BATCH_ITEMS_MAX {
        return Err(ValidationError::new(
            "writes",
            format!(
                "{} writes given; at most {} per batch",
                req.writes.len(),
                limits::BATCH_ITEMS_MAX
            ),
        ));
    }
    Ok(())
}

/// Checks one batch item.
pub fn batch_item(index: usize, item: &crate::BatchWrite) -> Result {
    let prefix = format!("writes[{index}]");
    namespace_name("namespace", &item.namespace).map_err(|e| e.under(&prefix))?;
    memory_write(&item.write).map_err(|e| e.under(&prefix))
}

/// Cuts `s` to at most `max_chars` characters, on a character boundary,
/// adding `…` when something was cut.
pub fn excerpt(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        None => s.to_string(),
        Some((byte, _)) => format!("{}…", &s[..byte]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_cuts_on_char_boundary() {
        assert_eq!(excerpt("héllo wörld", 4), "héll…");
        assert_eq!(excerpt("ab", 4), "ab");
        assert_eq!(excerpt("日本語テキスト", 3), "日本語…");
    }
}
