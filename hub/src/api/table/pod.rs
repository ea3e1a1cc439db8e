//! The row of a Pod: `printPod` in printers.go, the logic behind kubectl's
//! READY, STATUS and RESTARTS columns.

use std::collections::BTreeMap;
use std::time::SystemTime;

use flotilla_shared::model::{
    Container, ContainerStatus, Pod, condition_status, pod_condition, pod_phase,
};
use serde_json::{Value, json};

use super::Row;
use super::format::{instant, or_none, since};
use crate::api::time::age;

/// `node.NodeUnreachablePodReason`: the status reason of a pod on a lost node.
const NODE_LOST: &str = "NodeLost";
/// `corev1.PodReasonSchedulingGated`.
const SCHEDULING_GATED: &str = "SchedulingGated";

pub fn row(pod: &Pod, now: SystemTime) -> Row {
    let summary = Summary::of(pod);
    let restarts = match summary.last_restart {
        Some(at) if summary.restarts != 0 => {
            format!("{} ({} ago)", summary.restarts, since(at, now))
        }
        _ => summary.restarts.to_string(),
    };
    let status = &pod.status;
    let pod_ip = status
        .pod_ips
        .first()
        .map(|ip| ip.ip.as_str())
        .unwrap_or(&status.pod_ip);
    let cells = vec![
        json!(pod.metadata.name),
        json!(format!("{}/{}", summary.ready, summary.total)),
        json!(summary.reason),
        json!(restarts),
        json!(age(pod.metadata.creation_timestamp.as_ref(), now)),
        json!(or_none(pod_ip)),
        json!(or_none(&pod.spec.node_name)),
        json!(or_none(&status.nominated_node_name)),
        json!(readiness_gates(pod)),
    ];
    Row {
        cells,
        conditions: completion_conditions(&status.phase),
    }
}

/// `podSuccessConditions` / `podFailedConditions`: the row condition that
/// marks a finished pod.
fn completion_conditions(phase: &str) -> Vec<Value> {
    let message = match phase {
        pod_phase::SUCCEEDED => "The pod has completed successfully.",
        pod_phase::FAILED => "The pod failed.",
        _ => return Vec::new(),
    };
    vec![json!({
        "type": "Completed",
        "status": "True",
        "reason": phase,
        "message": message,
    })]
}

/// The READINESS GATES cell: how many of the gates' conditions are true.
fn readiness_gates(pod: &Pod) -> String {
    let gates = &pod.spec.readiness_gates;
    if gates.is_empty() {
        return "<none>".to_owned();
    }
    let met = gates
        .iter()
        .filter(|gate| {
            pod.status
                .condition(&gate.condition_type)
                .is_some_and(|c| c.status == condition_status::TRUE)
        })
        .count();
    format!("{met}/{}", gates.len())
}

/// What `printPod` works out from the container statuses.
#[derive(Debug, PartialEq, Eq)]
struct Summary {
    ready: usize,
    total: usize,
    reason: String,
    restarts: i64,
    last_restart: Option<SystemTime>,
}

