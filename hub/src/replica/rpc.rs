//! What replicas and store clients say to a replica, and how it travels.
//!
//! Every message is one frame: a 4-byte big-endian length, then the postcard
//! encoding of an [`Rpc`] (asked) or a [`Reply`] (answered). A connection
//! carries one request at a time, answered in order; callers that want
//! concurrency open more connections (the pools in [`super::peers`] do).
//! The stream under it is TLS with client certificates, both ways.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::store::{ObjectKey, Request, Response, StoredObject};

use super::types::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotError, InstallSnapshotRequest,
    InstallSnapshotResponse, RaftError, VoteRequest, VoteResponse,
};
use crate::store::NodeId;

/// The largest frame either side accepts: a snapshot chunk (openraft's
/// default is 3 MiB) or a batch of log entries, with room to spare.
pub const MAX_FRAME_BYTES: usize = 64 << 20;

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Consistency {
    /// Sees every write acknowledged before the read started (read-index
    /// through the leader, then served by the replica asked).
    #[default]
    Linearizable,
    /// Whatever the replica asked has applied: fast and possibly behind.
    Stale,
}

/// One request to a replica.
#[derive(Debug, Serialize, Deserialize)]
pub enum Rpc {
    /// Raft: replicate entries (from the leader).
    AppendEntries(AppendEntriesRequest),
    /// Raft: ask for a vote (from a candidate).
    Vote(VoteRequest),
    /// Raft: one chunk of a snapshot (from the leader).
    InstallSnapshot(InstallSnapshotRequest),
    /// Commit a request to the store. A follower forwards it to the leader
    /// unless `forwarded` is set (then it answers `NotLeader`), so a write
    /// hops at most once.
    Write { request: Request, forwarded: bool },
    /// Confirm leadership and return the log index a linearizable read must
    /// wait for (Raft's read index). Only the leader answers it.
    ReadIndex,
    /// Read one object.
    Get {
        key: ObjectKey,
        consistency: Consistency,
    },
    /// Add a replica: as a learner until it has caught up, then as a voter.
    Join { id: NodeId, addr: String },
    /// Remove a replica from the voters and the cluster.
    Remove { id: NodeId },
    /// The replica's view of the cluster.
    Status,
    /// A consistent copy of the state machine (a SQLite database file).
    Backup,
    /// The replica's applied log index and the digest of its state machine
    /// (a local read: replicas that have applied the same log agree).
    StateHash,
}

impl Rpc {
    /// Whether carrying the request out twice is the same as once: Raft's
    /// own messages, reads and membership changes (joining twice adds once)
    /// are; an object write is not.
    pub fn is_idempotent(&self) -> bool {
        !matches!(self, Rpc::Write { .. })
    }
}

/// A replica's view of its cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub id: NodeId,
    pub addr: String,
    pub leader: Option<NodeId>,
    pub term: u64,
    /// Every member (id, address, whether it votes), ordered by id.
    pub members: Vec<Member>,
    pub last_log_index: Option<u64>,
    pub last_applied_index: Option<u64>,
    /// The store revision this replica has applied.
    pub revision: u64,
    /// Log appends since the replica started, and the commits (fsyncs) that
    /// wrote them: group commit makes the second smaller under load.
    pub log_appends: u64,
    pub log_commits: u64,
}

/// One member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: NodeId,
    pub addr: String,
    pub voter: bool,
}

/// An answer to an [`Rpc`]; `Failed` for any request that could not be done.
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    AppendEntries(Result<AppendEntriesResponse, RaftError>),
    Vote(Result<VoteResponse, RaftError>),
    InstallSnapshot(Result<InstallSnapshotResponse, RaftError<InstallSnapshotError>>),
    Write(Response),
    ReadIndex { index: u64 },
    Get(Option<StoredObject>),
    Done,
    Status(Status),
    Backup(#[serde(with = "serde_bytes")] Vec<u8>),
    StateHash { applied_index: u64, hash: String },
    Failed(Failure),
}

