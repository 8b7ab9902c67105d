//! Mapping one legacy row to a plugin write (DESIGN section 6).
//!
//! | scope  | namespace                | kind        |
//! |--------|--------------------------|-------------|
//! | LOCAL  | `workspace:<workspace>`  | `workspace` |
//! | TEAM   | `team:<parent or self>`  | `team`      |
//! | GLOBAL | `org:<highest ancestor>` | `org`       |
//!
//! Scopes are matched after trimming, ignoring ASCII case. GLOBAL rows of a
//! workspace that is not a root still go to its org: migration is an operator
//! act. Migrated memories are `kind = fact`, `source = runtime`: the legacy
//! table recorded neither, every legacy memory was a durable fact, and it
//! arrives through the platform rather than from an agent or a user.
//!
//! Skips, each with a reason: unknown scope, no workspace (NULL
//! `workspace_id`), dangling workspace (id not in `workspaces`), blank
//! content, and a row whose write would exceed the plugin's 1 MiB body limit.

use crate::legacy::LegacyRow;
use crate::resolver::{Placement, Resolver};
use memory_contract::{limits, BatchWrite, MemoryKind, MemorySource, MemoryWrite, NamespaceKind};
use serde::Serialize;
use std::io::Write;

/// Memory kind given to every migrated row.
pub const MIGRATED_KIND: MemoryKind = MemoryKind::Fact;
/// Memory source given to every migrated row.
pub const MIGRATED_SOURCE: MemorySource = MemorySource::Runtime;

/// A legacy scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Scope {
    #[serde(rename = "LOCAL")]
    Local,
    #[serde(rename = "TEAM")]
    Team,
    #[serde(rename = "GLOBAL")]
    Global,
}

impl Scope {
    /// Parses a stored scope (trimmed, ASCII case ignored).
    pub fn parse(raw: &str) -> Option<Scope> {
        let s = raw.trim();
        if s.eq_ignore_ascii_case("LOCAL") {
            Some(Scope::Local)
        } else if s.eq_ignore_ascii_case("TEAM") {
            Some(Scope::Team)
        } else if s.eq_ignore_ascii_case("GLOBAL") {
            Some(Scope::Global)
        } else {
            None
        }
    }

    /// The scope as the legacy table spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Local => "LOCAL",
            Scope::Team => "TEAM",
            Scope::Global => "GLOBAL",
        }
    }

    /// The namespace kind this scope maps to.
    pub fn namespace_kind(self) -> NamespaceKind {
        match self {
            Scope::Local => NamespaceKind::Workspace,
            Scope::Team => NamespaceKind::Team,
            Scope::Global => NamespaceKind::Org,
        }
    }
}

/// Why a row is not migrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    UnknownScope,
    NoWorkspace,
    DanglingWorkspace,
    BlankContent,
    TooLarge,
}

impl SkipReason {
    /// Every reason, in report order.
    pub const ALL: [SkipReason; 5] = [
        SkipReason::UnknownScope,
        SkipReason::NoWorkspace,
        SkipReason::DanglingWorkspace,
        SkipReason::BlankContent,
        SkipReason::TooLarge,
    ];

    /// The reason's name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::UnknownScope => "unknown_scope",
            SkipReason::NoWorkspace => "no_workspace",
            SkipReason::DanglingWorkspace => "dangling_workspace",
            SkipReason::BlankContent => "blank_content",
            SkipReason::TooLarge => "too_large",
        }
    }
}

/// A skipped row with its one-line reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skip {
    pub reason: SkipReason,
    pub detail: String,
}

/// Where a row goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scope: Scope,
    pub namespace: String,
    pub kind: NamespaceKind,
    pub placement: Placement,
    /// A GLOBAL row written by a workspace that is not a root.
    pub global_from_non_root: bool,
}

/// Namespace name for a kind and id.
pub fn namespace_name(kind: NamespaceKind, id: uuid::Uuid) -> String {
    format!("{}:{id}", kind.as_str())
}

/// Finds the target namespace of a row, or why it is skipped (all reasons but
/// `too_large`, which depends on the write).
pub fn target_for(row: &LegacyRow, resolver: &mut Resolver) -> Result<Target, Skip> {
    target_with(row, |ws| resolver.place(ws))
}

