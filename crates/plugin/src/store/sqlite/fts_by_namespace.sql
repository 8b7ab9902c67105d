-- The full-text index by namespace: memory_records_fts indexes each row's
-- namespace beside its content, so that a search matches only the rows of
-- the namespaces it names instead of every row of the table holding its
-- words. Replaces the content-only index of migration 1 and is built from
-- the rows already there (once: the store checks for namespace_key first).
--
-- The namespace is indexed as one token: the hex digits of its name
-- (`hex(namespace)`). Names hold ':', '-', '.' and '_', which the tokenizer
-- would split on; hex digits it keeps together. A search then adds
-- `{namespace_key} : ("<hex>" OR ...)` to its MATCH expression, and ranks
-- by the content column alone (see rank.rs), so scores are those of the
-- content-only index.

DROP TRIGGER IF EXISTS memory_records_fts_insert;
DROP TRIGGER IF EXISTS memory_records_fts_delete;
DROP TRIGGER IF EXISTS memory_records_fts_update;
DROP TABLE IF EXISTS memory_records_fts;

-- What FTS5 reads back when it needs a row's text (rebuild, integrity-check):
-- the same values the triggers below index.
CREATE VIEW memory_records_fts_source (seq, content, namespace_key) AS
    SELECT seq, content, hex(namespace) FROM memory_records;

CREATE VIRTUAL TABLE memory_records_fts USING fts5 (
    content,
    namespace_key,
    content = 'memory_records_fts_source',
    content_rowid = 'seq',
    tokenize = 'porter unicode61'
);

-- Changes of the table, counted so that searches can tell whether the
-- document frequencies they remember still hold (see doc_freq.rs).
CREATE TABLE memory_fts_changes (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    -- rows inserted
    inserted INTEGER NOT NULL,
    -- rows deleted, or whose content or namespace changed
    removed  INTEGER NOT NULL
);
INSERT INTO memory_fts_changes (id, inserted, removed) VALUES (1, 0, 0);

CREATE TRIGGER memory_records_fts_insert AFTER INSERT ON memory_records BEGIN
    INSERT INTO memory_records_fts (rowid, content, namespace_key)
        VALUES (new.seq, new.content, hex(new.namespace));
    UPDATE memory_fts_changes SET inserted = inserted + 1 WHERE id = 1;
END;

-- Also fires for rows removed by the namespace foreign key's cascade.
CREATE TRIGGER memory_records_fts_delete AFTER DELETE ON memory_records BEGIN
    INSERT INTO memory_records_fts (memory_records_fts, rowid, content, namespace_key)
        VALUES ('delete', old.seq, old.content, hex(old.namespace));
    UPDATE memory_fts_changes SET removed = removed + 1 WHERE id = 1;
END;

-- An upsert that leaves the text as it was (a re-run import, a changed pin
-- or expiry) leaves the index alone.
CREATE TRIGGER memory_records_fts_update AFTER UPDATE OF content, namespace ON memory_records
    WHEN old.content IS NOT new.content OR old.namespace IS NOT new.namespace
BEGIN
    INSERT INTO memory_records_fts (memory_records_fts, rowid, content, namespace_key)
        VALUES ('delete', old.seq, old.content, hex(old.namespace));
    INSERT INTO memory_records_fts (rowid, content, namespace_key)
        VALUES (new.seq, new.content, hex(new.namespace));
    UPDATE memory_fts_changes SET removed = removed + 1 WHERE id = 1;
END;

INSERT INTO memory_records_fts (memory_records_fts) VALUES ('rebuild');
