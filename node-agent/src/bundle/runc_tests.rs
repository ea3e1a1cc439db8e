//! End to end on this machine: a bundle made by [`super::spec::build`],
//! [`super::rootfs::prepare`] and [`super::volumes::prepare`] runs under the
//! real runc with the user, capabilities, mounts and limits it asks for.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use flotilla_shared::wire::{
    Capabilities, Container, FileSet, Pod, ProjectedFile, ResourceList, Resources, Seccomp,
    SecurityContext, Volume, VolumeMount, VolumeSource,
};
use oci_spec::image::{ConfigBuilder, ImageConfigurationBuilder};

use super::*;
use crate::cgroup::{CgroupFs, Cgroups};

const RUNC: &str = "/usr/sbin/runc";
const BUSYBOX: &str = "/usr/bin/busybox";

/// Namespaces for the pod sandbox, held by a sleeping process; killed on drop.
struct Sandbox(Child);

impl Sandbox {
    fn start() -> Self {
        let child = Command::new("unshare")
            .args(["--net", "--ipc", "--uts", "sleep", "60"])
            .spawn()
            .expect("unshare");
        Sandbox(child)
    }
    fn paths(&self) -> SandboxPaths {
        let ns = |n: &str| PathBuf::from(format!("/proc/{}/ns/{n}", self.0.id()));
        SandboxPaths {
            net: Some(ns("net")),
            ipc: ns("ipc"),
            uts: Some(ns("uts")),
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Cleans up everything the test made, whatever happened.
struct Cleanup {
    runc_root: PathBuf,
    id: String,
    container_dir: PathBuf,
    pod_state: PathBuf,
    pod_run: PathBuf,
    cgroup_parent: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new(RUNC)
            .arg("--root")
            .arg(&self.runc_root)
            .args(["delete", "--force", &self.id])
            .stderr(Stdio::null())
            .status();
        if let Err(e) = rootfs::release(&self.container_dir) {
            eprintln!("release: {e}");
        }
        if let Err(e) = volumes::teardown(&self.pod_state, &self.pod_run) {
            eprintln!("teardown: {e}");
        }
        if let Ok(cg) = CgroupFs::detect() {
            let _ = cg.remove(&format!("{}/pod-x", self.cgroup_parent));
            let _ = cg.remove(&self.cgroup_parent);
        }
    }
}

/// An image rootfs with a static busybox and an `app` user.
fn image_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("image");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n",
    )
    .unwrap();
    fs::write(
        root.join("etc/group"),
        "root:x:0:\napp:x:1000:\nvideo:x:44:app\n",
    )
    .unwrap();
    root
}

/// Whether the host's busybox is built for the architecture this test was
/// compiled for. Under qemu-user (the ARM unit tests on an x86 machine) it
/// is not: the bundle's seccomp profile names the target's architectures,
/// so the host's runc would run an x86 program under an ARM-only filter.
fn busybox_matches_this_build() -> bool {
    let Ok(elf) = std::fs::read(BUSYBOX) else {
        return false;
    };
    let machine = elf.get(18..20).map(|m| u16::from_le_bytes([m[0], m[1]]));
    let wanted: u16 = match std::env::consts::ARCH {
        "x86_64" => 62,
        "aarch64" => 183,
        "arm" => 40,
        _ => return false,
    };
    machine == Some(wanted)
}

