//! The pod state machine driven by a scripted executor: each test asserts
//! the commands the core emits and the status it reports.

use std::collections::BTreeMap;

use flotilla_shared::wire::{
    Container, ContainerState, Pod, PodPhase, Probe, ProbeAction, RestartPolicy,
};

use super::machine::{Command, Event, PodState, SIGKILL, SIGTERM};
use super::probes::ProbeKind;

const T0: u64 = 1_700_000_000_000;

fn container(name: &str) -> Container {
    Container {
        name: name.into(),
        image: format!("registry.local/{name}:1"),
        ..Container::default()
    }
}

fn pod(containers: Vec<Container>) -> Pod {
    Pod {
        uid: "0b7c6f1e-uid".into(),
        namespace: "default".into(),
        name: "web".into(),
        containers,
        restart_policy: RestartPolicy::Always,
        termination_grace_period_seconds: 30,
        ..Pod::default()
    }
}

fn probe(kind_threshold: u32) -> Probe {
    Probe {
        action: ProbeAction::TcpSocket {
            host: String::new(),
            port: 80,
        },
        initial_delay_seconds: 0,
        period_seconds: 10,
        timeout_seconds: 1,
        success_threshold: 1,
        failure_threshold: kind_threshold,
    }
}

/// A scripted executor: commands succeed at once unless a test answers
/// them itself; probes answer with `probe_ok`.
struct World {
    now: u64,
    spec: Pod,
    state: PodState,
    probe_ok: BTreeMap<(String, ProbeKind), bool>,
    /// Every command the core emitted, in order.
    log: Vec<Command>,
    persisted: usize,
    /// Run ids the executor holds as running (so that exits can be sent).
    running: Vec<String>,
}

impl World {
    fn new(spec: Pod) -> Self {
        let state = PodState::new(&spec, T0);
        World {
            now: T0,
            spec,
            state,
            probe_ok: BTreeMap::new(),
            log: Vec::new(),
            persisted: 0,
            running: Vec::new(),
        }
    }

    /// Steps and answers commands until the core is quiet; returns the
    /// commands emitted on the way.
    fn settle(&mut self) -> Vec<Command> {
        let mut seen = Vec::new();
        for _ in 0..100 {
            let step = self.state.step(&self.spec, self.now);
            if step.persist {
                self.persisted += 1;
            }
            if step.commands.is_empty() {
                return seen;
            }
            for command in step.commands {
                self.log.push(command.clone());
                seen.push(command.clone());
                let event = match command {
                    Command::PrepareSandbox => Event::SandboxReady,
                    Command::Pull {
                        container, image, ..
                    } => Event::Pulled {
                        container,
                        image_id: format!("{image}@sha256:ab"),
                    },
                    Command::Run { id, .. } => {
                        self.running.push(id.clone());
                        Event::Started {
                            id,
                            at_ms: self.now,
                        }
                    }
                    Command::Signal { id, .. } => Event::Signalled { id },
                    Command::Remove { id } => Event::Removed { id },
                    Command::Probe {
                        container,
                        id,
                        kind,
                    } => {
                        let success = *self
                            .probe_ok
                            .get(&(container.clone(), kind))
                            .unwrap_or(&true);
                        Event::ProbeResult {
                            container,
                            id,
                            kind,
                            success,
                            message: if success {
                                String::new()
                            } else {
                                "connection refused".into()
                            },
                        }
                    }
                    Command::TeardownSandbox => Event::TornDown,
                };
                self.state.apply(&self.spec, event, self.now);
            }
        }
        panic!(
            "the pod never settled: {:?}",
            &self.log[self.log.len().saturating_sub(10)..]
        );
    }

    fn exit(&mut self, id: &str, code: i32) {
        self.running.retain(|r| r != id);
        self.state.apply(
            &self.spec,
            Event::Exited {
                id: id.into(),
                code,
                oom_killed: false,
                finished_at_ms: self.now,
            },
            self.now,
        );
    }

    fn advance(&mut self, ms: u64) {
        self.now += ms;
    }

    fn status(&self) -> super::PodStatus {
        self.state.status(&self.spec, self.now)
    }

    fn waiting_reason(&self, i: usize) -> String {
        match &self.status().containers[i].state {
            ContainerState::Waiting { reason, .. } => reason.clone(),
            other => panic!("not waiting: {other:?}"),
        }
    }
}

