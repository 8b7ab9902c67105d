//! (i) The gateway's cost: `recall_memory`, `search_memory` and
//! `commit_memory` through `memory-gateway` (a child process, called over
//! Streamable HTTP with a token), against the same search or write sent
//! straight to the plugin, at 1 and 8 clients.
//!
//! Both sides are called with the same HTTP client (reqwest), so the
//! figures are the gateway's own cost: a tool call is one JSON-RPC `POST
//! /mcp` answered with one JSON body (the gateway serves MCP statelessly).
//! The session is opened once per client with `initialize` first, as an MCP
//! client does.
//!
//! Each client acts for its own workspace of the legacy tree (the gateway
//! reads that `workspaces` table on every call, as in production) and sends
//! the same queries on both sides: the recall names the workspace's three
//! namespaces with a limit of 50, the search the same three with 20.

use crate::load::{run_load, LoadBounds, LoadSummary};
use crate::plugin::{PluginHttp, PluginProcess};
use crate::progress;
use crate::report::{Figure, Target, Unit};
use crate::run::Outcome;
use anyhow::{bail, Context, Result};
use memory_contract::{MemoryKind, MemorySource, MemoryWrite, SearchRequest};
use memory_gateway::auth::{self, Caller, Secret};
use memory_namespace::{WorkspaceAccess, WorkspaceTree};
use sqlx::PgPool;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The secret the benchmark's gateway signs tokens with.
const BENCH_SECRET: &str = "memory-bench-gateway-secret-0123456789";
/// Clients of the concurrent level.
const MANY: usize = 8;

/// The protocol version the calls name.
const MCP_VERSION: &str = "2025-06-18";

/// One client's MCP endpoint and token.
struct Mcp {
    http: reqwest::Client,
    url: String,
    authorization: String,
}

impl Mcp {
    /// The gateway's MCP endpoint at `base` with `token`, after an
    /// `initialize` call.
    async fn open(http: reqwest::Client, base: &str, token: &str) -> Result<Mcp> {
        let mcp = Mcp {
            http,
            url: format!("{base}/mcp"),
            authorization: format!("Bearer {token}"),
        };
        let init = serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": MCP_VERSION, "capabilities": {},
            "clientInfo": {"name": "memory-bench", "version": env!("CARGO_PKG_VERSION")}}});
        mcp.post(&init)
            .await
            .context("cannot initialize an MCP session with the gateway")?;
        Ok(mcp)
    }

    async fn post(&self, body: &serde_json::Value) -> Result<serde_json::Value> {
        let resp = self
            .http
            .post(&self.url)
            .header("authorization", &self.authorization)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", MCP_VERSION)
            .json(body)
            .send()
            .await?;
        let status = resp.status();
        if !status.is_success() {
            bail!(
                "the gateway answered {status}: {}",
                resp.text().await.unwrap_or_default()
            );
        }
        Ok(resp.json().await?)
    }
}

/// One client's identity and what a direct call names for it.
struct Seat {
    mcp: Mcp,
    namespaces: Vec<String>,
    workspace_ns: String,
}

/// What the section needs from the run.
pub struct GatewaySetup<'a> {
    pub binary: &'a Path,
    pub database_url: &'a str,
    pub plugin: &'a PluginHttp,
    pub plugin_url: &'a str,
    pub pool: &'a PgPool,
    pub log_dir: &'a Path,
    pub search_bounds: LoadBounds,
    pub commit_bounds: LoadBounds,
    pub terms: &'static [&'static str],
}

