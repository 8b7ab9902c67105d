//! Table-driven tests of every validation rule of the contract, edges
//! included. Each refusal must name the field at fault.

use memory_contract::validate::{self, ValidationError};
use memory_contract::{
    BatchRequest, BatchWrite, ForgetRequest, MemoryKind, MemorySource, MemoryWrite, NamespaceKind,
    NamespacePatch, RankMode, SearchMode, SearchRequest,
};
use serde_json::json;

/// Asserts that `result` is a refusal of `field`, with a reason that
/// mentions `reason_part`.
#[track_caller]
fn assert_refused<T: std::fmt::Debug>(
    case: &str,
    result: Result<T, ValidationError>,
    field: &str,
    reason_part: &str,
) {
    match result {
        Ok(v) => panic!("{case}: accepted ({v:?}), expected a refusal of {field}"),
        Err(e) => {
            assert_eq!(e.field, field, "{case}: wrong field in {e}");
            assert!(
                e.reason.contains(reason_part),
                "{case}: reason {:?} does not mention {reason_part:?}",
                e.reason
            );
        }
    }
}

/// The outcome a table row expects: `None` for acceptance, else the field
/// refused and a word of the reason.
type Refusal = Option<FieldReason>;

/// The field refused and a word of the reason.
type FieldReason = (&'static str, &'static str);

fn name_of_len(prefix: &str, total: usize) -> String {
    let mut name = prefix.to_string();
    while name.chars().count() < total {
        name.push('a');
    }
    name
}

#[test]
fn namespace_names_are_checked_against_pattern_and_length() {
    let max = name_of_len("workspace:", 256);
    let too_long = name_of_len("workspace:", 257);
    assert_eq!(max.chars().count(), 256);
    assert_eq!(too_long.chars().count(), 257);

    let accepted = [
        "workspace:550e8400-e29b-41d4-a716-446655440000",
        "team:7c9e6679",
        "org:root",
        "custom:x",
        "a:b",
        "workspace:under_score",
        "workspace:with.dot",
        "workspace:with-dash",
        "workspace:with:colon",
        "workspace:MixedCase123",
        "workspace:_.-:",
        max.as_str(),
    ];
    for name in accepted {
        assert_eq!(
            validate::namespace_name("name", name),
            Ok(()),
            "{name:?} should be accepted"
        );
    }

    let refused: &[(&str, &str, &str)] = &[
        ("empty", "", "empty"),
        ("257 chars", too_long.as_str(), "257 characters"),
        ("uppercase prefix", "Workspace:abc", "lowercase"),
        ("all-caps prefix", "TEAM:abc", "lowercase"),
        ("digit in prefix", "ws1:abc", "lowercase"),
        ("empty prefix", ":abc", "lowercase"),
        ("no colon", "workspaceabc", "no ':'"),
        ("nothing after colon", "workspace:", "nothing after"),
        ("space", "workspace:a b", "' '"),
        ("slash", "workspace:a/b", "'/'"),
        ("at sign", "workspace:a@b", "'@'"),
        ("plus", "workspace:a+b", "'+'"),
        ("percent", "workspace:a%b", "'%'"),
        ("non-ASCII letter", "workspace:é", "'é'"),
        ("NUL byte", "workspace:a\0b", "'\\0'"),
        ("newline", "workspace:a\n", "'\\n'"),
        ("space in prefix", "work space:a", "lowercase"),
    ];
    for (case, name, reason) in refused {
        assert_refused(case, validate::namespace_name("name", name), "name", reason);
    }
}

#[test]
fn namespace_name_length_counts_characters_not_bytes() {
    // 256 characters but more bytes: still refused by the pattern, yet the
    // reason must be the character, not the length.
    let wide = format!("workspace:{}", "é".repeat(246));
    assert_eq!(wide.chars().count(), 256);
    assert_refused("wide", validate::namespace_name("n", &wide), "n", "'é'");
}

#[test]
fn namespace_kinds_are_the_four_wire_values() {
    for (text, kind) in [
        ("workspace", NamespaceKind::Workspace),
        ("team", NamespaceKind::Team),
        ("org", NamespaceKind::Org),
        ("custom", NamespaceKind::Custom),
    ] {
        assert_eq!(validate::namespace_kind("kind", text), Ok(kind));
    }
    for bad in ["", "Workspace", "user", "global", " team"] {
        assert_refused(
            bad,
            validate::namespace_kind("kind", bad),
            "kind",
            "expected one of",
        );
    }
}

