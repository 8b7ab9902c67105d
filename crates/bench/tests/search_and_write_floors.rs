//! The search floors answer like the store (the naive statement finds the
//! same memories as the store's, the SQLite floor runs the store's
//! full-text statement with the store's arguments), and the pgbench floor
//! writes rows of the plugin's shape into the plugin's table. Real
//! PostgreSQL 15, real SQLite files, the real pgbench.

use memory_bench::floors::{self, Mode};
use memory_bench::sqlite_floors::{self, SqliteFloor};
use memory_contract::{
    BatchWrite, MemoryKind, MemorySource, MemoryWrite, NamespaceKind, NamespaceUpsert,
};
use memory_plugin::store::postgres::{PgOptions, PgStore};
use memory_plugin::store::sqlite::{SqliteOptions, SqliteStore};
use memory_plugin::store::Store;
use std::time::Duration;
use uuid::Uuid;

const CONTENTS: &[&str] = &[
    "deploy rollback after the incident on Friday",
    "customer invoice sent to Zürich",
    "the deploy pipeline needs a quota review",
    "kubernetes cluster upgrade planned",
    "rollback of the database migration went fine",
    "quarterly budget forecast",
];

fn writes(namespaces: &[&str]) -> Vec<BatchWrite> {
    let start = chrono::Utc::now() - chrono::Duration::hours(1);
    (0..60)
        .map(|i| {
            let mut write = MemoryWrite::new(
                format!("{} #{i}", CONTENTS[i % CONTENTS.len()]),
                MemoryKind::Fact,
                MemorySource::Agent,
            );
            write.id = Some(Uuid::new_v4());
            write.created_at = Some(start + chrono::Duration::seconds(i as i64));
            BatchWrite {
                namespace: namespaces[i % namespaces.len()].to_string(),
                write,
            }
        })
        .collect()
}

/// Creates the workspace namespaces `names` on `store`.
async fn make_workspaces(store: &impl Store, names: &[&str]) -> Vec<String> {
    for name in names {
        store
            .upsert_namespace(name, &upsert(NamespaceKind::Workspace))
            .await
            .unwrap();
    }
    names.iter().map(|n| n.to_string()).collect()
}

fn upsert(kind: NamespaceKind) -> NamespaceUpsert {
    NamespaceUpsert {
        kind,
        expires_at: None,
        metadata: None,
    }
}

async fn ids(
    pool: &sqlx::PgPool,
    statement: &floors::SearchStatement,
    names: &[String],
    text: Option<&str>,
) -> Vec<Uuid> {
    let no_kinds: Vec<String> = Vec::new();
    let mut query = sqlx::query(&statement.sql)
        .bind(names)
        .bind(&no_kinds)
        .bind(20i64);
    if let Some(text) = text {
        query = query.bind(text);
    }
    if let Some(bound) = statement.max_candidates {
        query = query.bind(bound);
    }
    query
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|row| sqlx::Row::get(row, "id"))
        .collect()
}

#[tokio::test]
async fn naive_postgres_statements_find_what_the_store_statements_find() {
    let db = memory_testkit::pg15().await;
    let store = PgStore::connect(db.url(), PgOptions::default())
        .await
        .unwrap();
    let names = ["workspace:a", "team:t", "org:o", "workspace:other"];
    for (name, kind) in names.iter().zip([
        NamespaceKind::Workspace,
        NamespaceKind::Team,
        NamespaceKind::Org,
        NamespaceKind::Workspace,
    ]) {
        store.upsert_namespace(name, &upsert(kind)).await.unwrap();
    }
    let results = store.write_batch(&writes(&names)).await.unwrap();
    assert!(results.iter().all(Result::is_ok));

    let url = url::Url::parse(db.url()).unwrap();
    let pool = floors::schema_pool(&url, floors::PLUGIN_SCHEMA, 1)
        .await
        .unwrap();
    let searched: Vec<String> = names[..3].iter().map(|s| s.to_string()).collect();
    for (mode, text) in [
        (Mode::Recent, None),
        (Mode::Substring, Some("q")),
        (Mode::FullText, Some("deploy rollback")),
    ] {
        let text = text.map(|t| match mode {
            Mode::Substring => memory_plugin::store::postgres::substring_argument(t),
            _ => t.to_string(),
        });
        let store_ids = ids(&pool, &floors::search_sql(mode), &searched, text.as_deref()).await;
        let naive_ids = ids(
            &pool,
            &floors::naive_search_sql(mode),
            &searched,
            text.as_deref(),
        )
        .await;
        assert!(!store_ids.is_empty(), "{} found nothing", mode.name());
        assert_eq!(store_ids, naive_ids, "{} mode", mode.name());
    }
    pool.close().await;
}

