//! Finding and creating the new ReplicaSet, proportional scaling, history
//! cleanup and the plain status (Kubernetes' `sync.go`).

use flotilla_shared::model::{
    DeploymentStatus, Object, ReplicaSet, ReplicaSetSpec, condition_status,
};

use super::util::{self, reason};
use super::{Entry, Rollout};
use crate::controllers::replicaset::{controller_of, controller_ref, replicas_of};
use crate::controllers::{Command, EventType, ObjectKey, Propagation};

/// The new ReplicaSet could not be created now (its name is taken); the
/// reconcile stops after writing the Deployment's status.
#[derive(Debug)]
pub(super) struct NameTaken;

impl Rollout<'_> {
    /// `syncStatusOnly`, for a Deployment being deleted.
    pub(super) fn sync_status_only(&mut self) {
        if self.get_all_replica_sets_and_sync_revision(false).is_ok() {
            self.sync_deployment_status();
        }
    }

    /// `sync`: scaling without rollout progress (paused, or a scaling event).
    pub(super) fn sync(&mut self) {
        if self.get_all_replica_sets_and_sync_revision(false).is_err() {
            return;
        }
        self.scale();
        if self.d.spec.paused {
            let old = self.old();
            self.cleanup_deployment(&old);
        }
        self.sync_deployment_status();
    }

    /// `checkPausedConditions`: a Progressing condition `Unknown` with
    /// `DeploymentPaused` or `DeploymentResumed`, so that the time spent paused
    /// does not count against the progress deadline.
    pub(super) fn check_paused_conditions(&mut self) {
        if !util::has_progress_deadline(&self.d) {
            return;
        }
        let current = util::get_condition(&self.d.status, util::PROGRESSING);
        if current.is_some_and(|c| c.reason == reason::PROGRESS_DEADLINE_EXCEEDED) {
            return;
        }
        let paused_condition = current.is_some_and(|c| c.reason == reason::DEPLOYMENT_PAUSED);
        let (why, message) = match (self.d.spec.paused, paused_condition) {
            (true, false) => (reason::DEPLOYMENT_PAUSED, "Deployment is paused"),
            (false, true) => (reason::DEPLOYMENT_RESUMED, "Deployment is resumed"),
            _ => return,
        };
        let condition = util::new_condition(
            util::PROGRESSING,
            condition_status::UNKNOWN,
            why,
            message.to_owned(),
            self.now,
        );
        util::set_condition(&mut self.d.status, condition);
    }

    /// `isScalingEvent`: an active ReplicaSet was sized for another
    /// `spec.replicas`.
    pub(super) fn is_scaling_event(&mut self) -> bool {
        if self.get_all_replica_sets_and_sync_revision(false).is_err() {
            return false;
        }
        let all: Vec<usize> = (0..self.entries.len()).collect();
        let desired = self.desired();
        self.active(&all).into_iter().any(|i| {
            self.rs(i)
                .metadata
                .annotations
                .get(util::DESIRED_REPLICAS)
                .and_then(|v| v.parse::<i32>().ok())
                .is_some_and(|annotated| annotated != desired)
        })
    }

    /// `getAllReplicaSetsAndSyncRevision`: finds the new ReplicaSet (creating
    /// it when `create`), brings its revision above the old ones', and records
    /// that revision on the Deployment.
    pub(super) fn get_all_replica_sets_and_sync_revision(
        &mut self,
        create: bool,
    ) -> Result<(), NameTaken> {
        self.new_rs = self
            .entries
            .iter()
            .position(|e| util::equal_ignore_hash(&e.rs.spec.template, &self.d.spec.template));
        let old = self.old();
        let max_old_revision = old
            .iter()
            .map(|&i| util::revision_of(self.rs(i)))
            .max()
            .unwrap_or(0);
        let new_revision = max_old_revision + 1;

        if let Some(i) = self.new_rs {
            let mut copy = self.rs(i).clone();
            let annotations_updated =
                util::set_new_replica_set_annotations(&self.d, &mut copy, new_revision, true);
            let min_ready_changed = copy.spec.min_ready_seconds != self.d.spec.min_ready_seconds;
            if annotations_updated || min_ready_changed {
                copy.spec.min_ready_seconds = self.d.spec.min_ready_seconds;
                *self.rs_mut(i) = copy;
                return Ok(());
            }
            let revision = copy
                .metadata
                .annotations
                .get(util::REVISION)
                .cloned()
                .unwrap_or_default();
            self.set_deployment_revision(&revision);
            if util::has_progress_deadline(&self.d)
                && util::get_condition(&self.d.status, util::PROGRESSING).is_none()
            {
                let condition = util::new_condition(
                    util::PROGRESSING,
                    condition_status::TRUE,
                    reason::FOUND_NEW_REPLICA_SET,
                    format!("Found new replica set {:?}", copy.metadata.name),
                    self.now,
                );
                util::set_condition(&mut self.d.status, condition);
            }
            return Ok(());
        }
        if !create {
            return Ok(());
        }
        self.create_new_replica_set(new_revision)
    }

    fn create_new_replica_set(&mut self, new_revision: i64) -> Result<(), NameTaken> {
        let d = &self.d;
        let hash = util::compute_hash(&d.spec.template, d.status.collision_count);
        let mut template = d.spec.template.clone();
        template
            .metadata
            .labels
            .insert(util::POD_TEMPLATE_HASH.to_owned(), hash.clone());
        let mut selector = d.spec.selector.clone().unwrap_or_default();
        selector
            .match_labels
            .insert(util::POD_TEMPLATE_HASH.to_owned(), hash.clone());
        let mut rs = ReplicaSet::default();
        rs.metadata.name = format!("{}-{hash}", d.metadata.name);
        rs.metadata.namespace = d.metadata.namespace.clone();
        rs.metadata.owner_references = vec![controller_ref("apps/v1", "Deployment", &d.metadata)];
        rs.metadata.labels = template.metadata.labels.clone();
        rs.spec = ReplicaSetSpec {
            replicas: Some(0),
            min_ready_seconds: d.spec.min_ready_seconds,
            selector: Some(selector),
            template,
        };

        // Create fails with AlreadyExists when the name is taken: either our
        // own new ReplicaSet the cache will show as claimed, or a hash
        // collision, which a higher collision count resolves.
        if let Some(Object::ReplicaSet(existing)) =
            self.cache
                .find("ReplicaSet", &rs.metadata.namespace, &rs.metadata.name)
        {
            let ours = controller_of(&existing.metadata)
                .is_some_and(|c| c.uid == self.d.metadata.uid)
                && util::equal_ignore_hash(&self.d.spec.template, &existing.spec.template);
            if !ours {
                *self.d.status.collision_count.get_or_insert(0) += 1;
            }
            return Err(NameTaken);
        }

        self.entries.push(Entry {
            original: None,
            rs,
            adopted: false,
        });
        let i = self.entries.len() - 1;
        self.new_rs = Some(i);
        let all: Vec<usize> = (0..self.entries.len()).collect();
        let count = self.new_rs_new_replicas(&all, i);
        let d = self.d.clone();
        let rs = &mut self.entries[i].rs;
        rs.spec.replicas = Some(count);
        util::set_new_replica_set_annotations(&d, rs, new_revision, false);
        let name = rs.metadata.name.clone();
        if count > 0 {
            self.event(
                EventType::Normal,
                "ScalingReplicaSet",
                format!("Scaled up replica set {name} to {count}"),
            );
        }
        self.set_deployment_revision(&new_revision.to_string());
        if util::has_progress_deadline(&self.d) {
            let condition = util::new_condition(
                util::PROGRESSING,
                condition_status::TRUE,
                reason::NEW_REPLICA_SET_CREATED,
                format!("Created new replica set {name:?}"),
                self.now,
            );
            util::set_condition(&mut self.d.status, condition);
        }
        Ok(())
    }

    /// `SetDeploymentRevision`.
    fn set_deployment_revision(&mut self, revision: &str) {
        let annotations = &mut self.d.metadata.annotations;
        if annotations.get(util::REVISION).map(String::as_str) != Some(revision) {
            annotations.insert(util::REVISION.to_owned(), revision.to_owned());
        }
    }

    /// `NewRSNewReplicas`: how big the new ReplicaSet may be now.
    pub(super) fn new_rs_new_replicas(&self, all: &[usize], new: usize) -> i32 {
        let desired = self.desired();
        let current = self.replicas(new);
        if !util::is_rolling_update(&self.d) {
            return desired;
        }
        let surge = self
            .d
            .spec
            .strategy
            .rolling_update
            .as_ref()
            .and_then(|r| r.max_surge.as_ref())
            .map_or(0, |s| util::scaled_value(s, desired, true));
        let pods = self.sum(all, |rs| replicas_of(rs.spec.replicas));
        let max_total = desired + surge;
        if pods >= max_total {
            return current;
        }
        current + (max_total - pods).min(desired - current)
    }

    /// `scale`: sizes the ReplicaSets for a changed `spec.replicas`,
    /// proportionally when a rolling update is under way.
    fn scale(&mut self) {
        let desired = self.desired();
        let old = self.old();
        if let Some(i) = self.find_active_or_latest(&old) {
            if self.replicas(i) != desired {
                self.scale_replica_set_and_record_event(i, desired);
            }
            return;
        }
        if self.is_saturated() {
            for i in self.active(&old) {
                self.scale_replica_set_and_record_event(i, 0);
            }
            return;
        }
        if !util::is_rolling_update(&self.d) {
            return;
        }
        let mut everything = old.clone();
        everything.extend(self.new_rs);
        let mut all = self.active(&everything);
        let current = self.sum(&all, |rs| replicas_of(rs.spec.replicas));
        let allowed = if desired > 0 {
            desired + util::max_surge(&self.d)
        } else {
            0
        };
        let to_add = allowed - current;
        let operation = match to_add.signum() {
            1 => {
                all.sort_by(|&a, &b| util::by_size(self.rs(a), self.rs(b), true));
                "up"
            }
            -1 => {
                all.sort_by(|&a, &b| util::by_size(self.rs(a), self.rs(b), false));
                "down"
            }
            _ => "",
        };
        let mut added = 0;
        let mut sizes = Vec::with_capacity(all.len());
        for &i in &all {
            let size = if to_add != 0 {
                let proportion = self.proportion(i, to_add, added);
                added += proportion;
                self.replicas(i) + proportion
            } else {
                self.replicas(i)
            };
            sizes.push(size);
        }
        for (k, &i) in all.iter().enumerate() {
            let mut size = sizes[k];
            if k == 0 && to_add != 0 {
                size = (size + to_add - added).max(0);
            }
            self.scale_replica_set(i, size, operation);
        }
    }

    /// `FindActiveOrLatest`: the only active ReplicaSet, or the newest when
    /// none is active; `None` when several are.
    fn find_active_or_latest(&self, old: &[usize]) -> Option<usize> {
        let mut everything = old.to_vec();
        everything.extend(self.new_rs);
        let active = self.active(&everything);
        match active.len() {
            0 => self.new_rs.or_else(|| old.last().copied()),
            1 => Some(active[0]),
            _ => None,
        }
    }

    /// `IsSaturated`: the new ReplicaSet is at full size and all available.
    fn is_saturated(&self) -> bool {
        let Some(i) = self.new_rs else { return false };
        let rs = self.rs(i);
        let desired = self.desired();
        let annotated = rs
            .metadata
            .annotations
            .get(util::DESIRED_REPLICAS)
            .and_then(|v| v.parse::<i32>().ok());
        annotated == Some(desired)
            && self.replicas(i) == desired
            && rs.status.available_replicas == desired
    }

    /// `GetProportion`: this ReplicaSet's share of `to_add`, bounded by what
    /// is left to add.
    fn proportion(&self, i: usize, to_add: i32, added: i32) -> i32 {
        let replicas = self.replicas(i);
        if replicas == 0 || to_add == 0 || to_add == added {
            return 0;
        }
        let fraction = self.fraction(i);
        let allowed = to_add - added;
        if to_add > 0 {
            fraction.min(allowed)
        } else {
            fraction.max(allowed)
        }
    }

    /// `getReplicaSetFraction`: how much ReplicaSet `i` grows or shrinks if it
    /// keeps its share of the Deployment's maximum size.
    fn fraction(&self, i: usize) -> i32 {
        let desired = self.desired();
        let replicas = self.replicas(i);
        if desired == 0 {
            return -replicas;
        }
        let max_now = desired + util::max_surge(&self.d);
        let before = self
            .rs(i)
            .metadata
            .annotations
            .get(util::MAX_REPLICAS)
            .and_then(|v| v.parse::<i32>().ok())
            .filter(|&v| v != 0)
            .unwrap_or(self.d.status.replicas);
        if before == 0 {
            return 0;
        }
        let size = f64::from(replicas) * f64::from(max_now) / f64::from(before);
        size.round() as i32 - replicas
    }

    /// `scaleReplicaSetAndRecordEvent`.
    pub(super) fn scale_replica_set_and_record_event(&mut self, i: usize, size: i32) -> bool {
        let current = self.replicas(i);
        if current == size {
            return false;
        }
        let operation = if current < size { "up" } else { "down" };
        self.scale_replica_set(i, size, operation)
    }

    /// `scaleReplicaSet`: the new size and the replica annotations; the
    /// `ScalingReplicaSet` Event when the size changed.
    fn scale_replica_set(&mut self, i: usize, size: i32, operation: &str) -> bool {
        let desired = self.desired();
        let max = desired + util::max_surge(&self.d);
        let current = self.replicas(i);
        let size_changed = current != size;
        let mut copy = self.rs(i).clone();
        let annotations_changed = util::set_replicas_annotations(&mut copy, desired, max);
        if !size_changed && !annotations_changed {
            return false;
        }
        copy.spec.replicas = Some(size);
        let name = copy.metadata.name.clone();
        *self.rs_mut(i) = copy;
        if size_changed {
            self.event(
                EventType::Normal,
                "ScalingReplicaSet",
                format!("Scaled {operation} replica set {name} to {size} from {current}"),
            );
        }
        size_changed
    }

    /// `cleanupDeployment`: deletes the oldest revisions beyond
    /// `revisionHistoryLimit`, only those scaled to zero with no pods left.
    pub(super) fn cleanup_deployment(&mut self, old: &[usize]) {
        let Some(limit) = self
            .d
            .spec
            .revision_history_limit
            .filter(|&l| l != i32::MAX)
        else {
            return;
        };
        let mut cleanable: Vec<usize> = old
            .iter()
            .copied()
            .filter(|&i| self.rs(i).metadata.deletion_timestamp.is_none())
            .collect();
        let surplus = cleanable.len() as i64 - i64::from(limit);
        if surplus <= 0 {
            return;
        }
        cleanable.sort_by(|&a, &b| util::by_revision(self.rs(a), self.rs(b)));
        for &i in cleanable.iter().take(usize::try_from(surplus).unwrap_or(0)) {
            let rs = self.rs(i);
            if rs.status.replicas != 0
                || replicas_of(rs.spec.replicas) != 0
                || rs.metadata.generation > rs.status.observed_generation
            {
                continue;
            }
            self.deletes.push(Command::Delete {
                key: ObjectKey::new("ReplicaSet", &rs.metadata.namespace, &rs.metadata.name),
                uid: Some(rs.metadata.uid.clone()),
                propagation: Propagation::Background,
            });
        }
    }

    /// `syncDeploymentStatus`.
    pub(super) fn sync_deployment_status(&mut self) {
        self.d.status = self.calculate_status();
    }

    /// `calculateStatus`: the counts over all ReplicaSets and the
    /// `Available` condition.
    pub(super) fn calculate_status(&self) -> DeploymentStatus {
        let all: Vec<usize> = (0..self.entries.len()).collect();
        let available = self.sum(&all, |rs| rs.status.available_replicas);
        let total = self.sum(&all, |rs| replicas_of(rs.spec.replicas));
        let mut status = DeploymentStatus {
            observed_generation: self.d.metadata.generation,
            replicas: self.sum(&all, |rs| rs.status.replicas),
            updated_replicas: self.new_rs.map_or(0, |i| self.rs(i).status.replicas),
            ready_replicas: self.sum(&all, |rs| rs.status.ready_replicas),
            available_replicas: available,
            unavailable_replicas: (total - available).max(0),
            conditions: self.d.status.conditions.clone(),
            collision_count: self.d.status.collision_count,
        };
        let condition = if available >= self.desired() - util::max_unavailable(&self.d) {
            util::new_condition(
                util::AVAILABLE,
                condition_status::TRUE,
                reason::MINIMUM_REPLICAS_AVAILABLE,
                "Deployment has minimum availability.".to_owned(),
                self.now,
            )
        } else {
            util::new_condition(
                util::AVAILABLE,
                condition_status::FALSE,
                reason::MINIMUM_REPLICAS_UNAVAILABLE,
                "Deployment does not have minimum availability.".to_owned(),
                self.now,
            )
        };
        util::set_condition(&mut status, condition);
        status
    }
}