#[test]
fn runc_runs_a_hardened_bundle_as_specified() {
    assert!(Path::new(RUNC).exists(), "this test needs runc at {RUNC}");
    assert!(
        Path::new(BUSYBOX).exists(),
        "this test needs a static busybox at {BUSYBOX}"
    );
    if !busybox_matches_this_build() {
        // Run natively on an ARM device or CI runner, it takes this path.
        eprintln!("{BUSYBOX} is for another architecture than this build (qemu-user): not run");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let unique = format!(
        "{}-{}",
        std::process::id(),
        t.file_name()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches('.')
    );
    let cleanup = Cleanup {
        runc_root: t.join("runc"),
        id: format!("bundle-test-{unique}"),
        container_dir: t.join("containers/c1"),
        pod_state: t.join("state/pods/x"),
        pod_run: t.join("run/pods/x"),
        cgroup_parent: format!("/flotilla-bundle-test-{unique}"),
    };
    let cg = CgroupFs::detect().unwrap();
    cg.create(&format!("{}/pod-x", cleanup.cgroup_parent))
        .unwrap();

    let script = "id; cat /etc/hostname; hostname; grep CapEff /proc/self/status; \
                  cat /conf/greeting; echo ok > /data/out; \
                  touch /rootfile 2>/dev/null && echo rootfs-writable || echo rootfs-readonly; \
                  grep NoNewPrivs /proc/self/status; grep Seccomp: /proc/self/status; \
                  cat /proc/kcore 2>/dev/null | head -c 1 | wc -c";
    let container = Container {
        name: "app".into(),
        command: vec![
            "/bin/busybox".into(),
            "sh".into(),
            "-c".into(),
            script.into(),
        ],
        resources: Resources {
            // Burstable: this machine lacks CAP_SYS_RESOURCE, so the
            // Guaranteed OOM score (-997, lower than ours) cannot be set.
            requests: ResourceList {
                cpu_millis: Some(100),
                memory_bytes: Some(32 << 20),
                pids: None,
            },
            limits: ResourceList {
                cpu_millis: Some(200),
                memory_bytes: Some(64 << 20),
                pids: Some(50),
            },
        },
        volume_mounts: vec![
            VolumeMount {
                volume: "data".into(),
                mount_path: "/data".into(),
                ..Default::default()
            },
            VolumeMount {
                volume: "conf".into(),
                mount_path: "/conf".into(),
                read_only: true,
                ..Default::default()
            },
        ],
        security: SecurityContext {
            run_as_non_root: true,
            capabilities: Capabilities {
                add: vec!["NET_BIND_SERVICE".into()],
                drop: vec!["ALL".into()],
            },
            read_only_root_filesystem: true,
            seccomp: Seccomp::RuntimeDefault,
            ..Default::default()
        },
        ..Default::default()
    };
    let pod = Pod {
        uid: "x".into(),
        name: "web".into(),
        containers: vec![container],
        volumes: vec![
            Volume {
                name: "data".into(),
                source: VolumeSource::EmptyDir {
                    medium: Default::default(),
                    size_limit_bytes: None,
                },
            },
            Volume {
                name: "conf".into(),
                source: VolumeSource::ConfigMap(FileSet {
                    default_mode: 0o644,
                    files: vec![ProjectedFile {
                        path: "greeting".into(),
                        mode: None,
                        data: b"hello from a configmap\n".to_vec(),
                    }],
                }),
            },
        ],
        ..Default::default()
    };
    let image = ImageConfigurationBuilder::default()
        .config(
            ConfigBuilder::default()
                .user("app".to_owned())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();

    let kind = rootfs::prepare(&image_rootfs(t), &cleanup.container_dir).unwrap();
    let prepared = volumes::prepare(&pod, &cleanup.pod_state, &cleanup.pod_run).unwrap();
    let sandbox = Sandbox::start();
    let cgroups_path = format!("{}/pod-x/{}", cleanup.cgroup_parent, cleanup.id);
    let spec = spec::build(&BundleInputs {
        pod: &pod,
        container: &pod.containers[0],
        image: &image,
        rootfs: &cleanup.container_dir.join("rootfs"),
        namespaces: &sandbox.paths(),
        volumes: &prepared,
        cgroups_path: &cgroups_path,
        hostname: "web",
        seccomp_dir: t,
        cgroup_layout: cg.layout(),
        node_memory_bytes: 1 << 30,
    })
    .unwrap();
    write(&cleanup.container_dir, &spec).unwrap();

    let out = Command::new(RUNC)
        .arg("--root")
        .arg(&cleanup.runc_root)
        .args(["run", "--bundle"])
        .arg(&cleanup.container_dir)
        .arg(&cleanup.id)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "runc ({kind:?} rootfs) failed: {stderr}\n{stdout}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("uid=1000(app) gid=1000(app) groups="),
        "{stdout}"
    );
    assert!(
        lines[0].contains("44(video)"),
        "group membership from /etc/group: {stdout}"
    );
    assert_eq!(lines[1], "web", "{stdout}");
    assert_eq!(lines[2], "web", "{stdout}");
    // Only CAP_NET_BIND_SERVICE (bit 10) could be effective, and a non-root
    // user without ambient capabilities has none.
    assert_eq!(lines[3], "CapEff:\t0000000000000000", "{stdout}");
    assert_eq!(lines[4], "hello from a configmap", "{stdout}");
    assert_eq!(lines[5], "rootfs-readonly", "{stdout}");
    assert_eq!(lines[6], "NoNewPrivs:\t1", "{stdout}");
    assert_eq!(lines[7], "Seccomp:\t2", "{stdout}");
    assert_eq!(
        lines[8].trim(),
        "0",
        "masked /proc/kcore reads empty: {stdout}"
    );
    assert_eq!(
        fs::read_to_string(prepared.volumes["data"].join("out")).unwrap(),
        "ok\n"
    );
    drop(sandbox);
    drop(cleanup);
}
