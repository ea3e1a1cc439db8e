//! The device link on real parts: a `flotilla-agent run --hub` process
//! connects over TLS with its own certificate to a real Mosquitto broker
//! enforcing Flotilla's ACL file, registers, sends heartbeats, runs the
//! desired state a hub-side client publishes (through runc, from a real
//! registry), reports statuses over MQTT, ignores an older desired state,
//! and leaves its last will when killed. A second device's certificate is
//! refused everything of the first's.

use std::process::{Command, Stdio};
use std::time::Duration;

use flotilla_shared::wire::{ContainerState, DesiredState, Message, PodPhase, topics};
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
