//! Compatibility rules of the wire: optional fields are omitted when absent
//! and accept `null`; unknown fields are ignored, so older and newer peers
//! keep talking.

use memory_contract::{
    BatchItemResult, BatchRequest, BatchResponse, ChecksumResponse, ErrorCode, ErrorEnvelope,
    ForgetRequest, Health, ListQuery, ListResponse, Memory, MemoryKind, MemorySource, MemoryWrite,
    Namespace, NamespacePatch, NamespaceUpsert, SearchMode, SearchRequest, SearchResponse,
    WriteAck,
};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::fmt::Debug;

fn decode<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{v} does not decode: {e}"))
}

/// Decodes `minimal` and `minimal` plus each of `optional` set to null;
/// both must give the same value.
fn nulls_equal_absence<T: DeserializeOwned + PartialEq + Debug>(minimal: Value, optional: &[&str]) {
    let absent: T = decode(minimal.clone());
    let mut with_nulls = minimal;
    for field in optional {
        with_nulls[*field] = Value::Null;
    }
    let nulls: T = decode(with_nulls);
    assert_eq!(absent, nulls, "{}", std::any::type_name::<T>());
}

#[test]
fn null_and_absent_optional_fields_decode_the_same() {
    nulls_equal_absence::<NamespaceUpsert>(json!({"kind": "team"}), &["expires_at", "metadata"]);
    nulls_equal_absence::<NamespacePatch>(json!({}), &["expires_at", "metadata"]);
    nulls_equal_absence::<Namespace>(
        json!({"name": "team:t", "kind": "team", "created_at": "2026-01-01T00:00:00Z"}),
        &["expires_at", "metadata"],
    );
    nulls_equal_absence::<MemoryWrite>(
        json!({"content": "c", "kind": "fact", "source": "agent"}),
        &[
            "id",
            "expires_at",
            "propagation",
            "pin",
            "embedding",
            "created_at",
        ],
    );
    nulls_equal_absence::<Memory>(
        json!({
            "id": "00000000-0000-4000-8000-000000000001", "namespace": "team:t",
            "content": "c", "kind": "fact", "source": "agent",
            "created_at": "2026-01-01T00:00:00Z", "pin": false
        }),
        &["expires_at", "propagation", "score"],
    );
    nulls_equal_absence::<SearchRequest>(
        json!({"namespaces": ["team:t"]}),
        &["query", "kinds", "limit", "embedding"],
    );
    nulls_equal_absence::<ErrorEnvelope>(json!({"code": "internal", "message": "m"}), &["details"]);
    nulls_equal_absence::<ListResponse>(json!({"memories": []}), &["next_after"]);
    nulls_equal_absence::<ListQuery>(json!({}), &["after", "limit"]);
}

#[test]
fn a_null_propagation_is_absent_not_json_null() {
    let w: MemoryWrite =
        decode(json!({"content": "c", "kind": "fact", "source": "agent", "propagation": null}));
    assert_eq!(w.propagation, None);
}

/// A peer that sends a list as `null` or leaves it out means an empty list:
/// `{"memories":null}` is how some v1 plugins answer an empty search.
fn null_and_absent_lists_are_empty<T: DeserializeOwned + PartialEq + Debug>(
    with_list: Value,
    list: &str,
) {
    let empty: T = decode(with_list.clone());
    let mut nulled = with_list.clone();
    nulled[list] = Value::Null;
    assert_eq!(empty, decode::<T>(nulled), "{list} null");
    let mut absent = with_list;
    absent.as_object_mut().expect("object").remove(list);
    assert_eq!(empty, decode::<T>(absent), "{list} absent");
}

#[test]
fn null_or_absent_lists_in_answers_decode_as_empty() {
    null_and_absent_lists_are_empty::<SearchResponse>(json!({"memories": []}), "memories");
    null_and_absent_lists_are_empty::<ListResponse>(json!({"memories": []}), "memories");
    null_and_absent_lists_are_empty::<ListResponse>(
        json!({"memories": [], "next_after": "00000000-0000-4000-8000-000000000001"}),
        "memories",
    );
    null_and_absent_lists_are_empty::<BatchResponse>(json!({"results": []}), "results");
    null_and_absent_lists_are_empty::<Health>(
        json!({"status": "ok", "version": "1.0.0", "capabilities": []}),
        "capabilities",
    );
    null_and_absent_lists_are_empty::<ChecksumResponse>(
        json!({"prefix": 2, "created_at": false, "buckets": []}),
        "buckets",
    );
    // A null pin is an unpinned memory.
    let memory = json!({
        "id": "00000000-0000-4000-8000-000000000001", "namespace": "team:t",
        "content": "c", "kind": "fact", "source": "agent",
        "created_at": "2026-01-01T00:00:00Z", "pin": null
    });
    assert!(!decode::<Memory>(memory).pin);
}