impl Summary {
    fn of(pod: &Pod) -> Summary {
        let status = &pod.status;
        let init_containers: BTreeMap<&str, &Container> = pod
            .spec
            .init_containers
            .iter()
            .map(|c| (c.name.as_str(), c))
            .collect();
        let is_sidecar = |name: &str| init_containers.get(name).is_some_and(|c| c.is_sidecar());
        let mut summary = Summary {
            ready: 0,
            total: pod.spec.containers.len()
                + pod
                    .spec
                    .init_containers
                    .iter()
                    .filter(|c| c.is_sidecar())
                    .count(),
            reason: if status.reason.is_empty() {
                status.phase.clone()
            } else {
                status.reason.clone()
            },
            restarts: 0,
            last_restart: None,
        };
        if status
            .conditions
            .iter()
            .any(|c| c.type_ == pod_condition::POD_SCHEDULED && c.reason == SCHEDULING_GATED)
        {
            summary.reason = SCHEDULING_GATED.to_owned();
        }

        let mut sidecar_restarts = 0;
        let mut sidecar_last_restart = None;
        let mut initializing = false;
        for (i, container) in status.init_container_statuses.iter().enumerate() {
            summary.restarts += i64::from(container.restart_count);
            let terminated_at = last_termination(container);
            summary.last_restart = summary.last_restart.max(terminated_at);
            let sidecar = is_sidecar(&container.name);
            if sidecar {
                sidecar_restarts += i64::from(container.restart_count);
                sidecar_last_restart = sidecar_last_restart.max(terminated_at);
            }
            let state = &container.state;
            if state.terminated.as_ref().is_some_and(|t| t.exit_code == 0) {
                continue;
            }
            if sidecar && container.started == Some(true) {
                if container.ready {
                    summary.ready += 1;
                }
                continue;
            }
            summary.reason = if let Some(terminated) = &state.terminated {
                if !terminated.reason.is_empty() {
                    format!("Init:{}", terminated.reason)
                } else if terminated.signal != 0 {
                    format!("Init:Signal:{}", terminated.signal)
                } else {
                    format!("Init:ExitCode:{}", terminated.exit_code)
                }
            } else if let Some(waiting) = state
                .waiting
                .as_ref()
                .filter(|w| !w.reason.is_empty() && w.reason != "PodInitializing")
            {
                format!("Init:{}", waiting.reason)
            } else {
                format!("Init:{i}/{}", pod.spec.init_containers.len())
            };
            initializing = true;
            break;
        }

        let initialized = status
            .condition(pod_condition::INITIALIZED)
            .is_some_and(|c| c.status == condition_status::TRUE);
        if !initializing || initialized {
            summary.restarts = sidecar_restarts;
            summary.last_restart = sidecar_last_restart;
            let mut has_running = false;
            for container in status.container_statuses.iter().rev() {
                summary.restarts += i64::from(container.restart_count);
                summary.last_restart = summary.last_restart.max(last_termination(container));
                let state = &container.state;
                let waiting = state.waiting.as_ref().filter(|w| !w.reason.is_empty());
                if let Some(waiting) = waiting {
                    summary.reason = waiting.reason.clone();
                } else if let Some(terminated) = &state.terminated {
                    summary.reason = if !terminated.reason.is_empty() {
                        terminated.reason.clone()
                    } else if terminated.signal != 0 {
                        format!("Signal:{}", terminated.signal)
                    } else {
                        format!("ExitCode:{}", terminated.exit_code)
                    };
                } else if container.ready && state.running.is_some() {
                    has_running = true;
                    summary.ready += 1;
                }
            }
            // A pod whose last container completed while another still runs
            // is not "Completed".
            if summary.reason == "Completed" && has_running {
                summary.reason = if pod.is_ready() {
                    pod_phase::RUNNING.to_owned()
                } else {
                    "NotReady".to_owned()
                };
            }
        }

        if pod.metadata.deletion_timestamp.is_some() {
            if status.reason == NODE_LOST {
                summary.reason = pod_phase::UNKNOWN.to_owned();
            } else if !pod.is_terminal() {
                summary.reason = "Terminating".to_owned();
            }
        }
        summary
    }
}

/// When the container's previous run ended, if it ended.
fn last_termination(container: &ContainerStatus) -> Option<SystemTime> {
    let terminated = container.last_state.terminated.as_ref()?;
    instant(terminated.finished_at.as_ref().map(|t| t.0.as_str()))
}

