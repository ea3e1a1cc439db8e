//! The state machine: applies committed entries to the object store, in the
//! same database as the log.

use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, OptionalSend, StorageIOError};
use rusqlite::Connection;

use super::error::{SqliteContext, StoreError, decode, encode};
use super::object::{self, ObjectKey, Response, StoredObject};
use super::snapshot::{self, SnapshotBuilder};
use super::types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use super::worker::Db;

/// openraft's state machine for one replica. Cloning it gives another handle
/// on the same database, for reads beside Raft.
#[derive(Debug, Clone)]
pub struct StateMachine {
    db: Db,
}

impl StateMachine {
    pub(super) fn new(db: Db) -> Self {
        StateMachine { db }
    }

    /// Reads one object as this replica has applied it (a local read: it may
    /// lag the leader).
    pub async fn get(&self, key: &ObjectKey) -> Result<Option<StoredObject>, StoreError> {
        let key = key.clone();
        self.db
            .call(move |conn| object::get(conn, &key).sqlite("read an object"))
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
        self.db
            .call(|conn| object::revision(conn).sqlite("read the revision"))
            .await
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
        self.db
            .call(move |conn| apply(conn, entries))
            .await
            .map_err(|e| StorageIOError::write_state_machine(AnyError::new(&e)).into())
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
        snapshot::install(&self.db, meta.clone(), snapshot.into_inner())
            .await
            .map_err(|e| {
                StorageIOError::write_snapshot(Some(meta.signature()), AnyError::new(&e)).into()
            })
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

/// Applies `entries` in one transaction: one commit (one fsync) per batch.
fn apply(conn: &mut Connection, entries: Vec<Entry>) -> Result<Vec<Response>, StoreError> {
    let Some(last) = entries.last().map(|e| e.log_id) else {
        return Ok(Vec::new());
    };
    let mut tx = conn.transaction().sqlite("begin applying entries")?;
    let mut responses = Vec::with_capacity(entries.len());
    let mut membership = None;
    for entry in entries {
        let response = match entry.payload {
            EntryPayload::Normal(request) => {
                object::apply(&mut tx, &request).sqlite("apply a request")?
            }
            EntryPayload::Blank => unchanged(&tx)?,
            EntryPayload::Membership(m) => {
                membership = Some(StoredMembership::new(Some(entry.log_id), m));
                unchanged(&tx)?
            }
        };
        responses.push(response);
    }
    tx.execute(
        "UPDATE sm_state SET last_applied = ?1 WHERE id = 0",
        [encode("the last applied log id", &last)?],
    )
    .sqlite("record the last applied entry")?;
    if let Some(membership) = membership {
        tx.execute(
            "UPDATE sm_state SET membership = ?1 WHERE id = 0",
            [encode("the last membership", &membership)?],
        )
        .sqlite("record the membership")?;
    }
    tx.commit().sqlite("commit applied entries")?;
    Ok(responses)
}

fn unchanged(conn: &Connection) -> Result<Response, StoreError> {
    Ok(Response::Unchanged {
        revision: object::revision(conn).sqlite("read the revision")?,
    })
}
