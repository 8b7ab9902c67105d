//! Extension `checksum`: digests of memories per bucket of ids.
//!
//! A memory's digest is the 128-bit XXH3 hash (seed 0) of the UTF-8 bytes
//!
//! ```text
//! id 0x1F namespace 0x1F content [0x1F created_at]
//! ```
//!
//! where `id` is the 36-character lowercase hyphenated UUID and the last
//! field, present only when `created_at` is asked for, is the memory's
//! `created_at` in whole microseconds since the Unix epoch, in decimal
//! (negative before 1970). A bucket holds the memories whose ids share their
//! first `prefix` hex digits; its digest is the XOR of its memories'
//! digests, each taken as a 128-bit unsigned number (XXH3's canonical
//! form: high 64 bits first), written as 32 lowercase hex digits. XOR does
//! not depend on order, so a store may fold its rows in any order or in
//! parallel. XXH3 is fast enough that digesting costs less than reading the
//! rows; it is not a cryptographic hash, so two buckets with the same count
//! and digest hold the same memories unless someone crafted a collision.

use crate::ChecksumBucket;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use uuid::Uuid;
use xxhash_rust::xxh3::Xxh3;

/// The field separator inside a memory's digested bytes.
pub const SEPARATOR: u8 = 0x1F;

/// The digest of one memory.
pub fn memory_digest(
    id: Uuid,
    namespace: &str,
    content: &str,
    created_at: Option<DateTime<Utc>>,
) -> u128 {
    memory_digest_bytes(id, namespace.as_bytes(), content.as_bytes(), created_at)
}

/// [`memory_digest`] of a namespace and content already held as UTF-8
/// bytes (as a database sends them), so that they need not be validated
/// again.
pub fn memory_digest_bytes(
    id: Uuid,
    namespace: &[u8],
    content: &[u8],
    created_at: Option<DateTime<Utc>>,
) -> u128 {
    let mut hasher = Xxh3::new();
    let mut id_text = [0u8; 36];
    hasher.update(id.hyphenated().encode_lower(&mut id_text).as_bytes());
    hasher.update(&[SEPARATOR]);
    hasher.update(namespace);
    hasher.update(&[SEPARATOR]);
    hasher.update(content);
    if let Some(at) = created_at {
        hasher.update(&[SEPARATOR]);
        hasher.update(micros_text(at.timestamp_micros(), &mut [0u8; 20]));
    }
    hasher.digest128()
}

