//! Async HTTP client for any Memory Plugin v1 server.
//!
//! One method per route and extension. Requests are validated with
//! `memory-contract` before they are sent; error answers are decoded into
//! [`ClientError::Api`] with the plugin's error envelope. Calls go through a
//! circuit breaker that counts failed calls (not attempts), and requests that
//! are safe to repeat are retried with jittered exponential backoff. Extensions are used only when the capability
//! snapshot from `/v1/health` advertises them.
//!
//! ```no_run
//! # async fn demo() -> Result<(), memory_client::ClientError> {
//! use memory_client::{Client, ClientConfig};
//! use memory_contract::{MemoryKind, MemorySource, MemoryWrite, NamespaceKind, NamespaceUpsert};
//!
//! let client = Client::new(ClientConfig::new("http://127.0.0.1:8080").token("secret"))?;
//! client.refresh_capabilities().await?;
//! client
//!     .upsert_namespace(
//!         "workspace:42",
//!         &NamespaceUpsert { kind: NamespaceKind::Workspace, expires_at: None, metadata: None },
//!     )
//!     .await?;
//! let ack = client
//!     .write_memory("workspace:42", &MemoryWrite::new("likes tea", MemoryKind::Fact, MemorySource::Agent))
//!     .await?;
//! client.forget(ack.id, "workspace:42").await?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod breaker;
mod client;
mod config;
mod error;

pub use breaker::{BreakerState, Clock, ManualClock, SystemClock};
pub use client::Client;
pub use config::{
    parse_timeout, BreakerPolicy, ClientConfig, RetryPolicy, Token, DEFAULT_TIMEOUT, ENV_TIMEOUT,
    ENV_TOKEN, ENV_URL,
};
pub use error::{ClientError, SYNTHESIZED_DETAIL};
