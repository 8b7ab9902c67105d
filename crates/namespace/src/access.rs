//! From a placement to the namespaces a workspace may read and write.

use crate::tree::{Placement, WorkspaceTree};
use memory_contract::NamespaceKind;
use std::collections::HashMap;
use uuid::Uuid;

/// One namespace a workspace may read, and whether it may write it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NamespaceEntry {
    /// `workspace:<id>`, `team:<id>` or `org:<id>`.
    pub name: String,
    pub kind: NamespaceKind,
    /// One sentence on what the namespace holds and who shares it.
    pub description: String,
    pub writable: bool,
    /// The name of the workspace the namespace is named after (the
    /// workspace's, its parent's or its root's), or its id when unknown.
    pub display_name: String,
}

/// The namespaces one workspace may use, in the order workspace, team, org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceAccess {
    pub workspace: Uuid,
    pub placement: Placement,
    entries: Vec<NamespaceEntry>,
}

impl WorkspaceAccess {
    /// The access of a placed workspace; `None` when it is removed (a removed
    /// workspace has no namespaces). `name_of` gives a workspace's name.
    pub fn of(placement: Placement, name_of: impl Fn(Uuid) -> Option<String>) -> Option<Self> {
        if placement.removed {
            return None;
        }
        let label = |id: Uuid| name_of(id).unwrap_or_else(|| id.to_string());
        let own = label(placement.workspace);
        let team = label(placement.team);
        let org = label(placement.org);
        let org_writable = placement.is_root;
        let entries = vec![
            NamespaceEntry {
                name: format!("workspace:{}", placement.workspace),
                kind: NamespaceKind::Workspace,
                description: format!(
                    "Private to workspace {own}: what this agent alone remembers."
                ),
                writable: true,
                display_name: own,
            },
            NamespaceEntry {
                name: format!("team:{}", placement.team),
                kind: NamespaceKind::Team,
                description: format!(
                    "Shared with the team under {team}: every member reads and writes it."
                ),
                writable: true,
                display_name: team,
            },
            NamespaceEntry {
                name: format!("org:{}", placement.org),
                kind: NamespaceKind::Org,
                description: if org_writable {
                    format!("Shared with every workspace of the organisation {org}; only its root writes it.")
                } else {
                    format!("Shared with every workspace of the organisation {org}; read-only here (only the root writes it).")
                },
                writable: org_writable,
                display_name: org,
            },
        ];
        Some(WorkspaceAccess {
            workspace: placement.workspace,
            placement,
            entries,
        })
    }

    /// Places `id` in `tree` and derives its access; `None` when the
    /// workspace is absent or removed.
    pub fn resolve(tree: &WorkspaceTree, names: &HashMap<Uuid, String>, id: Uuid) -> Option<Self> {
        let placement = tree.place(id)?;
        Self::of(placement, |w| names.get(&w).cloned())
    }

    /// Every namespace the workspace may read.
    pub fn readable(&self) -> &[NamespaceEntry] {
        &self.entries
    }

    /// The namespaces the workspace may write.
    pub fn writable(&self) -> impl Iterator<Item = &NamespaceEntry> {
        self.entries.iter().filter(|e| e.writable)
    }

    /// The entry of `name`, when the workspace may read it.
    pub fn entry(&self, name: &str) -> Option<&NamespaceEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// True when the workspace may read `name` (exact match).
    pub fn can_read(&self, name: &str) -> bool {
        self.entry(name).is_some()
    }

    /// True when the workspace may write `name` (exact match).
    pub fn can_write(&self, name: &str) -> bool {
        self.entry(name).is_some_and(|e| e.writable)
    }

    /// `workspace:<self>`.
    pub fn workspace_namespace(&self) -> &str {
        &self.entries[0].name
    }

    /// `team:<parent>` (`team:<self>` for a root).
    pub fn team_namespace(&self) -> &str {
        &self.entries[1].name
    }

    /// `org:<root>`.
    pub fn org_namespace(&self) -> &str {
        &self.entries[2].name
    }
}

/// The legacy scope of `agent_memories` and of the `commit_memory` /
/// `recall_memory` tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegacyScope {
    Local,
    Team,
    Global,
}

