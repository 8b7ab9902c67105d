//! The SQLite full-text index by namespace: scores equal, bit for bit,
//! what `-bm25()` gives on a content-only FTS5 index of the same rows (the
//! store's ranking before the namespace went into the index), also after
//! appends, rewrites, deletes, writes by a second store on the same file and
//! a row inserted by hand; and a file made by the first schema gets the new
//! index at its first open, once.

mod common;

use chrono::{Duration, TimeZone, Utc};
use common::rng::Rng;
use memory_contract::{BatchWrite, MemoryKind, MemorySource, MemoryWrite, NamespaceKind};
use memory_plugin::store::sqlite::{SqliteOptions, SqliteStore};
use memory_plugin::store::{SearchQuery, Store};
use memory_testkit::TempDir;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use std::path::Path;
use uuid::Uuid;

const NAMESPACES: &[&str] = &["workspace:a", "team:b", "org:c", "custom:d", "custom:e"];

const WORDS: &[&str] = &[
    "deploy",
    "database",
    "customer",
    "latency",
    "incident",
    "deployed",
    "rollback",
    "migration",
    "invoice",
    "backup",
    "restore",
    "cluster",
    "kubernetes",
    "zürich",
    "東京",
    "giraffe",
];

/// Queries without English stop words, so that the reference expression
/// (every word quoted) is the store's.
const QUERIES: &[&str] = &[
    "deploy",
    "deploying database",
    "customer invoice backup",
    "giraffe",
    "latency latency",
    "zürich",
    "東京 cluster",
    "nothingmatches",
];

impl Rng {
    fn text(&mut self) -> String {
        let n = 1 + self.below(20);
        (0..n)
            .map(|_| {
                // Skewed: early words are common, late ones rare.
                let a = self.below(WORDS.len());
                WORDS[self.below(a + 1)]
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn writes(rng: &mut Rng, n: usize) -> Vec<BatchWrite> {
    (0..n)
        .map(|i| {
            let mut write = MemoryWrite::new(rng.text(), MemoryKind::Fact, MemorySource::Agent);
            write.id = Some(Uuid::from_u64_pair(rng.next(), rng.next()));
            write.pin = Some(i % 7 == 0);
            write.created_at = Some(
                Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap()
                    - Duration::minutes(i as i64 % 30),
            );
            BatchWrite {
                namespace: NAMESPACES[rng.below(NAMESPACES.len())].to_string(),
                write,
            }
        })
        .collect()
}

async fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(
        &format!("sqlite:{}", path.display()),
        SqliteOptions { embedding_dim: 4 },
    )
    .await
    .expect("open store")
}

async fn create_namespaces(store: &SqliteStore) {
    common::namespaces::create(store, NamespaceKind::Custom, NAMESPACES).await;
}

async fn load(store: &SqliteStore, items: &[BatchWrite]) {
    for chunk in items.chunks(50) {
        for r in store.write_batch(chunk).await.expect("batch") {
            r.expect("batch item");
        }
    }
}

async fn inspect(path: &Path) -> SqliteConnection {
    SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path))
        .await
        .expect("inspect connection")
}

/// What the store's full-text search gave before the namespace went into
/// the index: `-bm25()` over a content-only index of every row, then the
/// namespace filter, in the same order.
async fn reference(
    conn: &mut SqliteConnection,
    namespaces: &[&str],
    text: &str,
) -> Vec<(Uuid, f64)> {
    sqlx::query("DROP TABLE IF EXISTS temp.reference")
        .execute(&mut *conn)
        .await
        .expect("drop reference");
    sqlx::query(
        "CREATE VIRTUAL TABLE temp.reference USING fts5 (content, tokenize = 'porter unicode61')",
    )
    .execute(&mut *conn)
    .await
    .expect("reference index");
    sqlx::query(
        "INSERT INTO temp.reference (rowid, content) SELECT seq, content FROM memory_records",
    )
    .execute(&mut *conn)
    .await
    .expect("fill reference");
    let expression = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{w}\""))
        .collect::<Vec<_>>()
        .join(" ");
    let names = serde_json::to_string(namespaces).expect("json");
    let rows: Vec<(String, f64)> = sqlx::query_as(
        "SELECT r.id, -bm25(reference) AS score
         FROM reference JOIN memory_records r ON r.seq = reference.rowid
         WHERE reference MATCH ?1 AND r.namespace IN (SELECT value FROM json_each(?2))
         ORDER BY bm25(reference), r.pin DESC, r.created_at DESC, r.seq DESC
         LIMIT 100",
    )
    .bind(expression)
    .bind(names)
    .fetch_all(&mut *conn)
    .await
    .expect("reference search");
    rows.into_iter()
        .map(|(id, score)| (Uuid::parse_str(&id).expect("uuid"), score))
        .collect()
}

