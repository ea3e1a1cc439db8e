//! Test helpers: a replica in a temp dir fed requests as committed entries,
//! and Kubernetes-shaped object values.

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload};
use serde_json::json;
use tempfile::TempDir;

use super::types::{Entry, LogId};
use super::*;

/// A replica's state machine, applying requests at increasing log indexes.
pub(super) struct TestReplica {
    pub(super) dir: TempDir,
    pub(super) state: StateMachine,
    next_index: u64,
}

impl TestReplica {
    pub(super) fn open() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (_log, state) = open(&dir.path().join("replica.db")).unwrap();
        TestReplica {
            dir,
            state,
            next_index: 1,
        }
    }

    /// Applies `requests` as one batch of entries (one transaction).
    pub(super) async fn apply_batch(&mut self, requests: Vec<Request>) -> Vec<Response> {
        let entries: Vec<Entry> = requests
            .into_iter()
            .map(|request| {
                let index = self.next_index;
                self.next_index += 1;
                Entry {
                    log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
                    payload: EntryPayload::Normal(request),
                }
            })
            .collect();
        self.state.apply(entries).await.unwrap()
    }

    pub(super) async fn apply(&mut self, request: Request) -> Response {
        self.apply_batch(vec![request]).await.remove(0)
    }
}

/// A pod's JSON value.
pub(super) fn pod_value(name: &str, labels: &[(&str, &str)], node: &str, phase: &str) -> Vec<u8> {
    let labels: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    let mut spec = json!({});
    if !node.is_empty() {
        spec["nodeName"] = json!(node);
    }
    serde_json::to_vec(&json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
        "status": {"phase": phase},
    }))
    .unwrap()
}

pub(super) fn create(key: &ObjectKey, value: Vec<u8>) -> Request {
    Request::Write(Write::Create {
        key: key.clone(),
        value,
    })
}

pub(super) fn update(key: &ObjectKey, value: Vec<u8>) -> Request {
    Request::Write(Write::Update {
        key: key.clone(),
        value,
        resource_version: None,
    })
}

pub(super) fn delete(key: &ObjectKey) -> Request {
    Request::Write(Write::Delete {
        key: key.clone(),
        resource_version: None,
    })
}
