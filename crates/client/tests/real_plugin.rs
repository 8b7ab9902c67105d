//! Every client method against our real plugin (PostgreSQL 15 store) over HTTP.

use memory_client::{Client, ClientConfig, ClientError};
use memory_contract::checksum::{memory_digest, Accumulator};
use memory_contract::{
    capability, BatchItemResult, BatchRequest, BatchWrite, ErrorCode, MemoryKind, MemorySource,
    MemoryWrite, NamespaceKind, NamespacePatch, NamespaceUpsert, SearchRequest,
};
use memory_plugin::server::{spawn, ServerConfig, SpawnedServer};
use memory_plugin::store::postgres::{PgOptions, PgStore};
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

struct Running {
    server: SpawnedServer,
    _db: memory_testkit::TestDb,
}

async fn plugin(config: ServerConfig) -> Running {
    let db = memory_testkit::pg15().await;
    let store = PgStore::connect(db.url(), PgOptions::default())
        .await
        .expect("connect PgStore");
    let server = spawn(Arc::new(store), config).await.expect("spawn plugin");
    Running { server, _db: db }
}

fn upsert(kind: NamespaceKind) -> NamespaceUpsert {
    NamespaceUpsert {
        kind,
        expires_at: None,
        metadata: Some(json!({"team": "blue"})),
    }
}

