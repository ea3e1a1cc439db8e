//! proptest strategies for every wire type (test-only), so round-trip tests
//! cover every variant and field.

use std::collections::BTreeMap;

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;

use super::*;

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,6}"
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..24)
}

fn texts() -> impl Strategy<Value = Vec<String>> {
    vec(text(), 0..3)
}

fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    btree_map(text(), text(), 0..3)
}

pub(super) fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        desired_state().prop_map(Message::DesiredState),
        heartbeat().prop_map(Message::Heartbeat),
        pod_status_update().prop_map(Message::PodStatusUpdate),
        node_registration().prop_map(Message::NodeRegistration),
        log_request().prop_map(Message::LogRequest),
        log_chunk().prop_map(Message::LogChunk),
        enroll_request().prop_map(Message::EnrollRequest),
        enroll_response().prop_map(Message::EnrollResponse),
        (text(), any::<u64>())
            .prop_map(|(node, session)| Message::Offline(Offline { node, session })),
        any::<u64>().prop_map(|request_id| Message::LogCancel(LogCancel { request_id })),
    ]
}

// --- desired state ---

fn desired_state() -> impl Strategy<Value = DesiredState> {
    (text(), any::<u64>(), vec(pod(), 0..3), vec(service(), 0..3)).prop_map(
        |(node, revision, pods, services)| DesiredState {
            node,
            revision,
            pods,
            services,
        },
    )
}

fn pod() -> impl Strategy<Value = Pod> {
    (
        (text(), text(), text(), labels()),
        vec(container(), 0..2),
        vec(container(), 0..3),
        vec(volume(), 0..3),
        restart_policy(),
        any::<u32>(),
        option::of(any::<u32>()),
        any::<bool>(),
        (option::of(any::<u32>()), vec(any::<u32>(), 0..3)),
    )
        .prop_map(
            |(
                (uid, namespace, name, labels),
                init_containers,
                containers,
                volumes,
                restart_policy,
                termination_grace_period_seconds,
                deletion_grace_period_seconds,
                host_network,
                (fs_group, supplemental_groups),
            )| Pod {
                uid,
                namespace,
                name,
                labels,
                init_containers,
                containers,
                volumes,
                restart_policy,
                termination_grace_period_seconds,
                deletion_grace_period_seconds,
                host_network,
                security: PodSecurity {
                    fs_group,
                    supplemental_groups,
                },
            },
        )
}

fn restart_policy() -> impl Strategy<Value = RestartPolicy> {
    prop_oneof![
        Just(RestartPolicy::Always),
        Just(RestartPolicy::OnFailure),
        Just(RestartPolicy::Never),
    ]
}

fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![
        Just(Protocol::Tcp),
        Just(Protocol::Udp),
        Just(Protocol::Sctp)
    ]
}

fn container() -> impl Strategy<Value = Container> {
    (
        (text(), text(), pull_policy()),
        (texts(), texts(), text()),
        vec(env_var(), 0..3),
        vec(container_port(), 0..3),
        (resource_list(), resource_list()),
        (
            option::of(probe()),
            option::of(probe()),
            option::of(probe()),
        ),
        vec(volume_mount(), 0..3),
        (security_context(), any::<bool>()),
    )
        .prop_map(
            |(
                (name, image, pull_policy),
                (command, args, working_dir),
                env,
                ports,
                (requests, limits),
                (liveness, readiness, startup),
                volume_mounts,
                (security, sidecar),
            )| Container {
                name,
                image,
                pull_policy,
                command,
                args,
                working_dir,
                env,
                ports,
                resources: Resources { requests, limits },
                liveness,
                readiness,
                startup,
                volume_mounts,
                security,
                sidecar,
            },
        )
}

fn pull_policy() -> impl Strategy<Value = PullPolicy> {
    prop_oneof![
        Just(PullPolicy::Always),
        Just(PullPolicy::IfNotPresent),
        Just(PullPolicy::Never),
    ]
}

