//! The controllers' runtime: runs on the Raft leader only and moves with
//! leadership.
//!
//! [`run`] watches this replica's Raft role. When it becomes leader it first
//! waits until it has applied everything committed (a read-index barrier),
//! then starts a [`Manager`]: the cache is loaded from the store at one
//! revision and followed by a watch from that revision, every object is
//! queued once for every controller (a full resync, which is how a new leader
//! resumes whatever the old one left half done), and then each change queues
//! the keys its controllers say. When leadership is lost the manager is
//! dropped at once, commands in flight included: a write the old leader
//! still sends fails (it is not the leader) or loses its compare-and-swap,
//! so two managers never both change the cluster.
//!
//! Per controller, keys are queued without duplicates and at most one
//! reconcile per key is in flight: a key that changes while its commands run
//! is reconciled again after them, and not before the cache shows the
//! revisions they wrote (kube-controller-manager's "expectations"), so a
//! controller never acts twice on a state it has already changed.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use flotilla_shared::model::{KINDS, Object};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::executor::Executor;
use super::scheduling::Scheduling;
use super::{Cache, Command, ObjectKey, Reconciler};
use crate::api::status::ApiError;
use crate::api::storage::{Storage, decode};
use crate::replica::{Consistency, Node};
use crate::scheduler::Config;
use crate::store::{EventType, ListAt, ListRequest, ReadError, WatchRequest};

/// How many reconciles run between two looks at the watch.
const RECONCILES_PER_TURN: usize = 256;
/// The first retry delay after a failed command; doubled per failure.
const RETRY_BASE: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Runs `controllers` (made afresh for every term of leadership) while this
/// replica leads, until `shutdown` completes.
pub async fn run<F>(
    node: Arc<Node>,
    storage: Storage,
    controllers: F,
    scheduler: Config,
    shutdown: impl std::future::Future<Output = ()>,
) where
    F: Fn() -> Vec<Arc<dyn Reconciler>>,
{
    crate::replica::leading::while_leading(
        node,
        "controllers",
        move || Manager::new(storage.clone(), controllers(), scheduler.clone()).run(),
        shutdown,
    )
    .await;
}

/// The queue of one controller.
#[derive(Debug, Default)]
struct Queue {
    ready: VecDeque<ObjectKey>,
    queued: HashSet<ObjectKey>,
    in_flight: HashSet<ObjectKey>,
    /// Changed while in flight: queue again when done.
    dirty: HashSet<ObjectKey>,
    /// Not before the cache reaches this revision.
    wait_for: HashMap<ObjectKey, u64>,
    /// Failures in a row, for the retry delay.
    failures: HashMap<ObjectKey, u32>,
}

impl Queue {
    fn add(&mut self, key: ObjectKey) {
        if self.in_flight.contains(&key) {
            self.dirty.insert(key);
        } else if self.queued.insert(key.clone()) {
            self.ready.push_back(key);
        }
    }
}

/// What a finished command batch reports.
#[derive(Debug)]
enum Done {
    /// A controller's commands for one key: the highest revision written,
    /// or the error that stopped them.
    Reconciled {
        controller: usize,
        key: ObjectKey,
        outcome: Result<u64, ApiError>,
    },
    /// One binding of the scheduler.
    Bound {
        key: ObjectKey,
        outcome: Result<u64, ApiError>,
    },
}

/// How many bindings are written at once.
const BINDINGS_IN_FLIGHT: usize = 512;

