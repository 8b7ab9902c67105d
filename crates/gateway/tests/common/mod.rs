//! The gateway's test harness: a platform database on PostgreSQL 15 holding
//! two organisations' `workspaces`, a real plugin on its own database, the
//! real gateway over HTTP on an ephemeral port, and real MCP clients.

#![allow(dead_code)]

use memory_client::{Client, ClientConfig};
use memory_gateway::app::{self, SpawnedGateway};
use memory_gateway::auth::{self, Caller, Secret};
use memory_gateway::directory::Directory;
use memory_gateway::http::AppState;
use memory_gateway::limit::{RateLimit, RateLimiter};
use memory_gateway::service::Gateway;
use memory_plugin::server::SpawnedServer;
use memory_testkit::TestDb;
use rmcp::model::{CallToolRequestParams, ClientConfig as McpClientConfig};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt as _};
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

pub const SECRET: &str = "test-secret-0123456789abcdef";

/// A decision, a question about it sharing no keyword with it, and memories
/// about other things: recall by meaning must put the decision first.
pub const DECISION: &str = "we agreed to ship v2 on Friday";
pub const PARAPHRASE: &str = "what did we decide about the release?";
pub const OTHERS: [&str; 3] = [
    "the office coffee machine is broken again",
    "Alice prefers tabs over spaces in Python files",
    "our cat photos folder is getting large",
];

/// One organisation: a root, two children, a grandchild under the first
/// child, and a removed child.
#[derive(Debug, Clone, Copy)]
pub struct Org {
    pub root: Uuid,
    pub child: Uuid,
    pub sibling: Uuid,
    pub grandchild: Uuid,
    pub removed: Uuid,
}

impl Org {
    pub fn live(&self) -> [Uuid; 4] {
        [self.root, self.child, self.sibling, self.grandchild]
    }
}

pub struct Env {
    pub platform: TestDb,
    pub pool: sqlx::PgPool,
    pub plugin_db: TestDb,
    pub plugin: SpawnedServer,
    pub gateway: SpawnedGateway,
    pub secret: Secret,
    pub a: Org,
    pub b: Org,
}

pub type Mcp = RunningService<RoleClient, McpClientConfig>;

