//! The rollout status and its conditions (Kubernetes' `progress.go`):
//! `Progressing` (`NewReplicaSetAvailable`, `ReplicaSetUpdated`,
//! `ProgressDeadlineExceeded`) and `ReplicaFailure`, and the requeue that
//! notices a deadline passing.

use std::time::Duration;

use flotilla_shared::model::{DeploymentCondition, condition_status};

use super::Rollout;
use super::util::{self, reason};

impl Rollout<'_> {
    /// `syncRolloutStatus`.
    pub(super) fn sync_rollout_status(&mut self) {
        let mut status = self.calculate_status();
        let d = &self.d;
        if !util::has_progress_deadline(d) {
            util::remove_condition(&mut status, util::PROGRESSING);
        }
        let current = util::get_condition(&d.status, util::PROGRESSING).cloned();
        let complete_already = status.replicas == status.updated_replicas
            && current
                .as_ref()
                .is_some_and(|c| c.reason == reason::NEW_REPLICA_SET_AVAILABLE);
        let subject = match self.new_rs {
            Some(i) => format!("ReplicaSet {:?}", self.rs(i).metadata.name),
            None => format!("Deployment {:?}", d.metadata.name),
        };
        if util::has_progress_deadline(d) && !complete_already {
            if util::deployment_complete(d, &status) {
                util::set_condition(
                    &mut status,
                    util::new_condition(
                        util::PROGRESSING,
                        condition_status::TRUE,
                        reason::NEW_REPLICA_SET_AVAILABLE,
                        format!("{subject} has successfully progressed."),
                        self.now,
                    ),
                );
            } else if util::deployment_progressing(d, &status) {
                let mut condition = util::new_condition(
                    util::PROGRESSING,
                    condition_status::TRUE,
                    reason::REPLICA_SET_UPDATED,
                    format!("{subject} is progressing."),
                    self.now,
                );
                // Progress refreshes lastUpdateTime even with the same reason.
                if let Some(current) = &current {
                    if current.status == condition_status::TRUE {
                        condition.last_transition_time = current.last_transition_time.clone();
                    }
                    util::remove_condition(&mut status, util::PROGRESSING);
                }
                util::set_condition(&mut status, condition);
            } else if util::deployment_timed_out(d, &status, self.now) {
                util::set_condition(
                    &mut status,
                    util::new_condition(
                        util::PROGRESSING,
                        condition_status::FALSE,
                        reason::PROGRESS_DEADLINE_EXCEEDED,
                        format!("{subject} has timed out progressing."),
                        self.now,
                    ),
                );
            }
        }
        match self.replica_failure() {
            Some(condition) => util::set_condition(&mut status, condition),
            None => util::remove_condition(&mut status, util::REPLICA_FAILURE),
        }
        self.requeue_stuck_deployment(&status);
        self.d.status = status;
    }

    /// `getReplicaFailures`: the new ReplicaSet's `ReplicaFailure` condition
    /// (or, without one, an old ReplicaSet's) as the Deployment's.
    fn replica_failure(&self) -> Option<DeploymentCondition> {
        let mut order: Vec<usize> = self.new_rs.into_iter().collect();
        order.extend(self.old());
        order.into_iter().find_map(|i| {
            self.rs(i)
                .status
                .conditions
                .iter()
                .find(|c| c.type_ == crate::controllers::replicaset::REPLICA_FAILURE)
                .map(|c| DeploymentCondition {
                    type_: util::REPLICA_FAILURE.to_owned(),
                    status: c.status.clone(),
                    last_update_time: c.last_transition_time.clone(),
                    last_transition_time: c.last_transition_time.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                })
        })
    }

    /// `requeueStuckDeployment`: look again when the Progressing condition's
    /// deadline passes, unless the rollout is complete or already timed out.
    fn requeue_stuck_deployment(&mut self, status: &flotilla_shared::model::DeploymentStatus) {
        let d = &self.d;
        if !util::has_progress_deadline(d) || util::deployment_complete(d, status) {
            return;
        }
        let Some(condition) = util::get_condition(status, util::PROGRESSING) else {
            return;
        };
        if condition.reason == reason::PROGRESS_DEADLINE_EXCEEDED
            || condition.reason == reason::NEW_REPLICA_SET_AVAILABLE
        {
            return;
        }
        let Some(deadline) = util::progress_deadline(d, condition) else {
            return;
        };
        let after = deadline.duration_since(self.now).unwrap_or(Duration::ZERO);
        // A second more: the deadline must have passed (strictly) when we look.
        self.requeue_after = Some(after + Duration::from_secs(1));
    }
}
