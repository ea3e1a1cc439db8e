//! The Raft type configuration: what a log entry carries, what applying one
//! answers, and how replicas are named and reached.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

use super::object::{Request, Response};

/// A replica's Raft id: stable for the life of the replica's database.
pub type NodeId = u64;

/// What Raft knows about a replica besides its id: where to reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    /// `host:port` of the replica's Raft transport.
    pub addr: String,
}

impl fmt::Display for Replica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "replica at {}", self.addr)
    }
}

openraft::declare_raft_types!(
    /// Flotilla's Raft types: log entries carry object-store [`Request`]s and
    /// applying one answers a [`Response`]; snapshots are SQLite database
    /// files held in memory.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = Replica,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A Raft log entry of this configuration.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log position (term, leader, index).
pub type LogId = openraft::LogId<NodeId>;
/// A vote of this configuration.
pub type Vote = openraft::Vote<NodeId>;
/// A membership as stored with the log position that introduced it.
pub type StoredMembership = openraft::StoredMembership<NodeId, Replica>;
/// Snapshot metadata of this configuration.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Replica>;
/// A snapshot of this configuration.
pub type Snapshot = openraft::Snapshot<TypeConfig>;
/// The error every storage call returns to openraft.
pub type StorageError = openraft::StorageError<NodeId>;
