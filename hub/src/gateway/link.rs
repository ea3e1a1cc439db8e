//! The hub's end of the device link: the [`Gateway`], over either the
//! embedded endpoint ([`super::endpoint`], the default) or an external
//! broker ([`super::broker`]).
//!
//! - **Desired states out.** The store's Nodes, Pods, ConfigMaps and Secrets
//!   are loaded at one revision and followed by a watch; [`Fleet`] says
//!   which devices' states changed, and each is sent at QoS 1 on the
//!   device's desired topic (retained, with an external broker). Changes are
//!   gathered for [`FLUSH_DELAY`] first, so a Deployment of fifty pods is
//!   one message per device, not fifty.
//! - **Statuses in.** Registrations, pod statuses, heartbeats and last
//!   wills arrive on the devices' status topics (the ACLs let a device
//!   publish only on its own; the gateway checks again that a message names
//!   the node of its topic and only the node's own pods). Each is written to
//!   the store by [`super::ingest`], in order per node and per pod, and
//!   acknowledged only once written, so a status the hub did not write is
//!   sent again.
//!
//! Who runs a gateway:
//!
//! - **Embedded**: every replica, for the devices connected to its own
//!   endpoint (devices fail over between replicas). Its reads are its own
//!   replica's; its writes go through the leader like any API write. A
//!   device that subscribes gets its latest desired state at once: the
//!   store is the session, so nothing is lost when a replica restarts.
//! - **External broker**: the Raft leader only: every replica would
//!   otherwise write the same statuses, and a lagging one could retain an
//!   older desired state over a newer one. All replicas share one MQTT
//!   client id, so a new leader's connection takes over the previous
//!   leader's persistent session, statuses queued meanwhile included.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flotilla_shared::enroll;
use flotilla_shared::model::{KINDS, Object};
use flotilla_shared::wire::{
    self, LogCancel, LogChunk, Message, topics,
    topics::{Topic, TopicKind},
};
use rumqttc::QoS;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::broker::{Broker, BrokerEvent};
use super::endpoint::{FromDevice, ToDevice};
use super::enroll::Revocations;
use super::fleet::{Fleet, Update};
use super::ingest::{Ack, Ingest, Work};
use super::logs::{LogCommand, LogError, Logs};
use crate::api::status::ApiError;
use crate::api::storage::{Storage, decode};
use crate::replica::{Consistency, Node};
use crate::store::{EventType, ListAt, ListRequest, ReadError, WatchRequest};

/// How long changes are gathered before desired states are computed.
pub const FLUSH_DELAY: Duration = Duration::from_millis(20);
/// The MQTT client id of the hub with an external broker (every replica's,
/// by design: see above).
pub const HUB_CLIENT_ID: &str = "flotilla-hub";
/// The kinds a desired state is made of.
const WATCHED: [&str; 4] = ["Node", "Pod", "ConfigMap", "Secret"];

/// Where the external broker is and how the hub authenticates to it.
#[derive(Clone)]
pub struct GatewayConfig {
    pub host: String,
    pub port: u16,
    pub tls: Arc<rustls::ClientConfig>,
    /// How often, at most, a device's Lease is renewed.
    pub lease_renewal: Duration,
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("lease_renewal", &self.lease_renewal)
            .finish_non_exhaustive()
    }
}

/// Runs the gateway of an external broker while this replica leads, until
/// `shutdown`.
pub async fn run_external(
    node: Arc<Node>,
    storage: Storage,
    config: GatewayConfig,
    replica: ReplicaSide,
    shutdown: impl std::future::Future<Output = ()>,
) {
    crate::replica::leading::while_leading(
        node,
        "device gateway",
        move || {
            let lease_renewal = config.lease_renewal;
            let transport = Transport::External(Broker::new(config.clone()));
            Gateway::new(storage.clone(), transport, lease_renewal, replica.clone()).run()
        },
        shutdown,
    )
    .await;
}

