//! `-apply`: stream, map, batch, send, checkpoint.
//!
//! A reader task streams legacy rows in id order; the scanner maps each one
//! and cuts batches bounded in rows and bytes; batches go out with several
//! requests in flight (the `batch` extension, or concurrent single writes on
//! a v1-only plugin). Completions are tracked in scan order so that the
//! checkpoint only ever moves past rows whose writes were acknowledged.
//! Memory stays bounded: the channel between stages holds a few batches.
//!
//! With `-embed`, a stage between the scanner and the senders gives every
//! write that carries no embedding one from the model, [`EMBED_BATCH`] texts
//! per call, while the senders write the batches already embedded.
//!
//! [`EMBED_BATCH`]: crate::embedding::EMBED_BATCH

use crate::checkpoint::{self, CheckpointSlot};
use crate::cli::Plan;
use crate::embedding::{self, EmbedSetup};
use crate::legacy::{self, LegacyError, LegacySchema, ScanFilter};
use crate::mapping::{self, Carry, Skip};
use crate::plugin::{self, NamespaceEnsurer, Plugin};
use crate::progress::{Counters, Progress};
use crate::report::{ApplyReport, RowError, ScanCounts, SkippedRow};
use crate::resolver::{Resolver, WalkEnd};
use futures::StreamExt;
use memory_contract::{BatchItemResult, BatchRequest, BatchWrite, NamespaceKind};
use sqlx::PgPool;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Failure that stops a run before or outside row processing.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Legacy(#[from] LegacyError),
    #[error(transparent)]
    Tree(#[from] crate::resolver::TreeLoadError),
    #[error(transparent)]
    Identity(#[from] checkpoint::IdentityError),
    #[error("failed to read the checkpoint from the plugin: {0}")]
    Checkpoint(String),
}

/// How often the checkpoint is saved while rows flow.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Consecutive batches failing for a transient reason that stop the run:
/// the plugin is down, and hammering it helps no one.
const STOP_AFTER_FAILED_BATCHES: u32 = 3;

/// Everything a run needs.
pub struct ApplyContext<'a> {
    pub pool: &'a PgPool,
    pub plugin: &'a Plugin,
    pub schema: &'a LegacySchema,
    pub plan: &'a Plan,
    /// Draw progress on stderr.
    pub show_progress: bool,
    /// `-embed`: the embedder, already checked against the plugin.
    pub embed: Option<&'a EmbedSetup>,
}

/// A batch cut by the scanner.
struct Batch {
    seq: u64,
    items: Vec<(BatchWrite, NamespaceKind)>,
    /// The last scanned row when the batch was cut (skipped rows included).
    covers_through: Option<Uuid>,
    /// `-embed`: the batch could not be embedded; its rows fail (for now).
    embed_error: Option<String>,
}

/// The result of sending one batch.
struct BatchOutcome {
    seq: u64,
    covers_through: Option<Uuid>,
    written: u64,
    errors: Vec<RowError>,
    /// Some failure may pass on a later run: the checkpoint must not pass it.
    transient: bool,
    /// The whole request failed transiently (plugin down).
    whole_batch_failed: bool,
}

/// Decides which columns travel, from the plugin's capabilities and the
/// legacy schema. Embeddings travel only when the plugin advertises
/// `embedding` and accepts the legacy dimension (probed with one write).
pub async fn decide_carry(plugin: &Plugin, schema: &LegacySchema) -> (Carry, Option<String>) {
    let mut carry = Carry {
        created_at: plugin.caps.created_at,
        embedding: false,
    };
    if !schema.has_embedding {
        return (carry, None);
    }
    if !plugin.caps.embedding {
        return (
            carry,
            Some("the plugin does not advertise embedding".into()),
        );
    }
    let Some(dim) = schema.embedding_dim else {
        return (
            carry,
            Some("the legacy embedding column has no declared dimension".into()),
        );
    };
    match probe_embedding_dim(plugin, dim as usize).await {
        Ok(()) => {
            carry.embedding = true;
            (carry, None)
        }
        Err(why) => (carry, Some(why)),
    }
}

/// Writes and forgets one memory carrying an embedding of `dim` components
/// in the checkpoint namespace, to learn whether the plugin takes that size.
pub(crate) async fn probe_embedding_dim(plugin: &Plugin, dim: usize) -> Result<(), String> {
    let ns = checkpoint::CHECKPOINT_NAMESPACE;
    plugin
        .client
        .upsert_namespace(
            ns,
            &memory_contract::NamespaceUpsert {
                kind: NamespaceKind::Custom,
                expires_at: None,
                metadata: Some(serde_json::json!({"purpose": "memory-backfill checkpoint"})),
            },
        )
        .await
        .map_err(|e| format!("cannot create {ns}: {}", plugin::one_line(&e)))?;
    let mut embedding = vec![0.0f32; dim];
    if let Some(first) = embedding.first_mut() {
        *first = 1.0;
    }
    let id = checkpoint::slot_id("embedding dimension probe");
    let mut write = memory_contract::MemoryWrite::new(
        "memory-backfill embedding dimension probe",
        memory_contract::MemoryKind::Checkpoint,
        memory_contract::MemorySource::Runtime,
    );
    write.id = Some(id);
    write.embedding = Some(embedding);
    let result = plugin.client.write_memory(ns, &write).await;
    let _ = plugin.client.forget(id, ns).await;
    result.map(drop).map_err(|e| {
        format!(
            "the plugin refused a {dim}-dimension embedding ({})",
            plugin::one_line(&e)
        )
    })
}

/// Per-row bookkeeping while scanning; shared by apply and dry-run.
pub(crate) fn count_target(counts: &mut ScanCounts, target: &mapping::Target) {
    *counts.per_scope.entry(target.scope).or_default() += 1;
    if target.global_from_non_root {
        counts.global_from_non_root += 1;
    }
    if target.placement.removed {
        counts.removed_workspace_rows += 1;
    }
    let irregular = match target.placement.walk_end {
        WalkEnd::Root => None,
        WalkEnd::Cycle => Some("a cycle"),
        WalkEnd::DanglingParent => Some("a dangling parent"),
        WalkEnd::DepthCap => Some("the 50-hop cap"),
    };
    if let Some(why) = irregular {
        *counts
            .irregular_tree_rows
            .entry(why.to_string())
            .or_default() += 1;
    }
}

pub(crate) fn count_skip(counts: &mut ScanCounts, id: Uuid, skip: Skip) {
    *counts.skipped.entry(skip.reason).or_default() += 1;
    counts.skipped_rows.push(SkippedRow {
        id,
        reason: skip.reason,
        detail: skip.detail,
    });
}

/// Counts of columns that do not travel, for the report.
#[derive(Debug, Default)]
pub(crate) struct NotCarried {
    pub updated_at: u64,
    pub label: u64,
    pub embedding: u64,
}

impl NotCarried {
    pub(crate) fn observe(&mut self, row: &legacy::LegacyRow, carry: Carry) {
        if let (Some(u), Some(c)) = (row.updated_at, row.created_at) {
            if u != c {
                self.updated_at += 1;
            }
        } else if row.updated_at.is_some() {
            self.updated_at += 1;
        }
        if row.label.as_deref().is_some_and(|l| l != "general") {
            self.label += 1;
        }
        if row.embedding.is_some() && !carry.embedding {
            self.embedding += 1;
        }
    }

    pub(crate) fn into_map(self, carry: Carry, created_at_rows: u64) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        if self.updated_at > 0 {
            m.insert("updated_at".into(), self.updated_at);
        }
        if self.label > 0 {
            m.insert("namespace (label)".into(), self.label);
        }
        if self.embedding > 0 {
            m.insert("embedding".into(), self.embedding);
        }
        if !carry.created_at && created_at_rows > 0 {
            m.insert("created_at".into(), created_at_rows);
        }
        m
    }
}

