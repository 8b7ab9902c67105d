//! The suite passes against our plugin on every backend.

mod common;

use memory_conformance::{run, CheckStatus, Report, SuiteConfig};
use memory_plugin::server::ServerConfig;

fn assert_all_pass(report: &Report) {
    let text = report.text();
    assert!(report.passed(), "suite failed:\n{text}");
    assert_eq!(
        report.summary.warned, 0,
        "our plugin is never sloppy:\n{text}"
    );
    assert_eq!(
        report.summary.total,
        memory_conformance::catalogue().len(),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_passes_against_sqlite_plugin() {
    let plugin = common::sqlite_plugin(ServerConfig {
        token: Some("sqlite-token".into()),
        ..ServerConfig::default()
    })
    .await;
    let mut config = SuiteConfig::new(plugin.url());
    config.token = Some("sqlite-token".into());
    let report = run(&config).await.expect("suite runs");
    assert_all_pass(&report);
    assert_eq!(report.summary.skipped, 0, "{}", report.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_passes_against_postgres15_plugin_and_skips_embedding() {
    let plugin = common::pg15_plugin(ServerConfig::default()).await;
    let report = run(&SuiteConfig::new(plugin.url()))
        .await
        .expect("suite runs");
    assert_all_pass(&report);
    let embedding = report.check("search_embedding").expect("ran");
    assert_eq!(embedding.status, CheckStatus::Skip, "{}", report.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_passes_against_postgres18_plugin_with_embedding() {
    let plugin = common::pg18_plugin(ServerConfig {
        token: Some("pg18-token".into()),
        ..ServerConfig::default()
    })
    .await;
    let mut config = SuiteConfig::new(plugin.url());
    config.token = Some("pg18-token".into());
    let report = run(&config).await.expect("suite runs");
    assert_all_pass(&report);
    assert_eq!(report.summary.skipped, 0, "{}", report.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_passes_with_a_token_and_skips_extensions_on_v1_only_plugin() {
    let plugin = common::sqlite_plugin(ServerConfig {
        token: Some("conformance-token".into()),
        v1_only: true,
        ..ServerConfig::default()
    })
    .await;
    let mut config = SuiteConfig::new(plugin.url());
    config.token = Some("conformance-token".into());
    let report = run(&config).await.expect("suite runs");
    assert_all_pass(&report);
    for name in [
        "batch_mixed",
        "list_paging",
        "scan_paging",
        "checksum_tracks_writes",
        "created_at_kept",
        "search_hybrid",
    ] {
        assert_eq!(report.check(name).expect("ran").status, CheckStatus::Skip);
    }
}
