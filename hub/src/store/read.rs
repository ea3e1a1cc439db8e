//! The reader: a second SQLite thread with its own read-only connection.
//!
//! Every read of the object store (get, list, watch, the state hash) runs
//! here, so reads never queue behind Raft appends and their fsyncs on the
//! writing thread. In WAL mode a reader sees the last committed state and is
//! not blocked by the writer's transaction; each read job runs in one read
//! transaction, so everything it reads is at one revision. A read sent after
//! a write has committed (after `apply` returned) sees that write.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction};
use tokio::sync::oneshot;

use super::error::{SqliteContext, StoreError};
use super::object;
use super::worker::Db;

/// Why a list or a watch could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The history at `requested` is compacted: list again at the current
    /// revision and watch from there (Kubernetes' 410 Gone).
    #[error("revision {requested} is compacted: the oldest available revision is {compacted}")]
    Expired { requested: u64, compacted: u64 },
    /// This replica has not applied `requested` yet: retry later or ask a
    /// replica that is further along.
    #[error("revision {requested} is ahead of this replica's revision {current}")]
    FutureRevision { requested: u64, current: u64 },
    /// Every handle on the state machine is gone: the watch cannot go on.
    #[error("the store was closed")]
    Closed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for ReadError {
    fn from(source: rusqlite::Error) -> Self {
        ReadError::Store(StoreError::Sqlite {
            action: "read the object store",
            source,
        })
    }
}

impl From<rusqlite::types::FromSqlError> for ReadError {
    fn from(source: rusqlite::types::FromSqlError) -> Self {
        rusqlite::Error::from(source).into()
    }
}

/// A handle to the reading thread. Cloning it shares the thread.
#[derive(Debug, Clone)]
pub(super) struct Reader {
    db: Db,
}

impl Reader {
    /// Opens a read-only connection to `path` (which the writer has already
    /// created and set up) and starts its thread. Also answers the revision
    /// the store is at, to start the applied-revision notifications from.
    pub(super) fn open(path: &Path) -> Result<(Self, u64), StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .sqlite("open the read-only connection")?;
        // A WAL reader waits only in rare cases (the WAL being reset or
        // recovered); wait then rather than fail the read.
        conn.busy_timeout(Duration::from_secs(5))
            .sqlite("set the reader's busy timeout")?;
        let revision = object::revision(&conn).sqlite("read the revision")?;
        let db = Db::spawn(conn, path, "flotilla-sqlite-read")?;
        Ok((Reader { db }, revision))
    }

    /// Runs `job` in one read transaction on the reading thread.
    pub(super) async fn read<T, E>(
        &self,
        job: impl FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.db.send(move |conn| {
            let read = || {
                let tx = conn
                    .transaction()
                    .sqlite("begin a read transaction")
                    .map_err(E::from)?;
                let answer = job(&tx)?;
                tx.commit()
                    .sqlite("end a read transaction")
                    .map_err(E::from)?;
                Ok(answer)
            };
            // The caller may have given up waiting (a dropped watch future).
            let _ = reply.send(read());
        })?;
        answer.await.map_err(|_| StoreError::ThreadStopped)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_reader_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let _writer = Db::open(&path).unwrap();
        let (reader, revision) = Reader::open(&path).unwrap();
        assert_eq!(revision, 0);
        let refused = reader
            .read(|tx| {
                tx.execute("UPDATE sm_state SET revision = 9", [])
                    .sqlite("write through the reader")
            })
            .await;
        let code = match &refused {
            Err(StoreError::Sqlite { source, .. }) => source.sqlite_error_code(),
            _ => None,
        };
        assert_eq!(code, Some(rusqlite::ErrorCode::ReadOnly), "{refused:?}");
    }

    #[tokio::test]
    async fn a_read_is_not_blocked_by_an_open_write_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let writer = Db::open(&path).unwrap();
        let (reader, _) = Reader::open(&path).unwrap();
        // Hold a write transaction open on the writing thread until the read
        // below has answered.
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (started, start) = tokio::sync::oneshot::channel();
        writer
            .send(move |conn| {
                let tx = conn.transaction().unwrap();
                tx.execute("UPDATE sm_state SET revision = 7", []).unwrap();
                started.send(()).unwrap();
                released.recv().unwrap();
                tx.commit().unwrap();
            })
            .unwrap();
        start.await.unwrap();
        let seen = reader
            .read(|tx| object::revision(tx).sqlite("read the revision"))
            .await
            .unwrap();
        assert_eq!(seen, 0, "the uncommitted write is not visible");
        release.send(()).unwrap();
        let seen = writer
            .call(|conn| object::revision(conn).sqlite("read the revision"))
            .await
            .unwrap();
        assert_eq!(seen, 7);
        let seen = reader
            .read(|tx| object::revision(tx).sqlite("read the revision"))
            .await
            .unwrap();
        assert_eq!(seen, 7, "a read after the commit sees it");
    }
}
