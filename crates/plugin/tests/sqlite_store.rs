//! SQLite-only checks of the store: URL forms, the file on disk (created,
//! WAL, reopened, migrated once), full-text details (stemming, user text
//! that looks like FTS5 syntax) and the full-text index staying in step with
//! the table. The semantics shared with Postgres are in `storage_sqlite.rs`.

mod common;

use chrono::{Duration, Utc};
use memory_contract::{BatchWrite, MemoryKind, MemorySource, MemoryWrite, NamespaceKind, RankMode};
use memory_plugin::store::hybrid::fuse;
use memory_plugin::store::sqlite::{SqliteOptions, SqliteStore};
use memory_plugin::store::{SearchQuery, Store, StoreError};
use memory_testkit::TempDir;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use std::path::Path;
use uuid::Uuid;

fn small() -> SqliteOptions {
    SqliteOptions { embedding_dim: 4 }
}

async fn open_file(path: &Path) -> SqliteStore {
    let url = format!("sqlite:{}", path.display());
    SqliteStore::open(&url, small())
        .await
        .unwrap_or_else(|e| panic!("open {url}: {e}"))
}

async fn open_memory() -> SqliteStore {
    SqliteStore::open("sqlite::memory:", small())
        .await
        .expect("open in-memory store")
}

/// A plain connection to the file, beside the store, to inspect it as an
/// operator would.
async fn inspect(path: &Path) -> SqliteConnection {
    SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path))
        .await
        .expect("inspect connection")
}

async fn namespace(store: &SqliteStore, name: &str) {
    common::namespaces::create(store, NamespaceKind::Team, [name]).await;
}

fn fact(content: &str) -> MemoryWrite {
    MemoryWrite::new(content, MemoryKind::Fact, MemorySource::Agent)
}

async fn write(store: &SqliteStore, ns: &str, content: &str) -> Uuid {
    store
        .write_memory(ns, &fact(content))
        .await
        .expect("write")
        .id
}

fn text(ns: &str, q: &str) -> SearchQuery {
    SearchQuery {
        namespaces: vec![ns.to_string()],
        query: Some(q.to_string()),
        kinds: Vec::new(),
        limit: 100,
        embedding: None,
    }
}

async fn found(store: &SqliteStore, q: &SearchQuery) -> Vec<String> {
    let mut contents: Vec<String> = store
        .search(q)
        .await
        .unwrap_or_else(|e| panic!("search {q:?}: {e}"))
        .into_iter()
        .map(|m| m.content)
        .collect();
    contents.sort();
    contents
}

/// Asks FTS5 to check its index against `memory_records`.
async fn assert_fts_in_step(path: &Path) {
    let mut conn = inspect(path).await;
    sqlx::query("INSERT INTO memory_records_fts (memory_records_fts) VALUES ('integrity-check')")
        .execute(&mut conn)
        .await
        .expect("full-text index matches memory_records");
}

// ---- opening -----------------------------------------------------------

#[tokio::test]
async fn missing_file_is_created_with_wal_and_the_named_tables() {
    let dir = TempDir::new("sqlite-store");
    let path = dir.path("new.db");
    assert!(!path.exists());
    let store = open_file(&path).await;
    assert!(path.exists(), "the database file was created");
    assert_eq!(store.journal_mode().await.expect("journal mode"), "wal");
    let features = store.features();
    assert!(features.embedding);
    assert_eq!(features.backend, "sqlite");

    let mut conn = inspect(&path).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .expect("pragma");
    assert_eq!(
        mode, "wal",
        "WAL is a property of the file, seen by any connection"
    );
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE 'memory_%' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .expect("tables");
    for expected in [
        "memory_namespaces",
        "memory_records",
        "memory_records_fts",
        "memory_schema_migrations",
    ] {
        assert!(
            tables.iter().any(|t| t == expected),
            "{expected} missing from {tables:?}"
        );
    }
    let fts_sql: String =
        sqlx::query_scalar("SELECT sql FROM sqlite_schema WHERE name = 'memory_records_fts'")
            .fetch_one(&mut conn)
            .await
            .expect("fts definition");
    assert!(fts_sql.contains("porter unicode61"), "{fts_sql}");
}

