//! The hub's client of an external broker (Mosquitto, EMQX): one
//! connection, replaced after every failure with capped exponential
//! backoff. The hub's session is persistent and its acknowledgements
//! manual (see [`super::link`]).

use std::sync::Arc;
use std::time::Duration;

use flotilla_shared::wire;
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, Incoming, MqttOptions};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::warn;

use super::link::{GatewayConfig, HUB_CLIENT_ID};

/// Reconnect delays to the broker.
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Requests the MQTT client queues before `publish` waits.
const CLIENT_QUEUE: usize = 1024;

/// The connection to the broker, replaced after every failure.
pub(super) struct Broker {
    config: GatewayConfig,
    pub(super) client: Option<AsyncClient>,
    events: mpsc::UnboundedReceiver<Result<Event, ConnectionError>>,
    poller: Option<tokio::task::JoinHandle<()>>,
    pub(super) connected: bool,
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
pub(super) enum BrokerEvent {
    Up {
        session_present: bool,
    },
    Delivery(rumqttc::Publish),
    Down(String),
    /// Nothing for the gateway (pings, acks).
    Other,
}

impl Broker {
    pub(super) fn new(config: GatewayConfig) -> Self {
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

    pub(super) fn failed(&mut self, error: &str) {
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
    pub(super) async fn next(&mut self) -> BrokerEvent {
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
