//! The device link: the agent's MQTT connection to its hub.
//!
//! One connection at a time, over TLS with the device's certificate, to one
//! of the hub addresses it knows (a broker per hub replica, or one external
//! broker). On every connect it subscribes to its desired-state topic,
//! sends its [`NodeRegistration`] and the latest status of every pod, and
//! then a heartbeat every `heartbeat` interval and each status change as it
//! happens. Its last will is an [`Offline`] message naming the connection.
//!
//! - **Persistent session, QoS 1, manual acks.** A desired state is
//!   acknowledged only once the agent has written it (or a newer one) to
//!   disk, so a crash or power cut in between makes the broker deliver it
//!   again. Anything older than what the agent holds is acknowledged and
//!   dropped, never applied.
//! - **Reconnects** go round the addresses with capped exponential backoff
//!   and full jitter (a fleet that lost its hub must not come back all in the
//!   same second), with a new client per attempt.
//! - **Keepalive** is long (an hour by default): the heartbeat is the
//!   liveness signal, and MQTT pings on top would only cost bytes on metered
//!   links.

pub mod device;
pub mod identity;
pub mod logs;
pub mod outbox;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flotilla_shared::wire::{
    self, DesiredState, Heartbeat, ImageInfo, Message, NodeRegistration, Offline, PodStatusUpdate,
    topics::{Topic, TopicKind},
};
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Incoming, LastWill, MqttOptions, Publish, QoS,
    TlsConfiguration, Transport,
};
use tokio::sync::{mpsc, watch};

use outbox::{Acks, Outbox};

/// A hub address: a host name or IP the hub's certificate names, and a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubAddress {
    pub host: String,
    pub port: u16,
}

impl std::str::FromStr for HubAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?}: expected host:port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = port
            .parse()
            .map_err(|_| format!("{s:?}: invalid port {port:?}"))?;
        if host.is_empty() || port == 0 {
            return Err(format!("{s:?}: expected host:port"));
        }
        Ok(HubAddress {
            host: host.to_owned(),
            port,
        })
    }
}

/// How the link connects.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    pub node: String,
    pub hubs: Vec<HubAddress>,
    /// The TLS configuration of the next connection (renewals replace it).
    pub tls: watch::Receiver<Arc<rustls::ClientConfig>>,
    pub heartbeat: Duration,
    pub keep_alive: Duration,
    /// First reconnect delay (before jitter); doubles up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub identity: device::Identity,
    /// Told when the hub refuses the device's certificate.
    pub refused: Option<Arc<tokio::sync::Notify>>,
}

/// Why the link could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{path}: {reason}")]
    Tls { path: String, reason: String },
}

