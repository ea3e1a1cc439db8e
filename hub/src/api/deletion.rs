//! DELETE of one object and of a collection, with Kubernetes' deletion
//! semantics:
//!
//! - `propagationPolicy` `Orphan` and `Foreground` put the `orphan` or
//!   `foregroundDeletion` finalizer on the object; the garbage collector
//!   then orphans or deletes its dependents (found by their
//!   ownerReferences) and removes the finalizer;
//! - an object with finalizers is only marked (`deletionTimestamp`, grace 0);
//!   the update that removes its last finalizer deletes it;
//! - a Pod bound to a node is deleted gracefully: it is marked with its
//!   grace period and its device stops it, then deletes it (grace 0);
//! - `Background` (the default) deletes the object now; the collector deletes
//!   its dependents afterwards.

use std::time::{Duration, SystemTime};

use flotilla_shared::model::{KindInfo, Object};
use serde::Deserialize;

use super::status::ApiError;
use super::storage::{Storage, Stored};
use super::time::format_time;
use crate::replica::Consistency;

pub const ORPHAN_FINALIZER: &str = "orphan";
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// A Pod's grace period when neither the request nor the pod gives one.
const DEFAULT_POD_GRACE_SECONDS: i64 = 30;
/// How many times a deletion is retried after losing a race.
const ATTEMPTS: usize = 5;

/// `metav1.DeleteOptions`, from the body or the query.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteOptions {
    #[serde(default)]
    pub grace_period_seconds: Option<i64>,
    #[serde(default)]
    pub propagation_policy: Option<String>,
    #[serde(default)]
    pub orphan_dependents: Option<bool>,
    #[serde(default)]
    pub preconditions: Option<Preconditions>,
    #[serde(default)]
    pub dry_run: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preconditions {
    #[serde(default)]
    pub uid: Option<String>,
    #[serde(default)]
    pub resource_version: Option<String>,
}

/// How dependents are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

impl DeleteOptions {
    fn propagation(&self) -> Result<Propagation, ApiError> {
        match (self.propagation_policy.as_deref(), self.orphan_dependents) {
            (Some(_), Some(_)) => Err(ApiError::BadRequest(
                "orphanDependents and propagationPolicy cannot both be set".into(),
            )),
            (Some("Orphan"), None) | (None, Some(true)) => Ok(Propagation::Orphan),
            (Some("Foreground"), None) => Ok(Propagation::Foreground),
            (Some("Background") | None, _) => Ok(Propagation::Background),
            (Some(other), None) => Err(ApiError::BadRequest(format!(
                "invalid propagationPolicy {other:?}: must be Orphan, Background or Foreground"
            ))),
        }
    }
}

/// What deleting an object does, decided from the object, the options and
/// the time: a pure function, so that its rules are tested directly.
#[derive(Debug, Clone, PartialEq)]
pub enum Deletion {
    /// Remove it from the store now.
    Now,
    /// Write it back marked (deletionTimestamp, finalizers): it goes later.
    Mark(Box<Object>),
    /// Already marked as asked: nothing to write.
    Unchanged,
}

