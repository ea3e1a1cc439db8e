//! What a container may do and use: its capabilities, the devices it may
//! open, its cgroup resources and its OOM score, converted from the pod spec
//! the way kubelet and containerd do.

use flotilla_shared::wire::{Container, Pod, ResourceList};
use oci_spec::runtime::{
    Capabilities, Capability, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxMemory, LinuxPids,
    LinuxResources,
};

use super::BundleError;

/// The CFS period the agent uses, in microseconds (kubelet's).
const CPU_PERIOD_US: u64 = 100_000;
/// The smallest CFS quota the kernel accepts, in microseconds.
const MIN_QUOTA_US: i64 = 1_000;
/// cgroup v1 `cpu.shares` bounds.
const MIN_SHARES: u64 = 2;
const MAX_SHARES: u64 = 262_144;

/// containerd's default capability set for containers.
const DEFAULT_CAPS: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Every capability Linux 5.9+ knows (`CAP_CHOWN` … `CAP_CHECKPOINT_RESTORE`).
pub(super) const ALL_CAPS: [Capability; 41] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::DacReadSearch,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setpcap,
    Capability::LinuxImmutable,
    Capability::NetBindService,
    Capability::NetBroadcast,
    Capability::NetAdmin,
    Capability::NetRaw,
    Capability::IpcLock,
    Capability::IpcOwner,
    Capability::SysModule,
    Capability::SysRawio,
    Capability::SysChroot,
    Capability::SysPtrace,
    Capability::SysPacct,
    Capability::SysAdmin,
    Capability::SysBoot,
    Capability::SysNice,
    Capability::SysResource,
    Capability::SysTime,
    Capability::SysTtyConfig,
    Capability::Mknod,
    Capability::Lease,
    Capability::AuditWrite,
    Capability::AuditControl,
    Capability::Setfcap,
    Capability::MacOverride,
    Capability::MacAdmin,
    Capability::Syslog,
    Capability::WakeAlarm,
    Capability::BlockSuspend,
    Capability::AuditRead,
    Capability::Perfmon,
    Capability::Bpf,
    Capability::CheckpointRestore,
];

/// Character devices every container may use (runc's allow list):
/// null, zero, full, random, urandom, tty, ptmx and the pty slaves.
const ALLOWED_DEVICES: [(i64, Option<i64>); 8] = [
    (1, Some(3)),
    (1, Some(5)),
    (1, Some(7)),
    (1, Some(8)),
    (1, Some(9)),
    (5, Some(0)),
    (5, Some(2)),
    (136, None),
];

fn parse_capability(name: &str) -> Result<Capability, BundleError> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    bare.parse().map_err(|_| BundleError::UnknownCapability {
        name: name.to_owned(),
    })
}

/// containerd's order: add ALL, drop ALL, then add and drop single names
/// (so a single drop beats a single add). Privileged gets every capability.
pub(super) fn capabilities(ctr: &Container) -> Result<Capabilities, BundleError> {
    if ctr.security.privileged {
        return Ok(ALL_CAPS.into_iter().collect());
    }
    let is_all = |n: &String| n.eq_ignore_ascii_case("ALL");
    let wanted = &ctr.security.capabilities;
    let mut caps: Capabilities = DEFAULT_CAPS.into_iter().collect();
    if wanted.add.iter().any(is_all) {
        caps.extend(ALL_CAPS);
    }
    if wanted.drop.iter().any(is_all) {
        caps.clear();
    }
    for name in wanted.add.iter().filter(|n| !is_all(n)) {
        caps.insert(parse_capability(name)?);
    }
    for name in wanted.drop.iter().filter(|n| !is_all(n)) {
        caps.remove(&parse_capability(name)?);
    }
    Ok(caps)
}

/// Kubernetes' QoS class of a pod decides the OOM score of its containers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

