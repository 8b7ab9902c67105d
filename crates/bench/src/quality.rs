//! Retrieval quality (`memory-bench --quality`): how often a search finds
//! the memories that answer a question, for full-text, semantic and hybrid
//! ranking.
//!
//! The data set (`data/retrieval_eval.json`, built from `memories.txt` and
//! `queries.txt` there by `make_retrieval_eval.py`) holds short agent
//! memories of a fictional software company and questions with the ids of
//! the memories that answer them. Questions come in three types:
//! `paraphrase` (no word in common with any answer once stop words are left
//! out: only meaning connects them), `keyword` (an exact name, code or term,
//! which embeddings handle poorly) and `mixed`.
//!
//! [`evaluate`] writes every memory, with its embedding from the given
//! embedder, into one namespace of a running plugin through the real client,
//! then runs every question in each mode:
//!
//! - **full-text**: `query` only;
//! - **semantic**: `embedding` only;
//! - **hybrid**: both, with `mode: hybrid`, only when the plugin advertises
//!   the `hybrid` capability.
//!
//! Two figures per mode, averaged over the questions:
//!
//! - **recall@5**: the share of a question's answers found among the first
//!   [`RECALL_K`] results;
//! - **MRR@10**: the reciprocal rank of the first answer among the first
//!   [`MRR_DEPTH`] results (1 for rank 1, 1/2 for rank 2, ..., 0 when no
//!   answer is in the first ten).

use anyhow::{bail, ensure, Context, Result};
use memory_client::Client;
use memory_contract::{
    capability, BatchItemResult, BatchRequest, BatchWrite, MemoryKind, MemorySource, MemoryWrite,
    NamespaceKind, NamespaceUpsert, RankMode, SearchRequest,
};
use memory_embed::Embedder;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;
use uuid::Uuid;

/// The evaluation data set, compiled in.
pub const DATASET_JSON: &str = include_str!("../data/retrieval_eval.json");

/// Results looked at for recall.
pub const RECALL_K: usize = 5;

/// Results looked at for the reciprocal rank (and asked of the plugin).
pub const MRR_DEPTH: usize = 10;

/// The namespace the evaluation writes into.
pub const NAMESPACE: &str = "team:retrieval-eval";

/// English stop words: left out when comparing the words of a question with
/// those of its answers. The very words the plugin's SQLite full-text search
/// leaves out of a query.
pub use memory_plugin::store::sqlite::STOP_WORDS;

/// The lowercased words of `text` (runs of ASCII letters and digits) that
/// are not stop words.
pub fn content_words(text: &str) -> BTreeSet<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty() && !STOP_WORDS.contains(w))
        .map(str::to_string)
        .collect()
}

/// One memory of the data set.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct EvalMemory {
    /// Key the questions refer to, like `rel01`.
    pub id: String,
    pub kind: MemoryKind,
    pub content: String,
}

/// What connects a question to its answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryType {
    /// Only meaning: no word in common with any answer, stop words aside.
    Paraphrase,
    /// An exact name, code or term.
    Keyword,
    /// Natural words with names or terms.
    Mixed,
}

impl QueryType {
    /// Every type, in table order.
    pub const ALL: [QueryType; 3] = [QueryType::Paraphrase, QueryType::Keyword, QueryType::Mixed];

    /// The type's name in the data set and the tables.
    pub fn name(self) -> &'static str {
        match self {
            QueryType::Paraphrase => "paraphrase",
            QueryType::Keyword => "keyword",
            QueryType::Mixed => "mixed",
        }
    }
}

/// One question of the data set.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct EvalQuery {
    pub id: String,
    #[serde(rename = "type")]
    pub query_type: QueryType,
    pub text: String,
    /// Keys of the memories that answer it.
    pub answers: Vec<String>,
}

/// The whole data set.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Dataset {
    pub description: String,
    pub memories: Vec<EvalMemory>,
    pub queries: Vec<EvalQuery>,
}

impl Dataset {
    /// The compiled-in data set ([`DATASET_JSON`]).
    ///
    /// # Errors
    ///
    /// When the JSON does not parse.
    pub fn builtin() -> Result<Dataset> {
        serde_json::from_str(DATASET_JSON).context("data/retrieval_eval.json does not parse")
    }

    /// The memory with key `id`.
    pub fn memory(&self, id: &str) -> Option<&EvalMemory> {
        self.memories.iter().find(|m| m.id == id)
    }
}

