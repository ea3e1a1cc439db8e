//! The pod state machine: `apply` takes what the executor reports, `step`
//! decides what to do next. Both are pure: no clock, no files, no runtime;
//! time comes in as `now_ms` and effects go out as [`Command`]s.
//!
//! The order of things follows kubelet: the sandbox (namespaces, volumes,
//! cgroup) first; init containers one at a time, each to success (sidecars —
//! init containers with `restartPolicy: Always` — only to started, and they
//! keep running); then every container. A container that exits is restarted
//! by the pod's policy after a capped backoff; a failed liveness or startup
//! probe stops it with the grace period first. A terminating pod stops its
//! containers with SIGTERM, then SIGKILL at the deadline, sidecars after the
//! rest, and then removes its sandbox.

use flotilla_shared::wire::Terminated;
use flotilla_shared::wire::{Container, Pod, PullPolicy, RestartPolicy};

use super::probes::{ProbeKind, ProbeTracker, Verdict};
use super::record::{
    Busy, ContainerRecord, ImageState, Live, Observed, PodRecord, Run, Sandbox, Stopping,
    Terminating, Tracked, Waiting,
};

/// How long a sandbox that failed to come up waits before the next try.
const SANDBOX_RETRY_MS: u64 = 10_000;

pub const SIGTERM: i32 = 15;
pub const SIGKILL: i32 = 9;

/// An effect for the executor; each reports back with an [`Event`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Create the pod's namespaces, volumes and cgroup (idempotent).
    PrepareSandbox,
    /// Make the container's image present; reports `Pulled` or `PullFailed`.
    Pull {
        container: String,
        image: String,
        policy: PullPolicy,
    },
    /// Build the bundle, create and start the run `id`; reports `Started` or
    /// `RunFailed`.
    Run {
        container: String,
        init: bool,
        id: String,
    },
    /// Send a signal to the run's process; reports `Signalled`.
    Signal { id: String, signal: i32 },
    /// Delete a finished run from the runtime with its rootfs; reports `Removed`.
    Remove { id: String },
    /// Run one probe; reports `ProbeResult`.
    Probe {
        container: String,
        id: String,
        kind: ProbeKind,
    },
    /// Remove the namespaces, volumes and cgroup; reports `TornDown`.
    TeardownSandbox,
}

/// What the executor observed or finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    SandboxReady,
    SandboxFailed {
        message: String,
    },
    Pulled {
        container: String,
        image_id: String,
    },
    PullFailed {
        container: String,
        /// `ErrImagePull`, `ErrImageNeverPull` or `InvalidImageName`.
        reason: String,
        message: String,
    },
    Started {
        id: String,
        at_ms: u64,
    },
    RunFailed {
        id: String,
        /// `CreateContainerConfigError`, `CreateContainerError` or `RunContainerError`.
        reason: String,
        message: String,
    },
    /// The runtime reports the run running (after an agent restart).
    Running {
        id: String,
    },
    Exited {
        id: String,
        code: i32,
        oom_killed: bool,
        finished_at_ms: u64,
    },
    /// The runtime does not know the run.
    Missing {
        id: String,
    },
    Signalled {
        id: String,
    },
    Removed {
        id: String,
    },
    /// The runtime could not delete the run; `Remove` is asked for again.
    RemoveFailed {
        id: String,
    },
    ProbeResult {
        container: String,
        id: String,
        kind: ProbeKind,
        success: bool,
        message: String,
    },
    TornDown,
}

/// What one `step` decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct Step {
    pub commands: Vec<Command>,
    /// The record changed: write it before executing the commands.
    pub persist: bool,
    /// Step again at this time (Unix ms) even if nothing is reported.
    pub wake_at_ms: Option<u64>,
}

impl Step {
    fn wake(&mut self, at_ms: u64) {
        self.wake_at_ms = Some(self.wake_at_ms.map_or(at_ms, |w| w.min(at_ms)));
    }
}

