//! How values are stored in SQLite columns: timestamps as fixed-width RFC 3339
//! UTC text, JSON as text, embeddings as little-endian `f32` blobs, and the
//! mapping of a `memory_records` row back to a wire [`Memory`].

use crate::store::{StoreError, StoreResult};
use chrono::{DateTime, Datelike, SubsecRound, Utc};
use memory_contract::{Memory, Namespace};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

/// The columns every memory query selects, in the order [`memory_from_row`] reads them.
pub(super) const MEMORY_COLUMNS: &str =
    "r.id, r.namespace, r.content, r.kind, r.source, r.expires_at, r.propagation, r.pin, r.created_at";

/// The columns every namespace query selects, in the order [`namespace_from_row`] reads them.
pub(super) const NAMESPACE_COLUMNS: &str = "name, kind, expires_at, metadata, created_at";

/// The current time at the precision the store keeps (microseconds, like Postgres).
pub(super) fn now() -> DateTime<Utc> {
    Utc::now().round_subsecs(6)
}

/// Encodes a timestamp as `YYYY-MM-DDTHH:MM:SS.ffffffZ`. Every value has the
/// same width, so text order is time order.
///
/// # Errors
///
/// `BadRequest` naming `field` for a year outside 0000..=9999, which the
/// fixed-width form cannot hold.
pub(super) fn encode_time(field: &str, time: DateTime<Utc>) -> StoreResult<String> {
    let time = time.round_subsecs(6);
    if !(0..=9999).contains(&time.year()) {
        return Err(StoreError::BadRequest(format!(
            "{field}: {} is outside the years 0000 to 9999 that this store can hold",
            time.to_rfc3339()
        )));
    }
    Ok(time.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}

/// Encodes an optional timestamp; see [`encode_time`].
pub(super) fn encode_opt_time(
    field: &str,
    time: Option<DateTime<Utc>>,
) -> StoreResult<Option<String>> {
    time.map(|t| encode_time(field, t)).transpose()
}

fn decode_time(column: &str, text: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            StoreError::Internal(format!("stored {column} {text:?} is not a timestamp: {e}"))
        })
}

fn decode_opt_time(column: &str, text: Option<String>) -> StoreResult<Option<DateTime<Utc>>> {
    text.map(|t| decode_time(column, &t)).transpose()
}

/// Encodes opaque JSON as text; `None` stays NULL.
pub(super) fn encode_json(value: Option<&serde_json::Value>) -> Option<String> {
    value.map(|v| v.to_string())
}

fn decode_json(column: &str, text: Option<String>) -> StoreResult<Option<serde_json::Value>> {
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| StoreError::Internal(format!("stored {column} is not JSON: {e}")))
    })
    .transpose()
}

