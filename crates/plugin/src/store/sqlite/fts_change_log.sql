-- The full-text change log: what searches need to bring the document
-- frequencies they remember up to date after any change, not only after
-- appends (see doc_freq.rs). Replaces memory_fts_changes and the triggers of
-- the namespace index upgrade; the index itself is unchanged.
--
-- A row key (seq) above `high_water` has never been used: the rows above the
-- high-water mark a count was taken at are exactly the rows appended since.
-- Every other change of the indexed text is written to memory_fts_log, in
-- order, with the row key and +1 (text that entered the index) or -1 (text
-- that left it): a delete, a rewrite of the content (both), an insert under a
-- key used before (after the highest row was deleted, or chosen by hand).
-- A search adds the log entries since its count, for the rows that count
-- saw, to the count. The log keeps its last 8192 entries at least; a count
-- older than that is taken again.

DROP TRIGGER IF EXISTS memory_records_fts_insert;
DROP TRIGGER IF EXISTS memory_records_fts_delete;
DROP TRIGGER IF EXISTS memory_records_fts_update;
DROP TABLE IF EXISTS memory_fts_changes;

CREATE TABLE memory_fts_changes (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    -- the highest row key ever given out
    high_water INTEGER NOT NULL,
    -- entries ever written to memory_fts_log (the last one's rowid)
    logged     INTEGER NOT NULL,
    -- entries up to this one have left the log
    log_floor  INTEGER NOT NULL
);
INSERT INTO memory_fts_changes (id, high_water, logged, log_floor)
    VALUES (1, coalesce((SELECT max(seq) FROM memory_records), 0), 0, 0);

CREATE VIRTUAL TABLE memory_fts_log USING fts5 (
    content,
    seq UNINDEXED,
    delta UNINDEXED,
    tokenize = 'porter unicode61'
);

CREATE TRIGGER memory_records_fts_insert AFTER INSERT ON memory_records BEGIN
    INSERT INTO memory_records_fts (rowid, content, namespace_key)
        VALUES (new.seq, new.content, hex(new.namespace));
    INSERT INTO memory_fts_log (rowid, content, seq, delta)
        SELECT logged + 1, new.content, new.seq, 1 FROM memory_fts_changes
        WHERE id = 1 AND new.seq <= high_water;
    UPDATE memory_fts_changes
        SET logged = logged + (new.seq <= high_water), high_water = max(high_water, new.seq)
        WHERE id = 1;
END;

-- Also fires for rows removed by the namespace foreign key's cascade.
CREATE TRIGGER memory_records_fts_delete AFTER DELETE ON memory_records BEGIN
    INSERT INTO memory_records_fts (memory_records_fts, rowid, content, namespace_key)
        VALUES ('delete', old.seq, old.content, hex(old.namespace));
    INSERT INTO memory_fts_log (rowid, content, seq, delta)
        SELECT logged + 1, old.content, old.seq, -1 FROM memory_fts_changes WHERE id = 1;
    UPDATE memory_fts_changes SET logged = logged + 1 WHERE id = 1;
END;

-- An upsert that leaves the text as it was (a re-run import, a changed pin
-- or expiry) leaves the index and the log alone.
CREATE TRIGGER memory_records_fts_update AFTER UPDATE OF content, namespace ON memory_records
    WHEN old.content IS NOT new.content OR old.namespace IS NOT new.namespace
BEGIN
    INSERT INTO memory_records_fts (memory_records_fts, rowid, content, namespace_key)
        VALUES ('delete', old.seq, old.content, hex(old.namespace));
    INSERT INTO memory_records_fts (rowid, content, namespace_key)
        VALUES (new.seq, new.content, hex(new.namespace));
    INSERT INTO memory_fts_log (rowid, content, seq, delta)
        SELECT logged + 1, old.content, old.seq, -1 FROM memory_fts_changes WHERE id = 1;
    INSERT INTO memory_fts_log (rowid, content, seq, delta)
        SELECT logged + 2, new.content, new.seq, 1 FROM memory_fts_changes WHERE id = 1;
    UPDATE memory_fts_changes SET logged = logged + 2 WHERE id = 1;
END;

-- Every 1024 entries, the log drops what is older than its last 8192.
CREATE TRIGGER memory_fts_log_trim AFTER UPDATE OF logged ON memory_fts_changes
    WHEN new.logged / 1024 > old.logged / 1024 AND new.logged > 8192
BEGIN
    DELETE FROM memory_fts_log WHERE rowid <= new.logged - 8192;
    UPDATE memory_fts_changes SET log_floor = new.logged - 8192 WHERE id = 1;
END;
