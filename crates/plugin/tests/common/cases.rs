//! The cases of the shared storage suite, one async function each, taking a
//! fresh, empty store. See the parent module for how to run them.

use chrono::{DateTime, Duration, Utc};
use memory_contract::checksum::{self, Accumulator};
use memory_contract::{
    BatchWrite, ChecksumBucket, Memory, MemoryKind, MemorySource, MemoryWrite, NamespaceKind,
    NamespacePatch, NamespaceUpsert,
};
use memory_plugin::store::{SearchQuery, Store, StoreError};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use uuid::Uuid;

// ---- fixtures ----------------------------------------------------------

/// Creates a live namespace of kind `custom`.
pub async fn make_namespace(store: &dyn Store, name: &str) {
    store
        .upsert_namespace(name, &upsert(NamespaceKind::Custom))
        .await
        .unwrap_or_else(|e| panic!("cannot create namespace {name}: {e}"));
}

pub fn upsert(kind: NamespaceKind) -> NamespaceUpsert {
    NamespaceUpsert {
        kind,
        expires_at: None,
        metadata: None,
    }
}

pub fn fact(content: &str) -> MemoryWrite {
    MemoryWrite::new(content, MemoryKind::Fact, MemorySource::Agent)
}

pub fn with_id(mut write: MemoryWrite, id: Uuid) -> MemoryWrite {
    write.id = Some(id);
    write
}

/// Writes and returns the new id, panicking on error.
pub async fn write(store: &dyn Store, namespace: &str, write: MemoryWrite) -> Uuid {
    store
        .write_memory(namespace, &write)
        .await
        .unwrap_or_else(|e| panic!("write to {namespace} failed: {e}"))
        .id
}

pub fn query(namespaces: &[&str]) -> SearchQuery {
    SearchQuery {
        namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
        query: None,
        kinds: Vec::new(),
        limit: 100,
        embedding: None,
    }
}

pub fn text_query(namespaces: &[&str], text: &str) -> SearchQuery {
    SearchQuery {
        query: Some(text.to_string()),
        ..query(namespaces)
    }
}

pub async fn search(store: &dyn Store, q: &SearchQuery) -> Vec<Memory> {
    store
        .search(q)
        .await
        .unwrap_or_else(|e| panic!("search {q:?} failed: {e}"))
}

pub fn contents(memories: &[Memory]) -> Vec<&str> {
    memories.iter().map(|m| m.content.as_str()).collect()
}

