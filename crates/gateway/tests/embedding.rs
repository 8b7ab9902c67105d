//! Recall by meaning through the real gateway: the real local model
//! (all-MiniLM-L6-v2, installed by the test kit), the real SQLite plugin
//! over HTTP, the gateway's own SQLite workspace table, and MCP sessions
//! (rmcp's client) or the gateway's tool entry point.

mod common;

use common::{call, connect, ok_json, plugin_client};
use memory_client::{Client, ClientConfig};
use memory_contract::capability;
use memory_embed::{cosine, Embedder, LocalConfig, LocalEmbedder, RemoteConfig, RemoteEmbedder};
use memory_gateway::app::{self, SpawnedGateway};
use memory_gateway::auth::{self, Caller, Secret};
use memory_gateway::directory::Directory;
use memory_gateway::http::AppState;
use memory_gateway::limit::{RateLimit, RateLimiter};
use memory_gateway::service::{EmbedUse, Gateway};
use memory_plugin::server::{ServerConfig, SpawnedServer};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use uuid::Uuid;

use common::{DECISION, OTHERS, PARAPHRASE};

/// The local model, loaded once for every test of this binary.
fn model() -> Arc<dyn Embedder> {
    static MODEL: OnceLock<Arc<dyn Embedder>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let dir = memory_testkit::minilm_model_dir();
            let mut config = LocalConfig::with_dir(dir);
            config.threads = 2;
            Arc::new(LocalEmbedder::load(&config).expect("load all-MiniLM-L6-v2"))
        })
        .clone()
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("memory-gateway-embed-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A SQLite plugin storing `dimension`-dimensional embeddings.
async fn plugin(dir: &std::path::Path, dimension: usize, v1_only: bool) -> SpawnedServer {
    let url = format!("sqlite:{}", dir.join("memories.db").display());
    #[allow(clippy::useless_conversion)]
    let options = memory_plugin::store::OpenOptions {
        // `usize` or `Option<usize>`, whichever the plugin takes.
        embedding_dim: dimension.into(),
        ..Default::default()
    };
    let store = memory_plugin::store::open(Some(&url), &options)
        .await
        .expect("plugin store");
    memory_plugin::server::spawn(
        store,
        ServerConfig {
            v1_only,
            ..Default::default()
        },
    )
    .await
    .expect("plugin")
}

struct Setup {
    _dir: PathBuf,
    plugin: SpawnedServer,
    gateway: SpawnedGateway,
    workspace: Uuid,
    directory_url: String,
}

impl Setup {
    async fn start(dimension: usize, embedder: Option<Arc<dyn Embedder>>) -> Setup {
        Setup::start_with(dimension, false, embedder).await
    }

    async fn start_with(
        dimension: usize,
        v1_only: bool,
        embedder: Option<Arc<dyn Embedder>>,
    ) -> Setup {
        let dir = scratch();
        let plugin = plugin(&dir, dimension, v1_only).await;
        let directory_url = format!("sqlite:{}", dir.join("gateway.db").display());
        let directory = Directory::connect(&directory_url).await.expect("directory");
        let root = directory
            .add_workspace("acme", None, None)
            .await
            .expect("root");
        let workspace = directory
            .add_workspace("research", Some(root), None)
            .await
            .expect("child");
        let gateway = gateway_for(&directory_url, plugin.url(), embedder).await;
        Setup {
            _dir: dir,
            plugin,
            gateway,
            workspace,
            directory_url,
        }
    }

    fn gw(&self) -> &Gateway {
        &self.gateway.state.gateway
    }

    /// A bearer token for the workspace.
    fn token(&self) -> String {
        auth::issue(
            &self.gateway.state.secret,
            Caller::Workspace(self.workspace),
            None,
        )
    }

    async fn mcp(&self) -> common::Mcp {
        connect(&format!("{}/mcp", self.gateway.url), &self.token()).await
    }

    /// Calls a tool through the gateway's entry point; must succeed.
    async fn tool(&self, tool: &str, args: Value) -> String {
        let answer = self.gw().call_tool(self.workspace, tool, args).await;
        assert!(!answer.is_error, "{tool} failed: {}", answer.text);
        answer.text
    }

    /// The contents `recall_memory` finds for `query`, best first.
    async fn recall(&self, query: &str) -> Vec<String> {
        recalled(&self.tool("recall_memory", json!({ "query": query })).await)
    }

    /// A client of the plugin itself, past the gateway.
    async fn plugin_client(&self) -> Client {
        let client = plugin_client(self.plugin.url());
        client.refresh_capabilities().await.unwrap();
        client
    }

    /// Every memory the plugin holds, with its embedding (read past the
    /// gateway).
    async fn stored(&self) -> Vec<memory_contract::Memory> {
        self.plugin_client()
            .await
            .scan_memories_with_embeddings(None, None, 1000)
            .await
            .expect("scan")
            .memories
    }
}

async fn gateway_for(
    directory_url: &str,
    plugin_url: &str,
    embedder: Option<Arc<dyn Embedder>>,
) -> SpawnedGateway {
    let directory = Directory::connect(directory_url).await.expect("directory");
    let client = Client::new(ClientConfig::new(plugin_url)).expect("client");
    client.refresh_capabilities().await.expect("plugin answers");
    let gateway = Gateway::new(directory, client, RateLimiter::new(RateLimit::default()))
        .with_embedder(embedder);
    let state = AppState {
        gateway: Arc::new(gateway),
        secret: Secret::from_text(common::SECRET).unwrap(),
    };
    app::spawn(state).await.expect("gateway")
}

async fn embed(text: &str) -> Vec<f32> {
    model()
        .embed(&[text.to_string()])
        .await
        .expect("embed")
        .pop()
        .unwrap()
}

/// The contents of a `recall_memory` answer, best first.
fn recalled(text: &str) -> Vec<String> {
    if text == "No memories found." {
        return Vec::new();
    }
    let rows: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["content"].as_str().unwrap().to_string())
        .collect()
}

