//! memory-migrate against real plugins on real stores: our plugin served
//! in-process over SQLite files and PostgreSQL 15 databases.

mod common;

use chrono::{Duration as ChronoDuration, Utc};
use common::{
    migrate, pg18_plugin, plan, postgres_plugin, scan_all, sqlite_plugin, sqlite_plugin_of_dim,
    sqlite_plugin_with, Plugin, BIN,
};
use memory_client::{Client, ClientConfig};
use memory_contract::{
    BatchRequest, BatchWrite, Memory, MemoryKind, MemorySource, MemoryWrite, NamespaceKind,
    NamespaceUpsert,
};
use memory_migrate::cli::{Mode, Plan};
use memory_migrate::report::Report;
use memory_migrate::run;
use std::collections::BTreeMap;
use uuid::Uuid;

const NAMESPACES: [(&str, NamespaceKind); 3] = [
    ("workspace:alpha", NamespaceKind::Workspace),
    ("team:beta", NamespaceKind::Team),
    ("org:gamma", NamespaceKind::Org),
];

/// A namespace that holds no memory: it moves all the same.
const EMPTY: &str = "custom:empty-shelf";

/// Fills `plugin` with three namespaces and `n` memories spread over them,
/// with every field set somewhere, plus [`EMPTY`]. Returns the memories as
/// written.
async fn seed(plugin: &Plugin, n: usize) -> Vec<(String, MemoryWrite)> {
    seed_with(plugin, n, None).await
}

/// As [`seed`]; with `dim`, two memories in three carry an embedding.
async fn seed_with(plugin: &Plugin, n: usize, dim: Option<usize>) -> Vec<(String, MemoryWrite)> {
    let c = plugin.client();
    c.upsert_namespace(
        EMPTY,
        &NamespaceUpsert {
            kind: NamespaceKind::Custom,
            expires_at: None,
            metadata: Some(serde_json::json!({ "shelf": "kept though empty" })),
        },
    )
    .await
    .expect("empty namespace");
    for (i, (name, kind)) in NAMESPACES.iter().enumerate() {
        c.upsert_namespace(
            name,
            &NamespaceUpsert {
                kind: *kind,
                expires_at: (i == 1).then(|| Utc::now() + ChronoDuration::days(30)),
                metadata: Some(serde_json::json!({ "owner": name, "n": i })),
            },
        )
        .await
        .expect("namespace");
    }
    let kinds = [
        MemoryKind::Fact,
        MemoryKind::Summary,
        MemoryKind::Checkpoint,
    ];
    let sources = [
        MemorySource::Agent,
        MemorySource::Runtime,
        MemorySource::User,
    ];
    let mut all = Vec::new();
    for i in 0..n {
        let ns = NAMESPACES[i % 3].0.to_string();
        let mut w = MemoryWrite::new(
            format!("memory {i}: the fact"),
            kinds[i % 3],
            sources[i % 3],
        );
        w.id = Some(Uuid::new_v4());
        w.pin = Some(i % 7 == 0);
        w.propagation = (i % 5 == 0).then(|| serde_json::json!({ "hops": i, "via": ["a"] }));
        w.expires_at = (i % 11 == 0).then(|| Utc::now() + ChronoDuration::days(10));
        w.created_at = Some(Utc::now() - ChronoDuration::days((i % 400) as i64 + 1));
        if let Some(dim) = dim.filter(|_| i % 3 != 2) {
            w.embedding = Some(
                (0..dim)
                    .map(|k| ((i * 31 + k * 7) % 97) as f32 / 97.0 - 0.5)
                    .collect(),
            );
        }
        all.push((ns, w));
    }
    for chunk in all.chunks(500) {
        let res = c
            .write_batch(&BatchRequest {
                writes: chunk
                    .iter()
                    .map(|(ns, w)| BatchWrite {
                        namespace: ns.clone(),
                        write: w.clone(),
                    })
                    .collect(),
            })
            .await
            .expect("seed batch");
        assert!(res
            .results
            .iter()
            .all(|r| matches!(r, memory_contract::BatchItemResult::Ok(_))));
    }
    all
}

async fn go(plan: &Plan) -> Report {
    run::run(plan, false).await.expect("run")
}

async fn everything(c: &Client) -> Vec<Memory> {
    scan_all(c, false).await
}

fn differences(r: &Report) -> BTreeMap<(Uuid, &'static str), String> {
    r.difference_rows
        .items
        .iter()
        .map(|d| ((d.id, d.kind.as_str()), d.namespace.clone()))
        .collect()
}

