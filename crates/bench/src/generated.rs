//! Generated memories for the sections that need no legacy table
//! (`--section sqlite-million`, `--section pg-batch`): the legacy data set's
//! shape, produced in process from a fixed seed.
//!
//! Workspace trees as in [`crate::legacy`] (a tenth roots, two thirds of
//! the rest their children, the others grandchildren); memories spread
//! uniformly over workspaces, 70% in `workspace:<id>`, 20% in
//! `team:<parent>`, 10% in `org:<root>`, each 50 to 500 characters cut from
//! six phrases of the legacy vocabulary, created up to two years ago, with
//! ids ascending as a backfill or a plugin swap sends them.

use crate::legacy::VOCABULARY;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use memory_contract::{BatchWrite, MemoryKind, MemorySource, MemoryWrite, NamespaceKind};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

/// Phrases contents are cut from.
const PHRASES: usize = 4096;

/// The workspace trees and the namespaces their memories go to.
pub struct Tree {
    ids: Vec<Uuid>,
    parent: Vec<Option<usize>>,
}

impl Tree {
    /// `workspaces` workspaces (at least one), always the same for one seed.
    pub fn new(workspaces: usize, seed: u64) -> Tree {
        let workspaces = workspaces.max(1);
        let mut rng = StdRng::seed_from_u64(seed);
        let roots = (workspaces / 10).clamp(1, workspaces);
        let rest = workspaces - roots;
        let children = if rest < 3 { rest } else { rest * 2 / 3 };
        let parent = (0..workspaces)
            .map(|i| {
                if i < roots {
                    None
                } else if i < roots + children {
                    Some((i - roots) % roots)
                } else {
                    Some(roots + (i - roots - children) % children)
                }
            })
            .collect();
        Tree {
            ids: (0..workspaces)
                .map(|_| uuid::Builder::from_random_bytes(rng.gen()).into_uuid())
                .collect(),
            parent,
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    fn root(&self, mut i: usize) -> usize {
        while let Some(p) = self.parent[i] {
            i = p;
        }
        i
    }

    pub fn workspace(&self, i: usize) -> String {
        format!("workspace:{}", self.ids[i])
    }

    pub fn team(&self, i: usize) -> String {
        format!("team:{}", self.ids[self.parent[i].unwrap_or(i)])
    }

    pub fn org(&self, i: usize) -> String {
        format!("org:{}", self.ids[self.root(i)])
    }

    /// The three namespaces workspace `i` reads: workspace, team, org.
    pub fn readable(&self, i: usize) -> Vec<String> {
        vec![self.workspace(i), self.team(i), self.org(i)]
    }

    /// Every namespace a memory can land in, with its kind.
    pub fn namespaces(&self) -> Vec<(String, NamespaceKind)> {
        let mut all = std::collections::BTreeMap::new();
        for i in 0..self.ids.len() {
            all.insert(self.workspace(i), NamespaceKind::Workspace);
            all.insert(self.team(i), NamespaceKind::Team);
            all.insert(self.org(i), NamespaceKind::Org);
        }
        all.into_iter().collect()
    }

    /// `count` readable sets of workspaces picked at random.
    pub fn search_sets(&self, count: usize, seed: u64) -> Vec<Vec<String>> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..count)
            .map(|_| self.readable(rng.gen_range(0..self.ids.len())))
            .collect()
    }
}

/// Generates the memories batch by batch, always the same for one seed.
pub struct Generator {
    rng: StdRng,
    phrases: Vec<String>,
    now: DateTime<Utc>,
    next_id: u128,
    id_step: u128,
}

impl Generator {
    /// A generator of `rows` memories with ids ascending over the UUID space.
    pub fn new(rows: u64, seed: u64) -> Generator {
        let mut rng = StdRng::seed_from_u64(seed);
        let phrases = (0..PHRASES)
            .map(|_| {
                let n = rng.gen_range(6..19);
                (0..n)
                    .map(|_| VOCABULARY[rng.gen_range(0..VOCABULARY.len())])
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        Generator {
            rng,
            phrases,
            now: Utc::now(),
            next_id: 0,
            id_step: u128::MAX / (u128::from(rows) + 1),
        }
    }

    fn content(&mut self) -> String {
        let mut text = String::new();
        for k in 0..6 {
            if k > 0 {
                text.push(' ');
            }
            text.push_str(&self.phrases[self.rng.gen_range(0..self.phrases.len())]);
        }
        let len = self.rng.gen_range(51..501);
        let cut: String = text.chars().take(len).collect();
        cut.trim_end().to_string()
    }

    fn id(&mut self) -> Uuid {
        self.next_id += self.id_step;
        uuid::Builder::from_random_bytes(self.next_id.to_be_bytes()).into_uuid()
    }

    /// The next `n` memories, each with its id and creation time.
    pub fn batch(&mut self, tree: &Tree, n: usize) -> Vec<BatchWrite> {
        (0..n)
            .map(|_| {
                let w = self.rng.gen_range(0..tree.len());
                let scope: f64 = self.rng.gen();
                let namespace = if scope < 0.7 {
                    tree.workspace(w)
                } else if scope < 0.9 {
                    tree.team(w)
                } else {
                    tree.org(w)
                };
                let mut write =
                    MemoryWrite::new(self.content(), MemoryKind::Fact, MemorySource::Agent);
                write.id = Some(self.id());
                let age = self.rng.gen_range(0..730 * 86_400);
                write.created_at = Some(self.now - ChronoDuration::seconds(age));
                BatchWrite { namespace, write }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_shape_and_namespaces() {
        let tree = Tree::new(100, 7);
        assert_eq!(tree.len(), 100);
        // 100 workspaces, 10 roots: 100 workspace, 100 team (a team per
        // root and per child with children... at most 100), 10 org names.
        let all = tree.namespaces();
        let orgs = all.iter().filter(|(_, k)| *k == NamespaceKind::Org).count();
        assert_eq!(orgs, 10);
        let set = tree.readable(99);
        assert!(set[0].starts_with("workspace:") && set[2].starts_with("org:"));
        assert_eq!(tree.search_sets(5, 1).len(), 5);
    }

    #[test]
    fn batches_are_deterministic_with_ascending_ids_and_bounded_content() {
        let tree = Tree::new(50, 1);
        let a = Generator::new(1000, 3).batch(&tree, 200);
        let b = Generator::new(1000, 3).batch(&tree, 200);
        assert_eq!(a.len(), 200);
        assert!(a
            .iter()
            .zip(&b)
            .all(|(x, y)| x.write.content == y.write.content && x.write.id == y.write.id));
        assert!(a.windows(2).all(|w| w[0].write.id < w[1].write.id));
        assert!(a
            .iter()
            .all(|w| (1..=500).contains(&w.write.content.chars().count())));
    }
}