async fn searched(store: &SqliteStore, namespaces: &[&str], text: &str) -> Vec<(Uuid, f64)> {
    store
        .search(&SearchQuery {
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
            query: Some(text.to_string()),
            kinds: Vec::new(),
            limit: 100,
            embedding: None,
        })
        .await
        .expect("search")
        .into_iter()
        .map(|m| (m.id, m.score.expect("full-text results carry a score")))
        .collect()
}

/// Every query over several namespace sets: the store's answer equals the
/// reference exactly (same ids, same order, the same `f64` scores).
async fn assert_same_as_bm25(store: &SqliteStore, path: &Path, phase: &str) {
    let mut conn = inspect(path).await;
    let sets: [&[&str]; 3] = [&NAMESPACES[..3], &NAMESPACES[3..4], NAMESPACES];
    let mut compared = 0;
    for set in sets {
        for text in QUERIES {
            let want = reference(&mut conn, set, text).await;
            // Twice: the second answer comes from remembered frequencies.
            for round in 0..2 {
                let got = searched(store, set, text).await;
                assert_eq!(
                    got, want,
                    "{phase}, round {round}: search {text:?} in {set:?} differs from bm25"
                );
            }
            compared += want.len();
        }
    }
    assert!(compared > 100, "{phase}: only {compared} results compared");
}

