//! Watches: every change after a revision, in (revision, seq) order, as
//! Kubernetes watch events.
//!
//! A [`Watcher`] reads the change log on the reader thread a page of whole
//! revisions at a time, and waits for the state machine's applied-revision
//! notification (sent after every applied batch and installed snapshot) when
//! it has read everything. Each change is delivered once, none is skipped,
//! and a revision's changes are never split between what was delivered and
//! what was not when the caller resumes from the revision of the last event
//! it saw. If compaction removes changes the watcher has not read yet, it
//! answers [`ReadError::Expired`] instead of leaving a gap.
//!
//! With a label or field selector, an update that makes an object start
//! matching is an [`EventType::Added`] and one that makes it stop matching is
//! an [`EventType::Deleted`] carrying the object as it was before, as
//! Kubernetes does.

use std::collections::VecDeque;

use flotilla_shared::selector::{FieldSelector, Selector};
use rusqlite::Connection;
use rusqlite::types::Value;
use tokio::sync::watch;

use super::compact::compacted;
use super::fields::{Candidate, Selection};
use super::object::{ChangeOp, ObjectKey, revision};
use super::read::{ReadError, Reader};

/// Roughly how many change rows one read of the log takes (it always ends at
/// a revision's end).
const PAGE_ROWS: usize = 512;

/// What to watch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchRequest {
    /// Deliver changes with a revision above this one (a list's revision, or
    /// the last event's revision to resume).
    pub from: u64,
    /// Only this kind; `None` watches every kind.
    pub kind: Option<String>,
    /// Only this namespace; `None` watches all namespaces.
    pub namespace: Option<String>,
    pub labels: Selector,
    pub fields: FieldSelector,
}

/// What happened to an object, as a watch reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One watch event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub event_type: EventType,
    pub key: ObjectKey,
    /// The object after the change; for [`EventType::Deleted`], as it was
    /// last.
    pub value: Vec<u8>,
    /// The revision of the change (the event's resourceVersion).
    pub revision: u64,
}

/// A running watch. Get events with [`Watcher::next`].
#[derive(Debug)]
pub struct Watcher {
    reader: Reader,
    applied: watch::Receiver<u64>,
    request: WatchRequest,
    /// Every change at or below this revision has been read.
    read_through: u64,
    pending: VecDeque<WatchEvent>,
}

impl Watcher {
    pub(super) fn new(
        reader: Reader,
        applied: watch::Receiver<u64>,
        request: WatchRequest,
    ) -> Self {
        Watcher {
            reader,
            applied,
            read_through: request.from,
            request,
            pending: VecDeque::new(),
        }
    }

    /// The next event, waiting for one if there is none yet.
    ///
    /// Cancel-safe: dropping the future loses no event. Errors:
    /// [`ReadError::Expired`] when compaction overtook the watch (list again
    /// and watch from the list's revision), [`ReadError::Closed`] when the
    /// store is gone.
    pub async fn next(&mut self) -> Result<WatchEvent, ReadError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            let applied = *self.applied.borrow_and_update();
            if applied > self.read_through {
                let request = self.request.clone();
                let after = self.read_through;
                let page = self
                    .reader
                    .read(move |tx| read_page(tx, &request, after, PAGE_ROWS))
                    .await?;
                self.read_through = page.through;
                self.pending.extend(page.events);
                continue;
            }
            if self.applied.changed().await.is_err() {
                return Err(ReadError::Closed);
            }
        }
    }

    /// The revision through which every event has been returned by
    /// [`Watcher::next`]: where to resume (Kubernetes' bookmark), even when
    /// no event matched for a while.
    pub fn progress(&self) -> u64 {
        match self.pending.front() {
            Some(event) => event.revision - 1,
            None => self.read_through,
        }
    }
}

/// Checks that a watch from `from` can start: not below the compacted
/// revision.
pub(super) fn check_start(conn: &Connection, from: u64) -> Result<(), ReadError> {
    let compacted = compacted(conn)?;
    if from < compacted {
        return Err(ReadError::Expired {
            requested: from,
            compacted,
        });
    }
    Ok(())
}

/// Events read from the log, and the revision through which it was read.
#[derive(Debug)]
struct Page {
    events: Vec<WatchEvent>,
    through: u64,
}

