//! A hub replica on the network: Raft between replicas over mutually
//! authenticated TLS, and the store's requests from clients.
//!
//! - [`rpc`]: the messages and their framing.
//! - [`peers`]: dialling replicas, the connection pool, openraft's network.
//! - [`node`]: one replica — writes (forwarded to the leader), reads
//!   (linearizable by read index, or stale), membership, status, backup.
//! - [`service`]: the listener and who may ask what.
//! - [`client`]: a store client that follows the leader across replicas.

mod batcher;
pub mod client;
pub mod leading;
pub mod node;
pub mod peers;
pub mod rpc;
pub mod service;
pub mod types;

pub use client::{Client, ClientError};
pub use node::{Node, NodeError, Options};
pub use peers::{CallError, Dialer, Peers, split_host};
pub use rpc::{Consistency, Failure, Member, Reply, Rpc, Status};
pub use service::{ADMINS_GROUP, REPLICAS_GROUP, Role, serve};
