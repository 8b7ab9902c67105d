//! The checkpoint namespace `custom:memory-backfill`: named in the dry-run
//! and apply summaries, kept by `-apply`, never counted by verify as a
//! plugin row, and removed by `-forget-checkpoint`.

mod common;

use common::*;
use memory_backfill::checkpoint::CHECKPOINT_NAMESPACE;
use memory_backfill::runner::RunReport;
use memory_contract::{MemoryKind, MemorySource, MemoryWrite};
use uuid::Uuid;

fn forget_report(r: RunReport) -> memory_backfill::checkpoint::ForgetReport {
    match r {
        RunReport::ForgetCheckpoint(f) => f,
        other => panic!("expected a forget-checkpoint report, got {other:?}"),
    }
}

/// A root with a child, rows of every scope.
async fn fixture(legacy: &Legacy) {
    let (root, child) = (uuid(1), uuid(2));
    legacy.workspace(root, None, Some("active")).await;
    legacy.workspace(child, Some(root), Some("active")).await;
    let mut n = 100u128;
    for ws in [root, child] {
        for scope in ["LOCAL", "TEAM", "GLOBAL"] {
            for i in 0..4 {
                n += 1;
                let content = format!("{scope} row {i} of {ws}");
                legacy
                    .memory(uuid(n), Some(ws), Some(scope), Some(&content))
                    .await;
            }
        }
    }
}

/// Ids of the memories stored in the checkpoint namespace, read directly.
async fn checkpoint_rows(target: &TargetPlugin) -> Vec<Uuid> {
    sqlx::query_scalar(
        "SELECT id FROM memory_plugin.memory_records WHERE namespace = $1 ORDER BY id",
    )
    .bind(CHECKPOINT_NAMESPACE)
    .fetch_all(&target.pool)
    .await
    .expect("read the checkpoint namespace")
}

async fn namespace_exists(target: &TargetPlugin) -> bool {
    sqlx::query_scalar("SELECT count(*) > 0 FROM memory_plugin.memory_namespaces WHERE name = $1")
        .bind(CHECKPOINT_NAMESPACE)
        .fetch_one(&target.pool)
        .await
        .expect("read namespaces")
}

