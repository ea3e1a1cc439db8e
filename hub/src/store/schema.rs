//! Opening a replica's database: connection settings and tables.
//!
//! # Durability settings
//!
//! - `journal_mode=WAL`: a commit appends to the write-ahead log instead of
//!   rewriting pages, and readers (snapshot builds) do not block the writer.
//! - `synchronous=FULL`: in WAL mode SQLite then fsyncs the WAL at every
//!   commit, so a committed transaction survives power loss. With `NORMAL` the
//!   WAL is synced only at checkpoints: the database stays consistent but the
//!   last commits can vanish after a power cut. Raft cannot accept that: an
//!   appended entry or a vote that is acknowledged and then forgotten lets a
//!   replica vote twice in one term or lose an entry a majority counted on.
//!   The one exception is applying committed entries to the state machine:
//!   those commits skip their fsync, since the entries are already durable in
//!   the log and are applied again after a crash (see `state_machine::apply`).
//!   A replicated write therefore costs one fsync per replica, shared by every
//!   write in the same append batch (group commit).
//! - The log store reports an append as flushed (openraft's `LogFlushed`
//!   callback) only after the transaction holding it has committed under
//!   these settings, so openraft counts this replica towards a majority only
//!   for entries that are on disk.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::error::{SqliteContext, StoreError};

/// Bumped whenever the tables below change shape.
pub(super) const SCHEMA_VERSION: i64 = 1;

/// Tables of one replica. The state machine tables (`sm_state`, `objects`,
/// `changes`) are exactly what a snapshot carries.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS raft_meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS raft_log (
    idx   INTEGER PRIMARY KEY,
    entry BLOB NOT NULL
);

CREATE TABLE IF NOT EXISTS sm_state (
    id           INTEGER PRIMARY KEY CHECK (id = 0),
    revision     INTEGER NOT NULL,
    compacted    INTEGER NOT NULL,
    last_applied BLOB,
    membership   BLOB
);
INSERT OR IGNORE INTO sm_state (id, revision, compacted) VALUES (0, 0, 0);

-- `labels` (the JSON text of metadata.labels, `{}` when none) and
-- `node_name` (spec.nodeName, '' when none) are extracted from `value` at
-- write time, so lists filter on them without parsing every object.
CREATE TABLE IF NOT EXISTS objects (
    kind            TEXT NOT NULL,
    namespace       TEXT NOT NULL,
    name            TEXT NOT NULL,
    value           BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    mod_revision    INTEGER NOT NULL,
    labels          TEXT NOT NULL,
    node_name       TEXT NOT NULL,
    PRIMARY KEY (kind, namespace, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS objects_by_node ON objects (kind, node_name, namespace, name);

-- The history of every object: one row per write, in (revision, seq) order.
-- `value` is the value written (for a delete, the last value) and
-- `prev_value` the value before (NULL for a create or a delete), so a watch
-- with a selector sees an object start or stop matching. `labels` and
-- `node_name` are those of `value`. Compaction keeps, for every revision at
-- or above the compacted one, the newest row of each live key.
CREATE TABLE IF NOT EXISTS changes (
    revision        INTEGER NOT NULL,
    seq             INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    namespace       TEXT NOT NULL,
    name            TEXT NOT NULL,
    op              TEXT NOT NULL CHECK (op IN ('create', 'update', 'delete')),
    value           BLOB NOT NULL,
    prev_value      BLOB,
    create_revision INTEGER NOT NULL,
    labels          TEXT NOT NULL,
    node_name       TEXT NOT NULL,
    PRIMARY KEY (revision, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS changes_by_key ON changes (kind, namespace, name, revision, seq);

CREATE TABLE IF NOT EXISTS snapshot (
    id   INTEGER PRIMARY KEY CHECK (id = 0),
    meta BLOB NOT NULL,
    data BLOB NOT NULL
);
";

/// Opens (creating if needed) the database at `path` with the durability
/// settings above.
pub(super) fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).sqlite("open the database")?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .sqlite("switch to WAL mode")?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::JournalMode { mode });
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .sqlite("set synchronous=FULL")?;
    // A checkpoint copies the WAL into the database file and syncs it. The
    // store's checkpointer thread does that in the background (see
    // `worker`); the automatic checkpoint inside the writer's commits is
    // only a backstop, at 65536 pages (256 MB of WAL), for when that thread
    // falls behind: at SQLite's default (every 1000 pages) a busy hub
    // stopped its writer to checkpoint many times a second.
    conn.pragma_update(None, "wal_autocheckpoint", 65536)
        .sqlite("set the checkpoint interval")?;
    conn.pragma_update(None, "cache_size", -32768)
        .sqlite("set the page cache size")?;
    // Only another process (a backup tool) can hold the write lock; wait for
    // it rather than failing a Raft write at once.
    conn.busy_timeout(Duration::from_secs(5))
        .sqlite("set the busy timeout")?;
    init(&conn)?;
    Ok(conn)
}

/// Creates the tables if missing and checks the schema version.
pub(super) fn init(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .sqlite("read the schema version")?;
    match version {
        0 => {
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .sqlite("create the tables")?;
            Ok(())
        }
        SCHEMA_VERSION => Ok(()),
        found => Err(StoreError::SchemaVersion {
            found,
            expected: SCHEMA_VERSION,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_sets_wal_and_full_sync() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("db")).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "2 is FULL");
    }

    #[test]
    fn reopening_keeps_the_schema_and_refuses_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        drop(open(&path).unwrap());
        let conn = open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        assert!(matches!(
            open(&path),
            Err(StoreError::SchemaVersion { found: 2, .. })
        ));
    }
}
