//! Postgres-only checks shared by the PostgreSQL 15 and 18 test files:
//! migrations, schema handling and connection errors.

use memory_plugin::store::postgres::{PgOptions, PgStore};
use memory_plugin::store::{Store, StoreError};
use memory_testkit::TestDb;
use std::sync::Arc;

/// Options the suite uses: a small embedding dimension keeps vectors short.
pub fn suite_options() -> PgOptions {
    PgOptions {
        embedding_dim: 16,
        ..PgOptions::default()
    }
}

/// A migrated store on `db`.
pub async fn connect(db: &TestDb, opts: PgOptions) -> PgStore {
    PgStore::connect(db.url(), opts)
        .await
        .unwrap_or_else(|e| panic!("PgStore::connect failed: {e}"))
}

/// A store on `db` for the shared suite, with the database kept alive.
pub async fn suite_store(db: TestDb) -> (Arc<dyn Store>, TestDb) {
    let store = connect(&db, suite_options()).await;
    (Arc::new(store) as Arc<dyn Store>, db)
}

/// Two plugins starting at once on a fresh database both migrate and work.
pub async fn two_stores_migrating_at_once_both_succeed(db: TestDb) {
    let (a, b) = tokio::join!(
        PgStore::connect(db.url(), suite_options()),
        PgStore::connect(db.url(), suite_options())
    );
    let a = a.expect("first store");
    let b = b.expect("second store");
    assert_eq!(a.features(), b.features());
    a.ping().await.expect("ping a");
    b.ping().await.expect("ping b");
    let versions: i64 = sqlx::query_scalar("SELECT count(*) FROM memory_plugin.schema_migrations")
        .fetch_one(a.pool())
        .await
        .expect("count versions");
    assert_eq!(versions, 2, "each migration recorded once");
}

/// Starting again on a migrated database changes nothing and keeps data.
pub async fn restart_on_migrated_database_keeps_data(db: TestDb) {
    let first = connect(&db, suite_options()).await;
    first
        .upsert_namespace(
            "team:persist",
            &memory_contract::NamespaceUpsert {
                kind: memory_contract::NamespaceKind::Team,
                expires_at: None,
                metadata: None,
            },
        )
        .await
        .expect("put");
    drop(first);
    let again = connect(&db, suite_options()).await;
    assert!(again
        .get_namespace("team:persist")
        .await
        .expect("get")
        .is_some());
    let skip = connect(
        &db,
        PgOptions {
            migrate: false,
            ..suite_options()
        },
    )
    .await;
    assert_eq!(skip.features(), again.features());
}

/// The tables, indexes and version table live in the configured schema,
/// and connections use it.
pub async fn custom_schema_holds_every_table_and_index(db: TestDb) {
    let store = connect(
        &db,
        PgOptions {
            schema: "agent_memory_v1".to_string(),
            ..suite_options()
        },
    )
    .await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'agent_memory_v1' ORDER BY 1",
    )
    .fetch_all(store.pool())
    .await
    .expect("tables");
    assert_eq!(
        tables,
        ["memory_namespaces", "memory_records", "schema_migrations"]
    );
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes
         WHERE schemaname = 'agent_memory_v1' AND tablename = 'memory_records'",
    )
    .fetch_all(store.pool())
    .await
    .expect("indexes");
    for expected in [
        "memory_records_search_tsv_idx",
        "memory_records_namespace_pin_created_at_idx",
        "memory_records_expires_at_idx",
    ] {
        assert!(
            indexes.iter().any(|i| i == expected),
            "{expected} missing from {indexes:?}"
        );
    }
    assert!(
        !indexes
            .iter()
            .any(|i| i == "memory_records_namespace_created_at_idx"),
        "the (namespace, created_at) index is replaced: {indexes:?}"
    );
    let in_public: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'memory_%'",
    )
    .fetch_one(store.pool())
    .await
    .expect("public tables");
    assert_eq!(in_public, 0, "nothing is created in public");
    let path: String = sqlx::query_scalar("SHOW search_path")
        .fetch_one(store.pool())
        .await
        .expect("search_path");
    assert!(path.starts_with("agent_memory_v1"), "search_path is {path}");
}

/// A schema name that is not a plain identifier is refused before any SQL.
pub async fn invalid_schema_name_is_refused(db: TestDb) {
    for bad in ["Memory", "x; DROP TABLE y", "a\"b", ""] {
        let result = PgStore::connect(
            db.url(),
            PgOptions {
                schema: bad.to_string(),
                ..suite_options()
            },
        )
        .await;
        assert!(
            matches!(&result, Err(StoreError::BadRequest(m)) if m.contains("schema")),
            "{bad:?}: {:?}",
            result.err()
        );
    }
}

/// Without migrations, a database without the tables is refused clearly.
pub async fn skip_migrate_on_empty_database_fails_clearly(db: TestDb) {
    let result = PgStore::connect(
        db.url(),
        PgOptions {
            migrate: false,
            ..suite_options()
        },
    )
    .await;
    match result {
        Err(StoreError::BadRequest(msg)) => {
            assert!(msg.contains("migrations"), "{msg}");
        }
        other => panic!("expected a clear error, got {:?}", other.err()),
    }
}

/// An unreachable database is `Unavailable`, and its password never shows.
pub async fn unreachable_database_is_unavailable_without_password() {
    let secret = "s3cr3t-Pa55word";
    let url = format!("postgres://someone:{secret}@127.0.0.1:1/nowhere");
    match PgStore::connect(&url, suite_options()).await {
        Err(e @ StoreError::Unavailable(_)) => {
            let text = format!("{e} {e:?}");
            assert!(!text.contains(secret), "password leaked: {text}");
        }
        other => panic!("expected Unavailable, got {:?}", other.err()),
    }
    let bad_url = format!("postgres://someone:{secret}@127.0.0.1:notaport/db");
    let err = PgStore::connect(&bad_url, suite_options())
        .await
        .expect_err("bad URL refused");
    let text = format!("{err} {err:?}");
    assert!(!text.contains(secret), "password leaked: {text}");
}

/// Pool figures reflect the configured maximum.
pub async fn pool_stats_report_the_configured_maximum(db: TestDb) {
    let store = connect(
        &db,
        PgOptions {
            max_connections: 3,
            ..suite_options()
        },
    )
    .await;
    store.ping().await.expect("ping");
    let stats = store.pool_stats();
    assert_eq!(stats.max, 3);
    assert!(stats.size >= 1 && stats.size <= 3, "{stats:?}");
    assert!(stats.idle <= stats.size);
}
