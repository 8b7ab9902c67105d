//! Shared set-up of the HTTP tests: a real store (a fresh PostgreSQL 15
//! database, or a SQLite file) behind the real server on port 0, and a
//! reqwest client with small helpers that return status and JSON body.

#![allow(dead_code)]

use memory_plugin::server::{spawn, ServerConfig, SpawnedServer};
use memory_plugin::store::postgres::{PgOptions, PgStore};
use memory_plugin::store::sqlite::{SqliteOptions, SqliteStore};
use memory_plugin::store::Store;
use memory_testkit::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;

/// A running server and what keeps its storage alive.
pub struct Harness {
    pub server: SpawnedServer,
    pub http: reqwest::Client,
    pub token: Option<String>,
    pub db: Option<TestDb>,
    sqlite_file: Option<PathBuf>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(file) = &self.sqlite_file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
        }
    }
}

/// Small embedding dimension used by every HTTP test.
pub const DIM: usize = 3;

/// A server on a fresh PostgreSQL 15 database.
pub async fn pg_server(config: ServerConfig) -> Harness {
    let db = memory_testkit::pg15().await;
    pg_server_on(db, config).await
}

/// A server on the given test database.
pub async fn pg_server_on(db: TestDb, config: ServerConfig) -> Harness {
    let store = PgStore::connect(
        db.url(),
        PgOptions {
            embedding_dim: DIM,
            ..PgOptions::default()
        },
    )
    .await
    .expect("PgStore connects to the test database");
    start(Arc::new(store), config, Some(db), None).await
}

/// A server on a fresh SQLite file.
pub async fn sqlite_server(config: ServerConfig) -> Harness {
    let file = std::env::temp_dir().join(format!("memory-plugin-http-{}.db", uuid::Uuid::new_v4()));
    let store = SqliteStore::open(
        &format!("sqlite:{}", file.display()),
        SqliteOptions { embedding_dim: DIM },
    )
    .await
    .expect("SqliteStore opens a temp file");
    start(Arc::new(store), config, None, Some(file)).await
}

async fn start(
    store: Arc<dyn Store>,
    config: ServerConfig,
    db: Option<TestDb>,
    sqlite_file: Option<PathBuf>,
) -> Harness {
    let token = config.token.clone();
    let server = spawn(store, config).await.expect("server binds port 0");
    Harness {
        server,
        http: reqwest::Client::new(),
        token,
        db,
        sqlite_file,
    }
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    /// A request with the harness token (if any) already attached.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, self.url(path));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// Sends `body` as JSON (when given) and returns status and JSON body
    /// (`Value::Null` for an empty body).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut rb = self.request(method, path);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        read(rb.send().await.expect("request reaches the server")).await
    }

    /// Sends raw bytes with an optional content type.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: impl Into<reqwest::Body>,
        content_type: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut rb = self.request(method, path).body(body);
        if let Some(ct) = content_type {
            rb = rb.header("content-type", ct);
        }
        read(rb.send().await.expect("request reaches the server")).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Creates namespace `name` (kind taken from its prefix when known).
    pub async fn namespace(&self, name: &str) {
        let prefix = name.split(':').next().unwrap_or_default();
        let kind = if matches!(prefix, "workspace" | "team" | "org") {
            prefix
        } else {
            "custom"
        };
        let (status, body) = self
            .call(
                Method::PUT,
                &format!("/v1/namespaces/{name}"),
                Some(json!({ "kind": kind })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "PUT namespace {name}: {body}");
    }

    /// Writes a memory and returns its id.
    pub async fn write(&self, namespace: &str, body: Value) -> String {
        let (status, ack) = self
            .post(&format!("/v1/namespaces/{namespace}/memories"), body)
            .await;
        assert_eq!(status, StatusCode::CREATED, "write to {namespace}: {ack}");
        assert_eq!(ack["namespace"], namespace);
        ack["id"].as_str().expect("ack has an id").to_string()
    }

    /// Searches and returns the memories.
    pub async fn search(&self, body: Value) -> Vec<Value> {
        let (status, res) = self.post("/v1/search", body).await;
        assert_eq!(status, StatusCode::OK, "search: {res}");
        res["memories"].as_array().expect("memories array").clone()
    }
}

/// Status and JSON body of a response.
pub async fn read(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let bytes = resp.bytes().await.expect("response body is readable");
    if bytes.is_empty() {
        return (status, Value::Null);
    }
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "status {status}: body is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, body)
}

/// Asserts `body` is an error envelope with `code` and a non-empty message.
#[track_caller]
pub fn assert_envelope(body: &Value, code: &str) {
    assert_eq!(body["code"], code, "envelope code in {body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "envelope message in {body}");
}

/// A minimal valid memory write.
pub fn fact(content: &str) -> Value {
    json!({ "content": content, "kind": "fact", "source": "agent" })
}
