//! The shared storage suite on the machine's PostgreSQL 15 (no pgvector),
//! plus the Postgres-only checks.

mod common;

use common::postgres as pg;
use memory_plugin::store::postgres::PgOptions;
use memory_plugin::store::{Store, StoreError};
use memory_testkit::TestDb;
use std::sync::Arc;

async fn fresh_store() -> (Arc<dyn Store>, TestDb) {
    pg::suite_store(memory_testkit::pg15().await).await
}

common::storage_suite!(fresh_store());

#[tokio::test]
async fn embedding_is_not_a_feature_without_pgvector() {
    let db = memory_testkit::pg15().await;
    let store = pg::connect(&db, PgOptions::default()).await;
    let features = store.features();
    assert!(!features.embedding);
    assert_eq!(features.embedding_dim, 1536);
    assert_eq!(features.backend, "postgres");
    let has_column: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns
         WHERE table_schema = 'memory_plugin' AND table_name = 'memory_records'
           AND column_name = 'embedding')",
    )
    .fetch_one(store.pool())
    .await
    .expect("inspect columns");
    assert!(!has_column, "no embedding column without pgvector");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_migrating_at_once_on_a_fresh_database_both_succeed() {
    pg::two_stores_migrating_at_once_both_succeed(memory_testkit::pg15().await).await;
}

#[tokio::test]
async fn restart_on_migrated_database_keeps_data() {
    pg::restart_on_migrated_database_keeps_data(memory_testkit::pg15().await).await;
}

#[tokio::test]
async fn custom_schema_holds_every_table_and_index() {
    pg::custom_schema_holds_every_table_and_index(memory_testkit::pg15().await).await;
}

#[tokio::test]
async fn invalid_schema_name_is_refused() {
    pg::invalid_schema_name_is_refused(memory_testkit::pg15().await).await;
}

#[tokio::test]
async fn skip_migrate_on_empty_database_fails_clearly() {
    pg::skip_migrate_on_empty_database_fails_clearly(memory_testkit::pg15().await).await;
}

#[tokio::test]
async fn unreachable_database_is_unavailable_without_password() {
    pg::unreachable_database_is_unavailable_without_password().await;
}

#[tokio::test]
async fn pool_stats_report_the_configured_maximum() {
    pg::pool_stats_report_the_configured_maximum(memory_testkit::pg15().await).await;
}

#[tokio::test]
async fn invalid_embedding_dimension_option_is_refused() {
    let db = memory_testkit::pg15().await;
    let result = memory_plugin::store::postgres::PgStore::connect(
        db.url(),
        PgOptions {
            embedding_dim: 0,
            ..PgOptions::default()
        },
    )
    .await;
    assert!(matches!(result, Err(StoreError::BadRequest(_))));
}

