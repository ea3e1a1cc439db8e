//! A pod's status as the hub sees it: phase, per-container state with
//! Kubernetes' reasons, restart counts, readiness. Computed from the state
//! machine's record and live state only.

use flotilla_shared::wire::{Container, Pod, RestartPolicy};
use flotilla_shared::wire::{ContainerState, ContainerStatus, PodPhase};

use super::backoff;
use super::machine::PodState;
use super::record::{ContainerRecord, ImageState, Observed};

/// A pull failure shows as `ErrImagePull` this long, then `ImagePullBackOff`.
const ERR_IMAGE_PULL_SHOWN_MS: u64 = 2_000;

/// The status fields the pod state determines (the caller adds node,
/// revision and timestamps).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodStatus {
    pub phase: PodPhase,
    pub reason: String,
    pub message: String,
    pub start_time_ms: u64,
    pub init_containers: Vec<ContainerStatus>,
    pub containers: Vec<ContainerStatus>,
}

impl PodStatus {
    /// Whether every container is ready (the pod's Ready condition).
    pub fn ready(&self) -> bool {
        self.phase == PodPhase::Running && self.containers.iter().all(|c| c.ready)
    }
}

impl PodState {
    /// The pod's status at `now`.
    pub fn status(&self, spec: &Pod, now_ms: u64) -> PodStatus {
        let init_passed = self
            .record
            .init_containers
            .iter()
            .zip(&spec.init_containers)
            .all(|(r, c)| r.done || (c.sidecar && self.is_started(c, r)));
        let init_containers = spec
            .init_containers
            .iter()
            .zip(&self.record.init_containers)
            .map(|(c, r)| self.container_status(spec, c, r, true, now_ms))
            .collect();
        let containers = spec
            .containers
            .iter()
            .zip(&self.record.containers)
            .map(|(c, r)| {
                let mut status = self.container_status(spec, c, r, false, now_ms);
                if !init_passed && r.run.is_none() && r.last_termination.is_none() {
                    status.state = waiting("PodInitializing", "");
                }
                status
            })
            .collect();
        let (phase, reason, message) = self.phase(spec, init_passed);
        PodStatus {
            phase,
            reason,
            message,
            start_time_ms: self.record.accepted_at_ms,
            init_containers,
            containers,
        }
    }

    fn phase(&self, spec: &Pod, init_passed: bool) -> (PodPhase, String, String) {
        if self.record.init_failed {
            return (
                PodPhase::Failed,
                String::new(),
                "an init container failed and the pod's restartPolicy is Never".into(),
            );
        }
        let exits: Vec<Option<i32>> = self
            .record
            .containers
            .iter()
            .map(|r| r.last_termination.as_ref().map(|t| t.exit_code))
            .collect();
        let all_done = self
            .record
            .containers
            .iter()
            .all(|r| r.done && r.run.is_none());
        if all_done && exits.iter().all(Option::is_some) {
            let failed = exits.iter().any(|code| *code != Some(0));
            return (
                if failed {
                    PodPhase::Failed
                } else {
                    PodPhase::Succeeded
                },
                String::new(),
                String::new(),
            );
        }
        if !init_passed {
            return (PodPhase::Pending, String::new(), String::new());
        }
        // Running once every container has run at least once.
        let all_ran = self.record.containers.iter().all(|r| {
            r.last_termination.is_some()
                || r.run
                    .as_ref()
                    .is_some_and(|run| run.started_at_ms.is_some())
        });
        if all_ran
            && !(all_done
                && spec.restart_policy == RestartPolicy::Never
                && exits.iter().any(Option::is_none))
        {
            return (PodPhase::Running, String::new(), String::new());
        }
        (PodPhase::Pending, String::new(), String::new())
    }

    fn container_status(
        &self,
        spec: &Pod,
        container: &Container,
        record: &ContainerRecord,
        init: bool,
        now_ms: u64,
    ) -> ContainerStatus {
        let run = record.run.as_ref();
        let state = match run {
            Some(run) => match (run.started_at_ms, self.live.observed.get(&run.id)) {
                (Some(at), Some(Observed::Running) | None) => {
                    ContainerState::Running { started_at_ms: at }
                }
                _ => waiting("ContainerCreating", ""),
            },
            None if record.done => match &record.last_termination {
                Some(t) => ContainerState::Terminated(t.clone()),
                None => waiting("ContainerCreating", ""),
            },
            None => self.waiting_state(spec, container, record, now_ms),
        };
        let is_init_task = init && !container.sidecar;
        ContainerStatus {
            name: container.name.clone(),
            state,
            last_termination: if run.is_some() || !record.done {
                record.last_termination.clone()
            } else {
                None
            },
            ready: if is_init_task {
                record.done
                    && record
                        .last_termination
                        .as_ref()
                        .is_some_and(|t| t.exit_code == 0)
            } else {
                self.ready(container, record)
            },
            started: !is_init_task && self.is_started(container, record),
            restart_count: record.restart_count,
            image_id: record.image_id.clone(),
            container_id: run.map(|r| r.id.clone()).unwrap_or_default(),
        }
    }

    fn waiting_state(
        &self,
        spec: &Pod,
        container: &Container,
        record: &ContainerRecord,
        now_ms: u64,
    ) -> ContainerState {
        if let Some(ImageState::Failed {
            reason,
            message,
            failed_at_ms,
            backoff,
        }) = self.live.images.get(&container.name)
        {
            let reason = if reason == "ErrImagePull"
                && now_ms >= failed_at_ms.saturating_add(ERR_IMAGE_PULL_SHOWN_MS)
                && backoff.waiting(now_ms)
            {
                "ImagePullBackOff"
            } else {
                reason.as_str()
            };
            let message = if reason == "ImagePullBackOff" {
                format!("Back-off pulling image \"{}\": {message}", container.image)
            } else {
                message.clone()
            };
            return waiting(reason, &message);
        }
        if let Some(error) = self.live.create_errors.get(&container.name) {
            return waiting(&error.reason, &error.message);
        }
        if record.last_termination.is_some() && record.backoff.waiting(now_ms) {
            let delay_s = record.backoff.delay_ms.max(backoff::INITIAL_MS) / 1000;
            return waiting(
                "CrashLoopBackOff",
                &format!(
                    "back-off {delay_s}s restarting failed container={} pod={}_{}({})",
                    container.name, spec.name, spec.namespace, spec.uid
                ),
            );
        }
        waiting("ContainerCreating", "")
    }
}

fn waiting(reason: &str, message: &str) -> ContainerState {
    ContainerState::Waiting {
        reason: reason.to_owned(),
        message: message.to_owned(),
    }
}