fn env_var() -> impl Strategy<Value = EnvVar> {
    (text(), text()).prop_map(|(name, value)| EnvVar { name, value })
}

fn container_port() -> impl Strategy<Value = ContainerPort> {
    (text(), any::<u16>(), protocol(), option::of(any::<u16>())).prop_map(
        |(name, port, protocol, host_port)| ContainerPort {
            name,
            port,
            protocol,
            host_port,
        },
    )
}

fn resource_list() -> impl Strategy<Value = ResourceList> {
    (
        option::of(any::<u64>()),
        option::of(any::<u64>()),
        option::of(any::<u32>()),
    )
        .prop_map(|(cpu_millis, memory_bytes, pids)| ResourceList {
            cpu_millis,
            memory_bytes,
            pids,
        })
}

fn probe() -> impl Strategy<Value = Probe> {
    (probe_action(), any::<[u32; 5]>()).prop_map(|(action, t)| Probe {
        action,
        initial_delay_seconds: t[0],
        period_seconds: t[1],
        timeout_seconds: t[2],
        success_threshold: t[3],
        failure_threshold: t[4],
    })
}

fn probe_action() -> impl Strategy<Value = ProbeAction> {
    let scheme = prop_oneof![Just(HttpScheme::Http), Just(HttpScheme::Https)];
    let header = (text(), text()).prop_map(|(name, value)| HttpHeader { name, value });
    prop_oneof![
        texts().prop_map(|command| ProbeAction::Exec { command }),
        (scheme, text(), any::<u16>(), text(), vec(header, 0..2)).prop_map(
            |(scheme, host, port, path, headers)| ProbeAction::HttpGet {
                scheme,
                host,
                port,
                path,
                headers,
            }
        ),
        (text(), any::<u16>()).prop_map(|(host, port)| ProbeAction::TcpSocket { host, port }),
    ]
}

fn volume_mount() -> impl Strategy<Value = VolumeMount> {
    (text(), text(), text(), any::<bool>()).prop_map(|(volume, mount_path, sub_path, read_only)| {
        VolumeMount {
            volume,
            mount_path,
            sub_path,
            read_only,
        }
    })
}

fn volume() -> impl Strategy<Value = Volume> {
    (text(), volume_source()).prop_map(|(name, source)| Volume { name, source })
}

fn volume_source() -> impl Strategy<Value = VolumeSource> {
    let medium = prop_oneof![Just(StorageMedium::Default), Just(StorageMedium::Memory)];
    let host_path_kind = prop_oneof![
        Just(HostPathKind::Unchecked),
        Just(HostPathKind::DirectoryOrCreate),
        Just(HostPathKind::Directory),
        Just(HostPathKind::FileOrCreate),
        Just(HostPathKind::File),
        Just(HostPathKind::Socket),
        Just(HostPathKind::CharDevice),
        Just(HostPathKind::BlockDevice),
    ];
    prop_oneof![
        (medium, option::of(any::<u64>())).prop_map(|(medium, size_limit_bytes)| {
            VolumeSource::EmptyDir {
                medium,
                size_limit_bytes,
            }
        }),
        (text(), host_path_kind).prop_map(|(path, kind)| VolumeSource::HostPath { path, kind }),
        file_set().prop_map(VolumeSource::ConfigMap),
        file_set().prop_map(VolumeSource::Secret),
    ]
}

fn file_set() -> impl Strategy<Value = FileSet> {
    let file = (text(), option::of(any::<u32>()), bytes())
        .prop_map(|(path, mode, data)| ProjectedFile { path, mode, data });
    (any::<u32>(), vec(file, 0..3)).prop_map(|(default_mode, files)| FileSet {
        default_mode,
        files,
    })
}

