//! The checks, in the order they run, and the helper that judges an error
//! answer.

mod basic;
mod errors;
mod extensions;
mod hybrid;
mod memories;
mod search;

use crate::context::{CheckCtx, RawAnswer};
use crate::outcome::{CheckResult, Failure, StepResult};
use futures::future::BoxFuture;
use memory_contract::capability;
use serde_json::Value;

/// A check's name, what it needs, and what it proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckInfo {
    /// Stable name, used by `--only` and in reports.
    pub name: &'static str,
    /// The capability the plugin must advertise, if any; otherwise skipped.
    pub requires: Option<&'static str>,
    /// One sentence on what the check means.
    pub about: &'static str,
}

type CheckFn = for<'a> fn(&'a CheckCtx) -> BoxFuture<'a, CheckResult>;

pub(crate) struct Check {
    pub info: CheckInfo,
    pub run: CheckFn,
}

macro_rules! check {
    ($name:literal, $requires:expr, $about:literal, $f:path) => {
        Check {
            info: CheckInfo {
                name: $name,
                requires: $requires,
                about: $about,
            },
            run: |ctx| Box::pin($f(ctx)),
        }
    };
}

pub(crate) fn all() -> Vec<Check> {
    vec![
        check!("health", None,
            "GET /v1/health answers 200 {status: \"ok\", version: \"1.x\", capabilities: [strings]}.",
            basic::health),
        check!("token_enforced", None,
            "With --token: a request without the token is 401 (or 403) with the envelope. Skipped without --token.",
            basic::token_enforced),
        check!("namespace_upsert_idempotent", None,
            "PUT of a namespace twice creates it once: created_at kept, metadata replaced, memories kept.",
            basic::namespace_upsert_idempotent),
        check!("namespace_patch", None,
            "PATCH changes only the fields given; an empty patch is 400; an absent namespace is 404.",
            basic::namespace_patch),
        check!("namespace_delete", None,
            "DELETE answers 204 and removes the namespace's memories; a second DELETE and a write into it are 404.",
            basic::namespace_delete),
        check!("memory_round_trip", None,
            "A write answers 201 {id, namespace}; search returns every field; forget answers 204 and the memory is gone; forgetting again is 404.",
            memories::memory_round_trip),
        check!("write_missing_namespace", None,
            "A write into a namespace that does not exist is 404 not_found.",
            memories::write_missing_namespace),
        check!("forget_wrong_namespace", None,
            "Forget on behalf of a namespace the memory is not in is 404 and the memory stays.",
            memories::forget_wrong_namespace),
        check!("id_upsert", None,
            "Writing the same id twice leaves one row holding the second content.",
            memories::id_upsert),
        check!("id_concurrent_same", None,
            "50 concurrent writes of one id all succeed and leave exactly one row.",
            memories::id_concurrent_same),
        check!("id_other_namespace", None,
            "An id that lives in another namespace is neither moved nor overwritten (409 conflict expected).",
            memories::id_other_namespace),
        check!("concurrent_writes_without_id", None,
            "100 concurrent writes without id get 100 distinct ids and store 100 rows.",
            memories::concurrent_writes_without_id),
        check!("search_recent", None,
            "A search without query returns newest first and honours limit.",
            search::search_recent),
        check!("search_kinds_filter", None,
            "A search with kinds returns only memories of those kinds.",
            search::search_kinds_filter),
        check!("search_substring", None,
            "A one-character query is a case-insensitive substring match; % and _ are literal.",
            search::search_substring),
        check!("search_fts", Some(capability::FTS),
            "A query of 2+ characters is English full-text (stemmed) with a score.",
            search::search_fts),
        check!("search_embedding", Some(capability::EMBEDDING),
            "A search with an embedding ranks by cosine similarity, score = 1 - distance.",
            search::search_embedding),
        check!("exact_namespace_matching", None,
            "Search matches namespace names exactly: no prefix, child or case-folded neighbours leak in.",
            search::exact_namespace_matching),
        check!("ttl_eviction", Some(capability::TTL),
            "A memory with expires_at 1 s ahead is visible at once and gone 2 s later.",
            search::ttl_eviction),
        check!("pin_first", Some(capability::PIN),
            "Pinned memories come first where there is no score (newest-first and substring modes).",
            search::pin_first),
        check!("propagation_round_trip", Some(capability::PROPAGATION),
            "propagation JSON comes back exactly as written.",
            search::propagation_round_trip),
        check!("empty_lists", None,
            "An empty search (and, when advertised, an empty list or scan page) answers \"memories\": []; null or a missing list is a warning, not a failure.",
            search::empty_lists),
        check!("error_bad_json", None,
            "Malformed JSON and wrong types are 400 bad_request with the error envelope, never 5xx.",
            errors::error_bad_json),
        check!("error_bad_namespace_name", None,
            "Namespace names breaking ^[a-z]+:[A-Za-z0-9_:.\\-]+$ (or over 256 chars) are 400 with the envelope.",
            errors::error_bad_namespace_name),
        check!("error_limit_101", None,
            "Search limit 101 or -1 is 400 with the envelope; 100 is accepted.",
            errors::error_limit_101),
        check!("error_blank_content", None,
            "Empty or whitespace-only content is 400 with the envelope.",
            errors::error_blank_content),
        check!("error_nul_in_content", None,
            "Content holding a NUL character is 400 with the envelope, never a 5xx from the store.",
            errors::error_nul_in_content),
        check!("error_non_uuid_id", None,
            "A non-UUID id (write body or forget path) is 4xx with the envelope.",
            errors::error_non_uuid_id),
        check!("error_unknown_route", None,
            "An unknown route is 404 and a wrong method 405 (or 404), with the envelope.",
            errors::error_unknown_route),
        check!("batch_mixed", Some(capability::BATCH),
            "Extension batch: results come back in input order; a bad item fails alone.",
            extensions::batch_mixed),
        check!("list_paging", Some(capability::LIST),
            "Extension list: pages ordered by id with next_after; GET of a namespace is 200 or 404; GET /v1/namespaces lists namespaces by name, empty ones included.",
            extensions::list_paging),
        check!("scan_paging", Some(capability::SCAN),
            "Extension scan: GET /v1/memories pages every namespace's memories by id between exclusive `after` and `before`; forgotten ones are gone; a bad after, before or limit is 400.",
            extensions::scan_paging),
        check!("checksum_tracks_writes", Some(capability::CHECKSUM),
            "Extension checksum: per id-prefix bucket (prefix 4), the count and XOR of XXH3-128 digests change by exactly the memories written, with and without created_at, other buckets stay, deleting the namespaces restores every bucket, and a bad prefix is 400.",
            extensions::checksum_tracks_writes),
        check!("created_at_kept", Some(capability::CREATED_AT),
            "Extension created_at: a write's created_at is stored and returned.",
            extensions::created_at_kept),
        check!("search_hybrid", Some(capability::HYBRID),
            "Extension hybrid: a search with mode hybrid answers scored memories of the requested namespaces only, best first, within limit; without its query or embedding it is 400 with the envelope.",
            hybrid::search_hybrid),
    ]
}

