//! The versioned object store: what a committed request does to the objects.
//!
//! Every request that changes at least one object takes the next global
//! revision; the objects it wrote get that revision as their resourceVersion,
//! and each change is recorded in the change log (revision, key, op, value) so
//! that watchers can later resume from a revision. A request whose
//! precondition fails changes nothing and is answered with a [`Rejection`]:
//! that is a normal outcome of a committed entry, not a storage failure.
//!
//! The store reads into a value only to extract what lists select on
//! (labels and `spec.nodeName`, see [`super::fields`]); any bytes are stored.

use std::fmt;

use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use super::compact;
use super::fields::Indexed;
use super::recent::LoggedChange;

/// Identifies an object: its kind, its namespace (empty for cluster-scoped
/// kinds) and its name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        ObjectKey {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// One change to one object. `value` is the object's JSON encoding as the API
/// layer produced it; the store reads only its labels and `spec.nodeName`.
///
/// Values are (de)serialized as byte strings (`serde_bytes`): the same bytes
/// in postcard as a sequence of `u8` (so stored logs read back unchanged),
/// but copied at once instead of one element at a time, which was a third of
/// the leader's time when it shipped large batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Write {
    /// Creates the object; rejected if it exists.
    Create {
        key: ObjectKey,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    /// Replaces the object; rejected if it does not exist, or if
    /// `resource_version` is given and is not the object's current one.
    Update {
        key: ObjectKey,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        resource_version: Option<u64>,
    },
    /// Deletes the object; rejected if it does not exist, or if
    /// `resource_version` is given and is not the object's current one.
    Delete {
        key: ObjectKey,
        resource_version: Option<u64>,
    },
}

impl Write {
    fn key(&self) -> &ObjectKey {
        match self {
            Write::Create { key, .. } | Write::Update { key, .. } | Write::Delete { key, .. } => {
                key
            }
        }
    }
}

/// What a Raft log entry asks of the state machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// One write.
    Write(Write),
    /// Several writes applied in order, all or nothing, at one revision. A
    /// later write sees the earlier ones (create then update works).
    Txn(Vec<Write>),
    /// Forgets the history at or below `revision` that no list or watch from
    /// `revision` on needs: superseded changes, and deleted objects' last
    /// change (as etcd compacts). Lists below and watches from below it then
    /// fail as expired. Through Raft, so that every replica compacts at the
    /// same point of the log. Answers [`Response::Compacted`], `Unchanged` at
    /// or below the compacted revision, and a [`Rejection::CompactionAhead`]
    /// above the current revision.
    Compact { revision: u64 },
    /// Independent requests from different clients, proposed as one log
    /// entry so that they share one append and one fsync on every replica
    /// (group commit). Each is applied on its own, in order, exactly as if
    /// it had been an entry of its own: each takes its own revision and gets
    /// its own answer in [`Response::Batch`].
    Batch(Vec<Request>),
}

impl Request {
    /// About how many bytes the request takes in a message: its keys and
    /// values, and a little for the rest. For bounding what one proposal
    /// or one replication message carries.
    pub fn approx_bytes(&self) -> usize {
        fn write(write: &Write) -> usize {
            let key = write.key();
            let value = match write {
                Write::Create { value, .. } | Write::Update { value, .. } => value.len(),
                Write::Delete { .. } => 0,
            };
            32 + key.kind.len() + key.namespace.len() + key.name.len() + value
        }
        match self {
            Request::Write(w) => write(w),
            Request::Txn(writes) => 8 + writes.iter().map(write).sum::<usize>(),
            Request::Compact { .. } => 16,
            Request::Batch(requests) => {
                8 + requests.iter().map(Request::approx_bytes).sum::<usize>()
            }
        }
    }
}

/// What applying a log entry did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The request was applied; every object it wrote now has
    /// `resource_version == revision`.
    Applied { revision: u64 },
    /// The write at `index` (0 for a single write) failed its precondition;
    /// nothing changed and the store is still at `revision`.
    Rejected {
        revision: u64,
        index: usize,
        reason: Rejection,
    },
    /// An entry that changes no object (Raft's blank and membership entries,
    /// an empty transaction, a compaction at or below the compacted
    /// revision); the store is at `revision`.
    Unchanged { revision: u64 },
    /// The history at or below `compacted` was compacted; the store is still
    /// at `revision`.
    Compacted { revision: u64, compacted: u64 },
    /// The answers to a [`Request::Batch`], in its order.
    Batch(Vec<Response>),
}

