//! The Job controller: runs a Job's pods until enough succeed or the Job
//! fails (pkg/controller/job/job_controller.go, as in Kubernetes 1.31 with
//! its default feature gates, for `NonIndexed` Jobs).
//!
//! Keys: a Job maps to itself, a Pod to the Job that controls it.
//!
//! A reconcile counts the Job's pods by phase: `active` are those not
//! finished and not being deleted, `succeeded` those in `Succeeded`,
//! `failed` those in `Failed` that are not being deleted (a pod the
//! controller deletes because the Job was suspended or has failed
//! reaches `Failed` only after its deletion began, so it is no failure of
//! the Job). Finished pods are kept, never deleted, so the counts hold
//! across reconciles and leader changes; this stands in for Kubernetes'
//! `batch.kubernetes.io/job-tracking` finalizers and
//! `uncountedTerminatedPods`, with one difference: a finished pod that a
//! user deletes leaves the counts.
//!
//! Then, in Kubernetes' order:
//!
//! - `startTime` is set when the Job first runs unsuspended;
//! - more failures than `backoffLimit` (or, with `restartPolicy:
//!   OnFailure`, as many container restarts) or a run longer than
//!   `activeDeadlineSeconds` add `FailureTarget` (`BackoffLimitExceeded`,
//!   `DeadlineExceeded`) and delete the active pods; `Failed` follows with
//!   the same reason once none of the Job's pods is terminating;
//! - otherwise pods are created or deleted so that `min(parallelism,
//!   completions - succeeded)` are active (without `completions`:
//!   `parallelism` until one succeeds, then none new). After failures,
//!   creation waits 10 s × 2^(failures since the last success − 1), at most
//!   6 min, from the last failure;
//! - `succeeded >= completions` (without `completions`: one success) with
//!   nothing active adds `SuccessCriteriaMet` (`CompletionsReached`) then
//!   `Complete` and `completionTime` once nothing is terminating;
//! - `suspend: true` deletes the active pods and sets `Suspended`;
//!   resuming clears it and restarts `startTime`.
//!
//! Pods are named `<job>-<5 characters>` by the controller
//! ([`super::pods::new_pod_name`]); their labels come from the template,
//! where the API server put `job-name`, `batch.kubernetes.io/job-name`,
//! `controller-uid` and `batch.kubernetes.io/controller-uid` at create.
//!
//! Not done: `Indexed` completion mode, `podFailurePolicy`,
//! `successPolicy`, `backoffLimitPerIndex`, `podReplacementPolicy: Failed`,
//! `ttlSecondsAfterFinished` (the TTL controller's), adopting orphans.

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use flotilla_shared::model::{
    Job, JobCondition, Object, ObjectMeta, Pod, condition_status, pod_phase, restart_policy,
};
use flotilla_shared::selector::Selector;

use super::pods;
use super::{Action, Cache, Command, EventType, ObjectKey, Propagation, Reconciler};
use super::{key_of, reference_to};
use crate::api::time::{format_time, parse_time};

/// The first delay before a failed pod is replaced (`DefaultJobPodFailureBackOff`).
pub const POD_FAILURE_BACKOFF: Duration = Duration::from_secs(10);
/// The longest delay before a failed pod is replaced (`MaxJobPodFailureBackOff`).
pub const MAX_POD_FAILURE_BACKOFF: Duration = Duration::from_secs(360);
/// At most this many pods are created or deleted per reconcile (`MaxPodCreateDeletePerSync`).
pub const MAX_POD_CREATE_DELETE_PER_SYNC: usize = 500;

/// Job condition types.
pub mod job_condition {
    pub const COMPLETE: &str = "Complete";
    pub const FAILED: &str = "Failed";
    pub const SUSPENDED: &str = "Suspended";
    pub const FAILURE_TARGET: &str = "FailureTarget";
    pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
}

/// The Job controller's core.
#[derive(Debug, Clone, Copy, Default)]
pub struct JobController;