/// Every live memory of `namespace`, through the list call.
pub async fn all_memories(store: &dyn Store, namespace: &str) -> Vec<Memory> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_memories(namespace, after, 1000)
            .await
            .unwrap_or_else(|e| panic!("list of {namespace} failed: {e}"));
        out.extend(page.memories);
        match page.next_after {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

/// Every live memory of every live namespace, through the scan call.
pub async fn scan_all(store: &dyn Store) -> Vec<Memory> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .scan_memories(after, None, 1000, false)
            .await
            .unwrap_or_else(|e| panic!("scan failed: {e}"));
        out.extend(page.memories);
        match page.next_after {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

/// The checksum buckets of `memories`, computed in Rust from the definition.
pub fn expected_checksums(
    memories: &[Memory],
    prefix: u32,
    created_at: bool,
) -> Vec<ChecksumBucket> {
    let mut buckets = Accumulator::new(prefix);
    for m in memories {
        buckets.add(
            m.id,
            checksum::memory_digest(
                m.id,
                &m.namespace,
                &m.content,
                created_at.then_some(m.created_at),
            ),
        );
    }
    buckets.into_wire()
}

/// A timestamp with whole microseconds, as databases store them.
pub fn at(seconds_ago: i64) -> DateTime<Utc> {
    let t = Utc::now() - Duration::seconds(seconds_ago);
    DateTime::from_timestamp_micros(t.timestamp_micros()).expect("timestamp in range")
}

fn assert_not_found(result: Result<impl std::fmt::Debug, StoreError>, mentions: &str) {
    match result {
        Err(StoreError::NotFound(msg)) => assert!(
            msg.contains(mentions),
            "NotFound message {msg:?} does not mention {mentions:?}"
        ),
        other => panic!("expected NotFound mentioning {mentions:?}, got {other:?}"),
    }
}

fn assert_bad_request(result: Result<impl std::fmt::Debug, StoreError>) -> String {
    match result {
        Err(StoreError::BadRequest(msg)) => msg,
        other => panic!("expected BadRequest, got {other:?}"),
    }
}

// ---- health ------------------------------------------------------------

pub async fn ping_succeeds(store: Arc<dyn Store>) {
    store.ping().await.expect("ping");
}

// ---- namespaces --------------------------------------------------------

pub async fn namespace_upsert_is_idempotent_and_keeps_created_at(store: Arc<dyn Store>) {
    let first = store
        .upsert_namespace("team:alpha", &upsert(NamespaceKind::Team))
        .await
        .expect("first put");
    assert_eq!(first.name, "team:alpha");
    assert_eq!(first.kind, NamespaceKind::Team);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let again = store
        .upsert_namespace("team:alpha", &upsert(NamespaceKind::Team))
        .await
        .expect("second put");
    assert_eq!(again, first, "the same PUT twice must not change anything");
    let replaced = store
        .upsert_namespace(
            "team:alpha",
            &NamespaceUpsert {
                kind: NamespaceKind::Org,
                expires_at: None,
                metadata: Some(json!({"owner": "ops"})),
            },
        )
        .await
        .expect("third put");
    assert_eq!(replaced.kind, NamespaceKind::Org);
    assert_eq!(replaced.metadata, Some(json!({"owner": "ops"})));
    assert_eq!(replaced.created_at, first.created_at);
    let got = store.get_namespace("team:alpha").await.expect("get");
    assert_eq!(got, Some(replaced));
}

pub async fn namespace_put_replaces_expiry_and_metadata(store: Arc<dyn Store>) {
    let expires = at(-3600);
    store
        .upsert_namespace(
            "workspace:w1",
            &NamespaceUpsert {
                kind: NamespaceKind::Workspace,
                expires_at: Some(expires),
                metadata: Some(json!({"a": 1})),
            },
        )
        .await
        .expect("put with expiry and metadata");
    let got = store.get_namespace("workspace:w1").await.expect("get");
    let got = got.expect("namespace exists");
    assert_eq!(got.expires_at, Some(expires));
    assert_eq!(got.metadata, Some(json!({"a": 1})));
    let replaced = store
        .upsert_namespace("workspace:w1", &upsert(NamespaceKind::Workspace))
        .await
        .expect("put without");
    assert_eq!(replaced.expires_at, None, "PUT replaces the expiry");
    assert_eq!(replaced.metadata, None, "PUT replaces the metadata");
}

pub async fn get_namespace_of_absent_name_is_none(store: Arc<dyn Store>) {
    assert_eq!(store.get_namespace("team:nobody").await.expect("get"), None);
}

pub async fn patch_namespace_changes_only_given_fields(store: Arc<dyn Store>) {
    store
        .upsert_namespace(
            "org:o1",
            &NamespaceUpsert {
                kind: NamespaceKind::Org,
                expires_at: None,
                metadata: Some(json!({"v": 1})),
            },
        )
        .await
        .expect("put");
    let expires = at(-7200);
    let patched = store
        .patch_namespace(
            "org:o1",
            &NamespacePatch {
                expires_at: Some(expires),
                metadata: None,
            },
        )
        .await
        .expect("patch expiry");
    assert_eq!(patched.expires_at, Some(expires));
    assert_eq!(patched.metadata, Some(json!({"v": 1})), "metadata kept");
    assert_eq!(patched.kind, NamespaceKind::Org);
    let patched = store
        .patch_namespace(
            "org:o1",
            &NamespacePatch {
                expires_at: None,
                metadata: Some(json!({"v": 2})),
            },
        )
        .await
        .expect("patch metadata");
    assert_eq!(patched.expires_at, Some(expires), "expiry kept");
    assert_eq!(patched.metadata, Some(json!({"v": 2})));
    assert_eq!(
        store.get_namespace("org:o1").await.expect("get"),
        Some(patched)
    );
}

pub async fn patch_and_delete_of_absent_namespace_are_not_found(store: Arc<dyn Store>) {
    let patch = NamespacePatch {
        expires_at: None,
        metadata: Some(json!({})),
    };
    assert_not_found(
        store.patch_namespace("team:ghost", &patch).await,
        "team:ghost",
    );
    assert_not_found(store.delete_namespace("team:ghost").await, "team:ghost");
}

pub async fn delete_namespace_removes_its_memories(store: Arc<dyn Store>) {
    make_namespace(&*store, "team:doomed").await;
    make_namespace(&*store, "team:kept").await;
    let doomed_id = write(&*store, "team:doomed", fact("goes away")).await;
    write(&*store, "team:kept", fact("stays")).await;
    store.delete_namespace("team:doomed").await.expect("delete");
    assert_eq!(store.get_namespace("team:doomed").await.expect("get"), None);
    assert!(search(&*store, &query(&["team:doomed", "team:kept"]))
        .await
        .iter()
        .all(|m| m.content == "stays"));
    assert_not_found(
        store.list_memories("team:doomed", None, 10).await,
        "team:doomed",
    );
    // Recreating the namespace must not bring the old memory back.
    make_namespace(&*store, "team:doomed").await;
    assert!(all_memories(&*store, "team:doomed").await.is_empty());
    assert!(store.forget(doomed_id, "team:doomed").await.is_err());
    assert_not_found(store.delete_namespace("team:nothing").await, "team:nothing");
}

pub async fn expired_namespace_behaves_as_absent(store: Arc<dyn Store>) {
    store
        .upsert_namespace(
            "team:brief",
            &NamespaceUpsert {
                kind: NamespaceKind::Team,
                expires_at: Some(Utc::now() + Duration::milliseconds(800)),
                metadata: None,
            },
        )
        .await
        .expect("put");
    let id = write(&*store, "team:brief", fact("short lived namespace")).await;
    assert_eq!(search(&*store, &query(&["team:brief"])).await.len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;

    assert_eq!(store.get_namespace("team:brief").await.expect("get"), None);
    assert!(search(&*store, &query(&["team:brief"])).await.is_empty());
    assert_not_found(
        store
            .patch_namespace(
                "team:brief",
                &NamespacePatch {
                    expires_at: None,
                    metadata: Some(json!({})),
                },
            )
            .await,
        "team:brief",
    );
    assert_not_found(
        store.write_memory("team:brief", &fact("too late")).await,
        "team:brief",
    );
    assert_not_found(
        store.list_memories("team:brief", None, 10).await,
        "team:brief",
    );
    assert!(matches!(
        store.forget(id, "team:brief").await,
        Err(StoreError::NotFound(_))
    ));
    assert_not_found(store.delete_namespace("team:brief").await, "team:brief");
}

pub async fn put_on_expired_namespace_creates_a_new_one(store: Arc<dyn Store>) {
    let old = store
        .upsert_namespace(
            "team:phoenix",
            &NamespaceUpsert {
                kind: NamespaceKind::Team,
                expires_at: Some(Utc::now() + Duration::milliseconds(500)),
                metadata: Some(json!({"generation": 1})),
            },
        )
        .await
        .expect("put");
    write(&*store, "team:phoenix", fact("from the old namespace")).await;
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    let new = store
        .upsert_namespace("team:phoenix", &upsert(NamespaceKind::Team))
        .await
        .expect("put again");
    assert_eq!(new.expires_at, None);
    assert_eq!(new.metadata, None);
    assert!(new.created_at > old.created_at, "a new namespace was made");
    assert!(
        all_memories(&*store, "team:phoenix").await.is_empty(),
        "memories of the expired namespace must not come back"
    );
}

// ---- writes ------------------------------------------------------------

pub async fn write_to_missing_namespace_is_not_found_naming_it(store: Arc<dyn Store>) {
    assert_not_found(
        store.write_memory("team:missing", &fact("x")).await,
        "team:missing",
    );
    let id = Uuid::new_v4();
    assert_not_found(
        store
            .write_memory("team:missing", &with_id(fact("x"), id))
            .await,
        "team:missing",
    );
}

pub async fn write_with_same_id_twice_keeps_one_row_with_second_write(store: Arc<dyn Store>) {
    make_namespace(&*store, "workspace:w").await;
    let id = Uuid::new_v4();
    let ack = store
        .write_memory("workspace:w", &with_id(fact("first"), id))
        .await
        .expect("first write");
    assert_eq!(ack.id, id);
    assert_eq!(ack.namespace, "workspace:w");
    let mut second = with_id(
        MemoryWrite::new("second", MemoryKind::Summary, MemorySource::User),
        id,
    );
    second.pin = Some(true);
    second.propagation = Some(json!({"to": ["team:t"]}));
    let ack = store
        .write_memory("workspace:w", &second)
        .await
        .expect("second write");
    assert_eq!(ack.id, id);
    let rows = all_memories(&*store, "workspace:w").await;
    assert_eq!(rows.len(), 1, "one row per id: {rows:?}");
    let row = &rows[0];
    assert_eq!(row.id, id);
    assert_eq!(row.content, "second");
    assert_eq!(row.kind, MemoryKind::Summary);
    assert_eq!(row.source, MemorySource::User);
    assert!(row.pin);
    assert_eq!(row.propagation, Some(json!({"to": ["team:t"]})));
}

pub async fn write_with_id_from_another_namespace_conflicts_and_changes_nothing(
    store: Arc<dyn Store>,
) {
    make_namespace(&*store, "team:a").await;
    make_namespace(&*store, "team:b").await;
    let id = Uuid::new_v4();
    write(&*store, "team:a", with_id(fact("lives in a"), id)).await;
    write(&*store, "team:b", fact("b's own")).await;
    let before_a = all_memories(&*store, "team:a").await;
    let before_b = all_memories(&*store, "team:b").await;

    match store
        .write_memory("team:b", &with_id(fact("hijack"), id))
        .await
    {
        Err(StoreError::Conflict(msg)) => {
            assert!(msg.contains(&id.to_string()), "message names the id: {msg}")
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(all_memories(&*store, "team:a").await, before_a);
    assert_eq!(all_memories(&*store, "team:b").await, before_b);
}

pub async fn fifty_concurrent_writes_with_same_id_leave_one_row(store: Arc<dyn Store>) {
    make_namespace(&*store, "team:race").await;
    let id = Uuid::new_v4();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .write_memory("team:race", &with_id(fact(&format!("write {i}")), id))
                    .await
            })
        })
        .collect();
    for task in tasks {
        let ack = task.await.expect("task").expect("every write succeeds");
        assert_eq!(ack.id, id);
    }
    let rows = all_memories(&*store, "team:race").await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].content.starts_with("write "));
}

