//! The store's one error type, and how it is handed to openraft.

use std::path::PathBuf;

/// Why a store operation failed. Every variant means the replica's storage
/// is unusable for that call: openraft stops the replica on any of them, and
/// the operator has to look at the disk or the database file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {action}")]
    Sqlite {
        action: &'static str,
        source: rusqlite::Error,
    },
    #[error("encode {what}")]
    Encode {
        what: &'static str,
        source: postcard::Error,
    },
    #[error("decode {what} from the database")]
    Decode {
        what: &'static str,
        source: postcard::Error,
    },
    #[error("{action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the database refused WAL mode (journal mode is {mode})")]
    JournalMode { mode: String },
    #[error("database schema version {found} is not the supported {expected}")]
    SchemaVersion { found: i64, expected: i64 },
    #[error("received snapshot is not a state machine database: {reason}")]
    BadSnapshot { reason: String },
    #[error("the sqlite thread has stopped")]
    ThreadStopped,
}

/// Attaches what was being done to a rusqlite error.
pub(super) trait SqliteContext<T> {
    fn sqlite(self, action: &'static str) -> Result<T, StoreError>;
}

impl<T> SqliteContext<T> for rusqlite::Result<T> {
    fn sqlite(self, action: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sqlite { action, source })
    }
}

pub(super) fn encode<T: serde::Serialize>(
    what: &'static str,
    value: &T,
) -> Result<Vec<u8>, StoreError> {
    postcard::to_allocvec(value).map_err(|source| StoreError::Encode { what, source })
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|source| StoreError::Decode { what, source })
}
