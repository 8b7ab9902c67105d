//! Keeps `docs/memory-plugin-v1.yaml` true to the contract crate: every
//! route with its methods, every schema's property names and required list
//! (taken from what serde really writes), enums, limits and error bodies.
//! Renaming a field in code without the document fails here.

use chrono::{TimeZone, Utc};
use memory_contract::{
    capability, limits, route, BatchItemResult, BatchRequest, BatchResponse, BatchWrite,
    ChecksumBucket, ChecksumQuery, ChecksumResponse, ErrorCode, ErrorEnvelope, ForgetRequest,
    Health, ListQuery, ListResponse, Memory, MemoryKind, MemorySource, MemoryWrite, Namespace,
    NamespaceKind, NamespaceListQuery, NamespaceListResponse, NamespacePatch, NamespaceUpsert,
    RankMode, ScanQuery, SearchRequest, SearchResponse, WriteAck,
};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

const DOCUMENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/memory-plugin-v1.yaml"
);

fn document() -> Value {
    let text =
        std::fs::read_to_string(DOCUMENT).unwrap_or_else(|e| panic!("cannot read {DOCUMENT}: {e}"));
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{DOCUMENT} is not YAML: {e}"));
    serde_json::to_value(yaml).expect("the document converts to JSON")
}

/// Follows a `$ref` inside the document.
fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("only local $refs are used, found {reference}"));
            let target = doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {reference}"));
            resolve(doc, target)
        }
        None => node,
    }
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc.pointer(&format!("/components/schemas/{name}"))
        .unwrap_or_else(|| panic!("the document has no schema {name}"))
}

/// Property names and required names of an object schema, through `allOf`.
fn properties_and_required(doc: &Value, node: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let node = resolve(doc, node);
    let mut props = BTreeSet::new();
    let mut required = BTreeSet::new();
    if let Some(parts) = node.get("allOf").and_then(Value::as_array) {
        for part in parts {
            let (p, r) = properties_and_required(doc, part);
            props.extend(p);
            required.extend(r);
        }
    }
    if let Some(map) = node.get("properties").and_then(Value::as_object) {
        props.extend(map.keys().cloned());
    }
    if let Some(list) = node.get("required").and_then(Value::as_array) {
        required.extend(
            list.iter()
                .map(|v| v.as_str().expect("required names").to_string()),
        );
    }
    (props, required)
}

fn keys_of<T: Serialize>(value: &T) -> BTreeSet<String> {
    match serde_json::to_value(value).expect("encode") {
        Value::Object(map) => map.keys().cloned().collect(),
        other => panic!("expected an object, got {other}"),
    }
}

fn time() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
}

fn full_write() -> MemoryWrite {
    MemoryWrite {
        id: Some(Uuid::nil()),
        content: "c".into(),
        kind: MemoryKind::Fact,
        source: MemorySource::Agent,
        expires_at: Some(time()),
        propagation: Some(json!({"a": 1})),
        pin: Some(true),
        embedding: Some(vec![0.5]),
        created_at: Some(time()),
    }
}

fn minimal_write() -> MemoryWrite {
    MemoryWrite::new("c", MemoryKind::Fact, MemorySource::Agent)
}

fn full_memory() -> Memory {
    Memory {
        id: Uuid::nil(),
        namespace: "team:t".into(),
        content: "c".into(),
        kind: MemoryKind::Summary,
        source: MemorySource::User,
        expires_at: Some(time()),
        propagation: Some(json!({})),
        pin: true,
        created_at: time(),
        score: Some(0.5),
        embedding: Some(vec![0.25]),
    }
}

fn minimal_memory() -> Memory {
    Memory {
        expires_at: None,
        propagation: None,
        score: None,
        embedding: None,
        // The zero value, so a field skipped when empty would show here.
        pin: false,
        ..full_memory()
    }
}

fn full_envelope() -> ErrorEnvelope {
    ErrorEnvelope::new(ErrorCode::NotFound, "m").with_details(json!({"field": "x"}))
}

