//! The embedded broker: the MQTT 3.1.1 endpoint devices connect to when no
//! external broker is configured. Every replica runs one, for the devices
//! connected to it.
//!
//! Why not rumqttd (DESIGN.md's first candidate): it has no per-publish or
//! per-subscribe authorization hook, so the topic ACLs would need a front
//! parsing every packet anyway; it keeps sessions and retained messages in
//! memory only, acknowledges a QoS 1 publish before storing it, does not
//! resend a retained message to a resumed session (bytebeamio/rumqtt#1069),
//! and brings ~300 crates (a second axum and hyper, a Prometheus exporter,
//! a config-file stack). A device link needs far less than a general
//! broker: one subscription per device (its own desired state, which the
//! store already holds, so there is nothing to persist), publishes on its
//! own status topics, a last will. This endpoint serves exactly that, with
//! rumqttc's MQTT codec (`rumqttc::mqttbytes::v4`) for the packets, and:
//!
//! - **identity** from the TLS client certificate (signed by the cluster CA,
//!   organization `system:nodes`, common name the node, optionally as
//!   `system:node:<node>`); the client id must be that node;
//! - **ACLs** from `wire::topics`: a subscription to anything but the
//!   device's own desired or log-request topic is refused (SUBACK 0x80), a
//!   publish anywhere but its own status topics closes the connection, and
//!   so does a will for another topic;
//! - **acknowledgements** only once the gateway wrote what was published
//!   (PUBACK after the store write), so nothing acknowledged is lost;
//! - **sessions**: none are kept (CONNACK says so); on every subscription
//!   the gateway sends the device's latest desired state, and the agent
//!   sends its registration and the latest status of every pod on every
//!   connect;
//! - **revocation**: a device revoked in `kube-system/flotilla-revoked-devices`
//!   is refused at CONNECT and its live connection closed (nobody is let
//!   in before the gateway has loaded the revocations);
//! - **liveness**: a connection silent for 1.5 keepalives is closed, as a
//!   broker must; its will, or a lost connection's, reaches the gateway.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use flotilla_shared::wire::{self, topics};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use rumqttc::mqttbytes::v4::{
    ConnAck, ConnectReturnCode, Packet, PubAck, Publish, SubAck, SubscribeReasonCode, UnsubAck,
};
use rumqttc::mqttbytes::{Error as CodecError, QoS};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::enroll::Revocations;

/// The largest packet a device may send or be sent.
pub const MAX_PACKET: usize = wire::MAX_MESSAGE_BYTES + 4096;
/// Time for the TLS handshake and the CONNECT packet.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// QoS 1 publishes of one device waiting for the store before the endpoint
/// stops reading from it.
const MAX_UNACKED: usize = 64;
/// The organization device certificates carry (Kubernetes' node group).
pub const NODES_GROUP: &str = "system:nodes";

/// What the endpoint tells the gateway, in order per connection.
#[derive(Debug)]
pub enum FromDevice {
    /// A device connected (a previous connection of the same node must be
    /// closed: MQTT's session takeover).
    Connected {
        node: String,
        connection: u64,
        to_device: mpsc::UnboundedSender<ToDevice>,
    },
    /// It subscribed to its desired state: send it the latest.
    Subscribed { node: String, connection: u64 },
    /// A publish on one of its status topics; `ack` (QoS 1) is to be fired
    /// once it is written.
    Message {
        node: String,
        topic: String,
        payload: Bytes,
        ack: Option<oneshot::Sender<()>>,
    },
    /// The connection ended; `will` is its last will unless it said
    /// goodbye (DISCONNECT).
    Gone {
        node: String,
        connection: u64,
        will: Option<Bytes>,
    },
}

/// What the gateway tells one connection.
#[derive(Debug)]
pub enum ToDevice {
    /// A desired state to publish (QoS 1) on the device's desired topic.
    Desired(Bytes),
    /// A log request or cancellation to publish (QoS 1) on the device's
    /// log request topic.
    LogRequest(Bytes),
    /// Close the connection (taken over by a newer one).
    Close,
}

