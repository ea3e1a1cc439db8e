//! The etcd side of `flotilla-bench store`: a real 3-member etcd cluster
//! (Debian's `etcd` 3.4, durable defaults: every commit fsynced) on loopback
//! ports chosen free at start, data in a temporary directory, and a put
//! benchmark that drives it through the `etcd-client` crate.
//!
//! The cluster is stopped (SIGKILL, then reaped) and its data removed when
//! the [`EtcdCluster`] is dropped. Members can be killed one by one, and the
//! leader found, for the same fault tests the hub faces.

use std::fs::File;
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};
use tempfile::TempDir;
use tokio::time::Instant;

use super::load::{Budget, LoadStats, run_load};

/// Where Debian's `etcd-server` package puts the server.
pub const ETCD_BINARY: &str = "/usr/bin/etcd";

/// How long a member may take to be elected or to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_EVERY: Duration = Duration::from_millis(50);

/// Starting, querying or stopping the etcd cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("no etcd server at {path}: run scripts/setup.sh (it installs etcd-server)")]
    Missing { path: PathBuf },
    #[error("creating the cluster's data directory")]
    DataDir { source: io::Error },
    #[error("finding a free loopback port")]
    FreePort { source: io::Error },
    #[error("starting etcd member {member}")]
    Spawn { member: usize, source: io::Error },
    #[error("etcd member {member} exited ({status}); its log ends:\n{log}")]
    Exited {
        member: usize,
        status: ExitStatus,
        log: String,
    },
    #[error("stopping etcd member {member}")]
    Kill { member: usize, source: io::Error },
    #[error("no etcd member {member} is running")]
    NoSuchMember { member: usize },
    #[error("no etcd leader after {waited:?}; last error: {last}")]
    NoLeader { waited: Duration, last: String },
    #[error("etcd client for {endpoints}")]
    Client {
        endpoints: String,
        source: etcd_client::Error,
    },
}

#[derive(Debug)]
struct Member {
    client_url: String,
    log: PathBuf,
    /// `None` once killed.
    process: Option<Child>,
}

/// A running etcd cluster; stopped and removed on drop.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
    // Dropped after the members are killed (see `Drop`).
    dir: TempDir,
}

impl EtcdCluster {
    /// Starts `size` members that form one new cluster, and waits until it
    /// has a leader.
    pub async fn start(size: usize) -> Result<Self, EtcdError> {
        if !Path::new(ETCD_BINARY).is_file() {
            return Err(EtcdError::Missing {
                path: ETCD_BINARY.into(),
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("flotilla-etcd-")
            .tempdir()
            .map_err(|source| EtcdError::DataDir { source })?;
        let ports = free_ports(2 * size)?;
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        let initial_cluster = (0..size)
            .map(|m| format!("m{m}={}", url(ports[2 * m + 1])))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Self {
            members: Vec::with_capacity(size),
            dir,
        };
        for member in 0..size {
            let (client_url, peer_url) = (url(ports[2 * member]), url(ports[2 * member + 1]));
            let log = cluster.dir.path().join(format!("m{member}.log"));
            let log_file = File::create(&log).map_err(|source| EtcdError::DataDir { source })?;
            let process = Command::new(ETCD_BINARY)
                .args(["--name", &format!("m{member}")])
                .arg("--data-dir")
                .arg(cluster.dir.path().join(format!("m{member}")))
                .args(["--listen-client-urls", &client_url])
                .args(["--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url])
                .args(["--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &initial_cluster])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", "flotilla-bench"])
                .args(["--logger", "zap", "--log-outputs", "stderr"])
                .args(["--log-level", "warn"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file)
                .spawn()
                .map_err(|source| EtcdError::Spawn { member, source })?;
            cluster.members.push(Member {
                client_url,
                log,
                process: Some(process),
            });
        }
        cluster.wait_for_leader(READY_TIMEOUT).await?;
        Ok(cluster)
    }

    /// The client URLs of the members still running.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| m.process.is_some())
            .map(|m| m.client_url.clone())
            .collect()
    }

    /// A client balanced over the members still running.
    pub async fn client(&self) -> Result<Client, EtcdError> {
        connect(&self.endpoints()).await
    }

    /// The member that is leader, as seen by the leader itself, polling
    /// until one is or `timeout` passes. Fails at once if a member died.
    pub async fn wait_for_leader(&mut self, timeout: Duration) -> Result<usize, EtcdError> {
        let start = Instant::now();
        loop {
            self.check_alive()?;
            let last = match self.leader_now().await {
                Ok(Some(leader)) => return Ok(leader),
                Ok(None) => "no member claims to lead".to_owned(),
                Err(e) => format!("{e}: {}", source_chain(&e)),
            };
            if start.elapsed() >= timeout {
                return Err(EtcdError::NoLeader {
                    waited: timeout,
                    last,
                });
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Kills member `member` with SIGKILL and reaps it.
    pub fn kill(&mut self, member: usize) -> Result<(), EtcdError> {
        let mut process = self
            .members
            .get_mut(member)
            .and_then(|m| m.process.take())
            .ok_or(EtcdError::NoSuchMember { member })?;
        process
            .kill()
            .and_then(|()| process.wait())
            .map(drop)
            .map_err(|source| EtcdError::Kill { member, source })
    }

    /// One poll: asks every live member for its id and its leader's id.
    async fn leader_now(&self) -> Result<Option<usize>, EtcdError> {
        let mut last_error = None;
        for (index, member) in self.members.iter().enumerate() {
            if member.process.is_none() {
                continue;
            }
            let endpoints = [member.client_url.clone()];
            let status = match connect(&endpoints).await {
                Ok(mut client) => client.status().await.map_err(|source| EtcdError::Client {
                    endpoints: endpoints[0].clone(),
                    source,
                }),
                Err(e) => Err(e),
            };
            match status {
                Ok(status) => {
                    let own = status.header().map(|h| h.member_id());
                    if status.leader() != 0 && own == Some(status.leader()) {
                        return Ok(Some(index));
                    }
                }
                Err(e) => last_error = Some(e),
            }
        }
        last_error.map_or(Ok(None), Err)
    }

    /// Fails if a member that should run has exited.
    fn check_alive(&mut self) -> Result<(), EtcdError> {
        for (member, m) in self.members.iter_mut().enumerate() {
            let Some(process) = m.process.as_mut() else {
                continue;
            };
            if let Ok(Some(status)) = process.try_wait() {
                m.process = None;
                return Err(EtcdError::Exited {
                    member,
                    status,
                    log: log_tail(&m.log),
                });
            }
        }
        Ok(())
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            if let Some(mut process) = member.process.take() {
                // Already exited is the only expected failure; reap either way.
                let _ = process.kill();
                let _ = process.wait();
            }
        }
    }
}

/// Reserves `n` distinct loopback ports by binding port 0, then frees them
/// for etcd (another process could take one in between; etcd then exits and
/// [`EtcdCluster::start`] reports it).
fn free_ports(n: usize) -> Result<Vec<u16>, EtcdError> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| EtcdError::FreePort { source })?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|source| EtcdError::FreePort { source })
}

async fn connect(endpoints: &[String]) -> Result<Client, EtcdError> {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(5));
    Client::connect(endpoints, Some(options))
        .await
        .map_err(|source| EtcdError::Client {
            endpoints: endpoints.join(","),
            source,
        })
}

fn source_chain(error: &dyn std::error::Error) -> String {
    let mut chain = Vec::new();
    let mut next = error.source();
    while let Some(e) = next {
        chain.push(e.to_string());
        next = e.source();
    }
    chain.join(": ")
}

fn log_tail(path: &Path) -> String {
    const LINES: usize = 20;
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("(unreadable: {e})"));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LINES)..].join("\n")
}