/// Log lines written while the guard lives (on this thread: the tests run
/// on a current-thread runtime, so the gateway's tasks log here too).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The lines of `text` that contain `needle`.
    fn lines_with(text: &str, needle: &str) -> Vec<String> {
        text.lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }

    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let logs = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || LogWriter(logs.clone()))
            .finish();
        tracing::subscriber::set_default(subscriber)
    }
}

struct LogWriter(Logs);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 .0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_paraphrased_recall_finds_the_decision_only_with_embeddings() {
    let setup = Setup::start(384, Some(model())).await;
    // The SQLite plugin offers `hybrid`: the query and its vector are
    // ranked together.
    assert!(setup.gw().plugin().supports(capability::HYBRID));
    assert_eq!(setup.gw().embed_use().await, EmbedUse::Hybrid);
    let mcp = setup.mcp().await;
    ok_json(&mcp, "commit_memory", json!({"content": DECISION})).await;
    for other in OTHERS {
        ok_json(&mcp, "commit_memory_v2", json!({"content": other})).await;
    }

    let (is_error, text) = call(&mcp, "recall_memory", json!({"query": PARAPHRASE})).await;
    assert!(!is_error, "{text}");
    let rows = recalled(&text);
    assert_eq!(rows.first().map(String::as_str), Some(DECISION), "{rows:?}");

    let found = ok_json(&mcp, "search_memory", json!({"query": PARAPHRASE})).await;
    assert_eq!(found["memories"][0]["content"], DECISION, "{found}");

    // A keyword still finds its memory first.
    let rows = setup.recall("coffee machine").await;
    assert_eq!(
        rows.first().map(String::as_str),
        Some(OTHERS[0]),
        "{rows:?}"
    );

