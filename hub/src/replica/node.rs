//! One running replica: its Raft instance and store, and what it does for
//! each request — commit writes (forwarding them to the leader), serve reads
//! at the asked consistency, change membership, report status, back up.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use tokio::time::Instant;

use crate::store::{self, NodeId, ObjectKey, Request, Response, StateMachine, StoredObject};

use super::batcher::Batcher;
use super::peers::{Network, Peers};
use super::rpc::{Consistency, Failure, Member, Reply, Rpc, Status};
use super::types::Raft;

/// Timing of one replica.
#[derive(Debug, Clone)]
pub struct Options {
    /// How often the leader heartbeats its followers.
    pub heartbeat: Duration,
    /// A follower that hears no leader for a random time in this range
    /// starts an election.
    pub election_timeout: (Duration, Duration),
    /// A snapshot is built after this many log entries, and the log before
    /// it is purged (a replica that lags further gets the snapshot).
    pub snapshot_after_entries: u64,
    /// How long a write or read may wait for a leader and a commit.
    pub request_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            heartbeat: Duration::from_millis(50),
            election_timeout: (Duration::from_millis(250), Duration::from_millis(500)),
            snapshot_after_entries: 20_000,
            request_timeout: Duration::from_secs(5),
        }
    }
}

impl Options {
    fn raft_config(&self) -> Result<openraft::Config, NodeError> {
        let config = openraft::Config {
            cluster_name: "flotilla".into(),
            heartbeat_interval: millis(self.heartbeat),
            election_timeout_min: millis(self.election_timeout.0),
            election_timeout_max: millis(self.election_timeout.1),
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_after_entries),
            // Keep some log behind the snapshot so that a replica lagging a
            // little catches up from the log rather than a whole snapshot.
            max_in_snapshot_log_to_keep: (self.snapshot_after_entries / 10).max(10),
            ..Default::default()
        };
        config
            .validate()
            .map_err(|e| NodeError::Config(e.to_string()))
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

/// Why a replica could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("invalid raft settings: {0}")]
    Config(String),
    #[error("open the replica's store")]
    Store(#[from] store::StoreError),
    #[error("start raft")]
    Raft(#[source] Box<openraft::error::Fatal<NodeId>>),
}

/// A running replica.
pub struct Node {
    id: NodeId,
    addr: String,
    raft: Raft,
    state: StateMachine,
    peers: Arc<Peers>,
    options: Options,
    appends: Arc<store::AppendStats>,
    batcher: Batcher,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// How long to wait before asking again when no leader is known.
const LEADER_POLL: Duration = Duration::from_millis(20);

impl Node {
    /// Opens the store at `db` and starts Raft as replica `id`, reachable by
    /// the others at `addr`. A new replica knows no cluster until
    /// [`Node::bootstrap`] or another replica's [`Node::join`] adds it.
    pub async fn start(
        id: NodeId,
        addr: String,
        db: &Path,
        peers: Arc<Peers>,
        options: Options,
    ) -> Result<Arc<Node>, NodeError> {
        let config = Arc::new(options.raft_config()?);
        let (log, state) = store::open(db)?;
        let appends = log.append_stats();
        let raft = Raft::new(id, config, Network::new(peers.clone()), log, state.clone())
            .await
            .map_err(|e| NodeError::Raft(Box::new(e)))?;
        let batcher = Batcher::start(raft.clone());
        Ok(Arc::new(Node {
            id,
            addr,
            raft,
            state,
            peers,
            options,
            appends,
            batcher,
        }))
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The replica's store, for local (possibly stale) reads and watches.
    pub fn state(&self) -> &StateMachine {
        &self.state
    }

    /// The Raft instance (metrics, waiting for states in tests).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Whether this replica belongs to a cluster (bootstrapped or joined).
    pub async fn is_member(&self) -> bool {
        self.raft.is_initialized().await.unwrap_or(false)
    }

    /// Makes this replica a one-replica cluster, unless it already belongs
    /// to one.
    pub async fn bootstrap(&self) -> Result<(), Failure> {
        if self.is_member().await {
            return Ok(());
        }
        let members = [(
            self.id,
            store::Replica {
                addr: self.addr.clone(),
            },
        )];
        match self
            .raft
            .initialize(
                members
                    .into_iter()
                    .collect::<std::collections::BTreeMap<_, _>>(),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(internal(e)),
        }
    }

    /// Stops Raft; the store closes when the last handle is dropped.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }

    /// Carries out one request from a caller allowed to make it.
    pub async fn handle(&self, rpc: Rpc) -> Reply {
        match rpc {
            Rpc::AppendEntries(rpc) => Reply::AppendEntries(self.raft.append_entries(rpc).await),
            Rpc::Vote(rpc) => Reply::Vote(self.raft.vote(rpc).await),
            Rpc::InstallSnapshot(rpc) => {
                Reply::InstallSnapshot(self.raft.install_snapshot(rpc).await)
            }
            Rpc::Write { request, forwarded } => {
                answer(self.write(request, forwarded).await, Reply::Write)
            }
            Rpc::ReadIndex => answer(self.read_index().await, |index| Reply::ReadIndex { index }),
            Rpc::Get { key, consistency } => answer(self.get(&key, consistency).await, Reply::Get),
            Rpc::Join { id, addr } => answer(self.join(id, addr).await, |()| Reply::Done),
            Rpc::Remove { id } => answer(self.remove(id).await, |()| Reply::Done),
            Rpc::Status => answer(self.status().await, Reply::Status),
            Rpc::Backup => answer(self.backup().await, Reply::Backup),
            Rpc::StateHash => answer(self.state_hash().await, |(applied_index, hash)| {
                Reply::StateHash {
                    applied_index,
                    hash,
                }
            }),
        }
    }

    /// Commits `request` through the leader and returns what applying it
    /// did. A follower forwards the request once; `forwarded` requests are
    /// not forwarded again.
    pub async fn write(&self, request: Request, forwarded: bool) -> Result<Response, Failure> {
        let deadline = Instant::now() + self.options.request_timeout;
        loop {
            let outcome =
                tokio::time::timeout_at(deadline, self.batcher.write(request.clone())).await;
            let forward = match outcome {
                Err(_) => {
                    return Err(Failure::Unknown {
                        reason: format!("not committed within {:?}", self.options.request_timeout),
                    });
                }
                Ok(Ok(response)) => return Ok(response),
                // openraft answers ForwardToLeader only for entries it never
                // appended or truncated: nothing was done.
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => f,
                Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e)))) => {
                    return Err(Failure::Refused {
                        reason: e.to_string(),
                    });
                }
                Ok(Err(RaftError::Fatal(e))) => return Err(internal(e)),
            };
            let leader = forward.leader_node.map(|node| node.addr);
            if forwarded {
                return Err(Failure::NotLeader { leader });
            }
            let Some(leader) = leader.filter(|addr| *addr != self.addr) else {
                self.wait_before_retry(deadline).await?;
                continue;
            };
            let rpc = Rpc::Write {
                request: request.clone(),
                forwarded: true,
            };
            match self.peers.call(&leader, &rpc, remaining(deadline)).await {
                Ok(Reply::Write(response)) => return Ok(response),
                Ok(Reply::Failed(Failure::NotLeader { .. })) => {
                    self.wait_before_retry(deadline).await?
                }
                Ok(Reply::Failed(failure)) => return Err(failure),
                Ok(other) => return Err(unexpected(&leader, other)),
                Err(e) if e.not_delivered() => self.wait_before_retry(deadline).await?,
                Err(e) => {
                    return Err(Failure::Unknown {
                        reason: format!("forwarded to the leader at {leader}: {e}"),
                    });
                }
            }
        }
    }