/// The controllers of one term of leadership.
pub struct Manager {
    storage: Storage,
    executor: Arc<Executor>,
    controllers: Vec<Arc<dyn Reconciler>>,
    queues: Vec<Queue>,
    /// (due, controller, key), for requeues after a delay.
    delayed: BTreeMap<(Instant, usize), Vec<ObjectKey>>,
    cache: Cache,
    scheduler: Config,
    scheduling: Scheduling,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field(
                "controllers",
                &self
                    .controllers
                    .iter()
                    .map(|c| c.name())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Lists every kind at one revision.
async fn load(storage: &Storage) -> Result<(Cache, u64), ApiError> {
    let revision = storage.revision().await?;
    let mut cache = Cache::new();
    for info in KINDS {
        let mut request = ListRequest::new(info.kind);
        request.at = ListAt::Revision(revision);
        loop {
            let page = storage.list(request.clone(), Consistency::Stale).await?;
            for item in &page.items {
                cache.apply(decode(&item.object.value, item.object.resource_version)?);
            }
            match page.next {
                Some(next) => request.at = ListAt::Continue(next),
                None => break,
            }
        }
    }
    cache.set_revision(revision);
    Ok((cache, revision))
}

impl Manager {
    pub fn new(storage: Storage, controllers: Vec<Arc<dyn Reconciler>>, scheduler: Config) -> Self {
        let queues = controllers.iter().map(|_| Queue::default()).collect();
        Manager {
            executor: Arc::new(Executor::new(storage.clone())),
            storage,
            controllers,
            queues,
            delayed: BTreeMap::new(),
            cache: Cache::new(),
            scheduling: Scheduling::new(scheduler.clone()),
            scheduler,
        }
    }

    /// Runs until the store closes (or the task is aborted).
    pub async fn run(mut self) {
        loop {
            let (cache, revision) = match load(&self.storage).await {
                Ok(loaded) => loaded,
                Err(e) => {
                    warn!(error = %e, "controllers could not load the cluster state; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            self.cache = cache;
            self.scheduling = Scheduling::new(self.scheduler.clone());
            self.resync();
            let request = WatchRequest {
                from: revision,
                ..WatchRequest::default()
            };
            let mut watcher = match self.storage.watch(request).await {
                Ok(watcher) => watcher,
                Err(e) => {
                    debug!(error = %e, "controllers' watch could not start; loading again");
                    continue;
                }
            };
            let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
            loop {
                self.release_delayed(Instant::now());
                self.reconcile_ready(&done_tx);
                self.schedule(&done_tx);
                let next_delayed = self.delayed.keys().next().map(|(due, _)| *due);
                tokio::select! {
                    event = watcher.next() => match event {
                        Ok(event) => {
                            let deleted = event.event_type == EventType::Deleted;
                            let changed = if deleted {
                                self.cache.remove(&event.key)
                            } else {
                                match decode(&event.value, event.revision) {
                                    Ok(object) => {
                                        self.cache.apply(object.clone());
                                        Some(object)
                                    }
                                    Err(e) => {
                                        warn!(key = %event.key, error = %e, "undecodable object ignored by the controllers");
                                        None
                                    }
                                }
                            };
                            self.cache.set_revision(watcher.progress());
                            if let Some(object) = changed {
                                self.scheduling.changed(&object, deleted);
                                self.changed(&object);
                            }
                        }
                        Err(ReadError::Closed) => return,
                        Err(e) => {
                            debug!(error = %e, "controllers' watch ended; loading again");
                            break;
                        }
                    },
                    Some(done) = done_rx.recv() => self.finished(done),
                    () = sleep_until_opt(next_delayed) => {}
                }
            }
        }
    }

    /// Queues every object for every controller, and shows the scheduler
    /// every node, then every pod.
    fn resync(&mut self) {
        let objects: Vec<Object> = KINDS
            .iter()
            .flat_map(|info| self.cache.of_kind(info.kind).cloned().collect::<Vec<_>>())
            .collect();
        for object in objects.iter().filter(|o| matches!(o, Object::Node(_))) {
            self.scheduling.changed(object, false);
        }
        for object in &objects {
            if matches!(object, Object::Pod(_)) {
                self.scheduling.changed(object, false);
            }
            self.changed(object);
        }
    }

    /// Places pending pods and sends their bindings; tells the others why not.
    fn schedule(&mut self, done: &mpsc::UnboundedSender<Done>) {
        if !self.scheduling.has_pending() {
            return;
        }
        let (binds, reports) = self.scheduling.schedule(&self.cache);
        // Events name the scheduler as kube-scheduler's profile does.
        let component: Arc<str> = Arc::from(self.scheduler.scheduler_name.as_str());
        if !binds.is_empty() {
            let executor = Arc::clone(&self.executor);
            let component = Arc::clone(&component);
            let done = done.clone();
            tokio::spawn(async move {
                use futures_util::StreamExt as _;
                let mut results = futures_util::stream::iter(binds)
                    .map(|(key, command)| {
                        let executor = Arc::clone(&executor);
                        let component = Arc::clone(&component);
                        async move {
                            let outcome = executor.execute(&component, command).await;
                            (key, outcome)
                        }
                    })
                    .buffer_unordered(BINDINGS_IN_FLIGHT);
                while let Some((key, outcome)) = results.next().await {
                    let _ = done.send(Done::Bound { key, outcome });
                }
            });
        }
        if !reports.is_empty() {
            let executor = Arc::clone(&self.executor);
            tokio::spawn(async move {
                for command in reports {
                    if let Err(e) = executor.execute(&component, command).await {
                        debug!(error = %e, "reporting an unschedulable pod failed");
                    }
                }
            });
        }
    }

    fn changed(&mut self, object: &Object) {
        for (i, controller) in self.controllers.iter().enumerate() {
            for key in controller.keys_for(object, &self.cache) {
                self.queues[i].add(key);
            }
        }
    }

    fn release_delayed(&mut self, now: Instant) {
        let due: Vec<(Instant, usize)> = self
            .delayed
            .range(..=(now, usize::MAX))
            .map(|(k, _)| *k)
            .collect();
        for slot in due {
            if let Some(keys) = self.delayed.remove(&slot) {
                for key in keys {
                    self.queues[slot.1].add(key);
                }
            }
        }
    }

    fn delay(&mut self, controller: usize, key: ObjectKey, after: Duration) {
        self.delayed
            .entry((Instant::now() + after, controller))
            .or_default()
            .push(key);
    }

    /// Reconciles queued keys whose previous writes the cache already shows.
    fn reconcile_ready(&mut self, done: &mpsc::UnboundedSender<Done>) {
        let now = SystemTime::now();
        let mut budget = RECONCILES_PER_TURN;
        for i in 0..self.controllers.len() {
            let mut waiting = Vec::new();
            while budget > 0 {
                let Some(key) = self.queues[i].ready.pop_front() else {
                    break;
                };
                let queue = &mut self.queues[i];
                if queue
                    .wait_for
                    .get(&key)
                    .is_some_and(|rev| *rev > self.cache.revision())
                {
                    waiting.push(key);
                    continue;
                }
                queue.queued.remove(&key);
                queue.wait_for.remove(&key);
                budget -= 1;
                let controller = Arc::clone(&self.controllers[i]);
                let action = controller.reconcile(&key, &self.cache, now);
                if let Some(after) = action.requeue_after {
                    self.delay(i, key.clone(), after);
                }
                if action.commands.is_empty() {
                    continue;
                }
                self.queues[i].in_flight.insert(key.clone());
                let executor = Arc::clone(&self.executor);
                let done = done.clone();
                tokio::spawn(async move {
                    let outcome = execute_all(&executor, controller.name(), action.commands).await;
                    let _ = done.send(Done::Reconciled {
                        controller: i,
                        key,
                        outcome,
                    });
                });
            }
            // Keys waiting for the cache go back to the front, in order.
            for key in waiting.into_iter().rev() {
                self.queues[i].ready.push_front(key);
            }
            if budget == 0 {
                break;
            }
        }
    }

    fn finished(&mut self, done: Done) {
        let (controller, key, outcome) = match done {
            Done::Reconciled {
                controller,
                key,
                outcome,
            } => (controller, key, outcome),
            Done::Bound { key, outcome } => {
                if let Err(e) = outcome {
                    debug!(%key, error = %e, "binding failed; placing the pod again");
                    self.scheduling.binding_failed(&key, &self.cache);
                }
                return;
            }
        };
        let queue = &mut self.queues[controller];
        queue.in_flight.remove(&key);
        // A change seen meanwhile is covered by the look below.
        queue.dirty.remove(&key);
        match outcome {
            Ok(revision) => {
                queue.failures.remove(&key);
                if revision > 0 {
                    queue.wait_for.insert(key.clone(), revision);
                }
                // Look again once the writes show: they may enable the next step.
                self.queues[controller].add(key);
            }
            Err(e) => {
                let failures = queue.failures.entry(key.clone()).or_default();
                *failures += 1;
                let delay = RETRY_BASE
                    .saturating_mul(1 << (*failures).min(10))
                    .min(RETRY_MAX);
                if !matches!(
                    e,
                    ApiError::Conflict { .. } | ApiError::AlreadyExists { .. }
                ) {
                    debug!(controller = self.controllers[controller].name(), %key, error = %e, "command failed; retrying");
                }
                self.delay(controller, key, delay);
            }
        }
    }
}

/// How commands may run together: a run of creates or bindings (a
/// ReplicaSet creating 100 pods) runs concurrently, then a run of Events;
/// anything else runs alone, in order.
fn group(command: &Command) -> u8 {
    match command {
        Command::Create(_) | Command::Bind { .. } => 1,
        Command::Event { .. } => 2,
        _ => 0,
    }
}

/// Runs one reconcile's commands in order, each run of [`group`]mates
/// concurrently. Stops at the first failure, so an Event about a create
/// that failed is never recorded; answers the highest revision written.
async fn execute_all(
    executor: &Executor,
    component: &str,
    commands: Vec<Command>,
) -> Result<u64, ApiError> {
    let mut highest = 0;
    let mut commands = commands.into_iter().peekable();
    while let Some(first) = commands.next() {
        let kind = group(&first);
        let mut run = vec![first];
        while kind != 0 && commands.peek().is_some_and(|next| group(next) == kind) {
            run.extend(commands.next());
        }
        let results = futures_util::future::join_all(
            run.into_iter()
                .map(|command| executor.execute(component, command)),
        )
        .await;
        for result in results {
            highest = highest.max(result?);
        }
    }
    Ok(highest)
}

async fn sleep_until_opt(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}