pub async fn hundred_concurrent_writes_without_id_get_distinct_ids(store: Arc<dyn Store>) {
    make_namespace(&*store, "team:many").await;
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .write_memory("team:many", &fact(&format!("m{i}")))
                    .await
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for task in tasks {
        ids.insert(task.await.expect("task").expect("write").id);
    }
    assert_eq!(ids.len(), 100);
    let stored: HashSet<Uuid> = all_memories(&*store, "team:many")
        .await
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(stored, ids);
}

pub async fn created_at_is_kept_when_given(store: Arc<dyn Store>) {
    make_namespace(&*store, "workspace:old").await;
    let long_ago: DateTime<Utc> = "2021-03-04T05:06:07.123456Z".parse().expect("time");
    let mut old = fact("migrated");
    old.created_at = Some(long_ago);
    let old_id = write(&*store, "workspace:old", old).await;
    let before = Utc::now() - Duration::seconds(5);
    let new_id = write(&*store, "workspace:old", fact("fresh")).await;
    let rows = all_memories(&*store, "workspace:old").await;
    let find = |id: Uuid| rows.iter().find(|m| m.id == id).expect("row");
    assert_eq!(find(old_id).created_at, long_ago);
    assert!(find(new_id).created_at > before, "default is now");
    // Newest-first ordering follows the stored creation time.
    let found = search(&*store, &query(&["workspace:old"])).await;
    assert_eq!(contents(&found), ["fresh", "migrated"]);
}

pub async fn rewrite_keeps_created_at_unless_the_row_had_expired(store: Arc<dyn Store>) {
    make_namespace(&*store, "team:home").await;
    make_namespace(&*store, "team:away").await;
    let long_ago: DateTime<Utc> = "2020-01-02T03:04:05Z".parse().expect("time");

    let kept = Uuid::new_v4();
    let mut w = with_id(fact("kept v1"), kept);
    w.created_at = Some(long_ago);
    write(&*store, "team:home", w).await;
    write(&*store, "team:home", with_id(fact("kept v2"), kept)).await;

    let renewed = Uuid::new_v4();
    let mut w = with_id(fact("renewed v1"), renewed);
    w.created_at = Some(long_ago);
    w.expires_at = Some(Utc::now() + Duration::milliseconds(500));
    write(&*store, "team:home", w).await;

    let elsewhere = Uuid::new_v4();
    let mut w = with_id(fact("expired elsewhere"), elsewhere);
    w.expires_at = Some(Utc::now() + Duration::milliseconds(500));
    write(&*store, "team:away", w).await;

    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    let before = Utc::now() - Duration::seconds(5);
    write(&*store, "team:home", with_id(fact("renewed v2"), renewed)).await;
    // A memory is never moved between namespaces, even once expired.
    assert!(matches!(
        store
            .write_memory("team:home", &with_id(fact("moved?"), elsewhere))
            .await,
        Err(StoreError::Conflict(_))
    ));

    let rows = all_memories(&*store, "team:home").await;
    let find = |id: Uuid| rows.iter().find(|m| m.id == id).expect("row");
    assert_eq!(find(kept).content, "kept v2");
    assert_eq!(
        find(kept).created_at,
        long_ago,
        "a rewrite keeps created_at"
    );
    assert_eq!(find(renewed).content, "renewed v2");
    assert_eq!(find(renewed).expires_at, None);
    assert!(
        find(renewed).created_at > before,
        "an expired row rewritten is a new memory"
    );
    assert_eq!(rows.len(), 2);
}

pub async fn content_round_trips_byte_for_byte(store: Arc<dyn Store>) {
    make_namespace(&*store, "custom:bytes").await;
    let big: String = "0123456789abcdef\u{e9}\u{4e2d}".repeat(200 * 1024 / 20);
    assert!(big.len() >= 200 * 1024);
    let samples = [
        "plain".to_string(),
        "quotes ' \" `backticks` and $$dollar$$".to_string(),
        r"back\slash \\ \n \t \0 not escapes".to_string(),
        "unicode: \u{1F600} \u{e9}t\u{e9} \u{4e2d}\u{6587} \u{202e}rtl \u{200b}zero-width"
            .to_string(),
        "  leading and trailing spaces  \n\ttabs\r\n".to_string(),
        "%_ like wildcards %% __".to_string(),
        big,
    ];
    let mut ids = Vec::new();
    for content in &samples {
        ids.push(write(&*store, "custom:bytes", fact(content)).await);
    }
    let rows = all_memories(&*store, "custom:bytes").await;
    for (id, content) in ids.iter().zip(&samples) {
        let row = rows.iter().find(|m| m.id == *id).expect("row");
        assert!(
            row.content == *content,
            "content of {id} changed ({} bytes in, {} out)",
            content.len(),
            row.content.len()
        );
    }
}

pub async fn propagation_and_metadata_round_trip(store: Arc<dyn Store>) {
    let metadata = json!({"nested": {"list": [1, 2.5, "x", null, true]}, "quote": "it's \"ok\""});
    store
        .upsert_namespace(
            "custom:json",
            &NamespaceUpsert {
                kind: NamespaceKind::Custom,
                expires_at: None,
                metadata: Some(metadata.clone()),
            },
        )
        .await
        .expect("put");
    let got = store.get_namespace("custom:json").await.expect("get");
    assert_eq!(got.expect("exists").metadata, Some(metadata));
    let propagation = json!({"targets": ["team:x", "org:y"], "depth": 2, "unicode": "\u{e9}"});
    let mut w = fact("with propagation");
    w.propagation = Some(propagation.clone());
    write(&*store, "custom:json", w).await;
    let rows = all_memories(&*store, "custom:json").await;
    assert_eq!(rows[0].propagation, Some(propagation));
    assert!(!rows[0].pin, "pin defaults to false");
}

