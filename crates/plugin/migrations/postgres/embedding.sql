-- Semantic search, applied at start when the pgvector extension is
-- available and `memory_records.embedding` does not exist yet.
--
-- `{dim}` is replaced by the configured dimension (MEMORY_PLUGIN_EMBEDDING_DIM,
-- default 1536) before this runs. pgvector needs a fixed dimension for its
-- indexes; a later start with another dimension is refused rather than
-- silently mixing vectors of different sizes.
ALTER TABLE memory_records ADD COLUMN IF NOT EXISTS embedding vector({dim});
