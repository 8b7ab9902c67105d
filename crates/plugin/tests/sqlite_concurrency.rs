//! Concurrency on a SQLite file: 32 tasks mixing writes (single, batch,
//! upserts, conflicting ids, forgets) with every kind of search and list,
//! for [`SOAK_DURATION`], must meet no error at all; in particular SQLite's
//! "database is locked" must never reach a caller. Run once against the
//! store directly and once over real HTTP (no 5xx, no unexpected status).

mod common;

use chrono::{Duration as TimeDelta, Utc};
use memory_contract::{BatchWrite, MemoryKind, MemorySource, MemoryWrite, NamespaceKind};
use memory_plugin::server::{self, ServerConfig};
use memory_plugin::store::sqlite::{SqliteOptions, SqliteStore};
use memory_plugin::store::{SearchQuery, Store, StoreError};
use memory_testkit::TempDir;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long the mixed load runs; the figure the requirement names.
const SOAK_DURATION: Duration = Duration::from_secs(30);

/// Concurrent tasks, writers and readers alike.
const TASKS: usize = 32;

/// Namespaces the tasks share.
const NAMESPACES: usize = 4;

const EMBEDDING_DIM: usize = 8;

async fn file_store(dir: &TempDir) -> Arc<dyn Store> {
    let url = dir.sqlite_url("load.db");
    let store = SqliteStore::open(
        &url,
        SqliteOptions {
            embedding_dim: EMBEDDING_DIM,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("open {url}: {e}"));
    Arc::new(store)
}

fn namespace_name(i: usize) -> String {
    format!("team:load{}", i % NAMESPACES)
}

fn vector(seed: usize) -> Vec<f32> {
    (0..EMBEDDING_DIM)
        .map(|d| ((seed * 31 + d * 7) % 17) as f32 - 8.0)
        .collect()
}

/// One step of the mixed load.
#[derive(Debug, Clone, Copy)]
enum Step {
    Write,
    UpsertOwnId,
    Batch,
    ConflictingId,
    FullText,
    Substring,
    Recent,
    Semantic,
    List,
    Forget,
    Expiring,
}

const STEPS: &[Step] = &[
    Step::Write,
    Step::FullText,
    Step::UpsertOwnId,
    Step::Substring,
    Step::Batch,
    Step::Recent,
    Step::Semantic,
    Step::ConflictingId,
    Step::List,
    Step::Write,
    Step::Forget,
    Step::FullText,
    Step::Expiring,
];

/// What a task needs to remember between steps.
struct TaskState {
    task: usize,
    own_id: Uuid,
    step: usize,
    written: Vec<Uuid>,
}

impl TaskState {
    fn new(task: usize) -> TaskState {
        TaskState {
            task,
            own_id: Uuid::new_v4(),
            step: 0,
            written: Vec::new(),
        }
    }

    fn namespace(&self) -> String {
        namespace_name(self.task)
    }

    fn memory(&self, what: &str) -> MemoryWrite {
        let mut w = MemoryWrite::new(
            format!(
                "load item {what} from task {} step {}",
                self.task, self.step
            ),
            MemoryKind::ALL[self.step % MemoryKind::ALL.len()],
            MemorySource::Agent,
        );
        w.pin = Some(matches!(self.step % 5, 0));
        w.embedding = Some(vector(self.task + self.step));
        w.propagation = Some(json!({"task": self.task}));
        w
    }

    fn search(&self) -> SearchQuery {
        SearchQuery {
            namespaces: vec![self.namespace(), namespace_name(self.task + 1)],
            query: None,
            kinds: Vec::new(),
            limit: 20,
            embedding: None,
        }
    }
}

/// Runs one step on the store; `Err` describes an unexpected outcome.
async fn store_step(store: &dyn Store, state: &mut TaskState, step: Step) -> Result<(), String> {
    let ns = state.namespace();
    let fail = |what: &str, e: StoreError| format!("task {} {what}: {e:?}", state.task);
    match step {
        Step::Write => {
            let w = state.memory("write");
            let ack = store
                .write_memory(&ns, &w)
                .await
                .map_err(|e| fail("write", e))?;
            state.written.push(ack.id);
        }
        Step::UpsertOwnId => {
            let mut w = state.memory("upsert");
            w.id = Some(state.own_id);
            store
                .write_memory(&ns, &w)
                .await
                .map_err(|e| fail("upsert", e))?;
        }
        Step::Batch => {
            let writes: Vec<BatchWrite> = (0..20)
                .map(|i| BatchWrite {
                    namespace: namespace_name(state.task + i),
                    write: state.memory(&format!("batch {i}")),
                })
                .collect();
            let results = store
                .write_batch(&writes)
                .await
                .map_err(|e| fail("batch", e))?;
            for r in results {
                r.map_err(|e| fail("batch item", e))?;
            }
        }
        Step::ConflictingId => {
            // The task's own id lives in its namespace (after the first
            // upsert); writing it elsewhere must be a clean conflict.
            let mut w = state.memory("conflict");
            w.id = Some(state.own_id);
            match store
                .write_memory(&namespace_name(state.task + 1), &w)
                .await
            {
                Err(StoreError::Conflict(_)) => {}
                // Before the first upsert the id is free: a normal write.
                Ok(_) if state.step < STEPS.len() => {
                    store
                        .forget(state.own_id, &namespace_name(state.task + 1))
                        .await
                        .map_err(|e| fail("undo early conflict write", e))?;
                }
                other => return Err(format!("task {} conflict: {other:?}", state.task)),
            }
        }
        Step::FullText | Step::Substring | Step::Recent | Step::Semantic => {
            let mut q = state.search();
            match step {
                Step::FullText => q.query = Some("load items batch".into()),
                Step::Substring => q.query = Some("l".into()),
                Step::Semantic => q.embedding = Some(vector(state.step)),
                _ => {}
            }
            store.search(&q).await.map_err(|e| fail("search", e))?;
        }
        Step::List => {
            store
                .list_memories(&ns, None, 100)
                .await
                .map_err(|e| fail("list", e))?;
        }
        Step::Forget => {
            if let Some(id) = state.written.pop() {
                store.forget(id, &ns).await.map_err(|e| fail("forget", e))?;
            }
        }
        Step::Expiring => {
            let mut w = state.memory("expiring");
            w.expires_at = Some(Utc::now() + TimeDelta::milliseconds(300));
            store
                .write_memory(&ns, &w)
                .await
                .map_err(|e| fail("expiring write", e))?;
            if state.task == 0 {
                store
                    .sweep_expired(Utc::now())
                    .await
                    .map_err(|e| fail("sweep", e))?;
            }
        }
    }
    Ok(())
}

async fn create_namespaces(store: &dyn Store) {
    let names = (0..NAMESPACES).map(namespace_name);
    common::namespaces::create(store, NamespaceKind::Team, names).await;
}

/// [`TASKS`] tasks, each running [`STEPS`] in turn (from its own offset)
/// through `run_step` until [`SOAK_DURATION`] has passed. `run_step` takes
/// the task's state and gives it back with the step's outcome. Returns the
/// number of steps run and the errors met.
async fn soak<F, Fut>(run_step: F) -> (usize, Vec<String>)
where
    F: Fn(TaskState, Step) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = (TaskState, Result<(), String>)> + Send,
{
    let deadline = Instant::now() + SOAK_DURATION;
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let run_step = run_step.clone();
            tokio::spawn(async move {
                let mut state = TaskState::new(task);
                let mut errors = Vec::new();
                while Instant::now() < deadline {
                    let step = STEPS[(state.step + task) % STEPS.len()];
                    let (next, outcome) = run_step(state, step).await;
                    state = next;
                    if let Err(e) = outcome {
                        errors.push(e);
                    }
                    state.step += 1;
                }
                (state.step, errors)
            })
        })
        .collect();
    let mut steps = 0;
    let mut errors = Vec::new();
    for task in tasks {
        let (n, e) = task.await.expect("task");
        steps += n;
        errors.extend(e);
    }
    (steps, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_tasks_writing_and_searching_meet_no_error() {
    let dir = TempDir::new("sqlite-concurrency");
    let store = file_store(&dir).await;
    create_namespaces(&*store).await;
    let (steps, errors) = soak(move |mut state, step| {
        let store = store.clone();
        async move {
            let outcome = store_step(&*store, &mut state, step).await;
            (state, outcome)
        }
    })
    .await;
    assert!(
        errors.is_empty(),
        "{} of {steps} steps failed; first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert!(steps >= TASKS, "every task ran at least one step");
    eprintln!("{steps} steps in {SOAK_DURATION:?} without error");
}

// ---- over HTTP ---------------------------------------------------------

/// Passes `resp` on when its status is one of `expected`.
async fn expect_status(
    task: usize,
    what: &str,
    resp: reqwest::Response,
    expected: &[u16],
) -> Result<reqwest::Response, String> {
    let status = resp.status().as_u16();
    if expected.contains(&status) {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    Err(format!("task {task} {what}: status {status}: {body}"))
}

/// Runs one step over HTTP; `Err` describes a 5xx or an unexpected status.
async fn http_step(
    http: &reqwest::Client,
    base: &str,
    state: &mut TaskState,
    step: Step,
) -> Result<(), String> {
    let ns = state.namespace();
    let task = state.task;
    let send = |req: reqwest::RequestBuilder| async move {
        req.send()
            .await
            .map_err(|e| format!("task {task}: transport error: {e}"))
    };
    let memories_url = format!("{base}/v1/namespaces/{ns}/memories");
    match step {
        Step::Write | Step::Expiring => {
            let mut w = state.memory("write");
            if matches!(step, Step::Expiring) {
                w.expires_at = Some(Utc::now() + TimeDelta::milliseconds(300));
            }
            let resp = send(http.post(&memories_url).json(&w)).await?;
            let resp = expect_status(task, "write", resp, &[201]).await?;
            let ack: memory_contract::WriteAck = resp
                .json()
                .await
                .map_err(|e| format!("task {task} ack: {e}"))?;
            state.written.push(ack.id);
        }
        Step::UpsertOwnId => {
            let mut w = state.memory("upsert");
            w.id = Some(state.own_id);
            let resp = send(http.post(&memories_url).json(&w)).await?;
            expect_status(task, "upsert", resp, &[201]).await?;
        }
        Step::Batch => {
            let writes: Vec<BatchWrite> = (0..20)
                .map(|i| BatchWrite {
                    namespace: namespace_name(state.task + i),
                    write: state.memory(&format!("batch {i}")),
                })
                .collect();
            let resp = send(
                http.post(format!("{base}/v1/memories/batch"))
                    .json(&json!({ "writes": writes })),
            )
            .await?;
            let resp = expect_status(task, "batch", resp, &[200]).await?;
            let body: memory_contract::BatchResponse = resp
                .json()
                .await
                .map_err(|e| format!("task {task} batch body: {e}"))?;
            if let Some(bad) = body
                .results
                .iter()
                .find(|r| matches!(r, memory_contract::BatchItemResult::Err { .. }))
            {
                return Err(format!("task {task} batch item failed: {bad:?}"));
            }
        }
        Step::ConflictingId => {
            let mut w = state.memory("conflict");
            w.id = Some(state.own_id);
            let other = namespace_name(state.task + 1);
            let resp = send(
                http.post(format!("{base}/v1/namespaces/{other}/memories"))
                    .json(&w),
            )
            .await?;
            let resp = expect_status(task, "conflict", resp, &[201, 409]).await?;
            if resp.status().as_u16() == 201 {
                // The id was still free (no upsert yet): undo the write.
                let resp = send(
                    http.delete(format!("{base}/v1/memories/{}", state.own_id))
                        .json(&json!({ "requested_by_namespace": other })),
                )
                .await?;
                expect_status(task, "undo conflict write", resp, &[204]).await?;
            }
        }
        Step::FullText | Step::Substring | Step::Recent | Step::Semantic => {
            let mut body = json!({ "namespaces": state.search().namespaces, "limit": 20 });
            match step {
                Step::FullText => body["query"] = json!("load items batch"),
                Step::Substring => body["query"] = json!("l"),
                Step::Semantic => body["embedding"] = json!(vector(state.step)),
                _ => {}
            }
            let resp = send(http.post(format!("{base}/v1/search")).json(&body)).await?;
            expect_status(task, "search", resp, &[200]).await?;
        }
        Step::List => {
            let resp = send(http.get(format!("{memories_url}?limit=100"))).await?;
            expect_status(task, "list", resp, &[200]).await?;
        }
        Step::Forget => {
            if let Some(id) = state.written.pop() {
                // An expiring memory may be gone by now: 404 is fine, 5xx is not.
                let resp = send(
                    http.delete(format!("{base}/v1/memories/{id}"))
                        .json(&json!({ "requested_by_namespace": ns })),
                )
                .await?;
                expect_status(task, "forget", resp, &[204, 404]).await?;
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_http_clients_writing_and_searching_get_no_5xx() {
    let dir = TempDir::new("sqlite-concurrency");
    let store = file_store(&dir).await;
    create_namespaces(&*store).await;
    let server = server::spawn(
        store,
        ServerConfig {
            // Sweeps often, so sweeping contends with the load too.
            sweep_interval: Duration::from_secs(1),
            ..ServerConfig::default()
        },
    )
    .await
    .expect("spawn server");
    let base = server.url().to_string();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client");
    let (steps, errors) = soak(move |mut state, step| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let outcome = http_step(&http, &base, &mut state, step).await;
            (state, outcome)
        }
    })
    .await;
    server.shutdown().await.expect("shutdown");
    assert!(
        errors.is_empty(),
        "{} of {steps} requests failed; first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert!(steps >= TASKS, "every task ran at least one step");
    eprintln!("{steps} HTTP steps in {SOAK_DURATION:?} without error");
}
