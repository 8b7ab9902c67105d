//! The workspace tree and the upward walk that places a workspace in it.
//!
//! In bulk (the backfill), the whole `workspaces` table (id, parent, removed
//! flag) is read once and walked in memory: a per-row recursive query would
//! cost a round trip per memory. For one workspace (the gateway, on every
//! call), [`WorkspaceTree::load_chain`] reads only its ancestors, and the same
//! walk runs over them. Real data holds cycles, dangling parents and chains deeper than the
//! 50-hop cap, so the walk stops at the first of: no parent, a parent that is
//! not in the table, a workspace already visited, or 50 hops.
//!
//! Rules (DESIGN section 5): workspace = self; team = parent (self for a
//! root); org = the highest ancestor reached, i.e. the last workspace the walk
//! visited before it stopped.

use futures::TryStreamExt;
use sqlx::{PgPool, Row};
use std::collections::HashMap;
use uuid::Uuid;

/// Most `parent_id` hops a walk takes.
pub const MAX_HOPS: usize = 50;

/// One workspace as the tree keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkspaceNode {
    pub parent: Option<Uuid>,
    /// `status = 'removed'` (a NULL status is not removed).
    pub removed: bool,
}

/// Why the upward walk stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WalkEnd {
    /// Reached a workspace without parent.
    Root,
    /// The next parent id is not in the table.
    DanglingParent,
    /// The next parent was already visited.
    Cycle,
    /// 50 hops taken.
    DepthCap,
}

/// Where a workspace's memories go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub workspace: Uuid,
    pub team: Uuid,
    pub org: Uuid,
    /// The workspace itself has no parent.
    pub is_root: bool,
    pub removed: bool,
    pub walk_end: WalkEnd,
}

/// The legacy workspace tree, held in memory.
#[derive(Debug, Default, Clone)]
pub struct WorkspaceTree {
    nodes: HashMap<Uuid, WorkspaceNode>,
}