/// Why a write's precondition failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    #[error("{key} already exists")]
    AlreadyExists { key: ObjectKey },
    #[error("{key} not found")]
    NotFound { key: ObjectKey },
    #[error("{key} is at resource version {actual}, not {expected}")]
    Conflict {
        key: ObjectKey,
        expected: u64,
        actual: u64,
    },
    #[error("cannot compact to revision {requested}: the store is at revision {current}")]
    CompactionAhead { requested: u64, current: u64 },
}

/// An object as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredObject {
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// The revision that created it.
    pub create_revision: u64,
    /// The revision that last wrote it: its resourceVersion.
    pub resource_version: u64,
}

/// The kind of change recorded in the change log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChangeOp {
    Create,
    Update,
    Delete,
}

impl ChangeOp {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Create => "create",
            ChangeOp::Update => "update",
            ChangeOp::Delete => "delete",
        }
    }

    /// The op of a change row (the table's CHECK allows only these three).
    pub(super) fn parse(text: &str) -> Option<Self> {
        match text {
            "create" => Some(ChangeOp::Create),
            "update" => Some(ChangeOp::Update),
            "delete" => Some(ChangeOp::Delete),
            _ => None,
        }
    }
}

/// The store's current revision.
pub(super) fn revision(tx: &rusqlite::Connection) -> rusqlite::Result<u64> {
    tx.prepare_cached("SELECT revision FROM sm_state WHERE id = 0")?
        .query_row([], |row| row.get(0))
}

/// Reads one object.
pub(super) fn get(
    conn: &rusqlite::Connection,
    key: &ObjectKey,
) -> rusqlite::Result<Option<StoredObject>> {
    conn.prepare_cached(
        "SELECT value, create_revision, mod_revision FROM objects
         WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
    )?
    .query_row(params![key.kind, key.namespace, key.name], |row| {
        Ok(StoredObject {
            value: row.get(0)?,
            create_revision: row.get(1)?,
            resource_version: row.get(2)?,
        })
    })
    .optional()
}

/// Applies `request` inside `tx`: either every write of it or none. The
/// change-log rows written are also added to `log` (for the in-memory
/// window of recent changes).
pub(super) fn apply(
    tx: &mut Transaction<'_>,
    request: &Request,
    log: &mut Vec<LoggedChange>,
) -> rusqlite::Result<Response> {
    let current = revision(tx)?;
    let writes = match request {
        Request::Write(write) => std::slice::from_ref(write),
        Request::Txn(writes) => writes.as_slice(),
        Request::Compact { revision } => return compact::apply(tx, *revision),
        Request::Batch(requests) => {
            return requests
                .iter()
                .map(|request| apply(tx, request, log))
                .collect::<rusqlite::Result<_>>()
                .map(Response::Batch);
        }
    };
    if writes.is_empty() {
        return Ok(Response::Unchanged { revision: current });
    }
    let next = current + 1;
    let logged = log.len();
    let savepoint = tx.savepoint()?;
    for (index, write) in writes.iter().enumerate() {
        if let Err(reason) = apply_write(&savepoint, write, next, index, log)? {
            // Dropping the savepoint rolls back the writes before this one.
            drop(savepoint);
            log.truncate(logged);
            return Ok(Response::Rejected {
                revision: current,
                index,
                reason,
            });
        }
    }
    savepoint
        .prepare_cached("UPDATE sm_state SET revision = ?1 WHERE id = 0")?
        .execute([next])?;
    savepoint.commit()?;
    Ok(Response::Applied { revision: next })
}

