//! The retrieval evaluation of `memory-bench --quality`: the data set's
//! integrity, the metrics on a hand-made case, and a whole evaluation
//! through a real plugin (SQLite file, real HTTP, the real client, the real
//! all-MiniLM-L6-v2 model).

use memory_bench::quality::{
    content_words, evaluate, reciprocal_rank, render_markdown, score_mode, Dataset, EvalMemory,
    EvalMode, EvalQuery, QueryType, MRR_DEPTH, RECALL_K,
};
use memory_contract::MemoryKind;
use memory_embed::{LocalConfig, LocalEmbedder, MINILM_DIMENSION};
use memory_plugin::server::{spawn, ServerConfig};
use memory_plugin::store::sqlite::{SqliteOptions, SqliteStore};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

fn data_file(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `|`-separated records of a source file of the data set.
fn records(text: &str, fields: usize) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.splitn(fields, '|').map(str::to_string).collect())
        .collect()
}

#[test]
fn the_dataset_is_complete_consistent_and_its_paraphrases_share_no_word() {
    let d = Dataset::builtin().expect("retrieval_eval.json parses");
    assert!(d.memories.len() >= 300, "{} memories", d.memories.len());
    assert!(d.queries.len() >= 100, "{} queries", d.queries.len());

    let ids: BTreeSet<&str> = d.memories.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), d.memories.len(), "memory ids repeat");
    let qids: BTreeSet<&str> = d.queries.iter().map(|q| q.id.as_str()).collect();
    assert_eq!(qids.len(), d.queries.len(), "query ids repeat");
    let contents: BTreeSet<&str> = d.memories.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents.len(), d.memories.len(), "memory texts repeat");
    for m in &d.memories {
        let words = m.content.split_whitespace().count();
        assert!(
            (5..=60).contains(&words),
            "{}: {words} words is not a short memory",
            m.id
        );
    }

    let mut per_type = BTreeMap::new();
    for q in &d.queries {
        *per_type.entry(q.query_type).or_insert(0) += 1;
        assert!(!q.answers.is_empty(), "{} has no answer", q.id);
        for a in &q.answers {
            let memory = d
                .memory(a)
                .unwrap_or_else(|| panic!("{} names unknown memory {a}", q.id));
            if q.query_type == QueryType::Paraphrase {
                let shared: Vec<String> = content_words(&q.text)
                    .intersection(&content_words(&memory.content))
                    .cloned()
                    .collect();
                assert!(
                    shared.is_empty(),
                    "paraphrase {} shares {shared:?} with {a}",
                    q.id
                );
            }
        }
    }
    assert!(per_type[&QueryType::Paraphrase] >= 50, "{per_type:?}");
    assert!(per_type[&QueryType::Keyword] >= 25, "{per_type:?}");
    assert!(per_type[&QueryType::Mixed] >= 10, "{per_type:?}");
    // Every kind of memory occurs.
    let kinds: BTreeSet<&str> = d.memories.iter().map(|m| m.kind.as_str()).collect();
    assert_eq!(kinds.len(), MemoryKind::ALL.len(), "{kinds:?}");
}

#[test]
fn the_json_is_generated_from_the_current_source_files() {
    let d = Dataset::builtin().unwrap();
    let memories = records(&data_file("memories.txt"), 3);
    assert_eq!(
        memories.len(),
        d.memories.len(),
        "rerun make_retrieval_eval.py"
    );
    for (record, m) in memories.iter().zip(&d.memories) {
        assert_eq!(
            (record[0].as_str(), record[1].as_str(), record[2].as_str()),
            (m.id.as_str(), m.kind.as_str(), m.content.as_str()),
            "memories.txt and retrieval_eval.json differ; rerun make_retrieval_eval.py"
        );
    }
    let queries = records(&data_file("queries.txt"), 4);
    assert_eq!(
        queries.len(),
        d.queries.len(),
        "rerun make_retrieval_eval.py"
    );
    for (record, q) in queries.iter().zip(&d.queries) {
        assert_eq!(
            (
                record[0].as_str(),
                record[1].as_str(),
                record[2].as_str(),
                record[3].as_str()
            ),
            (
                q.id.as_str(),
                q.query_type.name(),
                q.answers.join(",").as_str(),
                q.text.as_str()
            ),
            "queries.txt and retrieval_eval.json differ; rerun make_retrieval_eval.py"
        );
    }
}