/// Measures section (i) and adds its figures.
///
/// # Errors
///
/// When the gateway cannot start or no workspace can be placed.
pub async fn gateway_figures(setup: GatewaySetup<'_>, out: &mut Outcome) -> Result<()> {
    let gateway = PluginProcess::start_gateway(
        "gateway",
        setup.binary,
        &[
            ("MEMORY_PLUGIN_URL", setup.plugin_url.to_string()),
            ("DATABASE_URL", setup.database_url.to_string()),
            ("MEMORY_GATEWAY_SECRET", BENCH_SECRET.to_string()),
            ("MEMORY_GATEWAY_RATE_LIMIT", "0".to_string()),
        ],
        setup.log_dir,
    )
    .await?;
    let seats = seats(&setup, gateway.base_url()).await?;
    let seats = Arc::new(seats);
    let terms = setup.terms;

    for clients in [1, MANY] {
        for (tool, limit) in [("recall_memory", 50i64), ("search_memory", 20)] {
            progress(&format!("(i) gateway {tool}, {clients} clients"));
            let via_gateway = {
                let seats = Arc::clone(&seats);
                move |c: usize, i: u64| {
                    let seats = Arc::clone(&seats);
                    async move {
                        let query = terms[(i as usize) % terms.len()];
                        call(&seats[c].mcp, tool, serde_json::json!({"query": query})).await
                    }
                }
            };
            let direct = {
                let seats = Arc::clone(&seats);
                let plugin = setup.plugin.clone();
                move |c: usize, i: u64| {
                    let seats = Arc::clone(&seats);
                    let plugin = plugin.clone();
                    async move {
                        let request = SearchRequest {
                            namespaces: seats[c].namespaces.clone(),
                            query: Some(terms[(i as usize) % terms.len()].to_string()),
                            kinds: None,
                            limit: Some(limit),
                            embedding: None,
                            mode: None,
                        };
                        plugin.search(&request).await.map(|_| ())
                    }
                }
            };
            let (g, d) = measure(clients, setup.search_bounds, via_gateway, direct).await;
            push(
                out,
                &format!("gateway {tool}, {clients} client(s)"),
                "plugin search",
                &g,
                &d,
            );
        }
        progress(&format!("(i) gateway commit_memory, {clients} clients"));
        let via_gateway = {
            let seats = Arc::clone(&seats);
            move |c: usize, i: u64| {
                let seats = Arc::clone(&seats);
                async move {
                    let content =
                        format!("benchmark note {i} from client {c}: the deploy went fine");
                    call(
                        &seats[c].mcp,
                        "commit_memory",
                        serde_json::json!({"content": content}),
                    )
                    .await
                }
            }
        };
        let direct = {
            let seats = Arc::clone(&seats);
            let plugin = setup.plugin.clone();
            move |c: usize, i: u64| {
                let seats = Arc::clone(&seats);
                let plugin = plugin.clone();
                async move {
                    let mut write = MemoryWrite::new(
                        format!("benchmark note {i} from client {c}: the deploy went fine"),
                        MemoryKind::Fact,
                        MemorySource::Agent,
                    );
                    // An id as the gateway's commit brings (version 7).
                    write.id = Some(Uuid::now_v7());
                    plugin.write(&seats[c].workspace_ns, &write).await
                }
            }
        };
        let (g, d) = measure(clients, setup.commit_bounds, via_gateway, direct).await;
        push(
            out,
            &format!("gateway commit_memory, {clients} client(s)"),
            "plugin write",
            &g,
            &d,
        );
    }
    drop(seats);
    let exit = gateway.stop().await;
    out.add(Figure::plain(
        "i",
        "gateway peak RSS",
        exit.peak_rss_bytes as f64,
        Unit::Bytes,
    ));
    Ok(())
}

