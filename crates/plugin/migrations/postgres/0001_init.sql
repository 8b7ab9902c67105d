-- Memory Plugin schema, version 1.
--
-- Runs with search_path set to the plugin's own schema (default
-- `memory_plugin`), so every name below lands there and the plugin can share
-- a database with the platform. Table and column names are fixed: operators
-- inspect them by hand.
--
-- Every statement is idempotent (IF NOT EXISTS) so a half-applied run, or a
-- second process racing this one, cannot break a later start. Callers also
-- hold a pg_advisory_lock around the whole migration.

-- Namespaces. `kind` is text with a CHECK rather than an enum type: adding a
-- kind later is a one-line constraint change instead of ALTER TYPE, and
-- operators read plain text in psql.
CREATE TABLE IF NOT EXISTS memory_namespaces (
    name        text        PRIMARY KEY,
    kind        text        NOT NULL
                CONSTRAINT memory_namespaces_kind_check
                CHECK (kind IN ('workspace', 'team', 'org', 'custom')),
    -- NULL: never expires. An expired namespace behaves as absent until the
    -- sweep deletes it.
    expires_at  timestamptz,
    -- Opaque JSON from the caller; jsonb so operators can query into it.
    metadata    jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Memories. The id is the caller's idempotency key, so it is the primary key
-- and writes are INSERT ... ON CONFLICT (id).
CREATE TABLE IF NOT EXISTS memory_records (
    id           uuid        PRIMARY KEY,
    -- Deleting a namespace deletes its memories in the same statement.
    namespace    text        NOT NULL
                 REFERENCES memory_namespaces (name) ON DELETE CASCADE,
    content      text        NOT NULL,
    kind         text        NOT NULL
                 CONSTRAINT memory_records_kind_check
                 CHECK (kind IN ('fact', 'summary', 'checkpoint')),
    source       text        NOT NULL
                 CONSTRAINT memory_records_source_check
                 CHECK (source IN ('agent', 'runtime', 'user')),
    expires_at   timestamptz,
    -- Opaque JSON, stored and returned as given.
    propagation  jsonb,
    pin          boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- Full-text search document, kept in step with `content` by Postgres
    -- itself. The explicit regconfig makes the expression immutable, which a
    -- stored generated column requires; English stemming matches the
    -- contract's "English full-text".
    search_tsv   tsvector
                 GENERATED ALWAYS AS (to_tsvector('english'::regconfig, content)) STORED
);
-- The `embedding` column is not created here: its type exists only when the
-- pgvector extension is installed, so the plugin adds it at start when it can
-- (see embedding.sql).

-- Full-text search: `search_tsv @@ query` uses this GIN index.
CREATE INDEX IF NOT EXISTS memory_records_search_tsv_idx
    ON memory_records USING gin (search_tsv);

-- "Namespace, newest first": the search mode without query or embedding
-- reads each namespace's newest rows straight from this index. It also
-- serves the foreign key's ON DELETE CASCADE lookup by namespace.
CREATE INDEX IF NOT EXISTS memory_records_namespace_created_at_idx
    ON memory_records (namespace, created_at DESC);

-- Listing a namespace by id (extension `list`, used by the migration
-- verifier) pages through this index instead of filtering the whole primary
-- key.
CREATE INDEX IF NOT EXISTS memory_records_namespace_id_idx
    ON memory_records (namespace, id);

-- The sweep deletes rows with `expires_at <= now`. Most rows never expire,
-- so a partial index keeps it small and the sweep cheap.
CREATE INDEX IF NOT EXISTS memory_records_expires_at_idx
    ON memory_records (expires_at)
    WHERE expires_at IS NOT NULL;

CREATE INDEX IF NOT EXISTS memory_namespaces_expires_at_idx
    ON memory_namespaces (expires_at)
    WHERE expires_at IS NOT NULL;
