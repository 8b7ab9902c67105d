//! The legacy data set: `workspaces` trees and `agent_memories` rows, built
//! inside the database with `generate_series` so that a million rows take
//! seconds, not a million round trips.
//!
//! Shape (DESIGN section 5): a tenth of the workspaces are roots
//! (organisations), about two thirds of the rest are their children and the
//! others grandchildren; about 1% are `removed` and a few have a NULL status.
//! Memories are spread uniformly over workspaces, 70% LOCAL / 20% TEAM /
//! 10% GLOBAL, with 50 to 500 characters cut from random phrases of a
//! vocabulary that includes some non-ASCII words. Only `id`, `workspace_id`
//! and `scope` are indexed, as on real installs.

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use sqlx::PgPool;

/// Words that memory contents are made of; full-text and substring
/// searches draw their terms from the same list.
pub const VOCABULARY: &[&str] = &[
    "agent",
    "memory",
    "deploy",
    "rollback",
    "customer",
    "invoice",
    "kubernetes",
    "cluster",
    "database",
    "migration",
    "schema",
    "latency",
    "throughput",
    "incident",
    "postmortem",
    "alert",
    "dashboard",
    "metric",
    "budget",
    "forecast",
    "quarter",
    "roadmap",
    "feature",
    "release",
    "branch",
    "review",
    "merge",
    "conflict",
    "pipeline",
    "artifact",
    "container",
    "registry",
    "secret",
    "token",
    "rotation",
    "certificate",
    "expiry",
    "renewal",
    "contract",
    "vendor",
    "support",
    "ticket",
    "escalation",
    "priority",
    "severity",
    "outage",
    "recovery",
    "backup",
    "restore",
    "snapshot",
    "replica",
    "failover",
    "region",
    "zone",
    "network",
    "firewall",
    "gateway",
    "proxy",
    "cache",
    "eviction",
    "queue",
    "consumer",
    "producer",
    "partition",
    "offset",
    "retention",
    "compaction",
    "index",
    "query",
    "planner",
    "vacuum",
    "checkpoint",
    "summary",
    "meeting",
    "decision",
    "owner",
    "deadline",
    "estimate",
    "sprint",
    "standup",
    "retro",
    "design",
    "document",
    "proposal",
    "approval",
    "legal",
    "privacy",
    "consent",
    "audit",
    "compliance",
    "policy",
    "access",
    "permission",
    "role",
    "group",
    "team",
    "organisation",
    "workspace",
    "project",
    "milestone",
    "blocker",
    "dependency",
    "upgrade",
    "version",
    "library",
    "runtime",
    "compiler",
    "benchmark",
    "profile",
    "flamegraph",
    "memory",
    "leak",
    "allocation",
    "thread",
    "async",
    "future",
    "channel",
    "mutex",
    "deadlock",
    "timeout",
    "retry",
    "breaker",
    "backoff",
    "jitter",
    "health",
    "probe",
    "readiness",
    "liveness",
    "scaling",
    "autoscaler",
    "capacity",
    "quota",
    "limit",
    "billing",
    "refund",
    "payment",
    "subscription",
    "trial",
    "onboarding",
    "churn",
    "feedback",
    "survey",
    "interview",
    "user",
    "persona",
    "journey",
    "funnel",
    "conversion",
    "experiment",
    "variant",
    "rollout",
    "flag",
    "toggle",
    "config",
    "environment",
    "staging",
    "production",
    "sandbox",
    "preview",
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "for",
    "with",
    "on",
    "after",
    "before",
    "because",
    "should",
    "must",
    "never",
    "always",
    "prefers",
    "asked",
    "noted",
    "agreed",
    "reported",
    "fixed",
    "broke",
    "moved",
    "renamed",
    "removed",
    "added",
    "checked",
    "verified",
    "failed",
    "Monday",
    "Tuesday",
    "Friday",
    "January",
    "March",
    "October",
    "Alice",
    "Bob",
    "Chen",
    "Dana",
    "Emeka",
    "Fatima",
    "Zürich",
    "São",
    "Paulo",
    "München",
    "café",
    "naïve",
    "résumé",
    "Ελλάδα",
    "東京",
    "данные",
    "50%",
    "under_score",
    "v2.3.1",
    "#42",
    "e-mail",
    "O'Brien",
];

/// Full-text search terms used by the search figures: words that occur in
/// many rows, so every search does real ranking work.
pub const SEARCH_TERMS: &[&str] = &[
    "deploy rollback",
    "customer invoice",
    "database migration",
    "incident",
    "latency",
    "backup restore",
    "kubernetes cluster",
    "meeting decision",
    "certificate expiry",
    "queue consumer",
];

/// Single characters used by the substring figures.
pub const SUBSTRING_CHARS: &[&str] = &["q", "z", "x", "k", "j", "v", "y", "w"];

/// Sizes of the data set to build.
#[derive(Debug, Clone, Copy)]
pub struct LegacySize {
    pub rows: u64,
    pub workspaces: u64,
}

