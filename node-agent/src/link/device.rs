//! What the device says about itself: the heartbeat's readings and the
//! registration sent at every connect, read from `/proc`, `/sys` and the
//! state directory's filesystem. A reading that fails is reported as zero
//! or absent, never as an error: a heartbeat must go out regardless.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;

use flotilla_shared::wire::{
    AddressKind, Heartbeat, ImageInfo, NodeAddress, NodeRegistration, NodeResources,
};

/// Kubelet's eviction thresholds, used for the pressure flags (the disk's
/// is configurable, as kubelet's `--eviction-hard nodefs.available`).
const MEMORY_PRESSURE_KIB: u64 = 100 * 1024;
pub const DISK_PRESSURE_PERCENT: u64 = 10;
const PID_PRESSURE_PERCENT: u64 = 90;

/// What the registration says that is not read from the device.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    pub node: String,
    /// E.g. `runc 1.1.5`.
    pub container_runtime: String,
    pub labels: BTreeMap<String, String>,
    pub max_pods: u32,
    pub heartbeat_seconds: u32,
    /// Disk pressure below this percentage of the state filesystem free.
    pub disk_pressure_percent: u64,
}

/// The registration for a connection named `session`. `hub` is the
/// address connected to: the device's own address towards it is its
/// InternalIP.
pub fn registration(
    identity: &Identity,
    state_dir: &Path,
    images: Vec<ImageInfo>,
    hub: Option<SocketAddr>,
    session: u64,
) -> NodeRegistration {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let disk = disk(state_dir);
    let capacity = NodeResources {
        cpu_millis: cpus * 1000,
        memory_bytes: crate::sys::memory_total_bytes().unwrap_or(0),
        ephemeral_storage_bytes: disk.map_or(0, |d| d.total_bytes),
        pods: identity.max_pods,
    };
    let hostname = read_trimmed("/proc/sys/kernel/hostname").unwrap_or_default();
    let mut addresses = Vec::new();
    if !hostname.is_empty() {
        addresses.push(NodeAddress {
            kind: AddressKind::Hostname,
            address: hostname,
        });
    }
    if let Some(ip) = hub.and_then(source_address) {
        addresses.push(NodeAddress {
            kind: AddressKind::InternalIp,
            address: ip.to_string(),
        });
    }
    NodeRegistration {
        node: identity.node.clone(),
        architecture: crate::kubernetes_arch(std::env::consts::ARCH).to_owned(),
        os: "linux".into(),
        kernel_version: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default(),
        os_image: os_image(&std::fs::read_to_string("/etc/os-release").unwrap_or_default()),
        container_runtime: identity.container_runtime.clone(),
        agent_version: env!("CARGO_PKG_VERSION").into(),
        boot_id: read_trimmed("/proc/sys/kernel/random/boot_id").unwrap_or_default(),
        allocatable: capacity.clone(),
        capacity,
        labels: identity.labels.clone(),
        images,
        addresses,
        session,
        heartbeat_seconds: identity.heartbeat_seconds,
    }
}

/// The heartbeat numbered `seq`.
pub fn heartbeat(
    identity: &Identity,
    seq: u64,
    applied_revision: Option<u64>,
    pods_running: u32,
    state_dir: &Path,
) -> Heartbeat {
    let meminfo = meminfo();
    let available_kib = meminfo.get("MemAvailable").copied().unwrap_or(0);
    let disk = disk(state_dir);
    let load = crate::sys::system_load().ok();
    let threads = threads(&std::fs::read_to_string("/proc/loadavg").unwrap_or_default());
    let pid_max: u64 = read_trimmed("/proc/sys/kernel/pid_max")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Heartbeat {
        node: identity.node.clone(),
        seq,
        applied_revision,
        uptime_seconds: load.map_or(0, |l| l.uptime_seconds),
        load_centi: load.map_or(0, |l| l.load_1m_centi),
        memory_available_kib: available_kib,
        disk_available_kib: disk.map_or(0, |d| d.available_bytes / 1024),
        pods_running,
        temperature_millicelsius: temperature(Path::new("/sys/class/thermal")),
        memory_pressure: meminfo.contains_key("MemAvailable")
            && available_kib < MEMORY_PRESSURE_KIB,
        disk_pressure: disk.is_some_and(|d| {
            d.total_bytes > 0
                && d.available_bytes * 100 < d.total_bytes * identity.disk_pressure_percent
        }),
        pid_pressure: pid_max > 0 && threads * 100 > pid_max * PID_PRESSURE_PERCENT,
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

/// `/proc/meminfo` in KiB by field.
fn meminfo() -> BTreeMap<String, u64> {
    parse_meminfo(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default())
}

fn parse_meminfo(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let kib = rest.split_whitespace().next()?.parse().ok()?;
            Some((name.to_owned(), kib))
        })
        .collect()
}