#[tokio::test]
async fn scores_are_bm25_of_the_content_through_every_kind_of_change() {
    let dir = TempDir::new("sqlite-fts");
    let path = dir.path("rank.db");
    let store = open(&path).await;
    create_namespaces(&store).await;
    let mut rng = Rng(0xbeef);
    let first = writes(&mut rng, 300);
    load(&store, &first).await;
    assert_same_as_bm25(&store, &path, "after the first load").await;

    // Appends only: remembered frequencies are brought up to date.
    load(&store, &writes(&mut rng, 120)).await;
    store
        .write_memory(
            "custom:d",
            &MemoryWrite::new("giraffe deploy", MemoryKind::Fact, MemorySource::User),
        )
        .await
        .expect("single write");
    assert_same_as_bm25(&store, &path, "after appends").await;

    // Rewrites (new text under the same id), an unchanged rewrite, forgets
    // and a cascade: frequencies are counted again.
    for item in first.iter().step_by(10) {
        let mut w = item.write.clone();
        w.content = rng.text();
        store
            .write_memory(&item.namespace, &w)
            .await
            .expect("rewrite");
    }
    store
        .write_memory(&first[1].namespace, &first[1].write)
        .await
        .expect("same text again");
    for item in first.iter().skip(3).step_by(13) {
        store
            .forget(item.write.id.expect("id"), &item.namespace)
            .await
            .expect("forget");
    }
    store
        .delete_namespace("custom:e")
        .await
        .expect("delete namespace");
    create_namespaces(&store).await;
    assert_same_as_bm25(&store, &path, "after rewrites and deletes").await;

    // Another store on the same file (as another process would) appends.
    let other = open(&path).await;
    load(&other, &writes(&mut rng, 80)).await;
    other.close().await;
    assert_same_as_bm25(&store, &path, "after another store's writes").await;

    // A row inserted by hand into a gap below the highest key.
    let mut conn = inspect(&path).await;
    let gap: i64 = sqlx::query_scalar(
        "SELECT min(seq) + 1 FROM memory_records a
         WHERE NOT EXISTS (SELECT 1 FROM memory_records b WHERE b.seq = a.seq + 1)
           AND a.seq < (SELECT max(seq) FROM memory_records)",
    )
    .fetch_one(&mut conn)
    .await
    .expect("a gap");
    sqlx::query(
        "INSERT INTO memory_records (seq, id, namespace, content, kind, source, pin, created_at)
         VALUES (?1, ?2, 'workspace:a', 'giraffe giraffe latency', 'fact', 'user', 0,
                 '2026-02-01T00:00:00.000000Z')",
    )
    .bind(gap)
    .bind(Uuid::new_v4().to_string())
    .execute(&mut conn)
    .await
    .expect("insert by hand");
    assert_same_as_bm25(&store, &path, "after an insert below the highest key").await;

    // The newest memory forgotten, and its row key given to the next one.
    let newest = store
        .write_memory(
            "workspace:a",
            &MemoryWrite::new("giraffe latency", MemoryKind::Fact, MemorySource::User),
        )
        .await
        .expect("write");
    assert_same_as_bm25(&store, &path, "before a key is reused").await;
    store
        .forget(newest.id, "workspace:a")
        .await
        .expect("forget");
    store
        .write_memory(
            "team:b",
            &MemoryWrite::new(
                "deploy giraffe giraffe",
                MemoryKind::Fact,
                MemorySource::User,
            ),
        )
        .await
        .expect("write");
    assert_same_as_bm25(&store, &path, "after a key was reused").await;

    // Rows appended, then rewritten and forgotten before any search sees
    // them: the log holds changes of rows the remembered counts never saw.
    let fresh = writes(&mut rng, 60);
    load(&store, &fresh).await;
    for item in fresh.iter().step_by(3) {
        let mut w = item.write.clone();
        w.content = format!("{} latency", rng.text());
        store
            .write_memory(&item.namespace, &w)
            .await
            .expect("rewrite");
    }
    for item in fresh.iter().skip(1).step_by(4) {
        store
            .forget(item.write.id.expect("id"), &item.namespace)
            .await
            .expect("forget");
    }
    assert_same_as_bm25(&store, &path, "after new rows changed at once").await;

    // More changes than the change log keeps: counts are taken again.
    let everyone: Vec<BatchWrite> = first.iter().take(250).cloned().collect();
    for round in 0..20 {
        let rewritten: Vec<BatchWrite> = everyone
            .iter()
            .map(|item| {
                let mut item = item.clone();
                item.write.content = format!("{} round{round}", rng.text());
                item
            })
            .collect();
        for r in store.write_batch(&rewritten).await.expect("rewrite batch") {
            r.expect("rewrite");
        }
    }
    let logged: (i64, i64) =
        sqlx::query_as("SELECT logged, log_floor FROM memory_fts_changes WHERE id = 1")
            .fetch_one(&mut conn)
            .await
            .expect("log state");
    assert!(logged.0 > 8192 && logged.1 > 0, "{logged:?}");
    assert_same_as_bm25(&store, &path, "after the change log was trimmed").await;

    sqlx::query("INSERT INTO memory_records_fts (memory_records_fts) VALUES ('integrity-check')")
        .execute(&mut conn)
        .await
        .expect("the index matches the table");
    store.close().await;
}

/// The first schema's tables, triggers and content-only index, as a build
/// before the namespace index left a file.
async fn make_version_1_file(path: &Path) {
    let mut conn = SqliteConnection::connect_with(
        &SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true),
    )
    .await
    .expect("create file");
    sqlx::raw_sql(
        "CREATE TABLE memory_schema_migrations (
             version     INTEGER PRIMARY KEY NOT NULL,
             description TEXT NOT NULL,
             applied_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
         );
         INSERT INTO memory_schema_migrations (version, description)
             VALUES (1, 'namespaces, records, full-text index');",
    )
    .execute(&mut conn)
    .await
    .expect("version table");
    sqlx::raw_sql(include_str!("../migrations/sqlite/0001_init.sql"))
        .execute(&mut conn)
        .await
        .expect("first schema");
    for ns in ["team:old", "team:other"] {
        sqlx::query(
            "INSERT INTO memory_namespaces (name, kind, created_at)
             VALUES (?1, 'team', '2026-01-01T00:00:00.000000Z')",
        )
        .bind(ns)
        .execute(&mut conn)
        .await
        .expect("namespace");
    }
    let mut rng = Rng(7);
    for i in 0..200 {
        sqlx::query(
            "INSERT INTO memory_records (id, namespace, content, kind, source, pin, created_at)
             VALUES (?1, ?2, ?3, 'fact', 'agent', 0, ?4)",
        )
        .bind(Uuid::from_u64_pair(rng.next(), rng.next()).to_string())
        .bind(if i % 3 == 0 { "team:other" } else { "team:old" })
        .bind(rng.text())
        .bind(format!("2026-01-01T00:00:{:02}.000000Z", i % 60))
        .execute(&mut conn)
        .await
        .expect("memory");
    }
    conn.close().await.expect("close");
}