/// One pod's durable record and in-memory state.
#[derive(Clone, Debug, Default)]
pub struct PodState {
    pub record: PodRecord,
    pub live: Live,
}

/// Which list a container is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Init(usize),
    Main(usize),
}

impl PodState {
    /// A pod the agent has just accepted.
    pub fn new(spec: &Pod, now_ms: u64) -> Self {
        let mut state = PodState {
            record: PodRecord {
                uid: spec.uid.clone(),
                namespace: spec.namespace.clone(),
                name: spec.name.clone(),
                accepted_at_ms: now_ms,
                ..PodRecord::default()
            },
            live: Live::default(),
        };
        state.align(spec);
        state
    }

    /// A pod known from its record (after an agent restart): the runs it
    /// names are confirmed or refuted by `Running`, `Exited` or `Missing`
    /// events from the runtime before anything new is started.
    pub fn adopt(record: PodRecord, spec: &Pod) -> Self {
        let mut state = PodState {
            record,
            live: Live::default(),
        };
        state.align(spec);
        state
    }

    /// Makes the record's containers match the spec's by name.
    pub fn align(&mut self, spec: &Pod) {
        fn aligned(records: &mut Vec<ContainerRecord>, containers: &[Container]) {
            let mut old = std::mem::take(records);
            for container in containers {
                let record = match old.iter().position(|r| r.name == container.name) {
                    Some(i) => old.swap_remove(i),
                    None => ContainerRecord {
                        name: container.name.clone(),
                        ..ContainerRecord::default()
                    },
                };
                records.push(record);
            }
            // Containers no longer in the spec: their runs still need removing.
            for gone in old {
                if let Some(first) = records.first_mut() {
                    first.removing.extend(gone.run.map(|r| r.id));
                    first.removing.extend(gone.removing);
                }
            }
        }
        aligned(&mut self.record.init_containers, &spec.init_containers);
        aligned(&mut self.record.containers, &spec.containers);
    }

    /// The runtime ids this pod's record claims (runs and runs to remove).
    pub fn run_ids(&self) -> impl Iterator<Item = &str> {
        self.record
            .init_containers
            .iter()
            .chain(&self.record.containers)
            .flat_map(|c| {
                c.run
                    .iter()
                    .map(|r| r.id.as_str())
                    .chain(c.removing.iter().map(String::as_str))
            })
    }

    /// Starts stopping the pod for good with `grace_s` seconds of grace.
    /// Returns whether the record changed. A shorter grace than one already
    /// given moves the deadline closer, never further.
    pub fn terminate(&mut self, grace_s: u32, now_ms: u64) -> bool {
        let deadline_ms = now_ms.saturating_add(u64::from(grace_s) * 1000);
        match &mut self.record.terminating {
            Some(t) if t.deadline_ms <= deadline_ms => false,
            Some(t) => {
                t.deadline_ms = deadline_ms;
                for stopping in self.live.stopping.values_mut() {
                    stopping.deadline_ms = stopping.deadline_ms.min(deadline_ms);
                }
                true
            }
            None => {
                self.record.terminating = Some(Terminating {
                    since_ms: now_ms,
                    deadline_ms,
                });
                // Stops already under way (a probe, a new spec) end by then too.
                for stopping in self.live.stopping.values_mut() {
                    stopping.deadline_ms = stopping.deadline_ms.min(deadline_ms);
                }
                true
            }
        }
    }

    fn slot_of_run(&self, id: &str) -> Option<Slot> {
        let find = |list: &[ContainerRecord]| {
            list.iter()
                .position(|c| c.run.as_ref().is_some_and(|r| r.id == id))
        };
        find(&self.record.init_containers)
            .map(Slot::Init)
            .or_else(|| find(&self.record.containers).map(Slot::Main))
    }

    fn record_mut(&mut self, slot: Slot) -> &mut ContainerRecord {
        match slot {
            Slot::Init(i) => &mut self.record.init_containers[i],
            Slot::Main(i) => &mut self.record.containers[i],
        }
    }

