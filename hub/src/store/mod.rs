//! The hub store: the Raft log and the versioned object store (the state
//! machine) of one replica, in one SQLite database file.
//!
//! [`open`] gives the two halves openraft drives: a [`LogStore`] (log
//! entries, vote, committed position) and a [`StateMachine`] (objects at a
//! global revision, snapshots). Both talk through a channel to one thread
//! that owns the SQLite connection, so blocking SQLite calls and fsyncs never
//! run on the async runtime, and jobs run in the order they were sent.
//!
//! Reads have a thread of their own: a second, read-only connection that WAL
//! lets read while the writer commits, so lists and watches never queue
//! behind Raft appends and fsyncs (see [`StateMachine`]). This is etcd's role
//! for Kubernetes:
//!
//! - [`StateMachine::list`]: the objects of a kind, filtered by namespace,
//!   label [`Selector`](flotilla_shared::selector::Selector) and
//!   [`FieldSelector`](flotilla_shared::selector::FieldSelector), at the
//!   current revision or an exact older one, in (namespace, name) order and
//!   pages ([`ListAt::Continue`]) that all read the same revision.
//! - [`StateMachine::watch`]: every change after a revision, in order, once,
//!   as [`WatchEvent`]s, with Kubernetes' selector semantics (an object that
//!   stops matching is `Deleted`, one that starts matching is `Added`).
//! - [`Request::Compact`]: forgets history through Raft; lists below and
//!   watches from below the compacted revision then fail with
//!   [`ReadError::Expired`] (Kubernetes' 410 Gone).
//! - [`StateMachine::state_hash`]: a digest to check replicas are equal.
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
//!
//! Listing and watching what openraft applied (here fed by hand):
//!
//! ```
//! use flotilla_hub::store::{self, EventType, ListRequest, Request, WatchRequest, Write};
//! use flotilla_hub::store::ObjectKey;
//! use flotilla_shared::selector::Selector;
//! use openraft::storage::RaftStateMachine;
//! use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let dir = tempfile::tempdir().unwrap();
//! let (_log, mut state) = store::open(&dir.path().join("replica.db")).unwrap();
//! let mut watcher = state.watch(WatchRequest::default()).await.unwrap();
//! let pod = br#"{"metadata":{"name":"web-0","labels":{"app":"web"}}}"#.to_vec();
//! let create = Write::Create { key: ObjectKey::new("Pod", "default", "web-0"), value: pod };
//! state
//!     .apply([Entry {
//!         log_id: LogId::new(CommittedLeaderId::new(1, 1), 1),
//!         payload: EntryPayload::Normal(Request::Write(create)),
//!     }])
//!     .await
//!     .unwrap();
//!
//! let mut request = ListRequest::new("Pod");
//! request.labels = Selector::parse("app=web").unwrap();
//! let page = state.list(request).await.unwrap();
//! assert_eq!((page.revision, page.items.len()), (1, 1));
//!
//! let event = watcher.next().await.unwrap();
//! assert_eq!((event.event_type, event.revision), (EventType::Added, 1));
//! # }
//! ```

mod compact;
mod error;
mod fields;
mod hash;
mod list;
mod log_store;
mod object;
mod read;
mod recent;
mod restore;
mod schema;
mod snapshot;
mod state_machine;
mod types;
mod watch;
mod worker;

use std::path::Path;

pub use error::StoreError;
pub use list::{Continue, ListAt, ListItem, ListPage, ListRequest};
pub use log_store::{AppendStats, LogStore};
pub use object::{ObjectKey, Rejection, Request, Response, StoredObject, Write};
pub use read::ReadError;
pub use restore::{DEFAULT_REVISION_BUMP, Restored, restore};
pub use snapshot::SnapshotBuilder;
pub use state_machine::StateMachine;
pub use types::{NodeId, Replica, TypeConfig};
pub use watch::{EventType, WatchEvent, WatchRequest, Watcher};

/// Opens (creating if needed) the replica database at `path` and returns the
/// log storage and the state machine openraft needs, sharing one writing
/// connection; the state machine's reads have a read-only one.
pub fn open(path: &Path) -> Result<(LogStore, StateMachine), StoreError> {
    let db = worker::Db::open(path)?;
    // After the writer: it creates the file and the tables.
    let (reader, revision) = read::Reader::open(path)?;
    Ok((
        LogStore::new(db.clone()),
        StateMachine::new(db, reader, revision),
    ))
}

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