// ---- TTL and sweep -----------------------------------------------------

pub async fn memory_expiring_in_one_second_disappears_and_sweep_removes_it(store: Arc<dyn Store>) {
    make_namespace(&*store, "team:ttl").await;
    let mut brief = fact("expires soon");
    brief.expires_at = Some(Utc::now() + Duration::seconds(1));
    let brief_id = write(&*store, "team:ttl", brief).await;
    let mut later = fact("expires later");
    later.expires_at = Some(Utc::now() + Duration::hours(1));
    write(&*store, "team:ttl", later).await;
    write(&*store, "team:ttl", fact("never expires")).await;
    assert_eq!(search(&*store, &query(&["team:ttl"])).await.len(), 3);

    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let visible = search(&*store, &query(&["team:ttl"])).await;
    assert_eq!(
        {
            let mut c = contents(&visible);
            c.sort();
            c
        },
        ["expires later", "never expires"]
    );
    assert!(search(&*store, &text_query(&["team:ttl"], "expires soon"))
        .await
        .iter()
        .all(|m| m.id != brief_id));
    assert!(search(&*store, &text_query(&["team:ttl"], "s"))
        .await
        .iter()
        .all(|m| m.id != brief_id));
    assert_eq!(all_memories(&*store, "team:ttl").await.len(), 2);
    assert!(matches!(
        store.forget(brief_id, "team:ttl").await,
        Err(StoreError::NotFound(_))
    ));

    let report = store.sweep_expired(Utc::now()).await.expect("sweep");
    assert_eq!(report.memories, 1);
    assert_eq!(report.namespaces, 0);
    let again = store.sweep_expired(Utc::now()).await.expect("sweep again");
    assert_eq!(again.memories, 0, "the first sweep removed it for good");
    assert_eq!(all_memories(&*store, "team:ttl").await.len(), 2);
}

pub async fn sweep_removes_expired_namespaces_with_their_memories(store: Arc<dyn Store>) {
    store
        .upsert_namespace(
            "team:gone",
            &NamespaceUpsert {
                kind: NamespaceKind::Team,
                expires_at: Some(Utc::now() + Duration::hours(1)),
                metadata: None,
            },
        )
        .await
        .expect("put");
    make_namespace(&*store, "team:stays").await;
    write(&*store, "team:gone", fact("one")).await;
    write(&*store, "team:gone", fact("two")).await;
    write(&*store, "team:stays", fact("three")).await;
    // Sweep as if two hours had passed.
    let report = store
        .sweep_expired(Utc::now() + Duration::hours(2))
        .await
        .expect("sweep");
    assert_eq!(report.namespaces, 1);
    assert_eq!(report.memories, 2);
    assert_eq!(store.get_namespace("team:gone").await.expect("get"), None);
    assert_eq!(all_memories(&*store, "team:stays").await.len(), 1);
}

// ---- search ------------------------------------------------------------

pub async fn search_without_query_returns_pinned_first_then_newest(store: Arc<dyn Store>) {
    make_namespace(&*store, "team:order").await;
    for (content, age, pin) in [
        ("old", 300, false),
        ("pinned old", 400, true),
        ("newest", 10, false),
        ("middle", 100, false),
        ("pinned new", 50, true),
    ] {
        let mut w = fact(content);
        w.created_at = Some(at(age));
        w.pin = Some(pin);
        write(&*store, "team:order", w).await;
    }
    let found = search(&*store, &query(&["team:order"])).await;
    assert_eq!(
        contents(&found),
        ["pinned new", "pinned old", "newest", "middle", "old"]
    );
    assert!(found.iter().all(|m| m.score.is_none()), "no score here");
    // A blank query is the same as none.
    let blank = search(&*store, &text_query(&["team:order"], "")).await;
    assert_eq!(contents(&blank), contents(&found));
}

pub async fn search_full_text_matches_stemmed_words_best_first(store: Arc<dyn Store>) {
    make_namespace(&*store, "team:fts").await;
    write(&*store, "team:fts", fact("The deployment runs every night")).await;
    write(
        &*store,
        "team:fts",
        fact("Running deployments: deployment checklist for deployment day"),
    )
    .await;
    write(&*store, "team:fts", fact("Lunch is at noon")).await;
    let found = search(&*store, &text_query(&["team:fts"], "deployment running")).await;
    let mut got = contents(&found);
    got.sort();
    assert_eq!(
        got,
        [
            "Running deployments: deployment checklist for deployment day",
            "The deployment runs every night"
        ],
        "stemming matches runs/running and deployments/deployment"
    );
    for m in &found {
        let score = m.score.expect("full-text results carry a score");
        assert!(score > 0.0, "score {score} should be positive");
    }
    assert!(
        found.windows(2).all(|w| w[0].score >= w[1].score),
        "best match first: {found:?}"
    );
    assert!(search(&*store, &text_query(&["team:fts"], "zebra"))
        .await
        .is_empty());
}

pub async fn search_one_char_query_is_case_insensitive_substring_pinned_first(
    store: Arc<dyn Store>,
) {
    make_namespace(&*store, "team:sub").await;
    for (content, age, pin) in [
        ("Xylophone", 30, false),
        ("box", 20, false),
        ("pinned fox", 100, true),
        ("nothing here", 10, false),
    ] {
        let mut w = fact(content);
        w.created_at = Some(at(age));
        w.pin = Some(pin);
        write(&*store, "team:sub", w).await;
    }
    let found = search(&*store, &text_query(&["team:sub"], "x")).await;
    assert_eq!(contents(&found), ["pinned fox", "box", "Xylophone"]);
    let upper = search(&*store, &text_query(&["team:sub"], "X")).await;
    assert_eq!(contents(&upper), contents(&found), "case-insensitive");
    let padded = search(&*store, &text_query(&["team:sub"], " x ")).await;
    assert_eq!(contents(&padded), contents(&found), "query is trimmed");
}

pub async fn search_substring_escapes_percent_underscore_and_backslash(store: Arc<dyn Store>) {
    make_namespace(&*store, "team:esc").await;
    write(&*store, "team:esc", fact("100% sure")).await;
    write(&*store, "team:esc", fact("snake_case")).await;
    write(&*store, "team:esc", fact(r"C:\path")).await;
    write(&*store, "team:esc", fact("plain words")).await;
    let percent = search(&*store, &text_query(&["team:esc"], "%")).await;
    assert_eq!(contents(&percent), ["100% sure"]);
    let underscore = search(&*store, &text_query(&["team:esc"], "_")).await;
    assert_eq!(contents(&underscore), ["snake_case"]);
    let backslash = search(&*store, &text_query(&["team:esc"], "\\")).await;
    assert_eq!(contents(&backslash), [r"C:\path"]);
}

