//! POST: create an object (with `generateName`), after admission.

use std::time::SystemTime;

use axum::http::StatusCode;
use axum::response::Response;
use flotilla_shared::model::{KindInfo, Object};
use flotilla_shared::validation::validate;

use super::{Ctx, new_uid};
use crate::api::status::ApiError;
use crate::api::strategy::{self, CreateContext};
use crate::api::time::format_time;
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

pub async fn create(ctx: &mut Ctx<'_>, body: &[u8]) -> Result<Response, ApiError> {
    let mut object = ctx.decode(body)?;
    ctx.place(&mut object)?;
    let dry_run = ctx.params.dry_run()?;
    let generate = {
        let meta = object.metadata();
        meta.name.is_empty() && !meta.generate_name.is_empty()
    };
    if let Object::Secret(secret) = &mut object {
        secret.merge_string_data();
    }
    check_namespace(ctx).await?;
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
        admit(ctx.kind, &object)?;
        if dry_run {
            return Ok(ctx.object(StatusCode::CREATED, &object));
        }
        match ctx.api.storage.create(ctx.kind, &object).await {
            Ok(revision) => {
                object.metadata_mut().resource_version = revision.to_string();
                return Ok(ctx.object(StatusCode::CREATED, &object));
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
pub async fn check_namespace(ctx: &Ctx<'_>) -> Result<(), ApiError> {
    if !ctx.kind.namespaced {
        return Ok(());
    }
    let namespaces = KindInfo::find("v1", "Namespace")
        .ok_or_else(|| ApiError::Internal("no Namespace kind".into()))?;
    let name = &ctx.info.namespace;
    let storage = &ctx.api.storage;
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
                crate::api::status::GroupResource::of(ctx.kind),
                ctx.info.name
            ),
            resource: None,
        }),
        Some(_) => Ok(()),
    }
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