#[test]
fn memory_kinds_are_the_three_wire_values() {
    for (text, kind) in [
        ("fact", MemoryKind::Fact),
        ("summary", MemoryKind::Summary),
        ("checkpoint", MemoryKind::Checkpoint),
    ] {
        assert_eq!(validate::memory_kind("kind", text), Ok(kind));
    }
    for bad in ["", "Fact", "note", "facts"] {
        assert_refused(
            bad,
            validate::memory_kind("kind", bad),
            "kind",
            "expected one of",
        );
    }
}

#[test]
fn memory_sources_are_the_three_wire_values() {
    for (text, source) in [
        ("agent", MemorySource::Agent),
        ("runtime", MemorySource::Runtime),
        ("user", MemorySource::User),
    ] {
        assert_eq!(validate::memory_source("source", text), Ok(source));
    }
    for bad in ["", "Agent", "system"] {
        assert_refused(
            bad,
            validate::memory_source("source", bad),
            "source",
            "expected one of",
        );
    }
}

#[test]
fn content_must_not_be_blank_or_hold_nul() {
    for ok in ["x", " padded ", "multi\nline", "日本語"] {
        assert_eq!(validate::content("content", ok), Ok(()), "{ok:?}");
    }
    let refused: &[(&str, &str, &str)] = &[
        ("empty", "", "blank"),
        ("spaces", "   ", "blank"),
        ("tabs and newlines", "\t\n\r ", "blank"),
        ("unicode spaces", "\u{00A0}\u{3000}", "blank"),
        ("NUL", "a\0b", "NUL"),
        ("only NUL", "\0", "NUL"),
    ];
    for (case, text, reason) in refused {
        assert_refused(case, validate::content("content", text), "content", reason);
    }
}

#[test]
fn search_limit_defaults_and_bounds() {
    let table: &[(Option<i64>, Option<u32>)] = &[
        (None, Some(20)),
        (Some(0), Some(20)),
        (Some(1), Some(1)),
        (Some(20), Some(20)),
        (Some(100), Some(100)),
        (Some(101), None),
        (Some(-1), None),
        (Some(1000), None),
        (Some(i64::MAX), None),
        (Some(i64::MIN), None),
    ];
    for (limit, expected) in table {
        match expected {
            Some(n) => assert_eq!(validate::search_limit(*limit), Ok(*n), "limit {limit:?}"),
            None => assert_refused(
                &format!("limit {limit:?}"),
                validate::search_limit(*limit),
                "limit",
                "out of range",
            ),
        }
    }
}

#[test]
fn list_limit_defaults_and_bounds() {
    let table: &[(Option<i64>, Option<u32>)] = &[
        (None, Some(100)),
        (Some(0), Some(100)),
        (Some(1), Some(1)),
        (Some(1000), Some(1000)),
        (Some(1001), None),
        (Some(-1), None),
    ];
    for (limit, expected) in table {
        match expected {
            Some(n) => assert_eq!(validate::list_limit(*limit), Ok(*n), "limit {limit:?}"),
            None => assert_refused(
                &format!("limit {limit:?}"),
                validate::list_limit(*limit),
                "limit",
                "out of range",
            ),
        }
    }
}

fn search(namespaces: Vec<String>) -> SearchRequest {
    SearchRequest {
        namespaces,
        ..SearchRequest::default()
    }
}

#[test]
fn search_needs_one_to_sixty_four_valid_namespaces() {
    let names = |n: usize| {
        (0..n)
            .map(|i| format!("workspace:w{i}"))
            .collect::<Vec<_>>()
    };
    assert_refused(
        "no namespace",
        validate::search_request(&search(vec![])),
        "namespaces",
        "at least one",
    );
    assert_eq!(validate::search_request(&search(names(1))), Ok(20));
    assert_eq!(validate::search_request(&search(names(64))), Ok(20));
    assert_refused(
        "65 namespaces",
        validate::search_request(&search(names(65))),
        "namespaces",
        "at most 64",
    );
    let mut with_bad = names(3);
    with_bad[2] = "Workspace:x".to_string();
    assert_refused(
        "bad third namespace",
        validate::search_request(&search(with_bad)),
        "namespaces[2]",
        "lowercase",
    );
}

