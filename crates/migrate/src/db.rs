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
    /// Dimension of `memory_records.embedding` (a pgvector column), when
    /// the table has one.
    pub embedding_dim: Option<usize>,
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
        let mut db = Db {
            pool,
            schema: schema.to_string(),
            display: config.display.clone(),
            scrub: config,
            embedding_dim: None,
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
        // pgvector keeps a column's dimension as its type modifier.
        let column: Option<(String, i32)> = sqlx::query_as(
            "SELECT t.typname::text, a.atttypmod FROM pg_attribute a
             JOIN pg_type t ON t.oid = a.atttypid
             WHERE a.attrelid = to_regclass($1) AND a.attname = 'embedding'
               AND NOT a.attisdropped",
        )
        .bind(format!("{schema}.memory_records"))
        .fetch_optional(&db.pool)
        .await
        .map_err(|e| db.err(e))?;
        db.embedding_dim = match column {
            Some((t, dim)) if t == "vector" && dim > 0 => Some(dim as usize),
            _ => None,
        };
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
        embeddings: bool,
    ) -> Result<(Vec<Memory>, Option<Uuid>), String> {
        // pgvector casts a vector to `real[]`, which decodes as `Vec<f32>`.
        let embeddings = embeddings && self.embedding_dim.is_some();
        let embedding = if embeddings {
            ", r.embedding::real[] AS embedding"
        } else {
            ""
        };
        let sql = format!(
            "SELECT r.id, r.namespace, r.content, r.kind, r.source, r.expires_at, \
                    r.propagation, r.pin, r.created_at{embedding} \
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
            .map(|r| {
                let mut m = self.memory(r)?;
                if embeddings {
                    m.embedding = r.try_get("embedding").map_err(|e| self.err(e))?;
                }
                Ok(m)
            })
            .collect::<Result<Vec<_>, String>>()?;
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
            embedding: None,
        })
    }

    /// One page of namespaces by name after `after`, expired ones included
    /// (the caller counts them), and the name to continue after.
    ///
    /// # Errors
    /// A database error or an unknown kind.
    pub async fn namespaces(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<(String, NamespaceUpsert)>, Option<String>), String> {
        let sql = format!(
            "SELECT name, kind, expires_at, metadata FROM {}.memory_namespaces \
             WHERE ($1::text IS NULL OR name > $1) ORDER BY name LIMIT $2",
            self.schema
        );
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        let full = rows.len() as u32 == limit;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let name: String = row.try_get("name").map_err(|e| self.err(e))?;
            out.push((name, self.settings(row)?));
        }
        let next = if full {
            out.last().map(|(n, _)| n.clone())
        } else {
            None
        };
        Ok((out, next))
    }

    fn settings(&self, row: &PgRow) -> Result<NamespaceUpsert, String> {
        let kind: String = row.try_get("kind").map_err(|e| self.err(e))?;
        Ok(NamespaceUpsert {
            kind: text_enum::<NamespaceKind>("namespace kind", &kind)?,
            expires_at: row.try_get("expires_at").map_err(|e| self.err(e))?,
            metadata: row.try_get("metadata").map_err(|e| self.err(e))?,
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
        self.settings(&row).map(Some)
    }
}
