//! Group commit of single writes, on both stores: concurrent writers over
//! real HTTP each get exactly one answer and exactly the acknowledged rows
//! exist; a group mixing good and bad writes answers each caller its own
//! result; the same id twice in one group ends with the later write; a
//! group whose commit fails acknowledges nothing; on Postgres, concurrent
//! groups that take the same rows in opposite orders (and so can deadlock)
//! still answer every write.

mod common;

use chrono::{TimeZone, Utc};
use memory_contract::{BatchWrite, MemoryKind, MemorySource, MemoryWrite, NamespaceKind};
use memory_plugin::server::{spawn, ServerConfig, SpawnedServer};
use memory_plugin::store::postgres::{PgOptions, PgStore};
use memory_plugin::store::sqlite::{SqliteOptions, SqliteStore};
use memory_plugin::store::{Store, StoreError};
use memory_testkit::TestDb;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use uuid::Uuid;

const DIM: usize = 3;

/// A store to test and what keeps its storage alive.
struct Backend {
    store: Arc<dyn Store>,
    pg: Option<(PgStore, TestDb)>,
    sqlite: Option<(SqliteStore, PathBuf)>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some((_, file)) = &self.sqlite {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
        }
    }
}

async fn postgres() -> Backend {
    let db = memory_testkit::pg15().await;
    let store = PgStore::connect(
        db.url(),
        PgOptions {
            embedding_dim: DIM,
            ..PgOptions::default()
        },
    )
    .await
    .expect("PgStore connects");
    Backend {
        store: Arc::new(store.clone()),
        pg: Some((store, db)),
        sqlite: None,
    }
}

async fn sqlite() -> Backend {
    let file = std::env::temp_dir().join(format!("memory-plugin-group-{}.db", Uuid::new_v4()));
    let store = SqliteStore::open(
        &format!("sqlite:{}", file.display()),
        SqliteOptions { embedding_dim: DIM },
    )
    .await
    .expect("SqliteStore opens");
    Backend {
        store: Arc::new(store.clone()),
        pg: None,
        sqlite: Some((store, file)),
    }
}

impl Backend {
    async fn namespace(&self, name: &str) {
        common::namespaces::create(&*self.store, NamespaceKind::Team, [name]).await;
    }

    /// The committer's step on a prepared group.
    async fn write_group(
        &self,
        writes: &[BatchWrite],
    ) -> Vec<memory_plugin::store::StoreResult<memory_contract::WriteAck>> {
        match (&self.pg, &self.sqlite) {
            (Some((store, _)), _) => store.write_group(writes).await,
            (_, Some((store, _))) => store.write_group(writes).await,
            _ => unreachable!(),
        }
    }

    /// Every live memory of `namespace`, by id.
    async fn memories(&self, namespace: &str) -> HashMap<Uuid, memory_contract::Memory> {
        let mut out = HashMap::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .list_memories(namespace, after, 500)
                .await
                .expect("list");
            for m in page.memories {
                assert!(out.insert(m.id, m).is_none(), "an id listed twice");
            }
            match page.next_after {
                Some(next) => after = Some(next),
                None => return out,
            }
        }
    }
}

fn fact(content: &str, id: Option<Uuid>) -> MemoryWrite {
    let mut w = MemoryWrite::new(content, MemoryKind::Fact, MemorySource::Agent);
    w.id = id;
    w
}

fn item(namespace: &str, write: MemoryWrite) -> BatchWrite {
    BatchWrite {
        namespace: namespace.to_string(),
        write,
    }
}

