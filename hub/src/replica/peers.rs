//! Dialling replicas: TLS connections with the replica's own certificate,
//! kept in a pool per address, and the openraft network built on them.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{NetworkError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use rustls::pki_types::ServerName;
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::store::{NodeId, Replica, TypeConfig};

use super::rpc::{FrameError, Reply, Rpc, read_frame, write_frame};
use super::types::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotError, InstallSnapshotRequest,
    InstallSnapshotResponse, RpcError, VoteRequest, VoteResponse,
};

/// Why a call to a replica failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No connection could be made: the request was certainly not delivered.
    #[error("connect to {addr}")]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },
    /// The connection failed while the request was in flight: it may or may
    /// not have been carried out.
    #[error("call {addr}")]
    Frame {
        addr: String,
        #[source]
        source: FrameError,
    },
    /// The peer closed the connection without answering.
    #[error("{addr} closed the connection without answering")]
    Closed { addr: String },
    /// No answer within the deadline.
    #[error("no answer from {addr} within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
}

impl CallError {
    /// Whether the request certainly did not reach the peer.
    pub fn not_delivered(&self) -> bool {
        matches!(self, CallError::Connect { .. })
    }
}

/// Opens TLS connections to replicas.
#[derive(Clone)]
pub struct Dialer {
    tls: TlsConnector,
    /// Outgoing connections leave from this address (the replica's own),
    /// so that packet filters can tell replicas apart on one host.
    source_ip: Option<IpAddr>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("source_ip", &self.source_ip)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl Dialer {
    pub fn new(tls: Arc<rustls::ClientConfig>, source_ip: Option<IpAddr>) -> Self {
        Dialer {
            tls: TlsConnector::from(tls),
            source_ip,
            connect_timeout: Duration::from_secs(2),
        }
    }

    /// Connects to `addr` (`host:port`) and completes the TLS handshake,
    /// checking that the peer's certificate names `host`.
    pub async fn connect(&self, addr: &str) -> io::Result<TlsStream<TcpStream>> {
        let (host, _) = split_host(addr)?;
        let target = tokio::net::lookup_host(addr).await?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "address resolves to nothing")
        })?;
        let server_name = match host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(host.to_owned())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        };
        let connect = async {
            let tcp = self.tcp(target).await?;
            tcp.set_nodelay(true)?;
            self.tls.connect(server_name, tcp).await
        };
        tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
    }

    async fn tcp(&self, target: SocketAddr) -> io::Result<TcpStream> {
        let socket = match target {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if let Some(ip) = self.source_ip
            && ip.is_ipv4() == target.is_ipv4()
        {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        socket.connect(target).await
    }
}

/// `host:port` split into its parts (`[v6]:port` too).
pub fn split_host(addr: &str) -> io::Result<(&str, u16)> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{addr:?} is not host:port"),
        )
    };
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.parse().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host, port))
}

/// Idle connections to replicas by address, reused by later calls.
#[derive(Debug)]
pub struct Peers {
    dialer: Dialer,
    idle: Mutex<HashMap<String, Vec<TlsStream<TcpStream>>>>,
}

/// At most this many idle connections are kept per address.
const MAX_IDLE: usize = 64;

impl Peers {
    pub fn new(dialer: Dialer) -> Self {
        Peers {
            dialer,
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// Sends `rpc` to the replica at `addr` and waits up to `timeout` for
    /// its answer.
    pub async fn call(&self, addr: &str, rpc: &Rpc, timeout: Duration) -> Result<Reply, CallError> {
        let pooled = self.take(addr);
        let fresh = pooled.is_none();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => self
                .dialer
                .connect(addr)
                .await
                .map_err(|source| CallError::Connect {
                    addr: addr.to_owned(),
                    source,
                })?,
        };
        match exchange(&mut conn, rpc, addr, timeout).await {
            Ok(reply) => {
                self.put(addr, conn);
                Ok(reply)
            }
            // A pooled connection may have died while idle (the peer
            // restarted). Requests that are safe to repeat are retried once on
            // a new connection; a write is not, since the peer may have
            // carried it out before closing.
            Err(closed @ CallError::Closed { .. }) if !fresh && rpc.is_idempotent() => {
                let Ok(mut conn) = self.dialer.connect(addr).await else {
                    return Err(closed);
                };
                let reply = exchange(&mut conn, rpc, addr, timeout).await?;
                self.put(addr, conn);
                Ok(reply)
            }
            Err(e) => Err(e),
        }
    }

    /// Forgets every idle connection (after a peer was removed).
    pub fn forget(&self, addr: &str) {
        self.idle.lock().expect("peer pool").remove(addr);
    }

    fn take(&self, addr: &str) -> Option<TlsStream<TcpStream>> {
        self.idle.lock().expect("peer pool").get_mut(addr)?.pop()
    }

    fn put(&self, addr: &str, conn: TlsStream<TcpStream>) {
        let mut idle = self.idle.lock().expect("peer pool");
        let conns = idle.entry(addr.to_owned()).or_default();
        if conns.len() < MAX_IDLE {
            conns.push(conn);
        }
    }
}

async fn exchange(
    conn: &mut TlsStream<TcpStream>,
    rpc: &Rpc,
    addr: &str,
    timeout: Duration,
) -> Result<Reply, CallError> {
    let frame = |source| CallError::Frame {
        addr: addr.to_owned(),
        source,
    };
    let round_trip = async {
        write_frame(conn, rpc).await.map_err(frame)?;
        read_frame::<_, Reply>(conn)
            .await
            .map_err(frame)?
            .ok_or_else(|| CallError::Closed {
                addr: addr.to_owned(),
            })
    };
    tokio::time::timeout(timeout, round_trip)
        .await
        .map_err(|_| CallError::Timeout {
            addr: addr.to_owned(),
            timeout,
        })?
}

/// openraft's network: one [`PeerClient`] per target, sharing the pool.
#[derive(Debug, Clone)]
pub struct Network {
    peers: Arc<Peers>,
}

impl Network {
    pub fn new(peers: Arc<Peers>) -> Self {
        Network { peers }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Replica) -> PeerClient {
        PeerClient {
            target,
            addr: node.addr.clone(),
            peers: self.peers.clone(),
        }
    }
}

/// Sends one replica's Raft RPCs.
#[derive(Debug)]
pub struct PeerClient {
    target: NodeId,
    addr: String,
    peers: Arc<Peers>,
}

impl PeerClient {
    async fn call<E: std::error::Error>(
        &self,
        rpc: Rpc,
        option: &RPCOption,
    ) -> Result<Reply, RpcError<E>> {
        self.peers
            .call(&self.addr, &rpc, option.hard_ttl())
            .await
            .map_err(|e| {
                if e.not_delivered() {
                    RpcError::Unreachable(Unreachable::new(&e))
                } else {
                    RpcError::Network(NetworkError::new(&e))
                }
            })
    }

