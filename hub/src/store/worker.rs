//! The threads that own the replica's SQLite connections.
//!
//! rusqlite is blocking, and a commit waits for an fsync: running it on the
//! async runtime would stall every task on that worker. One dedicated thread
//! owns the writing connection and runs jobs in the order they were sent,
//! which also gives openraft the ordering it requires (a vote saved before an
//! append is on disk before it; a read sent after an append sees it). The
//! reader ([`super::read`]) is a second such thread over a read-only
//! connection. Async callers get their answer through a oneshot channel.

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread::{self, JoinHandle};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::error::StoreError;
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
}

impl Db {
    /// Opens the database at `path` and starts its writing thread.
    pub(super) fn open(path: &Path) -> Result<Self, StoreError> {
        Db::spawn(schema::open(path)?, path, "flotilla-sqlite")
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

impl Drop for Inner {
    fn drop(&mut self) {
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