/// [`target_for`] with any way of placing a workspace (`None`: not in the
/// table).
pub fn target_with(
    row: &LegacyRow,
    place: impl FnOnce(uuid::Uuid) -> Option<crate::resolver::Placement>,
) -> Result<Target, Skip> {
    let (scope, placement) = place_row(row, place)?;
    let kind = scope.namespace_kind();
    let ns_id = match scope {
        Scope::Local => placement.workspace,
        Scope::Team => placement.team,
        Scope::Global => placement.org,
    };
    Ok(Target {
        scope,
        namespace: namespace_name(kind, ns_id),
        kind,
        placement,
        global_from_non_root: scope == Scope::Global && !placement.is_root,
    })
}

/// The skip rules of [`target_for`] without building the namespace name:
/// the row's scope and what `place` finds for its workspace (a
/// [`Placement`], or anything a caller keeps per workspace), or why the row
/// is skipped.
pub fn place_row<T, P>(row: &LegacyRow, place: P) -> Result<(Scope, T), Skip>
where
    P: FnOnce(uuid::Uuid) -> Option<T>,
{
    let raw_scope = row.scope.as_deref().unwrap_or("");
    let Some(scope) = Scope::parse(raw_scope) else {
        return Err(Skip {
            reason: SkipReason::UnknownScope,
            detail: format!(
                "scope {} is not LOCAL, TEAM or GLOBAL",
                match &row.scope {
                    Some(s) => format!("{:?}", memory_contract::validate::excerpt(s, 20)),
                    None => "NULL".into(),
                }
            ),
        });
    };
    let Some(ws) = row.workspace_id else {
        return Err(Skip {
            reason: SkipReason::NoWorkspace,
            detail: "workspace_id is NULL".into(),
        });
    };
    let Some(placement) = place(ws) else {
        return Err(Skip {
            reason: SkipReason::DanglingWorkspace,
            detail: format!("workspace {ws} is not in the workspaces table"),
        });
    };
    if let Some(skip) = content_skip(row) {
        return Err(skip);
    }
    Ok((scope, placement))
}

/// The `blank_content` skip, when the row's content is NULL, empty or only
/// whitespace.
pub fn content_skip(row: &LegacyRow) -> Option<Skip> {
    let content = row.content.as_deref().unwrap_or("");
    memory_contract::validate::content("content", content)
        .is_err()
        .then(|| Skip {
            reason: SkipReason::BlankContent,
            detail: if row.content.is_none() {
                "content is NULL".into()
            } else {
                "content is empty or only whitespace".into()
            },
        })
}

/// What the plugin accepts, which decides which columns travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Carry {
    /// The plugin advertises `created_at`.
    pub created_at: bool,
    /// Embeddings travel (plugin advertises `embedding`, same dimension).
    pub embedding: bool,
}

/// Parses pgvector's text form (`[1,2.5,-3e-2]`).
pub fn parse_vector(text: &str) -> Option<Vec<f32>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    if inner.trim().is_empty() {
        return None;
    }
    inner
        .split(',')
        .map(|x| x.trim().parse::<f32>().ok().filter(|v| v.is_finite()))
        .collect()
}

/// Builds the write for a row already given a target.
///
/// # Errors
///
/// A `too_large` [`Skip`] when the single-write body would exceed the
/// plugin's 1 MiB limit (a batch item must fit it too, so both paths agree).
pub fn to_write(
    row: &LegacyRow,
    target: &Target,
    carry: Carry,
) -> Result<(BatchWrite, usize), Skip> {
    let write = MemoryWrite {
        id: Some(row.id),
        content: row.content.clone().unwrap_or_default(),
        kind: MIGRATED_KIND,
        source: MIGRATED_SOURCE,
        expires_at: None,
        propagation: None,
        pin: None,
        embedding: if carry.embedding {
            row.embedding.as_deref().and_then(parse_vector)
        } else {
            None
        },
        created_at: if carry.created_at {
            row.created_at
        } else {
            None
        },
    };
    let size = json_size(&write);
    if size > limits::BODY_MAX_BYTES {
        return Err(Skip {
            reason: SkipReason::TooLarge,
            detail: format!(
                "write would be {size} bytes; the plugin accepts at most {} per memory",
                limits::BODY_MAX_BYTES
            ),
        });
    }
    // The batch item adds `"namespace":"...",` to the same object.
    let item_size = size + target.namespace.len() + 16;
    Ok((
        BatchWrite {
            namespace: target.namespace.clone(),
            write,
        },
        item_size,
    ))
}

