//! `memory-migrate -apply -embed`: memories from a plugin without
//! embeddings (PostgreSQL 15, no pgvector) arrive in a plugin on a SQLite
//! file keeping 384-dimension embeddings, embedded on the way by the real
//! all-MiniLM-L6-v2 model; and the refusals that come before any write.

mod common;

use common::{migrate, postgres_plugin, scan_all, sqlite_plugin_of_dim, Plugin};
use memory_backfill::embedding::EmbedSetup;
use memory_client::Client;
use memory_contract::{
    BatchRequest, BatchWrite, Memory, MemoryKind, MemorySource, MemoryWrite, NamespaceKind,
    NamespaceUpsert,
};
use memory_migrate::cli::{Mode, Plan};
use memory_migrate::run;
use std::collections::BTreeMap;
use uuid::Uuid;

const CONTENTS: [&str; 6] = [
    "The deployment pipeline failed because the database migration timed out",
    "Alice is the on-call engineer for the payments team this week",
    "The customer prefers invoices in euros",
    "Our office plants need watering every Tuesday",
    "Passwords must be rotated every ninety days",
    "Quarterly planning happens in the second week of January",
];

/// `n` memories over two namespaces, none with an embedding.
async fn seed(plugin: &Plugin, n: usize) {
    let c = plugin.client();
    for (name, kind) in [
        ("workspace:alpha", NamespaceKind::Workspace),
        ("team:beta", NamespaceKind::Team),
    ] {
        c.upsert_namespace(
            name,
            &NamespaceUpsert {
                kind,
                expires_at: None,
                metadata: None,
            },
        )
        .await
        .expect("namespace");
    }
    let writes = (0..n)
        .map(|i| BatchWrite {
            namespace: if i % 2 == 0 {
                "workspace:alpha"
            } else {
                "team:beta"
            }
            .into(),
            write: MemoryWrite {
                id: Some(Uuid::new_v4()),
                ..MemoryWrite::new(
                    format!("{} (note {i})", CONTENTS[i % CONTENTS.len()]),
                    MemoryKind::Fact,
                    MemorySource::Agent,
                )
            },
        })
        .collect();
    c.write_batch(&BatchRequest { writes })
        .await
        .expect("seed batch");
}

/// Every memory of `c` outside the migration's own namespace, with its
/// embedding.
async fn memories(c: &Client) -> BTreeMap<Uuid, Memory> {
    scan_all(c, true)
        .await
        .into_iter()
        .filter(|m| !m.namespace.starts_with("custom:memory-migrate"))
        .map(|m| (m.id, m))
        .collect()
}

async fn minilm() -> EmbedSetup {
    EmbedSetup::local(memory_testkit::minilm_model_dir())
        .await
        .expect("the model loads")
}

fn plan(from: &Plugin, to: &Plugin, embed: bool) -> Plan {
    Plan {
        embed,
        ..common::plan(Mode::Apply, from, to)
    }
}

#[tokio::test]
async fn apply_embed_gives_memories_from_a_source_without_embeddings_the_vector_of_their_content() {
    let setup = minilm().await;
    let from = postgres_plugin().await;
    seed(&from, 150).await;
    let to = sqlite_plugin_of_dim(384).await;

    let report = run::run_with_embedder(&plan(&from, &to, true), Some(setup.clone()), false)
        .await
        .expect("run");
    assert_eq!(report.errors, 0, "{report}");
    assert_eq!((report.created, report.embedded), (150, 150), "{report}");
    assert!(report.to_string().contains("embedded/s"), "{report}");

    let stored = memories(&to.client()).await;
    assert_eq!(stored.len(), 150);
    for m in stored.values() {
        let v = m.embedding.as_ref().expect("embedding present");
        assert_eq!(v.len(), 384);
        let direct = setup
            .embedder
            .embed(std::slice::from_ref(&m.content))
            .await
            .expect("embed")
            .remove(0);
        let cos = memory_embed::cosine(v, &direct);
        assert!(cos >= 0.999, "{} cosine {cos}", m.id);
    }

    // Again: every target row has its embedding and is otherwise identical.
    let again = run::run_with_embedder(&plan(&from, &to, true), Some(setup.clone()), false)
        .await
        .expect("rerun");
    assert_eq!(
        (
            again.identical,
            again.embedded,
            again.created,
            again.updated
        ),
        (150, 0, 0, 0),
        "{again}"
    );
    assert_eq!(memories(&to.client()).await, stored, "nothing rewritten");
}

