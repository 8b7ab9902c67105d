//! `-embed`: computing embeddings for rows that arrive without one, shared
//! by `memory-backfill -apply` and `memory-migrate -apply`.
//!
//! The embedder comes from the `MEMORY_EMBED*` variables (see the
//! `memory-embed` crate). Everything that can stop a run is checked before
//! any write: embedding must be on and the model must load, and the target
//! must advertise `embedding` with the embedder's dimension. Texts go to the
//! model [`EMBED_BATCH`] at a time; the caller keeps several write requests
//! in flight meanwhile, so the model and the plugin work at the same time.

use crate::progress::Counters;
use memory_embed::{EmbedConfig, EmbedMode, Embedder};
use std::sync::Arc;
use std::time::Instant;

/// Texts per call to the embedder.
pub const EMBED_BATCH: usize = 64;

/// A ready embedder and its dimension.
#[derive(Clone)]
pub struct EmbedSetup {
    pub embedder: Arc<dyn Embedder>,
    /// The length of every vector it returns.
    pub dimension: usize,
}

impl std::fmt::Debug for EmbedSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbedSetup")
            .field("embedder", &self.embedder.describe())
            .field("dimension", &self.dimension)
            .finish()
    }
}

impl EmbedSetup {
    /// The in-process model of `model_dir` (loaded off the async threads).
    ///
    /// # Errors
    ///
    /// A one-line message when the model files cannot be loaded.
    pub async fn local(model_dir: std::path::PathBuf) -> Result<EmbedSetup, String> {
        let loaded = tokio::task::spawn_blocking(move || {
            memory_embed::LocalEmbedder::load(&memory_embed::LocalConfig::with_dir(model_dir))
        })
        .await
        .map_err(|e| format!("-embed: loading the model stopped: {e}"))?
        .map_err(|e| format!("-embed: {e}"))?;
        EmbedSetup::new(Arc::new(loaded)).await
    }

    /// Wraps an embedder, learning its dimension (a remote endpoint without
    /// `MEMORY_EMBED_DIMENSION` is asked once, with a one-word text).
    ///
    /// # Errors
    ///
    /// A one-line message when the probe fails or returns no vector.
    pub async fn new(embedder: Arc<dyn Embedder>) -> Result<EmbedSetup, String> {
        let mut dimension = embedder.dimension();
        if dimension == 0 {
            let probe = embedder
                .embed(&["dimension".to_string()])
                .await
                .map_err(|e| format!("-embed: the embedder did not answer a probe: {e}"))?;
            dimension = probe.first().map_or(0, Vec::len);
        }
        if dimension == 0 {
            return Err("-embed: the embedder returned an empty vector".into());
        }
        Ok(EmbedSetup {
            embedder,
            dimension,
        })
    }

    /// The embedder's one-line description.
    pub fn describe(&self) -> String {
        self.embedder.describe()
    }
}

/// Builds the embedder the `MEMORY_EMBED*` variables describe, for `-embed`.
/// Loading the local model reads about 90 MB: this runs on a blocking
/// thread.
///
/// # Errors
///
/// A one-line message when embedding is off (explicitly, or because no
/// model files were found), the configuration is invalid, or the model
/// does not load.
pub async fn embedder_from_env() -> Result<EmbedSetup, String> {
    let config = EmbedConfig::from_env()
        .map_err(|e| one_line(&format!("-embed: {e}; nothing was written")))?;
    embedder_from_config(config).await
}

/// [`embedder_from_env`] with a configuration the caller read.
///
/// # Errors
///
/// As [`embedder_from_env`].
pub async fn embedder_from_config(config: EmbedConfig) -> Result<EmbedSetup, String> {
    if config.mode == EmbedMode::Off {
        let why = match &config.notice {
            Some(notice) => format!("embedding is off: {}", notice.replace('\n', " ")),
            None => "MEMORY_EMBED=off".to_string(),
        };
        return Err(format!(
            "-embed needs an embedder, but {why}; set MEMORY_EMBED=local with MEMORY_EMBED_MODEL_DIR, \
             or MEMORY_EMBED=remote with MEMORY_EMBED_URL and MEMORY_EMBED_MODEL; nothing was written"
        ));
    }
    let built = tokio::task::spawn_blocking(move || memory_embed::build_embedder(&config))
        .await
        .map_err(|e| format!("-embed: loading the embedder failed: {e}"))?
        .map_err(|e| one_line(&format!("-embed: {e}; nothing was written")))?;
    let Some(embedder) = built else {
        return Err("-embed needs an embedder, but embedding is off; nothing was written".into());
    };
    EmbedSetup::new(embedder).await
}

/// Checks that a target takes the embedder's vectors: it advertises
/// `embedding`, and its advertised `embedding_dimension` (when it gives one)
/// is the embedder's.
///
/// # Errors
///
/// A one-line message naming both dimensions (or the missing capability).
pub fn check_target(
    target: &str,
    advertises_embedding: bool,
    target_dimension: Option<usize>,
    setup: &EmbedSetup,
) -> Result<(), String> {
    if !advertises_embedding {
        return Err(format!(
            "-embed: the plugin {target} does not advertise `embedding`, so it cannot store \
             vectors; nothing was written"
        ));
    }
    match target_dimension {
        Some(d) if d != setup.dimension => Err(format!(
            "-embed: embedding dimensions differ: the embedder ({}) makes {}, the plugin {target} \
             stores {d}; nothing was written (start the plugin with MEMORY_PLUGIN_EMBEDDING_DIM={}, \
             or choose an embedder of {d} dimensions)",
            setup.describe(),
            setup.dimension,
            setup.dimension
        )),
        _ => Ok(()),
    }
}

/// Embeds `texts` [`EMBED_BATCH`] at a time, in order, counting each chunk
/// in `counters.embedded` as it completes. Returns the vectors and the
/// seconds the embedder took.
///
/// # Errors
///
/// A one-line message for the first chunk that failed; vectors of a wrong
/// number or length are an error too.
pub async fn embed_texts(
    setup: &EmbedSetup,
    texts: &[String],
    counters: &Counters,
) -> Result<(Vec<Vec<f32>>, f64), String> {
    let started = Instant::now();
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(EMBED_BATCH) {
        let vectors = setup
            .embedder
            .embed(chunk)
            .await
            .map_err(|e| one_line(&format!("embedding failed: {e}")))?;
        if vectors.len() != chunk.len() {
            return Err(format!(
                "embedding failed: the embedder returned {} vectors for {} texts",
                vectors.len(),
                chunk.len()
            ));
        }
        if let Some(bad) = vectors.iter().find(|v| v.len() != setup.dimension) {
            return Err(format!(
                "embedding failed: the embedder returned a {}-dimension vector, {} expected",
                bad.len(),
                setup.dimension
            ));
        }
        Counters::add(&counters.embedded, chunk.len() as u64);
        out.extend(vectors);
    }
    Ok((out, started.elapsed().as_secs_f64()))
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}