impl LegacyScope {
    /// Parses `LOCAL`, `TEAM` or `GLOBAL` (any case, surrounding blanks ignored).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_uppercase().as_str() {
            "LOCAL" => Some(LegacyScope::Local),
            "TEAM" => Some(LegacyScope::Team),
            "GLOBAL" => Some(LegacyScope::Global),
            _ => None,
        }
    }

    /// `LOCAL`, `TEAM` or `GLOBAL`.
    pub fn as_str(self) -> &'static str {
        match self {
            LegacyScope::Local => "LOCAL",
            LegacyScope::Team => "TEAM",
            LegacyScope::Global => "GLOBAL",
        }
    }

    /// The scope a namespace is shown with again: `workspace:` -> LOCAL,
    /// `team:` -> TEAM, `org:` -> GLOBAL; `None` for other kinds.
    pub fn of_namespace(name: &str) -> Option<Self> {
        let (kind, _) = name.split_once(':')?;
        match kind {
            "workspace" => Some(LegacyScope::Local),
            "team" => Some(LegacyScope::Team),
            "org" => Some(LegacyScope::Global),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn tree() -> (WorkspaceTree, HashMap<Uuid, String>) {
        let tree = WorkspaceTree::from_nodes([
            (id(1), None, false),
            (id(2), Some(id(1)), false),
            (id(3), Some(id(2)), false),
            (id(4), Some(id(1)), true),
        ]);
        let names = [(id(1), "acme"), (id(2), "research"), (id(3), "intern")]
            .into_iter()
            .map(|(i, n)| (i, n.to_string()))
            .collect();
        (tree, names)
    }

    #[test]
    fn a_root_reads_and_writes_all_three() {
        let (tree, names) = tree();
        let root = WorkspaceAccess::resolve(&tree, &names, id(1)).unwrap();
        let names: Vec<_> = root.readable().iter().map(|e| e.name.clone()).collect();
        assert_eq!(
            names,
            [
                format!("workspace:{}", id(1)),
                format!("team:{}", id(1)),
                format!("org:{}", id(1))
            ]
        );
        assert_eq!(root.writable().count(), 3);
        assert!(root.readable().iter().all(|e| e.display_name == "acme"));
    }

    #[test]
    fn a_grandchild_writes_workspace_and_team_and_only_reads_the_org() {
        let (tree, names) = tree();
        let g = WorkspaceAccess::resolve(&tree, &names, id(3)).unwrap();
        assert_eq!(g.team_namespace(), format!("team:{}", id(2)));
        assert_eq!(g.org_namespace(), format!("org:{}", id(1)));
        assert!(g.can_write(&format!("workspace:{}", id(3))));
        assert!(g.can_write(&format!("team:{}", id(2))));
        assert!(!g.can_write(&format!("org:{}", id(1))));
        assert!(g.can_read(&format!("org:{}", id(1))));
        assert!(!g.can_read(&format!("team:{}", id(1))));
        let displays: Vec<_> = g
            .readable()
            .iter()
            .map(|e| e.display_name.as_str())
            .collect();
        assert_eq!(displays, ["intern", "research", "acme"]);
        assert!(g.readable()[2].description.contains("read-only"));
    }

    #[test]
    fn removed_and_absent_workspaces_have_no_namespaces() {
        let (tree, names) = tree();
        assert!(WorkspaceAccess::resolve(&tree, &names, id(4)).is_none());
        assert!(WorkspaceAccess::resolve(&tree, &names, id(99)).is_none());
    }

    #[test]
    fn unnamed_workspaces_are_shown_by_id() {
        let tree = WorkspaceTree::from_nodes([(id(7), Some(id(8)), false)]);
        let a = WorkspaceAccess::resolve(&tree, &HashMap::new(), id(7)).unwrap();
        // Dangling parent: team keeps the parent's id, org stops at self.
        assert_eq!(a.readable()[1].display_name, id(8).to_string());
        assert_eq!(a.org_namespace(), format!("org:{}", id(7)));
    }

    #[test]
    fn legacy_scopes_map_both_ways() {
        assert_eq!(LegacyScope::parse(" team "), Some(LegacyScope::Team));
        assert_eq!(LegacyScope::parse("ORG"), None);
        assert_eq!(
            LegacyScope::of_namespace("org:x"),
            Some(LegacyScope::Global)
        );
        assert_eq!(LegacyScope::of_namespace("custom:x"), None);
    }
}
