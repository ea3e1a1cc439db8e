//! The Raft log, vote and committed position, in the `raft_log` and
//! `raft_meta` tables.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, OptionalSend, RaftLogReader, StorageIOError};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{SqliteContext, StoreError, decode, encode};
use super::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use super::worker::Db;

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

/// openraft's log storage for one replica. Cloning it gives another handle on
/// the same database (it is its own log reader).
#[derive(Debug, Clone)]
pub struct LogStore {
    db: Db,
}

impl LogStore {
    pub(super) fn new(db: Db) -> Self {
        LogStore { db }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = index_range(&range);
        self.db
            .call(move |conn| read_entries(conn, start, end))
            .await
            .map_err(|e| StorageIOError::read_logs(AnyError::new(&e)).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        self.db
            .call(log_state)
            .await
            .map_err(|e| StorageIOError::read_logs(AnyError::new(&e)).into())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = *vote;
        self.db
            .call(move |conn| put_meta(conn, VOTE, &vote))
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.db
            .call(|conn| get_meta(conn, VOTE))
            .await
            .map_err(|e| StorageIOError::read_vote(AnyError::new(&e)).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.db
            .call(move |conn| put_meta(conn, COMMITTED, &committed))
            .await
            .map_err(|e| StorageIOError::write(AnyError::new(&e)).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.db
            .call(|conn| Ok(get_meta::<Option<LogId>>(conn, COMMITTED)?.flatten()))
            .await
            .map_err(|e| StorageIOError::read(AnyError::new(&e)).into())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let rows = entries
            .into_iter()
            .map(|entry| Ok((entry.log_id.index, encode("a log entry", &entry)?)))
            .collect::<Result<Vec<_>, StoreError>>()
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        // Returning before the commit is what openraft asks: later reads queue
        // behind this job on the same thread, so they see the entries, and the
        // callback reports them flushed only once the commit (and its fsync)
        // is done.
        self.db
            .send(move |conn| {
                let result = append_rows(conn, &rows).map_err(io::Error::other);
                callback.log_io_completed(result);
            })
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.db
            .call(move |conn| {
                conn.execute("DELETE FROM raft_log WHERE idx >= ?1", [log_id.index])
                    .sqlite("truncate the log")?;
                Ok(())
            })
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.db
            .call(move |conn| purge(conn, log_id))
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }
}

/// `[start, end)` of a range of indexes; `None` is no upper bound.
fn index_range(range: &impl RangeBounds<u64>) -> (u64, Option<u64>) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.checked_add(1),
        Bound::Excluded(&e) => Some(e),
        Bound::Unbounded => None,
    };
    (start, end)
}

/// SQLite integers are signed: indexes past `i64::MAX` cannot be stored.
fn clamp(index: u64) -> u64 {
    index.min(i64::MAX as u64)
}

fn read_entries(
    conn: &mut Connection,
    start: u64,
    end: Option<u64>,
) -> Result<Vec<Entry>, StoreError> {
    let end = clamp(end.unwrap_or(u64::MAX));
    let start = clamp(start);
    let mut stmt = conn
        .prepare_cached("SELECT entry FROM raft_log WHERE idx >= ?1 AND idx < ?2 ORDER BY idx")
        .sqlite("read log entries")?;
    let rows = stmt
        .query_map([start, end], |row| row.get::<_, Vec<u8>>(0))
        .sqlite("read log entries")?;
    rows.map(|row| decode("a log entry", &row.sqlite("read log entries")?))
        .collect()
}

fn log_state(conn: &mut Connection) -> Result<LogState<TypeConfig>, StoreError> {
    let last_purged_log_id: Option<LogId> = get_meta(conn, LAST_PURGED)?;
    let last: Option<Vec<u8>> = conn
        .query_row(
            "SELECT entry FROM raft_log ORDER BY idx DESC LIMIT 1",
            [],
            |row| row.get(0),
        )
        .optional()
        .sqlite("read the last log entry")?;
    let last_log_id = match last {
        Some(bytes) => Some(decode::<Entry>("a log entry", &bytes)?.log_id),
        None => last_purged_log_id,
    };
    Ok(LogState {
        last_purged_log_id,
        last_log_id,
    })
}

fn append_rows(conn: &mut Connection, rows: &[(u64, Vec<u8>)]) -> Result<(), StoreError> {
    let tx = conn.transaction().sqlite("begin an append")?;
    {
        let mut insert = tx
            .prepare_cached("INSERT OR REPLACE INTO raft_log (idx, entry) VALUES (?1, ?2)")
            .sqlite("append log entries")?;
        for (index, entry) in rows {
            insert
                .execute(params![index, entry])
                .sqlite("append log entries")?;
        }
    }
    tx.commit().sqlite("commit an append")
}

fn purge(conn: &mut Connection, upto: LogId) -> Result<(), StoreError> {
    let tx = conn.transaction().sqlite("begin a purge")?;
    put_meta(&tx, LAST_PURGED, &upto)?;
    tx.execute("DELETE FROM raft_log WHERE idx <= ?1", [upto.index])
        .sqlite("purge the log")?;
    tx.commit().sqlite("commit a purge")
}

fn get_meta<T: DeserializeOwned>(
    conn: &Connection,
    key: &'static str,
) -> Result<Option<T>, StoreError> {
    let bytes: Option<Vec<u8>> = conn
        .query_row("SELECT value FROM raft_meta WHERE key = ?1", [key], |row| {
            row.get(0)
        })
        .optional()
        .sqlite("read raft metadata")?;
    bytes.map(|b| decode(key, &b)).transpose()
}

fn put_meta<T: Serialize>(
    conn: &Connection,
    key: &'static str,
    value: &T,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO raft_meta (key, value) VALUES (?1, ?2)",
        params![key, encode(key, value)?],
    )
    .sqlite("write raft metadata")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_ranges_become_half_open() {
        use Bound::{Excluded, Included, Unbounded};
        let cases = [
            ((Included(3), Excluded(7)), (3, Some(7))),
            ((Included(3), Included(7)), (3, Some(8))),
            ((Included(3), Unbounded), (3, None)),
            ((Unbounded, Unbounded), (0, None)),
            ((Unbounded, Included(u64::MAX)), (0, None)),
            ((Excluded(3), Included(4)), (4, Some(5))),
        ];
        for (range, expected) in cases {
            assert_eq!(index_range(&range), expected, "{range:?}");
        }
    }
}