    // The inspector: a "Semantic" mode is offered and finds it too; its
    // full-text search does not.
    let token = setup.token();
    let http = reqwest::Client::new();
    let get = |path: String| {
        http.get(format!("{}{path}", setup.gateway.url))
            .bearer_auth(&token)
            .send()
    };
    let ws = setup.workspace;
    let namespaces: Value = get(format!("/workspaces/{ws}/v2/namespaces"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(namespaces["semantic_search"], true);
    let q = "what%20did%20we%20decide%20about%20the%20release%3F";
    let by_meaning: Value = get(format!("/workspaces/{ws}/v2/memories?q={q}&mode=semantic"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        by_meaning["memories"][0]["content"], DECISION,
        "{by_meaning}"
    );
    let by_words: Value = get(format!("/workspaces/{ws}/v2/memories?q={q}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_words["memories"], json!([]), "{by_words}");
    let bad = get(format!("/workspaces/{ws}/v2/memories?q={q}&mode=vibes"))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // The same memories through a gateway without an embedder: the
    // paraphrase shares no keyword with the decision.
    let plain = gateway_for(&setup.directory_url, setup.plugin.url(), None).await;
    assert_eq!(plain.state.gateway.embed_use().await, EmbedUse::Off);
    let answer = plain
        .state
        .gateway
        .call_tool(
            setup.workspace,
            "recall_memory",
            json!({"query": PARAPHRASE}),
        )
        .await;
    assert!(!answer.is_error, "{}", answer.text);
    assert!(
        !recalled(&answer.text).iter().any(|c| c == DECISION),
        "{}",
        answer.text
    );
}

#[tokio::test]
async fn a_plugin_with_embedding_but_no_hybrid_ranks_by_the_query_vector() {
    // A v1 plugin: `embedding` (384) without `hybrid` or a dimension.
    let setup = Setup::start_with(384, true, Some(model())).await;
    assert!(!setup.gw().plugin().supports(capability::HYBRID));
    assert_eq!(setup.gw().embed_use().await, EmbedUse::Semantic);
    for other in OTHERS {
        setup.tool("commit_memory", json!({"content": other})).await;
    }
    setup
        .tool("commit_memory", json!({"content": DECISION}))
        .await;
    let rows = setup.recall(PARAPHRASE).await;
    assert_eq!(rows.first().map(String::as_str), Some(DECISION), "{rows:?}");
    // Cosine ranks every memory: all four come back, the decision first.
    assert_eq!(rows.len(), 4, "{rows:?}");
}

#[tokio::test]
async fn every_commit_carries_the_embedding_of_its_redacted_text() {
    let setup = Setup::start(384, Some(model())).await;
    let secret = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
    let with_secret = format!("the deploy token for staging is {secret}");
    setup
        .tool("commit_memory", json!({"content": with_secret}))
        .await;
    setup
        .tool(
            "commit_memory_v2",
            json!({"content": "the build takes twelve minutes"}),
        )
        .await;
    setup
        .tool(
            "commit_summary",
            json!({"content": "summary: the team moved the standup to 10:00"}),
        )
        .await;
    // The legacy REST commit.
    let token = setup.token();
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/workspaces/{}/memories",
            setup.gateway.url, setup.workspace
        ))
        .bearer_auth(&token)
        .json(&json!({"content": "the printer on floor two needs toner", "scope": "LOCAL"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());

    let stored = setup.stored().await;
    assert_eq!(stored.len(), 4);
    for m in &stored {
        let v = m
            .embedding
            .as_ref()
            .unwrap_or_else(|| panic!("no embedding on {:?}", m.content));
        assert_eq!(v.len(), 384);
        let expected = embed(&m.content).await;
        assert!(
            cosine(v, &expected) > 0.9999,
            "{:?}: the stored vector is not the embedding of the stored text",
            m.content
        );
    }
    let redacted = stored
        .iter()
        .find(|m| m.content.starts_with("the deploy token"))
        .unwrap();
    assert!(!redacted.content.contains(secret), "{}", redacted.content);
    let of_the_secret = embed(&with_secret).await;
    assert!(
        cosine(redacted.embedding.as_ref().unwrap(), &of_the_secret) < 0.999,
        "the vector is of the text before redaction"
    );
}

#[tokio::test]
async fn a_dimension_mismatch_known_at_start_embeds_nothing_and_says_so_once() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let setup = Setup::start(1536, Some(model())).await;
    assert_eq!(setup.gw().embed_use().await, EmbedUse::Off);
    assert!(!setup.gw().can_embed());
    setup
        .tool("commit_memory", json!({"content": DECISION}))
        .await;
    setup
        .tool("commit_memory_v2", json!({"content": OTHERS[0]}))
        .await;
    let rows = setup.recall("Friday").await;
    assert_eq!(rows, [DECISION]);

    let stored = setup.stored().await;
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|m| m.embedding.is_none()));
    let text = logs.text();
    let lines = Logs::lines_with(&text, "embedding disabled");
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].contains("1536") && lines[0].contains("384"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("MEMORY_PLUGIN_EMBEDDING_DIM"),
        "{}",
        lines[0]
    );
}

#[tokio::test]
async fn a_v1_plugin_refusing_the_dimension_stops_embedding_without_losing_writes() {
    let logs = Logs::default();
    let _guard = logs.capture();
    // A v1 peer advertises `embedding` without its dimension.
    let setup = Setup::start_with(1536, true, Some(model())).await;
    assert_eq!(setup.gw().plugin().embedding_dimension(), None);
    assert_eq!(setup.gw().embed_use().await, EmbedUse::Semantic);
    setup
        .tool("commit_memory", json!({"content": DECISION}))
        .await;
    assert_eq!(setup.gw().embed_use().await, EmbedUse::Off);
    setup
        .tool("commit_memory", json!({"content": OTHERS[1]}))
        .await;
    let rows = setup.recall("Friday").await;
    assert_eq!(rows, [DECISION]);

    let client = setup.plugin_client().await;
    let ns = format!("workspace:{}", setup.workspace);
    let answer = client
        .search(&memory_contract::SearchRequest {
            namespaces: vec![ns],
            limit: Some(10),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(answer.memories.len(), 2);
    let text = logs.text();
    let lines = Logs::lines_with(&text, "embedding disabled");
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].contains("384"), "{}", lines[0]);
}

#[tokio::test]
async fn a_failing_embedder_never_loses_a_write_and_recall_falls_back_to_keywords() {
    let logs = Logs::default();
    let _guard = logs.capture();
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut config = RemoteConfig::new(format!("http://127.0.0.1:{closed}"), "minilm");
    config.expected_dimension = Some(384);
    config.max_retries = 1;
    config.initial_backoff = std::time::Duration::from_millis(10);
    let remote: Arc<dyn Embedder> = Arc::new(RemoteEmbedder::new(config).unwrap());
    let setup = Setup::start(384, Some(remote)).await;
    assert_ne!(setup.gw().embed_use().await, EmbedUse::Off);

    let content = "the staging database lives on host pg-7";
    let ack: Value = serde_json::from_str(
        &setup
            .tool("commit_memory", json!({"content": content}))
            .await,
    )
    .unwrap();
    assert_eq!(ack["scope"], "LOCAL");
    let stored = setup.stored().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].content, content);
    assert!(stored[0].embedding.is_none());

    let rows = setup.recall("staging database").await;
    assert_eq!(rows, [content]);

    let text = logs.text();
    assert!(
        Logs::lines_with(&text, "embedding failed").len() >= 2,
        "{text}"
    );
    assert!(!text.contains("pg-7"), "content in the logs: {text}");
    assert!(
        !text.contains("staging database"),
        "query in the logs: {text}"
    );
}
