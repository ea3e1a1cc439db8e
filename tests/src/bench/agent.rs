//! `flotilla-bench agent`: the device agent's pod start latency against bare
//! `runc run -d` of the same bundle in the same run, its memory with 0, 1,
//! 10 and 20 pods, and the size of the static aarch64 binary.
//!
//! Start latency is measured in-process: the agent library is assembled as
//! `flotilla-agent run` assembles it (the runtime [`choose`] picks, pod
//! cgroups on the host's cgroup file system, an image store pulling from a
//! private registry), the busybox image is pulled first, and each sample
//! sends a desired state that adds one pod with one `sleep` container. The
//! clock runs from the send to the status that reports the container
//! running, which the agent sends right after the runtime's start returned.
//! The peer copies the `config.json` the agent generated for one of its
//! containers, gives it a fresh overlay rootfs, id and cgroup, and times the
//! runtime's `run -d` from spawn to exit. Agent and peer samples alternate.
//!
//! Memory is the VmRSS of a real `flotilla-agent run` process, the static
//! x86_64 musl build that devices run, fed from a desired-state file; its
//! first pod pulls the image. Both static agents are built with
//! `scripts/build-agent.sh` if missing (`scripts/test.sh` builds them first,
//! so that a stale one is not measured).
//!
//! Everything the benchmark makes on the host (containers, mounts, pod
//! cgroups, the agent process, the registry) is removed at the end, also
//! when it fails.

mod memory;
mod scratch;
mod start;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use flotilla_agent::image::Platform;
use flotilla_shared::wire::{
    Container, ContainerState, DesiredState, Pod, PodStatusUpdate, RestartPolicy,
};
use oci_client::secrets::RegistryAuth;
use serde_json::{Value, json};

use crate::oci_image::{busybox_image, push_client, push_image};
use crate::registry::{Registry, RegistryOptions};
use scratch::Scratch;

const NODE: &str = "bench-node";

/// Runs the benchmark; returns its JSON line.
pub fn run(quick: bool) -> anyhow::Result<Value> {
    let samples = if quick { 5 } else { 20 };
    let x86_64 = static_agent("x86_64-unknown-linux-musl")?;
    let aarch64 = static_agent("aarch64-unknown-linux-musl")?;
    let aarch64_bytes = std::fs::metadata(&aarch64)?.len();

    let registry = Registry::start(RegistryOptions::default())?;
    let image = format!("{}/bench/busybox:1", registry.host());
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    tokio.block_on(async {
        let built = busybox_image(Platform::of_this_device())?;
        let client = push_client(&registry.host())?;
        push_image(&client, &image, &built, &RegistryAuth::Anonymous).await
    })?;

    let mut scratch = Scratch::new()?;
    // The device agent runs on one thread; so does this one.
    let start = tokio.block_on(start::start_latency(
        &mut scratch,
        &x86_64,
        &registry,
        &image,
        samples,
    ));
    drop(tokio);
    let start = start?;
    let rss = memory::memory(&mut scratch, &x86_64, &registry, &image)?;
    drop(scratch);

    let ms = |d: f64| (d * 100.0).round() / 100.0;
    let agent_p50 = percentile(&start.agent_ms, 0.5);
    let runc_p50 = percentile(&start.runc_ms, 0.5);
    Ok(json!({
        "bench": "agent",
        "peer": format!("{} run -d", start.runtime),
        "samples": samples,
        "start_p50_ms": ms(agent_p50),
        "start_p90_ms": ms(percentile(&start.agent_ms, 0.9)),
        "runc_p50_ms": ms(runc_p50),
        "runc_p90_ms": ms(percentile(&start.runc_ms, 0.9)),
        "start_ratio_vs_runc": (agent_p50 / runc_p50 * 1000.0).round() / 1000.0,
        "rss_idle_kib": rss.idle_kib,
        "rss_1_pod_kib": rss.pod_1_kib,
        "rss_10_pods_kib": rss.pods_10_kib,
        "rss_20_pods_kib": rss.pods_20_kib,
        "rss_peak_kib": rss.peak_kib,
        "aarch64_bytes": aarch64_bytes,
        "x86_64_bytes": std::fs::metadata(&x86_64)?.len(),
    }))
}

/// The static agent for `target` as `scripts/build-agent.sh` builds it,
/// built now if it is missing.
fn static_agent(target: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // <target dir>/<profile>/flotilla-bench
    let target_dir = exe
        .ancestors()
        .nth(2)
        .context("the benchmark binary is not in a cargo target directory")?;
    let binary = target_dir.join(target).join("agent/flotilla-agent");
    if !binary.exists() {
        eprintln!("building {}", binary.display());
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("workspace root")?;
        let status = Command::new(workspace.join("scripts/build-agent.sh"))
            .arg(target)
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(workspace)
            .status()
            .context("running scripts/build-agent.sh")?;
        if !status.success() || !binary.exists() {
            bail!("scripts/build-agent.sh {target} failed ({status})");
        }
    }
    Ok(binary)
}

/// The nearest-rank percentile `p` (0..=1) of `samples`.
fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A pod with one busybox container that sleeps.
fn sleeper(uid: &str, image: &str) -> Pod {
    Pod {
        uid: uid.to_owned(),
        namespace: "bench".into(),
        name: format!("sleeper-{}", uid.rsplit('-').next().unwrap_or(uid)),
        containers: vec![Container {
            name: "sleep".into(),
            image: image.to_owned(),
            command: vec!["/bin/sleep".into(), "3600".into()],
            ..Container::default()
        }],
        restart_policy: RestartPolicy::Always,
        termination_grace_period_seconds: 1,
        ..Pod::default()
    }
}

fn desired(revision: u64, pods: &[Pod]) -> DesiredState {
    DesiredState {
        node: NODE.into(),
        revision,
        pods: pods.to_vec(),
        services: vec![],
    }
}

/// Whether the status says the pod's (only) container runs; an error if it
/// ended or waits for a reason that is an error.
fn running(status: &PodStatusUpdate) -> anyhow::Result<bool> {
    let Some(container) = status.containers.first() else {
        return Ok(false);
    };
    match &container.state {
        ContainerState::Running { .. } => Ok(true),
        ContainerState::Terminated(t) => bail!(
            "pod {}: the container ended ({}: {})",
            status.pod_uid,
            t.reason,
            t.message
        ),
        ContainerState::Waiting { reason, message }
            if reason.contains("Err") || reason.contains("BackOff") =>
        {
            bail!("pod {}: {reason}: {message}", status.pod_uid)
        }
        ContainerState::Waiting { .. } => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentile_is_nearest_rank() {
        let samples = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(percentile(&samples, 0.5), 3.0);
        assert_eq!(percentile(&samples, 0.9), 5.0);
        assert_eq!(percentile(&samples, 0.0), 1.0);
        let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&twenty, 0.5), 10.0);
        assert_eq!(percentile(&twenty, 0.9), 18.0);
    }
}
