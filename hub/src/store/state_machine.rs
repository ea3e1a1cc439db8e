//! The state machine: applies committed entries to the object store, in the
//! same database as the log, and answers reads of it from the reader thread.

use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, OptionalSend, StorageIOError};
use rusqlite::Connection;
use tokio::sync::watch;

use super::error::{SqliteContext, StoreError, decode, encode};
use super::hash;
use super::list::{self, ListPage, ListRequest};
use super::object::{self, ObjectKey, Response, StoredObject};
use super::read::{ReadError, Reader};
use super::recent::{LoggedChange, Recent};
use super::snapshot::{self, SnapshotBuilder};
use super::types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use super::watch::{self as watches, WatchRequest, Watcher};
use super::worker::Db;

/// openraft's state machine for one replica. Cloning it gives another handle
/// on the same database, for reads beside Raft.
///
/// Reads (`get`, `revision`, `list`, `watch`, `state_hash`) are local: they
/// see what this replica has applied, which may lag the leader. They run on
/// the reader thread and never wait for Raft's writes.
#[derive(Debug, Clone)]
pub struct StateMachine {
    db: Db,
    reader: Reader,
    /// The revision applied so far, for watchers to wait on.
    applied: Arc<watch::Sender<u64>>,
    /// The latest changes, for watchers that keep up.
    recent: Arc<Recent>,
}

impl StateMachine {
    pub(super) fn new(db: Db, reader: Reader, revision: u64) -> Self {
        StateMachine {
            db,
            reader,
            applied: Arc::new(watch::Sender::new(revision)),
            recent: Arc::new(Recent::new(revision)),
        }
    }

    /// Reads one object as this replica has applied it.
    pub async fn get(&self, key: &ObjectKey) -> Result<Option<StoredObject>, StoreError> {
        let key = key.clone();
        self.reader
            .read(move |tx| object::get(tx, &key).sqlite("read an object"))
            .await
    }

    /// A standalone SQLite database holding the state machine as this
    /// replica has applied it, copied as a snapshot is (callers make it
    /// current first, with a linearizable read barrier): a backup.
    pub async fn backup(&self) -> Result<Vec<u8>, StoreError> {
        snapshot::copy(&self.db).await.map(|(_, data)| data)
    }

    /// The revision of the last applied change on this replica.
    pub async fn revision(&self) -> Result<u64, StoreError> {
        self.reader
            .read(|tx| object::revision(tx).sqlite("read the revision"))
            .await
    }

    /// One page of the objects `request` selects, all at one revision (see
    /// [`ListRequest`] and [`ListAt`](super::ListAt)).
    pub async fn list(&self, request: ListRequest) -> Result<ListPage, ReadError> {
        self.reader.read(move |tx| list::list(tx, &request)).await
    }

    /// Starts watching the changes after `request.from`; fails with
    /// [`ReadError::Expired`] if that history is compacted.
    pub async fn watch(&self, request: WatchRequest) -> Result<Watcher, ReadError> {
        let from = request.from;
        self.reader
            .read(move |tx| watches::check_start(tx, from))
            .await?;
        Ok(Watcher::new(
            self.reader.clone(),
            Arc::clone(&self.recent),
            self.applied.subscribe(),
            request,
        ))
    }

    /// A SHA-256 digest of the state machine: equal on replicas that applied
    /// the same requests (see the `hash` module).
    pub async fn state_hash(&self) -> Result<[u8; 32], StoreError> {
        self.reader
            .read(|tx| hash::state_hash(tx).sqlite("hash the state machine"))
            .await
    }

