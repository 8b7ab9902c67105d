//! Schema migrations of the SQLite store, embedded in the binary and applied
//! at open.
//!
//! `memory_schema_migrations` records each applied version. Every migration
//! runs in its own `BEGIN IMMEDIATE` transaction that first re-reads the
//! recorded versions, so two processes opening one new file at the same
//! moment apply each migration exactly once, and reopening a migrated file
//! changes nothing.
//!
//! After them come the index upgrades: structures derived from the rows
//! (indexes, the triggers that keep them) that a newer build replaces. Each
//! is recognised by its shape rather than by a version number, runs in its
//! own `BEGIN IMMEDIATE` transaction that first checks again whether it is
//! needed, and builds its index from the rows already there, so an existing
//! file is upgraded once, at its first open by this build, and an older build
//! keeps working on the upgraded file (the triggers keep the index in step
//! whoever writes).

use crate::store::{StoreError, StoreResult};
use sqlx::SqlitePool;

/// One embedded migration.
struct Migration {
    version: i64,
    description: &'static str,
    sql: &'static str,
}

/// Every migration, in the order they apply. Append only: an applied
/// migration is never edited.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "namespaces, records, full-text index",
    sql: include_str!("../../../migrations/sqlite/0001_init.sql"),
}];

/// An index upgrade: `sql` runs when `applied` (a query answering one
/// integer) answers 0.
struct Upgrade {
    description: &'static str,
    applied: &'static str,
    sql: &'static str,
}

/// Every index upgrade, in the order they apply.
const UPGRADES: &[Upgrade] = &[
    Upgrade {
        description: "full-text index by namespace",
        applied: "SELECT count(*) FROM pragma_table_info('memory_records_fts') \
                  WHERE name = 'namespace_key'",
        sql: include_str!("fts_by_namespace.sql"),
    },
    // Every statement of the store that looks rows up by namespace (the
    // searches, the list, the cascade) is planned on (namespace, id); this
    // index was never chosen, and every write paid for keeping it (a random
    // leaf page per memory, about a third of a batch's cost at a million
    // rows).
    Upgrade {
        description: "drop memory_records_namespace_created_idx, which no statement uses",
        applied: "SELECT count(*) = 0 FROM sqlite_schema \
                  WHERE type = 'index' AND name = 'memory_records_namespace_created_idx'",
        sql: "DROP INDEX IF EXISTS memory_records_namespace_created_idx",
    },
    // FTS5 merges its segments once `automerge` of them share a level; at
    // 8 rather than the default 4 each entry is rewritten fewer times
    // (log8 rather than log4 of the index size, counted in batches), which
    // took about a fifth off the batch load at a million rows; searches
    // meet a few more segments and measured no slower.
    Upgrade {
        description: "full-text index merges 8 segments at a time",
        applied: "SELECT count(*) FROM memory_records_fts_config \
                  WHERE k = 'automerge' AND v = 8",
        sql: "INSERT INTO memory_records_fts (memory_records_fts, rank) VALUES ('automerge', 8)",
    },
    Upgrade {
        description: "full-text change log",
        applied: "SELECT count(*) FROM sqlite_schema WHERE name = 'memory_fts_log'",
        sql: include_str!("fts_change_log.sql"),
    },
];

/// The newest schema version this build knows.
pub(super) fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

fn migration_error(version: i64, e: sqlx::Error) -> StoreError {
    StoreError::Internal(format!("SQLite schema migration {version} failed: {e}"))
}

/// Creates the version table if needed and applies every migration the
/// database has not seen yet.
///
/// # Errors
///
/// `Internal` when a migration fails (nothing of it is kept), or when the
/// database was migrated by a newer build than this one.
pub(super) async fn run(pool: &SqlitePool) -> StoreResult<()> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS memory_schema_migrations (
             version     INTEGER PRIMARY KEY NOT NULL,
             description TEXT NOT NULL,
             applied_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
         )",
    )
    .execute(pool)
    .await
    .map_err(|e| migration_error(0, e))?;

    for migration in MIGRATIONS {
        let mut tx = pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| migration_error(migration.version, e))?;
        let newest: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM memory_schema_migrations")
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| migration_error(migration.version, e))?;
        let newest = newest.unwrap_or(0);
        if newest > latest_version() {
            return Err(StoreError::Internal(format!(
                "the SQLite database has schema version {newest}, newer than the {} this build knows; \
                 run a newer memory-plugin",
                latest_version()
            )));
        }
        if newest >= migration.version {
            continue;
        }
        sqlx::raw_sql(migration.sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| migration_error(migration.version, e))?;
        sqlx::query("INSERT INTO memory_schema_migrations (version, description) VALUES (?1, ?2)")
            .bind(migration.version)
            .bind(migration.description)
            .execute(&mut *tx)
            .await
            .map_err(|e| migration_error(migration.version, e))?;
        tx.commit()
            .await
            .map_err(|e| migration_error(migration.version, e))?;
    }

    for upgrade in UPGRADES {
        let failed = |e: sqlx::Error| {
            StoreError::Internal(format!(
                "SQLite index upgrade \"{}\" failed: {e}",
                upgrade.description
            ))
        };
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(failed)?;
        let applied: i64 = sqlx::query_scalar(upgrade.applied)
            .fetch_one(&mut *tx)
            .await
            .map_err(failed)?;
        if applied > 0 {
            continue;
        }
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM memory_records")
            .fetch_one(&mut *tx)
            .await
            .map_err(failed)?;
        if rows > 0 {
            tracing::info!(
                rows,
                upgrade = upgrade.description,
                "upgrading the SQLite database: building an index from the existing memories, once"
            );
        }
        let started = std::time::Instant::now();
        sqlx::raw_sql(upgrade.sql)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        if rows > 0 {
            tracing::info!(
                rows,
                upgrade = upgrade.description,
                seconds = started.elapsed().as_secs_f64(),
                "SQLite index upgrade done"
            );
        }
    }
    Ok(())
}
