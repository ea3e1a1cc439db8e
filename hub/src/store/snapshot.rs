//! Snapshots: the state machine tables as a standalone SQLite database file.
//!
//! Building one copies the live database with `VACUUM INTO` from a separate
//! read connection on its own thread (one WAL read transaction, so the copy
//! is consistent and the writer is not held up), drops the Raft tables from
//! the copy and compacts it. Installing one attaches the received file and
//! replaces the state machine tables in one transaction, so a crash leaves
//! either the old state or the new one. The current snapshot is kept in the
//! `snapshot` table so that it survives restarts.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openraft::{AnyError, RaftSnapshotBuilder, StorageIOError};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use super::error::{SqliteContext, StoreError, decode, encode};
use super::schema::SCHEMA_VERSION;
use super::state_machine::applied_state;
use super::types::{Snapshot, SnapshotMeta, StorageError, TypeConfig};
use super::worker::Db;

/// Builds snapshots of one replica's state machine.
#[derive(Debug)]
pub struct SnapshotBuilder {
    db: Db,
}

impl SnapshotBuilder {
    pub(super) fn new(db: Db) -> Self {
        SnapshotBuilder { db }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        build(&self.db)
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, AnyError::new(&e)).into())
    }
}

/// A path beside the database for a temporary snapshot file.
pub(super) fn temp_path(db: &Path, purpose: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{purpose}-{}-{n}", std::process::id()));
    db.with_file_name(name)
}

async fn build(db: &Db) -> Result<Snapshot, StoreError> {
    let (meta, data) = copy(db).await?;
    let snapshot = Snapshot {
        meta: meta.clone(),
        snapshot: Box::new(Cursor::new(data.clone())),
    };
    db.call(move |conn| save_current(conn, &meta, &data))
        .await?;
    Ok(snapshot)
}

/// Copies the state machine on a thread of its own (not the writer's).
pub(super) async fn copy(db: &Db) -> Result<(SnapshotMeta, Vec<u8>), StoreError> {
    let source = db.path().to_owned();
    let (reply, answer) = oneshot::channel();
    std::thread::Builder::new()
        .name("flotilla-snapshot".into())
        .spawn(move || {
            let _ = reply.send(copy_state_machine(&source));
        })
        .map_err(|source| StoreError::Io {
            action: "start the snapshot thread for",
            path: db.path().to_owned(),
            source,
        })?;
    answer.await.map_err(|_| StoreError::ThreadStopped)?
}

/// Copies the state machine tables of the database at `source` into a
/// standalone database file and returns its metadata and bytes.
fn copy_state_machine(source: &Path) -> Result<(SnapshotMeta, Vec<u8>), StoreError> {
    let temp = temp_path(source, "snapshot-build");
    let result = (|| {
        let reader = Connection::open(source).sqlite("open a snapshot reader")?;
        reader
            .busy_timeout(Duration::from_secs(10))
            .sqlite("set the snapshot reader's busy timeout")?;
        let target = temp.to_str().ok_or_else(|| StoreError::Io {
            action: "use a snapshot path that is not UTF-8:",
            path: temp.clone(),
            source: std::io::Error::other("not UTF-8"),
        })?;
        reader
            .execute("VACUUM INTO ?1", [target])
            .sqlite("copy the database with VACUUM INTO")?;
        drop(reader);

        let copy = Connection::open(&temp).sqlite("open the snapshot copy")?;
        copy.execute_batch(
            "PRAGMA journal_mode = DELETE;
             DROP TABLE raft_log; DROP TABLE raft_meta; DROP TABLE snapshot;
             VACUUM;",
        )
        .sqlite("strip the Raft tables from the snapshot copy")?;
        let (last_log_id, last_membership) = applied_state(&copy)?;
        let revision: u64 = copy
            .query_row("SELECT revision FROM sm_state WHERE id = 0", [], |r| {
                r.get(0)
            })
            .sqlite("read the snapshot's revision")?;
        drop(copy);

        let data = std::fs::read(&temp).map_err(|source| StoreError::Io {
            action: "read the snapshot copy",
            path: temp.clone(),
            source,
        })?;
        let snapshot_id = match last_log_id {
            Some(id) => format!(
                "{}-{}-{}-r{revision}",
                id.leader_id.term, id.leader_id.node_id, id.index
            ),
            None => format!("empty-r{revision}"),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        Ok((meta, data))
    })();
    let _ = std::fs::remove_file(&temp);
    result
}

fn save_current(conn: &Connection, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO snapshot (id, meta, data) VALUES (0, ?1, ?2)",
        params![encode("snapshot metadata", meta)?, data],
    )
    .sqlite("save the current snapshot")?;
    Ok(())
}