pub async fn search_kinds_filter_keeps_only_those_kinds(store: Arc<dyn Store>) {
    make_namespace(&*store, "team:kinds").await;
    for kind in MemoryKind::ALL {
        write(
            &*store,
            "team:kinds",
            MemoryWrite::new(
                format!("a {kind} about kinds"),
                *kind,
                MemorySource::Runtime,
            ),
        )
        .await;
    }
    let mut q = query(&["team:kinds"]);
    q.kinds = vec![MemoryKind::Summary, MemoryKind::Checkpoint];
    let found = search(&*store, &q).await;
    assert_eq!(found.len(), 2);
    assert!(found.iter().all(|m| m.kind != MemoryKind::Fact));
    q.query = Some("kinds".to_string());
    let found = search(&*store, &q).await;
    assert_eq!(found.len(), 2, "the filter applies in full-text mode too");
    q.query = Some("k".to_string());
    q.kinds = vec![MemoryKind::Fact];
    let found = search(&*store, &q).await;
    assert_eq!(contents(&found), ["a fact about kinds"]);
}

pub async fn search_limit_caps_results(store: Arc<dyn Store>) {
    make_namespace(&*store, "team:limit").await;
    for i in 0..7 {
        let mut w = fact(&format!("limited item {i}"));
        w.created_at = Some(at(100 - i));
        write(&*store, "team:limit", w).await;
    }
    let mut q = query(&["team:limit"]);
    q.limit = 3;
    let found = search(&*store, &q).await;
    assert_eq!(
        contents(&found),
        ["limited item 6", "limited item 5", "limited item 4"]
    );
    q.query = Some("limited item".to_string());
    assert_eq!(search(&*store, &q).await.len(), 3);
    q.query = Some("l".to_string());
    assert_eq!(search(&*store, &q).await.len(), 3);
    q.limit = 1;
    assert_eq!(search(&*store, &q).await.len(), 1);
}

pub async fn search_matches_namespace_names_exactly(store: Arc<dyn Store>) {
    for ns in ["team:ab", "team:abc", "team:a", "xteam:ab"] {
        make_namespace(&*store, ns).await;
        write(&*store, ns, fact(&format!("note in {ns}"))).await;
    }
    for q in [
        query(&["team:ab"]),
        text_query(&["team:ab"], "note"),
        text_query(&["team:ab"], "n"),
    ] {
        let found = search(&*store, &q).await;
        assert_eq!(contents(&found), ["note in team:ab"], "query {q:?}");
        assert!(found.iter().all(|m| m.namespace == "team:ab"));
    }
    assert!(search(&*store, &query(&["team:"])).await.is_empty());
    assert!(search(&*store, &query(&["team:nonexistent"]))
        .await
        .is_empty());
}

pub async fn search_over_several_namespaces_returns_each_memory_once(store: Arc<dyn Store>) {
    make_namespace(&*store, "workspace:me").await;
    make_namespace(&*store, "team:us").await;
    make_namespace(&*store, "org:all").await;
    write(&*store, "workspace:me", fact("mine")).await;
    write(&*store, "team:us", fact("ours")).await;
    write(&*store, "org:all", fact("everyone's")).await;
    let found = search(&*store, &query(&["workspace:me", "team:us", "team:us"])).await;
    let mut got: Vec<(&str, &str)> = found
        .iter()
        .map(|m| (m.namespace.as_str(), m.content.as_str()))
        .collect();
    got.sort();
    assert_eq!(got, [("team:us", "ours"), ("workspace:me", "mine")]);
}

// ---- list and forget ---------------------------------------------------

pub async fn list_memories_pages_by_id(store: Arc<dyn Store>) {
    make_namespace(&*store, "team:pages").await;
    make_namespace(&*store, "team:other").await;
    write(&*store, "team:other", fact("not listed")).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(write(&*store, "team:pages", fact(&format!("page item {i}"))).await);
    }
    ids.sort();

    let first = store
        .list_memories("team:pages", None, 4)
        .await
        .expect("first page");
    assert_eq!(
        first.memories.iter().map(|m| m.id).collect::<Vec<_>>(),
        ids[..4]
    );
    assert_eq!(first.next_after, Some(ids[3]), "full page: next_after");
    let second = store
        .list_memories("team:pages", first.next_after, 4)
        .await
        .expect("second page");
    assert_eq!(
        second.memories.iter().map(|m| m.id).collect::<Vec<_>>(),
        ids[4..]
    );
    assert_eq!(second.next_after, None, "short page is the last");

    // A page that is exactly full still points on; the next page is empty.
    let exact = store
        .list_memories("team:pages", Some(ids[2]), 3)
        .await
        .expect("exact page");
    assert_eq!(exact.memories.len(), 3);
    assert_eq!(exact.next_after, Some(ids[5]));
    let empty = store
        .list_memories("team:pages", exact.next_after, 3)
        .await
        .expect("empty page");
    assert!(empty.memories.is_empty());
    assert_eq!(empty.next_after, None);
    assert!(first
        .memories
        .iter()
        .all(|m| m.namespace == "team:pages" && m.score.is_none()));
}

pub async fn list_memories_of_missing_namespace_is_not_found(store: Arc<dyn Store>) {
    assert_not_found(
        store.list_memories("team:absent", None, 10).await,
        "team:absent",
    );
}

