//! `memory-migrate`: moves every memory, with its namespace settings, from
//! one Memory Plugin to another, and checks that nothing was lost.
//!
//! Flow: [`cli`] turns arguments into a [`cli::Plan`]; [`run`] connects both
//! plugins and walks the source's memories by id range, paired with the
//! target's ([`compare`]); [`report`] is what a run prints. The progress
//! display and the bounded report lists are the backfill's.

pub mod checkpoint;
pub mod cli;
pub mod compare;
pub mod db;
pub mod report;
pub mod run;
