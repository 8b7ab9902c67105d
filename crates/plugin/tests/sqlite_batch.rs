//! The SQLite batch write (many memories per statement) against the same
//! writes made one by one: every item's answer and the stored rows must be
//! the same. The writes mix repeated ids within and across batches, ids
//! living in another namespace, absent and expired namespaces, embeddings
//! of the wrong dimension, given and missing creation times, rows written
//! already expired, pins, propagation, odd text (NUL included), in batches
//! of every size.

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::rng::Rng;
use memory_contract::{
    BatchWrite, Memory, MemoryKind, MemorySource, MemoryWrite, NamespaceKind, NamespaceUpsert,
};
use memory_plugin::store::sqlite::{SqliteOptions, SqliteStore};
use memory_plugin::store::{SearchQuery, Store, StoreError, StoreResult};
use memory_testkit::TempDir;
use serde_json::json;
use uuid::Uuid;

const LIVE: &[&str] = &["workspace:a", "team:b", "org:c", "custom:d"];
const EXPIRED: &str = "custom:expired";
const ABSENT: &str = "custom:absent";

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

const TEXTS: &[&str] = &[
    "deploy the database",
    "quotes ' \" `ticks` $$",
    "back\\slash \\n not an escape",
    "unicode \u{1F600} \u{e9}t\u{e9} \u{4e2d}\u{6587} \u{202e}rtl",
    "nul \u{0} inside",
    "control \u{1} \u{1f} \t\r\n",
    "{\"looks\": [\"like json\"]}",
    "  spaces around  ",
];

/// The writes, in order, each with its namespace.
fn writes(rng: &mut Rng, ids: &[Uuid], n: usize) -> Vec<BatchWrite> {
    let kinds = [
        MemoryKind::Fact,
        MemoryKind::Summary,
        MemoryKind::Checkpoint,
    ];
    let sources = [
        MemorySource::Agent,
        MemorySource::Runtime,
        MemorySource::User,
    ];
    (0..n)
        .map(|i| {
            let namespace = match rng.below(20) {
                0 => EXPIRED.to_string(),
                1 => ABSENT.to_string(),
                _ => LIVE[rng.below(LIVE.len())].to_string(),
            };
            let content = format!("{} #{i}", TEXTS[rng.below(TEXTS.len())]);
            let mut write = MemoryWrite::new(content, kinds[rng.below(3)], sources[rng.below(3)]);
            // Most items name an id from a small pool, so ids repeat within
            // and across batches; the others get a fresh one from the store.
            if rng.chance(85) {
                write.id = Some(ids[rng.below(ids.len())]);
            }
            if rng.chance(50) {
                write.created_at = Some(base() - Duration::minutes(rng.below(500) as i64));
            }
            match rng.below(10) {
                0 => write.expires_at = Some(base() - Duration::days(1)),
                1 => write.expires_at = Some(Utc::now() + Duration::days(30)),
                _ => {}
            }
            if rng.chance(20) {
                write.pin = Some(rng.chance(50));
            }
            if rng.chance(20) {
                write.propagation = Some(json!({"to": ["team"], "n": i}));
            }
            if rng.chance(25) {
                let dim = if rng.chance(10) { 3 } else { 4 };
                write.embedding = Some((0..dim).map(|d| (i + d) as f32 * 0.5 - 1.0).collect());
            }
            BatchWrite { namespace, write }
        })
        .collect()
}

async fn open(dir: &TempDir, name: &str) -> SqliteStore {
    let url = dir.sqlite_url(name);
    let store = SqliteStore::open(&url, SqliteOptions { embedding_dim: 4 })
        .await
        .expect("open");
    common::namespaces::create(&store, NamespaceKind::Custom, LIVE.iter().chain([&EXPIRED])).await;
    store
}

/// What an answer says, with the generated ids of id-less writes left out
/// (each store makes its own).
fn outcome(write: &MemoryWrite, result: &StoreResult<memory_contract::WriteAck>) -> String {
    match result {
        Ok(ack) if write.id.is_some() => format!("ok {} {}", ack.id, ack.namespace),
        Ok(ack) => format!("ok (new id) {}", ack.namespace),
        Err(StoreError::NotFound(m)) => format!("not found: {m}"),
        Err(StoreError::Conflict(m)) => format!("conflict: {m}"),
        Err(StoreError::BadRequest(m)) => format!("bad request: {m}"),
        Err(e) => format!("other error: {e}"),
    }
}