#[test]
fn empty_lists_are_always_encoded_as_arrays() {
    let health = Health {
        status: "ok".into(),
        version: "1.0.0".into(),
        capabilities: vec![],
        embedding_dimension: None,
    };
    assert_eq!(
        serde_json::to_value(&health).unwrap()["capabilities"],
        json!([])
    );
    let search = SearchResponse { memories: vec![] };
    assert_eq!(
        serde_json::to_value(&search).unwrap(),
        json!({"memories": []})
    );
    let list = ListResponse {
        memories: vec![],
        next_after: None,
    };
    assert_eq!(
        serde_json::to_value(&list).unwrap(),
        json!({"memories": []})
    );
    let batch = BatchResponse { results: vec![] };
    assert_eq!(
        serde_json::to_value(&batch).unwrap(),
        json!({"results": []})
    );
}

/// Adds unknown fields at the top level and checks they change nothing.
fn unknown_fields_ignored<T: DeserializeOwned + PartialEq + Debug>(body: Value) {
    let plain: T = decode(body.clone());
    let mut extended = body;
    extended["x_future_field"] = json!({"nested": [1, 2, 3]});
    extended["another_new_flag"] = json!(true);
    let decoded: T = decode(extended);
    assert_eq!(plain, decoded, "{}", std::any::type_name::<T>());
}

#[test]
fn unknown_fields_are_ignored_everywhere() {
    let memory = json!({
        "id": "00000000-0000-4000-8000-000000000001", "namespace": "team:t",
        "content": "c", "kind": "fact", "source": "agent",
        "created_at": "2026-01-01T00:00:00Z", "pin": true
    });
    unknown_fields_ignored::<Health>(
        json!({"status": "ok", "version": "1.0.0", "capabilities": []}),
    );
    unknown_fields_ignored::<NamespaceUpsert>(json!({"kind": "org"}));
    unknown_fields_ignored::<NamespacePatch>(json!({"metadata": {"a": 1}}));
    unknown_fields_ignored::<Namespace>(
        json!({"name": "org:o", "kind": "org", "created_at": "2026-01-01T00:00:00Z"}),
    );
    unknown_fields_ignored::<MemoryWrite>(
        json!({"content": "c", "kind": "fact", "source": "user"}),
    );
    unknown_fields_ignored::<WriteAck>(
        json!({"id": "00000000-0000-4000-8000-000000000001", "namespace": "team:t"}),
    );
    unknown_fields_ignored::<Memory>(memory.clone());
    unknown_fields_ignored::<SearchRequest>(json!({"namespaces": ["team:t"]}));
    unknown_fields_ignored::<SearchResponse>(json!({"memories": [memory.clone()]}));
    unknown_fields_ignored::<ForgetRequest>(json!({"requested_by_namespace": "team:t"}));
    unknown_fields_ignored::<ErrorEnvelope>(json!({"code": "forbidden", "message": "no"}));
    unknown_fields_ignored::<BatchRequest>(json!({"writes": []}));
    unknown_fields_ignored::<BatchResponse>(json!({"results": []}));
    unknown_fields_ignored::<ListResponse>(json!({"memories": [memory]}));
}

#[test]
fn unknown_fields_inside_batch_items_are_ignored() {
    let plain: BatchRequest = decode(json!({"writes": [
        {"namespace": "team:t", "content": "c", "kind": "fact", "source": "agent"}
    ]}));
    let extended: BatchRequest = decode(json!({"writes": [
        {"namespace": "team:t", "content": "c", "kind": "fact", "source": "agent", "priority": 9}
    ]}));
    assert_eq!(plain, extended);
    let results: BatchResponse = decode(json!({"results": [
        {"id": "00000000-0000-4000-8000-000000000001", "namespace": "team:t", "etag": "x"},
        {"error": {"code": "conflict", "message": "m", "retry": false}, "index": 1}
    ]}));
    assert!(matches!(results.results[0], BatchItemResult::Ok(_)));
    assert!(matches!(
        &results.results[1],
        BatchItemResult::Err { error } if error.code == ErrorCode::Conflict
    ));
}

