//! Real hub replicas as processes, for end-to-end tests and benchmarks.
//!
//! Each replica of a [`Cluster`] is a `flotilla-hub server` process with its
//! own data directory, listening on its own loopback address (127.x.y.N), so
//! that nftables rules can cut one replica off from the others while test
//! clients (from 127.0.0.1) still reach it. Every cluster gets its own
//! 127.x.y.0/24, so tests running in parallel never share addresses.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use flotilla_hub::replica::{Client, Dialer, Status};
use flotilla_hub::server;
use tempfile::TempDir;

/// The `flotilla-hub` binary: `$FLOTILLA_HUB_BIN`, else beside the running
/// test or benchmark binary (`target/<profile>/`). `cargo test` builds only
/// each package's own binaries: build this one first
/// (`cargo build --workspace --bins`, as `scripts/test.sh` does), or a stale
/// one is tested.
pub fn hub_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FLOTILLA_HUB_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current executable");
    let mut dir = exe.parent().expect("executable directory").to_owned();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("flotilla-hub");
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build -p flotilla-hub`, with --release for benchmarks)",
        bin.display()
    );
    bin
}

/// How the replicas of a test cluster run.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub heartbeat_ms: u64,
    pub election_timeout_ms: (u64, u64),
    pub snapshot_after_entries: u64,
    /// More `flotilla-hub server` flags (`--token-auth-file`, ...).
    pub extra_args: Vec<String>,
    /// Replica i's embedded MQTT endpoint listens on `mqtt_ips[i]` (an
    /// address devices in network namespaces reach) instead of its own
    /// loopback address.
    pub mqtt_ips: Vec<Ipv4Addr>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            heartbeat_ms: 50,
            election_timeout_ms: (250, 500),
            snapshot_after_entries: 20_000,
            extra_args: Vec::new(),
            mqtt_ips: Vec::new(),
        }
    }
}

/// One replica process.
#[derive(Debug)]
pub struct Replica {
    /// `ip:port` it listens on and advertises.
    pub addr: String,
    /// `ip:port` of its Kubernetes API (HTTPS).
    pub api: String,
    /// `ip:port` of its embedded MQTT endpoint (unused with an external
    /// broker).
    pub mqtt: String,
    pub ip: Ipv4Addr,
    pub data_dir: PathBuf,
    /// Its Raft id, known once it has been ready.
    pub id: Option<u64>,
    child: Option<Child>,
}

impl Replica {
    /// A replica not started yet, on a free port of `ip`.
    fn new(ip: Ipv4Addr, data_dir: PathBuf) -> Replica {
        Replica {
            addr: format!("{ip}:{}", free_port(ip)),
            api: format!("{ip}:{}", free_port(ip)),
            mqtt: format!("{ip}:{}", free_port(ip)),
            ip,
            data_dir,
            id: None,
            child: None,
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The replica's database file.
    pub fn db(&self) -> PathBuf {
        server::db_path(&self.data_dir)
    }

    /// The admin kubeconfig the replica wrote when it became ready.
    pub fn kubeconfig(&self) -> PathBuf {
        server::kubeconfig_path(&self.data_dir)
    }
}

/// A cluster of replica processes, killed when dropped.
#[derive(Debug)]
pub struct Cluster {
    _root: TempDir,
    bin: PathBuf,
    options: ClusterOptions,
    pub replicas: Vec<Replica>,
}

/// A /24 of loopback addresses no other cluster of this process uses.
fn loopback_net() -> [u8; 3] {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    [127, 100 + (pid % 100) as u8, (n % 250) as u8 + 1]
}

fn free_port(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on {ip}: {e}"))
}

impl Cluster {
    /// Starts `n` replicas: the first bootstraps the cluster, the others
    /// join it one by one. Returns when all are members.
    pub fn start(n: usize, options: ClusterOptions) -> Cluster {
        let root = tempfile::tempdir().expect("temp dir");
        let net = loopback_net();
        let replicas = (0..n)
            .map(|i| {
                let ip = Ipv4Addr::new(net[0], net[1], net[2], i as u8 + 1);
                let mut replica = Replica::new(ip, root.path().join(format!("replica-{i}")));
                if let Some(mqtt) = options.mqtt_ips.get(i) {
                    replica.mqtt = format!("{mqtt}:{}", free_port(*mqtt));
                }
                replica
            })
            .collect();
        let mut cluster = Cluster {
            _root: root,
            bin: hub_binary(),
            options,
            replicas,
        };
        for i in 0..n {
            cluster.spawn(i);
        }
        cluster
    }

    fn server_command(&self, i: usize) -> Command {
        let replica = &self.replicas[i];
        let mut command = Command::new(&self.bin);
        command
            .arg("server")
            .arg("--data-dir")
            .arg(&replica.data_dir)
            .arg("--listen")
            .arg(&replica.addr)
            .arg("--heartbeat-ms")
            .arg(self.options.heartbeat_ms.to_string())
            .arg("--election-timeout-ms")
            .arg(self.options.election_timeout_ms.0.to_string())
            .arg(self.options.election_timeout_ms.1.to_string())
            .arg("--snapshot-after-entries")
            .arg(self.options.snapshot_after_entries.to_string())
            .arg("--api-listen")
            .arg(&replica.api)
            .args(&self.options.extra_args);
        if !self.options.extra_args.iter().any(|a| a == "--mqtt-broker") {
            command.arg("--mqtt-listen").arg(&replica.mqtt);
        }
        if i > 0 {
            command
                .arg("--join")
                .arg(&self.replicas[0].addr)
                .arg("--ca-from")
                .arg(self.pki_dir());
        }
        command
    }

    /// Starts (or restarts) replica `i` and waits until it says it is ready.
    pub fn spawn(&mut self, i: usize) {
        assert!(!self.replicas[i].is_running(), "replica {i} is running");
        std::fs::create_dir_all(&self.replicas[i].data_dir).expect("data dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.replicas[i].data_dir.with_extension("log"))
            .expect("replica log file");
        let mut child = self
            .server_command(i)
            .stdout(Stdio::piped())
            .stderr(log)
            .env("RUST_LOG", "info,openraft=warn")
            .spawn()
            .expect("start flotilla-hub server");
        let stdout = child.stdout.take().expect("stdout");
        let (ready, id) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("{\"ready\":true,\"id\":") {
                    let id: u64 = rest
                        .split(',')
                        .next()
                        .and_then(|n| n.parse().ok())
                        .expect("replica id in the ready line");
                    let _ = ready.send(id);
                }
            }
        });
        match id.recv_timeout(Duration::from_secs(60)) {
            Ok(id) => {
                self.replicas[i].id = Some(id);
                self.replicas[i].child = Some(child);
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(self.replicas[i].data_dir.with_extension("log"))
                    .unwrap_or_default();
                panic!("replica {i} did not become ready in 60 s; its log:\n{log}");
            }
        }
    }

    /// Starts a one-replica cluster from an existing data directory (a
    /// restored backup), with its files beside it.
    pub fn resume_single(data_dir: &Path) -> Cluster {
        let root = tempfile::tempdir().expect("temp dir");
        let net = loopback_net();
        let ip = Ipv4Addr::new(net[0], net[1], net[2], 1);
        let mut cluster = Cluster {
            _root: root,
            bin: hub_binary(),
            options: ClusterOptions::default(),
            replicas: vec![Replica::new(ip, data_dir.to_owned())],
        };
        cluster.spawn(0);
        cluster
    }

    /// Starts one more replica, which joins the cluster; returns its index.
    pub fn add_replica(&mut self) -> usize {
        let i = self.replicas.len();
        let first = self.replicas[0].ip.octets();
        let ip = Ipv4Addr::new(first[0], first[1], first[2], i as u8 + 1);
        self.replicas.push(Replica::new(
            ip,
            self._root.path().join(format!("replica-{i}")),
        ));
        self.spawn(i);
        i
    }

    /// The options replicas are (re)started with from now on.
    pub fn options_mut(&mut self) -> &mut ClusterOptions {
        &mut self.options
    }

    /// kill -9 of replica `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.replicas[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The directory with the cluster CA and the admin certificate.
    pub fn pki_dir(&self) -> PathBuf {
        server::pki_dir(&self.replicas[0].data_dir)
    }

    fn dialer(&self) -> Dialer {
        let tls = server::admin_client_config(&self.pki_dir()).expect("admin certificate");
        Dialer::new(tls, Some(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST)))
    }

    /// An admin client of every replica (starting at a random one).
    pub fn client(&self, timeout: Duration) -> Client {
        let mut addrs: Vec<String> = self.replicas.iter().map(|r| r.addr.clone()).collect();
        let start = rotation() % addrs.len();
        addrs.rotate_left(start);
        Client::new(addrs, self.dialer(), timeout)
    }

    /// An admin client of replica `i` only.
    pub fn client_of(&self, i: usize, timeout: Duration) -> Client {
        Client::new(vec![self.replicas[i].addr.clone()], self.dialer(), timeout)
    }

    /// The status of every running replica, by index.
    pub async fn statuses(&self) -> Vec<(usize, Status)> {
        let mut out = Vec::new();
        for (i, replica) in self.replicas.iter().enumerate() {
            if !replica.is_running() {
                continue;
            }
            if let Ok(status) = self.client_of(i, Duration::from_secs(2)).status().await {
                out.push((i, status));
            }
        }
        out
    }

    /// Waits until a running replica leads and the running replicas agree
    /// on it; returns its index.
    pub async fn wait_for_leader(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let statuses = self.statuses().await;
            let leaders: Vec<Option<u64>> = statuses.iter().map(|(_, s)| s.leader).collect();
            if let Some(Some(leader)) = leaders.first()
                && leaders.iter().all(|l| *l == Some(*leader))
                && let Some(i) = self.replicas.iter().position(|r| r.id == Some(*leader))
                && self.replicas[i].is_running()
            {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader within {timeout:?}: {statuses:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The root of the cluster's files.
    pub fn root(&self) -> &Path {
        self._root.path()
    }
}

fn rotation() -> usize {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed) as usize
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.replicas.len() {
            self.kill(i);
        }
    }
}

