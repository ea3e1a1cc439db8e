//! The agent's runtime: it takes desired states, keeps one worker per pod
//! that drives the pure [`crate::pod`] state machine, and executes its
//! commands against the image store, the OCI runtime and the [`Host`].
//!
//! On start, with or without a hub, it adopts what the runtime still runs:
//! each pod's record names its runs, the runtime confirms them, runs the
//! records do not claim are removed, and nothing is started twice.

mod adopt;
pub mod cli;
mod execute;
pub mod feed;
mod host;
mod probe;
#[cfg(test)]
mod tests;
mod worker;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use flotilla_shared::wire::{DesiredState, Pod, PodStatusUpdate};
use tokio::sync::{mpsc, watch};

pub use host::{Host, LinuxHost, MemoryHost, SandboxInfo};

use crate::image::{ImageSource, ImageStore};
use crate::runtime::OciRuntime;
use crate::state::{StateDir, StateError};

/// Milliseconds since the Unix epoch, advancing with tokio's clock (so that
/// tests with paused time move it too).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base_ms: u64,
    start: tokio::time::Instant,
}

impl Clock {
    pub fn new() -> Self {
        let base_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Clock {
            base_ms,
            start: tokio::time::Instant::now(),
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.base_ms + self.start.elapsed().as_millis() as u64
    }

    /// The tokio instant of a Unix-ms time.
    pub fn instant_of(&self, at_ms: u64) -> tokio::time::Instant {
        self.start + Duration::from_millis(at_ms.saturating_sub(self.base_ms))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// Where the agent keeps things.
#[derive(Clone, Debug)]
pub struct Paths {
    /// Durable: desired state, pod records, images, container bundles.
    pub state_dir: PathBuf,
    /// Volatile (tmpfs): namespaces, secret volumes, runtime state.
    pub run_dir: PathBuf,
}

impl Paths {
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.state_dir.join("containers").join(id)
    }
}

/// Everything a pod worker needs, shared.
#[derive(Debug)]
pub struct Services<R, S, H> {
    pub node: String,
    pub runtime: R,
    pub images: ImageStore<S>,
    pub host: H,
    pub state: StateDir,
    pub paths: Paths,
    pub clock: Clock,
}

/// Errors that stop the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("listing the runtime's containers: {0}")]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error("desired state for node {got:?} refused: this is node {node:?}")]
    WrongNode { node: String, got: String },
}

/// Messages a pod worker gets from the agent.
#[derive(Debug)]
enum ToWorker {
    /// The pod's spec in the desired state of this revision.
    Spec(Box<Pod>, u64),
    /// The pod left the desired state: stop it with its own grace period.
    Gone,
}

struct WorkerHandle {
    tx: mpsc::UnboundedSender<ToWorker>,
    task: tokio::task::JoinHandle<()>,
}

/// Runs the agent until `shutdown` turns true: applies each desired state
/// from `desired` (after persisting it), reports pod statuses on `status`,
/// and publishes on `stored` the revision it has on disk (a feed
/// acknowledges deliveries up to it). Containers keep running when the
/// agent stops.
pub async fn run<R, S, H>(
    services: Arc<Services<R, S, H>>,
    mut desired: watch::Receiver<Option<DesiredState>>,
    status: mpsc::UnboundedSender<PodStatusUpdate>,
    stored: watch::Sender<Option<u64>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), AgentError>
where
    R: OciRuntime + Send + Sync + 'static,
    S: ImageSource,
    H: Host,
{
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut held = services.state.load_desired()?;
    let adopted = adopt::adopt(&services, held.as_ref()).await?;
    let mut workers: BTreeMap<String, WorkerHandle> = BTreeMap::new();
    let mut revision = held.as_ref().map(|d| d.revision);
    stored.send_replace(revision);
    // Pods that ran to completion and are still desired: not run again.
    let mut finished: BTreeSet<String> = BTreeSet::new();
    for pod in adopted {
        let uid = pod.spec.uid.clone();
        if pod.state.record.finished {
            if pod.gone {
                services.state.remove_pod(&uid)?;
            } else {
                finished.insert(uid);
            }
            continue;
        }
        let handle = spawn_worker(
            &services,
            pod.state,
            pod.spec,
            pod.events,
            revision.unwrap_or(0),
            &status,
            &done_tx,
        );
        if pod.gone {
            let _ = handle.tx.send(ToWorker::Gone);
        }
        workers.insert(uid, handle);
    }
    if let Some(held) = &held {
        apply_desired(&services, held, &mut workers, &finished, &status, &done_tx);
    }
    let mut gc = tokio::time::interval(GC_INTERVAL);
    gc.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = desired.changed() => {
                if changed.is_err() {
                    // The feed is gone: keep running what we have.
                    desired = watch::channel(None).1;
                    continue;
                }
                let Some(next) = desired.borrow_and_update().clone() else { continue };
                if next.node != services.node {
                    tracing::warn!(node = %services.node, got = %next.node, "desired state for another node refused");
                    continue;
                }
                if revision.is_some_and(|r| next.revision < r) {
                    tracing::info!(revision = next.revision, held = ?revision, "older desired state ignored");
                    continue;
                }
                // Written off the agent's one thread: the fsyncs would stall
                // every pod's worker meanwhile.
                let written = {
                    let (svc, held, next) = (Arc::clone(&services), held.clone(), next.clone());
                    tokio::task::spawn_blocking(move || {
                        keep_leaving_specs(&svc.state, held.as_ref(), &next)
                            .and_then(|()| svc.state.store_desired(&next))
                            .map_err(|e| e.to_string())
                    })
                    .await
                    .unwrap_or_else(|e| Err(format!("the task failed: {e}")))
                };
                if let Err(error) = written {
                    // Not acted on unless it is on disk: a crash must not
                    // lose what was acknowledged.
                    tracing::warn!(revision = next.revision, %error, "desired state not stored; not applied");
                    continue;
                }
                revision = Some(next.revision);
                // The feed may acknowledge it now: it is on disk.
                stored.send_replace(revision);
                for uid in finished.iter().filter(|uid| !next.pods.iter().any(|p| &p.uid == *uid)) {
                    if let Err(error) = services.state.remove_pod(uid) {
                        tracing::warn!(%uid, %error, "removing a finished pod's state");
                    }
                }
                finished.retain(|uid| next.pods.iter().any(|p| &p.uid == uid));
                apply_desired(&services, &next, &mut workers, &finished, &status, &done_tx);
                held = Some(next);
            }
            Some(uid) = done_rx.recv() => {
                let desired_now = held.as_ref().is_some_and(|d| d.pods.iter().any(|p| p.uid == uid));
                if let Some(handle) = workers.remove(&uid) {
                    let _ = handle.task.await;
                }
                if desired_now {
                    finished.insert(uid);
                } else if let Err(error) = services.state.remove_pod(&uid) {
                    tracing::warn!(%uid, %error, "removing a finished pod's state");
                }
                collect_images(&services, held.as_ref()).await;
            }
            _ = gc.tick() => collect_images(&services, held.as_ref()).await,
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    for handle in workers.values() {
                        handle.task.abort();
                    }
                    return Ok(());
                }
            }
        }
    }
}