fn memory(id: &str) -> EvalMemory {
    EvalMemory {
        id: id.into(),
        kind: MemoryKind::Fact,
        content: format!("memory {id}"),
    }
}

fn query(id: &str, t: QueryType, answers: &[&str]) -> EvalQuery {
    EvalQuery {
        id: id.into(),
        query_type: t,
        text: format!("question {id}"),
        answers: answers.iter().map(|a| a.to_string()).collect(),
    }
}

fn ranking(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

#[test]
fn recall_and_mrr_on_a_hand_made_case() {
    assert_eq!((RECALL_K, MRR_DEPTH), (5, 10));
    let dataset = Dataset {
        description: "tiny".into(),
        memories: ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"]
            .iter()
            .map(|id| memory(id))
            .collect(),
        queries: vec![
            // Both answers in the top 5, the first at rank 2.
            query("q1", QueryType::Paraphrase, &["b", "c"]),
            // One of two answers in the top 5 (rank 4), the other at rank 6.
            query("q2", QueryType::Paraphrase, &["d", "f"]),
            // The only answer at rank 7: no recall@5, MRR 1/7.
            query("q3", QueryType::Keyword, &["g"]),
            // Answer at rank 11: outside both cut-offs.
            query("q4", QueryType::Keyword, &["k"]),
            // Not searched at all: counts as nothing found.
            query("q5", QueryType::Mixed, &["a"]),
        ],
    };
    let order = ranking(&["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"]);
    let mut ranked = BTreeMap::new();
    for q in ["q1", "q2", "q3", "q4"] {
        ranked.insert(q.to_string(), order.clone());
    }
    let report = score_mode(EvalMode::Semantic, &dataset, ranked);
    let all = report.overall.unwrap();
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    assert_eq!(all.queries, 5);
    // recall@5: 1, 0.5, 0, 0, 0 -> 1.5 / 5.
    assert!(close(all.recall_at_5, 0.3), "{all:?}");
    // MRR@10: 1/2, 1/4, 1/7, 0, 0.
    assert!(
        close(all.mrr_at_10, (0.5 + 0.25 + 1.0 / 7.0) / 5.0),
        "{all:?}"
    );
    let para = report.scores(QueryType::Paraphrase).unwrap();
    assert_eq!(para.queries, 2);
    assert!(
        close(para.recall_at_5, 0.75) && close(para.mrr_at_10, 0.375),
        "{para:?}"
    );
    let kw = report.scores(QueryType::Keyword).unwrap();
    assert!(
        close(kw.recall_at_5, 0.0) && close(kw.mrr_at_10, 1.0 / 14.0),
        "{kw:?}"
    );
    let mixed = report.scores(QueryType::Mixed).unwrap();
    assert!(
        close(mixed.recall_at_5, 0.0) && close(mixed.mrr_at_10, 0.0),
        "{mixed:?}"
    );
    // Questions with nothing in the top 5 are named per mode.
    let full = memory_bench::quality::QualityReport {
        embedder: "none".into(),
        memories: dataset.memories.len(),
        queries: dataset.queries.len(),
        queries_by_type: BTreeMap::new(),
        embed_seconds: 0.0,
        modes: vec![report],
    };
    assert_eq!(
        memory_bench::quality::misses(&full, &dataset),
        ["semantic: 3 questions without an answer in the top 5: q3 q4 q5"]
    );
    // A relevant key listed twice counts once.
    assert!(close(
        reciprocal_rank(&ranking(&["x", "y", "y"]), &ranking(&["y"]), 10),
        0.5
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semantic_beats_full_text_on_paraphrases_through_a_real_plugin() {
    let dataset = Dataset::builtin().unwrap();
    let model_dir = memory_testkit::minilm_model_dir();
    let embedder = tokio::task::spawn_blocking(move || {
        LocalEmbedder::load(&LocalConfig::with_dir(model_dir)).expect("the model loads")
    })
    .await
    .unwrap();

    let file =
        std::env::temp_dir().join(format!("memory-bench-quality-{}.db", uuid::Uuid::new_v4()));
    let store = SqliteStore::open(
        &format!("sqlite:{}", file.display()),
        SqliteOptions {
            embedding_dim: MINILM_DIMENSION,
        },
    )
    .await
    .expect("a SQLite store in a temp file");
    let server = spawn(Arc::new(store), ServerConfig::default())
        .await
        .expect("the plugin binds a port");
    let client = memory_client::Client::new(
        memory_client::ClientConfig::new(server.url()).timeout(std::time::Duration::from_secs(60)),
    )
    .unwrap();

    let report = evaluate(&client, &embedder, &dataset)
        .await
        .expect("the evaluation runs");
    let _ = server.shutdown().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
    println!("{}", render_markdown(&report));

    assert_eq!(report.memories, dataset.memories.len());
    let fulltext = report.mode(EvalMode::Fulltext);
    let semantic = report.mode(EvalMode::Semantic);
    // Every question got an answer list from the plugin in both modes.
    assert_eq!(fulltext.ranked.len(), dataset.queries.len());
    assert_eq!(semantic.ranked.len(), dataset.queries.len());
    assert!(
        semantic.ranked.values().all(|r| r.len() == MRR_DEPTH),
        "semantic search returns the top {MRR_DEPTH} of 300"
    );

    let ft_para = fulltext.scores(QueryType::Paraphrase).unwrap();
    let sem_para = semantic.scores(QueryType::Paraphrase).unwrap();
    assert!(
        sem_para.recall_at_5 > ft_para.recall_at_5 && sem_para.mrr_at_10 > ft_para.mrr_at_10,
        "paraphrases: semantic {sem_para:?} vs full-text {ft_para:?}"
    );
    // Full-text finds exact codes and names: that is what it is for.
    let ft_kw = fulltext.scores(QueryType::Keyword).unwrap();
    assert!(ft_kw.recall_at_5 >= 0.9, "keywords by full-text: {ft_kw:?}");

    let hybrid = report.mode(EvalMode::Hybrid);
    if let Some(h) = hybrid.overall {
        let (ft, sem) = (fulltext.overall.unwrap(), semantic.overall.unwrap());
        assert!(
            h.recall_at_5 >= ft.recall_at_5 && h.recall_at_5 >= sem.recall_at_5,
            "hybrid {h:?} vs full-text {ft:?} and semantic {sem:?}"
        );
    } else {
        println!("hybrid: not available (the plugin does not advertise `hybrid`)");
    }
}

#[test]
fn the_quality_and_embedding_flags_select_their_sections() {
    use clap::Parser;
    let plan = memory_bench::options::Options::try_parse_from([
        "memory-bench",
        "--quality",
        "--embedding",
        "--embed-threads",
        "1",
    ])
    .unwrap()
    .into_plan()
    .unwrap();
    assert!(plan.quality && plan.embedding);
    assert_eq!(plan.embed_threads, Some(1));
    let plan = memory_bench::options::Options::try_parse_from(["memory-bench"])
        .unwrap()
        .into_plan()
        .unwrap();
    assert!(!plan.quality && !plan.embedding && plan.embed_threads.is_none());
}

#[test]
fn an_embedding_speed_measurement_reports_consistent_figures() {
    use memory_bench::embedding::{measure, render_markdown, BATCH_SIZE};
    let dir = memory_testkit::minilm_model_dir();
    let embedder = LocalEmbedder::load(&LocalConfig::with_dir(dir)).unwrap();
    let speed = measure(&embedder, 2, std::time::Duration::from_millis(5), 4, 1).unwrap();
    // 50 words of English prose are 50-100 WordPiece tokens with [CLS] and [SEP].
    assert!((50..=100).contains(&speed.tokens_per_memory), "{speed:?}");
    assert_eq!((speed.single_calls, speed.batches), (4, 1));
    assert!(speed.single_p50_ms > 0.0 && speed.single_p50_ms <= speed.single_p99_ms);
    assert!(speed.single_p99_ms <= speed.single_max_ms);
    // One batch: its time and the throughput describe the same run.
    let implied = BATCH_SIZE as f64 / (speed.batch_p50_ms / 1000.0);
    assert!(
        (implied - speed.batch_per_second).abs() / implied < 0.05,
        "{speed:?}"
    );
    let table = render_markdown(&speed);
    assert!(
        table.contains("p50") && table.contains("memories/s"),
        "{table}"
    );
}
