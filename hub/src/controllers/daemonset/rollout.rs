//! The `RollingUpdate` strategy without surge (`rollingUpdate` in
//! pkg/controller/daemon/update.go): old pods are deleted, at most
//! `maxUnavailable` daemon pods unavailable at a time; the placement step
//! of a later reconcile creates each replacement once the old pod is gone.
//!
//! A device that is offline never stalls the rollout. Kubernetes counts a
//! node whose pod is unavailable or terminating against `maxUnavailable`;
//! an offline device's pod is unavailable and, once deleted, stays
//! terminating until the device is back, so a few offline devices would
//! use up the budget and stop the rollout for everyone. Here a node that
//! is offline (its `Ready` condition is not `True`), or gone:
//!
//! - is not counted against `maxUnavailable`: nothing the controller does
//!   changes its availability while it is away;
//! - has its old pod deleted at once, whatever the budget. The deletion
//!   waits on the device (its pod is bound, so it is deleted gracefully):
//!   when it reconnects, its agent stops the old pod and removes it, and
//!   the next reconcile creates the new one, which it then runs. The
//!   device converges to the new template in one reconnection and never
//!   runs both versions at once.
//!
//! `maxUnavailable` is a count or a percentage of `desiredNumberScheduled`
//! (offline devices included), rounded up; when it comes to 0 it is 1, as
//! Kubernetes does for a DaemonSet that allows neither surge nor
//! unavailability.

use flotilla_shared::model::{IntOrString, Pod};

use super::Sync;

/// The old pods to delete in this step of the rollout.
pub(super) fn pods_to_replace<'a>(sync: &Sync<'a>) -> Vec<&'a Pod> {
    let desired = sync
        .nodes
        .values()
        .filter(|view| view.verdict.should_run)
        .count();
    let max_unavailable = max_unavailable(sync, desired);
    let mut unavailable = 0usize;
    let mut replace_now = Vec::new();
    let mut candidates = Vec::new();
    for (name, pods) in &sync.pods_by_node {
        let online = sync.nodes.get(name).is_some_and(|view| view.online);
        let Some((new, old)) = split_updated(sync, pods) else {
            // Duplicates: the placement step removes them.
            unavailable += usize::from(online);
            continue;
        };
        match (new, old) {
            (None, None) | (Some(_), Some(_)) => unavailable += usize::from(online),
            (Some(new), None) => {
                unavailable += usize::from(online && !sync.availability(new).is_available());
            }
            (None, Some(old)) => {
                if !online || !sync.availability(old).is_available() {
                    replace_now.push(old);
                } else if unavailable < max_unavailable {
                    candidates.push(old);
                }
            }
        }
    }
    let room = max_unavailable
        .saturating_sub(unavailable)
        .min(candidates.len());
    replace_now.extend(&candidates[..room]);
    replace_now
}

/// `findUpdatedPodsOnNode`: the node's new and old pod, ignoring pods
/// being deleted; `None` when it has more than one of either.
fn split_updated<'a>(
    sync: &Sync<'a>,
    pods: &[&'a Pod],
) -> Option<(Option<&'a Pod>, Option<&'a Pod>)> {
    let (mut new, mut old) = (None, None);
    for &pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let slot = if sync.is_updated(pod) {
            &mut new
        } else {
            &mut old
        };
        if slot.replace(pod).is_some() {
            return None;
        }
    }
    Some((new, old))
}

fn max_unavailable(sync: &Sync<'_>, desired: usize) -> usize {
    let configured = sync
        .ds
        .spec
        .update_strategy
        .rolling_update
        .as_ref()
        .and_then(|r| r.max_unavailable.as_ref());
    let scaled = match configured {
        None => 1,
        Some(IntOrString::Int(n)) => usize::try_from(*n).unwrap_or(0),
        Some(IntOrString::String(text)) => text
            .strip_suffix('%')
            .and_then(|p| p.parse::<usize>().ok())
            .map_or(1, |percent| (percent * desired).div_ceil(100)),
    };
    if scaled == 0 && desired > 0 {
        1
    } else {
        scaled
    }
}
