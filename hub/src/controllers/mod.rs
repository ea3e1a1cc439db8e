//! The controllers: reconcilers that turn what users declare into what the
//! cluster runs, on the Raft leader only.
//!
//! Each controller is a pure core shaped like kube-runtime's reconcilers:
//! [`Reconciler::reconcile`] takes the key of one object, a read-only view of
//! the cluster ([`Cache`]) and the time, and returns an [`Action`]: the
//! [`Command`]s to carry out and when to look again. The runtime keeps the
//! cache current from a watch of the store, queues keys without duplicates,
//! runs at most one reconcile per key at a time, and carries out the
//! commands through the API's admission and the Raft store (every update is
//! a compare-and-swap on the resourceVersion the core saw, so a stale core
//! can never overwrite a newer state).

pub mod cache;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod executor;
pub mod gc;
pub mod job;
pub mod namespace;
pub mod nodelifecycle;
pub mod pods;
pub mod replicaset;
pub mod runtime;
pub mod scheduling;

use std::time::Duration;

use flotilla_shared::model::{Object, ObjectReference, Pod};

pub use crate::store::ObjectKey;
pub use cache::Cache;

/// How a deletion treats the deleted object's dependents (the API's own).
pub use crate::api::deletion::Propagation;

/// `Normal` or `Warning`, as Events say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One thing a controller asks the runtime to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Create the object, through admission (defaulting, validation) as a
    /// user's create would be. A `generateName` gets a fresh name.
    Create(Box<Object>),
    /// Replace the object's spec and metadata, if it is still at its
    /// `metadata.resourceVersion` (its status is kept, as for a user's update).
    Update(Box<Object>),
    /// Replace the object's status (the status subresource), if it is still at
    /// its `metadata.resourceVersion`.
    UpdateStatus(Box<Object>),
    /// Replace a Namespace's `spec.finalizers` (the `namespaces/finalize`
    /// subresource), if it is still at its `metadata.resourceVersion`; the
    /// namespace controller removes `kubernetes` once the namespace is empty.
    Finalize(Box<Object>),
    /// Delete an object, with the API's semantics (finalizers, graceful pod
    /// deletion); `uid`, when given, must still be the object's uid.
    Delete {
        key: ObjectKey,
        uid: Option<String>,
        propagation: Propagation,
    },
    /// Bind a pending pod to a node (the scheduler's `pods/binding`): `pod`
    /// is the pod as the scheduler saw it, and the binding holds only if it is
    /// still at that resourceVersion (so no read is needed to bind).
    Bind { pod: Box<Pod>, node: String },
    /// Record an Event about `regarding` (repeats of the same reason and
    /// message are counted on one Event, as kube's event recorder does).
    Event {
        regarding: ObjectReference,
        type_: EventType,
        reason: String,
        message: String,
    },
}

/// What a reconcile decided: commands, and when to reconcile the key again
/// even if nothing changes (a rollout waiting for time, a lease to expire).
#[derive(Debug, Clone, Default, PartialEq)]
#[must_use]
pub struct Action {
    pub commands: Vec<Command>,
    pub requeue_after: Option<Duration>,
}

impl Action {
    /// Nothing to do until something changes.
    pub fn await_change() -> Self {
        Action::default()
    }

    pub fn with(commands: Vec<Command>) -> Self {
        Action {
            commands,
            requeue_after: None,
        }
    }

    pub fn requeue(mut self, after: Duration) -> Self {
        self.requeue_after = Some(match self.requeue_after {
            Some(current) => current.min(after),
            None => after,
        });
        self
    }
}

/// A controller's pure core.
pub trait Reconciler: Send + Sync {
    /// The controller's name, as its Events' `source.component` says.
    fn name(&self) -> &'static str;

    /// The keys to reconcile when `object` changed (was added, modified or
    /// deleted; `cache` already shows the change). A ReplicaSet controller
    /// maps a changed Pod to its owning ReplicaSet, a changed ReplicaSet to
    /// itself.
    fn keys_for(&self, object: &Object, cache: &Cache) -> Vec<ObjectKey>;

    /// Decides what to do about the object at `key` (which may no longer
    /// exist) given the cluster as `cache` shows it at `now`.
    fn reconcile(&self, key: &ObjectKey, cache: &Cache, now: std::time::SystemTime) -> Action;
}

/// Every controller, as the leader runs them.
pub fn standard() -> Vec<std::sync::Arc<dyn Reconciler>> {
    vec![
        std::sync::Arc::new(deployment::DeploymentController),
        std::sync::Arc::new(replicaset::ReplicaSetController),
        std::sync::Arc::new(daemonset::DaemonSetController),
        std::sync::Arc::new(job::JobController),
        std::sync::Arc::new(nodelifecycle::NodeLifecycleController::default()),
        std::sync::Arc::new(endpoints::EndpointsController),
        std::sync::Arc::new(gc::GarbageCollector),
        std::sync::Arc::new(namespace::NamespaceController),
    ]
}

/// A reference to `object` for Events and owner references.
pub fn reference_to(object: &Object) -> ObjectReference {
    let info = object.kind_info();
    let meta = object.metadata();
    ObjectReference {
        kind: info.kind.to_owned(),
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        api_version: info.api_version.to_owned(),
        resource_version: meta.resource_version.clone(),
        field_path: String::new(),
    }
}

/// The key of `object` in the store.
pub fn key_of(object: &Object) -> ObjectKey {
    let meta = object.metadata();
    let namespace = if object.kind_info().namespaced {
        meta.namespace.as_str()
    } else {
        ""
    };
    ObjectKey::new(object.kind_info().kind, namespace, &meta.name)
}
