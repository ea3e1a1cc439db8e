//! The agent end to end on real parts: a `flotilla-agent run` process pulls
//! from a private docker-registry, runs busybox containers through runc,
//! restarts them, probes them, enforces memory limits, and survives its own
//! kill -9 without starting anything twice.

use std::time::Duration;

use flotilla_shared::wire::{
    ContainerState, PodPhase, Probe, ProbeAction, ResourceList, RestartPolicy, Volume, VolumeMount,
    VolumeSource,
};
use flotilla_tests::agent::{
    AgentProcess, registry_with_busybox, shell_container, shell_pod, unique_uid,
};
use flotilla_tests::registry::Registry;

const LONG: Duration = Duration::from_secs(60);

/// A registry with busybox and an agent allowed to pull from it.
fn agent_with_busybox() -> (Registry, String, AgentProcess) {
    let (registry, image) = registry_with_busybox();
    let agent = AgentProcess::start(&registry.host()).expect("agent");
    (registry, image, agent)
}

fn probe(action: ProbeAction, period_seconds: u32, failure_threshold: u32) -> Probe {
    Probe {
        action,
        initial_delay_seconds: 0,
        period_seconds,
        timeout_seconds: 1,
        success_threshold: 1,
        failure_threshold,
    }
}

#[test]
fn a_pod_is_pulled_run_logged_and_removed() {
    let (_registry, image, mut agent) = agent_with_busybox();
    let uid = unique_uid();
    agent
        .set_pods(vec![shell_pod(
            &uid,
            "hello",
            &image,
            &[("main", "echo hello from flotilla; exec sleep 3600")],
        )])
        .unwrap();
    let status = agent.wait_running(&uid, LONG);
    let container_id = status.containers[0].container_id.clone();
    assert!(
        status.containers[0].image_id.contains("@sha256:"),
        "{status:?}"
    );
    let ids: Vec<String> = agent
        .runtime_containers()
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(ids, std::slice::from_ref(&container_id));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !agent
        .container_log(&container_id)
        .contains("hello from flotilla")
    {
        assert!(std::time::Instant::now() < deadline, "no log line");
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = agent.container_log(&container_id);
    assert!(
        log.contains(" stdout F hello from flotilla"),
        "CRI format: {log}"
    );

    agent.set_pods(vec![]).unwrap();
    let deadline = std::time::Instant::now() + LONG;
    while !agent.runtime_containers().is_empty()
        || agent.state_dir().join("pods").join(&uid).exists()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the pod was not removed: {:?}\n{}",
            agent.runtime_containers(),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_crashing_container_restarts_with_backoff() {
    let (_registry, image, mut agent) = agent_with_busybox();
    let uid = unique_uid();
    agent
        .set_pods(vec![shell_pod(
            &uid,
            "crasher",
            &image,
            &[("main", "echo up; exit 3")],
        )])
        .unwrap();
    let first = agent.wait_for(&uid, LONG, "restarted once", |s| {
        s.containers[0].restart_count == 1
    });
    let last = first.containers[0]
        .last_termination
        .clone()
        .expect("last termination");
    assert_eq!((last.exit_code, last.reason.as_str()), (3, "Error"));
    // Kubelet's first backoff is 10 s: the second restart comes no sooner.
    let backoff = agent.wait_for(&uid, LONG, "in CrashLoopBackOff", |s| {
        matches!(&s.containers[0].state, ContainerState::Waiting { reason, .. } if reason == "CrashLoopBackOff")
    });
    assert_eq!(backoff.containers[0].restart_count, 1, "{backoff:?}");
    let started = std::time::Instant::now();
    agent.wait_for(&uid, LONG, "restarted twice", |s| {
        s.containers[0].restart_count == 2
    });
    // The third run: seen running, or already over (it exits at once, and
    // on a loaded machine the status may move past it between two looks).
    agent.wait_for(&uid, LONG, "the third run", |s| {
        s.containers[0].container_id.ends_with("-2") || s.containers[0].restart_count >= 3
    });
    assert!(
        started.elapsed() >= Duration::from_secs(8),
        "the second restart came after {:?}",
        started.elapsed()
    );
}

#[test]
fn probes_restart_a_dead_container_and_report_readiness() {
    let (_registry, image, mut agent) = agent_with_busybox();
    let uid = unique_uid();
    let mut pod = shell_pod(&uid, "web", &image, &[]);
    let mut web = shell_container(
        "web",
        &image,
        "mkdir -p /tmp/www; echo ok > /tmp/www/index.html; touch /tmp/alive; \
         (sleep 6; rm /tmp/alive) & exec httpd -f -p 8080 -h /tmp/www",
    );
    web.readiness = Some(probe(
        ProbeAction::HttpGet {
            scheme: Default::default(),
            host: String::new(),
            port: 8080,
            path: "/index.html".into(),
            headers: vec![],
        },
        1,
        1,
    ));
    web.liveness = Some(probe(
        ProbeAction::Exec {
            command: vec!["cat".into(), "/tmp/alive".into()],
        },
        1,
        2,
    ));
    pod.containers.push(web);
    // A second container checked by a TCP probe inside the pod's namespace.
    let mut tcp = shell_container("tcp", &image, "exec httpd -f -p 9090 -h /tmp");
    tcp.readiness = Some(probe(
        ProbeAction::TcpSocket {
            host: String::new(),
            port: 9090,
        },
        1,
        1,
    ));
    pod.containers.push(tcp);
    agent.set_pods(vec![pod]).unwrap();
    let ready = agent.wait_running(&uid, LONG);
    assert!(ready.containers.iter().all(|c| c.ready), "{ready:?}");
    let restarted = agent.wait_for(&uid, LONG, "restarted by its liveness probe", |s| {
        s.containers[0].restart_count >= 1
    });
    let last = restarted.containers[0]
        .last_termination
        .clone()
        .expect("terminated");
    assert!(
        last.message.contains("failed liveness probe"),
        "{last:?}\n{restarted:#?}\n{}",
        agent.log()
    );
    assert_eq!(
        restarted.containers[1].restart_count, 0,
        "the other container is untouched"
    );
}

#[test]
fn a_memory_limit_ends_in_oomkilled() {
    let (_registry, image, mut agent) = agent_with_busybox();
    let uid = unique_uid();
    let mut pod = shell_pod(
        &uid,
        "hog",
        &image,
        &[("main", "a=xxxxxxxxxxxxxxxx; while true; do a=$a$a; done")],
    );
    pod.restart_policy = RestartPolicy::Never;
    pod.containers[0].resources.limits = ResourceList {
        memory_bytes: Some(24 << 20),
        ..ResourceList::default()
    };
    agent.set_pods(vec![pod]).unwrap();
    let done = agent.wait_for(&uid, LONG, "failed", |s| s.phase == PodPhase::Failed);
    match &done.containers[0].state {
        ContainerState::Terminated(t) => {
            assert_eq!(
                (t.exit_code, t.reason.as_str()),
                (137, "OOMKilled"),
                "{t:?}"
            )
        }
        other => panic!("not terminated: {other:?}"),
    }
}

#[test]
fn init_containers_run_first_and_share_volumes() {
    let (_registry, image, mut agent) = agent_with_busybox();
    let uid = unique_uid();
    let mount = |name: &str| VolumeMount {
        volume: name.into(),
        mount_path: "/data".into(),
        sub_path: String::new(),
        read_only: false,
    };
    let mut pod = shell_pod(
        &uid,
        "init",
        &image,
        &[("main", "cat /data/greeting; exec sleep 3600")],
    );
    pod.volumes = vec![Volume {
        name: "data".into(),
        source: VolumeSource::EmptyDir {
            medium: Default::default(),
            size_limit_bytes: None,
        },
    }];
    pod.containers[0].volume_mounts = vec![mount("data")];
    let mut init = shell_container("prepare", &image, "echo prepared-by-init > /data/greeting");
    init.volume_mounts = vec![mount("data")];
    pod.init_containers = vec![init];
    agent.set_pods(vec![pod]).unwrap();
    let status = agent.wait_running(&uid, LONG);
    match &status.init_containers[0].state {
        ContainerState::Terminated(t) => assert_eq!(t.reason, "Completed"),
        other => panic!("init container: {other:?}"),
    }
    let id = status.containers[0].container_id.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !agent.container_log(&id).contains("prepared-by-init") {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            agent.container_log(&id)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_unknown_image_reports_errimagepull_with_the_registrys_reason() {
    let (registry, _) = registry_with_busybox();
    let mut agent = AgentProcess::start(&registry.host()).unwrap();
    let uid = unique_uid();
    let missing = format!("{}/flotilla/missing:1", registry.host());
    agent
        .set_pods(vec![shell_pod(
            &uid,
            "missing",
            &missing,
            &[("main", "true")],
        )])
        .unwrap();
    let status = agent.wait_for(&uid, LONG, "waiting on its image", |s| {
        matches!(&s.containers[0].state, ContainerState::Waiting { reason, .. }
            if reason == "ErrImagePull" || reason == "ImagePullBackOff")
    });
    let ContainerState::Waiting { message, .. } = &status.containers[0].state else {
        unreachable!()
    };
    assert!(message.contains("manifest unknown"), "{message}");
}

#[test]
fn an_agent_killed_with_sigkill_adopts_its_containers_and_starts_no_duplicate() {
    let (_registry, image, mut agent) = agent_with_busybox();
    let (keep, drop) = (unique_uid(), unique_uid());
    let pods = vec![
        shell_pod(&keep, "keep", &image, &[("main", "exec sleep 3600")]),
        shell_pod(&drop, "drop", &image, &[("main", "exec sleep 3600")]),
    ];
    agent.set_pods(pods.clone()).unwrap();
    agent.wait_running(&keep, LONG);
    agent.wait_running(&drop, LONG);
    let before = agent.runtime_containers();
    assert_eq!(before.len(), 2, "{before:?}");

    agent.kill9();
    // While the agent is down, one pod leaves the desired state.
    agent.set_pods(vec![pods[0].clone()]).unwrap();
    agent.restart().unwrap();
    let deadline = std::time::Instant::now() + LONG;
    loop {
        let now = agent.runtime_containers();
        if now.len() == 1 {
            assert_eq!(
                now[0],
                before
                    .iter()
                    .find(|c| c.0.starts_with(&keep))
                    .cloned()
                    .unwrap(),
                "the kept container is the same process"
            );
            break;
        }
        assert!(now.len() <= 2, "a duplicate was started: {now:?}");
        assert!(
            std::time::Instant::now() < deadline,
            "{now:?}\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = agent.wait_running(&keep, LONG);
    assert_eq!(status.containers[0].restart_count, 0);
    assert_eq!(
        status.containers[0].container_id,
        before.iter().find(|c| c.0.starts_with(&keep)).unwrap().0
    );
}

#[test]
fn kill_9_at_any_moment_of_a_start_loses_nothing_and_duplicates_nothing() {
    let (_registry, image, mut agent) = agent_with_busybox();
    let uids: Vec<String> = (0..3).map(|_| unique_uid()).collect();
    let pods = uids
        .iter()
        .enumerate()
        .map(|(i, uid)| {
            shell_pod(
                uid,
                &format!("p{i}"),
                &image,
                &[("main", "exec sleep 3600")],
            )
        })
        .collect();
    agent.set_pods(pods).unwrap();
    // Kill the agent at spread-out moments of pulling, creating and starting.
    for delay_ms in [150, 400, 50, 700, 250, 1000] {
        std::thread::sleep(Duration::from_millis(delay_ms));
        agent.restart().unwrap();
    }
    for uid in &uids {
        let status = agent.wait_running(uid, LONG);
        assert_eq!(status.containers[0].restart_count, 0, "{status:?}");
    }
    std::thread::sleep(Duration::from_secs(2));
    let containers = agent.runtime_containers();
    assert_eq!(containers.len(), 3, "one container per pod: {containers:?}");
    for uid in &uids {
        assert_eq!(
            containers
                .iter()
                .filter(|c| c.0.starts_with(uid.as_str()))
                .count(),
            1,
            "{containers:?}"
        );
        assert!(
            containers.iter().all(|c| c.1 == "running"),
            "{containers:?}"
        );
    }
}
