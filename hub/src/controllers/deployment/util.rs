//! The Deployment controller's arithmetic and bookkeeping, from Kubernetes'
//! `pkg/controller/deployment/util/deployment_util.go` and
//! `pkg/controller/controller_utils.go` (`ComputeHash`, the ReplicaSet sort
//! orders): the pod-template-hash, `maxSurge`/`maxUnavailable`, the revision
//! and replica annotations, and conditions.

use std::cmp::Ordering;
use std::time::SystemTime;

use flotilla_shared::model::{
    Deployment, DeploymentCondition, DeploymentStatus, IntOrString, PodTemplateSpec, ReplicaSet,
};

use crate::api::time::{format_time, parse_time};
use crate::controllers::replicaset::replicas_of;

/// The label (and selector key) that tells a Deployment's ReplicaSets apart.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// The rollout revision a ReplicaSet (and its Deployment) stands for.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions of a ReplicaSet rolled out again (a rollback).
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's `spec.replicas` when the ReplicaSet was last sized.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// `spec.replicas + maxSurge` when the ReplicaSet was last sized.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Annotations never copied from a Deployment to its ReplicaSets.
const ANNOTATIONS_TO_SKIP: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];
/// `revision-history` is kept under this many characters.
const MAX_REV_HISTORY_LENGTH_IN_CHARS: usize = 2000;

/// Deployment condition types.
pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// Condition reasons (`deployment_util.go`).
pub mod reason {
    pub const NEW_REPLICA_SET_CREATED: &str = "NewReplicaSetCreated";
    pub const FOUND_NEW_REPLICA_SET: &str = "FoundNewReplicaSet";
    pub const NEW_REPLICA_SET_AVAILABLE: &str = "NewReplicaSetAvailable";
    pub const REPLICA_SET_UPDATED: &str = "ReplicaSetUpdated";
    pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
    pub const DEPLOYMENT_PAUSED: &str = "DeploymentPaused";
    pub const DEPLOYMENT_RESUMED: &str = "DeploymentResumed";
    pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
    pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
}

// ---------------------------------------------------------------------------
// The pod-template-hash

/// The pod-template-hash of `template` (`controller.ComputeHash`): FNV-1a
/// (32 bits) over the template, then the collision count as 8 little-endian
/// bytes when there is one, printed in decimal and mapped onto Kubernetes'
/// safe alphabet (`rand.SafeEncodeString`), e.g. `5d4c8b9f6`.
///
/// Kubernetes hashes Go's `%#v` dump of the template, which only Go can
/// reproduce; Flotilla hashes the template's JSON encoding (fields in
/// declaration order, maps sorted, empty fields omitted). The hash is
/// stable for a given template and differs when the template does, which
/// is all the controller relies on: new ReplicaSets are found by comparing
/// templates, not hashes.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    let mut write = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u32::from(*byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    // Serializing a model type to a Vec cannot fail.
    write(&serde_json::to_vec(template).unwrap_or_default());
    if let Some(count) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(count as u32).to_le_bytes());
        write(&bytes);
    }
    safe_encode(&hash.to_string())
}

/// `rand.SafeEncodeString`: every character mapped onto consonants and
/// digits that cannot spell words.
fn safe_encode(text: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    text.chars()
        .map(|c| char::from(ALPHANUMS[c as usize % ALPHANUMS.len()]))
        .collect()
}

/// Whether two templates are equal but for the pod-template-hash label
/// (`EqualIgnoreHash`).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    if a.spec != b.spec {
        return false;
    }
    let mut ma = a.metadata.clone();
    let mut mb = b.metadata.clone();
    ma.labels.remove(POD_TEMPLATE_HASH);
    mb.labels.remove(POD_TEMPLATE_HASH);
    ma == mb
}

// ---------------------------------------------------------------------------
// Surge and unavailability

/// Whether the strategy is `RollingUpdate` (anything but `Recreate`).
pub fn is_rolling_update(d: &Deployment) -> bool {
    d.spec.strategy.type_ != "Recreate"
}

/// `intstr.GetScaledValueFromIntOrPercent`: a count, or a percentage of
/// `total` rounded up or down.
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> i32 {
    match value {
        IntOrString::Int(n) => *n,
        IntOrString::String(text) => {
            let percent: i64 = text.trim_end_matches('%').parse().unwrap_or(0);
            let product = percent * i64::from(total);
            let scaled = if round_up {
                (product + 99).div_euclid(100)
            } else {
                product.div_euclid(100)
            };
            i32::try_from(scaled).unwrap_or(i32::MAX)
        }
    }
}