async fn server(backend: &Backend) -> SpawnedServer {
    spawn(Arc::clone(&backend.store), ServerConfig::default())
        .await
        .expect("server binds")
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let resp = http.post(url).json(body).send().await.expect("request");
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

// ---------------------------------------------------------------------
// 64 concurrent writers over HTTP.

const WRITERS: usize = 64;
const WRITES_EACH: usize = 25;

async fn concurrent_writers_each_acknowledged_once(backend: Backend) {
    backend.namespace("team:load").await;
    let server = server(&backend).await;
    let url = format!("{}/v1/namespaces/team:load/memories", server.url());
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let http = http.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            for n in 0..WRITES_EACH {
                // Every other write carries its own id.
                let given = (n % 2 == 0).then(Uuid::new_v4);
                let mut body = json!({
                    "content": format!("writer {writer} write {n}"),
                    "kind": "fact",
                    "source": "agent",
                });
                if let Some(id) = given {
                    body["id"] = json!(id);
                }
                let (status, body) = post(&http, &url, &body).await;
                assert_eq!(status, 201, "{body}");
                let id: Uuid = body["id"].as_str().expect("id").parse().expect("uuid");
                if let Some(given) = given {
                    assert_eq!(id, given, "the acknowledged id is the given one");
                }
                assert_eq!(body["namespace"], "team:load");
                acks.push((id, format!("writer {writer} write {n}")));
            }
            acks
        }));
    }
    let mut acked: HashMap<Uuid, String> = HashMap::new();
    for task in tasks {
        for (id, content) in task.await.expect("writer task") {
            assert!(
                acked.insert(id, content).is_none(),
                "id {id} acknowledged twice"
            );
        }
    }
    assert_eq!(acked.len(), WRITERS * WRITES_EACH);
    let stored = backend.memories("team:load").await;
    assert_eq!(stored.len(), acked.len(), "rows = acknowledged writes");
    for (id, content) in &acked {
        let memory = stored
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged {id} is missing"));
        assert_eq!(&memory.content, content);
    }

    // `/metrics` counts every write in exactly one group, and with 64
    // writers at once some groups held more than one.
    let text = http
        .get(format!("{}/metrics", server.url()))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let figure = |name: &str| -> f64 {
        text.lines()
            .find(|line| line.starts_with(name) && line[name.len()..].starts_with('{'))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
    };
    let writes = figure("memory_plugin_write_group_size_sum");
    let groups = figure("memory_plugin_write_group_size_count");
    assert_eq!(writes, (WRITERS * WRITES_EACH) as f64, "{text}");
    assert!(
        groups >= 1.0 && groups < writes,
        "groups {groups} for {writes} writes"
    );
    assert!(
        figure("memory_plugin_write_group_seconds_total") > 0.0,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_writers_each_acknowledged_once() {
    concurrent_writers_each_acknowledged_once(postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_writers_each_acknowledged_once() {
    concurrent_writers_each_acknowledged_once(sqlite().await).await;
}

// ---------------------------------------------------------------------
// Good and bad writes arriving together over HTTP.

async fn mixed_burst_answers_each_caller(backend: Backend) {
    backend.namespace("team:home").await;
    backend.namespace("team:other").await;
    // Ids that live in team:other; writing them to team:home is a conflict.
    let mut taken = Vec::new();
    for n in 0..8 {
        let id = Uuid::new_v4();
        backend
            .store
            .write_memory("team:other", &fact(&format!("owned {n}"), Some(id)))
            .await
            .expect("seed");
        taken.push(id);
    }
    let server = server(&backend).await;
    let base = server.url().to_string();
    let http = reqwest::Client::new();

    #[derive(Clone, Copy, Debug)]
    enum Expect {
        Created,
        Conflict,
        Missing,
    }
    let mut tasks = Vec::new();
    for round in 0..6 {
        for n in 0..24 {
            let (namespace, id, expect) = match n % 4 {
                0 => (
                    "team:home",
                    Some(taken[(n / 4) % taken.len()]),
                    Expect::Conflict,
                ),
                1 => ("team:absent", None, Expect::Missing),
                2 => ("team:home", Some(Uuid::new_v4()), Expect::Created),
                _ => ("team:home", None, Expect::Created),
            };
            let http = http.clone();
            let url = format!("{base}/v1/namespaces/{namespace}/memories");
            let content = format!("round {round} item {n}");
            tasks.push(tokio::spawn(async move {
                let mut body = json!({"content": content, "kind": "fact", "source": "agent"});
                if let Some(id) = id {
                    body["id"] = json!(id);
                }
                let (status, answer) = post(&http, &url, &body).await;
                (expect, id, content, status, answer)
            }));
        }
    }
    let mut created = HashMap::new();
    for task in tasks {
        let (expect, id, content, status, answer) = task.await.expect("task");
        match expect {
            Expect::Created => {
                assert_eq!(status, 201, "{answer}");
                let acked: Uuid = answer["id"].as_str().unwrap().parse().unwrap();
                if let Some(id) = id {
                    assert_eq!(acked, id);
                }
                created.insert(acked, content);
            }
            Expect::Conflict => {
                assert_eq!(status, 409, "{answer}");
                assert_eq!(answer["code"], "conflict", "{answer}");
            }
            Expect::Missing => {
                assert_eq!(status, 404, "{answer}");
                assert_eq!(answer["code"], "not_found", "{answer}");
            }
        }
    }
    let home = backend.memories("team:home").await;
    assert_eq!(home.len(), created.len());
    for (id, content) in &created {
        assert_eq!(&home[id].content, content);
    }
    // The conflicting ids never moved and were never changed.
    let other = backend.memories("team:other").await;
    assert_eq!(other.len(), taken.len());
    for (n, id) in taken.iter().enumerate() {
        assert_eq!(other[id].content, format!("owned {n}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_mixed_burst_answers_each_caller() {
    mixed_burst_answers_each_caller(postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_mixed_burst_answers_each_caller() {
    mixed_burst_answers_each_caller(sqlite().await).await;
}

// ---------------------------------------------------------------------
// A prepared group handed to the committer's step.

/// The write the store itself refuses (past the HTTP layer's checks):
/// Postgres cannot hold a NUL character in text; SQLite holds years 0 to
/// 9999 only.
fn refused_by_store(backend: &Backend) -> MemoryWrite {
    if backend.pg.is_some() {
        fact("nul \0 inside", Some(Uuid::new_v4()))
    } else {
        let mut w = fact("far future", Some(Uuid::new_v4()));
        w.expires_at = Some(Utc.with_ymd_and_hms(12000, 1, 1, 0, 0, 0).unwrap());
        w
    }
}

async fn group_with_bad_writes_fails_them_alone(backend: Backend) {
    backend.namespace("team:a").await;
    backend.namespace("team:b").await;
    let elsewhere = Uuid::new_v4();
    backend
        .store
        .write_memory("team:b", &fact("lives in b", Some(elsewhere)))
        .await
        .expect("seed");
    let good_ids: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    let refused = refused_by_store(&backend);
    let refused_id = refused.id.unwrap();
    let mut wrong_dim = fact("wrong dimension", Some(Uuid::new_v4()));
    wrong_dim.embedding = Some(vec![1.0; DIM + 1]);
    let group = vec![
        item("team:a", fact("good 0", Some(good_ids[0]))),
        item("team:a", fact("steals from b", Some(elsewhere))),
        item("team:a", fact("good 1", Some(good_ids[1]))),
        item("team:a", refused),
        item("team:missing", fact("nowhere", None)),
        item("team:a", fact("good 2", Some(good_ids[2]))),
        item("team:a", wrong_dim),
        item("team:a", fact("good 3", Some(good_ids[3]))),
        item("team:a", fact("good without id", None)),
    ];
    let results = backend.write_group(&group).await;
    assert_eq!(results.len(), group.len());
    for (slot, n) in [(0, 0), (2, 1), (5, 2), (7, 3)] {
        let ack = results[slot].as_ref().expect("good write acknowledged");
        assert_eq!(ack.id, good_ids[n]);
        assert_eq!(ack.namespace, "team:a");
    }
    let generated = results[8].as_ref().expect("good write without id").id;
    assert!(
        matches!(&results[1], Err(StoreError::Conflict(_))),
        "{:?}",
        results[1]
    );
    assert!(results[3].is_err(), "the refused write fails");
    assert!(
        matches!(&results[4], Err(StoreError::NotFound(_))),
        "{:?}",
        results[4]
    );
    assert!(
        matches!(&results[6], Err(StoreError::BadRequest(_))),
        "{:?}",
        results[6]
    );
    let a = backend.memories("team:a").await;
    let mut expected: HashSet<Uuid> = good_ids.iter().copied().collect();
    expected.insert(generated);
    assert_eq!(a.keys().copied().collect::<HashSet<_>>(), expected);
    assert!(!a.contains_key(&refused_id));
    let b = backend.memories("team:b").await;
    assert_eq!(
        b[&elsewhere].content, "lives in b",
        "never moved nor changed"
    );
}

#[tokio::test]
async fn postgres_group_with_bad_writes_fails_them_alone() {
    group_with_bad_writes_fails_them_alone(postgres().await).await;
}

#[tokio::test]
async fn sqlite_group_with_bad_writes_fails_them_alone() {
    group_with_bad_writes_fails_them_alone(sqlite().await).await;
}

async fn same_id_twice_in_a_group_ends_with_the_later(backend: Backend) {
    backend.namespace("team:a").await;
    backend.namespace("team:b").await;
    let twice = Uuid::new_v4();
    let new_then_elsewhere = Uuid::new_v4();
    let other = Uuid::new_v4();
    let group = vec![
        item("team:a", fact("first", Some(twice))),
        item("team:a", fact("unrelated", Some(other))),
        item("team:a", fact("placed in a", Some(new_then_elsewhere))),
        item("team:a", fact("second", Some(twice))),
        // Sequentially, this id already lives in team:a by now.
        item("team:b", fact("moved to b?", Some(new_then_elsewhere))),
        item("team:a", fact("third", Some(twice))),
    ];
    let results = backend.write_group(&group).await;
    for slot in [0, 1, 2, 3, 5] {
        assert!(results[slot].is_ok(), "slot {slot}: {:?}", results[slot]);
    }
    assert!(
        matches!(&results[4], Err(StoreError::Conflict(_))),
        "{:?}",
        results[4]
    );
    let a = backend.memories("team:a").await;
    assert_eq!(a.len(), 3);
    assert_eq!(a[&twice].content, "third", "the last write of the id wins");
    assert_eq!(a[&new_then_elsewhere].content, "placed in a");
    assert!(backend.memories("team:b").await.is_empty());
}

#[tokio::test]
async fn postgres_same_id_twice_in_a_group_ends_with_the_later() {
    same_id_twice_in_a_group_ends_with_the_later(postgres().await).await;
}

#[tokio::test]
async fn sqlite_same_id_twice_in_a_group_ends_with_the_later() {
    same_id_twice_in_a_group_ends_with_the_later(sqlite().await).await;
}

/// A commit the database refuses (a deferred constraint trigger fires at
/// COMMIT) fails every write of the group, and none of them is stored.
#[tokio::test]
async fn postgres_failed_commit_fails_the_whole_group() {
    let backend = postgres().await;
    backend.namespace("team:a").await;
    let (store, _) = backend.pg.as_ref().unwrap();
    sqlx::raw_sql(
        "CREATE FUNCTION memory_plugin.refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.content = 'refuse at commit' THEN
                 RAISE EXCEPTION 'refused at commit';
             END IF;
             RETURN NULL;
         END $$;
         CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON memory_plugin.memory_records
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
         EXECUTE FUNCTION memory_plugin.refuse_at_commit();",
    )
    .execute(store.pool())
    .await
    .expect("trigger");
    let group = vec![
        item("team:a", fact("fine 1", None)),
        item("team:a", fact("refuse at commit", None)),
        item("team:a", fact("fine 2", None)),
    ];
    let results = backend.write_group(&group).await;
    for (slot, result) in results.iter().enumerate() {
        assert!(result.is_err(), "slot {slot} acknowledged: {result:?}");
    }
    assert!(backend.memories("team:a").await.is_empty());
    // The store goes on working.
    let ack = backend
        .store
        .write_memory("team:a", &fact("after", None))
        .await
        .expect("a later write");
    assert!(backend.memories("team:a").await.contains_key(&ack.id));
}

/// Four groups at once, each writing one id twice and then the other id:
/// had a group's runs shared one transaction, the second run would take
/// the two rows in the opposite order of the other groups' and Postgres
/// would abort one as a deadlock (it did, one round in two). Each run is
/// its own transaction taking its rows in id order, so every write
/// succeeds, round after round.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_groups_crossing_the_same_rows_all_succeed() {
    let backend = postgres().await;
    backend.namespace("team:home").await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    for id in [a, b] {
        backend
            .store
            .write_memory("team:home", &fact("seed", Some(id)))
            .await
            .expect("seed");
    }
    let (store, _) = backend.pg.as_ref().expect("postgres");
    for round in 0..20 {
        let group = |first: Uuid, then: Uuid, tag: &str| {
            vec![
                item(
                    "team:home",
                    fact(&format!("{tag} {round} one"), Some(first)),
                ),
                item(
                    "team:home",
                    fact(&format!("{tag} {round} two"), Some(first)),
                ),
                item(
                    "team:home",
                    fact(&format!("{tag} {round} other"), Some(then)),
                ),
            ]
        };
        let (g1, g2) = (group(a, b, "ab"), group(b, a, "ba"));
        let (r1, r2, r3, r4) = tokio::join!(
            store.write_group(&g1),
            store.write_group(&g2),
            store.write_group(&g1),
            store.write_group(&g2)
        );
        for (slot, r) in r1.iter().chain(&r2).chain(&r3).chain(&r4).enumerate() {
            assert!(r.is_ok(), "round {round}, write {slot}: {r:?}");
        }
    }
    let home = backend.memories("team:home").await;
    assert_eq!(home.len(), 2);
    let last = |id: Uuid| home[&id].content.clone();
    assert!(
        [last(a), last(b)]
            .iter()
            .all(|c| c.starts_with("ab 19") || c.starts_with("ba 19")),
        "{home:?}"
    );
}
