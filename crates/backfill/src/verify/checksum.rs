//! The `checksum` method: `-verify -all` through the `checksum` extension,
//! digests per id bucket on both sides, then a row-by-row merge of the
//! buckets that differ.
//!
//! Both sides digest the same thing (see `memory_contract::checksum`): per
//! bucket of ids sharing their first three (or, on large tables, four) hex
//! digits, the count and the XOR of the XXH3-128 hash of each memory's id,
//! namespace, content and, when the plugin keeps it, `created_at`. The
//! plugin answers for all its live memories in one request. The legacy
//! table is read once, in physical order (two streams over halves of its
//! blocks, nothing sorted). A row apply plainly writes is hashed straight
//! from the bytes Postgres sent; every other row goes through apply's own
//! rules: a skip is listed, a row apply writes is digested under the
//! namespace apply gives it. A
//! bucket whose count and digest agree holds exactly what apply would have
//! written. A bucket that differs is merged row by row, as the `scan`
//! method does, so every mismatch gets its kind and excerpt. A row whose
//! digest cannot be predicted (no `created_at` in the legacy table while
//! the plugin keeps one: the plugin stamped its own) sends its bucket to
//! the merge too.
//!
//! The backfill's own checkpoint memories (namespace
//! `custom:memory-backfill`) are taken out of the plugin's buckets first:
//! they are not migrated rows, and would otherwise send their buckets to
//! the merge.
//!
//! When many buckets differ (a plugin that also holds other data, or a run
//! far from parity) the whole id space is merged by the `scan` method
//! instead, which is cheaper than many small merges.

use super::compare::may_be_too_large_len;
use super::report::{VerifyError, VerifyReport};
use super::scan::{self, judge, IdRange, Placed, WholeTable};
use super::selection::estimated_rows;
use super::task::AbortOnDrop;
use crate::checkpoint::{self, CHECKPOINT_NAMESPACE};
use crate::legacy::{self, LegacyError};
use crate::mapping::{Carry, Scope};
use crate::plugin;
use crate::progress::Counters;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use memory_contract::checksum::{
    bucket_index, bucket_name, bucket_range, memory_digest, memory_digest_bytes, parse_digest,
    Accumulator,
};
use memory_contract::{limits, Memory};
use sqlx::postgres::PgRow;
use sqlx::PgPool;
use sqlx::Row;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use uuid::Uuid;

/// Hex digits per bucket: 4,096 buckets (their sums stay in the CPU's
/// cache), about 250 rows each at a million rows, so that a difference
/// costs the merge of a few hundred rows; 65,536 buckets above
/// [`LARGE_TABLE_ROWS`].
fn prefix_for(estimated_rows: f64) -> u32 {
    if estimated_rows > LARGE_TABLE_ROWS {
        limits::CHECKSUM_PREFIX_MAX
    } else {
        3
    }
}

/// Legacy rows above which buckets get one more hex digit.
const LARGE_TABLE_ROWS: f64 = 8_000_000.0;

/// Above this share of differing buckets (1 in N), the whole id space is
/// merged instead.
const FALLBACK_SHARE: usize = 16;

/// Fewest differing buckets that can make the check fall back to a full
/// merge.
const FALLBACK_MIN: usize = 256;

/// Least time the plugin gets to answer its checksums: it reads its whole
/// table (about a million memories a second on two cores), far longer than
/// the per-request timeout suits on a large store.
const CHECKSUM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Legacy streams read at once, each over its share of the table's blocks.
const LEGACY_STREAMS: i64 = 2;

/// Rows between two progress updates.
const PROGRESS_EVERY: u64 = 1000;

/// Count and digest per bucket index.
type Buckets = BTreeMap<u32, (u64, u128)>;

/// What the legacy side found: its digests, the buckets holding rows whose
/// digest cannot be predicted, and the skips.
struct LegacySide {
    buckets: Accumulator,
    unsure: BTreeSet<u32>,
    skips: VerifyReport,
}

impl LegacySide {
    fn new(prefix: u32) -> LegacySide {
        LegacySide {
            buckets: Accumulator::new(prefix),
            unsure: BTreeSet::new(),
            skips: VerifyReport::default(),
        }
    }

    fn absorb(&mut self, part: LegacySide) {
        self.buckets.merge(&part.buckets);
        self.unsure.extend(part.unsure);
        self.skips.absorb(part.skips);
    }
}

