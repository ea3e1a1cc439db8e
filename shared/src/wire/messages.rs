//! Every message of the protocol, and the small ones the device sends.
//! The desired state, the one large message, lives in [`super::desired`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::desired::DesiredState;

/// One message of the protocol. The variant order is the wire format:
/// new variants go at the end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Hub → device, retained on `desired`.
    DesiredState(DesiredState),
    /// Device → hub, on `heartbeat`.
    Heartbeat(Heartbeat),
    /// Device → hub, on `status`, when a pod's status changes.
    PodStatusUpdate(PodStatusUpdate),
    /// Device → hub, on `status`, at every connect.
    NodeRegistration(NodeRegistration),
    /// Hub → device, on `logs/request`.
    LogRequest(LogRequest),
    /// Device → hub, on `logs/response/{request_id}`.
    LogChunk(LogChunk),
    /// Unused: devices enroll over HTTPS ([`crate::enroll`]), which works
    /// with any broker. Kept so that later variants keep their index.
    EnrollRequest(EnrollRequest),
    /// Unused, as [`Message::EnrollRequest`].
    EnrollResponse(EnrollResponse),
    /// The device's last will, on `status`: the broker publishes it when
    /// the device's connection `session` ends without a clean disconnect.
    Offline(Offline),
    /// Hub → device, on `logs/request`: stop a followed log stream.
    LogCancel(LogCancel),
}

impl Message {
    /// The node the message names, for checking against the topic it came
    /// on; `None` for log messages, which are named by request id.
    pub fn node(&self) -> Option<&str> {
        match self {
            Message::DesiredState(m) => Some(&m.node),
            Message::Heartbeat(m) => Some(&m.node),
            Message::PodStatusUpdate(m) => Some(&m.node),
            Message::NodeRegistration(m) => Some(&m.node),
            Message::EnrollRequest(m) => Some(&m.node),
            Message::EnrollResponse(m) => Some(&m.node),
            Message::Offline(m) => Some(&m.node),
            Message::LogRequest(_) | Message::LogChunk(_) | Message::LogCancel(_) => None,
        }
    }

    /// The variant's name, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::DesiredState(_) => "DesiredState",
            Message::Heartbeat(_) => "Heartbeat",
            Message::PodStatusUpdate(_) => "PodStatusUpdate",
            Message::NodeRegistration(_) => "NodeRegistration",
            Message::LogRequest(_) => "LogRequest",
            Message::LogChunk(_) => "LogChunk",
            Message::EnrollRequest(_) => "EnrollRequest",
            Message::EnrollResponse(_) => "EnrollResponse",
            Message::Offline(_) => "Offline",
            Message::LogCancel(_) => "LogCancel",
        }
    }
}

/// The device's periodic sign of life, kept small (at most 64 bytes on the
/// wire for usual values) because a fleet sends many. Figures are scaled
/// integers, never floats.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub node: String,
    /// Counts up from 0 at agent start; a gap shows lost heartbeats, a reset a
    /// restart.
    pub seq: u64,
    /// The desired-state revision the agent holds and is reconciling;
    /// `None` before the first one arrived.
    pub applied_revision: Option<u64>,
    pub uptime_seconds: u64,
    /// The one-minute load average times 100.
    pub load_centi: u32,
    pub memory_available_kib: u64,
    /// Free space on the filesystem of the agent's state directory.
    pub disk_available_kib: u64,
    pub pods_running: u32,
    /// The hottest thermal zone, when the device has one.
    pub temperature_millicelsius: Option<i32>,
    pub memory_pressure: bool,
    pub disk_pressure: bool,
    pub pid_pressure: bool,
}

/// A pod's status, sent when it changes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodStatusUpdate {
    pub node: String,
    pub pod_uid: String,
    pub phase: PodPhase,
    /// A short CamelCase reason for the phase, e.g. `Evicted`; may be empty.
    pub reason: String,
    pub message: String,
    pub pod_ip: Option<IpAddr>,
    /// When the agent accepted the pod, in Unix milliseconds.
    pub start_time_ms: Option<u64>,
    pub init_containers: Vec<ContainerStatus>,
    pub containers: Vec<ContainerStatus>,
    /// The desired-state revision the agent was running when it observed this.
    pub observed_revision: u64,
    /// When the agent observed this, in Unix milliseconds.
    pub timestamp_ms: u64,
}

