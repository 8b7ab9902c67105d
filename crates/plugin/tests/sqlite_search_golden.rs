//! Golden test of SQLite search: a fixed corpus, a fixed list of searches,
//! and the answers (ids in order, scores rounded to 9 significant digits) recorded in
//! `tests/golden/sqlite_search.json`. Any change to how the store finds or
//! ranks memories shows up here as a difference.
//!
//! The corpus (a few hundred memories in several namespaces, built from a
//! fixed seed) is written through single writes and batches, then partly
//! rewritten, forgotten and cascaded away, so the full-text index has seen
//! every kind of change. Memories in namespaces no search names still count
//! in full-text ranking (term rarity is a property of the whole table).
//!
//! To record the answers again (only when a change of results is intended):
//!
//! ```text
//! UPDATE_GOLDEN=1 cargo test -p memory-plugin --test sqlite_search_golden
//! ```

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::rng::Rng;
use memory_contract::{
    BatchWrite, MemoryKind, MemorySource, MemoryWrite, NamespaceKind, NamespaceUpsert,
};
use memory_plugin::store::sqlite::{SqliteOptions, SqliteStore};
use memory_plugin::store::{SearchQuery, Store};
use memory_testkit::TempDir;
use serde_json::{json, Value};
use std::path::Path;

const GOLDEN: &str = "tests/golden/sqlite_search.json";

/// Namespaces of the corpus and how many memories each receives.
const NAMESPACES: &[(&str, usize)] = &[
    ("workspace:w1", 60),
    ("workspace:w2", 40),
    ("team:t1", 50),
    ("org:o1", 30),
    ("custom:big", 160),
    ("custom:noise", 120),
    ("custom:doomed", 20),
];

/// Words of the corpus, most frequent first (the pick is skewed towards the
/// start), with stop words, stems, non-ASCII and punctuated words among them.
const WORDS: &[&str] = &[
    "the",
    "deploy",
    "database",
    "and",
    "customer",
    "latency",
    "incident",
    "deployed",
    "rollback",
    "of",
    "migration",
    "invoice",
    "deploying",
    "backup",
    "restore",
    "cluster",
    "kubernetes",
    "meeting",
    "decision",
    "queue",
    "consumer",
    "to",
    "certificate",
    "expiry",
    "deployment",
    "zürich",
    "café",
    "東京",
    "v2",
    "O'Brien",
    "e-mail",
    "50%",
    "under_score",
    "giraffe",
];

impl Rng {
    /// A word, skewed towards the start of [`WORDS`].
    fn word(&mut self) -> &'static str {
        let u = self.unit();
        WORDS[((u * u) * WORDS.len() as f64) as usize]
    }

    fn text(&mut self) -> String {
        let n = 1 + self.below(24);
        (0..n).map(|_| self.word()).collect::<Vec<_>>().join(" ")
    }
}

fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap()
}

/// The memories of the corpus, in write order, with their namespaces.
fn corpus() -> Vec<BatchWrite> {
    let mut rng = Rng(0x601d);
    let mut out: Vec<BatchWrite> = Vec::new();
    let kinds = [
        MemoryKind::Fact,
        MemoryKind::Summary,
        MemoryKind::Checkpoint,
    ];
    let mut i = 0usize;
    // Interleave the namespaces, as real traffic does.
    let mut left: Vec<(&str, usize)> = NAMESPACES.to_vec();
    while left.iter().any(|(_, n)| *n > 0) {
        for (ns, n) in left.iter_mut() {
            if *n == 0 {
                continue;
            }
            *n -= 1;
            // Every 13th memory repeats the previous text, so equal scores
            // are ordered by pin, then age, then write order.
            let content = match out.last() {
                Some(prev) if i.is_multiple_of(13) => prev.write.content.clone(),
                _ => rng.text(),
            };
            let mut write = MemoryWrite::new(content, kinds[rng.below(3)], MemorySource::Agent);
            write.id = Some(rng.uuid());
            write.pin = Some(i.is_multiple_of(11));
            // Ages repeat every 40 memories: ties in age are common too.
            write.created_at = Some(base_time() - Duration::hours((i % 40) as i64));
            if i.is_multiple_of(17) {
                write.expires_at = Some(base_time() + Duration::days(36500));
            }
            out.push(BatchWrite {
                namespace: ns.to_string(),
                write,
            });
            i += 1;
        }
    }
    out
}

