//! The hub store: the Raft log and the versioned object store (the state
//! machine) of one replica, in one SQLite database file.
//!
//! [`open`] gives the two halves openraft drives: a [`LogStore`] (log
//! entries, vote, committed position) and a [`StateMachine`] (objects at a
//! global revision, snapshots). Both talk through a channel to one thread
//! that owns the SQLite connection, so blocking SQLite calls and fsyncs never
//! run on the async runtime, and jobs run in the order they were sent.
//!
//! Durability: the database is in WAL mode with `synchronous=FULL`, so every
//! commit fsyncs the WAL before it returns. An append is reported flushed to
//! openraft (its `LogFlushed` callback) only after the transaction holding
//! the entries has committed, and a vote is saved before `save_vote` returns:
//! a replica therefore never counts towards a majority, or votes, on
//! something a power cut could take back. (`NORMAL` would sync only at
//! checkpoints: still consistent after a crash, but missing the last commits,
//! which Raft cannot tolerate.)
//!
//! ```
//! use flotilla_hub::store::{self, ObjectKey};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let dir = tempfile::tempdir().unwrap();
//! let (_log, state) = store::open(&dir.path().join("replica.db")).unwrap();
//! let key = ObjectKey::new("Pod", "default", "web-0");
//! assert_eq!(state.get(&key).await.unwrap(), None);
//! assert_eq!(state.revision().await.unwrap(), 0);
//! # }
//! ```

mod error;
mod log_store;
mod object;
mod schema;
mod snapshot;
mod state_machine;
mod types;
mod worker;

use std::path::Path;

pub use error::StoreError;
pub use log_store::LogStore;
pub use object::{ObjectKey, Rejection, Request, Response, StoredObject, Write};
pub use snapshot::SnapshotBuilder;
pub use state_machine::StateMachine;
pub use types::{NodeId, Replica, TypeConfig};

/// Opens (creating if needed) the replica database at `path` and returns the
/// log storage and the state machine openraft needs, sharing one connection.
pub fn open(path: &Path) -> Result<(LogStore, StateMachine), StoreError> {
    let db = worker::Db::open(path)?;
    Ok((LogStore::new(db.clone()), StateMachine::new(db)))
}

#[cfg(test)]
mod tests;