/// Newest first is a merge of per-namespace index scans: it answers exactly
/// what sorting every searched row would (pinned first, then newest, then
/// id), with expired rows and expired namespaces left out and the kind
/// filter applied, also when one namespace holds far more rows than the
/// limit and the namespace list repeats or names a namespace that does not
/// exist.
#[tokio::test]
async fn newest_first_equals_sorting_every_searched_row() {
    use memory_contract::MemoryKind;
    use memory_plugin::store::SearchQuery;

    let db = memory_testkit::pg15().await;
    let store = pg::connect(&db, pg::suite_options()).await;
    sqlx::raw_sql(
        "INSERT INTO memory_plugin.memory_namespaces (name, kind, expires_at) VALUES
             ('org:big', 'org', NULL), ('team:t', 'team', NULL),
             ('workspace:w', 'workspace', NULL),
             ('workspace:gone', 'workspace', now() - interval '1 minute');
         INSERT INTO memory_plugin.memory_records
             (id, namespace, content, kind, source, pin, created_at, expires_at)
         SELECT gen_random_uuid(),
                (ARRAY['org:big', 'org:big', 'org:big', 'team:t', 'workspace:w', 'workspace:gone'])[1 + i % 6],
                'memory ' || i,
                (ARRAY['fact', 'summary', 'checkpoint'])[1 + i % 3],
                'agent',
                i % 17 = 0,
                -- every tenth pair shares a timestamp, so the id decides
                timestamptz '2026-01-01' + ((i / 2) || ' seconds')::interval,
                CASE WHEN i % 11 = 0 THEN now() - interval '1 second' END
         FROM generate_series(1, 6000) AS i;",
    )
    .execute(store.pool())
    .await
    .expect("seed");

    let reference = |namespaces: &[&str], kinds: &[&str], limit: i64, like: Option<String>| {
        let namespaces: Vec<String> = namespaces.iter().map(|s| s.to_string()).collect();
        let kinds: Vec<String> = kinds.iter().map(|s| s.to_string()).collect();
        let pool = store.pool().clone();
        async move {
            sqlx::query_scalar::<_, uuid::Uuid>(
                "SELECT r.id FROM memory_plugin.memory_records r
                 JOIN memory_plugin.memory_namespaces n ON n.name = r.namespace
                 WHERE r.namespace = ANY($1)
                   AND (r.expires_at IS NULL OR r.expires_at > now())
                   AND (n.expires_at IS NULL OR n.expires_at > now())
                   AND (cardinality($2::text[]) = 0 OR r.kind = ANY($2))
                   AND ($4::text IS NULL OR strpos(r.content, $4) > 0)
                 ORDER BY r.pin DESC, r.created_at DESC, r.id
                 LIMIT $3",
            )
            .bind(namespaces)
            .bind(kinds)
            .bind(limit)
            .bind(like)
            .fetch_all(&pool)
            .await
            .expect("reference")
        }
    };
    let cases: &[(&[&str], &[&str], u32)] = &[
        (&["org:big", "team:t", "workspace:w"], &[], 20),
        (&["org:big", "team:t", "workspace:w"], &[], 100),
        (
            &["workspace:w", "org:big", "org:big", "no:such"],
            &["summary"],
            37,
        ),
        (&["team:t", "workspace:gone"], &["fact", "checkpoint"], 100),
        (&["workspace:gone"], &[], 10),
        (&["org:big"], &["checkpoint"], 1),
    ];
    // No query (newest first) and one-character queries (substring, the
    // same merge with the match inside each namespace's scan): a common
    // digit, a rare one, a LIKE wildcard that must match only itself, and
    // a character no memory holds.
    for text in [None, Some("7"), Some("0"), Some("%"), Some("x")] {
        for (namespaces, kinds, limit) in cases {
            let got: Vec<uuid::Uuid> = store
                .search(&SearchQuery {
                    namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
                    query: text.map(str::to_string),
                    kinds: kinds
                        .iter()
                        .map(|k| k.parse::<MemoryKind>().expect("kind"))
                        .collect(),
                    limit: *limit,
                    embedding: None,
                })
                .await
                .expect("search")
                .into_iter()
                .map(|m| m.id)
                .collect();
            let want = reference(
                namespaces,
                kinds,
                i64::from(*limit),
                text.map(str::to_string),
            )
            .await;
            assert_eq!(got, want, "{text:?} {namespaces:?} {kinds:?} limit {limit}");
            if namespaces != &["workspace:gone"] && matches!(text, None | Some("7")) {
                assert!(!got.is_empty(), "{text:?} {namespaces:?} finds something");
            }
            if matches!(text, Some("%") | Some("x")) {
                assert!(got.is_empty(), "{text:?} matches nothing");
            }
        }
    }
}

/// `n` facts for one batch into `namespace`, the `i`-th saying `text(i)`.
fn facts(
    namespace: &str,
    n: usize,
    text: impl Fn(usize) -> String,
) -> Vec<memory_contract::BatchWrite> {
    (0..n)
        .map(|i| memory_contract::BatchWrite {
            namespace: namespace.to_string(),
            write: common::cases::fact(&text(i)),
        })
        .collect()
}

