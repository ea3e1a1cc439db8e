//! The device link on real parts: a `flotilla-agent run --hub` process
//! connects over TLS with its own certificate to a real Mosquitto broker
//! enforcing Flotilla's ACL file, registers, sends heartbeats, runs the
//! desired state a hub-side client publishes (through runc, from a real
//! registry), reports statuses over MQTT, ignores an older desired state,
//! and leaves its last will when killed. It serves its containers' logs
//! (`kubectl logs` and its options) on request. A second device's
//! certificate is refused everything of the first's.

use std::process::{Command, Stdio};
use std::time::Duration;

use flotilla_shared::wire::{
    ContainerState, DesiredState, LogCancel, LogChunk, LogRequest, Message, PodPhase, topics,
};
use flotilla_tests::agent::{AgentProcess, registry_with_busybox, shell_pod, unique_uid};
use flotilla_tests::mqtt::{
    FOREIGN_TOPICS_OF_DEVICE_1, HubClient, Mosquitto, TestPki, heartbeat_file,
};

const LONG: Duration = Duration::from_secs(60);

fn link_args(broker: &Mosquitto, pki: &TestPki, node: &str) -> Vec<String> {
    let (cert, key) = pki.issue(node, false).expect("device certificate");
    vec![
        "--hub".into(),
        broker.address(),
        "--hub-ca".into(),
        pki.ca().display().to_string(),
        "--cert".into(),
        cert.display().to_string(),
        "--key".into(),
        key.display().to_string(),
        "--heartbeat-seconds".into(),
        "1".into(),
    ]
}