/// The number of threads, from `/proc/loadavg` text.
fn threads(loadavg: &str) -> u64 {
    loadavg
        .split_whitespace()
        .nth(3)
        .and_then(|f| f.split_once('/'))
        .and_then(|(_, total)| total.parse().ok())
        .unwrap_or(0)
}

/// `PRETTY_NAME` from os-release text.
fn os_image(text: &str) -> String {
    text.lines()
        .find_map(|line| line.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .unwrap_or_else(|| "Linux".into())
}

fn disk(path: &Path) -> Option<crate::sys::FilesystemSpace> {
    crate::sys::filesystem_space(path).ok()
}

/// The hottest thermal zone under `dir`, in thousandths of a degree.
fn temperature(dir: &Path) -> Option<i32> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("thermal_zone"))
        .filter_map(|e| std::fs::read_to_string(e.path().join("temp")).ok())
        .filter_map(|t| t.trim().parse::<i32>().ok())
        .max()
}

/// The local address the kernel would send from towards `hub` (a UDP
/// socket's connect only picks the route; nothing is sent).
fn source_address(hub: SocketAddr) -> Option<IpAddr> {
    let bind: SocketAddr = if hub.is_ipv4() {
        "0.0.0.0:0".parse().ok()?
    } else {
        "[::]:0".parse().ok()?
    };
    let socket = UdpSocket::bind(bind).ok()?;
    socket.connect(hub).ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_parse_procfs_text() {
        let meminfo = parse_meminfo(
            "MemTotal:        2048000 kB\nMemAvailable:     51200 kB\nHugePages_Total:       0\n",
        );
        assert_eq!(meminfo["MemTotal"], 2_048_000);
        assert_eq!(meminfo["MemAvailable"], 51_200);
        assert_eq!(meminfo["HugePages_Total"], 0);
        assert_eq!(threads("0.42 0.30 0.25 2/187 4242\n"), 187);
        assert_eq!(threads(""), 0);
        assert_eq!(
            os_image("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
            "Debian GNU/Linux 12 (bookworm)"
        );
        assert_eq!(os_image(""), "Linux");
    }

    #[test]
    fn this_machine_reports_itself() {
        let dir = tempfile::tempdir().unwrap();
        let identity = Identity {
            node: "gw-1".into(),
            container_runtime: "runc 1.1.5".into(),
            labels: BTreeMap::from([("model".into(), "test".into())]),
            max_pods: 110,
            heartbeat_seconds: 300,
            disk_pressure_percent: DISK_PRESSURE_PERCENT,
        };
        let hub: SocketAddr = "127.0.0.1:8883".parse().unwrap();
        let r = registration(&identity, dir.path(), Vec::new(), Some(hub), 17);
        assert_eq!(
            (r.node.as_str(), r.os.as_str(), r.session),
            ("gw-1", "linux", 17)
        );
        assert!(r.capacity.cpu_millis >= 1000 && r.capacity.memory_bytes > 0);
        assert!(r.capacity.ephemeral_storage_bytes > 0);
        assert_eq!(r.capacity.pods, 110);
        assert_eq!(r.boot_id.len(), 36, "{r:?}");
        assert!(r.addresses.contains(&NodeAddress {
            kind: AddressKind::InternalIp,
            address: "127.0.0.1".into()
        }));
        let identity = Identity {
            node: "pi-greenhouse-nw-017".into(),
            ..identity
        };
        let h = heartbeat(&identity, 8_640, Some(1_234_567), 2, dir.path());
        assert_eq!(
            (h.seq, h.applied_revision, h.pods_running),
            (8_640, Some(1_234_567), 2)
        );
        assert!(h.memory_available_kib > 0 && h.disk_available_kib > 0 && h.uptime_seconds > 0);
        // Small enough for a fleet: well under 64 bytes on the wire.
        let bytes = flotilla_shared::wire::encode(&flotilla_shared::wire::Message::Heartbeat(h));
        assert!(bytes.len() <= 64, "{} bytes", bytes.len());
    }
}
