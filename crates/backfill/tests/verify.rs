//! `-verify` and `-dry-run` against real legacy tables and our plugin.

mod common;

use common::*;
use memory_backfill::mapping::SkipReason;
use memory_backfill::verify::{MismatchKind, VerifyReport};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Three roots with two children each, LOCAL/TEAM/GLOBAL rows everywhere, a
/// removed workspace, and one skipped row.
async fn small_org(legacy: &Legacy) -> Vec<Uuid> {
    let mut all = Vec::new();
    for r in 0..3u128 {
        let root = uuid(10 + r);
        legacy.workspace(root, None, None).await;
        all.push(root);
        for k in 0..2u128 {
            let child = uuid(100 + r * 10 + k);
            let status = if r == 2 && k == 1 {
                Some("removed")
            } else {
                Some("active")
            };
            legacy.workspace(child, Some(root), status).await;
            all.push(child);
        }
    }
    let mut n = 5000u128;
    for ws in &all {
        for scope in ["LOCAL", "TEAM", "GLOBAL"] {
            for i in 0..2 {
                n += 1;
                let content = format!("{scope} note {i} of {ws}: ünïcødé ✓");
                legacy
                    .memory(uuid(n), Some(*ws), Some(scope), Some(&content))
                    .await;
            }
        }
    }
    // A duplicated content in one workspace (multiset, not set).
    legacy
        .memory(uuid(9001), Some(all[1]), Some("LOCAL"), Some("same words"))
        .await;
    legacy
        .memory(uuid(9002), Some(all[1]), Some("LOCAL"), Some("same words"))
        .await;
    legacy
        .memory(uuid(9003), Some(all[1]), Some("LOCAL"), Some("   "))
        .await;
    all
}

async fn applied(v1_only: bool) -> (Legacy, TargetPlugin, Vec<Uuid>) {
    let legacy = Legacy::new().await;
    let all = small_org(&legacy).await;
    let target = TargetPlugin::start(v1_only).await;
    let r = apply_report(run(&legacy, &target, &["-apply"]).await);
    assert_eq!(r.errors, 0, "{r}");
    (legacy, target, all)
}

#[tokio::test]
async fn verify_passes_after_apply_on_a_sample_one_workspace_and_all() {
    let (legacy, target, all) = applied(false).await;

    let sample = verify_report(
        run(
            &legacy,
            &target,
            &["-verify", "-verify-sample=4", "-seed=7"],
        )
        .await,
    );
    assert_eq!(sample.exit_code(), 0, "{sample}");
    assert_eq!(sample.workspaces_checked, 4);
    assert!(sample.rows_checked > 0 && sample.rows_checked == sample.rows_matched);

    let ws_arg = format!("-workspace={}", all[1]);
    let one = verify_report(run(&legacy, &target, &["-verify", &ws_arg]).await);
    assert_eq!(one.exit_code(), 0, "{one}");
    // 6 rows of its own plus 2 duplicates; the blank row is listed as skipped.
    assert_eq!(one.rows_matched, 8, "{one}");
    assert_eq!(one.skipped.get(&SkipReason::BlankContent), Some(&1));

    // -all compares digests per id bucket; one scan and the per-namespace
    // lists agree.
    for (args, method) in [
        (&["-verify", "-all"][..], "checksum"),
        (&["-verify", "-all", "-verify-method=scan"][..], "scan"),
        (&["-verify", "-all", "-verify-method=list"][..], "list"),
    ] {
        let every = verify_report(run(&legacy, &target, args).await);
        assert_eq!(every.exit_code(), 0, "{every}");
        assert_eq!(every.rows_checked, legacy.count().await as u64 - 1);
        assert_eq!(every.rows_matched, every.rows_checked);
        assert_eq!(every.skipped.get(&SkipReason::BlankContent), Some(&1));
        assert_eq!(every.method, method);
    }
    let sample = verify_report(run(&legacy, &target, &["-verify", "-verify-sample=3"]).await);
    assert_eq!(sample.method, "list", "a sample lists its namespaces");
}