#[tokio::test]
async fn default_embedding_dimension_is_1536() {
    let store = SqliteStore::open("sqlite::memory:", SqliteOptions::default())
        .await
        .expect("open");
    assert_eq!(store.features().embedding_dim, 1536);
}

#[tokio::test]
async fn sqlite_double_slash_url_opens_the_same_file() {
    let dir = TempDir::new("sqlite-store");
    let path = dir.path("slashes.db");
    let first = SqliteStore::open(&format!("sqlite://{}", path.display()), small())
        .await
        .expect("open sqlite://");
    namespace(&first, "team:url").await;
    write(&first, "team:url", "written through sqlite://").await;
    first.close().await;
    let second = open_file(&path).await;
    assert_eq!(
        found(&second, &text("team:url", "written")).await,
        ["written through sqlite://"]
    );
}

#[tokio::test]
async fn reopening_a_file_keeps_data_and_does_not_migrate_again() {
    let dir = TempDir::new("sqlite-store");
    let path = dir.path("reopen.db");
    let store = open_file(&path).await;
    namespace(&store, "team:keep").await;
    let id = write(&store, "team:keep", "survives a restart").await;
    assert_eq!(store.schema_version().await.expect("version"), 1);
    store.close().await;
    drop(store);

    let again = open_file(&path).await;
    let rows = again
        .list_memories("team:keep", None, 10)
        .await
        .expect("list after reopen");
    assert_eq!(rows.memories.len(), 1);
    assert_eq!(rows.memories[0].id, id);
    assert_eq!(
        found(&again, &text("team:keep", "restart")).await,
        ["survives a restart"],
        "the full-text index survives too"
    );
    let third = open_file(&path).await;
    assert_eq!(third.schema_version().await.expect("version"), 1);
    let mut conn = inspect(&path).await;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM memory_schema_migrations")
        .fetch_one(&mut conn)
        .await
        .expect("count");
    assert_eq!(applied, 1, "each migration recorded once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_opening_one_new_file_at_once_both_work() {
    let dir = TempDir::new("sqlite-store");
    let path = dir.path("race.db");
    let (a, b) = tokio::join!(open_file(&path), open_file(&path));
    namespace(&a, "team:shared").await;
    write(&b, "team:shared", "seen by both").await;
    assert_eq!(
        found(&a, &text("team:shared", "seen")).await,
        ["seen by both"]
    );
    let mut conn = inspect(&path).await;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM memory_schema_migrations")
        .fetch_one(&mut conn)
        .await
        .expect("count");
    assert_eq!(applied, 1);
}

#[tokio::test]
async fn in_memory_stores_are_private_and_shared_by_their_connections() {
    let a = open_memory().await;
    let b = open_memory().await;
    namespace(&a, "team:mem").await;
    write(&a, "team:mem", "only in a").await;
    // Many calls at once: they all must see the one database.
    let q = text("team:mem", "only");
    let searches = (0..20).map(|_| a.search(&q));
    for result in futures::future::join_all(searches).await {
        assert_eq!(result.expect("search").len(), 1);
    }
    assert!(b.get_namespace("team:mem").await.expect("get").is_none());
}

#[tokio::test]
async fn non_sqlite_url_is_refused_without_echoing_it() {
    let result = SqliteStore::open("postgres://admin:hunter2@db.example/x", small()).await;
    match result {
        Err(StoreError::BadRequest(msg)) => {
            assert!(!msg.contains("hunter2"), "{msg}");
            assert!(msg.contains("sqlite:"), "{msg}");
        }
        other => panic!("expected BadRequest, got {:?}", other.map(|_| ())),
    }
    assert!(matches!(
        SqliteStore::open("sqlite:", small()).await,
        Err(StoreError::BadRequest(_))
    ));
}

#[tokio::test]
async fn missing_directory_is_named_in_the_error() {
    let dir = TempDir::new("sqlite-store");
    let path = dir.path("no/such/dir/x.db");
    match SqliteStore::open(&format!("sqlite:{}", path.display()), small()).await {
        Err(StoreError::Unavailable(msg)) => assert!(msg.contains("does not exist"), "{msg}"),
        other => panic!("expected Unavailable, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn zero_embedding_dimension_is_refused() {
    let result = SqliteStore::open("sqlite::memory:", SqliteOptions { embedding_dim: 0 }).await;
    assert!(matches!(result, Err(StoreError::BadRequest(_))));
}

// ---- full text ---------------------------------------------------------

#[tokio::test]
async fn deploying_finds_deployed() {
    let store = open_memory().await;
    namespace(&store, "team:stem").await;
    write(&store, "team:stem", "We deployed the new build on Friday").await;
    write(&store, "team:stem", "Lunch menu").await;
    assert_eq!(
        found(&store, &text("team:stem", "deploying")).await,
        ["We deployed the new build on Friday"]
    );
    assert_eq!(
        found(&store, &text("team:stem", "DEPLOYS")).await,
        ["We deployed the new build on Friday"]
    );
}

#[tokio::test]
async fn common_english_words_in_a_query_do_not_hide_matches() {
    let store = open_memory().await;
    namespace(&store, "team:stop").await;
    write(&store, "team:stop", "deployment checklist").await;
    assert_eq!(
        found(&store, &text("team:stop", "what is the deployment")).await,
        ["deployment checklist"]
    );
}

#[tokio::test]
async fn fts_syntax_in_user_text_never_errors() {
    let store = open_memory().await;
    namespace(&store, "team:syntax").await;
    write(
        &store,
        "team:syntax",
        "deploy the service (prod) at 10:30 - \"quoted\" * star",
    )
    .await;
    write(
        &store,
        "team:syntax",
        "AND OR NOT NEAR are plain words here",
    )
    .await;
    let hostile = [
        "\"",
        "\"\"",
        "\"unbalanced",
        "a\"b",
        "*",
        "**",
        "deploy*",
        "*deploy",
        "-",
        "--",
        "-deploy",
        "deploy -service",
        "NOT deploy",
        ":",
        "content:deploy",
        "col:",
        "10:30",
        "(",
        ")",
        "(deploy",
        "deploy)",
        "()",
        "AND",
        "OR",
        "NOT",
        "NEAR",
        "deploy AND",
        "OR deploy",
        "NEAR(deploy service)",
        "NEAR(deploy service, 2)",
        "deploy NEAR service",
        "^deploy",
        "+deploy",
        "{content}: deploy",
        "[x]",
        "'",
        "''",
        "\\",
        "deploy's",
        "; DROP TABLE memory_records; --",
        "\u{0}x",
        "% _",
        "\u{1F600}\u{1F600}",
    ];
    for q in hostile {
        store
            .search(&text("team:syntax", q))
            .await
            .unwrap_or_else(|e| panic!("query {q:?} failed: {e}"));
    }
    // Syntax characters are read as text: the words around them still match.
    assert_eq!(
        found(&store, &text("team:syntax", "deploy*")).await.len(),
        1
    );
    assert_eq!(
        found(&store, &text("team:syntax", "\"quoted\""))
            .await
            .len(),
        1
    );
    assert_eq!(found(&store, &text("team:syntax", "(prod)")).await.len(), 1);
    assert_eq!(
        found(&store, &text("team:syntax", "NEAR plain")).await,
        ["AND OR NOT NEAR are plain words here"]
    );
    assert!(found(&store, &text("team:syntax", "--")).await.is_empty());
    // The table is still there.
    assert_eq!(found(&store, &text("team:syntax", "plain")).await.len(), 1);
}

#[tokio::test]
async fn one_char_search_folds_case_beyond_ascii() {
    let store = open_memory().await;
    namespace(&store, "team:accents").await;
    write(&store, "team:accents", "CAFÉ").await;
    write(&store, "team:accents", "plain").await;
    assert_eq!(found(&store, &text("team:accents", "é")).await, ["CAFÉ"]);
    assert_eq!(found(&store, &text("team:accents", "É")).await, ["CAFÉ"]);
}

#[tokio::test]
async fn full_text_index_follows_upserts_deletes_cascades_and_sweeps() {
    let dir = TempDir::new("sqlite-store");
    let path = dir.path("fts.db");
    let store = open_file(&path).await;
    namespace(&store, "team:fts").await;
    namespace(&store, "team:doomed").await;
    let id = Uuid::new_v4();
    let mut w = fact("original wording about giraffes");
    w.id = Some(id);
    store.write_memory("team:fts", &w).await.expect("write");
    w.content = "rewritten wording about penguins".into();
    store.write_memory("team:fts", &w).await.expect("upsert");
    assert!(found(&store, &text("team:fts", "giraffes"))
        .await
        .is_empty());
    assert_eq!(found(&store, &text("team:fts", "penguins")).await.len(), 1);

    let forgotten = write(&store, "team:fts", "forgettable zebra").await;
    store.forget(forgotten, "team:fts").await.expect("forget");
    assert!(found(&store, &text("team:fts", "zebra")).await.is_empty());

    write(&store, "team:doomed", "cascade victim").await;
    store.delete_namespace("team:doomed").await.expect("delete");
    namespace(&store, "team:doomed").await;
    assert!(found(&store, &text("team:doomed", "victim"))
        .await
        .is_empty());

    let mut brief = fact("short lived walrus");
    brief.expires_at = Some(Utc::now() + Duration::milliseconds(100));
    store
        .write_memory("team:fts", &brief)
        .await
        .expect("write brief");
    let batch: Vec<BatchWrite> = (0..50)
        .map(|i| BatchWrite {
            namespace: "team:fts".into(),
            write: fact(&format!("batch entry {i}")),
        })
        .collect();
    store.write_batch(&batch).await.expect("batch");
    store
        .sweep_expired(Utc::now() + Duration::seconds(1))
        .await
        .expect("sweep");
    assert!(found(&store, &text("team:fts", "walrus")).await.is_empty());
    assert_eq!(
        found(&store, &text("team:fts", "batch entry")).await.len(),
        50
    );
    assert_fts_in_step(&path).await;
}

#[tokio::test]
async fn full_text_scores_are_positive_and_best_first() {
    let store = open_memory().await;
    namespace(&store, "team:rank").await;
    write(&store, "team:rank", "kubernetes").await;
    write(
        &store,
        "team:rank",
        "kubernetes kubernetes cluster upgrade kubernetes",
    )
    .await;
    let results = store
        .search(&text("team:rank", "kubernetes"))
        .await
        .expect("search");
    assert_eq!(results.len(), 2);
    let scores: Vec<f64> = results.iter().map(|m| m.score.expect("score")).collect();
    assert!(scores.iter().all(|s| *s > 0.0), "{scores:?}");
    assert!(scores[0] >= scores[1], "{scores:?}");
}

// ---- embeddings --------------------------------------------------------

#[tokio::test]
async fn embedding_is_stored_as_little_endian_f32_and_scored_exactly() {
    let dir = TempDir::new("sqlite-store");
    let path = dir.path("vec.db");
    let store = open_file(&path).await;
    namespace(&store, "team:vec").await;
    let mut w = fact("vector");
    w.embedding = Some(vec![1.0, 0.0, 0.5, -2.0]);
    let id = store.write_memory("team:vec", &w).await.expect("write").id;
    let mut conn = inspect(&path).await;
    let blob: Vec<u8> = sqlx::query_scalar("SELECT embedding FROM memory_records WHERE id = ?1")
        .bind(id.to_string())
        .fetch_one(&mut conn)
        .await
        .expect("blob");
    let expected: Vec<u8> = [1.0f32, 0.0, 0.5, -2.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    assert_eq!(blob, expected);

    let q = SearchQuery {
        embedding: Some(vec![1.0, 0.0, 0.5, -2.0]),
        ..text("team:vec", "")
    };
    let results = store.search(&q).await.expect("search");
    assert_eq!(results.len(), 1);
    let score = results[0].score.expect("score");
    assert!(
        (score - 1.0).abs() < 1e-9,
        "identical vectors score 1, got {score}"
    );
}

/// The order a semantic search must give, computed here from every stored
/// row: cosine similarity in `f64` (as the store documents it) descending,
/// then pinned, newer, later written; rows without a usable vector left out.
fn expected_semantic(
    rows: &[(i64, String, Vec<u8>, bool, String)],
    probe: &[f32],
) -> Vec<(String, f64)> {
    let norm = probe
        .iter()
        .map(|x| f64::from(*x).powi(2))
        .sum::<f64>()
        .sqrt();
    let mut scored: Vec<(f64, bool, &str, i64, &str)> = rows
        .iter()
        .filter(|(_, _, blob, _, _)| blob.len() == probe.len() * 4)
        .filter_map(|(seq, id, blob, pin, created)| {
            let values: Vec<f64> = blob
                .chunks_exact(4)
                .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect();
            let dot: f64 = values
                .iter()
                .zip(probe)
                .map(|(x, q)| f64::from(*q) * x)
                .sum();
            let len = values.iter().map(|x| x * x).sum::<f64>().sqrt();
            (len > 0.0).then(|| {
                (
                    dot / (norm * len),
                    *pin,
                    created.as_str(),
                    *seq,
                    id.as_str(),
                )
            })
        })
        .collect();
    scored.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(b.1.cmp(&a.1))
            .then(b.2.cmp(a.2))
            .then(b.3.cmp(&a.3))
    });
    scored
        .into_iter()
        .map(|(score, _, _, _, id)| (id.to_string(), score))
        .collect()
}

#[tokio::test]
async fn semantic_search_ranks_as_a_sort_of_every_stored_vector() {
    let dir = TempDir::new("sqlite-store");
    let path = dir.path("rank.db");
    let store = open_file(&path).await;
    namespace(&store, "team:rank").await;
    namespace(&store, "team:other").await;
    // Few distinct vectors, so many rows tie on the score and the pin,
    // creation time and write order decide.
    let vectors: [[f32; 4]; 5] = [
        [1.0, 0.0, 0.5, -2.0],
        [0.5, 0.5, 0.5, 0.5],
        [-1.0, 0.25, 0.0, 3.0],
        [0.0, 0.0, 0.0, 1e-3],
        [2.0, 0.0, 1.0, -4.0],
    ];
    for i in 0..60usize {
        let mut w = fact(&format!("row {i}"));
        w.embedding = Some(vectors[(i * 7) % vectors.len()].to_vec());
        w.pin = Some(i % 4 == 0);
        if i % 11 == 3 {
            w.kind = MemoryKind::Summary;
        }
        let ns = if i % 9 == 5 {
            "team:other"
        } else {
            "team:rank"
        };
        store.write_memory(ns, &w).await.expect("write");
    }
    write(&store, "team:rank", "no vector").await;
    // Rows no cosine similarity can be computed with, as an older file or
    // another writer may hold: another dimension, all zeros.
    let mut conn = inspect(&path).await;
    sqlx::query("UPDATE memory_records SET embedding = ?1 WHERE content = 'row 1'")
        .bind(vec![0u8; 12])
        .execute(&mut conn)
        .await
        .expect("three floats");
    sqlx::query("UPDATE memory_records SET embedding = ?1 WHERE content = 'row 2'")
        .bind(vec![0u8; 16])
        .execute(&mut conn)
        .await
        .expect("zero vector");
    let rows: Vec<(i64, String, Vec<u8>, bool, String)> = sqlx::query_as(
        "SELECT seq, id, embedding, pin, created_at FROM memory_records
         WHERE namespace = 'team:rank' AND embedding IS NOT NULL AND kind = 'fact'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("stored rows");

    for probe in [[1.0f32, 0.0, 0.5, -2.0], [0.3, -0.7, 0.2, 0.9]] {
        let want = expected_semantic(&rows, &probe);
        assert!(want.len() > 40, "{}", want.len());
        for limit in [100u32, 7] {
            let q = SearchQuery {
                namespaces: vec!["team:rank".into()],
                query: None,
                kinds: vec![MemoryKind::Fact],
                limit,
                embedding: Some(probe.to_vec()),
            };
            let got: Vec<(String, f64)> = store
                .search(&q)
                .await
                .expect("search")
                .into_iter()
                .map(|m| (m.id.to_string(), m.score.expect("score")))
                .collect();
            let want: Vec<(String, f64)> = want.iter().take(limit as usize).cloned().collect();
            assert_eq!(got, want, "probe {probe:?}, limit {limit}");
        }
    }
}

/// A hybrid search ranks candidates by id only and reads just the memories
/// it answers: it must answer exactly what fusing the store's own full-text
/// and semantic answers (100 each) gives.
#[tokio::test]
async fn hybrid_search_equals_the_fusion_of_both_rankings() {
    let dir = TempDir::new("sqlite-store");
    let store = open_file(&dir.path("hybrid.db")).await;
    namespace(&store, "team:mix").await;
    let words = ["release", "friday", "budget", "deploy", "coffee", "review"];
    let vectors: [[f32; 4]; 4] = [
        [1.0, 0.0, 0.5, -2.0],
        [0.5, 0.5, 0.5, 0.5],
        [-1.0, 0.25, 0.0, 3.0],
        [2.0, 0.0, 1.0, -4.0],
    ];
    for i in 0..150usize {
        let content = format!(
            "{} {} note {i}",
            words[i % words.len()],
            words[(i * 5 + 1) % words.len()]
        );
        let mut w = fact(&content);
        if i % 3 != 0 {
            w.embedding = Some(vectors[(i * 7) % vectors.len()].to_vec());
        }
        w.pin = Some(i % 5 == 0);
        store.write_memory("team:mix", &w).await.expect("write");
    }
    for (text, probe) in [
        ("release friday", [1.0f32, 0.0, 0.5, -2.0]),
        ("coffee", [0.3, -0.7, 0.2, 0.9]),
    ] {
        for limit in [100u32, 10] {
            let query = SearchQuery {
                namespaces: vec!["team:mix".into()],
                query: Some(text.into()),
                kinds: Vec::new(),
                limit,
                embedding: Some(probe.to_vec()),
            };
            let side = |mode| {
                let store = &store;
                let query = SearchQuery {
                    limit: memory_contract::HYBRID_CANDIDATES,
                    ..query.clone()
                };
                async move { store.search_ranked(&query, mode).await.expect("side") }
            };
            let by_text = side(RankMode::Fulltext).await;
            let by_vector = side(RankMode::Semantic).await;
            assert!(!by_text.is_empty() && !by_vector.is_empty());
            let want = fuse(&[by_text, by_vector], limit as usize);
            let got = store
                .search_ranked(&query, RankMode::Hybrid)
                .await
                .expect("hybrid");
            assert_eq!(got, want, "{text:?}, limit {limit}");
        }
    }
}

#[tokio::test]
async fn all_zero_query_embedding_is_bad_request() {
    let store = open_memory().await;
    namespace(&store, "team:zero").await;
    let q = SearchQuery {
        embedding: Some(vec![0.0; 4]),
        ..text("team:zero", "")
    };
    match store.search(&q).await {
        Err(StoreError::BadRequest(msg)) => assert!(msg.contains("embedding"), "{msg}"),
        other => panic!("expected BadRequest, got {other:?}"),
    }
}

// ---- several stores on one file ----------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_file_write_at_once_without_lock_errors() {
    let dir = TempDir::new("sqlite-store");
    let path = dir.path("two.db");
    let a = open_file(&path).await;
    let b = open_file(&path).await;
    namespace(&a, "team:both").await;
    let mut tasks = Vec::new();
    for (who, store) in [("a", a.clone()), ("b", b.clone())] {
        for t in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..50 {
                    store
                        .write_memory("team:both", &fact(&format!("{who} task {t} item {i}")))
                        .await
                        .map_err(|e| format!("{who} write {i}: {e}"))?;
                    store
                        .search(&text("team:both", "item"))
                        .await
                        .map_err(|e| format!("{who} search {i}: {e}"))?;
                }
                Ok::<(), String>(())
            }));
        }
    }
    for task in tasks {
        task.await.expect("task").expect("no errors");
    }
    let mut total = 0;
    let mut after = None;
    loop {
        let page = a
            .list_memories("team:both", after, 1000)
            .await
            .expect("list");
        total += page.memories.len();
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(total, 400);
}