    async fn wait_before_retry(&self, deadline: Instant) -> Result<(), Failure> {
        if Instant::now() + LEADER_POLL >= deadline {
            return Err(Failure::NotLeader {
                leader: self.leader().map(|(_, addr)| addr),
            });
        }
        tokio::time::sleep(LEADER_POLL).await;
        Ok(())
    }

    /// The leader as this replica knows it.
    fn leader(&self) -> Option<(NodeId, String)> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let id = metrics.current_leader?;
        let node = metrics.membership_config.membership().get_node(&id)?;
        Some((id, node.addr.clone()))
    }

    /// Leader only: confirms leadership with a quorum and returns the log
    /// index a linearizable read must wait for.
    async fn read_index(&self) -> Result<u64, Failure> {
        match self.raft.get_read_log_id().await {
            Ok((read, _)) => Ok(read.map_or(0, |id| id.index)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(Failure::NotLeader {
                    leader: f.leader_node.map(|n| n.addr),
                })
            }
            // A leader cut off from its quorum: retried until the deadline.
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e))) => Err(internal(e)),
            Err(RaftError::Fatal(e)) => Err(internal(e)),
        }
    }

    /// Waits until this replica has applied everything committed before the
    /// call: the read index comes from the leader (this replica if it leads),
    /// then the read is served here.
    pub async fn linearizable_barrier(&self) -> Result<(), Failure> {
        let deadline = Instant::now() + self.options.request_timeout;
        let index = loop {
            let asked = match self.read_index().await {
                Err(Failure::NotLeader {
                    leader: Some(leader),
                }) if leader != self.addr => {
                    match self
                        .peers
                        .call(&leader, &Rpc::ReadIndex, remaining(deadline))
                        .await
                    {
                        Ok(Reply::ReadIndex { index }) => Ok(index),
                        Ok(Reply::Failed(failure)) => Err(failure),
                        Ok(other) => Err(unexpected(&leader, other)),
                        Err(e) => Err(Failure::NotLeader {
                            leader: Some(format!("{leader} ({e})")),
                        }),
                    }
                }
                asked => asked,
            };
            match asked {
                Ok(index) => break index,
                Err(Failure::NotLeader { .. } | Failure::Internal { .. })
                    if Instant::now() + LEADER_POLL < deadline =>
                {
                    tokio::time::sleep(LEADER_POLL).await
                }
                Err(failure) => return Err(failure),
            }
        };
        self.raft
            .wait(Some(remaining(deadline)))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map_err(|e| Failure::Internal {
                reason: format!("waiting to apply index {index}: {e}"),
            })?;
        Ok(())
    }

    /// Reads one object at the asked consistency.
    pub async fn get(
        &self,
        key: &ObjectKey,
        consistency: Consistency,
    ) -> Result<Option<StoredObject>, Failure> {
        if consistency == Consistency::Linearizable {
            self.linearizable_barrier().await?;
        }
        self.state.get(key).await.map_err(internal)
    }

    /// Adds replica `id` at `addr`: first as a learner, which receives the
    /// log (or a snapshot) until it has caught up, then as a voter.
    pub async fn join(&self, id: NodeId, addr: String) -> Result<(), Failure> {
        if let Some(leader) = self.forward_target().await? {
            return self.forward_done(&leader, Rpc::Join { id, addr }).await;
        }
        let node = store::Replica { addr: addr.clone() };
        self.raft
            .add_learner(id, node, true)
            .await
            .map_err(membership_failure)?;
        let mut voters = self.voters();
        if voters.insert(id) {
            self.raft
                .change_membership(voters, false)
                .await
                .map_err(membership_failure)?;
        }
        Ok(())
    }

    /// Removes replica `id` from the cluster. The last voter cannot be
    /// removed.
    pub async fn remove(&self, id: NodeId) -> Result<(), Failure> {
        if let Some(leader) = self.forward_target().await? {
            return self.forward_done(&leader, Rpc::Remove { id }).await;
        }
        let mut voters = self.voters();
        let was_voter = voters.remove(&id);
        if was_voter && voters.is_empty() {
            return Err(Failure::Refused {
                reason: format!("replica {id} is the last voter"),
            });
        }
        let is_member = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .is_some();
        if !is_member {
            return Err(Failure::Refused {
                reason: format!("replica {id} is not a member"),
            });
        }
        self.raft
            .change_membership(voters, false)
            .await
            .map_err(membership_failure)?;
        Ok(())
    }

    fn voters(&self) -> BTreeSet<NodeId> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    /// `None` if this replica leads; else the leader's address, waiting for
    /// an election if there is none.
    async fn forward_target(&self) -> Result<Option<String>, Failure> {
        let deadline = Instant::now() + self.options.request_timeout;
        loop {
            match self.leader() {
                Some((id, _)) if id == self.id => return Ok(None),
                Some((_, addr)) => return Ok(Some(addr)),
                None => self.wait_before_retry(deadline).await?,
            }
        }
    }

    async fn forward_done(&self, leader: &str, rpc: Rpc) -> Result<(), Failure> {
        let timeout = self.options.request_timeout * 12;
        match self.peers.call(leader, &rpc, timeout).await {
            Ok(Reply::Done) => Ok(()),
            Ok(Reply::Failed(failure)) => Err(failure),
            Ok(other) => Err(unexpected(leader, other)),
            Err(e) => Err(Failure::Unknown {
                reason: format!("forwarded to the leader at {leader}: {e}"),
            }),
        }
    }

    /// This replica's view of the cluster.
    pub async fn status(&self) -> Result<Status, Failure> {
        let revision = self.state.revision().await.map_err(internal)?;
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| Member {
                id: *id,
                addr: node.addr.clone(),
                voter: voters.contains(id),
            })
            .collect();
        Ok(Status {
            id: self.id,
            addr: self.addr.clone(),
            leader: metrics.current_leader,
            term: metrics.current_term,
            members,
            last_log_index: metrics.last_log_index,
            last_applied_index: metrics.last_applied.map(|id| id.index),
            revision,
            log_appends: self.appends.get().0,
            log_commits: self.appends.get().1,
        })
    }

    /// The applied log index and the state machine's digest, read together
    /// (retried if an apply lands in between).
    pub async fn state_hash(&self) -> Result<(u64, String), Failure> {
        loop {
            let before = self.applied_index();
            let hash = self.state.state_hash().await.map_err(internal)?;
            if self.applied_index() == before {
                let hex = hash.iter().map(|b| format!("{b:02x}")).collect();
                return Ok((before, hex));
            }
        }
    }

    fn applied_index(&self) -> u64 {
        self.raft
            .metrics()
            .borrow()
            .last_applied
            .map_or(0, |id| id.index)
    }

    /// A consistent copy of the state machine as of a linearizable read.
    pub async fn backup(&self) -> Result<Vec<u8>, Failure> {
        self.linearizable_barrier().await?;
        self.state.backup().await.map_err(internal)
    }
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

fn answer<T>(result: Result<T, Failure>, reply: impl FnOnce(T) -> Reply) -> Reply {
    match result {
        Ok(value) => reply(value),
        Err(failure) => Reply::Failed(failure),
    }
}

fn internal(e: impl std::fmt::Display) -> Failure {
    Failure::Internal {
        reason: e.to_string(),
    }
}

fn unexpected(addr: &str, reply: Reply) -> Failure {
    Failure::Internal {
        reason: format!("{addr} answered {reply:?}"),
    }
}

fn membership_failure(e: RaftError<NodeId, ClientWriteError<NodeId, store::Replica>>) -> Failure {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => Failure::NotLeader {
            leader: f.leader_node.map(|n| n.addr),
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => Failure::Refused {
            reason: e.to_string(),
        },
        RaftError::Fatal(e) => internal(e),
    }
}
