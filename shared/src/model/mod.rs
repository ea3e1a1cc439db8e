//! The Kubernetes-shaped object model.
//!
//! Field names, JSON shapes and omission rules follow Kubernetes' own types
//! (see [`fields`] for how Go's `omitempty` maps onto serde), so a manifest
//! written for Kubernetes decodes here and re-encodes with the same meaning.
//! Decoding never checks values: that is [`crate::validation`]'s job, which
//! reports every problem at once with its field path.

pub mod fields;
pub mod meta;

pub mod config;
pub mod coordination;
pub mod events;
pub mod namespace;
pub mod node;
pub mod pod;
pub mod rbac;
pub mod service;
pub mod workloads;

mod object;

pub use config::*;
pub use coordination::*;
pub use events::*;
pub use meta::*;
pub use namespace::*;
pub use node::*;
pub use object::*;
pub use pod::*;
pub use rbac::*;
pub use service::*;
pub use workloads::*;

/// What the API server, the store and the wire protocol need to know about a kind.
pub trait Resource {
    /// API group; empty for the core group (`v1`).
    const GROUP: &'static str;
    const VERSION: &'static str;
    /// `apiVersion` as written in manifests: `v1`, `apps/v1`.
    const API_VERSION: &'static str;
    const KIND: &'static str;
    /// The lower-case plural used in URLs: `pods`, `deployments`.
    const PLURAL: &'static str;
    const NAMESPACED: bool;

    fn metadata(&self) -> &ObjectMeta;
    fn metadata_mut(&mut self) -> &mut ObjectMeta;
}

/// Implements [`Resource`] for a top-level kind with `metadata: ObjectMeta`.
macro_rules! resource {
    ($ty:ident, group = $group:literal, version = $version:literal, plural = $plural:literal, namespaced = $ns:literal) => {
        impl $crate::model::Resource for $ty {
            const GROUP: &'static str = $group;
            const VERSION: &'static str = $version;
            const API_VERSION: &'static str = if $group.is_empty() {
                $version
            } else {
                concat!($group, "/", $version)
            };
            const KIND: &'static str = stringify!($ty);
            const PLURAL: &'static str = $plural;
            const NAMESPACED: bool = $ns;

            fn metadata(&self) -> &$crate::model::ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut $crate::model::ObjectMeta {
                &mut self.metadata
            }
        }
    };
}
pub(crate) use resource;