#[tokio::test]
async fn samples_skip_removed_workspaces_and_repeat_with_the_same_seed() {
    let (legacy, target, all) = applied(false).await;
    let removed = all[8];
    let first = verify_report(
        run(
            &legacy,
            &target,
            &["-verify", "-verify-sample=8", "-seed=42"],
        )
        .await,
    );
    let second = verify_report(
        run(
            &legacy,
            &target,
            &["-verify", "-verify-sample=8", "-seed=42"],
        )
        .await,
    );
    assert_eq!(first.sampled, second.sampled);
    assert_eq!(first.sampled.len(), 8, "9 workspaces, one removed");
    assert!(!first.sampled.contains(&removed));

    // NULL status is not removed; no status column at all: warn, sample all.
    sqlx::query("ALTER TABLE workspaces DROP COLUMN status")
        .execute(&legacy.pool)
        .await
        .unwrap();
    let no_status = verify_report(run(&legacy, &target, &["-verify", "-verify-sample=50"]).await);
    assert_eq!(no_status.workspaces_checked, 9);
    assert!(
        no_status.warnings.iter().any(|w| w.contains("status")),
        "{no_status}"
    );
    assert_eq!(no_status.exit_code(), 0, "{no_status}");
}

#[tokio::test]
async fn injected_faults_are_found_exactly_with_their_kinds() {
    let (legacy, target, all) = applied(false).await;
    let records = target.records().await;
    let ids: Vec<Uuid> = records
        .iter()
        .filter(|(_, (ns, _, _))| ns.starts_with("workspace:"))
        .map(|(id, _)| *id)
        .collect();
    let (deleted1, deleted2, changed, moved, shifted) = (ids[0], ids[1], ids[2], ids[3], ids[4]);
    let other_ns = format!("workspace:{}", all[0]);
    let moved_to = if records[&moved].0 == other_ns {
        format!("workspace:{}", all[2])
    } else {
        other_ns
    };
    target
        .exec(&format!(
            "DELETE FROM memory_plugin.memory_records WHERE id IN ('{deleted1}', '{deleted2}');
             UPDATE memory_plugin.memory_records SET content = content || ' (edited)' WHERE id = '{changed}';
             UPDATE memory_plugin.memory_records SET namespace = '{moved_to}' WHERE id = '{moved}';
             UPDATE memory_plugin.memory_records SET created_at = created_at + interval '1 second' WHERE id = '{shifted}';"
        ))
        .await;

    for method in ["checksum", "scan", "list"] {
        let method_arg = format!("-verify-method={method}");
        let v = verify_report(run(&legacy, &target, &["-verify", "-all", &method_arg]).await);
        assert_eq!((v.exit_code(), v.method), (1, method), "{v}");
        let want: BTreeMap<MismatchKind, u64> = [
            (MismatchKind::Missing, 2),
            (MismatchKind::ContentDiffers, 1),
            (MismatchKind::WrongNamespace, 1),
            (MismatchKind::CreatedAtDiffers, 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(v.mismatch_counts, want, "{method}: {v}");
        let by_id: BTreeMap<Uuid, MismatchKind> =
            v.mismatches.items.iter().map(|m| (m.id, m.kind)).collect();
        assert_eq!(by_id[&deleted1], MismatchKind::Missing);
        assert_eq!(by_id[&deleted2], MismatchKind::Missing);
        assert_eq!(by_id[&changed], MismatchKind::ContentDiffers);
        assert_eq!(by_id[&moved], MismatchKind::WrongNamespace);
        assert_eq!(by_id[&shifted], MismatchKind::CreatedAtDiffers);
        let moved_report = v.mismatches.items.iter().find(|m| m.id == moved).unwrap();
        assert_eq!(
            moved_report.found_namespace.as_deref(),
            Some(moved_to.as_str())
        );
        for m in &v.mismatches.items {
            assert!(
                m.excerpt.contains("note"),
                "excerpt of the legacy content: {m:?}"
            );
        }
        let text = v.to_string();
        assert!(text.contains("missing") && text.contains("FAIL"), "{text}");
    }

    // The same faults seen by a one-workspace verify of an affected workspace.
    let owner = legacy_owner(&legacy, deleted1).await;
    let ws_arg = format!("-workspace={owner}");
    let one = verify_report(run(&legacy, &target, &["-verify", &ws_arg]).await);
    assert!(
        one.mismatch_counts
            .get(&MismatchKind::Missing)
            .copied()
            .unwrap_or(0)
            >= 1,
        "{one}"
    );
}

async fn legacy_owner(legacy: &Legacy, id: Uuid) -> Uuid {
    sqlx::query_scalar("SELECT workspace_id FROM agent_memories WHERE id = $1")
        .bind(id)
        .fetch_one(&legacy.pool)
        .await
        .unwrap()
}

/// One workspace of 150 memories applied to a plugin (`v1_only` or not)
/// and verified: all match.
async fn a_workspace_of_150_applied_and_verified(
    v1_only: bool,
) -> (Legacy, TargetPlugin, VerifyReport) {
    let legacy = Legacy::new().await;
    let ws = uuid(1);
    legacy.workspace(ws, None, None).await;
    legacy.bulk_local(ws, 150, "big").await;
    let target = TargetPlugin::start(v1_only).await;
    assert_eq!(
        apply_report(run(&legacy, &target, &["-apply"]).await).written,
        150
    );
    let ws_arg = format!("-workspace={ws}");
    let v = verify_report(run(&legacy, &target, &["-verify", &ws_arg]).await);
    assert_eq!((v.exit_code(), v.rows_matched), (0, 150), "{v}");
    (legacy, target, v)
}

#[tokio::test]
async fn a_workspace_with_150_memories_verifies_cleanly_with_list() {
    a_workspace_of_150_applied_and_verified(false).await;
}

#[tokio::test]
async fn a_workspace_with_150_memories_verifies_cleanly_without_list() {
    let (legacy, target, v) = a_workspace_of_150_applied_and_verified(true).await;
    assert_eq!(v.method, "search");
    let ws_arg = format!("-workspace={}", uuid(1));

    // A deletion in a namespace too big to see whole is unverified, never a false
    // mismatch; in a small namespace it is a definite `missing`.
    let victim: Uuid =
        sqlx::query_scalar("SELECT id FROM agent_memories ORDER BY created_at LIMIT 1")
            .fetch_one(&legacy.pool)
            .await
            .unwrap();
    target
        .exec(&format!(
            "DELETE FROM memory_plugin.memory_records WHERE id = '{victim}'"
        ))
        .await;
    let v = verify_report(run(&legacy, &target, &["-verify", &ws_arg]).await);
    assert_eq!(v.exit_code(), 1);
    assert_eq!(v.mismatches.total() + v.unverified.total(), 1, "{v}");
}

#[tokio::test]
async fn v1_verify_finds_faults_in_small_namespaces() {
    let (legacy, target, _all) = applied(true).await;
    let clean = verify_report(run(&legacy, &target, &["-verify", "-all"]).await);
    assert_eq!(clean.exit_code(), 0, "{clean}");
    let records = target.records().await;
    let (victim, changed) = {
        let mut it = records.keys();
        (*it.next().unwrap(), *it.next().unwrap())
    };
    target
        .exec(&format!(
            "DELETE FROM memory_plugin.memory_records WHERE id = '{victim}';
             UPDATE memory_plugin.memory_records SET content = 'other words entirely' WHERE id = '{changed}';"
        ))
        .await;
    let v = verify_report(run(&legacy, &target, &["-verify", "-all"]).await);
    assert_eq!(v.exit_code(), 1);
    assert_eq!(
        v.mismatch_counts.get(&MismatchKind::Missing),
        Some(&1),
        "{v}"
    );
    assert_eq!(
        v.mismatch_counts.get(&MismatchKind::ContentDiffers),
        Some(&1),
        "{v}"
    );
    assert_eq!(v.unverified.total(), 0, "{v}");
}

#[tokio::test]
async fn verify_against_a_plugin_that_went_down_counts_errors_and_fails() {
    let (legacy, target, _all) = applied(false).await;
    let TargetPlugin {
        server,
        plugin,
        db,
        pool,
    } = target;
    server.shutdown().await.unwrap();
    for (method, message) in [
        ("checksum", "did not give its checksums"),
        ("scan", "cannot scan"),
        ("list", "cannot list"),
    ] {
        let method_arg = format!("-verify-method={method}");
        let report = try_run(&legacy, &plugin, &["-verify", "-all", &method_arg])
            .await
            .unwrap();
        let v = verify_report(report);
        assert!(v.errors > 0, "{v}");
        assert_eq!(v.exit_code(), 1);
        assert_eq!(v.rows_matched, 0, "{v}");
        assert!(v.to_string().contains(message), "{v}");
    }
    drop((db, pool));
}

#[tokio::test]
async fn dry_run_writes_nothing_and_counts_everything() {
    let legacy = Legacy::new().await;
    let all = small_org(&legacy).await;
    sqlx::query("UPDATE agent_memories SET namespace = 'notes', updated_at = updated_at + interval '1 day' WHERE scope = 'TEAM'")
        .execute(&legacy.pool)
        .await
        .unwrap();
    let target = TargetPlugin::start(false).await;
    let d = dry_run_report(run(&legacy, &target, &["-dry-run"]).await);
    assert_eq!(d.exit_code(), 0, "{d}");
    assert_eq!(d.counts.scanned, legacy.count().await as u64);
    assert_eq!(d.counts.skipped.get(&SkipReason::BlankContent), Some(&1));
    assert_eq!(
        d.counts.per_namespace_kind.get("org"),
        Some(&(all.len() as u64 * 2))
    );
    assert_eq!(d.namespaces_needed.get("org"), Some(&3));
    assert_eq!(
        d.not_carried.get("updated_at"),
        Some(&(all.len() as u64 * 2))
    );
    assert_eq!(
        d.not_carried.get("namespace (label)"),
        Some(&(all.len() as u64 * 2))
    );
    let diff = d.diff.clone().expect("list plugin: a diff");
    assert_eq!(
        (diff.new, diff.identical, diff.different),
        (d.counts.scanned - 1, 0, 0)
    );
    assert!(target.records().await.is_empty());
    let namespaces: i64 =
        sqlx::query_scalar("SELECT count(*) FROM memory_plugin.memory_namespaces")
            .fetch_one(&target.pool)
            .await
            .unwrap();
    assert_eq!(namespaces, 0, "dry-run created namespaces");

    // After apply and one edit: identical, different and new are told apart.
    apply_report(run(&legacy, &target, &["-apply"]).await);
    let some: Uuid = *target.records().await.keys().next().unwrap();
    target
        .exec(&format!(
            "UPDATE memory_plugin.memory_records SET content = 'changed' WHERE id = '{some}'"
        ))
        .await;
    legacy
        .memory(
            uuid(777_777),
            Some(all[0]),
            Some("LOCAL"),
            Some("brand new"),
        )
        .await;
    let d = dry_run_report(run(&legacy, &target, &["-dry-run"]).await);
    let diff = d.diff.expect("diff");
    assert_eq!((diff.new, diff.different), (1, 1), "{diff:?}");
    assert_eq!(diff.identical, d.counts.scanned - 3);
}

#[tokio::test]
async fn v1_dry_run_lists_namespaces_an_upsert_would_reset() {
    let legacy = Legacy::new().await;
    let ws = uuid(1);
    legacy.workspace(ws, None, None).await;
    legacy.bulk_local(ws, 3, "x").await;
    let target = TargetPlugin::start(true).await;
    let ns = format!("workspace:{ws}");
    let d = dry_run_report(run(&legacy, &target, &["-dry-run"]).await);
    assert_eq!(d.namespaces_reset_by_upsert.total(), 0);
    assert!(d.diff.is_none());
    apply_report(run(&legacy, &target, &["-apply"]).await);
    let d = dry_run_report(run(&legacy, &target, &["-dry-run"]).await);
    assert_eq!(d.namespaces_reset_by_upsert.items, vec![ns.clone()]);
    assert!(d.to_string().contains(&ns));
}

#[tokio::test]
async fn verify_of_an_unknown_workspace_lists_its_rows_as_skipped() {
    let legacy = Legacy::new().await;
    let ghost = uuid(4242);
    legacy
        .memory(uuid(1), Some(ghost), Some("LOCAL"), Some("orphan"))
        .await;
    legacy
        .memory(uuid(2), Some(ghost), Some("WHATEVER"), Some("odd scope"))
        .await;
    let target = TargetPlugin::start(false).await;
    let ws_arg = format!("-workspace={ghost}");
    let v = verify_report(run(&legacy, &target, &["-verify", &ws_arg]).await);
    assert_eq!(
        v.skipped.get(&SkipReason::DanglingWorkspace),
        Some(&1),
        "{v}"
    );
    assert_eq!(v.skipped.get(&SkipReason::UnknownScope), Some(&1), "{v}");
    assert_eq!((v.rows_checked, v.mismatches.total()), (0, 0));
    assert!(v
        .warnings
        .iter()
        .any(|w| w.contains("not in the workspaces table")));
}

#[tokio::test]
async fn both_exact_methods_list_the_rows_apply_skips() {
    let (legacy, target, all) = applied(false).await;
    legacy
        .memory(
            uuid(7001),
            Some(all[0]),
            Some("SOMETIMES"),
            Some("odd scope"),
        )
        .await;
    legacy
        .memory(uuid(7002), None, Some("LOCAL"), Some("nobody's"))
        .await;
    legacy
        .memory(uuid(7003), Some(uuid(4242)), Some("TEAM"), Some("orphan"))
        .await;
    legacy
        .memory(
            uuid(7004),
            Some(all[2]),
            Some(" team "),
            Some("loose scope"),
        )
        .await;
    let want: BTreeMap<SkipReason, u64> = [
        (SkipReason::UnknownScope, 1),
        (SkipReason::NoWorkspace, 1),
        (SkipReason::DanglingWorkspace, 1),
        (SkipReason::BlankContent, 1),
    ]
    .into_iter()
    .collect();
    let mut checked = Vec::new();
    for method in ["checksum", "scan", "list"] {
        let method_arg = format!("-verify-method={method}");
        let v = verify_report(run(&legacy, &target, &["-verify", "-all", &method_arg]).await);
        assert_eq!(v.skipped, want, "{method}: {v}");
        // The loosely spelled TEAM row was never applied: missing, not skipped.
        assert_eq!(
            v.mismatch_counts.get(&MismatchKind::Missing),
            Some(&1),
            "{v}"
        );
        assert_eq!(v.mismatches.items[0].id, uuid(7004));
        assert_eq!(v.exit_code(), 1);
        checked.push(v.rows_checked);
    }
    assert_eq!(checked[0], checked[1]);
    assert_eq!(checked[1], checked[2]);
}

#[tokio::test]
async fn scan_is_refused_without_all_or_when_the_plugin_lacks_it() {
    let (legacy, target, _all) = applied(true).await;
    let err = try_run(
        &legacy,
        &target.plugin,
        &["-verify", "-all", "-verify-method=scan"],
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("does not advertise"), "{err}");
    let usage = memory_backfill::cli::parse(["-verify", "-verify-method=scan"]).unwrap_err();
    assert!(usage.to_string().contains("needs -all"), "{usage}");
    let usage = memory_backfill::cli::parse(["-verify", "-verify-method=checksum"]).unwrap_err();
    assert!(usage.to_string().contains("needs -all"), "{usage}");
    let err = try_run(
        &legacy,
        &target.plugin,
        &["-verify", "-all", "-verify-method=checksum"],
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("\"checksum\""), "{err}");
}

/// Rows off the checksum's fast path (odd scope spellings, content that
/// starts with whitespace or beyond ASCII, large or blank content, no
/// created_at) are judged as apply judges them, so checksum, scan and list
/// agree.
#[tokio::test]
async fn checksum_agrees_with_scan_on_rows_off_its_fast_path() {
    let legacy = Legacy::new().await;
    let root = Uuid::new_v4();
    let child = Uuid::new_v4();
    legacy.workspace(root, None, Some("active")).await;
    legacy.workspace(child, Some(root), None).await;
    legacy.bulk_local(child, 400, "bulk").await;
    let big = "long ".repeat(40_000);
    let edge_rows: Vec<(Option<&str>, Option<&str>)> = vec![
        (Some("LOCAL"), Some("\u{a0}\u{3000}\u{2029}")), // Unicode blank: skipped
        (Some("LOCAL"), Some("\u{200b}")),               // not whitespace: written
        (Some("TEAM"), Some("unit\u{1f}separator inside")),
        (Some("global"), Some("lower-case scope")),
        (Some(" TEAM"), Some("padded scope")),
        (Some("GLOBAL"), Some(big.as_str())), // far above the SQL's size bound
        (Some("LOCAL"), None),                // NULL content: skipped
        (Some("NEVER"), Some("unknown scope")),
        (Some("LOCAL"), Some("no created_at")),
        (Some("TEAM"), Some("ünïcødé first")),
        (Some("LOCAL"), Some("  leading spaces")),
    ];
    let mut ids = Vec::new();
    for (scope, content) in &edge_rows {
        let id = Uuid::new_v4();
        legacy.memory(id, Some(child), *scope, *content).await;
        ids.push(id);
    }
    sqlx::raw_sql(&format!(
        "ALTER TABLE agent_memories ALTER COLUMN created_at DROP NOT NULL;
         UPDATE agent_memories SET created_at = NULL WHERE id = '{}'",
        ids[8]
    ))
    .execute(&legacy.pool)
    .await
    .unwrap();
    let target = TargetPlugin::start(false).await;
    let r = apply_report(run(&legacy, &target, &["-apply"]).await);
    assert_eq!(r.errors, 0, "{r}");

    let mut reports = Vec::new();
    for method in ["checksum", "scan", "list"] {
        let method_arg = format!("-verify-method={method}");
        let v = verify_report(run(&legacy, &target, &["-verify", "-all", &method_arg]).await);
        assert_eq!((v.exit_code(), v.method), (0, method), "{v}");
        assert!(v.warnings.is_empty(), "{v}");
        reports.push(v);
    }
    let want: BTreeMap<SkipReason, u64> =
        [(SkipReason::UnknownScope, 1), (SkipReason::BlankContent, 2)]
            .into_iter()
            .collect();
    for v in &reports {
        assert_eq!(v.skipped, want, "{v}");
        assert_eq!(v.rows_checked, 400 + 8, "{v}");
        assert_eq!(v.rows_matched, v.rows_checked, "{v}");
    }

    // A fault on such a row is found by the merge of its bucket.
    let moved = ids[3];
    target
        .exec(&format!(
            "UPDATE memory_plugin.memory_records SET content = 'changed' WHERE id = '{moved}'"
        ))
        .await;
    let v = verify_report(run(&legacy, &target, &["-verify", "-all"]).await);
    assert_eq!((v.exit_code(), v.method), (1, "checksum"), "{v}");
    assert_eq!(
        v.mismatch_counts.get(&MismatchKind::ContentDiffers),
        Some(&1)
    );
    assert_eq!(v.mismatches.items[0].id, moved);
    assert_eq!(v.skipped, want, "skips are listed once: {v}");
}

/// Memories the legacy table never held are fine; when they touch most
/// buckets, the check merges every row instead and says so.
#[tokio::test]
async fn checksum_accepts_extra_plugin_rows_and_falls_back_when_most_buckets_differ() {
    let (legacy, target, all) = applied(false).await;
    let extra_ns = format!("workspace:{}", all[0]);
    let few = (0..5)
        .map(|i| {
            format!(
                "('{}', '{extra_ns}', 'agent note {i}', 'fact', 'agent', now())",
                Uuid::new_v4()
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    target
        .exec(&format!(
            "INSERT INTO memory_plugin.memory_records (id, namespace, content, kind, source, created_at)
             VALUES {few}"
        ))
        .await;
    let v = verify_report(run(&legacy, &target, &["-verify", "-all"]).await);
    assert_eq!((v.exit_code(), v.method), (0, "checksum"), "{v}");
    assert_eq!(v.rows_matched, legacy.count().await as u64 - 1, "{v}");

    target
        .exec(&format!(
            "INSERT INTO memory_plugin.memory_records (id, namespace, content, kind, source, created_at)
             SELECT gen_random_uuid(), '{extra_ns}', 'agent note ' || g, 'fact', 'agent', now()
               FROM generate_series(1, 3000) g"
        ))
        .await;
    let v = verify_report(run(&legacy, &target, &["-verify", "-all"]).await);
    assert_eq!((v.exit_code(), v.method), (0, "scan"), "{v}");
    assert!(
        v.warnings.iter().any(|w| w.contains("buckets differ")),
        "{v}"
    );
    assert_eq!(v.rows_matched, legacy.count().await as u64 - 1, "{v}");
    assert_eq!(v.skipped.get(&SkipReason::BlankContent), Some(&1), "{v}");
}
