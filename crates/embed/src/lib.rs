//! Text embeddings for semantic recall.
//!
//! Two [`Embedder`]s:
//!
//! - [`LocalEmbedder`]: the sentence-transformers model all-MiniLM-L6-v2
//!   (384 dimensions, mean pooling over the attention mask, L2-normalised)
//!   run in this process on the CPU, in pure Rust (a BERT encoder on candle
//!   tensors, and the `tokenizers` crate), on a thread pool of its own with
//!   a bounded number of threads;
//! - [`RemoteEmbedder`]: any OpenAI-compatible `POST /v1/embeddings`
//!   endpoint, with timeouts, bounded retries and a dimension check.
//!
//! [`EmbedConfig::from_env`] reads the `MEMORY_EMBED*` variables and
//! [`build_embedder`] turns the configuration into an embedder (or `None`
//! when embedding is off). See the crate's README for the variables and
//! where the model files are looked for.

mod bert;
mod config;
mod error;
mod gemm;
pub mod install;
mod local;
mod remote;

pub use config::{
    default_model_dirs, default_threads, EmbedConfig, EmbedMode, LocalConfig, Precision,
    RemoteConfig, MODEL_FILES,
};
pub use error::EmbedError;
pub use local::LocalEmbedder;
pub use remote::RemoteEmbedder;

use std::sync::Arc;

/// Dimension of all-MiniLM-L6-v2's vectors.
pub const MINILM_DIMENSION: usize = 384;

/// Turns texts into vectors. Implementations are cheap to share
/// (`Arc<dyn Embedder>`) and safe to call from many tasks at once.
#[async_trait::async_trait]
pub trait Embedder: Send + Sync {
    /// The length of every vector [`Embedder::embed`] returns. For a remote
    /// embedder without a configured dimension, the one its first answer
    /// had, or 0 before any answer (see [`RemoteEmbedder::probe`]).
    fn dimension(&self) -> usize;

    /// One vector per text, in input order. An empty slice gives an empty
    /// answer without any work.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;

    /// A one-line description for logs (never contains a secret).
    fn describe(&self) -> String;
}

/// Builds the embedder `config` asks for: `None` when embedding is off.
/// Loading the local model reads about 90 MB and takes a moment: call it
/// once at start-up (from a blocking context or `spawn_blocking`).
///
/// # Errors
///
/// When the local model files are missing or unreadable, or the remote
/// configuration is incomplete; the message says what to set.
pub fn build_embedder(config: &EmbedConfig) -> Result<Option<Arc<dyn Embedder>>, EmbedError> {
    match config.mode {
        EmbedMode::Off => Ok(None),
        EmbedMode::Local => Ok(Some(Arc::new(LocalEmbedder::load(&config.local)?))),
        EmbedMode::Remote => Ok(Some(Arc::new(RemoteEmbedder::new(config.remote.clone())?))),
    }
}

/// Cosine similarity of two vectors of the same length (0 when either is
/// all zeros).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    (dot / (na.sqrt() * nb.sqrt())) as f32
}
