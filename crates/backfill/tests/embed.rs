//! `-apply -embed`: rows copied from a legacy PostgreSQL 15 table (which has
//! no embedding column) into our plugin on a SQLite file keeping
//! 384-dimension embeddings, embedded on the way by the real
//! all-MiniLM-L6-v2 model; and the refusals that come before any write.

mod common;

use common::*;
use memory_backfill::embedding::{self, EmbedSetup};
use memory_backfill::report::ApplyReport;
use memory_backfill::runner::{self, FatalError, RunReport};
use memory_client::{Client, ClientConfig};
use memory_contract::{Memory, SearchRequest};
use memory_plugin::server::SpawnedServer;
use memory_plugin::store::OpenOptions;
use std::collections::BTreeMap;
use std::path::PathBuf;
use uuid::Uuid;

/// The row a paraphrase must find.
const DEPLOY: &str =
    "The deployment pipeline failed because the database migration timed out after ten minutes";
const PARAPHRASE: &str = "why did the release break? the schema change took too long to run";

/// Contents on unrelated subjects, so the paraphrase has something to beat.
const OTHERS: [&str; 11] = [
    "The customer prefers invoices in euros and wants them on the first of the month",
    "Alice is the on-call engineer for the payments team this week",
    "Our office plants need watering every Tuesday and Friday",
    "The marketing site uses a dark theme with a teal accent colour",
    "Bob likes his coffee black with no sugar",
    "Quarterly planning happens in the second week of January",
    "The cat sleeps on the warm laptop whenever it is left open",
    "Holiday requests must be sent two weeks in advance",
    "The Berlin office moved to a new building near the river",
    "Weekly reports go to the leadership channel on Fridays",
    "Passwords must be rotated every ninety days",
];

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Our plugin on a fresh SQLite file keeping `dim`-dimension embeddings
/// (what MEMORY_PLUGIN_EMBEDDING_DIM sets), served over HTTP.
struct SqlitePlugin {
    server: SpawnedServer,
    _dir: TempDir,
}