/// Checks every legacy row: digests first, then the buckets that differ.
pub(super) async fn check(table: &WholeTable<'_>) -> Result<VerifyReport, VerifyError> {
    let WholeTable {
        pool,
        plugin,
        carry,
        concurrency,
        ..
    } = *table;
    let prefix = prefix_for(estimated_rows(pool).await.unwrap_or(0.0));
    let mut plugin_side = {
        let client = plugin.client.clone();
        let display = plugin.display.clone();
        AbortOnDrop(tokio::spawn(async move {
            let answer = client
                .memory_checksums_within(prefix, carry.created_at, CHECKSUM_TIMEOUT)
                .await
                .map_err(|e| {
                    format!(
                        "the plugin at {display} did not give its checksums: {}",
                        plugin::one_line(&e)
                    )
                })?;
            let buckets = wire_buckets(answer, prefix)?;
            // Unreadable, they stay in: their buckets are merged, which
            // leaves them out as well.
            let own = checkpoint::stored(&client).await.unwrap_or_default();
            Ok(without_own(buckets, &own, prefix, carry.created_at))
        }))
    };
    let legacy_side = legacy_side(table, prefix).await?;
    let plugin_buckets = match (&mut plugin_side.0).await {
        Ok(Ok(b)) => b,
        Ok(Err(reason)) => return fall_back(table, reason).await,
        Err(e) => return fall_back(table, format!("the checksum task failed: {e}")).await,
    };

    let mut report = VerifyReport::default();
    let mut differing: Vec<u32> = Vec::new();
    let mut matched_rows = 0u64;
    let keys: BTreeSet<u32> = legacy_side
        .buckets
        .iter()
        .map(|(index, _, _)| index)
        .chain(plugin_buckets.keys().copied())
        .chain(legacy_side.unsure.iter().copied())
        .collect();
    for &key in &keys {
        let legacy = legacy_side.buckets.get(key);
        let plugin = plugin_buckets.get(&key).copied().unwrap_or((0, 0));
        if legacy_side.unsure.contains(&key) || legacy != plugin {
            differing.push(key);
        } else {
            matched_rows += legacy.0;
        }
    }
    let total = keys.len();
    if differing.len() > FALLBACK_MIN.max(total / FALLBACK_SHARE) {
        let reason = format!(
            "{} of {} id buckets differ, so every row is merged instead",
            differing.len(),
            total
        );
        return fall_back(table, reason).await;
    }
    report.method = "checksum";
    report.rows_checked = matched_rows;
    report.rows_matched = matched_rows;
    report.absorb(legacy_side.skips);

    let mut merges = futures::stream::iter(differing)
        .map(|key| {
            let (low, high) =
                bucket_range(&bucket_name(key, prefix)).expect("a bucket index names a bucket");
            let range = IdRange::between(low, high);
            AbortOnDrop(tokio::spawn(table.half(range, 1, 1).merge()))
        })
        .buffer_unordered(concurrency.max(1));
    while let Some(done) = merges.next().await {
        match done {
            Ok(part) => {
                let mut part = part?;
                // Its skips were listed by the legacy side already.
                part.skipped.clear();
                part.skipped_rows = Default::default();
                report.absorb(part);
            }
            Err(e) => report.error(format!("a verify task failed: {e}")),
        }
    }
    Ok(report)
}

/// The whole id space merged by the `scan` method, saying why.
async fn fall_back(table: &WholeTable<'_>, reason: String) -> Result<VerifyReport, VerifyError> {
    let mut report = scan::check(table).await?;
    report.warnings.push(format!("checksum method: {reason}"));
    report.method = "scan";
    Ok(report)
}

/// `buckets` without the backfill's own memories among `own` (those of the
/// checkpoint namespace), digested as the plugin digests them.
fn without_own(mut buckets: Buckets, own: &[Memory], prefix: u32, created_at: bool) -> Buckets {
    for m in own.iter().filter(|m| m.namespace == CHECKPOINT_NAMESPACE) {
        let index = bucket_index(m.id, prefix);
        let digest = memory_digest(
            m.id,
            &m.namespace,
            &m.content,
            created_at.then_some(m.created_at),
        );
        if let Some(bucket) = buckets.get_mut(&index) {
            bucket.0 = bucket.0.saturating_sub(1);
            bucket.1 ^= digest;
            if bucket.0 == 0 {
                buckets.remove(&index);
            }
        }
    }
    buckets
}