async fn every_row(store: &SqliteStore) -> Vec<Memory> {
    let mut rows = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .scan_memories(after, None, 500, true)
            .await
            .expect("scan");
        rows.extend(page.memories);
        match page.next_after {
            Some(next) => after = Some(next),
            None => return rows,
        }
    }
}

/// A row as compared: ids the store generated are replaced by the text,
/// which is unique per write.
fn comparable(m: &Memory, pool: &[Uuid], started: DateTime<Utc>) -> String {
    let id = if pool.contains(&m.id) {
        m.id.to_string()
    } else {
        "(new id)".to_string()
    };
    // A creation time the store took from its clock differs between the
    // two stores by the moment of writing; one it kept or was given does not.
    let created = if m.created_at >= started {
        "(written now)".to_string()
    } else {
        m.created_at.to_rfc3339()
    };
    format!(
        "{id} {} {:?} {:?} {:?} {:?} {:?} {} {created} {:?}",
        m.namespace, m.content, m.kind, m.source, m.expires_at, m.propagation, m.pin, m.embedding
    )
}

async fn sorted_rows(store: &SqliteStore, pool: &[Uuid], started: DateTime<Utc>) -> Vec<String> {
    let mut rows: Vec<String> = every_row(store)
        .await
        .iter()
        .map(|m| comparable(m, pool, started))
        .collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn batches_answer_and_store_exactly_what_single_writes_do() {
    let dir = TempDir::new("sqlite-batch");
    let batched = open(&dir, "batched.db").await;
    let single = open(&dir, "single.db").await;
    let started = Utc::now();
    let mut rng = Rng(0xba7c);
    let pool: Vec<Uuid> = (0..60)
        .map(|_| Uuid::from_u64_pair(rng.next(), rng.next()))
        .collect();

    // Some ids already live somewhere before the batches come.
    for (k, id) in pool.iter().enumerate().step_by(7) {
        let mut w = MemoryWrite::new(format!("first #{k}"), MemoryKind::Fact, MemorySource::Agent);
        w.id = Some(*id);
        w.created_at = Some(base() - Duration::days(3));
        for store in [&batched, &single] {
            store
                .write_memory(LIVE[k % LIVE.len()], &w)
                .await
                .expect("first write");
        }
    }
    // The expired namespace expires now.
    for store in [&batched, &single] {
        store
            .upsert_namespace(
                EXPIRED,
                &NamespaceUpsert {
                    kind: NamespaceKind::Custom,
                    expires_at: Some(Utc::now() + Duration::milliseconds(50)),
                    metadata: None,
                },
            )
            .await
            .expect("expiring namespace");
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let all = writes(&mut rng, &pool, 1500);
    let mut at = 0;
    let mut answers = 0;
    while at < all.len() {
        let size = [1, 2, 7, 50, 200, 400][rng.below(6)].min(all.len() - at);
        let batch = &all[at..at + size];
        let got = batched.write_batch(batch).await.expect("batch");
        assert_eq!(got.len(), batch.len());
        for (item, got) in batch.iter().zip(&got) {
            let want = single.write_memory(&item.namespace, &item.write).await;
            assert_eq!(
                outcome(&item.write, got),
                outcome(&item.write, &want),
                "item {} ({:?} in {})",
                at,
                item.write.id,
                item.namespace
            );
            answers += usize::from(got.is_ok());
        }
        at += size;
    }
    assert!(answers > 500, "only {answers} writes succeeded");

    let (a, b) = (
        sorted_rows(&batched, &pool, started).await,
        sorted_rows(&single, &pool, started).await,
    );
    assert_eq!(a.len(), b.len(), "row counts");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }

    // Same write order too: equal creation times are ordered by it (and
    // pinned rows first).
    for ns in LIVE {
        let q = SearchQuery {
            namespaces: vec![ns.to_string()],
            query: None,
            kinds: Vec::new(),
            limit: 100,
            embedding: None,
        };
        // Rows whose creation time came from the clock are left out: a
        // batch takes one time for all its items, single writes one each.
        let order = |found: Vec<Memory>| {
            found
                .into_iter()
                .filter(|m| m.created_at < started)
                .map(|m| m.content)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            order(batched.search(&q).await.expect("search")),
            order(single.search(&q).await.expect("search")),
            "newest first in {ns}"
        );
    }
    batched.close().await;
    single.close().await;
}
