//! `flotilla-agent`: the device side of Flotilla, one static binary per device.
//!
//! It enrolls with the hub, receives its desired state over MQTT as
//! [`flotilla_shared::wire`] messages, persists it, and runs the pods in it
//! through crun or runc — and keeps them running while the link is down.
//!
//! Unsafe code is allowed only in [`sys`], the agent's narrow door to the kernel.

pub mod agent;
pub mod bundle;
pub mod cgroup;
pub mod image;
pub mod link;
pub mod pod;
pub mod runtime;
pub mod state;
pub mod sys;
pub mod unpack;

/// What this build is, as `flotilla-agent version` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildInfo {
    pub version: &'static str,
    /// The wire protocol version this agent speaks.
    pub protocol: u16,
    /// `kubernetes.io/arch` spelling of the CPU architecture: `arm64`, `arm`, `amd64`.
    pub arch: &'static str,
    pub os: &'static str,
}

impl BuildInfo {
    pub fn current() -> Self {
        BuildInfo {
            version: env!("CARGO_PKG_VERSION"),
            protocol: flotilla_shared::wire::PROTOCOL_VERSION,
            arch: kubernetes_arch(std::env::consts::ARCH),
            os: std::env::consts::OS,
        }
    }
}

/// The heartbeat this device would send now: uptime, load and the space
/// left for the agent's state directory, with the counters the caller keeps.
pub fn kubernetes_arch(rust_arch: &'static str) -> &'static str {
    match rust_arch {
        "aarch64" => "arm64",
        "arm" => "arm",
        "x86_64" => "amd64",
        "x86" => "386",
        "riscv64" => "riscv64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_architectures_map_to_kubernetes_names() {
        assert_eq!(kubernetes_arch("aarch64"), "arm64");
        assert_eq!(kubernetes_arch("arm"), "arm");
        assert_eq!(kubernetes_arch("x86_64"), "amd64");
    }

    #[test]
    fn build_info_reports_the_architecture_it_was_compiled_for() {
        let info = BuildInfo::current();
        #[cfg(target_arch = "aarch64")]
        assert_eq!(info.arch, "arm64");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(info.arch, "amd64");
        #[cfg(target_arch = "arm")]
        assert_eq!(info.arch, "arm");
        assert_eq!(info.os, "linux");
    }
}
