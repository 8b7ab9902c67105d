//! Reading both sides in id order and pairing their rows.
//!
//! Selection: an id range (exclusive bounds, as the `scan` extension takes
//! them). Comparison: [`Merger`] walks the source's and the target's pages
//! of that range side by side and yields each id once, with the row of each
//! side that has it. [`verify_difference`] and [`same_for_apply`] decide
//! what counts as different.

use crate::db::Db;
use chrono::{DateTime, Utc};
use memory_client::Client;
use memory_contract::Memory;
use serde::Serialize;
use std::collections::VecDeque;
use uuid::Uuid;

/// Memories asked for per `scan` page.
pub const PAGE: u32 = 1000;

/// Ids strictly between `after` and `before` (either open).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IdRange {
    pub after: Option<Uuid>,
    pub before: Option<Uuid>,
}

impl IdRange {
    /// Every id.
    pub const ALL: IdRange = IdRange {
        after: None,
        before: None,
    };

    /// Ids whose first hex digit is in `first..end` (`end` at most 16).
    pub fn first_digits(first: u32, end: u32) -> IdRange {
        IdRange {
            after: (first > 0).then(|| Uuid::from_u128((u128::from(first) << 124) - 1)),
            before: (end < 16).then(|| Uuid::from_u128(u128::from(end) << 124)),
        }
    }

    /// `n` disjoint ranges covering every id, split on the first hex digit.
    pub fn split(n: u32) -> Vec<IdRange> {
        let n = n.clamp(1, 16);
        (0..n)
            .map(|i| IdRange::first_digits(i * 16 / n, (i + 1) * 16 / n))
            .collect()
    }

    /// The ids from `low` to `high`, both included.
    pub fn inclusive(low: Uuid, high: Uuid) -> IdRange {
        IdRange {
            after: low.as_u128().checked_sub(1).map(Uuid::from_u128),
            before: high.as_u128().checked_add(1).map(Uuid::from_u128),
        }
    }
}

/// Where one side's memories are read.
#[derive(Clone, Copy)]
pub enum Side<'a> {
    /// A plugin, through its `scan` extension.
    Plugin(&'a Client),
    /// A plugin's own tables.
    Database(&'a Db),
}

/// One side's memories of a range, page by page.
pub struct Pager<'a> {
    side: Side<'a>,
    after: Option<Uuid>,
    before: Option<Uuid>,
    buf: VecDeque<Memory>,
    done: bool,
    embeddings: bool,
}

impl<'a> Pager<'a> {
    /// Reads `range` of `side`.
    pub fn new(side: Side<'a>, range: IdRange) -> Self {
        Pager {
            side,
            after: range.after,
            before: range.before,
            buf: VecDeque::new(),
            done: false,
            embeddings: false,
        }
    }

    /// Reads each memory's embedding too.
    pub fn with_embeddings(mut self, embeddings: bool) -> Self {
        self.embeddings = embeddings;
        self
    }

    /// The next memory by id, or `None` at the end of the range.
    ///
    /// # Errors
    /// Why a page could not be read.
    pub async fn next(&mut self) -> Result<Option<Memory>, String> {
        loop {
            if let Some(m) = self.buf.pop_front() {
                return Ok(Some(m));
            }
            if self.done {
                return Ok(None);
            }
            let (memories, next_after) = match self.side {
                Side::Plugin(c) => {
                    let page = if self.embeddings {
                        c.scan_memories_with_embeddings(self.after, self.before, PAGE)
                            .await
                    } else {
                        c.scan_memories(self.after, self.before, PAGE).await
                    }
                    .map_err(|e| e.to_string())?;
                    (page.memories, page.next_after)
                }
                Side::Database(db) => {
                    db.page(self.after, self.before, PAGE, self.embeddings)
                        .await?
                }
            };
            match next_after {
                Some(next) if Some(next) != self.after => self.after = Some(next),
                _ => self.done = true,
            }
            self.buf.extend(memories);
        }
    }
}

/// One id and the row each side holds.
#[derive(Debug)]
pub enum Pair {
    /// Only the source has it.
    Source(Memory),
    /// Only the target has it.
    Target(Memory),
    /// Both have it.
    Both(Memory, Memory),
}

/// Which side failed to read.
#[derive(Debug)]
pub struct ReadError {
    pub side: &'static str,
    pub error: String,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "reading the {}: {}", self.side, self.error)
    }
}

