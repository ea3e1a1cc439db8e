//! The hub's Kubernetes-compatible API server: REST over HTTPS that stock
//! `kubectl` uses, on every replica.
//!
//! A request goes through the same stages as in kube-apiserver:
//! authentication ([`authn`]: client certificate, bearer token, bootstrap
//! token) → authorization ([`authz`]: RBAC and the node authorizer) →
//! decoding (`flotilla_shared::manifest`) → admission ([`strategy`]:
//! defaulting, what a create or an update may change, validation) → the
//! Raft store ([`storage`]). Patches are applied by [`patch`]; `kubectl get`
//! columns come from [`table`]; every error becomes a Kubernetes `Status` in
//! [`status`]. Writes are committed through Raft (a follower forwards them
//! to the leader); reads are served by the replica that receives them.

pub mod authn;
pub mod authz;
pub mod deletion;
pub mod discovery;
pub mod handlers;
pub mod kubeconfig;
pub mod metrics;
pub mod openapi;
pub mod patch;
pub mod request;
pub mod server;
pub mod status;
pub mod storage;
pub mod strategy;
pub mod sync;
pub mod table;
pub mod time;
pub mod user;
pub mod write;

pub use server::{Api, ApiConfig, serve};
