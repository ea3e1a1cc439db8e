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
use std::sync::Arc;

use flotilla_shared::selector::{FieldSelector, Selector};
use rusqlite::Connection;
use rusqlite::types::Value;
use tokio::sync::watch;

use super::compact::compacted;
use super::fields::{Candidate, Selection};
use super::object::{ChangeOp, ObjectKey, revision};
use super::read::{ReadError, Reader};
use super::recent::Recent;

/// Roughly how many change rows one read of the log takes (it always ends at
/// a revision's end).
const PAGE_ROWS: usize = 512;

/// What to watch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchRequest {
    /// Deliver changes with a revision above this one (a list's revision, or
    /// the last event's revision to resume). It may be ahead of this
    /// replica (a revision seen on the leader): the watch then waits.
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
    recent: Arc<Recent>,
    applied: watch::Receiver<u64>,
    request: WatchRequest,
    /// Every change at or below this revision has been read.
    read_through: u64,
    pending: VecDeque<WatchEvent>,
    /// About how many change rows one read takes ([`PAGE_ROWS`]).
    page_rows: usize,
}

impl Watcher {
    pub(super) fn new(
        reader: Reader,
        recent: Arc<Recent>,
        applied: watch::Receiver<u64>,
        request: WatchRequest,
    ) -> Self {
        Watcher {
            reader,
            recent,
            applied,
            read_through: request.from,
            request,
            pending: VecDeque::new(),
            page_rows: PAGE_ROWS,
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
                if let Some(changes) = self.recent.after(self.read_through, self.page_rows) {
                    let selection = Selection::new(&self.request.labels, &self.request.fields);
                    for change in &changes {
                        if self
                            .request
                            .kind
                            .as_ref()
                            .is_some_and(|k| *k != change.key.kind)
                            || self
                                .request
                                .namespace
                                .as_ref()
                                .is_some_and(|n| *n != change.key.namespace)
                        {
                            continue;
                        }
                        self.pending.extend(event_of(
                            &selection,
                            ChangeRow {
                                revision: change.revision,
                                kind: &change.key.kind,
                                namespace: &change.key.namespace,
                                name: &change.key.name,
                                op: change.op,
                                value: &change.value,
                                prev_value: change.prev_value.as_deref(),
                                labels: &change.labels,
                                node_name: &change.node_name,
                            },
                        ));
                    }
                    if let Some(last) = changes.last() {
                        self.read_through = last.revision;
                    }
                    continue;
                }
                let request = self.request.clone();
                let (after, rows) = (self.read_through, self.page_rows);
                let page = self
                    .reader
                    .read(move |tx| read_page(tx, &request, after, rows))
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

    /// The next event if one is already read, without waiting: for callers
    /// that send what is ready together.
    pub fn try_next(&mut self) -> Option<WatchEvent> {
        self.pending.pop_front()
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
    // `+column`: filter on the rows read in revision order, rather than
    // have SQLite read a key index and sort the whole history.
    if let Some(kind) = &request.kind {
        sql.push_str(" AND +kind = ?");
        params.push(Value::Text(kind.clone()));
    }
    if let Some(namespace) = &request.namespace {
        sql.push_str(" AND +namespace = ?");
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
        let op = row.get_ref(4)?.as_str()?;
        let op = ChangeOp::parse(op).ok_or_else(|| {
            rusqlite::Error::InvalidColumnType(4, "op".into(), rusqlite::types::Type::Text)
        })?;
        events.extend(event_of(
            &selection,
            ChangeRow {
                revision,
                kind: row.get_ref(1)?.as_str()?,
                namespace: row.get_ref(2)?.as_str()?,
                name: row.get_ref(3)?.as_str()?,
                op,
                value: row.get_ref(5)?.as_bytes()?,
                prev_value: row.get_ref(6)?.as_bytes_or_null()?,
                labels: row.get_ref(7)?.as_str()?,
                node_name: row.get_ref(8)?.as_str()?,
            },
        ));
    }
    Ok(Page { events, through })
}

/// One change of the log, wherever it was read from.
struct ChangeRow<'a> {
    revision: u64,
    kind: &'a str,
    namespace: &'a str,
    name: &'a str,
    op: ChangeOp,
    value: &'a [u8],
    prev_value: Option<&'a [u8]>,
    labels: &'a str,
    node_name: &'a str,
}

/// The event `change` makes for a watch with `selection`, if any.
fn event_of(selection: &Selection<'_>, change: ChangeRow<'_>) -> Option<WatchEvent> {
    let now = Candidate {
        namespace: change.namespace,
        name: change.name,
        value: change.value,
        labels: Some(change.labels),
        node_name: Some(change.node_name),
    };
    let before = change.prev_value.map(|value| Candidate {
        value,
        labels: None,
        node_name: None,
        ..now
    });
    let (event_type, side) = classify(
        change.op,
        selection.matches(now),
        before.map(|before| selection.matches(before)),
    )?;
    let value = match side {
        Side::Now => change.value,
        Side::Before => change.prev_value.unwrap_or(change.value),
    };
    Some(WatchEvent {
        event_type,
        key: ObjectKey::new(change.kind, change.namespace, change.name),
        value: value.to_vec(),
        revision: change.revision,
    })
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
    use super::super::testing::{TestReplica, create, delete, pod_value, update};
    use super::super::{Request, Response, Write};
    use super::*;

    fn key(namespace: &str, name: &str) -> ObjectKey {
        ObjectKey::new("Pod", namespace, name)
    }

    /// Every change row, as an unfiltered watch must deliver it.
    async fn change_log(replica: &TestReplica) -> Vec<(u64, String, EventType)> {
        let path = replica.dir.path().join("replica.db");
        let conn = Connection::open(path).unwrap();
        let mut stmt = conn
            .prepare("SELECT revision, name, op FROM changes ORDER BY revision, seq")
            .unwrap();
        stmt.query_map([], |r| {
            let op: String = r.get(2)?;
            let event_type = match ChangeOp::parse(&op).unwrap() {
                ChangeOp::Create => EventType::Added,
                ChangeOp::Update => EventType::Modified,
                ChangeOp::Delete => EventType::Deleted,
            };
            Ok((r.get(0)?, r.get(1)?, event_type))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    /// `watcher`, made to read every change from the log in SQLite rather
    /// than the in-memory window.
    fn from_log_only(mut watcher: Watcher) -> Watcher {
        watcher.recent = Arc::new(Recent::new(u64::MAX));
        watcher
    }

    async fn take(watcher: &mut Watcher, through: u64) -> Vec<WatchEvent> {
        let mut events = Vec::new();
        while events
            .last()
            .is_none_or(|e: &WatchEvent| e.revision < through)
        {
            events.push(watcher.next().await.unwrap());
        }
        events
    }

    fn summary(events: &[WatchEvent]) -> Vec<(u64, String, EventType)> {
        events
            .iter()
            .map(|e| (e.revision, e.key.name.clone(), e.event_type))
            .collect()
    }

    #[tokio::test]
    async fn a_watch_sees_every_change_once_in_order_while_writers_run_and_resumes() {
        let mut replica = TestReplica::open();
        let mut watcher = replica.state.watch(WatchRequest::default()).await.unwrap();
        // Small pages, so reads end inside three-row transactions and must
        // stop at a revision's end; batches commit several revisions at once.
        watcher.page_rows = 4;
        let writer = tokio::spawn(async move {
            for round in 0..100 {
                let name = |i: usize| format!("p{round}-{i}");
                let value = |i: usize| pod_value(&name(i), &[], "", "");
                let txn = Request::Txn(
                    (0..3)
                        .map(|i| Write::Create {
                            key: key("default", &name(i)),
                            value: value(i),
                        })
                        .collect(),
                );
                let batch = vec![
                    txn,
                    update(&key("default", &name(0)), value(9)),
                    delete(&key("default", &name(1))),
                ];
                replica.apply_batch(batch).await;
            }
            replica
        });
        let events = take(&mut watcher, 300).await;
        let replica = writer.await.unwrap();
        assert_eq!(summary(&events), change_log(&replica).await);
        assert_eq!(events.len(), 500);
        assert_eq!(watcher.progress(), 300);

        // Resuming from the revision of any event seen gives exactly the rest.
        for cut in [0, 1, 137, 299] {
            let from = events[cut].revision;
            let mut resumed = replica
                .state
                .watch(WatchRequest {
                    from,
                    ..WatchRequest::default()
                })
                .await
                .unwrap();
            resumed.page_rows = 2;
            let rest: Vec<_> = events
                .iter()
                .filter(|e| e.revision > from)
                .cloned()
                .collect();
            assert_eq!(take(&mut resumed, 300).await, rest, "resumed from {from}");
        }
    }

    type Classified = Option<(EventType, Side)>;

    #[test]
    fn selector_transitions_become_added_and_deleted() {
        // (op, value matches, previous value matched, event)
        let cases: &[(ChangeOp, bool, Option<bool>, Classified)] = &[
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

    /// The event a watch sees: its type and value.
    type Seen = Option<(EventType, Vec<u8>)>;

    #[tokio::test]
    async fn selector_watches_see_objects_start_and_stop_matching() {
        let web = |node: &str| pod_value("p", &[("app", "web")], node, "");
        let db = |node: &str| pod_value("p", &[("app", "db")], node, "");
        let p = key("default", "p");
        // Each step's write, and the event of a watch on app=web and of one
        // on spec.nodeName=n1 (None: no event).
        let steps: Vec<(Request, Seen, Seen)> = vec![
            (create(&p, db("n2")), None, None),
            (
                update(&p, web("n2")),
                Some((EventType::Added, web("n2"))),
                None,
            ),
            (
                update(&p, web("n1")),
                Some((EventType::Modified, web("n1"))),
                Some((EventType::Added, web("n1"))),
            ),
            (
                update(&p, db("n1")),
                Some((EventType::Deleted, web("n1"))),
                Some((EventType::Modified, db("n1"))),
            ),
            (
                update(&p, db("n3")),
                None,
                Some((EventType::Deleted, db("n1"))),
            ),
            (delete(&p), None, None),
            (
                create(&p, web("n1")),
                Some((EventType::Added, web("n1"))),
                Some((EventType::Added, web("n1"))),
            ),
            (
                delete(&p),
                Some((EventType::Deleted, web("n1"))),
                Some((EventType::Deleted, web("n1"))),
            ),
        ];
        let mut replica = TestReplica::open();
        let watch = |labels: &str, fields: &str| WatchRequest {
            labels: Selector::parse(labels).unwrap(),
            fields: FieldSelector::parse(fields).unwrap(),
            ..WatchRequest::default()
        };
        let mut by_label = replica.state.watch(watch("app=web", "")).await.unwrap();
        let mut by_node = replica
            .state
            .watch(watch("", "spec.nodeName=n1"))
            .await
            .unwrap();
        let mut by_label_log =
            from_log_only(replica.state.watch(watch("app=web", "")).await.unwrap());
        let mut by_node_log = from_log_only(
            replica
                .state
                .watch(watch("", "spec.nodeName=n1"))
                .await
                .unwrap(),
        );
        let (mut labelled, mut noded) = (Vec::new(), Vec::new());
        for (revision, (request, label_event, node_event)) in steps.into_iter().enumerate() {
            replica.apply(request).await;
            let revision = revision as u64 + 1;
            let event = |(event_type, value)| WatchEvent {
                event_type,
                key: p.clone(),
                value,
                revision,
            };
            labelled.extend(label_event.map(event));
            noded.extend(node_event.map(event));
        }
        assert_eq!(take(&mut by_label, 8).await, labelled);
        assert_eq!(take(&mut by_node, 8).await, noded);
        // The log and the in-memory window answer alike.
        assert_eq!(take(&mut by_label_log, 8).await, labelled);
        assert_eq!(take(&mut by_node_log, 8).await, noded);
    }

    #[tokio::test]
    async fn a_watch_narrowed_to_a_kind_and_namespace_sees_only_those() {
        let mut replica = TestReplica::open();
        let narrowed = WatchRequest {
            kind: Some("Pod".into()),
            namespace: Some("a".into()),
            ..WatchRequest::default()
        };
        let mut watcher = replica.state.watch(narrowed.clone()).await.unwrap();
        let mut from_log = from_log_only(replica.state.watch(narrowed).await.unwrap());
        for key in [
            key("a", "x"),
            key("b", "x"),
            ObjectKey::new("Service", "a", "x"),
            key("a", "y"),
        ] {
            replica.apply(create(&key, b"{}".to_vec())).await;
        }
        let names: Vec<_> = take(&mut watcher, 4)
            .await
            .into_iter()
            .map(|e| (e.revision, e.key))
            .collect();
        assert_eq!(names, [(1, key("a", "x")), (4, key("a", "y"))]);
        assert_eq!(watcher.progress(), 4);
        let names: Vec<_> = take(&mut from_log, 4)
            .await
            .into_iter()
            .map(|e| (e.revision, e.key))
            .collect();
        assert_eq!(names, [(1, key("a", "x")), (4, key("a", "y"))]);
    }

    #[tokio::test]
    async fn watches_from_compacted_history_are_expired() {
        let mut replica = TestReplica::open();
        // Created before the writes, so it has read nothing yet when the
        // history it needs is compacted.
        let mut behind = replica.state.watch(WatchRequest::default()).await.unwrap();
        for i in 0..5 {
            replica
                .apply(create(&key("a", &i.to_string()), b"{}".to_vec()))
                .await;
        }
        let mut caught_up = replica
            .state
            .watch(WatchRequest {
                from: 5,
                ..WatchRequest::default()
            })
            .await
            .unwrap();
        assert_eq!(
            replica.apply(Request::Compact { revision: 3 }).await,
            Response::Compacted {
                revision: 5,
                compacted: 3
            }
        );
        assert!(matches!(
            behind.next().await,
            Err(ReadError::Expired {
                requested: 0,
                compacted: 3
            })
        ));
        for from in [0, 2] {
            let refused = replica
                .state
                .watch(WatchRequest {
                    from,
                    ..WatchRequest::default()
                })
                .await;
            assert!(
                matches!(refused, Err(ReadError::Expired { requested, compacted: 3 }) if requested == from),
                "from {from}"
            );
        }
        let mut at_compacted = replica
            .state
            .watch(WatchRequest {
                from: 3,
                ..WatchRequest::default()
            })
            .await
            .unwrap();
        let revisions: Vec<_> = take(&mut at_compacted, 5)
            .await
            .iter()
            .map(|e| e.revision)
            .collect();
        assert_eq!(revisions, [4, 5]);
        replica.apply(delete(&key("a", "0"))).await;
        assert_eq!(caught_up.next().await.unwrap().revision, 6);
    }

    #[tokio::test]
    async fn a_watch_ends_when_the_store_is_gone() {
        let replica = TestReplica::open();
        let mut watcher = replica.state.watch(WatchRequest::default()).await.unwrap();
        drop(replica);
        assert!(matches!(watcher.next().await, Err(ReadError::Closed)));
    }
}
