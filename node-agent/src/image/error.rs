//! What can go wrong pulling and storing images, and whether retrying helps.

use std::io;
use std::path::PathBuf;

use crate::unpack::UnpackError;

/// Why a pull failed. Its `Display` (also [`PullError::reason`]) is what a
/// pod's `ErrImagePull` message shows, including the registry's own words.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("{reference}: not found: {reason}")]
    NotFound { reference: String, reason: String },
    #[error("{reference}: unauthorized: {reason}")]
    Unauthorized { reference: String, reason: String },
    #[error("{reference}: access denied: {reason}")]
    Denied { reference: String, reason: String },
    /// The registry could not be reached or the connection broke; retrying helps.
    #[error("registry {registry} unreachable: {reason}")]
    Unreachable { registry: String, reason: String },
    /// Any other error the registry answered with (rate limits and 5xx are
    /// worth retrying, other 4xx are not).
    #[error("{reference}: registry error: {reason}")]
    Registry {
        reference: String,
        reason: String,
        retry: bool,
    },
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// The registry sent something that is not a valid image.
    #[error("{what}: bad content: {reason}")]
    BadContent { what: String, reason: String },
    #[error("{what}: {size} bytes is over the limit of {limit}")]
    TooLarge { what: String, size: u64, limit: u64 },
    #[error("{reference}: no image for platform {wanted} (the index has: {available})")]
    NoMatchingPlatform {
        reference: String,
        wanted: String,
        available: String,
    },
    #[error("layer {layer}: diff_id mismatch: the config says {expected}, the layer is {actual}")]
    DiffIdMismatch {
        layer: String,
        expected: String,
        actual: String,
    },
    #[error("layer {layer}: unpack failed: {source}")]
    Unpack {
        layer: String,
        #[source]
        source: UnpackError,
    },
    /// The disk (or the store's budget) has no room; retry after collecting garbage.
    #[error("no space for {what}: {reason}")]
    NoSpace { what: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The registry client could not be built from the configuration.
    #[error("registry client: {reason}")]
    Client { reason: String },
}

impl PullError {
    /// The text for the pod status (`ErrImagePull`'s message).
    pub fn reason(&self) -> String {
        self.to_string()
    }

    /// Whether pulling again (after a back-off) can succeed without anyone
    /// changing the image, the credentials or the configuration.
    pub fn retryable(&self) -> bool {
        match self {
            PullError::Unreachable { .. }
            | PullError::NoSpace { .. }
            | PullError::Io { .. }
            // A corrupted transfer is discarded; the next try downloads again.
            | PullError::DigestMismatch { .. } => true,
            PullError::Registry { retry, .. } => *retry,
            _ => false,
        }
    }

    /// An I/O error on a path, told apart when it means the disk is full.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        if is_no_space(&source) {
            return PullError::NoSpace {
                what: path.display().to_string(),
                reason: source.to_string(),
            };
        }
        PullError::Io { path, source }
    }
}

/// ENOSPC or EDQUOT.
pub(crate) fn is_no_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// Why reading or maintaining the local store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `index.json` or a stored config cannot be parsed: the store needs to
    /// be repaired or wiped; retrying does not help.
    #[error("{path}: corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source }
    }
}

impl From<StoreError> for PullError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Io { path, source } => PullError::io(path, source),
            StoreError::Corrupt { path, reason } => PullError::BadContent {
                what: path.display().to_string(),
                reason,
            },
        }
    }
}