impl Reconciler for JobController {
    fn name(&self) -> &'static str {
        "job-controller"
    }

    fn keys_for(&self, object: &Object, _cache: &Cache) -> Vec<ObjectKey> {
        match object {
            Object::Job(_) => vec![key_of(object)],
            Object::Pod(pod) => pod
                .metadata
                .owner_references
                .iter()
                .filter(|r| r.controller == Some(true) && r.kind == "Job")
                .map(|r| ObjectKey::new("Job", &pod.metadata.namespace, &r.name))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn reconcile(&self, key: &ObjectKey, cache: &Cache, now: SystemTime) -> Action {
        let Some(object @ Object::Job(job)) = cache.get(key) else {
            return Action::await_change();
        };
        if is_finished(job) {
            return Action::await_change();
        }
        let Some(selector) = job
            .spec
            .selector
            .as_ref()
            .and_then(|s| Selector::from_label_selector(s).ok())
        else {
            return Action::await_change();
        };
        let owned: Vec<&Pod> = cache
            .dependents_of(&job.metadata.uid)
            .filter_map(|o| match o {
                Object::Pod(pod) => Some(pod),
                _ => None,
            })
            .filter(|pod| {
                pod.metadata.namespace == job.metadata.namespace
                    && pods::is_controlled_by(&pod.metadata, &job.metadata.uid)
                    && selector.matches(&pod.metadata.labels)
            })
            .collect();
        Sync::new(object, job, owned, cache, now).run()
    }
}

/// Whether the Job has its `Complete` or `Failed` condition.
pub fn is_finished(job: &Job) -> bool {
    [job_condition::COMPLETE, job_condition::FAILED]
        .iter()
        .any(|t| has_condition(job, t))
}

fn has_condition(job: &Job, type_: &str) -> bool {
    find_condition(&job.status.conditions, type_)
        .is_some_and(|c| c.status == condition_status::TRUE)
}

fn find_condition<'a>(conditions: &'a [JobCondition], type_: &str) -> Option<&'a JobCondition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// A finished state the Job is heading to: its condition type, reason
/// and message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Finish {
    type_: &'static str,
    reason: String,
    message: String,
}

/// The state of one reconcile of one Job.
struct Sync<'a> {
    object: &'a Object,
    job: &'a Job,
    cache: &'a Cache,
    now: SystemTime,
    /// Active pods, in the order they would be deleted.
    active: Vec<&'a Pod>,
    finished: Vec<&'a Pod>,
    /// Active pods after this reconcile's creations and deletions.
    active_count: i32,
    ready: i32,
    terminating: usize,
    succeeded: i32,
    failed: i32,
    status: flotilla_shared::model::JobStatus,
    commands: Vec<Command>,
    requeue: Option<Duration>,
}

impl<'a> Sync<'a> {
    fn new(
        object: &'a Object,
        job: &'a Job,
        owned: Vec<&'a Pod>,
        cache: &'a Cache,
        now: SystemTime,
    ) -> Self {
        let being_deleted = |p: &Pod| p.metadata.deletion_timestamp.is_some();
        let mut active: Vec<&Pod> = owned
            .iter()
            .copied()
            .filter(|p| !p.is_terminal() && !being_deleted(p))
            .collect();
        active.sort_by(|a, b| removal_order(a, b));
        let terminating = owned
            .iter()
            .filter(|p| !p.is_terminal() && being_deleted(p))
            .count();
        let succeeded = owned
            .iter()
            .filter(|p| p.status.phase == pod_phase::SUCCEEDED)
            .count();
        let failed = owned.iter().filter(|p| counts_as_failed(p)).count();
        let finished = owned.into_iter().filter(|p| p.is_terminal()).collect();
        Sync {
            object,
            job,
            cache,
            now,
            active_count: count(active.len()),
            ready: count(active.iter().filter(|p| p.is_ready()).count()),
            active,
            finished,
            terminating,
            succeeded: count(succeeded),
            failed: count(failed),
            status: job.status.clone(),
            commands: Vec::new(),
            requeue: None,
        }
    }

    fn suspended(&self) -> bool {
        self.job.spec.suspend == Some(true)
    }

