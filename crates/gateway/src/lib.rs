//! `memory-gateway`: the agents' front door to their memories.
//!
//! Agents call memory tools over MCP (Streamable HTTP at `/mcp` with a
//! bearer token, or stdio with a fixed `--workspace`). Every call derives the
//! caller's namespaces from the live workspace tree ([`directory`], with the
//! rules of `memory-namespace`), refuses what they do not allow, redacts
//! secrets before anything reaches the plugin, audits writes to `org:`
//! namespaces, and marks org memories when it returns them ([`service`]).
//! The plugin is any Memory Plugin v1 server, or an embedded SQLite store
//! when none is configured ([`app`]).

pub mod app;
pub mod auth;
pub mod directory;
pub mod http;
pub mod limit;
pub mod mcp;
pub mod metrics;
pub mod rest;
pub mod service;
pub mod ui;
