//! `WorkspaceTree::load_chain` (one workspace, one query) places every
//! workspace exactly as the bulk load does, on a real database holding
//! cycles, dangling parents, removed workspaces and chains past the cap.

use memory_namespace::{WalkEnd, WorkspaceAccess, WorkspaceTree, MAX_HOPS};
use uuid::Uuid;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

async fn seed(pool: &sqlx::PgPool, rows: &[(Uuid, Option<Uuid>, &str, Option<&str>)]) {
    sqlx::query(
        "CREATE TABLE workspaces (id uuid PRIMARY KEY, name text NOT NULL, parent_id uuid, status text)",
    )
    .execute(pool)
    .await
    .unwrap();
    for (ws, parent, name, status) in rows {
        sqlx::query("INSERT INTO workspaces (id, name, parent_id, status) VALUES ($1, $2, $3, $4)")
            .bind(ws)
            .bind(name)
            .bind(parent)
            .bind(status)
            .execute(pool)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn chain_lookup_places_every_workspace_as_the_bulk_walk_does() {
    let db = memory_testkit::pg15().await;
    let pool = db.connect().await;
    let mut rows: Vec<(Uuid, Option<Uuid>, &str, Option<&str>)> = vec![
        (id(1), None, "acme", Some("active")),
        (id(2), Some(id(1)), "research", None),
        (id(3), Some(id(2)), "intern", Some("active")),
        (id(4), Some(id(1)), "gone", Some("removed")),
        (id(5), Some(id(4)), "under-gone", None),
        // a cycle, a self loop, a dangling parent
        (id(10), Some(id(11)), "c1", None),
        (id(11), Some(id(10)), "c2", None),
        (id(12), Some(id(12)), "self", None),
        (id(13), Some(id(999)), "orphan", None),
    ];
    // A chain of 70 below id(100): deeper than the cap.
    for n in 100..=170u128 {
        rows.push((
            id(n),
            if n == 100 { None } else { Some(id(n - 1)) },
            "deep",
            None,
        ));
    }
    seed(&pool, &rows).await;

    let bulk = WorkspaceTree::load(&pool, true).await.unwrap();
    for (ws, ..) in &rows {
        let (chain, names) = WorkspaceTree::load_chain(&pool, *ws, true, true)
            .await
            .unwrap();
        assert!(
            chain.len() <= MAX_HOPS + 2,
            "chain of {ws} holds {}",
            chain.len()
        );
        assert_eq!(chain.place(*ws), bulk.place(*ws), "placement of {ws}");
        let access = WorkspaceAccess::resolve(&chain, &names, *ws);
        assert_eq!(
            access.is_none(),
            ws == &id(4),
            "only the removed workspace has none"
        );
    }

    let (chain, names) = WorkspaceTree::load_chain(&pool, id(3), true, true)
        .await
        .unwrap();
    let access = WorkspaceAccess::resolve(&chain, &names, id(3)).unwrap();
    let shown: Vec<_> = access
        .readable()
        .iter()
        .map(|e| e.display_name.as_str())
        .collect();
    assert_eq!(shown, ["intern", "research", "acme"]);

    let (chain, _) = WorkspaceTree::load_chain(&pool, id(170), true, true)
        .await
        .unwrap();
    assert_eq!(chain.place(id(170)).unwrap().walk_end, WalkEnd::DepthCap);
    let (chain, _) = WorkspaceTree::load_chain(&pool, id(10), true, true)
        .await
        .unwrap();
    assert_eq!(chain.place(id(10)).unwrap().walk_end, WalkEnd::Cycle);
    let (chain, _) = WorkspaceTree::load_chain(&pool, id(13), true, true)
        .await
        .unwrap();
    assert_eq!(
        chain.place(id(13)).unwrap().walk_end,
        WalkEnd::DanglingParent
    );

    let (absent, _) = WorkspaceTree::load_chain(&pool, id(4242), true, true)
        .await
        .unwrap();
    assert!(absent.is_empty());
}

#[tokio::test]
async fn chain_lookup_works_without_status_and_name_columns() {
    let db = memory_testkit::pg15().await;
    let pool = db.connect().await;
    sqlx::query("CREATE TABLE workspaces (id uuid PRIMARY KEY, parent_id uuid)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO workspaces VALUES ($1, NULL), ($2, $1)")
        .bind(id(1))
        .bind(id(2))
        .execute(&pool)
        .await
        .unwrap();
    let (chain, names) = WorkspaceTree::load_chain(&pool, id(2), false, false)
        .await
        .unwrap();
    let access = WorkspaceAccess::resolve(&chain, &names, id(2)).unwrap();
    assert_eq!(access.org_namespace(), format!("org:{}", id(1)));
    assert_eq!(access.readable()[2].display_name, id(1).to_string());
}