    fn run(mut self) -> Action {
        if self.status.start_time.is_none() && !self.suspended() {
            self.status.start_time = Some(format_time(self.now));
        }
        let mut finish = self.finish_in_progress().or_else(|| self.failure());
        if finish.is_some() {
            self.delete_active(self.active.len());
        } else {
            let managed = self.job.metadata.deletion_timestamp.is_none();
            if managed {
                self.manage();
            }
            if self.is_complete() {
                finish = Some(Finish {
                    type_: job_condition::SUCCESS_CRITERIA_MET,
                    reason: "CompletionsReached".to_owned(),
                    message: "Reached expected number of succeeded pods".to_owned(),
                });
            } else if managed {
                self.suspension_condition();
            }
        }
        if let Some(finish) = finish {
            self.finish(finish);
        }
        self.status.active = self.active_count;
        self.status.succeeded = self.succeeded;
        self.status.failed = self.failed;
        self.status.ready = Some(self.ready);
        let mut commands = self.commands;
        if self.status != self.job.status {
            let mut job = self.job.clone();
            job.status = self.status;
            commands.push(Command::UpdateStatus(Box::new(Object::Job(job))));
        }
        let action = Action::with(commands);
        match self.requeue {
            Some(after) => action.requeue(after),
            None => action,
        }
    }

    /// The final condition an interim one already in the status leads to.
    fn finish_in_progress(&self) -> Option<Finish> {
        let conditions = &self.job.status.conditions;
        let interim = |type_| {
            find_condition(conditions, type_).filter(|c| c.status == condition_status::TRUE)
        };
        if let Some(c) = interim(job_condition::FAILURE_TARGET) {
            return Some(Finish {
                type_: job_condition::FAILED,
                reason: c.reason.clone(),
                message: c.message.clone(),
            });
        }
        interim(job_condition::SUCCESS_CRITERIA_MET).map(|c| Finish {
            type_: job_condition::COMPLETE,
            reason: c.reason.clone(),
            message: c.message.clone(),
        })
    }

    /// `BackoffLimitExceeded` or `DeadlineExceeded`, or a requeue for
    /// when the deadline will pass.
    fn failure(&mut self) -> Option<Finish> {
        let target = |reason: &str, message: &str| {
            Some(Finish {
                type_: job_condition::FAILURE_TARGET,
                reason: reason.to_owned(),
                message: message.to_owned(),
            })
        };
        let backoff_limit = self.job.spec.backoff_limit.unwrap_or(6);
        if self.failed > backoff_limit || self.past_backoff_limit_on_failure(backoff_limit) {
            return target(
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            );
        }
        let (Some(deadline), false) = (self.job.spec.active_deadline_seconds, self.suspended())
        else {
            return None;
        };
        let started = self
            .status
            .start_time
            .as_ref()
            .and_then(|t| parse_time(&t.0))
            .unwrap_or(self.now);
        let elapsed = self.now.duration_since(started).unwrap_or_default();
        let allowed = Duration::from_secs(deadline.max(0).unsigned_abs());
        if elapsed >= allowed {
            return target(
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            );
        }
        self.requeue_after(allowed - elapsed);
        None
    }

    /// `pastBackoffLimitOnFailure`: with `restartPolicy: OnFailure` the
    /// kubelet restarts containers in place, so their restarts count as
    /// the Job's failures.
    fn past_backoff_limit_on_failure(&self, backoff_limit: i32) -> bool {
        if self.job.spec.template.spec.restart_policy != restart_policy::ON_FAILURE {
            return false;
        }
        let restarts: i32 = self
            .active
            .iter()
            .filter(|p| {
                p.status.phase == pod_phase::RUNNING || p.status.phase == pod_phase::PENDING
            })
            .flat_map(|p| {
                p.status
                    .init_container_statuses
                    .iter()
                    .chain(&p.status.container_statuses)
            })
            .map(|c| c.restart_count)
            .sum();
        if backoff_limit == 0 {
            restarts > 0
        } else {
            restarts >= backoff_limit
        }
    }

    /// `manageJob`: deletes every active pod of a suspended Job, else
    /// creates or deletes pods towards the wanted number of active ones.
    fn manage(&mut self) {
        if self.suspended() {
            self.delete_active(self.active.len());
            return;
        }
        let active = count(self.active.len());
        let parallelism = self.job.spec.parallelism.unwrap_or(1).max(0);
        let want = match self.job.spec.completions {
            None if self.succeeded > 0 => active,
            None => parallelism,
            Some(completions) => (completions - self.succeeded).clamp(0, parallelism),
        };
        if active > want {
            let excess = usize::try_from(active - want).unwrap_or(0);
            self.delete_active(excess.min(MAX_POD_CREATE_DELETE_PER_SYNC));
            return;
        }
        let missing = usize::try_from(want - active).unwrap_or(0);
        if missing == 0 {
            return;
        }
        let wait = self.failure_backoff();
        if !wait.is_zero() {
            self.requeue_after(wait);
            return;
        }
        self.create(missing.min(MAX_POD_CREATE_DELETE_PER_SYNC));
    }

