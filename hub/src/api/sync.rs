//! Keeps the authorizer's view current: the RBAC objects and the pods (for
//! the node authorizer's graph), listed once and then followed by a watch of
//! this replica's store. A watch overtaken by compaction lists again.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use flotilla_shared::model::{KindInfo, Object};
use tracing::{debug, warn};

use super::authz::Authorizer;
use super::status::ApiError;
use super::storage::{Storage, decode};
use crate::replica::Consistency;
use crate::store::{EventType, ListAt, ListRequest, WatchRequest};

/// The kinds the authorizer follows.
pub const FOLLOWED: &[&str] = &[
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "Pod",
];

fn feed(authorizer: &mut Authorizer, object: &Object) {
    match object {
        Object::Pod(pod) => authorizer.nodes.upsert_pod(pod),
        other => authorizer.rbac.upsert(other),
    }
}

fn forget(authorizer: &mut Authorizer, kind: &str, namespace: &str, name: &str) {
    if kind == "Pod" {
        authorizer.nodes.remove_pod(namespace, name);
    } else {
        authorizer.rbac.remove(kind, namespace, name);
    }
}

/// Lists the followed kinds at one revision into a fresh authorizer.
async fn load(storage: &Storage) -> Result<(Authorizer, u64), ApiError> {
    let revision = storage.revision().await?;
    let mut authorizer = Authorizer::new();
    for kind in FOLLOWED {
        let mut request = ListRequest::new(kind);
        request.at = ListAt::Revision(revision);
        loop {
            let page = storage.list(request.clone(), Consistency::Stale).await?;
            for item in &page.items {
                feed(
                    &mut authorizer,
                    &decode(&item.object.value, item.object.resource_version)?,
                );
            }
            match page.next {
                Some(next) => request.at = ListAt::Continue(next),
                None => break,
            }
        }
    }
    Ok((authorizer, revision))
}

/// Runs until the store closes. `ready` is told once the first load is in place.
pub async fn follow(
    storage: Storage,
    target: Arc<RwLock<Authorizer>>,
    ready: tokio::sync::watch::Sender<bool>,
) {
    loop {
        let (authorizer, revision) = match load(&storage).await {
            Ok(loaded) => loaded,
            Err(e) => {
                warn!(error = %e, "loading the authorization policy failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        *target.write().unwrap_or_else(|e| e.into_inner()) = authorizer;
        let _ = ready.send(true);
        let request = WatchRequest {
            from: revision,
            ..WatchRequest::default()
        };
        let mut watcher = match storage.watch(request).await {
            Ok(watcher) => watcher,
            Err(e) => {
                debug!(error = %e, "policy watch could not start; loading again");
                continue;
            }
        };
        loop {
            let event = match watcher.next().await {
                Ok(event) => event,
                Err(crate::store::ReadError::Closed) => return,
                Err(e) => {
                    debug!(error = %e, "policy watch ended; loading again");
                    break;
                }
            };
            if !FOLLOWED.contains(&event.key.kind.as_str()) {
                continue;
            }
            let mut authorizer = target.write().unwrap_or_else(|e| e.into_inner());
            match event.event_type {
                EventType::Deleted => forget(
                    &mut authorizer,
                    &event.key.kind,
                    &event.key.namespace,
                    &event.key.name,
                ),
                EventType::Added | EventType::Modified => {
                    match decode(&event.value, event.revision) {
                        Ok(object) => feed(&mut authorizer, &object),
                        Err(e) => {
                            warn!(key = %event.key, error = %e, "undecodable object ignored by the authorizer")
                        }
                    }
                }
            }
        }
    }
}

/// The namespaces every cluster has (kube-apiserver's system namespaces).
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates the system namespaces and the bootstrap RBAC policy where they
/// are missing; what exists is left as it is (an operator may have changed
/// it). Retries until every object is there.
pub async fn ensure_defaults(storage: Storage) {
    let mut objects: Vec<Object> = SYSTEM_NAMESPACES
        .iter()
        .map(|name| {
            let mut ns = flotilla_shared::model::Namespace::default();
            ns.metadata.name = (*name).to_owned();
            Object::Namespace(ns)
        })
        .collect();
    objects.extend(super::authz::bootstrap_policy());
    for mut object in objects {
        let info: &KindInfo = object.kind_info();
        super::strategy::prepare_for_create(
            &mut object,
            &super::strategy::CreateContext {
                uid: super::handlers::new_uid(),
                now: super::time::format_time(std::time::SystemTime::now()),
            },
        );
        let mut delay = Duration::from_millis(100);
        loop {
            let meta = object.metadata();
            match storage
                .get(info, &meta.namespace, &meta.name, Consistency::Linearizable)
                .await
            {
                Ok(Some(_)) => break,
                Ok(None) => match storage.create(info, &object).await {
                    Ok(_) | Err(ApiError::AlreadyExists { .. }) => break,
                    Err(e) => debug!(error = %e, "creating a default object failed; retrying"),
                },
                Err(e) => debug!(error = %e, "reading a default object failed; retrying"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}

/// Compacts the store's history every `interval`, as kube-apiserver asks
/// etcd to every five minutes: each tick compacts to the revision the
/// previous tick saw, so a watch or paged list has at least one interval to
/// resume before it gets `410 Gone`. Only the leader proposes it (the
/// compaction is a Raft entry, applied by every replica at the same point).
pub async fn compact_periodically(node: std::sync::Arc<crate::replica::Node>, interval: Duration) {
    if interval.is_zero() {
        return;
    }
    let mut previous: Option<u64> = None;
    loop {
        tokio::time::sleep(interval).await;
        let Ok(current) = node.state().revision().await else {
            return;
        };
        let leads = node.raft().metrics().borrow().current_leader == Some(node.id());
        if leads && let Some(revision) = previous.filter(|r| *r > 0) {
            match node
                .write(crate::store::Request::Compact { revision }, false)
                .await
            {
                Ok(response) => debug!(revision, ?response, "compacted the history"),
                Err(e) => {
                    warn!(revision, error = %e, "compaction failed; next interval tries again")
                }
            }
        }
        previous = Some(current);
    }
}
