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
                    write.id = Some(Uuid::new_v4());
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
        let mcp = Mcp {
            http: setup.plugin.http_client(),
            url: format!("{gateway_url}/mcp"),
            authorization: format!("Bearer {token}"),
        };
        let init = serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": MCP_VERSION, "capabilities": {},
            "clientInfo": {"name": "memory-bench", "version": env!("CARGO_PKG_VERSION")}}});
        mcp.post(&init)
            .await
            .context("cannot initialize an MCP session with the gateway")?;
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
