//! The resumable checkpoint of `-apply`, kept in the target plugin.
//!
//! As the backfill's ([`memory_backfill::checkpoint`]): one memory in the
//! namespace [`NAMESPACE`] of the target, with a fixed id derived from the
//! source and the selection ([`slot`]), read back with a v1 search so that
//! it works on any target. Its content is JSON: for each of the run's id
//! ranges, the id through which every source memory was handled (written
//! and acknowledged, already identical, skipped, or refused and reported),
//! and whether the range reached its end.
//!
//! A run that is killed resumes each range after its cursor instead of
//! comparing everything again; `-limit` runs continue where the last one
//! stopped. A run that finishes every range deletes the checkpoint, so the
//! next `-apply` is a full pass again (a catch-up of whatever changed on
//! the source meanwhile) and a clean target holds nothing of the tool's.
//! The checkpoint memory is never copied or compared: its id is left out of
//! both sides.

use chrono::{DateTime, Utc};
use memory_client::{Client, ClientError};
use memory_contract::{
    MemoryKind, MemorySource, MemoryWrite, NamespaceKind, NamespaceUpsert, SearchRequest,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Namespace holding the checkpoints on the target.
pub const NAMESPACE: &str = "custom:memory-migrate";

/// Progress of one id range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeProgress {
    /// Every source memory of the range with an id at or below this was handled.
    pub through: Option<Uuid>,
    /// The range was read to its end.
    pub done: bool,
}

/// The stored checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The source and selection it belongs to, as shown in reports.
    pub source: String,
    pub ranges: Vec<RangeProgress>,
    pub updated_at: DateTime<Utc>,
}

/// Where the checkpoint of one source and selection lives.
#[derive(Debug, Clone)]
pub struct Slot {
    pub id: Uuid,
    pub source: String,
}

/// The slot for `source` (its masked URL, or its database and schema) and
/// the selection, so that runs over different selections keep apart.
pub fn slot(source: &str, selection: &str) -> Slot {
    let source = if selection.is_empty() {
        source.to_string()
    } else {
        format!("{source} ({selection})")
    };
    Slot {
        id: memory_backfill::checkpoint::slot_id(&format!("memory-migrate\0{source}")),
        source,
    }
}

/// Reads the checkpoint; `None` when no unfinished run left one.
///
/// # Errors
/// The client error of the search (a missing namespace is not an error).
pub async fn load(target: &Client, slot: &Slot) -> Result<Option<Checkpoint>, ClientError> {
    let req = SearchRequest {
        namespaces: vec![NAMESPACE.to_string()],
        limit: Some(100),
        ..SearchRequest::default()
    };
    let found = match target.search(&req).await {
        Ok(r) => r.memories,
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(found
        .into_iter()
        .find(|m| m.id == slot.id)
        .and_then(|m| serde_json::from_str::<Checkpoint>(&m.content).ok())
        .filter(|c| c.source == slot.source))
}

/// Stores the checkpoint (creating its namespace on first use).
///
/// # Errors
/// The client error of the write.
pub async fn save(
    target: &Client,
    slot: &Slot,
    ranges: &[RangeProgress],
) -> Result<(), ClientError> {
    let checkpoint = Checkpoint {
        source: slot.source.clone(),
        ranges: ranges.to_vec(),
        updated_at: Utc::now(),
    };
    let content = serde_json::to_string(&checkpoint).unwrap_or_default();
    let mut write = MemoryWrite::new(content, MemoryKind::Checkpoint, MemorySource::Runtime);
    write.id = Some(slot.id);
    match target.write_memory(NAMESPACE, &write).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => {
            target
                .upsert_namespace(
                    NAMESPACE,
                    &NamespaceUpsert {
                        kind: NamespaceKind::Custom,
                        expires_at: None,
                        metadata: Some(
                            serde_json::json!({"purpose": "memory-migrate checkpoints"}),
                        ),
                    },
                )
                .await?;
            target.write_memory(NAMESPACE, &write).await.map(drop)
        }
        Err(e) => Err(e),
    }
}

/// Deletes the checkpoint after a finished run, and its namespace when no
/// other checkpoint is left in it.
///
/// # Errors
/// The client error of a call (an absent checkpoint is not an error).
pub async fn clear(target: &Client, slot: &Slot) -> Result<(), ClientError> {
    match target.forget(slot.id, NAMESPACE).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    }
    let req = SearchRequest {
        namespaces: vec![NAMESPACE.to_string()],
        limit: Some(1),
        ..SearchRequest::default()
    };
    let left = target.search(&req).await?.memories;
    if left.is_empty() {
        match target.delete_namespace(NAMESPACE).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_differ_by_source_and_selection() {
        let a = slot("http://a:1/", "");
        assert_eq!(a.id, slot("http://a:1/", "").id);
        assert_ne!(a.id, slot("http://b:1/", "").id);
        assert_ne!(a.id, slot("http://a:1/", "-namespace=team:x").id);
        assert_ne!(
            a.id,
            memory_backfill::checkpoint::slot_id("http://a:1/"),
            "never a backfill slot"
        );
    }
}
