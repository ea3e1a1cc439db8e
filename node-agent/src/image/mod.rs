//! The image store: pulls OCI images from registries (by the device's
//! platform, digest-verified, resumable), keeps blobs content-addressed, unpacks
//! each image once into a read-only rootfs, and collects what no pod uses.
//!
//! - [`ImageSource`] moves bytes: [`RegistrySource`] (oci-client) or
//!   [`MemorySource`] (tests, with injected failures).
//! - [`ImageStore`] checks everything it is given and keeps it on disk under
//!   `<state>/images/`: `blobs/sha256/<hex>` (and `<hex>.partial` while
//!   downloading), `rootfs/<config-hex>/`, and `index.json` (references to
//!   manifest digests, sizes, last use).

mod catalog;
mod digest;
mod error;
mod fetch;
mod gc;
pub mod memory;
pub mod platform;
pub mod reference;
pub mod registry;
pub mod source;
mod store;
pub mod testing;

pub use digest::{Sha256, sha256_of};
pub use error::{PullError, StoreError};
pub use gc::GcReport;
pub use memory::{Fault, MemorySource};
pub use platform::Platform;
pub use registry::{Credentials, RegistryConfig, RegistrySource};
pub use source::{ImageSource, Resolved};
pub use store::{Image, ImageStore, ImageSummary};

#[cfg(test)]
mod tests;
