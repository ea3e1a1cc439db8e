//! The runtime against real runc and real shims (as root): create, start,
//! logs, signals, exit codes, agent restarts, log rotation, exec, pod
//! sandboxes. Each test has its own runtime root, its own cgroup parent
//! `/flotilla-test-<unique>` and its own sandbox directory, and removes them.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use flotilla_agent::runtime::sandbox::{self, SandboxPaths};
use flotilla_agent::runtime::{
    ContainerInfo, CreateRequest, LogLimits, OciRuntime, RuntimeChoice, RuntimeCli,
    RuntimeCliConfig, RuntimeError, RuntimeKind, RuntimePreference, Status,
};

const RUNC: &str = "/usr/sbin/runc";

fn unique() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{}-{}-{nanos:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// One test's runtime, directories and cgroup parent; removes every
/// container, cgroup and sandbox it made when dropped.
struct Fixture {
    dir: tempfile::TempDir,
    tag: String,
    ids: std::sync::Mutex<Vec<String>>,
    pods: std::sync::Mutex<Vec<String>>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let rootfs = dir.path().join("rootfs");
        for sub in ["bin", "proc", "dev", "tmp"] {
            std::fs::create_dir_all(rootfs.join(sub)).expect("mkdir");
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox-static");
        for applet in [
            "sh", "sleep", "echo", "nc", "hostname", "readlink", "cat", "seq",
        ] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).expect("ln");
        }
        Fixture {
            dir,
            tag: unique(),
            ids: Default::default(),
            pods: Default::default(),
        }
    }

    fn config(&self) -> RuntimeCliConfig {
        let choice = RuntimeChoice {
            binary: PathBuf::from(RUNC),
            kind: RuntimeKind::Runc,
            fallback_reason: None,
        };
        let mut config = RuntimeCliConfig::new(
            &choice,
            &self.dir.path().join("root"),
            &self.dir.path().join("work"),
        );
        config.shim_exe = PathBuf::from(env!("CARGO_BIN_EXE_flotilla-agent"));
        config
    }

    fn runtime(&self) -> RuntimeCli {
        RuntimeCli::new(self.config()).expect("runtime")
    }

    fn cgroup_parent(&self) -> String {
        format!("flotilla-test-{}", self.tag)
    }

    /// A container id, remembered for cleanup.
    fn id(&self, name: &str) -> String {
        let id = format!("{}-{name}", self.tag);
        self.ids.lock().unwrap().push(id.clone());
        id
    }

    /// Writes a bundle whose process runs `script` with busybox sh. With a
    /// sandbox, the container joins its net, ipc and uts namespaces; with
    /// `pid_namespace` false it shares the host's pid namespace, so that
    /// SIGTERM kills it (the init of a pid namespace ignores it).
    fn bundle(
        &self,
        id: &str,
        script: &str,
        sandbox: Option<&SandboxPaths>,
        pid_namespace: bool,
    ) -> CreateRequest {
        let bundle = self.dir.path().join("containers").join(id);
        std::fs::create_dir_all(&bundle).expect("mkdir bundle");
        let mut namespaces = vec![serde_json::json!({"type": "mount"})];
        if pid_namespace {
            namespaces.push(serde_json::json!({"type": "pid"}));
        }
        match sandbox {
            Some(s) => {
                namespaces.push(serde_json::json!({"type": "network", "path": s.net}));
                namespaces.push(serde_json::json!({"type": "ipc", "path": s.ipc}));
                namespaces.push(serde_json::json!({"type": "uts", "path": s.uts}));
            }
            None => {
                for kind in ["network", "ipc", "uts"] {
                    namespaces.push(serde_json::json!({"type": kind}));
                }
            }
        }
        let config = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": false,
                "user": {"uid": 0, "gid": 0},
                "args": ["/bin/sh", "-c", script],
                "env": ["PATH=/bin"],
                "cwd": "/"
            },
            "root": {"path": self.dir.path().join("rootfs"), "readonly": true},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}
            ],
            "linux": {
                "cgroupsPath": format!("/{}/{id}", self.cgroup_parent()),
                "namespaces": namespaces
            }
        });
        std::fs::write(
            bundle.join("config.json"),
            serde_json::to_vec_pretty(&config).unwrap(),
        )
        .expect("write config.json");
        CreateRequest {
            id: id.to_owned(),
            bundle: bundle.clone(),
            shim_dir: bundle.join("shim"),
        }
    }

    fn sandbox(&self, name: &str, hostname: &str) -> (String, SandboxPaths) {
        let uid = format!("{}-{name}", self.tag);
        self.pods.lock().unwrap().push(uid.clone());
        let paths = sandbox::create(&self.dir.path().join("run"), &uid, hostname).expect("sandbox");
        (uid, paths)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let root = self.dir.path().join("root");
        for id in self.ids.lock().unwrap().iter() {
            let _ = std::process::Command::new(RUNC)
                .arg("--root")
                .arg(&root)
                .args(["delete", "--force", id])
                .stderr(std::process::Stdio::null())
                .status();
        }
        let run = self.dir.path().join("run");
        for uid in self.pods.lock().unwrap().iter() {
            let _ = sandbox::remove(&run, uid);
        }
        let _ = sandbox::release(&run);
        remove_cgroup_parent(&self.cgroup_parent());
    }
}