#[test]
fn a_named_rank_mode_needs_its_ingredients() {
    let with = |mode: RankMode, query: Option<&str>, embedding: bool| SearchRequest {
        namespaces: vec!["team:t".to_string()],
        query: query.map(str::to_string),
        embedding: embedding.then(|| vec![0.5, 0.5]),
        mode: Some(mode),
        ..SearchRequest::default()
    };
    let cases: Vec<(&str, SearchRequest, Refusal)> = vec![
        (
            "semantic with embedding",
            with(RankMode::Semantic, None, true),
            None,
        ),
        (
            "semantic with a 1-char query and embedding",
            with(RankMode::Semantic, Some("x"), true),
            None,
        ),
        (
            "semantic without embedding",
            with(RankMode::Semantic, Some("coffee"), false),
            Some(("embedding", "needs an embedding")),
        ),
        (
            "fulltext with query",
            with(RankMode::Fulltext, Some("ab"), false),
            None,
        ),
        (
            "fulltext with query and embedding",
            with(RankMode::Fulltext, Some("coffee"), true),
            None,
        ),
        (
            "fulltext without query",
            with(RankMode::Fulltext, None, true),
            Some(("query", "none was given")),
        ),
        (
            "fulltext with a blank query",
            with(RankMode::Fulltext, Some("   "), false),
            Some(("query", "2 or more characters")),
        ),
        (
            "fulltext with a 1-char query",
            with(RankMode::Fulltext, Some(" é "), false),
            Some(("query", "substring search")),
        ),
        (
            "hybrid with both",
            with(RankMode::Hybrid, Some("ab"), true),
            None,
        ),
        (
            "hybrid without embedding",
            with(RankMode::Hybrid, Some("coffee"), false),
            Some(("embedding", "mode \"hybrid\"")),
        ),
        (
            "hybrid without query",
            with(RankMode::Hybrid, None, true),
            Some(("query", "mode \"hybrid\"")),
        ),
        (
            "hybrid with a 1-char query",
            with(RankMode::Hybrid, Some("a"), true),
            Some(("query", "1-character")),
        ),
    ];
    for (case, req, refusal) in cases {
        match refusal {
            None => assert_eq!(validate::search_request(&req), Ok(20), "{case}"),
            Some((field, reason)) => {
                assert_refused(case, validate::search_request(&req), field, reason)
            }
        }
    }
}

#[test]
fn a_named_rank_mode_selects_the_search_mode_and_none_keeps_v1() {
    let req = |mode: Option<RankMode>| SearchRequest {
        namespaces: vec!["team:t".to_string()],
        query: Some("coffee".to_string()),
        embedding: Some(vec![0.5]),
        mode,
        ..SearchRequest::default()
    };
    assert_eq!(req(None).mode(), SearchMode::Semantic);
    assert_eq!(req(Some(RankMode::Fulltext)).mode(), SearchMode::FullText);
    assert_eq!(req(Some(RankMode::Semantic)).mode(), SearchMode::Semantic);
    assert_eq!(req(Some(RankMode::Hybrid)).mode(), SearchMode::Hybrid);
    let wire: serde_json::Value = serde_json::to_value(req(Some(RankMode::Hybrid))).unwrap();
    assert_eq!(wire["mode"], "hybrid");
    assert!(serde_json::to_value(req(None))
        .unwrap()
        .get("mode")
        .is_none());
    let decoded: SearchRequest =
        serde_json::from_value(json!({"namespaces": ["team:t"], "mode": "fulltext"})).unwrap();
    assert_eq!(decoded.mode, Some(RankMode::Fulltext));
    assert!(
        serde_json::from_value::<SearchRequest>(
            json!({"namespaces": ["team:t"], "mode": "Hybrid"})
        )
        .is_err(),
        "mode values are lowercase"
    );
}

