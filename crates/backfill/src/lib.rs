//! `memory-backfill`: copies the legacy `agent_memories` table into any
//! Memory Plugin v1 server, checks the result, and reports.
//!
//! Flow: [`cli`] turns arguments into a [`cli::Plan`]; [`config`] reads the
//! two URLs; [`runner`] connects both sides and dispatches. [`legacy`]
//! streams rows in id order; [`resolver`] places workspaces in their tree;
//! [`mapping`] turns rows into plugin writes or skips; [`apply`] sends them
//! (batched where the plugin allows) through [`plugin`], keeping a resumable
//! [`checkpoint`] in the plugin, computing missing embeddings on the way
//! with `-embed` ([`embedding`]); [`dry_run`] and [`verify`] read both sides
//! and compare; [`report`] and [`progress`] are what a run prints. [`naive`]
//! is the per-row method kept as a benchmark yardstick.

pub mod apply;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod dry_run;
pub mod embedding;
pub mod legacy;
pub mod mapping;
pub mod naive;
pub mod plugin;
pub mod progress;
pub mod report;
pub use memory_namespace as resolver;
pub mod runner;
pub mod verify;
