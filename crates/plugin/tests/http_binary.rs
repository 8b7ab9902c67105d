//! The real `memory-plugin` binary: starts on a SQLite file, serves, stops
//! with exit code 0 on SIGTERM, and never prints a database password.

mod common;

use common::binary::{Running, BIN};
use std::process::Command;

fn temp_db() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("memory-plugin-bin-{}.db", uuid::Uuid::new_v4()))
}

#[tokio::test]
async fn the_binary_serves_a_sqlite_file_and_exits_0_on_sigterm() {
    let db = temp_db();
    let url = format!("sqlite:{}", db.display());
    let mut run = Running::start(&[
        ("MEMORY_PLUGIN_DATABASE_URL", url.as_str()),
        ("MEMORY_PLUGIN_LISTEN_ADDR", "127.0.0.1:0"),
        ("MEMORY_PLUGIN_LOG_FORMAT", "json"),
        ("MEMORY_PLUGIN_V1_ONLY", "no"),
    ]);
    let base = format!("http://{}", run.wait_listening());
    let health: serde_json::Value = reqwest::get(format!("{base}/v1/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert!(health["capabilities"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("batch")));
    let resp = reqwest::Client::new()
        .put(format!("{base}/v1/namespaces/team:bin"))
        .header("x-request-id", "bin-test-1")
        .json(&serde_json::json!({"kind": "team"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let logged = run.wait_for_line("bin-test-1");
    let event: serde_json::Value = serde_json::from_str(&logged).unwrap();
    assert_eq!(event["status"], 200, "{logged}");
    assert!(logged.contains("/v1/namespaces/{name}"), "{logged}");

    let output = run.terminate();
    assert!(output.contains("SIGTERM"), "{output}");
    assert!(db.exists(), "the SQLite file was created");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
}

#[tokio::test]
async fn an_unreachable_database_exits_2_with_one_line_and_no_password() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let run = Running::start(&[
        (
            "MEMORY_PLUGIN_DATABASE_URL",
            "postgres://alice:TopSecretPw42@127.0.0.1:1/memories",
        ),
        ("MEMORY_PLUGIN_LISTEN_ADDR", "127.0.0.1:0"),
    ]);
    let (code, output) = run.wait_exit();
    assert_eq!(code, Some(2), "{output}");
    assert!(
        !output.contains("TopSecretPw42"),
        "password leaked:\n{output}"
    );
    let error_lines: Vec<&str> = output
        .lines()
        .filter(|l| l.starts_with("memory-plugin: error:"))
        .collect();
    assert_eq!(error_lines.len(), 1, "{output}");
    assert!(
        error_lines[0].contains("postgres://alice:***@127.0.0.1:1/memories"),
        "{output}"
    );
}

#[tokio::test]
async fn bad_settings_exit_2_naming_the_setting() {
    for (env, value, mentions) in [
        (
            "MEMORY_PLUGIN_DATABASE_URL",
            "mysql://bob:Hunter2Pw@db/x",
            "MEMORY_PLUGIN_DATABASE_URL",
        ),
        ("MEMORY_PLUGIN_SKIP_MIGRATE", "perhaps", "skip-migrate"),
        (
            "MEMORY_PLUGIN_EMBEDDING_DIM",
            "0",
            "MEMORY_PLUGIN_EMBEDDING_DIM",
        ),
        ("MEMORY_PLUGIN_SCHEMA", "Bad-Schema", "MEMORY_PLUGIN_SCHEMA"),
        ("MEMORY_PLUGIN_LOG_FORMAT", "xml", "log-format"),
        (
            "MEMORY_PLUGIN_LISTEN_ADDR",
            "not an address",
            "cannot listen",
        ),
    ] {
        let db = temp_db();
        let url = format!("sqlite:{}", db.display());
        let mut envs = vec![("MEMORY_PLUGIN_DATABASE_URL", url.as_str())];
        envs.push((env, value));
        let (code, output) = Running::start(&envs).wait_exit();
        assert_eq!(code, Some(2), "{env}={value}: {output}");
        assert!(output.contains(mentions), "{env}={value}: {output}");
        assert!(!output.contains("Hunter2Pw"), "{output}");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
    }
}

#[test]
fn help_lists_every_setting_and_hides_secret_values() {
    let output = Command::new(BIN)
        .arg("--help")
        .env(
            "MEMORY_PLUGIN_DATABASE_URL",
            "postgres://u:HelpSecretPw@h/db",
        )
        .env("MEMORY_PLUGIN_TOKEN", "HelpSecretToken")
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for name in [
        "MEMORY_PLUGIN_DATABASE_URL",
        "MEMORY_PLUGIN_LISTEN_ADDR",
        "MEMORY_PLUGIN_SKIP_MIGRATE",
        "MEMORY_PLUGIN_SCHEMA",
        "MEMORY_PLUGIN_EMBEDDING_DIM",
        "MEMORY_PLUGIN_TOKEN",
        "MEMORY_PLUGIN_V1_ONLY",
        "MEMORY_PLUGIN_SWEEP_INTERVAL",
        "MEMORY_PLUGIN_MAX_CONNECTIONS",
        "MEMORY_PLUGIN_LOG",
        "MEMORY_PLUGIN_LOG_FORMAT",
        "--database-url",
        "--v1-only",
        "--log-format",
    ] {
        assert!(text.contains(name), "--help lacks {name}:\n{text}");
    }
    assert!(
        !text.contains("HelpSecretPw") && !text.contains("HelpSecretToken"),
        "{text}"
    );
}

#[tokio::test]
async fn a_password_in_the_postgres_url_never_shows_in_the_output() {
    // The test server trusts local connections, so any password is accepted
    // and the plugin runs normally with it in its URL.
    let db = memory_testkit::pg15().await;
    let mut url = url::Url::parse(db.url()).unwrap();
    url.set_password(Some("PgSecretPw77")).unwrap();
    let mut run = Running::start(&[
        ("MEMORY_PLUGIN_DATABASE_URL", url.as_str()),
        ("MEMORY_PLUGIN_LISTEN_ADDR", "127.0.0.1:0"),
        ("MEMORY_PLUGIN_LOG", "debug"),
        ("MEMORY_PLUGIN_LOG_FORMAT", "json"),
    ]);
    let base = format!("http://{}", run.wait_listening());
    let resp = reqwest::get(format!("{base}/v1/health")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let output = run.terminate();
    assert!(
        output.contains(":***@"),
        "the redacted URL is logged:\n{output}"
    );
    assert!(
        !output.contains("PgSecretPw77"),
        "password leaked:\n{output}"
    );
}

#[tokio::test]
async fn without_a_database_url_the_binary_stores_in_memory_plugin_db_in_its_directory() {
    let dir = std::env::temp_dir().join(format!("memory-plugin-cwd-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut run = Running::start_in(
        &dir,
        &[
            ("MEMORY_PLUGIN_LISTEN_ADDR", "127.0.0.1:0"),
            ("MEMORY_PLUGIN_LOG_FORMAT", "json"),
        ],
    );
    let addr = run.wait_listening();
    let health = reqwest::get(format!("http://{addr}/v1/health"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    run.terminate();
    assert!(dir.join("memory-plugin.db").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn v1_only_from_the_environment_and_a_public_address_without_token_warns() {
    let db = temp_db();
    let url = format!("sqlite:{}", db.display());
    let mut run = Running::start(&[
        ("MEMORY_PLUGIN_DATABASE_URL", url.as_str()),
        ("MEMORY_PLUGIN_LISTEN_ADDR", "0.0.0.0:0"),
        ("MEMORY_PLUGIN_V1_ONLY", "1"),
        ("MEMORY_PLUGIN_LOG_FORMAT", "json"),
    ]);
    let warning = run.wait_for_line("non-loopback");
    assert!(warning.contains("WARN"), "{warning}");
    let addr = run.wait_listening();
    let port = addr.rsplit(':').next().unwrap().to_string();
    let health: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/v1/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        health["capabilities"],
        serde_json::json!(["fts", "embedding", "ttl", "pin", "propagation"])
    );
    run.terminate();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
}
