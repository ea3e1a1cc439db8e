//! Restoring a backup into the database of a new cluster's first replica.
//!
//! The new database gets the backup's objects and history and no Raft state:
//! the replica that opens it bootstraps a new one-replica cluster, and the
//! others join it. Like `etcdutl snapshot restore --bump-revision
//! --mark-compacted`, the revision jumps ahead by `bump` and everything
//! before it counts as compacted: every revision a client or device saw from
//! the old cluster is then behind the new cluster's, so devices accept its
//! desired states, and watches or lists resumed from an old revision are told
//! to relist instead of silently missing what changed after the backup.

use std::path::Path;

use rusqlite::params;

use super::error::{SqliteContext, StoreError};
use super::schema;
use super::snapshot::{check_attached, copy_tables, temp_path};

/// What a restore produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// The backup's revision.
    pub backup_revision: u64,
    /// The new database's revision (and compacted revision).
    pub revision: u64,
}

/// By how much a restore moves the revision ahead unless told otherwise
/// (etcd's documentation suggests a billion as well).
pub const DEFAULT_REVISION_BUMP: u64 = 1_000_000_000;

/// Creates the database at `db` from `backup` (what
/// [`super::StateMachine::backup`] returned). Refuses to overwrite an
/// existing database; leaves nothing behind on failure.
pub fn restore(db: &Path, backup: &[u8], bump: u64) -> Result<Restored, StoreError> {
    if db.exists() {
        return Err(StoreError::Io {
            action: "restore into a new database, but there is already one at",
            path: db.to_owned(),
            source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        });
    }
    let file = temp_path(db, "restore");
    let result = std::fs::write(&file, backup)
        .map_err(|source| StoreError::Io {
            action: "write the backup to",
            path: file.clone(),
            source,
        })
        .and_then(|()| restore_from(db, &file, bump));
    let _ = std::fs::remove_file(&file);
    if result.is_err() {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = db.as_os_str().to_owned();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
    result
}

fn restore_from(db: &Path, file: &Path, bump: u64) -> Result<Restored, StoreError> {
    let mut conn = schema::open(db)?;
    let path = file.to_str().ok_or_else(|| StoreError::Io {
        action: "use a backup path that is not UTF-8:",
        path: file.to_owned(),
        source: std::io::Error::other("not UTF-8"),
    })?;
    conn.execute("ATTACH DATABASE ?1 AS snap", [path])
        .sqlite("attach the backup")?;
    check_attached(&conn)?;
    let tx = conn.transaction().sqlite("begin the restore")?;
    copy_tables(&tx)?;
    let backup_revision: u64 = tx
        .query_row("SELECT revision FROM sm_state WHERE id = 0", [], |r| {
            r.get(0)
        })
        .sqlite("read the backup's revision")?;
    let revision = backup_revision
        .checked_add(bump)
        .ok_or_else(|| StoreError::BadSnapshot {
            reason: format!("revision {backup_revision} cannot move ahead by {bump}"),
        })?;
    tx.execute(
        "UPDATE sm_state SET revision = ?1, compacted = ?1, last_applied = NULL,
                             membership = NULL
         WHERE id = 0",
        params![revision],
    )
    .sqlite("move the revision ahead")?;
    tx.commit().sqlite("commit the restore")?;
    conn.execute("DETACH DATABASE snap", [])
        .sqlite("detach the backup")?;
    Ok(Restored {
        backup_revision,
        revision,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{TestReplica, pod_value};
    use super::super::*;
    use super::*;

    fn create(name: &str) -> Request {
        Request::Write(Write::Create {
            key: ObjectKey::new("Pod", "default", name),
            value: pod_value(name, &[("app", "web")], "node-1", "Running"),
        })
    }

    #[tokio::test]
    async fn a_restored_database_holds_the_objects_ahead_by_the_bump_and_compacted() {
        let mut source = TestReplica::open();
        source.apply(create("a")).await;
        source.apply(create("b")).await;
        let backup = source.state.backup().await.unwrap();

        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("restored.db");
        let restored = restore(&db, &backup, 1000).unwrap();
        assert_eq!(
            restored,
            Restored {
                backup_revision: 2,
                revision: 1002
            }
        );
        let (_log, state) = open(&db).unwrap();
        assert_eq!(state.revision().await.unwrap(), 1002);
        assert_ne!(
            state.state_hash().await.unwrap(),
            source.state.state_hash().await.unwrap(),
            "the revision moved, so the hash must differ"
        );
        let a = state
            .get(&ObjectKey::new("Pod", "default", "a"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.resource_version, 1);
        let page = state.list(ListRequest::new("Pod")).await.unwrap();
        assert_eq!(page.revision, 1002);
        assert_eq!(page.items.len(), 2);
        // History from before the restore is compacted: relist.
        let old = state
            .list(ListRequest {
                at: ListAt::Revision(2),
                ..ListRequest::new("Pod")
            })
            .await;
        assert!(matches!(old, Err(ReadError::Expired { .. })), "{old:?}");
        let watch = state
            .watch(WatchRequest {
                from: 1,
                kind: None,
                namespace: None,
                labels: Default::default(),
                fields: Default::default(),
            })
            .await;
        assert!(matches!(watch, Err(ReadError::Expired { .. })));
    }

    #[test]
    fn restore_refuses_an_existing_database_and_garbage_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let existing = dir.path().join("existing.db");
        std::fs::write(&existing, b"keep me").unwrap();
        assert!(restore(&existing, b"", 1).is_err());
        assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");

        let db = dir.path().join("new.db");
        let err = restore(&db, b"this is not a database", 1).unwrap_err();
        assert!(!db.exists(), "a failed restore left {}", db.display());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?} ({err})");
    }
}