#[test]
fn an_agent_follows_its_hub_over_mqtt() {
    let (registry, image) = registry_with_busybox();
    let pki = TestPki::new().expect("pki");
    let broker = Mosquitto::start(&pki).expect("mosquitto");
    let hub = HubClient::connect(&broker, &pki).expect("hub client");
    let node = "device-1";
    let mut agent =
        AgentProcess::start_linked(&registry.host(), node, link_args(&broker, &pki, node))
            .expect("agent");
    let agent_log = agent.dir.path().join("agent.log");
    let context = || {
        format!(
            "agent log:\n{}\nbroker log:\n{}",
            std::fs::read_to_string(&agent_log).unwrap_or_default(),
            broker.log()
        )
    };

    let Message::NodeRegistration(registration) = hub.wait_for(
        LONG,
        "registration",
        context,
        |_, m| matches!(m, Message::NodeRegistration(r) if r.node == node),
    ) else {
        unreachable!()
    };
    assert!(registration.session > 0 && registration.capacity.cpu_millis >= 1000);
    assert!(!registration.boot_id.is_empty(), "{registration:?}");
    hub.wait_for(LONG, "heartbeat", context, |t, m| {
        t.ends_with("/heartbeat") && matches!(m, Message::Heartbeat(h) if h.node == node)
    });

    // A pod, published retained as the gateway will.
    let uid = unique_uid();
    let pod = shell_pod(&uid, "hello", &image, &[("main", "exec sleep 3600")]);
    hub.publish_desired(&DesiredState {
        node: node.into(),
        revision: 10,
        pods: vec![pod],
        services: vec![],
    })
    .expect("publish");
    let running = |m: &Message| {
        matches!(m, Message::PodStatusUpdate(s) if s.pod_uid == uid
            && s.phase == PodPhase::Running
            && s.containers.iter().all(|c| matches!(c.state, ContainerState::Running { .. })))
    };
    hub.wait_for(LONG, "a Running status", context, |_, m| running(m));
    assert_eq!(agent.runtime_containers().len(), 1);
    // The agent persisted it (revision 10) before acknowledging; heartbeats
    // now say so.
    hub.wait_for(
        LONG,
        "a heartbeat at revision 10",
        context,
        |_, m| matches!(m, Message::Heartbeat(h) if h.applied_revision == Some(10)),
    );

    // An older desired state (a replica behind) changes nothing.
    hub.publish_desired(&DesiredState {
        node: node.into(),
        revision: 9,
        pods: vec![],
        services: vec![],
    })
    .expect("publish");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(agent.runtime_containers().len(), 1, "{}", context());

    // The agent restarts: the broker delivers the retained state again
    // (revision 9, the last published) and it is still ignored; the pod is
    // adopted and reported Running again.
    let before = hub.received().len();
    agent.restart().expect("restart");
    hub.wait_for(
        LONG,
        "a second registration",
        context,
        |_, m| matches!(m, Message::NodeRegistration(r) if r.session != registration.session),
    );
    hub.wait_for_since(
        before,
        LONG,
        "Running after the restart",
        context,
        |_, m| running(m),
    );
    assert_eq!(agent.runtime_containers().len(), 1, "{}", context());

    // The agent dies without a goodbye: its last will names the session.
    let Message::NodeRegistration(second) = hub.wait_for(
        LONG,
        "the registration",
        context,
        |_, m| matches!(m, Message::NodeRegistration(r) if r.session != registration.session),
    ) else {
        unreachable!()
    };
    agent.kill9();
    hub.wait_for(LONG, "the last will", context, |t, m| {
        t == topics::topic(node, topics::TopicKind::Status).unwrap()
            && matches!(m, Message::Offline(o) if o.node == node && o.session == second.session)
    });

    // Removed from the desired state: stopped.
    agent.restart().expect("restart");
    hub.publish_desired(&DesiredState {
        node: node.into(),
        revision: 11,
        pods: vec![],
        services: vec![],
    })
    .expect("publish");
    let deadline = std::time::Instant::now() + LONG;
    while !agent.runtime_containers().is_empty() {
        assert!(std::time::Instant::now() < deadline, "{}", context());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The chunks of log request `id` received so far, in order.
fn chunks(hub: &HubClient, node: &str, id: u64) -> Vec<LogChunk> {
    let topic = topics::topic(node, topics::TopicKind::LogResponse { request_id: id }).unwrap();
    let mut chunks: Vec<LogChunk> = hub
        .received()
        .into_iter()
        .filter(|(t, _)| *t == topic)
        .filter_map(|(_, m)| match m {
            Message::LogChunk(c) => Some(c),
            _ => None,
        })
        .collect();
    chunks.sort_by_key(|c| c.seq);
    chunks
}

fn text(chunks: &[LogChunk]) -> String {
    String::from_utf8(chunks.iter().flat_map(|c| c.data.clone()).collect()).unwrap()
}

#[test]
fn an_agent_serves_its_containers_logs_over_mqtt() {
    let (registry, image) = registry_with_busybox();
    let pki = TestPki::new().expect("pki");
    let broker = Mosquitto::start(&pki).expect("mosquitto");
    let hub = HubClient::connect(&broker, &pki).expect("hub client");
    let node = "device-logs";
    let agent = AgentProcess::start_linked(&registry.host(), node, link_args(&broker, &pki, node))
        .expect("agent");
    let context = || format!("agent log:\n{}\nbroker log:\n{}", agent.log(), broker.log());
    let uid = unique_uid();
    // stdout and stderr are two pipes: their lines interleave in no set order.
    let script =
        "echo err >&2; echo one; echo two; echo three; while true; do echo tick; sleep 0.3; done";
    let pod = shell_pod(&uid, "talker", &image, &[("main", script)]);
    hub.publish_desired(&DesiredState {
        node: node.into(),
        revision: 1,
        pods: vec![pod],
        services: vec![],
    })
    .expect("publish");
    hub.wait_for(LONG, "a Running status", context, |_, m| {
        matches!(m, Message::PodStatusUpdate(s) if s.pod_uid == uid && s.phase == PodPhase::Running)
    });
    let request_topic = topics::topic(node, topics::TopicKind::LogRequest).unwrap();
    let ask = |request: LogRequest| {
        hub.publish(&request_topic, &Message::LogRequest(request))
            .expect("publish");
    };
    let complete = |id: u64| {
        let deadline = std::time::Instant::now() + LONG;
        loop {
            let got = chunks(&hub, node, id);
            if got.last().is_some_and(|c| c.eof) {
                let seqs: Vec<u64> = got.iter().map(|c| c.seq).collect();
                assert_eq!(seqs, (0..got.len() as u64).collect::<Vec<_>>(), "{got:?}");
                return got;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "request {id}: {got:?}\n{}",
                context()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let main = |request_id: u64| LogRequest {
        request_id,
        pod_uid: uid.clone(),
        container: "main".into(),
        ..LogRequest::default()
    };

    // The whole log, stdout and stderr, once the first lines are out.
    let deadline = std::time::Instant::now() + LONG;
    let mut id = 100;
    loop {
        id += 1;
        ask(main(id));
        let got = complete(id);
        let all = text(&got);
        if all.contains("one\ntwo\nthree\n") && all.contains("err\n") {
            assert!(got.last().unwrap().error.is_none());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{got:?}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // --tail 1 --timestamps.
    ask(LogRequest {
        tail_lines: Some(1),
        timestamps: true,
        ..main(1)
    });
    let tailed = text(&complete(1));
    let (stamp, line) = tailed.trim_end().split_once(' ').expect("a timestamp");
    assert!(
        stamp.starts_with("20") && stamp.ends_with('Z'),
        "{tailed:?}"
    );
    assert!(["three", "tick", "err"].contains(&line), "{tailed:?}");
    assert_eq!(tailed.lines().count(), 1);
    // --limit-bytes 3.
    ask(LogRequest {
        limit_bytes: Some(3),
        ..main(2)
    });
    assert!(["one", "err"].contains(&text(&complete(2)).as_str()));
    // No such container: one last chunk saying so.
    ask(LogRequest {
        container: "nope".into(),
        ..main(3)
    });
    let refused = complete(3);
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("waiting to start")
    );
    // -f: what is there, then what comes (the container ticks), until
    // cancelled; then nothing more though the container goes on ticking.
    ask(LogRequest {
        follow: true,
        ..main(4)
    });
    let ticks = || text(&chunks(&hub, node, 4)).matches("tick\n").count();
    let deadline = std::time::Instant::now() + LONG;
    while ticks() < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", context());
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = ticks();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        ticks() > before + 2,
        "no new lines followed: {before} then {}",
        ticks()
    );
    assert!(text(&chunks(&hub, node, 4)).contains("one\ntwo\nthree\n"));
    assert!(!chunks(&hub, node, 4).iter().any(|c| c.eof));
    hub.publish(
        &request_topic,
        &Message::LogCancel(LogCancel { request_id: 4 }),
    )
    .expect("cancel");
    std::thread::sleep(Duration::from_secs(1));
    let after_cancel = chunks(&hub, node, 4).len();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        chunks(&hub, node, 4).len(),
        after_cancel,
        "chunks after the cancel"
    );
}

/// `mosquitto_sub` / `mosquitto_pub` with `name`'s certificate (or none).
fn mosquitto_client(
    tool: &str,
    broker: &Mosquitto,
    pki: &TestPki,
    name: Option<&str>,
    args: &[&str],
) -> std::process::Output {
    let mut command = Command::new(tool);
    command
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
        .arg("--cafile")
        .arg(pki.ca());
    if let Some(name) = name {
        let (cert, key) = pki.issue(name, false).expect("certificate");
        command.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("mosquitto client")
}

/// What device-2 reads on its own desired topic (its retained state).
fn device_2_reads_its_desired_state(broker: &Mosquitto, pki: &TestPki) -> std::process::Output {
    mosquitto_client(
        "mosquitto_sub",
        broker,
        pki,
        Some("device-2"),
        &[
            "-t",
            "flotilla/v1/nodes/device-2/desired",
            "-C",
            "1",
            "-W",
            "5",
            "-i",
            "device-2",
        ],
    )
}

#[test]
fn a_device_can_reach_only_its_own_topics() {
    let pki = TestPki::new().expect("pki");
    let broker = Mosquitto::start(&pki).expect("mosquitto");
    let hub = HubClient::connect(&broker, &pki).expect("hub client");
    // device-2's desired state, retained.
    hub.publish_desired(&DesiredState {
        node: "device-2".into(),
        revision: 1,
        pods: vec![],
        services: vec![],
    })
    .expect("publish");

    // device-2 itself gets it...
    let own = device_2_reads_its_desired_state(&broker, &pki);
    assert!(
        own.status.success() && !own.stdout.is_empty(),
        "{own:?}\n{}",
        broker.log()
    );

    // ...device-1 gets nothing of it, by name or by wildcard.
    for filter in [
        "flotilla/v1/nodes/device-2/desired",
        "flotilla/v1/nodes/+/desired",
        "flotilla/v1/nodes/#",
        "flotilla/v1/#",
        "#",
        "flotilla/v1/nodes/device-2/logs/request",
        "flotilla/v1/nodes/device-2/status",
    ] {
        let out = mosquitto_client(
            "mosquitto_sub",
            &broker,
            &pki,
            Some("device-1"),
            &["-t", filter, "-C", "1", "-W", "2", "-i", "device-1"],
        );
        assert!(out.stdout.is_empty(), "device-1 read {filter}: {out:?}");
    }

    // device-1 cannot speak for device-2, nor write device-2's desired
    // state; the hub hears only device-1's own topics.
    let payload = heartbeat_file(pki.dir.path(), "device-2");
    let payload_arg = payload.display().to_string();
    for topic in FOREIGN_TOPICS_OF_DEVICE_1 {
        let out = mosquitto_client(
            "mosquitto_pub",
            &broker,
            &pki,
            Some("device-1"),
            &["-t", topic, "-f", &payload_arg, "-q", "1", "-i", "device-1"],
        );
        assert!(out.status.success(), "{out:?}");
    }
    // Its own heartbeat topic works (the hub hears that one).
    let own_beat =
        flotilla_shared::wire::encode(&Message::Heartbeat(flotilla_shared::wire::Heartbeat {
            node: "device-1".into(),
            seq: 77,
            ..Default::default()
        }));
    std::fs::write(&payload, &own_beat).unwrap();
    let out = mosquitto_client(
        "mosquitto_pub",
        &broker,
        &pki,
        Some("device-1"),
        &[
            "-t",
            "flotilla/v1/nodes/device-1/heartbeat",
            "-f",
            &payload_arg,
            "-q",
            "1",
            "-i",
            "device-1",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    hub.wait_for(
        Duration::from_secs(10),
        "device-1's own heartbeat",
        || broker.log(),
        |t, m| {
            t == "flotilla/v1/nodes/device-1/heartbeat"
                && matches!(m, Message::Heartbeat(h) if h.seq == 77)
        },
    );
    let _ = std::fs::remove_file(&payload);
    let heard: Vec<String> = hub.received().into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        heard,
        ["flotilla/v1/nodes/device-1/heartbeat"],
        "{}",
        broker.log()
    );
    // The retained desired state of device-2 is still the hub's.
    let again = device_2_reads_its_desired_state(&broker, &pki);
    assert_eq!(again.stdout, own.stdout);

    // Without a certificate: refused outright.
    let anonymous = mosquitto_client(
        "mosquitto_sub",
        &broker,
        &pki,
        None,
        &["-t", "flotilla/v1/#", "-C", "1", "-W", "3"],
    );
    assert!(!anonymous.status.success(), "{anonymous:?}");
    assert!(anonymous.stdout.is_empty());
}
