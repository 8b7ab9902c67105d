//! The row comparison every method shares.
//!
//! However a method pairs a legacy row with the plugin memory of the same
//! id, [`compare`] judges the pair the same way: the memory must sit in the
//! namespace apply would have written the row to, hold the same content and,
//! when the plugin keeps `created_at` ([`assumed_carry`]), the same instant
//! to the microsecond. A row that could be too large for the plugin
//! ([`may_be_too_large`]) is first put through apply's size rule, so that a
//! row apply skips is counted as a skip, not as missing.

use super::report::{Mismatch, MismatchKind, VerifyReport};
use crate::legacy::{LegacyRow, LegacySchema};
use crate::mapping::Carry;
use crate::plugin::Plugin;
use crate::report::content_excerpt;
use chrono::{DateTime, Utc};
use memory_contract::{limits, Memory};

/// The carry rules verify assumes (no probe writes: verify writes nothing).
pub fn assumed_carry(plugin: &Plugin, schema: &LegacySchema) -> Carry {
    Carry {
        created_at: plugin.caps.created_at,
        embedding: plugin.caps.embedding && schema.has_embedding && schema.embedding_dim.is_some(),
    }
}

/// Whether a content could make a write larger than the plugin accepts
/// (JSON escaping at most sextuples a character's bytes), so that apply's
/// `too_large` rule must be checked.
pub(super) fn may_be_too_large(content: &str) -> bool {
    may_be_too_large_len(content.len())
}

/// [`may_be_too_large`] of a content of `len` bytes.
pub(super) fn may_be_too_large_len(len: usize) -> bool {
    len.saturating_mul(6) + 4096 > limits::BODY_MAX_BYTES
}

/// Compares one plugin memory with the legacy row of the same id.
pub(super) fn compare(
    row: &LegacyRow,
    expected_ns: &str,
    found: &Memory,
    carry: Carry,
    report: &mut VerifyReport,
) {
    let content = row.content.as_deref().unwrap_or("");
    let base = |kind, detail| Mismatch {
        kind,
        id: row.id,
        workspace: row.workspace_id,
        expected_namespace: expected_ns.to_string(),
        found_namespace: (found.namespace != expected_ns).then(|| found.namespace.clone()),
        excerpt: content_excerpt(content),
        detail,
    };
    if found.namespace != expected_ns {
        report.mismatch(base(MismatchKind::WrongNamespace, None));
        return;
    }
    let mut ok = true;
    if found.content != content {
        ok = false;
        report.mismatch(base(
            MismatchKind::ContentDiffers,
            Some(format!(
                "plugin holds {:?}",
                content_excerpt(&found.content)
            )),
        ));
    }
    if carry.created_at {
        if let Some(expected) = row.created_at {
            if !same_instant(expected, found.created_at) {
                ok = false;
                report.mismatch(base(
                    MismatchKind::CreatedAtDiffers,
                    Some(format!(
                        "legacy {} vs plugin {}",
                        expected.to_rfc3339(),
                        found.created_at.to_rfc3339()
                    )),
                ));
            }
        }
    }
    if ok {
        report.rows_matched += 1;
    }
}

/// Equal to the microsecond (Postgres' precision).
fn same_instant(a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    a.timestamp_micros() == b.timestamp_micros()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_huge_contents_need_the_size_check() {
        assert!(!may_be_too_large(&"x".repeat(500)));
        assert!(may_be_too_large(&"x".repeat(limits::BODY_MAX_BYTES)));
    }
}