#[test]
fn search_checks_limit_query_and_embedding() {
    let base = || search(vec!["team:t".to_string()]);
    let cases: Vec<(&str, SearchRequest, Result<u32, FieldReason>)> = vec![
        (
            "limit -1",
            SearchRequest {
                limit: Some(-1),
                ..base()
            },
            Err(("limit", "out of range")),
        ),
        (
            "limit 0",
            SearchRequest {
                limit: Some(0),
                ..base()
            },
            Ok(20),
        ),
        (
            "limit 1",
            SearchRequest {
                limit: Some(1),
                ..base()
            },
            Ok(1),
        ),
        (
            "limit 100",
            SearchRequest {
                limit: Some(100),
                ..base()
            },
            Ok(100),
        ),
        (
            "limit 101",
            SearchRequest {
                limit: Some(101),
                ..base()
            },
            Err(("limit", "out of range")),
        ),
        (
            "query with NUL",
            SearchRequest {
                query: Some("a\0".into()),
                ..base()
            },
            Err(("query", "NUL")),
        ),
        (
            "one-char query",
            SearchRequest {
                query: Some("a".into()),
                kinds: Some(vec![MemoryKind::Fact]),
                ..base()
            },
            Ok(20),
        ),
        (
            "empty embedding",
            SearchRequest {
                embedding: Some(vec![]),
                ..base()
            },
            Err(("embedding", "empty")),
        ),
        (
            "NaN in embedding",
            SearchRequest {
                embedding: Some(vec![0.1, f32::NAN]),
                ..base()
            },
            Err(("embedding[1]", "finite")),
        ),
        (
            "infinity in embedding",
            SearchRequest {
                embedding: Some(vec![f32::INFINITY]),
                ..base()
            },
            Err(("embedding[0]", "finite")),
        ),
        (
            "finite embedding",
            SearchRequest {
                embedding: Some(vec![0.1, -0.2]),
                ..base()
            },
            Ok(20),
        ),
    ];
    for (case, req, expected) in cases {
        match expected {
            Ok(n) => assert_eq!(validate::search_request(&req), Ok(n), "{case}"),
            Err((field, reason)) => {
                assert_refused(case, validate::search_request(&req), field, reason)
            }
        }
    }
}

#[test]
fn ids_and_after_cursors_must_be_uuids() {
    let id = "550e8400-e29b-41d4-a716-446655440000";
    assert_eq!(
        validate::uuid("id", id).map(|u| u.to_string()).as_deref(),
        Ok(id)
    );
    for bad in [
        "",
        "not-a-uuid",
        "550e8400-e29b-41d4-a716-44665544000",
        "550e8400-e29b-41d4-a716-44665544000g",
        "12345",
    ] {
        assert_refused(bad, validate::uuid("id", bad), "id", "not a UUID");
        assert_refused(bad, validate::uuid("after", bad), "after", "not a UUID");
    }
}

#[test]
fn ids_that_are_not_uuids_do_not_decode_in_bodies() {
    let body = json!({"id": "nope", "content": "x", "kind": "fact", "source": "agent"});
    let err = serde_json::from_value::<MemoryWrite>(body).unwrap_err();
    assert!(
        err.to_string().contains("UUID") || err.to_string().contains("uuid"),
        "{err}"
    );
}

fn write(content: &str) -> MemoryWrite {
    MemoryWrite::new(content, MemoryKind::Fact, MemorySource::Agent)
}

#[test]
fn memory_writes_are_checked_field_by_field() {
    let cases: Vec<(&str, MemoryWrite, Refusal)> = vec![
        ("plain", write("ok"), None),
        (
            "whitespace-only content",
            write(" \n\t"),
            Some(("content", "blank")),
        ),
        ("empty content", write(""), Some(("content", "blank"))),
        ("NUL in content", write("a\0"), Some(("content", "NUL"))),
        (
            "NUL in propagation value",
            MemoryWrite {
                propagation: Some(json!({"a": ["x\u{0000}"]})),
                ..write("ok")
            },
            Some(("propagation", "NUL")),
        ),
        (
            "NUL in propagation key",
            MemoryWrite {
                propagation: Some(json!({"a\u{0000}": 1})),
                ..write("ok")
            },
            Some(("propagation", "NUL")),
        ),
        (
            "propagation without NUL",
            MemoryWrite {
                propagation: Some(json!({"hops": 1, "via": ["team:t"]})),
                ..write("ok")
            },
            None,
        ),
        (
            "empty embedding",
            MemoryWrite {
                embedding: Some(vec![]),
                ..write("ok")
            },
            Some(("embedding", "empty")),
        ),
        (
            "NaN embedding",
            MemoryWrite {
                embedding: Some(vec![f32::NAN]),
                ..write("ok")
            },
            Some(("embedding[0]", "finite")),
        ),
    ];
    for (case, w, expected) in cases {
        match expected {
            None => assert_eq!(validate::memory_write(&w), Ok(()), "{case}"),
            Some((field, reason)) => {
                assert_refused(case, validate::memory_write(&w), field, reason)
            }
        }
    }
}