/// Runs `-apply`.
///
/// # Errors
///
/// [`ApplyError`] when the legacy side cannot be read or the checkpoint
/// cannot be loaded. Row failures are counted in the report, not returned.
pub async fn run(ctx: ApplyContext<'_>) -> Result<ApplyReport, ApplyError> {
    let started = Instant::now();
    let plan = ctx.plan;
    let plugin = ctx.plugin;
    let tree = crate::resolver::WorkspaceTree::load(ctx.pool, ctx.schema.has_status).await?;
    let (carry, _) = decide_carry(plugin, ctx.schema).await;
    let use_batch = plugin.caps.batch;
    let concurrency = plan.effective_concurrency(use_batch);

    // A workspace run covers a slice the cursor does not describe: it neither
    // reads nor moves the checkpoint.
    let slot = if plan.workspace.is_none() {
        Some(CheckpointSlot::for_legacy(ctx.pool).await?)
    } else {
        None
    };
    let start_after = match (&slot, plan.restart) {
        (Some(slot), false) => checkpoint::load(plugin, slot)
            .await
            .map_err(|e| ApplyError::Checkpoint(plugin::one_line(&e)))?
            .and_then(|c| c.cursor),
        _ => None,
    };
    let filter = match plan.workspace {
        Some(ws) => ScanFilter::Workspace(ws),
        None => ScanFilter::After(start_after),
    };
    let (unchanged, total_after) = match plan.workspace {
        Some(ws) => (0, legacy::count_workspace(ctx.pool, ws).await?),
        None => {
            let after = legacy::count_after(ctx.pool, start_after).await?;
            let all = match start_after {
                Some(_) => legacy::count_after(ctx.pool, None).await?,
                None => after,
            };
            (all - after.min(all), after)
        }
    };
    let expected = match plan.limit {
        Some(l) => total_after.min(l),
        None => total_after,
    };
    let progress = Progress::start("apply", Some(expected), ctx.show_progress);
    let counters = progress.counters();

    let stop = Arc::new(AtomicBool::new(false));
    let (batch_tx, batch_rx) = tokio::sync::mpsc::channel::<Batch>(concurrency.max(2));
    // With -embed the scanner feeds the embedding stage, which feeds the
    // senders; the two channels hold a few batches each.
    let (scan_tx, embed_stage) = match ctx.embed {
        Some(setup) => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Batch>(2);
            // A restart passes over rows earlier runs copied: the plugin's
            // copies that already hold an embedding are left alone.
            let check = (plan.restart && plugin.caps.scan).then(|| plugin.clone());
            let stage = tokio::spawn(embed_batches(
                rx,
                batch_tx,
                setup.clone(),
                check,
                counters.clone(),
            ));
            (tx, Some(stage))
        }
        None => (batch_tx, None),
    };
    let rows = legacy::spawn_scan(ctx.pool.clone(), ctx.schema, filter, carry.embedding);
    let batch_rows = if use_batch { plan.batch_rows } else { 1 };
    // A vector's JSON (about 12 bytes a component) joins each write later.
    let embed_bytes = ctx.embed.map_or(0, |e| e.dimension * 12);
    let scanner = scan_into_batches(
        rows,
        tree,
        carry,
        plan.limit,
        batch_rows,
        plan.batch_bytes,
        embed_bytes,
        scan_tx,
        counters.clone(),
        stop.clone(),
    );
    let ensurer = Arc::new(NamespaceEnsurer::default());
    let sender = send_batches(
        batch_rx,
        plugin.clone(),
        ensurer.clone(),
        use_batch,
        concurrency,
        counters.clone(),
        stop.clone(),
        slot.clone(),
    );
    let (scan_result, send_result) = tokio::join!(scanner, sender);
    let embed_result = match embed_stage {
        Some(stage) => stage.await.unwrap_or_default(),
        None => EmbedOutcome::default(),
    };
    progress.finish().await;

    let mut report = ApplyReport {
        mode: "apply",
        write_path: if use_batch {
            "batch".into()
        } else {
            "single".into()
        },
        unchanged,
        ..ApplyReport::default()
    };
    let scan = scan_result;
    report.counts = scan.counts;
    report.not_carried = scan.not_carried.into_map(carry, scan.created_at_rows);
    report.written = send_result.written;
    report.errors = send_result.errors;
    report.error_rows = send_result.error_rows;
    report.namespaces_created = ensurer.created.load(Ordering::Relaxed);
    report.namespaces_existing = ensurer.existing.load(Ordering::Relaxed);
    report.namespaces_upserted_blind = ensurer.upserted_blind.load(Ordering::Relaxed);
    report.stopped = send_result.stopped.or(scan.read_error.clone());
    if let Some(setup) = ctx.embed {
        report.embedder = Some(setup.describe());
        report.embedded = embed_result.embedded;
        report.already_embedded = embed_result.already_embedded;
        report.embed_seconds = embed_result.seconds;
    }

    let reached_end = scan.reached_end && scan.read_error.is_none();
    let cursor = send_result.cursor;
    let all_done = !send_result.frozen && reached_end;
    match &slot {
        Some(slot) => {
            // `start_after` is None for a restart, so a restart pass cut short
            // replaces the old cursor by its own (re-covering more is safe).
            let final_cursor = cursor.or(start_after);
            if final_cursor != start_after || all_done || plan.restart {
                if let Err(e) = checkpoint::save(plugin, slot, final_cursor, all_done).await {
                    report.errors += 1;
                    report.error_rows.push(RowError {
                        id: None,
                        namespace: Some(checkpoint::CHECKPOINT_NAMESPACE.into()),
                        message: format!("failed to save the checkpoint: {}", plugin::one_line(&e)),
                    });
                }
            }
            report.checkpoint = final_cursor;
            report.checkpoint_namespace = Some(checkpoint::CHECKPOINT_NAMESPACE);
            report.checkpoint_id = Some(slot.id);
            report.complete = all_done;
            report.remaining = legacy::count_after(ctx.pool, final_cursor).await?;
            if all_done {
                report.remaining = 0;
            }
        }
        None => {
            report.complete = all_done;
            report.remaining = if all_done && report.errors == 0 {
                0
            } else {
                expected.saturating_sub(report.counts.scanned) + report.errors
            };
        }
    }
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// What the scanner saw.
pub(crate) struct ScanOutcome {
    pub counts: ScanCounts,
    pub not_carried: NotCarried,
    pub created_at_rows: u64,
    pub reached_end: bool,
    pub read_error: Option<String>,
}

