//! openraft's RPC types, instantiated for Flotilla's Raft configuration.

use crate::store::{NodeId, Replica, TypeConfig};

pub type AppendEntriesRequest = openraft::raft::AppendEntriesRequest<TypeConfig>;
pub type AppendEntriesResponse = openraft::raft::AppendEntriesResponse<NodeId>;
pub type VoteRequest = openraft::raft::VoteRequest<NodeId>;
pub type VoteResponse = openraft::raft::VoteResponse<NodeId>;
pub type InstallSnapshotRequest = openraft::raft::InstallSnapshotRequest<TypeConfig>;
pub type InstallSnapshotResponse = openraft::raft::InstallSnapshotResponse<NodeId>;
pub use openraft::error::InstallSnapshotError;
/// An error a replica's Raft returns for an RPC.
pub type RaftError<E = openraft::error::Infallible> = openraft::error::RaftError<NodeId, E>;
/// An error of sending an RPC, as openraft wants it.
pub type RpcError<E = openraft::error::Infallible> =
    openraft::error::RPCError<NodeId, Replica, RaftError<E>>;
/// The Raft instance of one replica.
pub type Raft = openraft::Raft<TypeConfig>;
