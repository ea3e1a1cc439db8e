//! The Raft log, vote and committed position, in the `raft_log` and
//! `raft_meta` tables.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
///
/// The newest entries are also kept in memory ([`LogCache`]): the leader's
/// replication reads the entries it has just appended from there, so it
/// sends them to the followers while the local commit is still syncing
/// (as etcd does), instead of waiting behind that fsync on the SQLite
/// thread. The leader still counts itself towards a majority only once its
/// own append is durable (the flush callback).
///
/// Appends are committed in groups: each append joins a queue and asks the
/// SQLite thread to flush it; the first flush to run writes every queued
/// append in one transaction (one fsync) and reports each flushed. While one
/// fsync is in progress the next appends gather, so concurrent writes share
/// fsyncs (openraft itself appends each client write separately).
#[derive(Debug, Clone)]
pub struct LogStore {
    db: Db,
    cache: Arc<Mutex<LogCache>>,
    pending: Arc<Mutex<Vec<PendingAppend>>>,
    stats: Arc<AppendStats>,
    /// The newest committed position not yet written, if a write of it is
    /// queued.
    committed: Arc<Mutex<Option<Option<LogId>>>>,
}

/// Rows of one append and what to call when they are durable.
struct PendingAppend {
    rows: Vec<(u64, Vec<u8>)>,
    done: Box<dyn FnOnce(Result<(), io::Error>) + Send>,
}

impl Debug for PendingAppend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAppend")
            .field("rows", &self.rows.len())
            .finish_non_exhaustive()
    }
}

/// How appends were grouped into commits, since the store opened.
#[derive(Debug, Default)]
pub struct AppendStats {
    appends: AtomicU64,
    commits: AtomicU64,
}

impl AppendStats {
    /// (appends, commits): the first over the second is the group size.
    pub fn get(&self) -> (u64, u64) {
        (
            self.appends.load(Ordering::Relaxed),
            self.commits.load(Ordering::Relaxed),
        )
    }
}

impl LogStore {
    pub(super) fn new(db: Db) -> Self {
        LogStore {
            db,
            cache: Arc::default(),
            pending: Arc::default(),
            stats: Arc::default(),
            committed: Arc::default(),
        }
    }

    /// How appends have been grouped into commits.
    pub fn append_stats(&self) -> Arc<AppendStats> {
        self.stats.clone()
    }

    /// Queues `rows` for the next group commit; `done` is called once they
    /// are durable (or failed).
    fn queue_append(
        &self,
        rows: Vec<(u64, Vec<u8>)>,
        done: Box<dyn FnOnce(Result<(), io::Error>) + Send>,
    ) -> Result<(), StoreError> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(PendingAppend { rows, done });
        let pending = self.pending.clone();
        let stats = self.stats.clone();
        self.db
            .send(move |conn| flush_pending(conn, &pending, &stats))
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, LogCache> {
        // The cache holds no invariant a panic elsewhere could break.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The newest log entries, a contiguous run ending at the last appended
/// entry (empty after a restart until the next append).
#[derive(Debug, Default)]
struct LogCache {
    entries: BTreeMap<u64, Entry>,
}

/// How many of the newest entries stay in memory.
const CACHED_ENTRIES: usize = 4096;

impl LogCache {
    /// The entries in `[start, end)` if the cache holds all of them that
    /// exist (the cache ends at the newest entry, so nothing lies beyond).
    fn get(&self, start: u64, end: Option<u64>) -> Option<Vec<Entry>> {
        let first = *self.entries.keys().next()?;
        if start < first {
            return None;
        }
        let range = match end {
            Some(end) if end <= start => return Some(Vec::new()),
            Some(end) => self.entries.range(start..end),
            None => self.entries.range(start..),
        };
        Some(range.map(|(_, e)| e.clone()).collect())
    }

    fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        // An append that does not continue the cached run starts a new one.
        let last = self.entries.keys().next_back().copied();
        if last.is_some_and(|last| first.log_id.index != last + 1) {
            self.entries.clear();
        }
        for entry in entries {
            self.entries.insert(entry.log_id.index, entry.clone());
        }
        while self.entries.len() > CACHED_ENTRIES {
            self.entries.pop_first();
        }
    }

    /// Forgets entries at and after `index` (truncation).
    fn truncate(&mut self, index: u64) {
        self.entries.split_off(&index);
    }

    /// Forgets entries up to and including `index` (purge).
    fn purge(&mut self, index: u64) {
        self.entries = self.entries.split_off(&(index.saturating_add(1)));
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = index_range(&range);
        if let Some(entries) = self.cache().get(start, end) {
            return Ok(entries);
        }
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
        // openraft calls this on every commit, from its core loop, and only
        // uses the value at start-up to apply what is known committed sooner;
        // losing the latest one in a crash is harmless (the leader tells the
        // replica again). So it is queued, not awaited, written without an
        // fsync of its own, and only the newest value is written when several
        // are waiting: awaiting it serialised every commit behind the SQLite
        // thread. Later reads on that thread still see it.
        let first = self
            .committed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(committed)
            .is_none();
        if !first {
            return Ok(());
        }
        let latest = self.committed.clone();
        self.db
            .send(move |conn| {
                let Some(committed) = latest.lock().unwrap_or_else(|e| e.into_inner()).take()
                else {
                    return;
                };
                let saved = relaxed(conn, |conn| put_meta(conn, COMMITTED, &committed));
                if let Err(e) = saved {
                    tracing::warn!(error = %e, "could not record the committed log position");
                }
            })
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
        let entries: Vec<Entry> = entries.into_iter().collect();
        self.cache().append(&entries);
        let rows = entries
            .iter()
            .map(|entry| Ok((entry.log_id.index, encode("a log entry", entry)?)))
            .collect::<Result<Vec<_>, StoreError>>()
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        // Returning before the commit is what openraft asks: later reads find
        // the entries in the cache or queue behind this job on the same
        // thread, and the callback reports them flushed only once the commit
        // (and its fsync) is done.
        self.queue_append(
            rows,
            Box::new(move |result| callback.log_io_completed(result)),
        )
        .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.cache().truncate(log_id.index);
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
        self.cache().purge(log_id.index);
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

/// Writes every queued append in one transaction and reports each. A flush
/// that finds the queue empty (an earlier one took its rows) does nothing.
fn flush_pending(conn: &mut Connection, pending: &Mutex<Vec<PendingAppend>>, stats: &AppendStats) {
    let batch = std::mem::take(&mut *pending.lock().unwrap_or_else(|e| e.into_inner()));
    if batch.is_empty() {
        return;
    }
    let rows: Vec<&(u64, Vec<u8>)> = batch.iter().flat_map(|p| &p.rows).collect();
    let result = append_rows(conn, rows);
    stats
        .appends
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    stats.commits.fetch_add(1, Ordering::Relaxed);
    for append in batch {
        let result = match &result {
            Ok(()) => Ok(()),
            Err(e) => Err(io::Error::other(e.to_string())),
        };
        (append.done)(result);
    }
}

fn append_rows<'a>(
    conn: &mut Connection,
    rows: impl IntoIterator<Item = &'a (u64, Vec<u8>)>,
) -> Result<(), StoreError> {
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

/// Runs `write` with `synchronous=NORMAL`: its commit is not fsynced, but
/// the next synced commit in the same WAL makes it durable.
pub(super) fn relaxed<T>(
    conn: &mut Connection,
    write: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.pragma_update(None, "synchronous", "NORMAL")
        .sqlite("relax sync")?;
    let result = write(conn);
    conn.pragma_update(None, "synchronous", "FULL")
        .sqlite("restore synchronous=FULL")?;
    result
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
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn entries(indexes: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
        indexes
            .map(|i| Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), i),
                payload: EntryPayload::Blank,
            })
            .collect()
    }