/// `(maxSurge, maxUnavailable)` resolved against the desired count
/// (`ResolveFenceposts`): surge rounds up, unavailable down, and when both
/// come to zero one pod may be unavailable.
pub fn resolve_fenceposts(d: &Deployment) -> (i32, i32) {
    let desired = replicas_of(d.spec.replicas);
    let rolling = d.spec.strategy.rolling_update.as_ref();
    let zero = IntOrString::Int(0);
    let surge = scaled_value(
        rolling.and_then(|r| r.max_surge.as_ref()).unwrap_or(&zero),
        desired,
        true,
    );
    let mut unavailable = scaled_value(
        rolling
            .and_then(|r| r.max_unavailable.as_ref())
            .unwrap_or(&zero),
        desired,
        false,
    );
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

/// `MaxSurge`: 0 for `Recreate`.
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling_update(d) {
        return 0;
    }
    resolve_fenceposts(d).0
}

/// `MaxUnavailable`: 0 for `Recreate` or no replicas, at most the replicas.
pub fn max_unavailable(d: &Deployment) -> i32 {
    let desired = replicas_of(d.spec.replicas);
    if !is_rolling_update(d) || desired == 0 {
        return 0;
    }
    resolve_fenceposts(d).1.min(desired)
}

// ---------------------------------------------------------------------------
// Annotations

/// The revision a ReplicaSet records; 0 when absent or unreadable.
pub fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// `SetReplicasAnnotations`: desired and max replicas; whether they changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let mut changed = false;
    for (key, value) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let value = value.to_string();
        if rs.metadata.annotations.get(key) != Some(&value) {
            rs.metadata.annotations.insert(key.to_owned(), value);
            changed = true;
        }
    }
    changed
}

/// `SetNewReplicaSetAnnotations`: copies the Deployment's annotations, raises
/// the revision to `new_revision` (keeping the one it replaces in
/// `revision-history`, which is how a rollback to an old ReplicaSet shows),
/// and for a ReplicaSet about to be created sets the replica annotations.
pub fn set_new_replica_set_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
) -> bool {
    let mut changed = false;
    for (key, value) in &d.metadata.annotations {
        if ANNOTATIONS_TO_SKIP.contains(&key.as_str())
            || rs.metadata.annotations.get(key) == Some(value)
        {
            continue;
        }
        rs.metadata.annotations.insert(key.clone(), value.clone());
        changed = true;
    }
    let old_revision = rs.metadata.annotations.get(REVISION).cloned();
    let old = match &old_revision {
        None => 0,
        Some(text) => match text.parse::<i64>() {
            Ok(n) => n,
            Err(_) => return false,
        },
    };
    if old < new_revision {
        rs.metadata
            .annotations
            .insert(REVISION.to_owned(), new_revision.to_string());
        changed = true;
        if let Some(old_text) = old_revision {
            append_revision_history(rs, &old_text);
        }
    }
    if !exists {
        let desired = replicas_of(d.spec.replicas);
        changed |= set_replicas_annotations(rs, desired, desired + max_surge(d));
    }
    changed
}

fn append_revision_history(rs: &mut ReplicaSet, old_revision: &str) {
    let history = rs
        .metadata
        .annotations
        .get(REVISION_HISTORY)
        .cloned()
        .unwrap_or_default();
    if history.is_empty() {
        rs.metadata
            .annotations
            .insert(REVISION_HISTORY.to_owned(), old_revision.to_owned());
        return;
    }
    let mut revisions: Vec<&str> = history.split(',').collect();
    let mut total = history.len() + old_revision.len() + 1;
    let mut start = 0;
    while total > MAX_REV_HISTORY_LENGTH_IN_CHARS && start < revisions.len() {
        total -= revisions[start].len() + 1;
        start += 1;
    }
    if total <= MAX_REV_HISTORY_LENGTH_IN_CHARS {
        revisions.drain(..start);
        revisions.push(old_revision);
        rs.metadata
            .annotations
            .insert(REVISION_HISTORY.to_owned(), revisions.join(","));
    }
}

// ---------------------------------------------------------------------------
// Conditions