/// Pairs two id-ordered pagers. Without a target pager every row is
/// [`Pair::Source`].
pub struct Merger<'a> {
    source: Pager<'a>,
    target: Option<Pager<'a>>,
    s: Option<Memory>,
    t: Option<Memory>,
    started: bool,
}

impl<'a> Merger<'a> {
    pub fn new(source: Pager<'a>, target: Option<Pager<'a>>) -> Self {
        Merger {
            source,
            target,
            s: None,
            t: None,
            started: false,
        }
    }

    async fn pull_source(&mut self) -> Result<(), ReadError> {
        self.s = self.source.next().await.map_err(|error| ReadError {
            side: "source",
            error,
        })?;
        Ok(())
    }

    async fn pull_target(&mut self) -> Result<(), ReadError> {
        self.t = match self.target.as_mut() {
            Some(p) => p.next().await.map_err(|error| ReadError {
                side: "target",
                error,
            })?,
            None => None,
        };
        Ok(())
    }

    /// The next id of either side.
    ///
    /// # Errors
    /// When a page of either side cannot be read.
    pub async fn next(&mut self) -> Result<Option<Pair>, ReadError> {
        if !self.started {
            self.started = true;
            self.pull_source().await?;
            self.pull_target().await?;
        }
        let pair = match (self.s.take(), self.t.take()) {
            (None, None) => return Ok(None),
            (Some(s), None) => {
                self.pull_source().await?;
                Pair::Source(s)
            }
            (None, Some(t)) => {
                self.pull_target().await?;
                Pair::Target(t)
            }
            (Some(s), Some(t)) => match s.id.cmp(&t.id) {
                std::cmp::Ordering::Less => {
                    self.t = Some(t);
                    self.pull_source().await?;
                    Pair::Source(s)
                }
                std::cmp::Ordering::Greater => {
                    self.s = Some(s);
                    self.pull_target().await?;
                    Pair::Target(t)
                }
                std::cmp::Ordering::Equal => {
                    self.pull_source().await?;
                    self.pull_target().await?;
                    Pair::Both(s, t)
                }
            },
        };
        Ok(Some(pair))
    }
}

/// A kind of difference `-verify` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// In the source, not in the target.
    Missing,
    /// Same id and namespace, other content.
    ContentDiffers,
    /// Same id in another namespace on the target.
    WrongNamespace,
    /// Same id, namespace and content, another `created_at`.
    CreatedAtDiffers,
    /// On the target, not in the source.
    Extra,
}

impl DiffKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DiffKind::Missing => "missing",
            DiffKind::ContentDiffers => "content_differs",
            DiffKind::WrongNamespace => "wrong_namespace",
            DiffKind::CreatedAtDiffers => "created_at_differs",
            DiffKind::Extra => "extra",
        }
    }
}

fn micros(at: Option<DateTime<Utc>>) -> Option<i64> {
    at.map(|a| a.timestamp_micros())
}

/// What `-verify` sees between the two rows of one id: the most serious
/// difference (namespace, then content, then `created_at` when compared).
pub fn verify_difference(s: &Memory, t: &Memory, created_at: bool) -> Option<DiffKind> {
    if s.namespace != t.namespace {
        Some(DiffKind::WrongNamespace)
    } else if s.content != t.content {
        Some(DiffKind::ContentDiffers)
    } else if created_at && s.created_at.timestamp_micros() != t.created_at.timestamp_micros() {
        Some(DiffKind::CreatedAtDiffers)
    } else {
        None
    }
}

/// Whether the target's row already holds everything `-apply` would write
/// (with `embeddings`, the embedding too).
pub fn same_for_apply(s: &Memory, t: &Memory, created_at: bool, embeddings: bool) -> bool {
    verify_difference(s, t, created_at).is_none()
        && (!embeddings || s.embedding == t.embedding)
        && s.kind == t.kind
        && s.source == t.source
        && s.pin == t.pin
        && s.propagation == t.propagation
        && micros(s.expires_at) == micros(t.expires_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_every_id_once() {
        let ranges = IdRange::split(4);
        assert_eq!(ranges.len(), 4);
        assert_eq!(ranges[0].after, None);
        assert_eq!(ranges[3].before, None);
        for w in ranges.windows(2) {
            // the next range starts right at the previous one's exclusive end
            assert_eq!(
                w[0].before.unwrap().as_u128() - 1,
                w[1].after.unwrap().as_u128()
            );
        }
        let r = IdRange::inclusive(Uuid::nil(), Uuid::from_u128(u128::MAX));
        assert_eq!(r, IdRange::ALL);
    }
}
