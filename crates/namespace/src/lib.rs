//! Namespace resolution, shared by the backfill and the gateway: which
//! namespaces a workspace may read and write, derived from the workspace tree
//! (DESIGN section 5).
//!
//! - [`WorkspaceTree`] holds the tree (in bulk, or one workspace's chain of
//!   ancestors) and [`WorkspaceTree::place`] walks it upward: workspace = self;
//!   team = parent (self for a root); org = the highest ancestor reached,
//!   stopping at a cycle, a dangling parent or [`MAX_HOPS`] hops.
//! - [`WorkspaceAccess::of`] turns a placement into namespace entries:
//!   readable = all three; writable = workspace and team, org only for a
//!   root. A removed or absent workspace has none.
//! - [`LegacyScope`] is the legacy `LOCAL` / `TEAM` / `GLOBAL` scope and its
//!   mapping to and from namespaces.

mod access;
mod tree;

pub use access::{LegacyScope, NamespaceEntry, WorkspaceAccess};
pub use tree::{
    Placement, Resolver, TreeLoadError, WalkEnd, WorkspaceNode, WorkspaceTree, MAX_HOPS,
};
