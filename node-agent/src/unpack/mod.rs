//! Applies image layers (tar, gzip, zstd) with OCI whiteouts to a rootfs,
//! refusing path traversal, symlink escapes and device nodes.
//!
//! `tar` is used only as a parser; the files are written here, the way
//! containerd's `applyNaive` does ([`layer`] has the details). Paths are
//! resolved inside the rootfs as the container will see them
//! ([`resolve_in_root`]): an absolute symlink such as Debian's
//! `var/run -> /run` means `<rootfs>/run`, never the host's `/run`.
//!
//! # What counts as an escape
//!
//! A layer is refused with [`UnpackError::Escape`] when
//! - an entry name, or a hard link's target name, has a `..` that climbs above
//!   the root once the name is cleaned (`../etc/passwd`, `a/../../x`);
//! - an entry, a hard link's target or a whiteout is reached *through* a
//!   symlink (already in the rootfs, from this or a lower layer) whose
//!   target climbs above the root with `..` while being resolved, e.g.
//!   `evil -> ../../../../tmp/x` followed by an entry `evil/file`.
//!
//! Not escapes: storing such a symlink (`evil` itself is written verbatim; the
//! runtime resolves it inside the rootfs later), and absolute symlinks, which
//! restart at the rootfs root (`lib -> /usr/lib` then `lib/x` writes
//! `<rootfs>/usr/lib/x`). The last component of an entry is never followed: an
//! existing symlink there is replaced.
//!
//! Character and block devices are refused ([`UnpackError::DeviceNode`]):
//! the runtime provides `/dev`, and a device node from a layer would be a
//! door to the host's hardware.
//!
//! A failed [`apply_layer`] leaves a partly written rootfs (a tar stream
//! cannot be validated before it is read); the caller builds the rootfs in a
//! temporary directory and discards it on error. Nothing is ever written
//! outside the rootfs.

use std::io;
use std::path::PathBuf;

pub mod compression;
pub mod layer;
pub mod path;

pub use compression::Compression;
pub use layer::{LayerDigest, apply_layer};
pub use path::resolve_in_root;

/// Why a layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error(
        "unsupported layer media type {media_type:?}: only tar layers, plain, gzip or zstd, can be unpacked (retrying will not help)"
    )]
    UnsupportedMediaType { media_type: String },
    #[error(
        "layer entry {entry:?} would be written outside the rootfs: {reason} (the layer is refused)"
    )]
    Escape { entry: String, reason: String },
    #[error("layer entry {entry:?} is a device node; device nodes from layers are refused")]
    DeviceNode { entry: String },
    #[error("layer entry {entry:?} is an invalid whiteout: {reason}")]
    InvalidWhiteout { entry: String, reason: String },
    #[error("layer entry {entry:?} is invalid: {reason}")]
    InvalidEntry { entry: String, reason: String },
    #[error("layer stream is corrupt or truncated: {source} (re-download the blob)")]
    Corrupt { source: io::Error },
    #[error("writing {path}: {source} (may succeed again once the disk problem is fixed)")]
    Io { path: PathBuf, source: io::Error },
}
