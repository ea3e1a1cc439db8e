//! The store against openraft's storage conformance suite, and end-to-end
//! checks of durability and snapshots through the storage API.

use std::path::Path;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader, RaftSnapshotBuilder};
use tempfile::TempDir;

use super::types::{Entry, LogId, StorageError, Vote};
use super::*;

/// Each suite case gets a fresh database in its own temp dir; the dir is the
/// guard, removed after the case.
struct FreshDatabase;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for FreshDatabase {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (log, state) = open(&dir.path().join("replica.db")).expect("open the store");
        Ok((dir, log, state))
    }
}

#[test]
fn passes_openraft_storage_suite() {
    Suite::test_all(FreshDatabase).unwrap();
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entry(term: u64, index: u64, payload: EntryPayload<TypeConfig>) -> Entry {
    Entry {
        log_id: log_id(term, index),
        payload,
    }
}

fn pod(name: &str) -> ObjectKey {
    ObjectKey::new("Pod", "default", name)
}

fn create(name: &str, value: serde_json::Value) -> Write {
    Write::Create {
        key: pod(name),
        value: serde_json::to_vec(&value).unwrap(),
    }
}

/// A blank entry, then three object writes (the last one a transaction).
fn sample_entries() -> Vec<Entry> {
    vec![
        entry(1, 1, EntryPayload::Blank),
        entry(
            1,
            2,
            EntryPayload::Normal(Request::Write(create("a", serde_json::json!({"n": 1})))),
        ),
        entry(
            1,
            3,
            EntryPayload::Normal(Request::Write(create("b", serde_json::json!({"n": 2})))),
        ),
        entry(
            2,
            4,
            EntryPayload::Normal(Request::Txn(vec![
                Write::Update {
                    key: pod("a"),
                    value: serde_json::to_vec(&serde_json::json!({"n": 3})).unwrap(),
                    resource_version: Some(1),
                },
                Write::Delete {
                    key: pod("b"),
                    resource_version: Some(2),
                },
            ])),
        ),
    ]
}

fn integrity_check(path: &Path) -> String {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn everything_written_survives_reopening_and_the_database_checks_ok() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica.db");
    let entries = sample_entries();
    {
        let (mut log, mut state) = open(&path).unwrap();
        log.save_vote(&Vote::new(2, 1)).await.unwrap();
        log.blocking_append(entries.clone()).await.unwrap();
        log.save_committed(Some(log_id(2, 4))).await.unwrap();
        let responses = state.apply(entries.clone()).await.unwrap();
        assert_eq!(
            responses,
            vec![
                Response::Unchanged { revision: 0 },
                Response::Applied { revision: 1 },
                Response::Applied { revision: 2 },
                Response::Applied { revision: 3 },
            ]
        );
        log.purge(log_id(1, 1)).await.unwrap();
        // Every handle dropped here: the SQLite thread finishes and closes.
    }

    let (mut log, mut state) = open(&path).unwrap();
    let log_state = log.get_log_state().await.unwrap();
    assert_eq!(log_state.last_purged_log_id, Some(log_id(1, 1)));
    assert_eq!(log_state.last_log_id, Some(log_id(2, 4)));
    assert_eq!(log.try_get_log_entries(0..).await.unwrap(), entries[1..]);
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(2, 1)));
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(2, 4)));
    let (applied, _) = state.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(2, 4)));
    assert_eq!(state.revision().await.unwrap(), 3);
    let a = state.get(&pod("a")).await.unwrap().unwrap();
    assert_eq!(
        (a.value, a.create_revision, a.resource_version),
        (br#"{"n":3}"#.to_vec(), 1, 3)
    );
    assert_eq!(state.get(&pod("b")).await.unwrap(), None);
    drop((log, state));
    assert_eq!(integrity_check(&path), "ok");
}

