//! Carries out the commands controllers and the scheduler emit, through the
//! same admission and store paths as the API (`crate::api::write`,
//! `crate::api::deletion`), and answers the store revision each one wrote
//! so that the runtime can wait for its cache to show it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use flotilla_shared::model::{
    Event, EventSource, KindInfo, Object, ObjectReference, Pod, PodCondition,
};

use super::{Command, EventType, Propagation};
use crate::api::deletion::{self, DeleteOptions, Preconditions};
use crate::api::status::ApiError;
use crate::api::storage::{Storage, Stored};
use crate::api::time::format_time;
use crate::api::write::{self, Part};
use crate::replica::Consistency;

/// How many distinct events the recorder remembers to count repeats.
const REMEMBERED_EVENTS: usize = 4096;

/// What the recorder remembers of an Event it wrote.
#[derive(Debug, Clone)]
struct Recorded {
    namespace: String,
    name: String,
}

/// Executes commands against the store.
#[derive(Debug)]
pub struct Executor {
    storage: Storage,
    /// (regarding uid, reason, message) → the Event that records it.
    events: Mutex<HashMap<(String, String, String), Recorded>>,
}

fn kind_of(name: &str) -> Result<&'static KindInfo, ApiError> {
    flotilla_shared::model::KINDS
        .iter()
        .find(|info| info.kind == name)
        .ok_or_else(|| ApiError::Internal(format!("no kind {name:?}")))
}

fn revision_of(object: &Object) -> u64 {
    object.metadata().resource_version.parse().unwrap_or(0)
}

impl Executor {
    pub fn new(storage: Storage) -> Self {
        Executor {
            storage,
            events: Mutex::new(HashMap::new()),
        }
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Carries out one command; answers the revision it wrote (0 when it wrote nothing).
    pub async fn execute(&self, component: &str, command: Command) -> Result<u64, ApiError> {
        match command {
            Command::Create(object) => {
                let kind = object.kind_info();
                let meta = object.metadata();
                write::check_namespace(&self.storage, kind, &meta.namespace, &meta.name).await?;
                let created = write::create(&self.storage, kind, *object, false).await?;
                Ok(revision_of(&created))
            }
            Command::Update(object) => self.update(*object, Part::Main).await,
            Command::UpdateStatus(object) => self.update(*object, Part::Status).await,
            Command::Finalize(object) => self.update(*object, Part::Finalize).await,
            Command::Delete {
                key,
                uid,
                propagation,
            } => {
                let kind = kind_of(&key.kind)?;
                let Some(current) = self
                    .storage
                    .get(kind, &key.namespace, &key.name, Consistency::Stale)
                    .await?
                else {
                    return Ok(0);
                };
                let options = DeleteOptions {
                    propagation_policy: Some(
                        match propagation {
                            Propagation::Background => "Background",
                            Propagation::Foreground => "Foreground",
                            Propagation::Orphan => "Orphan",
                        }
                        .to_owned(),
                    ),
                    preconditions: uid.map(|uid| Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..DeleteOptions::default()
                };
                match deletion::delete(&self.storage, kind, current, &options).await {
                    Ok((object, _)) => Ok(revision_of(&object)),
                    // Gone already: what was asked.
                    Err(ApiError::NotFound { .. }) => Ok(0),
                    Err(e) => Err(e),
                }
            }
            Command::Bind { pod, node } => self.bind(*pod, &node).await,
            Command::Event {
                regarding,
                type_,
                reason,
                message,
            } => {
                self.record(component, regarding, type_, reason, message)
                    .await
            }
        }
    }

    /// An update of `part` of `object`, if the object is still at the
    /// resourceVersion `object` carries.
    async fn update(&self, object: Object, part: Part) -> Result<u64, ApiError> {
        let kind = object.kind_info();
        let meta = object.metadata();
        let current = self
            .storage
            .get(kind, &meta.namespace, &meta.name, Consistency::Stale)
            .await?
            .ok_or_else(|| ApiError::not_found(kind, &meta.name))?;
        if meta.resource_version != current.revision.to_string() {
            return Err(ApiError::modified(kind, &meta.name));
        }
        let written = write::commit(&self.storage, kind, current, object, part, false).await?;
        Ok(revision_of(&written))
    }

    /// The scheduler's binding: `pod` as the scheduler saw it, with
    /// `spec.nodeName` and the PodScheduled condition set, written if the pod
    /// is still at the resourceVersion it was seen at (the compare-and-swap
    /// makes a read unnecessary).
    async fn bind(&self, mut pod: Pod, node: &str) -> Result<u64, ApiError> {
        let kind = kind_of("Pod")?;
        let expected: u64 = pod
            .metadata
            .resource_version
            .parse()
            .map_err(|_| ApiError::Internal("a cached pod without a resourceVersion".into()))?;
        if !pod.spec.node_name.is_empty() || pod.metadata.deletion_timestamp.is_some() {
            return Err(ApiError::modified(kind, &pod.metadata.name));
        }
        pod.spec.node_name = node.to_owned();
        pod.status.conditions.retain(|c| c.type_ != "PodScheduled");
        pod.status.conditions.push(PodCondition {
            type_: "PodScheduled".into(),
            status: "True".into(),
            last_transition_time: Some(format_time(SystemTime::now())),
            ..PodCondition::default()
        });
        self.storage.update(kind, &Object::Pod(pod), expected).await
    }

    /// Records an Event, counting a repeat of the same reason and message
    /// about the same object on the Event that recorded it first.
    async fn record(
        &self,
        component: &str,
        regarding: ObjectReference,
        type_: EventType,
        reason: String,
        message: String,
    ) -> Result<u64, ApiError> {
        let kind = kind_of("Event")?;
        let now = format_time(SystemTime::now());
        let key = (regarding.uid.clone(), reason.clone(), message.clone());
        let seen = self
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let Some(recorded) = seen
            && let Some(Stored {
                object: Object::Event(mut event),
                revision,
            }) = self
                .storage
                .get(
                    kind,
                    &recorded.namespace,
                    &recorded.name,
                    Consistency::Stale,
                )
                .await?
        {
            event.count = event.count.max(1) + 1;
            event.last_timestamp = Some(now);
            return self
                .storage
                .update(kind, &Object::Event(event), revision)
                .await;
        }
        let namespace = if regarding.namespace.is_empty() {
            "default".to_owned()
        } else {
            regarding.namespace.clone()
        };
        // No new Events in a namespace being deleted: they would hold it up.
        write::check_namespace(&self.storage, kind, &namespace, &regarding.name).await?;
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let name = format!("{}.{:x}", regarding.name, nanos);
        let mut event = Event {
            involved_object: regarding,
            reason,
            message,
            source: EventSource {
                component: component.to_owned(),
                ..EventSource::default()
            },
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: 1,
            type_: type_.as_str().to_owned(),
            ..Event::default()
        };
        event.metadata.name = name.clone();
        event.metadata.namespace = namespace.clone();
        let created = write::create(&self.storage, kind, Object::Event(event), false).await?;
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if events.len() >= REMEMBERED_EVENTS {
            events.clear();
        }
        events.insert(key, Recorded { namespace, name });
        Ok(revision_of(&created))
    }
}
