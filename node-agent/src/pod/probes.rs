//! When each probe of a container is due and what its results add up to:
//! Kubernetes' thresholds of consecutive successes and failures, the
//! initial delay, and the starting result of each kind.

use flotilla_shared::wire::Probe;

/// Liveness, readiness or startup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }
}

/// What a probe currently says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Success,
    Failure,
    /// No verdict yet (a startup probe before its first threshold).
    Unknown,
}

/// The state of one probe of one container run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeTracker {
    pub kind: ProbeKind,
    pub verdict: Verdict,
    successes: u32,
    failures: u32,
    /// When the next probe is due (Unix ms).
    pub due_ms: u64,
    /// A probe was handed to the executor and has not reported back.
    pub in_flight: bool,
    /// The last failure's message, for Events and the status.
    pub last_message: String,
}

impl ProbeTracker {
    /// A tracker for a run that started at `started_ms`. Liveness starts as
    /// Success (a container is alive until proven otherwise), readiness as
    /// Failure, startup as Unknown.
    pub fn new(kind: ProbeKind, probe: &Probe, started_ms: u64) -> Self {
        let verdict = match kind {
            ProbeKind::Liveness => Verdict::Success,
            ProbeKind::Readiness => Verdict::Failure,
            ProbeKind::Startup => Verdict::Unknown,
        };
        ProbeTracker {
            kind,
            verdict,
            successes: 0,
            failures: 0,
            due_ms: started_ms.saturating_add(u64::from(probe.initial_delay_seconds) * 1000),
            in_flight: false,
            last_message: String::new(),
        }
    }

    /// Whether a probe should be sent at `now`.
    pub fn due(&self, now_ms: u64) -> bool {
        !self.in_flight && now_ms >= self.due_ms
    }

    /// Takes one result at `now`; returns whether the verdict changed.
    pub fn record(&mut self, probe: &Probe, success: bool, message: String, now_ms: u64) -> bool {
        self.in_flight = false;
        self.due_ms = now_ms.saturating_add(u64::from(probe.period_seconds.max(1)) * 1000);
        let before = self.verdict;
        if success {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if self.successes >= probe.success_threshold.max(1) {
                self.verdict = Verdict::Success;
            }
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            self.last_message = message;
            if self.failures >= probe.failure_threshold.max(1) {
                self.verdict = Verdict::Failure;
            }
        }
        before != self.verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(success_threshold: u32, failure_threshold: u32) -> Probe {
        Probe {
            initial_delay_seconds: 5,
            period_seconds: 10,
            timeout_seconds: 1,
            success_threshold,
            failure_threshold,
            ..Probe::default()
        }
    }

    #[test]
    fn the_first_probe_waits_for_the_initial_delay() {
        let tracker = ProbeTracker::new(ProbeKind::Liveness, &probe(1, 3), 1_000);
        assert!(!tracker.due(5_999));
        assert!(tracker.due(6_000));
    }

    #[test]
    fn liveness_fails_only_after_the_failure_threshold_in_a_row() {
        let p = probe(1, 3);
        let mut tracker = ProbeTracker::new(ProbeKind::Liveness, &p, 0);
        assert!(!tracker.record(&p, false, "refused".into(), 10));
        assert!(!tracker.record(&p, true, String::new(), 20));
        assert!(!tracker.record(&p, false, "refused".into(), 30));
        assert!(!tracker.record(&p, false, "refused".into(), 40));
        assert_eq!(tracker.verdict, Verdict::Success);
        assert!(tracker.record(&p, false, "refused".into(), 50));
        assert_eq!(tracker.verdict, Verdict::Failure);
        assert_eq!(tracker.last_message, "refused");
    }

    #[test]
    fn readiness_starts_failed_and_needs_the_success_threshold() {
        let p = probe(2, 3);
        let mut tracker = ProbeTracker::new(ProbeKind::Readiness, &p, 0);
        assert_eq!(tracker.verdict, Verdict::Failure);
        assert!(!tracker.record(&p, true, String::new(), 10));
        assert!(tracker.record(&p, true, String::new(), 20));
        assert_eq!(tracker.verdict, Verdict::Success);
    }

    #[test]
    fn the_next_probe_is_a_period_after_the_last_result() {
        let p = probe(1, 3);
        let mut tracker = ProbeTracker::new(ProbeKind::Startup, &p, 0);
        tracker.in_flight = true;
        assert!(!tracker.due(100_000));
        tracker.record(&p, true, String::new(), 7_000);
        assert!(!tracker.due(16_999));
        assert!(tracker.due(17_000));
    }
}
