//! The `RollingUpdate` strategy (Kubernetes' `rolling.go`): the new
//! ReplicaSet grows within `maxSurge`, the old ones shrink within
//! `maxUnavailable`, unhealthy old pods first.

use super::Rollout;
use super::util;

impl Rollout<'_> {
    /// `rolloutRolling`: one step, then the rollout status.
    pub(super) fn rollout_rolling(&mut self) {
        if self.get_all_replica_sets_and_sync_revision(true).is_err() {
            return;
        }
        if self.reconcile_new_replica_set() || self.reconcile_old_replica_sets() {
            self.sync_rollout_status();
            return;
        }
        if util::deployment_complete(&self.d, &self.d.status) {
            let old = self.old();
            self.cleanup_deployment(&old);
        }
        self.sync_rollout_status();
    }

    /// `reconcileNewReplicaSet`: scales the new ReplicaSet towards
    /// `spec.replicas` as far as `maxSurge` allows; whether it scaled.
    fn reconcile_new_replica_set(&mut self) -> bool {
        let Some(new) = self.new_rs else { return false };
        let desired = self.desired();
        let current = self.replicas(new);
        if current == desired {
            return false;
        }
        if current > desired {
            return self.scale_replica_set_and_record_event(new, desired);
        }
        let all: Vec<usize> = (0..self.entries.len()).collect();
        let size = self.new_rs_new_replicas(&all, new);
        self.scale_replica_set_and_record_event(new, size)
    }

    /// `reconcileOldReplicaSets`: scales old ReplicaSets down as far as
    /// `maxUnavailable` allows; whether any scaled.
    fn reconcile_old_replica_sets(&mut self) -> bool {
        let Some(new) = self.new_rs else { return false };
        let mut old = self.active(&self.old());
        let old_pods = self.sum(&old, |rs| {
            crate::controllers::replicaset::replicas_of(rs.spec.replicas)
        });
        if old_pods == 0 {
            return false;
        }
        let all: Vec<usize> = (0..self.entries.len()).collect();
        let all_pods = self.sum(&all, |rs| {
            crate::controllers::replicaset::replicas_of(rs.spec.replicas)
        });
        let min_available = self.desired() - util::max_unavailable(&self.d);
        let new_unavailable = self.replicas(new) - self.rs(new).status.available_replicas;
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        old.sort_by(|&a, &b| util::by_creation(self.rs(a), self.rs(b)));
        let cleaned = self.cleanup_unhealthy_replicas(&old, max_scaled_down);
        let scaled = self.scale_down_old_replica_sets(&old, new);
        cleaned + scaled > 0
    }

    /// `cleanupUnhealthyReplicas`: removes old pods that are not available,
    /// oldest ReplicaSet first, at most `max` of them.
    fn cleanup_unhealthy_replicas(&mut self, old: &[usize], max: i32) -> i32 {
        let mut total = 0;
        for &i in old {
            if total >= max {
                break;
            }
            let replicas = self.replicas(i);
            let available = self.rs(i).status.available_replicas;
            if replicas == 0 || replicas == available {
                continue;
            }
            let count = (max - total).min(replicas - available);
            self.scale_replica_set_and_record_event(i, replicas - count);
            total += count;
        }
        total
    }

    /// `scaleDownOldReplicaSetsForRollingUpdate`: removes available old pods
    /// while more than `spec.replicas - maxUnavailable` are available.
    fn scale_down_old_replica_sets(&mut self, old: &[usize], new: usize) -> i32 {
        let min_available = self.desired() - util::max_unavailable(&self.d);
        let mut counted = old.to_vec();
        counted.push(new);
        let available = self.sum(&counted, |rs| rs.status.available_replicas);
        if available <= min_available {
            return 0;
        }
        let target = available - min_available;
        let mut total = 0;
        for &i in old {
            if total >= target {
                break;
            }
            let replicas = self.replicas(i);
            if replicas == 0 {
                continue;
            }
            let count = replicas.min(target - total);
            self.scale_replica_set_and_record_event(i, replicas - count);
            total += count;
        }
        total
    }
}