/// `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PodPhase {
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

/// One container's status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub name: String,
    pub state: ContainerState,
    /// How the previous run ended, after a restart.
    pub last_termination: Option<Terminated>,
    pub ready: bool,
    pub started: bool,
    pub restart_count: u32,
    /// The image's digest reference once pulled; empty before.
    pub image_id: String,
    /// The runtime's id for the container; empty before it was created.
    pub container_id: String,
}

/// What a container is doing now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    /// Not running yet (or between restarts), e.g. `ContainerCreating`,
    /// `ImagePullBackOff`, `CrashLoopBackOff`.
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started_at_ms: u64,
    },
    Terminated(Terminated),
}

impl Default for ContainerState {
    fn default() -> Self {
        ContainerState::Waiting {
            reason: String::new(),
            message: String::new(),
        }
    }
}

/// How a container run ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terminated {
    /// 128 + the signal number when a signal ended it.
    pub exit_code: i32,
    /// E.g. `Completed`, `Error`, `OOMKilled`.
    pub reason: String,
    /// The termination message, when the container wrote one.
    pub message: String,
    pub started_at_ms: u64,
    pub finished_at_ms: u64,
}

/// What a device says about itself at every connect; the hub creates or
/// updates its Node object from it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRegistration {
    pub node: String,
    /// In Go's `GOARCH` terms: `arm64`, `arm`, `amd64`.
    pub architecture: String,
    /// `linux`.
    pub os: String,
    pub kernel_version: String,
    /// The distribution, e.g. `Debian GNU/Linux 12 (bookworm)`.
    pub os_image: String,
    /// E.g. `crun 1.14`.
    pub container_runtime: String,
    pub agent_version: String,
    /// Changes at every boot, so the hub can tell a reboot from a reconnect.
    pub boot_id: String,
    pub capacity: NodeResources,
    /// What is left for pods after what the system reserves.
    pub allocatable: NodeResources,
    /// Labels the device asserts about itself (e.g. hardware model).
    pub labels: BTreeMap<String, String>,
    /// Images already present, which the scheduler prefers.
    pub images: Vec<ImageInfo>,
    pub addresses: Vec<NodeAddress>,
    /// Names this connection (its start in Unix milliseconds): the last
    /// will of an older connection, which the broker may publish after the
    /// device reconnected elsewhere, carries an older one and is ignored.
    pub session: u64,
    /// How often the device heartbeats: the hub judges it gone after a few
    /// missed ones (its Lease lasts that long), not after Kubernetes' 40 s.
    pub heartbeat_seconds: u32,
}

/// A device went away without saying goodbye (its MQTT last will).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offline {
    pub node: String,
    /// The [`NodeRegistration::session`] of the connection that ended.
    pub session: u64,
}

/// A device's resources as integers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeResources {
    /// Thousandths of a CPU.
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub ephemeral_storage_bytes: u64,
    pub pods: u32,
}

/// An image on the device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// Its references: tags and the digest reference.
    pub names: Vec<String>,
    pub size_bytes: u64,
}

/// One address of the device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddress {
    pub kind: AddressKind,
    pub address: String,
}

/// The Kubernetes node address types Flotilla reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AddressKind {
    Hostname,
    InternalIp,
    ExternalIp,
}

/// A request for a container's logs (`kubectl logs`), answered by
/// [`LogChunk`]s on `logs/response/{request_id}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRequest {
    /// Chosen by the hub, unique among its open requests to this device.
    pub request_id: u64,
    pub pod_uid: String,
    pub container: String,
    /// Keep sending as the container writes, until the hub cancels.
    pub follow: bool,
    /// The previous run's logs (`--previous`).
    pub previous: bool,
    /// Prefix each line with its RFC 3339 time.
    pub timestamps: bool,
    pub tail_lines: Option<u64>,
    pub since_seconds: Option<u64>,
    /// Stop after this many bytes.
    pub limit_bytes: Option<u64>,
}

/// The hub no longer wants the stream of request `request_id` (the client
/// went away); the device stops it and sends nothing more for it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCancel {
    pub request_id: u64,
}

/// A piece of a log stream.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChunk {
    pub request_id: u64,
    /// Counts up from 0 within the request, so the hub can order and spot gaps.
    pub seq: u64,
    pub data: Vec<u8>,
    /// The last chunk of the request.
    pub eof: bool,
    /// Why the stream stopped early (e.g. no such container); implies `eof`.
    pub error: Option<String>,
}

