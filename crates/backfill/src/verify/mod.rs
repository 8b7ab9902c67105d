//! `-verify`: does the plugin hold what apply would have written from the
//! legacy table? Verify writes nothing, and every method works in bounded
//! memory.
//!
//! [`run`] goes through three stages, one module each, in this order:
//!
//! 1. **Selection** ([`selection`]): the method, the workspaces (one, all,
//!    or a seeded random sample), and so the legacy rows to compare. Rows
//!    apply would skip before placing them (unknown scope, no workspace, a
//!    workspace missing from the table) are listed as skips, not compared.
//! 2. **Comparison**, by one of four methods ([`VerifyMethod`]), each in its
//!    own module. All of them pair a legacy row with the plugin memory of the
//!    same id and judge the pair with the same rules ([`compare`]).
//!    - [`checksum`] (`-all`, extensions `checksum` and `scan`): a count and
//!      a digest per id bucket on both sides; only the buckets that differ
//!      are merged row by row, as `scan` does.
//!    - [`scan`] (`-all`, extension `scan`): both sides read once in id
//!      order and merged.
//!    - [`list`] (extension `list`): the legacy rows of each target
//!      namespace merged by id with the plugin's pages of that namespace,
//!      batch by batch of workspaces that share namespaces.
//!    - [`search`] (v1 only): searches per workspace; a row v1 cannot find
//!      for sure leaves its workspace *unverified* rather than mismatched.
//! 3. **Report** ([`report`]): what each part found, added up into one
//!    [`VerifyReport`], printed as a summary or serialized as JSON; its
//!    [`exit_code`](VerifyReport::exit_code) is 0 only on full parity.
//!
//! The backfill's own checkpoint memories (namespace
//! `custom:memory-backfill`) are never counted as plugin rows: `checksum`
//! takes them out of the plugin's buckets, `scan` drops them from its pages,
//! and `list` and `search` read only the namespaces legacy rows map to.

mod selection;

mod checksum;
mod compare;
mod list;
mod scan;
mod search;
mod task;

mod report;

pub use compare::assumed_carry;
pub(crate) use list::list_compare;
pub use report::{Mismatch, MismatchKind, Unverified, VerifyError, VerifyReport};
pub use search::search_terms;
pub use selection::seed_fraction;

use crate::cli::{Plan, VerifyMethod};
use crate::legacy::LegacySchema;
use crate::plugin::Plugin;
use crate::progress::Progress;
use crate::resolver::Resolver;
use selection::Selection;
use sqlx::PgPool;
use std::time::Instant;

/// Runs `-verify`.
///
/// # Errors
///
/// [`VerifyError`] when the method asked for is not offered, or the legacy
/// side cannot be read at all.
pub async fn run(
    pool: &PgPool,
    plugin: &Plugin,
    schema: &LegacySchema,
    plan: &Plan,
    show_progress: bool,
) -> Result<VerifyReport, VerifyError> {
    let started = Instant::now();
    let mut report = VerifyReport {
        mode: "verify",
        ..VerifyReport::default()
    };

    // 1. Selection: the method, the workspaces, the rows that are skips.
    let Selection {
        method,
        tree,
        picked,
    } = selection::select(pool, plugin, schema, plan, &mut report).await?;
    let carry = assumed_carry(plugin, schema);
    let progress = Progress::start("verify", None, show_progress);
    let counters = progress.counters();
    // Listed by queries of their own, while the method compares.
    let unplaced = selection::unplaced_skips(pool, method, plan.verify, picked.clone());
    let workspaces = selection::known_workspaces(pool, &tree, picked, &mut report).await?;

    // 2. Comparison, by the chosen method.
    let mut resolver = Resolver::new(tree);
    let concurrency = plan.verify_concurrency();
    let comparing = async {
        match method {
            VerifyMethod::Checksum | VerifyMethod::Scan => {
                let table = scan::WholeTable {
                    pool,
                    plugin,
                    places: scan::placements(resolver.tree()),
                    carry,
                    concurrency,
                    counters: &counters,
                };
                let part = if method == VerifyMethod::Scan {
                    scan::check(&table).await?
                } else {
                    // A fall-back to a full merge says so in its report.
                    let part = checksum::check(&table).await?;
                    report.method = part.method;
                    part
                };
                report.absorb(part);
                Ok(())
            }
            VerifyMethod::List => {
                list::ListEngine::new(&mut report, carry, counters.clone())
                    .check(pool, plugin, &mut resolver, &workspaces, concurrency)
                    .await
            }
            // Selection never leaves `auto`; it stands here for completeness.
            VerifyMethod::Search | VerifyMethod::Auto => {
                search::check(
                    pool,
                    plugin,
                    &mut resolver,
                    &workspaces,
                    carry,
                    &counters,
                    &mut report,
                )
                .await
            }
        }
    };
    let (compared, unplaced) = tokio::join!(comparing, unplaced);
    compared?;

    // 3. Report: the skips listed alongside, and the time taken.
    report.absorb(unplaced?);
    progress.finish().await;
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}
