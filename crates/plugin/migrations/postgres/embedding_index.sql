-- HNSW index for cosine distance (`<=>`), the contract's similarity measure.
-- HNSW over IVFFlat: it needs no training data, so it works on an empty
-- table and stays accurate as rows arrive. pgvector limits HNSW to 2000
-- dimensions; above that the plugin skips this index and scans.
CREATE INDEX IF NOT EXISTS memory_records_embedding_hnsw_idx
    ON memory_records USING hnsw (embedding vector_cosine_ops);