/// Every check the suite knows, in run order.
pub fn catalogue() -> Vec<CheckInfo> {
    all().into_iter().map(|c| c.info).collect()
}

/// Checks that `answer` is an error with one of `statuses` and the error
/// envelope (`code` and `message` strings), with `code` when given.
pub(crate) fn expect_error(
    what: &str,
    answer: &RawAnswer,
    statuses: &[u16],
    code: Option<&str>,
) -> StepResult<()> {
    let wanted_status = statuses
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(" or ");
    let wanted = match code {
        Some(c) => {
            format!("{what}: {wanted_status} with the error envelope {{code: \"{c}\", message}}")
        }
        None => format!("{what}: {wanted_status} with the error envelope {{code, message}}"),
    };
    if !statuses.contains(&answer.status) {
        return Err(Failure::new(wanted, answer.describe()));
    }
    let body = answer.json();
    let envelope_code = body
        .as_ref()
        .and_then(|b| b.get("code"))
        .and_then(Value::as_str);
    let has_message = body
        .as_ref()
        .and_then(|b| b.get("message"))
        .is_some_and(Value::is_string);
    match envelope_code {
        Some(found) if has_message && (code.is_none() || code == Some(found)) => Ok(()),
        Some(_) if has_message => Err(Failure::new(wanted, answer.describe())),
        _ => Err(Failure::new(
            wanted,
            format!("no error envelope: {}", answer.describe()),
        )),
    }
}
