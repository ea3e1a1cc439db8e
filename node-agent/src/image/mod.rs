//! The image store: pulls OCI images from registries (by the device's
//! platform, digest-verified, resumable), keeps blobs content-addressed, unpacks
//! each image once into a read-only rootfs, and collects what no pod uses.
