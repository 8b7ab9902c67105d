//! Proves the harness: each helper hands out a database that really works.

use memory_testkit::{pg15, pg18, StoppableCluster};
use sqlx::Row;

async fn server_major_version(pool: &sqlx::PgPool) -> i32 {
    let row = sqlx::query("SELECT current_setting('server_version_num')::int / 10000 AS major")
        .fetch_one(pool)
        .await
        .expect("server version query");
    row.get("major")
}

async fn database_exists(admin_url: &str, name: &str) -> bool {
    let pool = sqlx::PgPool::connect(admin_url)
        .await
        .expect("admin connect");
    let found: Option<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname = $1")
            .bind(name)
            .fetch_optional(&pool)
            .await
            .expect("pg_database query");
    pool.close().await;
    found.is_some()
}

fn admin_url_of(db_url: &str) -> String {
    let mut url = url::Url::parse(db_url).expect("test database URL");
    url.set_path("/postgres");
    url.to_string()
}

#[tokio::test]
async fn pg15_gives_a_fresh_database_that_is_dropped_afterwards() {
    let db = pg15().await;
    let pool = db.connect().await;
    assert_eq!(server_major_version(&pool).await, 15);
    let current: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(current, db.name());
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 0, "a fresh database has no tables");

    let (name, admin) = (db.name().to_string(), admin_url_of(db.url()));
    // An open pool must not keep the database alive.
    drop(db);
    assert!(
        !database_exists(&admin, &name).await,
        "{name} still exists after drop"
    );
    pool.close().await;
}

#[tokio::test]
async fn pg15_databases_are_distinct_per_call() {
    let (a, b) = (pg15().await, pg15().await);
    assert_ne!(a.name(), b.name());
    let pool_a = a.connect().await;
    sqlx::query("CREATE TABLE only_in_a (x int)")
        .execute(&pool_a)
        .await
        .unwrap();
    let pool_b = b.connect().await;
    let seen: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'only_in_a'",
    )
    .fetch_one(&pool_b)
    .await
    .unwrap();
    assert_eq!(seen, 0);
}

#[tokio::test]
async fn pg18_gives_a_database_with_pgvector() {
    let db = pg18().await;
    let pool = db.connect().await;
    assert_eq!(server_major_version(&pool).await, 18);
    sqlx::query("CREATE EXTENSION vector")
        .execute(&pool)
        .await
        .expect("CREATE EXTENSION vector");
    let distance: f64 = sqlx::query_scalar("SELECT '[1,0,0]'::vector <=> '[0,1,0]'::vector")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!((distance - 1.0).abs() < 1e-9, "cosine distance {distance}");

    let (name, admin) = (db.name().to_string(), admin_url_of(db.url()));
    drop(db);
    assert!(
        !database_exists(&admin, &name).await,
        "{name} still exists after drop"
    );
    pool.close().await;
}

#[tokio::test]
async fn pg18_is_one_shared_cluster() {
    let (a, b) = (pg18().await, pg18().await);
    let port = |u: &str| url::Url::parse(u).unwrap().port();
    assert_eq!(port(a.url()), port(b.url()));
    assert_ne!(a.name(), b.name());
    assert!(memory_testkit::pg18_stop_command().contains("postmaster.pid"));
}

#[tokio::test]
async fn stoppable_cluster_stops_and_starts_again() {
    let mut cluster = StoppableCluster::start().await;
    let pool = sqlx::PgPool::connect(cluster.url()).await.expect("connect");
    sqlx::query("CREATE TABLE kept (x int)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO kept VALUES (7)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    cluster.stop().await;
    assert!(!cluster.is_running());
    // A single connection attempt: a pool would keep retrying until its
    // acquire timeout.
    let refused = <sqlx::PgConnection as sqlx::Connection>::connect(cluster.url()).await;
    assert!(
        refused.is_err(),
        "a stopped cluster still accepts connections"
    );

    cluster.start_again().await;
    assert!(cluster.is_running());
    let pool = sqlx::PgPool::connect(cluster.url())
        .await
        .expect("reconnect");
    let x: i32 = sqlx::query_scalar("SELECT x FROM kept")
        .fetch_one(&pool)
        .await
        .expect("data survives a restart");
    assert_eq!(x, 7);
    pool.close().await;

    let port = cluster.port();
    drop(cluster);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    assert!(
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(1)).is_err(),
        "the cluster still listens after drop"
    );
}
