//! The `Recreate` strategy (Kubernetes' `recreate.go`): every old pod goes
//! before any new one starts.

use flotilla_shared::model::pod_phase;

use super::Rollout;
use super::util;
use crate::controllers::replicaset::controlled_pods;

impl Rollout<'_> {
    /// `rolloutRecreate`: old ReplicaSets to zero; once their pods are gone,
    /// the new ReplicaSet (created only then) to full size.
    pub(super) fn rollout_recreate(&mut self) {
        if self.get_all_replica_sets_and_sync_revision(false).is_err() {
            return;
        }
        let mut scaled_down = false;
        for i in self.active(&self.old()) {
            scaled_down |= self.scale_replica_set_and_record_event(i, 0);
        }
        if scaled_down || self.old_pods_running() {
            self.sync_rollout_status();
            return;
        }
        if self.new_rs.is_none() && self.get_all_replica_sets_and_sync_revision(true).is_err() {
            return;
        }
        if let Some(new) = self.new_rs {
            let desired = self.desired();
            self.scale_replica_set_and_record_event(new, desired);
        }
        if util::deployment_complete(&self.d, &self.d.status) {
            let old = self.old();
            self.cleanup_deployment(&old);
        }
        self.sync_rollout_status();
    }

    /// `oldPodsRunning`: old ReplicaSets still report pods, or an old pod
    /// that is not `Succeeded` or `Failed` still exists (terminating pods
    /// count: Recreate waits until they are gone).
    fn old_pods_running(&self) -> bool {
        let old = self.old();
        if self.sum(&old, |rs| rs.status.replicas) > 0 {
            return true;
        }
        old.iter().any(|&i| {
            controlled_pods(self.cache, &self.rs(i).metadata.uid).any(|pod| {
                pod.status.phase != pod_phase::SUCCEEDED && pod.status.phase != pod_phase::FAILED
            })
        })
    }
}
