//! The device link's test parts: a certificate authority with device and
//! hub certificates, a real Mosquitto broker (Debian's) with TLS, client
//! certificates and Flotilla's ACL file, and a hub-side MQTT client that
//! publishes desired states and collects what devices send.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use flotilla_hub::pki::{CertRequest, CertUsage, ClusterCa};
use flotilla_shared::wire::{self, DesiredState, Message, topics};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS, TlsConfiguration, Transport};

/// The certificate name the hub's gateway connects with.
pub const HUB_USER: &str = "flotilla-hub";

/// A CA and the certificates issued from it, as PEM files in a directory.
#[derive(Debug)]
pub struct TestPki {
    pub dir: tempfile::TempDir,
    ca: ClusterCa,
}

impl TestPki {
    pub fn new() -> anyhow::Result<TestPki> {
        let dir = tempfile::Builder::new().prefix("flotilla-pki-").tempdir()?;
        let ca = ClusterCa::generate("flotilla test CA")?;
        std::fs::write(dir.path().join("ca.pem"), ca.certificate().pem())?;
        Ok(TestPki { dir, ca })
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Issues `<name>.pem` and `<name>-key.pem` for a client named `name`
    /// (or a server for 127.0.0.1 with `server`); answers (cert, key).
    pub fn issue(&self, name: &str, server: bool) -> anyhow::Result<(PathBuf, PathBuf)> {
        let issued = self.ca.issue(&CertRequest {
            common_name: name.to_owned(),
            organizations: Vec::new(),
            dns_names: if server {
                vec!["localhost".into()]
            } else {
                Vec::new()
            },
            ip_addresses: if server {
                vec![std::net::Ipv4Addr::LOCALHOST.into()]
            } else {
                Vec::new()
            },
            usage: if server {
                CertUsage::Server
            } else {
                CertUsage::Client
            },
            validity: Duration::from_secs(24 * 3600),
        })?;
        let cert = self.dir.path().join(format!("{name}.pem"));
        let key = self.dir.path().join(format!("{name}-key.pem"));
        std::fs::write(&cert, issued.certificate.pem())?;
        std::fs::write(&key, issued.key.pem())?;
        Ok((cert, key))
    }

    /// A rustls client configuration (ring) presenting `name`'s certificate.
    pub fn client_tls(&self, name: &str) -> anyhow::Result<rustls::ClientConfig> {
        let (cert, key) = self.issue(name, false)?;
        Ok(flotilla_agent::link::tls_config(&self.ca(), &cert, &key)?)
    }
}

/// A Mosquitto broker on 127.0.0.1 requiring client certificates, with
/// Flotilla's ACL file.
#[derive(Debug)]
pub struct Mosquitto {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Mosquitto {
    pub fn start(pki: &TestPki) -> anyhow::Result<Mosquitto> {
        let binary = Path::new("/usr/sbin/mosquitto");
        if !binary.exists() {
            bail!(
                "/usr/sbin/mosquitto is missing: run scripts/setup.sh (apt-get install mosquitto)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("flotilla-mosquitto-")
            .tempdir()?;
        let (cert, key) = pki.issue("mosquitto", true)?;
        let acl = dir.path().join("acl");
        std::fs::write(&acl, topics::mosquitto_acl(HUB_USER))?;
        let port = crate::registry::free_port()?;
        let config = format!(
            "per_listener_settings false\nallow_anonymous false\npersistence false\n\
             log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n\
             max_keepalive 65535\nmessage_size_limit {}\n\
             listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n\
             require_certificate true\nuse_identity_as_username true\nacl_file {}\n",
            wire::MAX_MESSAGE_BYTES + 4096,
            pki.ca().display(),
            cert.display(),
            key.display(),
            acl.display(),
        );
        let config_path = dir.path().join("mosquitto.conf");
        std::fs::write(&config_path, config)?;
        let child = Self::spawn(dir.path())?;
        let broker = Mosquitto { child, port, dir };
        broker.wait_listening()?;
        Ok(broker)
    }

    fn spawn(dir: &Path) -> anyhow::Result<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("mosquitto.log"))?;
        Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(dir.join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting mosquitto")
    }

    fn wait_listening(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                bail!("mosquitto did not listen: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Kills the broker (everything it held in memory is lost: it keeps no
    /// persistence) and starts it again on the same port.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(self.dir.path())?;
        self.wait_listening()
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("mosquitto.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the hub side received: (topic, message), in arrival order.
type Received = Arc<Mutex<Vec<(String, Message)>>>;

/// The hub's side of the link, as a test drives it.
#[derive(Debug)]
pub struct HubClient {
    client: AsyncClient,
    received: Received,
    runtime: tokio::runtime::Runtime,
}

impl HubClient {
    /// Connects as [`HUB_USER`] and subscribes to what the gateway hears.
    pub fn connect(broker: &Mosquitto, pki: &TestPki) -> anyhow::Result<HubClient> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let tls = Arc::new(pki.client_tls(HUB_USER)?);
        let mut options = MqttOptions::new(HUB_USER, "127.0.0.1", broker.port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(
                wire::MAX_MESSAGE_BYTES + 4096,
                wire::MAX_MESSAGE_BYTES + 4096,
            )
            .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let received: Received = Arc::default();
        let (subscribed_tx, subscribed) = std::sync::mpsc::channel();
        let sink = Arc::clone(&received);
        let subscriber = client.clone();
        runtime.spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        for filter in topics::HUB_SUBSCRIPTIONS {
                            let _ = subscriber.subscribe(filter, QoS::AtLeastOnce).await;
                        }
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        let _ = subscribed_tx.send(());
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        if let Ok(message) = wire::decode(&p.payload) {
                            sink.lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push((p.topic.clone(), message));
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        for _ in topics::HUB_SUBSCRIPTIONS {
            subscribed
                .recv_timeout(Duration::from_secs(10))
                .map_err(|_| {
                    anyhow::anyhow!("the hub client did not subscribe: {}", broker.log())
                })?;
        }
        Ok(HubClient {
            client,
            received,
            runtime,
        })
    }

    /// Publishes `state` retained at QoS 1 on its node's desired topic.
    pub fn publish_desired(&self, state: &DesiredState) -> anyhow::Result<()> {
        let topic = topics::topic(&state.node, topics::TopicKind::Desired)?;
        let payload = wire::encode(&Message::DesiredState(state.clone()));
        self.runtime
            .block_on(self.client.publish(topic, QoS::AtLeastOnce, true, payload))?;
        Ok(())
    }

    /// Publishes `message` at QoS 1, not retained, on `topic`.
    pub fn publish(&self, topic: &str, message: &Message) -> anyhow::Result<()> {
        let payload = wire::encode(message);
        self.runtime
            .block_on(self.client.publish(topic, QoS::AtLeastOnce, false, payload))?;
        Ok(())
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<(String, Message)> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits for a message `check` accepts (the newest first); panics after
    /// `timeout` with what did arrive and `context()`.
    pub fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        context: impl Fn() -> String,
        check: impl FnMut(&str, &Message) -> bool,
    ) -> Message {
        self.wait_for_since(0, timeout, what, context, check)
    }

    /// [`HubClient::wait_for`] among the messages received after the first
    /// `since`.
    pub fn wait_for_since(
        &self,
        since: usize,
        timeout: Duration,
        what: &str,
        context: impl Fn() -> String,
        mut check: impl FnMut(&str, &Message) -> bool,
    ) -> Message {
        let start = Instant::now();
        loop {
            let received = self.received();
            let fresh = received.get(since..).unwrap_or_default();
            if let Some((_, message)) = fresh.iter().rev().find(|(t, m)| check(t, m)) {
                return message.clone();
            }
            if start.elapsed() > timeout {
                let kinds: Vec<String> = received
                    .iter()
                    .map(|(t, m)| format!("{t}: {}", m.kind()))
                    .collect();
                panic!(
                    "no {what} after {timeout:?}; received {kinds:#?}\n{}",
                    context()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `flotilla-agent run` flags linking device `node` to `broker`, with a
/// certificate issued by `pki`, heartbeating every 2 s, and disk pressure
/// off (shared test machines run with little disk free).
pub fn device_link_args(broker: &Mosquitto, pki: &TestPki, node: &str) -> Vec<String> {
    let (cert, key) = pki.issue(node, false).expect("device certificate");
    [
        "--hub",
        &broker.address(),
        "--hub-ca",
        &pki.ca().display().to_string(),
        "--cert",
        &cert.display().to_string(),
        "--key",
        &key.display().to_string(),
        "--heartbeat-seconds",
        "2",
        "--disk-pressure-percent",
        "0",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `flotilla-hub server` flags making the leader's gateway a client of
/// `broker`, renewing Leases every second.
pub fn hub_broker_args(broker: &Mosquitto, pki: &TestPki) -> Vec<String> {
    let (cert, key) = pki.issue(HUB_USER, false).expect("hub certificate");
    [
        "--mqtt-broker",
        &broker.address(),
        "--mqtt-ca",
        &pki.ca().display().to_string(),
        "--mqtt-cert",
        &cert.display().to_string(),
        "--mqtt-key",
        &key.display().to_string(),
        "--lease-renewal-seconds",
        "1",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The topics device-1 must not publish on: device-2's status topics and
/// every desired or enrollment-response topic.
pub const FOREIGN_TOPICS_OF_DEVICE_1: [&str; 5] = [
    "flotilla/v1/nodes/device-2/heartbeat",
    "flotilla/v1/nodes/device-2/status",
    "flotilla/v1/nodes/device-2/desired",
    "flotilla/v1/nodes/device-1/desired",
    "flotilla/v1/enroll/device-2/response",
];

/// Writes a heartbeat naming `node` (a wire message, as a device sends it)
/// into a file in `dir`, for `mosquitto_pub -f`; answers its path.
pub fn heartbeat_file(dir: &Path, node: &str) -> PathBuf {
    let bytes = wire::encode(&Message::Heartbeat(wire::Heartbeat {
        node: node.to_owned(),
        ..Default::default()
    }));
    let path = dir.join(format!("heartbeat-of-{node}"));
    std::fs::write(&path, bytes).expect("write the heartbeat file");
    path
}