/// Pending entries of the full-text index (its GIN pending list), read
/// with pgstattuple.
async fn pending_tuples(store: &memory_plugin::store::postgres::PgStore) -> i64 {
    sqlx::query_scalar(
        "SELECT pending_tuples::bigint FROM public.pgstatginindex('memory_plugin.memory_records_search_tsv_idx'::regclass)",
    )
    .fetch_one(store.pool())
    .await
    .expect("read the GIN index's pending list")
}

#[tokio::test]
async fn the_full_text_pending_list_is_moved_into_the_index_in_the_background() {
    let db = memory_testkit::pg15().await;
    let store = pg::connect(&db, PgOptions::default()).await;
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pgstattuple SCHEMA public")
        .execute(store.pool())
        .await
        .expect("pgstattuple");
    common::cases::make_namespace(&store, "workspace:pending").await;
    // Rows written as one batch land in the pending list (fastupdate) ...
    let writes = facts("workspace:pending", 300, |i| {
        format!("release {i} ships on friday after the review")
    });
    let started = std::time::Instant::now();
    let results = store.write_batch(&writes).await.expect("batch");
    assert!(results.iter().all(Result::is_ok));
    // ... far below the list's limit, so no insert moves them; only the
    // store's cleaner does, within a few of its intervals.
    let mut pending = pending_tuples(&store).await;
    while pending > 0 && started.elapsed() < std::time::Duration::from_secs(10) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        pending = pending_tuples(&store).await;
    }
    assert_eq!(pending, 0, "the pending list is still holding entries");
    // The index answers from its main structure all the same.
    let found = store
        .search(&memory_plugin::store::SearchQuery {
            namespaces: vec!["workspace:pending".to_string()],
            query: Some("friday review".to_string()),
            kinds: Vec::new(),
            limit: 100,
            embedding: None,
        })
        .await
        .expect("search");
    assert_eq!(found.len(), 100);
}

