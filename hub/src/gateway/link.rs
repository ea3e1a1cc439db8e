//! The hub's end of the device link: a client of the MQTT broker devices
//! connect to, on the Raft leader.
//!
//! One term of leadership runs one [`Gateway`]:
//!
//! - **Desired states out.** The store's Nodes, Pods, ConfigMaps and Secrets
//!   are loaded at one revision and followed by a watch; [`Fleet`] says
//!   which devices' states changed, and each is published retained at QoS 1
//!   on the device's desired topic. Changes are gathered for
//!   [`FLUSH_DELAY`] first, so a Deployment of fifty pods is one message
//!   per device, not fifty.
//! - **Statuses in.** Registrations, pod statuses, heartbeats and last
//!   wills arrive on the devices' status topics (the broker's ACLs let a
//!   device publish only on its own; the hub checks again that a message
//!   names the node of its topic and only the node's own pods). Each is
//!   written to the store by [`ingest`], in order per node and per pod, and
//!   acknowledged to the broker only once written: the hub's session is
//!   persistent, so a status the hub did not write is delivered again.
//!
//! Only the leader runs a gateway: every replica would otherwise write the
//! same statuses, and a lagging one could retain an older desired state
//! over a newer one. All replicas' gateways share one MQTT client id, so
//! a new leader's connection takes over the previous leader's session,
//! statuses queued while no hub was connected included.

use std::sync::Arc;
use std::time::Duration;

use flotilla_shared::model::{KINDS, Object};
use flotilla_shared::wire::{
    self, Message, topics,
    topics::{Topic, TopicKind},
};
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, Incoming, MqttOptions, QoS};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::fleet::{Fleet, Update};
use super::ingest::{Ingest, Work};
use crate::api::status::ApiError;
use crate::api::storage::{Storage, decode};
use crate::replica::{Consistency, Node};
use crate::store::{EventType, ListAt, ListRequest, ReadError, WatchRequest};

/// How long changes are gathered before desired states are computed.
pub const FLUSH_DELAY: Duration = Duration::from_millis(20);
/// The MQTT client id of the hub (every replica's, by design: see above).
pub const HUB_CLIENT_ID: &str = "flotilla-hub";
/// Reconnect delays to the broker.
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Requests the MQTT client queues before `publish` waits.
const CLIENT_QUEUE: usize = 1024;
/// The kinds a desired state is made of.
const WATCHED: [&str; 4] = ["Node", "Pod", "ConfigMap", "Secret"];

/// Where the broker is and how the hub authenticates to it.
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

/// Runs the gateway while this replica leads, until `shutdown`.
pub async fn run(
    node: Arc<Node>,
    storage: Storage,
    config: GatewayConfig,
    shutdown: impl std::future::Future<Output = ()>,
) {
    crate::replica::leading::while_leading(
        node,
        "device gateway",
        move || Gateway::new(storage.clone(), config.clone()).run(),
        shutdown,
    )
    .await;
}

/// The connection to the broker, replaced after every failure.
struct Broker {
    config: GatewayConfig,
    client: Option<AsyncClient>,
    events: mpsc::UnboundedReceiver<Result<Event, ConnectionError>>,
    poller: Option<tokio::task::JoinHandle<()>>,
    connected: bool,
    failures: u32,
    retry_at: Option<Instant>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(poller) = self.poller.take() {
            poller.abort();
        }
    }
}

/// What [`Broker::next`] reports.
enum BrokerEvent {
    Up {
        session_present: bool,
    },
    Delivery(rumqttc::Publish),
    Down(String),
    /// Nothing for the gateway (pings, acks).
    Other,
}

impl Broker {
    fn new(config: GatewayConfig) -> Self {
        Broker {
            config,
            client: None,
            events: mpsc::unbounded_channel().1,
            poller: None,
            connected: false,
            failures: 0,
            retry_at: Some(Instant::now()),
        }
    }

