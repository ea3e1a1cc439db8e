//! The API server's view of the Raft store: typed objects in, typed objects
//! out, and store failures as [`ApiError`]s.
//!
//! An object is stored as its JSON encoding without `resourceVersion`: the
//! revision that commits a write is only known once it is applied, so the
//! resourceVersion is put back into the metadata when an object is read.
//! Writes go through Raft (a follower forwards them to the leader); reads
//! are served from this replica's state machine, after a read-index barrier
//! when they must be linearizable.

use std::sync::Arc;

use flotilla_shared::model::{KindInfo, Object};

use super::status::{ApiError, GroupResource};
use crate::replica::{Consistency, Failure, Node};
use crate::store::{
    ListPage, ListRequest, ObjectKey, ReadError, Rejection, Request, Response, WatchRequest,
    Watcher, Write,
};

/// An object as read, with its resourceVersion set.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub object: Object,
    pub revision: u64,
}

/// Typed access to the replica's store.
#[derive(Debug, Clone)]
pub struct Storage {
    node: Arc<Node>,
}

/// The store key of an object of kind `info`.
pub fn key(info: &KindInfo, namespace: &str, name: &str) -> ObjectKey {
    let namespace = if info.namespaced { namespace } else { "" };
    ObjectKey::new(info.kind, namespace, name)
}

/// The bytes stored for `object`: its JSON without resourceVersion.
pub fn encode(object: &Object) -> Vec<u8> {
    let mut object = object.clone();
    object.metadata_mut().resource_version.clear();
    serde_json::to_vec(&object).unwrap_or_default()
}

/// An object read back from the store at `revision`.
pub fn decode(bytes: &[u8], revision: u64) -> Result<Object, ApiError> {
    let mut object = Object::from_json_slice(bytes)
        .map_err(|e| ApiError::Internal(format!("a stored object does not decode: {e}")))?;
    object.metadata_mut().resource_version = revision.to_string();
    Ok(object)
}

impl Storage {
    pub fn new(node: Arc<Node>) -> Self {
        Storage { node }
    }

    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Reads one object.
    pub async fn get(
        &self,
        info: &KindInfo,
        namespace: &str,
        name: &str,
        consistency: Consistency,
    ) -> Result<Option<Stored>, ApiError> {
        let stored = self
            .node
            .get(&key(info, namespace, name), consistency)
            .await
            .map_err(failure)?;
        stored
            .map(|s| {
                Ok(Stored {
                    object: decode(&s.value, s.resource_version)?,
                    revision: s.resource_version,
                })
            })
            .transpose()
    }

    /// Creates `object`; answers its resourceVersion.
    pub async fn create(&self, info: &KindInfo, object: &Object) -> Result<u64, ApiError> {
        let meta = object.metadata();
        let write = Write::Create {
            key: key(info, &meta.namespace, &meta.name),
            value: encode(object),
        };
        self.write(info, write).await
    }

    /// Replaces `object` if it is still at `expected`; answers its new resourceVersion.
    pub async fn update(
        &self,
        info: &KindInfo,
        object: &Object,
        expected: u64,
    ) -> Result<u64, ApiError> {
        let meta = object.metadata();
        let write = Write::Update {
            key: key(info, &meta.namespace, &meta.name),
            value: encode(object),
            resource_version: Some(expected),
        };
        self.write(info, write).await
    }

    /// Deletes an object if it is still at `expected`; answers the revision of the deletion.
    pub async fn delete(
        &self,
        info: &KindInfo,
        namespace: &str,
        name: &str,
        expected: u64,
    ) -> Result<u64, ApiError> {
        let write = Write::Delete {
            key: key(info, namespace, name),
            resource_version: Some(expected),
        };
        self.write(info, write).await
    }

    async fn write(&self, info: &KindInfo, write: Write) -> Result<u64, ApiError> {
        let response = self
            .node
            .write(Request::Write(write), false)
            .await
            .map_err(failure)?;
        match response {
            Response::Applied { revision } => Ok(revision),
            Response::Rejected { reason, .. } => Err(rejection(info, reason)),
            other => Err(ApiError::Internal(format!(
                "the store answered a write with {other:?}"
            ))),
        }
    }

    /// Lists objects; a linearizable list first waits for everything committed before it.
    pub async fn list(
        &self,
        request: ListRequest,
        consistency: Consistency,
    ) -> Result<ListPage, ApiError> {
        if consistency == Consistency::Linearizable {
            self.node.linearizable_barrier().await.map_err(failure)?;
        }
        self.node.state().list(request).await.map_err(read_error)
    }

    /// Starts a watch on this replica's state machine.
    pub async fn watch(&self, request: WatchRequest) -> Result<Watcher, ApiError> {
        self.node.state().watch(request).await.map_err(read_error)
    }

    /// The revision this replica has applied.
    pub async fn revision(&self) -> Result<u64, ApiError> {
        self.node
            .state()
            .revision()
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))
    }
}

/// A write the store refused, as Kubernetes reports it.
fn rejection(info: &KindInfo, reason: Rejection) -> ApiError {
    match reason {
        Rejection::AlreadyExists { key } => ApiError::AlreadyExists {
            resource: GroupResource::of(info),
            name: key.name,
        },
        Rejection::NotFound { key } => ApiError::not_found(info, &key.name),
        Rejection::Conflict { key, .. } => ApiError::modified(info, &key.name),
        other => ApiError::Internal(other.to_string()),
    }
}

/// A replica failure, by what the client should do next.
pub fn failure(failure: Failure) -> ApiError {
    match failure {
        // Nothing was done: the client may retry (kubectl and client-go do on 503).
        Failure::NotLeader { .. } => {
            ApiError::Unavailable(format!("no leader is available: {failure}"))
        }
        Failure::Internal { .. } => ApiError::Unavailable(failure.to_string()),
        // The write may have happened: read before retrying (Kubernetes' 504 Timeout).
        Failure::Unknown { .. } => ApiError::Timeout(format!(
            "the request may or may not have been applied: {failure}"
        )),
        Failure::Refused { .. } | Failure::Forbidden { .. } => {
            ApiError::Internal(failure.to_string())
        }
    }
}

/// A list or watch that could not be answered, in Kubernetes' words.
pub fn read_error(error: ReadError) -> ApiError {
    match error {
        ReadError::Expired {
            requested,
            compacted,
        } => ApiError::Expired(format!(
            "too old resource version: {requested} ({compacted})"
        )),
        ReadError::FutureRevision { requested, current } => ApiError::Timeout(format!(
            "Too large resource version: {requested}, current: {current}"
        )),
        ReadError::Closed => ApiError::Unavailable("the replica is shutting down".into()),
        ReadError::Store(e) => ApiError::Internal(e.to_string()),
    }
}
