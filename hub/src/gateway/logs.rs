//! `kubectl logs` through the device link: the API asks the gateway for a
//! device's log stream; the gateway sends the [`LogRequest`] to the device
//! (on its connection here, or through the external broker) and routes the
//! [`LogChunk`]s that come back on `logs/response/{id}` to the asker.
//! Dropping the [`LogStream`] (the client went away) cancels the request
//! on the device.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use flotilla_shared::wire::{LogChunk, LogRequest};
use tokio::sync::{mpsc, oneshot};

/// The Node annotation naming the API address (`host:port`) of the hub
/// replica whose gateway serves the device: where `kubectl logs` for it is
/// forwarded.
pub const GATEWAY_ANNOTATION: &str = "flotilla.dev/gateway-api";

/// Chunks a stream holds for a slow reader before the gateway gives up on
/// it (and cancels it on the device).
pub const BUFFERED_CHUNKS: usize = 256;

/// Why a log stream could not be opened here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The device is not connected to this replica (embedded endpoint), or
    /// this replica's gateway does not speak to the broker (not leader).
    #[error("device {0} is not connected to this hub replica")]
    NotHere(String),
    /// The gateway is down (no broker connection, shutting down).
    #[error("the device gateway is not available: {0}")]
    Unavailable(String),
}

/// What the API asks of the gateway.
#[derive(Debug)]
pub enum LogCommand {
    Open {
        node: String,
        request: LogRequest,
        chunks: mpsc::Sender<LogChunk>,
        opened: oneshot::Sender<Result<(), LogError>>,
    },
    Cancel {
        node: String,
        request_id: u64,
    },
}

/// The API's handle on the gateway's log streams: whichever gateway runs
/// on this replica (the embedded endpoint's, or the external broker's
/// while this replica leads) attaches itself.
#[derive(Debug, Clone)]
pub struct Logs {
    gateway: Arc<Mutex<Option<mpsc::UnboundedSender<LogCommand>>>>,
    next_id: Arc<AtomicU64>,
}

impl Default for Logs {
    fn default() -> Self {
        // Ids start at the clock so that a restarted replica does not reuse
        // the ids of streams a device may still be sending.
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_micros() as u64);
        Logs {
            gateway: Arc::default(),
            next_id: Arc::new(AtomicU64::new(start)),
        }
    }
}

/// A gateway attached to [`Logs`]; detaches when dropped.
#[derive(Debug)]
pub struct Attached {
    gateway: Arc<Mutex<Option<mpsc::UnboundedSender<LogCommand>>>>,
    sender: mpsc::UnboundedSender<LogCommand>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        let mut slot = self.gateway.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|s| s.same_channel(&self.sender)) {
            *slot = None;
        }
    }
}

impl Logs {
    /// Attaches a gateway: the commands come on the receiver until the
    /// guard is dropped.
    pub fn attach(&self) -> (Attached, mpsc::UnboundedReceiver<LogCommand>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        *self.gateway.lock().unwrap_or_else(|e| e.into_inner()) = Some(sender.clone());
        let attached = Attached {
            gateway: Arc::clone(&self.gateway),
            sender,
        };
        (attached, receiver)
    }

    /// Opens `request` (its id is chosen here) on `node`'s device.
    pub async fn open(&self, node: &str, mut request: LogRequest) -> Result<LogStream, LogError> {
        let not_here = || LogError::NotHere(node.to_owned());
        let commands = self
            .gateway
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(not_here)?;
        request.request_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (chunks, receiver) = mpsc::channel(BUFFERED_CHUNKS);
        let (opened, answer) = oneshot::channel();
        commands
            .send(LogCommand::Open {
                node: node.to_owned(),
                request: request.clone(),
                chunks,
                opened,
            })
            .map_err(|_| not_here())?;
        answer.await.map_err(|_| not_here())??;
        Ok(LogStream {
            node: node.to_owned(),
            request_id: request.request_id,
            chunks: receiver,
            commands,
            finished: false,
        })
    }
}

/// One open log stream.
#[derive(Debug)]
pub struct LogStream {
    node: String,
    request_id: u64,
    chunks: mpsc::Receiver<LogChunk>,
    commands: mpsc::UnboundedSender<LogCommand>,
    finished: bool,
}

impl LogStream {
    /// The next chunk; `None` once the gateway dropped the stream (the
    /// device went away, or the reader was too slow).
    pub async fn next(&mut self) -> Option<LogChunk> {
        let chunk = self.chunks.recv().await;
        if chunk.as_ref().is_none_or(|c| c.eof) {
            self.finished = true;
        }
        chunk
    }
}

impl Drop for LogStream {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.commands.send(LogCommand::Cancel {
                node: self.node.clone(),
                request_id: self.request_id,
            });
        }
    }
}