    fn connect(&mut self) {
        let mut options = MqttOptions::new(HUB_CLIENT_ID, &self.config.host, self.config.port);
        options
            .set_clean_session(false)
            .set_manual_acks(true)
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(
                wire::MAX_MESSAGE_BYTES + 4096,
                wire::MAX_MESSAGE_BYTES + 4096,
            )
            .set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(Arc::clone(&self.config.tls)),
            ));
        let (client, eventloop) = AsyncClient::new(options, CLIENT_QUEUE);
        // Unbounded: the event loop must never wait for the gateway, which
        // may itself be waiting for the event loop to take a publish.
        let (tx, rx) = mpsc::unbounded_channel();
        if let Some(old) = self.poller.replace(tokio::spawn(poll(eventloop, tx))) {
            old.abort();
        }
        self.client = Some(client);
        self.events = rx;
        self.retry_at = None;
    }

    fn failed(&mut self, error: &str) {
        if let Some(poller) = self.poller.take() {
            poller.abort();
        }
        self.client = None;
        self.connected = false;
        let delay = MIN_BACKOFF
            .saturating_mul(2u32.saturating_pow(self.failures.min(16)))
            .min(MAX_BACKOFF);
        self.failures = self.failures.saturating_add(1);
        warn!(broker = %format!("{}:{}", self.config.host, self.config.port), error, retry_in = ?delay, "device broker link down");
        self.retry_at = Some(Instant::now() + delay);
    }

    /// The next thing that happens on the link (reconnecting when due).
    async fn next(&mut self) -> BrokerEvent {
        if let Some(at) = self.retry_at {
            tokio::time::sleep_until(at).await;
            self.connect();
        }
        match self.events.recv().await {
            Some(Ok(Event::Incoming(Incoming::ConnAck(ack)))) => {
                self.connected = true;
                self.failures = 0;
                BrokerEvent::Up {
                    session_present: ack.session_present,
                }
            }
            Some(Ok(Event::Incoming(Incoming::Publish(publish)))) => BrokerEvent::Delivery(publish),
            Some(Ok(_)) => BrokerEvent::Other,
            Some(Err(e)) => BrokerEvent::Down(e.to_string()),
            None => BrokerEvent::Down("the MQTT event loop ended".into()),
        }
    }
}

async fn poll(
    mut eventloop: EventLoop,
    events: mpsc::UnboundedSender<Result<Event, ConnectionError>>,
) {
    loop {
        let event = eventloop.poll().await;
        let failed = event.is_err();
        if events.send(event).is_err() || failed {
            return;
        }
    }
}

/// One term of leadership's gateway.
pub struct Gateway {
    storage: Storage,
    broker: Broker,
    fleet: Fleet,
    revision: u64,
    ingest: Ingest,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    pub fn new(storage: Storage, config: GatewayConfig) -> Self {
        let ingest = Ingest::new(storage.clone(), config.lease_renewal);
        Gateway {
            storage,
            broker: Broker::new(config),
            fleet: Fleet::new(),
            revision: 0,
            ingest,
        }
    }

