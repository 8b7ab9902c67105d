//! The batch write: many memories per statement, each statement its own
//! transaction.
//!
//! Each statement inside an explicit transaction opens a statement
//! savepoint, and at every savepoint FTS5 writes what it has gathered as a
//! new segment of the index (`fts5SavepointMethod` flushes to disk). One
//! upsert per memory thus wrote one tiny segment per memory, and FTS5 then
//! spent most of a batch merging them; the savepoint also copied every page
//! the statement changed into a statement journal first. Here the memories
//! of a batch go in as one JSON array expanded by `json_each` inside one
//! `INSERT ... SELECT`, run as a transaction of its own (no savepoint, no
//! statement journal): the index gains one segment per batch, and the
//! connection's thread is crossed a few times per batch instead of once per
//! memory. A batch normally is one such statement, so it is still written
//! whole or not at all; one that must be cut (see below) commits piece by
//! piece, in order.
//!
//! Semantics are those of one upsert per memory, in input order:
//! - every check of an item's own fields (dimension, timestamps) runs
//!   first, per item, exactly as for a single write;
//! - the statement writes only the items whose namespace exists and is
//!   live, in the same read of the database as the write (no statement of
//!   its own before it);
//! - rows are inserted in input order (`ORDER BY j.key`), so they take
//!   their row keys in that order, as before;
//! - an id appears at most once per statement: a repeated id starts a new
//!   statement, so the later write applies on top of the earlier one;
//! - the upsert's WHERE leaves a row of another namespace untouched, as
//!   for a single write; rather than answering a row per item written (each
//!   would cross to the async side on its own), the statement's count of
//!   rows written is checked, and only when it falls short does the
//!   statement run again under the write lock (`BEGIN IMMEDIATE`; on the
//!   same ids and values it leaves the rows the first run wrote as they
//!   were), followed there by a look at the chunk's namespaces and then
//!   ids: an item whose namespace is missing or expired answers as a
//!   single write would (`NotFound`), one whose id lives in another
//!   namespace answers `Conflict`;
//! - should a statement fail anyway, its items are written one by one, each
//!   in its own transaction, so that only the failing one fails; so is text
//!   holding a NUL character, which a JSON string would not carry through
//!   unchanged.

use super::{codec, db_error, KnownNamespaces, NamespaceState, SqliteStore};
use crate::store::{StoreError, StoreResult};
use memory_contract::{BatchWrite, MemoryWrite, WriteAck};
use sqlx::{Connection, SqliteConnection};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// The ids among a JSON array of `[id, namespace]` pairs that live in a
/// namespace other than their pair's, as one JSON array.
const CONFLICTS_SQL: &str = "SELECT json_group_array(r.id)
             FROM json_each(?1) AS j
             JOIN memory_records r ON r.id = j.value ->> 0
             WHERE r.namespace <> j.value ->> 1";

/// The upsert of [`super::WRITE_MEMORY_SQL`] for a JSON array of items, each
/// `[id, namespace, content, kind, source, expires_at, propagation, pin,
/// embedding (hex), created_at]`, written only where the item's namespace
/// exists and is live. `?2` is now; `?3` says whether every item of the
/// array carries its own `created_at` (a statement never mixes the two
/// cases: a rewrite keeps the row's creation time only when none is given).
pub const WRITE_BATCH_SQL: &str = "INSERT INTO memory_records
                 (id, namespace, content, kind, source, expires_at, propagation, pin, embedding,
                  created_at)
             SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4,
                    j.value ->> 5, j.value ->> 6, j.value ->> 7, unhex(j.value ->> 8),
                    coalesce(j.value ->> 9, ?2)
             FROM json_each(?1) AS j
             WHERE EXISTS (SELECT 1 FROM memory_namespaces n
                           WHERE n.name = j.value ->> 1
                             AND (n.expires_at IS NULL OR n.expires_at > ?2))
             ORDER BY j.key
             ON CONFLICT (id) DO UPDATE SET
                 content = excluded.content,
                 kind = excluded.kind,
                 source = excluded.source,
                 expires_at = excluded.expires_at,
                 propagation = excluded.propagation,
                 pin = excluded.pin,
                 embedding = excluded.embedding,
                 created_at = CASE
                     WHEN ?3 THEN excluded.created_at
                     WHEN memory_records.expires_at IS NOT NULL
                          AND memory_records.expires_at <= ?2 THEN ?2
                     ELSE memory_records.created_at END
             WHERE memory_records.namespace = excluded.namespace";