fn runs(commands: &[Command]) -> Vec<String> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::Run { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_new_pod_gets_its_sandbox_then_its_image_then_runs() {
    let mut world = World::new(pod(vec![container("app")]));
    let commands = world.settle();
    assert_eq!(commands[0], Command::PrepareSandbox);
    assert!(matches!(&commands[1], Command::Pull { container, .. } if container == "app"));
    assert_eq!(runs(&commands), ["0b7c6f1e-uid-app-0"]);
    assert!(
        world.persisted >= 1,
        "the run is recorded before it is created"
    );
    let status = world.status();
    assert_eq!(status.phase, PodPhase::Running);
    assert!(status.containers[0].ready);
    assert!(status.ready());
    assert_eq!(
        status.containers[0].image_id,
        "registry.local/app:1@sha256:ab"
    );
}

#[test]
fn init_containers_run_one_at_a_time_before_the_containers() {
    let mut spec = pod(vec![container("app")]);
    spec.init_containers = vec![container("migrate"), container("seed")];
    let mut world = World::new(spec);
    assert_eq!(runs(&world.settle()), ["0b7c6f1e-uid-migrate-0"]);
    assert_eq!(world.status().phase, PodPhase::Pending);
    assert_eq!(world.waiting_reason(0), "PodInitializing");
    world.exit("0b7c6f1e-uid-migrate-0", 0);
    assert_eq!(runs(&world.settle()), ["0b7c6f1e-uid-seed-0"]);
    world.exit("0b7c6f1e-uid-seed-0", 0);
    assert_eq!(runs(&world.settle()), ["0b7c6f1e-uid-app-0"]);
    let status = world.status();
    assert_eq!(status.phase, PodPhase::Running);
    assert!(
        matches!(&status.init_containers[0].state, ContainerState::Terminated(t) if t.reason == "Completed")
    );
}

#[test]
fn a_failing_init_container_is_retried_with_backoff_and_fails_the_pod_under_never() {
    let mut spec = pod(vec![container("app")]);
    spec.init_containers = vec![container("migrate")];
    let mut world = World::new(spec.clone());
    world.settle();
    world.exit("0b7c6f1e-uid-migrate-0", 2);
    assert!(runs(&world.settle()).is_empty(), "backoff first");
    world.advance(10_000);
    assert_eq!(runs(&world.settle()), ["0b7c6f1e-uid-migrate-1"]);

    spec.restart_policy = RestartPolicy::Never;
    let mut world = World::new(spec);
    world.settle();
    world.exit("0b7c6f1e-uid-migrate-0", 2);
    let commands = world.settle();
    assert!(runs(&commands).is_empty(), "{commands:?}");
    assert!(commands.contains(&Command::TeardownSandbox));
    assert_eq!(world.status().phase, PodPhase::Failed);
    assert!(world.state.record.finished);
}

#[test]
fn a_crashing_container_restarts_with_doubling_backoff() {
    let mut world = World::new(pod(vec![container("app")]));
    world.settle();
    world.exit("0b7c6f1e-uid-app-0", 1);
    let commands = world.settle();
    assert!(commands.contains(&Command::Remove {
        id: "0b7c6f1e-uid-app-0".into()
    }));
    assert!(runs(&commands).is_empty());
    assert_eq!(world.waiting_reason(0), "CrashLoopBackOff");
    assert_eq!(world.status().containers[0].restart_count, 1);
    assert_eq!(
        world.state.step(&world.spec, world.now).wake_at_ms,
        Some(world.now + 10_000)
    );
    world.advance(9_999);
    assert!(runs(&world.settle()).is_empty());
    world.advance(1);
    assert_eq!(runs(&world.settle()), ["0b7c6f1e-uid-app-1"]);
    world.exit("0b7c6f1e-uid-app-1", 1);
    world.settle();
    world.advance(19_999);
    assert!(runs(&world.settle()).is_empty(), "the second delay is 20 s");
    world.advance(1);
    assert_eq!(runs(&world.settle()), ["0b7c6f1e-uid-app-2"]);
    let last = world.status().containers[0]
        .last_termination
        .clone()
        .expect("last termination");
    assert_eq!((last.exit_code, last.reason.as_str()), (1, "Error"));
}

#[test]
fn restart_policies_decide_what_runs_again() {
    for (policy, code, restarts, phase) in [
        (RestartPolicy::OnFailure, 0, false, PodPhase::Succeeded),
        (RestartPolicy::OnFailure, 3, true, PodPhase::Running),
        (RestartPolicy::Never, 3, false, PodPhase::Failed),
        (RestartPolicy::Never, 0, false, PodPhase::Succeeded),
        (RestartPolicy::Always, 0, true, PodPhase::Running),
    ] {
        let mut spec = pod(vec![container("job")]);
        spec.restart_policy = policy;
        let mut world = World::new(spec);
        world.settle();
        world.exit("0b7c6f1e-uid-job-0", code);
        world.settle();
        world.advance(10_000);
        let again = !runs(&world.settle()).is_empty();
        assert_eq!(again, restarts, "{policy:?} exit {code}");
        assert_eq!(world.status().phase, phase, "{policy:?} exit {code}");
    }
}

#[test]
fn an_oom_kill_is_reported_as_oomkilled() {
    let mut world = World::new(pod(vec![container("app")]));
    world.settle();
    world.state.apply(
        &world.spec.clone(),
        Event::Exited {
            id: "0b7c6f1e-uid-app-0".into(),
            code: 137,
            oom_killed: true,
            finished_at_ms: world.now,
        },
        world.now,
    );
    let last = world.status().containers[0]
        .last_termination
        .clone()
        .expect("terminated");
    assert_eq!((last.exit_code, last.reason.as_str()), (137, "OOMKilled"));
}

#[test]
fn a_failing_liveness_probe_stops_the_container_with_grace_and_restarts_it() {
    let mut app = container("app");
    app.liveness = Some(probe(3));
    let mut world = World::new(pod(vec![app]));
    world.settle();
    world
        .probe_ok
        .insert(("app".into(), ProbeKind::Liveness), false);
    let mut signals = Vec::new();
    // The first probe (at start) succeeded; three failures follow.
    world.advance(10_000);
    for _ in 0..3 {
        for command in world.settle() {
            if let Command::Signal { signal, .. } = command {
                signals.push(signal);
            }
        }
        world.advance(10_000);
    }
    assert_eq!(signals, [SIGTERM], "stopped after the third failure");
    // The container ignores SIGTERM: SIGKILL at the end of the grace period.
    world.advance(30_000);
    let kill: Vec<Command> = world.settle();
    assert!(
        kill.contains(&Command::Signal {
            id: "0b7c6f1e-uid-app-0".into(),
            signal: SIGKILL
        }),
        "{kill:?}"
    );
    world.exit("0b7c6f1e-uid-app-0", 137);
    let last = world.status().containers[0]
        .last_termination
        .clone()
        .expect("terminated");
    assert!(
        last.message.contains("failed liveness probe"),
        "{}",
        last.message
    );
    world.advance(10_000);
    assert_eq!(runs(&world.settle()), ["0b7c6f1e-uid-app-1"]);
}

#[test]
fn readiness_is_reported_from_the_probe() {
    let mut app = container("app");
    app.readiness = Some(probe(1));
    let mut world = World::new(pod(vec![app]));
    world
        .probe_ok
        .insert(("app".into(), ProbeKind::Readiness), false);
    world.settle();
    assert!(!world.status().containers[0].ready);
    world
        .probe_ok
        .insert(("app".into(), ProbeKind::Readiness), true);
    world.advance(10_000);
    world.settle();
    assert!(world.status().containers[0].ready);
    assert!(world.status().ready());
}

#[test]
fn liveness_waits_for_the_startup_probe() {
    let mut app = container("app");
    app.startup = Some(probe(30));
    app.liveness = Some(probe(1));
    let mut world = World::new(pod(vec![app]));
    world
        .probe_ok
        .insert(("app".into(), ProbeKind::Startup), false);
    world
        .probe_ok
        .insert(("app".into(), ProbeKind::Liveness), false);
    let commands = world.settle();
    let kinds: Vec<ProbeKind> = commands
        .iter()
        .filter_map(|c| match c {
            Command::Probe { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, [ProbeKind::Startup]);
    assert!(!world.status().containers[0].started);
}

#[test]
fn termination_stops_containers_before_sidecars_then_removes_the_sandbox() {
    let mut spec = pod(vec![container("app")]);
    let mut proxy = container("proxy");
    proxy.sidecar = true;
    spec.init_containers = vec![proxy];
    let mut world = World::new(spec);
    let started = runs(&world.settle());
    assert_eq!(
        started,
        ["0b7c6f1e-uid-proxy-0", "0b7c6f1e-uid-app-0"],
        "the sidecar does not block the app"
    );
    assert!(world.state.terminate(5, world.now));
    let first = world.settle();
    assert_eq!(
        first,
        [Command::Signal {
            id: "0b7c6f1e-uid-app-0".into(),
            signal: SIGTERM
        }]
    );
    world.exit("0b7c6f1e-uid-app-0", 143);
    let second = world.settle();
    assert!(
        second.contains(&Command::Signal {
            id: "0b7c6f1e-uid-proxy-0".into(),
            signal: SIGTERM
        }),
        "{second:?}"
    );
    world.advance(5_000);
    assert!(world.settle().contains(&Command::Signal {
        id: "0b7c6f1e-uid-proxy-0".into(),
        signal: SIGKILL
    }));
    world.exit("0b7c6f1e-uid-proxy-0", 137);
    let last = world.settle();
    assert!(last.contains(&Command::TeardownSandbox), "{last:?}");
    assert!(world.state.record.finished);
    assert!(
        runs(&world.log).len() == 2,
        "nothing restarted while terminating"
    );
}

#[test]
fn an_adopted_pod_keeps_its_running_container_and_starts_no_duplicate() {
    let spec = pod(vec![container("app")]);
    let mut world = World::new(spec.clone());
    world.settle();
    world.exit("0b7c6f1e-uid-app-0", 1);
    world.advance(10_000);
    world.settle();
    // The agent restarts: only the record survives.
    let record = world.state.record.clone();
    let mut state = PodState::adopt(record, &spec);
    assert_eq!(state.run_ids().collect::<Vec<_>>(), ["0b7c6f1e-uid-app-1"]);
    state.apply(
        &spec,
        Event::Running {
            id: "0b7c6f1e-uid-app-1".into(),
        },
        world.now,
    );
    state.apply(&spec, Event::SandboxReady, world.now);
    let step = state.step(&spec, world.now);
    assert!(runs(&step.commands).is_empty(), "{:?}", step.commands);
    let status = state.status(&spec, world.now);
    assert_eq!(status.containers[0].restart_count, 1);
    assert!(matches!(
        status.containers[0].state,
        ContainerState::Running { .. }
    ));
}

#[test]
fn a_run_that_was_never_created_is_created_again_under_its_id() {
    let spec = pod(vec![container("app")]);
    let mut state = PodState::new(&spec, T0);
    state.apply(&spec, Event::SandboxReady, T0);
    state.apply(
        &spec,
        Event::Pulled {
            container: "app".into(),
            image_id: "x".into(),
        },
        T0,
    );
    let first = state.step(&spec, T0);
    assert_eq!(runs(&first.commands), ["0b7c6f1e-uid-app-0"]);
    // Crash before the runtime created it: the restarted agent finds nothing.
    let mut state = PodState::adopt(state.record.clone(), &spec);
    state.apply(
        &spec,
        Event::Missing {
            id: "0b7c6f1e-uid-app-0".into(),
        },
        T0,
    );
    state.apply(&spec, Event::SandboxReady, T0);
    state.apply(
        &spec,
        Event::Pulled {
            container: "app".into(),
            image_id: "x".into(),
        },
        T0,
    );
    assert_eq!(
        runs(&state.step(&spec, T0).commands),
        ["0b7c6f1e-uid-app-0"]
    );
    assert_eq!(state.record.containers[0].restart_count, 0);
}

#[test]
fn a_started_run_the_runtime_lost_counts_as_terminated_unknown() {
    let spec = pod(vec![container("app")]);
    let mut world = World::new(spec.clone());
    world.settle();
    let mut state = PodState::adopt(world.state.record.clone(), &spec);
    state.apply(
        &spec,
        Event::Missing {
            id: "0b7c6f1e-uid-app-0".into(),
        },
        world.now,
    );
    let last = state.record.containers[0]
        .last_termination
        .clone()
        .expect("terminated");
    assert_eq!(last.reason, "ContainerStatusUnknown");
    assert_eq!(state.record.containers[0].restart_count, 1);
}

#[test]
fn a_failed_pull_shows_errimagepull_then_backs_off() {
    let mut world = World::new(pod(vec![container("app")]));
    let step = world.state.step(&world.spec, world.now);
    assert_eq!(step.commands, [Command::PrepareSandbox]);
    world
        .state
        .apply(&world.spec.clone(), Event::SandboxReady, world.now);
    let step = world.state.step(&world.spec, world.now);
    assert!(matches!(&step.commands[..], [Command::Pull { .. }]));
    world.state.apply(
        &world.spec.clone(),
        Event::PullFailed {
            container: "app".into(),
            reason: "ErrImagePull".into(),
            message: "manifest unknown: manifest unknown".into(),
        },
        world.now,
    );
    let status = world.status();
    assert!(matches!(&status.containers[0].state,
        ContainerState::Waiting { reason, message } if reason == "ErrImagePull" && message.contains("manifest unknown")));
    world.advance(5_000);
    assert_eq!(world.waiting_reason(0), "ImagePullBackOff");
    assert!(world.state.step(&world.spec, world.now).commands.is_empty());
    world.advance(5_000);
    let retry = world.state.step(&world.spec, world.now);
    assert!(
        matches!(&retry.commands[..], [Command::Pull { .. }]),
        "{retry:?}"
    );
}

#[test]
fn a_new_image_replaces_the_run_without_backoff() {
    let mut world = World::new(pod(vec![container("app")]));
    world.settle();
    world.spec.containers[0].image = "registry.local/app:2".into();
    let commands = world.settle();
    assert_eq!(
        commands,
        [Command::Signal {
            id: "0b7c6f1e-uid-app-0".into(),
            signal: SIGTERM
        }]
    );
    world.exit("0b7c6f1e-uid-app-0", 143);
    let commands = world.settle();
    assert!(
        commands
            .iter()
            .any(|c| matches!(c, Command::Pull { image, .. } if image == "registry.local/app:2"))
    );
    assert_eq!(runs(&commands), ["0b7c6f1e-uid-app-1"]);
}

#[test]
fn a_run_that_fails_to_create_reports_the_reason_and_retries_later() {
    let mut world = World::new(pod(vec![container("app")]));
    world
        .state
        .apply(&world.spec.clone(), Event::SandboxReady, world.now);
    world.state.apply(
        &world.spec.clone(),
        Event::Pulled {
            container: "app".into(),
            image_id: "x".into(),
        },
        world.now,
    );
    let step = world.state.step(&world.spec, world.now);
    let id = runs(&step.commands).remove(0);
    world.state.apply(
        &world.spec.clone(),
        Event::RunFailed {
            id: id.clone(),
            reason: "CreateContainerConfigError".into(),
            message: "container has runAsNonRoot and image will run as root".into(),
        },
        world.now,
    );
    assert_eq!(world.waiting_reason(0), "CreateContainerConfigError");
    let step = world.state.step(&world.spec, world.now);
    assert_eq!(
        step.commands,
        [Command::Remove { id }],
        "the half-made run is cleaned up, no retry yet"
    );
    world.advance(10_000);
    world.state.apply(
        &world.spec.clone(),
        Event::Removed {
            id: "0b7c6f1e-uid-app-0".into(),
        },
        world.now,
    );
    assert_eq!(
        runs(&world.state.step(&world.spec, world.now).commands),
        ["0b7c6f1e-uid-app-1"]
    );
}

#[test]
fn a_command_taken_back_is_handed_out_again() {
    let spec = pod(vec![container("app")]);
    let mut state = PodState::new(&spec, T0);
    state.apply(&spec, Event::SandboxReady, T0);
    let first = state.step(&spec, T0);
    assert!(matches!(&first.commands[..], [Command::Pull { .. }]));
    assert!(state.step(&spec, T0).commands.is_empty(), "in flight");
    state.release(&spec, &first.commands[0], T0);
    assert_eq!(state.step(&spec, T0).commands, first.commands);
}

#[test]
fn a_failed_removal_or_teardown_is_asked_for_again() {
    let mut world = World::new(pod(vec![container("app")]));
    world.settle();
    world.exit("0b7c6f1e-uid-app-0", 1);
    let step = world.state.step(&world.spec, world.now);
    let remove = Command::Remove {
        id: "0b7c6f1e-uid-app-0".into(),
    };
    assert!(step.commands.contains(&remove));
    world.state.apply(
        &world.spec.clone(),
        Event::RemoveFailed {
            id: "0b7c6f1e-uid-app-0".into(),
        },
        world.now,
    );
    assert!(
        world
            .state
            .step(&world.spec, world.now)
            .commands
            .contains(&remove)
    );

    world.state.apply(
        &world.spec.clone(),
        Event::Removed {
            id: "0b7c6f1e-uid-app-0".into(),
        },
        world.now,
    );
    world.state.terminate(0, world.now);
    let step = world.state.step(&world.spec, world.now);
    assert!(
        step.commands.contains(&Command::TeardownSandbox),
        "{step:?}"
    );
    world.state.apply(
        &world.spec.clone(),
        Event::SandboxFailed {
            message: "busy".into(),
        },
        world.now,
    );
    let again = world.state.step(&world.spec, world.now);
    assert!(
        again.commands.contains(&Command::TeardownSandbox),
        "{again:?}"
    );
}