/// Each documented object schema with a fully populated and a minimal
/// instance of its Rust type, encoded: the first gives the property names,
/// the second the required ones.
fn schema_table() -> Vec<(&'static str, BTreeSet<String>, BTreeSet<String>)> {
    let ns = Namespace {
        name: "team:t".into(),
        kind: NamespaceKind::Team,
        expires_at: Some(time()),
        metadata: Some(json!({})),
        created_at: time(),
    };
    let ns_min = Namespace {
        expires_at: None,
        metadata: None,
        ..ns.clone()
    };
    let upsert = NamespaceUpsert {
        kind: NamespaceKind::Org,
        expires_at: Some(time()),
        metadata: Some(json!({})),
    };
    let upsert_min = NamespaceUpsert {
        kind: NamespaceKind::Org,
        expires_at: None,
        metadata: None,
    };
    let patch = NamespacePatch {
        expires_at: Some(time()),
        metadata: Some(json!({})),
    };
    let search = SearchRequest {
        namespaces: vec!["team:t".into()],
        query: Some("q".into()),
        kinds: Some(vec![MemoryKind::Fact]),
        limit: Some(5),
        embedding: Some(vec![0.5]),
        mode: Some(RankMode::Hybrid),
    };
    let search_min = SearchRequest {
        namespaces: vec!["team:t".into()],
        ..SearchRequest::default()
    };
    let health = Health {
        status: "ok".into(),
        version: "1.0.0".into(),
        capabilities: vec!["fts".into()],
        embedding_dimension: Some(384),
    };
    let ack = WriteAck {
        id: Uuid::nil(),
        namespace: "team:t".into(),
    };
    let batch_write = |write: MemoryWrite| BatchWrite {
        namespace: "team:t".into(),
        write,
    };
    let batch_error = BatchItemResult::Err {
        error: full_envelope(),
    };
    let list = ListResponse {
        memories: vec![],
        next_after: Some(Uuid::nil()),
    };
    let list_min = ListResponse {
        memories: vec![],
        next_after: None,
    };
    let forget = ForgetRequest {
        requested_by_namespace: "team:t".into(),
    };
    let bucket = ChecksumBucket {
        prefix: "3f".into(),
        count: 1,
        digest: "0".repeat(32),
    };
    let checksums = ChecksumResponse {
        prefix: 2,
        created_at: false,
        buckets: vec![bucket.clone()],
    };
    vec![
        (
            "Health",
            keys_of(&health),
            keys_of(&Health {
                capabilities: vec![],
                embedding_dimension: None,
                ..health.clone()
            }),
        ),
        (
            "ErrorEnvelope",
            keys_of(&full_envelope()),
            keys_of(&ErrorEnvelope::new(ErrorCode::Internal, "m")),
        ),
        ("Namespace", keys_of(&ns), keys_of(&ns_min)),
        ("NamespaceUpsert", keys_of(&upsert), keys_of(&upsert_min)),
        (
            "NamespacePatch",
            keys_of(&patch),
            keys_of(&NamespacePatch::default()),
        ),
        (
            "MemoryWrite",
            keys_of(&full_write()),
            keys_of(&minimal_write()),
        ),
        ("WriteAck", keys_of(&ack), keys_of(&ack)),
        (
            "Memory",
            keys_of(&full_memory()),
            keys_of(&minimal_memory()),
        ),
        ("SearchRequest", keys_of(&search), keys_of(&search_min)),
        (
            "SearchResponse",
            keys_of(&SearchResponse { memories: vec![] }),
            keys_of(&SearchResponse { memories: vec![] }),
        ),
        ("ForgetRequest", keys_of(&forget), keys_of(&forget)),
        (
            "BatchWrite",
            keys_of(&batch_write(full_write())),
            keys_of(&batch_write(minimal_write())),
        ),
        (
            "BatchRequest",
            keys_of(&BatchRequest { writes: vec![] }),
            keys_of(&BatchRequest { writes: vec![] }),
        ),
        (
            "BatchItemError",
            keys_of(&batch_error),
            keys_of(&batch_error),
        ),
        (
            "BatchResponse",
            keys_of(&BatchResponse { results: vec![] }),
            keys_of(&BatchResponse { results: vec![] }),
        ),
        ("ListResponse", keys_of(&list), keys_of(&list_min)),
        (
            "NamespaceListResponse",
            keys_of(&NamespaceListResponse {
                namespaces: vec![],
                next_after: Some("team:t".into()),
            }),
            keys_of(&NamespaceListResponse {
                namespaces: vec![],
                next_after: None,
            }),
        ),
        (
            "ChecksumResponse",
            keys_of(&checksums),
            keys_of(&ChecksumResponse {
                buckets: vec![],
                ..checksums.clone()
            }),
        ),
        ("ChecksumBucket", keys_of(&bucket), keys_of(&bucket)),
    ]
}

/// Schemas that are not plain objects of one Rust type: enums and unions,
/// checked by their own tests below.
const COMPOSITE_SCHEMAS: &[&str] = &[
    "NamespaceKind",
    "MemoryKind",
    "MemorySource",
    "HealthUnavailable",
    "BatchItemResult",
];

