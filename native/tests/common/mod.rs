//! Shared helpers for the integration tests.
#![allow(dead_code)]
use std::path::PathBuf;

/// Decode lower/upper-case hex; panics on bad test data (tests only).
pub fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Hex of the `key` field of a JSON object.
pub fn hx(v: &serde_json::Value, key: &str) -> Vec<u8> {
    hex(v[key].as_str().unwrap_or_else(|| panic!("missing {key}")))
}

/// Read a file of the shared test vectors: `../../shared/vectors/<rel>` from this crate
/// (the project's `../shared/vectors`).
pub fn vector_json(rel: &str) -> serde_json::Value {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "..",
        "shared",
        "vectors",
        rel,
    ]
    .iter()
    .collect();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("json")
}

/// Iterate over (group, test) pairs of a Wycheproof file.
pub fn wycheproof_tests(rel: &str) -> Vec<(serde_json::Value, serde_json::Value)> {
    let doc = vector_json(&format!("wycheproof/{rel}"));
    let mut out = Vec::new();
    for g in doc["testGroups"].as_array().expect("testGroups") {
        for t in g["tests"].as_array().expect("tests") {
            out.push((g.clone(), t.clone()));
        }
    }
    assert!(!out.is_empty(), "no tests in {rel}");
    out
}

pub fn has_flag(t: &serde_json::Value, flag: &str) -> bool {
    t["flags"]
        .as_array()
        .map(|a| a.iter().any(|f| f == flag))
        .unwrap_or(false)
}