#[tokio::test]
async fn a_snapshot_carries_the_objects_to_another_replica() {
    let dir = tempfile::tempdir().unwrap();
    let (_leader_log, mut leader) = open(&dir.path().join("leader.db")).unwrap();
    leader.apply(sample_entries()).await.unwrap();
    let built = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(built.meta.last_log_id, Some(log_id(2, 4)));

    let follower_path = dir.path().join("follower.db");
    {
        let (_log, mut follower) = open(&follower_path).unwrap();
        // The follower had its own, older state: the snapshot replaces it.
        follower
            .apply([entry(
                1,
                1,
                EntryPayload::Normal(Request::Write(create("stale", serde_json::json!({})))),
            )])
            .await
            .unwrap();
        let mut received = follower.begin_receiving_snapshot().await.unwrap();
        *received = *built.snapshot;
        follower
            .install_snapshot(&built.meta, received)
            .await
            .unwrap();
    }

    let (_log, mut follower) = open(&follower_path).unwrap();
    assert_eq!(
        follower.applied_state().await.unwrap().0,
        Some(log_id(2, 4))
    );
    assert_eq!(follower.revision().await.unwrap(), 3);
    assert_eq!(
        follower.get(&pod("a")).await.unwrap(),
        leader.get(&pod("a")).await.unwrap()
    );
    assert_eq!(follower.get(&pod("stale")).await.unwrap(), None);
    let current = follower.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, built.meta);
    drop((_log, follower));
    assert_eq!(integrity_check(&follower_path), "ok");
}

#[tokio::test]
async fn a_snapshot_that_is_not_a_database_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, mut state) = open(&dir.path().join("replica.db")).unwrap();
    state.apply(sample_entries()).await.unwrap();
    let meta = state
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap()
        .meta;
    let mut received = state.begin_receiving_snapshot().await.unwrap();
    received
        .get_mut()
        .extend_from_slice(b"not a database at all, just bytes");
    assert!(state.install_snapshot(&meta, received).await.is_err());
    assert_eq!(state.revision().await.unwrap(), 3);
    assert!(state.get(&pod("a")).await.unwrap().is_some());
}

#[tokio::test]
async fn a_snapshot_holds_only_state_machine_tables() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut state) = open(&dir.path().join("replica.db")).unwrap();
    log.blocking_append(sample_entries()).await.unwrap();
    state.apply(sample_entries()).await.unwrap();
    let built = state
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let copy = dir.path().join("copy.db");
    std::fs::write(&copy, built.snapshot.get_ref()).unwrap();
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables.sort();
    assert_eq!(tables, ["changes", "objects", "sm_state"]);
    let changes: i64 = conn
        .query_row("SELECT count(*) FROM changes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(changes, 4);
}

#[tokio::test]
async fn a_snapshot_carries_history_columns_and_the_compacted_revision() {
    use super::testing::{TestReplica, create, delete, pod_value, update};

    let mut leader = TestReplica::open();
    let p = |name: &str| ObjectKey::new("Pod", "ns", name);
    leader
        .apply_batch(vec![
            create(&p("a"), pod_value("a", &[("app", "web")], "n1", "")),
            create(&p("b"), pod_value("b", &[], "n2", "")),
            update(&p("a"), pod_value("a", &[("app", "web")], "n2", "")),
            delete(&p("b")),
            Request::Compact { revision: 2 },
            create(&p("c"), pod_value("c", &[("app", "web")], "n1", "")),
        ])
        .await;
    let built = leader
        .state
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();

    let mut follower = TestReplica::open();
    // Waiting on the follower from the leader's compacted revision: the
    // install must wake it with the history after it.
    let mut watcher = follower
        .state
        .watch(WatchRequest {
            from: 2,
            ..WatchRequest::default()
        })
        .await
        .unwrap();
    let mut received = follower.state.begin_receiving_snapshot().await.unwrap();
    *received = *built.snapshot;
    follower
        .state
        .install_snapshot(&built.meta, received)
        .await
        .unwrap();

    assert_eq!(
        follower.state.state_hash().await.unwrap(),
        leader.state.state_hash().await.unwrap()
    );
    let revisions: Vec<u64> = [
        watcher.next().await.unwrap(),
        watcher.next().await.unwrap(),
        watcher.next().await.unwrap(),
    ]
    .iter()
    .map(|e| e.revision)
    .collect();
    assert_eq!(revisions, [3, 4, 5]);
    let on_node = |revision| ListRequest {
        fields: flotilla_shared::selector::FieldSelector::parse("spec.nodeName=n1").unwrap(),
        at: ListAt::Revision(revision),
        ..ListRequest::new("Pod")
    };
    for revision in 2..=5 {
        assert_eq!(
            follower.state.list(on_node(revision)).await.unwrap(),
            leader.state.list(on_node(revision)).await.unwrap(),
            "at {revision}"
        );
    }
    assert!(matches!(
        follower.state.list(on_node(1)).await,
        Err(ReadError::Expired {
            requested: 1,
            compacted: 2
        })
    ));
    assert!(matches!(
        follower.state.watch(WatchRequest::default()).await,
        Err(ReadError::Expired { .. })
    ));
}
