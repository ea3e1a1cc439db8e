//! The executor on the in-memory runtime, host and registry: the same code
//! paths as on a device, without root, runc or a network.

use std::sync::Arc;
use std::time::Duration;

use flotilla_shared::wire::{
    Container, ContainerState, DesiredState, Pod, PodPhase, PodStatusUpdate, RestartPolicy,
};
use tokio::sync::{mpsc, watch};

use super::{Clock, MemoryHost, Paths, Services};
use crate::image::testing::{Entry, ImageSpec, build_image};
use crate::image::{ImageStore, MemorySource, Platform};
use crate::runtime::MemoryRuntime;
use crate::state::StateDir;

const IMAGE: &str = "registry.test/app:1";

struct Harness {
    _dir: tempfile::TempDir,
    paths: Paths,
    runtime: MemoryRuntime,
    source: MemorySource,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths {
            state_dir: dir.path().join("state"),
            run_dir: dir.path().join("run"),
        };
        let source = MemorySource::new();
        let image = build_image(&ImageSpec::new(
            Platform::of_this_device(),
            vec![vec![
                Entry::dir("bin"),
                Entry::file("bin/app", 0o755, "#!/bin/sh\n"),
            ]],
        ));
        source.add_image(IMAGE, &image);
        Harness {
            _dir: dir,
            paths,
            runtime: MemoryRuntime::new(),
            source,
        }
    }

    /// Starts an agent on the harness's runtime and directories.
    fn start(&self) -> Agent {
        let services = Arc::new(Services {
            node: "dev-1".into(),
            runtime: self.runtime.clone(),
            images: ImageStore::open(
                self.paths.state_dir.join("images"),
                self.source.clone(),
                u64::MAX,
            )
            .unwrap(),
            host: MemoryHost::new(self.paths.clone()),
            state: StateDir::open(&self.paths.state_dir).unwrap(),
            paths: self.paths.clone(),
            clock: Clock::new(),
        });
        let (desired, desired_rx) = watch::channel(None);
        let (status_tx, statuses) = mpsc::unbounded_channel();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(super::run(
            services,
            desired_rx,
            status_tx,
            watch::channel(None).0,
            shutdown_rx,
        ));
        Agent {
            desired,
            statuses,
            shutdown,
            task,
            revision: 0,
        }
    }
}

struct Agent {
    desired: watch::Sender<Option<DesiredState>>,
    statuses: mpsc::UnboundedReceiver<PodStatusUpdate>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), super::AgentError>>,
    revision: u64,
}

impl Agent {
    fn set_pods(&mut self, pods: Vec<Pod>) {
        self.revision += 1;
        let _ = self.desired.send(Some(DesiredState {
            node: "dev-1".into(),
            revision: self.revision,
            pods,
            services: vec![],
        }));
    }