    /// Takes one report from the executor. Returns whether the record
    /// changed (and must be written before the next commands run).
    pub fn apply(&mut self, spec: &Pod, event: Event, now_ms: u64) -> bool {
        let live = &mut self.live;
        match event {
            Event::SandboxReady => {
                live.busy.remove(&Busy::Sandbox);
                live.sandbox = Sandbox::Ready;
                false
            }
            Event::SandboxFailed { message } => {
                // Either setting up or tearing down failed: both are asked
                // for again by the next step.
                live.busy.remove(&Busy::Sandbox);
                live.busy.remove(&Busy::Teardown);
                live.sandbox = Sandbox::Failed {
                    message,
                    retry_at_ms: now_ms.saturating_add(SANDBOX_RETRY_MS),
                };
                false
            }
            Event::Pulled {
                container,
                image_id,
            } => {
                live.busy.remove(&Busy::Pull(container.clone()));
                live.images
                    .insert(container, ImageState::Ready { image_id });
                false
            }
            Event::PullFailed {
                container,
                reason,
                message,
            } => {
                live.busy.remove(&Busy::Pull(container.clone()));
                let mut backoff = match live.images.remove(&container) {
                    Some(ImageState::Failed { backoff, .. }) => backoff,
                    _ => Default::default(),
                };
                backoff.fail(now_ms, 0);
                live.images.insert(
                    container,
                    ImageState::Failed {
                        reason,
                        message,
                        failed_at_ms: now_ms,
                        backoff,
                    },
                );
                false
            }
            Event::Started { id, at_ms } => {
                live.busy.remove(&Busy::Run(id.clone()));
                let Some(slot) = self.slot_of_run(&id) else {
                    return false;
                };
                self.live.observed.insert(id.clone(), Observed::Running);
                let record = self.record_mut(slot);
                let name = record.name.clone();
                if let Some(run) = &mut record.run {
                    run.started_at_ms = Some(at_ms);
                }
                self.live.create_errors.remove(&name);
                self.track_probes(spec, slot, &id, at_ms);
                true
            }
            Event::RunFailed {
                id,
                reason,
                message,
            } => {
                live.busy.remove(&Busy::Run(id.clone()));
                let Some(slot) = self.slot_of_run(&id) else {
                    return false;
                };
                let record = self.record_mut(slot);
                record.run = None;
                // The executor may have left a half-made container behind.
                record.removing.push(id);
                record.backoff.fail(now_ms, 0);
                let name = record.name.clone();
                self.live
                    .create_errors
                    .insert(name, Waiting { reason, message });
                true
            }
            Event::Running { id } => {
                let Some(slot) = self.slot_of_run(&id) else {
                    return false;
                };
                self.live.observed.insert(id.clone(), Observed::Running);
                let started = self
                    .record_mut(slot)
                    .run
                    .as_ref()
                    .and_then(|r| r.started_at_ms);
                match started {
                    Some(at) => {
                        self.track_probes(spec, slot, &id, at);
                        false
                    }
                    // Created and started while the agent was down between
                    // the runtime's start and writing the record.
                    None => {
                        if let Some(run) = &mut self.record_mut(slot).run {
                            run.started_at_ms = Some(now_ms);
                        }
                        self.track_probes(spec, slot, &id, now_ms);
                        true
                    }
                }
            }
            Event::Exited {
                id,
                code,
                oom_killed,
                finished_at_ms,
            } => {
                self.live.observed.insert(
                    id.clone(),
                    Observed::Exited {
                        code,
                        oom_killed,
                        finished_at_ms,
                    },
                );
                match self.slot_of_run(&id) {
                    Some(slot) => {
                        let reason = if oom_killed {
                            "OOMKilled"
                        } else if code == 0 {
                            "Completed"
                        } else {
                            "Error"
                        };
                        self.finish_run(spec, slot, code, reason, finished_at_ms, now_ms);
                        true
                    }
                    None => false,
                }
            }
            Event::Missing { id } => {
                self.live.busy.remove(&Busy::Run(id.clone()));
                self.live.observed.insert(id.clone(), Observed::Missing);
                let Some(slot) = self.slot_of_run(&id) else {
                    // A run to remove that is already gone.
                    return self.forget_removed(&id);
                };
                let started = self
                    .record_mut(slot)
                    .run
                    .as_ref()
                    .and_then(|r| r.started_at_ms);
                if started.is_none() {
                    // Never created: create it again under the same id.
                    self.record_mut(slot).run = None;
                    self.record_mut(slot).attempts -= 1;
                    return true;
                }
                self.finish_run(spec, slot, 137, "ContainerStatusUnknown", now_ms, now_ms);
                self.forget_removed(&id);
                true
            }
            Event::Signalled { id } => {
                live.busy.remove(&Busy::Signal(id));
                false
            }
            Event::RemoveFailed { id } => {
                live.busy.remove(&Busy::Remove(id));
                false
            }
            Event::Removed { id } => {
                live.busy.remove(&Busy::Remove(id.clone()));
                live.observed.remove(&id);
                self.forget_removed(&id)
            }
            Event::ProbeResult {
                container,
                id,
                kind,
                success,
                message,
            } => {
                live.busy.remove(&Busy::Probe(id.clone(), kind));
                let probe = spec
                    .init_containers
                    .iter()
                    .chain(&spec.containers)
                    .find(|c| c.name == container)
                    .and_then(|c| probe_of(c, kind));
                if let (Some(probe), Some(tracked)) =
                    (probe, live.probes.get_mut(&(container, kind)))
                    && tracked.run_id == id
                {
                    tracked.tracker.record(probe, success, message, now_ms);
                }
                false
            }
            Event::TornDown => {
                live.busy.remove(&Busy::Teardown);
                live.sandbox = Sandbox::Removed;
                false
            }
        }
    }