    /// What is left of the delay after the last failure
    /// (`getRemainingTimeForFailuresCount`): 10 s doubled for every failure
    /// since the last success beyond the first, at most 6 min.
    fn failure_backoff(&self) -> Duration {
        let mut finished: Vec<(SystemTime, bool)> = self
            .finished
            .iter()
            .filter(|p| p.status.phase == pod_phase::SUCCEEDED || counts_as_failed(p))
            .map(|p| (pods::finished_at(p), p.status.phase == pod_phase::FAILED))
            .collect();
        finished.sort();
        let mut failures = 0u32;
        let mut last_failure = None;
        for (at, failed) in finished {
            if failed {
                failures += 1;
                last_failure = Some(at);
            } else {
                failures = 0;
                last_failure = None;
            }
        }
        let Some(last_failure) = last_failure else {
            return Duration::ZERO;
        };
        let delay = backoff_delay(failures);
        let elapsed = self.now.duration_since(last_failure).unwrap_or_default();
        delay.saturating_sub(elapsed)
    }

    fn create(&mut self, n: usize) {
        let job = self.job;
        let template = &job.spec.template;
        let mut taken = BTreeSet::new();
        for _ in 0..n {
            let name = pods::new_pod_name(
                self.cache,
                &job.metadata.namespace,
                &job.metadata.name,
                &job.metadata.uid,
                &mut taken,
            );
            let pod = Pod {
                api_version: "v1".to_owned(),
                kind: "Pod".to_owned(),
                metadata: ObjectMeta {
                    name: name.clone(),
                    namespace: job.metadata.namespace.clone(),
                    labels: template.metadata.labels.clone(),
                    annotations: template.metadata.annotations.clone(),
                    finalizers: template.metadata.finalizers.clone(),
                    owner_references: vec![pods::controller_ref(self.object)],
                    ..ObjectMeta::default()
                },
                spec: template.spec.clone(),
                ..Pod::default()
            };
            self.commands
                .push(Command::Create(Box::new(Object::Pod(pod))));
            self.event(
                EventType::Normal,
                "SuccessfulCreate",
                format!("Created pod: {name}"),
            );
        }
        // Counted as active from now on, as Kubernetes does.
        self.active_count += count(n);
    }

    /// Deletes the first `n` active pods (`activePodsForRemoval`: not yet
    /// running or not ready first, then the newest).
    fn delete_active(&mut self, n: usize) {
        let doomed: Vec<&Pod> = self.active.iter().copied().take(n).collect();
        for pod in doomed {
            self.commands.push(Command::Delete {
                key: ObjectKey::new("Pod", &pod.metadata.namespace, &pod.metadata.name),
                uid: Some(pod.metadata.uid.clone()),
                propagation: Propagation::Background,
            });
            self.event(
                EventType::Normal,
                "SuccessfulDelete",
                format!("Deleted pod: {}", pod.metadata.name),
            );
            self.active_count -= 1;
            self.ready -= i32::from(pod.is_ready());
            self.terminating += 1;
        }
    }

    fn is_complete(&self) -> bool {
        if self.active_count > 0 {
            return false;
        }
        match self.job.spec.completions {
            None => self.succeeded > 0,
            Some(completions) => self.succeeded >= completions,
        }
    }

    /// `Suspended` while suspended; `False` (and a new `startTime`) on resume.
    fn suspension_condition(&mut self) {
        let (status, reason, message, event) = if self.suspended() {
            (
                condition_status::TRUE,
                "JobSuspended",
                "Job suspended",
                "Suspended",
            )
        } else {
            (
                condition_status::FALSE,
                "JobResumed",
                "Job resumed",
                "Resumed",
            )
        };
        if self.ensure_condition(job_condition::SUSPENDED, status, reason, message) {
            self.event(EventType::Normal, event, message.to_owned());
            if !self.suspended() {
                self.status.start_time = Some(format_time(self.now));
            }
        }
    }