/// Writes the corpus: the first half one by one, the rest in batches; then
/// rewrites some memories, forgets others and deletes a namespace.
async fn load(store: &dyn Store) {
    for (ns, _) in NAMESPACES {
        let kind = match ns.split(':').next() {
            Some("workspace") => NamespaceKind::Workspace,
            Some("team") => NamespaceKind::Team,
            Some("org") => NamespaceKind::Org,
            _ => NamespaceKind::Custom,
        };
        store
            .upsert_namespace(
                ns,
                &NamespaceUpsert {
                    kind,
                    expires_at: None,
                    metadata: None,
                },
            )
            .await
            .expect("create namespace");
    }
    let all = corpus();
    let (single, batched) = all.split_at(all.len() / 2);
    for item in single {
        store
            .write_memory(&item.namespace, &item.write)
            .await
            .expect("write");
    }
    for chunk in batched.chunks(64) {
        for result in store.write_batch(chunk).await.expect("batch") {
            result.expect("batch item");
        }
    }
    // Rewrites: same id, new text (the index drops the old words).
    let mut rng = Rng(0xed17);
    for item in all.iter().step_by(9) {
        let mut write = item.write.clone();
        write.content = rng.text();
        store
            .write_memory(&item.namespace, &write)
            .await
            .expect("rewrite");
    }
    // Forgets.
    for item in all.iter().skip(4).step_by(15) {
        if item.namespace == "custom:doomed" {
            continue;
        }
        let id = item.write.id.expect("corpus ids are set");
        // A memory may already be gone if the corpus repeats; ignore that.
        let _ = store.forget(id, &item.namespace).await;
    }
    store
        .delete_namespace("custom:doomed")
        .await
        .expect("delete namespace");
}

fn request(namespaces: &[&str], query: Option<&str>, kinds: &[MemoryKind], limit: u32) -> Value {
    json!({
        "namespaces": namespaces,
        "query": query,
        "kinds": kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        "limit": limit,
    })
}

/// The searches, as JSON so that the golden file shows each one.
fn searches() -> Vec<(&'static str, Value)> {
    use MemoryKind::{Checkpoint, Fact, Summary};
    let three = ["workspace:w1", "team:t1", "org:o1"];
    let every = [
        "workspace:w1",
        "workspace:w2",
        "team:t1",
        "org:o1",
        "custom:big",
        "custom:noise",
    ];
    vec![
        (
            "one common word, three namespaces",
            request(&three, Some("deploy"), &[], 20),
        ),
        (
            "two words, three namespaces",
            request(&three, Some("database latency"), &[], 20),
        ),
        ("stems meet", request(&three, Some("deploying"), &[], 100)),
        (
            "stems meet, other form",
            request(&three, Some("deployments"), &[], 100),
        ),
        ("rare word", request(&three, Some("giraffe"), &[], 20)),
        (
            "rare and common",
            request(&every, Some("giraffe deploy"), &[], 20),
        ),
        (
            "three words",
            request(&every, Some("customer invoice backup"), &[], 20),
        ),
        (
            "same word twice",
            request(&three, Some("incident incident"), &[], 20),
        ),
        ("upper case", request(&three, Some("DATABASE"), &[], 20)),
        (
            "stop words dropped",
            request(&three, Some("the rollback of the cluster"), &[], 20),
        ),
        ("only stop words", request(&every, Some("the and"), &[], 20)),
        (
            "no match",
            request(&every, Some("nonexistentword"), &[], 20),
        ),
        (
            "FTS syntax is text",
            request(&every, Some("deploy OR \"rollback\" NEAR(x) *"), &[], 20),
        ),
        (
            "column filter syntax is text",
            request(&every, Some("content: deploy"), &[], 20),
        ),
        (
            "punctuation only",
            request(&every, Some("-- () *"), &[], 20),
        ),
        ("non-ASCII", request(&every, Some("zürich café"), &[], 20)),
        ("CJK", request(&every, Some("東京"), &[], 20)),
        (
            "diacritics folded",
            request(&every, Some("zurich"), &[], 20),
        ),
        (
            "apostrophe and hyphen",
            request(&every, Some("O'Brien e-mail"), &[], 20),
        ),
        ("digits", request(&every, Some("v2 50%"), &[], 20)),
        ("underscore", request(&every, Some("under_score"), &[], 20)),
        (
            "one namespace",
            request(&["custom:big"], Some("latency"), &[], 100),
        ),
        (
            "every namespace, many results",
            request(&every, Some("customer"), &[], 100),
        ),
        ("limit 1", request(&every, Some("latency"), &[], 1)),
        ("limit 5", request(&three, Some("database"), &[], 5)),
        (
            "kinds filter",
            request(&every, Some("incident"), &[Fact, Summary], 30),
        ),
        (
            "one kind",
            request(&every, Some("restore"), &[Checkpoint], 30),
        ),
        (
            "absent namespace beside present ones",
            request(
                &["workspace:w2", "team:none", "custom:doomed"],
                Some("customer"),
                &[],
                20,
            ),
        ),
        (
            "only an absent namespace",
            request(&["custom:doomed"], Some("customer"), &[], 20),
        ),
        (
            "repeated texts tie",
            request(&every, Some("kubernetes meeting"), &[], 50),
        ),
        ("recent, three namespaces", request(&three, None, &[], 20)),
        ("recent with kinds", request(&every, None, &[Summary], 20)),
        ("substring", request(&three, Some("k"), &[], 20)),
        ("substring non-ASCII", request(&every, Some("ü"), &[], 20)),
        ("substring percent", request(&every, Some("%"), &[], 20)),
    ]
}

