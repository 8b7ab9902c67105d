//! all-MiniLM-L6-v2 in this process: a BERT encoder on candle tensors
//! (`bert.rs`), the `tokenizers` crate for WordPiece, mean pooling and L2
//! normalisation as sentence-transformers does.
//!
//! Threads: the model runs inside a rayon pool of its own with
//! [`LocalConfig::threads`] threads. Candle's matrix products (gemm), the
//! encoder's fused kernels and the tokenizer's batch encoding all run on the
//! pool they are called from, so they stay on it. Two environment
//! variables of candle's are set when the first local embedder loads,
//! each only if the operator has not set it:
//!
//! - `RAYON_NUM_THREADS` to the thread count: candle cuts each matrix
//!   product into that many pieces (without it, into as many as it counts
//!   physical cores, which is 1 on some virtual machines: products then ran
//!   on one core). It also sizes rayon's global pool if nothing in the
//!   process has started that pool yet.
//! - `CANDLE_NUM_THREADS` to 1: candle's own process-wide pool for its
//!   element-wise kernels (here only the embedding sums) then starts no
//!   threads, so the embedder uses exactly its own (two pools spinning on
//!   the same cores measured slower).
//!
//! Both are read by candle when first needed, so the first embedder's
//! thread count wins for the process.

use crate::bert::{mean_pool_normalized, Bert, BertConfig};
use crate::gemm;
use crate::{EmbedError, Embedder, LocalConfig, Precision};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use tokenizers::{
    Encoding, PaddingParams, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
};

/// The in-process embedder. Cloning shares the loaded model.
#[derive(Clone)]
pub struct LocalEmbedder {
    inner: Arc<Inner>,
}

struct Inner {
    model: Bert,
    tokenizer: Tokenizer,
    pool: rayon::ThreadPool,
    dir: PathBuf,
    threads: usize,
    /// Whether the matrix products run in bf16.
    bf16: bool,
    max_tokens: usize,
    batch_size: usize,
    dimension: usize,
}

static CANDLE_THREADS: Once = Once::new();

impl LocalEmbedder {
    /// Loads the model from the directory `config` names or finds.
    ///
    /// # Errors
    ///
    /// [`EmbedError::ModelNotFound`] with every directory tried, or
    /// [`EmbedError::ModelLoad`] naming the file that is unreadable.
    pub fn load(config: &LocalConfig) -> Result<Self, EmbedError> {
        let dir = config.resolve_model_dir()?;
        let threads = config.threads.max(1);
        set_candle_threads(threads);
        let load_err = |message: String| EmbedError::ModelLoad {
            dir: dir.clone(),
            message,
        };

        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path)
            .map_err(|e| load_err(format!("cannot read config.json: {e}")))?;
        let bert: BertConfig = serde_json::from_str(&text)
            .map_err(|e| load_err(format!("config.json is not a BERT configuration: {e}")))?;

        let weights_path = dir.join("model.safetensors");
        let weights = std::fs::read(&weights_path)
            .map_err(|e| load_err(format!("cannot read model.safetensors: {e}")))?;
        let bf16 = config.precision == Precision::Auto && gemm::supported();
        let model = Bert::load(&weights, &bert, bf16)
            .map_err(|e| load_err(format!("model.safetensors or config.json: {e}")))?;
        drop(weights);