    fn indexes(found: Option<Vec<Entry>>) -> Option<Vec<u64>> {
        found.map(|e| e.iter().map(|e| e.log_id.index).collect())
    }

    #[test]
    fn the_log_cache_answers_only_ranges_it_holds_whole() {
        let mut cache = LogCache::default();
        assert_eq!(indexes(cache.get(1, None)), None, "empty after a restart");
        cache.append(&entries(5..=9));
        assert_eq!(indexes(cache.get(5, Some(8))), Some(vec![5, 6, 7]));
        assert_eq!(indexes(cache.get(8, None)), Some(vec![8, 9]));
        assert_eq!(
            indexes(cache.get(10, None)),
            Some(vec![]),
            "nothing beyond the newest"
        );
        assert_eq!(
            indexes(cache.get(4, Some(6))),
            None,
            "4 is only in the database"
        );
        cache.truncate(7);
        assert_eq!(indexes(cache.get(5, None)), Some(vec![5, 6]));
        cache.append(&entries(7..=8));
        assert_eq!(indexes(cache.get(6, None)), Some(vec![6, 7, 8]));
        cache.purge(6);
        assert_eq!(indexes(cache.get(6, None)), None);
        assert_eq!(indexes(cache.get(7, None)), Some(vec![7, 8]));
        // A gap (after a snapshot install) starts a new run.
        cache.append(&entries(20..=21));
        assert_eq!(indexes(cache.get(8, None)), None);
        assert_eq!(indexes(cache.get(20, None)), Some(vec![20, 21]));
    }

    #[tokio::test]
    async fn appends_queued_during_a_commit_share_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("replica.db")).unwrap();
        let store = LogStore::new(db.clone());
        // Hold the SQLite thread, as a long fsync would.
        let (release, held) = std::sync::mpsc::channel::<()>();
        db.send(move |_| {
            let _ = held.recv();
        })
        .unwrap();
        let (done, flushed) = std::sync::mpsc::channel();
        for index in 1..=10u64 {
            let done = done.clone();
            store
                .queue_append(
                    vec![(index, vec![index as u8])],
                    Box::new(move |result| done.send((index, result.is_ok())).unwrap()),
                )
                .unwrap();
        }
        release.send(()).unwrap();
        let mut reported: Vec<(u64, bool)> = (0..10)
            .map(|_| {
                flushed
                    .recv_timeout(std::time::Duration::from_secs(10))
                    .unwrap()
            })
            .collect();
        reported.sort();
        assert_eq!(reported, (1..=10).map(|i| (i, true)).collect::<Vec<_>>());
        assert_eq!(
            store.append_stats().get(),
            (10, 1),
            "ten appends, one commit"
        );
        let rows: u64 = db
            .call(|conn| {
                conn.query_row("SELECT count(*) FROM raft_log", [], |r| r.get(0))
                    .sqlite("count")
            })
            .await
            .unwrap();
        assert_eq!(rows, 10);
    }

    #[test]
    fn the_log_cache_keeps_only_the_newest_entries() {
        let mut cache = LogCache::default();
        let n = CACHED_ENTRIES as u64 + 10;
        cache.append(&entries(1..=n));
        assert_eq!(indexes(cache.get(10, Some(12))), None);
        assert_eq!(indexes(cache.get(n, None)), Some(vec![n]));
        assert_eq!(cache.entries.len(), CACHED_ENTRIES);
    }

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
