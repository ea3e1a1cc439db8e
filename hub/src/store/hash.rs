//! A digest of the state machine, to check that replicas ended equal.
//!
//! SHA-256 over the revision, the compacted revision, every object row in key
//! order and every change row in (revision, seq) order. Replicas that applied
//! the same log (or installed a snapshot of it) hash the same; the Raft
//! bookkeeping (last applied entry, membership) is left out, since a replica
//! that installed a snapshot and one that applied the entries differ there
//! without differing in state.

use ring::digest::{Context, SHA256};
use rusqlite::Connection;
use rusqlite::types::ValueRef;

use super::compact::compacted;
use super::object::revision;

/// Hashes the state machine inside the caller's read transaction.
pub(super) fn state_hash(conn: &Connection) -> rusqlite::Result<[u8; 32]> {
    let mut hash = Context::new(&SHA256);
    hash.update(&revision(conn)?.to_be_bytes());
    hash.update(&compacted(conn)?.to_be_bytes());
    for (table, order) in [
        ("objects", "kind, namespace, name"),
        ("changes", "revision, seq"),
    ] {
        hash.update(table.as_bytes());
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))?;
        let columns = stmt.column_count();
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            hash.update(b"row");
            for i in 0..columns {
                hash_value(&mut hash, row.get_ref(i)?);
            }
        }
    }
    let mut digest = [0; 32];
    digest.copy_from_slice(hash.finish().as_ref());
    Ok(digest)
}

/// Feeds one column value, tagged with its type and length so that no two
/// different rows feed the same bytes.
fn hash_value(hash: &mut Context, value: ValueRef<'_>) {
    let number;
    let (tag, bytes): (u8, &[u8]) = match value {
        ValueRef::Null => (0, &[]),
        ValueRef::Integer(i) => {
            number = i.to_be_bytes();
            (1, &number)
        }
        ValueRef::Real(f) => {
            number = f.to_bits().to_be_bytes();
            (2, &number)
        }
        ValueRef::Text(t) => (3, t),
        ValueRef::Blob(b) => (4, b),
    };
    hash.update(&[tag]);
    hash.update(&(bytes.len() as u64).to_be_bytes());
    hash.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::super::testing::{TestReplica, create, delete, pod_value, update};
    use super::super::{ObjectKey, Request};

    fn history() -> Vec<Request> {
        let p = |name: &str| ObjectKey::new("Pod", "ns", name);
        vec![
            create(&p("a"), pod_value("a", &[("v", "1")], "n1", "")),
            create(&p("b"), pod_value("b", &[], "n1", "")),
            update(&p("a"), pod_value("a", &[("v", "2")], "n2", "")),
            delete(&p("b")),
            Request::Compact { revision: 3 },
            create(&p("c"), b"raw".to_vec()),
        ]
    }

    #[tokio::test]
    async fn replicas_fed_the_same_requests_hash_the_same_however_batched() {
        let mut one = TestReplica::open();
        let mut other = TestReplica::open();
        one.apply_batch(history()).await;
        for request in history() {
            other.apply(request).await;
        }
        assert_eq!(
            one.state.state_hash().await.unwrap(),
            other.state.state_hash().await.unwrap()
        );
    }

    #[tokio::test]
    async fn any_difference_in_state_changes_the_hash() {
        let p = ObjectKey::new("Pod", "ns", "a");
        // Each case: what is applied after the common history on the second
        // replica only.
        let cases: Vec<(&str, Request)> = vec![
            (
                "one more object",
                create(&ObjectKey::new("Pod", "ns", "d"), b"{}".to_vec()),
            ),
            ("one more compaction", Request::Compact { revision: 4 }),
            (
                "an object rewritten with the value it has",
                update(&p, pod_value("a", &[("v", "2")], "n2", "")),
            ),
        ];
        for (case, request) in cases {
            let mut one = TestReplica::open();
            let mut other = TestReplica::open();
            one.apply_batch(history()).await;
            other.apply_batch(history()).await;
            other.apply(request).await;
            assert_ne!(
                one.state.state_hash().await.unwrap(),
                other.state.state_hash().await.unwrap(),
                "{case}"
            );
        }
    }
}