/// What a gateway shares with the rest of its replica.
#[derive(Debug, Clone, Default)]
pub struct ReplicaSide {
    /// Where the API asks for device logs.
    pub logs: Logs,
    /// The replica's API address (`host:port`), recorded on the Nodes of
    /// the devices this gateway serves, for API replicas to forward `kubectl
    /// logs` to.
    pub api_address: Option<String>,
}

/// Runs the gateway of this replica's embedded endpoint, which reports on
/// `events`, and tells it the revoked devices on `revocations`.
pub async fn run_embedded(
    storage: Storage,
    events: mpsc::UnboundedReceiver<FromDevice>,
    revocations: watch::Sender<Option<Arc<Revocations>>>,
    lease_renewal: Duration,
    replica: ReplicaSide,
) {
    let transport = Transport::Embedded(Devices {
        events,
        connected: HashMap::new(),
    });
    let mut gateway = Gateway::new(storage, transport, lease_renewal, replica);
    gateway.revocations = Some(revocations);
    gateway.run().await;
}

/// The devices connected to this replica's endpoint.
struct Devices {
    events: mpsc::UnboundedReceiver<FromDevice>,
    /// Node → (connection, its outbox).
    connected: HashMap<String, (u64, mpsc::UnboundedSender<ToDevice>)>,
}

enum Transport {
    External(Broker),
    Embedded(Devices),
}

/// What happened on the transport, for the gateway.
enum LinkEvent {
    /// (Re)connected to the external broker.
    Up {
        session_present: bool,
    },
    Down(String),
    /// A publish from a device, with how to acknowledge it.
    Delivery {
        topic: String,
        payload: Bytes,
        ack: Ack,
    },
    /// A device (embedded) wants its desired state.
    Subscribed {
        node: String,
    },
    Nothing,
}

impl Transport {
    fn is_up(&self) -> bool {
        match self {
            Transport::External(broker) => broker.connected,
            Transport::Embedded(_) => true,
        }
    }

    /// Whether this gateway speaks for `node` (writes what the hub has to
    /// say about its pods): all of them with an external broker, those
    /// connected here when embedded.
    fn serves(&self, node: &str) -> bool {
        match self {
            Transport::External(_) => true,
            Transport::Embedded(devices) => devices.connected.contains_key(node),
        }
    }

    async fn next(&mut self) -> LinkEvent {
        match self {
            Transport::External(broker) => match broker.next().await {
                BrokerEvent::Up { session_present } => LinkEvent::Up { session_present },
                BrokerEvent::Down(error) => LinkEvent::Down(error),
                BrokerEvent::Delivery(publish) => {
                    let ack = match &broker.client {
                        Some(client) => Ack::Mqtt(client.clone(), publish.clone()),
                        None => Ack::None,
                    };
                    LinkEvent::Delivery {
                        topic: publish.topic,
                        payload: publish.payload,
                        ack,
                    }
                }
                BrokerEvent::Other => LinkEvent::Nothing,
            },
            Transport::Embedded(devices) => {
                let Some(event) = devices.events.recv().await else {
                    return std::future::pending().await;
                };
                devices.event(event)
            }
        }
    }
}

impl Devices {
    fn event(&mut self, event: FromDevice) -> LinkEvent {
        match event {
            FromDevice::Connected {
                node,
                connection,
                to_device,
            } => {
                if let Some((_, previous)) = self.connected.insert(node, (connection, to_device)) {
                    let _ = previous.send(ToDevice::Close);
                }
                LinkEvent::Nothing
            }
            FromDevice::Subscribed { node, connection } => {
                if self
                    .connected
                    .get(&node)
                    .is_some_and(|(c, _)| *c == connection)
                {
                    LinkEvent::Subscribed { node }
                } else {
                    LinkEvent::Nothing
                }
            }
            FromDevice::Message {
                topic,
                payload,
                ack,
                ..
            } => LinkEvent::Delivery {
                topic,
                payload,
                ack: ack.map_or(Ack::None, Ack::Local),
            },
            FromDevice::Gone {
                node,
                connection,
                will,
            } => {
                if self
                    .connected
                    .get(&node)
                    .is_some_and(|(c, _)| *c == connection)
                {
                    self.connected.remove(&node);
                }
                // The will goes where the device would have published it.
                match (will, Topic::new(&node, TopicKind::Status)) {
                    (Some(payload), Ok(topic)) => LinkEvent::Delivery {
                        topic: topic.to_string(),
                        payload,
                        ack: Ack::None,
                    },
                    _ => LinkEvent::Nothing,
                }
            }
        }
    }
}