    /// Takes back a command the executor never received (its record could
    /// not be written first): the next step hands it out again.
    pub fn release(&mut self, spec: &Pod, command: &Command, now_ms: u64) {
        let live = &mut self.live;
        match command {
            Command::PrepareSandbox => {
                live.busy.remove(&Busy::Sandbox);
            }
            Command::Pull { container, .. } => {
                live.busy.remove(&Busy::Pull(container.clone()));
            }
            Command::Run { id, .. } => {
                self.apply(spec, Event::Missing { id: id.clone() }, now_ms);
            }
            Command::Signal { id, .. } => {
                live.busy.remove(&Busy::Signal(id.clone()));
                live.stopping.remove(id);
            }
            Command::Remove { id } => {
                live.busy.remove(&Busy::Remove(id.clone()));
            }
            Command::Probe {
                container,
                id,
                kind,
                ..
            } => {
                live.busy.remove(&Busy::Probe(id.clone(), *kind));
                if let Some(tracked) = live.probes.get_mut(&(container.clone(), *kind)) {
                    tracked.tracker.in_flight = false;
                }
            }
            Command::TeardownSandbox => {
                live.busy.remove(&Busy::Teardown);
            }
        }
    }

    fn forget_removed(&mut self, id: &str) -> bool {
        let mut changed = false;
        for record in self
            .record
            .init_containers
            .iter_mut()
            .chain(&mut self.record.containers)
        {
            let before = record.removing.len();
            record.removing.retain(|r| r != id);
            changed |= record.removing.len() != before;
        }
        changed
    }

    fn track_probes(&mut self, spec: &Pod, slot: Slot, id: &str, started_ms: u64) {
        let container = match slot {
            Slot::Init(i) => &spec.init_containers[i],
            Slot::Main(i) => &spec.containers[i],
        };
        // Only sidecars among init containers are probed.
        if matches!(slot, Slot::Init(_)) && !container.sidecar {
            return;
        }
        for kind in [
            ProbeKind::Startup,
            ProbeKind::Liveness,
            ProbeKind::Readiness,
        ] {
            let key = (container.name.clone(), kind);
            match probe_of(container, kind) {
                Some(probe) => {
                    let fresh = self.live.probes.get(&key).is_none_or(|t| t.run_id != id);
                    if fresh {
                        self.live.probes.insert(
                            key,
                            Tracked {
                                run_id: id.to_owned(),
                                tracker: ProbeTracker::new(kind, probe, started_ms),
                            },
                        );
                    }
                }
                None => {
                    self.live.probes.remove(&key);
                }
            }
        }
    }

