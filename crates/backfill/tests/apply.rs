//! `-apply` against real legacy tables and our plugin over HTTP.

mod common;

use common::*;
use memory_backfill::mapping::{Scope, SkipReason};
use std::collections::BTreeMap;
use uuid::Uuid;

/// The mapping fixture: a depth-3 tree, a root with NULL status, a cycle, a
/// dangling parent, a 56-deep chain, every skip reason, and awkward contents.
struct MappingFixture {
    /// id -> expected namespace, for every row apply must write.
    expected: BTreeMap<Uuid, String>,
    /// id -> reason, for every row apply must skip.
    skipped: BTreeMap<Uuid, SkipReason>,
}

/// A row to insert: id, workspace, scope, content.
type LegacyCase = (Uuid, Option<Uuid>, Option<&'static str>, Option<String>);

async fn mapping_fixture(legacy: &Legacy) -> MappingFixture {
    let a = uuid(1); // root org
    let b = uuid(2); // child of a
    let c = uuid(3); // child of b, removed
    let d = uuid(4); // root, NULL status
    let e = uuid(5); // e <-> f cycle
    let f = uuid(6);
    let g = uuid(7); // parent missing
    let missing_parent = uuid(8);
    legacy.workspace(a, None, Some("active")).await;
    legacy.workspace(b, Some(a), Some("active")).await;
    legacy.workspace(c, Some(b), Some("removed")).await;
    legacy.workspace(d, None, None).await;
    legacy.workspace(e, Some(f), Some("active")).await;
    legacy.workspace(f, Some(e), Some("active")).await;
    legacy
        .workspace(g, Some(missing_parent), Some("active"))
        .await;
    // Chain h0 <- h1 <- ... <- h55: from h55, 50 hops reach h5.
    let h = |i: u128| uuid(1000 + i);
    legacy.workspace(h(0), None, None).await;
    for i in 1..=55u128 {
        legacy.workspace(h(i), Some(h(i - 1)), None).await;
    }

    let mut expected = BTreeMap::new();
    let mut skipped = BTreeMap::new();
    let mut n = 100u128;
    let mut row = |ws: Option<Uuid>, scope: Option<&'static str>, content: Option<String>| {
        n += 1;
        (uuid(n), ws, scope, content)
    };
    let ns = |kind: &str, id: Uuid| format!("{kind}:{id}");
    let cases: Vec<(LegacyCase, Result<String, SkipReason>)> = vec![
        (
            row(Some(a), Some("LOCAL"), Some("a local".into())),
            Ok(ns("workspace", a)),
        ),
        (
            row(Some(a), Some("TEAM"), Some("a team".into())),
            Ok(ns("team", a)),
        ),
        (
            row(Some(a), Some("GLOBAL"), Some("a global".into())),
            Ok(ns("org", a)),
        ),
        (
            row(Some(b), Some("LOCAL"), Some("b local".into())),
            Ok(ns("workspace", b)),
        ),
        (
            row(Some(b), Some("TEAM"), Some("b team".into())),
            Ok(ns("team", a)),
        ),
        (
            row(Some(b), Some("GLOBAL"), Some("b global, non-root".into())),
            Ok(ns("org", a)),
        ),
        (
            row(Some(c), Some("LOCAL"), Some("c local, removed".into())),
            Ok(ns("workspace", c)),
        ),
        (
            row(Some(c), Some("TEAM"), Some("c team".into())),
            Ok(ns("team", b)),
        ),
        (
            row(Some(c), Some("GLOBAL"), Some("c global".into())),
            Ok(ns("org", a)),
        ),
        (
            row(Some(d), Some("local"), Some("d lower-case scope".into())),
            Ok(ns("workspace", d)),
        ),
        (
            row(Some(d), Some("TEAM"), Some("d team".into())),
            Ok(ns("team", d)),
        ),
        (
            row(Some(e), Some("LOCAL"), Some("e local".into())),
            Ok(ns("workspace", e)),
        ),
        (
            row(Some(e), Some("TEAM"), Some("e team".into())),
            Ok(ns("team", f)),
        ),
        (
            row(Some(e), Some("GLOBAL"), Some("e global in a cycle".into())),
            Ok(ns("org", f)),
        ),
        (
            row(Some(g), Some("TEAM"), Some("g team".into())),
            Ok(ns("team", missing_parent)),
        ),
        (
            row(Some(g), Some("GLOBAL"), Some("g global".into())),
            Ok(ns("org", g)),
        ),
        (
            row(Some(h(55)), Some("GLOBAL"), Some("deep global".into())),
            Ok(ns("org", h(5))),
        ),
        (
            row(Some(h(55)), Some("TEAM"), Some("deep team".into())),
            Ok(ns("team", h(54))),
        ),
        // Contents that must survive byte for byte.
        (
            row(
                Some(a),
                Some("LOCAL"),
                Some("héllo wörld 日本語 🚀 \u{200b}".into()),
            ),
            Ok(ns("workspace", a)),
        ),
        (
            row(
                Some(a),
                Some("LOCAL"),
                Some(r#"quotes "double" 'single' `back`"#.into()),
            ),
            Ok(ns("workspace", a)),
        ),
        (
            row(
                Some(a),
                Some("LOCAL"),
                Some(r"back\slash \n \\ \u0041".into()),
            ),
            Ok(ns("workspace", a)),
        ),
        (
            row(
                Some(a),
                Some("LOCAL"),
                Some("100% of a_b matches %_%".into()),
            ),
            Ok(ns("workspace", a)),
        ),
        (
            row(
                Some(a),
                Some("LOCAL"),
                Some("  leading and trailing spaces \n".into()),
            ),
            Ok(ns("workspace", a)),
        ),
        (
            row(Some(a), Some("LOCAL"), Some("é".repeat(100 * 1024))),
            Ok(ns("workspace", a)),
        ), // 200 KB
        // Skips.
        (
            row(Some(a), Some("PRIVATE"), Some("unknown scope".into())),
            Err(SkipReason::UnknownScope),
        ),
        (
            row(Some(a), None, Some("null scope".into())),
            Err(SkipReason::UnknownScope),
        ),
        (
            row(None, Some("LOCAL"), Some("no workspace".into())),
            Err(SkipReason::NoWorkspace),
        ),
        (
            row(Some(uuid(999_999)), Some("LOCAL"), Some("dangling".into())),
            Err(SkipReason::DanglingWorkspace),
        ),
        (
            row(Some(a), Some("LOCAL"), Some(" \t\n ".into())),
            Err(SkipReason::BlankContent),
        ),
        (
            row(Some(a), Some("LOCAL"), Some(String::new())),
            Err(SkipReason::BlankContent),
        ),
        (
            row(Some(a), Some("LOCAL"), None),
            Err(SkipReason::BlankContent),
        ),
        (
            row(Some(a), Some("LOCAL"), Some("x".repeat(1100 * 1024))),
            Err(SkipReason::TooLarge),
        ),
    ];
    for ((id, ws, scope, content), outcome) in cases {
        legacy.memory(id, ws, scope, content.as_deref()).await;
        match outcome {
            Ok(ns) => {
                expected.insert(id, ns);
            }
            Err(reason) => {
                skipped.insert(id, reason);
            }
        }
    }
    MappingFixture { expected, skipped }
}

/// The plugin holds exactly the expected rows, in the expected namespaces,
/// with identical content and created_at.
async fn assert_parity(
    legacy: &Legacy,
    target: &TargetPlugin,
    expected: &BTreeMap<Uuid, String>,
    created_at: bool,
) {
    let records = target.records().await;
    let rows = legacy_rows(legacy).await;
    let got_ids: Vec<&Uuid> = records.keys().collect();
    let want_ids: Vec<&Uuid> = expected.keys().collect();
    assert_eq!(
        got_ids, want_ids,
        "the plugin holds exactly the migrated ids"
    );
    for (id, ns) in expected {
        let (got_ns, got_content, got_created) = &records[id];
        let (content, created) = &rows[id];
        assert_eq!(got_ns, ns, "namespace of {id}");
        assert!(
            got_content.as_bytes() == content.as_bytes(),
            "content of {id} byte for byte"
        );
        if created_at {
            assert_eq!(
                got_created.timestamp_micros(),
                created.timestamp_micros(),
                "created_at of {id}"
            );
        }
    }
}

#[tokio::test]
async fn apply_maps_every_scope_and_skips_each_bad_row_with_its_reason() {
    let legacy = Legacy::new().await;
    let fx = mapping_fixture(&legacy).await;
    let target = TargetPlugin::start(false).await;

    let report = apply_report(run(&legacy, &target, &["-apply"]).await);

    assert_eq!(report.write_path, "batch");
    assert_eq!(report.errors, 0, "{report}");
    assert_eq!(report.written as usize, fx.expected.len(), "{report}");
    assert_eq!(
        report.counts.scanned as usize,
        fx.expected.len() + fx.skipped.len()
    );
    let mut want_skips: BTreeMap<SkipReason, u64> = BTreeMap::new();
    for r in fx.skipped.values() {
        *want_skips.entry(*r).or_default() += 1;
    }
    assert_eq!(report.counts.skipped, want_skips);
    for s in &report.counts.skipped_rows.items {
        assert_eq!(fx.skipped.get(&s.id), Some(&s.reason), "skip detail {s:?}");
    }
    // b, c, e (cycle: not a root), g (dangling parent), h55 wrote GLOBAL rows as non-roots.
    assert_eq!(report.counts.global_from_non_root, 5, "{report}");
    assert_eq!(report.counts.removed_workspace_rows, 3);
    assert_eq!(report.counts.per_scope.get(&Scope::Global), Some(&6));
    assert_eq!(report.remaining, 0);
    assert!(report.complete);
    assert_parity(&legacy, &target, &fx.expected, true).await;
}

#[tokio::test]
async fn rerunning_apply_changes_nothing_and_duplicates_nothing() {
    let legacy = Legacy::new().await;
    let fx = mapping_fixture(&legacy).await;
    let target = TargetPlugin::start(false).await;
    let first = apply_report(run(&legacy, &target, &["-apply"]).await);
    assert_eq!(first.errors, 0, "{first}");
    let before = target.records().await;

    let again = apply_report(run(&legacy, &target, &["-apply"]).await);
    assert_eq!(
        (again.scanned(), again.written, again.errors),
        (0, 0, 0),
        "{again}"
    );
    assert_eq!(again.unchanged, legacy.count().await as u64);
    assert_eq!(target.records().await, before);

    // A full pass over everything again rewrites the same rows in place.
    let restart = apply_report(run(&legacy, &target, &["-apply", "-restart"]).await);
    assert_eq!(restart.written as usize, fx.expected.len(), "{restart}");
    assert_eq!(target.records().await, before);
    assert_parity(&legacy, &target, &fx.expected, true).await;
}

trait Scanned {
    fn scanned(&self) -> u64;
}

impl Scanned for memory_backfill::report::ApplyReport {
    fn scanned(&self) -> u64 {
        self.counts.scanned
    }
}

#[tokio::test]
async fn limit_runs_move_distinct_rows_until_done() {
    let legacy = Legacy::new().await;
    let ws = uuid(1);
    legacy.workspace(ws, None, None).await;
    legacy.bulk_local(ws, 95, "limit").await;
    legacy
        .memory(uuid(77), Some(ws), Some("BOGUS"), Some("skipped"))
        .await;
    let total = legacy.count().await as u64;
    let target = TargetPlugin::start(false).await;

    let mut runs = 0;
    let mut scanned_total = 0;
    loop {
        let r =
            apply_report(run(&legacy, &target, &["-apply", "-limit=10", "-batch-rows=3"]).await);
        runs += 1;
        assert_eq!(r.errors, 0, "{r}");
        scanned_total += r.counts.scanned;
        assert_eq!(
            r.counts.scanned,
            10.min(total - (scanned_total - r.counts.scanned))
        );
        assert_eq!(r.remaining, total - scanned_total, "run {runs}: {r}");
        let held = target.records().await.len() as u64;
        assert!(
            held == scanned_total || held + 1 == scanned_total,
            "{held} vs {scanned_total}"
        );
        if r.remaining == 0 {
            break;
        }
        assert!(runs < 20, "limit runs do not converge");
    }
    assert_eq!(runs, 10);
    assert_eq!(scanned_total, total);
    assert_eq!(target.records().await.len(), 95);
}

#[tokio::test]
async fn a_v1_only_plugin_receives_the_same_data() {
    let legacy = Legacy::new().await;
    let fx = mapping_fixture(&legacy).await;
    let target = TargetPlugin::start(true).await;
    assert!(
        !target.plugin.caps.batch && !target.plugin.caps.list && !target.plugin.caps.created_at
    );

    let report = apply_report(run(&legacy, &target, &["-apply", "-concurrency=8"]).await);

    assert_eq!(report.write_path, "single");
    assert_eq!(report.errors, 0, "{report}");
    assert_eq!(report.written as usize, fx.expected.len());
    assert!(report.namespaces_upserted_blind > 0);
    assert!(report.not_carried.contains_key("created_at"), "{report}");
    // created_at cannot travel without the extension; everything else does.
    assert_parity(&legacy, &target, &fx.expected, false).await;

    // Resuming works through v1 too (the checkpoint is a memory, read by search).
    let again = apply_report(run(&legacy, &target, &["-apply"]).await);
    assert_eq!((again.counts.scanned, again.written), (0, 0), "{again}");
}

#[tokio::test]
async fn apply_of_one_workspace_moves_only_its_rows_and_keeps_existing_namespace_metadata() {
    let legacy = Legacy::new().await;
    let (a, b) = (uuid(1), uuid(2));
    legacy.workspace(a, None, None).await;
    legacy.workspace(b, None, None).await;
    legacy.bulk_local(a, 5, "a").await;
    legacy.bulk_local(b, 7, "b").await;
    let target = TargetPlugin::start(false).await;
    // An operator already configured b's namespace; apply must not reset it.
    target
        .plugin
        .client
        .upsert_namespace(
            &format!("workspace:{b}"),
            &memory_contract::NamespaceUpsert {
                kind: memory_contract::NamespaceKind::Workspace,
                expires_at: None,
                metadata: Some(serde_json::json!({"owner": "ops"})),
            },
        )
        .await
        .unwrap();

    let ws_arg = format!("-workspace={b}");
    let r = apply_report(run(&legacy, &target, &["-apply", &ws_arg]).await);
    assert_eq!(
        (r.written, r.errors, r.namespaces_existing),
        (7, 0, 1),
        "{r}"
    );
    let records = target.records().await;
    assert_eq!(records.len(), 7);
    assert!(records
        .values()
        .all(|(ns, _, _)| ns == &format!("workspace:{b}")));
    let ns = target
        .plugin
        .client
        .get_namespace(&format!("workspace:{b}"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ns.metadata, Some(serde_json::json!({"owner": "ops"})));
}

#[tokio::test]
async fn batches_split_by_bytes_and_still_deliver_everything() {
    let legacy = Legacy::new().await;
    let ws = uuid(1);
    legacy.workspace(ws, None, None).await;
    for i in 0..12u128 {
        let content = format!("{i} {}", "z".repeat(40 * 1024));
        legacy
            .memory(uuid(500 + i), Some(ws), Some("LOCAL"), Some(&content))
            .await;
    }
    let target = TargetPlugin::start(false).await;
    let r = apply_report(run(&legacy, &target, &["-apply", "-batch-bytes=65536"]).await);
    assert_eq!((r.written, r.errors), (12, 0), "{r}");
    assert_eq!(target.records().await.len(), 12);
}

#[tokio::test]
async fn a_plugin_that_goes_down_counts_errors_stops_and_fails_the_run() {
    let legacy = Legacy::new().await;
    let ws = uuid(1);
    legacy.workspace(ws, None, None).await;
    legacy.bulk_local(ws, 2000, "down").await;
    let TargetPlugin {
        server,
        plugin,
        db,
        pool,
    } = TargetPlugin::start(false).await;
    server.shutdown().await.unwrap();
    let report = try_run(&legacy, &plugin, &["-apply", "-batch-rows=50"]).await;
    // The checkpoint cannot be read from a plugin that is down: a clear setup error.
    let err = report
        .expect_err("cannot start against a dead plugin")
        .to_string();
    assert!(
        err.contains("checkpoint") && err.contains("transport"),
        "{err}"
    );

    // With -workspace (no checkpoint) rows are attempted: errors counted, run stops early.
    let ws_arg = format!("-workspace={ws}");
    let report = try_run(&legacy, &plugin, &["-apply", "-batch-rows=50", &ws_arg])
        .await
        .expect("runs");
    let r = apply_report(report);
    assert!(r.errors > 0, "{r}");
    assert_eq!(r.written, 0);
    assert_eq!(r.exit_code(), 1);
    assert!(
        r.stopped
            .as_deref()
            .unwrap_or("")
            .contains("failed to reach the plugin"),
        "{r}"
    );
    assert!(
        r.counts.scanned < 2000,
        "stopped early instead of failing every row: {r}"
    );
    assert_eq!(r.remaining, 2000, "{r}");
    drop((db, pool));
}

#[tokio::test]
async fn the_naive_per_row_method_produces_the_same_data_as_apply() {
    let legacy = Legacy::new().await;
    let fx = mapping_fixture(&legacy).await;
    let target = TargetPlugin::start(false).await;
    let schema = legacy.schema().await;
    let r = memory_backfill::naive::apply_naive(&legacy.pool, &target.plugin, &schema, u64::MAX)
        .await
        .expect("naive run");
    assert_eq!(r.errors, 0, "{r:?}");
    assert_eq!(r.written as usize, fx.expected.len());
    assert_eq!(r.skipped as usize, fx.skipped.len());
    assert_parity(&legacy, &target, &fx.expected, true).await;
}
