//! Which devices are alive, kept in memory, and when their Leases are due.
//!
//! Every heartbeat, registration and status counts as hearing from a device;
//! none of them is written to the store by itself. A device's Lease is
//! renewed only when [`Liveness::lease_due`] says so (every `renew_every`,
//! a fraction of the node lifecycle controller's grace period), so a fleet
//! heartbeating every few minutes costs Raft one small write per device per
//! renewal interval at most, and nothing for a device that stays silent.
//!
//! Last wills: the broker publishes a device's [`Offline`](flotilla_shared::wire::Offline)
//! when a connection dies, possibly long after (1.5 keepalives) and after
//! the device already reconnected elsewhere. [`Liveness::offline`] accepts a
//! will only for the device's current session.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
struct Device {
    /// The session of its latest registration.
    session: u64,
    heard: Instant,
    /// When its Lease was last renewed through this gateway.
    renewed: Option<Instant>,
    online: bool,
}

/// The devices this gateway hears from.
#[derive(Debug)]
pub struct Liveness {
    devices: HashMap<String, Device>,
    renew_every: Duration,
}

impl Liveness {
    pub fn new(renew_every: Duration) -> Self {
        Liveness {
            devices: HashMap::new(),
            renew_every,
        }
    }

    /// A registration: a new session of `node`. An older session's
    /// registration (delivered late) changes nothing.
    pub fn registered(&mut self, node: &str, session: u64, now: Instant) {
        let device = self.devices.entry(node.to_owned()).or_insert(Device {
            session,
            heard: now,
            renewed: None,
            online: true,
        });
        if session >= device.session {
            device.session = session;
            device.online = true;
        }
        device.heard = now;
    }

    /// A heartbeat or a status from `node`.
    pub fn heard(&mut self, node: &str, now: Instant) {
        let device = self.devices.entry(node.to_owned()).or_insert(Device {
            session: 0,
            heard: now,
            renewed: None,
            online: true,
        });
        device.heard = now;
        device.online = true;
    }

    /// A last will of `node`'s connection `session`: answers whether the
    /// device is now offline (the will is of its current session).
    pub fn offline(&mut self, node: &str, session: u64) -> bool {
        match self.devices.get_mut(node) {
            Some(device) if device.session == session && device.online => {
                device.online = false;
                true
            }
            _ => false,
        }
    }

    /// Whether `node` should have its Lease renewed now; if so, records the
    /// renewal (call [`Liveness::renewal_failed`] when the write fails).
    pub fn lease_due(&mut self, node: &str, now: Instant) -> bool {
        let every = self.renew_every;
        let Some(device) = self.devices.get_mut(node) else {
            return false;
        };
        let due = device.online
            && device
                .renewed
                .is_none_or(|at| now.saturating_duration_since(at) >= every);
        if due {
            device.renewed = Some(now);
        }
        due
    }

    /// The renewal recorded by [`Liveness::lease_due`] was not written.
    pub fn renewal_failed(&mut self, node: &str) {
        if let Some(device) = self.devices.get_mut(node) {
            device.renewed = None;
        }
    }

    pub fn is_online(&self, node: &str) -> bool {
        self.devices.get(node).is_some_and(|d| d.online)
    }

    /// When `node` was last heard from.
    pub fn last_heard(&self, node: &str) -> Option<Instant> {
        self.devices.get(node).map(|d| d.heard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_renewed_at_the_coarse_interval_only() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut live = Liveness::new(Duration::from_secs(20));
        assert!(!live.lease_due("gw-1", at(0)), "never heard of");
        live.registered("gw-1", 100, at(0));
        assert!(live.lease_due("gw-1", at(0)));
        // Heartbeats every 5 s: one renewal per 20 s.
        let renewals = (1..=12)
            .map(|i| at(i * 5))
            .filter(|&t| {
                live.heard("gw-1", t);
                live.lease_due("gw-1", t)
            })
            .count();
        assert_eq!(renewals, 3);
        assert_eq!(live.last_heard("gw-1"), Some(at(60)));
        // A failed write is tried again at the next chance.
        assert!(!live.lease_due("gw-1", at(61)));
        live.renewal_failed("gw-1");
        assert!(live.lease_due("gw-1", at(61)));
    }

    #[test]
    fn only_the_current_sessions_will_takes_a_device_offline() {
        let now = Instant::now();
        let mut live = Liveness::new(Duration::from_secs(20));
        live.registered("gw-1", 100, now);
        // The device reconnected (session 200) before the broker published
        // the old connection's will.
        live.registered("gw-1", 200, now);
        assert!(!live.offline("gw-1", 100));
        assert!(live.is_online("gw-1"));
        // A late registration of the old session changes nothing either.
        live.registered("gw-1", 100, now);
        assert!(live.offline("gw-1", 200));
        assert!(!live.is_online("gw-1"));
        assert!(!live.offline("gw-1", 200), "already offline");
        assert!(!live.lease_due("gw-1", now), "no renewals while offline");
        assert!(!live.offline("gw-9", 1), "unknown device");
        live.heard("gw-1", now);
        assert!(live.is_online("gw-1"));
    }
}