impl SqlitePlugin {
    async fn start(dim: usize) -> SqlitePlugin {
        let dir = std::env::temp_dir().join(format!("memory-backfill-embed-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let url = format!("sqlite:{}", dir.join("plugin.db").display());
        let options = OpenOptions {
            embedding_dim: dim,
            ..OpenOptions::default()
        };
        let store = memory_plugin::store::open(Some(&url), &options)
            .await
            .expect("sqlite store");
        let server = memory_plugin::server::spawn(store, Default::default())
            .await
            .expect("plugin server");
        SqlitePlugin {
            server,
            _dir: TempDir(dir),
        }
    }

    fn url(&self) -> &str {
        self.server.url()
    }

    fn client(&self) -> Client {
        Client::new(ClientConfig::new(self.server.url())).expect("client")
    }

    /// Every memory outside the checkpoint namespace, with its embedding.
    async fn memories(&self) -> BTreeMap<Uuid, Memory> {
        scan_with_embeddings(&self.client())
            .await
            .into_iter()
            .filter(|m| m.namespace != "custom:memory-backfill")
            .map(|m| (m.id, m))
            .collect()
    }
}

async fn minilm() -> EmbedSetup {
    EmbedSetup::local(memory_testkit::minilm_model_dir())
        .await
        .expect("the model loads")
}

async fn embed_one(setup: &EmbedSetup, text: &str) -> Vec<f32> {
    setup
        .embedder
        .embed(&[text.to_string()])
        .await
        .expect("embed")
        .remove(0)
}

/// A legacy table of one workspace: [`DEPLOY`], [`OTHERS`], and `filler`
/// numbered rows.
async fn legacy_rows(filler: i64) -> (Legacy, Uuid, Uuid) {
    let legacy = Legacy::new().await;
    let ws = Uuid::new_v4();
    legacy.workspace(ws, None, None).await;
    let deploy = Uuid::new_v4();
    legacy
        .memory(deploy, Some(ws), Some("LOCAL"), Some(DEPLOY))
        .await;
    for content in OTHERS {
        legacy
            .memory(Uuid::new_v4(), Some(ws), Some("LOCAL"), Some(content))
            .await;
    }
    if filler > 0 {
        legacy.bulk_local(ws, filler, "filler").await;
    }
    (legacy, ws, deploy)
}

async fn run_embed(
    legacy: &Legacy,
    target: &SqlitePlugin,
    setup: Option<&EmbedSetup>,
    args: &[&str],
) -> Result<RunReport, FatalError> {
    let schema = legacy.schema().await;
    let plugin = connect_plugin(target.url()).await;
    runner::run_with_embedder(&plan(args), &legacy.pool, &schema, &plugin, setup, false).await
}

fn applied(r: RunReport) -> ApplyReport {
    apply_report(r)
}

#[tokio::test]
async fn apply_embed_gives_every_copied_row_the_vector_of_its_content_and_a_paraphrase_finds_it() {
    let setup = minilm().await;
    let (legacy, ws, deploy) = legacy_rows(88).await;
    let rows = legacy.count().await as u64;
    let target = SqlitePlugin::start(384).await;

    // Small batches, so several batches are embedded while others are written.
    let r = applied(
        run_embed(
            &legacy,
            &target,
            Some(&setup),
            &["-apply", "-embed", "-batch-rows=25"],
        )
        .await
        .expect("run starts"),
    );
    assert_eq!((r.written, r.errors), (rows, 0), "{r}");
    assert_eq!(r.embedded, rows, "{r}");
    assert!(
        r.embedder.as_deref().is_some_and(|d| d.contains("MiniLM")),
        "{r}"
    );
    assert!(r.to_string().contains("embedded/s"), "{r}");

    let stored = target.memories().await;
    assert_eq!(stored.len() as u64, rows);
    for m in stored.values() {
        let v = m
            .embedding
            .as_ref()
            .expect("every copied row has an embedding");
        assert_eq!(v.len(), 384);
        let direct = embed_one(&setup, &m.content).await;
        let cos = memory_embed::cosine(v, &direct);
        assert!(cos >= 0.999, "row {} cosine {cos}", m.id);
    }

    // A semantic search with a paraphrase finds the row.
    let query = embed_one(&setup, PARAPHRASE).await;
    let found = target
        .client()
        .search(&SearchRequest {
            namespaces: vec![format!("workspace:{ws}")],
            query: None,
            kinds: None,
            limit: Some(3),
            embedding: Some(query),
            ..Default::default()
        })
        .await
        .expect("search");
    assert_eq!(
        found.memories.first().map(|m| m.id),
        Some(deploy),
        "{:?}",
        found.memories
    );

    // A rerun resumes after the checkpoint: nothing rewritten, nothing re-embedded.
    let again = applied(
        run_embed(&legacy, &target, Some(&setup), &["-apply", "-embed"])
            .await
            .expect("rerun starts"),
    );
    assert_eq!(
        (again.written, again.embedded, again.errors),
        (0, 0, 0),
        "{again}"
    );
    assert_eq!(again.unchanged, rows, "{again}");

    // Parity is unchanged by embeddings.
    let verify = run_embed(&legacy, &target, None, &["-verify", "-all"])
        .await
        .expect("verify starts");
    assert_eq!(verify.exit_code(), 0, "{verify}");
}

#[tokio::test]
async fn restart_with_embed_adds_vectors_to_rows_copied_without_and_leaves_embedded_rows_alone() {
    let setup = minilm().await;
    let (legacy, _ws, _deploy) = legacy_rows(18).await;
    let rows = legacy.count().await as u64;
    let target = SqlitePlugin::start(384).await;

    // An earlier run copied 10 rows without embeddings...
    let first = applied(
        run_embed(
            &legacy,
            &target,
            None,
            &["-apply", "-limit=10", "-batch-rows=5"],
        )
        .await
        .expect("first run"),
    );
    assert_eq!((first.written, first.embedded), (10, 0), "{first}");
    // ...then -embed resumed after its checkpoint and embedded the rest.
    let second = applied(
        run_embed(
            &legacy,
            &target,
            Some(&setup),
            &["-apply", "-embed", "-batch-rows=5"],
        )
        .await
        .expect("second run"),
    );
    assert_eq!(
        (second.written, second.embedded),
        (rows - 10, rows - 10),
        "{second}"
    );
    let stored = target.memories().await;
    let bare: Vec<Uuid> = stored
        .values()
        .filter(|m| m.embedding.is_none())
        .map(|m| m.id)
        .collect();
    assert_eq!(bare.len(), 10, "the first run's rows are still bare");

    // A restart with -embed embeds exactly those and leaves the others alone.
    let third = applied(
        run_embed(
            &legacy,
            &target,
            Some(&setup),
            &["-apply", "-embed", "-restart", "-batch-rows=5"],
        )
        .await
        .expect("restart run"),
    );
    assert_eq!(third.errors, 0, "{third}");
    assert_eq!((third.written, third.embedded), (10, 10), "{third}");
    assert_eq!(third.already_embedded, rows - 10, "{third}");
    let after = target.memories().await;
    for id in &bare {
        let m = &after[id];
        let v = m.embedding.as_ref().expect("embedded by the restart");
        let cos = memory_embed::cosine(v, &embed_one(&setup, &m.content).await);
        assert!(cos >= 0.999, "row {id} cosine {cos}");
    }
    for (id, m) in &stored {
        if m.embedding.is_some() {
            assert_eq!(
                after[id].embedding, m.embedding,
                "row {id} was not rewritten"
            );
        }
    }
}

// The binary runs while this process serves the plugin: two workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_of_another_dimension_is_refused_naming_both_before_anything_is_written() {
    let setup = minilm().await;
    let (legacy, _ws, _deploy) = legacy_rows(0).await;
    let target = SqlitePlugin::start(1536).await;
    let err = run_embed(&legacy, &target, Some(&setup), &["-apply", "-embed"])
        .await
        .expect_err("refused");
    let msg = err.to_string();
    assert!(msg.contains("384") && msg.contains("1536"), "{msg}");
    assert!(target.memories().await.is_empty());
    let namespaces = target
        .client()
        .list_namespaces(None, 100)
        .await
        .expect("list namespaces");
    assert!(
        namespaces.namespaces.is_empty(),
        "{:?}",
        namespaces.namespaces
    );

    // The binary: exit 2, one line, both numbers, still nothing written.
    let out = backfill(
        &["-apply", "-embed"],
        &[
            ("DATABASE_URL", legacy.db.url()),
            ("MEMORY_PLUGIN_URL", target.url()),
            ("MEMORY_EMBED", "local"),
            (
                "MEMORY_EMBED_MODEL_DIR",
                memory_testkit::minilm_model_dir()
                    .to_str()
                    .expect("utf-8 path"),
            ),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("384") && err.contains("1536"), "{err}");
    assert!(target.memories().await.is_empty());
}

// The binary runs while this process serves the plugin: two workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_without_a_model_exits_2_before_anything_is_written() {
    let (legacy, _ws, _deploy) = legacy_rows(0).await;
    let target = SqlitePlugin::start(384).await;
    let missing = std::env::temp_dir().join(format!("no-model-{}", Uuid::new_v4()));
    for env in [
        vec![("MEMORY_EMBED", "off".to_string())],
        vec![
            ("MEMORY_EMBED", "local".to_string()),
            ("MEMORY_EMBED_MODEL_DIR", missing.display().to_string()),
        ],
    ] {
        let mut vars: Vec<(&str, &str)> = vec![
            ("DATABASE_URL", legacy.db.url()),
            ("MEMORY_PLUGIN_URL", target.url()),
        ];
        vars.extend(env.iter().map(|(k, v)| (*k, v.as_str())));
        let out = backfill(&["-apply", "-embed"], &vars);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains("-embed"), "{err}");
        assert!(out.stdout.is_empty(), "no report");
    }
    assert!(target.memories().await.is_empty());

    // In process: an -embed plan without an embedder is refused the same way.
    let err = run_embed(&legacy, &target, None, &["-apply", "-embed"])
        .await
        .expect_err("refused");
    assert!(
        err.to_string().contains("-embed needs an embedder"),
        "{err}"
    );

    // And the configuration is refused by the library before any model loads.
    let off =
        memory_embed::EmbedConfig::from_lookup(|k| (k == "MEMORY_EMBED").then(|| "off".into()))
            .expect("config");
    let e = embedding::embedder_from_config(off).await.expect_err("off");
    assert!(e.contains("MEMORY_EMBED"), "{e}");
}