/// The condition of `type_`, if present.
pub fn get_condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// `NewDeploymentCondition`: both times now.
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: SystemTime,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        last_update_time: Some(format_time(now)),
        last_transition_time: Some(format_time(now)),
        reason: reason.to_owned(),
        message,
    }
}

/// `SetDeploymentCondition`: nothing when status and reason are unchanged;
/// the transition time kept when only the reason changes; the condition
/// moves to the end.
pub fn set_condition(status: &mut DeploymentStatus, mut condition: DeploymentCondition) {
    if let Some(current) = get_condition(status, &condition.type_) {
        if current.status == condition.status && current.reason == condition.reason {
            return;
        }
        if current.status == condition.status {
            condition.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &condition.type_);
    status.conditions.push(condition);
}

/// Drops the condition of `type_`.
pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    status.conditions.retain(|c| c.type_ != type_);
}

/// `HasProgressDeadline`: set and not `MaxInt32`.
pub fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec
        .progress_deadline_seconds
        .is_some_and(|s| s != i32::MAX)
}

/// `DeploymentComplete`: every replica updated and available, and the spec observed.
pub fn deployment_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let desired = replicas_of(d.spec.replicas);
    status.updated_replicas == desired
        && status.replicas == desired
        && status.available_replicas == desired
        && status.observed_generation >= d.metadata.generation
}

/// `DeploymentProgressing`: more updated, ready or available pods, or fewer old ones.
pub fn deployment_progressing(d: &Deployment, status: &DeploymentStatus) -> bool {
    let old = &d.status;
    let old_old = old.replicas - old.updated_replicas;
    let new_old = status.replicas - status.updated_replicas;
    status.updated_replicas > old.updated_replicas
        || new_old < old_old
        || status.ready_replicas > old.ready_replicas
        || status.available_replicas > old.available_replicas
}

/// When the Progressing condition's deadline passes (its lastUpdateTime plus
/// progressDeadlineSeconds).
pub fn progress_deadline(d: &Deployment, condition: &DeploymentCondition) -> Option<SystemTime> {
    let seconds = u64::try_from(d.spec.progress_deadline_seconds?).ok()?;
    let from = parse_time(&condition.last_update_time.as_ref()?.0)?;
    Some(from + std::time::Duration::from_secs(seconds))
}

/// `DeploymentTimedOut`.
pub fn deployment_timed_out(d: &Deployment, status: &DeploymentStatus, now: SystemTime) -> bool {
    if !has_progress_deadline(d) {
        return false;
    }
    let Some(condition) = get_condition(status, PROGRESSING) else {
        return false;
    };
    if condition.reason == reason::NEW_REPLICA_SET_AVAILABLE {
        return false;
    }
    if condition.reason == reason::PROGRESS_DEADLINE_EXCEEDED {
        return true;
    }
    progress_deadline(d, condition).is_some_and(|deadline| deadline < now)
}

// ---------------------------------------------------------------------------
// Orders

fn created(rs: &ReplicaSet) -> Option<SystemTime> {
    rs.metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| parse_time(&t.0))
}

/// `ReplicaSetsByCreationTimestamp`: older first, then by name. A
/// ReplicaSet not yet created (no timestamp) is the newest.
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let order = match (created(a), created(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (None, None) => Ordering::Equal,
    };
    order.then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// `ReplicaSetsByRevision`: lower revision first, then older.
pub fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    revision_of(a)
        .cmp(&revision_of(b))
        .then_with(|| by_creation(a, b))
}

