//! `flotilla-hub check`: decode and validate manifests exactly as admission
//! will, without a running hub, and report every problem of every object.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use flotilla_shared::manifest::{self, DecodeError, FieldValidation};
use flotilla_shared::model::Object;
use flotilla_shared::validation;

/// The outcome for one manifest file.
#[derive(Debug)]
pub struct FileReport {
    pub path: PathBuf,
    pub outcome: Result<Vec<ObjectReport>, DecodeError>,
}

/// The outcome for one object in a file.
#[derive(Debug)]
pub struct ObjectReport {
    /// `deployment.apps/nginx`, as kubectl names objects.
    pub reference: String,
    pub warnings: Vec<String>,
    /// Kubernetes' message when invalid: `The Deployment "x" is invalid: ...`.
    pub error: Option<String>,
}

impl FileReport {
    pub fn is_ok(&self) -> bool {
        matches!(&self.outcome, Ok(objects) if objects.iter().all(|o| o.error.is_none()))
    }
}

/// Checks one YAML or JSON text (several documents allowed).
pub fn check_text(text: &str, mode: FieldValidation) -> Result<Vec<ObjectReport>, DecodeError> {
    let decoded = manifest::decode_yaml_documents(text, mode)?;
    Ok(decoded
        .into_iter()
        .map(|d| {
            let error = validation::validate(&d.object)
                .err()
                .map(|errors| invalid_message(&d.object, &errors));
            ObjectReport {
                reference: reference(&d.object),
                warnings: d.warnings,
                error,
            }
        })
        .collect())
}

/// A manifest file or directory that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reading {path}: {source}")]
pub struct ReadError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Checks files and the YAML/JSON files directly inside directories, in name order.
pub fn check_paths(paths: &[PathBuf], mode: FieldValidation) -> Result<Vec<FileReport>, ReadError> {
    let read_error = |path: &Path| {
        let path = path.to_owned();
        move |source| ReadError { path, source }
    };
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .and_then(|dir| dir.map(|entry| entry.map(|e| e.path())).collect())
                .map_err(read_error(path))?;
            entries.retain(|p| is_manifest(p));
            entries.sort();
            files.extend(entries);
        } else {
            files.push(path.clone());
        }
    }
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).map_err(read_error(&path))?;
            Ok(FileReport {
                outcome: check_text(&text, mode),
                path,
            })
        })
        .collect()
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// kubectl's `kind.group/name` form.
pub fn reference(object: &Object) -> String {
    let kind = object.kind().to_lowercase();
    let group = object
        .api_version()
        .rsplit_once('/')
        .map(|(group, _)| group)
        .unwrap_or("");
    let name = &object.metadata().name;
    let name = if name.is_empty() {
        format!("{}*", object.metadata().generate_name)
    } else {
        name.clone()
    };
    if group.is_empty() {
        format!("{kind}/{name}")
    } else {
        format!("{kind}.{group}/{name}")
    }
}

/// The API server's message for a refused object, which kubectl prints.
pub fn invalid_message(object: &Object, errors: &validation::ErrorList) -> String {
    let name = &object.metadata().name;
    let mut out = format!("The {} {name:?} is invalid: ", object.kind());
    if errors.len() == 1 {
        let _ = write!(out, "{}", errors.0[0]);
    } else {
        for error in errors {
            let _ = write!(out, "\n* {error}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BROKEN: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: Web_1
spec:
  replicas: -1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: other}
    spec:
      containers:
      - name: web
        ports:
        - containerPort: 70000
"#;

    #[test]
    fn a_broken_deployment_reports_every_field_error_in_kubernetes_wording() {
        let reports = check_text(BROKEN, FieldValidation::Strict).expect("decodes");
        assert_eq!(reports.len(), 1);
        let report = &reports[0];
        assert_eq!(report.reference, "deployment.apps/Web_1");
        let error = report.error.as_deref().expect("invalid");
        assert!(
            error.starts_with(
                "The Deployment \"Web_1\" is invalid: \n* metadata.name: Invalid value: \"Web_1\""
            ),
            "{error}"
        );
        for expected in [
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`",
            "spec.template.spec.containers[0].image: Required value",
            "spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        ] {
            assert!(error.contains(expected), "missing {expected:?} in\n{error}");
        }
    }

    #[test]
    fn an_unreadable_path_is_named_in_the_error() {
        let missing = PathBuf::from("/nonexistent/flotilla/app.yaml");
        let error =
            check_paths(std::slice::from_ref(&missing), FieldValidation::Strict).unwrap_err();
        assert_eq!(error.path, missing);
        assert!(
            error
                .to_string()
                .starts_with("reading /nonexistent/flotilla/app.yaml: "),
            "{error}"
        );
    }

    #[test]
    fn a_valid_manifest_has_no_error() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n";
        let reports = check_text(text, FieldValidation::Strict).expect("decodes");
        assert_eq!(reports[0].reference, "configmap/settings");
        assert!(reports[0].error.is_none());
    }
}