#[cfg(test)]
mod tests {
    use flotilla_shared::model::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
        PodCondition, PodIp, PodReadinessGate, Time,
    };

    use super::*;
    use crate::api::time::parse_time;

    const NOW: &str = "2026-11-21T12:00:00Z";

    fn now() -> SystemTime {
        parse_time(NOW).expect("valid")
    }

    fn time(text: &str) -> Option<Time> {
        Some(Time(text.to_owned()))
    }

    fn container(name: &str) -> Container {
        Container {
            name: name.into(),
            image: format!("registry.local/{name}:1"),
            ..Container::default()
        }
    }

    fn sidecar(name: &str) -> Container {
        Container {
            restart_policy: Some("Always".into()),
            ..container(name)
        }
    }

    fn running(name: &str, ready: bool) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            ready,
            started: Some(true),
            state: ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: time("2026-11-21T11:00:00Z"),
                }),
                ..ContainerState::default()
            },
            ..ContainerStatus::default()
        }
    }

    fn waiting(name: &str, reason: &str) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: reason.into(),
                    message: String::new(),
                }),
                ..ContainerState::default()
            },
            ..ContainerStatus::default()
        }
    }

    fn terminated(name: &str, exit_code: i32, signal: i32, reason: &str) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code,
                    signal,
                    reason: reason.into(),
                    finished_at: time("2026-11-21T11:30:00Z"),
                    ..ContainerStateTerminated::default()
                }),
                ..ContainerState::default()
            },
            ..ContainerStatus::default()
        }
    }

    /// `status` after `restarts` restarts, the last one ended at `finished_at`.
    fn restarted(mut status: ContainerStatus, restarts: i32, finished_at: &str) -> ContainerStatus {
        status.restart_count = restarts;
        status.last_state.terminated = Some(ContainerStateTerminated {
            exit_code: 1,
            reason: "Error".into(),
            finished_at: time(finished_at),
            ..ContainerStateTerminated::default()
        });
        status
    }

    fn condition(type_: &str, status: &str) -> PodCondition {
        PodCondition {
            type_: type_.into(),
            status: status.into(),
            ..PodCondition::default()
        }
    }

    fn pod(name: &str, phase: &str, containers: &[&str]) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = name.into();
        pod.metadata.namespace = "edge".into();
        pod.metadata.creation_timestamp = time("2026-11-21T09:00:00Z");
        pod.spec.containers = containers.iter().map(|c| container(c)).collect();
        pod.status.phase = phase.into();
        pod
    }

    fn cells(pod: &Pod) -> Vec<Value> {
        row(pod, now()).cells
    }

    #[test]
    fn pod_cells_match_kubectl() {
        let mut two_ready = pod("web", "Running", &["web", "log"]);
        two_ready.spec.node_name = "pi-1".into();
        two_ready.status.pod_ips = vec![PodIp {
            ip: "10.42.0.7".into(),
        }];
        two_ready.status.conditions = vec![condition("Ready", "True")];
        two_ready.status.container_statuses = vec![
            restarted(running("web", true), 3, "2026-11-21T11:55:00Z"),
            running("log", true),
        ];

        let mut crash_loop = pod("crasher", "Running", &["app"]);
        crash_loop.status.container_statuses = vec![restarted(
            waiting("app", "CrashLoopBackOff"),
            7,
            "2026-11-21T11:59:30Z",
        )];

        let pending = pod("pending", "Pending", &["app"]);

        let mut unscheduled = pod("gated", "Pending", &["app"]);
        unscheduled.status.conditions = vec![PodCondition {
            reason: "SchedulingGated".into(),
            ..condition("PodScheduled", "False")
        }];

        let mut init_running = pod("init", "Pending", &["app"]);
        init_running.spec.init_containers = vec![container("migrate"), container("seed")];
        init_running.status.init_container_statuses = vec![
            terminated("migrate", 0, 0, "Completed"),
            running("seed", false),
        ];
        init_running.status.container_statuses = vec![waiting("app", "PodInitializing")];

        let mut init_failed = pod("init-failed", "Pending", &["app"]);
        init_failed.spec.init_containers = vec![container("migrate")];
        init_failed.status.init_container_statuses = vec![restarted(
            terminated("migrate", 2, 0, ""),
            1,
            "2026-11-21T11:00:00Z",
        )];

        let mut init_killed = pod("init-killed", "Pending", &["app"]);
        init_killed.spec.init_containers = vec![container("migrate")];
        init_killed.status.init_container_statuses = vec![terminated("migrate", 137, 9, "")];

        let mut init_backoff = pod("init-backoff", "Pending", &["app"]);
        init_backoff.spec.init_containers = vec![container("migrate")];
        init_backoff.status.init_container_statuses = vec![waiting("migrate", "ImagePullBackOff")];

        let mut with_sidecar = pod("sidecar", "Running", &["app"]);
        with_sidecar.spec.init_containers = vec![container("migrate"), sidecar("proxy")];
        with_sidecar.status.conditions = vec![condition("Initialized", "True")];
        with_sidecar.status.init_container_statuses = vec![
            restarted(
                terminated("migrate", 0, 0, "Completed"),
                4,
                "2026-11-21T11:00:00Z",
            ),
            restarted(running("proxy", true), 1, "2026-11-21T11:40:00Z"),
        ];
        with_sidecar.status.container_statuses = vec![running("app", true)];

        let mut terminating = pod("leaving", "Running", &["app"]);
        terminating.metadata.deletion_timestamp = time("2026-11-21T11:59:00Z");
        terminating.status.container_statuses = vec![running("app", true)];

        let mut node_lost = pod("lost", "Running", &["app"]);
        node_lost.metadata.deletion_timestamp = time("2026-11-21T11:59:00Z");
        node_lost.status.reason = "NodeLost".into();

        let mut deleted_after_success = pod("done-deleted", "Succeeded", &["app"]);
        deleted_after_success.metadata.deletion_timestamp = time("2026-11-21T11:59:00Z");
        deleted_after_success.status.container_statuses =
            vec![terminated("app", 0, 0, "Completed")];

        let mut completed = pod("job-x7k2p", "Succeeded", &["job"]);
        completed.status.container_statuses = vec![terminated("job", 0, 0, "Completed")];

        let mut oom = pod("oom", "Running", &["app"]);
        oom.status.container_statuses = vec![terminated("app", 137, 0, "OOMKilled")];

        let mut signalled = pod("signalled", "Failed", &["app"]);
        signalled.status.container_statuses = vec![terminated("app", 0, 15, "")];

        let mut exited = pod("exited", "Failed", &["app"]);
        exited.status.container_statuses = vec![terminated("app", 3, 0, "")];

        let mut partly_completed = pod("partly", "Running", &["a", "b"]);
        partly_completed.status.container_statuses =
            vec![running("a", true), terminated("b", 0, 0, "Completed")];
        let mut partly_completed_ready = partly_completed.clone();
        partly_completed_ready.metadata.name = "partly-ready".into();
        partly_completed_ready.status.conditions = vec![condition("Ready", "True")];

        let mut evicted = pod("evicted", "Failed", &["app"]);
        evicted.status.reason = "Evicted".into();

        let mut gates = pod("gated-ready", "Running", &["app"]);
        gates.spec.readiness_gates = vec![
            PodReadinessGate {
                condition_type: "example.com/lb".into(),
            },
            PodReadinessGate {
                condition_type: "example.com/dns".into(),
            },
        ];
        gates.status.conditions = vec![
            condition("example.com/lb", "True"),
            condition("example.com/dns", "False"),
        ];
        gates.status.nominated_node_name = "pi-2".into();
        gates.status.pod_ip = "10.42.0.9".into();

        let cases: &[(&Pod, Value)] = &[
            (
                &two_ready,
                json!([
                    "web",
                    "2/2",
                    "Running",
                    "3 (5m ago)",
                    "3h",
                    "10.42.0.7",
                    "pi-1",
                    "<none>",
                    "<none>"
                ]),
            ),
            (
                &crash_loop,
                json!([
                    "crasher",
                    "0/1",
                    "CrashLoopBackOff",
                    "7 (30s ago)",
                    "3h",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
            (
                &pending,
                json!([
                    "pending", "0/1", "Pending", "0", "3h", "<none>", "<none>", "<none>", "<none>"
                ]),
            ),
            (
                &unscheduled,
                json!([
                    "gated",
                    "0/1",
                    "SchedulingGated",
                    "0",
                    "3h",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
            (
                &init_running,
                json!([
                    "init", "0/1", "Init:1/2", "0", "3h", "<none>", "<none>", "<none>", "<none>"
                ]),
            ),
            (
                &init_failed,
                json!([
                    "init-failed",
                    "0/1",
                    "Init:ExitCode:2",
                    "1 (60m ago)",
                    "3h",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
            (
                &init_killed,
                json!([
                    "init-killed",
                    "0/1",
                    "Init:Signal:9",
                    "0",
                    "3h",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
            (
                &init_backoff,
                json!([
                    "init-backoff",
                    "0/1",
                    "Init:ImagePullBackOff",
                    "0",
                    "3h",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
            (
                // Only the sidecar's restarts count once the pod is initialized.
                &with_sidecar,
                json!([
                    "sidecar",
                    "2/2",
                    "Running",
                    "1 (20m ago)",
                    "3h",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
            (
                &terminating,
                json!([
                    "leaving",
                    "1/1",
                    "Terminating",
                    "0",
                    "3h",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
            (
                &node_lost,
                json!([
                    "lost", "0/1", "Unknown", "0", "3h", "<none>", "<none>", "<none>", "<none>"
                ]),
            ),
            (
                &deleted_after_success,
                json!([
                    "done-deleted",
                    "0/1",
                    "Completed",
                    "0",
                    "3h",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
            (
                &completed,
                json!([
                    "job-x7k2p",
                    "0/1",
                    "Completed",
                    "0",
                    "3h",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
            (
                &oom,
                json!([
                    "oom",
                    "0/1",
                    "OOMKilled",
                    "0",
                    "3h",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
            (
                &signalled,
                json!([
                    "signalled",
                    "0/1",
                    "Signal:15",
                    "0",
                    "3h",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
            (
                &exited,
                json!([
                    "exited",
                    "0/1",
                    "ExitCode:3",
                    "0",
                    "3h",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
            (
                &partly_completed,
                json!([
                    "partly", "1/2", "NotReady", "0", "3h", "<none>", "<none>", "<none>", "<none>"
                ]),
            ),
            (
                &partly_completed_ready,
                json!([
                    "partly-ready",
                    "1/2",
                    "Running",
                    "0",
                    "3h",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
            (
                &evicted,
                json!([
                    "evicted", "0/1", "Evicted", "0", "3h", "<none>", "<none>", "<none>", "<none>"
                ]),
            ),
            (
                &gates,
                json!([
                    "gated-ready",
                    "0/1",
                    "Running",
                    "0",
                    "3h",
                    "10.42.0.9",
                    "<none>",
                    "pi-2",
                    "1/2"
                ]),
            ),
        ];
        for (pod, want) in cases {
            assert_eq!(Value::Array(cells(pod)), *want, "{}", pod.metadata.name);
        }
    }

    #[test]
    fn restarts_without_a_recorded_end_have_no_age() {
        let mut pod = pod("web", "Running", &["web"]);
        let mut status = running("web", true);
        status.restart_count = 2;
        pod.status.container_statuses = vec![status];
        assert_eq!(cells(&pod)[3], json!("2"));
    }

    #[test]
    fn finished_pods_carry_a_completed_row_condition() {
        let cases = [
            (
                "Succeeded",
                vec![
                    json!({"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}),
                ],
            ),
            (
                "Failed",
                vec![
                    json!({"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}),
                ],
            ),
            ("Running", vec![]),
            ("Pending", vec![]),
        ];
        for (phase, want) in cases {
            assert_eq!(
                row(&pod("p", phase, &["app"]), now()).conditions,
                want,
                "{phase}"
            );
        }
    }

    #[test]
    fn a_pod_without_a_creation_time_has_an_unknown_age() {
        let mut pod = pod("p", "Pending", &["app"]);
        pod.metadata.creation_timestamp = None;
        assert_eq!(cells(&pod)[4], json!("<unknown>"));
    }
}
