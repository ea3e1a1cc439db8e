//! A device never applies a desired state older than the one it holds.
//!
//! Desired states carry the hub store revision they were computed at, which
//! only grows (it is the Raft store's global revision, kept across leaders).
//! Retained messages, QoS 1 redelivery and a gateway on a lagging hub replica
//! can all hand the agent a state it has already seen, or an older one; the
//! [`DesiredStateGate`] decides, and the agent moves the gate forward only
//! once the new state is safely on its disk.

/// What to do with an incoming desired state, compared with the held one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use]
pub enum Apply {
    /// Newer than the held state (or nothing is held): persist it, then
    /// reconcile to it and report it as applied.
    Newer,
    /// The held revision again (a redelivery or the retained copy after a
    /// reconnect): already applied, so do nothing but acknowledge it.
    Same,
    /// Older than the held state: ignore it and log it; do not acknowledge it,
    /// so the hub keeps seeing the held revision in heartbeats.
    Stale { held: u64 },
}

impl Apply {
    /// Whether the agent should reconcile to the incoming state.
    pub fn should_apply(self) -> bool {
        self == Apply::Newer
    }

    /// Whether the incoming revision should be acknowledged as applied.
    pub fn should_acknowledge(self) -> bool {
        matches!(self, Apply::Newer | Apply::Same)
    }
}

/// Judges `incoming` against the `held` revision (`None` before the first
/// desired state ever arrived).
pub fn judge(held: Option<u64>, incoming: u64) -> Apply {
    match held {
        None => Apply::Newer,
        Some(held) if incoming > held => Apply::Newer,
        Some(held) if incoming == held => Apply::Same,
        Some(held) => Apply::Stale { held },
    }
}

/// The refusal of [`DesiredStateGate::record`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("desired-state revision {revision} is older than the held revision {held}")]
pub struct RevisionError {
    pub held: u64,
    pub revision: u64,
}

/// The revision the agent holds, which only moves forward.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DesiredStateGate {
    held: Option<u64>,
}

impl DesiredStateGate {
    /// A gate holding `held`: the revision of the desired state on the
    /// device's disk at start, or `None` on a freshly enrolled device.
    pub fn new(held: Option<u64>) -> Self {
        DesiredStateGate { held }
    }

    pub fn held(&self) -> Option<u64> {
        self.held
    }

    /// Judges an incoming revision without changing the gate.
    pub fn judge(&self, incoming: u64) -> Apply {
        judge(self.held, incoming)
    }

    /// Records that the state at `revision` is now held (persisted). The same
    /// revision again is a no-op; an older one is refused and changes
    /// nothing, so a bug elsewhere cannot move the device backwards.
    pub fn record(&mut self, revision: u64) -> Result<(), RevisionError> {
        match self.held {
            Some(held) if revision < held => Err(RevisionError { held, revision }),
            _ => {
                self.held = Some(revision);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn incoming_revisions_are_judged_against_the_held_one() {
        let cases = [
            (None, 0, Apply::Newer),
            (None, 7, Apply::Newer),
            (Some(5), 6, Apply::Newer),
            (Some(5), u64::MAX, Apply::Newer),
            (Some(5), 5, Apply::Same),
            (Some(0), 0, Apply::Same),
            (Some(5), 4, Apply::Stale { held: 5 }),
            (Some(u64::MAX), 0, Apply::Stale { held: u64::MAX }),
        ];
        for (held, incoming, expected) in cases {
            assert_eq!(
                judge(held, incoming),
                expected,
                "held {held:?}, incoming {incoming}"
            );
        }
    }

    #[test]
    fn only_newer_states_are_applied_and_stale_ones_are_not_acknowledged() {
        let cases = [
            (Apply::Newer, true, true),
            (Apply::Same, false, true),
            (Apply::Stale { held: 3 }, false, false),
        ];
        for (verdict, apply, ack) in cases {
            assert_eq!(verdict.should_apply(), apply, "{verdict:?}");
            assert_eq!(verdict.should_acknowledge(), ack, "{verdict:?}");
        }
    }

    #[test]
    fn a_gate_moves_forward_and_then_sees_the_same_revision_as_applied() {
        let mut gate = DesiredStateGate::new(None);
        assert_eq!(gate.judge(10), Apply::Newer);
        // Judging alone does not move the gate: persistence may still fail.
        assert_eq!(gate.held(), None);
        gate.record(10).unwrap();
        assert_eq!(gate.held(), Some(10));
        assert_eq!(gate.judge(10), Apply::Same);
        assert_eq!(gate.judge(9), Apply::Stale { held: 10 });
        gate.record(10).unwrap();
        assert_eq!(gate.held(), Some(10));
    }

    #[test]
    fn a_gate_refuses_to_record_an_older_revision_and_keeps_the_held_one() {
        let mut gate = DesiredStateGate::new(Some(10));
        let err = gate.record(9).unwrap_err();
        assert_eq!(
            err.to_string(),
            "desired-state revision 9 is older than the held revision 10"
        );
        assert_eq!(gate.held(), Some(10));
    }

    proptest! {
        #[test]
        fn a_gate_fed_any_sequence_never_holds_less_than_its_maximum(
            revisions in proptest::collection::vec(any::<u64>(), 0..32)
        ) {
            let mut gate = DesiredStateGate::default();
            for &revision in &revisions {
                if gate.judge(revision).should_apply() {
                    gate.record(revision).unwrap();
                }
            }
            prop_assert_eq!(gate.held(), revisions.iter().copied().max());
        }
    }
}