/// A new SQLite store in a directory of its own: the directory, the file.
async fn sqlite_store(prefix: &str) -> (std::path::PathBuf, std::path::PathBuf, SqliteStore) {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("floor.sqlite");
    let store = SqliteStore::open(
        &format!("sqlite:{}", file.display()),
        SqliteOptions::default(),
    )
    .await
    .unwrap();
    (dir, file, store)
}

#[tokio::test]
async fn sqlite_floor_runs_the_store_full_text_statement() {
    let (dir, file, store) = sqlite_store("bench-floor-test").await;
    let names = ["workspace:a", "workspace:b"];
    for name in names {
        store
            .upsert_namespace(name, &upsert(NamespaceKind::Workspace))
            .await
            .unwrap();
    }
    let batch = writes(&names);
    let results = store.write_batch(&batch).await.unwrap();
    assert!(results.iter().all(Result::is_ok));

    let floor = SqliteFloor::open(&file, 2).await.unwrap();
    let freqs = sqlite_floors::doc_freqs(&floor, &["deploy"]).await.unwrap();
    let searched = vec!["workspace:a".to_string()];
    let argument = sqlite_floors::search_argument(Mode::FullText, Some("deploy"), &searched);
    let found = sqlite_floors::search_direct(
        &floor,
        &sqlite_floors::search_sql(Mode::FullText).unwrap(),
        &searched,
        argument.as_deref(),
        freqs.get("deploy").map(Vec::as_slice),
        100,
    )
    .await
    .unwrap();
    let expected = batch
        .iter()
        .filter(|w| w.namespace == "workspace:a" && w.write.content.contains("deploy"))
        .count();
    assert!(expected > 0);
    assert_eq!(found, expected);

    // Newest first through the store's unscored statement: every row of the namespace, up to the limit.
    let recent = sqlite_floors::search_direct(
        &floor,
        &sqlite_floors::search_sql(Mode::Recent).unwrap(),
        &searched,
        None,
        None,
        100,
    )
    .await
    .unwrap();
    assert_eq!(recent, 30);
    floor.close().await;
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sqlite_write_floor_writes_a_row_into_a_live_namespace_only() {
    let (dir, file, store) = sqlite_store("bench-floor-write").await;
    make_workspaces(&store, &["workspace:a"]).await;
    let floor = SqliteFloor::open(&file, 1).await.unwrap();
    for content in CONTENTS {
        sqlite_floors::insert_one(&floor, "workspace:a", content)
            .await
            .unwrap();
    }
    let missing = sqlite_floors::insert_one(&floor, "workspace:missing", "nowhere")
        .await
        .unwrap_err();
    assert!(
        missing.to_string().contains("workspace:missing"),
        "{missing}"
    );
    let mut stored_sorted: Vec<String> = store
        .list_memories("workspace:a", None, 100)
        .await
        .unwrap()
        .memories
        .into_iter()
        .map(|m| m.content)
        .collect();
    stored_sorted.sort();
    let mut expected: Vec<String> = CONTENTS.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(stored_sorted, expected);
    floor.close().await;
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn pgbench_floor_inserts_one_plugin_row_per_transaction() {
    let Some(binary) = memory_bench::pgbench::find() else {
        panic!("pgbench not found; install postgresql-client (it ships pgbench)");
    };
    let db = memory_testkit::pg15().await;
    let store = PgStore::connect(db.url(), PgOptions::default())
        .await
        .unwrap();
    let names = make_workspaces(&store, &["workspace:a", "workspace:b"]).await;
    let dir = std::env::temp_dir().join(format!("bench-pgbench-test-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let contents: Vec<String> = CONTENTS.iter().map(|s| s.to_string()).collect();
    let scripts =
        memory_bench::pgbench::write_scripts(&dir, floors::PLUGIN_SCHEMA, &names, &contents)
            .unwrap();
    let url = url::Url::parse(db.url()).unwrap();
    let summary =
        memory_bench::pgbench::run(&binary, &url, &scripts, 2, Duration::from_secs(1), &dir)
            .await
            .unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM memory_plugin.memory_records")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(summary.ok > 0, "{summary:?}");
    assert_eq!(summary.errors, 0, "{summary:?}");
    assert_eq!(rows as u64, summary.ok);
    assert!(summary.per_second > 0.0);
    assert!(
        summary.p50_ms > 0.0 && summary.p99_ms >= summary.p50_ms,
        "{summary:?}"
    );
    let searchable: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM memory_plugin.memory_records
         WHERE search_tsv @@ websearch_to_tsquery('english', 'deploy') AND kind = 'fact'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert!(searchable > 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrk_posts_single_writes_that_the_plugin_stores_once_each() {
    let Some(binary) = memory_bench::wrk::find() else {
        panic!("wrk not found; install Debian's package wrk (.ci/run does)");
    };
    let file = std::env::temp_dir().join(format!("bench-wrk-test-{}.db", Uuid::new_v4()));
    let store = SqliteStore::open(
        &format!("sqlite:{}", file.display()),
        SqliteOptions { embedding_dim: 4 },
    )
    .await
    .unwrap();
    let names = make_workspaces(&store, &["workspace:a", "workspace:b"]).await;
    let store = std::sync::Arc::new(store);
    let server = memory_plugin::server::spawn(
        store.clone(),
        memory_plugin::server::ServerConfig::default(),
    )
    .await
    .unwrap();
    // A namespace that does not exist: its writes answer 404 and must be
    // counted as errors, not as writes.
    let mut with_missing = names.clone();
    with_missing.push("workspace:missing".into());
    let contents: Vec<String> = CONTENTS.iter().map(|s| s.to_string()).collect();
    let script = std::env::temp_dir().join(format!("bench-wrk-test-{}.lua", Uuid::new_v4()));
    std::fs::write(
        &script,
        memory_bench::wrk::write_script(&with_missing, &contents).unwrap(),
    )
    .unwrap();
    let summary = memory_bench::wrk::run(&binary, server.url(), &script, 4, Duration::from_secs(1))
        .await
        .unwrap();
    drop(server);
    let mut stored = 0u64;
    for name in &names {
        let mut after = None;
        let mut here = 0u64;
        loop {
            let page = store.list_memories(name, after, 1000).await.unwrap();
            here += page.memories.len() as u64;
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert!(here > 0, "{name} holds writes");
        stored += here;
    }
    assert!(summary.ok > 0, "{summary:?}");
    assert!(
        summary.errors > 0,
        "the missing namespace's 404s: {summary:?}"
    );
    // Every 2xx is one stored memory, and nothing else was stored (wrk may
    // close connections with a request in flight at the end: at most one
    // per connection was stored without its answer being counted).
    assert!(
        stored >= summary.ok && stored <= summary.ok + 4,
        "stored {stored}, wrk counted {} 2xx: {summary:?}",
        summary.ok
    );
    assert!(summary.p50_ms > 0.0 && summary.p99_ms >= summary.p50_ms);
    let _ = std::fs::remove_file(&script);
    let _ = std::fs::remove_file(&file);
}
