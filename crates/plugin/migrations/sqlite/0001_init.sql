-- Initial schema of the SQLite store. Names match the Postgres store so that
-- operators find the same tables whichever backend they run.
--
-- Timestamps are fixed-width RFC 3339 UTC text with microseconds
-- ("2026-01-02T03:04:05.000006Z"): readable in the sqlite3 shell, and their
-- text order is their time order, so comparisons and ORDER BY need no
-- conversion.

CREATE TABLE memory_namespaces (
    name       TEXT PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('workspace', 'team', 'org', 'custom')),
    expires_at TEXT,
    -- JSON text, NULL when absent.
    metadata   TEXT,
    created_at TEXT NOT NULL
);

-- Serves the sweep; most namespaces never expire, so only those that do are indexed.
CREATE INDEX memory_namespaces_expires_idx
    ON memory_namespaces (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE memory_records (
    -- An explicit integer key: the full-text index refers to rows by it, and
    -- unlike an implicit rowid it never changes on VACUUM.
    seq         INTEGER PRIMARY KEY,
    -- Lowercase hyphenated UUID; text order equals UUID byte order, so the
    -- list extension pages in the same order as on Postgres.
    id          TEXT NOT NULL UNIQUE,
    namespace   TEXT NOT NULL REFERENCES memory_namespaces (name) ON DELETE CASCADE,
    content     TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('fact', 'summary', 'checkpoint')),
    source      TEXT NOT NULL CHECK (source IN ('agent', 'runtime', 'user')),
    expires_at  TEXT,
    -- Opaque JSON text, NULL when absent.
    propagation TEXT,
    pin         INTEGER NOT NULL DEFAULT 0 CHECK (pin IN (0, 1)),
    created_at  TEXT NOT NULL,
    -- Little-endian f32 components; compared in process by cosine
    -- similarity. Last in the row: a 1536-dimension vector spills onto
    -- overflow pages, and columns after it would cost reading those pages.
    embedding   BLOB
);

-- "Namespace, newest first" (the default search order) and the foreign key's
-- cascade lookups.
CREATE INDEX memory_records_namespace_created_idx
    ON memory_records (namespace, created_at DESC);

-- The list extension pages through one namespace by id.
CREATE INDEX memory_records_namespace_id_idx
    ON memory_records (namespace, id);

CREATE INDEX memory_records_expires_idx
    ON memory_records (expires_at) WHERE expires_at IS NOT NULL;

-- Full-text index over content. External content: the text lives once, in
-- memory_records; the triggers below keep the index in step with it.
-- 'porter unicode61' stems English words, so "deploying" matches "deployed".
CREATE VIRTUAL TABLE memory_records_fts USING fts5 (
    content,
    content = 'memory_records',
    content_rowid = 'seq',
    tokenize = 'porter unicode61'
);

CREATE TRIGGER memory_records_fts_insert AFTER INSERT ON memory_records BEGIN
    INSERT INTO memory_records_fts (rowid, content) VALUES (new.seq, new.content);
END;

-- Also fires for rows removed by the namespace foreign key's cascade.
CREATE TRIGGER memory_records_fts_delete AFTER DELETE ON memory_records BEGIN
    INSERT INTO memory_records_fts (memory_records_fts, rowid, content)
        VALUES ('delete', old.seq, old.content);
END;

CREATE TRIGGER memory_records_fts_update AFTER UPDATE OF content ON memory_records BEGIN
    INSERT INTO memory_records_fts (memory_records_fts, rowid, content)
        VALUES ('delete', old.seq, old.content);
    INSERT INTO memory_records_fts (rowid, content) VALUES (new.seq, new.content);
END;