/// Encodes an embedding as consecutive little-endian `f32` values.
pub(super) fn encode_embedding(embedding: &[f32]) -> Vec<u8> {
    embedding.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Decodes a blob written by [`encode_embedding`].
pub(super) fn decode_embedding(blob: &[u8]) -> StoreResult<Vec<f32>> {
    if !blob.chunks_exact(4).remainder().is_empty() {
        return Err(StoreError::Internal(format!(
            "stored embedding has {} bytes, not a whole number of f32 values",
            blob.len()
        )));
    }
    Ok(blob
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Cosine similarity of a query and a stored embedding, both blobs as
/// [`encode_embedding`] writes them, computed in `f64`; `query_norm` is
/// [`norm`] of the query. `None` when the blobs differ in length, are not
/// whole `f32` values, or either vector has no direction (all zeros), where
/// cosine similarity is undefined. The SQL function `memory_cosine` (see
/// `cosine`) gives exactly this.
pub(super) fn cosine_of_blobs(query: &[u8], query_norm: f64, blob: &[u8]) -> Option<f64> {
    if blob.len() != query.len()
        || !blob.len().is_multiple_of(4)
        || blob.is_empty()
        || query_norm == 0.0
    {
        return None;
    }
    let value = |b: &[u8]| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let mut dot = 0.0f64;
    let mut norm_sq = 0.0f64;
    for (q, x) in query.chunks_exact(4).zip(blob.chunks_exact(4)) {
        let x = value(x);
        dot += value(q) * x;
        norm_sq += x * x;
    }
    if norm_sq == 0.0 {
        return None;
    }
    Some(dot / (query_norm * norm_sq.sqrt()))
}

/// Euclidean norm of an embedding, in `f64`.
pub(super) fn norm(embedding: &[f32]) -> f64 {
    embedding
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt()
}

fn parse_enum<T: std::str::FromStr>(column: &str, text: &str) -> StoreResult<T> {
    text.parse()
        .map_err(|_| StoreError::Internal(format!("stored {column} {text:?} is not a known value")))
}

fn get<'r, T>(row: &'r SqliteRow, column: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(column)
        .map_err(|e| StoreError::Internal(format!("reading column {column}: {e}")))
}

/// A search candidate: where its row is, and what fusion orders by.
#[derive(Clone)]
pub(super) struct Candidate {
    pub seq: i64,
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
}

/// A [`Candidate`] from a row selecting `r.seq, r.id, r.created_at`.
pub(super) fn candidate_from_row(row: &SqliteRow) -> StoreResult<Candidate> {
    let id: String = get(row, "id")?;
    let created_at: String = get(row, "created_at")?;
    Ok(Candidate {
        seq: get(row, "seq")?,
        id: Uuid::parse_str(&id)
            .map_err(|e| StoreError::Internal(format!("stored id {id:?} is not a UUID: {e}")))?,
        created_at: decode_time("created_at", &created_at)?,
    })
}

/// A `memory_records` row selected with [`MEMORY_COLUMNS`], without score.
pub(super) fn memory_from_row(row: &SqliteRow) -> StoreResult<Memory> {
    let id: String = get(row, "id")?;
    let kind: String = get(row, "kind")?;
    let source: String = get(row, "source")?;
    let created_at: String = get(row, "created_at")?;
    Ok(Memory {
        id: Uuid::parse_str(&id)
            .map_err(|e| StoreError::Internal(format!("stored id {id:?} is not a UUID: {e}")))?,
        namespace: get(row, "namespace")?,
        content: get(row, "content")?,
        kind: parse_enum("kind", &kind)?,
        source: parse_enum("source", &source)?,
        expires_at: decode_opt_time("expires_at", get(row, "expires_at")?)?,
        propagation: decode_json("propagation", get(row, "propagation")?)?,
        pin: get::<i64>(row, "pin")? != 0,
        created_at: decode_time("created_at", &created_at)?,
        score: None,
        embedding: None,
    })
}

/// What the `checksum` extension digests of a `memory_records` row selected
/// as `r.id, r.namespace, r.content, r.created_at`, borrowed from the row.
pub(super) struct ChecksumFields<'r> {
    pub id: Uuid,
    pub namespace: &'r str,
    pub content: &'r str,
    created_at: &'r str,
}

impl<'r> ChecksumFields<'r> {
    pub fn from_row(row: &'r SqliteRow) -> StoreResult<Self> {
        // Ids are stored as hyphenated text; parsing (rather than digesting
        // the stored text) gives the canonical lowercase form the wire and
        // the digest use, whatever case a row was written in.
        let id: &str = get(row, "id")?;
        Ok(ChecksumFields {
            id: Uuid::parse_str(id).map_err(|e| {
                StoreError::Internal(format!("stored id {id:?} is not a UUID: {e}"))
            })?,
            namespace: get(row, "namespace")?,
            content: get(row, "content")?,
            created_at: get(row, "created_at")?,
        })
    }

    /// `created_at` as the wire returns it (stored text at microsecond
    /// precision), so its digest uses the very microseconds clients see.
    pub fn created_at(&self) -> StoreResult<DateTime<Utc>> {
        decode_time("created_at", self.created_at)
    }
}

/// A `memory_namespaces` row selected with [`NAMESPACE_COLUMNS`].
pub(super) fn namespace_from_row(row: &SqliteRow) -> StoreResult<Namespace> {
    let kind: String = get(row, "kind")?;
    let created_at: String = get(row, "created_at")?;
    Ok(Namespace {
        name: get(row, "name")?,
        kind: parse_enum("kind", &kind)?,
        expires_at: decode_opt_time("expires_at", get(row, "expires_at")?)?,
        metadata: decode_json("metadata", get(row, "metadata")?)?,
        created_at: decode_time("created_at", &created_at)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn encoded_times_have_one_width_and_sort_in_time_order() {
        let early = Utc.with_ymd_and_hms(999, 1, 2, 3, 4, 5).unwrap();
        let late = Utc.with_ymd_and_hms(2026, 11, 26, 8, 0, 0).unwrap()
            + chrono::TimeDelta::microseconds(7);
        let a = encode_time("t", early).unwrap();
        let b = encode_time("t", late).unwrap();
        assert_eq!(a, "0999-01-02T03:04:05.000000Z");
        assert_eq!(b, "2026-11-26T08:00:00.000007Z");
        assert!(a < b);
        assert_eq!(decode_time("t", &b).unwrap(), late);
    }

    #[test]
    fn times_beyond_year_9999_are_refused() {
        let far = Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap();
        assert!(
            matches!(encode_time("expires_at", far), Err(StoreError::BadRequest(m)) if m.starts_with("expires_at"))
        );
    }

    #[test]
    fn cosine_of_parallel_opposite_and_zero_vectors() {
        let q = [1.0f32, 2.0, 3.0];
        let n = norm(&q);
        assert_eq!(
            decode_embedding(&encode_embedding(&[2.0, -4.5, 6.0])).unwrap(),
            vec![2.0, -4.5, 6.0]
        );
        assert!(decode_embedding(&[0, 1, 2]).is_err());
        let same = encode_embedding(&[2.0, 4.0, 6.0]);
        let opposite = encode_embedding(&[-1.0, -2.0, -3.0]);
        let zero = encode_embedding(&[0.0, 0.0, 0.0]);
        let q = encode_embedding(&q);
        assert!((cosine_of_blobs(&q, n, &same).unwrap() - 1.0).abs() < 1e-12);
        assert!((cosine_of_blobs(&q, n, &opposite).unwrap() + 1.0).abs() < 1e-12);
        assert_eq!(cosine_of_blobs(&q, n, &zero), None);
        assert_eq!(cosine_of_blobs(&q, n, &encode_embedding(&[1.0])), None);
        assert_eq!(cosine_of_blobs(&q, 0.0, &same), None);
        assert_eq!(cosine_of_blobs(&q[..5], n, &same[..5]), None);
    }
}
