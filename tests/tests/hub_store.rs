//! The hub store with real replica processes: elections, kill -9 of the
//! leader under load (checked for linearizability), partitions with
//! nftables, crashes in the middle of commits, snapshots, membership,
//! backup and restore.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flotilla_hub::replica::{Client, Consistency};
use flotilla_hub::store::{ObjectKey, Request, Response, Write};
use flotilla_tests::hub::{Cluster, ClusterOptions};
use flotilla_tests::lincheck::{self, CheckResult, Op, Output, Recorder};

const TIMEOUT: Duration = Duration::from_secs(10);

fn key(name: &str) -> ObjectKey {
    ObjectKey::new("ConfigMap", "default", name)
}

fn create(name: &str, value: &str) -> Request {
    Request::Write(Write::Create {
        key: key(name),
        value: value.as_bytes().to_vec(),
    })
}

fn put(name: &str, value: &str) -> Request {
    Request::Write(Write::Update {
        key: key(name),
        value: value.as_bytes().to_vec(),
        resource_version: None,
    })
}

async fn read(client: &Client, name: &str, consistency: Consistency) -> Option<String> {
    client
        .get(key(name), consistency)
        .await
        .expect("read")
        .map(|o| String::from_utf8(o.value).expect("utf-8 value"))
}

fn applied(response: Response) -> u64 {
    match response {
        Response::Applied { revision } => revision,
        other => panic!("write not applied: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_any_replica_commit_once_and_reads_see_them_everywhere() {
    let cluster = Cluster::start(3, ClusterOptions::default());
    let leader = cluster.wait_for_leader(TIMEOUT).await;
    let statuses = cluster.statuses().await;
    assert_eq!(statuses.len(), 3);
    for (_, status) in &statuses {
        assert_eq!(
            status.members.iter().filter(|m| m.voter).count(),
            3,
            "{status:?}"
        );
    }
    // A write sent to each replica (followers forward) commits exactly once.
    for i in 0..3 {
        let client = cluster.client_of(i, TIMEOUT);
        applied(
            client
                .write(create(&format!("from-{i}"), "v"))
                .await
                .unwrap(),
        );
        let again = client
            .write(create(&format!("from-{i}"), "w"))
            .await
            .unwrap();
        assert!(matches!(again, Response::Rejected { .. }), "{again:?}");
    }
    // Linearizable reads on followers see the writes at once.
    for i in (0..3).filter(|i| *i != leader) {
        let client = cluster.client_of(i, TIMEOUT);
        applied(
            cluster
                .client_of(leader, TIMEOUT)
                .write(put("from-0", "x"))
                .await
                .unwrap(),
        );
        assert_eq!(
            read(&client, "from-0", Consistency::Linearizable)
                .await
                .as_deref(),
            Some("x")
        );
        for j in 0..3 {
            assert!(
                read(&client, &format!("from-{j}"), Consistency::Linearizable)
                    .await
                    .is_some()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_leader_under_load_keeps_every_acknowledged_write_and_the_history_linearizable()
 {
    let mut cluster = Cluster::start(3, ClusterOptions::default());
    cluster.wait_for_leader(TIMEOUT).await;
    const KEYS: usize = 4;
    let setup = cluster.client(TIMEOUT);
    for k in 0..KEYS {
        applied(setup.write(create(&format!("k{k}"), "init")).await.unwrap());
    }
    let recorder = Recorder::<String>::new();
    // The initial values were acknowledged before any client started.
    for k in 0..KEYS {
        let id = recorder.call(0, Op::put(format!("k{k}"), "init".to_owned()));
        recorder.ret(id, Output::Ok).unwrap();
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 1..=6u64 {
        let client = cluster.client(Duration::from_secs(3));
        let recorder = recorder.clone();
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let k = format!("k{}", (c + n) % KEYS as u64);
                if n.is_multiple_of(2) {
                    let value = format!("c{c}-{n}");
                    let id = recorder.call(c, Op::put(k.clone(), value.clone()));
                    match client.write(put(&k, &value)).await {
                        Ok(Response::Applied { .. }) => {
                            recorder.ret(id, Output::Ok).unwrap();
                            acked.push((k, value));
                        }
                        Ok(other) => panic!("unconditional update refused: {other:?}"),
                        Err(_) => recorder.unknown(id).unwrap(),
                    }
                } else {
                    let id = recorder.call(c, Op::get(k.clone()));
                    match client.get(key(&k), Consistency::Linearizable).await {
                        Ok(object) => recorder
                            .ret(
                                id,
                                Output::Read(object.map(|o| String::from_utf8(o.value).unwrap())),
                            )
                            .unwrap(),
                        Err(_) => recorder.unknown(id).unwrap(),
                    }
                }
            }
            acked
        }));
    }
    let started = Instant::now();
    let mut kills = 0;
    while kills < 4 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let leader = cluster.wait_for_leader(Duration::from_secs(20)).await;
        cluster.kill(leader);
        kills += 1;
        tokio::time::sleep(Duration::from_millis(600)).await;
        cluster.spawn(leader);
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = Vec::new();
    for client in clients {
        acked.extend(client.await.unwrap());
    }
    let history = recorder.history();
    let completed = history
        .operations()
        .iter()
        .filter(|o| o.returned().is_some())
        .count();
    eprintln!(
        "{} operations ({completed} completed, {} writes acknowledged) over {:?} with {kills} leader kills",
        history.len(),
        acked.len(),
        started.elapsed()
    );
    assert!(
        acked.len() > 50,
        "too few writes acknowledged to mean anything: {}",
        acked.len()
    );
    match lincheck::check(&history, Duration::from_secs(120)) {
        CheckResult::Ok => {}
        other => panic!("history is not linearizable: {other}"),
    }
    // Every acknowledged write is in the final state or was overwritten by
    // a later one: the checker covers that; here, every replica converged.
    cluster.wait_for_leader(TIMEOUT).await;
    let final_client = cluster.client(TIMEOUT);
    for k in 0..KEYS {
        assert!(
            read(&final_client, &format!("k{k}"), Consistency::Linearizable)
                .await
                .is_some()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_refuses_writes_the_majority_goes_on_and_healing_converges() {
    let cluster = Cluster::start(3, ClusterOptions::default());
    let old_leader = cluster.wait_for_leader(TIMEOUT).await;
    applied(
        cluster
            .client(TIMEOUT)
            .write(create("before", "1"))
            .await
            .unwrap(),
    );

    let partition = flotilla_tests::hub::Partition::isolate(&cluster, old_leader);
    // The cut-off leader can commit nothing: the write is not acknowledged.
    let minority = cluster.client_of(old_leader, Duration::from_secs(8));
    let refused = minority.write(create("minority", "lost")).await;
    assert!(
        !matches!(refused, Ok(Response::Applied { .. })),
        "the minority acknowledged a write: {refused:?}"
    );
    // Nor can it serve a linearizable read.
    let served = minority.get(key("before"), Consistency::Linearizable).await;
    assert!(
        served.is_err(),
        "the minority served a linearizable read: {served:?}"
    );
    // The majority elects a new leader and goes on.
    let majority: Vec<usize> = (0..3).filter(|i| *i != old_leader).collect();
    let client = cluster.client_of(majority[0], TIMEOUT);
    let mut written = 0;
    for n in 0..20 {
        if let Ok(Response::Applied { .. }) =
            client.write(create(&format!("majority-{n}"), "v")).await
        {
            written += 1;
        }
    }
    assert_eq!(written, 20, "the majority did not go on");
    let statuses = cluster.statuses().await;
    let new_leader = statuses
        .iter()
        .find(|(i, _)| *i == majority[0])
        .and_then(|(_, s)| s.leader)
        .unwrap();
    assert_ne!(Some(new_leader), cluster.replicas[old_leader].id);

    drop(partition);
    // Healed: every replica agrees on the leader and on the state; the
    // write sent to the minority was never committed.
    cluster.wait_for_leader(TIMEOUT).await;
    let converged = wait_converged(&cluster).await;
    assert!(converged.len() == 3);
    let any = cluster.client(TIMEOUT);
    assert_eq!(
        read(&any, "minority", Consistency::Linearizable).await,
        None
    );
    assert_eq!(
        read(&any, "majority-19", Consistency::Linearizable)
            .await
            .as_deref(),
        Some("v")
    );
    let stale = cluster.client_of(old_leader, TIMEOUT);
    assert_eq!(
        read(&stale, "majority-19", Consistency::Stale)
            .await
            .as_deref(),
        Some("v")
    );
}

/// Waits until every running replica has applied the same log index and
/// has the same state hash; returns the hashes.
async fn wait_converged(cluster: &Cluster) -> Vec<(u64, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut states = Vec::new();
        for (i, replica) in cluster.replicas.iter().enumerate() {
            if !replica.is_running() {
                continue;
            }
            if let Ok(state) = cluster.client_of(i, TIMEOUT).state_hash().await {
                states.push(state);
            }
        }
        let running = cluster.replicas.iter().filter(|r| r.is_running()).count();
        if states.len() == running && states.windows(2).all(|w| w[0] == w[1]) {
            return states;
        }
        assert!(
            Instant::now() < deadline,
            "replicas did not converge: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_killed_in_the_middle_of_commits_restart_consistent_and_catch_up() {
    let mut cluster = Cluster::start(3, ClusterOptions::default());
    cluster.wait_for_leader(TIMEOUT).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for c in 0..4 {
        let client = cluster.client(Duration::from_secs(3));
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let name = format!("w{c}-{n}");
                if let Ok(Response::Applied { .. }) = client.write(create(&name, "v")).await {
                    acked.push(name);
                }
            }
            acked
        }));
    }
    for round in 0..6 {
        tokio::time::sleep(Duration::from_millis(700 + 130 * round)).await;
        // Alternate between the leader and a follower.
        let leader = cluster.wait_for_leader(Duration::from_secs(20)).await;
        let victim = if round % 2 == 0 {
            leader
        } else {
            (leader + 1) % 3
        };
        cluster.kill(victim);
        let check = flotilla_tests::hub::integrity_check(&cluster.replicas[victim].db());
        assert_eq!(
            check, "ok",
            "replica {victim} after kill -9 in round {round}"
        );
        cluster.spawn(victim);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = Vec::new();
    for writer in writers {
        acked.extend(writer.await.unwrap());
    }
    assert!(
        acked.len() > 50,
        "too few acknowledged writes: {}",
        acked.len()
    );
    cluster.wait_for_leader(TIMEOUT).await;
    wait_converged(&cluster).await;
    // Every acknowledged write is on every replica.
    for i in 0..3 {
        let client = cluster.client_of(i, TIMEOUT);
        for name in &acked {
            assert!(
                read(&client, name, Consistency::Stale).await.is_some(),
                "acknowledged write {name} missing on replica {i}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_join_to_five_leave_again_and_a_lagging_one_gets_a_snapshot() {
    let options = ClusterOptions {
        snapshot_after_entries: 50,
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(3, options);
    cluster.wait_for_leader(TIMEOUT).await;
    let client = cluster.client(TIMEOUT);
    let fourth = cluster.add_replica();
    let fifth = cluster.add_replica();
    let status = client.status().await.unwrap();
    assert_eq!(
        status.members.iter().filter(|m| m.voter).count(),
        5,
        "{status:?}"
    );

    // A replica that is down while the log moves past a snapshot receives
    // the snapshot when it comes back.
    cluster.kill(fourth);
    for n in 0..300 {
        applied(client.write(create(&format!("s{n}"), "v")).await.unwrap());
    }
    cluster.spawn(fourth);
    wait_converged(&cluster).await;
    let log =
        std::fs::read_to_string(cluster.replicas[fourth].data_dir.with_extension("log")).unwrap();
    assert!(
        log.contains("installed a snapshot"),
        "replica {fourth} caught up without a snapshot:\n{log}"
    );
    let lagger = cluster.client_of(fourth, TIMEOUT);
    assert_eq!(
        read(&lagger, "s299", Consistency::Stale).await.as_deref(),
        Some("v")
    );

    // Remove a follower, then the leader itself: writes go on with three.
    let leader = cluster.wait_for_leader(TIMEOUT).await;
    let follower = (0..5).find(|i| *i != leader && *i != fourth).unwrap();
    client
        .remove(cluster.replicas[follower].id.unwrap())
        .await
        .unwrap();
    cluster.kill(follower);
    client
        .remove(cluster.replicas[leader].id.unwrap())
        .await
        .unwrap();
    cluster.kill(leader);
    let rest = cluster.client(TIMEOUT);
    applied(rest.write(create("after-removal", "v")).await.unwrap());
    let status = rest.status().await.unwrap();
    let voters: Vec<u64> = status
        .members
        .iter()
        .filter(|m| m.voter)
        .map(|m| m.id)
        .collect();
    assert_eq!(voters.len(), 3, "{status:?}");
    assert!(!voters.contains(&cluster.replicas[leader].id.unwrap()));
    assert!(!voters.contains(&cluster.replicas[follower].id.unwrap()));
    let _ = fifth;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_a_running_cluster_restores_into_a_new_cluster_ahead_of_the_old_revisions() {
    let cluster = Cluster::start(3, ClusterOptions::default());
    cluster.wait_for_leader(TIMEOUT).await;
    let client = cluster.client(TIMEOUT);
    let mut last = 0;
    for n in 0..50 {
        last = applied(
            client
                .write(create(&format!("b{n}"), &format!("v{n}")))
                .await
                .unwrap(),
        );
    }
    let backup = cluster.root().join("backup.db");
    let hub = flotilla_tests::hub::hub_binary();
    let run = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new(&hub)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let servers = cluster
        .replicas
        .iter()
        .map(|r| r.addr.clone())
        .collect::<Vec<_>>()
        .join(",");
    run(&[
        "cluster".as_ref(),
        "backup".as_ref(),
        "--server".as_ref(),
        servers.as_ref(),
        "--pki".as_ref(),
        cluster.pki_dir().as_os_str(),
        "--to".as_ref(),
        backup.as_os_str(),
    ]);
    // Writes after the backup are not in it.
    applied(client.write(create("after", "v")).await.unwrap());

    let restored_dir = cluster.root().join("restored");
    run(&[
        "restore".as_ref(),
        "--from".as_ref(),
        backup.as_os_str(),
        "--data-dir".as_ref(),
        restored_dir.as_os_str(),
    ]);
    let restored = Cluster::resume_single(&restored_dir);
    restored.wait_for_leader(TIMEOUT).await;
    let new_client = restored.client(TIMEOUT);
    for n in 0..50 {
        assert_eq!(
            read(&new_client, &format!("b{n}"), Consistency::Linearizable).await,
            Some(format!("v{n}"))
        );
    }
    assert_eq!(
        read(&new_client, "after", Consistency::Linearizable).await,
        None
    );
    let revision = applied(new_client.write(create("new", "v")).await.unwrap());
    assert!(
        revision > last + 1_000_000_000,
        "revision {revision} is not ahead of {last}"
    );
}
