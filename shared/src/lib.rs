//! Flotilla's shared types: the Kubernetes-shaped object model, its
//! validation, label selectors, resource quantities and the hub ↔ agent wire
//! protocol. Types only: no runtime, no sockets, no files.
#![forbid(unsafe_code)]

pub mod manifest;
pub mod model;
pub mod quantity;
pub mod selector;
pub mod validation;
pub mod wire;
