//! The generated legacy data has the promised shape, and the in-database
//! floors map it as DESIGN section 5 says (real PostgreSQL 15 database).

use memory_bench::floors;
use memory_bench::legacy::{self, LegacySize};
use sqlx::PgPool;

/// Minimal copies of the plugin's tables for the floor to write into; the
/// benchmark itself lets the plugin create them.
async fn create_floor_tables(pool: &PgPool) {
    for ddl in [
        "CREATE SCHEMA bench_floor",
        "CREATE TABLE bench_floor.memory_namespaces (
             name text PRIMARY KEY, kind text NOT NULL, expires_at timestamptz,
             metadata jsonb, created_at timestamptz NOT NULL DEFAULT now())",
        "CREATE TABLE bench_floor.memory_records (
             id uuid PRIMARY KEY,
             namespace text NOT NULL REFERENCES bench_floor.memory_namespaces (name),
             content text NOT NULL, kind text NOT NULL, source text NOT NULL,
             expires_at timestamptz, propagation jsonb, pin boolean NOT NULL DEFAULT false,
             created_at timestamptz NOT NULL DEFAULT now())",
    ] {
        sqlx::query(ddl).execute(pool).await.unwrap();
    }
}

#[tokio::test]
async fn generated_legacy_data_has_the_documented_shape() {
    let db = memory_testkit::pg15().await;
    let pool = db.connect().await;
    let stats = legacy::build(
        &pool,
        LegacySize {
            rows: 20_000,
            workspaces: 200,
        },
    )
    .await
    .unwrap();

    assert_eq!(stats.rows, 20_000);
    assert_eq!(stats.workspaces, 200);
    assert_eq!(stats.roots, 20);
    assert!(stats.grandchildren > 0, "{stats:?}");
    assert!(stats.removed >= 1, "{stats:?}");
    let share = |n: i64| n as f64 / stats.rows as f64;
    assert!((share(stats.local_rows) - 0.70).abs() < 0.02, "{stats:?}");
    assert!((share(stats.team_rows) - 0.20).abs() < 0.02, "{stats:?}");
    assert!((share(stats.global_rows) - 0.10).abs() < 0.02, "{stats:?}");
    assert!(stats.min_chars >= 50 && stats.max_chars <= 500, "{stats:?}");
    assert!(
        stats.avg_chars > 200.0 && stats.avg_chars < 350.0,
        "{stats:?}"
    );

    // Contents vary: nearly every row is distinct.
    let distinct: i64 = sqlx::query_scalar("SELECT count(DISTINCT content) FROM agent_memories")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(distinct > 19_900, "{distinct}");
    // Every memory belongs to an existing workspace.
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM agent_memories m
         WHERE NOT EXISTS (SELECT 1 FROM workspaces w WHERE w.id = m.workspace_id)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(orphans, 0);
    // Only id, workspace_id and scope are indexed.
    let indexed: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_index i
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
         WHERE i.indrelid = 'agent_memories'::regclass ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(indexed, vec!["id", "scope", "workspace_id"]);
}

#[tokio::test]
async fn floor_copy_maps_scopes_to_workspace_team_and_org_namespaces() {
    let db = memory_testkit::pg15().await;
    let pool = db.connect().await;
    legacy::build(
        &pool,
        LegacySize {
            rows: 3_000,
            workspaces: 60,
        },
    )
    .await
    .unwrap();
    create_floor_tables(&pool).await;

    let copy = floors::copy_inside_database(&pool).await.unwrap();
    assert_eq!(copy.rows, 3_000);

    // Check each row's namespace against a two-level walk written
    // independently of the recursive CTE (the trees are at most 3 deep).
    let wrong: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM agent_memories m
         JOIN workspaces w ON w.id = m.workspace_id
         LEFT JOIN workspaces p ON p.id = w.parent_id
         LEFT JOIN workspaces g ON g.id = p.parent_id
         JOIN bench_floor.memory_records r ON r.id = m.id
         WHERE r.namespace <> CASE m.scope
             WHEN 'LOCAL' THEN 'workspace:' || w.id
             WHEN 'TEAM' THEN 'team:' || coalesce(p.id, w.id)
             ELSE 'org:' || coalesce(g.id, p.id, w.id) END
            OR r.content <> m.content OR r.created_at <> m.created_at",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(wrong, 0);

    let anti = floors::anti_join(&pool, "bench_floor").await.unwrap();
    assert_eq!(anti.mismatches, 0);
    sqlx::query(
        "UPDATE bench_floor.memory_records SET content = content || '!'
         WHERE id IN (SELECT id FROM bench_floor.memory_records LIMIT 7)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("DELETE FROM bench_floor.memory_records WHERE id IN (SELECT id FROM bench_floor.memory_records LIMIT 3)")
        .execute(&pool)
        .await
        .unwrap();
    let anti = floors::anti_join(&pool, "bench_floor").await.unwrap();
    assert!(
        anti.mismatches >= 7 && anti.mismatches <= 10,
        "{}",
        anti.mismatches
    );

    // Search sets name three namespaces of workspaces that hold memories.
    let sets = floors::search_namespace_sets(&pool, 10).await.unwrap();
    assert_eq!(sets.len(), 10);
    assert!(sets.iter().all(|s| s.len() == 3
        && s[0].starts_with("workspace:")
        && s[1].starts_with("team:")
        && s[2].starts_with("org:")));
}
