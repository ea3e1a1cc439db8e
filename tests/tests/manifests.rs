//! Real manifests from Kubernetes' documentation decode strictly, validate,
//! and re-encode with the same meaning; broken ones report every field error.
//!
//! `tests/manifests/*.yaml` must be valid. Each file in
//! `tests/manifests/broken/` lists, in `# expect:` comment lines, every error
//! validation must report for it — no more, no fewer (prefixed with
//! `Kind name: ` when the file holds several objects).

use std::path::{Path, PathBuf};

use flotilla_shared::manifest::{self, FieldValidation};
use flotilla_shared::validation;
use serde_json::Value;

fn manifests(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    files
}

/// Every field of `original` is in `encoded` with the same value (Kubernetes
/// always writes some fields, `status: {}` for one, so `encoded` may add).
fn assert_same_meaning(original: &Value, encoded: &Value, path: &str) {
    match (original, encoded) {
        (Value::Object(original), Value::Object(encoded)) => {
            for (key, value) in original {
                let inner = format!("{path}.{key}");
                let other = encoded
                    .get(key)
                    .unwrap_or_else(|| panic!("{inner} was lost"));
                assert_same_meaning(value, other, &inner);
            }
        }
        (Value::Array(original), Value::Array(encoded)) => {
            assert_eq!(original.len(), encoded.len(), "{path} changed length");
            for (i, (value, other)) in original.iter().zip(encoded).enumerate() {
                assert_same_meaning(value, other, &format!("{path}[{i}]"));
            }
        }
        // YAML `cpu: 1` is a number; a quantity re-encodes as the string "1".
        (Value::Number(n), Value::String(s)) => assert_eq!(n.to_string(), *s, "{path} changed"),
        _ => assert_eq!(original, encoded, "{path} changed"),
    }
}

#[test]
fn documentation_manifests_decode_strictly_validate_and_round_trip() {
    let mut checked = 0;
    for path in manifests("manifests") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with("-typos.yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        let decoded = manifest::decode_yaml_documents(&text, FieldValidation::Strict)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let raw: Vec<Value> = serde_norway::Deserializer::from_str(&text)
            .map(|doc| serde::Deserialize::deserialize(doc).expect("valid YAML"))
            .filter(|v: &Value| !v.is_null())
            .collect();
        assert_eq!(raw.len(), decoded.len(), "{name}: document count");
        for (d, original) in decoded.iter().zip(&raw) {
            assert!(d.warnings.is_empty(), "{name}: {:?}", d.warnings);
            if let Err(errors) = validation::validate(&d.object) {
                panic!(
                    "{name}: {} {} is invalid: {errors}",
                    d.object.kind(),
                    d.object.metadata().name
                );
            }
            let encoded = d.object.to_value();
            assert_same_meaning(original, &encoded, &name);
            let again = manifest::decode_object(encoded.clone(), FieldValidation::Strict)
                .expect("re-decodes");
            assert_eq!(again.object, d.object, "{name}: re-decoded object differs");
            assert_eq!(
                again.object.to_value(),
                encoded,
                "{name}: re-encoding is not stable"
            );
            checked += 1;
        }
    }
    assert!(checked >= 9, "only {checked} objects checked");
}

#[test]
fn broken_manifests_report_every_field_error() {
    for path in manifests("manifests/broken") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).expect("readable");
        let mut expected: Vec<String> = text
            .lines()
            .filter_map(|line| line.strip_prefix("# expect: "))
            .map(str::to_owned)
            .collect();
        assert!(!expected.is_empty(), "{name} has no '# expect:' lines");
        let decoded = manifest::decode_yaml_documents(&text, FieldValidation::Strict)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let several = decoded.len() > 1;
        let mut actual = Vec::new();
        for d in &decoded {
            let Err(errors) = validation::validate(&d.object) else {
                continue;
            };
            for error in &errors {
                actual.push(if several {
                    format!("{} {}: {error}", d.object.kind(), d.object.metadata().name)
                } else {
                    error.to_string()
                });
            }
        }
        expected.sort();
        actual.sort();
        assert_eq!(
            actual, expected,
            "{name}: reported errors differ from its '# expect:' lines"
        );
    }
}

#[test]
fn misspelled_fields_are_refused_with_their_paths() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/nginx-deployment-typos.yaml");
    let text = std::fs::read_to_string(path).expect("readable");
    let error = manifest::decode_yaml_documents(&text, FieldValidation::Strict)
        .expect_err("strict decoding refuses unknown fields")
        .to_string();
    for field in [
        "metadata.lables",
        "spec.strategy.rollingUpdate.maxUnavaliable",
        "spec.template.spec.containers[0].imagePullPolice",
    ] {
        assert!(
            error.contains(&format!("unknown field \"{field}\"")),
            "{field} missing from: {error}"
        );
    }
    let warned =
        manifest::decode_yaml_documents(&text, FieldValidation::Warn).expect("warn decodes");
    assert_eq!(warned[0].warnings.len(), 3);
}
