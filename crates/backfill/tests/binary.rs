//! The real `memory-backfill` binary: exit codes, messages, secrets, and a
//! run killed in the middle.

mod common;

use common::*;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The legacy URL the way operators write it: sslmode and search_path as
/// query parameters.
fn operator_url(legacy: &Legacy) -> String {
    let base = legacy.db.url();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}sslmode=disable&search_path=public")
}

#[test]
fn usage_errors_exit_2_with_a_message() {
    for (args, needle) in [
        (vec![], "no mode"),
        (vec!["-apply", "-verify"], "exactly one mode"),
        (vec!["-apply", "-limit=ten"], "-limit"),
        (
            vec!["--verify", "--all", "--verify-sample", "3"],
            "cannot be combined",
        ),
        (vec!["-apply", "-nonsense"], "unknown flag"),
    ] {
        let o = backfill(&args, &[]);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let help = backfill(&["--help"], &[]);
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help).0.contains("-verify-sample=N"));
}

#[test]
fn missing_or_malformed_environment_exits_2_naming_the_variable_without_the_password() {
    let o = backfill(
        &["-dry-run"],
        &[("MEMORY_PLUGIN_URL", "http://127.0.0.1:1")],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("DATABASE_URL"), "{}", text(&o).1);

    let o = backfill(
        &["-dry-run"],
        &[
            ("DATABASE_URL", "mysql://admin:hunter2secret@db/x"),
            ("MEMORY_PLUGIN_URL", "http://127.0.0.1:1"),
        ],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(err.contains("DATABASE_URL"), "{err}");
    assert!(
        !err.contains("hunter2secret") && !out.contains("hunter2secret"),
        "{err}"
    );

    let o = backfill(
        &["-apply"],
        &[
            ("DATABASE_URL", "postgres://u:hunter2secret@127.0.0.1:1/x"),
            ("MEMORY_PLUGIN_URL", "not a url"),
        ],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err.contains("MEMORY_PLUGIN_URL") && !err.contains("hunter2secret"),
        "{err}"
    );
}

#[test]
fn an_unreachable_database_is_one_line_exit_2_and_never_shows_the_password() {
    // Port 1 refuses connections.
    let o = backfill(
        &["-apply"],
        &[
            (
                "DATABASE_URL",
                "postgres://app:hunter2secret@127.0.0.1:1/legacy?sslmode=disable",
            ),
            ("MEMORY_PLUGIN_URL", "http://127.0.0.1:1"),
        ],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("legacy database") && err.contains("app:***@"),
        "{err}"
    );
    assert!(!err.contains("hunter2secret") && !out.contains("hunter2secret"));
}

#[tokio::test]
async fn an_unreachable_plugin_is_one_line_exit_2() {
    let legacy = Legacy::new().await;
    let url = operator_url(&legacy);
    let o = tokio::task::spawn_blocking(move || {
        backfill(
            &["-dry-run"],
            &[
                ("DATABASE_URL", &url),
                ("MEMORY_PLUGIN_URL", "http://127.0.0.1:1"),
            ],
        )
    })
    .await
    .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("plugin at http://127.0.0.1:1/ is unreachable"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[tokio::test]
async fn runbook_spellings_run_end_to_end_with_json_reports() {
    let legacy = Legacy::new().await;
    let ws = uuid(1);
    legacy.workspace(ws, None, None).await;
    legacy.bulk_local(ws, 30, "cli").await;
    let target = TargetPlugin::start(false).await;
    let env = [
        ("DATABASE_URL".to_string(), operator_url(&legacy)),
        ("MEMORY_PLUGIN_URL".to_string(), target.url().to_string()),
    ];
    let run_bin = |args: Vec<String>| {
        let env = env.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            backfill(&args, &env)
        })
    };
    let o = run_bin(vec!["-dry-run".into()]).await.unwrap();
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert!(text(&o).0.contains("dry-run summary"));

    let o = run_bin(vec![
        "--apply".into(),
        "--limit".into(),
        "10".into(),
        "--json".into(),
    ])
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json report");
    assert_eq!(
        (j["written"].as_u64(), j["remaining"].as_u64()),
        (Some(10), Some(20)),
        "{j}"
    );

    let o = run_bin(vec!["-apply".into(), "-limit=10000".into()])
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert!(
        text(&o).0.contains("remaining:          0"),
        "{}",
        text(&o).0
    );

    let o = run_bin(vec![
        "-verify".into(),
        format!("-workspace={ws}"),
        "-json".into(),
    ])
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json report");
    assert_eq!(j["rows_matched"].as_u64(), Some(30));

    let o = run_bin(vec!["-verify".into(), "-verify-sample=200".into()])
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));

    // A fault makes verify exit 1.
    target.exec("DELETE FROM memory_plugin.memory_records WHERE namespace LIKE 'workspace:%' AND id IN (SELECT id FROM memory_plugin.memory_records LIMIT 1)").await;
    let o = run_bin(vec!["-verify".into(), "-all".into()])
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));
    assert!(text(&o).0.contains("missing"));
}