/// Accepts devices on `listener` until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    events: mpsc::UnboundedSender<FromDevice>,
    revocations: Revoked,
) {
    let connections = Arc::new(AtomicU64::new(1));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(error = %e, "device endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let events = events.clone();
        let revocations = revocations.clone();
        let connection = connections.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(CONNECT_TIMEOUT, acceptor.accept(stream)).await;
            let tls = match handshake {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return debug!(%peer, error = %e, "device TLS handshake failed"),
                Err(_) => return debug!(%peer, "device TLS handshake timed out"),
            };
            let identity = crate::pki::peer_identity(tls.get_ref().1);
            let Some((node, not_before)) = identity
                .as_ref()
                .and_then(|id| Some((node_of(id)?, id.not_before)))
            else {
                warn!(%peer, ?identity, "refused: not a device certificate");
                return;
            };
            let device = Device {
                node,
                not_before,
                connection,
                peer,
            };
            serve_device(tls, device, events, revocations).await;
        });
    }
}

/// The revoked devices as the gateway last loaded them (`None` until it
/// has: no device is let in before).
pub type Revoked = watch::Receiver<Option<Arc<Revocations>>>;

/// Whether the revocations say `node`'s certificate from `not_before` is
/// refused; `None` when they are not loaded yet.
fn revoked(revocations: &Revoked, node: &str, not_before: std::time::SystemTime) -> Option<bool> {
    revocations
        .borrow()
        .as_ref()
        .map(|r| r.is_revoked(node, not_before))
}

/// Who one connection is.
struct Device {
    node: String,
    /// Its certificate's validity start (what revocation compares).
    not_before: std::time::SystemTime,
    connection: u64,
    peer: SocketAddr,
}

/// The node a certificate names: organization `system:nodes`, common name
/// `<node>` or `system:node:<node>`, a valid node name.
pub fn node_of(identity: &crate::pki::Identity) -> Option<String> {
    if !identity.organizations.iter().any(|o| o == NODES_GROUP) {
        return None;
    }
    let name = &identity.common_name;
    let node = name.strip_prefix("system:node:").unwrap_or(name);
    topics::validate_node_name(node).ok()?;
    Some(node.to_owned())
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
enum Ended {
    #[error("said goodbye")]
    Disconnected,
    #[error("taken over by a newer connection")]
    TakenOver,
    #[error("{0}")]
    Refused(String),
    #[error("silent for {0:?}")]
    Silent(Duration),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("malformed MQTT: {0}")]
    Codec(#[from] CodecError),
    #[error("the gateway is gone")]
    GatewayGone,
    #[error("the device was revoked")]
    Revoked,
}

/// Packets in and out of one byte stream.
struct Framed<S> {
    stream: S,
    read: BytesMut,
    write: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Framed<S> {
    fn new(stream: S) -> Self {
        Framed {
            stream,
            read: BytesMut::with_capacity(4096),
            write: BytesMut::with_capacity(4096),
        }
    }

    /// The next packet; cancel-safe (a partial packet stays buffered).
    async fn next(&mut self) -> Result<Packet, Ended> {
        loop {
            match Packet::read(&mut self.read, MAX_PACKET) {
                Ok(packet) => return Ok(packet),
                Err(CodecError::InsufficientBytes(_)) => {}
                Err(e) => return Err(e.into()),
            }
            if self.stream.read_buf(&mut self.read).await? == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
        }
    }

    async fn send(&mut self, packet: Packet) -> Result<(), Ended> {
        packet.write(&mut self.write, MAX_PACKET)?;
        self.stream.write_all(&self.write).await?;
        self.write.clear();
        self.stream.flush().await?;
        Ok(())
    }
}

async fn serve_device<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    device: Device,
    events: mpsc::UnboundedSender<FromDevice>,
    mut revocations: Revoked,
) {
    let Device {
        node,
        not_before,
        connection,
        peer,
    } = device;
    let mut framed = Framed::new(stream);
    let connect = match tokio::time::timeout(CONNECT_TIMEOUT, framed.next()).await {
        Ok(Ok(Packet::Connect(connect))) => connect,
        Ok(Ok(other)) => return debug!(%node, ?other, "refused: the first packet is not CONNECT"),
        Ok(Err(e)) => return debug!(%node, error = %e, "refused: no CONNECT"),
        Err(_) => return debug!(%node, "refused: no CONNECT in time"),
    };
    let status_topic = topics::Topic::new(&node, topics::TopicKind::Status)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let refusal = match revoked(&revocations, &node, not_before) {
        Some(false) => None,
        Some(true) => Some((
            ConnectReturnCode::NotAuthorized,
            "the device's certificate is revoked".to_owned(),
        )),
        // Not loaded yet: nobody is let in, and the device retries soon.
        None => Some((
            ConnectReturnCode::ServiceUnavailable,
            "the revoked devices are not loaded yet".to_owned(),
        )),
    };
    let refusal = if refusal.is_some() {
        refusal
    } else if connect.client_id != node {
        Some((
            ConnectReturnCode::BadClientId,
            format!(
                "client id {:?} is not the certificate's node",
                connect.client_id
            ),
        ))
    } else if connect
        .last_will
        .as_ref()
        .is_some_and(|w| w.topic != status_topic)
    {
        Some((
            ConnectReturnCode::NotAuthorized,
            "a last will for another topic than the device's status".to_owned(),
        ))
    } else {
        None
    };
    if let Some((code, why)) = refusal {
        warn!(%node, %peer, why, "device refused");
        let _ = framed
            .send(Packet::ConnAck(ConnAck::new(code, false)))
            .await;
        return;
    }
    if framed
        .send(Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::Success,
            false,
        )))
        .await
        .is_err()
    {
        return;
    }
    let (to_device, mut inbox) = mpsc::unbounded_channel();
    let announce = FromDevice::Connected {
        node: node.clone(),
        connection,
        to_device,
    };
    if events.send(announce).is_err() {
        return;
    }
    info!(%node, %peer, connection, "device connected");
    let will = connect.last_will.map(|w| w.message);
    let keep_alive = Duration::from_secs(u64::from(connect.keep_alive));
    let session = Session {
        node: &node,
        connection,
        events: &events,
        keep_alive,
    };
    let ended = tokio::select! {
        ended = session.run(&mut framed, &mut inbox) => ended,
        () = revocation(&mut revocations, &node, not_before) => Ended::Revoked,
    };
    let will = match ended {
        Ended::Disconnected => None,
        _ => will,
    };
    info!(%node, connection, reason = %ended, will = will.is_some(), "device disconnected");
    let _ = events.send(FromDevice::Gone {
        node,
        connection,
        will,
    });
}