/// The key client `client` writes in its `seq`-th put.
pub fn bench_key(client: usize, seq: u64) -> String {
    format!("bench/{client:04}/{seq:010}")
}

/// Runs `clients` closed-loop clients, each with its own connection to a
/// fresh 3-member cluster (balanced over all members, as etcd's own client
/// does), putting distinct keys with `value_len`-byte values for `duration`.
pub async fn etcd_put_benchmark(
    clients: usize,
    duration: Duration,
    value_len: usize,
) -> Result<LoadStats, EtcdError> {
    let cluster = EtcdCluster::start(3).await?;
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        connections.push(cluster.client().await?);
    }
    let connections = Arc::new(connections);
    let value: Arc<[u8]> = vec![b'v'; value_len].into();
    let stats = run_load(clients, Budget::Duration(duration), move |client, seq| {
        let mut connection = connections[client].clone();
        let value = Arc::clone(&value);
        async move {
            connection
                .put(bench_key(client, seq), value.to_vec(), None)
                .await
                .map(drop)
        }
    })
    .await;
    drop(cluster);
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn started(result: Result<EtcdCluster, EtcdError>) -> EtcdCluster {
        result.unwrap_or_else(|e| panic!("{e}: {}", source_chain(&e)))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_acknowledged_put_is_readable_afterwards() {
        let cluster = started(EtcdCluster::start(3).await);
        assert_eq!(cluster.endpoints().len(), 3);
        let client = cluster.client().await.unwrap();
        let acked = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&acked);
        let stats = run_load(
            4,
            Budget::Duration(Duration::from_secs(1)),
            move |c, seq| {
                let mut client = client.clone();
                let record = Arc::clone(&record);
                async move {
                    let key = bench_key(c, seq);
                    client
                        .put(key.clone(), format!("value of {key}"), None)
                        .await?;
                    record.lock().unwrap().push(key);
                    Ok::<(), etcd_client::Error>(())
                }
            },
        )
        .await;
        let acked = acked.lock().unwrap().clone();
        assert_eq!(stats.errors, 0);
        assert_eq!(stats.ops, acked.len() as u64);
        assert!(stats.ops > 0, "no put succeeded in a second");
        let mut reader = cluster.client().await.unwrap();
        for key in &acked {
            let got = reader.get(key.as_str(), None).await.unwrap();
            let values: Vec<&[u8]> = got.kvs().iter().map(|kv| kv.value()).collect();
            assert_eq!(values, [format!("value of {key}").as_bytes()], "{key}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn killing_the_leader_elects_another_member() {
        let mut cluster = started(EtcdCluster::start(3).await);
        let first = cluster.wait_for_leader(READY_TIMEOUT).await.unwrap();
        cluster.kill(first).unwrap();
        assert_eq!(cluster.endpoints().len(), 2);
        let second = cluster.wait_for_leader(READY_TIMEOUT).await.unwrap();
        assert_ne!(first, second);
        assert!(matches!(
            cluster.kill(first),
            Err(EtcdError::NoSuchMember { member }) if member == first
        ));
        let mut client = cluster.client().await.unwrap();
        client.put("after", "election", None).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_put_benchmark_reports_figures_for_1_and_64_clients() {
        for clients in [1, 64] {
            let stats = etcd_put_benchmark(clients, Duration::from_secs(2), 256)
                .await
                .unwrap_or_else(|e| panic!("{e}: {}", source_chain(&e)));
            println!("etcd put, {clients} clients: {}", stats.to_json());
            assert_eq!(stats.errors, 0, "{clients} clients");
            assert!(stats.ops > 0 && stats.p50_ms <= stats.p99_ms && stats.p99_ms <= stats.max_ms);
        }
    }
}