/// The last snapshot built or installed, if any.
pub(super) fn current(conn: &mut Connection) -> Result<Option<Snapshot>, StoreError> {
    let row: Option<(Vec<u8>, Vec<u8>)> = conn
        .query_row("SELECT meta, data FROM snapshot WHERE id = 0", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()
        .sqlite("read the current snapshot")?;
    row.map(|(meta, data)| {
        Ok(Snapshot {
            meta: decode("snapshot metadata", &meta)?,
            snapshot: Box::new(Cursor::new(data)),
        })
    })
    .transpose()
}

/// Replaces the state machine with the snapshot `data` received from the
/// leader, and makes it the current snapshot. Answers the revision the store
/// is at afterwards.
pub(super) async fn install(db: &Db, meta: SnapshotMeta, data: Vec<u8>) -> Result<u64, StoreError> {
    let temp = temp_path(db.path(), "snapshot-install");
    db.call(move |conn| {
        let result = std::fs::write(&temp, &data)
            .map_err(|source| StoreError::Io {
                action: "write the received snapshot to",
                path: temp.clone(),
                source,
            })
            .and_then(|()| install_from(conn, &temp, &meta, &data));
        let _ = std::fs::remove_file(&temp);
        result
    })
    .await
}

fn install_from(
    conn: &mut Connection,
    file: &Path,
    meta: &SnapshotMeta,
    data: &[u8],
) -> Result<u64, StoreError> {
    let path = file.to_str().ok_or_else(|| StoreError::Io {
        action: "use a snapshot path that is not UTF-8:",
        path: file.to_owned(),
        source: std::io::Error::other("not UTF-8"),
    })?;
    conn.execute("ATTACH DATABASE ?1 AS snap", [path])
        .sqlite("attach the received snapshot")?;
    let result = check_attached(conn).and_then(|()| replace_state_machine(conn, meta, data));
    let detached = conn
        .execute("DETACH DATABASE snap", [])
        .sqlite("detach the received snapshot");
    result.and(detached.map(|_| ()))?;
    super::object::revision(conn).sqlite("read the installed revision")
}

pub(super) fn check_attached(conn: &Connection) -> Result<(), StoreError> {
    let bad = |reason: String| StoreError::BadSnapshot { reason };
    let check: String = conn
        .query_row("PRAGMA snap.quick_check", [], |r| r.get(0))
        .map_err(|e| bad(e.to_string()))?;
    if check != "ok" {
        return Err(bad(format!("quick_check says {check}")));
    }
    let version: i64 = conn
        .query_row("PRAGMA snap.user_version", [], |r| r.get(0))
        .map_err(|e| bad(e.to_string()))?;
    if version != SCHEMA_VERSION {
        return Err(bad(format!(
            "schema version {version}, expected {SCHEMA_VERSION}"
        )));
    }
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM snap.sqlite_master
             WHERE type = 'table' AND name IN ('sm_state', 'objects', 'changes')",
            [],
            |r| r.get(0),
        )
        .map_err(|e| bad(e.to_string()))?;
    if tables != 3 {
        return Err(bad("state machine tables missing".into()));
    }
    Ok(())
}

fn replace_state_machine(
    conn: &mut Connection,
    meta: &SnapshotMeta,
    data: &[u8],
) -> Result<(), StoreError> {
    let tx = conn.transaction().sqlite("begin installing a snapshot")?;
    copy_tables(&tx)?;
    tx.execute(
        "UPDATE main.sm_state SET last_applied = ?1, membership = ?2 WHERE id = 0",
        params![
            meta.last_log_id
                .map(|id| encode("the last applied log id", &id))
                .transpose()?,
            encode("the last membership", &meta.last_membership)?,
        ],
    )
    .sqlite("record the snapshot's applied state")?;
    save_current(&tx, meta, data)?;
    tx.commit().sqlite("commit the installed snapshot")
}

/// Replaces the state machine tables of `main` with those of the attached
/// database `snap` (inside the caller's transaction).
pub(super) fn copy_tables(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "DELETE FROM main.objects;
         INSERT INTO main.objects (kind, namespace, name, value, create_revision, mod_revision,
                                   labels, node_name)
             SELECT kind, namespace, name, value, create_revision, mod_revision,
                    labels, node_name
             FROM snap.objects;
         DELETE FROM main.changes;
         INSERT INTO main.changes (revision, seq, kind, namespace, name, op, value, prev_value,
                                   create_revision, labels, node_name)
             SELECT revision, seq, kind, namespace, name, op, value, prev_value,
                    create_revision, labels, node_name
             FROM snap.changes;
         UPDATE main.sm_state
             SET revision = (SELECT revision FROM snap.sm_state WHERE id = 0),
                 compacted = (SELECT compacted FROM snap.sm_state WHERE id = 0)
             WHERE id = 0;",
    )
    .sqlite("copy the snapshot's tables")?;
    Ok(())
}
