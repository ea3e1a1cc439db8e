//! The threads that own the replica's SQLite connections.
//!
//! rusqlite is blocking, and a commit waits for an fsync: running it on the
//! async runtime would stall every task on that worker. One dedicated thread
//! owns the writing connection and runs jobs in the order they were sent,
//! which also gives openraft the ordering it requires (a vote saved before an
//! append is on disk before it; a read sent after an append sees it). The
//! reader ([`super::read`]) is a second such thread over a read-only
//! connection. Async callers get their answer through a oneshot channel.
//!
//! A third thread checkpoints the WAL into the database file in the
//! background ([`checkpoint_in_background`]), so that the writer, which
//! every Raft append and apply waits for, does not stop to do it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::error::{SqliteContext, StoreError};
use super::schema;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// A cloneable handle to a SQLite thread. The thread ends, after running
/// every job already sent, when the last handle is dropped.
#[derive(Debug, Clone)]
pub(super) struct Db {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// Dropping the sender stops the checkpointer.
    checkpointer: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

/// How often the checkpointer copies what the WAL gained into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

impl Db {
    /// Opens the database at `path` and starts its writing thread and its
    /// checkpointer.
    pub(super) fn open(path: &Path) -> Result<Self, StoreError> {
        let mut db = Db::spawn(schema::open(path)?, path, "flotilla-sqlite")?;
        let checkpointer = checkpoint_in_background(path)?;
        if let Some(inner) = Arc::get_mut(&mut db.inner) {
            inner.checkpointer = Some(checkpointer);
        }
        Ok(db)
    }

    /// Starts a thread named `name` that owns `conn`, a connection to `path`.
    pub(super) fn spawn(mut conn: Connection, path: &Path, name: &str) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while let Ok(job) = queue.recv() {
                    job(&mut conn);
                }
            })
            .map_err(|source| StoreError::Io {
                action: "start the sqlite thread for",
                path: path.to_owned(),
                source,
            })?;
        Ok(Db {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                jobs: Some(jobs),
                thread: Some(thread),
                checkpointer: None,
            }),
        })
    }

    /// The database file.
    pub(super) fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Queues `job` without waiting for it: for work that reports back
    /// through its own channel (openraft's flush callback).
    pub(super) fn send(
        &self,
        job: impl FnOnce(&mut Connection) + Send + 'static,
    ) -> Result<(), StoreError> {
        let jobs = self.inner.jobs.as_ref().ok_or(StoreError::ThreadStopped)?;
        jobs.send(Box::new(job))
            .map_err(|_| StoreError::ThreadStopped)
    }

    /// Runs `job` on the SQLite thread and returns its answer.
    pub(super) async fn call<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(move |conn| {
            // The caller may have given up waiting; the work is done anyway.
            let _ = reply.send(job(conn));
        })?;
        answer.await.map_err(|_| StoreError::ThreadStopped)?
    }
}

/// Starts the thread that checkpoints the WAL of the database at `path`
/// every [`CHECKPOINT_EVERY`], with its own connection, in SQLite's PASSIVE
/// mode: it copies what no reader still needs and never blocks the writer
/// or the readers. (SQLite's own automatic checkpoint runs inside the
/// writer's commit; it stays on, at a much larger WAL, as a backstop in case
/// this thread falls behind.) It syncs the database file as the writer
/// would (`synchronous=FULL`) before the WAL is reused.
fn checkpoint_in_background(path: &Path) -> Result<(mpsc::Sender<()>, JoinHandle<()>), StoreError> {
    let conn = Connection::open(path).sqlite("open the checkpointer's connection")?;
    conn.pragma_update(None, "synchronous", "FULL")
        .sqlite("set the checkpointer's synchronous=FULL")?;
    conn.busy_timeout(Duration::from_secs(5))
        .sqlite("set the checkpointer's busy timeout")?;
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = thread::Builder::new()
        .name("flotilla-ckpt".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY)
            {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::debug!(error = %e, "a background checkpoint failed; trying again later");
                }
            }
        })
        .map_err(|source| StoreError::Io {
            action: "start the checkpointer thread for",
            path: path.to_owned(),
            source,
        })?;
    Ok((stop, thread))
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.checkpointer.take() {
            drop(stop);
            let _ = thread.join();
        }
        // Closing the channel lets the thread finish the queued jobs and exit;
        // joining it means the connection is closed when the last handle is gone.
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take()
            && thread.thread().id() != thread::current().id()
        {
            let _ = thread.join();
        }
    }
}
