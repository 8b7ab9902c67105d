//! Extension `hybrid`: searches that name their ranking, and the fusion of
//! the full-text and vector rankings by reciprocal rank fusion.
//!
//! Both stores serve a named ranking through [`ranked_search`]: `semantic`
//! is the store's own vector ranking (any query left out), `fulltext` its own
//! full-text ranking (any embedding left out), and `hybrid` asks each of
//! them for its best [`HYBRID_CANDIDATES`] memories and fuses the two lists
//! with [`fuse`]. So each side keeps every rule of its v1 mode: the same
//! namespaces and kinds filter, expired memories left out, the HNSW index
//! serving the vector side on Postgres as in a semantic search.

use super::{SearchQuery, Store, StoreError, StoreResult};
use chrono::{DateTime, Utc};
use memory_contract::{Memory, RankMode, HYBRID_CANDIDATES, HYBRID_RRF_K};
use std::collections::HashMap;
use uuid::Uuid;

/// Serves a search whose ranking is named (see [`Store::search_ranked`]).
///
/// # Errors
///
/// `BadRequest` when the ranking's ingredient is missing (the HTTP layer
/// refuses those first, with the same rules), and whatever the store's
/// searches answer.
pub async fn ranked_search<S: Store + ?Sized>(
    store: &S,
    query: &SearchQuery,
    mode: RankMode,
) -> StoreResult<Vec<Memory>> {
    match plan(query, mode)? {
        Ranking::One(q) => store.search(&q).await,
        Ranking::Fused {
            text,
            vector,
            limit,
        } => {
            let (by_text, by_vector) =
                futures::try_join!(store.search(&text), store.search(&vector))?;
            Ok(fuse(&[by_text, by_vector], limit))
        }
    }
}

/// The plain searches a named ranking is made of.
#[derive(Debug, Clone, PartialEq)]
pub enum Ranking {
    /// One search answers it (`semantic`, `fulltext`).
    One(SearchQuery),
    /// `hybrid`: the best [`HYBRID_CANDIDATES`] by text and by vector, to
    /// be fused by [`fuse`] and cut to `limit`.
    Fused {
        text: SearchQuery,
        vector: SearchQuery,
        limit: usize,
    },
}

/// Checks a named ranking's ingredients and splits it into plain searches:
/// `semantic` is the store's own vector ranking (any query left out),
/// `fulltext` its own full-text ranking (any embedding left out), `hybrid`
/// both sides with [`HYBRID_CANDIDATES`] each.
///
/// # Errors
///
/// `BadRequest` when the ranking's ingredient is missing.
pub fn plan(query: &SearchQuery, mode: RankMode) -> StoreResult<Ranking> {
    let text = query
        .query
        .as_deref()
        .map(str::trim)
        .filter(|t| t.chars().count() >= 2);
    let needs_text = matches!(mode, RankMode::Fulltext | RankMode::Hybrid);
    let needs_embedding = matches!(mode, RankMode::Semantic | RankMode::Hybrid);
    if needs_text && text.is_none() {
        return Err(StoreError::BadRequest(
            "query: this ranking needs a query of 2 or more characters".into(),
        ));
    }
    if needs_embedding && query.embedding.is_none() {
        return Err(StoreError::BadRequest(
            "embedding: this ranking needs an embedding".into(),
        ));
    }
    let text_side = || SearchQuery {
        query: text.map(str::to_string),
        embedding: None,
        ..query.clone()
    };
    let vector_side = || SearchQuery {
        query: None,
        ..query.clone()
    };
    Ok(match mode {
        RankMode::Fulltext => Ranking::One(text_side()),
        RankMode::Semantic => Ranking::One(vector_side()),
        RankMode::Hybrid => Ranking::Fused {
            text: SearchQuery {
                limit: HYBRID_CANDIDATES,
                ..text_side()
            },
            vector: SearchQuery {
                limit: HYBRID_CANDIDATES,
                ..vector_side()
            },
            limit: query.limit as usize,
        },
    })
}

/// Reciprocal rank fusion of `rankings` (each best first), cut to `limit`.
///
/// A memory at rank `r` (from 1) of a ranking earns `1 / (60 + r)` from it
/// ([`HYBRID_RRF_K`]); its score is the sum of what it earns from every
/// ranking it appears in, and replaces the ranking's own score. Order:
/// score descending, then newer `created_at`, then smaller id, so equal
/// scores sort the same way every time.
pub fn fuse(rankings: &[Vec<Memory>], limit: usize) -> Vec<Memory> {
    fuse_by(rankings, limit, |m| (m.id, m.created_at))
        .into_iter()
        .map(|(memory, score)| Memory {
            score: Some(score),
            ..memory
        })
        .collect()
}

/// [`fuse`] for rankings of anything `key` gives the id and creation time
/// of: each item kept once (its first appearance) with its fused score.
pub fn fuse_by<T: Clone>(
    rankings: &[Vec<T>],
    limit: usize,
    key: impl Fn(&T) -> (Uuid, DateTime<Utc>),
) -> Vec<(T, f64)> {
    let k = f64::from(HYBRID_RRF_K);
    let mut fused: HashMap<Uuid, (T, f64)> = HashMap::new();
    for ranking in rankings {
        for (index, item) in ranking.iter().enumerate() {
            let earned = 1.0 / (k + (index + 1) as f64);
            fused
                .entry(key(item).0)
                .and_modify(|(_, score)| *score += earned)
                .or_insert_with(|| (item.clone(), earned));
        }
    }
    let mut out: Vec<(T, f64)> = fused.into_values().collect();
    out.sort_by(|(a, sa), (b, sb)| {
        let (a_id, a_created) = key(a);
        let (b_id, b_created) = key(b);
        sb.total_cmp(sa)
            .then(b_created.cmp(&a_created))
            .then(a_id.cmp(&b_id))
    });
    out.truncate(limit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use memory_contract::{MemoryKind, MemorySource};

    fn memory(id: u128, second: u32) -> Memory {
        Memory {
            id: Uuid::from_u128(id),
            namespace: "team:t".into(),
            content: format!("m{id}"),
            kind: MemoryKind::Fact,
            source: MemorySource::Agent,
            expires_at: None,
            propagation: None,
            pin: false,
            created_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, second).unwrap(),
            score: Some(0.9),
            embedding: None,
        }
    }

    #[test]
    fn scores_add_up_over_rankings_and_replace_the_rankings_own() {
        let text = vec![memory(1, 0), memory(2, 0), memory(3, 0)];
        let vector = vec![memory(3, 0), memory(4, 0)];
        let out = fuse(&[text, vector], 10);
        let got: Vec<(u128, f64)> = out
            .iter()
            .map(|m| (m.id.as_u128(), m.score.unwrap()))
            .collect();
        let both = 1.0 / 63.0 + 1.0 / 61.0;
        assert_eq!(
            got,
            vec![
                (3, both),
                (1, 1.0 / 61.0),
                // 2 and 4 both earn 1/62; equal times, so the smaller id first.
                (2, 1.0 / 62.0),
                (4, 1.0 / 62.0),
            ]
        );
    }

    #[test]
    fn equal_scores_put_the_newer_first_and_the_limit_cuts() {
        let out = fuse(&[vec![memory(1, 1)], vec![memory(2, 5)]], 1);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].id.as_u128(), 2, "newer wins the tie");
    }
}