#[allow(clippy::too_many_arguments)]
async fn scan_into_batches(
    mut rows: tokio::sync::mpsc::Receiver<Result<legacy::LegacyRow, LegacyError>>,
    tree: crate::resolver::WorkspaceTree,
    carry: Carry,
    limit: Option<u64>,
    batch_rows: usize,
    batch_bytes: usize,
    embed_bytes: usize,
    tx: tokio::sync::mpsc::Sender<Batch>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) -> ScanOutcome {
    let mut resolver = Resolver::new(tree);
    let mut out = ScanOutcome {
        counts: ScanCounts::default(),
        not_carried: NotCarried::default(),
        created_at_rows: 0,
        reached_end: false,
        read_error: None,
    };
    let mut seq = 0u64;
    let mut items: Vec<(BatchWrite, NamespaceKind)> = Vec::new();
    let mut bytes = 0usize;
    let mut last_scanned: Option<Uuid> = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if limit.is_some_and(|l| out.counts.scanned >= l) {
            break;
        }
        let Some(next) = rows.recv().await else {
            out.reached_end = true;
            break;
        };
        let row = match next {
            Ok(r) => r,
            Err(e) => {
                out.read_error = Some(e.to_string());
                break;
            }
        };
        out.counts.scanned += 1;
        Counters::add(&counters.scanned, 1);
        out.not_carried.observe(&row, carry);
        if row.created_at.is_some() {
            out.created_at_rows += 1;
        }
        last_scanned = Some(row.id);
        let mapped = mapping::target_for(&row, &mut resolver).and_then(|t| {
            let w = mapping::to_write(&row, &t, carry)?;
            Ok((t, w))
        });
        match mapped {
            Ok((target, (write, mut size))) => {
                if write.write.embedding.is_none() {
                    size += embed_bytes;
                }
                count_target(&mut out.counts, &target);
                *out.counts
                    .per_namespace_kind
                    .entry(target.kind.as_str().to_string())
                    .or_default() += 1;
                if !items.is_empty() && (items.len() >= batch_rows || bytes + size > batch_bytes) {
                    let batch = Batch {
                        seq,
                        items: std::mem::take(&mut items),
                        covers_through: id_before(row.id),
                        embed_error: None,
                    };
                    seq += 1;
                    bytes = 0;
                    if tx.send(batch).await.is_err() {
                        return out;
                    }
                }
                bytes += size + 1;
                items.push((write, target.kind));
            }
            Err(skip) => {
                Counters::add(&counters.skipped, 1);
                count_skip(&mut out.counts, row.id, skip);
            }
        }
    }
    // The final batch covers every scanned row, skipped ones at the tail too.
    let _ = tx
        .send(Batch {
            seq,
            items,
            covers_through: last_scanned,
            embed_error: None,
        })
        .await;
    out
}

