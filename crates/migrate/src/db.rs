//! The v1-only source: a plugin that cannot enumerate its memories is read
//! from its own tables instead, `memory_namespaces` and `memory_records` in
//! the layout the reference plugin and ours share.

use chrono::{DateTime, Utc};
use memory_contract::{Memory, MemoryKind, MemorySource, NamespaceKind, NamespaceUpsert};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::Row;
use uuid::Uuid;

/// A plugin's database, read-only.
pub struct Db {
    pool: PgPool,
    schema: String,
    /// The URL with its password masked.
    pub display: String,
    scrub: memory_backfill::config::LegacyDbConfig,
}

/// Whether `schema` is a plain lowercase SQL identifier.
pub fn valid_schema(schema: &str) -> bool {
    let mut chars = schema.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && schema.len() <= 63
}

fn text_enum<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|_| format!("unknown {what} {text:?}"))
}

impl Db {
    /// Connects and checks that both tables are there.
    ///
    /// # Errors
    /// A message naming `-from-database` (password masked) when the URL is
    /// malformed, the database unreachable or the tables absent.
    pub async fn connect(url: &str, schema: &str) -> Result<Db, String> {
        let config = memory_backfill::config::parse_database_url(url)
            .map_err(|e| e.to_string().replace("DATABASE_URL", "-from-database"))?;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_with(config.options.clone())
            .await
            .map_err(|e| {
                format!(
                    "-from-database {} unreachable: {}",
                    config.display,
                    config.scrub(&e.to_string())
                )
            })?;
        let db = Db {
            pool,
            schema: schema.to_string(),
            display: config.display.clone(),
            scrub: config,
        };
        for table in ["memory_namespaces", "memory_records"] {
            let found: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
                .bind(format!("{schema}.{table}"))
                .fetch_one(&db.pool)
                .await
                .map_err(|e| db.err(e))?;
            if found.is_none() {
                return Err(format!(
                    "-from-database {}: no table {schema}.{table} (set -from-schema to the plugin's schema)",
                    db.display
                ));
            }
        }
        Ok(db)
    }

    fn err(&self, e: sqlx::Error) -> String {
        format!(
            "-from-database {}: {}",
            self.display,
            self.scrub.scrub(&e.to_string())
        )
    }

    /// One page of live memories (in a live namespace) with ids strictly
    /// between `after` and `before`, by id, and the id to continue after.
    ///
    /// # Errors
    /// A database error, or a row whose kind or source the contract does
    /// not know.
    pub async fn page(
        &self,
        after: Option<Uuid>,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<(Vec<Memory>, Option<Uuid>), String> {
        let sql = format!(
            "SELECT r.id, r.namespace, r.content, r.kind, r.source, r.expires_at, \
                    r.propagation, r.pin, r.created_at \
             FROM {s}.memory_records r JOIN {s}.memory_namespaces n ON n.name = r.namespace \
             WHERE (r.expires_at IS NULL OR r.expires_at > now()) \
               AND (n.expires_at IS NULL OR n.expires_at > now()) \
               AND ($1::uuid IS NULL OR r.id > $1) AND ($2::uuid IS NULL OR r.id < $2) \
             ORDER BY r.id LIMIT $3",
            s = self.schema
        );
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        let full = rows.len() as u32 == limit;
        let memories = rows
            .iter()
            .map(|r| self.memory(r))
            .collect::<Result<Vec<_>, _>>()?;
        let next = if full {
            memories.last().map(|m| m.id)
        } else {
            None
        };
        Ok((memories, next))
    }

    fn memory(&self, r: &PgRow) -> Result<Memory, String> {
        let get = |e: sqlx::Error| self.err(e);
        let kind: String = r.try_get("kind").map_err(get)?;
        let source: String = r.try_get("source").map_err(get)?;
        Ok(Memory {
            id: r.try_get("id").map_err(get)?,
            namespace: r.try_get("namespace").map_err(get)?,
            content: r.try_get("content").map_err(get)?,
            kind: text_enum::<MemoryKind>("memory kind", &kind)?,
            source: text_enum::<MemorySource>("memory source", &source)?,
            expires_at: r
                .try_get::<Option<DateTime<Utc>>, _>("expires_at")
                .map_err(get)?,
            propagation: r.try_get("propagation").map_err(get)?,
            pin: r.try_get("pin").map_err(get)?,
            created_at: r.try_get("created_at").map_err(get)?,
            score: None,
        })
    }

    /// A namespace's settings, `None` when absent.
    ///
    /// # Errors
    /// A database error or an unknown kind.
    pub async fn namespace(&self, name: &str) -> Result<Option<NamespaceUpsert>, String> {
        let sql = format!(
            "SELECT kind, expires_at, metadata FROM {}.memory_namespaces WHERE name = $1",
            self.schema
        );
        let Some(row) = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?
        else {
            return Ok(None);
        };
        let kind: String = row.try_get("kind").map_err(|e| self.err(e))?;
        Ok(Some(NamespaceUpsert {
            kind: text_enum::<NamespaceKind>("namespace kind", &kind)?,
            expires_at: row.try_get("expires_at").map_err(|e| self.err(e))?,
            metadata: row.try_get("metadata").map_err(|e| self.err(e))?,
        }))
    }
}