/// The share of `relevant` found among the first `k` of `ranked` (0 when
/// nothing is relevant).
pub fn recall_at(ranked: &[String], relevant: &[String], k: usize) -> f64 {
    if relevant.is_empty() {
        return 0.0;
    }
    let relevant: BTreeSet<&String> = relevant.iter().collect();
    let found = ranked
        .iter()
        .take(k)
        .collect::<BTreeSet<_>>()
        .intersection(&relevant)
        .count();
    found as f64 / relevant.len() as f64
}

/// 1 / (position of the first relevant result, counting from 1) within the
/// first `depth` of `ranked`; 0 when none is there.
pub fn reciprocal_rank(ranked: &[String], relevant: &[String], depth: usize) -> f64 {
    ranked
        .iter()
        .take(depth)
        .position(|r| relevant.contains(r))
        .map_or(0.0, |i| 1.0 / (i + 1) as f64)
}

/// Mean recall@[`RECALL_K`] and MRR@[`MRR_DEPTH`] over some questions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Scores {
    pub queries: usize,
    pub recall_at_5: f64,
    pub mrr_at_10: f64,
}

impl Scores {
    /// The means over `(ranked, relevant)` pairs (zeros for none).
    pub fn of<'a>(results: impl IntoIterator<Item = (&'a [String], &'a [String])>) -> Scores {
        let (mut n, mut recall, mut rr) = (0usize, 0f64, 0f64);
        for (ranked, relevant) in results {
            n += 1;
            recall += recall_at(ranked, relevant, RECALL_K);
            rr += reciprocal_rank(ranked, relevant, MRR_DEPTH);
        }
        if n == 0 {
            return Scores::default();
        }
        Scores {
            queries: n,
            recall_at_5: recall / n as f64,
            mrr_at_10: rr / n as f64,
        }
    }
}

/// A ranking the evaluation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EvalMode {
    /// `query` only.
    Fulltext,
    /// `embedding` only.
    Semantic,
    /// `query` and `embedding` with `mode: hybrid`.
    Hybrid,
}

impl EvalMode {
    pub const ALL: [EvalMode; 3] = [EvalMode::Fulltext, EvalMode::Semantic, EvalMode::Hybrid];

    /// The mode's name in the tables.
    pub fn name(self) -> &'static str {
        match self {
            EvalMode::Fulltext => "full-text",
            EvalMode::Semantic => "semantic",
            EvalMode::Hybrid => "hybrid",
        }
    }
}

/// What one mode scored.
#[derive(Debug, Clone, Serialize)]
pub struct ModeReport {
    pub mode: EvalMode,
    /// `None` when the plugin cannot run this mode (hybrid without the
    /// `hybrid` capability).
    pub overall: Option<Scores>,
    /// Per question type.
    pub by_type: BTreeMap<QueryType, Scores>,
    /// Per question id, the memory keys the plugin returned, best first.
    pub ranked: BTreeMap<String, Vec<String>>,
}

impl ModeReport {
    /// Whether the plugin ran this mode.
    pub fn available(&self) -> bool {
        self.overall.is_some()
    }

    /// The scores of one question type (`None` when not available).
    pub fn scores(&self, t: QueryType) -> Option<Scores> {
        self.overall.and(self.by_type.get(&t).copied())
    }
}

/// Everything one evaluation measured.
#[derive(Debug, Clone, Serialize)]
pub struct QualityReport {
    pub embedder: String,
    pub memories: usize,
    pub queries: usize,
    pub queries_by_type: BTreeMap<QueryType, usize>,
    /// Wall time to embed every memory and question.
    pub embed_seconds: f64,
    pub modes: Vec<ModeReport>,
}

impl QualityReport {
    /// The report of `mode`.
    pub fn mode(&self, mode: EvalMode) -> &ModeReport {
        self.modes
            .iter()
            .find(|m| m.mode == mode)
            .expect("every mode is reported")
    }
}

/// The id a memory of the data set is written under: its position, as a
/// UUID (`00000000-0000-4000-8000-000000000001` for the first).
pub fn memory_uuid(position: usize) -> Uuid {
    Uuid::parse_str(&format!("00000000-0000-4000-8000-{:012}", position + 1))
        .expect("a well-formed UUID")
}

