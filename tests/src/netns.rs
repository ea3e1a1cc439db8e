//! Hosts for multi-host tests on one machine: each device in its own
//! network namespace behind a veth pair, and the hub side on addresses of
//! the host's loopback interface, which the namespaces route to. Faults are nftables rules inside
//! a device's namespace: random loss (`numgen random mod 100 < N drop`) or a
//! full cut-off (every packet dropped, so connections hang as on a dead
//! cellular link rather than failing fast).
//!
//! Names and subnets derive from the test process id and a counter, so
//! tests running in parallel (in one process or several) never share them.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context as _, bail};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn next() -> u32 {
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn pid_part() -> u32 {
    std::process::id() % 100_000
}

/// Runs a command to completion; its stderr in the error.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Addresses on the host that every device namespace reaches: one per hub
/// replica (and one for a registry), on the loopback interface (Linux
/// accepts traffic for any local address on any interface, and this kernel
/// has no dummy interfaces).
#[derive(Debug)]
pub struct HubNet {
    pub ips: Vec<Ipv4Addr>,
}

impl HubNet {
    pub fn new(count: u8) -> anyhow::Result<HubNet> {
        let n = next();
        // 10.250-254.x.y: away from the device subnets below.
        let second = 250 + (pid_part() % 5) as u8;
        let third = ((pid_part() / 5 + n * 7) % 250) as u8;
        let mut net = HubNet { ips: Vec::new() };
        for k in 1..=count {
            let ip = Ipv4Addr::new(10, second, third, k);
            run("ip", &["addr", "add", &format!("{ip}/32"), "dev", "lo"])?;
            net.ips.push(ip);
        }
        Ok(net)
    }
}

impl Drop for HubNet {
    fn drop(&mut self) {
        for ip in &self.ips {
            let _ = run("ip", &["addr", "del", &format!("{ip}/32"), "dev", "lo"]);
        }
    }
}

/// One device's network namespace.
#[derive(Debug)]
pub struct DeviceNet {
    pub name: String,
    pub host_ip: Ipv4Addr,
    pub device_ip: Ipv4Addr,
}

impl DeviceNet {
    pub fn new() -> anyhow::Result<DeviceNet> {
        let n = next();
        let tag = format!("{}y{}", pid_part(), n % 1000);
        let name = format!("flotilla-dev-{tag}");
        let (host_if, device_if) = (format!("fd{tag}"), "eth0".to_owned());
        // 10.200-249.x.y/30 per device.
        let second = 200 + (pid_part() % 50) as u8;
        let block = (pid_part() / 50 * 13 + n) % 16_384;
        let third = (block / 64) as u8;
        let fourth = ((block % 64) * 4) as u8;
        let host_ip = Ipv4Addr::new(10, second, third, fourth + 1);
        let device_ip = Ipv4Addr::new(10, second, third, fourth + 2);
        run("ip", &["netns", "add", &name])?;
        let net = DeviceNet {
            name,
            host_ip,
            device_ip,
        };
        let temp_if = format!("fe{tag}");
        run(
            "ip",
            &[
                "link", "add", &host_if, "type", "veth", "peer", "name", &temp_if,
            ],
        )?;
        run("ip", &["link", "set", &temp_if, "netns", &net.name])?;
        net.exec("ip", &["link", "set", &temp_if, "name", &device_if])?;
        run(
            "ip",
            &["addr", "add", &format!("{host_ip}/30"), "dev", &host_if],
        )?;
        run("ip", &["link", "set", &host_if, "up"])?;
        net.exec(
            "ip",
            &["addr", "add", &format!("{device_ip}/30"), "dev", &device_if],
        )?;
        net.exec("ip", &["link", "set", &device_if, "up"])?;
        net.exec("ip", &["link", "set", "lo", "up"])?;
        net.exec(
            "ip",
            &["route", "add", "default", "via", &host_ip.to_string()],
        )?;
        Ok(net)
    }

    /// Runs `program` inside the namespace, to completion.
    pub fn exec(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let mut full = vec!["netns", "exec", &self.name, program];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Applies `rule` to packets in and out (with `peer`: only to and from
    /// that address).
    fn set_rules(&self, rule: Option<&str>, peer: Option<Ipv4Addr>) -> anyhow::Result<()> {
        let _ = self.exec("nft", &["delete", "table", "inet", "flotilla_fault"]);
        let Some(rule) = rule else { return Ok(()) };
        let (from, to) = match peer {
            Some(ip) => (format!("ip saddr {ip} "), format!("ip daddr {ip} ")),
            None => (String::new(), String::new()),
        };
        let script = format!(
            "table inet flotilla_fault {{\n\
             chain input {{\ntype filter hook input priority 0;\niifname \"lo\" accept\n{from}{rule}\n}}\n\
             chain output {{\ntype filter hook output priority 0;\noifname \"lo\" accept\n{to}{rule}\n}}\n\
             }}\n"
        );
        let file = tempfile::NamedTempFile::new()?;
        std::fs::write(file.path(), script)?;
        self.exec("nft", &["-f", &file.path().display().to_string()])
    }

    /// Drops `percent` % of the packets between the device and `peer` (its
    /// hub: the device link), at random, both ways.
    pub fn loss(&self, percent: u8, peer: Ipv4Addr) -> anyhow::Result<()> {
        self.set_rules(
            Some(&format!("numgen random mod 100 < {percent} drop")),
            Some(peer),
        )
    }

    /// Drops every packet: the device is cut off (connections hang).
    pub fn cut(&self) -> anyhow::Result<()> {
        self.set_rules(Some("drop"), None)
    }

    /// Counts the bytes (IP packets, headers included) between the device
    /// and `peer` from now on; read them with [`DeviceNet::counted`].
    pub fn count(&self, peer: Ipv4Addr) -> anyhow::Result<()> {
        let _ = self.exec("nft", &["delete", "table", "inet", "flotilla_count"]);
        let script = format!(
            "table inet flotilla_count {{\n\
             counter to_device {{}}\ncounter from_device {{}}\n\
             chain input {{\ntype filter hook input priority -10;\nip saddr {peer} counter name to_device\n}}\n\
             chain output {{\ntype filter hook output priority -10;\nip daddr {peer} counter name from_device\n}}\n\
             }}\n"
        );
        let file = tempfile::NamedTempFile::new()?;
        std::fs::write(file.path(), script)?;
        self.exec("nft", &["-f", &file.path().display().to_string()])
    }

    /// Bytes counted since [`DeviceNet::count`]: (to the device, from it).
    pub fn counted(&self) -> anyhow::Result<(u64, u64)> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "nft",
                "-j",
                "list",
                "counters",
                "table",
                "inet",
                "flotilla_count",
            ])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "nft: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let mut to = 0;
        let mut from = 0;
        for item in json["nftables"].as_array().into_iter().flatten() {
            let counter = &item["counter"];
            let bytes = counter["bytes"].as_u64().unwrap_or(0);
            match counter["name"].as_str() {
                Some("to_device") => to = bytes,
                Some("from_device") => from = bytes,
                _ => {}
            }
        }
        Ok((to, from))
    }

    /// Lifts any loss or cut-off.
    pub fn heal(&self) -> anyhow::Result<()> {
        self.set_rules(None, None)
    }
}

impl Drop for DeviceNet {
    fn drop(&mut self) {
        // The veth pair goes with the namespace.
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}