#[test]
fn every_schema_has_the_serde_field_names_of_its_type() {
    let doc = document();
    let mut failures = Vec::new();
    for (name, fields, required_fields) in schema_table() {
        let (props, required) = properties_and_required(&doc, schema(&doc, name));
        if props != fields {
            failures.push(format!(
                "{name}: document properties {props:?} != serde fields {fields:?}"
            ));
        }
        if required != required_fields {
            failures.push(format!(
                "{name}: document required {required:?} != always-present fields {required_fields:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_documented_schema_is_checked() {
    let doc = document();
    let documented: BTreeSet<String> = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .expect("components.schemas")
        .keys()
        .cloned()
        .collect();
    let checked: BTreeSet<String> = schema_table()
        .into_iter()
        .map(|(n, _, _)| n.to_string())
        .chain(COMPOSITE_SCHEMAS.iter().map(|n| n.to_string()))
        .collect();
    assert_eq!(documented, checked);
}

#[test]
fn enums_list_every_wire_value() {
    let doc = document();
    let listed = |name: &str| -> Vec<String> {
        schema(&doc, name)["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no enum"))
            .iter()
            .map(|v| v.as_str().expect("enum value").to_string())
            .collect()
    };
    let wire = |values: Vec<&str>| values.into_iter().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(
        listed("NamespaceKind"),
        wire(NamespaceKind::ALL.iter().map(|k| k.as_str()).collect())
    );
    assert_eq!(
        listed("MemoryKind"),
        wire(MemoryKind::ALL.iter().map(|k| k.as_str()).collect())
    );
    assert_eq!(
        listed("MemorySource"),
        wire(MemorySource::ALL.iter().map(|k| k.as_str()).collect())
    );
    let modes: Vec<String> = schema(&doc, "SearchRequest")["properties"]["mode"]["enum"]
        .as_array()
        .expect("SearchRequest.mode has an enum")
        .iter()
        .map(|v| v.as_str().expect("mode value").to_string())
        .collect();
    let wire_modes: Vec<String> = [RankMode::Fulltext, RankMode::Semantic, RankMode::Hybrid]
        .iter()
        .map(|m| {
            serde_json::to_value(m)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(modes, wire_modes);
}

#[test]
fn the_hybrid_score_is_documented_with_its_constants() {
    let doc = document();
    let score = schema(&doc, "Memory")["properties"]["score"]["description"]
        .as_str()
        .expect("score description");
    let mode = schema(&doc, "SearchRequest")["properties"]["mode"]["description"]
        .as_str()
        .expect("mode description");
    let search = doc["paths"][route::SEARCH]["post"]["description"]
        .as_str()
        .expect("search description");
    let rrf = format!("1 / ({} + rank)", memory_contract::HYBRID_RRF_K);
    let top = format!("top {}", memory_contract::HYBRID_CANDIDATES);
    for (what, text) in [("score", score), ("mode", mode)] {
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains(&rrf), "{what}: {flat}");
        assert!(flat.contains(&top), "{what}: {flat}");
    }
    let flat = search.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains(&rrf), "{flat}");
    assert!(
        flat.contains(&format!("best {}", memory_contract::HYBRID_CANDIDATES)),
        "{flat}"
    );
}

#[test]
fn unions_are_built_from_the_right_parts() {
    let doc = document();
    let refs = |name: &str, key: &str| -> Vec<String> {
        schema(&doc, name)[key]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no {key}"))
            .iter()
            .filter_map(|v| v.get("$ref").and_then(Value::as_str).map(str::to_string))
            .collect()
    };
    assert_eq!(
        refs("HealthUnavailable", "allOf"),
        [
            "#/components/schemas/Health",
            "#/components/schemas/ErrorEnvelope"
        ]
    );
    assert_eq!(
        refs("BatchItemResult", "oneOf"),
        [
            "#/components/schemas/WriteAck",
            "#/components/schemas/BatchItemError"
        ]
    );
    assert_eq!(
        refs("BatchWrite", "allOf"),
        ["#/components/schemas/MemoryWrite"]
    );
}

const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

/// One documented operation: its route and method, the schema of its
/// request body and its success status and body.
struct Operation {
    path: &'static str,
    method: &'static str,
    request: Option<&'static str>,
    status: &'static str,
    response: Option<&'static str>,
}

/// Every route of the contract crate with its methods.
fn operations() -> Vec<Operation> {
    let op = |path, method, request, status, response| Operation {
        path,
        method,
        request,
        status,
        response,
    };
    vec![
        op(route::HEALTH, "get", None, "200", Some("Health")),
        op(route::NAMESPACE, "get", None, "200", Some("Namespace")),
        op(
            route::NAMESPACE,
            "put",
            Some("NamespaceUpsert"),
            "200",
            Some("Namespace"),
        ),
        op(
            route::NAMESPACE,
            "patch",
            Some("NamespacePatch"),
            "200",
            Some("Namespace"),
        ),
        op(route::NAMESPACE, "delete", None, "204", None),
        op(
            route::NAMESPACE_MEMORIES,
            "post",
            Some("MemoryWrite"),
            "201",
            Some("WriteAck"),
        ),
        op(
            route::NAMESPACE_MEMORIES,
            "get",
            None,
            "200",
            Some("ListResponse"),
        ),
        op(
            route::SEARCH,
            "post",
            Some("SearchRequest"),
            "200",
            Some("SearchResponse"),
        ),
        op(route::MEMORY, "delete", Some("ForgetRequest"), "204", None),
        op(
            route::BATCH,
            "post",
            Some("BatchRequest"),
            "200",
            Some("BatchResponse"),
        ),
        op(route::MEMORIES, "get", None, "200", Some("ListResponse")),
        op(
            route::NAMESPACES,
            "get",
            None,
            "200",
            Some("NamespaceListResponse"),
        ),
        op(
            route::CHECKSUMS,
            "get",
            None,
            "200",
            Some("ChecksumResponse"),
        ),
    ]
}

fn json_schema_ref(doc: &Value, holder: &Value) -> Option<String> {
    resolve(doc, holder)
        .pointer("/content/application~1json/schema/$ref")
        .and_then(Value::as_str)
        .map(|r| r.trim_start_matches("#/components/schemas/").to_string())
}

#[test]
fn every_route_is_documented_with_its_methods() {
    let doc = document();
    let paths = doc["paths"].as_object().expect("paths");
    let mut expected: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for Operation { path, method, .. } in operations() {
        expected.entry(path).or_default().insert(method);
    }
    let documented: BTreeMap<&str, BTreeSet<&str>> = paths
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .expect("path item")
                .keys()
                .map(String::as_str)
                .filter(|k| HTTP_METHODS.contains(k))
                .collect();
            (path.as_str(), methods)
        })
        .collect();
    assert_eq!(documented, expected);
}

#[test]
fn every_operation_has_the_right_bodies() {
    let doc = document();
    for Operation {
        path,
        method,
        request,
        status,
        response,
    } in operations()
    {
        let op = &doc["paths"][path][method];
        let what = format!("{} {path}", method.to_uppercase());
        let request_schema = op.get("requestBody").and_then(|b| json_schema_ref(&doc, b));
        assert_eq!(request_schema.as_deref(), request, "{what}: request body");
        let responses = op["responses"].as_object().expect("responses");
        let success: Vec<&String> = responses.keys().filter(|s| s.starts_with('2')).collect();
        assert_eq!(success, [status], "{what}: success status");
        let response_schema = json_schema_ref(&doc, &responses[status]);
        assert_eq!(response_schema.as_deref(), response, "{what}: success body");
    }
}

#[test]
fn every_error_answer_carries_the_envelope() {
    let doc = document();
    for Operation { path, method, .. } in operations() {
        let what = format!("{} {path}", method.to_uppercase());
        let responses = doc["paths"][path][method]["responses"]
            .as_object()
            .expect("responses");
        let errors: Vec<&String> = responses.keys().filter(|s| !s.starts_with('2')).collect();
        assert!(!errors.is_empty(), "{what} documents no error answer");
        for status in errors {
            let body = json_schema_ref(&doc, &responses[status.as_str()]);
            let ok = match body.as_deref() {
                Some("ErrorEnvelope") => true,
                Some("HealthUnavailable") => path == route::HEALTH && status == "503",
                _ => false,
            };
            assert!(
                ok,
                "{what} {status}: body is {body:?}, not the error envelope"
            );
        }
        if path != route::HEALTH {
            for status in ["400", "401", "500", "503"] {
                assert!(
                    responses.contains_key(status),
                    "{what} does not document {status}"
                );
            }
        }
    }
    let write = &doc["paths"][route::NAMESPACE_MEMORIES]["post"]["responses"];
    assert!(
        write.get("409").is_some(),
        "memory writes document 409 conflict"
    );
    for Operation {
        path,
        method,
        request,
        ..
    } in operations()
    {
        if request.is_some() {
            assert!(
                doc["paths"][path][method]["responses"].get("413").is_some(),
                "{} {path} has a body and must document 413",
                method.to_uppercase()
            );
        }
    }
}

#[test]
fn list_scan_and_checksum_query_parameters_are_their_query_fields() {
    let doc = document();
    let list = keys_of(&ListQuery {
        after: Some("x".into()),
        limit: Some(1),
    });
    let scan = keys_of(&ScanQuery {
        after: Some("x".into()),
        before: Some("y".into()),
        limit: Some(1),
        embedding: Some(true),
    });
    let namespaces = keys_of(&NamespaceListQuery {
        after: Some("x".into()),
        limit: Some(1),
    });
    let checksum = keys_of(&ChecksumQuery {
        prefix: Some(1),
        created_at: Some(true),
    });
    for (path, fields) in [
        (route::NAMESPACE_MEMORIES, list),
        (route::MEMORIES, scan),
        (route::CHECKSUMS, checksum),
        (route::NAMESPACES, namespaces),
    ] {
        let params: BTreeSet<String> = doc["paths"][path]["get"]["parameters"]
            .as_array()
            .expect("query parameters")
            .iter()
            .map(|p| resolve(&doc, p))
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().expect("name").to_string())
            .collect();
        assert_eq!(params, fields, "{path}");
    }
}