async fn add_org(pool: &sqlx::PgPool, name: &str) -> Org {
    let org = Org {
        root: Uuid::new_v4(),
        child: Uuid::new_v4(),
        sibling: Uuid::new_v4(),
        grandchild: Uuid::new_v4(),
        removed: Uuid::new_v4(),
    };
    let rows = [
        (org.root, None, name.to_string(), "active"),
        (org.child, Some(org.root), format!("{name}-child"), "active"),
        (
            org.sibling,
            Some(org.root),
            format!("{name}-sibling"),
            "active",
        ),
        (
            org.grandchild,
            Some(org.child),
            format!("{name}-grandchild"),
            "active",
        ),
        (
            org.removed,
            Some(org.root),
            format!("{name}-removed"),
            "removed",
        ),
    ];
    for (id, parent, name, status) in rows {
        sqlx::query("INSERT INTO workspaces (id, name, parent_id, status) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(name)
            .bind(parent)
            .bind(status)
            .execute(pool)
            .await
            .expect("insert workspace");
    }
    org
}

/// A plugin client with the gateway's settings.
pub fn plugin_client(url: &str) -> Client {
    Client::new(ClientConfig::new(url)).expect("plugin client")
}

impl Env {
    /// Everything started with the default rate limit.
    pub async fn start() -> Env {
        Env::start_with(RateLimit::default()).await
    }

    pub async fn start_with(limit: RateLimit) -> Env {
        let platform = memory_testkit::pg15().await;
        let pool = platform.connect().await;
        sqlx::query(
            "CREATE TABLE workspaces (id uuid PRIMARY KEY, name text NOT NULL, parent_id uuid, status text)",
        )
        .execute(&pool)
        .await
        .expect("create workspaces");
        let a = add_org(&pool, "alpha").await;
        let b = add_org(&pool, "beta").await;
        let plugin_db = memory_testkit::pg15().await;
        let store = memory_plugin::store::open(
            Some(plugin_db.url()),
            &memory_plugin::store::OpenOptions::default(),
        )
        .await
        .expect("plugin store");
        let plugin = memory_plugin::server::spawn(store, Default::default())
            .await
            .expect("plugin");
        let gateway = spawn_gateway(platform.url(), plugin.url(), limit).await;
        let secret = gateway.state.secret.clone();
        Env {
            platform,
            pool,
            plugin_db,
            plugin,
            gateway,
            secret,
            a,
            b,
        }
    }

    pub fn gw(&self) -> &Gateway {
        &self.gateway.state.gateway
    }

    pub fn token(&self, workspace: Uuid) -> String {
        auth::issue(&self.secret, Caller::Workspace(workspace), None)
    }

    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.gateway.url)
    }

    /// An MCP session for `workspace`.
    pub async fn mcp(&self, workspace: Uuid) -> Mcp {
        connect(&self.mcp_url(), &self.token(workspace)).await
    }

    pub async fn set_parent(&self, id: Uuid, parent: Option<Uuid>) {
        sqlx::query("UPDATE workspaces SET parent_id = $2 WHERE id = $1")
            .bind(id)
            .bind(parent)
            .execute(&self.pool)
            .await
            .expect("re-parent");
    }

    pub async fn set_status(&self, id: Uuid, status: &str) {
        sqlx::query("UPDATE workspaces SET status = $2 WHERE id = $1")
            .bind(id)
            .bind(status)
            .execute(&self.pool)
            .await
            .expect("status");
    }

    /// Every memory the plugin holds in `namespace` (read past the gateway).
    pub async fn stored(&self, namespace: &str) -> Vec<memory_contract::Memory> {
        let client = plugin_client(self.plugin.url());
        client.refresh_capabilities().await.expect("caps");
        match client.list_memories(namespace, None, 1000).await {
            Ok(page) => page.memories,
            Err(memory_client::ClientError::Api { status: 404, .. }) => Vec::new(),
            Err(e) => panic!("list {namespace}: {e}"),
        }
    }
}

/// Starts a gateway reading `platform_url` in front of the plugin at `plugin_url`.
pub async fn spawn_gateway(
    platform_url: &str,
    plugin_url: &str,
    limit: RateLimit,
) -> SpawnedGateway {
    let directory = Directory::connect(platform_url).await.expect("directory");
    let client = Client::new(
        ClientConfig::new(plugin_url).breaker(memory_client::BreakerPolicy {
            failure_threshold: 3,
            open_for: std::time::Duration::from_millis(500),
        }),
    )
    .expect("client");
    let _ = client.refresh_capabilities().await;
    let gateway = Arc::new(Gateway::new(directory, client, RateLimiter::new(limit)));
    let state = AppState {
        gateway,
        secret: Secret::from_text(SECRET).unwrap(),
    };
    app::spawn(state).await.expect("gateway")
}

/// An rmcp client session over Streamable HTTP with `token`.
pub async fn connect(url: &str, token: &str) -> Mcp {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.to_string())
            .auth_header(token.to_string()),
    );
    McpClientConfig::default()
        .serve(transport)
        .await
        .expect("MCP session")
}

/// Calls `tool` and returns (is_error, text).
pub async fn call(mcp: &Mcp, tool: &str, args: Value) -> (bool, String) {
    let mut params = CallToolRequestParams::new(tool.to_string());
    if let Value::Object(map) = args {
        params = params.with_arguments(map);
    }
    let result = mcp.call_tool(params).await.expect("tool call");
    let text = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n");
    (result.is_error == Some(true), text)
}

/// Calls a tool that must succeed and parses its JSON answer.
pub async fn ok_json(mcp: &Mcp, tool: &str, args: Value) -> Value {
    let (is_error, text) = call(mcp, tool, args).await;
    assert!(!is_error, "{tool} failed: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{tool} answered non-JSON {text:?}: {e}"))
}

/// Calls a tool that must fail; returns its message.
pub async fn err_text(mcp: &Mcp, tool: &str, args: Value) -> String {
    let (is_error, text) = call(mcp, tool, args).await;
    assert!(is_error, "{tool} should have failed but answered {text}");
    text
}