/// Applies one write at `revision`, or says which precondition failed.
fn apply_write(
    conn: &rusqlite::Connection,
    write: &Write,
    revision: u64,
    seq: usize,
    log: &mut Vec<LoggedChange>,
) -> rusqlite::Result<Result<(), Rejection>> {
    let key = write.key();
    let existing = get(conn, key)?;
    let change = match (write, existing) {
        (Write::Create { value, .. }, None) => {
            let indexed = Indexed::of(value);
            conn.prepare_cached(
                "INSERT INTO objects
                     (kind, namespace, name, value, create_revision, mod_revision, labels, node_name)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7)",
            )?
            .execute(params![
                key.kind,
                key.namespace,
                key.name,
                value,
                revision,
                indexed.labels,
                indexed.node_name
            ])?;
            Change {
                op: ChangeOp::Create,
                value,
                prev_value: None,
                create_revision: revision,
                indexed,
            }
        }
        (Write::Create { .. }, Some(_)) => {
            return Ok(Err(Rejection::AlreadyExists { key: key.clone() }));
        }
        (Write::Update { .. } | Write::Delete { .. }, None) => {
            return Ok(Err(Rejection::NotFound { key: key.clone() }));
        }
        (
            Write::Update {
                resource_version: Some(expected),
                ..
            }
            | Write::Delete {
                resource_version: Some(expected),
                ..
            },
            Some(object),
        ) if *expected != object.resource_version => {
            return Ok(Err(Rejection::Conflict {
                key: key.clone(),
                expected: *expected,
                actual: object.resource_version,
            }));
        }
        (Write::Update { value, .. }, Some(object)) => {
            let indexed = Indexed::of(value);
            conn.prepare_cached(
                "UPDATE objects SET value = ?4, mod_revision = ?5, labels = ?6, node_name = ?7
                 WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
            )?
            .execute(params![
                key.kind,
                key.namespace,
                key.name,
                value,
                revision,
                indexed.labels,
                indexed.node_name
            ])?;
            record_change(
                conn,
                revision,
                seq,
                key,
                log,
                Change {
                    op: ChangeOp::Update,
                    value,
                    prev_value: Some(&object.value),
                    create_revision: object.create_revision,
                    indexed,
                },
            )?;
            return Ok(Ok(()));
        }
        (Write::Delete { .. }, Some(object)) => {
            conn.prepare_cached(
                "DELETE FROM objects WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
            )?
            .execute(params![key.kind, key.namespace, key.name])?;
            // A delete records the last value, as a watch's DELETED event shows it.
            record_change(
                conn,
                revision,
                seq,
                key,
                log,
                Change {
                    op: ChangeOp::Delete,
                    value: &object.value,
                    prev_value: None,
                    create_revision: object.create_revision,
                    indexed: Indexed::of(&object.value),
                },
            )?;
            return Ok(Ok(()));
        }
    };
    record_change(conn, revision, seq, key, log, change)?;
    Ok(Ok(()))
}

/// One row of the change log, besides its position and key.
struct Change<'a> {
    op: ChangeOp,
    value: &'a [u8],
    prev_value: Option<&'a [u8]>,
    create_revision: u64,
    indexed: Indexed,
}