    /// Tells watchers the store is now at `revision`.
    fn notify(&self, revision: u64) {
        self.applied.send_if_modified(|applied| {
            let changed = *applied != revision;
            *applied = revision;
            changed
        });
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        self.db
            .call(|conn| applied_state(conn))
            .await
            .map_err(|e| StorageIOError::read_state_machine(AnyError::new(&e)).into())
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let (responses, revision, log) = self
            .db
            .call(move |conn| apply(conn, entries))
            .await
            .map_err(|e| StorageIOError::write_state_machine(AnyError::new(&e)))?;
        // The window first, so that a watcher told the revision finds it there.
        self.recent.push(log);
        if let Some(compacted) = compacted(&responses) {
            self.recent.compacted(compacted);
        }
        self.notify(revision);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder::new(self.db.clone())
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<std::io::Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(std::io::Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<std::io::Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let revision = snapshot::install(&self.db, meta.clone(), snapshot.into_inner())
            .await
            .map_err(|e| {
                StorageIOError::write_snapshot(Some(meta.signature()), AnyError::new(&e))
            })?;
        tracing::info!(
            snapshot = %meta.snapshot_id,
            revision,
            "installed a snapshot from the leader"
        );
        self.recent.reset(revision);
        self.notify(revision);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        self.db
            .call(snapshot::current)
            .await
            .map_err(|e| StorageIOError::read_snapshot(None, AnyError::new(&e)).into())
    }
}

/// The last applied log position and the last applied membership.
pub(super) fn applied_state(
    conn: &Connection,
) -> Result<(Option<LogId>, StoredMembership), StoreError> {
    let (applied, membership): (Option<Vec<u8>>, Option<Vec<u8>>) = conn
        .query_row(
            "SELECT last_applied, membership FROM sm_state WHERE id = 0",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .sqlite("read the applied state")?;
    let applied = applied
        .map(|b| decode("the last applied log id", &b))
        .transpose()?;
    let membership = membership
        .map(|b| decode("the last membership", &b))
        .transpose()?
        .unwrap_or_default();
    Ok((applied, membership))
}

/// Applies `entries` in one transaction per batch, committed without an
/// fsync of its own (`synchronous=NORMAL` for this commit only).
///
/// That is safe because applying only replays the log: the entries are
/// already durable in the same WAL, and the WAL is a single file synced in
/// order, so the next synced commit (an append, a vote, a purge) makes this
/// one durable too. A power cut before then loses at most the latest
/// applies, which leaves `last_applied` behind the log and openraft applies
/// those entries again at start-up (they are deterministic). It can never
/// leave the state machine ahead of the durable log. Snapshots are saved
/// with full sync, before the log under them is purged.
fn apply(conn: &mut Connection, entries: Vec<Entry>) -> Result<Applied, StoreError> {
    super::log_store::relaxed(conn, |conn| apply_batch(conn, entries))
}

/// The answers to the entries, the revision reached, and the change-log
/// rows written.
type Applied = (Vec<Response>, u64, Vec<LoggedChange>);

/// The highest revision a compaction among `responses` compacted to.
fn compacted(responses: &[Response]) -> Option<u64> {
    responses
        .iter()
        .filter_map(|response| match response {
            Response::Compacted { compacted, .. } => Some(*compacted),
            Response::Batch(inner) => compacted(inner),
            _ => None,
        })
        .max()
}

fn apply_batch(conn: &mut Connection, entries: Vec<Entry>) -> Result<Applied, StoreError> {
    let Some(last) = entries.last().map(|e| e.log_id) else {
        return Ok((
            Vec::new(),
            object::revision(conn).sqlite("read the revision")?,
            Vec::new(),
        ));
    };
    let mut log = Vec::new();
    let mut tx = conn.transaction().sqlite("begin applying entries")?;
    let mut responses = Vec::with_capacity(entries.len());
    let mut membership = None;
    for entry in entries {
        let response = match entry.payload {
            EntryPayload::Normal(request) => {
                object::apply(&mut tx, &request, &mut log).sqlite("apply a request")?
            }
            EntryPayload::Blank => unchanged(&tx)?,
            EntryPayload::Membership(m) => {
                membership = Some(StoredMembership::new(Some(entry.log_id), m));
                unchanged(&tx)?
            }
        };
        responses.push(response);
    }
    let last = encode("the last applied log id", &last)?;
    tx.prepare_cached("UPDATE sm_state SET last_applied = ?1 WHERE id = 0")
        .and_then(|mut stmt| stmt.execute([last]))
        .sqlite("record the last applied entry")?;
    if let Some(membership) = membership {
        tx.execute(
            "UPDATE sm_state SET membership = ?1 WHERE id = 0",
            [encode("the last membership", &membership)?],
        )
        .sqlite("record the membership")?;
    }
    let revision = object::revision(&tx).sqlite("read the revision")?;
    tx.commit().sqlite("commit applied entries")?;
    Ok((responses, revision, log))
}

fn unchanged(conn: &Connection) -> Result<Response, StoreError> {
    Ok(Response::Unchanged {
        revision: object::revision(conn).sqlite("read the revision")?,
    })
}
