//! Connects both plugins and runs a plan: dry-run, apply or verify.
//!
//! All three walk the same thing: the source's memories in id order, over
//! disjoint id ranges read in parallel, paired with the target's rows of the
//! same range ([`crate::compare::Merger`]). Apply writes what is missing or
//! different; dry-run counts it; verify reports it by kind, first narrowing
//! the ranges to the checksum buckets that differ when both sides can.
//! With `-embed`, apply gives every memory that arrives without an
//! embedding one from the model just before its batch is written; the four
//! ranges run at once, so one range's model work overlaps another's writes.

use crate::checkpoint::{self, RangeProgress, Slot};
use crate::cli::{mask_url, shown_url, Mode, Plan};
use crate::compare::{
    same_for_apply, verify_difference, DiffKind, IdRange, Merger, Pager, Pair, ReadError, Side,
};
use crate::db::Db;
use crate::report::{Difference, Report, RowError};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use memory_backfill::embedding::{self, EmbedSetup};
use memory_backfill::plugin::{is_transient, is_transient_code, one_line};
use memory_backfill::progress::{Counters, Progress};
use memory_client::{Client, ClientConfig};
use memory_contract::{
    capability, checksum, BatchItemResult, BatchRequest, BatchWrite, Memory, MemoryWrite,
    NamespaceKind, NamespaceUpsert,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Parallel id ranges read at once.
pub const RANGES: u32 = 4;
/// Most memories per batch write.
pub const BATCH_ROWS: usize = 500;
/// Most content bytes per batch write (the batch body limit is 16 MiB).
pub const BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Least time between two checkpoint saves.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Namespaces settled on the target at once.
pub const NAMESPACES_AT_ONCE: usize = 8;
/// Hex digits per checksum bucket.
pub const CHECKSUM_PREFIX: u32 = 2;

/// A configuration or connection problem: the run stops with exit 2.
#[derive(Debug)]
pub struct Fatal(pub String);

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn fatal(msg: impl Into<String>) -> Fatal {
    Fatal(msg.into())
}

fn client(what: &str, url: &str, token: Option<&String>) -> Result<Client, Fatal> {
    let mut config = ClientConfig::new(url).timeout(Duration::from_secs(30));
    if let Some(t) = token {
        config = config.token(t.clone());
    }
    Client::new(config).map_err(|e| fatal(format!("{what} {}: {e}", shown_url(url))))
}

async fn capabilities(what: &str, url: &str, c: &Client) -> Result<(), Fatal> {
    c.refresh_capabilities()
        .await
        .map(drop)
        .map_err(|e| fatal(format!("{what} plugin {} unreachable: {e}", shown_url(url))))
}

struct Ctx<'a> {
    plan: &'a Plan,
    source: Side<'a>,
    target: &'a Client,
    target_scan: bool,
    target_batch: bool,
    target_list: bool,
    source_list: bool,
    keep_created_at: bool,
    /// Embeddings are read from the source and written to the target.
    embeddings: bool,
    /// `-embed`: memories arriving without an embedding get one from here.
    embed: Option<EmbedSetup>,
    now: DateTime<Utc>,
    report: Mutex<Report>,
    namespaces: tokio::sync::Mutex<HashMap<String, Result<bool, String>>>,
    budget: Option<AtomicU64>,
    counters: Arc<Counters>,
    /// The checkpoint's place; its memory is never copied or compared.
    slot: Slot,
    /// Apply: keep a checkpoint (dry-run and verify neither read nor write one).
    checkpointing: bool,
    /// Per id range, how far the run got.
    progress: Mutex<Vec<RangeProgress>>,
    last_save: tokio::sync::Mutex<Instant>,
}