pub async fn scan_memories_pages_every_live_memory_by_id(store: Arc<dyn Store>) {
    make_namespace(&*store, "team:scan-a").await;
    make_namespace(&*store, "team:scan-b").await;
    store
        .upsert_namespace(
            "team:scan-gone",
            &NamespaceUpsert {
                kind: NamespaceKind::Team,
                expires_at: Some(Utc::now() + Duration::milliseconds(800)),
                metadata: None,
            },
        )
        .await
        .expect("put");
    write(
        &*store,
        "team:scan-gone",
        fact("in a namespace that expires"),
    )
    .await;
    let mut brief = fact("a memory that expires");
    brief.expires_at = Some(Utc::now() + Duration::milliseconds(800));
    write(&*store, "team:scan-a", brief).await;
    let mut live: Vec<(Uuid, &str)> = Vec::new();
    for i in 0..4 {
        live.push((
            write(&*store, "team:scan-a", fact(&format!("a {i}"))).await,
            "team:scan-a",
        ));
    }
    for i in 0..3 {
        live.push((
            write(&*store, "team:scan-b", fact(&format!("b {i}"))).await,
            "team:scan-b",
        ));
    }
    live.sort();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;

    let mut seen: Vec<(Uuid, String)> = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store
            .scan_memories(after, None, 3, false)
            .await
            .expect("scan page");
        pages += 1;
        assert!(page.memories.len() <= 3);
        assert!(page.memories.iter().all(|m| m.score.is_none()));
        seen.extend(page.memories.iter().map(|m| (m.id, m.namespace.clone())));
        match page.next_after {
            Some(next) => {
                assert_eq!(Some(next), page.memories.last().map(|m| m.id));
                after = Some(next);
            }
            None => break,
        }
        assert!(pages < 10, "scan does not end");
    }
    let expected: Vec<(Uuid, String)> = live.iter().map(|(id, ns)| (*id, ns.to_string())).collect();
    assert_eq!(
        seen, expected,
        "every live memory once, in id order, expired ones left out"
    );
    assert_eq!(pages, 3, "pages of 3, 3 and 1");

    // A page that is exactly full points on; the next one is empty.
    let full = store
        .scan_memories(None, None, 7, false)
        .await
        .expect("full page");
    assert_eq!(full.memories.len(), 7);
    assert_eq!(full.next_after, Some(live[6].0));
    let empty = store
        .scan_memories(full.next_after, None, 7, false)
        .await
        .expect("empty page");
    assert!(empty.memories.is_empty());
    assert_eq!(empty.next_after, None);
    // `after` is exclusive and need not be an existing id.
    let tail = store
        .scan_memories(Some(live[4].0), None, 100, false)
        .await
        .expect("tail");
    assert_eq!(
        tail.memories.iter().map(|m| m.id).collect::<Vec<_>>(),
        [live[5].0, live[6].0]
    );
    // `before` is an exclusive upper bound; both bounds make a window.
    let head = store
        .scan_memories(None, Some(live[2].0), 100, false)
        .await
        .expect("head");
    assert_eq!(
        head.memories.iter().map(|m| m.id).collect::<Vec<_>>(),
        [live[0].0, live[1].0]
    );
    assert_eq!(head.next_after, None);
    let window = store
        .scan_memories(Some(live[1].0), Some(live[5].0), 2, false)
        .await
        .expect("window");
    assert_eq!(
        window.memories.iter().map(|m| m.id).collect::<Vec<_>>(),
        [live[2].0, live[3].0]
    );
    let rest = store
        .scan_memories(window.next_after, Some(live[5].0), 2, false)
        .await
        .expect("rest of the window");
    assert_eq!(
        rest.memories.iter().map(|m| m.id).collect::<Vec<_>>(),
        [live[4].0]
    );
    assert_eq!(rest.next_after, None);
}

pub async fn list_namespaces_pages_every_live_namespace_by_name(store: Arc<dyn Store>) {
    // Empty namespaces count; expired ones do not.
    let names = ["org:a", "team:b", "team:c", "workspace:d", "workspace:e"];
    for name in names.iter().rev() {
        make_namespace(&*store, name).await;
    }
    write(&*store, "team:b", fact("one memory")).await;
    let settings = NamespaceUpsert {
        kind: NamespaceKind::Team,
        expires_at: Some(Utc::now() + Duration::days(3)),
        metadata: Some(json!({"owner": "x"})),
    };
    store
        .upsert_namespace("team:c", &settings)
        .await
        .expect("put");
    store
        .upsert_namespace(
            "team:gone",
            &NamespaceUpsert {
                kind: NamespaceKind::Team,
                expires_at: Some(Utc::now() + Duration::milliseconds(300)),
                metadata: None,
            },
        )
        .await
        .expect("put");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list_namespaces(after.as_deref(), 2)
            .await
            .expect("list namespaces");
        assert!(page.namespaces.len() <= 2);
        seen.extend(page.namespaces);
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let seen_names: Vec<&str> = seen.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(seen_names, names);
    let c = seen.iter().find(|n| n.name == "team:c").expect("team:c");
    assert_eq!(c.kind, NamespaceKind::Team);
    assert_eq!(c.metadata, Some(json!({"owner": "x"})));
    assert!(c.expires_at.is_some());
    let rest = store
        .list_namespaces(Some("team:c"), 1000)
        .await
        .expect("after a name");
    assert_eq!(
        rest.namespaces
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>(),
        ["workspace:d", "workspace:e"]
    );
    assert_eq!(rest.next_after, None);
}

pub async fn memory_checksums_digest_exactly_the_scanned_memories(store: Arc<dyn Store>) {
    // A fixed memory whose digests are known from outside (Python's xxhash
    // package, xxh3_128_hexdigest), so that
    // both the store and the Rust definition are held to the same bytes.
    make_namespace(&*store, "workspace:w").await;
    let known = Uuid::parse_str("0a1b2c3d-0000-4000-8000-00000000abcd").unwrap();
    let mut w = with_id(fact("hello"), known);
    w.created_at = Some(DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap());
    write(&*store, "workspace:w", w).await;
    let only = store.memory_checksums(4, false).await.expect("checksums");
    assert_eq!(
        (only.prefix, only.created_at, only.buckets),
        (
            4,
            false,
            vec![ChecksumBucket {
                prefix: "0a1b".into(),
                count: 1,
                digest: "0708b8872d246d0fbc87969b3d9be9dd".into(),
            }]
        )
    );
    let only = store.memory_checksums(4, true).await.expect("checksums");
    assert!(only.created_at);
    assert_eq!(only.buckets[0].digest, "f6bb5342593c5b96b6110386814650d6");

    // Memories in several namespaces, some with an explicit creation time
    // (before 1970 too), with text beyond ASCII; a memory that expires and a
    // namespace that expires, both left out once expired.
    make_namespace(&*store, "team:sum-a").await;
    make_namespace(&*store, "org:sum-b").await;
    store
        .upsert_namespace(
            "team:sum-gone",
            &NamespaceUpsert {
                kind: NamespaceKind::Team,
                expires_at: Some(Utc::now() + Duration::milliseconds(800)),
                metadata: None,
            },
        )
        .await
        .expect("put");
    let gone_ns_id = write(
        &*store,
        "team:sum-gone",
        fact("in a namespace that expires"),
    )
    .await;
    let mut brief = fact("a memory that expires");
    brief.expires_at = Some(Utc::now() + Duration::milliseconds(800));
    let brief_id = write(&*store, "team:sum-a", brief).await;
    let times: [Option<&str>; 4] = [
        None,
        Some("2021-03-04T05:06:07.123456Z"),
        Some("1969-07-20T20:17:40.654321Z"),
        Some("2000-01-01T00:00:00Z"),
    ];
    let mut written = vec![known];
    for i in 0..24 {
        let (ns, content) = match i % 3 {
            0 => ("team:sum-a", format!("fact {i}: déjà vu ✓ 日本語")),
            1 => ("org:sum-b", format!("line one {i}\nline two\ttabbed")),
            _ => ("workspace:w", format!("plain {i}")),
        };
        let mut w = fact(&content);
        w.created_at = times[i % times.len()].map(|t| t.parse().expect("time"));
        written.push(write(&*store, ns, w).await);
    }
    written.sort();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;

    let live = scan_all(&*store).await;
    assert_eq!(
        live.iter().map(|m| m.id).collect::<Vec<_>>(),
        written,
        "scan holds every live memory, the expired ones left out"
    );
    for prefix in 1..=4 {
        for created_at in [false, true] {
            let got = store
                .memory_checksums(prefix, created_at)
                .await
                .expect("checksums");
            assert_eq!(got.prefix, prefix);
            assert_eq!(got.created_at, created_at);
            assert_eq!(
                got.buckets,
                expected_checksums(&live, prefix, created_at),
                "prefix {prefix}, created_at {created_at}"
            );
            assert_eq!(
                got.buckets.iter().map(|b| b.count).sum::<u64>(),
                live.len() as u64
            );
        }
    }
    for id in [gone_ns_id, brief_id] {
        assert!(!live.iter().any(|m| m.id == id), "{id} is expired");
    }
    assert_ne!(
        store
            .memory_checksums(1, false)
            .await
            .expect("checksums")
            .buckets,
        store
            .memory_checksums(1, true)
            .await
            .expect("checksums")
            .buckets,
        "created_at enters the digests"
    );

    // Deleting a memory takes exactly its digest out of its bucket.
    let before = store.memory_checksums(2, true).await.expect("before");
    let victim = live
        .iter()
        .find(|m| m.namespace == "org:sum-b")
        .expect("a memory of org:sum-b");
    store.forget(victim.id, "org:sum-b").await.expect("forget");
    let after = store.memory_checksums(2, true).await.expect("after");
    let bucket = checksum::bucket_name(checksum::bucket_index(victim.id, 2), 2);
    let find = |buckets: &[ChecksumBucket]| buckets.iter().find(|b| b.prefix == bucket).cloned();
    let old = find(&before.buckets).expect("the victim's bucket");
    let digest = checksum::memory_digest(
        victim.id,
        &victim.namespace,
        &victim.content,
        Some(victim.created_at),
    );
    let old_digest = checksum::parse_digest(&old.digest).expect("digest");
    match find(&after.buckets) {
        Some(new) => {
            assert_eq!(new.count, old.count - 1);
            assert_eq!(
                checksum::parse_digest(&new.digest),
                Some(old_digest ^ digest),
                "the bucket lost exactly the victim's digest"
            );
        }
        None => assert_eq!(
            (old.count, old_digest),
            (1, digest),
            "an emptied bucket is left out"
        ),
    }
    let others = |buckets: &[ChecksumBucket]| -> Vec<ChecksumBucket> {
        buckets
            .iter()
            .filter(|b| b.prefix != bucket)
            .cloned()
            .collect()
    };
    assert_eq!(others(&after.buckets), others(&before.buckets));
    let remaining = scan_all(&*store).await;
    assert_eq!(after.buckets, expected_checksums(&remaining, 2, true));

    // An empty store has no buckets.
    for ns in ["workspace:w", "team:sum-a", "org:sum-b"] {
        store.delete_namespace(ns).await.expect("delete");
    }
    let empty = store.memory_checksums(3, false).await.expect("checksums");
    assert!(empty.buckets.is_empty(), "{empty:?}");
}