#[tokio::test]
async fn statistics_are_gathered_after_a_bulk_load() {
    let db = memory_testkit::pg15().await;
    let store = pg::connect(&db, PgOptions::default()).await;
    common::cases::make_namespace(&store, "workspace:bulk").await;
    let analyzed = || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables
             WHERE schemaname = 'memory_plugin' AND relname = 'memory_records'",
        )
        .fetch_one(store.pool())
        .await
        .expect("read the table's statistics")
    };
    // Fewer rows than the least that calls for statistics: none gathered.
    let few = facts("workspace:bulk", 100, |i| {
        format!("note {i} about the deploy")
    });
    store.write_batch(&few).await.expect("batch");
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert!(!analyzed().await, "ANALYZE ran after 100 rows");
    // A thousand more: the store runs ANALYZE itself (`last_analyze`, not
    // autovacuum's `last_autoanalyze`), within a few rounds.
    let many = facts("workspace:bulk", 1000, |i| {
        format!("fact {i} on the release train")
    });
    store.write_batch(&many).await.expect("batch");
    let started = std::time::Instant::now();
    while !analyzed().await {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "no ANALYZE within 10 s of 1,100 rows"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let estimated: f32 = sqlx::query_scalar(
        "SELECT reltuples FROM pg_class WHERE oid = 'memory_plugin.memory_records'::regclass",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(estimated, 1100.0);
}

/// The plan the committers' sessions use for the write statement, for a
/// group of one write (the plan is the same for any group: it is made once
/// per session, without looking at the values).
async fn write_plan(conn: &mut sqlx::PgConnection) -> String {
    use memory_plugin::store::postgres::INSERT_SQL;
    sqlx::query(&format!(
        "PREPARE bench_write(uuid[], text[], text[], text[], text[], timestamptz[], jsonb[], bool[], timestamptz[]) AS {INSERT_SQL}"
    ))
    .execute(&mut *conn)
    .await
    .expect("prepare the write statement");
    let lines: Vec<String> = sqlx::query_scalar(
        "EXPLAIN EXECUTE bench_write(ARRAY[gen_random_uuid()], ARRAY['workspace:ns-7'], ARRAY['x'],
             ARRAY['fact'], ARRAY['agent'], ARRAY[NULL]::timestamptz[], ARRAY[NULL]::jsonb[],
             ARRAY[false], ARRAY[NULL]::timestamptz[])",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("explain the write statement");
    sqlx::query("DEALLOCATE bench_write")
        .execute(&mut *conn)
        .await
        .expect("deallocate");
    lines.join("\n")
}

#[tokio::test]
async fn committers_plan_the_write_once_and_look_each_namespace_up_by_its_key() {
    let db = memory_testkit::pg15().await;
    let store = pg::connect(&db, PgOptions::default()).await;
    // Enough namespaces that reading the whole table would be a real cost,
    // and few enough that a plan made without the group's values would
    // read it, were the namespaces joined rather than looked up.
    sqlx::query(
        "INSERT INTO memory_namespaces (name, kind)
         SELECT 'workspace:ns-' || g, 'workspace' FROM generate_series(1, 2000) g",
    )
    .execute(store.pool())
    .await
    .expect("namespaces");
    sqlx::query("ANALYZE memory_namespaces")
        .execute(store.pool())
        .await
        .expect("analyze");

    let mut writer = store.writer_pool().acquire().await.expect("writer");
    let mode: String = sqlx::query_scalar("SHOW plan_cache_mode")
        .fetch_one(&mut *writer)
        .await
        .expect("show");
    assert_eq!(mode, "force_generic_plan");
    let plan = write_plan(&mut writer).await;
    assert!(
        plan.contains("Index Scan using memory_namespaces_pkey"),
        "{plan}"
    );
    assert!(!plan.contains("Seq Scan on memory_namespaces"), "{plan}");
    drop(writer);

    // The readers' sessions keep choosing a plan per search.
    let mode: String = sqlx::query_scalar("SHOW plan_cache_mode")
        .fetch_one(store.pool())
        .await
        .expect("show");
    assert_eq!(mode, "auto");

    // And writes through the committers land.
    let ack = store
        .write_memory("workspace:ns-7", &common::cases::fact("the plan holds"))
        .await
        .expect("write");
    assert_eq!(ack.namespace, "workspace:ns-7");
    let refused = store
        .write_memory("workspace:ns-9999", &common::cases::fact("nowhere"))
        .await;
    assert!(
        matches!(refused, Err(StoreError::NotFound(_))),
        "{refused:?}"
    );
}

/// Sessions of this store open on the database (the pool's and the
/// committers' together).
async fn sessions(store: &memory_plugin::store::postgres::PgStore) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE application_name = 'memory-plugin' AND datname = current_database()",
    )
    .fetch_one(store.pool())
    .await
    .expect("count sessions")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committers_connections_count_in_the_pool_size() {
    for max_connections in [1u32, 3] {
        let db = memory_testkit::pg15().await;
        let store = Arc::new(
            pg::connect(
                &db,
                PgOptions {
                    max_connections,
                    ..PgOptions::default()
                },
            )
            .await,
        );
        common::cases::make_namespace(store.as_ref(), "workspace:cap").await;
        // Writes and reads at once, more of each than the pool has.
        let mut tasks = Vec::new();
        for i in 0..24 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let text = format!("capped write {i}");
                store
                    .write_memory("workspace:cap", &common::cases::fact(&text))
                    .await
                    .expect("write");
                store
                    .list_memories("workspace:cap", None, 10)
                    .await
                    .expect("list");
            }));
        }
        let mut most = 0;
        for task in tasks {
            most = most.max(sessions(&store).await);
            task.await.expect("task");
        }
        most = most.max(sessions(&store).await);
        assert!(
            most >= 1 && most <= i64::from(max_connections),
            "{most} sessions for a pool of {max_connections}"
        );
        let stats = store.pool_stats();
        assert_eq!(stats.max, max_connections);
        assert!(stats.size <= max_connections, "{stats:?}");
        let listed = store
            .list_memories("workspace:cap", None, 100)
            .await
            .expect("list");
        assert_eq!(listed.memories.len(), 24);
    }
}
