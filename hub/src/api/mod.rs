//! The hub's Kubernetes-compatible API server: REST over HTTPS that stock
//! `kubectl` uses, on every replica.
//!
//! A request goes through the same stages as in kube-apiserver:
//! authentication ([`authn`]: client certificate, bearer token, bootstrap
//! token) → authorization ([`authz`]: RBAC and the node authorizer) →
//! decoding (`flotilla_shared::manifest`) → admission ([`strategy`]:
//! defaulting, what a create or an update may change, validation) → the
//! Raft store. Patches are applied by [`patch`]; `kubectl get` columns come
//! from [`table`].

pub mod authz;
pub mod discovery;
pub mod openapi;
pub mod patch;
pub mod strategy;
pub mod table;
pub mod time;
pub mod user;
