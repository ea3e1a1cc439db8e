//! Applies image layers (tar, gzip, zstd) with OCI whiteouts to a rootfs,
//! refusing path traversal, symlink escapes and device nodes.

pub mod path;

pub use path::resolve_in_root;