/// A pod uid the agent makes paths of: lowercase letters, digits and '-'.
pub(crate) fn valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 64
        && uid
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A container name the agent makes paths and runtime ids of: a DNS-1123
/// label.
pub(crate) fn valid_container_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// What the agent checks itself before a pod's uid and container names
/// become paths and runtime ids: a uid of lowercase letters, digits and '-'
/// (a UUID), and container names that are unique DNS-1123 labels.
fn check_pod(pod: &Pod) -> Result<(), String> {
    if !valid_uid(&pod.uid) {
        return Err(format!("pod uid {:?} is not a UUID", pod.uid));
    }
    let mut seen = BTreeSet::new();
    for container in pod.init_containers.iter().chain(&pod.containers) {
        let name = container.name.as_str();
        if !valid_container_name(name) {
            return Err(format!("container name {name:?} is not a DNS-1123 label"));
        }
        if !seen.insert(name) {
            return Err(format!("container name {name:?} is used twice"));
        }
    }
    if pod.containers.is_empty() {
        return Err("the pod has no containers".into());
    }
    Ok(())
}

/// How often unused images are collected (also after every pod that ends).
const GC_INTERVAL: Duration = Duration::from_secs(600);

/// Removes images no desired pod names and no recorded run uses, and
/// enforces the store's disk budget.
async fn collect_images<R, S, H>(services: &Arc<Services<R, S, H>>, desired: Option<&DesiredState>)
where
    R: OciRuntime + Send + Sync + 'static,
    S: ImageSource,
    H: Host,
{
    let mut in_use: BTreeSet<String> = desired
        .iter()
        .flat_map(|d| &d.pods)
        .flat_map(|p| p.init_containers.iter().chain(&p.containers))
        .map(|c| c.image.clone())
        .collect();
    let svc = Arc::clone(services);
    let result = tokio::task::spawn_blocking(move || {
        for uid in svc.state.pod_uids().unwrap_or_default() {
            if let Ok(Some(record)) = svc.state.load_record(&uid) {
                in_use.extend(
                    record
                        .init_containers
                        .iter()
                        .chain(&record.containers)
                        .filter(|c| !c.image_id.is_empty())
                        .map(|c| c.image_id.clone()),
                );
            }
        }
        svc.images.gc(&in_use)
    })
    .await;
    match result {
        Ok(Ok(report)) if !report.removed_images.is_empty() => {
            tracing::info!(removed = ?report.removed_images, freed_bytes = report.freed_bytes, "unused images removed");
        }
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::warn!(%error, "collecting unused images"),
        Err(error) => tracing::warn!(%error, "collecting unused images"),
    }
}