/// The target holds every source memory with the same fields.
async fn assert_same(from: &Plugin, to: &Plugin) {
    let a = everything(&from.client()).await;
    let b = everything(&to.client()).await;
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.id, y.id);
        assert_eq!(x.namespace, y.namespace);
        assert_eq!(x.content, y.content);
        assert_eq!(x.kind, y.kind);
        assert_eq!(x.source, y.source);
        assert_eq!(x.pin, y.pin);
        assert_eq!(x.propagation, y.propagation);
        assert_eq!(
            x.expires_at.map(|t| t.timestamp_micros()),
            y.expires_at.map(|t| t.timestamp_micros())
        );
        assert_eq!(
            x.created_at.timestamp_micros(),
            y.created_at.timestamp_micros()
        );
    }
    for name in NAMESPACES.iter().map(|n| n.0).chain([EMPTY]) {
        let s = from.client().get_namespace(name).await.unwrap().unwrap();
        let t = to.client().get_namespace(name).await.unwrap().unwrap();
        assert_eq!(s.kind, t.kind);
        assert_eq!(s.metadata, t.metadata);
        assert_eq!(
            s.expires_at.map(|t| t.timestamp_micros()),
            t.expires_at.map(|t| t.timestamp_micros())
        );
    }
}

/// Injects three differences on `target` from `seeded[at..at + 3]`: the
/// first memory forgotten, the second edited, the third moved to another
/// namespace. Returns what verify must report: (id, kind) -> namespace.
async fn inject_three(
    target: &Client,
    seeded: &[(String, MemoryWrite)],
    at: usize,
) -> BTreeMap<(Uuid, &'static str), String> {
    let (ns1, w1) = &seeded[at];
    let (ns2, w2) = &seeded[at + 1];
    let (ns3, w3) = &seeded[at + 2];
    target.forget(w1.id.unwrap(), ns1).await.expect("forget");
    let mut edited = w2.clone();
    edited.content = "edited on the target".into();
    target.write_memory(ns2, &edited).await.expect("edit");
    target.forget(w3.id.unwrap(), ns3).await.expect("forget");
    let elsewhere = NAMESPACES.iter().map(|n| n.0).find(|n| n != ns3).unwrap();
    target.write_memory(elsewhere, w3).await.expect("move");
    [
        ((w1.id.unwrap(), "missing"), ns1.clone()),
        ((w2.id.unwrap(), "content_differs"), ns2.clone()),
        ((w3.id.unwrap(), "wrong_namespace"), ns3.clone()),
    ]
    .into_iter()
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_postgres_apply_twice_verify_and_find_three_injected_differences() {
    let from = sqlite_plugin().await;
    let to = postgres_plugin().await;
    let seeded = seed(&from, 2500).await;
    let n = seeded.len() as u64;

    let first = go(&plan(Mode::Apply, &from, &to)).await;
    assert_eq!(first.errors, 0, "{first}");
    assert_eq!(first.created, n, "{first}");
    assert_eq!(first.namespaces_created, 4, "{first}");
    assert!(first.source_mode.starts_with("scan:"), "{first}");
    // The SQLite plugin keeps embeddings; Postgres 15 has no pgvector: said, not silent.
    assert!(
        first
            .not_carried
            .iter()
            .any(|n| n.starts_with("embedding:")),
        "{first}"
    );
    assert_eq!(first.exit_code(), 0);

    let again = go(&plan(Mode::Apply, &from, &to)).await;
    assert_eq!(again.errors, 0, "{again}");
    assert_eq!(again.created + again.updated, 0, "{again}");
    assert_eq!(again.identical, n, "{again}");
    assert_eq!(again.namespaces_created, 0, "{again}");
    assert_same(&from, &to).await;

    let clean = go(&plan(Mode::Verify, &from, &to)).await;
    assert_eq!(clean.difference_total(), 0, "{clean}");
    assert!(clean.method.starts_with("checksum"), "{clean}");
    assert_eq!(clean.buckets_differing, 0, "{clean}");
    assert_eq!(clean.exit_code(), 0);

    // Inject three differences on the target.
    let want = inject_three(&to.client(), &seeded, 0).await;
    let id3 = seeded[2].1.id.unwrap();

    let found = go(&plan(Mode::Verify, &from, &to)).await;
    assert_eq!(found.difference_total(), 3, "{found}");
    assert_eq!(differences(&found), want, "{found}");
    assert!(found.buckets_differing >= 1 && found.buckets_differing <= 3);
    assert_eq!(found.exit_code(), 1);

    // The real binary agrees, with exit codes.
    let out = migrate(
        &[
            "-verify",
            "--json",
            "-from",
            &from.url(),
            &format!("--to={}", to.url()),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(json["differences"]["missing"], 1);
    assert_eq!(json["differences"]["content_differs"], 1);
    assert_eq!(json["differences"]["wrong_namespace"], 1);

    // Dry-run says what apply would do.
    let dry = go(&plan(Mode::DryRun, &from, &to)).await;
    assert_eq!((dry.created, dry.updated), (1, 1), "{dry}");
    assert_eq!(dry.differences.get("wrong_namespace"), Some(&1), "{dry}");
    assert!(dry.namespaces_to_create.is_empty(), "{dry}");

    // Apply repairs the first two; the moved row is refused by the target and reported.
    let repair = go(&plan(Mode::Apply, &from, &to)).await;
    assert_eq!((repair.created, repair.updated), (1, 1), "{repair}");
    assert_eq!(repair.errors, 1, "{repair}");
    assert_eq!(repair.error_rows.items[0].id, Some(id3), "{repair}");
    assert_eq!(repair.exit_code(), 1);
    let after = go(&plan(Mode::Verify, &from, &to)).await;
    assert_eq!(differences(&after).len(), 1, "{after}");
    assert!(differences(&after).contains_key(&(id3, "wrong_namespace")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_to_sqlite_in_limited_steps_then_verify_clean() {
    let from = postgres_plugin().await;
    let to = sqlite_plugin().await;
    let n = seed(&from, 1200).await.len() as u64;

    let dry = go(&plan(Mode::DryRun, &from, &to)).await;
    assert_eq!(dry.created, n, "{dry}");
    assert_eq!(dry.namespaces_to_create.len(), 4, "{dry}");
    assert!(everything(&to.client()).await.is_empty());

    let mut limited = plan(Mode::Apply, &from, &to);
    limited.limit = Some(300);
    let step1 = go(&limited).await;
    assert_eq!(step1.created, 300, "{step1}");
    assert!(!step1.complete);
    assert!(step1.checkpoint.contains("checkpoint saved"), "{step1}");
    let step2 = go(&limited).await;
    assert_eq!(step2.created, 300, "{step2}");
    // It resumed after the first run's cursors instead of comparing again.
    assert!(step2.checkpoint.starts_with("resumed"), "{step2}");
    assert_eq!(step2.identical, 0, "{step2}");
    let on_target = everything(&to.client()).await;
    let (own, data): (Vec<_>, Vec<_>) = on_target
        .iter()
        .partition(|m| m.namespace == memory_migrate::checkpoint::NAMESPACE);
    assert_eq!((data.len(), own.len()), (600, 1));

    let rest = go(&plan(Mode::Apply, &from, &to)).await;
    assert_eq!(rest.errors, 0, "{rest}");
    assert_eq!(rest.created, n - 600, "{rest}");
    assert_eq!(rest.identical, 0, "{rest}");
    assert!(rest.complete);
    assert!(rest.checkpoint.contains("cleared"), "{rest}");
    assert_eq!(
        to.client()
            .get_namespace(memory_migrate::checkpoint::NAMESPACE)
            .await
            .unwrap(),
        None,
        "a finished run leaves nothing of its own on the target"
    );
    assert_same(&from, &to).await;

    let clean = go(&plan(Mode::Verify, &from, &to)).await;
    assert_eq!(clean.difference_total(), 0, "{clean}");
    assert_eq!(clean.exit_code(), 0);

    // One namespace only.
    let mut one = plan(Mode::Verify, &from, &to);
    one.selection.namespace = Some("team:beta".into());
    let only = go(&one).await;
    assert_eq!(only.difference_total(), 0, "{only}");
}

#[test]
fn usage_and_configuration_errors_exit_2_with_one_masked_line() {
    let out = migrate(&["-from=http://a:1", "-to=http://b:2"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("memory-migrate: error: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");

    let out = migrate(
        &["-apply"],
        &[
            ("MEMORY_MIGRATE_FROM", "http://user:hunter2@127.0.0.1:1/"),
            ("MEMORY_MIGRATE_TO", "http://127.0.0.1:2/"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("memory-migrate: error: "), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains("***"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn into_a_v1_only_plugin_writes_one_by_one_and_verify_exits_2() {
    let from = sqlite_plugin().await;
    let to = sqlite_plugin_with(
        Default::default(),
        memory_plugin::server::ServerConfig {
            v1_only: true,
            ..Default::default()
        },
    )
    .await;
    let n = seed(&from, 60).await.len() as u64;

    let applied = go(&plan(Mode::Apply, &from, &to)).await;
    assert_eq!(applied.errors, 0, "{applied}");
    assert_eq!(applied.created, n, "{applied}");
    assert_eq!(applied.namespaces_upserted_blind, 4, "{applied}");
    assert!(applied.method.contains("lacks `scan`"), "{applied}");
    assert!(
        applied
            .not_carried
            .iter()
            .any(|s| s.starts_with("created_at")),
        "{applied}"
    );
    // Every memory is there: newest-first search per namespace sees them all.
    let mut seen = 0;
    for (name, _) in NAMESPACES {
        let found = to
            .client()
            .search(&memory_contract::SearchRequest {
                namespaces: vec![name.to_string()],
                query: None,
                kinds: None,
                limit: Some(100),
                embedding: None,
                mode: None,
            })
            .await
            .expect("search");
        seen += found.memories.len() as u64;
    }
    assert_eq!(seen, n);

    let out = migrate(&["-verify", "-from", &from.url(), "-to", &to.url()], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not advertise `scan`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_three_times_mid_apply_then_finished_is_exact() {
    let from = sqlite_plugin().await;
    let to = postgres_plugin().await;
    let n = seed(&from, 8000).await.len();
    let count = |c: Client| async move {
        let sums = c.memory_checksums(1, false).await.expect("checksums");
        sums.buckets.iter().map(|b| b.count).sum::<u64>()
    };
    // Each run is killed as soon as the target holds more memories than before it started.
    for step in 1..=3u64 {
        let before = count(to.client()).await;
        let mut child = tokio::process::Command::new(BIN)
            .args(["-apply", "--json", "-from", &from.url(), "-to", &to.url()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        loop {
            if child.try_wait().expect("try_wait").is_some() || count(to.client()).await > before {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        let _ = child.start_kill();
        let _ = child.wait().await;
        eprintln!(
            "run {step} killed: {} memories on the target",
            count(to.client()).await
        );
    }
    let partial = everything(&to.client()).await.len();
    eprintln!("after three kills: {partial} of {n} memories on the target");
    assert!(partial <= n);
    let out = tokio::process::Command::new(BIN)
        .args(["-apply", "--json", "-from", &from.url(), "-to", &to.url()])
        .output()
        .await
        .expect("finish");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        json["created"].as_u64().unwrap()
            + json["updated"].as_u64().unwrap()
            + json["identical"].as_u64().unwrap(),
        n as u64,
        "{json}"
    );
    assert_eq!(everything(&to.client()).await.len(), n);
    assert_same(&from, &to).await;
    let clean = go(&plan(Mode::Verify, &from, &to)).await;
    assert_eq!(clean.difference_total(), 0, "{clean}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_a_v1_only_plugins_tables_apply_verify_and_find_three_differences() {
    // The v1-only plugin: our plugin on its own Postgres database, serving plain v1.
    let db = memory_testkit::pg15().await;
    let store = memory_plugin::store::open(Some(db.url()), &Default::default())
        .await
        .expect("plugin store");
    let v1 = memory_plugin::server::spawn(
        store.clone(),
        memory_plugin::server::ServerConfig {
            v1_only: true,
            ..Default::default()
        },
    )
    .await
    .expect("v1-only plugin");
    assert!(!Client::new(ClientConfig::new(v1.url()))
        .unwrap()
        .refresh_capabilities()
        .await
        .unwrap()
        .iter()
        .any(|c| c == "scan"));
    // Seeded through a full server on the same store (v1 cannot keep created_at).
    let full = Plugin {
        server: memory_plugin::server::spawn(store, Default::default())
            .await
            .expect("seeding server"),
        _db: None,
        _dir: None,
    };
    let seeded = seed(&full, 1500).await;
    let n = seeded.len() as u64;
    let to = sqlite_plugin().await;
    let source = Plugin {
        server: v1,
        _db: Some(db),
        _dir: None,
    };

    // -from pointing at the v1-only plugin: exit 2, saying to read its tables.
    let out = migrate(&["-dry-run", "-from", &source.url(), "-to", &to.url()], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("-from-database"));

    let db_url = source._db.as_ref().unwrap().url().to_string();
    let mut p = plan(Mode::Apply, &source, &to);
    p.from = String::new();
    p.from_database = Some(db_url.clone());
    let first = go(&p).await;
    assert!(first.source_mode.starts_with("database:"), "{first}");
    assert_eq!((first.created, first.errors), (n, 0), "{first}");
    assert_eq!(first.namespaces_created, 4, "{first}");
    let again = go(&p).await;
    assert_eq!(
        (again.created, again.updated, again.identical),
        (0, 0, n),
        "{again}"
    );
    assert_same(&full, &to).await;

    p.mode = Mode::Verify;
    let clean = go(&p).await;
    assert_eq!(clean.difference_total(), 0, "{clean}");
    assert!(clean.method.starts_with("scan"), "{clean}");

    let want = inject_three(&to.client(), &seeded, 3).await;
    let found = go(&p).await;
    assert_eq!(differences(&found), want, "{found}");
    assert_eq!(found.exit_code(), 1);

    // The binary, with the database's password masked in a failure.
    let out = migrate(
        &[
            "-verify",
            "-from-database=postgres://u:sekrit@127.0.0.1:1/none",
            &format!("-to={}", to.url()),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("memory-migrate: error: "), "{err}");
    assert!(!err.contains("sekrit"), "{err}");
}

/// Every memory of `c` with its embedding, by id.
async fn embeddings_of(c: &Client) -> BTreeMap<Uuid, Option<Vec<f32>>> {
    scan_all(c, true)
        .await
        .into_iter()
        .map(|m| (m.id, m.embedding))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ours_to_ours_on_postgres_18_carries_embeddings_and_refuses_another_dimension() {
    const DIM: usize = 8;
    let from = pg18_plugin(DIM).await;
    let to = pg18_plugin(DIM).await;
    let seeded = seed_with(&from, 900, Some(DIM)).await;
    let n = seeded.len() as u64;
    assert_eq!(
        from.client().health().await.unwrap().embedding_dimension,
        Some(DIM)
    );

    let first = go(&plan(Mode::Apply, &from, &to)).await;
    assert_eq!((first.created, first.errors), (n, 0), "{first}");
    assert_eq!(first.namespaces_created, 4, "{first}");
    assert!(first.not_carried.is_empty(), "{first}");
    let source_vectors = embeddings_of(&from.client()).await;
    assert_eq!(
        source_vectors.values().filter(|e| e.is_some()).count(),
        600,
        "two memories in three were seeded with an embedding"
    );
    assert_eq!(embeddings_of(&to.client()).await, source_vectors);
    assert_same(&from, &to).await;

    let again = go(&plan(Mode::Apply, &from, &to)).await;
    assert_eq!(
        (again.created, again.updated, again.identical, again.errors),
        (0, 0, n, 0),
        "{again}"
    );

    // An embedding lost on the target is written again by the next apply.
    let (ns0, w0) = &seeded[0];
    let mut bare = w0.clone();
    bare.embedding = None;
    to.client().write_memory(ns0, &bare).await.unwrap();
    let repair = go(&plan(Mode::Apply, &from, &to)).await;
    assert_eq!((repair.updated, repair.errors), (1, 0), "{repair}");
    assert_eq!(embeddings_of(&to.client()).await, source_vectors);

    let clean = go(&plan(Mode::Verify, &from, &to)).await;
    assert_eq!(clean.difference_total(), 0, "{clean}");

    let want = inject_three(&to.client(), &seeded, 10).await;
    let found = go(&plan(Mode::Verify, &from, &to)).await;
    assert_eq!(differences(&found), want, "{found}");
    assert_eq!(found.exit_code(), 1);

    // A target of another dimension: exit 2 naming both, before any write.
    let narrow = sqlite_plugin_of_dim(4).await;
    let out = migrate(&["-apply", "-from", &from.url(), "-to", &narrow.url()], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("source stores 8") && err.contains("target 4"),
        "{err}"
    );
    assert!(everything(&narrow.client()).await.is_empty());
    assert_eq!(narrow.client().get_namespace(EMPTY).await.unwrap(), None);

    // -skip-embeddings moves everything else, and says so.
    let mut p = plan(Mode::Apply, &from, &narrow);
    p.skip_embeddings = true;
    let skipped = go(&p).await;
    assert_eq!((skipped.created, skipped.errors), (n, 0), "{skipped}");
    assert!(
        skipped
            .not_carried
            .iter()
            .any(|n| n.contains("-skip-embeddings")),
        "{skipped}"
    );
    assert!(embeddings_of(&narrow.client())
        .await
        .values()
        .all(Option::is_none));
    assert_same(&from, &narrow).await;
}