/// Loads `dataset` into the plugin behind `client` (namespace
/// [`NAMESPACE`], replaced if it exists), embedding with `embedder`, and
/// scores every question in every mode.
///
/// # Errors
///
/// When the plugin does not advertise `embedding`, its embedding dimension
/// is not the embedder's, or a write or search fails.
pub async fn evaluate(
    client: &Client,
    embedder: &dyn Embedder,
    dataset: &Dataset,
) -> Result<QualityReport> {
    let health = client.health().await.context("the plugin's /v1/health")?;
    ensure!(
        health
            .capabilities
            .iter()
            .any(|c| c == capability::EMBEDDING),
        "the plugin does not advertise `embedding`; semantic search cannot be evaluated"
    );
    let hybrid = health.capabilities.iter().any(|c| c == capability::HYBRID);
    let batch = health.capabilities.iter().any(|c| c == capability::BATCH);

    let started = Instant::now();
    let contents: Vec<String> = dataset.memories.iter().map(|m| m.content.clone()).collect();
    let memory_vectors = embedder.embed(&contents).await?;
    let texts: Vec<String> = dataset.queries.iter().map(|q| q.text.clone()).collect();
    let query_vectors = embedder.embed(&texts).await?;
    let embed_seconds = started.elapsed().as_secs_f64();
    if let Some(v) = memory_vectors.first() {
        if let Some(dim) = health.embedding_dimension {
            ensure!(
                dim == v.len(),
                "the plugin stores {dim}-dimensional embeddings but {} gives {}; \
                 start it with MEMORY_PLUGIN_EMBEDDING_DIM={}",
                embedder.describe(),
                v.len(),
                v.len()
            );
        }
    }

    // A clean namespace: a previous run's memories would count twice.
    match client.delete_namespace(NAMESPACE).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e).context("cannot clear the evaluation namespace"),
    }
    client
        .upsert_namespace(
            NAMESPACE,
            &NamespaceUpsert {
                kind: NamespaceKind::Team,
                expires_at: None,
                metadata: None,
            },
        )
        .await
        .context("cannot create the evaluation namespace")?;

    let mut key_of: HashMap<Uuid, String> = HashMap::new();
    let mut writes = Vec::with_capacity(dataset.memories.len());
    for (i, (memory, vector)) in dataset.memories.iter().zip(memory_vectors).enumerate() {
        let id = memory_uuid(i);
        key_of.insert(id, memory.id.clone());
        let mut write = MemoryWrite::new(memory.content.clone(), memory.kind, MemorySource::Agent);
        write.id = Some(id);
        write.embedding = Some(vector);
        writes.push(write);
    }
    if batch {
        for chunk in writes.chunks(100) {
            let answer = client
                .write_batch(&BatchRequest {
                    writes: chunk
                        .iter()
                        .map(|w| BatchWrite {
                            namespace: NAMESPACE.to_string(),
                            write: w.clone(),
                        })
                        .collect(),
                })
                .await
                .context("a batch write of evaluation memories failed")?;
            for result in answer.results {
                if let BatchItemResult::Err { error } = result {
                    bail!("the plugin refused an evaluation memory: {}", error.message);
                }
            }
        }
    } else {
        for w in &writes {
            client
                .write_memory(NAMESPACE, w)
                .await
                .context("a write of an evaluation memory failed")?;
        }
    }

    let mut modes = Vec::new();
    for mode in EvalMode::ALL {
        if mode == EvalMode::Hybrid && !hybrid {
            modes.push(ModeReport {
                mode,
                overall: None,
                by_type: BTreeMap::new(),
                ranked: BTreeMap::new(),
            });
            continue;
        }
        let mut ranked = BTreeMap::new();
        for (query, vector) in dataset.queries.iter().zip(&query_vectors) {
            let request = search_request(mode, hybrid, &query.text, vector);
            let found = client
                .search(&request)
                .await
                .with_context(|| format!("{} search for {} failed", mode.name(), query.id))?;
            let keys: Vec<String> = found
                .memories
                .iter()
                .map(|m| {
                    key_of
                        .get(&m.id)
                        .cloned()
                        .unwrap_or_else(|| format!("unknown:{}", m.id))
                })
                .collect();
            ranked.insert(query.id.clone(), keys);
        }
        modes.push(score_mode(mode, dataset, ranked));
    }

    let mut queries_by_type = BTreeMap::new();
    for q in &dataset.queries {
        *queries_by_type.entry(q.query_type).or_insert(0) += 1;
    }
    Ok(QualityReport {
        embedder: embedder.describe(),
        memories: dataset.memories.len(),
        queries: dataset.queries.len(),
        queries_by_type,
        embed_seconds,
        modes,
    })
}

