//! The embedding dimension of a SQLite store.
//!
//! A file that already holds embeddings keeps their dimension: when none is
//! configured the store takes it from one stored embedding, and a
//! configured one that differs stops the store from opening. A file without
//! embeddings takes the configured dimension, or [`DEFAULT_EMBEDDING_DIM`]
//! (the dimension of the gateway's built-in model, all-MiniLM-L6-v2), so
//! that semantic recall works out of the box.

use super::db_error;
use crate::store::{StoreError, StoreResult};
use sqlx::SqlitePool;

/// Dimension of a SQLite store when none is configured and the file holds
/// no embedding yet: that of all-MiniLM-L6-v2, the gateway's built-in model.
pub const DEFAULT_EMBEDDING_DIM: usize = 384;

/// The dimension of one stored embedding (every stored one has the
/// dimension the store had when writing it), or `None` when the file holds
/// none. Reads rows until the first with an embedding.
pub(super) async fn stored(pool: &SqlitePool) -> StoreResult<Option<usize>> {
    let bytes: Option<i64> = sqlx::query_scalar(
        "SELECT length(embedding) FROM memory_records WHERE embedding IS NOT NULL LIMIT 1",
    )
    .fetch_optional(pool)
    .await
    .map_err(|e| db_error("reading the dimension of stored embeddings", e))?;
    Ok(bytes.map(|b| b as usize / 4))
}

/// The dimension the store runs with: see the module documentation.
///
/// # Errors
///
/// `BadRequest` when `configured` contradicts the stored embeddings.
pub(super) fn resolve(configured: Option<usize>, stored: Option<usize>) -> StoreResult<usize> {
    match (configured, stored) {
        (Some(want), Some(have)) if want != have => Err(StoreError::BadRequest(format!(
            "the embedding dimension is configured as {want} (MEMORY_PLUGIN_EMBEDDING_DIM), but \
             this SQLite file already holds embeddings of {have} dimensions; set it to {have} \
             or leave it unset"
        ))),
        (Some(want), _) => Ok(want),
        (None, Some(have)) => Ok(have),
        (None, None) => Ok(DEFAULT_EMBEDDING_DIM),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_embeddings_decide_unless_configured_alike() {
        assert_eq!(resolve(None, None).unwrap(), 384);
        assert_eq!(resolve(None, Some(3)).unwrap(), 3);
        assert_eq!(resolve(Some(8), None).unwrap(), 8);
        assert_eq!(resolve(Some(3), Some(3)).unwrap(), 3);
        match resolve(Some(1536), Some(384)) {
            Err(StoreError::BadRequest(m)) => {
                assert!(m.contains("1536") && m.contains("384"), "{m}")
            }
            other => panic!("expected BadRequest, got {other:?}"),
        }
    }
}