/// Failure to read the `workspaces` table.
#[derive(Debug, thiserror::Error)]
#[error("failed to read the workspaces table: {0}")]
pub struct TreeLoadError(#[from] pub sqlx::Error);

impl WorkspaceTree {
    /// Builds a tree from `(id, parent, removed)` triples.
    pub fn from_nodes(nodes: impl IntoIterator<Item = (Uuid, Option<Uuid>, bool)>) -> Self {
        WorkspaceTree {
            nodes: nodes
                .into_iter()
                .map(|(id, parent, removed)| (id, WorkspaceNode { parent, removed }))
                .collect(),
        }
    }

    /// Reads every workspace in one streamed query. `has_status` says whether
    /// the table has a `status` column.
    ///
    /// # Errors
    ///
    /// [`TreeLoadError`] when the query fails.
    pub async fn load(pool: &PgPool, has_status: bool) -> Result<Self, TreeLoadError> {
        let sql = if has_status {
            "SELECT id, parent_id, status IS NOT DISTINCT FROM 'removed' AS removed FROM workspaces"
        } else {
            "SELECT id, parent_id, false AS removed FROM workspaces"
        };
        let mut nodes = HashMap::new();
        let mut rows = sqlx::query(sql).fetch(pool);
        while let Some(row) = rows.try_next().await? {
            let id: Uuid = row.try_get("id")?;
            let parent: Option<Uuid> = row.try_get("parent_id")?;
            let removed: bool = row.try_get("removed")?;
            nodes.insert(id, WorkspaceNode { parent, removed });
        }
        Ok(WorkspaceTree { nodes })
    }

    /// Reads one workspace and its ancestors (at most `MAX_HOPS + 1` of them,
    /// so cycles end) with one recursive query, with their names. Walking the
    /// returned tree from `id` gives the same placement as walking the whole
    /// table would. An absent workspace gives an empty tree.
    ///
    /// `has_status` and `has_name` say whether the table has those columns.
    ///
    /// # Errors
    ///
    /// [`TreeLoadError`] when the query fails.
    pub async fn load_chain(
        pool: &PgPool,
        id: Uuid,
        has_status: bool,
        has_name: bool,
    ) -> Result<(Self, HashMap<Uuid, String>), TreeLoadError> {
        let removed = |alias: &str| {
            if has_status {
                format!("{alias}.status IS NOT DISTINCT FROM 'removed'")
            } else {
                "false".to_string()
            }
        };
        let name = |alias: &str| {
            if has_name {
                format!("{alias}.name::text")
            } else {
                "NULL::text".to_string()
            }
        };
        // UNION ALL with a depth bound: a cycle repeats nodes until the
        // bound, which the walk then ignores; no array of visited ids needed.
        let sql = format!(
            "WITH RECURSIVE chain(id, parent_id, name, removed, depth) AS ( \
               SELECT w.id, w.parent_id, {}, {}, 0 FROM workspaces w WHERE w.id = $1 \
               UNION ALL \
               SELECT w.id, w.parent_id, {}, {}, c.depth + 1 \
               FROM workspaces w JOIN chain c ON w.id = c.parent_id \
               WHERE c.depth < {} \
             ) SELECT id, parent_id, name, removed FROM chain",
            name("w"),
            removed("w"),
            name("w"),
            removed("w"),
            MAX_HOPS + 1
        );
        let rows = sqlx::query(&sql).bind(id).fetch_all(pool).await?;
        let mut nodes = HashMap::new();
        let mut names = HashMap::new();
        for row in rows {
            let id: Uuid = row.try_get("id")?;
            let parent: Option<Uuid> = row.try_get("parent_id")?;
            let removed: bool = row.try_get("removed")?;
            if let Some(name) = row.try_get::<Option<String>, _>("name")? {
                names.insert(id, name);
            }
            nodes.insert(id, WorkspaceNode { parent, removed });
        }
        Ok((WorkspaceTree { nodes }, names))
    }

    /// Number of workspaces.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when the table was empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The workspace, when it exists.
    pub fn get(&self, id: Uuid) -> Option<WorkspaceNode> {
        self.nodes.get(&id).copied()
    }

    /// Every workspace id (in no particular order).
    pub fn ids(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.nodes.keys().copied()
    }

    /// Resolves a workspace; `None` when it is not in the table.
    pub fn place(&self, id: Uuid) -> Option<Placement> {
        let node = self.nodes.get(&id)?;
        let team = node.parent.unwrap_or(id);
        // Visited set kept small: at most MAX_HOPS + 1 entries.
        let mut visited: Vec<Uuid> = vec![id];
        let mut current = id;
        let mut current_node = *node;
        let walk_end = loop {
            let Some(parent) = current_node.parent else {
                break WalkEnd::Root;
            };
            if visited.len() > MAX_HOPS {
                break WalkEnd::DepthCap;
            }
            let Some(parent_node) = self.nodes.get(&parent) else {
                break WalkEnd::DanglingParent;
            };
            if visited.contains(&parent) {
                break WalkEnd::Cycle;
            }
            visited.push(parent);
            current = parent;
            current_node = *parent_node;
        };
        Some(Placement {
            workspace: id,
            team,
            org: current,
            is_root: node.parent.is_none(),
            removed: node.removed,
            walk_end,
        })
    }
}

/// A tree with a cache of placements, for resolving many rows.
#[derive(Debug, Default)]
pub struct Resolver {
    tree: WorkspaceTree,
    cache: HashMap<Uuid, Option<Placement>>,
}

impl Resolver {
    /// Wraps a loaded tree.
    pub fn new(tree: WorkspaceTree) -> Self {
        Resolver {
            tree,
            cache: HashMap::new(),
        }
    }

    /// The underlying tree.
    pub fn tree(&self) -> &WorkspaceTree {
        &self.tree
    }

    /// Resolves a workspace, remembering the answer.
    pub fn place(&mut self, id: Uuid) -> Option<Placement> {
        if let Some(p) = self.cache.get(&id) {
            return *p;
        }
        let p = self.tree.place(id);
        self.cache.insert(id, p);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn depth_three_tree_resolves_team_and_org() {
        let tree = WorkspaceTree::from_nodes([
            (id(1), None, false),
            (id(2), Some(id(1)), false),
            (id(3), Some(id(2)), true),
        ]);
        let root = tree.place(id(1)).unwrap();
        assert_eq!((root.team, root.org, root.is_root), (id(1), id(1), true));
        let child = tree.place(id(2)).unwrap();
        assert_eq!(
            (child.team, child.org, child.is_root),
            (id(1), id(1), false)
        );
        let grandchild = tree.place(id(3)).unwrap();
        assert_eq!((grandchild.team, grandchild.org), (id(2), id(1)));
        assert!(grandchild.removed);
        assert_eq!(grandchild.walk_end, WalkEnd::Root);
        assert!(tree.place(id(99)).is_none());
    }

    #[test]
    fn cycle_stops_at_last_new_workspace() {
        let tree =
            WorkspaceTree::from_nodes([(id(1), Some(id(2)), false), (id(2), Some(id(1)), false)]);
        let a = tree.place(id(1)).unwrap();
        assert_eq!((a.team, a.org, a.walk_end), (id(2), id(2), WalkEnd::Cycle));
        let self_loop = WorkspaceTree::from_nodes([(id(5), Some(id(5)), false)]);
        let s = self_loop.place(id(5)).unwrap();
        assert_eq!((s.team, s.org, s.walk_end), (id(5), id(5), WalkEnd::Cycle));
    }

    #[test]
    fn dangling_parent_keeps_team_and_stops_org_at_self() {
        let tree =
            WorkspaceTree::from_nodes([(id(1), Some(id(42)), false), (id(2), Some(id(1)), false)]);
        let a = tree.place(id(1)).unwrap();
        assert_eq!(
            (a.team, a.org, a.walk_end),
            (id(42), id(1), WalkEnd::DanglingParent)
        );
        let b = tree.place(id(2)).unwrap();
        assert_eq!((b.team, b.org), (id(1), id(1)));
    }

    #[test]
    fn chains_deeper_than_fifty_stop_at_the_cap() {
        // 0 is the root; n's parent is n-1; walk from 60 takes 50 hops to 10.
        let nodes =
            (0..=60u128).map(|n| (id(n), if n == 0 { None } else { Some(id(n - 1)) }, false));
        let tree = WorkspaceTree::from_nodes(nodes);
        let deep = tree.place(id(60)).unwrap();
        assert_eq!((deep.org, deep.walk_end), (id(10), WalkEnd::DepthCap));
        let exactly_fifty = tree.place(id(50)).unwrap();
        assert_eq!(
            (exactly_fifty.org, exactly_fifty.walk_end),
            (id(0), WalkEnd::Root)
        );
    }
}