/// The search one question makes in `mode`. `mode` is named only when the
/// plugin advertises `hybrid` (a plugin without it may refuse the field).
pub fn search_request(mode: EvalMode, hybrid: bool, text: &str, vector: &[f32]) -> SearchRequest {
    let (query, embedding, rank) = match mode {
        EvalMode::Fulltext => (Some(text.to_string()), None, RankMode::Fulltext),
        EvalMode::Semantic => (None, Some(vector.to_vec()), RankMode::Semantic),
        EvalMode::Hybrid => (
            Some(text.to_string()),
            Some(vector.to_vec()),
            RankMode::Hybrid,
        ),
    };
    SearchRequest {
        namespaces: vec![NAMESPACE.to_string()],
        query,
        kinds: None,
        limit: Some(MRR_DEPTH as i64),
        embedding,
        mode: hybrid.then_some(rank),
    }
}

/// Scores the rankings `ranked` (question id -> memory keys) of one mode.
pub fn score_mode(
    mode: EvalMode,
    dataset: &Dataset,
    ranked: BTreeMap<String, Vec<String>>,
) -> ModeReport {
    let empty = Vec::new();
    let pairs = |filter: Option<QueryType>| {
        dataset
            .queries
            .iter()
            .filter(move |q| filter.is_none_or(|t| q.query_type == t))
            .map(|q| {
                (
                    ranked.get(&q.id).unwrap_or(&empty).as_slice(),
                    q.answers.as_slice(),
                )
            })
    };
    let overall = Scores::of(pairs(None));
    let by_type = QueryType::ALL
        .iter()
        .map(|&t| (t, Scores::of(pairs(Some(t)))))
        .collect();
    ModeReport {
        mode,
        overall: Some(overall),
        by_type,
        ranked,
    }
}

/// The results as a Markdown table: one row per mode, recall@5 and MRR@10
/// over all questions and per question type.
pub fn render_markdown(report: &QualityReport) -> String {
    let mut out = String::new();
    let count = |t: QueryType| report.queries_by_type.get(&t).copied().unwrap_or(0);
    out.push_str(&format!(
        "| mode | recall@5 all ({}) | MRR@10 all | recall@5 paraphrase ({}) | MRR@10 paraphrase | recall@5 keyword ({}) | MRR@10 keyword | recall@5 mixed ({}) | MRR@10 mixed |\n",
        report.queries,
        count(QueryType::Paraphrase),
        count(QueryType::Keyword),
        count(QueryType::Mixed)
    ));
    out.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for m in &report.modes {
        out.push_str(&format!("| {} ", m.mode.name()));
        match m.overall {
            None => out.push_str(
                "| not available (the plugin does not advertise `hybrid`) | | | | | | | |\n",
            ),
            Some(all) => {
                out.push_str(&format!("| {:.3} | {:.3} ", all.recall_at_5, all.mrr_at_10));
                for t in QueryType::ALL {
                    let s = m.by_type.get(&t).copied().unwrap_or_default();
                    out.push_str(&format!("| {:.3} | {:.3} ", s.recall_at_5, s.mrr_at_10));
                }
                out.push_str("|\n");
            }
        }
    }
    out
}

/// Runs the sections `--quality` and `--embedding` ask for, instead of the
/// rest of the benchmark (neither needs Postgres). `--quality` first builds
/// `memory-plugin` (release) unless `--no-build` or `--bin-dir` is given.
///
/// # Errors
///
/// When a section fails.
pub async fn run_sections(plan: &crate::options::Plan) -> Result<()> {
    if plan.quality {
        if plan.build && plan.bin_dir.is_none() {
            crate::run::build_release(&["memory-plugin"])?;
        }
        let dir = match &plan.bin_dir {
            Some(d) => d.clone(),
            None => std::env::current_exe()
                .context("cannot find this executable's path")?
                .parent()
                .map(std::path::Path::to_path_buf)
                .context("this executable has no parent directory")?,
        };
        let binary = dir.join("memory-plugin");
        ensure!(
            binary.is_file(),
            "{} not found; build it with `cargo build --release -p memory-plugin` or pass --bin-dir",
            binary.display()
        );
        run_section(&binary, plan.embed_threads).await?;
    }
    if plan.embedding {
        let (singles, batches) = if plan.quick { (50, 2) } else { (200, 8) };
        crate::embedding::run_section(plan.embed_threads, singles, batches).await?;
        crate::gateway::embedding_recall_section(plan).await?;
    }
    Ok(())
}

