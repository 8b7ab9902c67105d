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
//!
//! The namespace is the backfill's own, not migrated data: the dry-run and
//! apply summaries name it, verify leaves its memories out of the plugin's
//! rows, `-apply` keeps it, and `-forget-checkpoint` ([`forget`]) removes it
//! after the cutover.

use crate::plugin::{self, Plugin};
use chrono::{DateTime, Utc};
use memory_client::{Client, ClientError};
use memory_contract::{
    Memory, MemoryKind, MemorySource, MemoryWrite, NamespaceKind, NamespaceUpsert, SearchRequest,
};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::fmt::{self, Write as _};
use std::time::Instant;
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

/// Every memory of the checkpoint namespace (one checkpoint per legacy
/// table migrated into this plugin), read by a v1 search, so at most 100;
/// empty when the namespace does not exist.
///
/// # Errors
///
/// The client error of the search (a missing namespace is not an error).
pub async fn stored(client: &Client) -> Result<Vec<Memory>, ClientError> {
    let req = SearchRequest {
        namespaces: vec![CHECKPOINT_NAMESPACE.to_string()],
        limit: Some(100),
        ..SearchRequest::default()
    };
    match client.search(&req).await {
        Ok(r) => Ok(r.memories),
        Err(e) if e.is_not_found() => Ok(Vec::new()),
        Err(e) => Err(e),
    }
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
    Ok(stored(&plugin.client)
        .await?
        .into_iter()
        .find(|m| m.id == slot.id)
        .and_then(|m| serde_json::from_str::<Checkpoint>(&m.content).ok()))
}

/// The report of `-forget-checkpoint`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ForgetReport {
    pub mode: &'static str,
    /// The namespace holding checkpoints.
    pub checkpoint_namespace: &'static str,
    /// This legacy table's checkpoint memory.
    pub checkpoint_id: Uuid,
    /// Which legacy table (database/schema).
    pub source: String,
    /// A checkpoint was stored and is now removed.
    pub removed: bool,
    /// What it said: the cursor, and whether the table was complete.
    pub cursor: Option<Uuid>,
    pub complete: Option<bool>,
    /// The namespace was deleted (it held nothing else).
    pub namespace_deleted: bool,
    /// Memories left in the namespace (other legacy tables' checkpoints).
    pub others_left: u64,
    pub warnings: Vec<String>,
    pub errors: u64,
    pub error_messages: Vec<String>,
    pub elapsed_seconds: f64,
}

impl ForgetReport {
    /// 1 when the plugin refused or failed a step.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.errors > 0)
    }

    fn error(&mut self, what: &str, e: &ClientError) {
        self.errors += 1;
        self.error_messages
            .push(format!("{what}: {}", plugin::one_line(e)));
    }
}

impl fmt::Display for ForgetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let _ = writeln!(out, "memory-backfill forget-checkpoint summary");
        let _ = writeln!(
            out,
            "  checkpoint memory:  {} in {} (legacy table {})",
            self.checkpoint_id, self.checkpoint_namespace, self.source
        );
        let state = match (self.removed, self.complete) {
            (true, Some(true)) => "removed (it recorded a complete table)".to_string(),
            (true, _) => format!(
                "removed (it recorded an incomplete table, cursor {})",
                self.cursor
                    .map_or_else(|| "none".to_string(), |c| c.to_string())
            ),
            (false, _) => "none stored".to_string(),
        };
        let _ = writeln!(out, "  checkpoint:         {state}");
        let _ = writeln!(
            out,
            "  namespace:          {}",
            if self.namespace_deleted {
                "deleted (it held nothing else)".to_string()
            } else if self.others_left > 0 {
                format!(
                    "kept ({} other checkpoint memories in it)",
                    self.others_left
                )
            } else {
                "absent".to_string()
            }
        );
        for w in &self.warnings {
            let _ = writeln!(out, "  warning:            {w}");
        }
        let _ = writeln!(out, "  errors:             {}", self.errors);
        for e in &self.error_messages {
            let _ = writeln!(out, "    error: {e}");
        }
        let _ = writeln!(out, "  elapsed:            {:.1} s", self.elapsed_seconds);
        f.write_str(&out)
    }
}

/// `-forget-checkpoint`: removes this legacy table's checkpoint from the
/// plugin, and the checkpoint namespace when nothing else is left in it.
/// For after the cutover: a later `-apply` passes over the whole table
/// again (idempotent, but it rewrites every row).
///
/// # Errors
///
/// [`IdentityError`] when the legacy table cannot be identified; plugin
/// failures are counted in the report.
pub async fn forget(pool: &PgPool, plugin: &Plugin) -> Result<ForgetReport, IdentityError> {
    let started = Instant::now();
    let slot = CheckpointSlot::for_legacy(pool).await?;
    let mut report = ForgetReport {
        mode: "forget-checkpoint",
        checkpoint_namespace: CHECKPOINT_NAMESPACE,
        checkpoint_id: slot.id,
        source: slot.source.clone(),
        ..ForgetReport::default()
    };
    let client = &plugin.client;
    let before = match stored(client).await {
        Ok(found) => found,
        Err(e) => {
            report.error("cannot read the checkpoint namespace", &e);
            report.elapsed_seconds = started.elapsed().as_secs_f64();
            return Ok(report);
        }
    };
    if let Some(mine) = before.iter().find(|m| m.id == slot.id) {
        let cp = serde_json::from_str::<Checkpoint>(&mine.content).ok();
        report.cursor = cp.as_ref().and_then(|c| c.cursor);
        report.complete = cp.as_ref().map(|c| c.complete);
        match client.forget(slot.id, CHECKPOINT_NAMESPACE).await {
            Ok(()) => report.removed = true,
            Err(e) if e.is_not_found() => {}
            Err(e) => report.error("cannot forget the checkpoint", &e),
        }
        if report.removed && report.complete != Some(true) {
            report.warnings.push(
                "the checkpoint did not record a complete table: the next -apply starts from the first row"
                    .into(),
            );
        }
    }
    if report.errors == 0 {
        let left = if report.removed {
            stored(client).await
        } else {
            Ok(before)
        };
        match left {
            Ok(left) if left.is_empty() => {
                match client.delete_namespace(CHECKPOINT_NAMESPACE).await {
                    Ok(()) => report.namespace_deleted = true,
                    Err(e) if e.is_not_found() => {}
                    Err(e) => report.error("cannot delete the checkpoint namespace", &e),
                }
            }
            Ok(left) => report.others_left = left.len() as u64,
            Err(e) => report.error("cannot read the checkpoint namespace", &e),
        }
    }
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    Ok(report)
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