    /// Records the end of a slot's current run and decides whether it runs again.
    fn finish_run(
        &mut self,
        spec: &Pod,
        slot: Slot,
        code: i32,
        reason: &str,
        finished_at_ms: u64,
        now_ms: u64,
    ) {
        let terminating = self.record.terminating.is_some();
        let policy = spec.restart_policy;
        let sidecar = match slot {
            Slot::Init(i) => spec.init_containers[i].sidecar,
            Slot::Main(_) => false,
        };
        let Some(run) = self.record_mut(slot).run.take() else {
            return;
        };
        let stopping = self.live.stopping.remove(&run.id);
        let name = self.record_mut(slot).name.clone();
        self.live.probes.retain(|(c, _), _| *c != name);
        let started_at_ms = run.started_at_ms.unwrap_or(finished_at_ms);
        let record = self.record_mut(slot);
        record.last_termination = Some(Terminated {
            exit_code: code,
            reason: reason.to_owned(),
            message: stopping.as_ref().map(|s| s.why.clone()).unwrap_or_default(),
            started_at_ms,
            finished_at_ms,
        });
        record.removing.push(run.id);
        let pod_done = self.record.containers.iter().all(|c| c.done);
        let restart = if terminating {
            false
        } else if sidecar {
            // Sidecars stop for good once every container has finished.
            !pod_done
        } else {
            match (slot, policy) {
                (Slot::Init(_), RestartPolicy::Never) => {
                    if code != 0 {
                        self.record.init_failed = true;
                    }
                    false
                }
                (Slot::Init(_), _) => code != 0,
                (Slot::Main(_), RestartPolicy::Always) => true,
                (Slot::Main(_), RestartPolicy::OnFailure) => code != 0,
                (Slot::Main(_), RestartPolicy::Never) => false,
            }
        };
        let record = self.record_mut(slot);
        if restart {
            record.restart_count = record.restart_count.saturating_add(1);
            if stopping.is_some_and(|s| s.restart_now) {
                record.backoff.until_ms = now_ms;
            } else {
                record
                    .backoff
                    .fail(now_ms, finished_at_ms.saturating_sub(started_at_ms));
            }
        } else {
            record.done = true;
        }
    }

    /// Decides what to do next.
    pub fn step(&mut self, spec: &Pod, now_ms: u64) -> Step {
        let mut step = Step::default();
        if self.record.finished {
            return step;
        }
        for record in self
            .record
            .init_containers
            .iter()
            .chain(&self.record.containers)
        {
            for id in &record.removing {
                if self.live.busy.insert(Busy::Remove(id.clone())) {
                    step.commands.push(Command::Remove { id: id.clone() });
                }
            }
        }
        self.escalate_stops(&mut step, now_ms);
        let all_done = self.record.containers.iter().all(|c| c.done);
        if self.record.terminating.is_some() || self.record.init_failed || all_done {
            self.step_down(spec, &mut step, now_ms);
            return step;
        }
        match &self.live.sandbox {
            Sandbox::Ready => {}
            Sandbox::Failed { retry_at_ms, .. } if now_ms < *retry_at_ms => {
                step.wake(*retry_at_ms);
                return step;
            }
            _ => {
                if self.live.busy.insert(Busy::Sandbox) {
                    step.commands.push(Command::PrepareSandbox);
                }
                return step;
            }
        }
        self.replace_changed_runs(spec, &mut step, now_ms);
        let mut init_passed = true;
        for (i, container) in spec.init_containers.iter().enumerate() {
            let slot = Slot::Init(i);
            if self.record.init_containers[i].done {
                continue;
            }
            self.ensure_run(spec, slot, container, &mut step, now_ms);
            if container.sidecar && self.started(slot, container) {
                continue;
            }
            init_passed = false;
            break;
        }
        if init_passed {
            for (i, container) in spec.containers.iter().enumerate() {
                if !self.record.containers[i].done {
                    self.ensure_run(spec, Slot::Main(i), container, &mut step, now_ms);
                }
            }
            if self.record.containers.iter().all(|c| c.done) {
                // Every container finished for good: stop the sidecars.
                self.step_down(spec, &mut step, now_ms);
                return step;
            }
        }
        self.schedule_probes(spec, &mut step, now_ms);
        step
    }