/// `n` in decimal, written into `buf` (20 bytes hold any i64).
fn micros_text(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        buf[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    &buf[at..]
}

/// Index of the bucket of `id` among the `16^prefix` buckets.
pub fn bucket_index(id: Uuid, prefix: u32) -> u32 {
    if prefix == 0 {
        return 0;
    }
    (id.as_u128() >> (128 - 4 * prefix.min(8))) as u32
}

/// Name of the bucket with this index: `prefix` lowercase hex digits.
pub fn bucket_name(index: u32, prefix: u32) -> String {
    format!("{index:0width$x}", width = prefix as usize)
}

/// The lowest and highest id of a bucket named by `name` (1 to 8 hex
/// digits), or `None` for a name that is not that.
pub fn bucket_range(name: &str) -> Option<(Uuid, Uuid)> {
    if name.is_empty() || name.len() > 8 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let index = u128::from_str_radix(name, 16).ok()?;
    let shift = 128 - 4 * name.len() as u32;
    let low = index << shift;
    let high = low | ((1u128 << shift) - 1);
    Some((Uuid::from_u128(low), Uuid::from_u128(high)))
}

/// A digest as 32 lowercase hex digits.
pub fn format_digest(digest: u128) -> String {
    format!("{digest:032x}")
}

/// Reads a digest written by [`format_digest`] (either case).
pub fn parse_digest(text: &str) -> Option<u128> {
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(text, 16).ok()
}

/// Buckets being summed up: add memories in any order, then read them.
///
/// Every one of the `16^prefix` buckets has a slot (2 MiB at the largest
/// prefix), so that adding a memory is one indexed update.
#[derive(Debug, Clone)]
pub struct Accumulator {
    prefix: u32,
    slots: Vec<(u64, u128)>,
}

impl Accumulator {
    /// An empty set of buckets named by `prefix` hex digits (at most
    /// [`crate::limits::CHECKSUM_PREFIX_MAX`]; larger values are clamped).
    pub fn new(prefix: u32) -> Self {
        let prefix = prefix.min(crate::limits::CHECKSUM_PREFIX_MAX);
        Accumulator {
            prefix,
            slots: vec![(0, 0); 1 << (4 * prefix)],
        }
    }

    /// Hex digits per bucket name.
    pub fn prefix(&self) -> u32 {
        self.prefix
    }

    /// Adds a memory of this digest.
    pub fn add(&mut self, id: Uuid, digest: u128) {
        let slot = &mut self.slots[bucket_index(id, self.prefix) as usize];
        slot.0 += 1;
        slot.1 ^= digest;
    }

    /// Adds every bucket of `other` (same prefix) to these.
    pub fn merge(&mut self, other: &Accumulator) {
        for (slot, (count, digest)) in self.slots.iter_mut().zip(&other.slots) {
            slot.0 += count;
            slot.1 ^= digest;
        }
    }

    /// Count and digest of the bucket with this index (zeros when empty or
    /// out of range).
    pub fn get(&self, index: u32) -> (u64, u128) {
        self.slots.get(index as usize).copied().unwrap_or((0, 0))
    }

    /// Index, count and digest of every non-empty bucket, in order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u64, u128)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, (count, _))| *count > 0)
            .map(|(index, (count, digest))| (index as u32, *count, *digest))
    }

    /// Count and digest per bucket index, non-empty buckets only.
    pub fn to_map(&self) -> BTreeMap<u32, (u64, u128)> {
        self.iter().map(|(i, n, d)| (i, (n, d))).collect()
    }

    /// The non-empty buckets, ordered by name, as the wire carries them.
    pub fn into_wire(self) -> Vec<ChecksumBucket> {
        self.iter()
            .map(|(index, count, digest)| ChecksumBucket {
                prefix: bucket_name(index, self.prefix),
                count,
                digest: format_digest(digest),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memory_digest_is_xxh3_of_its_fields() {
        let id = Uuid::parse_str("0a1b2c3d-0000-4000-8000-00000000abcd").unwrap();
        // Python: xxhash.xxh3_128_hexdigest(
        //     b'0a1b2c3d-0000-4000-8000-00000000abcd\x1fworkspace:w\x1fhello')
        assert_eq!(
            format_digest(memory_digest(id, "workspace:w", "hello", None)),
            "0708b8872d246d0fbc87969b3d9be9dd"
        );
        let at = DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap();
        // ... followed by b'\x1f1700000000123456'
        assert_eq!(
            format_digest(memory_digest(id, "workspace:w", "hello", Some(at))),
            "f6bb5342593c5b96b6110386814650d6"
        );
        let before_1970 = DateTime::from_timestamp(-1, 500_000_000).unwrap();
        assert_ne!(
            memory_digest(id, "workspace:w", "hello", Some(before_1970)),
            memory_digest(id, "workspace:w", "hello", None)
        );
    }

    #[test]
    fn microseconds_are_written_in_decimal() {
        for n in [0i64, 7, -7, 1_700_000_000_123_456, i64::MAX, i64::MIN] {
            assert_eq!(micros_text(n, &mut [0u8; 20]), n.to_string().as_bytes());
        }
    }

    #[test]
    fn buckets_are_id_prefixes() {
        let id = Uuid::parse_str("f3a90000-0000-4000-8000-000000000001").unwrap();
        assert_eq!(bucket_index(id, 1), 0xf);
        assert_eq!(bucket_index(id, 3), 0xf3a);
        assert_eq!(bucket_name(0xf3a, 3), "f3a");
        assert_eq!(bucket_name(0x3a, 3), "03a");
        let (low, high) = bucket_range("f3a").unwrap();
        assert_eq!(low.to_string(), "f3a00000-0000-0000-0000-000000000000");
        assert_eq!(high.to_string(), "f3afffff-ffff-ffff-ffff-ffffffffffff");
        assert!(low <= id && id <= high);
        assert_eq!(bucket_range(""), None);
        assert_eq!(bucket_range("xyz"), None);
        assert_eq!(bucket_range("123456789"), None);
    }

    #[test]
    fn buckets_xor_in_any_order() {
        let ids: Vec<Uuid> = (0..50u128)
            .map(|i| Uuid::from_u128(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)))
            .collect();
        let mut forward = Accumulator::new(1);
        for id in &ids {
            forward.add(*id, memory_digest(*id, "team:t", "c", None));
        }
        let mut backward = Accumulator::new(1);
        let mut other = Accumulator::new(1);
        for (i, id) in ids.iter().rev().enumerate() {
            let target = if i % 2 == 0 {
                &mut backward
            } else {
                &mut other
            };
            target.add(*id, memory_digest(*id, "team:t", "c", None));
        }
        backward.merge(&other);
        assert_eq!(forward.to_map(), backward.to_map());
        assert_eq!(forward.iter().count(), forward.to_map().len());
        let wire = forward.into_wire();
        assert_eq!(wire.iter().map(|b| b.count).sum::<u64>(), 50);
        assert!(wire.windows(2).all(|w| w[0].prefix < w[1].prefix));
        assert!(wire.iter().all(|b| parse_digest(&b.digest).is_some()));
    }
}