fn to_query(request: &Value) -> SearchQuery {
    let strings = |key: &str| -> Vec<String> {
        request[key]
            .as_array()
            .expect("array")
            .iter()
            .map(|v| v.as_str().expect("string").to_string())
            .collect()
    };
    SearchQuery {
        namespaces: strings("namespaces"),
        query: request["query"].as_str().map(str::to_string),
        kinds: strings("kinds")
            .iter()
            .map(|k| k.parse().expect("kind"))
            .collect(),
        limit: request["limit"].as_u64().expect("limit") as u32,
        embedding: None,
    }
}

/// A score rounded to 9 significant digits: as exact as the golden file
/// needs, and free of the last bits a different C library could change.
/// (Scores of words in more than half the memories are tiny, around 1e-6,
/// so a fixed number of decimals would hide their differences.)
fn round_score(score: f64) -> f64 {
    format!("{score:.8e}")
        .parse()
        .expect("a formatted f64 parses")
}

/// Every search's answer: ids in order, scores rounded by [`round_score`].
async fn answers(store: &dyn Store) -> Value {
    let mut out = Vec::new();
    for (name, request) in searches() {
        let found = store
            .search(&to_query(&request))
            .await
            .unwrap_or_else(|e| panic!("search {name:?} failed: {e}"));
        let results: Vec<Value> = found
            .iter()
            .map(|m| {
                json!({
                    "id": m.id,
                    "score": m.score.map(round_score),
                })
            })
            .collect();
        out.push(json!({ "name": name, "request": request, "results": results }));
    }
    json!({ "searches": out })
}

fn options() -> SqliteOptions {
    SqliteOptions { embedding_dim: 4 }
}

/// Compares `got` with the golden file, search by search, or rewrites the
/// file when `UPDATE_GOLDEN=1`.
fn check(got: &Value, label: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("golden dir");
        let text = serde_json::to_string_pretty(got).expect("json") + "\n";
        std::fs::write(&path, text).expect("write golden file");
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; record it with UPDATE_GOLDEN=1",
            path.display()
        )
    });
    let want: Value = serde_json::from_str(&text).expect("golden file is JSON");
    let want = want["searches"].as_array().expect("searches");
    let got = got["searches"].as_array().expect("searches");
    assert_eq!(
        want.len(),
        got.len(),
        "{label}: the golden file has {} searches, the test {}",
        want.len(),
        got.len()
    );
    let mut differences = Vec::new();
    for (w, g) in want.iter().zip(got) {
        if w != g {
            differences.push(format!(
                "search {}:\n  want {}\n  got  {}",
                w["name"], w["results"], g["results"]
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{label}: {} of {} searches differ from {GOLDEN}:\n{}",
        differences.len(),
        want.len(),
        differences.join("\n")
    );
}

#[tokio::test]
async fn file_store_answers_as_recorded() {
    let dir = TempDir::new("sqlite-golden");
    let url = dir.sqlite_url("golden.db");
    let store = SqliteStore::open(&url, options()).await.expect("open");
    load(&store).await;
    check(&answers(&store).await, "file database");
    store.close().await;
}

#[tokio::test]
async fn in_memory_store_answers_as_recorded() {
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        // The file test records; two writers of one file would race.
        return;
    }
    let store = SqliteStore::open("sqlite::memory:", options())
        .await
        .expect("open");
    load(&store).await;
    check(&answers(&store).await, "in-memory database");
}

#[tokio::test]
async fn corpus_is_what_the_golden_file_was_recorded_from() {
    // The answers name ids; a changed corpus would make every search
    // differ. This pins the corpus itself, so that such a failure says so.
    let all = corpus();
    assert_eq!(all.len(), 480);
    let digest = all.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, item| {
        item.write
            .content
            .bytes()
            .chain(item.namespace.bytes())
            .fold(h, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    });
    assert_eq!(digest, 6_130_860_059_162_147_443, "corpus digest");
}