#[tokio::test]
async fn a_run_killed_mid_way_then_rerun_ends_in_exact_parity() {
    let legacy = Legacy::new().await;
    for w in 0..20u128 {
        let ws = uuid(w + 1);
        legacy.workspace(ws, None, None).await;
        legacy.bulk_local(ws, 1000, &format!("kill{w}")).await;
    }
    let total = legacy.count().await as usize;
    let target = TargetPlugin::start(false).await;
    let mut child = Command::new(BIN)
        .args(["-apply", "-batch-rows=20", "-concurrency=2"])
        .env("DATABASE_URL", operator_url(&legacy))
        .env("MEMORY_PLUGIN_URL", target.url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // Kill it once a fair share of rows has arrived and a checkpoint has
    // been saved (at most once a second), before it can finish.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let held = target.records().await.len();
        let checkpointed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM memory_plugin.memory_records
              WHERE namespace = 'custom:memory-backfill'",
        )
        .fetch_one(&target.pool)
        .await
        .unwrap();
        if held >= total / 5 && checkpointed > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before it could be killed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = target.records().await.len();
    assert!(partial < total, "killed before the end");

    let url = operator_url(&legacy);
    let plugin_url = target.url().to_string();
    let o = tokio::task::spawn_blocking(move || {
        backfill(
            &["-apply", "-json"],
            &[("DATABASE_URL", &url), ("MEMORY_PLUGIN_URL", &plugin_url)],
        )
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        j["unchanged"].as_u64().unwrap() > 0,
        "resumed from the checkpoint: {j}"
    );
    let records = target.records().await;
    let rows = legacy_rows(&legacy).await;
    assert_eq!(records.len(), total);
    for (id, (content, _)) in &rows {
        assert_eq!(&records[id].1, content);
    }
}

#[tokio::test]
async fn search_path_in_the_database_url_selects_the_legacy_schema() {
    let legacy = Legacy::new().await;
    sqlx::raw_sql("CREATE SCHEMA legacyapp; ALTER TABLE workspaces SET SCHEMA legacyapp; ALTER TABLE agent_memories SET SCHEMA legacyapp;")
        .execute(&legacy.pool)
        .await
        .unwrap();
    let target = TargetPlugin::start(false).await;
    let base = legacy.db.url().to_string();
    let sep = if base.contains('?') { '&' } else { '?' };
    let with_path = format!("{base}{sep}sslmode=disable&search_path=legacyapp");
    let without = base.clone();
    let plugin_url = target.url().to_string();
    let (ok, missing) = tokio::task::spawn_blocking(move || {
        (
            backfill(
                &["-dry-run"],
                &[
                    ("DATABASE_URL", &with_path),
                    ("MEMORY_PLUGIN_URL", &plugin_url),
                ],
            ),
            backfill(
                &["-dry-run"],
                &[
                    ("DATABASE_URL", &without),
                    ("MEMORY_PLUGIN_URL", &plugin_url),
                ],
            ),
        )
    })
    .await
    .unwrap();
    assert_eq!(ok.status.code(), Some(0), "{:?}", text(&ok));
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing).1.contains("agent_memories not found"),
        "{:?}",
        text(&missing)
    );
}

#[tokio::test]
async fn sslmode_require_in_the_database_url_connects_over_tls() {
    let legacy = Legacy::new().await;
    let ssl: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&legacy.pool)
        .await
        .unwrap();
    assert_eq!(
        ssl, "on",
        "this test needs a PostgreSQL server with ssl = on (Debian's default configuration)"
    );
    let target = TargetPlugin::start(false).await;
    let base = legacy.db.url().to_string();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}sslmode=require");
    let plugin_url = target.url().to_string();
    let out = tokio::task::spawn_blocking(move || {
        backfill(
            &["-dry-run"],
            &[("DATABASE_URL", &url), ("MEMORY_PLUGIN_URL", &plugin_url)],
        )
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
}
