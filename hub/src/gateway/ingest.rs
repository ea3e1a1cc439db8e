//! What devices report, written into the store: in order per node (its
//! registrations, heartbeats, last wills) and per pod (its statuses), and
//! acknowledged to the broker only once written.
//!
//! Each lane (a node, or a pod) has its own task while it has work, so a
//! slow write for one device never holds up another, and a burst for one
//! pod (Pending, then Running) costs one write when the later status is
//! already queued. Writes go through the controllers' [`Executor`], with
//! the API's admission and compare-and-swap; a lost race reads again and
//! decides again.
//!
//! Heartbeats reach the store only as transitions (a pressure condition
//! changing) and as Lease renewals at the coarse interval [`Liveness`]
//! keeps; a heartbeat that changes neither writes nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use flotilla_shared::model::{KindInfo, Node, Object, Pod};
use flotilla_shared::wire::{Heartbeat, NodeRegistration, Offline, PodStatusUpdate};
use rumqttc::{AsyncClient, Publish};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::fleet::Unresolvable;
use super::liveness::Liveness;
use super::status;
use crate::api::deletion::{self, DeleteOptions, Preconditions};
use crate::api::status::ApiError;
use crate::api::storage::{Storage, Stored};
use crate::controllers::executor::Executor;
use crate::controllers::nodelifecycle::NODE_LEASE_NAMESPACE;
use crate::controllers::{Command, EventType, reference_to};
use crate::replica::Consistency;

/// The component devices' Events are recorded as (kubelet's, as a
/// device's agent plays its part).
const COMPONENT: &str = "kubelet";
/// A lane's task ends after this long without work.
const IDLE: Duration = Duration::from_secs(30);
/// Attempts at one write before it is given up.
const ATTEMPTS: u32 = 8;
const RETRY_BASE: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// The heartbeat interval assumed for a device whose registration this
/// gateway has not seen (the agent's default).
const DEFAULT_HEARTBEAT_SECONDS: u32 = 300;

/// What one message from a device (or the gateway itself) asks.
#[derive(Debug)]
pub enum Work {
    Registration(NodeRegistration),
    Heartbeat(Heartbeat),
    Offline(Offline),
    Status {
        /// (namespace, name) of the pod the update's uid names.
        pod: (String, String),
        update: PodStatusUpdate,
    },
    /// A pod its desired state cannot carry (from the gateway).
    Unresolved(Unresolvable),
    /// The node's desired state was this many bytes, over the limit.
    TooLarge(usize),
}

/// How to acknowledge a delivery once its work is done.
#[derive(Debug)]
pub enum Ack {
    /// Nothing to acknowledge (QoS 0, a last will, the gateway's own work).
    None,
    /// A delivery from an external broker (manual acks).
    Mqtt(AsyncClient, Publish),
    /// A publish to the embedded endpoint, which sends the PUBACK.
    Local(oneshot::Sender<()>),
}