    async fn wait_for(
        &mut self,
        what: &str,
        check: impl Fn(&PodStatusUpdate) -> bool,
    ) -> PodStatusUpdate {
        let found = tokio::time::timeout(Duration::from_secs(600), async {
            loop {
                let status = self.statuses.recv().await.expect("the agent stopped");
                if check(&status) {
                    return status;
                }
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("no status {what}"))
    }

    async fn stop(self) {
        let _ = self.shutdown.send(true);
        self.task.await.unwrap().unwrap();
    }
}

fn pod(uid: &str) -> Pod {
    Pod {
        uid: uid.into(),
        namespace: "default".into(),
        name: "app".into(),
        containers: vec![Container {
            name: "main".into(),
            image: IMAGE.into(),
            command: vec!["/bin/app".into()],
            ..Container::default()
        }],
        restart_policy: RestartPolicy::Always,
        termination_grace_period_seconds: 5,
        ..Pod::default()
    }
}

fn running(status: &PodStatusUpdate) -> bool {
    status.phase == PodPhase::Running
        && matches!(status.containers[0].state, ContainerState::Running { .. })
}

fn creates(runtime: &MemoryRuntime) -> usize {
    runtime
        .calls()
        .iter()
        .filter(|c| c.starts_with("create"))
        .count()
}

#[tokio::test(start_paused = true)]
async fn a_pod_runs_restarts_after_backoff_and_is_removed_when_no_longer_desired() {
    let harness = Harness::new();
    let mut agent = harness.start();
    agent.set_pods(vec![pod("uid-1")]);
    let status = agent.wait_for("running", running).await;
    let first = status.containers[0].container_id.clone();
    assert_eq!(first, "uid-1-main-0");

    harness.runtime.exit(&first, 2).unwrap();
    let crashed = agent
        .wait_for("in backoff", |s| {
            matches!(&s.containers[0].state, ContainerState::Waiting { reason, .. } if reason == "CrashLoopBackOff")
        })
        .await;
    assert_eq!(crashed.containers[0].restart_count, 1);
    let before = tokio::time::Instant::now();
    let again = agent.wait_for("running again", running).await;
    assert_eq!(again.containers[0].container_id, "uid-1-main-1");
    assert!(
        before.elapsed() >= Duration::from_secs(9),
        "{:?}",
        before.elapsed()
    );

    agent.set_pods(vec![]);
    // The container ignores nothing: SIGTERM ends it.
    agent
        .wait_for("stopped", |s| {
            s.containers[0].container_id.is_empty() && !running(s)
        })
        .await;
    for _ in 0..100 {
        if !harness.paths.state_dir.join("pods/uid-1").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!harness.paths.state_dir.join("pods/uid-1").exists());
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_restarted_agent_adopts_the_running_container_and_creates_nothing() {
    let harness = Harness::new();
    let mut agent = harness.start();
    agent.set_pods(vec![pod("uid-2")]);
    agent.wait_for("running", running).await;
    assert_eq!(creates(&harness.runtime), 1);
    agent.stop().await;

    // No hub: the new agent starts from its state directory alone.
    let mut agent = harness.start();
    let status = agent.wait_for("running", running).await;
    assert_eq!(status.containers[0].container_id, "uid-2-main-0");
    assert_eq!(status.containers[0].restart_count, 0);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        creates(&harness.runtime),
        1,
        "{:?}",
        harness.runtime.calls()
    );

    // Its exit is still watched after the adoption.
    harness.runtime.exit("uid-2-main-0", 1).unwrap();
    agent
        .wait_for("restarted", |s| {
            s.containers[0].restart_count == 1 && running(s)
        })
        .await;
    assert_eq!(creates(&harness.runtime), 2);
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_completed_pod_is_not_run_again_by_a_later_desired_state_or_a_restart() {
    let harness = Harness::new();
    let mut agent = harness.start();
    let mut job = pod("uid-3");
    job.restart_policy = RestartPolicy::Never;
    agent.set_pods(vec![job.clone()]);
    agent.wait_for("running", running).await;
    harness.runtime.exit("uid-3-main-0", 0).unwrap();
    agent
        .wait_for("succeeded", |s| s.phase == PodPhase::Succeeded)
        .await;
    agent.set_pods(vec![job.clone()]);
    tokio::time::sleep(Duration::from_secs(30)).await;
    agent.stop().await;
    let mut agent = harness.start();
    agent.set_pods(vec![job]);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        creates(&harness.runtime),
        1,
        "{:?}",
        harness.runtime.calls()
    );
    agent.stop().await;
}

#[test]
fn pods_whose_uid_or_names_would_escape_paths_or_collide_are_refused() {
    let good = pod("0b7c6f1e-1d2c-4e5f-8a9b-0c1d2e3f4a5b");
    assert_eq!(super::check_pod(&good), Ok(()));
    let mut bad_uid = good.clone();
    bad_uid.uid = "../../srv/app".into();
    assert!(super::check_pod(&bad_uid).unwrap_err().contains("uid"));
    let mut bad_name = good.clone();
    bad_name.containers[0].name = "x-0/../../y".into();
    assert!(
        super::check_pod(&bad_name)
            .unwrap_err()
            .contains("DNS-1123")
    );
    let mut twice = good.clone();
    twice.init_containers = vec![good.containers[0].clone()];
    assert!(super::check_pod(&twice).unwrap_err().contains("twice"));
}

#[tokio::test(start_paused = true)]
async fn a_leaving_pod_is_stopped_by_its_own_grace_period_after_a_crash() {
    let harness = Harness::new();
    let mut agent = harness.start();
    let mut slow = pod("uid-4");
    slow.termination_grace_period_seconds = 120;
    agent.set_pods(vec![slow.clone()]);
    agent.wait_for("running", running).await;
    let pod_dir = harness.paths.state_dir.join("pods/uid-4");
    assert!(pod_dir.join("record.json").exists());
    assert!(
        !pod_dir.join("pod.bin").exists(),
        "a desired pod's spec is in the desired state"
    );
    harness
        .runtime
        .ignore_signal("uid-4-main-0", libc::SIGTERM)
        .unwrap();

    // It leaves; the agent dies at once, before the pod is stopped.
    agent.set_pods(vec![]);
    for _ in 0..100 {
        if pod_dir.join("pod.bin").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    agent.task.abort();
    let kept = StateDir::open(&harness.paths.state_dir)
        .unwrap()
        .load_pod("uid-4")
        .unwrap();
    assert_eq!(kept, Some(slow));

    // The next agent has no desired state naming it, and still gives it
    // its 120 s: SIGTERM now, SIGKILL only after the grace period.
    let started = tokio::time::Instant::now();
    let mut agent = harness.start();
    agent
        .wait_for("stopped", |s| {
            s.containers[0].container_id.is_empty() && !running(s)
        })
        .await;
    assert!(
        started.elapsed() >= Duration::from_secs(100),
        "killed after {:?}: {:?}",
        started.elapsed(),
        harness.runtime.calls()
    );
    let kills: Vec<String> = harness
        .runtime
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("kill uid-4-main-0"))
        .collect();
    assert_eq!(
        kills.last().map(String::as_str),
        Some("kill uid-4-main-0 9"),
        "{kills:?}"
    );
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_pod_that_never_ran_leaves_no_state_behind() {
    let harness = Harness::new();
    let mut agent = harness.start();
    let mut missing = pod("uid-5");
    missing.containers[0].image = "registry.test/missing:1".into();
    agent.set_pods(vec![missing]);
    agent
        .wait_for("pull failed", |s| {
            matches!(&s.containers[0].state, ContainerState::Waiting { reason, .. } if reason == "ErrImagePull")
        })
        .await;
    assert!(
        !harness
            .paths
            .state_dir
            .join("pods/uid-5/record.json")
            .exists(),
        "nothing ran: nothing to remember"
    );
    agent.set_pods(vec![]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!harness.paths.state_dir.join("pods/uid-5").exists());
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn nothing_is_created_until_the_record_naming_the_run_is_written() {
    let harness = Harness::new();
    let mut agent = harness.start();
    // A directory where the record goes: every write of it fails.
    let blocker = harness.paths.state_dir.join("pods/uid-6/record.json");
    std::fs::create_dir_all(blocker.join("in-the-way")).unwrap();
    agent.set_pods(vec![pod("uid-6")]);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        creates(&harness.runtime),
        0,
        "{:?}",
        harness.runtime.calls()
    );

    std::fs::remove_dir_all(&blocker).unwrap();
    let status = agent.wait_for("running", running).await;
    assert_eq!(status.containers[0].container_id, "uid-6-main-0");
    assert_eq!(status.containers[0].restart_count, 0);
    assert_eq!(creates(&harness.runtime), 1);
    let record = StateDir::open(&harness.paths.state_dir)
        .unwrap()
        .load_record("uid-6")
        .unwrap()
        .expect("written");
    assert_eq!(
        record.containers[0].run.as_ref().map(|r| r.id.as_str()),
        Some("uid-6-main-0")
    );
    agent.stop().await;
}