/// Serialized JSON size of a value, without building the bytes.
pub fn json_size<T: Serialize>(value: &T) -> usize {
    struct Counter(usize);
    impl Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Counter(0);
    // Serializing plain data into a counter cannot fail.
    let _ = serde_json::to_writer(&mut c, value);
    c.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolver::WorkspaceTree;
    use uuid::Uuid;

    fn row(ws: Option<u128>, scope: Option<&str>, content: Option<&str>) -> LegacyRow {
        LegacyRow {
            id: Uuid::from_u128(1000),
            workspace_id: ws.map(Uuid::from_u128),
            content: content.map(str::to_string),
            scope: scope.map(str::to_string),
            created_at: None,
            updated_at: None,
            label: None,
            embedding: None,
        }
    }

    fn resolver() -> Resolver {
        Resolver::new(WorkspaceTree::from_nodes([
            (Uuid::from_u128(1), None, false),
            (Uuid::from_u128(2), Some(Uuid::from_u128(1)), false),
            (Uuid::from_u128(3), Some(Uuid::from_u128(2)), true),
        ]))
    }

    #[test]
    fn scopes_map_to_their_namespaces() {
        let mut r = resolver();
        let t = target_for(&row(Some(3), Some("LOCAL"), Some("x")), &mut r).unwrap();
        assert_eq!(t.namespace, format!("workspace:{}", Uuid::from_u128(3)));
        let t = target_for(&row(Some(3), Some("team "), Some("x")), &mut r).unwrap();
        assert_eq!(t.namespace, format!("team:{}", Uuid::from_u128(2)));
        let t = target_for(&row(Some(1), Some("TEAM"), Some("x")), &mut r).unwrap();
        assert_eq!(t.namespace, format!("team:{}", Uuid::from_u128(1)));
        let t = target_for(&row(Some(3), Some("GLOBAL"), Some("x")), &mut r).unwrap();
        assert_eq!(t.namespace, format!("org:{}", Uuid::from_u128(1)));
        assert!(t.global_from_non_root && t.placement.removed);
        let t = target_for(&row(Some(1), Some("GLOBAL"), Some("x")), &mut r).unwrap();
        assert!(!t.global_from_non_root);
    }

    #[test]
    fn skips_carry_their_reason() {
        let mut r = resolver();
        let reason = |rw: LegacyRow, r: &mut Resolver| target_for(&rw, r).unwrap_err().reason;
        assert_eq!(
            reason(row(Some(1), Some("PRIVATE"), Some("x")), &mut r),
            SkipReason::UnknownScope
        );
        assert_eq!(
            reason(row(Some(1), None, Some("x")), &mut r),
            SkipReason::UnknownScope
        );
        assert_eq!(
            reason(row(None, Some("LOCAL"), Some("x")), &mut r),
            SkipReason::NoWorkspace
        );
        assert_eq!(
            reason(row(Some(77), Some("LOCAL"), Some("x")), &mut r),
            SkipReason::DanglingWorkspace
        );
        assert_eq!(
            reason(row(Some(1), Some("LOCAL"), Some(" \n\t")), &mut r),
            SkipReason::BlankContent
        );
        assert_eq!(
            reason(row(Some(1), Some("LOCAL"), None), &mut r),
            SkipReason::BlankContent
        );
    }

    #[test]
    fn oversized_rows_are_skipped_not_sent() {
        let mut r = resolver();
        let big = "\"".repeat(600 * 1024); // escapes double its JSON size
        let rw = row(Some(1), Some("LOCAL"), Some(&big));
        let t = target_for(&rw, &mut r).unwrap();
        let carry = Carry {
            created_at: true,
            embedding: false,
        };
        assert_eq!(
            to_write(&rw, &t, carry).unwrap_err().reason,
            SkipReason::TooLarge
        );
        let ok = row(Some(1), Some("LOCAL"), Some(&"a".repeat(200 * 1024)));
        let (w, size) = to_write(&ok, &t, carry).unwrap();
        assert!(size >= serde_json::to_vec(&w).unwrap().len());
    }

    #[test]
    fn vectors_parse_from_pgvector_text() {
        assert_eq!(parse_vector("[1,2.5,-0.03]"), Some(vec![1.0, 2.5, -0.03]));
        assert_eq!(parse_vector("[]"), None);
        assert_eq!(parse_vector("1,2"), None);
        assert_eq!(parse_vector("[1,NaN]"), None);
    }
}
