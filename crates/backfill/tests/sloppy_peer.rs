//! The whole backfill against a v1-only plugin that answers the way the
//! reference Go plugin does: empty lists as `null`, optional fields as
//! `null` (memory_testkit::SloppyPlugin in front of our plugin started
//! v1-only). Dry-run, apply twice and verify must all run clean.

mod common;

use common::*;
use memory_backfill::plugin::Plugin;
use memory_backfill::runner::RunReport;
use memory_testkit::{EmptyList, SloppyPlugin};
use uuid::Uuid;

/// An org root with two children, every scope in every workspace.
async fn org(legacy: &Legacy) -> Vec<Uuid> {
    let root = uuid(1);
    legacy.workspace(root, None, Some("active")).await;
    let mut all = vec![root];
    for k in 0..2u128 {
        let child = uuid(10 + k);
        legacy.workspace(child, Some(root), Some("active")).await;
        all.push(child);
    }
    let mut n = 1000u128;
    for ws in &all {
        for scope in ["LOCAL", "TEAM", "GLOBAL"] {
            for i in 0..3 {
                n += 1;
                let content = format!("{scope} note {i} of {ws}");
                legacy
                    .memory(uuid(n), Some(*ws), Some(scope), Some(&content))
                    .await;
            }
        }
    }
    all
}

async fn run_via(legacy: &Legacy, plugin: &Plugin, args: &[&str]) -> RunReport {
    try_run(legacy, plugin, args)
        .await
        .unwrap_or_else(|e| panic!("{args:?} does not start: {e}"))
}

#[tokio::test]
async fn dry_run_apply_twice_and_verify_run_clean_against_a_v1_plugin_answering_null_lists() {
    for empty in [EmptyList::Null, EmptyList::Absent] {
        let legacy = Legacy::new().await;
        let all = org(&legacy).await;
        let total = legacy.count().await as u64;
        let target = TargetPlugin::start(true).await;
        let sloppy = SloppyPlugin::start(target.url(), empty).await;
        let plugin = connect_plugin(sloppy.url()).await;
        assert!(!plugin.caps.batch && !plugin.caps.list, "{empty:?}");

        let dry = dry_run_report(run_via(&legacy, &plugin, &["-dry-run"]).await);
        assert_eq!(dry.exit_code(), 0, "{empty:?}: {dry}");
        assert_eq!(dry.counts.scanned, total);
        assert!(target.records().await.is_empty(), "dry-run wrote nothing");

        // On a fresh store the checkpoint search answers an empty list.
        let first = apply_report(run_via(&legacy, &plugin, &["-apply"]).await);
        assert_eq!(first.exit_code(), 0, "{empty:?}: {first}");
        assert_eq!((first.written, first.errors), (total, 0), "{first}");
        assert!(first.complete);

        let again = apply_report(run_via(&legacy, &plugin, &["-apply"]).await);
        assert_eq!(again.exit_code(), 0, "{empty:?}: {again}");
        assert_eq!(
            (again.counts.scanned, again.written, again.errors),
            (0, 0, 0),
            "{again}"
        );
        assert_eq!(target.records().await.len() as u64, total);

        for args in [
            &["-verify", "-all"][..],
            &["-verify", "-verify-sample=2", "-seed=3"][..],
        ] {
            let v = verify_report(run_via(&legacy, &plugin, args).await);
            assert_eq!(v.exit_code(), 0, "{empty:?} {args:?}: {v}");
            assert_eq!(v.method, "search");
            assert!(
                v.rows_checked > 0 && v.rows_matched == v.rows_checked,
                "{v}"
            );
        }
        let one = format!("-workspace={}", all[1]);
        let v = verify_report(run_via(&legacy, &plugin, &["-verify", &one]).await);
        assert_eq!(v.exit_code(), 0, "{v}");
        assert!(
            sloppy.lists_rewritten() > 0,
            "{empty:?}: the proxy rewrote empty lists"
        );
    }
}