/// What was built, as counted back from the database.
#[derive(Debug, Clone, Serialize, Default)]
pub struct LegacyStats {
    pub rows: i64,
    pub workspaces: i64,
    pub roots: i64,
    pub children: i64,
    pub grandchildren: i64,
    pub removed: i64,
    pub local_rows: i64,
    pub team_rows: i64,
    pub global_rows: i64,
    pub min_chars: i32,
    pub max_chars: i32,
    pub avg_chars: f64,
    pub table_bytes: i64,
    pub build_seconds: f64,
}

/// How many workspaces sit at each level of the trees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeShape {
    pub roots: u64,
    pub children: u64,
    pub grandchildren: u64,
}

impl TreeShape {
    /// A tenth roots, two thirds of the rest children, the others grandchildren.
    pub fn for_workspaces(workspaces: u64) -> TreeShape {
        let roots = (workspaces / 10).max(1).min(workspaces);
        let rest = workspaces - roots;
        let children = if rest < 3 { rest } else { rest * 2 / 3 };
        TreeShape {
            roots,
            children,
            grandchildren: rest - children,
        }
    }
}

const PHRASES: i64 = 4096;
const CHUNK_ROWS: u64 = 250_000;

/// Creates the legacy tables in `pool`'s database and fills them.
///
/// # Errors
///
/// Any failing statement, with the step it was in.
pub async fn build(pool: &PgPool, size: LegacySize) -> Result<LegacyStats> {
    let started = std::time::Instant::now();
    // One connection throughout, so that setseed() governs every random().
    let mut conn = pool.acquire().await?;
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    for ddl in [
        "CREATE TABLE workspaces (
             id uuid PRIMARY KEY,
             name text NOT NULL,
             parent_id uuid NULL,
             status text NULL)",
        "CREATE TABLE agent_memories (
             id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
             workspace_id uuid NULL,
             content text NOT NULL,
             scope varchar(10) NOT NULL,
             created_at timestamptz NOT NULL DEFAULT now(),
             updated_at timestamptz NOT NULL DEFAULT now(),
             namespace varchar(50) NOT NULL DEFAULT 'general')",
        "CREATE TABLE bench_phrases (id int PRIMARY KEY, phrase text NOT NULL)",
    ] {
        sqlx::query(ddl)
            .execute(&mut *tx)
            .await
            .context("failed to create the legacy tables")?;
    }

    let shape = TreeShape::for_workspaces(size.workspaces);
    // Workspace i has the deterministic id md5('ws' || i), so parents can be
    // named by index arithmetic without a lookup.
    sqlx::query(
        "INSERT INTO workspaces (id, name, parent_id, status)
         SELECT md5('ws' || i)::uuid,
                'workspace ' || i,
                CASE
                    WHEN i <= $1 THEN NULL
                    WHEN i <= $1 + $2 THEN md5('ws' || (((i - $1 - 1) % $1) + 1))::uuid
                    ELSE md5('ws' || (((i - $1 - $2 - 1) % $2) + $1 + 1))::uuid
                END,
                CASE WHEN i % 97 = 0 THEN 'removed' WHEN i % 13 = 0 THEN NULL ELSE 'active' END
         FROM generate_series(1, $3::bigint) AS i",
    )
    .bind(shape.roots as i64)
    .bind(shape.children.max(1) as i64)
    .bind(size.workspaces as i64)
    .execute(&mut *tx)
    .await
    .context("failed to generate workspaces")?;

    let phrases = phrase_dictionary(PHRASES as usize, 0x5eed);
    sqlx::query(
        "INSERT INTO bench_phrases (id, phrase)
         SELECT ord - 1, phrase FROM unnest($1::text[]) WITH ORDINALITY AS t(phrase, ord)",
    )
    .bind(&phrases)
    .execute(&mut *tx)
    .await
    .context("failed to store the phrase dictionary")?;
    sqlx::query("SELECT setseed(0.42)")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;

    let mut done = 0u64;
    while done < size.rows {
        let chunk = CHUNK_ROWS.min(size.rows - done);
        insert_memories(&mut conn, chunk, size.workspaces).await?;
        done += chunk;
        if size.rows > CHUNK_ROWS {
            crate::progress(&format!("  legacy rows: {done}/{}", size.rows));
        }
    }

    for ddl in [
        "CREATE INDEX agent_memories_workspace_id_idx ON agent_memories (workspace_id)",
        "CREATE INDEX agent_memories_scope_idx ON agent_memories (scope)",
        "ANALYZE workspaces",
        "ANALYZE agent_memories",
    ] {
        sqlx::query(ddl)
            .execute(&mut *conn)
            .await
            .with_context(|| format!("failed to run: {ddl}"))?;
    }
    let mut stats = count(pool).await?;
    stats.build_seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