/// Most JSON text one statement carries; batches with large embeddings are
/// cut into several statements rather than held as one huge string.
const MAX_STATEMENT_BYTES: usize = 4 << 20;

/// One item that passed its checks, as the statement's JSON array holds it.
type Row<'a> = (
    String,
    &'a str,
    &'a str,
    &'static str,
    &'static str,
    Option<String>,
    Option<String>,
    i64,
    Option<String>,
    Option<String>,
);

/// An item ready to write, and where its result goes.
struct Ready<'a> {
    slot: usize,
    id: Uuid,
    namespace: &'a str,
    row: Row<'a>,
    bytes: usize,
    /// Written by the single-write statement, in a chunk of its own.
    alone: bool,
}

/// Consecutive items written by one statement.
struct Chunk<'a> {
    items: Vec<Ready<'a>>,
    ids: HashSet<Uuid>,
    created_at_given: bool,
    bytes: usize,
}

impl<'a> Chunk<'a> {
    fn new(created_at_given: bool) -> Self {
        Chunk {
            items: Vec::new(),
            ids: HashSet::new(),
            created_at_given,
            bytes: 0,
        }
    }

    fn one_by_one(&self) -> bool {
        self.items.iter().any(|i| i.alone)
    }

    fn takes(&self, item: &Ready<'a>) -> bool {
        self.items.is_empty()
            || (!item.alone
                && !self.one_by_one()
                && !self.ids.contains(&item.id)
                && self.created_at_given == item.row.9.is_some()
                && self.bytes + item.bytes <= MAX_STATEMENT_BYTES)
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// Reads the state of every namespace of `names`, in one statement.
async fn read_namespaces(
    conn: &mut SqliteConnection,
    names: &[&str],
    now: &str,
) -> StoreResult<KnownNamespaces> {
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT name, expires_at FROM memory_namespaces
         WHERE name IN (SELECT value FROM json_each(?1))",
    )
    .bind(super::json_list(names))
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| db_error("reading namespaces", e))?;
    let mut known: KnownNamespaces = names
        .iter()
        .map(|n| (n.to_string(), NamespaceState::Absent))
        .collect();
    for (name, expires_at) in rows {
        let state = match expires_at {
            Some(at) if at.as_str() <= now => NamespaceState::Expired,
            _ => NamespaceState::Live,
        };
        known.insert(name, state);
    }
    Ok(known)
}

