//! Compaction: forgetting history that no list or watch can still ask for.
//!
//! Like etcd's: compacting at revision C removes every change row at or
//! below C that a newer row of the same key at or below C supersedes, and
//! then the remaining (newest) row of each key at or below C if it is a
//! delete. What is left answers "the state at revision R" for every R >= C
//! (the newest row of a key at or below R) and every watch from C on (all
//! rows above C are untouched). Lists at a revision below C and watches from
//! below C are refused as expired from then on.
//!
//! Compaction is a Raft request ([`Request::Compact`](super::Request)), so
//! every replica compacts at the same point of the log and replicas stay
//! equal ([`StateMachine::state_hash`](super::StateMachine::state_hash)).

use rusqlite::{Connection, params};

use super::object::{Rejection, Response, revision};

/// The revision at or below which history is compacted (0: none is).
pub(super) fn compacted(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT compacted FROM sm_state WHERE id = 0", [], |row| {
        row.get(0)
    })
}

/// Compacts the history at or below `target`, inside the caller's
/// transaction.
pub(super) fn apply(conn: &Connection, target: u64) -> rusqlite::Result<Response> {
    let current = revision(conn)?;
    if target <= compacted(conn)? {
        return Ok(Response::Unchanged { revision: current });
    }
    if target > current {
        return Ok(Response::Rejected {
            revision: current,
            index: 0,
            reason: Rejection::CompactionAhead {
                requested: target,
                current,
            },
        });
    }
    conn.execute(
        "DELETE FROM changes AS c
         WHERE c.revision <= ?1 AND EXISTS (
             SELECT 1 FROM changes AS n
             WHERE n.kind = c.kind AND n.namespace = c.namespace AND n.name = c.name
               AND n.revision <= ?1 AND (n.revision, n.seq) > (c.revision, c.seq))",
        params![target],
    )?;
    // Every row left at or below the target is the newest of its key there.
    conn.execute(
        "DELETE FROM changes WHERE revision <= ?1 AND op = 'delete'",
        params![target],
    )?;
    conn.execute(
        "UPDATE sm_state SET compacted = ?1 WHERE id = 0",
        params![target],
    )?;
    Ok(Response::Compacted {
        revision: current,
        compacted: target,
    })
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::super::object::{self, ObjectKey, Request, Write};
    use super::*;

    fn store() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        super::super::schema::init(&conn).unwrap();
        conn
    }

    fn run(conn: &mut Connection, request: Request) -> Response {
        let mut tx = conn.transaction().unwrap();
        let response = object::apply(&mut tx, &request, &mut Vec::new()).unwrap();
        tx.commit().unwrap();
        response
    }

    /// A change row: revision, seq, name, op.
    type Row = (u64, u64, String, String);

    fn rows(conn: &Connection) -> Vec<Row> {
        conn.prepare("SELECT revision, seq, name, op FROM changes ORDER BY revision, seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn pod(name: &str) -> ObjectKey {
        ObjectKey::new("Pod", "default", name)
    }

    /// rev 1 create a; 2 create b; 3 update a; 4 delete b; 5 create c and
    /// update c in one txn; 6 update a.
    fn history(conn: &mut Connection) {
        let create = |name: &str| Write::Create {
            key: pod(name),
            value: b"v".to_vec(),
        };
        let update = |name: &str| Write::Update {
            key: pod(name),
            value: b"w".to_vec(),
            resource_version: None,
        };
        run(conn, Request::Write(create("a")));
        run(conn, Request::Write(create("b")));
        run(conn, Request::Write(update("a")));
        run(
            conn,
            Request::Write(Write::Delete {
                key: pod("b"),
                resource_version: None,
            }),
        );
        run(conn, Request::Txn(vec![create("c"), update("c")]));
        run(conn, Request::Write(update("a")));
    }

    fn row(rev: u64, seq: u64, name: &str, op: &str) -> Row {
        (rev, seq, name.into(), op.into())
    }

    #[test]
    fn compaction_keeps_the_newest_live_row_of_each_key() {
        // (target, rows left)
        let cases: Vec<(u64, Vec<Row>)> = vec![
            (
                1,
                vec![
                    row(1, 0, "a", "create"),
                    row(2, 0, "b", "create"),
                    row(3, 0, "a", "update"),
                    row(4, 0, "b", "delete"),
                    row(5, 0, "c", "create"),
                    row(5, 1, "c", "update"),
                    row(6, 0, "a", "update"),
                ],
            ),
            (
                3,
                vec![
                    row(2, 0, "b", "create"),
                    row(3, 0, "a", "update"),
                    row(4, 0, "b", "delete"),
                    row(5, 0, "c", "create"),
                    row(5, 1, "c", "update"),
                    row(6, 0, "a", "update"),
                ],
            ),
            (
                4,
                vec![
                    row(3, 0, "a", "update"),
                    row(5, 0, "c", "create"),
                    row(5, 1, "c", "update"),
                    row(6, 0, "a", "update"),
                ],
            ),
            (
                5,
                vec![
                    row(3, 0, "a", "update"),
                    row(5, 1, "c", "update"),
                    row(6, 0, "a", "update"),
                ],
            ),
            (6, vec![row(5, 1, "c", "update"), row(6, 0, "a", "update")]),
        ];
        for (target, expected) in cases {
            let mut conn = store();
            history(&mut conn);
            assert_eq!(
                run(&mut conn, Request::Compact { revision: target }),
                Response::Compacted {
                    revision: 6,
                    compacted: target
                },
                "compact to {target}"
            );
            assert_eq!(rows(&conn), expected, "compact to {target}");
            assert_eq!(compacted(&conn).unwrap(), target);
            assert_eq!(revision(&conn).unwrap(), 6, "compaction takes no revision");
        }
    }

    #[test]
    fn compacting_again_at_or_below_is_unchanged_and_beyond_the_revision_is_rejected() {
        let mut conn = store();
        history(&mut conn);
        run(&mut conn, Request::Compact { revision: 4 });
        let after = rows(&conn);
        for target in [0, 3, 4] {
            assert_eq!(
                run(&mut conn, Request::Compact { revision: target }),
                Response::Unchanged { revision: 6 },
                "compact to {target}"
            );
        }
        assert_eq!(
            run(&mut conn, Request::Compact { revision: 7 }),
            Response::Rejected {
                revision: 6,
                index: 0,
                reason: Rejection::CompactionAhead {
                    requested: 7,
                    current: 6
                }
            }
        );
        assert_eq!(rows(&conn), after);
        assert_eq!(compacted(&conn).unwrap(), 4);
    }

    #[tokio::test]
    async fn lists_at_every_revision_from_the_compacted_one_on_are_unchanged() {
        use super::super::testing::{TestReplica, create, delete, pod_value, update};
        use super::super::{ListAt, ListRequest, ReadError};

        let mut replica = TestReplica::open();
        let p = |name: &str| ObjectKey::new("Pod", "ns", name);
        let steps = vec![
            create(&p("a"), pod_value("a", &[("v", "1")], "n1", "")),
            create(&p("b"), pod_value("b", &[], "n1", "")),
            update(&p("a"), pod_value("a", &[("v", "2")], "n2", "")),
            delete(&p("b")),
            create(&p("c"), pod_value("c", &[], "", "")),
            update(&p("c"), pod_value("c", &[("v", "3")], "", "")),
            create(&p("b"), pod_value("b", &[("v", "4")], "n1", "")),
            delete(&p("a")),
            update(&p("b"), pod_value("b", &[], "n2", "")),
        ];
        let last = steps.len() as u64;
        for step in steps {
            replica.apply(step).await;
        }
        let at = |revision| ListRequest {
            at: ListAt::Revision(revision),
            ..ListRequest::new("Pod")
        };
        let mut before = Vec::new();
        for revision in 0..=last {
            before.push(replica.state.list(at(revision)).await.unwrap());
        }
        for target in 1..=last {
            replica.apply(Request::Compact { revision: target }).await;
            for revision in 0..=last {
                let listed = replica.state.list(at(revision)).await;
                if revision < target {
                    assert!(
                        matches!(listed, Err(ReadError::Expired { .. })),
                        "at {revision} after compacting to {target}"
                    );
                } else {
                    assert_eq!(
                        listed.unwrap(),
                        before[revision as usize],
                        "at {revision} after compacting to {target}"
                    );
                }
            }
        }
    }
}