#[test]
fn limits_in_the_document_match_the_contract() {
    let doc = document();
    let name_param = doc
        .pointer("/components/parameters/NamespaceName")
        .expect("NamespaceName parameter");
    let name_schema = &name_param["schema"];
    assert_eq!(name_schema["pattern"], r"^[a-z]+:[A-Za-z0-9_:.\-]+$");
    assert_eq!(name_schema["maxLength"], limits::NAMESPACE_NAME_MAX);
    let search = &schema(&doc, "SearchRequest")["properties"];
    assert_eq!(search["limit"]["maximum"], limits::SEARCH_LIMIT_MAX);
    assert_eq!(
        search["namespaces"]["maxItems"],
        limits::SEARCH_NAMESPACES_MAX
    );
    assert_eq!(
        search["namespaces"]["items"]["pattern"],
        name_schema["pattern"]
    );
    assert_eq!(
        schema(&doc, "BatchRequest")["properties"]["writes"]["maxItems"],
        limits::BATCH_ITEMS_MAX
    );
    for path in [route::NAMESPACE_MEMORIES, route::MEMORIES] {
        let page_limit = doc["paths"][path]["get"]["parameters"]
            .as_array()
            .expect("page parameters")
            .iter()
            .find(|p| p["name"] == "limit")
            .expect("limit parameter");
        assert_eq!(
            page_limit["schema"]["maximum"],
            limits::LIST_LIMIT_MAX,
            "{path}"
        );
    }
    let prefix = doc["paths"][route::CHECKSUMS]["get"]["parameters"]
        .as_array()
        .expect("checksum parameters")
        .iter()
        .find(|p| p["name"] == "prefix")
        .expect("prefix parameter");
    assert_eq!(prefix["schema"]["maximum"], limits::CHECKSUM_PREFIX_MAX);
    let answered = &schema(&doc, "ChecksumResponse")["properties"]["prefix"];
    assert_eq!(answered["maximum"], limits::CHECKSUM_PREFIX_MAX);
    assert!(prefix["description"]
        .as_str()
        .expect("prefix description")
        .contains(&format!("means {}", limits::CHECKSUM_PREFIX_DEFAULT)));
}

#[test]
fn documented_codes_and_capabilities_are_the_contract_ones() {
    let doc = document();
    let envelope = schema(&doc, "ErrorEnvelope")["description"]
        .as_str()
        .expect("ErrorEnvelope description");
    for code in [
        ErrorCode::BadRequest,
        ErrorCode::NotFound,
        ErrorCode::Forbidden,
        ErrorCode::Internal,
        ErrorCode::Unavailable,
        ErrorCode::Conflict,
        ErrorCode::Unauthorized,
    ] {
        assert!(
            envelope.contains(&format!("`{code}`")),
            "code {code} is not documented"
        );
    }
    let caps = schema(&doc, "Health")["properties"]["capabilities"]["description"]
        .as_str()
        .expect("capabilities description");
    for cap in capability::V1.iter().chain(capability::EXTENSIONS) {
        assert!(
            caps.contains(&format!("`{cap}`")),
            "capability {cap} is not documented"
        );
    }
    assert_eq!(doc["info"]["version"], memory_contract::CONTRACT_VERSION);
    assert_eq!(doc["openapi"], "3.0.3");
}