pub fn decide(
    object: &Object,
    propagation: Propagation,
    grace: Option<i64>,
    now: SystemTime,
) -> Deletion {
    let mut marked = object.clone();
    let meta = marked.metadata_mut();
    let mut finalizers = meta.finalizers.clone();
    let set = |finalizers: &mut Vec<String>, add: &str, remove: &str| {
        finalizers.retain(|f| f != remove);
        if !finalizers.iter().any(|f| f == add) {
            finalizers.push(add.to_owned());
        }
    };
    match propagation {
        Propagation::Orphan => set(&mut finalizers, ORPHAN_FINALIZER, FOREGROUND_FINALIZER),
        Propagation::Foreground => set(&mut finalizers, FOREGROUND_FINALIZER, ORPHAN_FINALIZER),
        Propagation::Background => {}
    }
    // Graceful deletion of a pod that runs on a device.
    let pod_grace = match object {
        Object::Pod(pod)
            if !pod.spec.node_name.is_empty()
                && pod.status.phase != "Succeeded"
                && pod.status.phase != "Failed" =>
        {
            Some(
                grace
                    .or(pod.spec.termination_grace_period_seconds)
                    .unwrap_or(DEFAULT_POD_GRACE_SECONDS),
            )
        }
        _ => None,
    };
    let grace = pod_grace.filter(|g| *g > 0);
    if finalizers.is_empty() && grace.is_none() && !holds_content(object) {
        return Deletion::Now;
    }
    let grace = grace.unwrap_or(0);
    let deadline = now + Duration::from_secs(u64::try_from(grace).unwrap_or(0));
    let shorter = meta
        .deletion_grace_period_seconds
        .is_none_or(|current| grace < current);
    if meta.deletion_timestamp.is_none() || shorter {
        meta.deletion_timestamp = Some(format_time(deadline));
        meta.deletion_grace_period_seconds = Some(grace);
    }
    meta.finalizers = finalizers;
    if let Object::Namespace(ns) = &mut marked {
        ns.status.phase = "Terminating".into();
    }
    if marked == *object {
        Deletion::Unchanged
    } else {
        Deletion::Mark(Box::new(marked))
    }
}

/// A namespace whose `spec.finalizers` still list `kubernetes`: its content
/// must be deleted (by the namespace controller, which then finalizes it)
/// before the namespace itself goes.
pub fn holds_content(object: &Object) -> bool {
    matches!(object, Object::Namespace(ns) if !ns.spec.finalizers.is_empty())
}

/// Deletes (or marks) one object of `kind`, which was `current` when read;
/// answers it as last seen and whether it is gone. A lost race reads the
/// object again and decides again.
pub async fn delete(
    storage: &Storage,
    kind: &'static KindInfo,
    mut current: Stored,
    options: &DeleteOptions,
) -> Result<(Object, bool), ApiError> {
    let propagation = options.propagation()?;
    for _ in 0..ATTEMPTS {
        let meta = current.object.metadata();
        if let Some(pre) = &options.preconditions {
            if let Some(uid) = pre.uid.as_deref().filter(|u| *u != meta.uid) {
                return Err(ApiError::Conflict {
                    resource: crate::api::status::GroupResource::of(kind),
                    name: meta.name.clone(),
                    detail: format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta.uid
                    ),
                });
            }
            if let Some(rv) = pre.resource_version.as_deref()
                && crate::api::handlers::parse_resource_version(rv)? != current.revision
            {
                return Err(ApiError::Conflict {
                    resource: crate::api::status::GroupResource::of(kind),
                    name: meta.name.clone(),
                    detail: format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        current.revision
                    ),
                });
            }
        }
        let (namespace, name) = (meta.namespace.clone(), meta.name.clone());
        let dry_run = !options.dry_run.is_empty();
        let outcome = match decide(
            &current.object,
            propagation,
            options.grace_period_seconds,
            SystemTime::now(),
        ) {
            Deletion::Unchanged => return Ok((current.object, false)),
            Deletion::Now if dry_run => return Ok((current.object, true)),
            Deletion::Mark(marked) if dry_run => return Ok((*marked, false)),
            Deletion::Now => storage
                .delete(kind, &namespace, &name, current.revision)
                .await
                .map(|_| (current.object.clone(), true)),
            Deletion::Mark(mut marked) => storage
                .update(kind, &marked, current.revision)
                .await
                .map(|revision| {
                    marked.metadata_mut().resource_version = revision.to_string();
                    (*marked, false)
                }),
        };
        match outcome {
            Err(ApiError::Conflict { .. }) => {
                current = storage
                    .get(kind, &namespace, &name, Consistency::Linearizable)
                    .await?
                    .ok_or_else(|| ApiError::not_found(kind, &name))?;
            }
            other => return other,
        }
    }
    Err(ApiError::modified(kind, &current.object.metadata().name))
}

