//! Resident memory of a real `flotilla-agent run` process.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use flotilla_shared::wire::{DesiredState, PodStatusUpdate};

use super::scratch::Scratch;
use super::{NODE, desired, running, sleeper};
use crate::registry::Registry;

/// Longest wait for the agent to take a desired state.
const TAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for 10 more pods to run.
const PODS_TIMEOUT: Duration = Duration::from_secs(120);

pub(super) struct RssFigures {
    pub idle_kib: u64,
    /// The first pod pulls the image.
    pub pod_1_kib: u64,
    pub pods_10_kib: u64,
    pub pods_20_kib: u64,
    /// VmHWM at the end.
    pub peak_kib: u64,
}

/// Runs `flotilla-agent run` and reads its resident memory idle, then with
/// 1 (the first pod pulls the image), 10 and 20 running pods.
pub(super) fn memory(
    scratch: &mut Scratch,
    agent_binary: &Path,
    registry: &Registry,
    image: &str,
) -> anyhow::Result<RssFigures> {
    let dir = scratch.dir("process")?;
    let (state_dir, run_dir, status_dir) = (dir.join("state"), dir.join("run"), dir.join("status"));
    let desired_file = dir.join("desired.json");
    scratch.runtime_roots.push(run_dir.join("runtime"));
    write_desired(&desired_file, &desired(1, &[]))?;
    let log = std::fs::File::create(dir.join("agent.log"))?;
    let child = Command::new(agent_binary)
        .args(["run", "--node", NODE])
        .arg("--state-dir")
        .arg(&state_dir)
        .arg("--run-dir")
        .arg(&run_dir)
        .arg("--desired-file")
        .arg(&desired_file)
        .arg("--status-dir")
        .arg(&status_dir)
        .args(["--insecure-registry", &registry.host()])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", agent_binary.display()))?;
    let pid = child.id();
    scratch.agent = Some(child);
    let agent_log = || std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();

    // Idle: the empty desired state is taken once it is on disk.
    let deadline = Instant::now() + TAKE_TIMEOUT;
    while !state_dir.join("desired.bin").exists() {
        if Instant::now() > deadline || scratch.agent_exited() {
            bail!("the agent did not take its desired state:\n{}", agent_log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    let idle_kib = proc_status_kib(pid, "VmRSS")?;

    let mut pods = Vec::new();
    let mut at = Vec::new();
    for (revision, count) in [(2, 1), (3, 10), (4, 20)] {
        while pods.len() < count {
            pods.push(sleeper(&scratch.pod_uid(1000 + pods.len()), image));
        }
        write_desired(&desired_file, &desired(revision, &pods))?;
        let deadline = Instant::now() + PODS_TIMEOUT;
        loop {
            let mut all = true;
            for pod in &pods {
                let path = status_dir.join(format!("{}.json", pod.uid));
                let status: Option<PodStatusUpdate> = std::fs::read(&path)
                    .ok()
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok());
                all &= match status {
                    Some(status) => running(&status)?,
                    None => false,
                };
            }
            if all {
                break;
            }
            if Instant::now() > deadline || scratch.agent_exited() {
                bail!(
                    "{count} pods not running after {PODS_TIMEOUT:?}:\n{}",
                    agent_log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_secs(1));
        at.push(proc_status_kib(pid, "VmRSS")?);
    }
    let peak_kib = proc_status_kib(pid, "VmHWM")?;
    eprintln!(
        "agent memory: idle {idle_kib} KiB, 1 pod {} KiB, 10 pods {} KiB, 20 pods {} KiB, peak {peak_kib} KiB",
        at[0], at[1], at[2]
    );
    Ok(RssFigures {
        idle_kib,
        pod_1_kib: at[0],
        pods_10_kib: at[1],
        pods_20_kib: at[2],
        peak_kib,
    })
}

/// Replaces the desired-state file in one rename (the agent polls it).
fn write_desired(path: &Path, desired: &DesiredState) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(desired)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// A `kB` field of `/proc/<pid>/status`.
fn proc_status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("{path}: no {field}"))
}

#[cfg(test)]
mod tests {
    use super::proc_status_kib;

    #[test]
    fn proc_status_kib_reads_this_process_and_refuses_unknown_fields() {
        let pid = std::process::id();
        let rss = proc_status_kib(pid, "VmRSS").expect("VmRSS");
        let peak = proc_status_kib(pid, "VmHWM").expect("VmHWM");
        assert!(rss > 0 && peak >= rss, "rss {rss}, peak {peak}");
        assert!(proc_status_kib(pid, "VmNothing").is_err());
    }
}