    /// Runs until the store closes (or the task is aborted).
    pub async fn run(mut self) {
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
                    () = sleep_until_opt(flush_at.filter(|_| self.broker.connected)) => {
                        flush_at = None;
                        self.flush().await;
                    }
                    event = self.broker.next() => match event {
                        BrokerEvent::Up { session_present } => {
                            info!(session_present, "device broker link up");
                            if let Err(e) = self.connected(session_present).await {
                                self.broker.failed(&e);
                            } else {
                                flush_at = Some(Instant::now());
                            }
                        }
                        BrokerEvent::Delivery(publish) => self.delivered(publish),
                        BrokerEvent::Down(error) => self.broker.failed(&error),
                        BrokerEvent::Other => {}
                    },
                }
            }
        }
    }

    /// Loads the watched kinds at one revision into a new [`Fleet`] (keeping
    /// what was published) and starts a watch from there.
    async fn load(&mut self) -> Result<crate::store::Watcher, ApiError> {
        let revision = self.storage.revision().await?;
        let mut fleet = Fleet::new();
        for info in KINDS.iter().filter(|i| WATCHED.contains(&i.kind)) {
            let mut request = ListRequest::new(info.kind);
            request.at = ListAt::Revision(revision);
            loop {
                let page = self
                    .storage
                    .list(request.clone(), Consistency::Stale)
                    .await?;
                for item in &page.items {
                    fleet.changed(
                        &decode(&item.object.value, item.object.resource_version)?,
                        false,
                    );
                }
                match page.next {
                    Some(next) => request.at = ListAt::Continue(next),
                    None => break,
                }
            }
        }
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
        self.fleet.changed(object, deleted);
        if let (Object::Pod(pod), true) = (object, deleted) {
            self.ingest.forget_pod(&pod.metadata.uid);
        }
    }

    /// A new connection: subscribe, and publish every state again if the
    /// broker lost them (no session: it restarted without persistence).
    async fn connected(&mut self, session_present: bool) -> Result<(), String> {
        let client = self.client()?;
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
                self.publish(state).await?;
            }
        }
        Ok(())
    }

    fn client(&self) -> Result<AsyncClient, String> {
        self.broker
            .client
            .clone()
            .ok_or_else(|| "not connected".to_owned())
    }

    /// Publishes the desired states that changed.
    async fn flush(&mut self) {
        for Update {
            node,
            state,
            unresolved,
        } in self.fleet.updates(self.revision)
        {
            for pod in unresolved {
                self.ingest.submit(&node, Work::Unresolved(pod), None);
            }
            let Some(state) = state else { continue };
            if let Err(e) = self.publish(state).await {
                self.fleet.retry(&node);
                self.broker.failed(&e);
            }
        }
    }

    /// Publishes one state retained at QoS 1 (too large a state is not
    /// sent: the device keeps what it has, and the Node gets a warning).
    async fn publish(&mut self, state: wire::DesiredState) -> Result<(), String> {
        let node = state.node.clone();
        let payload = wire::encode(&Message::DesiredState(state.clone()));
        if payload.len() > wire::MAX_MESSAGE_BYTES {
            warn!(%node, bytes = payload.len(), limit = wire::MAX_MESSAGE_BYTES, "desired state too large; not published");
            self.ingest
                .submit(&node, Work::TooLarge(payload.len()), None);
            return Ok(());
        }
        let topic = Topic::new(&node, TopicKind::Desired)
            .map_err(|e| e.to_string())?
            .to_string();
        let client = self.client()?;
        client
            .publish(topic, QoS::AtLeastOnce, true, payload)
            .await
            .map_err(|e| e.to_string())?;
        self.fleet.published(state);
        Ok(())
    }

    /// A message from a device: checked against its topic, then handed to
    /// [`Ingest`], which acknowledges it once written.
    fn delivered(&mut self, publish: rumqttc::Publish) {
        let Ok(client) = self.client() else { return };
        let refuse = |why: &str| {
            warn!(topic = %publish.topic, why, "device message refused");
        };
        let topic = match Topic::parse(&publish.topic).map_err(|e| e.to_string()) {
            Ok(topic) => topic,
            Err(e) => {
                refuse(&e);
                return ack_now(client, publish);
            }
        };
        let node = topic.node().to_owned();
        let message = match (topic.kind(), wire::decode(&publish.payload)) {
            (TopicKind::Status | TopicKind::Heartbeat, Ok(message)) => message,
            (_, Err(e)) => {
                refuse(&e.to_string());
                return ack_now(client, publish);
            }
            // Log responses and enrollment come with their own issues.
            _ => return ack_now(client, publish),
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
                        return ack_now(client, publish);
                    }
                    // Deleted meanwhile: nothing to write.
                    None => return ack_now(client, publish),
                }
            }
            other => {
                refuse(&format!(
                    "{} does not belong on this topic or names another node",
                    other.kind()
                ));
                return ack_now(client, publish);
            }
        };
        self.ingest.submit(&node, work, Some((client, publish)));
    }
}

fn ack_now(client: AsyncClient, publish: rumqttc::Publish) {
    // try_ack: the request queue is large, and a lost ack only means the
    // message comes again.
    let _ = client.try_ack(&publish);
}

async fn sleep_until_opt(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}