    /// Records the interim condition, then the final one (`Failed`,
    /// `Complete`) once none of the Job's pods is terminating
    /// (`enactJobFinished`), with its Event.
    fn finish(&mut self, finish: Finish) {
        let final_type = match finish.type_ {
            job_condition::FAILURE_TARGET => Some(job_condition::FAILED),
            job_condition::SUCCESS_CRITERIA_MET => Some(job_condition::COMPLETE),
            _ => None,
        };
        let final_type = match final_type {
            Some(final_type) => {
                self.ensure_condition(
                    finish.type_,
                    condition_status::TRUE,
                    &finish.reason,
                    &finish.message,
                );
                final_type
            }
            None => finish.type_,
        };
        if self.terminating > 0 {
            return;
        }
        self.ensure_condition(
            final_type,
            condition_status::TRUE,
            &finish.reason,
            &finish.message,
        );
        if final_type == job_condition::COMPLETE {
            self.status.completion_time = Some(format_time(self.now));
            if let Some(completions) = self.job.spec.completions
                && self.succeeded > completions
            {
                self.event(
                    EventType::Warning,
                    "TooManySucceededPods",
                    "Too many succeeded pods running after completion count reached".to_owned(),
                );
            }
            self.event(EventType::Normal, "Completed", "Job completed".to_owned());
        } else {
            self.event(EventType::Warning, &finish.reason, finish.message.clone());
        }
    }

    /// `ensureJobConditionStatus`: sets the condition when its status,
    /// reason or message differ; a missing condition is only added when
    /// not `False`. Says whether anything changed.
    fn ensure_condition(&mut self, type_: &str, status: &str, reason: &str, message: &str) -> bool {
        let now = format_time(self.now);
        let fresh = JobCondition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            last_probe_time: Some(now.clone()),
            last_transition_time: Some(now),
            reason: reason.to_owned(),
            message: message.to_owned(),
        };
        let conditions = &mut self.status.conditions;
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(c) if c.status == status && c.reason == reason && c.message == message => false,
            Some(c) => {
                *c = fresh;
                true
            }
            None if status == condition_status::FALSE => false,
            None => {
                conditions.push(fresh);
                true
            }
        }
    }

    fn event(&mut self, type_: EventType, reason: &str, message: String) {
        self.commands.push(Command::Event {
            regarding: reference_to(self.object),
            type_,
            reason: reason.to_owned(),
            message,
        });
    }

    fn requeue_after(&mut self, after: Duration) {
        self.requeue = Some(self.requeue.map_or(after, |current| current.min(after)));
    }
}

/// A pod in `Failed` that is not being deleted: a failure of the Job.
fn counts_as_failed(pod: &Pod) -> bool {
    pod.status.phase == pod_phase::FAILED && pod.metadata.deletion_timestamp.is_none()
}

/// The delay after `failures` consecutive failures: 10 s, 20 s, 40 s, …, 6 min.
pub fn backoff_delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let mut delay = POD_FAILURE_BACKOFF;
    for _ in 1..failures {
        delay *= 2;
        if delay >= MAX_POD_FAILURE_BACKOFF {
            return MAX_POD_FAILURE_BACKOFF;
        }
    }
    delay
}

/// `controller.ActivePods` order: unbound before bound, pending before
/// unknown before running, not ready before ready, newer before older.
fn removal_order(a: &Pod, b: &Pod) -> std::cmp::Ordering {
    let phase_rank = |p: &Pod| match p.status.phase.as_str() {
        pod_phase::PENDING => 0,
        pod_phase::UNKNOWN => 1,
        pod_phase::RUNNING => 2,
        _ => 0,
    };
    let created = |p: &Pod| {
        p.metadata
            .creation_timestamp
            .as_ref()
            .and_then(|t| parse_time(&t.0))
    };
    a.is_bound()
        .cmp(&b.is_bound())
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| a.is_ready().cmp(&b.is_ready()))
        .then_with(|| created(b).cmp(&created(a)))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// A count as the API's `int32` fields hold it.
fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
