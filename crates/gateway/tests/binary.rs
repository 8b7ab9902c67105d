//! The `memory-gateway` binary as an operator runs it: zero set-up (embedded
//! plugin, SQLite workspaces, generated secret), the token and workspace
//! commands, `install-model`, exit codes, and logs without secrets.

mod common;

use common::{DECISION, OTHERS, PARAPHRASE};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_memory-gateway");

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("memory-gateway-bin-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the binary in `dir` with a clean environment.
fn gateway(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The binary serving from `dir` with a clean environment (PATH, the listen
/// address and `env` only), its standard error kept for [`Serving::stop`].
struct Serving {
    child: std::process::Child,
    base: String,
}

impl Serving {
    /// Starts it and waits (up to `patience`) until `/v1/health` answers.
    async fn start(dir: &Path, env: &[(&str, &str)], patience: Duration) -> Serving {
        let port = free_port();
        let mut command = Command::new(BIN);
        command
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("MEMORY_GATEWAY_LISTEN_ADDR", format!("127.0.0.1:{port}"));
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + patience;
        while reqwest::get(format!("{base}/v1/health")).await.is_err() {
            assert!(Instant::now() < deadline, "the gateway did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Serving { child, base }
    }

    /// SIGTERM, a clean exit, and everything it logged.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status:?}");
        let mut logs = String::new();
        use std::io::Read as _;
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut logs)
            .unwrap();
        logs
    }
}

#[test]
fn help_lists_every_setting() {
    let out = gateway(&scratch(), &["--help"]);
    assert!(out.status.success());
    let help = stdout(&out);
    for needle in [
        "MEMORY_PLUGIN_URL",
        "MEMORY_PLUGIN_TOKEN",
        "MEMORY_PLUGIN_TIMEOUT",
        "MEMORY_GATEWAY_STORE_URL",
        "DATABASE_URL",
        "MEMORY_GATEWAY_LISTEN_ADDR",
        "MEMORY_GATEWAY_SECRET",
        "MEMORY_GATEWAY_RATE_LIMIT",
        "MEMORY_GATEWAY_RATE_BURST",
        "MEMORY_GATEWAY_LOG",
        "MEMORY_EMBED",
        "MEMORY_EMBED_MODEL_DIR",
        "MEMORY_EMBED_URL",
        "MEMORY_EMBED_API_KEY",
        "stdio",
        "token",
        "workspace",
        "install-model",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}

#[test]
fn workspace_and_token_commands_manage_the_local_set_up() {
    let dir = scratch();
    let out = gateway(&dir, &["workspace", "add", "--name", "acme"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let root = stdout(&out);
    let out = gateway(
        &dir,
        &["workspace", "add", "--name", "research", "--parent", &root],
    );
    let child = stdout(&out);
    let out = gateway(&dir, &["workspace", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);

    let first = gateway(&dir, &["token", "--workspace", &child, "--ttl", "30d"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let secret_file = dir.join("memory-gateway.secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&secret_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    let secret = memory_gateway::auth::Secret::load_or_create(&secret_file).unwrap();
    let caller = memory_gateway::auth::verify(&secret, &stdout(&first)).unwrap();
    assert_eq!(
        caller,
        memory_gateway::auth::Caller::Workspace(child.parse().unwrap())
    );
    // The same file signs the next token.
    let second = gateway(&dir, &["token", "--workspace", &root]);
    assert!(memory_gateway::auth::verify(&secret, &stdout(&second)).is_ok());
    let admin = gateway(&dir, &["token", "--admin"]);
    assert_eq!(
        memory_gateway::auth::verify(&secret, &stdout(&admin)),
        Ok(memory_gateway::auth::Caller::Admin)
    );

    for (args, needle) in [
        (
            vec![
                "token",
                "--workspace",
                "00000000-0000-0000-0000-000000000009",
            ],
            "does not exist",
        ),
        (
            vec!["token", "--workspace", &child, "--ttl", "3 weeks"],
            "--ttl",
        ),
        (
            vec![
                "workspace",
                "add",
                "--name",
                "x",
                "--parent",
                "00000000-0000-0000-0000-000000000009",
            ],
            "no workspace",
        ),
        (
            vec![
                "workspace",
                "remove",
                "00000000-0000-0000-0000-000000000009",
            ],
            "no workspace",
        ),
        (
            vec![
                "--database-url",
                "mysql://u:hunter2@h/db",
                "workspace",
                "list",
            ],
            "must start with",
        ),
    ] {
        let out = gateway(&dir, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("hunter2"), "{}", stderr(&out));
    }
    let out = gateway(&dir, &["workspace", "remove", &child]);
    assert!(out.status.success());
    let out = gateway(&dir, &["token", "--workspace", &child]);
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unreachable_platform_database_is_one_line_without_its_password() {
    let out = gateway(
        &scratch(),
        &[
            "--database-url",
            "postgres://app:hunter2@127.0.0.1:1/platform",
            "workspace",
            "list",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.starts_with("memory-gateway: error:"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains("***"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_no_configuration_it_serves_agents_on_an_embedded_store() {
    let dir = scratch();
    let root = stdout(&gateway(&dir, &["workspace", "add", "--name", "solo"]));
    let token = stdout(&gateway(&dir, &["token", "--workspace", &root]));
    let serving = Serving::start(&dir, &[], Duration::from_secs(20)).await;
    let base = serving.base.clone();
    let health = reqwest::get(format!("{base}/v1/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["plugin"], "ok");
    assert_eq!(body["database"], "ok");
    let unauthorised = reqwest::Client::new()
        .post(format!("{base}/mcp"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorised.status(), 401);
    let mcp = common::connect(&format!("{base}/mcp"), &token).await;
    common::ok_json(
        &mcp,
        "commit_memory",
        json!({"content": "works out of the box; SECRET_TOKEN=abcd1234efgh5678ijkl"}),
    )
    .await;
    let rows = common::ok_json(&mcp, "recall_memory", json!({})).await;
    assert!(rows[0]["content"].as_str().unwrap().contains("[REDACTED:"));
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains("memory_gateway_tool_calls_total{tool=\"commit_memory\",outcome=\"ok\"} 1"),
        "{metrics}"
    );
    drop(mcp);

    // SIGTERM: a clean stop, and the logs hold neither the token nor the secret.
    let logs = serving.stop();
    let secret = std::fs::read_to_string(dir.join("memory-gateway.secret")).unwrap();
    assert!(!logs.contains(secret.trim()));
    assert!(!logs.contains(&token));
    // No model files where they are looked for: embedding is off, and one
    // line says how to turn it on.
    let notice: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("semantic recall is off"))
        .collect();
    assert_eq!(notice.len(), 1, "{logs}");
    assert!(
        notice[0].contains("MEMORY_EMBED_MODEL_DIR"),
        "{}",
        notice[0]
    );
    assert!(!logs.contains("abcd1234efgh5678ijkl"));
    assert!(dir.join("memory-gateway-memories.db").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_remote_embedder_is_named_at_start_without_its_key_and_a_dead_one_loses_no_write() {
    let dir = scratch();
    let root = stdout(&gateway(&dir, &["workspace", "add", "--name", "solo"]));
    let token = stdout(&gateway(&dir, &["token", "--workspace", &root]));
    let closed = free_port();
    let key = "sk-test-embedding-key-0123456789";
    let embed_url = format!("http://127.0.0.1:{closed}");
    let serving = Serving::start(
        &dir,
        &[
            ("MEMORY_EMBED", "remote"),
            ("MEMORY_EMBED_URL", &embed_url),
            ("MEMORY_EMBED_MODEL", "text-embedding-test"),
            ("MEMORY_EMBED_API_KEY", key),
        ],
        Duration::from_secs(20),
    )
    .await;
    let mcp = common::connect(&format!("{}/mcp", serving.base), &token).await;
    common::ok_json(
        &mcp,
        "commit_memory",
        json!({"content": "the embedder is down but this is kept"}),
    )
    .await;
    let (is_error, text) =
        common::call(&mcp, "recall_memory", json!({"query": "embedder kept"})).await;
    assert!(!is_error, "{text}");
    assert!(
        text.contains("the embedder is down but this is kept"),
        "{text}"
    );
    drop(mcp);
    let logs = serving.stop();
    assert!(!logs.contains(key), "the API key was logged: {logs}");
    assert!(
        logs.lines().any(|l| l.contains("embedding remote")
            && l.contains(&format!("127.0.0.1:{closed}"))
            && l.contains("text-embedding-test")),
        "{logs}"
    );
    assert!(logs.contains("embedding failed"), "{logs}");
    assert!(!logs.contains("is down but"), "content in the logs: {logs}");
}

/// The model.zip of the pinned wheel, from the test kit's virtualenv (the
/// file an operator without network access would give `--from`).
fn model_zip() -> PathBuf {
    memory_testkit::minilm_model_zip().unwrap_or_else(|e| panic!("{e}"))
}

/// `install-model` with only PATH and HOME set.
fn install_model(home: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("install-model")
        .args(args)
        .current_dir(home)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .output()
        .unwrap()
}

const MODEL_FILES: [&str; 3] = ["model.safetensors", "tokenizer.json", "config.json"];

#[tokio::test(flavor = "multi_thread")]
async fn on_a_fresh_machine_install_model_turns_on_recall_by_meaning() {
    let zip = model_zip();
    let dir = scratch();
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = install_model(&home, &["--from", zip.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let installed = home.join(".local/share/memory-plugin/all-MiniLM-L6-v2");
    let said = stdout(&out);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.contains(&installed.display().to_string()), "{said}");
    assert!(said.contains("by default"), "{said}");
    assert!(said.contains("MEMORY_EMBED_MODEL_DIR"), "{said}");
    for f in MODEL_FILES {
        assert!(installed.join(f).is_file(), "{f} not installed");
    }
    // Nothing else was left next to it.
    let beside: Vec<_> = std::fs::read_dir(installed.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside.len(), 1, "{beside:?}");

    // The gateway with its defaults: nothing set but HOME, PATH and the
    // listen address.
    let root = stdout(&gateway(&dir, &["workspace", "add", "--name", "solo"]));
    let token = stdout(&gateway(&dir, &["token", "--workspace", &root]));
    let home_var = home.display().to_string();
    let serving = Serving::start(&dir, &[("HOME", &home_var)], Duration::from_secs(60)).await;
    let mcp = common::connect(&format!("{}/mcp", serving.base), &token).await;
    common::ok_json(&mcp, "commit_memory", json!({"content": DECISION})).await;
    for other in OTHERS {
        common::ok_json(&mcp, "commit_memory", json!({"content": other})).await;
    }
    let (is_error, text) = common::call(&mcp, "recall_memory", json!({"query": PARAPHRASE})).await;
    assert!(!is_error, "{text}");
    let rows: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(rows[0]["content"], DECISION, "{rows}");
    drop(mcp);

    let logs = serving.stop();
    assert!(!logs.contains("semantic recall is off"), "{logs}");
    assert!(
        logs.lines()
            .any(|l| l.contains("all-MiniLM-L6-v2") && l.contains(&installed.display().to_string())),
        "{logs}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn install_model_refuses_bad_input_without_touching_the_destination_and_reinstalls() {
    let dir = scratch();
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let not_a_zip = dir.join("model.txt");
    std::fs::write(&not_a_zip, "these are not the model files\n").unwrap();
    let absent = dir.join("absent.whl");
    for file in [&not_a_zip, &absent] {
        let out = install_model(&home, &["--from", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("memory-gateway: error:"), "{err}");
        assert!(err.contains(&file.display().to_string()), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        // Not even the parent directories were made.
        assert!(!home.join(".local").exists(), "{err}");
    }

    // A directory of the operator's: installed, and installed again over
    // the first install.
    let zip = model_zip();
    let dest = dir.join("models").join("minilm");
    for _ in 0..2 {
        let out = install_model(
            &home,
            &[
                "--dir",
                dest.to_str().unwrap(),
                "--from",
                zip.to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let said = stdout(&out);
        assert!(said.contains(&dest.display().to_string()), "{said}");
        // Not a default location: the variable is the way to use it.
        assert!(
            said.contains(&format!("MEMORY_EMBED_MODEL_DIR={}", dest.display())),
            "{said}"
        );
        for f in MODEL_FILES {
            assert!(dest.join(f).is_file(), "{f} not installed");
        }
        let beside: Vec<_> = std::fs::read_dir(dir.join("models"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(beside, vec![std::ffi::OsString::from("minilm")]);
    }
    // A bad file over an existing install leaves it as it was.
    let before = std::fs::read(dest.join("config.json")).unwrap();
    let out = install_model(
        &home,
        &[
            "--dir",
            dest.to_str().unwrap(),
            "--from",
            not_a_zip.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read(dest.join("config.json")).unwrap(), before);
    // A directory holding something else is not replaced.
    let mine = dir.join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "keep me").unwrap();
    let out = install_model(
        &home,
        &[
            "--dir",
            mine.to_str().unwrap(),
            "--from",
            zip.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("notes.txt"), "{}", stderr(&out));
    let left: Vec<_> = std::fs::read_dir(&mine)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("notes.txt")]);
    let _ = std::fs::remove_dir_all(&dir);
}