/// What the embedding stage did.
#[derive(Debug, Default)]
struct EmbedOutcome {
    embedded: u64,
    already_embedded: u64,
    seconds: f64,
}

/// The `-embed` stage: gives every write without an embedding one from the
/// model, batch after batch, in scan order. With `check` (a restart pass on
/// a plugin that can scan), rows whose copy in the plugin already holds an
/// embedding and the same content and namespace are dropped from their
/// batch first: the batch still covers them, nothing is rewritten or
/// re-embedded. A batch that cannot be embedded goes on with its error, so
/// its rows are reported and the checkpoint stops before them.
async fn embed_batches(
    mut rx: tokio::sync::mpsc::Receiver<Batch>,
    tx: tokio::sync::mpsc::Sender<Batch>,
    setup: EmbedSetup,
    check: Option<Plugin>,
    counters: Arc<Counters>,
) -> EmbedOutcome {
    let mut out = EmbedOutcome::default();
    while let Some(mut batch) = rx.recv().await {
        if let Some(plugin) = &check {
            match copies_with_embedding(plugin, &batch.items).await {
                Ok(done) if !done.is_empty() => {
                    let before = batch.items.len();
                    batch.items.retain(|(w, _)| {
                        w.write.embedding.is_some()
                            || !w.write.id.is_some_and(|id| done.contains(&id))
                    });
                    out.already_embedded += (before - batch.items.len()) as u64;
                }
                Ok(_) => {}
                Err(e) => {
                    batch.embed_error = Some(format!(
                        "reading the plugin's copies of this batch (to leave rows already embedded alone) failed: {e}"
                    ))
                }
            }
        }
        let wanted: Vec<usize> = (0..batch.items.len())
            .filter(|&i| batch.items[i].0.write.embedding.is_none())
            .collect();
        if batch.embed_error.is_none() && !wanted.is_empty() {
            let texts: Vec<String> = wanted
                .iter()
                .map(|&i| batch.items[i].0.write.content.clone())
                .collect();
            match embedding::embed_texts(&setup, &texts, &counters).await {
                Ok((vectors, seconds)) => {
                    out.embedded += vectors.len() as u64;
                    out.seconds += seconds;
                    for (i, vector) in wanted.into_iter().zip(vectors) {
                        batch.items[i].0.write.embedding = Some(vector);
                    }
                }
                Err(e) => batch.embed_error = Some(e),
            }
        }
        if tx.send(batch).await.is_err() {
            break;
        }
    }
    out
}

