//! The OCI bundle of one container: `config.json` built from the image config
//! and the pod spec with secure defaults, the container's writable rootfs, and
//! the pod's volumes.
