//! Runs the redactor over the two corpora in `tests/corpus/`:
//!
//! - `secrets.jsonl`: one JSON object a line, `{"text", "classes",
//!   "secrets"}`. Every text must come out redacted, with exactly the
//!   classes listed (in order), without any of the listed secret values, and
//!   unchanged by a second pass.
//! - `ordinary.txt`: one text a line (blank lines and lines starting with
//!   `# ` are skipped). Every text must come out byte for byte unchanged; so
//!   must the whole file taken as one text.
//!
//! Both tests report every failing line, not only the first.

use memory_redact::{Redactor, SecretClass};

const SECRETS: &str = include_str!("corpus/secrets.jsonl");
const ORDINARY: &str = include_str!("corpus/ordinary.txt");

#[test]
fn secrets_are_redacted() {
    let redactor = Redactor::new();
    let mut failures = Vec::new();
    let mut count = 0;
    for (i, line) in SECRETS.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        count += 1;
        let case: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("line {n}: not JSON: {e}"));
                continue;
            }
        };
        let text = case["text"].as_str().expect("text");
        let expected: Vec<SecretClass> = case["classes"]
            .as_array()
            .expect("classes")
            .iter()
            .map(|c| {
                let c = c.as_str().expect("class name");
                SecretClass::from_name(c).unwrap_or_else(|| panic!("line {n}: no class {c}"))
            })
            .collect();
        let secrets: Vec<&str> = case["secrets"]
            .as_array()
            .expect("secrets")
            .iter()
            .map(|s| s.as_str().expect("secret"))
            .collect();
        let out = redactor.redact(text);
        let mut problems = Vec::new();
        if !out.is_redacted() {
            problems.push("nothing redacted".to_string());
        }
        if out.classes != expected {
            problems.push(format!(
                "classes {:?}, expected {:?}",
                out.classes, expected
            ));
        }
        for s in &secrets {
            if out.text.contains(s) {
                problems.push(format!("secret {s:?} still there"));
            }
        }
        for c in &expected {
            let marker = format!("[REDACTED:{c}]");
            if !out.text.contains(&marker) {
                problems.push(format!("no {marker}"));
            }
        }
        let again = redactor.redact(&out.text);
        if again.text != out.text || again.is_redacted() {
            problems.push(format!("second pass changed it: {:?}", again.text));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "line {n}: {}\n    in:  {text:?}\n    out: {:?}",
                problems.join("; "),
                out.text
            ));
        }
    }
    assert!(count >= 50, "only {count} secret texts");
    assert!(
        failures.is_empty(),
        "{} of {count} secret texts failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn ordinary_texts_are_unchanged() {
    let redactor = Redactor::new();
    let mut failures = Vec::new();
    let mut count = 0;
    for (i, line) in ORDINARY.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with("# ") {
            continue;
        }
        count += 1;
        let out = redactor.redact(line);
        if out.text != line || out.is_redacted() {
            failures.push(format!(
                "line {}: {:?}\n    in:  {line:?}\n    out: {:?}",
                i + 1,
                out.classes,
                out.text
            ));
        }
    }
    let whole = redactor.redact(ORDINARY);
    if whole.text != ORDINARY {
        failures.push(format!("the whole file changed: {:?}", whole.classes));
    }
    assert!(count >= 50, "only {count} ordinary texts");
    assert!(
        failures.is_empty(),
        "{} of {count} ordinary texts changed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