/// A TLS client configuration (ring) trusting `ca` and presenting `cert`
/// with `key`, all PEM files.
pub fn tls_config(ca: &Path, cert: &Path, key: &Path) -> Result<rustls::ClientConfig, LinkError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let fail = |path: &Path, reason: String| LinkError::Tls {
        path: path.display().to_string(),
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    let cas = CertificateDer::pem_file_iter(ca)
        .map_err(|e| fail(ca, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(ca, e.to_string()))?;
    if cas.is_empty() {
        return Err(fail(ca, "no CERTIFICATE in the file".into()));
    }
    for der in cas {
        roots.add(der).map_err(|e| fail(ca, e.to_string()))?;
    }
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| fail(cert, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(fail(cert, "no CERTIFICATE in the file".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| fail(key, e.to_string()))?;
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(ca, e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, private)
        .map_err(|e| fail(cert, e.to_string()))
}

/// What the link reads from the rest of the agent.
pub struct AgentSide {
    /// Where received desired states go (the agent applies them).
    pub desired: watch::Sender<Option<DesiredState>>,
    /// The revision the agent has on disk.
    pub stored: watch::Receiver<Option<u64>>,
    /// Pod status changes.
    pub statuses: mpsc::UnboundedReceiver<PodStatusUpdate>,
    /// The images present, for the registration.
    pub images: Box<dyn Fn() -> Vec<ImageInfo> + Send + Sync>,
    pub state_dir: std::path::PathBuf,
}

impl std::fmt::Debug for AgentSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSide")
            .field("stored", &*self.stored.borrow())
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

/// One connection attempt: to which hub, named how.
struct Attempt<'a> {
    config: &'a LinkConfig,
    hub: &'a HubAddress,
    session: u64,
}

/// What outlives a connection.
struct Carried<'a> {
    agent: &'a mut AgentSide,
    outbox: &'a mut Outbox,
    seq: &'a mut u64,
}

/// Why one connection ended.
enum Ended {
    Shutdown,
    Failed(String),
}

/// Runs the link until `shutdown`.
pub async fn run(config: LinkConfig, mut agent: AgentSide, mut shutdown: watch::Receiver<bool>) {
    let mut outbox = Outbox::default();
    let mut renewed = config.tls.clone();
    let mut seq = 0u64;
    let mut failures = 0u32;
    let mut attempt = 0usize;
    loop {
        let hub = &config.hubs[attempt % config.hubs.len()];
        attempt += 1;
        let session = unix_ms();
        let connected_at = tokio::time::Instant::now();
        let attempt_now = Attempt {
            config: &config,
            hub,
            session,
        };
        let carried = Carried {
            agent: &mut agent,
            outbox: &mut outbox,
            seq: &mut seq,
        };
        match connection(&attempt_now, carried, &mut shutdown).await {
            Ended::Shutdown => return,
            Ended::Failed(error) => {
                // A connection that lasted a while was no failure to back
                // off from: start the delays again.
                if connected_at.elapsed() > config.max_backoff {
                    failures = 0;
                }
                let delay = backoff(failures, config.min_backoff, config.max_backoff, rand());
                failures = failures.saturating_add(1);
                tracing::warn!(hub = %format!("{}:{}", hub.host, hub.port), %error, retry_in = ?delay, "hub link down");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    // A new certificate: try it at once.
                    Ok(()) = renewed.changed() => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

/// The delay before reconnect attempt `failures` (0 for the first):
/// uniformly random between zero and `min · 2^failures`, capped at `max`
/// ("full jitter"). `random` is in [0, 1).
pub fn backoff(failures: u32, min: Duration, max: Duration, random: f64) -> Duration {
    let ceiling = min
        .saturating_mul(2u32.saturating_pow(failures.min(20)))
        .min(max);
    ceiling.mul_f64(random.clamp(0.0, 1.0))
}

/// Whether the hub refused who the device is (its certificate, at the TLS
/// handshake or at CONNECT) rather than the connection failing.
fn refuses_identity(error: &ConnectionError) -> bool {
    use rumqttc::ConnectReturnCode::{BadUserNamePassword, NotAuthorized};
    match error {
        ConnectionError::ConnectionRefused(NotAuthorized | BadUserNamePassword) => true,
        // The server's verdict on the client's certificate is a TLS alert
        // (in TLS 1.3, after the client's side of the handshake is done).
        other => {
            let text = other.to_string();
            [
                "alert: BadCertificate",
                "alert: CertificateExpired",
                "alert: CertificateRevoked",
                "alert: CertificateUnknown",
            ]
            .iter()
            .any(|alert| text.contains(alert))
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A number in [0, 1), from the clock's nanoseconds mixed with the
/// process id (enough to spread a fleet's reconnects; not for secrets).
fn rand() -> f64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let mut x = nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    // splitmix64's finalizer.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

fn topic(node: &str, kind: TopicKind) -> String {
    // The node name was validated at start; a device topic always forms.
    Topic::new(node, kind).map_or_else(|_| String::new(), |t| t.to_string())
}

fn options(config: &LinkConfig, hub: &HubAddress, session: u64) -> MqttOptions {
    let mut options = MqttOptions::new(config.node.clone(), hub.host.clone(), hub.port);
    options
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(config.keep_alive)
        .set_max_packet_size(
            wire::MAX_MESSAGE_BYTES + 4096,
            wire::MAX_MESSAGE_BYTES + 4096,
        )
        .set_last_will(LastWill::new(
            topic(&config.node, TopicKind::Status),
            wire::encode(&Message::Offline(Offline {
                node: config.node.clone(),
                session,
            })),
            QoS::AtLeastOnce,
            false,
        ))
        .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::clone(&config.tls.borrow()),
        )));
    options
}

/// One connection, from connect to failure or shutdown.
async fn connection(
    attempt: &Attempt<'_>,
    carried: Carried<'_>,
    shutdown: &mut watch::Receiver<bool>,
) -> Ended {
    let options = options(attempt.config, attempt.hub, attempt.session);
    let (client, eventloop) = AsyncClient::new(options, 64);
    let (events_tx, mut events) = mpsc::channel(64);
    let poller = tokio::spawn(poll(eventloop, events_tx));
    let ended = serve(attempt, carried, shutdown, &client, &mut events).await;
    if matches!(ended, Ended::Shutdown) {
        // A clean goodbye: the broker drops the will.
        let _ = client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while events.recv().await.is_some() {}
        })
        .await;
    }
    poller.abort();
    ended
}

/// Drives the event loop, handing events over until it fails.
async fn poll(mut eventloop: EventLoop, events: mpsc::Sender<Result<Event, ConnectionError>>) {
    loop {
        let event = eventloop.poll().await;
        let failed = event.is_err();
        if events.send(event).await.is_err() || failed {
            return;
        }
    }
}

async fn serve(
    attempt: &Attempt<'_>,
    carried: Carried<'_>,
    shutdown: &mut watch::Receiver<bool>,
    client: &AsyncClient,
    events: &mut mpsc::Receiver<Result<Event, ConnectionError>>,
) -> Ended {
    let Attempt {
        config,
        hub,
        session,
    } = *attempt;
    let Carried { agent, outbox, seq } = carried;
    let node = &config.node;
    let desired_topic = topic(node, TopicKind::Desired);
    let status_topic = topic(node, TopicKind::Status);
    let heartbeat_topic = topic(node, TopicKind::Heartbeat);
    let log_topic = topic(node, TopicKind::LogRequest);
    // `kubectl logs` streams, stopped with the connection.
    let mut log_streams = logs::Streams::default();
    let mut acks: Acks<Publish> = Acks::default();
    let mut connected = false;
    let mut heartbeat = tokio::time::interval(config.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let failed = |e: rumqttc::ClientError| Ended::Failed(e.to_string());
    loop {
        tokio::select! {
            _ = shutdown.changed() => return Ended::Shutdown,
            event = events.recv() => {
                let event = match event {
                    Some(Ok(event)) => event,
                    Some(Err(e)) => {
                        if refuses_identity(&e) && let Some(refused) = &config.refused {
                            // Perhaps revoked or expired: renewing (or
                            // enrolling again) tells, and may fix it.
                            refused.notify_one();
                        }
                        return Ended::Failed(e.to_string());
                    }
                    None => return Ended::Failed("the event loop ended".into()),
                };
                match event {
                    Event::Incoming(Incoming::ConnAck(ack)) => {
                        connected = true;
                        tracing::info!(hub = %format!("{}:{}", hub.host, hub.port), session_present = ack.session_present, "hub link up");
                        if let Err(e) = client.subscribe(desired_topic.clone(), QoS::AtLeastOnce).await {
                            return failed(e);
                        }
                        if let Err(e) = client.subscribe(log_topic.clone(), QoS::AtLeastOnce).await {
                            return failed(e);
                        }
                        let address = (hub.host.as_str(), hub.port)
                            .to_socket_addrs()
                            .ok()
                            .and_then(|mut a| a.next());
                        let registration = registration(config, agent, address, session);
                        if let Err(e) = publish(client, &status_topic, &Message::NodeRegistration(registration)).await {
                            return failed(e);
                        }
                        for status in outbox.all() {
                            if let Err(e) = publish(client, &status_topic, &Message::PodStatusUpdate(status.clone())).await {
                                return failed(e);
                            }
                        }
                    }
                    Event::Incoming(Incoming::Publish(delivery)) if delivery.topic == log_topic => {
                        match wire::decode(&delivery.payload) {
                            Ok(message) => log_streams.handle(node, &agent.state_dir, client, message),
                            Err(error) => tracing::warn!(%error, "undecodable log request ignored"),
                        }
                        if let Err(e) = client.ack(&delivery).await {
                            return failed(e);
                        }
                    }
                    Event::Incoming(Incoming::Publish(delivery)) => {
                        if let Some(revision) = received(node, &desired_topic, &delivery, agent) {
                            acks.hold(revision, delivery);
                        } else if let Err(e) = client.ack(&delivery).await {
                            return failed(e);
                        }
                        let stored = agent.stored.borrow().unwrap_or(0);
                        for delivery in acks.release(stored) {
                            if let Err(e) = client.ack(&delivery).await {
                                return failed(e);
                            }
                        }
                    }
                    _ => {}
                }
            }
            changed = agent.stored.changed() => {
                if changed.is_err() {
                    return Ended::Shutdown;
                }
                let stored = agent.stored.borrow_and_update().unwrap_or(0);
                if let Some(desired) = agent.desired.borrow().as_ref() {
                    outbox.retain(|uid| desired.pods.iter().any(|p| p.uid == uid));
                }
                for delivery in acks.release(stored) {
                    if let Err(e) = client.ack(&delivery).await {
                        return failed(e);
                    }
                }
            }
            status = agent.statuses.recv() => {
                let Some(status) = status else { return Ended::Shutdown };
                outbox.put(status.clone());
                if connected
                    && let Err(e) = publish(client, &status_topic, &Message::PodStatusUpdate(status)).await
                {
                    return failed(e);
                }
            }
            _ = heartbeat.tick(), if connected => {
                let beat = heartbeat_now(config, agent, outbox, *seq);
                *seq += 1;
                let payload = wire::encode(&Message::Heartbeat(beat));
                if let Err(e) = client.publish(heartbeat_topic.clone(), QoS::AtMostOnce, false, payload).await {
                    return failed(e);
                }
            }
        }
    }
}

/// Handles a delivery: a desired state newer than the one stored goes to the
/// agent and its revision is answered (acknowledge once stored); anything
/// else (stale, malformed, for another node, another topic) answers `None`
/// (acknowledge now: delivering it again would change nothing).
fn received(node: &str, desired_topic: &str, delivery: &Publish, agent: &AgentSide) -> Option<u64> {
    if delivery.topic != desired_topic {
        tracing::warn!(topic = %delivery.topic, "message on an unexpected topic ignored");
        return None;
    }
    let desired = match wire::decode(&delivery.payload) {
        Ok(Message::DesiredState(desired)) if desired.node == node => desired,
        Ok(other) => {
            tracing::warn!(
                kind = other.kind(),
                "not a desired state for this node; ignored"
            );
            return None;
        }
        Err(error) => {
            tracing::warn!(%error, "undecodable desired state ignored");
            return None;
        }
    };
    let stored = *agent.stored.borrow();
    if stored.is_some_and(|s| desired.revision <= s) {
        tracing::debug!(
            revision = desired.revision,
            ?stored,
            "desired state already held"
        );
        return None;
    }
    let revision = desired.revision;
    agent.desired.send_replace(Some(desired));
    Some(revision)
}

async fn publish(
    client: &AsyncClient,
    topic: &str,
    message: &Message,
) -> Result<(), rumqttc::ClientError> {
    client
        .publish(topic, QoS::AtLeastOnce, false, wire::encode(message))
        .await
}

fn registration(
    config: &LinkConfig,
    agent: &AgentSide,
    hub: Option<SocketAddr>,
    session: u64,
) -> NodeRegistration {
    device::registration(
        &config.identity,
        &agent.state_dir,
        (agent.images)(),
        hub,
        session,
    )
}

fn heartbeat_now(config: &LinkConfig, agent: &AgentSide, outbox: &Outbox, seq: u64) -> Heartbeat {
    let running = outbox
        .all()
        .filter(|s| s.phase == wire::PodPhase::Running)
        .count() as u32;
    device::heartbeat(
        &config.identity,
        seq,
        *agent.stored.borrow(),
        running,
        &agent.state_dir,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_full_jitter() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(300));
        assert_eq!(backoff(0, min, max, 0.0), Duration::ZERO);
        assert_eq!(backoff(0, min, max, 0.5), Duration::from_millis(500));
        assert_eq!(backoff(3, min, max, 0.5), Duration::from_secs(4));
        assert_eq!(backoff(30, min, max, 0.999), max.mul_f64(0.999));
        assert!(backoff(u32::MAX, min, max, 1.5) <= max);
        let draws: Vec<f64> = (0..100).map(|_| rand()).collect();
        assert!(draws.iter().all(|x| (0.0..1.0).contains(x)));
    }

    #[test]
    fn hub_addresses_parse() {
        let a: HubAddress = "hub-1.local:8883".parse().unwrap();
        assert_eq!((a.host.as_str(), a.port), ("hub-1.local", 8883));
        let v6: HubAddress = "[fd00::1]:8883".parse().unwrap();
        assert_eq!(v6.host, "fd00::1");
        for bad in ["hub", "hub:", ":8883", "hub:0", "hub:99999"] {
            assert!(bad.parse::<HubAddress>().is_err(), "{bad}");
        }
    }
}