fn fact(content: &str) -> MemoryWrite {
    MemoryWrite::new(content, MemoryKind::Fact, MemorySource::Agent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_round_trips_against_the_postgres_plugin() {
    let running = plugin(ServerConfig::default()).await;
    let client =
        Client::new(ClientConfig::new(format!("{}/", running.server.url()))).expect("client");

    // Capabilities.
    assert_eq!(client.capabilities(), None);
    assert!(!client.supports(capability::LIST), "no snapshot yet");
    let health = client.health().await.expect("health");
    assert_eq!(health.status, "ok");
    let caps = client.refresh_capabilities().await.expect("capabilities");
    assert!(caps.iter().any(|c| c == capability::TTL));
    assert!(client.supports(capability::LIST) && client.supports(capability::BATCH));
    assert!(
        !client.supports(capability::EMBEDDING),
        "PostgreSQL 15 has no pgvector"
    );

    // Namespaces.
    let ns = "workspace:client-test";
    let other = "team:client-test";
    assert_eq!(client.get_namespace(ns).await.expect("get absent"), None);
    let created = client
        .upsert_namespace(ns, &upsert(NamespaceKind::Workspace))
        .await
        .expect("put");
    assert_eq!(created.kind, NamespaceKind::Workspace);
    assert_eq!(created.metadata, Some(json!({"team": "blue"})));
    client
        .upsert_namespace(other, &upsert(NamespaceKind::Team))
        .await
        .expect("put other");
    let fetched = client
        .get_namespace(ns)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(fetched.created_at, created.created_at);
    let patched = client
        .patch_namespace(
            ns,
            &NamespacePatch {
                expires_at: None,
                metadata: Some(json!({"team": "red"})),
            },
        )
        .await
        .expect("patch");
    assert_eq!(patched.metadata, Some(json!({"team": "red"})));

    // Writes: without id, with id twice (upsert), id from another namespace (409).
    let first = client
        .write_memory(ns, &fact("tea at noon"))
        .await
        .expect("write");
    assert_eq!(first.namespace, ns);
    let id = Uuid::new_v4();
    let mut keyed = fact("version one");
    keyed.id = Some(id);
    keyed.pin = Some(true);
    keyed.propagation = Some(json!({"hops": [1, 2]}));
    client.write_memory(ns, &keyed).await.expect("keyed write");
    keyed.content = "version two".into();
    assert_eq!(
        client
            .write_memory(ns, &keyed)
            .await
            .expect("keyed rewrite")
            .id,
        id
    );
    let conflict = client.write_memory(other, &keyed).await.unwrap_err();
    assert_eq!(conflict.status(), Some(409), "{conflict:?}");
    assert_eq!(conflict.code(), Some(&ErrorCode::Conflict));

    // Batch: a locally invalid item is answered in place, the rest are sent.
    let batch = BatchRequest {
        writes: vec![
            BatchWrite {
                namespace: other.into(),
                write: fact("batch one"),
            },
            BatchWrite {
                namespace: other.into(),
                write: fact("  "),
            },
            BatchWrite {
                namespace: "team:absent".into(),
                write: fact("batch three"),
            },
            BatchWrite {
                namespace: other.into(),
                write: fact("batch four"),
            },
        ],
    };
    let results = client.write_batch(&batch).await.expect("batch").results;
    assert_eq!(results.len(), 4);
    assert!(matches!(&results[0], BatchItemResult::Ok(a) if a.namespace == other));
    assert!(
        matches!(&results[1], BatchItemResult::Err { error } if error.code == ErrorCode::BadRequest)
    );
    assert!(
        matches!(&results[2], BatchItemResult::Err { error } if error.code == ErrorCode::NotFound)
    );
    assert!(matches!(&results[3], BatchItemResult::Ok(_)));

    // Search: pinned first, propagation kept, exact namespaces.
    let found = client
        .search(&SearchRequest {
            namespaces: vec![ns.into()],
            ..SearchRequest::default()
        })
        .await
        .expect("search")
        .memories;
    let contents: Vec<&str> = found.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["version two", "tea at noon"]);
    assert!(found[0].pin);
    assert_eq!(found[0].propagation, Some(json!({"hops": [1, 2]})));
    let fts = client
        .search(&SearchRequest {
            namespaces: vec![ns.into()],
            query: Some("tea".into()),
            ..SearchRequest::default()
        })
        .await
        .expect("fts search")
        .memories;
    assert_eq!(fts.len(), 1);
    assert!(fts[0].score.is_some());

    // List pages through everything in id order.
    let page = client
        .list_memories(other, None, 1)
        .await
        .expect("list page");
    assert_eq!(page.memories.len(), 1);
    let rest = client
        .list_memories(other, page.next_after, 0)
        .await
        .expect("list rest");
    assert_eq!(rest.memories.len(), 1);
    assert!(page.memories[0].id < rest.memories[0].id);
    assert_eq!(rest.next_after, None);

    // Scan pages through every namespace in id order.
    let mut scanned = Vec::new();
    let mut after = None;
    loop {
        let page = client
            .scan_memories(after, None, 2)
            .await
            .expect("scan page");
        scanned.extend(page.memories.into_iter().map(|m| (m.id, m.namespace)));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert!(scanned.windows(2).all(|w| w[0].0 < w[1].0), "{scanned:?}");
    assert!(scanned.iter().any(|(_, n)| n == ns));
    assert!(scanned.iter().any(|(_, n)| n == other));
    assert!(scanned.iter().any(|(id, _)| *id == first.id));
    assert!(client.scan_memories(None, None, 1001).await.is_err());

    // Checksums digest what scan returns, per bucket of id prefixes.
    let all = client
        .scan_memories(None, None, 1000)
        .await
        .expect("scan all")
        .memories;
    for (prefix, created_at) in [(1, true), (3, false), (0, false)] {
        let sums = client
            .memory_checksums(prefix, created_at)
            .await
            .expect("checksums");
        let prefix = if prefix == 0 { 2 } else { prefix };
        assert_eq!((sums.prefix, sums.created_at), (prefix, created_at));
        let mut expected = Accumulator::new(prefix);
        for m in &all {
            expected.add(
                m.id,
                memory_digest(
                    m.id,
                    &m.namespace,
                    &m.content,
                    created_at.then_some(m.created_at),
                ),
            );
        }
        assert_eq!(sums.buckets, expected.into_wire());
    }
    let patient = client
        .memory_checksums_within(3, true, std::time::Duration::from_secs(600))
        .await
        .expect("checksums with a longer timeout");
    assert_eq!(patient, client.memory_checksums(3, true).await.unwrap());
    let err = client.memory_checksums(5, false).await.unwrap_err();
    assert!(matches!(err, ClientError::Validation(_)), "{err:?}");

    // Forget: wrong namespace is 404 and keeps the memory; right one deletes.
    let wrong = client.forget(first.id, other).await.unwrap_err();
    assert_eq!(wrong.code(), Some(&ErrorCode::NotFound));
    client.forget(first.id, ns).await.expect("forget");
    assert!(client
        .forget(first.id, ns)
        .await
        .unwrap_err()
        .is_not_found());

    // Delete.
    client.delete_namespace(ns).await.expect("delete");
    assert!(client
        .delete_namespace(ns)
        .await
        .unwrap_err()
        .is_not_found());
    assert_eq!(client.get_namespace(ns).await.expect("get deleted"), None);
    let missing = client
        .write_memory(ns, &fact("into nothing"))
        .await
        .unwrap_err();
    assert!(missing.is_not_found(), "{missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_required_and_accepted_by_the_plugin() {
    let running = plugin(ServerConfig {
        token: Some("right-token".into()),
        ..ServerConfig::default()
    })
    .await;
    let ns = "workspace:token-test";
    let good =
        Client::new(ClientConfig::new(running.server.url()).token("right-token")).expect("client");
    good.upsert_namespace(ns, &upsert(NamespaceKind::Workspace))
        .await
        .expect("authorised PUT");

    let bad =
        Client::new(ClientConfig::new(running.server.url()).token("wrong-token")).expect("client");
    let err = bad
        .upsert_namespace(ns, &upsert(NamespaceKind::Workspace))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401), "{err:?}");
    assert!(!format!("{err:?} {err}").contains("wrong-token"));

    let anonymous = Client::new(ClientConfig::new(running.server.url())).expect("client");
    assert!(matches!(
        anonymous.delete_namespace(ns).await,
        Err(ClientError::Api { status: 401, .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extensions_are_refused_locally_against_a_v1_only_plugin() {
    let running = plugin(ServerConfig {
        v1_only: true,
        ..ServerConfig::default()
    })
    .await;
    // Without a snapshot the client takes one first, so a v1-only plugin's
    // route-level 404 is never mistaken for an absent namespace.
    let fresh = Client::new(ClientConfig::new(running.server.url())).expect("client");
    let err = fresh.get_namespace("workspace:x").await.unwrap_err();
    assert!(
        matches!(err, ClientError::Unsupported(ref c) if c == capability::LIST),
        "{err:?}"
    );

    let client = Client::new(ClientConfig::new(running.server.url())).expect("client");
    client.refresh_capabilities().await.expect("health");
    assert!(!client.supports(capability::BATCH));
    let err = client
        .list_memories("workspace:x", None, 10)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Unsupported(ref c) if c == capability::LIST),
        "{err:?}"
    );
    let err = client.scan_memories(None, None, 10).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Unsupported(ref c) if c == capability::SCAN),
        "{err:?}"
    );
    let err = client.memory_checksums(2, false).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Unsupported(ref c) if c == capability::CHECKSUM),
        "{err:?}"
    );
    let err = client
        .write_batch(&BatchRequest { writes: vec![] })
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Unsupported(_)), "{err:?}");
}