    fn unexpected<E: std::error::Error>(&self, reply: Reply) -> RpcError<E> {
        let e = io::Error::other(format!("{} answered {reply:?}", self.addr));
        RpcError::Network(NetworkError::new(&e))
    }
}

/// About how many bytes of entries one AppendEntries carries at most.
///
/// openraft 0.9 gives an AppendEntries the heartbeat interval to complete,
/// and sends up to `max_payload_entries` (300) entries at once: a follower
/// behind by a few hundred large entries (after a restart, say) was sent
/// messages it could not take in within that time, again and again, and
/// never caught up. Past this budget the message is refused here with
/// `PayloadTooLarge` and a hint, and openraft sends fewer entries.
const APPEND_BUDGET: usize = 2 << 20;

/// How many of `entries`, from the first, fit in [`APPEND_BUDGET`] (at least
/// one), or `None` when all of them do.
fn entries_within_budget(entries: &[openraft::Entry<TypeConfig>]) -> Option<u64> {
    let mut total = 0;
    for (i, entry) in entries.iter().enumerate() {
        total += match &entry.payload {
            openraft::EntryPayload::Normal(request) => request.approx_bytes(),
            _ => 64,
        };
        if total > APPEND_BUDGET {
            return Some(i.max(1) as u64);
        }
    }
    None
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse, RpcError> {
        if rpc.entries.len() > 1
            && let Some(fit) = entries_within_budget(&rpc.entries)
        {
            return Err(RpcError::PayloadTooLarge(
                openraft::error::PayloadTooLarge::new_entries_hint(fit),
            ));
        }
        match self.call(Rpc::AppendEntries(rpc), &option).await? {
            Reply::AppendEntries(Ok(answer)) => Ok(answer),
            Reply::AppendEntries(Err(e)) => {
                Err(RpcError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(self.unexpected(other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse, RpcError<InstallSnapshotError>> {
        match self.call(Rpc::InstallSnapshot(rpc), &option).await? {
            Reply::InstallSnapshot(Ok(answer)) => Ok(answer),
            Reply::InstallSnapshot(Err(e)) => {
                Err(RpcError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(self.unexpected(other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest,
        option: RPCOption,
    ) -> Result<VoteResponse, RpcError> {
        match self.call(Rpc::Vote(rpc), &option).await? {
            Reply::Vote(Ok(answer)) => Ok(answer),
            Reply::Vote(Err(e)) => Err(RpcError::RemoteError(RemoteError::new(self.target, e))),
            other => Err(self.unexpected(other)),
        }
    }

    fn backoff(&self) -> openraft::network::Backoff {
        // openraft's default is 500 ms between attempts at an unreachable
        // replica; a restarted replica should rejoin sooner than that.
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(split_host("127.0.0.1:7420").unwrap(), ("127.0.0.1", 7420));
        assert_eq!(split_host("[::1]:7420").unwrap(), ("::1", 7420));
        assert_eq!(split_host("hub-0.local:1").unwrap(), ("hub-0.local", 1));
        for bad in ["127.0.0.1", ":7420", "host:port", "host:70000"] {
            assert!(split_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn append_entries_past_the_budget_are_cut_to_what_fits() {
        use crate::store::{ObjectKey, Request, Write};
        let entry = |index: u64, bytes: usize| openraft::Entry::<TypeConfig> {
            log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: openraft::EntryPayload::Normal(Request::Write(Write::Create {
                key: ObjectKey::new("Pod", "default", "p"),
                value: vec![b'x'; bytes],
            })),
        };
        let small: Vec<_> = (1..=100).map(|i| entry(i, 1000)).collect();
        assert_eq!(entries_within_budget(&small), None);
        let large: Vec<_> = (1..=10).map(|i| entry(i, APPEND_BUDGET / 4)).collect();
        assert_eq!(entries_within_budget(&large), Some(3));
        // One entry past the budget alone still goes (it cannot be split).
        let huge = vec![entry(1, APPEND_BUDGET * 2), entry(2, 10)];
        assert_eq!(entries_within_budget(&huge), Some(1));
    }
}