pub async fn forget_deletes_only_in_its_namespace(store: Arc<dyn Store>) {
    make_namespace(&*store, "team:owner").await;
    make_namespace(&*store, "team:stranger").await;
    let id = write(&*store, "team:owner", fact("forget me")).await;
    assert!(matches!(
        store.forget(id, "team:stranger").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(all_memories(&*store, "team:owner").await.len(), 1);
    store.forget(id, "team:owner").await.expect("forget");
    assert!(all_memories(&*store, "team:owner").await.is_empty());
    assert!(matches!(
        store.forget(id, "team:owner").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.forget(Uuid::new_v4(), "team:nowhere").await,
        Err(StoreError::NotFound(_))
    ));
}

// ---- batch -------------------------------------------------------------

fn batch_item(namespace: &str, write: MemoryWrite) -> BatchWrite {
    BatchWrite {
        namespace: namespace.to_string(),
        write,
    }
}

pub async fn batch_reports_each_item_in_input_order(store: Arc<dyn Store>) {
    make_namespace(&*store, "team:batch").await;
    make_namespace(&*store, "team:elsewhere").await;
    store
        .upsert_namespace(
            "team:expired",
            &NamespaceUpsert {
                kind: NamespaceKind::Team,
                expires_at: Some(Utc::now() - Duration::seconds(5)),
                metadata: None,
            },
        )
        .await
        .expect("put expired namespace");
    let taken = write(&*store, "team:elsewhere", fact("already here")).await;
    let fresh = Uuid::new_v4();
    let writes = vec![
        batch_item("team:batch", fact("no id")),
        batch_item("team:missing", fact("missing namespace")),
        batch_item("team:batch", with_id(fact("taken id"), taken)),
        batch_item("team:batch", with_id(fact("given id"), fresh)),
        batch_item("team:expired", fact("expired namespace")),
        batch_item("team:elsewhere", fact("second namespace")),
    ];
    let results = store.write_batch(&writes).await.expect("batch");
    assert_eq!(results.len(), writes.len());
    let ok = |i: usize| match &results[i] {
        Ok(ack) => ack.clone(),
        Err(e) => panic!("item {i} failed: {e:?}"),
    };
    assert_eq!(ok(0).namespace, "team:batch");
    assert!(
        matches!(&results[1], Err(StoreError::NotFound(m)) if m.contains("team:missing")),
        "{:?}",
        results[1]
    );
    assert!(
        matches!(&results[2], Err(StoreError::Conflict(_))),
        "{:?}",
        results[2]
    );
    assert_eq!(ok(3).id, fresh);
    assert!(
        matches!(&results[4], Err(StoreError::NotFound(m)) if m.contains("team:expired")),
        "{:?}",
        results[4]
    );
    assert_eq!(ok(5).namespace, "team:elsewhere");

    let batch_rows = all_memories(&*store, "team:batch").await;
    let mut got = contents(&batch_rows);
    got.sort();
    assert_eq!(got, ["given id", "no id"]);
    let elsewhere = all_memories(&*store, "team:elsewhere").await;
    let taken_row = elsewhere.iter().find(|m| m.id == taken).expect("kept");
    assert_eq!(
        taken_row.content, "already here",
        "conflict changed nothing"
    );
    assert_eq!(elsewhere.len(), 2);
    assert!(store
        .write_batch(&[])
        .await
        .expect("empty batch")
        .is_empty());
}

pub async fn batch_with_duplicate_ids_keeps_the_last_write(store: Arc<dyn Store>) {
    make_namespace(&*store, "team:dup").await;
    let id = Uuid::new_v4();
    let writes = vec![
        batch_item("team:dup", with_id(fact("first"), id)),
        batch_item("team:dup", with_id(fact("second"), id)),
        batch_item("team:dup", with_id(fact("third"), id)),
    ];
    let results = store.write_batch(&writes).await.expect("batch");
    assert_eq!(results.len(), 3);
    for (i, r) in results.iter().enumerate() {
        // Every item either succeeds with the id, or reports a clear
        // per-item error; never a whole-batch failure.
        if let Ok(ack) = r {
            assert_eq!(ack.id, id, "item {i}");
        }
    }
    assert!(results[2].is_ok(), "the last write of an id succeeds");
    let rows = all_memories(&*store, "team:dup").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].content, "third", "last write wins");
}