/// Replica `isolated` cut off from the other replicas by nftables drops
/// (both ways) until dropped; clients on 127.0.0.1 still reach it.
#[derive(Debug)]
pub struct Partition {
    table: String,
}

impl Partition {
    /// Installs the drops. Needs root and the `nft` command.
    pub fn isolate(cluster: &Cluster, isolated: usize) -> Partition {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let table = format!(
            "flotilla_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let cut = cluster.replicas[isolated].ip;
        let others: Vec<String> = cluster
            .replicas
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != isolated)
            .map(|(_, r)| r.ip.to_string())
            .collect();
        let others = others.join(", ");
        let ruleset = format!(
            "table ip {table} {{\n\
             \tchain input {{\n\
             \t\ttype filter hook input priority -10; policy accept;\n\
             \t\tip saddr {cut} ip daddr {{ {others} }} drop\n\
             \t\tip saddr {{ {others} }} ip daddr {cut} drop\n\
             \t}}\n\
             }}\n"
        );
        nft(&["-f", "-"], Some(&ruleset));
        Partition { table }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        nft(&["delete", "table", "ip", &self.table], None);
    }
}

fn nft(args: &[&str], stdin: Option<&str>) {
    use std::io::Write as _;
    let mut child = Command::new("nft")
        .args(args)
        .stdin(Stdio::piped())
        .spawn()
        .expect("run nft (install nftables; tests run as root)");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("nft stdin")
            .write_all(text.as_bytes())
            .expect("write the ruleset to nft");
    }
    drop(child.stdin.take());
    let status = child.wait().expect("wait for nft");
    assert!(status.success(), "nft {args:?} failed");
}

/// The socket address of a replica's `ip:port`.
pub fn socket_addr(addr: &str) -> SocketAddr {
    addr.parse().expect("replica address")
}

/// `PRAGMA integrity_check` of a (stopped) replica's database: `"ok"` when
/// the file is consistent.
pub fn integrity_check(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).expect("open the replica database");
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut stmt| {
            stmt.query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()
        })
        .expect("run integrity_check");
    rows.join("; ")
}