impl Ctx<'_> {
    fn with<R>(&self, f: impl FnOnce(&mut Report) -> R) -> R {
        f(&mut self.report.lock().expect("report lock"))
    }

    fn row_error(&self, id: Option<uuid::Uuid>, namespace: Option<&str>, message: String) {
        Counters::add(&self.counters.errors, 1);
        self.with(|r| {
            r.error(RowError {
                id,
                namespace: namespace.map(str::to_string),
                message,
            })
        });
    }

    fn read_error(&self, e: ReadError) {
        self.row_error(None, None, e.to_string());
    }

    /// Takes one write from the `-limit` budget; false when it is spent.
    fn take_budget(&self) -> bool {
        match &self.budget {
            None => true,
            Some(b) => b
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok(),
        }
    }

    /// Makes sure the memory's namespace exists on the target (apply) or
    /// notes that it would be created (dry-run). Ok(false): skip the row
    /// (its namespace expired).
    async fn ensure_namespace(&self, name: &str, write: bool) -> Result<bool, String> {
        let mut known = self.namespaces.lock().await;
        if let Some(r) = known.get(name) {
            return r.clone();
        }
        let r = match self.source_settings(name).await {
            Ok(settings) => self.settle_namespace(name, settings, write).await,
            Err(e) => Err(e),
        };
        known.insert(name.to_string(), r.clone());
        r
    }

    /// Every selected namespace of the source, with or without memories,
    /// settled on the target before any memory moves: created when
    /// missing (apply), counted (dry-run), skipped when expired. Needs a
    /// way to enumerate them: the source's tables, or its `list`
    /// extension; without one, namespaces are settled as memories meet
    /// them, and a namespace without memories stays behind (the report
    /// says so).
    async fn namespaces_first(&self, write: bool) {
        let mut after: Option<String> = None;
        loop {
            let page = match self.source {
                Side::Database(db) => db.namespaces(after.as_deref(), 1000).await,
                Side::Plugin(c) => c
                    .list_namespaces(after.as_deref(), 1000)
                    .await
                    .map(|p| {
                        let items = p
                            .namespaces
                            .into_iter()
                            .map(|n| {
                                let settings = NamespaceUpsert {
                                    kind: n.kind,
                                    expires_at: n.expires_at,
                                    metadata: n.metadata,
                                };
                                (n.name, settings)
                            })
                            .collect();
                        (items, p.next_after)
                    })
                    .map_err(|e| e.to_string()),
            };
            let (items, next) = match page {
                Ok(p) => p,
                Err(e) => {
                    self.row_error(None, None, format!("listing the source's namespaces: {e}"));
                    return;
                }
            };
            let settled: Vec<(String, Result<bool, String>)> = futures::stream::iter(
                items
                    .into_iter()
                    .filter(|(name, _)| self.plan.selection.covers(name)),
            )
            .map(|(name, settings)| async move {
                let r = self.settle_namespace(&name, settings, write).await;
                (name, r)
            })
            .buffer_unordered(NAMESPACES_AT_ONCE)
            .collect()
            .await;
            let mut known = self.namespaces.lock().await;
            for (name, r) in settled {
                if let Err(msg) = &r {
                    self.row_error(None, Some(&name), msg.clone());
                }
                known.insert(name, r);
            }
            drop(known);
            match next {
                Some(n) if Some(&n) != after.as_ref() => after = Some(n),
                _ => return,
            }
        }
    }

    /// The source's settings of one namespace.
    async fn source_settings(&self, name: &str) -> Result<NamespaceUpsert, String> {
        let read = match self.source {
            Side::Database(db) if self.source_list => Some(db.namespace(name).await),
            Side::Plugin(c) if self.source_list => Some(
                c.get_namespace(name)
                    .await
                    .map(|ns| {
                        ns.map(|ns| NamespaceUpsert {
                            kind: ns.kind,
                            expires_at: ns.expires_at,
                            metadata: ns.metadata,
                        })
                    })
                    .map_err(|e| e.to_string()),
            ),
            _ => None,
        };
        match read {
            Some(Ok(Some(ns))) => Ok(ns),
            Some(Ok(None)) => Err("namespace no longer on the source".into()),
            Some(Err(e)) => Err(format!("reading the namespace on the source: {e}")),
            None => Ok(NamespaceUpsert {
                kind: kind_from_name(name),
                expires_at: None,
                metadata: None,
            }),
        }
    }

    /// Skips an expired namespace (Ok(false)); otherwise makes sure it
    /// exists on the target (apply) or notes that it would be created.
    async fn settle_namespace(
        &self,
        name: &str,
        settings: NamespaceUpsert,
        write: bool,
    ) -> Result<bool, String> {
        if settings.expires_at.is_some_and(|at| at <= self.now) {
            self.with(|r| r.namespaces_skipped_expired += 1);
            return Ok(false);
        }
        if self.target_list {
            match self.target.get_namespace(name).await {
                Ok(Some(_)) => {
                    self.with(|r| r.namespaces_existing += 1);
                    return Ok(true);
                }
                Ok(None) => {}
                Err(e) => return Err(format!("reading the namespace on the target: {e}")),
            }
        }
        if !write {
            self.with(|r| r.namespaces_to_create.push(name.to_string()));
            return Ok(true);
        }
        match self.target.upsert_namespace(name, &settings).await {
            Ok(_) => {
                self.with(|r| {
                    if self.target_list {
                        r.namespaces_created += 1
                    } else {
                        r.namespaces_upserted_blind += 1
                    }
                });
                Ok(true)
            }
            Err(e) => Err(format!("the target refused the namespace: {e}")),
        }
    }

    fn write_of(&self, m: &Memory) -> MemoryWrite {
        MemoryWrite {
            id: Some(m.id),
            content: m.content.clone(),
            kind: m.kind,
            source: m.source,
            expires_at: m.expires_at,
            propagation: m.propagation.clone(),
            pin: Some(m.pin),
            embedding: if self.embeddings {
                m.embedding.clone()
            } else {
                None
            },
            created_at: self.keep_created_at.then_some(m.created_at),
        }
    }

    /// Whether source memory `s` reaches the target only with an embedding
    /// computed here (`-embed`, and the source's own does not travel).
    fn needs_model(&self, s: &Memory) -> bool {
        self.embed.is_some() && (!self.embeddings || s.embedding.is_none())
    }

    /// Whether the target's row `t` already holds what writing `s` would
    /// give it. With `-embed`, a memory whose embedding is computed here is
    /// identical when the target's copy has an embedding of the embedder's
    /// dimension and every other field agrees: it is not re-embedded.
    fn same_on_target(&self, s: &Memory, t: &Memory) -> bool {
        match &self.embed {
            Some(setup) if self.needs_model(s) => {
                same_for_apply(s, t, self.keep_created_at, false)
                    && t.embedding.as_ref().map(Vec::len) == Some(setup.dimension)
            }
            _ => same_for_apply(s, t, self.keep_created_at, self.embeddings),
        }
    }

    /// `-embed`: gives every write of `items` without an embedding one from
    /// the model. On failure every one of them is reported and dropped;
    /// returns true then, so the range's checkpoint stays before them.
    async fn embed_missing(&self, items: &mut Vec<(bool, BatchWrite)>) -> bool {
        let Some(setup) = &self.embed else {
            return false;
        };
        let wanted: Vec<usize> = (0..items.len())
            .filter(|&i| items[i].1.write.embedding.is_none())
            .collect();
        if wanted.is_empty() {
            return false;
        }
        let texts: Vec<String> = wanted
            .iter()
            .map(|&i| items[i].1.write.content.clone())
            .collect();
        match embedding::embed_texts(setup, &texts, &self.counters).await {
            Ok((vectors, seconds)) => {
                self.with(|r| {
                    r.embedded += vectors.len() as u64;
                    r.embed_seconds += seconds;
                });
                for (i, vector) in wanted.into_iter().zip(vectors) {
                    items[i].1.write.embedding = Some(vector);
                }
                false
            }
            Err(e) => {
                for &i in &wanted {
                    let item = &items[i].1;
                    self.row_error(item.write.id, Some(&item.namespace), e.clone());
                }
                let mut index = 0;
                items.retain(|_| {
                    let keep = !wanted.contains(&index);
                    index += 1;
                    keep
                });
                true
            }
        }
    }

    fn progress_of(&self, index: usize) -> RangeProgress {
        self.progress.lock().expect("progress lock")[index]
    }

    /// Every source memory of range `index` through `through` was handled.
    fn handled_through(&self, index: usize, through: Option<Uuid>) {
        if through.is_some() {
            self.progress.lock().expect("progress lock")[index].through = through;
        }
    }

    /// Saves the checkpoint when the last save is a second old (and no
    /// other range is saving right now).
    async fn maybe_save(&self) {
        if !self.checkpointing {
            return;
        }
        let Ok(mut last) = self.last_save.try_lock() else {
            return;
        };
        if last.elapsed() < CHECKPOINT_EVERY {
            return;
        }
        self.save_checkpoint().await;
        *last = Instant::now();
    }

    async fn save_checkpoint(&self) {
        let ranges = self.progress.lock().expect("progress lock").clone();
        if let Err(e) = checkpoint::save(self.target, &self.slot, &ranges).await {
            self.with(|r| r.checkpoint = format!("not saved: {e}"));
        }
    }

    /// Dry-run and apply over id range `index` of [`IdRange::split`].
    async fn apply_range(&self, index: usize, range: IdRange, write: bool) {
        let start = self.progress_of(index);
        if start.done {
            return;
        }
        let range = IdRange {
            after: start.through.or(range.after),
            before: range.before,
        };
        // The last source id handled: written and acknowledged, identical,
        // skipped or refused. Rows waiting in `pending` are covered only
        // once their batch is answered.
        let mut handled: Option<Uuid> = None;
        let mut finished = false;
        // A write failed for a reason that may pass later: the range's
        // checkpoint stays where it was, so the next run retries it.
        let mut stalled = false;
        // With -embed the target's embeddings are read too, to leave rows
        // that already have one alone.
        let target_embeddings = self.embeddings || self.embed.is_some();
        let target = self.target_scan.then(|| {
            Pager::new(Side::Plugin(self.target), range).with_embeddings(target_embeddings)
        });
        let source = Pager::new(self.source, range).with_embeddings(self.embeddings);
        let mut merger = Merger::new(source, target);
        let mut pending: Vec<(bool, BatchWrite)> = Vec::new();
        let mut pending_bytes = 0usize;
        loop {
            if pending.is_empty() && !stalled {
                self.handled_through(index, handled);
                self.maybe_save().await;
            }
            let pair = match merger.next().await {
                Ok(Some(p)) => p,
                Ok(None) => {
                    finished = true;
                    break;
                }
                Err(e) => {
                    self.read_error(e);
                    break;
                }
            };
            let (s, t) = match pair {
                Pair::Target(_) => continue,
                Pair::Source(s) => (s, None),
                Pair::Both(s, t) => (s, Some(t)),
            };
            let before_this = handled;
            handled = Some(s.id);
            if !self.plan.selection.covers(&s.namespace) || s.id == self.slot.id {
                continue;
            }
            Counters::add(&self.counters.scanned, 1);
            self.with(|r| r.scanned += 1);
            if s.expires_at.is_some_and(|at| at <= self.now) {
                Counters::add(&self.counters.skipped, 1);
                self.with(|r| r.skipped_expired += 1);
                continue;
            }
            let update = match &t {
                Some(t) if self.same_on_target(&s, t) => {
                    self.with(|r| r.identical += 1);
                    continue;
                }
                Some(t) => {
                    if t.namespace != s.namespace && !write {
                        // The target would refuse the write (409): say so now.
                        self.with(|r| {
                            r.differ(Difference {
                                kind: DiffKind::WrongNamespace,
                                id: s.id,
                                namespace: s.namespace.clone(),
                                target_namespace: Some(t.namespace.clone()),
                            })
                        });
                        continue;
                    }
                    true
                }
                None => false,
            };
            if write && !self.take_budget() {
                handled = before_this;
                self.with(|r| {
                    r.complete = false;
                    r.stopped = Some(format!(
                        "-limit={} writes reached",
                        self.plan.limit.unwrap_or(0)
                    ))
                });
                break;
            }
            match self.ensure_namespace(&s.namespace, write).await {
                Ok(true) => {}
                Ok(false) => {
                    Counters::add(&self.counters.skipped, 1);
                    self.with(|r| r.skipped_expired += 1);
                    continue;
                }
                Err(msg) => {
                    self.row_error(Some(s.id), Some(&s.namespace), msg);
                    continue;
                }
            }
            if !write {
                self.with(|r| {
                    if update {
                        r.updated += 1
                    } else {
                        r.created += 1
                    }
                });
                continue;
            }
            let vector_len = match &self.embed {
                Some(setup) if self.needs_model(&s) => setup.dimension,
                _ => s.embedding.as_ref().map_or(0, Vec::len),
            };
            pending_bytes += s.content.len() + 256 + 12 * vector_len;
            pending.push((
                update,
                BatchWrite {
                    namespace: s.namespace.clone(),
                    write: self.write_of(&s),
                },
            ));
            if pending.len() >= BATCH_ROWS || pending_bytes >= BATCH_BYTES {
                stalled |= self.flush(std::mem::take(&mut pending)).await;
                pending_bytes = 0;
            }
        }
        if !pending.is_empty() {
            stalled |= self.flush(pending).await;
        }
        if stalled {
            return;
        }
        self.handled_through(index, handled);
        if finished {
            self.progress.lock().expect("progress lock")[index].done = true;
        }
    }

    fn written(&self, update: bool) {
        Counters::add(&self.counters.written, 1);
        self.with(|r| {
            if update {
                r.updated += 1
            } else {
                r.created += 1
            }
        });
    }

    /// Writes `items`; true when any of them failed for a reason that may
    /// pass later (the target or the network was down), so that the
    /// checkpoint does not move past them.
    async fn flush(&self, mut items: Vec<(bool, BatchWrite)>) -> bool {
        let mut transient = self.embed_missing(&mut items).await;
        if items.is_empty() {
            return transient;
        }
        if !self.target_batch {
            for (update, item) in items {
                match self.target.write_memory(&item.namespace, &item.write).await {
                    Ok(_) => self.written(update),
                    Err(e) => {
                        transient |= is_transient(&e);
                        self.row_error(item.write.id, Some(&item.namespace), one_line(&e));
                    }
                }
            }
            return transient;
        }
        let (updates, writes): (Vec<bool>, Vec<BatchWrite>) = items.into_iter().unzip();
        let req = BatchRequest { writes };
        match self.target.write_batch(&req).await {
            Ok(answer) => {
                let mut results = answer.results.into_iter();
                for (item, update) in req.writes.iter().zip(updates) {
                    match results.next() {
                        Some(BatchItemResult::Ok(_)) => self.written(update),
                        Some(BatchItemResult::Err { error }) => {
                            transient |= is_transient_code(&error.code);
                            self.row_error(
                                item.write.id,
                                Some(&item.namespace),
                                format!("the target refused it: {error}"),
                            )
                        }
                        None => {
                            transient = true;
                            self.row_error(
                                item.write.id,
                                Some(&item.namespace),
                                "the target's batch answer has no result for it".into(),
                            )
                        }
                    }
                }
            }
            Err(e) => {
                transient |= is_transient(&e);
                for item in &req.writes {
                    self.row_error(
                        item.write.id,
                        Some(&item.namespace),
                        format!("batch write failed: {}", one_line(&e)),
                    );
                }
            }
        }
        transient
    }

    /// Verify over one id range: every selected row of either side.
    async fn verify_range(&self, range: IdRange, created_at: bool) {
        let mut merger = Merger::new(
            Pager::new(self.source, range),
            Some(Pager::new(Side::Plugin(self.target), range)),
        );
        loop {
            let pair = match merger.next().await {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => {
                    self.read_error(e);
                    break;
                }
            };
            let sel = &self.plan.selection;
            let own = self.slot.id;
            let diff = match &pair {
                Pair::Source(m) | Pair::Target(m) | Pair::Both(m, _) if m.id == own => continue,
                Pair::Source(s) if sel.covers(&s.namespace) => {
                    Some((DiffKind::Missing, s.id, s.namespace.clone(), None))
                }
                Pair::Target(t) if sel.covers(&t.namespace) => {
                    Some((DiffKind::Extra, t.id, t.namespace.clone(), None))
                }
                Pair::Both(s, t) if sel.covers(&s.namespace) || sel.covers(&t.namespace) => {
                    match verify_difference(s, t, created_at) {
                        None => {
                            self.with(|r| r.identical += 1);
                            None
                        }
                        Some(kind) => Some((
                            kind,
                            s.id,
                            s.namespace.clone(),
                            (t.namespace != s.namespace).then(|| t.namespace.clone()),
                        )),
                    }
                }
                _ => continue,
            };
            if !matches!(pair, Pair::Target(_)) {
                Counters::add(&self.counters.scanned, 1);
                self.with(|r| r.scanned += 1);
            }
            if let Some((kind, id, namespace, target_namespace)) = diff {
                Counters::add(&self.counters.errors, 1);
                self.with(|r| {
                    r.differ(Difference {
                        kind,
                        id,
                        namespace,
                        target_namespace,
                    })
                });
            }
        }
    }
}

