//! Group commit at the proposal level: concurrent writes on the leader are
//! proposed together as one [`Request::Batch`] log entry.
//!
//! openraft appends each proposal as its own log entry and holds later
//! appends until the previous one is flushed, so without batching every
//! write costs one fsync in turn on every replica. The batcher keeps at most
//! [`IN_FLIGHT`] proposals in flight; writes arriving meanwhile wait and go
//! out together in the next one (as etcd batches proposals per Raft ready).
//! Each request of a batch is still applied on its own, with its own
//! revision and answer.

use std::sync::Arc;

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::store::{NodeId, Replica, Request, Response};

use super::types::Raft;

/// The error of proposing a write.
pub type WriteError = RaftError<NodeId, ClientWriteError<NodeId, Replica>>;

/// Proposals in flight at once.
const IN_FLIGHT: usize = 2;
/// Requests in one proposal at most.
const MAX_BATCH: usize = 512;
/// About how many bytes one proposal carries at most (one request more may
/// take it past): a log entry must replicate within openraft's heartbeat
/// interval (see `peers::APPEND_BUDGET`).
const MAX_BATCH_BYTES: usize = 1 << 20;

struct Pending {
    request: Request,
    reply: oneshot::Sender<Result<Response, WriteError>>,
}

/// Hands writes to Raft in batches.
#[derive(Debug, Clone)]
pub struct Batcher {
    queue: mpsc::UnboundedSender<Pending>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").finish_non_exhaustive()
    }
}

impl Batcher {
    /// Starts the batching task for `raft`; it ends when every handle is
    /// dropped.
    pub fn start(raft: Raft) -> Batcher {
        let (queue, mut incoming) = mpsc::unbounded_channel::<Pending>();
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(IN_FLIGHT));
            loop {
                // Waiting for a slot first lets writes gather meanwhile.
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let Some(first) = incoming.recv().await else {
                    return;
                };
                let mut bytes = first.request.approx_bytes();
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                    match incoming.try_recv() {
                        Ok(pending) => {
                            bytes += pending.request.approx_bytes();
                            batch.push(pending);
                        }
                        Err(_) => break,
                    }
                }
                let raft = raft.clone();
                tokio::spawn(async move {
                    propose(&raft, batch).await;
                    drop(slot);
                });
            }
        });
        Batcher { queue }
    }

    /// Proposes `request` (batched with others) and returns what applying
    /// it did.
    pub async fn write(&self, request: Request) -> Result<Response, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { request, reply })
            .map_err(|_| RaftError::Fatal(openraft::error::Fatal::Stopped))?;
        answer
            .await
            .unwrap_or(Err(RaftError::Fatal(openraft::error::Fatal::Stopped)))
    }
}

async fn propose(raft: &Raft, mut batch: Vec<Pending>) {
    if batch.len() == 1 {
        let Pending { request, reply } = batch.remove(0);
        let _ = reply.send(raft.client_write(request).await.map(|w| w.data));
        return;
    }
    let (requests, replies): (Vec<Request>, Vec<_>) =
        batch.into_iter().map(|p| (p.request, p.reply)).unzip();
    let count = requests.len();
    match raft.client_write(Request::Batch(requests)).await {
        Ok(written) => match written.data {
            Response::Batch(responses) if responses.len() == count => {
                for (reply, response) in replies.into_iter().zip(responses) {
                    let _ = reply.send(Ok(response));
                }
            }
            other => {
                // The state machine always answers a batch with a batch of
                // the same length; anything else is a bug, reported to all.
                let e = std::io::Error::other(format!("batch of {count} answered {other:?}"));
                for reply in replies {
                    let _ =
                        reply.send(Err(RaftError::Fatal(openraft::error::Fatal::StorageError(
                            openraft::StorageIOError::<NodeId>::apply(
                                written.log_id,
                                openraft::AnyError::new(&e),
                            )
                            .into(),
                        ))));
                }
            }
        },
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