/// The ids among `items` (those still without an embedding) whose copy in
/// the plugin holds an embedding, the same content and the same namespace.
/// Batches cover a run of consecutive legacy ids, so one scan of their id
/// range finds every copy.
async fn copies_with_embedding(
    plugin: &Plugin,
    items: &[(BatchWrite, NamespaceKind)],
) -> Result<std::collections::HashSet<Uuid>, String> {
    let wanted: HashMap<Uuid, &BatchWrite> = items
        .iter()
        .filter(|(w, _)| w.write.embedding.is_none())
        .filter_map(|(w, _)| w.write.id.map(|id| (id, w)))
        .collect();
    let mut found = std::collections::HashSet::new();
    let (Some(low), Some(high)) = (wanted.keys().min(), wanted.keys().max()) else {
        return Ok(found);
    };
    let before = high.as_u128().checked_add(1).map(Uuid::from_u128);
    let mut after = id_before(*low);
    loop {
        let page = plugin
            .client
            .scan_memories_with_embeddings(after, before, 1000)
            .await
            .map_err(|e| plugin::one_line(&e))?;
        for m in &page.memories {
            if let Some(w) = wanted.get(&m.id) {
                let has_vector = m.embedding.as_ref().is_some_and(|v| !v.is_empty());
                if has_vector && m.namespace == w.namespace && m.content == w.write.content {
                    found.insert(m.id);
                }
            }
        }
        match page.next_after {
            Some(next) if Some(next) != after => after = Some(next),
            _ => return Ok(found),
        }
    }
}