async fn insert_memories(conn: &mut sqlx::PgConnection, rows: u64, workspaces: u64) -> Result<()> {
    // Six random phrases joined and cut to a random length of 51..=500
    // (50..=500 once a trailing space is trimmed)
    // characters; every random() is evaluated per row because it sits in
    // the per-row subquery.
    sqlx::query(
        "INSERT INTO agent_memories (id, workspace_id, content, scope, created_at, updated_at, namespace)
         SELECT g.id,
                md5('ws' || g.ws)::uuid,
                rtrim(left(p1.phrase || ' ' || p2.phrase || ' ' || p3.phrase || ' ' ||
                           p4.phrase || ' ' || p5.phrase || ' ' || p6.phrase, g.len)),
                g.scope,
                g.created,
                CASE WHEN g.r2 < 0.3 THEN g.created + g.r2 * interval '30 days' ELSE g.created END,
                CASE WHEN g.r2 > 0.95 THEN 'project' ELSE 'general' END
         FROM (
             SELECT gen_random_uuid() AS id,
                    1 + floor(random() * $2)::bigint AS ws,
                    51 + floor(random() * 450)::int AS len,
                    CASE WHEN s.r < 0.7 THEN 'LOCAL' WHEN s.r < 0.9 THEN 'TEAM' ELSE 'GLOBAL' END AS scope,
                    now() - random() * interval '730 days' AS created,
                    random() AS r2,
                    floor(random() * $3)::int AS a1, floor(random() * $3)::int AS a2,
                    floor(random() * $3)::int AS a3, floor(random() * $3)::int AS a4,
                    floor(random() * $3)::int AS a5, floor(random() * $3)::int AS a6
             FROM (SELECT i, random() AS r FROM generate_series(1, $1::bigint) AS i) AS s
         ) AS g
         JOIN bench_phrases p1 ON p1.id = g.a1
         JOIN bench_phrases p2 ON p2.id = g.a2
         JOIN bench_phrases p3 ON p3.id = g.a3
         JOIN bench_phrases p4 ON p4.id = g.a4
         JOIN bench_phrases p5 ON p5.id = g.a5
         JOIN bench_phrases p6 ON p6.id = g.a6",
    )
    .bind(rows as i64)
    .bind(workspaces as f64)
    .bind(PHRASES as f64)
    .execute(&mut *conn)
    .await
    .context("failed to generate agent_memories rows")?;
    Ok(())
}

/// `count` phrases of 6 to 18 vocabulary words, reproducible from `seed`.
pub fn phrase_dictionary(count: usize, seed: u64) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let words = rng.gen_range(6..=18);
            (0..words)
                .map(|_| VOCABULARY[rng.gen_range(0..VOCABULARY.len())])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

async fn count(pool: &PgPool) -> Result<LegacyStats> {
    let row: (i64, i64, i64, i64, i32, i32, f64, i64) = sqlx::query_as(
        "SELECT count(*),
                count(*) FILTER (WHERE scope = 'LOCAL'),
                count(*) FILTER (WHERE scope = 'TEAM'),
                count(*) FILTER (WHERE scope = 'GLOBAL'),
                coalesce(min(char_length(content)), 0),
                coalesce(max(char_length(content)), 0),
                coalesce(avg(char_length(content)), 0)::float8,
                pg_total_relation_size('agent_memories')
         FROM agent_memories",
    )
    .fetch_one(pool)
    .await
    .context("failed to count legacy rows")?;
    let ws: (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*),
                count(*) FILTER (WHERE w.parent_id IS NULL),
                count(*) FILTER (WHERE status = 'removed')
         FROM workspaces w",
    )
    .fetch_one(pool)
    .await?;
    let grandchildren: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM workspaces w JOIN workspaces p ON p.id = w.parent_id
         WHERE p.parent_id IS NOT NULL",
    )
    .fetch_one(pool)
    .await?;
    Ok(LegacyStats {
        rows: row.0,
        local_rows: row.1,
        team_rows: row.2,
        global_rows: row.3,
        min_chars: row.4,
        max_chars: row.5,
        avg_chars: row.6,
        table_bytes: row.7,
        workspaces: ws.0,
        roots: ws.1,
        children: ws.0 - ws.1 - grandchildren,
        grandchildren,
        removed: ws.2,
        build_seconds: 0.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_shape_covers_every_workspace() {
        for n in [1, 2, 3, 4, 10, 11, 200, 10_000] {
            let s = TreeShape::for_workspaces(n);
            assert_eq!(s.roots + s.children + s.grandchildren, n, "n={n}");
            assert!(s.roots >= 1);
            // Grandchildren need children to hang from.
            assert!(s.grandchildren == 0 || s.children > 0, "n={n}");
        }
        assert_eq!(
            TreeShape::for_workspaces(10_000),
            TreeShape {
                roots: 1000,
                children: 6000,
                grandchildren: 3000
            }
        );
    }

    #[test]
    fn phrases_are_reproducible_and_long_enough() {
        let a = phrase_dictionary(50, 7);
        assert_eq!(a, phrase_dictionary(50, 7));
        // Six phrases of at least six words always exceed 50 characters.
        assert!(a.iter().all(|p| p.split(' ').count() >= 6));
    }
}