/// Scan requests the plugin has served, from its own metrics.
async fn scan_requests(target: &TargetPlugin) -> u64 {
    let text = reqwest::get(format!("{}/metrics", target.url()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|l| {
            l.starts_with(
                "memory_plugin_http_requests_total{method=\"GET\",route=\"/v1/memories\",",
            )
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn summaries_name_the_checkpoint_apply_keeps_it_verify_ignores_it_forget_removes_it() {
    let legacy = Legacy::new().await;
    fixture(&legacy).await;
    let total = legacy.count().await as u64;
    let target = TargetPlugin::start(false).await;

    let dry = dry_run_report(run(&legacy, &target, &["-dry-run"]).await);
    assert_eq!(dry.checkpoint_namespace, Some(CHECKPOINT_NAMESPACE));
    let slot = dry
        .checkpoint_id
        .expect("the dry-run names the checkpoint memory");
    let text = dry.to_string();
    assert!(
        text.contains(&format!(
            "checkpoint memory:  {slot} in {CHECKPOINT_NAMESPACE}"
        )),
        "{text}"
    );

    let applied = apply_report(run(&legacy, &target, &["-apply"]).await);
    assert_eq!((applied.written, applied.errors), (total, 0), "{applied}");
    assert_eq!(
        (applied.checkpoint_namespace, applied.checkpoint_id),
        (Some(CHECKPOINT_NAMESPACE), Some(slot))
    );
    let text = applied.to_string();
    assert!(
        text.contains(&format!("{slot} in {CHECKPOINT_NAMESPACE}"))
            && text.contains("-forget-checkpoint"),
        "{text}"
    );
    assert_eq!(checkpoint_rows(&target).await, vec![slot], "apply keeps it");
    let again = apply_report(run(&legacy, &target, &["-apply"]).await);
    assert_eq!(again.counts.scanned, 0, "{again}");
    assert_eq!(checkpoint_rows(&target).await, vec![slot]);

    // Verify: the checkpoint is not a plugin row. The checksum method takes
    // it out of its bucket, so no bucket differs and nothing is scanned.
    let scans_before = scan_requests(&target).await;
    let v = verify_report(run(&legacy, &target, &["-verify", "-all"]).await);
    assert_eq!(v.exit_code(), 0, "{v}");
    assert_eq!(v.method, "checksum", "{v}");
    assert!(v.warnings.is_empty(), "{v}");
    assert_eq!((v.rows_checked, v.rows_matched), (total, total), "{v}");
    assert_eq!(
        scan_requests(&target).await,
        scans_before,
        "no bucket had to be merged"
    );
    for method in ["scan", "list"] {
        let arg = format!("-verify-method={method}");
        let v = verify_report(run(&legacy, &target, &["-verify", "-all", &arg]).await);
        assert_eq!(v.exit_code(), 0, "{method}: {v}");
        assert_eq!(v.rows_matched, total, "{method}: {v}");
    }

    // -forget-checkpoint removes it, and the namespace with it.
    let forgot = forget_report(run(&legacy, &target, &["-forget-checkpoint"]).await);
    assert_eq!(forgot.exit_code(), 0, "{forgot}");
    assert!(forgot.removed && forgot.namespace_deleted, "{forgot}");
    assert_eq!(forgot.complete, Some(true));
    assert_eq!(forgot.checkpoint_id, slot);
    assert!(forgot.warnings.is_empty(), "{forgot}");
    assert!(checkpoint_rows(&target).await.is_empty());
    assert!(!namespace_exists(&target).await);
    assert_eq!(target.records().await.len() as u64, total, "data untouched");

    // Again: nothing to remove, still a success.
    let twice = forget_report(run(&legacy, &target, &["-forget-checkpoint"]).await);
    assert_eq!(twice.exit_code(), 0, "{twice}");
    assert!(!twice.removed && !twice.namespace_deleted, "{twice}");
    assert!(twice.to_string().contains("none stored"), "{twice}");

    let v = verify_report(run(&legacy, &target, &["-verify", "-all"]).await);
    assert_eq!(v.exit_code(), 0, "{v}");

    // Without a checkpoint, apply passes over the whole table again.
    let fresh = apply_report(run(&legacy, &target, &["-apply"]).await);
    assert_eq!(
        (fresh.counts.scanned, fresh.written, fresh.errors),
        (total, total, 0),
        "{fresh}"
    );
    assert_eq!(checkpoint_rows(&target).await, vec![slot]);
}

#[tokio::test]
async fn forget_checkpoint_keeps_other_tables_checkpoints_and_warns_on_an_incomplete_one() {
    let legacy = Legacy::new().await;
    fixture(&legacy).await;
    let target = TargetPlugin::start(true).await;
    let client = &target.plugin.client;

    let partial = apply_report(run(&legacy, &target, &["-apply", "-limit=5"]).await);
    assert!(!partial.complete, "{partial}");
    let slot = partial.checkpoint_id.expect("checkpoint memory");
    // Another legacy table's checkpoint in the same namespace.
    let mut other = MemoryWrite::new(
        r#"{"cursor":null,"complete":true,"source":"other/public","updated_at":"2026-01-01T00:00:00Z"}"#,
        MemoryKind::Checkpoint,
        MemorySource::Runtime,
    );
    let other_id = Uuid::new_v4();
    other.id = Some(other_id);
    client
        .write_memory(CHECKPOINT_NAMESPACE, &other)
        .await
        .expect("write another checkpoint");

    let forgot = forget_report(run(&legacy, &target, &["-forget-checkpoint"]).await);
    assert_eq!(forgot.exit_code(), 0, "{forgot}");
    assert!(forgot.removed, "{forgot}");
    assert_eq!(forgot.complete, Some(false));
    assert_eq!((forgot.namespace_deleted, forgot.others_left), (false, 1));
    assert!(
        forgot.warnings.iter().any(|w| w.contains("first row")),
        "{forgot}"
    );
    assert_eq!(checkpoint_rows(&target).await, vec![other_id]);
    assert_ne!(slot, other_id);
}
