-- Newest first over several namespaces as a merge of per-namespace index
-- scans: a search without a query orders by pin, then created_at, then id,
-- so an index in exactly that order lets each searched namespace hand over
-- its first rows without reading, let alone sorting, the rest of it (an
-- org namespace may hold hundreds of thousands). It also serves everything
-- the (namespace, created_at DESC) index served (the cascade, namespace
-- look-ups), which it replaces.
CREATE INDEX IF NOT EXISTS memory_records_namespace_pin_created_at_idx
    ON memory_records (namespace, pin DESC, created_at DESC, id);

DROP INDEX IF EXISTS memory_records_namespace_created_at_idx;