impl fmt::Debug for LogChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogChunk")
            .field("request_id", &self.request_id)
            .field("seq", &self.seq)
            .field("data", &format_args!("<{} bytes>", self.data.len()))
            .field("eof", &self.eof)
            .field("error", &self.error)
            .finish()
    }
}

/// A new device asking for its certificate, authenticated by a bootstrap token.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub node: String,
    pub bootstrap_token: String,
    /// A PKCS #10 certificate signing request, DER, for a key that never
    /// leaves the device.
    pub csr_der: Vec<u8>,
}

impl fmt::Debug for EnrollRequest {
    // The bootstrap token is a credential.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollRequest")
            .field("node", &self.node)
            .field("bootstrap_token", &"<redacted>")
            .field("csr_der", &format_args!("<{} bytes>", self.csr_der.len()))
            .finish()
    }
}

/// The hub's answer to an [`EnrollRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub node: String,
    pub outcome: EnrollOutcome,
}

/// A certificate chain, or why there is none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnrollOutcome {
    /// The device's certificate first, then intermediates up to (not
    /// including) the root the device already trusts.
    Issued {
        chain: Vec<Certificate>,
    },
    Refused {
        reason: String,
    },
}

/// One DER-encoded X.509 certificate.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    pub der: Vec<u8>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Certificate(<{} bytes>)", self.der.len())
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::super::desired::{
        Container, ContainerPort, EnvVar, HttpScheme, Pod, Probe, ProbeAction, ResourceList,
        Resources,
    };
    use super::*;
    use crate::wire::{decode, encode};

    /// A heartbeat as a busy device a month into its uptime sends it, with a
    /// 20-character node name.
    fn realistic_heartbeat() -> Heartbeat {
        Heartbeat {
            node: "pi-greenhouse-nw-017".into(),
            seq: 2_592_000 / 10,
            applied_revision: Some(1_234_567),
            uptime_seconds: 2_592_000,
            load_centi: 185,
            memory_available_kib: 612_000,
            disk_available_kib: 9_800_000,
            pods_running: 6,
            temperature_millicelsius: Some(58_300),
            memory_pressure: false,
            disk_pressure: false,
            pid_pressure: false,
        }
    }

    #[test]
    fn a_realistic_heartbeat_fits_in_64_bytes() {
        let heartbeat = realistic_heartbeat();
        assert_eq!(heartbeat.node.len(), 20);
        let bytes = encode(&Message::Heartbeat(heartbeat));
        assert!(bytes.len() <= 64, "{} bytes", bytes.len());
        // Pinned so that any change to the heartbeat's layout is noticed.
        assert_eq!(bytes.len(), 51);
    }

    #[test]
    fn a_heartbeat_with_every_figure_at_its_maximum_stays_under_100_bytes() {
        let heartbeat = Heartbeat {
            seq: u64::MAX,
            applied_revision: Some(u64::MAX),
            uptime_seconds: u64::MAX,
            load_centi: u32::MAX,
            memory_available_kib: u64::MAX,
            disk_available_kib: u64::MAX,
            pods_running: u32::MAX,
            temperature_millicelsius: Some(i32::MIN),
            ..realistic_heartbeat()
        };
        let bytes = encode(&Message::Heartbeat(heartbeat));
        assert_eq!(bytes.len(), 93);
    }

    /// One nginx-like pod as the gateway would send it.
    fn one_pod_desired_state() -> DesiredState {
        DesiredState {
            node: "pi-greenhouse-nw-017".into(),
            revision: 1_234_567,
            pods: vec![Pod {
                uid: "6f1c2a9e-3b7d-4c1e-9a51-2d8f0e7b4c33".into(),
                namespace: "default".into(),
                name: "web-7d9f8b6c5-x2k4p".into(),
                labels: [("app".to_string(), "web".to_string())].into(),
                containers: vec![Container {
                    name: "nginx".into(),
                    image: "registry.local:5000/nginx:1.25".into(),
                    env: vec![
                        EnvVar {
                            name: "NGINX_PORT".into(),
                            value: "80".into(),
                        },
                        EnvVar {
                            name: "TZ".into(),
                            value: "UTC".into(),
                        },
                    ],
                    ports: vec![ContainerPort {
                        name: "http".into(),
                        port: 80,
                        ..ContainerPort::default()
                    }],
                    resources: Resources {
                        requests: ResourceList {
                            cpu_millis: Some(100),
                            memory_bytes: Some(64 << 20),
                            pids: None,
                        },
                        limits: ResourceList {
                            cpu_millis: Some(500),
                            memory_bytes: Some(128 << 20),
                            pids: None,
                        },
                    },
                    readiness: Some(Probe {
                        action: ProbeAction::HttpGet {
                            scheme: HttpScheme::Http,
                            host: String::new(),
                            port: 80,
                            path: "/".into(),
                            headers: Vec::new(),
                        },
                        initial_delay_seconds: 2,
                        period_seconds: 10,
                        timeout_seconds: 1,
                        success_threshold: 1,
                        failure_threshold: 3,
                    }),
                    ..Container::default()
                }],
                termination_grace_period_seconds: 30,
                ..Pod::default()
            }],
            services: Vec::new(),
        }
    }

    #[test]
    fn a_typical_one_pod_desired_state_fits_in_256_bytes() {
        let bytes = encode(&Message::DesiredState(one_pod_desired_state()));
        assert!(bytes.len() <= 256, "{} bytes", bytes.len());
        // Pinned so that any change to the pod's layout is noticed.
        assert_eq!(bytes.len(), 226);
    }

    #[test]
    fn the_heartbeat_layout_is_pinned_byte_for_byte() {
        let heartbeat = Heartbeat {
            node: "n1".into(),
            seq: 300,
            applied_revision: Some(5),
            uptime_seconds: 1,
            load_centi: 2,
            memory_available_kib: 3,
            disk_available_kib: 4,
            pods_running: 5,
            temperature_millicelsius: Some(-1),
            memory_pressure: true,
            disk_pressure: false,
            pid_pressure: true,
        };
        let expected = [
            1, // protocol version
            1, // Message::Heartbeat
            2, b'n', b'1', // node
            0xac, 0x02, // seq 300 as a varint
            1, 5, // Some(5)
            1, 2, 3, 4, 5, // figures
            1, 1, // Some(-1), zigzag
            1, 0, 1, // pressures
        ];
        assert_eq!(encode(&Message::Heartbeat(heartbeat)), expected);
    }

    #[test]
    fn ip_addresses_travel_as_raw_octets() {
        let update = PodStatusUpdate {
            pod_ip: Some(IpAddr::V4(Ipv4Addr::new(10, 42, 0, 7))),
            ..PodStatusUpdate::default()
        };
        let bytes = encode(&Message::PodStatusUpdate(update));
        // version, variant, node "", uid "", phase, reason "", message "",
        // Some, IpAddr::V4, four octets, ...
        assert_eq!(&bytes[..13], &[1, 2, 0, 0, 0, 0, 0, 1, 0, 10, 42, 0, 7]);
    }

    #[test]
    fn messages_name_their_node_except_log_messages() {
        let cases = [
            (
                Message::Heartbeat(realistic_heartbeat()),
                Some("pi-greenhouse-nw-017"),
            ),
            (
                Message::DesiredState(one_pod_desired_state()),
                Some("pi-greenhouse-nw-017"),
            ),
            (Message::LogChunk(LogChunk::default()), None),
            (Message::LogRequest(LogRequest::default()), None),
        ];
        for (message, node) in cases {
            assert_eq!(message.node(), node, "{}", message.kind());
        }
    }

    #[test]
    fn debug_output_hides_the_bootstrap_token_and_bulk_bytes() {
        let request = EnrollRequest {
            node: "pi-1".into(),
            bootstrap_token: "abcdef.0123456789abcdef".into(),
            csr_der: vec![0x30; 300],
        };
        let chunk = LogChunk {
            data: b"GET / 200".to_vec(),
            ..LogChunk::default()
        };
        let shown = format!(
            "{request:?} {chunk:?} {:?}",
            Certificate { der: vec![1; 5] }
        );
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(!shown.contains("GET"), "{shown}");
        assert!(shown.contains("<300 bytes>") && shown.contains("<9 bytes>"));
        assert!(shown.contains("Certificate(<5 bytes>)"));
    }

    #[test]
    fn decoding_an_encoded_desired_state_gives_it_back() {
        let message = Message::DesiredState(one_pod_desired_state());
        assert_eq!(decode(&encode(&message)).unwrap(), message);
    }
}
