//! The document itself: its header, the operations every deployment relies on, `$ref`s
//! that resolve, an error-code enum that invents nothing, and resource tests that cover
//! every documented operation.

use std::collections::BTreeSet;

use super::checker::{all_refs, api, manifest_dir};
use super::paths::*;

#[test]
fn the_document_reads_and_its_references_resolve() {
    let api = api();
    for (m, t) in [
        ("GET", HEALTHZ),
        ("GET", METRICS),
        ("PATCH", HOOK),
        ("POST", EVENTS),
        ("POST", RETRY),
        ("POST", BACKUP),
    ] {
        assert!(api.op(t, m).is_some(), "{m} {t} is documented");
    }
    let mut refs = Vec::new();
    all_refs(&api.doc, &mut refs);
    assert!(refs.len() > 10, "the document uses $refs: {refs:?}");
    for r in &refs {
        if r.starts_with("#/components/schemas/") {
            api.schema(r);
        } else {
            api.resolve(r);
        }
    }
    // Roles are the three hookd knows.
    for op in &api.ops {
        if let Some(role) = &op.role {
            assert!(
                ["user", "publisher", "admin"].contains(&role.as_str()),
                "{} {}: role {role}",
                op.method,
                op.path
            );
        }
    }
}

#[test]
fn every_documented_error_code_occurs_in_src_api() {
    let api = api();
    let mut sources = String::new();
    for entry in std::fs::read_dir(manifest_dir().join("src/api")).unwrap() {
        sources.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    // The store's fault codes (store_full, store_unavailable) are written once, with the
    // failure model; api/error.rs answers with them.
    sources.push_str(&std::fs::read_to_string(manifest_dir().join("src/store/health.rs")).unwrap());
    assert!(!api.error_codes.is_empty());
    for code in &api.error_codes {
        assert!(
            sources.contains(&format!("\"{code}\"")),
            "documented error code {code:?} does not occur in src/api"
        );
    }
}

#[test]
fn every_operation_is_covered_by_a_resource_test() {
    let documented: BTreeSet<(String, String)> = api()
        .ops
        .iter()
        .map(|o| (o.method.clone(), o.path.clone()))
        .collect();
    let mut claimed = BTreeSet::new();
    for claims in super::COVERAGE {
        for (m, t) in *claims {
            assert!(
                claimed.insert((m.to_string(), t.to_string())),
                "{m} {t} is claimed twice"
            );
        }
    }
    let missing: Vec<_> = documented.difference(&claimed).collect();
    let extra: Vec<_> = claimed.difference(&documented).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "documented but covered by no test: {missing:?}; claimed but not documented: {extra:?}"
    );
}