#[test]
fn absent_optional_fields_are_omitted_on_encode() {
    let w = MemoryWrite::new("c", MemoryKind::Fact, MemorySource::Agent);
    let v = serde_json::to_value(&w).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["content", "kind", "source"]);

    let patch = serde_json::to_value(NamespacePatch::default()).unwrap();
    assert_eq!(patch, json!({}));
    let e = serde_json::to_value(ErrorEnvelope::new(ErrorCode::NotFound, "gone")).unwrap();
    assert_eq!(e, json!({"code": "not_found", "message": "gone"}));
}

#[test]
fn memory_pin_defaults_to_false_and_is_always_sent() {
    let m: Memory = decode(json!({
        "id": "00000000-0000-4000-8000-000000000001", "namespace": "team:t",
        "content": "c", "kind": "fact", "source": "agent",
        "created_at": "2026-01-01T00:00:00Z"
    }));
    assert!(!m.pin);
    assert_eq!(serde_json::to_value(&m).unwrap()["pin"], json!(false));
}

#[test]
fn health_without_capabilities_means_none() {
    let h: Health = decode(json!({"status": "ok", "version": "1.0.0"}));
    assert!(h.capabilities.is_empty());
    assert!(!h.supports("fts"));
}

#[test]
fn error_codes_round_trip_and_unknown_codes_are_kept() {
    for (wire, code) in [
        ("bad_request", ErrorCode::BadRequest),
        ("not_found", ErrorCode::NotFound),
        ("forbidden", ErrorCode::Forbidden),
        ("internal", ErrorCode::Internal),
        ("unavailable", ErrorCode::Unavailable),
        ("conflict", ErrorCode::Conflict),
        ("unauthorized", ErrorCode::Unauthorized),
        ("rate_limited", ErrorCode::Other("rate_limited".into())),
    ] {
        let e: ErrorEnvelope = decode(json!({"code": wire, "message": "m"}));
        assert_eq!(e.code, code);
        assert_eq!(serde_json::to_value(&e).unwrap()["code"], wire);
    }
}

#[test]
fn unknown_enum_values_and_wrong_types_do_not_decode() {
    for body in [
        json!({"content": "c", "kind": "note", "source": "agent"}),
        json!({"content": "c", "kind": "fact", "source": "system"}),
        json!({"content": 5, "kind": "fact", "source": "agent"}),
        json!({"content": "c", "kind": "fact"}),
        json!({"content": "c", "kind": "fact", "source": "agent", "pin": "yes"}),
        json!({"content": "c", "kind": "fact", "source": "agent", "created_at": "yesterday"}),
    ] {
        assert!(
            serde_json::from_value::<MemoryWrite>(body.clone()).is_err(),
            "{body}"
        );
    }
    assert!(serde_json::from_value::<SearchRequest>(json!({"namespaces": "team:t"})).is_err());
    assert!(serde_json::from_value::<SearchRequest>(
        json!({"namespaces": ["team:t"], "limit": "5"})
    )
    .is_err());
    assert!(serde_json::from_value::<NamespaceUpsert>(json!({"kind": "global"})).is_err());
}

#[test]
fn a_negative_search_limit_decodes_so_validation_can_explain_it() {
    let req: SearchRequest = decode(json!({"namespaces": ["team:t"], "limit": -1}));
    let err = memory_contract::validate::search_request(&req).unwrap_err();
    assert_eq!(err.field, "limit");
}

#[test]
fn nul_bytes_decode_and_are_refused_by_validation() {
    let w: MemoryWrite =
        decode(json!({"content": "a\u{0000}b", "kind": "fact", "source": "agent"}));
    assert_eq!(
        memory_contract::validate::memory_write(&w)
            .unwrap_err()
            .field,
        "content"
    );
}

#[test]
fn search_mode_follows_embedding_then_query_length() {
    let req = |query: Option<&str>, embedding: Option<Vec<f32>>| SearchRequest {
        namespaces: vec!["team:t".into()],
        query: query.map(str::to_string),
        embedding,
        ..SearchRequest::default()
    };
    let table = [
        (req(None, None), SearchMode::Recent),
        (req(Some(""), None), SearchMode::Recent),
        (req(Some("   "), None), SearchMode::Recent),
        (req(Some("a"), None), SearchMode::Substring),
        (req(Some(" é "), None), SearchMode::Substring),
        (req(Some("ab"), None), SearchMode::FullText),
        (req(Some("ab"), Some(vec![0.1])), SearchMode::Semantic),
        (req(None, Some(vec![0.1])), SearchMode::Semantic),
    ];
    for (r, mode) in table {
        assert_eq!(r.mode(), mode, "{:?}", r.query);
    }
}