    /// Whether a slot's current run counts as started (its startup probe,
    /// if any, has succeeded).
    fn started(&self, slot: Slot, container: &Container) -> bool {
        let record = match slot {
            Slot::Init(i) => &self.record.init_containers[i],
            Slot::Main(i) => &self.record.containers[i],
        };
        let Some(run) = &record.run else {
            return false;
        };
        if run.started_at_ms.is_none()
            || self.live.observed.get(&run.id) != Some(&Observed::Running)
        {
            return false;
        }
        match self
            .live
            .probes
            .get(&(container.name.clone(), ProbeKind::Startup))
        {
            Some(t) => t.run_id == run.id && t.tracker.verdict == Verdict::Success,
            None => container.startup.is_none(),
        }
    }

    /// Starts a run for the slot when nothing runs and nothing holds it back.
    fn ensure_run(
        &mut self,
        spec: &Pod,
        slot: Slot,
        container: &Container,
        step: &mut Step,
        now_ms: u64,
    ) {
        let record = match slot {
            Slot::Init(i) => &self.record.init_containers[i],
            Slot::Main(i) => &self.record.containers[i],
        };
        if record.run.is_some() || record.done {
            return;
        }
        if record.backoff.waiting(now_ms) {
            step.wake(record.backoff.until_ms);
            return;
        }
        let image_id = match self.live.images.get(&container.name) {
            Some(ImageState::Ready { image_id }) => image_id.clone(),
            Some(ImageState::Failed { backoff, .. }) if backoff.waiting(now_ms) => {
                step.wake(backoff.until_ms);
                return;
            }
            _ => {
                if self.live.busy.insert(Busy::Pull(container.name.clone())) {
                    step.commands.push(Command::Pull {
                        container: container.name.clone(),
                        image: container.image.clone(),
                        policy: container.pull_policy,
                    });
                }
                return;
            }
        };
        let uid = spec.uid.clone();
        let record = self.record_mut(slot);
        let id = format!("{uid}-{}-{}", record.name, record.attempts);
        record.attempts = record.attempts.saturating_add(1);
        record.image_id = image_id;
        record.run = Some(Run {
            id: id.clone(),
            started_at_ms: None,
            spec_hash: spec_hash(container),
        });
        self.live.busy.insert(Busy::Run(id.clone()));
        step.persist = true;
        step.commands.push(Command::Run {
            container: container.name.clone(),
            init: matches!(slot, Slot::Init(_)),
            id,
        });
    }

    /// Stops runs whose container spec changed (a new image), to be started
    /// again at once with the new spec.
    fn replace_changed_runs(&mut self, spec: &Pod, step: &mut Step, now_ms: u64) {
        let grace = u64::from(spec.termination_grace_period_seconds) * 1000;
        let changed: Vec<String> = spec
            .init_containers
            .iter()
            .zip(&self.record.init_containers)
            .chain(spec.containers.iter().zip(&self.record.containers))
            .filter_map(|(container, record)| {
                let run = record.run.as_ref()?;
                (run.spec_hash != spec_hash(container) && run.started_at_ms.is_some())
                    .then(|| run.id.clone())
            })
            .collect();
        for id in changed {
            // The new spec needs its own image.
            if let Some(slot) = self.slot_of_run(&id) {
                let name = self.record_mut(slot).name.clone();
                self.live.images.remove(&name);
            }
            self.stop(
                &id,
                now_ms.saturating_add(grace),
                "Container spec changed, will be restarted",
                true,
                step,
            );
        }
    }