fn kind_from_name(name: &str) -> NamespaceKind {
    match name.split_once(':').map(|(k, _)| k) {
        Some("workspace") => NamespaceKind::Workspace,
        Some("team") => NamespaceKind::Team,
        Some("org") => NamespaceKind::Org,
        _ => NamespaceKind::Custom,
    }
}

/// The buckets whose count or digest differ between the two answers, as id ranges.
fn differing_buckets(
    a: &memory_contract::ChecksumResponse,
    b: &memory_contract::ChecksumResponse,
) -> (u64, Vec<IdRange>) {
    let mut all: BTreeMap<&str, [Option<(u64, &str)>; 2]> = BTreeMap::new();
    for (side, answer) in [a, b].into_iter().enumerate() {
        for bucket in &answer.buckets {
            all.entry(bucket.prefix.as_str()).or_default()[side] =
                Some((bucket.count, bucket.digest.as_str()));
        }
    }
    let compared = all.len() as u64;
    let ranges = all
        .into_iter()
        .filter(|(_, [x, y])| {
            let norm = |v: &Option<(u64, &str)>| v.map(|(c, d)| (c, checksum::parse_digest(d)));
            norm(x) != norm(y)
        })
        .filter_map(|(name, _)| checksum::bucket_range(name))
        .map(|(low, high)| IdRange::inclusive(low, high))
        .collect();
    (compared, ranges)
}