/// One seat per client, each for a live workspace that holds memories.
async fn seats(setup: &GatewaySetup<'_>, gateway_url: &str) -> Result<Vec<Seat>> {
    let candidates: Vec<Uuid> = sqlx::query_scalar(
        "SELECT w.id FROM workspaces w \
         WHERE w.status IS DISTINCT FROM 'removed' \
           AND EXISTS (SELECT 1 FROM agent_memories m WHERE m.workspace_id = w.id) \
         ORDER BY w.id LIMIT 64",
    )
    .fetch_all(setup.pool)
    .await
    .context("cannot pick workspaces for the gateway figures")?;
    let secret = Secret::from_text(BENCH_SECRET).map_err(anyhow::Error::msg)?;
    let mut seats = Vec::new();
    for ws in candidates {
        let (tree, names) = WorkspaceTree::load_chain(setup.pool, ws, true, true).await?;
        let Some(access) = WorkspaceAccess::resolve(&tree, &names, ws) else {
            continue;
        };
        let token = auth::issue(&secret, Caller::Workspace(ws), None);
        let mcp = Mcp::open(setup.plugin.http_client(), gateway_url, &token).await?;
        seats.push(Seat {
            mcp,
            namespaces: access.readable().iter().map(|e| e.name.clone()).collect(),
            workspace_ns: access.workspace_namespace().to_string(),
        });
        if seats.len() == MANY {
            return Ok(seats);
        }
    }
    bail!("fewer than {MANY} live workspaces with memories for the gateway figures")
}

async fn call(mcp: &Mcp, tool: &'static str, args: serde_json::Value) -> Result<()> {
    let request = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": tool, "arguments": args}});
    let answer = mcp.post(&request).await?;
    let result = answer
        .get("result")
        .with_context(|| format!("{tool}: no result in {answer}"))?;
    if result.get("isError").and_then(|e| e.as_bool()) == Some(true) {
        bail!("{tool} answered an error: {result}");
    }
    Ok(())
}

/// Warms both sides up, then measures them one after the other.
async fn measure<G, GF, D, DF>(
    clients: usize,
    bounds: LoadBounds,
    gateway: G,
    direct: D,
) -> (LoadSummary, LoadSummary)
where
    G: Fn(usize, u64) -> GF + Clone + Send + Sync + 'static,
    GF: std::future::Future<Output = Result<()>> + Send + 'static,
    D: Fn(usize, u64) -> DF + Clone + Send + Sync + 'static,
    DF: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let warm = LoadBounds {
        max_ops: 50,
        max_time: Duration::from_secs(10),
    };
    run_load(clients, warm, gateway.clone()).await;
    run_load(clients, warm, direct.clone()).await;
    let g = run_load(clients, bounds, gateway).await;
    let d = run_load(clients, bounds, direct).await;
    (g, d)
}

fn push(out: &mut Outcome, label: &str, floor: &str, gateway: &LoadSummary, direct: &LoadSummary) {
    for (side, s) in [("via gateway", gateway), ("direct", direct)] {
        if s.errors > 0 {
            out.failures.push(format!(
                "{label} {side}: {} of {} operations failed; first: {}",
                s.errors,
                s.errors + s.ok,
                s.first_error.as_deref().unwrap_or("?")
            ));
        }
    }
    out.add(
        Figure::against(
            "i",
            format!("{label} p50"),
            gateway.p50_ms,
            Unit::Milliseconds,
            floor,
            direct.p50_ms,
        )
        .with_target(Target::RatioAtMost(1.25)),
    );
    out.add(
        Figure::plain(
            "i",
            format!("{label} p50 added"),
            gateway.p50_ms - direct.p50_ms,
            Unit::Milliseconds,
        )
        .with_target(Target::ValueBelow(1.0)),
    );
    out.add(Figure::against(
        "i",
        format!("{label} p99"),
        gateway.p99_ms,
        Unit::Milliseconds,
        floor,
        direct.p99_ms,
    ));
}