/// The pod's QoS class, over its init and app containers.
pub fn qos_class(pod: &Pod) -> QosClass {
    let all = || pod.init_containers.iter().chain(&pod.containers);
    fn r(c: &Container) -> (&ResourceList, &ResourceList) {
        (&c.resources.requests, &c.resources.limits)
    }
    let any_set = all().any(|c| {
        let (req, lim) = r(c);
        req.cpu_millis.is_some()
            || req.memory_bytes.is_some()
            || lim.cpu_millis.is_some()
            || lim.memory_bytes.is_some()
    });
    if !any_set {
        return QosClass::BestEffort;
    }
    let guaranteed = all().all(|c| {
        let (req, lim) = r(c);
        lim.cpu_millis.is_some()
            && lim.memory_bytes.is_some()
            && req.cpu_millis.is_none_or(|v| Some(v) == lim.cpu_millis)
            && req.memory_bytes.is_none_or(|v| Some(v) == lim.memory_bytes)
    });
    if guaranteed {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

/// kubelet's `GetContainerOOMScoreAdjust`.
pub(super) fn oom_score_adj(pod: &Pod, ctr: &Container, node_memory_bytes: u64) -> i32 {
    match qos_class(pod) {
        QosClass::Guaranteed => -997,
        QosClass::BestEffort => 1000,
        QosClass::Burstable => {
            let request = ctr.resources.requests.memory_bytes.unwrap_or(0);
            let capacity = node_memory_bytes.max(1);
            let score =
                1000 - (1000u128 * u128::from(request) / u128::from(capacity)).min(1000) as i32;
            score.clamp(2, 999)
        }
    }
}

fn device_rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
) -> LinuxDeviceCgroup {
    let mut rule = LinuxDeviceCgroup::default();
    rule.set_allow(allow);
    rule.set_typ(Some(typ));
    rule.set_major(major);
    rule.set_minor(minor);
    rule.set_access(Some("rwm".into()));
    rule
}

/// kubelet's conversion of requests and limits into v1-style values; runc
/// and crun translate them for v2.
pub(super) fn resources(ctr: &Container) -> Result<LinuxResources, BundleError> {
    let (req, lim) = (&ctr.resources.requests, &ctr.resources.limits);
    let mut cpu = LinuxCpu::default();
    let shares = req
        .cpu_millis
        .map_or(MIN_SHARES, |m| m.saturating_mul(1024) / 1000)
        .clamp(MIN_SHARES, MAX_SHARES);
    cpu.set_shares(Some(shares));
    if let Some(millis) = lim.cpu_millis {
        let quota =
            i64::try_from(u128::from(millis) * u128::from(CPU_PERIOD_US) / 1000).map_err(|_| {
                BundleError::ResourceRange {
                    what: "limits.cpu",
                    value: millis,
                }
            })?;
        cpu.set_quota(Some(quota.max(MIN_QUOTA_US)));
        cpu.set_period(Some(CPU_PERIOD_US));
    }
    let mut res = LinuxResources::default();
    res.set_cpu(Some(cpu));
    if let Some(bytes) = lim.memory_bytes {
        let limit = i64::try_from(bytes).map_err(|_| BundleError::ResourceRange {
            what: "limits.memory",
            value: bytes,
        })?;
        let mut memory = LinuxMemory::default();
        memory.set_limit(Some(limit));
        res.set_memory(Some(memory));
    }
    if let Some(pids) = lim.pids {
        let mut p = LinuxPids::default();
        p.set_limit(i64::from(pids));
        res.set_pids(Some(p));
    }
    let mut devices = vec![device_rule(false, LinuxDeviceType::A, None, None)];
    if ctr.security.privileged {
        devices.push(device_rule(true, LinuxDeviceType::A, None, None));
    } else {
        devices.extend(
            ALLOWED_DEVICES
                .iter()
                .map(|&(major, minor)| device_rule(true, LinuxDeviceType::C, Some(major), minor)),
        );
    }
    res.set_devices(Some(devices));
    Ok(res)
}

#[cfg(test)]
mod tests;