fn security_context() -> impl Strategy<Value = SecurityContext> {
    let seccomp = prop_oneof![
        Just(Seccomp::Unconfined),
        Just(Seccomp::RuntimeDefault),
        text().prop_map(|profile| Seccomp::Localhost { profile }),
    ];
    (
        option::of(any::<u32>()),
        option::of(any::<u32>()),
        (texts(), texts()),
        any::<[bool; 4]>(),
        seccomp,
    )
        .prop_map(
            |(run_as_user, run_as_group, (add, drop), flags, seccomp)| SecurityContext {
                run_as_user,
                run_as_group,
                run_as_non_root: flags[0],
                capabilities: Capabilities { add, drop },
                privileged: flags[1],
                read_only_root_filesystem: flags[2],
                allow_privilege_escalation: flags[3],
                seccomp,
            },
        )
}

fn service() -> impl Strategy<Value = Service> {
    let backend = (any::<std::net::IpAddr>(), any::<u16>())
        .prop_map(|(address, port)| Backend { address, port });
    let port = (text(), protocol(), any::<u16>(), vec(backend, 0..3)).prop_map(
        |(name, protocol, port, backends)| ServicePort {
            name,
            protocol,
            port,
            backends,
        },
    );
    (
        text(),
        text(),
        option::of(any::<std::net::IpAddr>()),
        vec(port, 0..3),
    )
        .prop_map(|(namespace, name, cluster_ip, ports)| Service {
            namespace,
            name,
            cluster_ip,
            ports,
        })
}

// --- device → hub ---

fn heartbeat() -> impl Strategy<Value = Heartbeat> {
    (
        text(),
        any::<u64>(),
        option::of(any::<u64>()),
        any::<u64>(),
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        option::of(any::<i32>()),
        any::<[bool; 3]>(),
    )
        .prop_map(
            |(
                node,
                seq,
                applied_revision,
                uptime_seconds,
                load_centi,
                memory_available_kib,
                disk_available_kib,
                pods_running,
                temperature_millicelsius,
                pressure,
            )| Heartbeat {
                node,
                seq,
                applied_revision,
                uptime_seconds,
                load_centi,
                memory_available_kib,
                disk_available_kib,
                pods_running,
                temperature_millicelsius,
                memory_pressure: pressure[0],
                disk_pressure: pressure[1],
                pid_pressure: pressure[2],
            },
        )
}

fn pod_status_update() -> impl Strategy<Value = PodStatusUpdate> {
    let phase = prop_oneof![
        Just(PodPhase::Pending),
        Just(PodPhase::Running),
        Just(PodPhase::Succeeded),
        Just(PodPhase::Failed),
        Just(PodPhase::Unknown),
    ];
    (
        (text(), text(), phase, text(), text()),
        option::of(any::<std::net::IpAddr>()),
        option::of(any::<u64>()),
        vec(container_status(), 0..2),
        vec(container_status(), 0..3),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(
                (node, pod_uid, phase, reason, message),
                pod_ip,
                start_time_ms,
                init_containers,
                containers,
                observed_revision,
                timestamp_ms,
            )| PodStatusUpdate {
                node,
                pod_uid,
                phase,
                reason,
                message,
                pod_ip,
                start_time_ms,
                init_containers,
                containers,
                observed_revision,
                timestamp_ms,
            },
        )
}

fn terminated() -> impl Strategy<Value = Terminated> {
    (any::<i32>(), text(), text(), any::<u64>(), any::<u64>()).prop_map(
        |(exit_code, reason, message, started_at_ms, finished_at_ms)| Terminated {
            exit_code,
            reason,
            message,
            started_at_ms,
            finished_at_ms,
        },
    )
}

