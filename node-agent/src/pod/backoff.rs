//! Capped exponential backoff for container restarts and image pulls, as
//! kubelet does it: 10 s, doubling, at most 5 minutes, forgotten after a
//! container has run well for 10 minutes.

use serde::{Deserialize, Serialize};

/// The first delay after a failure.
pub const INITIAL_MS: u64 = 10_000;
/// The longest delay.
pub const MAX_MS: u64 = 300_000;
/// A run at least this long resets the delay to [`INITIAL_MS`].
pub const RESET_AFTER_MS: u64 = 600_000;

/// When the next attempt may start, and how long the one after must wait.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Backoff {
    /// The delay the next failure will impose; 0 before the first failure.
    pub next_delay_ms: u64,
    /// No attempt before this time (Unix ms).
    pub until_ms: u64,
    /// The delay the last failure imposed (what CrashLoopBackOff shows).
    pub delay_ms: u64,
}

impl Backoff {
    /// Records a failure at `now`; returns when the next attempt may start.
    /// A previous run of `ran_ms` or longer counts as healthy and resets the delay.
    pub fn fail(&mut self, now_ms: u64, ran_ms: u64) -> u64 {
        if ran_ms >= RESET_AFTER_MS || self.next_delay_ms == 0 {
            self.next_delay_ms = INITIAL_MS;
        }
        let delay = self.next_delay_ms;
        self.delay_ms = delay;
        self.until_ms = now_ms.saturating_add(delay);
        self.next_delay_ms = delay.saturating_mul(2).min(MAX_MS);
        self.until_ms
    }

    /// Whether an attempt must still wait at `now`.
    pub fn waiting(&self, now_ms: u64) -> bool {
        now_ms < self.until_ms
    }

    /// Forgets all failures (after a successful pull).
    pub fn reset(&mut self) {
        *self = Backoff::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_ten_seconds_and_stop_at_five_minutes() {
        let mut backoff = Backoff::default();
        let delays: Vec<u64> = (0..8).map(|_| backoff.fail(1_000, 0) - 1_000).collect();
        assert_eq!(
            delays,
            [
                10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000
            ]
        );
    }

    #[test]
    fn a_run_of_ten_minutes_resets_the_delay() {
        let mut backoff = Backoff::default();
        backoff.fail(0, 0);
        backoff.fail(0, 0);
        assert_eq!(backoff.fail(0, RESET_AFTER_MS), INITIAL_MS);
    }

    #[test]
    fn waiting_ends_at_the_deadline() {
        let mut backoff = Backoff::default();
        let until = backoff.fail(5_000, 0);
        assert!(backoff.waiting(until - 1));
        assert!(!backoff.waiting(until));
    }
}