/// Removes `/<parent>` from every cgroup hierarchy (v1 controllers, the v2
/// unified mount, or the v2 root); runc removed the leaves.
fn remove_cgroup_parent(parent: &str) {
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        roots.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    for root in roots {
        let dir = root.join(parent);
        if dir.is_dir() {
            // Leaves left by a failed test first, then the parent.
            if let Ok(children) = std::fs::read_dir(&dir) {
                for child in children.flatten().filter(|c| c.path().is_dir()) {
                    let _ = std::fs::remove_dir(child.path());
                }
            }
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

async fn wait_for(rt: &RuntimeCli, id: &str, wanted: Status) -> ContainerInfo {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = rt
            .state(id)
            .await
            .expect("state")
            .expect("container exists");
        if state.status == wanted {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "{id} stayed {:?}, wanted {wanted:?}",
            state.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn read_log(shim_dir: &Path) -> String {
    std::fs::read_to_string(shim_dir.join("container.log")).unwrap_or_default()
}

async fn wait_for_log(shim_dir: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = read_log(shim_dir);
        if log.contains(needle) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} never appeared in the log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_container_logs_in_cri_format_and_sigterm_is_recorded_as_143() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let id = fx.id("term");
    let req = fx.bundle(
        &id,
        "echo hello; echo oops >&2; exec sleep 1000",
        None,
        false,
    );

    let created = rt.create(&req).await.expect("create");
    assert_eq!(created.status, Status::Created);
    let pid = created.pid.expect("pid");
    let state = rt.state(&id).await.expect("state").expect("exists");
    assert_eq!((state.status, state.pid), (Status::Created, Some(pid)));

    rt.start(&id).await.expect("start");
    assert_eq!(
        rt.state(&id).await.unwrap().unwrap().status,
        Status::Running
    );
    let log = wait_for_log(&req.shim_dir, "stderr F oops").await;
    let hello = log
        .lines()
        .find(|l| l.ends_with(" stdout F hello"))
        .expect("hello line");
    let time = hello.split(' ').next().unwrap();
    assert!(
        time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339).is_ok(),
        "RFC 3339 time: {time}"
    );

    rt.kill(&id, libc::SIGTERM).await.expect("kill");
    let stopped = wait_for(&rt, &id, Status::Stopped).await;
    let exit = stopped.exit.expect("exit recorded");
    assert_eq!((exit.code, exit.signal), (143, Some(libc::SIGTERM)));
    let exit_file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(req.shim_dir.join("exit")).expect("exit file"))
            .unwrap();
    assert_eq!(exit_file["code"], 143);
    assert_eq!(rt.list().await.expect("list"), vec![stopped]);

    rt.delete(&id, false).await.expect("delete");
    assert_eq!(rt.state(&id).await.expect("state"), None);
    assert!(rt.list().await.expect("list").is_empty());
}

#[tokio::test]
async fn the_exit_code_of_a_shell_exiting_3_is_3() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let id = fx.id("exit3");
    let req = fx.bundle(&id, "exit 3", None, true);
    rt.create(&req).await.expect("create");
    rt.start(&id).await.expect("start");
    let exit = wait_for(&rt, &id, Status::Stopped)
        .await
        .exit
        .expect("exit");
    assert_eq!((exit.code, exit.signal), (3, None));
    rt.delete(&id, false).await.expect("delete");
}

#[tokio::test]
async fn an_exit_while_the_agent_is_down_is_reported_after_it_restarts() {
    let fx = Fixture::new();
    let id = fx.id("restart");
    let req = fx.bundle(&id, "sleep 1; exit 7", None, true);
    {
        let rt = fx.runtime();
        rt.create(&req).await.expect("create");
        rt.start(&id).await.expect("start");
    }
    // The agent is "down": nothing watches the container but its shim.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !req.shim_dir.join("exit").exists() {
        assert!(
            Instant::now() < deadline,
            "the shim never recorded the exit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rt = fx.runtime();
    let state = rt.state(&id).await.expect("state").expect("exists");
    assert_eq!(state.status, Status::Stopped);
    assert_eq!(state.exit.map(|e| e.code), Some(7));
    assert_eq!(
        rt.list().await.expect("list")[0].exit.map(|e| e.code),
        Some(7)
    );
    rt.delete(&id, false).await.expect("delete");
}

#[tokio::test]
async fn a_killed_shim_leaves_the_exit_unknown_and_the_container_reaped_by_init() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let id = fx.id("shimkill");
    let req = fx.bundle(&id, "exec sleep 1000", None, true);
    rt.create(&req).await.expect("create");
    rt.start(&id).await.expect("start");
    let record = std::fs::read_to_string(req.shim_dir.join("shim.pid")).expect("shim.pid");
    let shim_pid: i32 = record.split_whitespace().next().unwrap().parse().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-9", &shim_pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    rt.kill(&id, libc::SIGKILL).await.expect("kill container");
    let stopped = wait_for(&rt, &id, Status::Stopped).await;
    assert_eq!(stopped.exit, None, "nobody could read the status");
    rt.delete(&id, false).await.expect("delete");
}

#[tokio::test]
async fn log_rotation_caps_the_log_of_a_chatty_container() {
    let fx = Fixture::new();
    let mut config = fx.config();
    config.log_limits = LogLimits {
        max_bytes: 64 * 1024,
        max_files: 2,
    };
    let rt = RuntimeCli::new(config).expect("runtime");
    let id = fx.id("chatty");
    // About 400 KB of output.
    let req = fx.bundle(
        &id,
        "for i in $(seq 1 5000); do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done",
        None,
        true,
    );
    rt.create(&req).await.expect("create");
    rt.start(&id).await.expect("start");
    assert_eq!(
        wait_for(&rt, &id, Status::Stopped)
            .await
            .exit
            .map(|e| e.code),
        Some(0)
    );
    let current = std::fs::metadata(req.shim_dir.join("container.log"))
        .expect("log")
        .len();
    let older = std::fs::metadata(req.shim_dir.join("container.log.1"))
        .expect("log.1")
        .len();
    assert!(
        current <= 64 * 1024 && older <= 64 * 1024,
        "{current} and {older} bytes"
    );
    assert!(!req.shim_dir.join("container.log.2").exists());
    let last = read_log(&req.shim_dir).lines().last().map(str::to_owned);
    assert!(
        last.is_some_and(|l| l.contains(" stdout F line-5000-")),
        "the last line is kept"
    );
    rt.delete(&id, false).await.expect("delete");
}

/// A bundle whose command does not exist in the rootfs.
fn broken_bundle(fx: &Fixture, id: &str) -> CreateRequest {
    let req = fx.bundle(id, "true", None, true);
    let config = std::fs::read_to_string(req.bundle.join("config.json")).unwrap();
    std::fs::write(
        req.bundle.join("config.json"),
        config.replace("/bin/sh", "/bin/nonexistent"),
    )
    .unwrap();
    req
}

#[tokio::test]
async fn a_failed_create_returns_the_runtimes_error_and_leaves_nothing() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let id = fx.id("bad");
    let req = broken_bundle(&fx, &id);
    let err = rt.create(&req).await.unwrap_err();
    assert!(matches!(err, RuntimeError::Shim { .. }), "{err}");
    assert!(err.to_string().contains("nonexistent"), "{err}");
    assert_eq!(rt.state(&id).await.expect("state"), None);
    assert_eq!(rt.shim_dir(&id), None);
}