impl SqliteStore {
    /// Writes `writes` on the writer connection, outside any transaction
    /// (each statement is one); one result per item, in input order.
    pub(super) async fn write_batch_on(
        &self,
        conn: &mut SqliteConnection,
        writes: &[BatchWrite],
        now: &str,
    ) -> Vec<StoreResult<WriteAck>> {
        let mut results: Vec<Option<StoreResult<WriteAck>>> = Vec::with_capacity(writes.len());
        let mut chunks: Vec<Chunk<'_>> = Vec::new();
        for (slot, item) in writes.iter().enumerate() {
            match self.ready(slot, item) {
                Ok(ready) => {
                    if !chunks.last().is_some_and(|c| c.takes(&ready)) {
                        chunks.push(Chunk::new(ready.row.9.is_some()));
                    }
                    let chunk = chunks.last_mut().expect("a chunk was just pushed");
                    chunk.ids.insert(ready.id);
                    chunk.bytes += ready.bytes;
                    chunk.items.push(ready);
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        for chunk in chunks {
            let outcome = if chunk.one_by_one() {
                Err(StoreError::Internal("written one by one".into()))
            } else {
                write_chunk(conn, &chunk, now).await
            };
            match outcome {
                Ok(mut refused) => {
                    for item in &chunk.items {
                        results[item.slot] = Some(match refused.remove(&item.id) {
                            Some(e) => Err(e),
                            None => Ok(WriteAck {
                                id: item.id,
                                namespace: item.namespace.to_string(),
                            }),
                        });
                    }
                }
                Err(e) => {
                    if !chunk.one_by_one() {
                        tracing::warn!(error = %e, "batch statement failed; writing its items one by one");
                    }
                    for item in &chunk.items {
                        let source = &writes[item.slot];
                        let mut write = source.write.clone();
                        write.id = Some(item.id);
                        results[item.slot] =
                            Some(self.write_alone(conn, &source.namespace, &write, now).await);
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(StoreError::Internal("batch item without a result".into())))
            })
            .collect()
    }

    /// One item in a transaction of its own, as a single write.
    async fn write_alone(
        &self,
        conn: &mut SqliteConnection,
        namespace: &str,
        write: &MemoryWrite,
        now: &str,
    ) -> StoreResult<WriteAck> {
        let mut tx = conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| db_error("starting write", e))?;
        let ack = self
            .write_in_tx(&mut tx, namespace, write, now, &mut KnownNamespaces::new())
            .await?;
        tx.commit()
            .await
            .map_err(|e| db_error("committing memory", e))?;
        Ok(ack)
    }

    /// The checks of a single write, then the item as a JSON row.
    fn ready<'a>(&self, slot: usize, item: &'a BatchWrite) -> StoreResult<Ready<'a>> {
        if let Some(embedding) = &item.write.embedding {
            self.check_dimension("embedding", embedding)?;
        }
        let id = item.write.id.unwrap_or_else(crate::store::fresh_id);
        let row = json_row(id, item)?;
        let (_, namespace, content, _, _, _, propagation, _, embedding, _) = &row;
        let bytes = content.len()
            + namespace.len()
            + embedding.as_ref().map_or(0, String::len)
            + propagation.as_ref().map_or(0, String::len)
            + 160;
        Ok(Ready {
            slot,
            id,
            namespace: &item.namespace,
            row,
            bytes,
            alone: item.write.content.contains('\0'),
        })
    }
}

/// `item` with id `id` as a row of [`WRITE_BATCH_SQL`]'s array (its
/// timestamps checked).
fn json_row(id: Uuid, item: &BatchWrite) -> StoreResult<Row<'_>> {
    let write = &item.write;
    Ok((
        id.to_string(),
        &item.namespace,
        &write.content,
        write.kind.as_str(),
        write.source.as_str(),
        codec::encode_opt_time("expires_at", write.expires_at)?,
        codec::encode_json(write.propagation.as_ref()),
        i64::from(write.pin.unwrap_or(false)),
        write
            .embedding
            .as_deref()
            .map(|e| hex(&codec::encode_embedding(e))),
        codec::encode_opt_time("created_at", write.created_at)?,
    ))
}

/// The array `?1` of [`WRITE_BATCH_SQL`] for `items` (each written with its
/// own `id`, or a new one), as the store builds it. Public so that
/// benchmarks run the store's statement on the store's rows.
///
/// # Errors
///
/// `BadRequest` for a timestamp out of range.
pub fn write_batch_array(items: &[BatchWrite]) -> StoreResult<String> {
    let rows = items
        .iter()
        .map(|item| json_row(item.write.id.unwrap_or_else(crate::store::fresh_id), item))
        .collect::<StoreResult<Vec<_>>>()?;
    serde_json::to_string(&rows).map_err(|e| StoreError::Internal(format!("encoding a batch: {e}")))
}