fn record_change(
    conn: &rusqlite::Connection,
    revision: u64,
    seq: usize,
    key: &ObjectKey,
    log: &mut Vec<LoggedChange>,
    change: Change<'_>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO changes (revision, seq, kind, namespace, name, op, value, prev_value,
                              create_revision, labels, node_name)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        revision,
        seq,
        key.kind,
        key.namespace,
        key.name,
        change.op.as_str(),
        change.value,
        change.prev_value,
        change.create_revision,
        change.indexed.labels,
        change.indexed.node_name,
    ])?;
    log.push(LoggedChange {
        revision,
        key: key.clone(),
        op: change.op,
        value: change.value.to_vec(),
        prev_value: change.prev_value.map(<[u8]>::to_vec),
        labels: change.indexed.labels,
        node_name: change.indexed.node_name,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    #[test]
    fn values_encode_as_before_byte_strings_were_used() {
        // The encoding of a `Write` before its values were `serde_bytes`.
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        enum Old {
            Create { key: ObjectKey, value: Vec<u8> },
        }
        let key = ObjectKey::new("Pod", "default", "p");
        let value = br#"{"kind":"Pod"}"#.to_vec();
        let old = postcard::to_allocvec(&Old::Create {
            key: key.clone(),
            value: value.clone(),
        })
        .unwrap();
        let new = Write::Create { key, value };
        assert_eq!(postcard::to_allocvec(&new).unwrap(), old);
        assert_eq!(postcard::from_bytes::<Write>(&old).unwrap(), new);
    }

    type Change = (u64, u64, String, String, String, String, Vec<u8>);

    fn store() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        super::super::schema::init(&conn).unwrap();
        conn
    }

    fn run(conn: &mut Connection, request: Request) -> Response {
        let mut tx = conn.transaction().unwrap();
        let response = apply(&mut tx, &request, &mut Vec::new()).unwrap();
        tx.commit().unwrap();
        response
    }

    fn changes(conn: &Connection) -> Vec<Change> {
        let mut stmt = conn
            .prepare(
                "SELECT revision, seq, kind, namespace, name, op, value FROM changes
                 ORDER BY revision, seq",
            )
            .unwrap();
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    fn pod(name: &str) -> ObjectKey {
        ObjectKey::new("Pod", "default", name)
    }

    fn create(name: &str, value: &str) -> Write {
        Write::Create {
            key: pod(name),
            value: value.as_bytes().to_vec(),
        }
    }

    fn update(name: &str, value: &str, rv: Option<u64>) -> Write {
        Write::Update {
            key: pod(name),
            value: value.as_bytes().to_vec(),
            resource_version: rv,
        }
    }

    fn delete(name: &str, rv: Option<u64>) -> Write {
        Write::Delete {
            key: pod(name),
            resource_version: rv,
        }
    }

    fn one(write: Write) -> Request {
        Request::Write(write)
    }

    #[test]
    fn every_applied_write_takes_the_next_revision_as_resource_version() {
        let mut conn = store();
        assert_eq!(
            run(&mut conn, one(create("a", "1"))),
            Response::Applied { revision: 1 }
        );
        assert_eq!(
            run(&mut conn, one(create("b", "1"))),
            Response::Applied { revision: 2 }
        );
        assert_eq!(
            run(&mut conn, one(update("a", "2", Some(1)))),
            Response::Applied { revision: 3 }
        );
        let a = get(&conn, &pod("a")).unwrap().unwrap();
        assert_eq!(
            a,
            StoredObject {
                value: b"2".to_vec(),
                create_revision: 1,
                resource_version: 3
            }
        );
        assert_eq!(get(&conn, &pod("b")).unwrap().unwrap().resource_version, 2);
        assert_eq!(revision(&conn).unwrap(), 3);
    }

    #[test]
    fn rejected_writes_change_nothing_and_keep_the_revision() {
        // (setup, rejected write, expected reason)
        let cases: Vec<(&str, Write, Rejection)> = vec![
            (
                "create twice",
                create("a", "again"),
                Rejection::AlreadyExists { key: pod("a") },
            ),
            (
                "update with a stale resource version",
                update("a", "new", Some(7)),
                Rejection::Conflict {
                    key: pod("a"),
                    expected: 7,
                    actual: 1,
                },
            ),
            (
                "delete with a stale resource version",
                delete("a", Some(0)),
                Rejection::Conflict {
                    key: pod("a"),
                    expected: 0,
                    actual: 1,
                },
            ),
            (
                "update of a missing object",
                update("zz", "new", None),
                Rejection::NotFound { key: pod("zz") },
            ),
            (
                "delete of a missing object",
                delete("zz", None),
                Rejection::NotFound { key: pod("zz") },
            ),
        ];
        for (case, write, reason) in cases {
            let mut conn = store();
            run(&mut conn, one(create("a", "orig")));
            let before = changes(&conn);
            assert_eq!(
                run(&mut conn, one(write)),
                Response::Rejected {
                    revision: 1,
                    index: 0,
                    reason
                },
                "{case}"
            );
            assert_eq!(revision(&conn).unwrap(), 1, "{case}");
            assert_eq!(changes(&conn), before, "{case}");
            let a = get(&conn, &pod("a")).unwrap().unwrap();
            assert_eq!(
                (a.value, a.resource_version),
                (b"orig".to_vec(), 1),
                "{case}"
            );
            assert_eq!(get(&conn, &pod("zz")).unwrap(), None, "{case}");
        }
    }

    #[test]
    fn unconditional_update_and_delete_ignore_the_resource_version() {
        let mut conn = store();
        run(&mut conn, one(create("a", "1")));
        run(&mut conn, one(create("b", "1")));
        assert_eq!(
            run(&mut conn, one(update("a", "2", None))),
            Response::Applied { revision: 3 }
        );
        assert_eq!(
            run(&mut conn, one(delete("b", None))),
            Response::Applied { revision: 4 }
        );
        assert_eq!(
            run(&mut conn, one(delete("a", Some(3)))),
            Response::Applied { revision: 5 }
        );
        assert_eq!(get(&conn, &pod("a")).unwrap(), None);
        assert_eq!(get(&conn, &pod("b")).unwrap(), None);
    }

    #[test]
    fn a_deleted_object_can_be_created_again_with_a_new_create_revision() {
        let mut conn = store();
        run(&mut conn, one(create("a", "1")));
        run(&mut conn, one(delete("a", Some(1))));
        run(&mut conn, one(create("a", "2")));
        let a = get(&conn, &pod("a")).unwrap().unwrap();
        assert_eq!((a.create_revision, a.resource_version), (3, 3));
    }

    #[test]
    fn txn_applies_all_writes_at_one_revision() {
        let mut conn = store();
        run(&mut conn, one(create("a", "1")));
        let response = run(
            &mut conn,
            Request::Txn(vec![
                create("b", "1"),
                update("b", "2", Some(2)),
                update("a", "2", Some(1)),
            ]),
        );
        assert_eq!(response, Response::Applied { revision: 2 });
        assert_eq!(get(&conn, &pod("a")).unwrap().unwrap().resource_version, 2);
        let b = get(&conn, &pod("b")).unwrap().unwrap();
        assert_eq!((b.value, b.resource_version), (b"2".to_vec(), 2));
    }

    #[test]
    fn txn_with_one_failed_precondition_applies_nothing() {
        let mut conn = store();
        run(&mut conn, one(create("a", "1")));
        let before = changes(&conn);
        let response = run(
            &mut conn,
            Request::Txn(vec![
                create("b", "1"),
                update("a", "2", Some(1)),
                delete("a", Some(1)),
            ]),
        );
        // The delete sees the update before it: `a` is at revision 2 there.
        assert_eq!(
            response,
            Response::Rejected {
                revision: 1,
                index: 2,
                reason: Rejection::Conflict {
                    key: pod("a"),
                    expected: 1,
                    actual: 2
                }
            }
        );
        assert_eq!(get(&conn, &pod("b")).unwrap(), None);
        let a = get(&conn, &pod("a")).unwrap().unwrap();
        assert_eq!((a.value, a.resource_version), (b"1".to_vec(), 1));
        assert_eq!(revision(&conn).unwrap(), 1);
        assert_eq!(changes(&conn), before);
    }

    #[test]
    fn empty_txn_changes_nothing() {
        let mut conn = store();
        run(&mut conn, one(create("a", "1")));
        assert_eq!(
            run(&mut conn, Request::Txn(vec![])),
            Response::Unchanged { revision: 1 }
        );
        assert_eq!(revision(&conn).unwrap(), 1);
    }

    #[test]
    fn change_log_records_every_write_in_revision_order() {
        let mut conn = store();
        run(&mut conn, one(create("a", "1")));
        run(
            &mut conn,
            Request::Txn(vec![create("b", "1"), update("a", "2", Some(1))]),
        );
        run(&mut conn, one(update("a", "zzz", Some(7)))); // rejected: not logged
        run(&mut conn, one(delete("a", Some(2))));
        let row = |rev: u64, seq: u64, name: &str, op: &str, value: &str| -> Change {
            (
                rev,
                seq,
                "Pod".into(),
                "default".into(),
                name.into(),
                op.into(),
                value.as_bytes().to_vec(),
            )
        };
        assert_eq!(
            changes(&conn),
            vec![
                row(1, 0, "a", "create", "1"),
                row(2, 0, "b", "create", "1"),
                row(2, 1, "a", "update", "2"),
                row(3, 0, "a", "delete", "2"),
            ]
        );
    }

    #[test]
    fn keys_differ_by_kind_namespace_and_name() {
        let mut conn = store();
        let keys = [
            ObjectKey::new("Pod", "default", "x"),
            ObjectKey::new("Pod", "other", "x"),
            ObjectKey::new("Service", "default", "x"),
            ObjectKey::new("Node", "", "x"),
        ];
        for (i, key) in keys.iter().enumerate() {
            let write = Write::Create {
                key: key.clone(),
                value: vec![i as u8],
            };
            assert_eq!(
                run(&mut conn, one(write)),
                Response::Applied {
                    revision: i as u64 + 1
                }
            );
        }
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(get(&conn, key).unwrap().unwrap().value, vec![i as u8]);
        }
    }
}