/// Runs `plan`. `Err` is a configuration or connection problem (exit 2);
/// row errors and differences are in the report.
///
/// # Errors
/// [`Fatal`] when a side is unreachable or lacks what the run needs.
pub async fn run(plan: &Plan, show_progress: bool) -> Result<Report, Fatal> {
    let started = Instant::now();
    // -embed: the embedder is loaded (or refused) before anything connects.
    let embed = match plan.embed && plan.mode == Mode::Apply {
        true => Some(embedding::embedder_from_env().await.map_err(Fatal)?),
        false => None,
    };
    let mut report = run_with_embedder(plan, embed, show_progress).await?;
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// [`run`] with the embedder of a `-embed` plan already built (tests and
/// callers with their own embedder use it; `None` for any other plan).
///
/// # Errors
/// As [`run`]; also for `-embed` without an embedder, or a target that does
/// not advertise `embedding` with the embedder's dimension.
pub async fn run_with_embedder(
    plan: &Plan,
    embed: Option<EmbedSetup>,
    show_progress: bool,
) -> Result<Report, Fatal> {
    let started = Instant::now();
    let embed = match (plan.embed && plan.mode == Mode::Apply, embed) {
        (true, Some(setup)) => Some(setup),
        (true, None) => {
            return Err(fatal(
                "-embed needs an embedder (MEMORY_EMBED=local or remote); nothing was written",
            ))
        }
        (false, _) => None,
    };
    let target = client("target", &plan.to, plan.to_token.as_ref())?;
    let (source_client, db) = match &plan.from_database {
        Some(url) => (
            None,
            Some(Db::connect(url, &plan.from_schema).await.map_err(Fatal)?),
        ),
        None => {
            let c = client("source", &plan.from, plan.from_token.as_ref())?;
            capabilities("source", &plan.from, &c).await?;
            (Some(c), None)
        }
    };
    capabilities("target", &plan.to, &target).await?;
    if let Some(setup) = &embed {
        embedding::check_target(
            &shown_url(&plan.to),
            target.supports(capability::EMBEDDING),
            target.embedding_dimension(),
            setup,
        )
        .map_err(Fatal)?;
    }
    let source = match (&source_client, &db) {
        (Some(c), _) => Side::Plugin(c),
        (None, Some(d)) => Side::Database(d),
        (None, None) => return Err(fatal("no source")),
    };
    // What the source offers: a plugin says so; its tables have ids, namespaces and created_at.
    let source_has = |cap: &str| match source {
        Side::Plugin(c) => c.supports(cap),
        Side::Database(_) => {
            [capability::SCAN, capability::LIST, capability::CREATED_AT].contains(&cap)
        }
    };
    if !source_has(capability::SCAN) {
        return Err(fatal(format!(
            "the source plugin {} does not advertise `scan`, so its memories cannot be enumerated; \
             read its tables instead with -from-database=<postgres URL> (and -from-schema)",
            shown_url(&plan.from)
        )));
    }
    let both = |cap: &str| source_has(cap) && target.supports(cap);
    let source_shown = match (&db, url::Url::parse(&plan.from)) {
        (Some(d), _) => d.display.clone(),
        (None, Ok(u)) => mask_url(&u),
        (None, Err(_)) => String::new(),
    };
    let mut report = Report::new(
        plan.mode,
        source_shown.clone(),
        url::Url::parse(&plan.to)
            .map(|u| mask_url(&u))
            .unwrap_or_default(),
    );
    report.source_mode = match source {
        Side::Database(_) => format!(
            "database: the v1-only plugin's tables {s}.memory_records and {s}.memory_namespaces, over {RANGES} id ranges in parallel",
            s = plan.from_schema
        ),
        Side::Plugin(_) => format!(
            "scan: GET /v1/memories over {RANGES} id ranges in parallel; namespaces {}",
            if source_has(capability::LIST) {
                "listed with GET /v1/namespaces (empty ones too)"
            } else {
                "not readable (no `list`): kind taken from the name, no expiry or metadata"
            }
        ),
    };
    let keep_created_at = target.supports(capability::CREATED_AT);
    if !keep_created_at && plan.mode != Mode::Verify {
        report
            .not_carried
            .push("created_at: the target does not advertise `created_at`; memories get the time of the write".into());
    }
    let embeddings = if plan.mode == Mode::Verify {
        false
    } else {
        let (source_embeds, source_dim) = match source {
            Side::Plugin(c) => (c.supports(capability::EMBEDDING), c.embedding_dimension()),
            Side::Database(d) => (d.embedding_dim.is_some(), d.embedding_dim),
        };
        let target_dim = target.embedding_dimension();
        let carry = source_embeds && target.supports(capability::EMBEDDING);
        if carry && !plan.skip_embeddings {
            if let (Some(a), Some(b)) = (source_dim, target_dim) {
                if a != b {
                    return Err(fatal(format!(
                        "embedding dimensions differ: the source stores {a}, the target {b}; \
                         nothing was written (start the target with a {a}-dimension store, \
                         or move the memories without embeddings with -skip-embeddings)"
                    )));
                }
            }
        }
        if source_embeds && !carry {
            report.not_carried.push(
                "embedding: the target does not advertise `embedding`, so memories arrive without theirs".into(),
            );
        }
        if carry && plan.skip_embeddings {
            report
                .not_carried
                .push("embedding: left behind as -skip-embeddings asks".into());
        }
        carry && !plan.skip_embeddings
    };
    let target_scan = target.supports(capability::SCAN);
    let slot = {
        let source = match source {
            Side::Database(_) => format!("{} schema {}", source_shown, plan.from_schema),
            Side::Plugin(_) => source_shown.clone(),
        };
        let mut selection = Vec::new();
        if let Some(n) = &plan.selection.namespace {
            selection.push(format!("-namespace={n}"));
        }
        if let Some(p) = &plan.selection.namespace_prefix {
            selection.push(format!("-namespace-prefix={p}"));
        }
        checkpoint::slot(&source, &selection.join(" "))
    };
    let checkpointing = plan.mode == Mode::Apply;
    let mut ranges = vec![RangeProgress::default(); RANGES as usize];
    if checkpointing {
        match checkpoint::load(&target, &slot).await {
            Ok(Some(found)) if found.ranges.len() == ranges.len() => {
                report.checkpoint = format!(
                    "resumed from the checkpoint of {} ({} of {} id ranges finished)",
                    found
                        .updated_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    found.ranges.iter().filter(|r| r.done).count(),
                    ranges.len()
                );
                ranges = found.ranges;
            }
            Ok(_) => report.checkpoint = "none found: a full pass".into(),
            Err(e) => {
                return Err(fatal(format!(
                    "reading the checkpoint on the target {}: {e}",
                    shown_url(&plan.to)
                )))
            }
        }
    }
    let progress = Progress::start("memory-migrate", None, show_progress);
    let ctx = Ctx {
        plan,
        source,
        target: &target,
        target_scan,
        target_batch: target.supports(capability::BATCH),
        target_list: target.supports(capability::LIST),
        source_list: source_has(capability::LIST),
        keep_created_at,
        embeddings,
        embed,
        now: Utc::now(),
        report: Mutex::new(report),
        namespaces: tokio::sync::Mutex::new(HashMap::new()),
        budget: plan
            .limit
            .filter(|_| plan.mode == Mode::Apply)
            .map(AtomicU64::new),
        counters: progress.counters(),
        slot,
        checkpointing,
        progress: Mutex::new(ranges),
        last_save: tokio::sync::Mutex::new(Instant::now()),
    };
    match plan.mode {
        Mode::DryRun | Mode::Apply => {
            let write = plan.mode == Mode::Apply;
            let method = match (write, ctx.target_batch, target_scan) {
                (_, _, false) => "target lacks `scan`: every source memory is written (no comparison)",
                (true, true, true) => "rows compared with the target's scan; missing or differing ones written in batches",
                (true, false, true) => "rows compared with the target's scan; missing or differing ones written one by one (no `batch`)",
                (false, _, true) => "rows compared with the target's scan",
            };
            ctx.with(|r| r.method = method.to_string());
            if ctx.source_list {
                ctx.namespaces_first(write).await;
            } else {
                ctx.with(|r| {
                    r.not_carried.push(
                        "empty namespaces: the source has no `list`, so only namespaces holding memories move"
                            .into(),
                    )
                });
            }
            futures::future::join_all(
                IdRange::split(RANGES)
                    .into_iter()
                    .enumerate()
                    .map(|(i, range)| ctx.apply_range(i, range, write)),
            )
            .await;
            if checkpointing {
                let all_done = ctx
                    .progress
                    .lock()
                    .expect("progress lock")
                    .iter()
                    .all(|r| r.done);
                if all_done {
                    match checkpoint::clear(&target, &ctx.slot).await {
                        Ok(()) => ctx.with(|r| {
                            r.checkpoint
                                .push_str("; every range finished, checkpoint cleared")
                        }),
                        Err(e) => ctx.row_error(
                            Some(ctx.slot.id),
                            Some(checkpoint::NAMESPACE),
                            format!("clearing the finished run's checkpoint: {e}"),
                        ),
                    }
                } else {
                    ctx.save_checkpoint().await;
                    ctx.with(|r| {
                        r.checkpoint
                            .push_str("; checkpoint saved: the next -apply resumes from it")
                    });
                }
            }
        }
        Mode::Verify => {
            if !target_scan {
                progress.finish().await;
                return Err(fatal(format!(
                    "the target plugin {} does not advertise `scan`; verifying it row by row \
                     through `list` or search is not implemented yet",
                    shown_url(&plan.to)
                )));
            }
            let created_at = both(capability::CREATED_AT);
            let ranges = if let (true, Some(source)) = (both(capability::CHECKSUM), &source_client)
            {
                let wait = Duration::from_secs(300);
                let (a, b) = futures::join!(
                    source.memory_checksums_within(CHECKSUM_PREFIX, created_at, wait),
                    target.memory_checksums_within(CHECKSUM_PREFIX, created_at, wait)
                );
                let a = a.map_err(|e| fatal(format!("source checksums: {e}")));
                let b = b.map_err(|e| fatal(format!("target checksums: {e}")));
                let (a, b) = match (a, b) {
                    (Ok(a), Ok(b)) => (a, b),
                    (Err(e), _) | (_, Err(e)) => {
                        progress.finish().await;
                        return Err(e);
                    }
                };
                let (compared, ranges) = differing_buckets(&a, &b);
                ctx.with(|r| {
                    r.method = format!(
                        "checksum: bucket digests (prefix {CHECKSUM_PREFIX}, created_at {created_at}) compared, then differing buckets row by row with scan"
                    );
                    r.buckets_compared = compared;
                    r.buckets_differing = ranges.len() as u64;
                });
                ranges
            } else {
                ctx.with(|r| {
                    r.method =
                        format!("scan: every row of both sides compared (created_at {created_at})")
                });
                IdRange::split(RANGES)
            };
            futures::stream::iter(ranges)
                .map(|range| ctx.verify_range(range, created_at))
                .buffer_unordered(RANGES as usize)
                .collect::<Vec<()>>()
                .await;
        }
    }
    progress.finish().await;
    let embedder = ctx.embed.as_ref().map(EmbedSetup::describe);
    let mut report = ctx.report.into_inner().expect("report lock");
    report.embedder = embedder;
    report.namespaces_to_create.sort();
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}