fn parse_ids(json: &str) -> StoreResult<HashSet<Uuid>> {
    Ok(serde_json::from_str::<Vec<Uuid>>(json)
        .map_err(|e| StoreError::Internal(format!("reading conflicting ids: {e}")))?
        .into_iter()
        .collect())
}

/// Writes one chunk; the items it left alone, by id, with their answers:
/// those whose namespace is missing or expired, then those whose id lives
/// in another namespace.
async fn write_chunk(
    conn: &mut SqliteConnection,
    chunk: &Chunk<'_>,
    now: &str,
) -> StoreResult<HashMap<Uuid, StoreError>> {
    let rows: Vec<&Row<'_>> = chunk.items.iter().map(|i| &i.row).collect();
    let json = serde_json::to_string(&rows)
        .map_err(|e| StoreError::Internal(format!("encoding a batch: {e}")))?;
    let written = run_chunk(&mut *conn, &json, now, chunk.created_at_given).await?;
    if written == chunk.items.len() {
        return Ok(HashMap::new());
    }
    // The statement left some items out: their namespace is not live, or
    // (the upsert's WHERE) their id lives in another namespace. Which ones
    // is read under the write lock, after the statement has run again
    // there, so that another process changing a namespace in between
    // cannot mislead the answers; run again on the same ids and values, the
    // upsert leaves what the first run wrote as it was.
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(|e| db_error("starting write", e))?;
    let written = run_chunk(&mut tx, &json, now, chunk.created_at_given).await?;
    let refused = left_out(&mut tx, chunk, now, written).await?;
    if written + refused.len() != chunk.items.len() {
        return Err(StoreError::Internal(format!(
            "a batch statement wrote {written} of {} items and {} were found left out",
            chunk.items.len(),
            refused.len()
        )));
    }
    tx.commit()
        .await
        .map_err(|e| db_error("committing a batch", e))?;
    Ok(refused)
}

/// [`WRITE_BATCH_SQL`] on the array `json`; the rows it wrote.
async fn run_chunk(
    conn: &mut SqliteConnection,
    json: &str,
    now: &str,
    created_at_given: bool,
) -> StoreResult<usize> {
    let written = sqlx::query(WRITE_BATCH_SQL)
        .bind(json)
        .bind(now)
        .bind(created_at_given)
        .execute(&mut *conn)
        .await
        .map_err(|e| db_error("writing a batch", e))?
        .rows_affected();
    Ok(usize::try_from(written).unwrap_or(usize::MAX))
}

/// The items of `chunk` that a statement writing `written` of them left
/// out, with their answers (see [`write_chunk`]).
async fn left_out(
    conn: &mut SqliteConnection,
    chunk: &Chunk<'_>,
    now: &str,
    written: usize,
) -> StoreResult<HashMap<Uuid, StoreError>> {
    let names: Vec<&str> = chunk
        .items
        .iter()
        .map(|i| i.namespace)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let known = read_namespaces(conn, &names, now).await?;
    let mut refused = HashMap::new();
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for item in &chunk.items {
        let state = known
            .get(item.namespace)
            .copied()
            .unwrap_or(NamespaceState::Absent);
        match state.require(item.namespace) {
            Ok(()) => pairs.push((item.row.0.as_str(), item.namespace)),
            Err(e) => {
                refused.insert(item.id, e);
            }
        }
    }
    if written + refused.len() == chunk.items.len() {
        return Ok(refused);
    }
    let pairs = serde_json::to_string(&pairs)
        .map_err(|e| StoreError::Internal(format!("encoding a batch: {e}")))?;
    let found: String = sqlx::query_scalar(CONFLICTS_SQL)
        .bind(pairs)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| db_error("looking up batch ids", e))?;
    for id in parse_ids(&found)? {
        refused.insert(id, super::conflict(id));
    }
    Ok(refused)
}
