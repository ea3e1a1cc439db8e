//! A store client: sends requests to one replica of a list and moves to the
//! next when that one cannot be reached. Replicas forward writes to their
//! leader themselves, so any reachable replica will do.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::store::{ObjectKey, Request, Response, StoredObject};

use super::peers::{CallError, Dialer, Peers};
use super::rpc::{Consistency, Failure, Reply, Rpc, Status};

/// Why a client request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No replica of the list could be reached: nothing was done.
    #[error("no replica reachable (last: {last})")]
    Unreachable { last: CallError },
    /// The connection broke while the request was in flight: it may or may
    /// not have been carried out.
    #[error("outcome unknown")]
    Unknown(#[source] CallError),
    /// A replica answered that it could not do it.
    #[error(transparent)]
    Failed(#[from] Failure),
    /// A replica answered something that makes no sense for the request.
    #[error("unexpected answer {0}")]
    Unexpected(String),
}

/// A client of the replicas at `addrs`.
#[derive(Debug)]
pub struct Client {
    addrs: Vec<String>,
    /// Index into `addrs` of the replica in use.
    current: AtomicUsize,
    peers: Peers,
    timeout: Duration,
}

impl Client {
    /// A client of the replicas at `addrs` (`host:port`), connecting with
    /// `dialer`'s certificate. Requests wait at most `timeout` for an answer.
    pub fn new(addrs: Vec<String>, dialer: Dialer, timeout: Duration) -> Self {
        Client {
            addrs,
            current: AtomicUsize::new(0),
            peers: Peers::new(dialer),
            timeout,
        }
    }

    /// Sends `rpc` to the replica in use, moving along the list while
    /// replicas cannot be reached or have no leader.
    pub async fn call(&self, rpc: &Rpc) -> Result<Reply, ClientError> {
        let start = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for attempt in 0..self.addrs.len() {
            let index = (start + attempt) % self.addrs.len();
            let addr = &self.addrs[index];
            match self.peers.call(addr, rpc, self.timeout).await {
                Ok(Reply::Failed(Failure::NotLeader { .. })) if attempt + 1 < self.addrs.len() => {
                    continue;
                }
                Ok(reply) => {
                    self.current.store(index, Ordering::Relaxed);
                    return Ok(reply);
                }
                Err(e) if e.not_delivered() || rpc.is_idempotent() => last = Some(e),
                Err(e) => {
                    // The next request starts at the next replica.
                    self.current
                        .store((index + 1) % self.addrs.len(), Ordering::Relaxed);
                    return Err(ClientError::Unknown(e));
                }
            }
        }
        match last {
            Some(last) => {
                self.current
                    .store((start + 1) % self.addrs.len().max(1), Ordering::Relaxed);
                Err(ClientError::Unreachable { last })
            }
            None => Err(ClientError::Failed(Failure::NotLeader { leader: None })),
        }
    }

    /// Commits `request`.
    pub async fn write(&self, request: Request) -> Result<Response, ClientError> {
        match self
            .call(&Rpc::Write {
                request,
                forwarded: false,
            })
            .await?
        {
            Reply::Write(response) => Ok(response),
            other => Err(unexpected(other)),
        }
    }

    /// Reads one object.
    pub async fn get(
        &self,
        key: ObjectKey,
        consistency: Consistency,
    ) -> Result<Option<StoredObject>, ClientError> {
        match self.call(&Rpc::Get { key, consistency }).await? {
            Reply::Get(object) => Ok(object),
            other => Err(unexpected(other)),
        }
    }

    /// The status of the replica in use.
    pub async fn status(&self) -> Result<Status, ClientError> {
        match self.call(&Rpc::Status).await? {
            Reply::Status(status) => Ok(status),
            other => Err(unexpected(other)),
        }
    }

    /// The status of the replica at `addr` exactly.
    pub async fn status_of(&self, addr: &str) -> Result<Status, ClientError> {
        match self.peers.call(addr, &Rpc::Status, self.timeout).await {
            Ok(Reply::Status(status)) => Ok(status),
            Ok(Reply::Failed(failure)) => Err(failure.into()),
            Ok(other) => Err(unexpected(other)),
            Err(last) => Err(ClientError::Unreachable { last }),
        }
    }

    /// Adds replica `id` at `addr` to the cluster.
    pub async fn join(&self, id: u64, addr: String) -> Result<(), ClientError> {
        self.done(&Rpc::Join { id, addr }).await
    }

    /// Removes replica `id` from the cluster.
    pub async fn remove(&self, id: u64) -> Result<(), ClientError> {
        self.done(&Rpc::Remove { id }).await
    }

    /// A consistent copy of the state machine (a SQLite database).
    pub async fn backup(&self) -> Result<Vec<u8>, ClientError> {
        match self.call(&Rpc::Backup).await? {
            Reply::Backup(bytes) => Ok(bytes),
            other => Err(unexpected(other)),
        }
    }

    /// The applied log index and state digest of the replica in use.
    pub async fn state_hash(&self) -> Result<(u64, String), ClientError> {
        match self.call(&Rpc::StateHash).await? {
            Reply::StateHash {
                applied_index,
                hash,
            } => Ok((applied_index, hash)),
            other => Err(unexpected(other)),
        }
    }

    async fn done(&self, rpc: &Rpc) -> Result<(), ClientError> {
        match self.call(rpc).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}

fn unexpected(reply: Reply) -> ClientError {
    match reply {
        Reply::Failed(failure) => ClientError::Failed(failure),
        other => ClientError::Unexpected(format!("{other:?}")),
    }
}