struct Session<'a> {
    node: &'a str,
    connection: u64,
    events: &'a mpsc::UnboundedSender<FromDevice>,
    keep_alive: Duration,
}

impl Session<'_> {
    async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        framed: &mut Framed<S>,
        inbox: &mut mpsc::UnboundedReceiver<ToDevice>,
    ) -> Ended {
        let node = self.node;
        let desired_topic = topics::Topic::new(node, topics::TopicKind::Desired)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let log_topic = topics::Topic::new(node, topics::TopicKind::LogRequest)
            .map(|t| t.to_string())
            .unwrap_or_default();
        // MQTT 3.1.1 §3.1.2.10: one and a half keepalives of silence.
        let silence = (!self.keep_alive.is_zero()).then(|| self.keep_alive.mul_f32(1.5));
        let mut unacked = FuturesUnordered::new();
        let mut next_pkid: u16 = 0;
        let mut deadline = silence.map(|s| tokio::time::Instant::now() + s);
        loop {
            let reading = unacked.len() < MAX_UNACKED;
            let result: Result<(), Ended> = tokio::select! {
                packet = framed.next(), if reading => match packet {
                    Ok(packet) => {
                        deadline = silence.map(|s| tokio::time::Instant::now() + s);
                        self.packet(framed, packet, &desired_topic, &mut unacked).await
                    }
                    Err(e) => Err(e),
                },
                Some(pkid) = unacked.next(), if !unacked.is_empty() => match pkid {
                    Some(pkid) => framed.send(Packet::PubAck(PubAck::new(pkid))).await,
                    // The gateway dropped it unwritten: no PUBACK, so the
                    // device sends it again after reconnecting.
                    None => Ok(()),
                },
                message = inbox.recv() => match message {
                    Some(ToDevice::Desired(payload)) => {
                        next_pkid = next_pkid.checked_add(1).unwrap_or(1);
                        let mut publish = Publish::new(desired_topic.clone(), QoS::AtLeastOnce, payload.to_vec());
                        publish.pkid = next_pkid;
                        framed.send(Packet::Publish(publish)).await
                    }
                    Some(ToDevice::LogRequest(payload)) => {
                        next_pkid = next_pkid.checked_add(1).unwrap_or(1);
                        let mut publish = Publish::new(log_topic.clone(), QoS::AtLeastOnce, payload.to_vec());
                        publish.pkid = next_pkid;
                        framed.send(Packet::Publish(publish)).await
                    }
                    Some(ToDevice::Close) => Err(Ended::TakenOver),
                    None => Err(Ended::GatewayGone),
                },
                () = sleep_until_opt(deadline) => Err(Ended::Silent(silence.unwrap_or_default())),
            };
            if let Err(ended) = result {
                return ended;
            }
        }
    }

    /// Handles one packet from the device.
    async fn packet<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        framed: &mut Framed<S>,
        packet: Packet,
        desired_topic: &str,
        unacked: &mut FuturesUnordered<
            std::pin::Pin<Box<dyn std::future::Future<Output = Option<u16>> + Send>>,
        >,
    ) -> Result<(), Ended> {
        let node = self.node;
        match packet {
            Packet::Publish(publish) => {
                if !topics::device_may_publish(node, &publish.topic) {
                    return Err(Ended::Refused(format!(
                        "publish on {:?}, which is not one of its status topics",
                        publish.topic
                    )));
                }
                let ack = match publish.qos {
                    QoS::AtMostOnce => None,
                    QoS::AtLeastOnce => {
                        let (tx, rx) = oneshot::channel();
                        let pkid = publish.pkid;
                        unacked.push(Box::pin(async move { rx.await.ok().map(|()| pkid) }));
                        Some(tx)
                    }
                    QoS::ExactlyOnce => {
                        return Err(Ended::Refused("QoS 2 is not supported".into()));
                    }
                };
                self.events
                    .send(FromDevice::Message {
                        node: node.to_owned(),
                        topic: publish.topic,
                        payload: publish.payload,
                        ack,
                    })
                    .map_err(|_| Ended::GatewayGone)
            }
            Packet::Subscribe(subscribe) => {
                let mut desired = false;
                let codes = subscribe
                    .filters
                    .iter()
                    .map(|f| {
                        if topics::device_may_subscribe(node, &f.path) {
                            desired |= f.path == desired_topic;
                            SubscribeReasonCode::Success(match f.qos {
                                QoS::AtMostOnce => QoS::AtMostOnce,
                                _ => QoS::AtLeastOnce,
                            })
                        } else {
                            warn!(node, filter = %f.path, "device subscription refused");
                            SubscribeReasonCode::Failure
                        }
                    })
                    .collect();
                framed
                    .send(Packet::SubAck(SubAck::new(subscribe.pkid, codes)))
                    .await?;
                if desired {
                    self.events
                        .send(FromDevice::Subscribed {
                            node: node.to_owned(),
                            connection: self.connection,
                        })
                        .map_err(|_| Ended::GatewayGone)?;
                }
                Ok(())
            }
            Packet::Unsubscribe(unsubscribe) => {
                framed
                    .send(Packet::UnsubAck(UnsubAck::new(unsubscribe.pkid)))
                    .await
            }
            Packet::PingReq => framed.send(Packet::PingResp).await,
            Packet::Disconnect => Err(Ended::Disconnected),
            // Acknowledgements of desired states: the agent acknowledges
            // once it stored one; the next connection gets the latest anyway.
            Packet::PubAck(_) => Ok(()),
            other => Err(Ended::Refused(format!("unexpected packet {other:?}"))),
        }
    }
}

/// Completes when `node`'s certificate from `not_before` is revoked.
async fn revocation(revocations: &mut Revoked, node: &str, not_before: std::time::SystemTime) {
    loop {
        if revoked(revocations, node, not_before) == Some(true) {
            return;
        }
        if revocations.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

async fn sleep_until_opt(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}
