//! The resumable checkpoint, kept in the target plugin.
//!
//! Progress lives where the data goes, so a run started from another machine
//! (or after the first one was killed) continues where the last one stopped.
//! It is one memory in the namespace `custom:memory-backfill`, with a fixed id
//! derived from the legacy database's name and schema, whose content is JSON:
//! `{"cursor": "<uuid>", "complete": bool, ...}`. A memory rather than
//! namespace metadata because v1 can read memories (search) on every plugin
//! but can read namespace metadata only with the `list` extension.
//!
//! The cursor means: every legacy row with an id at or below it was scanned
//! and its write acknowledged (or skipped, or refused for good). It is written
//! only after that holds, and rows are keyed by their ids, so a run killed at
//! any moment replays at most the rows after the cursor, harmlessly.

use crate::plugin::Plugin;
use chrono::{DateTime, Utc};
use memory_client::ClientError;
use memory_contract::{
    MemoryKind, MemorySource, MemoryWrite, NamespaceKind, NamespaceUpsert, SearchRequest,
};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

/// Namespace holding the checkpoint.
pub const CHECKPOINT_NAMESPACE: &str = "custom:memory-backfill";

/// The stored checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Last legacy id fully done.
    pub cursor: Option<Uuid>,
    /// The run that wrote it reached the end of the table.
    pub complete: bool,
    /// Which legacy table this is about (database/schema).
    pub source: String,
    pub updated_at: DateTime<Utc>,
}

/// Where the checkpoint of one legacy table lives.
#[derive(Debug, Clone)]
pub struct CheckpointSlot {
    pub id: Uuid,
    pub source: String,
}

/// Failure reading the legacy identity.
#[derive(Debug, thiserror::Error)]
#[error("failed to identify the legacy database: {0}")]
pub struct IdentityError(#[from] pub sqlx::Error);

impl CheckpointSlot {
    /// The slot for the `agent_memories` table this pool sees.
    ///
    /// # Errors
    ///
    /// [`IdentityError`] when the query fails.
    pub async fn for_legacy(pool: &PgPool) -> Result<CheckpointSlot, IdentityError> {
        let (db, schema): (String, Option<String>) = sqlx::query_as(
            "SELECT current_database()::text,
                    (SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE c.oid = to_regclass('agent_memories'))",
        )
        .fetch_one(pool)
        .await?;
        let source = format!("{db}/{}", schema.unwrap_or_else(|| "public".into()));
        Ok(CheckpointSlot {
            id: slot_id(&source),
            source,
        })
    }
}

/// A stable UUID for a source name (FNV-1a, 128 bit; stable across builds,
/// unlike the std hasher).
pub fn slot_id(source: &str) -> Uuid {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut h = OFFSET;
    for b in b"memory-backfill checkpoint\0"
        .iter()
        .chain(source.as_bytes())
    {
        h ^= u128::from(*b);
        h = h.wrapping_mul(PRIME);
    }
    uuid::Builder::from_random_bytes(h.to_be_bytes()).into_uuid()
}

/// Reads the checkpoint; `None` when no run stored one yet.
///
/// # Errors
///
/// The client error of the search (a missing namespace is not an error).
pub async fn load(
    plugin: &Plugin,
    slot: &CheckpointSlot,
) -> Result<Option<Checkpoint>, ClientError> {
    let req = SearchRequest {
        namespaces: vec![CHECKPOINT_NAMESPACE.to_string()],
        limit: Some(100),
        ..SearchRequest::default()
    };
    let found = match plugin.client.search(&req).await {
        Ok(r) => r.memories,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(found
        .into_iter()
        .find(|m| m.id == slot.id)
        .and_then(|m| serde_json::from_str::<Checkpoint>(&m.content).ok()))
}

/// Stores the checkpoint (creating its namespace on first use).
///
/// # Errors
///
/// The client error of the write.
pub async fn save(
    plugin: &Plugin,
    slot: &CheckpointSlot,
    cursor: Option<Uuid>,
    complete: bool,
) -> Result<(), ClientError> {
    let cp = Checkpoint {
        cursor,
        complete,
        source: slot.source.clone(),
        updated_at: Utc::now(),
    };
    let content = serde_json::to_string(&cp).unwrap_or_default();
    let mut write = MemoryWrite::new(content, MemoryKind::Checkpoint, MemorySource::Runtime);
    write.id = Some(slot.id);
    match plugin
        .client
        .write_memory(CHECKPOINT_NAMESPACE, &write)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => {
            plugin
                .client
                .upsert_namespace(
                    CHECKPOINT_NAMESPACE,
                    &NamespaceUpsert {
                        kind: NamespaceKind::Custom,
                        expires_at: None,
                        metadata: Some(
                            serde_json::json!({"purpose": "memory-backfill checkpoint"}),
                        ),
                    },
                )
                .await?;
            plugin
                .client
                .write_memory(CHECKPOINT_NAMESPACE, &write)
                .await
                .map(drop)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_ids_are_stable_and_distinct() {
        assert_eq!(slot_id("db/public"), slot_id("db/public"));
        assert_ne!(slot_id("db/public"), slot_id("db/app"));
        assert_eq!(slot_id("db/public").get_version_num(), 4);
    }
}