/// The largest id strictly below `current`. A batch is cut when the row
/// that does not fit is already scanned: the closed batch covers every row
/// below it (skipped ones included), and a resumed keyset scan
/// (`id > cursor`) starts exactly at `current`.
fn id_before(current: Uuid) -> Option<Uuid> {
    let n = current.as_u128();
    (n > 0).then(|| Uuid::from_u128(n - 1))
}

/// What the sender achieved.
struct SendOutcome {
    written: u64,
    errors: u64,
    error_rows: crate::report::Capped<RowError>,
    /// The checkpoint position reached (in-order acknowledged).
    cursor: Option<Uuid>,
    /// A transient failure stopped the cursor.
    frozen: bool,
    stopped: Option<String>,
}

#[allow(clippy::too_many_arguments)]
async fn send_batches(
    rx: tokio::sync::mpsc::Receiver<Batch>,
    plugin: Plugin,
    ensurer: Arc<NamespaceEnsurer>,
    use_batch: bool,
    concurrency: usize,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    slot: Option<CheckpointSlot>,
) -> SendOutcome {
    let mut outcome = SendOutcome {
        written: 0,
        errors: 0,
        error_rows: Default::default(),
        cursor: None,
        frozen: false,
        stopped: None,
    };
    let stream = tokio_stream_from(rx)
        .map(|batch| {
            let plugin = plugin.clone();
            let ensurer = ensurer.clone();
            let seq = batch.seq;
            let covers = batch.covers_through;
            let n = batch.items.len() as u64;
            let handle = tokio::spawn(send_one(batch, plugin, ensurer, use_batch));
            async move {
                match handle.await {
                    Ok(o) => o,
                    Err(e) => BatchOutcome {
                        seq,
                        covers_through: covers,
                        written: 0,
                        errors: (0..n)
                            .map(|_| RowError {
                                id: None,
                                namespace: None,
                                message: format!("send task failed: {e}"),
                            })
                            .collect(),
                        transient: true,
                        whole_batch_failed: true,
                    },
                }
            }
        })
        .buffer_unordered(concurrency);
    futures::pin_mut!(stream);
    let mut pending: BTreeMap<u64, (Option<Uuid>, bool)> = BTreeMap::new();
    let mut next_seq = 0u64;
    let mut saved_cursor: Option<Uuid> = None;
    let mut last_save = Instant::now();
    let mut failed_in_a_row = 0u32;
    while let Some(done) = stream.next().await {
        outcome.written += done.written;
        Counters::add(&counters.written, done.written);
        let n_err = done.errors.len() as u64;
        outcome.errors += n_err;
        Counters::add(&counters.errors, n_err);
        for e in done.errors {
            outcome.error_rows.push(e);
        }
        if done.whole_batch_failed {
            failed_in_a_row += 1;
            if failed_in_a_row >= STOP_AFTER_FAILED_BATCHES && outcome.stopped.is_none() {
                stop.store(true, Ordering::Relaxed);
                outcome.stopped = Some(format!(
                    "{failed_in_a_row} batches in a row failed to reach the plugin at {}; rows not attempted remain for the next run",
                    plugin.display
                ));
            }
        } else {
            failed_in_a_row = 0;
        }
        pending.insert(done.seq, (done.covers_through, done.transient));
        while let Some((covers, transient)) = pending.remove(&next_seq) {
            next_seq += 1;
            if transient {
                outcome.frozen = true;
            }
            if !outcome.frozen {
                if let Some(c) = covers {
                    outcome.cursor = Some(c);
                }
            }
        }
        if let Some(slot) = &slot {
            if outcome.cursor != saved_cursor && last_save.elapsed() >= CHECKPOINT_EVERY {
                if checkpoint::save(&plugin, slot, outcome.cursor, false)
                    .await
                    .is_ok()
                {
                    saved_cursor = outcome.cursor;
                }
                last_save = Instant::now();
            }
        }
    }
    // Rows the scanner never sent (stopped early) are simply not covered.
    outcome
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn send_one(
    batch: Batch,
    plugin: Plugin,
    ensurer: Arc<NamespaceEnsurer>,
    use_batch: bool,
) -> BatchOutcome {
    let mut out = BatchOutcome {
        seq: batch.seq,
        covers_through: batch.covers_through,
        written: 0,
        errors: Vec::new(),
        transient: false,
        whole_batch_failed: false,
    };
    if let Some(msg) = &batch.embed_error {
        // The model or the plugin's scan failed: a later run may pass.
        out.transient = true;
        out.whole_batch_failed = true;
        for (w, _) in &batch.items {
            out.errors.push(RowError {
                id: w.write.id,
                namespace: Some(w.namespace.clone()),
                message: msg.clone(),
            });
        }
        return out;
    }
    if batch.items.is_empty() {
        return out;
    }
    // Namespaces first; a namespace that cannot be made fails its rows only.
    let mut failed_ns: HashMap<String, String> = HashMap::new();
    let mut seen: Vec<&str> = Vec::new();
    for (w, kind) in &batch.items {
        if seen.contains(&w.namespace.as_str()) {
            continue;
        }
        seen.push(&w.namespace);
        if let Err(e) = ensurer.ensure(&plugin, &w.namespace, *kind).await {
            if plugin::is_transient(&e) {
                out.transient = true;
            }
            failed_ns.insert(
                w.namespace.clone(),
                format!("cannot create namespace: {}", plugin::one_line(&e)),
            );
        }
    }
    let mut writes: Vec<BatchWrite> = Vec::with_capacity(batch.items.len());
    for (w, _) in batch.items {
        if let Some(msg) = failed_ns.get(&w.namespace) {
            out.errors.push(RowError {
                id: w.write.id,
                namespace: Some(w.namespace.clone()),
                message: msg.clone(),
            });
        } else {
            writes.push(w);
        }
    }
    if writes.is_empty() {
        out.whole_batch_failed = out.transient;
        return out;
    }
    if use_batch {
        let ids: Vec<(Option<Uuid>, String)> = writes
            .iter()
            .map(|w| (w.write.id, w.namespace.clone()))
            .collect();
        match plugin.client.write_batch(&BatchRequest { writes }).await {
            Ok(resp) => {
                for (result, (id, ns)) in resp.results.into_iter().zip(ids) {
                    match result {
                        BatchItemResult::Ok(_) => out.written += 1,
                        BatchItemResult::Err { error } => {
                            if plugin::is_transient_code(&error.code) {
                                out.transient = true;
                            }
                            out.errors.push(RowError {
                                id,
                                namespace: Some(ns),
                                message: error.to_string(),
                            });
                        }
                    }
                }
            }
            Err(e) => {
                let transient = plugin::is_transient(&e);
                out.transient |= transient;
                out.whole_batch_failed = transient;
                let msg = plugin::one_line(&e);
                for (id, ns) in ids {
                    out.errors.push(RowError {
                        id,
                        namespace: Some(ns),
                        message: msg.clone(),
                    });
                }
            }
        }
    } else {
        let mut all_failed_transient = true;
        for w in writes {
            match plugin.client.write_memory(&w.namespace, &w.write).await {
                Ok(_) => {
                    out.written += 1;
                    all_failed_transient = false;
                }
                Err(e) => {
                    let transient = plugin::is_transient(&e);
                    out.transient |= transient;
                    all_failed_transient &= transient;
                    out.errors.push(RowError {
                        id: w.write.id,
                        namespace: Some(w.namespace),
                        message: plugin::one_line(&e),
                    });
                }
            }
        }
        out.whole_batch_failed = all_failed_transient;
    }
    out
}
