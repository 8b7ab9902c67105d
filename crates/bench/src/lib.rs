//! `memory-bench`: measures the memory plugin and the migration tool against
//! floors measured in the same run.
//!
//! A run builds a legacy data set in a scratch Postgres database
//! ([`legacy`]), drives the `memory-plugin` and `memory-backfill` release
//! binaries as child processes whose peak memory is measured ([`child`],
//! [`plugin`]), measures the same work done directly in the database
//! ([`floors`], [`sqlite_floors`]) and reports each figure next to its floor
//! ([`report`]). [`run::run`] ties the steps together and always removes
//! the scratch database.

pub mod child;
pub mod embedding;
pub mod floors;
pub mod gateway;
pub mod generated;
pub mod legacy;
pub mod load;
pub mod machine;
pub mod naive;
pub mod options;
pub mod pg_batch;
pub mod pgbench;
pub mod plugin;
pub mod quality;
pub mod report;
pub mod run;
pub mod scratch;
pub mod semantic;
pub mod sqlite_floors;
pub mod sqlite_million;
pub mod targets;
pub mod tool;
pub mod wrk;

/// Prints a progress line on stderr, prefixed with the time.
pub fn progress(message: &str) {
    eprintln!("[{}] {message}", chrono::Utc::now().format("%H:%M:%S"));
}