    /// Sends SIGTERM to a running run unless it is already being stopped.
    fn stop(&mut self, id: &str, deadline_ms: u64, why: &str, restart_now: bool, step: &mut Step) {
        if self.live.stopping.contains_key(id)
            || self.live.observed.get(id) != Some(&Observed::Running)
        {
            return;
        }
        self.live.stopping.insert(
            id.to_owned(),
            Stopping {
                deadline_ms,
                killed: false,
                why: why.to_owned(),
                restart_now,
            },
        );
        self.live.busy.insert(Busy::Signal(id.to_owned()));
        step.commands.push(Command::Signal {
            id: id.to_owned(),
            signal: SIGTERM,
        });
        step.wake(deadline_ms);
    }

    /// SIGKILL for runs still alive at their deadline.
    fn escalate_stops(&mut self, step: &mut Step, now_ms: u64) {
        for (id, stopping) in &mut self.live.stopping {
            if stopping.killed || self.live.observed.get(id) != Some(&Observed::Running) {
                continue;
            }
            if now_ms >= stopping.deadline_ms {
                stopping.killed = true;
                self.live.busy.insert(Busy::Signal(id.clone()));
                step.commands.push(Command::Signal {
                    id: id.clone(),
                    signal: SIGKILL,
                });
            } else {
                step.wake(stopping.deadline_ms);
            }
        }
    }

    /// Stops everything (containers first, then sidecars), then removes the
    /// sandbox and marks the pod finished.
    fn step_down(&mut self, spec: &Pod, step: &mut Step, now_ms: u64) {
        let deadline_ms = match self.record.terminating {
            Some(t) => t.deadline_ms,
            None => now_ms.saturating_add(u64::from(spec.termination_grace_period_seconds) * 1000),
        };
        let run_id = |r: &ContainerRecord| r.run.as_ref().map(|run| run.id.clone());
        let mut first: Vec<String> = self.record.containers.iter().filter_map(run_id).collect();
        let mut sidecars = Vec::new();
        for (record, container) in self
            .record
            .init_containers
            .iter()
            .zip(&spec.init_containers)
        {
            if let Some(id) = run_id(record) {
                if container.sidecar {
                    sidecars.push(id);
                } else {
                    first.push(id);
                }
            }
        }
        let why = if self.record.terminating.is_some() {
            "Stopping pod"
        } else {
            "Pod finished: stopping sidecars"
        };
        for id in &first {
            self.stop(id, deadline_ms, why, false, step);
        }
        if first.is_empty() {
            for id in &sidecars {
                self.stop(id, deadline_ms, why, false, step);
            }
        }
        // Runs still being created report Started or RunFailed first.
        let anything_left = !first.is_empty()
            || !sidecars.is_empty()
            || self
                .record
                .init_containers
                .iter()
                .chain(&self.record.containers)
                .any(|c| !c.removing.is_empty());
        if anything_left {
            return;
        }
        // Containers that never ran will not now.
        for record in self
            .record
            .init_containers
            .iter_mut()
            .chain(&mut self.record.containers)
        {
            if !record.done {
                record.done = true;
                step.persist = true;
            }
        }
        match self.live.sandbox {
            Sandbox::Removed => {
                self.record.finished = true;
                step.persist = true;
            }
            _ => {
                if self.live.busy.insert(Busy::Teardown) {
                    step.commands.push(Command::TeardownSandbox);
                }
            }
        }
    }

