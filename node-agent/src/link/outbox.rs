//! What the link owes the hub and the broker, kept across reconnects.
//!
//! - [`Outbox`]: the latest status of every pod the device holds. Statuses
//!   are state, not events: only the newest of a pod matters, and all of
//!   them are sent again after every connect (a broker that lost the
//!   session dropped whatever was in flight; a few hundred bytes per pod
//!   once per reconnect is cheap next to losing a Running or a final exit).
//! - [`Acks`]: desired-state deliveries held unacknowledged until the agent
//!   has written that revision to disk, so that a crash between receipt and
//!   write makes the broker deliver it again (QoS 1 with manual acks).

use std::collections::BTreeMap;

use flotilla_shared::wire::PodStatusUpdate;

/// The latest status per pod uid.
#[derive(Debug, Default)]
pub struct Outbox {
    latest: BTreeMap<String, PodStatusUpdate>,
}

impl Outbox {
    /// Keeps `update` as its pod's latest, unless the outbox already holds
    /// a newer one.
    pub fn put(&mut self, update: PodStatusUpdate) {
        match self.latest.get(&update.pod_uid) {
            Some(held) if held.timestamp_ms > update.timestamp_ms => {}
            _ => {
                self.latest.insert(update.pod_uid.clone(), update);
            }
        }
    }

    /// Forgets the pods not in `desired` (they left the desired state: the
    /// hub has removed them and wants nothing more about them).
    pub fn retain(&mut self, desired: impl Fn(&str) -> bool) {
        self.latest.retain(|uid, _| desired(uid));
    }

    /// Everything to send after a connect, in uid order.
    pub fn all(&self) -> impl Iterator<Item = &PodStatusUpdate> {
        self.latest.values()
    }

    pub fn len(&self) -> usize {
        self.latest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }
}

/// Deliveries of desired states not acknowledged yet, by revision.
#[derive(Debug)]
pub struct Acks<T> {
    waiting: Vec<(u64, T)>,
}

impl<T> Default for Acks<T> {
    fn default() -> Self {
        Acks {
            waiting: Vec::new(),
        }
    }
}

impl<T> Acks<T> {
    /// Holds `delivery` of `revision` until the agent has it on disk.
    pub fn hold(&mut self, revision: u64, delivery: T) {
        self.waiting.push((revision, delivery));
    }

    /// The deliveries that may be acknowledged now that `stored` (the
    /// revision on disk) is known: every one at or below it (an older one
    /// was superseded; the agent ignores it).
    pub fn release(&mut self, stored: u64) -> Vec<T> {
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(revision, _)| *revision <= stored);
        self.waiting = waiting;
        done.into_iter().map(|(_, delivery)| delivery).collect()
    }

    /// A new connection: deliveries of the old one cannot be acknowledged on
    /// it (the broker delivers them again).
    pub fn clear(&mut self) {
        self.waiting.clear();
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(uid: &str, at: u64) -> PodStatusUpdate {
        PodStatusUpdate {
            pod_uid: uid.into(),
            timestamp_ms: at,
            ..PodStatusUpdate::default()
        }
    }

    #[test]
    fn the_outbox_keeps_the_newest_status_of_each_desired_pod() {
        let mut outbox = Outbox::default();
        outbox.put(status("b", 5));
        outbox.put(status("a", 1));
        outbox.put(status("a", 3));
        // A late, older update does not replace a newer one.
        outbox.put(status("b", 4));
        let held: Vec<(&str, u64)> = outbox
            .all()
            .map(|s| (s.pod_uid.as_str(), s.timestamp_ms))
            .collect();
        assert_eq!(held, [("a", 3), ("b", 5)]);
        outbox.retain(|uid| uid == "b");
        assert_eq!(outbox.len(), 1);
        outbox.retain(|_| false);
        assert!(outbox.is_empty());
    }

    #[test]
    fn deliveries_are_released_once_their_revision_is_stored() {
        let mut acks = Acks::default();
        acks.hold(5, "r5");
        acks.hold(7, "r7");
        acks.hold(6, "r6");
        assert!(acks.release(4).is_empty());
        assert_eq!(acks.release(6), ["r5", "r6"]);
        assert_eq!(acks.len(), 1);
        acks.clear();
        assert!(acks.is_empty());
        assert!(acks.release(100).is_empty());
    }
}