/// Why a request was not done, and what the caller should do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Failure {
    /// This replica is not the leader and did not forward (the request was
    /// already forwarded once, or no leader is known). Nothing was done:
    /// retry, at `leader` if given.
    #[error("replica is not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<String> },
    /// The request may or may not have taken effect (the leader was lost
    /// while it was in flight): read before retrying a non-idempotent write.
    #[error("outcome unknown: {reason}")]
    Unknown { reason: String },
    /// The request was refused and nothing was done.
    #[error("refused: {reason}")]
    Refused { reason: String },
    /// The caller's certificate does not allow this request.
    #[error("forbidden: {reason}")]
    Forbidden { reason: String },
    /// The replica failed (storage, shutdown); try another replica.
    #[error("replica failed: {reason}")]
    Internal { reason: String },
}

/// Errors of moving frames.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection i/o")]
    Io(#[from] std::io::Error),
    #[error("frame of {len} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge { len: usize },
    #[error("encode a frame")]
    Encode(#[source] postcard::Error),
    #[error("decode a frame")]
    Decode(#[source] postcard::Error),
}

/// Writes `message` as one frame and flushes it.
pub async fn write_frame<W, T>(io: &mut W, message: &T) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let bytes = postcard::to_allocvec(message).map_err(FrameError::Encode)?;
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge { len: bytes.len() });
    }
    let len = u32::try_from(bytes.len()).map_err(|_| FrameError::TooLarge { len: bytes.len() })?;
    let mut frame = Vec::with_capacity(4 + bytes.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&bytes);
    io.write_all(&frame).await?;
    io.flush().await?;
    Ok(())
}

/// Reads one frame; `Ok(None)` when the peer closed the connection cleanly
/// between frames.
pub async fn read_frame<R, T>(io: &mut R) -> Result<Option<T>, FrameError>
where
    R: AsyncRead + Unpin,
    T: serde::de::DeserializeOwned,
{
    let mut len = [0u8; 4];
    match io.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge { len });
    }
    let mut bytes = vec![0u8; len];
    io.read_exact(&mut bytes).await?;
    postcard::from_bytes(&bytes)
        .map(Some)
        .map_err(FrameError::Decode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Write;

    #[tokio::test]
    async fn frames_round_trip_and_a_clean_close_reads_as_none() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let rpc = Rpc::Write {
            request: Request::Write(Write::Create {
                key: ObjectKey::new("Pod", "default", "a"),
                value: b"{}".to_vec(),
            }),
            forwarded: true,
        };
        write_frame(&mut a, &rpc).await.unwrap();
        write_frame(&mut a, &Rpc::Status).await.unwrap();
        drop(a);
        let first: Rpc = read_frame(&mut b).await.unwrap().unwrap();
        assert!(matches!(
            first,
            Rpc::Write {
                forwarded: true,
                ..
            }
        ));
        let second: Rpc = read_frame(&mut b).await.unwrap().unwrap();
        assert!(matches!(second, Rpc::Status));
        assert!(read_frame::<_, Rpc>(&mut b).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn oversized_and_garbled_frames_are_refused() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        a.write_all(&(MAX_FRAME_BYTES as u32 + 1).to_be_bytes())
            .await
            .unwrap();
        assert!(matches!(
            read_frame::<_, Rpc>(&mut b).await,
            Err(FrameError::TooLarge { .. })
        ));

        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        a.write_all(&3u32.to_be_bytes()).await.unwrap();
        a.write_all(&[0xff, 0xff, 0xff]).await.unwrap();
        assert!(matches!(
            read_frame::<_, Rpc>(&mut b).await,
            Err(FrameError::Decode(_))
        ));

        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        a.write_all(&10u32.to_be_bytes()).await.unwrap();
        a.write_all(&[0; 3]).await.unwrap();
        drop(a);
        assert!(matches!(
            read_frame::<_, Rpc>(&mut b).await,
            Err(FrameError::Io(_))
        ));
    }
}