/// Writes the spec of every pod that leaves the desired state with `next`
/// and has a record beside it, before `next` replaces the held desired
/// state: after a crash the pod is then still stopped by its own rules
/// (grace period, hooks), though no desired state names it any more.
fn keep_leaving_specs(
    state: &StateDir,
    held: Option<&DesiredState>,
    next: &DesiredState,
) -> Result<(), StateError> {
    let leaving = held
        .iter()
        .flat_map(|held| &held.pods)
        .filter(|pod| !next.pods.iter().any(|p| p.uid == pod.uid));
    for pod in leaving {
        if state.has_record(&pod.uid) {
            state.store_pod(pod)?;
        }
    }
    Ok(())
}

fn apply_desired<R, S, H>(
    services: &Arc<Services<R, S, H>>,
    desired: &DesiredState,
    workers: &mut BTreeMap<String, WorkerHandle>,
    finished: &BTreeSet<String>,
    status: &mpsc::UnboundedSender<PodStatusUpdate>,
    done: &mpsc::UnboundedSender<String>,
) where
    R: OciRuntime + Send + Sync + 'static,
    S: ImageSource,
    H: Host,
{
    let now = services.clock.now_ms();
    for pod in desired.pods.iter().filter(|p| !finished.contains(&p.uid)) {
        if let Err(reason) = check_pod(pod) {
            if !workers.contains_key(&pod.uid) {
                tracing::warn!(uid = %pod.uid, name = %pod.name, %reason, "pod refused");
                let _ = status.send(PodStatusUpdate {
                    node: services.node.clone(),
                    pod_uid: pod.uid.clone(),
                    phase: flotilla_shared::wire::PodPhase::Failed,
                    reason: "InvalidPod".into(),
                    message: reason,
                    observed_revision: desired.revision,
                    timestamp_ms: services.clock.now_ms(),
                    ..PodStatusUpdate::default()
                });
            }
            continue;
        }
        match workers.get(&pod.uid) {
            Some(handle) => {
                let _ = handle
                    .tx
                    .send(ToWorker::Spec(Box::new(pod.clone()), desired.revision));
            }
            None => {
                let state = crate::pod::PodState::new(pod, now);
                let handle = spawn_worker(
                    services,
                    state,
                    pod.clone(),
                    Vec::new(),
                    desired.revision,
                    status,
                    done,
                );
                workers.insert(pod.uid.clone(), handle);
            }
        }
    }
    for (uid, handle) in workers.iter() {
        if !desired.pods.iter().any(|p| &p.uid == uid) {
            let _ = handle.tx.send(ToWorker::Gone);
        }
    }
}

fn spawn_worker<R, S, H>(
    services: &Arc<Services<R, S, H>>,
    state: crate::pod::PodState,
    spec: Pod,
    events: Vec<crate::pod::Event>,
    revision: u64,
    status: &mpsc::UnboundedSender<PodStatusUpdate>,
    done: &mpsc::UnboundedSender<String>,
) -> WorkerHandle
where
    R: OciRuntime + Send + Sync + 'static,
    S: ImageSource,
    H: Host,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(worker::run(
        Arc::clone(services),
        worker::Start {
            state,
            spec,
            initial: events,
            revision,
        },
        rx,
        status.clone(),
        done.clone(),
    ));
    WorkerHandle { tx, task }
}
