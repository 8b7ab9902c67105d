//! The suite fails, naming the problem, against plugins that break one rule
//! each (a proxy in front of our real plugin, see `common/faulty.rs`).

mod common;

use common::faulty::{Fault, FaultyPlugin};
use memory_conformance::{run, CheckStatus, SuiteConfig};
use memory_plugin::server::ServerConfig;
use memory_testkit::{EmptyList, SloppyPlugin};

/// Runs `checks` through a proxy breaking `fault`; asserts that `failing`
/// fails with a message containing every word of `mentions`.
async fn assert_check_fails(fault: Fault, failing: &str, mentions: &[&str]) {
    let plugin = common::sqlite_plugin(ServerConfig::default()).await;
    let proxy = FaultyPlugin::start(plugin.url(), fault).await;
    let mut config = SuiteConfig::new(proxy.url.clone());
    config.only = vec![failing.to_string()];
    let report = run(&config).await.expect("suite runs");
    let text = report.text();
    let check = report.check(failing).expect("check ran");
    assert_eq!(
        check.status,
        CheckStatus::Fail,
        "{fault:?} not caught:\n{text}"
    );
    assert!(!report.passed());
    let line = check.line();
    for word in mentions {
        assert!(
            line.contains(word),
            "{fault:?}: {word:?} missing from: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transparent_proxy_passes_everything_and_the_suite_leaves_no_namespaces() {
    let plugin = common::sqlite_plugin(ServerConfig::default()).await;
    let proxy = FaultyPlugin::start(plugin.url(), Fault::None).await;
    let report = run(&SuiteConfig::new(proxy.url.clone()))
        .await
        .expect("suite runs");
    assert!(report.passed(), "{}", report.text());
    let created = proxy.namespaces_seen();
    assert!(
        created.len() > 20,
        "the suite created namespaces: {created:?}"
    );
    let client =
        memory_client::Client::new(memory_client::ClientConfig::new(plugin.url())).expect("client");
    for name in created {
        assert!(
            name.starts_with(&format!("custom:conformance-{}-", report.run_id))
                || name.starts_with(&format!("custom:CONFORMANCE-{}-", report.run_id)),
            "{name}"
        );
        let found = client.get_namespace(&name).await.expect("GET namespace");
        assert!(found.is_none(), "{name} left behind");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignoring_the_id_fails_id_upsert() {
    assert_check_fails(Fault::IgnoreId, "id_upsert", &["id"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignoring_the_id_fails_id_concurrent_same() {
    assert_check_fails(
        Fault::IgnoreId,
        "id_concurrent_same",
        &["one row", "50 rows"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusing_an_id_for_new_writes_fails_concurrent_writes_without_id() {
    assert_check_fails(
        Fault::FixedIdForNewWrites,
        "concurrent_writes_without_id",
        &["100 distinct ids"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaking_prefix_matches_fails_exact_namespace_matching() {
    assert_check_fails(
        Fault::LeakPrefixMatches,
        "exact_namespace_matching",
        &["only its own memory", "neighbour"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_ignoring_namespace_fails_forget_wrong_namespace() {
    assert_check_fails(
        Fault::ForgetIgnoresNamespace,
        "forget_wrong_namespace",
        &["stay", "is gone"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_of_absent_memory_answering_204_fails_round_trip() {
    assert_check_fails(
        Fault::ForgetAlways204,
        "memory_round_trip",
        &["second forget", "404", "204"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_on_bad_json_fails_error_bad_json() {
    assert_check_fails(Fault::BadJsonIs500, "error_bad_json", &["400", "500"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_error_envelope_fails_the_error_checks() {
    assert_check_fails(
        Fault::DropErrorEnvelope,
        "error_bad_namespace_name",
        &["no error envelope"],
    )
    .await;
    assert_check_fails(
        Fault::DropErrorEnvelope,
        "error_unknown_route",
        &["no error envelope"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_ids_across_namespaces_fails_id_other_namespace() {
    assert_check_fails(
        Fault::MoveIdsAcrossNamespaces,
        "id_other_namespace",
        &["stay in"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returning_expired_rows_fails_ttl_eviction() {
    assert_check_fails(
        Fault::ReturnExpiredRows,
        "ttl_eviction",
        &["expired memory gone", "short lived"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignoring_pin_order_fails_pin_first() {
    assert_check_fails(Fault::IgnorePinOrder, "pin_first", &["pinned first"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oldest_first_fails_search_recent() {
    assert_check_fails(Fault::OldestFirst, "search_recent", &["newest first"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignoring_kinds_fails_search_kinds_filter() {
    assert_check_fails(
        Fault::IgnoreKinds,
        "search_kinds_filter",
        &["only the summary", "a fact"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignoring_mode_fails_search_hybrid() {
    assert_check_fails(
        Fault::IgnoreMode,
        "search_hybrid",
        &["without an embedding", "400"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaking_prefix_matches_fails_search_hybrid() {
    assert_check_fails(Fault::LeakPrefixMatches, "search_hybrid", &["only"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reversed_hybrid_order_fails_search_hybrid() {
    assert_check_fails(
        Fault::ReverseScoredResults,
        "search_hybrid",
        &["best first"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reversed_similarity_order_fails_search_embedding() {
    assert_check_fails(
        Fault::ReverseScoredResults,
        "search_embedding",
        &["nearest first"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_limit_101_fails_error_limit_101() {
    assert_check_fails(
        Fault::AcceptLimitOver100,
        "error_limit_101",
        &["limit 101", "200"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_blank_content_fails_error_blank_content() {
    assert_check_fails(
        Fault::AcceptBlankContent,
        "error_blank_content",
        &["400", "201"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_without_version_fails_health() {
    assert_check_fails(
        Fault::HealthWithoutVersion,
        "health",
        &["version", "absent"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_not_a_list_fails_health() {
    assert_check_fails(
        Fault::HealthCapabilitiesString,
        "health",
        &["capabilities", "array"],
    )
    .await;
}

/// `"capabilities": null` is sloppy, not broken: a warning, and the run passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_capabilities_warn_in_health() {
    let plugin = common::sqlite_plugin(ServerConfig::default()).await;
    let proxy = FaultyPlugin::start(plugin.url(), Fault::HealthCapabilitiesNull).await;
    let mut config = SuiteConfig::new(proxy.url.clone());
    config.only = vec!["health".to_string()];
    let report = run(&config).await.expect("suite runs");
    let check = report.check("health").expect("ran");
    assert_eq!(check.status, CheckStatus::Warn, "{}", report.text());
    assert!(
        check
            .line()
            .starts_with("WARN health: capabilities is null"),
        "{}",
        check.line()
    );
    assert!(report.passed());
    assert_eq!(report.summary.warned, 1);
}

/// A plugin that sends every empty list as `null` (or leaves it out), and
/// absent optional fields as `null`, passes every check; `empty_lists`
/// warns, naming what it saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_or_missing_empty_lists_pass_with_a_warning() {
    for (empty, words) in [
        (EmptyList::Null, "answers \"memories\": null"),
        (EmptyList::Absent, "leaves out \"memories\""),
    ] {
        let plugin = common::sqlite_plugin(ServerConfig::default()).await;
        let proxy = SloppyPlugin::start(plugin.url(), empty).await;
        let report = run(&SuiteConfig::new(proxy.url()))
            .await
            .expect("suite runs");
        let text = report.text();
        assert!(report.passed(), "{empty:?}:\n{text}");
        let check = report.check("empty_lists").expect("ran");
        assert_eq!(check.status, CheckStatus::Warn, "{empty:?}:\n{text}");
        let line = check.line();
        for what in ["search", "list", "scan"] {
            assert!(
                line.contains(&format!("the {what}")) || line.contains(&format!("a {what}")),
                "{line}"
            );
        }
        assert!(line.contains(words), "{line}");
        assert_eq!(report.summary.warned, 1, "{text}");
        assert!(text.contains(", 1 warned, 0 failed,"), "{text}");
        assert!(proxy.lists_rewritten() > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_second_put_fails_namespace_upsert_idempotent() {
    assert_check_fails(
        Fault::UpsertNotIdempotent,
        "namespace_upsert_idempotent",
        &["409"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_results_out_of_order_fail_batch_mixed() {
    assert_check_fails(Fault::BatchOutOfOrder, "batch_mixed", &["input order"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_out_of_order_fails_list_paging() {
    assert_check_fails(
        Fault::ListOutOfOrder,
        "list_paging",
        &["ascending id order"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_out_of_order_fails_scan_paging() {
    assert_check_fails(
        Fault::ScanOutOfOrder,
        "scan_paging",
        &["ascending id order"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_checksum_digit_fails_checksum_tracks_writes() {
    assert_check_fails(
        Fault::ChecksumDigestFlipped,
        "checksum_tracks_writes",
        &["touched bucket", "XOR of their digests", "expected count 2"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_checksum_bucket_fails_checksum_tracks_writes() {
    assert_check_fails(
        Fault::ChecksumDropsBucket,
        "checksum_tracks_writes",
        &["touched bucket", "got absent"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_created_at_fails_created_at_kept() {
    assert_check_fails(Fault::DropCreatedAt, "created_at_kept", &["2020-01-02"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_propagation_fails_propagation_round_trip() {
    assert_check_fails(
        Fault::DropPropagation,
        "propagation_round_trip",
        &["propagation returned as written"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_ignoring_the_token_fails_token_enforced() {
    // Our plugin started without a token accepts any request: to a suite
    // that was given a token, that is a plugin not enforcing it.
    let plugin = common::sqlite_plugin(ServerConfig::default()).await;
    let mut config = SuiteConfig::new(plugin.url());
    config.token = Some("expected-token".into());
    config.only = vec!["token_enforced".into()];
    let report = run(&config).await.expect("suite runs");
    let check = report.check("token_enforced").expect("ran");
    assert_eq!(check.status, CheckStatus::Fail, "{}", report.text());
    assert!(
        check.line().contains("without the token"),
        "{}",
        check.line()
    );
}