async fn fts_root_page(path: &Path) -> i64 {
    let mut conn = inspect(path).await;
    sqlx::query_scalar("SELECT rootpage FROM sqlite_schema WHERE name = 'memory_records_fts_data'")
        .fetch_one(&mut conn)
        .await
        .expect("root page")
}

#[tokio::test]
async fn a_version_1_file_gets_the_namespace_index_at_its_first_open_only() {
    let dir = TempDir::new("sqlite-fts");
    let path = dir.path("v1.db");
    make_version_1_file(&path).await;
    let mut conn = inspect(&path).await;
    let columns: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pragma_table_info('memory_records_fts')")
            .fetch_all(&mut conn)
            .await
            .expect("columns");
    assert_eq!(columns, ["content"], "a file of the first schema");
    let before = reference(&mut conn, &["team:old"], "deploy database").await;
    assert!(!before.is_empty());

    let store = open(&path).await;
    let columns: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pragma_table_info('memory_records_fts')")
            .fetch_all(&mut conn)
            .await
            .expect("columns");
    assert_eq!(columns, ["content", "namespace_key"], "upgraded at open");
    assert_eq!(store.schema_version().await.expect("version"), 1);
    assert_eq!(
        searched(&store, &["team:old"], "deploy database").await,
        before,
        "the same answer as the first schema's index gave"
    );
    sqlx::query("INSERT INTO memory_records_fts (memory_records_fts) VALUES ('integrity-check')")
        .execute(&mut conn)
        .await
        .expect("the built index matches the table");
    assert_same_as_bm25_on(&store, &path, &["team:old", "team:other"]).await;
    let root = fts_root_page(&path).await;
    store.close().await;

    let again = open(&path).await;
    assert_eq!(fts_root_page(&path).await, root, "not built again");
    assert_eq!(
        searched(&again, &["team:old"], "deploy database").await,
        before
    );
    again.close().await;
}

async fn assert_same_as_bm25_on(store: &SqliteStore, path: &Path, namespaces: &[&str]) {
    let mut conn = inspect(path).await;
    for text in QUERIES {
        assert_eq!(
            searched(store, namespaces, text).await,
            reference(&mut conn, namespaces, text).await,
            "search {text:?}"
        );
    }
}

#[tokio::test]
async fn the_public_statement_run_directly_answers_as_the_store() {
    use memory_plugin::store::sqlite::{full_text_arguments, full_text_sql, prepare_connection};
    let dir = TempDir::new("sqlite-fts");
    let path = dir.path("direct.db");
    let store = open(&path).await;
    create_namespaces(&store).await;
    load(&store, &writes(&mut Rng(99), 200)).await;
    let mut conn = inspect(&path).await;
    prepare_connection(&mut conn).await.expect("prepare");
    let namespaces: Vec<String> = NAMESPACES[..3].iter().map(|s| s.to_string()).collect();
    for text in QUERIES {
        let Some((expression, counts)) = full_text_arguments(&mut conn, text, &namespaces)
            .await
            .expect("arguments")
        else {
            continue;
        };
        let rows: Vec<(String, f64)> =
            sqlx::query_as(&format!("SELECT id, score FROM ({})", full_text_sql()))
                .bind(serde_json::to_string(&namespaces).expect("json"))
                .bind("9999-01-01T00:00:00.000000Z")
                .bind(None::<String>)
                .bind(expression)
                .bind(100i64)
                .bind(counts)
                .fetch_all(&mut conn)
                .await
                .expect("direct search");
        let direct: Vec<(Uuid, f64)> = rows
            .into_iter()
            .map(|(id, score)| (Uuid::parse_str(&id).expect("uuid"), score))
            .collect();
        assert_eq!(
            direct,
            searched(&store, &NAMESPACES[..3], text).await,
            "{text:?}"
        );
    }
    store.close().await;
}