/// Reads the changes after `after` matching `request`: about `rows` rows,
/// always whole revisions.
fn read_page(
    conn: &Connection,
    request: &WatchRequest,
    after: u64,
    rows: usize,
) -> Result<Page, ReadError> {
    check_start(conn, after)?;
    let current = revision(conn)?;
    let mut sql = "SELECT revision, kind, namespace, name, op, value, prev_value, labels, node_name
         FROM changes WHERE revision > ?"
        .to_owned();
    let mut params = vec![Value::Integer(after as i64)];
    if let Some(kind) = &request.kind {
        sql.push_str(" AND kind = ?");
        params.push(Value::Text(kind.clone()));
    }
    if let Some(namespace) = &request.namespace {
        sql.push_str(" AND namespace = ?");
        params.push(Value::Text(namespace.clone()));
    }
    sql.push_str(" ORDER BY revision, seq");
    let selection = Selection::new(&request.labels, &request.fields);
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut cursor = stmt.query(rusqlite::params_from_iter(params))?;
    let mut events = Vec::new();
    let mut through = current.max(after);
    let mut seen = 0;
    let mut last_revision = after;
    while let Some(row) = cursor.next()? {
        let revision: u64 = row.get(0)?;
        if seen >= rows && revision != last_revision {
            through = last_revision;
            break;
        }
        seen += 1;
        last_revision = revision;
        let namespace = row.get_ref(2)?.as_str()?;
        let name = row.get_ref(3)?.as_str()?;
        let op = row.get_ref(4)?.as_str()?;
        let op = ChangeOp::parse(op).ok_or_else(|| {
            rusqlite::Error::InvalidColumnType(4, "op".into(), rusqlite::types::Type::Text)
        })?;
        let value = row.get_ref(5)?.as_bytes()?;
        let prev_value = row.get_ref(6)?.as_bytes_or_null()?;
        let now = Candidate {
            namespace,
            name,
            value,
            labels: Some(row.get_ref(7)?.as_str()?),
            node_name: Some(row.get_ref(8)?.as_str()?),
        };
        let before = prev_value.map(|value| Candidate {
            value,
            labels: None,
            node_name: None,
            ..now
        });
        let Some((event_type, side)) = classify(
            op,
            selection.matches(now),
            before.map(|before| selection.matches(before)),
        ) else {
            continue;
        };
        let value = match side {
            Side::Now => value,
            Side::Before => prev_value.unwrap_or(value),
        };
        events.push(WatchEvent {
            event_type,
            key: ObjectKey::new(row.get_ref(1)?.as_str()?, namespace, name),
            value: value.to_vec(),
            revision,
        });
    }
    Ok(Page { events, through })
}

/// Which value of a change an event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Now,
    Before,
}

/// The event a change makes for a watch with a selector: `matches` is
/// whether the change's value matches (for a delete, the last value), and
/// `matched` whether the value before an update did.
fn classify(op: ChangeOp, matches: bool, matched: Option<bool>) -> Option<(EventType, Side)> {
    match (op, matched.unwrap_or(false), matches) {
        (ChangeOp::Create, _, true) => Some((EventType::Added, Side::Now)),
        (ChangeOp::Update, true, true) => Some((EventType::Modified, Side::Now)),
        (ChangeOp::Update, false, true) => Some((EventType::Added, Side::Now)),
        (ChangeOp::Update, true, false) => Some((EventType::Deleted, Side::Before)),
        (ChangeOp::Delete, _, true) => Some((EventType::Deleted, Side::Now)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_transitions_become_added_and_deleted() {
        // (op, value matches, previous value matched, event)
        let cases: &[(ChangeOp, bool, Option<bool>, Option<(EventType, Side)>)] = &[
            (
                ChangeOp::Create,
                true,
                None,
                Some((EventType::Added, Side::Now)),
            ),
            (ChangeOp::Create, false, None, None),
            (
                ChangeOp::Update,
                true,
                Some(true),
                Some((EventType::Modified, Side::Now)),
            ),
            (
                ChangeOp::Update,
                true,
                Some(false),
                Some((EventType::Added, Side::Now)),
            ),
            (
                ChangeOp::Update,
                false,
                Some(true),
                Some((EventType::Deleted, Side::Before)),
            ),
            (ChangeOp::Update, false, Some(false), None),
            (
                ChangeOp::Delete,
                true,
                None,
                Some((EventType::Deleted, Side::Now)),
            ),
            (ChangeOp::Delete, false, None, None),
        ];
        for (op, matches, matched, expected) in cases {
            assert_eq!(
                classify(*op, *matches, *matched),
                *expected,
                "{op:?} matches={matches} matched={matched:?}"
            );
        }
    }
}
