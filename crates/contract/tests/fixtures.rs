//! Golden JSON fixtures: each decodes into its contract type and encodes
//! back to the same JSON value, so the wire cannot change by accident.

use memory_contract::{
    BatchItemResult, BatchRequest, BatchResponse, ErrorCode, ErrorEnvelope, ForgetRequest, Health,
    ListResponse, MemoryKind, MemorySource, MemoryWrite, Namespace, NamespaceKind, NamespacePatch,
    NamespaceUpsert, SearchRequest, SearchResponse, WriteAck,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::path::PathBuf;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn load(name: &str) -> Value {
    let path = fixture_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

/// Decodes fixture `name` as `T`, encodes it again and checks that nothing
/// was lost, added or respelled.
fn round_trip<T: Serialize + DeserializeOwned>(name: &str) -> T {
    let original = load(name);
    let decoded: T = serde_json::from_value(original.clone())
        .unwrap_or_else(|e| panic!("{name} does not decode: {e}"));
    let encoded = serde_json::to_value(&decoded).expect("encode");
    assert_eq!(
        encoded,
        original,
        "{name} changed on a round trip through {}",
        std::any::type_name::<T>()
    );
    decoded
}

/// Every fixture file and the type it holds. A fixture missing from this
/// table fails `every_fixture_file_is_checked`.
const FIXTURES: &[(&str, fn())] = &[
    ("health_ok.json", || {
        round_trip::<Health>("health_ok.json");
    }),
    ("namespace_upsert.json", || {
        round_trip::<NamespaceUpsert>("namespace_upsert.json");
    }),
    ("namespace.json", || {
        round_trip::<Namespace>("namespace.json");
    }),
    ("namespace_patch.json", || {
        round_trip::<NamespacePatch>("namespace_patch.json");
    }),
    ("memory_write_minimal.json", || {
        round_trip::<MemoryWrite>("memory_write_minimal.json");
    }),
    ("memory_write_with_id_and_created_at.json", || {
        round_trip::<MemoryWrite>("memory_write_with_id_and_created_at.json");
    }),
    ("write_ack.json", || {
        round_trip::<WriteAck>("write_ack.json");
    }),
    ("search_request_multi_namespace.json", || {
        round_trip::<SearchRequest>("search_request_multi_namespace.json");
    }),
    ("search_response.json", || {
        round_trip::<SearchResponse>("search_response.json");
    }),
    ("forget_request.json", || {
        round_trip::<ForgetRequest>("forget_request.json");
    }),
    ("error_not_found.json", || {
        round_trip::<ErrorEnvelope>("error_not_found.json");
    }),
    ("batch_request.json", || {
        round_trip::<BatchRequest>("batch_request.json");
    }),
    ("batch_response.json", || {
        round_trip::<BatchResponse>("batch_response.json");
    }),
    ("list_response.json", || {
        round_trip::<ListResponse>("list_response.json");
    }),
];

#[test]
fn every_fixture_round_trips_unchanged() {
    for (_, check) in FIXTURES {
        check();
    }
}

#[test]
fn every_fixture_file_is_checked() {
    let mut on_disk: Vec<String> = std::fs::read_dir(fixture_dir())
        .expect("fixture dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".json"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = FIXTURES.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn health_fixture_reports_ok_and_its_capabilities() {
    let health = round_trip::<Health>("health_ok.json");
    assert_eq!(health.status, "ok");
    assert_eq!(health.version, memory_contract::CONTRACT_VERSION);
    assert!(health.supports(memory_contract::capability::BATCH));
    assert!(!health.supports(memory_contract::capability::EMBEDDING));
}

#[test]
fn minimal_write_has_only_required_fields() {
    let write = round_trip::<MemoryWrite>("memory_write_minimal.json");
    assert_eq!(
        write,
        MemoryWrite::new(
            "The staging database moved to db-staging-2.",
            MemoryKind::Fact,
            MemorySource::Agent
        )
    );
}

#[test]
fn full_write_keeps_id_and_created_at() {
    let write = round_trip::<MemoryWrite>("memory_write_with_id_and_created_at.json");
    assert_eq!(
        write.id.map(|id| id.to_string()).as_deref(),
        Some("0b7f6c1e-6a53-4c1d-9a8e-2f4d5b6c7d8e")
    );
    assert_eq!(
        write.created_at.map(|t| t.to_rfc3339()).as_deref(),
        Some("2024-05-17T09:30:00+00:00")
    );
    assert_eq!(write.pin, Some(true));
    assert_eq!(
        write.embedding.as_deref(),
        Some(&[0.5, -0.25, 0.125, 1.0][..])
    );
}

#[test]
fn upsert_fixture_decodes_kind_and_metadata() {
    let upsert = round_trip::<NamespaceUpsert>("namespace_upsert.json");
    assert_eq!(upsert.kind, NamespaceKind::Workspace);
    assert_eq!(upsert.metadata.as_ref().unwrap()["retention_days"], 30);
}

#[test]
fn search_fixture_names_three_namespaces() {
    let search = round_trip::<SearchRequest>("search_request_multi_namespace.json");
    assert_eq!(search.namespaces.len(), 3);
    assert_eq!(
        search.kinds,
        Some(vec![MemoryKind::Fact, MemoryKind::Checkpoint])
    );
    assert_eq!(memory_contract::validate::search_request(&search), Ok(50));
}

#[test]
fn not_found_fixture_has_the_not_found_code() {
    let error = round_trip::<ErrorEnvelope>("error_not_found.json");
    assert_eq!(error.code, ErrorCode::NotFound);
    assert_eq!(error.details.unwrap()["namespace"], "workspace:a1");
}

#[test]
fn batch_fixtures_keep_items_in_order_with_one_error() {
    let request = round_trip::<BatchRequest>("batch_request.json");
    assert_eq!(request.writes.len(), 3);
    assert_eq!(request.writes[1].namespace, "team:t1");
    assert!(request.writes[0].write.created_at.is_some());
    let errors: Vec<usize> = request
        .writes
        .iter()
        .enumerate()
        .filter_map(|(i, w)| memory_contract::validate::batch_item(i, w).err().map(|_| i))
        .collect();
    assert_eq!(errors, vec![1], "only the blank item is invalid");

    let response = round_trip::<BatchResponse>("batch_response.json");
    assert!(matches!(response.results[0], BatchItemResult::Ok(_)));
    match &response.results[1] {
        BatchItemResult::Err { error } => assert_eq!(error.code, ErrorCode::BadRequest),
        other => panic!("item 1 should be an error, got {other:?}"),
    }
    assert!(matches!(response.results[2], BatchItemResult::Ok(_)));
}

#[test]
fn list_fixture_pages_by_id() {
    let page = round_trip::<ListResponse>("list_response.json");
    assert_eq!(page.memories.len(), 2);
    assert_eq!(page.next_after, Some(page.memories[1].id));
    assert!(page.memories[0].id < page.memories[1].id);
    assert!(page.memories[1].pin);
}