/// Recall through the gateway with the query's embedding against without
/// (part of the `--embedding` run; no Postgres needed): one SQLite plugin
/// (`MEMORY_PLUGIN_EMBEDDING_DIM=384`) and two `memory-gateway` processes
/// in front of it, one with `MEMORY_EMBED=local` (all-MiniLM-L6-v2) and one
/// with `MEMORY_EMBED=off`. The built-in data set's memories are committed
/// through the embedding gateway (so they carry vectors), then one client
/// sends the data set's questions as `recall_memory` to each gateway in
/// turn. Prints p50, p99 and their ratio (target: p50 with embedding at
/// most 2x without), the parts of the difference, and the plugin's
/// semantic and hybrid search once the file also holds 20,000 (`--quick`:
/// 2,000) memories with vectors.
///
/// # Errors
///
/// When a binary, the model or a process cannot start, or a call fails.
pub async fn embedding_recall_section(plan: &crate::options::Plan) -> Result<()> {
    if plan.build && plan.bin_dir.is_none() {
        crate::run::build_release(&["memory-plugin", "memory-gateway"])?;
    }
    let bins = crate::run::locate_binaries(plan.bin_dir.as_deref())?;
    for binary in [&bins.plugin, &bins.gateway] {
        anyhow::ensure!(
            binary.is_file(),
            "{} not found; build it with `cargo build --release -p memory-plugin -p memory-gateway` or pass --bin-dir",
            binary.display()
        );
    }
    let model = crate::embedding::model_dir()?;
    let dataset = crate::quality::Dataset::builtin()?;
    let dir =
        std::env::temp_dir().join(format!("memory-bench-gateway-embed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let result = embedding_recall(plan, &bins, &model, &dataset, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    let r = result?;
    println!("\n## Recall through the gateway: with the query's embedding against without\n");
    println!(
        "{} memories committed through the embedding gateway ({} with a vector; commit_memory p50 {:.2} ms, p99 {:.2} ms \
         with embedding); {} recall_memory calls per side from 1 client, the data set's questions in turn; \
         SQLite plugin ({}). Embedding gateway peak RSS {:.0} MiB, without {:.0} MiB.\n",
        r.memories,
        r.with_vectors,
        r.commit.p50_ms,
        r.commit.p99_ms,
        r.with.ok,
        r.plugin_capabilities,
        r.rss_with as f64 / 1048576.0,
        r.rss_without as f64 / 1048576.0,
    );
    println!("| recall_memory | p50 ms | p99 ms |");
    println!("|---|---|---|");
    println!(
        "| with embedding | {:.2} | {:.2} |",
        r.with.p50_ms, r.with.p99_ms
    );
    println!(
        "| without (MEMORY_EMBED=off) | {:.2} | {:.2} |",
        r.without.p50_ms, r.without.p99_ms
    );
    let ratio = r.with.p50_ms / r.without.p50_ms.max(f64::EPSILON);
    println!(
        "| ratio | {:.2}x | {:.2}x |",
        ratio,
        r.with.p99_ms / r.without.p99_ms.max(f64::EPSILON)
    );
    println!(
        "\np50 ratio target: at most 2x: {}",
        if ratio <= 2.0 { "met" } else { "MISSED" }
    );
    println!("\nThe parts, measured after the gateways stopped:\n");
    println!("| part | p50 ms | p99 ms |");
    println!("|---|---|---|");
    for (label, (p50, p99)) in [
        (
            "a question's embedding (same model, in this process)",
            r.query_embed,
        ),
        ("plugin search, hybrid (vector given)", r.plugin_hybrid),
        ("plugin search, full-text", r.plugin_fulltext),
    ] {
        println!("| {label} | {p50:.2} | {p99:.2} |");
    }
    println!(
        "\nThe plugin's search at scale: {} more memories with vectors in the same file, \
         searched over one tenant's three namespaces (limit 20):\n",
        r.scale_rows
    );
    println!("| plugin search | p50 ms | p99 ms |");
    println!("|---|---|---|");
    for (label, (p50, p99)) in [("semantic", r.scale_semantic), ("hybrid", r.scale_hybrid)] {
        println!("| {label} | {p50:.2} | {p99:.2} |");
    }
    for (side, s) in [
        ("with", &r.with),
        ("without", &r.without),
        ("commit", &r.commit),
    ] {
        if s.errors > 0 {
            bail!(
                "{side}: {} of {} calls failed; first: {}",
                s.errors,
                s.errors + s.ok,
                s.first_error.as_deref().unwrap_or("?")
            );
        }
    }
    Ok(())
}

struct EmbeddingRecall {
    memories: usize,
    with_vectors: usize,
    plugin_capabilities: String,
    commit: LoadSummary,
    with: LoadSummary,
    without: LoadSummary,
    rss_with: u64,
    rss_without: u64,
    /// (p50, p99) in ms of the parts.
    query_embed: (f64, f64),
    plugin_hybrid: (f64, f64),
    plugin_fulltext: (f64, f64),
    /// Vectors stored for the search at scale, and its (p50, p99) in ms.
    scale_rows: u64,
    scale_semantic: (f64, f64),
    scale_hybrid: (f64, f64),
}

/// Memories with a vector loaded for the plugin's search at scale.
const SCALE_ROWS: u64 = 20_000;

/// The plugin's semantic and hybrid search over three namespaces of a
/// tenant holding `rows` memories with vectors (random unit vectors beside
/// the recall's memories, loaded through the batch route): `(p50, p99)` in
/// ms of `n` searches each, the data set's questions and their vectors.
async fn search_at_scale(
    probe: &memory_client::Client,
    rows: u64,
    questions: &[String],
    vectors: &[Vec<f32>],
    n: usize,
) -> Result<((f64, f64), (f64, f64))> {
    use rand::{Rng, SeedableRng};
    progress(&format!(
        "gateway recall with/without embedding: the plugin's search at {rows} stored vectors"
    ));
    let tree = crate::generated::Tree::new(3, 0x5ca1e);
    for (name, kind) in tree.namespaces() {
        probe
            .upsert_namespace(
                &name,
                &memory_contract::NamespaceUpsert {
                    kind,
                    expires_at: None,
                    metadata: None,
                },
            )
            .await
            .with_context(|| format!("cannot create {name}"))?;
    }
    let mut generator = crate::generated::Generator::new(rows, 0x5ca1e);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5ca1e);
    let dimension = memory_embed::MINILM_DIMENSION;
    let mut sent = 0u64;
    while sent < rows {
        let count = (rows - sent).min(1000) as usize;
        let mut writes = generator.batch(&tree, count);
        for w in &mut writes {
            let v: Vec<f32> = (0..dimension)
                .map(|_| rng.gen_range(-1.0f32..1.0))
                .collect();
            let norm = v
                .iter()
                .map(|x| x * x)
                .sum::<f32>()
                .sqrt()
                .max(f32::EPSILON);
            w.write.embedding = Some(v.iter().map(|x| x / norm).collect());
        }
        let answer = probe
            .write_batch(&memory_contract::BatchRequest { writes })
            .await
            .context("loading vectors for the search at scale")?;
        anyhow::ensure!(
            answer
                .results
                .iter()
                .all(|r| matches!(r, memory_contract::BatchItemResult::Ok(_))),
            "a batch write of the search at scale was refused"
        );
        sent += count as u64;
    }
    let namespaces = tree.readable(tree.len() - 1);
    let mut semantic_ms = Vec::with_capacity(n);
    let mut hybrid_ms = Vec::with_capacity(n);
    for i in 0..n {
        let k = i % questions.len();
        for (mode, out) in [
            (memory_contract::RankMode::Semantic, &mut semantic_ms),
            (memory_contract::RankMode::Hybrid, &mut hybrid_ms),
        ] {
            let request = SearchRequest {
                namespaces: namespaces.clone(),
                query: Some(questions[k].clone()),
                kinds: None,
                limit: Some(20),
                embedding: Some(vectors[k].clone()),
                mode: Some(mode),
            };
            let started = std::time::Instant::now();
            probe.search(&request).await?;
            out.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    Ok((quantiles(&mut semantic_ms), quantiles(&mut hybrid_ms)))
}

/// (p50, p99) of `ms`.
fn quantiles(ms: &mut [f64]) -> (f64, f64) {
    if ms.is_empty() {
        return (0.0, 0.0);
    }
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[(((ms.len() - 1) as f64) * p).round() as usize];
    (at(0.50), at(0.99))
}

async fn embedding_recall(
    plan: &crate::options::Plan,
    bins: &crate::run::Binaries,
    model: &Path,
    dataset: &crate::quality::Dataset,
    dir: &Path,
) -> Result<EmbeddingRecall> {
    progress("gateway recall with/without embedding: starting a SQLite plugin and two gateways");
    let plugin = PluginProcess::start(
        "plugin-gateway-embed",
        &bins.plugin,
        &format!("sqlite:{}", dir.join("memories.db").display()),
        &[(
            "MEMORY_PLUGIN_EMBEDDING_DIM",
            memory_embed::MINILM_DIMENSION.to_string(),
        )],
        dir,
    )
    .await?;
    let directory_url = format!("sqlite:{}", dir.join("gateway.db").display());
    let workspace = {
        let directory = memory_gateway::directory::Directory::connect(&directory_url).await?;
        let root = directory.add_workspace("bench", None, None).await?;
        directory
            .add_workspace("bench-research", Some(root), None)
            .await?
    };
    let common = [
        ("MEMORY_PLUGIN_URL", plugin.base_url().to_string()),
        ("DATABASE_URL", directory_url.clone()),
        ("MEMORY_GATEWAY_SECRET", BENCH_SECRET.to_string()),
        ("MEMORY_GATEWAY_RATE_LIMIT", "0".to_string()),
    ];
    let mut with_env: Vec<(&str, String)> = common.to_vec();
    with_env.push(("MEMORY_EMBED", "local".to_string()));
    with_env.push(("MEMORY_EMBED_MODEL_DIR", model.display().to_string()));
    if let Some(t) = plan.embed_threads {
        with_env.push(("MEMORY_EMBED_THREADS", t.to_string()));
    }
    let mut without_env: Vec<(&str, String)> = common.to_vec();
    without_env.push(("MEMORY_EMBED", "off".to_string()));
    let with_gw =
        PluginProcess::start_gateway("gateway-embed", &bins.gateway, &with_env, dir).await?;
    let without_gw =
        PluginProcess::start_gateway("gateway-plain", &bins.gateway, &without_env, dir).await?;
    let secret = Secret::from_text(BENCH_SECRET).map_err(anyhow::Error::msg)?;
    let token = auth::issue(&secret, Caller::Workspace(workspace), None);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let with_mcp = Arc::new(Mcp::open(http.clone(), with_gw.base_url(), &token).await?);
    let without_mcp = Arc::new(Mcp::open(http.clone(), without_gw.base_url(), &token).await?);

    let memories: Arc<Vec<String>> = Arc::new(
        dataset
            .memories
            .iter()
            .take(if plan.quick { 100 } else { usize::MAX })
            .map(|m| m.content.clone())
            .collect(),
    );
    progress(&format!(
        "gateway recall with/without embedding: committing {} memories through the embedding gateway",
        memories.len()
    ));
    let commit = {
        let mcp = Arc::clone(&with_mcp);
        let memories = Arc::clone(&memories);
        run_load(
            1,
            LoadBounds {
                max_ops: memories.len() as u64,
                max_time: Duration::from_secs(600),
            },
            move |_, i| {
                let mcp = Arc::clone(&mcp);
                let content = memories[i as usize].clone();
                async move {
                    call(
                        &mcp,
                        "commit_memory",
                        serde_json::json!({"content": content}),
                    )
                    .await
                }
            },
        )
        .await
    };
    let probe = memory_client::Client::new(memory_client::ClientConfig::new(plugin.base_url()))?;
    let capabilities = probe.refresh_capabilities().await?.join(", ");
    let mut with_vectors = 0;
    let mut after = None;
    loop {
        let page = probe
            .scan_memories_with_embeddings(after, None, 1000)
            .await?;
        with_vectors += page
            .memories
            .iter()
            .filter(|m| m.embedding.is_some())
            .count();
        match page.memories.last() {
            Some(last) if page.memories.len() == 1000 => after = Some(last.id),
            _ => break,
        }
    }

    let questions: Arc<Vec<String>> =
        Arc::new(dataset.queries.iter().map(|q| q.text.clone()).collect());
    let recall = |mcp: Arc<Mcp>| {
        let questions = Arc::clone(&questions);
        move |_: usize, i: u64| {
            let mcp = Arc::clone(&mcp);
            let query = questions[(i as usize) % questions.len()].clone();
            async move { call(&mcp, "recall_memory", serde_json::json!({"query": query})).await }
        }
    };
    let bounds = LoadBounds {
        max_ops: if plan.quick { 100 } else { 500 },
        max_time: Duration::from_secs(120),
    };
    let warm = LoadBounds {
        max_ops: 20,
        max_time: Duration::from_secs(30),
    };
    progress("gateway recall with/without embedding: measuring");
    run_load(1, warm, recall(Arc::clone(&with_mcp))).await;
    run_load(1, warm, recall(Arc::clone(&without_mcp))).await;
    let without = run_load(1, bounds, recall(Arc::clone(&without_mcp))).await;
    let with = run_load(1, bounds, recall(Arc::clone(&with_mcp))).await;
    drop((with_mcp, without_mcp));
    let rss_with = with_gw.stop().await.peak_rss_bytes;
    let rss_without = without_gw.stop().await.peak_rss_bytes;

    // Where the difference goes: the query's embedding alone (the same
    // model in this process, the gateways stopped), and the plugin's hybrid
    // search against its full-text search with the vectors made beforehand.
    progress("gateway recall with/without embedding: the parts (query embedding, plugin search)");
    let threads = plan.embed_threads;
    let (embedder, _) = tokio::task::spawn_blocking(move || crate::embedding::load_local(threads))
        .await
        .context("loading the model panicked")??;
    let n = bounds.max_ops as usize;
    let mut embed_ms = Vec::with_capacity(n);
    for i in 0..n {
        let q = questions[i % questions.len()].clone();
        let started = std::time::Instant::now();
        memory_embed::Embedder::embed(&embedder, &[q]).await?;
        embed_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let vectors = memory_embed::Embedder::embed(&embedder, &questions).await?;
    let namespace = format!("workspace:{workspace}");
    let mut hybrid_ms = Vec::with_capacity(n);
    let mut fulltext_ms = Vec::with_capacity(n);
    for i in 0..n {
        let k = i % questions.len();
        for (vector, out) in [
            (Some(vectors[k].clone()), &mut hybrid_ms),
            (None, &mut fulltext_ms),
        ] {
            let hybrid = vector.is_some();
            let request = SearchRequest {
                namespaces: vec![namespace.clone()],
                query: Some(questions[k].clone()),
                kinds: None,
                limit: Some(50),
                embedding: vector,
                mode: hybrid.then_some(memory_contract::RankMode::Hybrid),
            };
            let started = std::time::Instant::now();
            probe.search(&request).await?;
            out.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let scale_rows = if plan.quick { 2_000 } else { SCALE_ROWS };
    let (scale_semantic, scale_hybrid) =
        search_at_scale(&probe, scale_rows, &questions, &vectors, n).await?;
    plugin.stop().await;
    Ok(EmbeddingRecall {
        scale_rows,
        scale_semantic,
        scale_hybrid,
        query_embed: quantiles(&mut embed_ms),
        plugin_hybrid: quantiles(&mut hybrid_ms),
        plugin_fulltext: quantiles(&mut fulltext_ms),
        memories: memories.len(),
        with_vectors,
        plugin_capabilities: capabilities,
        commit,
        with,
        without,
        rss_with,
        rss_without,
    })
}
