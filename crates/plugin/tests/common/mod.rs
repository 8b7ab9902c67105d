//! The shared storage suite: one set of cases that every [`Store`] backend
//! must pass, so Postgres and SQLite keep the same semantics.
//!
//! # Use
//!
//! In a test file (`tests/storage_<backend>.rs`):
//!
//! ```ignore
//! mod common;
//!
//! use memory_plugin::store::Store;
//! use std::sync::Arc;
//!
//! /// A fresh, empty store, and whatever must stay alive while the test runs
//! /// (a temporary database, a temporary directory; `()` if nothing).
//! async fn fresh_store() -> (Arc<dyn Store>, impl Send + 'static) {
//!     let db = memory_testkit::pg15().await;
//!     let store = PgStore::connect(db.url(), PgOptions::default()).await.unwrap();
//!     (Arc::new(store) as Arc<dyn Store>, db)
//! }
//!
//! common::storage_suite!(fresh_store());
//! ```
//!
//! The macro expands to one `#[tokio::test]` per case (multi-threaded, so the
//! concurrency cases really run in parallel), each calling the expression
//! once for a fresh store and keeping the guard alive until the case ends.
//! The cases live in [`cases`] as plain async functions taking the store.
//!
//! Cases that depend on a feature (semantic search) read
//! [`Store::features`] and check the matching behaviour either way.

#![allow(dead_code)]

pub mod binary;
pub mod cases;
pub mod namespaces;
pub mod postgres;
pub mod rng;

/// Expands to one `#[tokio::test]` per case of [`cases`]; see the module docs.
// Test files that use only the other modules leave it unused.
#[allow(unused_macros)]
macro_rules! storage_suite {
    ($make:expr) => {
        $crate::common::storage_suite!(@cases $make;
            ping_succeeds,
            namespace_upsert_is_idempotent_and_keeps_created_at,
            namespace_put_replaces_expiry_and_metadata,
            get_namespace_of_absent_name_is_none,
            patch_namespace_changes_only_given_fields,
            patch_and_delete_of_absent_namespace_are_not_found,
            delete_namespace_removes_its_memories,
            expired_namespace_behaves_as_absent,
            put_on_expired_namespace_creates_a_new_one,
            write_to_missing_namespace_is_not_found_naming_it,
            write_with_same_id_twice_keeps_one_row_with_second_write,
            write_with_id_from_another_namespace_conflicts_and_changes_nothing,
            fifty_concurrent_writes_with_same_id_leave_one_row,
            hundred_concurrent_writes_without_id_get_distinct_ids,
            memory_expiring_in_one_second_disappears_and_sweep_removes_it,
            sweep_removes_expired_namespaces_with_their_memories,
            search_without_query_returns_pinned_first_then_newest,
            search_full_text_matches_stemmed_words_best_first,
            search_one_char_query_is_case_insensitive_substring_pinned_first,
            search_substring_escapes_percent_underscore_and_backslash,
            search_kinds_filter_keeps_only_those_kinds,
            search_limit_caps_results,
            search_matches_namespace_names_exactly,
            search_over_several_namespaces_returns_each_memory_once,
            list_memories_pages_by_id,
            list_memories_of_missing_namespace_is_not_found,
            scan_memories_pages_every_live_memory_by_id,
            list_namespaces_pages_every_live_namespace_by_name,
            memory_checksums_digest_exactly_the_scanned_memories,
            forget_deletes_only_in_its_namespace,
            batch_reports_each_item_in_input_order,
            batch_with_duplicate_ids_keeps_the_last_write,
            batch_of_thousand_writes_without_ids,
            created_at_is_kept_when_given,
            rewrite_keeps_created_at_unless_the_row_had_expired,
            content_round_trips_byte_for_byte,
            propagation_and_metadata_round_trip,
            semantic_search_ranks_nearest_first_or_is_refused,
            embedding_of_wrong_dimension_is_bad_request,
        );
    };
    (@cases $make:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, _guard) = $make.await;
                $crate::common::cases::$case(store).await;
            }
        )+
    };
}

#[allow(unused_imports)]
pub(crate) use storage_suite;
