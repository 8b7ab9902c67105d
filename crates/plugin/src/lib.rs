//! The Memory Plugin v1 server: a [`store::Store`] trait with Postgres and
//! SQLite implementations, and the axum HTTP layer that serves the contract
//! on top of any store.

pub mod config;
pub mod http;
pub mod server;
pub mod store;