    fn schedule_probes(&mut self, spec: &Pod, step: &mut Step, now_ms: u64) {
        let grace = u64::from(spec.termination_grace_period_seconds) * 1000;
        let mut failed = Vec::new();
        let keys: Vec<(String, ProbeKind)> = self.live.probes.keys().cloned().collect();
        for key in keys {
            let (name, kind) = &key;
            let Some(container) = spec
                .init_containers
                .iter()
                .chain(&spec.containers)
                .find(|c| &c.name == name)
            else {
                continue;
            };
            let startup_pending = *kind != ProbeKind::Startup
                && self
                    .live
                    .probes
                    .get(&(name.clone(), ProbeKind::Startup))
                    .is_some_and(|t| t.tracker.verdict != Verdict::Success);
            let tracked = &self.live.probes[&key];
            let id = tracked.run_id.clone();
            if self.live.stopping.contains_key(&id)
                || self.live.observed.get(&id) != Some(&Observed::Running)
            {
                continue;
            }
            // A startup probe that succeeded is done; until it has, the
            // others wait.
            let finished_startup =
                *kind == ProbeKind::Startup && tracked.tracker.verdict == Verdict::Success;
            if startup_pending || finished_startup {
                continue;
            }
            if matches!(kind, ProbeKind::Liveness | ProbeKind::Startup)
                && tracked.tracker.verdict == Verdict::Failure
            {
                failed.push((
                    id.clone(),
                    format!(
                        "Container {} failed {} probe, will be restarted: {}",
                        container.name,
                        kind.as_str().to_lowercase(),
                        tracked.tracker.last_message
                    ),
                ));
                continue;
            }
            if tracked.tracker.due(now_ms) {
                if self.live.busy.insert(Busy::Probe(id.clone(), *kind)) {
                    step.commands.push(Command::Probe {
                        container: name.clone(),
                        id: id.clone(),
                        kind: *kind,
                    });
                }
                if let Some(t) = self.live.probes.get_mut(&key) {
                    t.tracker.in_flight = true;
                }
            } else if !tracked.tracker.in_flight {
                step.wake(tracked.tracker.due_ms);
            }
        }
        for (id, why) in failed {
            self.stop(&id, now_ms.saturating_add(grace), &why, false, step);
        }
    }

    /// Whether a container's current run is ready (for the status).
    pub fn ready(&self, container: &Container, record: &ContainerRecord) -> bool {
        let Some(run) = &record.run else {
            return false;
        };
        if self.live.observed.get(&run.id) != Some(&Observed::Running)
            || self.live.stopping.contains_key(&run.id)
        {
            return false;
        }
        let verdict = |kind| {
            self.live
                .probes
                .get(&(container.name.clone(), kind))
                .filter(|t| t.run_id == run.id)
                .map(|t| t.tracker.verdict)
        };
        let started =
            container.startup.is_none() || verdict(ProbeKind::Startup) == Some(Verdict::Success);
        let ready = container.readiness.is_none()
            || verdict(ProbeKind::Readiness) == Some(Verdict::Success);
        started && ready
    }

    /// Whether a container's current run has passed its startup probe.
    pub fn is_started(&self, container: &Container, record: &ContainerRecord) -> bool {
        let Some(run) = &record.run else {
            return false;
        };
        run.started_at_ms.is_some()
            && self.live.observed.get(&run.id) == Some(&Observed::Running)
            && (container.startup.is_none()
                || self
                    .live
                    .probes
                    .get(&(container.name.clone(), ProbeKind::Startup))
                    .is_some_and(|t| t.run_id == run.id && t.tracker.verdict == Verdict::Success))
    }
}

/// The probe of a kind a container declares.
pub fn probe_of(container: &Container, kind: ProbeKind) -> Option<&flotilla_shared::wire::Probe> {
    match kind {
        ProbeKind::Startup => container.startup.as_ref(),
        ProbeKind::Liveness => container.liveness.as_ref(),
        ProbeKind::Readiness => container.readiness.as_ref(),
    }
}

/// A stable fingerprint of a container spec (FNV-1a over its postcard
/// encoding): equal specs always give equal values, across restarts too.
pub fn spec_hash(container: &Container) -> u64 {
    let bytes = postcard::to_allocvec(container).unwrap_or_default();
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