impl Ack {
    pub fn fire(self) {
        match self {
            Ack::None => {}
            // A lost ack only means the message comes again.
            Ack::Mqtt(client, publish) => {
                let _ = client.try_ack(&publish);
            }
            Ack::Local(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// A unit of work and the delivery to acknowledge once it is done.
#[derive(Debug)]
pub struct Job {
    node: String,
    work: Work,
    ack: Ack,
}

/// What the lanes share.
struct Shared {
    storage: Storage,
    executor: Executor,
    liveness: Mutex<Liveness>,
    /// Node → the heartbeat interval its registration gave.
    heartbeats: Mutex<HashMap<String, u32>>,
    /// Pod uid → the unresolved message last recorded as an Event.
    reported: Mutex<HashMap<String, String>>,
    /// Pod uid → the latest status its device reported (node, pod key,
    /// update): written again when the node comes back from Unknown, since
    /// the node lifecycle controller marked its pods not ready meanwhile and
    /// a device whose connection survived the outage has no news to send.
    statuses: Mutex<HashMap<String, Reported>>,
    /// This replica's API address, recorded on the Nodes it registers.
    api_address: Option<String>,
}

/// (namespace, name) of a pod.
type PodKey = (String, String);

/// A device's latest report on one pod: (node, pod, the update).
type Reported = (String, PodKey, PodStatusUpdate);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The lanes of one gateway; dropping it stops them.
pub struct Ingest {
    shared: Arc<Shared>,
    lanes: HashMap<String, mpsc::UnboundedSender<Job>>,
    tasks: JoinSet<()>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("lanes", &self.lanes.len())
            .finish_non_exhaustive()
    }
}

impl Ingest {
    pub fn new(storage: Storage, lease_renewal: Duration, api_address: Option<String>) -> Self {
        Ingest {
            shared: Arc::new(Shared {
                executor: Executor::new(storage.clone()),
                storage,
                liveness: Mutex::new(Liveness::new(lease_renewal)),
                heartbeats: Mutex::new(HashMap::new()),
                reported: Mutex::new(HashMap::new()),
                statuses: Mutex::new(HashMap::new()),
                api_address,
            }),
            lanes: HashMap::new(),
            tasks: JoinSet::new(),
        }
    }

    /// Queues `work` about `node` in its lane.
    pub fn submit(&mut self, node: &str, work: Work, ack: Ack) {
        while self.tasks.try_join_next().is_some() {}
        let lane = match &work {
            Work::Status { update, .. } => format!("pod/{}", update.pod_uid),
            Work::Unresolved(pod) => format!("pod/{}", pod.uid),
            _ => format!("node/{node}"),
        };
        let mut job = Job {
            node: node.to_owned(),
            work,
            ack,
        };
        loop {
            if let Some(lane) = self.lanes.get(&lane) {
                match lane.send(job) {
                    Ok(()) => return,
                    // The lane's task ended (idle): start another.
                    Err(mpsc::error::SendError(back)) => job = back,
                }
            }
            let (tx, rx) = mpsc::unbounded_channel();
            self.tasks.spawn(run_lane(Arc::clone(&self.shared), rx));
            self.lanes.insert(lane.clone(), tx);
        }
    }

    /// A pod is gone from the store: its lane and records can go.
    pub fn forget_pod(&mut self, uid: &str) {
        self.lanes.remove(&format!("pod/{uid}"));
        lock(&self.shared.reported).remove(uid);
        lock(&self.shared.statuses).remove(uid);
    }
}

async fn run_lane(shared: Arc<Shared>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    loop {
        let first = match tokio::time::timeout(IDLE, jobs.recv()).await {
            Ok(Some(job)) => job,
            Ok(None) => return,
            Err(_) => {
                // Idle: refuse new work, finish what raced in, and end.
                jobs.close();
                let mut rest = Vec::new();
                while let Ok(job) = jobs.try_recv() {
                    rest.push(job);
                }
                if !rest.is_empty() {
                    process(&shared, rest).await;
                }
                return;
            }
        };
        let mut batch = vec![first];
        while let Ok(job) = jobs.try_recv() {
            batch.push(job);
        }
        process(&shared, batch).await;
    }
}

/// Whether `later` makes `earlier` pointless to write: a newer status of
/// the same pod, or a newer heartbeat.
fn supersedes(later: &Work, earlier: &Work) -> bool {
    match (later, earlier) {
        (Work::Status { update: a, .. }, Work::Status { update: b, .. }) => a.pod_uid == b.pod_uid,
        (Work::Heartbeat(_), Work::Heartbeat(_)) => true,
        _ => false,
    }
}

async fn process(shared: &Shared, batch: Vec<Job>) {
    let superseded: Vec<bool> = (0..batch.len())
        .map(|i| {
            batch[i + 1..]
                .iter()
                .any(|later| supersedes(&later.work, &batch[i].work))
        })
        .collect();
    for (job, superseded) in batch.into_iter().zip(superseded) {
        if superseded || apply_with_retries(shared, &job).await {
            job.ack.fire();
        }
    }
}

/// Applies one job, retrying lost races and an unavailable store; answers
/// whether it is done with (written, or refused for good), so that it can
/// be acknowledged.
async fn apply_with_retries(shared: &Shared, job: &Job) -> bool {
    let mut delay = RETRY_BASE;
    for attempt in 1..=ATTEMPTS {
        match apply(shared, &job.node, &job.work).await {
            Ok(()) => return true,
            Err(e) if retryable(&e) && attempt < ATTEMPTS => {
                debug!(node = %job.node, error = %e, "device report not written yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX);
            }
            Err(e) => {
                warn!(node = %job.node, error = %e, "device report not written");
                // The store unavailable: leave it to be delivered again
                // (to the next leader's gateway, if this one is leaving).
                return !matches!(e, ApiError::Unavailable(_) | ApiError::Timeout(_));
            }
        }
    }
    false
}

fn retryable(error: &ApiError) -> bool {
    matches!(
        error,
        ApiError::Conflict { .. }
            | ApiError::AlreadyExists { .. }
            | ApiError::Unavailable(_)
            | ApiError::Timeout(_)
    )
}

fn kind(name: &str) -> &'static KindInfo {
    flotilla_shared::model::KINDS
        .iter()
        .find(|info| info.kind == name)
        .unwrap_or_else(|| panic!("the model has the kind {name}"))
}

async fn get(
    shared: &Shared,
    kind_name: &str,
    namespace: &str,
    name: &str,
) -> Result<Option<Stored>, ApiError> {
    shared
        .storage
        .get(kind(kind_name), namespace, name, Consistency::Stale)
        .await
}

async fn get_node(shared: &Shared, name: &str) -> Result<Option<Node>, ApiError> {
    Ok(match get(shared, "Node", "", name).await? {
        Some(Stored {
            object: Object::Node(node),
            ..
        }) => Some(node),
        _ => None,
    })
}

async fn execute(shared: &Shared, command: Command) -> Result<u64, ApiError> {
    shared.executor.execute(COMPONENT, command).await
}

async fn apply(shared: &Shared, node: &str, work: &Work) -> Result<(), ApiError> {
    let now = SystemTime::now();
    let instant = tokio::time::Instant::now();
    match work {
        Work::Registration(registration) => {
            lock(&shared.liveness).registered(node, registration.session, instant);
            lock(&shared.heartbeats).insert(node.to_owned(), registration.heartbeat_seconds);
            register(shared, registration, now).await?;
            renew_lease(shared, node, now).await
        }
        Work::Heartbeat(heartbeat) => {
            lock(&shared.liveness).heard(node, instant);
            if let Some(current) = get_node(shared, node).await?
                && let Some(updated) = status::node_from_heartbeat(&current, heartbeat, now)
            {
                let back = !current.is_ready() && updated.is_ready();
                execute(
                    shared,
                    Command::UpdateStatus(Box::new(Object::Node(updated))),
                )
                .await?;
                if back {
                    statuses_again(shared, node, now).await?;
                }
            }
            renew_lease(shared, node, now).await
        }
        Work::Offline(offline) => {
            if !lock(&shared.liveness).offline(node, offline.session) {
                return Ok(());
            }
            if let Some(current) = get_node(shared, node).await?
                && let Some(updated) = status::node_offline(&current, now)
            {
                execute(
                    shared,
                    Command::UpdateStatus(Box::new(Object::Node(updated))),
                )
                .await?;
            }
            Ok(())
        }
        Work::Status { pod, update } => {
            lock(&shared.liveness).heard(node, instant);
            lock(&shared.statuses).insert(
                update.pod_uid.clone(),
                (node.to_owned(), pod.clone(), update.clone()),
            );
            pod_status(shared, node, pod, update, now).await
        }
        Work::Unresolved(pod) => unresolved(shared, pod, now).await,
        Work::TooLarge(bytes) => {
            let Some(current) = get_node(shared, node).await? else {
                return Ok(());
            };
            execute(
                shared,
                Command::Event {
                    regarding: reference_to(&Object::Node(current)),
                    type_: EventType::Warning,
                    reason: "DesiredStateTooLarge".into(),
                    message: format!(
                        "the node's desired state is {bytes} bytes, over the {} the device link carries; the device keeps its previous state",
                        flotilla_shared::wire::MAX_MESSAGE_BYTES
                    ),
                },
            )
            .await
            .map(drop)
        }
    }
}

/// Creates or updates the Node a registration describes: its metadata
/// (labels) first, then its status.
async fn register(
    shared: &Shared,
    registration: &NodeRegistration,
    now: SystemTime,
) -> Result<(), ApiError> {
    let existing = get_node(shared, &registration.node).await?;
    let mut wanted = status::node_from_registration(existing.as_ref(), registration, now);
    if let Some(api) = &shared.api_address {
        wanted
            .metadata
            .annotations
            .insert(super::logs::GATEWAY_ANNOTATION.into(), api.clone());
    }
    let Some(current) = existing else {
        execute(shared, Command::Create(Box::new(Object::Node(wanted)))).await?;
        return Ok(());
    };
    if wanted.metadata != current.metadata {
        let revision = execute(
            shared,
            Command::Update(Box::new(Object::Node(wanted.clone()))),
        )
        .await?;
        wanted.metadata.resource_version = revision.to_string();
    }
    if wanted.status != current.status {
        let back = !current.is_ready();
        execute(
            shared,
            Command::UpdateStatus(Box::new(Object::Node(wanted))),
        )
        .await?;
        if back {
            statuses_again(shared, &registration.node, now).await?;
        }
    }
    Ok(())
}

/// Writes again the latest status the device reported for each of its
/// pods (the node is back from Unknown, and the node lifecycle controller
/// marked them not ready meanwhile).
async fn statuses_again(shared: &Shared, node: &str, now: SystemTime) -> Result<(), ApiError> {
    let latest: Vec<(PodKey, PodStatusUpdate)> = lock(&shared.statuses)
        .values()
        .filter(|(n, _, _)| n == node)
        .map(|(_, pod, update)| (pod.clone(), update.clone()))
        .collect();
    for (pod, update) in latest {
        pod_status(shared, node, &pod, &update, now).await?;
    }
    Ok(())
}

/// Renews the node's Lease if [`Liveness`] says it is due.
async fn renew_lease(shared: &Shared, node: &str, now: SystemTime) -> Result<(), ApiError> {
    if !lock(&shared.liveness).lease_due(node, tokio::time::Instant::now()) {
        return Ok(());
    }
    let written = async {
        let heartbeat = lock(&shared.heartbeats).get(node).copied();
        let existing = match get(shared, "Lease", NODE_LEASE_NAMESPACE, node).await? {
            Some(Stored {
                object: Object::Lease(lease),
                ..
            }) => Some(lease),
            _ => None,
        };
        // Without a registration seen, the Lease keeps its duration.
        let seconds = heartbeat.unwrap_or_else(|| {
            existing
                .as_ref()
                .and_then(|l| l.spec.lease_duration_seconds)
                .and_then(|d| u32::try_from((d - 10) / 3).ok())
                .unwrap_or(DEFAULT_HEARTBEAT_SECONDS)
        });
        let lease = status::lease(existing.as_ref(), node, seconds, now);
        let command = if existing.is_some() {
            Command::Update(Box::new(Object::Lease(lease)))
        } else {
            Command::Create(Box::new(Object::Lease(lease)))
        };
        execute(shared, command).await
    }
    .await;
    if written.is_err() {
        lock(&shared.liveness).renewal_failed(node);
    }
    written.map(drop)
}

/// Writes a pod's status as its device reports it, or, for a pod being
/// deleted whose containers all stopped, completes the deletion.
async fn pod_status(
    shared: &Shared,
    node: &str,
    (namespace, name): &(String, String),
    update: &PodStatusUpdate,
    now: SystemTime,
) -> Result<(), ApiError> {
    let Some(stored) = get(shared, "Pod", namespace, name).await? else {
        return Ok(());
    };
    let Object::Pod(pod) = &stored.object else {
        return Ok(());
    };
    // Another pod of the same name, or bound elsewhere since: not this report's.
    if pod.metadata.uid != update.pod_uid || pod.spec.node_name != node {
        return Ok(());
    }
    if pod.metadata.deletion_timestamp.is_some() && status::stopped(update) {
        return finish_deletion(shared, stored).await;
    }
    let host_ips = get_node(shared, node)
        .await?
        .map(|n| status::host_ips(&n))
        .unwrap_or_default();
    let wanted = status::pod_status(pod, update, &host_ips, now);
    if wanted == pod.status {
        return Ok(());
    }
    let mut updated: Pod = pod.clone();
    updated.status = wanted;
    execute(
        shared,
        Command::UpdateStatus(Box::new(Object::Pod(updated))),
    )
    .await
    .map(drop)
}

/// Deletes a pod whose device stopped it, with no further grace (kubelet's
/// status manager does the same), if it is still the same pod.
async fn finish_deletion(shared: &Shared, stored: Stored) -> Result<(), ApiError> {
    let uid = stored.object.metadata().uid.clone();
    let options = DeleteOptions {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteOptions::default()
    };
    match deletion::delete(&shared.storage, kind("Pod"), stored, &options).await {
        Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Shows why a pod cannot be given to its device: in its status (unless it
/// runs on in its last form), and once per reason as an Event.
async fn unresolved(shared: &Shared, pod: &Unresolvable, now: SystemTime) -> Result<(), ApiError> {
    let (namespace, name) = &pod.pod;
    let Some(stored) = get(shared, "Pod", namespace, name).await? else {
        return Ok(());
    };
    let Object::Pod(current) = &stored.object else {
        return Ok(());
    };
    if current.metadata.uid != pod.uid {
        return Ok(());
    }
    if !pod.kept {
        let wanted = status::unresolved_status(current, &pod.why, now);
        if wanted != current.status {
            let mut updated = current.clone();
            updated.status = wanted;
            execute(
                shared,
                Command::UpdateStatus(Box::new(Object::Pod(updated))),
            )
            .await?;
        }
    }
    let new = lock(&shared.reported).get(&pod.uid) != Some(&pod.why.message);
    if new {
        execute(
            shared,
            Command::Event {
                regarding: reference_to(&stored.object),
                type_: EventType::Warning,
                reason: pod.why.reason.to_owned(),
                message: pod.why.message.clone(),
            },
        )
        .await?;
        lock(&shared.reported).insert(pod.uid.clone(), pod.why.message.clone());
    }
    Ok(())
}