        let max_tokens = config.max_tokens.clamp(2, bert.max_position_embeddings);
        let tokenizer =
            load_tokenizer(&dir.join("tokenizer.json"), max_tokens).map_err(load_err)?;

        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("memory-embed-{i}"))
            .build()
            .map_err(|e| load_err(format!("cannot start {threads} threads: {e}")))?;

        Ok(LocalEmbedder {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                pool,
                dir,
                threads,
                bf16,
                max_tokens,
                batch_size: config.batch_size.max(1),
                dimension: bert.hidden_size,
            }),
        })
    }

    /// The directory the model was loaded from.
    pub fn model_dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Inputs are truncated to this many tokens.
    pub fn max_tokens(&self) -> usize {
        self.inner.max_tokens
    }

    /// How many tokens `text` becomes (special tokens included), before
    /// truncation.
    ///
    /// # Errors
    ///
    /// When the tokenizer refuses the text.
    pub fn count_tokens(&self, text: &str) -> Result<usize, EmbedError> {
        let mut tokenizer = self.inner.tokenizer.clone();
        tokenizer
            .with_truncation(None)
            .map_err(|e| EmbedError::Tokenize(e.to_string()))?;
        let enc = tokenizer
            .encode(text, true)
            .map_err(|e| EmbedError::Tokenize(e.to_string()))?;
        Ok(enc.len())
    }

    /// [`Embedder::embed`] on the calling thread (it waits while the
    /// embedder's pool works): for callers outside an async runtime.
    ///
    /// # Errors
    ///
    /// When the tokenizer or the model fails.
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.inner.embed(texts)
    }
}

impl Inner {
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        self.pool.install(|| {
            let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let encodings = self
                .tokenizer
                .encode_batch(inputs, true)
                .map_err(|e| EmbedError::Tokenize(e.to_string()))?;
            // Batches carry no padding (each item's tokens only), so the
            // order of the inputs costs nothing.
            let mut out = Vec::with_capacity(encodings.len());
            for chunk in encodings.chunks(self.batch_size) {
                let batch: Vec<&Encoding> = chunk.iter().collect();
                out.extend(
                    self.forward(&batch)
                        .map_err(|e| EmbedError::Inference(e.to_string()))?,
                );
            }
            Ok(out)
        })
    }

    /// Runs one batch through BERT (its items' tokens one after the other,
    /// no padding) and pools it: the mean of each item's token vectors,
    /// scaled to length 1.
    fn forward(&self, batch: &[&Encoding]) -> candle_core::Result<Vec<Vec<f32>>> {
        let lengths: Vec<usize> = batch.iter().map(|e| e.get_ids().len()).collect();
        let ids: Vec<u32> = batch
            .iter()
            .flat_map(|e| e.get_ids().iter().copied())
            .collect();
        let hidden = self.model.forward(&ids, &lengths)?;
        mean_pool_normalized(&hidden, &lengths)
    }
}

fn load_tokenizer(path: &Path, max_tokens: usize) -> Result<Tokenizer, String> {
    let mut tokenizer =
        Tokenizer::from_file(path).map_err(|e| format!("cannot load tokenizer.json: {e}"))?;
    // No padding (batches are run without it); truncation at the model's
    // limit, whatever the file says.
    tokenizer.with_padding(None::<PaddingParams>);
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_tokens,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        }))
        .map_err(|e| format!("tokenizer.json: cannot truncate at {max_tokens} tokens: {e}"))?;
    Ok(tokenizer)
}

/// Points candle's thread settings at the embedder's pool (see the module
/// docs), leaving alone whatever the operator set.
fn set_candle_threads(threads: usize) {
    CANDLE_THREADS.call_once(|| {
        if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
            std::env::set_var("CANDLE_NUM_THREADS", "1");
        }
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        }
    });
}

#[async_trait::async_trait]
impl Embedder for LocalEmbedder {
    fn dimension(&self) -> usize {
        self.inner.dimension
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inner = Arc::clone(&self.inner);
        let texts = texts.to_vec();
        tokio::task::spawn_blocking(move || inner.embed(&texts))
            .await
            .map_err(|e| EmbedError::Inference(format!("the embedding task failed: {e}")))?
    }

    fn describe(&self) -> String {
        format!(
            "all-MiniLM-L6-v2 in process ({} dimensions, {} products, {} threads, up to {} tokens, model from {})",
            self.inner.dimension,
            if self.inner.bf16 { "bf16" } else { "f32" },
            self.inner.threads,
            self.inner.max_tokens,
            self.inner.dir.display()
        )
    }
}