#[cfg(test)]
mod tests {
    use flotilla_shared::model::{ConfigMap, ObjectMeta, Pod};

    use super::*;

    fn config_map(finalizers: &[&str]) -> Object {
        Object::ConfigMap(ConfigMap {
            metadata: ObjectMeta {
                name: "c".into(),
                namespace: "default".into(),
                finalizers: finalizers.iter().map(|f| f.to_string()).collect(),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        })
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000 + seconds)
    }

    #[test]
    fn background_deletion_of_an_object_without_finalizers_is_immediate() {
        assert_eq!(
            decide(&config_map(&[]), Propagation::Background, None, at(0)),
            Deletion::Now
        );
    }

    #[test]
    fn orphan_and_foreground_mark_the_object_with_their_finalizer() {
        for (propagation, finalizer) in [
            (Propagation::Orphan, ORPHAN_FINALIZER),
            (Propagation::Foreground, FOREGROUND_FINALIZER),
        ] {
            let Deletion::Mark(marked) = decide(&config_map(&[]), propagation, None, at(0)) else {
                panic!()
            };
            let meta = marked.metadata();
            assert_eq!(meta.finalizers, [finalizer]);
            assert_eq!(
                meta.deletion_timestamp.as_ref().map(|t| t.0.as_str()),
                Some("2026-11-18T11:06:40Z")
            );
            assert_eq!(meta.deletion_grace_period_seconds, Some(0));
            // Asking again changes nothing.
            assert_eq!(
                decide(&marked, propagation, None, at(5)),
                Deletion::Unchanged
            );
        }
        // Foreground after Orphan swaps the finalizer.
        let Deletion::Mark(orphaning) = decide(&config_map(&[]), Propagation::Orphan, None, at(0))
        else {
            panic!()
        };
        let Deletion::Mark(foreground) = decide(&orphaning, Propagation::Foreground, None, at(1))
        else {
            panic!()
        };
        assert_eq!(foreground.metadata().finalizers, [FOREGROUND_FINALIZER]);
    }

    #[test]
    fn an_object_with_finalizers_waits_for_them() {
        let Deletion::Mark(marked) = decide(
            &config_map(&["example.com/cleanup"]),
            Propagation::Background,
            None,
            at(0),
        ) else {
            panic!()
        };
        assert_eq!(marked.metadata().finalizers, ["example.com/cleanup"]);
        assert!(marked.metadata().deletion_timestamp.is_some());
    }

    #[test]
    fn pods_on_a_device_are_deleted_gracefully_and_a_shorter_grace_wins() {
        let mut pod = Pod::default();
        pod.metadata.name = "p".into();
        pod.spec.node_name = "gw-1".into();
        pod.spec.termination_grace_period_seconds = Some(20);
        let pod = Object::Pod(pod);
        let Deletion::Mark(marked) = decide(&pod, Propagation::Background, None, at(0)) else {
            panic!()
        };
        assert_eq!(marked.metadata().deletion_grace_period_seconds, Some(20));
        assert_eq!(
            marked.metadata().deletion_timestamp.as_ref().unwrap().0,
            "2026-11-18T11:07:00Z"
        );
        assert_eq!(
            decide(&marked, Propagation::Background, Some(30), at(1)),
            Deletion::Unchanged
        );
        let Deletion::Mark(sooner) = decide(&marked, Propagation::Background, Some(5), at(1))
        else {
            panic!()
        };
        assert_eq!(sooner.metadata().deletion_grace_period_seconds, Some(5));
        // --grace-period=0 --force, or a pod no device runs: now.
        assert_eq!(
            decide(&pod, Propagation::Background, Some(0), at(0)),
            Deletion::Now
        );
        let Object::Pod(mut unbound) = pod else {
            unreachable!()
        };
        unbound.spec.node_name.clear();
        assert_eq!(
            decide(&Object::Pod(unbound), Propagation::Background, None, at(0)),
            Deletion::Now
        );
    }
}