/// `ReplicaSetsBySizeNewer` (`newer: true`) and `ReplicaSetsBySizeOlder`:
/// larger first; among equals newer or older first.
pub fn by_size(a: &ReplicaSet, b: &ReplicaSet, newer: bool) -> Ordering {
    let size = replicas_of(b.spec.replicas).cmp(&replicas_of(a.spec.replicas));
    size.then_with(|| {
        if newer {
            by_creation(b, a)
        } else {
            by_creation(a, b)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rolling(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
        let mut d = Deployment::default();
        d.spec.replicas = Some(replicas);
        d.spec.strategy.rolling_update = Some(flotilla_shared::model::RollingUpdateDeployment {
            max_surge: Some(surge),
            max_unavailable: Some(unavailable),
        });
        d
    }

    fn pct(p: &str) -> IntOrString {
        IntOrString::String(p.to_owned())
    }

    #[test]
    fn fenceposts_round_surge_up_and_unavailable_down() {
        for (replicas, surge, unavailable, want) in [
            (4, pct("25%"), pct("25%"), (1, 1)),
            (10, pct("25%"), pct("25%"), (3, 2)),
            (3, pct("25%"), pct("25%"), (1, 0)),
            (1, pct("25%"), pct("25%"), (1, 0)),
            (3, pct("0%"), pct("10%"), (0, 1)),
            (5, IntOrString::Int(0), IntOrString::Int(0), (0, 1)),
            (5, IntOrString::Int(2), IntOrString::Int(3), (2, 3)),
            (0, pct("25%"), pct("25%"), (0, 1)),
        ] {
            let d = rolling(replicas, surge.clone(), unavailable.clone());
            assert_eq!(
                resolve_fenceposts(&d),
                want,
                "{replicas} replicas, surge {surge}, unavailable {unavailable}"
            );
        }
    }

    #[test]
    fn max_unavailable_is_capped_and_zero_without_replicas_or_for_recreate() {
        assert_eq!(
            max_unavailable(&rolling(2, IntOrString::Int(0), IntOrString::Int(5))),
            2
        );
        assert_eq!(
            max_unavailable(&rolling(0, IntOrString::Int(0), IntOrString::Int(5))),
            0
        );
        let mut recreate = rolling(3, IntOrString::Int(1), IntOrString::Int(1));
        recreate.spec.strategy.type_ = "Recreate".into();
        assert_eq!((max_surge(&recreate), max_unavailable(&recreate)), (0, 0));
    }

    #[test]
    fn hash_is_stable_safe_and_changes_with_template_and_collisions() {
        let mut template = PodTemplateSpec::default();
        template.metadata.labels.insert("app".into(), "web".into());
        let first = compute_hash(&template, None);
        assert_eq!(first, compute_hash(&template, None));
        assert!(
            first
                .chars()
                .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
            "{first}"
        );
        assert_ne!(first, compute_hash(&template, Some(1)));
        template.metadata.labels.insert("tier".into(), "x".into());
        assert_ne!(first, compute_hash(&template, None));
    }

    #[test]
    fn templates_compare_without_the_hash_label() {
        let mut a = PodTemplateSpec::default();
        a.metadata.labels.insert("app".into(), "web".into());
        let mut b = a.clone();
        b.metadata
            .labels
            .insert(POD_TEMPLATE_HASH.into(), "abc".into());
        assert!(equal_ignore_hash(&a, &b));
        b.metadata.labels.insert("app".into(), "api".into());
        assert!(!equal_ignore_hash(&a, &b));
    }

    #[test]
    fn raising_an_existing_revision_records_the_old_one_in_history() {
        let d = Deployment::default();
        let mut rs = ReplicaSet::default();
        rs.metadata.annotations.insert(REVISION.into(), "1".into());
        assert!(set_new_replica_set_annotations(&d, &mut rs, 3, true));
        assert_eq!(rs.metadata.annotations[REVISION], "3");
        assert_eq!(rs.metadata.annotations[REVISION_HISTORY], "1");
        assert!(set_new_replica_set_annotations(&d, &mut rs, 5, true));
        assert_eq!(rs.metadata.annotations[REVISION_HISTORY], "1,3");
        assert!(
            !set_new_replica_set_annotations(&d, &mut rs, 4, true),
            "never lowered"
        );
    }

    #[test]
    fn a_condition_keeps_its_transition_time_when_only_the_reason_changes() {
        let t0 = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let t1 = t0 + std::time::Duration::from_secs(60);
        let mut status = DeploymentStatus::default();
        set_condition(
            &mut status,
            new_condition(PROGRESSING, "True", "A", "a".into(), t0),
        );
        set_condition(
            &mut status,
            new_condition(PROGRESSING, "True", "A", "b".into(), t1),
        );
        assert_eq!(
            status.conditions[0].message, "a",
            "same status and reason: unchanged"
        );
        set_condition(
            &mut status,
            new_condition(PROGRESSING, "True", "B", "b".into(), t1),
        );
        assert_eq!(
            status.conditions[0].last_transition_time,
            Some(format_time(t0))
        );
        assert_eq!(status.conditions[0].last_update_time, Some(format_time(t1)));
        set_condition(
            &mut status,
            new_condition(PROGRESSING, "False", "C", "c".into(), t1),
        );
        assert_eq!(
            status.conditions[0].last_transition_time,
            Some(format_time(t1))
        );
    }
}