/// The `--quality` section: starts the `memory-plugin` binary on a SQLite
/// file in a temporary directory with `MEMORY_PLUGIN_EMBEDDING_DIM=384`,
/// evaluates the built-in data set with the local model through the real
/// client, prints the table on stdout and stops the plugin.
///
/// # Errors
///
/// When the model or the plugin cannot start, or the evaluation fails.
pub async fn run_section(
    plugin_binary: &std::path::Path,
    embed_threads: Option<usize>,
) -> Result<()> {
    let dataset = Dataset::builtin()?;
    crate::progress("retrieval quality: loading all-MiniLM-L6-v2");
    let (embedder, _) =
        tokio::task::spawn_blocking(move || crate::embedding::load_local(embed_threads))
            .await
            .context("loading the model panicked")??;
    let dir = std::env::temp_dir().join(format!("memory-bench-quality-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let result = async {
        let plugin = crate::plugin::PluginProcess::start(
            "plugin-quality",
            plugin_binary,
            &format!("sqlite:{}", dir.join("quality.db").display()),
            &[(
                "MEMORY_PLUGIN_EMBEDDING_DIM",
                memory_embed::MINILM_DIMENSION.to_string(),
            )],
            &dir,
        )
        .await?;
        let client = Client::new(
            memory_client::ClientConfig::new(plugin.base_url())
                .timeout(std::time::Duration::from_secs(60)),
        )?;
        crate::progress(&format!(
            "retrieval quality: {} memories, {} questions, plugin at {}",
            dataset.memories.len(),
            dataset.queries.len(),
            plugin.base_url()
        ));
        let report = evaluate(&client, &embedder, &dataset).await;
        plugin.stop().await;
        report
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    let report = result?;
    println!("\n## Retrieval quality\n");
    println!(
        "{} memories, {} questions; embeddings by {} ({:.1} s for all memories and questions); \
         plugin on SQLite. recall@{RECALL_K}: share of a question's answers among the first {RECALL_K} results; \
         MRR@{MRR_DEPTH}: mean of 1/rank of the first answer within the first {MRR_DEPTH} results (0 if none).\n",
        report.memories, report.queries, report.embedder, report.embed_seconds
    );
    print!("{}", render_markdown(&report));
    let dataset = Dataset::builtin()?;
    for line in misses(&report, &dataset) {
        println!("- {line}");
    }
    Ok(())
}

/// One line per available mode naming the questions with no answer among
/// the first [`RECALL_K`] results.
pub fn misses(report: &QualityReport, dataset: &Dataset) -> Vec<String> {
    report
        .modes
        .iter()
        .filter(|m| m.available())
        .map(|m| {
            let missed: Vec<&str> = dataset
                .queries
                .iter()
                .filter(|q| {
                    let ranked = m.ranked.get(&q.id).map_or(&[][..], Vec::as_slice);
                    recall_at(ranked, &q.answers, RECALL_K) == 0.0
                })
                .map(|q| q.id.as_str())
                .collect();
            format!(
                "{}: {} questions without an answer in the top {RECALL_K}: {}",
                m.mode.name(),
                missed.len(),
                if missed.is_empty() {
                    "none".to_string()
                } else {
                    missed.join(" ")
                }
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn recall_counts_answers_in_the_first_five_only() {
        let ranked = strings(&["a", "b", "c", "d", "e", "f"]);
        assert_eq!(recall_at(&ranked, &strings(&["b", "f"]), 5), 0.5);
        assert_eq!(recall_at(&ranked, &strings(&["e"]), 5), 1.0);
        assert_eq!(recall_at(&ranked, &strings(&["z"]), 5), 0.0);
        assert_eq!(recall_at(&[], &strings(&["a"]), 5), 0.0);
    }

    #[test]
    fn reciprocal_rank_uses_the_first_answer_within_the_depth() {
        let ranked = strings(&["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"]);
        assert_eq!(reciprocal_rank(&ranked, &strings(&["a"]), 10), 1.0);
        assert_eq!(reciprocal_rank(&ranked, &strings(&["d", "b"]), 10), 0.5);
        assert_eq!(reciprocal_rank(&ranked, &strings(&["j"]), 10), 0.1);
        assert_eq!(reciprocal_rank(&ranked, &strings(&["k"]), 10), 0.0);
    }

    #[test]
    fn content_words_drop_case_punctuation_and_stop_words() {
        let words = content_words("What did WE decide about the v2 release-date?");
        assert_eq!(
            words.into_iter().collect::<Vec<_>>(),
            ["date", "decide", "release", "v2"]
        );
    }

    #[test]
    fn memory_uuids_are_distinct_and_valid() {
        assert_eq!(
            memory_uuid(0).to_string(),
            "00000000-0000-4000-8000-000000000001"
        );
        assert_ne!(memory_uuid(9), memory_uuid(10));
    }
}
