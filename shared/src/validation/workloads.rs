//! ReplicaSet, Deployment, DaemonSet and Job.

use std::collections::BTreeMap;

use super::pod::{check_label_selector, validate_pod_template};
use super::{ErrorList, FieldError, Path, names, validate_object_meta};
use crate::model::{
    DaemonSet, Deployment, IntOrString, Job, LabelSelector, PodTemplateSpec, ReplicaSet, Resource,
};
use crate::selector::Selector;

const ALWAYS: &[&str] = &["Always"];
const JOB_RESTART_POLICIES: &[&str] = &["OnFailure", "Never"];

pub fn validate_replica_set(rs: &ReplicaSet) -> ErrorList {
    let mut errors = validate_object_meta(
        &rs.metadata,
        ReplicaSet::NAMESPACED,
        names::dns1123_subdomain,
    );
    let spec = Path::new("spec");
    check_non_negative(
        rs.spec.replicas.map(i64::from),
        &spec.child("replicas"),
        &mut errors,
    );
    check_non_negative(
        Some(i64::from(rs.spec.min_ready_seconds)),
        &spec.child("minReadySeconds"),
        &mut errors,
    );
    check_selector_and_template(
        rs.spec.selector.as_ref(),
        &rs.spec.template,
        &spec,
        "replicaset",
        ALWAYS,
        &mut errors,
    );
    errors
}

pub fn validate_deployment(d: &Deployment) -> ErrorList {
    let mut errors = validate_object_meta(
        &d.metadata,
        Deployment::NAMESPACED,
        names::dns1123_subdomain,
    );
    let spec = Path::new("spec");
    check_non_negative(
        d.spec.replicas.map(i64::from),
        &spec.child("replicas"),
        &mut errors,
    );
    check_non_negative(
        Some(i64::from(d.spec.min_ready_seconds)),
        &spec.child("minReadySeconds"),
        &mut errors,
    );
    check_non_negative(
        d.spec.revision_history_limit.map(i64::from),
        &spec.child("revisionHistoryLimit"),
        &mut errors,
    );
    check_selector_and_template(
        d.spec.selector.as_ref(),
        &d.spec.template,
        &spec,
        "deployment",
        ALWAYS,
        &mut errors,
    );

    let rolling = d.spec.strategy.rolling_update.as_ref();
    check_update_strategy(
        &d.spec.strategy.type_,
        rolling.map(|r| (r.max_surge.as_ref(), r.max_unavailable.as_ref())),
        "Recreate",
        &spec.child("strategy"),
        &mut errors,
    );
    if let Some(deadline) = d.spec.progress_deadline_seconds
        && deadline <= d.spec.min_ready_seconds
    {
        errors.push(FieldError::invalid_raw(
            &spec.child("progressDeadlineSeconds"),
            deadline,
            "must be greater than minReadySeconds",
        ));
    }
    errors
}

pub fn validate_daemon_set(ds: &DaemonSet) -> ErrorList {
    let mut errors = validate_object_meta(
        &ds.metadata,
        DaemonSet::NAMESPACED,
        names::dns1123_subdomain,
    );
    let spec = Path::new("spec");
    check_non_negative(
        Some(i64::from(ds.spec.min_ready_seconds)),
        &spec.child("minReadySeconds"),
        &mut errors,
    );
    check_non_negative(
        ds.spec.revision_history_limit.map(i64::from),
        &spec.child("revisionHistoryLimit"),
        &mut errors,
    );
    check_selector_and_template(
        ds.spec.selector.as_ref(),
        &ds.spec.template,
        &spec,
        "daemonset",
        ALWAYS,
        &mut errors,
    );
    let rolling = ds.spec.update_strategy.rolling_update.as_ref();
    check_update_strategy(
        &ds.spec.update_strategy.type_,
        rolling.map(|r| (r.max_surge.as_ref(), r.max_unavailable.as_ref())),
        "OnDelete",
        &spec.child("updateStrategy"),
        &mut errors,
    );
    errors
}

pub fn validate_job(job: &Job) -> ErrorList {
    let mut errors = validate_object_meta(&job.metadata, Job::NAMESPACED, names::dns1123_subdomain);
    let spec = Path::new("spec");
    check_non_negative(
        job.spec.parallelism.map(i64::from),
        &spec.child("parallelism"),
        &mut errors,
    );
    check_non_negative(
        job.spec.completions.map(i64::from),
        &spec.child("completions"),
        &mut errors,
    );
    check_non_negative(
        job.spec.backoff_limit.map(i64::from),
        &spec.child("backoffLimit"),
        &mut errors,
    );
    check_non_negative(
        job.spec.ttl_seconds_after_finished.map(i64::from),
        &spec.child("ttlSecondsAfterFinished"),
        &mut errors,
    );
    if let Some(deadline) = job.spec.active_deadline_seconds
        && deadline <= 0
    {
        errors.push(FieldError::invalid_raw(
            &spec.child("activeDeadlineSeconds"),
            deadline,
            "must be greater than 0",
        ));
    }
    if let Some(mode) = &job.spec.completion_mode
        && !["NonIndexed", "Indexed"].contains(&mode.as_str())
    {
        errors.push(FieldError::not_supported(
            &spec.child("completionMode"),
            mode,
            &["NonIndexed", "Indexed"],
        ));
    }
    // A Job's selector is generated from its uid unless manualSelector is set.
    if job.spec.manual_selector == Some(true) || job.spec.selector.is_some() {
        check_selector_and_template(
            job.spec.selector.as_ref(),
            &job.spec.template,
            &spec,
            "job",
            JOB_RESTART_POLICIES,
            &mut errors,
        );
    } else {
        errors.extend(validate_pod_template(
            &job.spec.template,
            &spec.child("template"),
            JOB_RESTART_POLICIES,
        ));
    }
    errors
}