fn container_status() -> impl Strategy<Value = ContainerStatus> {
    let state = prop_oneof![
        (text(), text()).prop_map(|(reason, message)| ContainerState::Waiting { reason, message }),
        any::<u64>().prop_map(|started_at_ms| ContainerState::Running { started_at_ms }),
        terminated().prop_map(ContainerState::Terminated),
    ];
    (
        text(),
        state,
        option::of(terminated()),
        any::<[bool; 2]>(),
        any::<u32>(),
        text(),
        text(),
    )
        .prop_map(
            |(name, state, last_termination, flags, restart_count, image_id, container_id)| {
                ContainerStatus {
                    name,
                    state,
                    last_termination,
                    ready: flags[0],
                    started: flags[1],
                    restart_count,
                    image_id,
                    container_id,
                }
            },
        )
}

fn node_resources() -> impl Strategy<Value = NodeResources> {
    (any::<u64>(), any::<u64>(), any::<u64>(), any::<u32>()).prop_map(
        |(cpu_millis, memory_bytes, ephemeral_storage_bytes, pods)| NodeResources {
            cpu_millis,
            memory_bytes,
            ephemeral_storage_bytes,
            pods,
        },
    )
}

fn node_registration() -> impl Strategy<Value = NodeRegistration> {
    let image =
        (texts(), any::<u64>()).prop_map(|(names, size_bytes)| ImageInfo { names, size_bytes });
    let kind = prop_oneof![
        Just(AddressKind::Hostname),
        Just(AddressKind::InternalIp),
        Just(AddressKind::ExternalIp),
    ];
    let address = (kind, text()).prop_map(|(kind, address)| NodeAddress { kind, address });
    (
        (text(), text(), text(), text()),
        (text(), text(), text(), text()),
        node_resources(),
        node_resources(),
        labels(),
        vec(image, 0..3),
        vec(address, 0..3),
        (any::<u64>(), any::<u32>()),
    )
        .prop_map(
            |(
                (node, architecture, os, kernel_version),
                (os_image, container_runtime, agent_version, boot_id),
                capacity,
                allocatable,
                labels,
                images,
                addresses,
                (session, heartbeat_seconds),
            )| NodeRegistration {
                node,
                architecture,
                os,
                kernel_version,
                os_image,
                container_runtime,
                agent_version,
                boot_id,
                capacity,
                allocatable,
                labels,
                images,
                addresses,
                session,
                heartbeat_seconds,
            },
        )
}

// --- logs and enrollment ---

fn log_request() -> impl Strategy<Value = LogRequest> {
    (
        any::<u64>(),
        text(),
        text(),
        any::<[bool; 3]>(),
        option::of(any::<u64>()),
        option::of(any::<u64>()),
        option::of(any::<u64>()),
    )
        .prop_map(
            |(request_id, pod_uid, container, flags, tail_lines, since_seconds, limit_bytes)| {
                LogRequest {
                    request_id,
                    pod_uid,
                    container,
                    follow: flags[0],
                    previous: flags[1],
                    timestamps: flags[2],
                    tail_lines,
                    since_seconds,
                    limit_bytes,
                }
            },
        )
}

fn log_chunk() -> impl Strategy<Value = LogChunk> {
    (
        any::<u64>(),
        any::<u64>(),
        bytes(),
        any::<bool>(),
        option::of(text()),
    )
        .prop_map(|(request_id, seq, data, eof, error)| LogChunk {
            request_id,
            seq,
            data,
            eof,
            error,
        })
}

fn enroll_request() -> impl Strategy<Value = EnrollRequest> {
    (text(), text(), bytes()).prop_map(|(node, bootstrap_token, csr_der)| EnrollRequest {
        node,
        bootstrap_token,
        csr_der,
    })
}

fn enroll_response() -> impl Strategy<Value = EnrollResponse> {
    let outcome = prop_oneof![
        vec(bytes().prop_map(|der| Certificate { der }), 0..3)
            .prop_map(|chain| EnrollOutcome::Issued { chain }),
        text().prop_map(|reason| EnrollOutcome::Refused { reason }),
    ];
    (text(), outcome).prop_map(|(node, outcome)| EnrollResponse { node, outcome })
}