pub async fn batch_of_thousand_writes_without_ids(store: Arc<dyn Store>) {
    make_namespace(&*store, "team:bulk1").await;
    make_namespace(&*store, "team:bulk2").await;
    let writes: Vec<BatchWrite> = (0..1000)
        .map(|i| {
            let ns = if i % 2 == 0 {
                "team:bulk1"
            } else {
                "team:bulk2"
            };
            let mut w = fact(&format!("bulk item {i}"));
            w.created_at = Some(at(10_000 - i));
            w.pin = Some(i % 10 == 0);
            batch_item(ns, w)
        })
        .collect();
    let results = store.write_batch(&writes).await.expect("batch");
    let ids: HashSet<Uuid> = results
        .iter()
        .enumerate()
        .map(|(i, r)| match r {
            Ok(ack) => {
                assert_eq!(ack.namespace, writes[i].namespace, "item {i}");
                ack.id
            }
            Err(e) => panic!("item {i} failed: {e:?}"),
        })
        .collect();
    assert_eq!(ids.len(), 1000);
    let one = all_memories(&*store, "team:bulk1").await;
    let two = all_memories(&*store, "team:bulk2").await;
    assert_eq!(one.len() + two.len(), 1000);
    let item_10 = one
        .iter()
        .find(|m| m.content == "bulk item 10")
        .expect("item 10");
    assert!(item_10.pin);
    assert_eq!(Some(item_10.created_at), writes[10].write.created_at);
    // Writing the same batch again with its ids is idempotent.
    let again: Vec<BatchWrite> = writes
        .iter()
        .zip(&results)
        .map(|(w, r)| {
            let id = r.as_ref().map(|a| a.id).expect("ok");
            batch_item(&w.namespace, with_id(w.write.clone(), id))
        })
        .collect();
    let results = store.write_batch(&again).await.expect("batch again");
    assert!(results.iter().all(|r| r.is_ok()));
    let total = all_memories(&*store, "team:bulk1").await.len()
        + all_memories(&*store, "team:bulk2").await.len();
    assert_eq!(total, 1000);
}

// ---- embeddings --------------------------------------------------------

fn axis_vector(dim: usize, weights: &[(usize, f32)]) -> Vec<f32> {
    let mut v = vec![0.0; dim];
    for &(i, w) in weights {
        v[i % dim] = w;
    }
    v
}

/// Cosine similarity in `f64`, as the stores compute it.
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

pub async fn semantic_search_ranks_nearest_first_or_is_refused(store: Arc<dyn Store>) {
    make_namespace(&*store, "team:vec").await;
    let features = store.features();
    let dim = features.embedding_dim;
    let near = axis_vector(dim, &[(0, 1.0), (1, 0.1)]);
    let middle = axis_vector(dim, &[(0, 1.0), (1, 1.0)]);
    let far = axis_vector(dim, &[(1, 1.0), (2, 0.5)]);
    let probe = axis_vector(dim, &[(0, 1.0)]);

    if !features.embedding {
        let mut w = fact("with a vector");
        w.embedding = Some(near);
        let msg = assert_bad_request(store.write_memory("team:vec", &w).await);
        assert!(
            msg.contains("not available"),
            "message says semantic search is not available: {msg}"
        );
        let mut q = query(&["team:vec"]);
        q.embedding = Some(probe);
        let msg = assert_bad_request(store.search(&q).await);
        assert!(msg.contains("not available"), "{msg}");
        return;
    }

    for (content, vector) in [("far", &far), ("near", &near), ("middle", &middle)] {
        let mut w = fact(content);
        w.embedding = Some(vector.clone());
        write(&*store, "team:vec", w).await;
    }
    write(&*store, "team:vec", fact("no vector at all")).await;
    let mut q = query(&["team:vec"]);
    q.embedding = Some(probe.clone());
    let found = search(&*store, &q).await;
    assert_eq!(contents(&found), ["near", "middle", "far"]);
    for m in &found {
        let vector = match m.content.as_str() {
            "near" => &near,
            "middle" => &middle,
            _ => &far,
        };
        let expected = cosine_similarity(&probe, vector);
        let score = m.score.expect("semantic results carry a score");
        assert!(
            (score - expected).abs() < 1e-4,
            "{}: score {score}, expected 1 - cosine distance = {expected}",
            m.content
        );
    }
    // Scan hands the stored vectors back exactly when asked, and only then.
    let page = store
        .scan_memories(None, None, 100, true)
        .await
        .expect("scan with embeddings");
    for m in &page.memories {
        let stored = match m.content.as_str() {
            "near" => Some(&near),
            "middle" => Some(&middle),
            "far" => Some(&far),
            _ => None,
        };
        assert_eq!(m.embedding.as_ref(), stored, "{}", m.content);
    }
    assert_eq!(page.memories.len(), 4);
    let plain = store
        .scan_memories(None, None, 100, false)
        .await
        .expect("scan without embeddings");
    assert!(plain.memories.iter().all(|m| m.embedding.is_none()));
    // Limit and kinds apply to semantic search too.
    q.limit = 1;
    assert_eq!(contents(&search(&*store, &q).await), ["near"]);
    q.kinds = vec![MemoryKind::Checkpoint];
    assert!(search(&*store, &q).await.is_empty());
}

pub async fn embedding_of_wrong_dimension_is_bad_request(store: Arc<dyn Store>) {
    make_namespace(&*store, "team:dims").await;
    let features = store.features();
    let wrong = features.embedding_dim + 1;
    let mut w = fact("wrong size");
    w.embedding = Some(vec![0.5; wrong]);
    let msg = assert_bad_request(store.write_memory("team:dims", &w).await);
    if features.embedding {
        assert!(
            msg.contains(&wrong.to_string()) && msg.contains(&features.embedding_dim.to_string()),
            "message names both dimensions: {msg}"
        );
        let mut q = query(&["team:dims"]);
        q.embedding = Some(vec![0.5; wrong]);
        let msg = assert_bad_request(store.search(&q).await);
        assert!(msg.contains(&wrong.to_string()), "{msg}");
    }
    // The batch reports it per item and writes the others.
    let results = store
        .write_batch(&[
            batch_item("team:dims", w.clone()),
            batch_item("team:dims", fact("fine")),
        ])
        .await
        .expect("batch");
    assert!(matches!(results[0], Err(StoreError::BadRequest(_))));
    assert!(results[1].is_ok());
    assert_eq!(
        contents(&all_memories(&*store, "team:dims").await),
        ["fine"]
    );
}
