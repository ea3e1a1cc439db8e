//! The write paths the API handlers and the controllers share: a create
//! through admission, an update (of an object, its status, or a namespace's
//! finalizers) through the kind's strategy and a compare-and-swap, and
//! [`deletion::delete`](super::deletion::delete).

use std::time::SystemTime;

use flotilla_shared::model::{KindInfo, Object};
use flotilla_shared::validation::validate;

use super::handlers::new_uid;
use super::status::ApiError;
use super::storage::{Storage, Stored, encode};
use super::strategy::{self, CreateContext};
use super::time::format_time;
use crate::replica::Consistency;

/// The characters Kubernetes' name generator draws from (no vowels, no
/// look-alikes), and the suffix length it appends.
const GENERATED_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
const GENERATED_LEN: usize = 5;
/// Names are at most 63 characters for most kinds; the base is cut to leave room.
const MAX_GENERATED_BASE: usize = 63 - GENERATED_LEN;

/// How often a create with `generateName` tries another name after a collision.
const GENERATE_ATTEMPTS: usize = 8;

/// `base` plus a random suffix, as `names.SimpleNameGenerator` does.
pub fn generate_name(base: &str) -> String {
    use ring::rand::SecureRandom as _;
    let mut random = [0u8; GENERATED_LEN];
    let _ = ring::rand::SystemRandom::new().fill(&mut random);
    let base: String = base.chars().take(MAX_GENERATED_BASE).collect();
    let suffix: String = random
        .iter()
        .map(|b| GENERATED_ALPHABET[usize::from(*b) % GENERATED_ALPHABET.len()] as char)
        .collect();
    format!("{base}{suffix}")
}

/// Creates `object` (already placed in its namespace) through admission:
/// `generateName` (a fresh name on a collision), `stringData`, the kind's
/// create strategy, validation. Answers the object as stored.
pub async fn create(
    storage: &Storage,
    kind: &'static KindInfo,
    mut object: Object,
    dry_run: bool,
) -> Result<Object, ApiError> {
    let generate = {
        let meta = object.metadata();
        meta.name.is_empty() && !meta.generate_name.is_empty()
    };
    match &mut object {
        Object::Secret(secret) => secret.merge_string_data(),
        // Devices are autonomous: their pods tolerate the device being
        // unreachable for good unless they say otherwise.
        Object::Pod(pod) => crate::controllers::nodelifecycle::default_tolerations(pod),
        _ => {}
    }
    for _ in 0..GENERATE_ATTEMPTS {
        // The name comes first: a Job's generated labels carry it.
        let mut object = object.clone();
        if generate {
            let meta = object.metadata_mut();
            meta.name = generate_name(&meta.generate_name);
        }
        let context = CreateContext {
            uid: new_uid(),
            now: format_time(SystemTime::now()),
        };
        strategy::prepare_for_create(&mut object, &context);
        admit(kind, &object)?;
        if dry_run {
            return Ok(object);
        }
        match storage.create(kind, &object).await {
            Ok(revision) => {
                object.metadata_mut().resource_version = revision.to_string();
                return Ok(object);
            }
            Err(ApiError::AlreadyExists { .. }) if generate => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::Timeout(format!(
        "no free name was found for generateName {:?}",
        object.metadata().generate_name
    )))
}

/// Validation of a new object: every field error, as a 422.
pub fn admit(kind: &KindInfo, object: &Object) -> Result<(), ApiError> {
    validate(object).map_err(|errors| ApiError::invalid(kind, &object.metadata().name, errors))
}

/// A namespaced object needs its namespace to exist and not be terminating.
pub async fn check_namespace(
    storage: &Storage,
    kind: &KindInfo,
    name: &str,
    object_name: &str,
) -> Result<(), ApiError> {
    if !kind.namespaced {
        return Ok(());
    }
    let namespaces = KindInfo::find("v1", "Namespace")
        .ok_or_else(|| ApiError::Internal("no Namespace kind".into()))?;
    // A namespace created a moment ago on another replica may not be here
    // yet: ask again at the leader's latest state before saying it is missing.
    let mut found = storage
        .get(namespaces, name, name, Consistency::Stale)
        .await?;
    if found.is_none() {
        found = storage
            .get(namespaces, name, name, Consistency::Linearizable)
            .await?;
    }
    match found {
        None => Err(ApiError::not_found(namespaces, name)),
        Some(ns) if ns.object.metadata().deletion_timestamp.is_some() => Err(ApiError::Forbidden {
            message: format!(
                "{} {:?} is forbidden: unable to create new content in namespace {name} because it is being terminated",
                crate::api::status::GroupResource::of(kind),
                object_name
            ),
            resource: None,
        }),
        Some(_) => Ok(()),
    }
}

/// Which part of an object an update replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Spec and metadata (status kept, for kinds with a status subresource).
    Main,
    /// The status subresource.
    Status,
    /// A Namespace's `spec.finalizers` (`namespaces/{name}/finalize`).
    Finalize,
}

/// Applies the kind's update strategy to `new`, validates the update and
/// writes it if `current` is still current. Answers the code and the object
/// as stored (unchanged, without a write, when the update changes nothing).
pub async fn commit(
    storage: &Storage,
    kind: &'static KindInfo,
    current: Stored,
    mut new: Object,
    part: Part,
    dry_run: bool,
) -> Result<Object, ApiError> {
    match (part, &current.object, &mut new) {
        (Part::Status, old, new) => strategy::prepare_for_status_update(old, new),
        (Part::Finalize, Object::Namespace(old), Object::Namespace(new)) => {
            strategy::prepare_for_namespace_finalize(old, new)
        }
        (_, old, new) => strategy::prepare_for_update(old, new),
    }
    if let Object::Secret(secret) = &mut new {
        secret.merge_string_data();
    }
    strategy::validate_update(&current.object, &new)
        .map_err(|errors| ApiError::invalid(kind, &current.object.metadata().name, errors))?;
    new.metadata_mut().resource_version = current.revision.to_string();
    if encode(&new) == encode(&current.object) || dry_run {
        return Ok(new);
    }
    // The last finalizer removed from an object whose deletion waits only on
    // finalizers: the update completes the deletion.
    let meta = new.metadata();
    let old_meta = current.object.metadata();
    if meta.finalizers.is_empty()
        && !crate::api::deletion::holds_content(&new)
        && old_meta.deletion_timestamp.is_some()
        && old_meta.deletion_grace_period_seconds == Some(0)
    {
        storage
            .delete(kind, &meta.namespace, &meta.name, current.revision)
            .await?;
        return Ok(new);
    }
    let revision = storage.update(kind, &new, current.revision).await?;
    new.metadata_mut().resource_version = revision.to_string();
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_keep_the_base_and_add_five_safe_characters() {
        let name = generate_name("web-");
        assert_eq!(name.len(), 9);
        assert!(name.starts_with("web-"));
        assert!(name[4..].bytes().all(|b| GENERATED_ALPHABET.contains(&b)));
        assert_ne!(generate_name("web-"), generate_name("web-"));
        assert_eq!(generate_name(&"x".repeat(100)).len(), 63);
    }
}