#[test]
fn a_patch_needs_at_least_one_field() {
    assert_refused(
        "empty patch",
        validate::namespace_patch(&NamespacePatch::default()),
        "body",
        "at least one",
    );
    let from_nulls: NamespacePatch =
        serde_json::from_value(json!({"expires_at": null, "metadata": null})).unwrap();
    assert_refused(
        "all-null patch",
        validate::namespace_patch(&from_nulls),
        "body",
        "at least one",
    );
    let expiry_only: NamespacePatch =
        serde_json::from_value(json!({"expires_at": "2030-01-01T00:00:00Z"})).unwrap();
    assert_eq!(validate::namespace_patch(&expiry_only), Ok(()));
    let metadata_only = NamespacePatch {
        metadata: Some(json!({"k": "v"})),
        ..NamespacePatch::default()
    };
    assert_eq!(validate::namespace_patch(&metadata_only), Ok(()));
    let nul_metadata = NamespacePatch {
        metadata: Some(json!({"k": "v\u{0000}"})),
        ..NamespacePatch::default()
    };
    assert_refused(
        "NUL metadata",
        validate::namespace_patch(&nul_metadata),
        "metadata",
        "NUL",
    );
}

#[test]
fn metadata_must_be_a_json_object() {
    for bad in [json!(5), json!("text"), json!([1, 2]), json!(true)] {
        assert_refused(
            &format!("upsert metadata {bad}"),
            validate::namespace_metadata(Some(&bad)),
            "metadata",
            "JSON object",
        );
        let patch = NamespacePatch {
            metadata: Some(bad.clone()),
            ..NamespacePatch::default()
        };
        assert_refused(
            &format!("patch metadata {bad}"),
            validate::namespace_patch(&patch),
            "metadata",
            "JSON object",
        );
    }
    assert_eq!(validate::namespace_metadata(Some(&json!({}))), Ok(()));
}

#[test]
fn upsert_metadata_must_not_hold_nul() {
    assert_eq!(validate::namespace_metadata(None), Ok(()));
    assert_eq!(
        validate::namespace_metadata(Some(&json!({"a": [1, "b"]}))),
        Ok(())
    );
    assert_refused(
        "NUL key",
        validate::namespace_metadata(Some(&json!({"a\u{0000}": 1}))),
        "metadata",
        "NUL",
    );
}

#[test]
fn forget_names_a_valid_namespace() {
    let forget = |ns: &str| ForgetRequest {
        requested_by_namespace: ns.to_string(),
    };
    assert_eq!(validate::forget_request(&forget("workspace:w1")), Ok(()));
    for (case, ns, reason) in [
        ("empty", "", "empty"),
        ("no colon", "workspace", "no ':'"),
        ("uppercase", "WORKSPACE:w1", "lowercase"),
        ("bad char", "workspace:w 1", "' '"),
    ] {
        assert_refused(
            case,
            validate::forget_request(&forget(ns)),
            "requested_by_namespace",
            reason,
        );
    }
}

fn item(namespace: &str, content: &str) -> BatchWrite {
    BatchWrite {
        namespace: namespace.to_string(),
        write: write(content),
    }
}

#[test]
fn batches_are_bounded_and_items_checked_one_by_one() {
    let batch = |n: usize| BatchRequest {
        writes: (0..n).map(|_| item("workspace:w", "x")).collect(),
    };
    assert_eq!(validate::batch_request(&batch(0)), Ok(()));
    assert_eq!(validate::batch_request(&batch(1000)), Ok(()));
    assert_refused(
        "1001 items",
        validate::batch_request(&batch(1001)),
        "writes",
        "at most 1000",
    );

    assert_eq!(validate::batch_item(0, &item("team:t", "x")), Ok(()));
    assert_refused(
        "bad namespace",
        validate::batch_item(3, &item("Team:t", "x")),
        "writes[3].namespace",
        "lowercase",
    );
    assert_refused(
        "blank content",
        validate::batch_item(7, &item("team:t", "  ")),
        "writes[7].content",
        "blank",
    );
    let nan = BatchWrite {
        namespace: "team:t".into(),
        write: MemoryWrite {
            embedding: Some(vec![1.0, f32::NAN]),
            ..write("x")
        },
    };
    assert_refused(
        "NaN",
        validate::batch_item(2, &nan),
        "writes[2].embedding[1]",
        "finite",
    );
}

#[test]
fn validation_errors_display_field_and_reason() {
    let e = validate::namespace_name("namespaces[0]", "").unwrap_err();
    assert_eq!(e.to_string(), "namespaces[0]: namespace name is empty");
    assert_eq!(
        ValidationError::new("", "r").under("writes[1]").field,
        "writes[1]"
    );
    assert_eq!(
        ValidationError::new("[2]", "r").under("embedding").field,
        "embedding[2]"
    );
}
