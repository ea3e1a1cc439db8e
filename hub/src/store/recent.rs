//! The latest changes, kept in memory for the watches that keep up.
//!
//! Every watch of a replica used to read each new change back from the
//! change log in SQLite, on the one reader thread: with the controllers, the
//! API's watches and the authorizer all following the store, that thread
//! was the hub's bottleneck (the scheduler bench spent its time in
//! `read_page`, not in Raft). The state machine now also hands what it
//! applied to this window, before it tells watchers the new revision; a
//! watch whose position the window covers takes its next events from here
//! and never touches SQLite. One that lags behind the window (a slow client,
//! a watch from an old revision) reads the log as before. This is etcd's
//! split between synced and unsynced watchers.
//!
//! The window forgets its oldest changes past [`MAX_BYTES`] or
//! [`MAX_CHANGES`], and everything at or below a compacted revision (so a
//! watch overtaken by compaction is still told it expired, by the log).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::object::{ChangeOp, ObjectKey};

/// The values the window holds at most (on small hub boxes too).
const MAX_BYTES: usize = 32 << 20;
/// The changes the window holds at most.
const MAX_CHANGES: usize = 100_000;

/// One row of the change log, as the state machine applied it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LoggedChange {
    pub(super) revision: u64,
    pub(super) key: ObjectKey,
    pub(super) op: ChangeOp,
    pub(super) value: Vec<u8>,
    pub(super) prev_value: Option<Vec<u8>>,
    pub(super) labels: String,
    pub(super) node_name: String,
}

impl LoggedChange {
    fn bytes(&self) -> usize {
        self.value.len()
            + self.prev_value.as_ref().map_or(0, Vec::len)
            + self.labels.len()
            + self.node_name.len()
            + 128
    }
}

#[derive(Debug)]
struct Window {
    changes: VecDeque<Arc<LoggedChange>>,
    /// Every change above this revision (up to the last applied) is in
    /// `changes`.
    covered_from: u64,
    bytes: usize,
}

/// The window, shared by the state machine and its watchers.
#[derive(Debug)]
pub(super) struct Recent {
    window: Mutex<Window>,
}

impl Recent {
    /// An empty window at `revision`: it covers what is applied after it.
    pub(super) fn new(revision: u64) -> Self {
        Recent {
            window: Mutex::new(Window {
                changes: VecDeque::new(),
                covered_from: revision,
                bytes: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds what one apply wrote (in revision order, after everything held).
    pub(super) fn push(&self, changes: Vec<LoggedChange>) {
        let mut window = self.lock();
        for change in changes {
            window.bytes += change.bytes();
            window.changes.push_back(Arc::new(change));
        }
        while window.bytes > MAX_BYTES || window.changes.len() > MAX_CHANGES {
            let Some(oldest) = window.changes.pop_front() else {
                break;
            };
            window.bytes -= oldest.bytes();
            window.covered_from = window.covered_from.max(oldest.revision);
        }
    }

    /// Forgets the changes at or below a compacted revision.
    pub(super) fn compacted(&self, revision: u64) {
        let mut window = self.lock();
        while window
            .changes
            .front()
            .is_some_and(|oldest| oldest.revision <= revision)
        {
            if let Some(oldest) = window.changes.pop_front() {
                window.bytes -= oldest.bytes();
            }
        }
        window.covered_from = window.covered_from.max(revision);
    }

    /// Starts again, empty, at `revision` (after a snapshot replaced the
    /// state: what came before it is not a sequence of changes).
    pub(super) fn reset(&self, revision: u64) {
        let mut window = self.lock();
        window.changes.clear();
        window.bytes = 0;
        window.covered_from = revision;
    }

    /// The changes after `after`, whole revisions of about `rows` changes,
    /// if the window holds all of them and there is at least one; `None`
    /// when the caller must read the log.
    pub(super) fn after(&self, after: u64, rows: usize) -> Option<Vec<Arc<LoggedChange>>> {
        let window = self.lock();
        if after < window.covered_from {
            return None;
        }
        let start = window.changes.partition_point(|c| c.revision <= after);
        let mut taken: Vec<Arc<LoggedChange>> = Vec::new();
        for change in window.changes.range(start..) {
            if taken.len() >= rows && taken.last().is_some_and(|l| l.revision != change.revision) {
                break;
            }
            taken.push(Arc::clone(change));
        }
        (!taken.is_empty()).then_some(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(revision: u64, name: &str, size: usize) -> LoggedChange {
        LoggedChange {
            revision,
            key: ObjectKey::new("Pod", "default", name),
            op: ChangeOp::Create,
            value: vec![b'x'; size],
            prev_value: None,
            labels: "{}".into(),
            node_name: String::new(),
        }
    }

    fn revisions(changes: &Option<Vec<Arc<LoggedChange>>>) -> Option<Vec<u64>> {
        changes
            .as_ref()
            .map(|c| c.iter().map(|c| c.revision).collect())
    }

    #[test]
    fn covers_only_what_it_holds_and_never_splits_a_revision() {
        let recent = Recent::new(10);
        assert_eq!(revisions(&recent.after(10, 10)), None, "nothing yet");
        assert_eq!(revisions(&recent.after(9, 10)), None, "before the window");
        recent.push(vec![
            change(11, "a", 1),
            change(11, "b", 1),
            change(12, "c", 1),
        ]);
        recent.push(vec![change(13, "d", 1)]);
        assert_eq!(revisions(&recent.after(10, 10)), Some(vec![11, 11, 12, 13]));
        assert_eq!(revisions(&recent.after(10, 1)), Some(vec![11, 11]));
        assert_eq!(revisions(&recent.after(11, 1)), Some(vec![12]));
        assert_eq!(revisions(&recent.after(13, 10)), None, "caught up");
        assert_eq!(revisions(&recent.after(9, 10)), None);
    }

    #[test]
    fn compaction_and_snapshots_send_laggards_to_the_log() {
        let recent = Recent::new(0);
        recent.push((1..=5).map(|r| change(r, "a", 1)).collect());
        recent.compacted(3);
        assert_eq!(revisions(&recent.after(2, 10)), None);
        assert_eq!(revisions(&recent.after(3, 10)), Some(vec![4, 5]));
        recent.reset(20);
        assert_eq!(revisions(&recent.after(5, 10)), None);
        recent.push(vec![change(21, "a", 1)]);
        assert_eq!(revisions(&recent.after(20, 10)), Some(vec![21]));
    }

    #[test]
    fn the_oldest_changes_go_past_the_byte_budget() {
        let recent = Recent::new(0);
        let big = MAX_BYTES / 4;
        recent.push((1..=6).map(|r| change(r, "a", big)).collect());
        assert_eq!(revisions(&recent.after(0, 10)), None, "forgotten");
        let held = revisions(&recent.after(3, 10)).unwrap();
        assert_eq!(held, vec![4, 5, 6]);
    }
}