/// The plugin's buckets by index; a malformed answer is refused.
fn wire_buckets(answer: memory_contract::ChecksumResponse, prefix: u32) -> Result<Buckets, String> {
    let bad = |what: String| format!("the plugin's checksum answer is malformed: {what}");
    if answer.prefix != prefix || answer.buckets.len() > 1 << (4 * prefix) {
        return Err(bad(format!(
            "{} buckets of prefix {}",
            answer.buckets.len(),
            answer.prefix
        )));
    }
    let mut out = Buckets::new();
    for b in answer.buckets {
        let index = (b.prefix.len() == prefix as usize
            && b.prefix.bytes().all(|c| c.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(&b.prefix, 16).ok())
        .flatten()
        .ok_or_else(|| bad(format!("bucket {:?}", b.prefix)))?;
        let digest =
            parse_digest(&b.digest).ok_or_else(|| bad(format!("digest {:?}", b.digest)))?;
        if out.insert(index, (b.count, digest)).is_some() {
            return Err(bad(format!("bucket {:?} twice", b.prefix)));
        }
    }
    Ok(out)
}

/// Reads the whole table in [`LEGACY_STREAMS`] streams over its blocks.
async fn legacy_side(table: &WholeTable<'_>, prefix: u32) -> Result<LegacySide, VerifyError> {
    let WholeTable {
        pool,
        ref places,
        carry,
        counters,
        ..
    } = *table;
    let blocks: i64 = sqlx::query_scalar(
        "SELECT (pg_relation_size('agent_memories') / current_setting('block_size')::int8)::int8",
    )
    .fetch_one(pool)
    .await
    .map_err(LegacyError::query(
        "failed to read the size of agent_memories",
    ))?;
    let share = blocks / LEGACY_STREAMS + 1;
    let streams: Vec<_> = (0..LEGACY_STREAMS)
        .map(|i| {
            // The last stream has no upper bound, so that nothing is left
            // out if the table grew since its size was read.
            let from = format!("({},0)", i * share);
            let to = (i + 1 < LEGACY_STREAMS).then(|| format!("({},0)", (i + 1) * share));
            let job = Stream {
                pool: pool.clone(),
                places: places.clone(),
                carry,
                prefix,
                counters: counters.clone(),
                from,
                to,
            };
            AbortOnDrop(tokio::spawn(job.digest()))
        })
        .collect();
    let mut side = LegacySide::new(prefix);
    for mut stream in streams {
        match (&mut stream.0).await {
            Ok(part) => side.absorb(part?),
            Err(e) => {
                return Err(VerifyError::Legacy(LegacyError::Query {
                    context: "a legacy digest task failed".into(),
                    source: sqlx::Error::Protocol(e.to_string()),
                }))
            }
        }
    }
    Ok(side)
}

/// One share of the table's blocks, digested as apply would write it.
struct Stream {
    pool: PgPool,
    places: Arc<HashMap<Uuid, Placed>>,
    carry: Carry,
    prefix: u32,
    counters: Arc<Counters>,
    /// First block (a `tid`), included.
    from: String,
    /// Block where the next stream starts, if any.
    to: Option<String>,
}

impl Stream {
    /// The digest of a row apply surely writes as it is: a scope it knows,
    /// a placed workspace, content starting with a visible ASCII character
    /// (so not blank) and far below the size limit, and a `created_at`
    /// when the plugin keeps one. `None` for any other row.
    fn plain_digest(&self, r: &PgRow) -> Result<Option<(Uuid, u128)>, LegacyError> {
        let bad = || LegacyError::query("failed to decode a row");
        let scope: Option<&str> = r.try_get(3).map_err(bad())?;
        let Some(scope) = scope.and_then(Scope::parse) else {
            return Ok(None);
        };
        let workspace: Option<Uuid> = r.try_get(1).map_err(bad())?;
        let Some(placed) = workspace.and_then(|w| self.places.get(&w)) else {
            return Ok(None);
        };
        let content: Option<&[u8]> = r.try_get_unchecked(2).map_err(bad())?;
        let Some(content) = content.filter(|c| {
            c.first().is_some_and(u8::is_ascii_graphic) && !may_be_too_large_len(c.len())
        }) else {
            return Ok(None);
        };
        let created_at: Option<DateTime<Utc>> = r.try_get(4).map_err(bad())?;
        let created_at = match (self.carry.created_at, created_at) {
            (false, _) => None,
            (true, Some(at)) => Some(at),
            (true, None) => return Ok(None),
        };
        let id: Uuid = r.try_get(0).map_err(bad())?;
        let namespace = placed.namespace(scope).as_bytes();
        Ok(Some((
            id,
            memory_digest_bytes(id, namespace, content, created_at),
        )))
    }

    async fn digest(self) -> Result<LegacySide, LegacyError> {
        let sql = format!(
            "SELECT {} FROM agent_memories WHERE ctid >= $1::text::tid AND ($2::text IS NULL OR ctid < $2::text::tid)",
            legacy::VERIFY_SELECT
        );
        let mut rows = sqlx::query(&sql)
            .bind(&self.from)
            .bind(&self.to)
            .fetch(&self.pool);
        let mut side = LegacySide::new(self.prefix);
        let mut unreported = 0u64;
        while let Some(r) = rows
            .try_next()
            .await
            .map_err(LegacyError::query("failed to read legacy rows"))?
        {
            unreported += 1;
            if unreported >= PROGRESS_EVERY {
                Counters::add(&self.counters.scanned, unreported);
                unreported = 0;
            }
            // Most rows are plainly written by apply: digested from the
            // bytes Postgres sent. Any other row is judged by apply's rules.
            if let Some((id, digest)) = self.plain_digest(&r)? {
                side.buckets.add(id, digest);
                continue;
            }
            let row =
                legacy::decode_row(&r).map_err(LegacyError::query("failed to decode a row"))?;
            let namespace = match judge(&row, &self.places, self.carry) {
                Ok(namespace) => namespace,
                Err(skip) => {
                    side.skips.skip(row.id, skip.reason, skip.detail);
                    continue;
                }
            };
            let created_at = match (self.carry.created_at, row.created_at) {
                (false, _) => None,
                (true, Some(at)) => Some(at),
                (true, None) => {
                    // The plugin stamped its own time: merge this bucket.
                    side.unsure.insert(bucket_index(row.id, self.prefix));
                    continue;
                }
            };
            let content = row.content.as_deref().unwrap_or("");
            let digest = memory_digest(row.id, namespace, content, created_at);
            side.buckets.add(row.id, digest);
        }
        Counters::add(&self.counters.scanned, unreported);
        Ok(side)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memory_contract::{ChecksumBucket, ChecksumResponse};

    fn answer(prefix: u32, buckets: &[(&str, u64, &str)]) -> ChecksumResponse {
        ChecksumResponse {
            prefix,
            created_at: false,
            buckets: buckets
                .iter()
                .map(|(p, n, d)| ChecksumBucket {
                    prefix: p.to_string(),
                    count: *n,
                    digest: d.to_string(),
                })
                .collect(),
        }
    }

    fn memory(id: Uuid, namespace: &str, content: &str) -> Memory {
        Memory {
            id,
            namespace: namespace.into(),
            content: content.into(),
            kind: memory_contract::MemoryKind::Checkpoint,
            source: memory_contract::MemorySource::Runtime,
            expires_at: None,
            propagation: None,
            pin: false,
            created_at: chrono::DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap(),
            score: None,
            embedding: None,
        }
    }

    #[test]
    fn the_checkpoint_namespace_is_taken_out_of_the_plugin_buckets() {
        let migrated = memory(Uuid::from_u128(0x00a1 << 112), "workspace:w", "row");
        let own = memory(Uuid::from_u128(0x00a2 << 112), CHECKPOINT_NAMESPACE, "{}");
        let alone = memory(Uuid::from_u128(0x0ff0 << 112), CHECKPOINT_NAMESPACE, "{}");
        for created_at in [false, true] {
            let mut plugin = Accumulator::new(3);
            let mut legacy = Accumulator::new(3);
            for m in [&migrated, &own, &alone] {
                let digest = memory_digest(
                    m.id,
                    &m.namespace,
                    &m.content,
                    created_at.then_some(m.created_at),
                );
                plugin.add(m.id, digest);
                if m.namespace != CHECKPOINT_NAMESPACE {
                    legacy.add(m.id, digest);
                }
            }
            let buckets: Buckets = plugin.iter().map(|(i, n, d)| (i, (n, d))).collect();
            // Only memories of the checkpoint namespace are taken out.
            let others = [migrated.clone(), own.clone(), alone.clone()];
            let left = without_own(buckets, &others, 3, created_at);
            let want: Buckets = legacy.iter().map(|(i, n, d)| (i, (n, d))).collect();
            assert_eq!(left, want, "created_at {created_at}");
            assert!(!left.contains_key(&0x0ff), "an emptied bucket is gone");
        }
    }

    #[test]
    fn a_well_formed_answer_is_read_by_bucket_index() {
        let digest = "000102030405060708090a0b0c0d0e0f";
        let read = wire_buckets(answer(3, &[("00a", 2, digest), ("fff", 1, digest)]), 3).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[&0x00a], (2, 0x000102030405060708090a0b0c0d0e0f));
        assert_eq!(read[&0xfff].0, 1);
    }

    #[test]
    fn a_malformed_answer_is_refused() {
        let digest = "000102030405060708090a0b0c0d0e0f";
        for (prefix, buckets) in [
            (2, vec![("00", 1, digest)]),
            (3, vec![("0a", 1, digest)]),
            (3, vec![("+0a", 1, digest)]),
            (3, vec![("0ag", 1, digest)]),
            (3, vec![("00a", 1, "xyz")]),
            (3, vec![("00a", 1, digest), ("00a", 1, digest)]),
        ] {
            let err = wire_buckets(answer(prefix, &buckets), 3).unwrap_err();
            assert!(err.contains("malformed"), "{err}");
        }
    }

    #[test]
    fn large_tables_get_finer_buckets() {
        assert_eq!(prefix_for(0.0), 3);
        assert_eq!(prefix_for(1_000_000.0), 3);
        assert_eq!(prefix_for(50_000_000.0), limits::CHECKSUM_PREFIX_MAX);
    }
}