/// The pids of this process's `shim-standby` children.
fn standby_children() -> Vec<u32> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid ...
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1));
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            == Some("Z");
        if ppid == Some(me.as_str())
            && !zombie
            && String::from_utf8_lossy(&cmdline).contains("shim-standby")
        {
            found.push(pid);
        }
    }
    found
}

#[tokio::test]
async fn run_creates_and_starts_in_one_call_and_a_failed_run_leaves_nothing() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let id = fx.id("run");
    let req = fx.bundle(&id, "echo up; exec sleep 1000", None, true);
    let running = rt.run(&req).await.expect("run");
    assert_eq!(running.status, Status::Running);
    let state = rt.state(&id).await.expect("state").expect("exists");
    assert_eq!((state.status, state.pid), (Status::Running, running.pid));
    wait_for_log(&req.shim_dir, "stdout F up").await;

    // The next start's shim is already waiting.
    let deadline = Instant::now() + Duration::from_secs(10);
    while standby_children().is_empty() {
        assert!(Instant::now() < deadline, "no spare shim was started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bad = fx.id("runbad");
    let req_bad = broken_bundle(&fx, &bad);
    let err = rt.run(&req_bad).await.unwrap_err();
    assert!(err.to_string().contains("nonexistent"), "{err}");
    assert_eq!(rt.state(&bad).await.expect("state"), None);

    rt.kill(&id, libc::SIGKILL).await.expect("kill");
    wait_for(&rt, &id, Status::Stopped).await;
    rt.delete(&id, false).await.expect("delete");
    // A spare shim ends with the runtime that made it.
    drop(rt);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !standby_children().is_empty() {
        assert!(
            Instant::now() < deadline,
            "a spare shim outlived its runtime"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn exec_returns_output_and_exit_code_and_times_out() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let id = fx.id("exec");
    let req = fx.bundle(&id, "exec sleep 1000", None, true);
    rt.create(&req).await.expect("create");
    rt.start(&id).await.expect("start");
    let argv: Vec<String> = ["sh", "-c", "echo out; echo err >&2; exit 5"]
        .map(String::from)
        .to_vec();
    let out = rt
        .exec(&id, &argv, Duration::from_secs(10))
        .await
        .expect("exec");
    assert_eq!(out.exit_code, 5);
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    let slow = ["sleep", "30"].map(String::from).to_vec();
    let started = Instant::now();
    let err = rt
        .exec(&id, &slow, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::ExecTimeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    rt.kill(&id, libc::SIGKILL).await.expect("kill");
    assert_eq!(
        wait_for(&rt, &id, Status::Stopped)
            .await
            .exit
            .map(|e| e.code),
        Some(137)
    );
    rt.delete(&id, false).await.expect("delete");
}

#[tokio::test]
async fn containers_of_a_pod_share_its_network_namespace_and_hostname() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let (_uid, ns) = fx.sandbox("pod", "pod-host");
    let server = fx.id("server");
    let req_a = fx.bundle(&server, "echo from-server | nc -l -p 8080", Some(&ns), true);
    let probe = fx.id("probe");
    let req_b = fx.bundle(
        &probe,
        "hostname; readlink /proc/self/ns/net",
        Some(&ns),
        true,
    );
    for (req, id) in [(&req_a, &server), (&req_b, &probe)] {
        rt.create(req).await.expect("create");
        rt.start(id).await.expect("start");
    }
    // The second container's view of the namespaces.
    assert_eq!(
        wait_for(&rt, &probe, Status::Stopped)
            .await
            .exit
            .map(|e| e.code),
        Some(0)
    );
    let ino = std::fs::metadata(&ns.net).expect("ns file").ino();
    let log = wait_for_log(&req_b.shim_dir, &format!("stdout F net:[{ino}]")).await;
    assert!(log.contains(" stdout F pod-host\n"), "{log}");
    // The first container listens inside the sandbox; the host reaches it
    // from inside the namespace only.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stream = loop {
        let addr = "127.0.0.1:8080".parse().unwrap();
        match flotilla_agent::sys::netns::connect_in(&ns.net, addr, Duration::from_secs(1)) {
            Ok(stream) => break stream,
            Err(e) => assert!(Instant::now() < deadline, "connect_in: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut greeting = String::new();
    std::io::Read::read_to_string(&mut stream, &mut greeting).expect("read");
    assert_eq!(greeting, "from-server\n");
    drop(stream);
    wait_for(&rt, &server, Status::Stopped).await;
    for id in [&server, &probe] {
        rt.delete(id, true).await.expect("delete");
    }
}

#[test]
fn the_runtime_choice_matches_this_hosts_cgroups() {
    let choice =
        flotilla_agent::runtime::choose(&RuntimePreference::Auto, Path::new("/sys/fs/cgroup"))
            .expect("a runtime");
    let controllers =
        std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").unwrap_or_default();
    let crun_installed = ["/usr/bin/crun", "/usr/sbin/crun", "/usr/local/bin/crun"]
        .iter()
        .any(|p| Path::new(p).is_file());
    if !controllers.trim().is_empty() {
        assert_eq!(choice.kind, RuntimeKind::Runc);
        let reason = choice.fallback_reason.expect("a reason");
        assert!(reason.contains("hybrid"), "{reason}");
    } else if crun_installed {
        assert_eq!(choice.kind, RuntimeKind::Crun);
        assert_eq!(choice.fallback_reason, None);
    } else {
        assert_eq!(choice.kind, RuntimeKind::Runc);
        assert!(
            choice
                .fallback_reason
                .expect("a reason")
                .contains("not found")
        );
    }
}