/// A gateway: the fleet as the store has it, and the transport to devices.
struct Gateway {
    storage: Storage,
    transport: Transport,
    fleet: Fleet,
    revision: u64,
    ingest: Ingest,
    /// Where the embedded endpoint learns the revoked devices.
    revocations: Option<watch::Sender<Option<Arc<Revocations>>>>,
    logs: Logs,
    /// Open log streams: request id → (node, where its chunks go).
    log_streams: HashMap<u64, (String, mpsc::Sender<LogChunk>)>,
}

impl Gateway {
    fn new(
        storage: Storage,
        transport: Transport,
        lease_renewal: Duration,
        replica: ReplicaSide,
    ) -> Self {
        let ingest = Ingest::new(storage.clone(), lease_renewal, replica.api_address);
        Gateway {
            storage,
            transport,
            fleet: Fleet::new(),
            revision: 0,
            ingest,
            revocations: None,
            logs: replica.logs,
            log_streams: HashMap::new(),
        }
    }

    /// Runs until the store closes (or the task is aborted).
    async fn run(mut self) {
        let (_attached, mut log_commands) = self.logs.attach();
        loop {
            let mut watcher = match self.load().await {
                Ok(watcher) => watcher,
                Err(e) => {
                    warn!(error = %e, "the gateway could not load the fleet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let mut flush_at = Some(Instant::now());
            loop {
                let up = self.transport.is_up();
                tokio::select! {
                    event = watcher.next() => match event {
                        Ok(event) => {
                            self.revision = watcher.progress().max(event.revision);
                            if !WATCHED.contains(&event.key.kind.as_str()) {
                                continue;
                            }
                            match decode(&event.value, event.revision) {
                                Ok(object) => {
                                    self.observe(&object, event.event_type == EventType::Deleted);
                                    flush_at.get_or_insert(Instant::now() + FLUSH_DELAY);
                                }
                                Err(e) => warn!(key = %event.key, error = %e, "undecodable object ignored by the gateway"),
                            }
                        }
                        Err(ReadError::Closed) => return,
                        Err(e) => {
                            debug!(error = %e, "the gateway's watch ended; loading again");
                            break;
                        }
                    },
                    () = sleep_until_opt(flush_at.filter(|_| up)) => {
                        flush_at = None;
                        self.flush().await;
                    }
                    Some(command) = log_commands.recv() => self.log_command(command).await,
                    event = self.transport.next() => {
                        match event {
                            LinkEvent::Up { session_present } => {
                                info!(session_present, "device broker link up");
                                match self.broker_up(session_present).await {
                                    Ok(()) => flush_at = Some(Instant::now()),
                                    Err(e) => self.broker_failed(&e),
                                }
                            }
                            LinkEvent::Down(error) => self.broker_failed(&error),
                            LinkEvent::Delivery { topic, payload, ack } => self.delivered(&topic, &payload, ack),
                            LinkEvent::Subscribed { node } => self.send_latest(&node),
                            LinkEvent::Nothing => {}
                        }
                        if !self.log_streams.is_empty() {
                            self.prune_log_streams();
                        }
                    }
                }
            }
        }
    }

    /// Loads the watched kinds at one revision into a new [`Fleet`] (keeping
    /// what was published) and starts a watch from there.
    async fn load(&mut self) -> Result<crate::store::Watcher, ApiError> {
        let revision = self.storage.revision().await?;
        let mut fleet = Fleet::new();
        let mut revocations = Revocations::default();
        for info in KINDS.iter().filter(|i| WATCHED.contains(&i.kind)) {
            let mut request = ListRequest::new(info.kind);
            request.at = ListAt::Revision(revision);
            loop {
                let page = self
                    .storage
                    .list(request.clone(), Consistency::Stale)
                    .await?;
                for item in &page.items {
                    let object = decode(&item.object.value, item.object.resource_version)?;
                    if let Some(loaded) = revocations_in(&object) {
                        revocations = loaded;
                    }
                    fleet.changed(&object, false);
                }
                match page.next {
                    Some(next) => request.at = ListAt::Continue(next),
                    None => break,
                }
            }
        }
        self.set_revocations(revocations);
        fleet.inherit_published(std::mem::take(&mut self.fleet));
        self.fleet = fleet;
        self.revision = revision;
        self.storage
            .watch(WatchRequest {
                from: revision,
                ..WatchRequest::default()
            })
            .await
    }

    fn observe(&mut self, object: &Object, deleted: bool) {
        if let Some(revocations) = revocations_in(object) {
            self.set_revocations(if deleted {
                Revocations::default()
            } else {
                revocations
            });
        }
        self.fleet.changed(object, deleted);
        if let (Object::Pod(pod), true) = (object, deleted) {
            self.ingest.forget_pod(&pod.metadata.uid);
        }
    }

    fn set_revocations(&self, revocations: Revocations) {
        if let Some(sender) = &self.revocations {
            sender.send_if_modified(|current| {
                let changed = current.as_deref() != Some(&revocations);
                if changed {
                    info!(revoked = ?revocations, "device revocations loaded");
                    *current = Some(Arc::new(revocations));
                }
                changed
            });
        }
    }

    fn broker_failed(&mut self, error: &str) {
        if let Transport::External(broker) = &mut self.transport {
            broker.failed(error);
        }
    }

    /// A new connection to the external broker: subscribe, and publish
    /// every state again if the broker lost them (no session: it restarted
    /// without persistence).
    async fn broker_up(&mut self, session_present: bool) -> Result<(), String> {
        let Transport::External(Broker {
            client: Some(client),
            ..
        }) = &self.transport
        else {
            return Err("not connected".into());
        };
        let filters = topics::HUB_SUBSCRIPTIONS
            .iter()
            .map(|f| rumqttc::SubscribeFilter::new((*f).to_owned(), QoS::AtLeastOnce));
        client
            .subscribe_many(filters)
            .await
            .map_err(|e| e.to_string())?;
        if !session_present {
            let states: Vec<wire::DesiredState> = self.fleet.all_published().cloned().collect();
            for state in states {
                self.send(state).await?;
            }
        }
        Ok(())
    }

    /// Sends the desired states that changed.
    async fn flush(&mut self) {
        for Update {
            node,
            state,
            unresolved,
        } in self.fleet.updates(self.revision)
        {
            if self.transport.serves(&node) {
                for pod in unresolved {
                    self.ingest.submit(&node, Work::Unresolved(pod), Ack::None);
                }
            }
            let Some(state) = state else { continue };
            if let Err(e) = self.send(state).await {
                self.fleet.retry(&node);
                self.broker_failed(&e);
            }
        }
    }

    /// A device subscribed (embedded): it gets its latest desired state.
    fn send_latest(&mut self, node: &str) {
        let Transport::Embedded(devices) = &self.transport else {
            return;
        };
        let latest = self.fleet.published_state(node);
        if let (Some(state), Some((_, outbox))) = (latest, devices.connected.get(node)) {
            let payload = wire::encode(&Message::DesiredState(state.clone()));
            let _ = outbox.send(ToDevice::Desired(Bytes::from(payload)));
        }
    }

    /// Sends one state at QoS 1: retained to the external broker, or to the
    /// device if it is connected here. Too large a state is not sent: the
    /// device keeps what it has, and the Node gets a warning.
    async fn send(&mut self, state: wire::DesiredState) -> Result<(), String> {
        let node = state.node.clone();
        let payload = wire::encode(&Message::DesiredState(state.clone()));
        if payload.len() > wire::MAX_MESSAGE_BYTES {
            warn!(%node, bytes = payload.len(), limit = wire::MAX_MESSAGE_BYTES, "desired state too large; not sent");
            if self.transport.serves(&node) {
                self.ingest
                    .submit(&node, Work::TooLarge(payload.len()), Ack::None);
            }
            return Ok(());
        }
        match &self.transport {
            Transport::External(broker) => {
                let topic = Topic::new(&node, TopicKind::Desired)
                    .map_err(|e| e.to_string())?
                    .to_string();
                let client = broker.client.clone().ok_or("not connected")?;
                client
                    .publish(topic, QoS::AtLeastOnce, true, payload)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Transport::Embedded(devices) => {
                if let Some((_, outbox)) = devices.connected.get(&node) {
                    let _ = outbox.send(ToDevice::Desired(Bytes::from(payload)));
                }
            }
        }
        self.fleet.published(state);
        Ok(())
    }

    /// Opens or cancels a log stream.
    async fn log_command(&mut self, command: LogCommand) {
        self.prune_log_streams();
        match command {
            LogCommand::Open {
                node,
                request,
                chunks,
                opened,
            } => {
                let id = request.request_id;
                let sent = self.send_log(&node, &Message::LogRequest(request)).await;
                if sent.is_ok() {
                    self.log_streams.insert(id, (node, chunks));
                }
                let _ = opened.send(sent);
            }
            LogCommand::Cancel { node, request_id } => {
                if self.log_streams.remove(&request_id).is_some() {
                    let cancel = Message::LogCancel(LogCancel { request_id });
                    let _ = self.send_log(&node, &cancel).await;
                }
            }
        }
    }

    /// Sends a log request or cancellation to `node`'s device.
    async fn send_log(&self, node: &str, message: &Message) -> Result<(), LogError> {
        let payload = wire::encode(message);
        match &self.transport {
            Transport::External(broker) => {
                let topic = Topic::new(node, TopicKind::LogRequest)
                    .map_err(|e| LogError::Unavailable(e.to_string()))?
                    .to_string();
                let client = broker
                    .client
                    .clone()
                    .filter(|_| broker.connected)
                    .ok_or_else(|| LogError::Unavailable("no broker connection".into()))?;
                client
                    .publish(topic, QoS::AtLeastOnce, false, payload)
                    .await
                    .map_err(|e| LogError::Unavailable(e.to_string()))
            }
            Transport::Embedded(devices) => devices
                .connected
                .get(node)
                .and_then(|(_, outbox)| {
                    outbox.send(ToDevice::LogRequest(Bytes::from(payload))).ok()
                })
                .ok_or_else(|| LogError::NotHere(node.to_owned())),
        }
    }

    /// Ends the streams of devices no longer reachable from here: their
    /// readers see the end instead of waiting forever.
    fn prune_log_streams(&mut self) {
        let transport = &self.transport;
        self.log_streams.retain(|_, (node, chunks)| {
            transport.is_up() && transport.serves(node) && !chunks.is_closed()
        });
    }

    /// A chunk of log request `request_id` from `topic`'s device, for its
    /// reader; a reader gone or too slow gets no more, and the device is
    /// told to stop.
    fn log_chunk(&mut self, topic: &Topic, request_id: u64, payload: &[u8]) {
        let chunk = match wire::decode(payload) {
            Ok(message @ Message::LogChunk(_)) if topic.carries(&message) => match message {
                Message::LogChunk(chunk) => chunk,
                _ => return,
            },
            _ => return warn!(topic = %topic, "not a log chunk of this request; ignored"),
        };
        let Some((node, chunks)) = self.log_streams.get(&request_id) else {
            return;
        };
        if node != topic.node() {
            return warn!(topic = %topic, "a log chunk from another device than asked; ignored");
        }
        let eof = chunk.eof;
        let delivered = chunks.try_send(chunk).is_ok();
        if eof || !delivered {
            let (node, _) = self
                .log_streams
                .remove(&request_id)
                .expect("looked up above");
            if !delivered && !eof {
                // Told without waiting: the transport is busy reading.
                let cancel = wire::encode(&Message::LogCancel(LogCancel { request_id }));
                match &self.transport {
                    Transport::Embedded(devices) => {
                        if let Some((_, outbox)) = devices.connected.get(&node) {
                            let _ = outbox.send(ToDevice::LogRequest(Bytes::from(cancel)));
                        }
                    }
                    Transport::External(broker) => {
                        if let (Some(client), Ok(topic)) = (
                            broker.client.clone(),
                            Topic::new(&node, TopicKind::LogRequest),
                        ) {
                            tokio::spawn(async move {
                                let _ = client
                                    .publish(topic.to_string(), QoS::AtLeastOnce, false, cancel)
                                    .await;
                            });
                        }
                    }
                }
            }
        }
    }

    /// A message from a device: checked against its topic, then handed to
    /// [`Ingest`], which acknowledges it once written.
    fn delivered(&mut self, topic: &str, payload: &[u8], ack: Ack) {
        let refuse = |why: &str| {
            warn!(topic, why, "device message refused");
        };
        let topic = match Topic::parse(topic) {
            Ok(topic) => topic,
            Err(e) => {
                refuse(&e.to_string());
                return ack.fire();
            }
        };
        if let TopicKind::LogResponse { request_id } = topic.kind() {
            self.log_chunk(&topic, request_id, payload);
            return ack.fire();
        }
        let node = topic.node().to_owned();
        let message = match (topic.kind(), wire::decode(payload)) {
            (TopicKind::Status | TopicKind::Heartbeat, Ok(message)) => message,
            (_, Err(e)) => {
                refuse(&e.to_string());
                return ack.fire();
            }
            // Log responses and enrollment come with their own issues.
            _ => return ack.fire(),
        };
        let work = match message {
            Message::NodeRegistration(r) if r.node == node => Work::Registration(r),
            Message::Heartbeat(h) if h.node == node => Work::Heartbeat(h),
            Message::Offline(o) if o.node == node => Work::Offline(o),
            Message::PodStatusUpdate(update) if update.node == node => {
                match self.fleet.pod_by_uid(&update.pod_uid) {
                    Some(pod) if pod.spec.node_name == node => Work::Status {
                        pod: (pod.metadata.namespace.clone(), pod.metadata.name.clone()),
                        update,
                    },
                    Some(_) => {
                        refuse("a status for a pod bound to another node");
                        return ack.fire();
                    }
                    // Deleted meanwhile: nothing to write.
                    None => return ack.fire(),
                }
            }
            other => {
                refuse(&format!(
                    "{} does not belong on this topic or names another node",
                    other.kind()
                ));
                return ack.fire();
            }
        };
        self.ingest.submit(&node, work, ack);
    }
}

/// The revocations `object` holds, if it is their ConfigMap.
fn revocations_in(object: &Object) -> Option<Revocations> {
    match object {
        Object::ConfigMap(config_map)
            if config_map.metadata.namespace == enroll::REVOCATIONS_NAMESPACE
                && config_map.metadata.name == enroll::REVOCATIONS_CONFIGMAP =>
        {
            Some(Revocations::from_config_map(config_map))
        }
        _ => None,
    }
}

async fn sleep_until_opt(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}