#[tokio::test]
async fn apply_embed_adds_vectors_to_rows_an_earlier_run_moved_without_them() {
    let setup = minilm().await;
    let from = postgres_plugin().await;
    seed(&from, 20).await;
    let to = sqlite_plugin_of_dim(384).await;
    let bare = run::run(&plan(&from, &to, false), false)
        .await
        .expect("plain run");
    assert_eq!(bare.created, 20, "{bare}");
    assert!(memories(&to.client())
        .await
        .values()
        .all(|m| m.embedding.is_none()));

    let report = run::run_with_embedder(&plan(&from, &to, true), Some(setup), false)
        .await
        .expect("embed run");
    assert_eq!(
        (report.updated, report.embedded, report.errors),
        (20, 20, 0),
        "{report}"
    );
    assert!(memories(&to.client())
        .await
        .values()
        .all(|m| m.embedding.as_ref().is_some_and(|v| v.len() == 384)));
}

// The binary runs while this process serves the plugin: two workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_of_another_dimension_is_refused_naming_both_before_anything_is_written() {
    let setup = minilm().await;
    let from = postgres_plugin().await;
    seed(&from, 5).await;
    let to = sqlite_plugin_of_dim(1536).await;
    let err = run::run_with_embedder(&plan(&from, &to, true), Some(setup), false)
        .await
        .expect_err("refused");
    assert!(err.0.contains("384") && err.0.contains("1536"), "{err}");
    assert!(memories(&to.client()).await.is_empty());
    let namespaces = to.client().list_namespaces(None, 100).await.expect("list");
    assert!(
        namespaces.namespaces.is_empty(),
        "{:?}",
        namespaces.namespaces
    );

    // The binary: exit 2, one line naming both numbers.
    let model = memory_testkit::minilm_model_dir();
    let out = migrate(
        &[
            "-apply",
            "-embed",
            &format!("-from={}", from.url()),
            &format!("-to={}", to.url()),
        ],
        &[
            ("MEMORY_EMBED", "local"),
            (
                "MEMORY_EMBED_MODEL_DIR",
                model.to_str().expect("utf-8 path"),
            ),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("384") && err.contains("1536"), "{err}");
    assert!(memories(&to.client()).await.is_empty());
}

// The binary runs while this process serves the plugin: two workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_without_a_model_exits_2_before_anything_is_written() {
    let from = postgres_plugin().await;
    seed(&from, 3).await;
    let to = sqlite_plugin_of_dim(384).await;
    let missing = std::env::temp_dir().join(format!("no-model-{}", Uuid::new_v4()));
    let missing = missing.display().to_string();
    for env in [
        vec![("MEMORY_EMBED", "off")],
        vec![
            ("MEMORY_EMBED", "local"),
            ("MEMORY_EMBED_MODEL_DIR", missing.as_str()),
        ],
    ] {
        let out = migrate(
            &[
                "-apply",
                "-embed",
                &format!("-from={}", from.url()),
                &format!("-to={}", to.url()),
            ],
            &env,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.starts_with("memory-migrate: error: -embed"), "{err}");
    }
    assert!(memories(&to.client()).await.is_empty());
    let err = run::run_with_embedder(&plan(&from, &to, true), None, false)
        .await
        .expect_err("no embedder");
    assert!(err.0.contains("-embed needs an embedder"), "{err}");
}
