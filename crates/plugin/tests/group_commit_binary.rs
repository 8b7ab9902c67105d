//! The real `memory-plugin` binary under a load of single writes, killed
//! with SIGKILL mid-load and started again on the same database: every
//! write that was answered 201 is there (a write is acknowledged only once
//! the transaction holding it has committed).

mod common;

use common::binary::Running;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

const WRITERS: usize = 32;
const NAMESPACE: &str = "team:crash";

/// A started binary and the address it listens on.
struct Plugin {
    running: Running,
    base: String,
}

impl Plugin {
    fn start(database_url: &str) -> Plugin {
        let mut running = Running::start(&[
            ("MEMORY_PLUGIN_DATABASE_URL", database_url),
            ("MEMORY_PLUGIN_LISTEN_ADDR", "127.0.0.1:0"),
            ("MEMORY_PLUGIN_LOG_FORMAT", "json"),
            ("MEMORY_PLUGIN_EMBEDDING_DIM", "3"),
        ]);
        let base = format!("http://{}", running.wait_listening());
        Plugin { running, base }
    }

    fn kill_9(mut self) {
        self.running.signal("-KILL");
        let status = self.running.child.wait().expect("wait");
        assert!(!status.success(), "killed, not exited: {status:?}");
    }
}

/// Every memory id of the namespace, paged through `list`.
async fn stored_ids(http: &reqwest::Client, base: &str) -> HashSet<Uuid> {
    let mut ids = HashSet::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/namespaces/{NAMESPACE}/memories?limit=500");
        if let Some(a) = &after {
            url.push_str(&format!("&after={a}"));
        }
        let page: Value = http
            .get(url)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("list body");
        for m in page["memories"].as_array().expect("memories") {
            ids.insert(m["id"].as_str().unwrap().parse().unwrap());
        }
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => return ids,
        }
    }
}

async fn acknowledged_writes_survive_kill_9(database_url: &str) {
    let plugin = Plugin::start(database_url);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let resp = http
        .put(format!("{}/v1/namespaces/{NAMESPACE}", plugin.base))
        .json(&json!({"kind": "team"}))
        .send()
        .await
        .expect("namespace");
    assert_eq!(resp.status(), 200);

    let acked = Arc::new(Mutex::new(HashSet::<Uuid>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let (http, acked, stop) = (http.clone(), Arc::clone(&acked), Arc::clone(&stop));
        let url = format!("{}/v1/namespaces/{NAMESPACE}/memories", plugin.base);
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut body = json!({
                    "content": format!("writer {writer} write {n}"),
                    "kind": "fact",
                    "source": "agent",
                });
                if n % 2 == 0 {
                    body["id"] = json!(Uuid::new_v4());
                }
                n += 1;
                // Once the process is gone, requests fail: that ends the writer.
                let Ok(resp) = http.post(&url).json(&body).send().await else {
                    return;
                };
                if resp.status().as_u16() != 201 {
                    continue;
                }
                let Ok(ack) = resp.json::<Value>().await else {
                    return;
                };
                let id: Uuid = ack["id"].as_str().unwrap().parse().unwrap();
                acked.lock().unwrap().insert(id);
            }
        }));
    }
    // Kill once a good number of writes has been acknowledged, with the
    // writers still going.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 1500 {
        assert!(Instant::now() < deadline, "too few writes acknowledged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    plugin.kill_9();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("writer task");
    }
    let acked = acked.lock().unwrap().clone();

    let again = Plugin::start(database_url);
    let stored = stored_ids(&http, &again.base).await;
    let lost: Vec<&Uuid> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        acked.len(),
        lost.first()
    );
    // Writes in flight at the kill may or may not be there; nothing else is.
    assert!(
        stored.len() <= acked.len() + WRITERS,
        "{} stored",
        stored.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_acknowledged_writes_survive_kill_9() {
    let db = memory_testkit::pg15().await;
    acknowledged_writes_survive_kill_9(db.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_acknowledged_writes_survive_kill_9() {
    let file = std::env::temp_dir().join(format!("memory-plugin-kill-{}.db", Uuid::new_v4()));
    let url = format!("sqlite:{}", file.display());
    acknowledged_writes_survive_kill_9(&url).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
}