/// A Deployment's `strategy` or a DaemonSet's `updateStrategy`: `type` is
/// `RollingUpdate` (the default) or the kind's other type (`Recreate`,
/// `OnDelete`), and `rollingUpdate` (its maxSurge and maxUnavailable) is only
/// allowed with `RollingUpdate`.
fn check_update_strategy(
    type_: &str,
    rolling_update: Option<(Option<&IntOrString>, Option<&IntOrString>)>,
    other_type: &str,
    path: &Path,
    errors: &mut ErrorList,
) {
    match type_ {
        "" | "RollingUpdate" => {
            if let Some((surge, unavailable)) = rolling_update {
                check_surge_and_unavailable(
                    surge,
                    unavailable,
                    &path.child("rollingUpdate"),
                    errors,
                );
            }
        }
        t if t == other_type => {
            if rolling_update.is_some() {
                errors.push(FieldError::forbidden(
                    &path.child("rollingUpdate"),
                    format!("may not be specified when strategy `type` is '{other_type}'"),
                ));
            }
        }
        other => errors.push(FieldError::not_supported(
            &path.child("type"),
            other,
            &[other_type, "RollingUpdate"],
        )),
    }
}

fn check_non_negative(value: Option<i64>, path: &Path, errors: &mut ErrorList) {
    if let Some(value) = value
        && value < 0
    {
        errors.push(FieldError::invalid_raw(
            path,
            value,
            "must be greater than or equal to 0",
        ));
    }
}

/// A selector is required, non-empty, and must select the template's labels;
/// then the template itself.
fn check_selector_and_template(
    selector: Option<&LabelSelector>,
    template: &PodTemplateSpec,
    spec: &Path,
    kind: &str,
    restart_policies: &[&str],
    errors: &mut ErrorList,
) {
    let selector_path = spec.child("selector");
    match selector {
        None => errors.push(FieldError::required(&selector_path, "")),
        Some(selector)
            if selector.match_labels.is_empty() && selector.match_expressions.is_empty() =>
        {
            errors.push(FieldError::invalid(
                &selector_path,
                "{}",
                format!("empty selector is invalid for {kind}"),
            ));
        }
        Some(selector) => {
            let before = errors.len();
            check_label_selector(Some(selector), &selector_path, errors);
            if errors.len() == before {
                let labels = &template.metadata.labels;
                let matches =
                    Selector::from_label_selector(selector).is_ok_and(|s| s.matches(labels));
                if !matches {
                    errors.push(FieldError::invalid_raw(
                        &spec.child("template").child("metadata").child("labels"),
                        go_map(labels),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
        }
    }
    errors.extend(validate_pod_template(
        template,
        &spec.child("template"),
        restart_policies,
    ));
}

/// Go's `%v` of a `map[string]string`, as Kubernetes prints it in this message.
fn go_map(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
    format!("map[string]string{{{}}}", pairs.join(", "))
}

/// `maxSurge`/`maxUnavailable`: a count or a percentage, not negative, at most
/// 100% unavailable, and not both zero (a rollout could never make progress).
fn check_surge_and_unavailable(
    surge: Option<&IntOrString>,
    unavailable: Option<&IntOrString>,
    path: &Path,
    errors: &mut ErrorList,
) {
    let surge_zero = surge.map(|v| check_int_or_percent(v, &path.child("maxSurge"), false, errors));
    let unavailable_zero =
        unavailable.map(|v| check_int_or_percent(v, &path.child("maxUnavailable"), true, errors));
    if surge_zero == Some(true) && unavailable_zero == Some(true) {
        errors.push(FieldError::invalid(
            &path.child("maxUnavailable"),
            &unavailable.map(ToString::to_string).unwrap_or_default(),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
}

/// Checks one count-or-percentage; returns whether it is zero.
fn check_int_or_percent(
    value: &IntOrString,
    path: &Path,
    at_most_100: bool,
    errors: &mut ErrorList,
) -> bool {
    match value {
        IntOrString::Int(n) => {
            if *n < 0 {
                errors.push(FieldError::invalid_raw(
                    path,
                    n,
                    "must be greater than or equal to 0",
                ));
            }
            *n == 0
        }
        IntOrString::String(text) => {
            // `IsValidPercent`: digits and '%', so no sign.
            let digits = text
                .strip_suffix('%')
                .filter(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()));
            match digits.map(|n| n.parse::<u64>().unwrap_or(u64::MAX)) {
                Some(percent) => {
                    if at_most_100 && percent > 100 {
                        errors.push(FieldError::invalid(
                            path,
                            text,
                            "must not be greater than 100%",
                        ));
                    }
                    percent == 0
                }
                None => {
                    errors.push(FieldError::invalid(path, text, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"));
                    false
                }
            }
        }
    }
}
