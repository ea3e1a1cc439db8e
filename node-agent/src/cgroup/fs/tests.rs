use std::io::Write;
use std::process::{Child, Command, Stdio};

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::*;

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// A fake v2 tree: mountinfo with a cgroup2 mount at `<tmp>/cg`.
fn fake_v2() -> (tempfile::TempDir, CgroupFs) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("cg");
    fs::create_dir(&root).unwrap();
    let mountinfo = tmp.path().join("mountinfo");
    write(
        &mountinfo,
        &format!(
            "25 1 0:22 / {} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
            root.display()
        ),
    );
    let cg = CgroupFs::detect_with(&root, &mountinfo).unwrap();
    (tmp, cg)
}

#[test]
fn a_cgroup2_mount_at_the_root_is_v2() {
    let (_tmp, cg) = fake_v2();
    assert_eq!(cg.layout(), Layout::V2);
}

#[test]
fn this_hosts_layout_matches_its_mounts() {
    let cg = CgroupFs::detect().unwrap();
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let expected = if filesystem_magic(Path::new("/sys/fs/cgroup")).unwrap() == CGROUP2_SUPER_MAGIC
    {
        Layout::V2
    } else if text.contains(" /sys/fs/cgroup/unified ") {
        Layout::Hybrid
    } else {
        Layout::V1
    };
    assert_eq!(cg.layout(), expected);
}

#[test]
fn v1_hierarchies_are_found_even_when_cpu_and_cpuacct_are_apart() {
    let mounts = parse_mountinfo(
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
         32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
         33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n\
         35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
         40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/x,name=systemd\n\
         41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
         50 1 0:40 / /other/cpu rw - cgroup cgroup rw,pids\n",
    );
    let cg = CgroupFs::from_mounts(Path::new("/sys/fs/cgroup"), &mounts, None).unwrap();
    assert_eq!(cg.layout(), Layout::Hybrid);
    assert_eq!(
        cg.dir("cpu", "/f/p").unwrap(),
        Path::new("/sys/fs/cgroup/cpu/f/p")
    );
    assert_eq!(
        cg.dir("cpuacct", "/f/p").unwrap(),
        Path::new("/sys/fs/cgroup/cpuacct/f/p")
    );
    // pids is mounted outside the root, so it does not count.
    assert!(matches!(
        cg.dir("pids", "/f/p"),
        Err(CgroupError::NoController { controller: "pids" })
    ));
    let dirs = cg.all_dirs("/f").unwrap();
    assert_eq!(dirs.len(), 5, "{dirs:?}");
    assert!(dirs.contains(&PathBuf::from("/sys/fs/cgroup/systemd/f")));
    assert!(dirs.contains(&PathBuf::from("/sys/fs/cgroup/unified/f")));

    let v1_only = &mounts[..5];
    let cg = CgroupFs::from_mounts(Path::new("/sys/fs/cgroup"), v1_only, None).unwrap();
    assert_eq!(cg.layout(), Layout::V1);
}

#[test]
fn no_cgroup_mount_under_the_root_is_an_error() {
    let mounts = parse_mountinfo("1 0 8:1 / / rw - ext4 /dev/vda rw\n");
    assert!(matches!(
        CgroupFs::from_mounts(Path::new("/sys/fs/cgroup"), &mounts, None),
        Err(CgroupError::NoHierarchy { .. })
    ));
}

#[test]
fn v2_stats_come_from_memory_current_stat_events_and_cpu_stat() {
    let (tmp, cg) = fake_v2();
    let dir = tmp.path().join("cg/flotilla/pod-a");
    write(&dir.join("memory.current"), "100000\n");
    write(
        &dir.join("memory.stat"),
        "anon 50000\nfile 40000\ninactive_file 30000\nactive_file 10000\n",
    );
    write(&dir.join("memory.max"), "max\n");
    write(
        &dir.join("memory.events"),
        "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\noom_group_kill 0\n",
    );
    write(
        &dir.join("cpu.stat"),
        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
    );
    write(&dir.join("pids.current"), "3\n");
    let stats = cg.stats("/flotilla/pod-a").unwrap();
    assert_eq!(
        stats,
        CgroupStats {
            cpu_usage_ns: 1_500_000,
            memory_working_set_bytes: 70_000,
            memory_limit_bytes: None,
            oom_kills: 2,
            pids: 3,
        }
    );
    write(&dir.join("memory.max"), "67108864\n");
    assert_eq!(
        cg.stats("/flotilla/pod-a").unwrap().memory_limit_bytes,
        Some(64 << 20)
    );
    assert_eq!(cg.oom_kills("/flotilla/pod-a").unwrap(), 2);
}

#[test]
fn v2_working_set_never_goes_below_zero_and_garbage_is_an_error() {
    let (tmp, cg) = fake_v2();
    let dir = tmp.path().join("cg/p");
    write(&dir.join("memory.current"), "10\n");
    write(&dir.join("memory.stat"), "inactive_file 30\n");
    write(&dir.join("memory.max"), "max\n");
    write(&dir.join("memory.events"), "oom 0\n");
    write(&dir.join("cpu.stat"), "usage_usec 1\n");
    write(&dir.join("pids.current"), "0\n");
    let stats = cg.stats("/p").unwrap();
    assert_eq!(stats.memory_working_set_bytes, 0);
    assert_eq!(stats.oom_kills, 0);
    write(&dir.join("pids.current"), "lots\n");
    assert!(matches!(cg.stats("/p"), Err(CgroupError::Parse { .. })));
    assert!(matches!(
        cg.stats("/gone"),
        Err(CgroupError::NotFound { .. })
    ));
}

#[test]
fn v2_create_delegates_cpu_memory_and_pids_down_to_the_pod() {
    let (tmp, cg) = fake_v2();
    let root = tmp.path().join("cg");
    write(
        &root.join("cgroup.controllers"),
        "cpuset cpu io memory hugetlb pids rdma\n",
    );
    write(&root.join("flotilla/cgroup.controllers"), "cpu memory\n");
    cg.create("/flotilla/pod-a").unwrap();
    assert!(root.join("flotilla/pod-a").is_dir());
    assert_eq!(
        fs::read_to_string(root.join("cgroup.subtree_control")).unwrap(),
        "+cpu +memory +pids"
    );
    assert_eq!(
        fs::read_to_string(root.join("flotilla/cgroup.subtree_control")).unwrap(),
        "+cpu +memory"
    );
    // The pod level offers nothing in this fake tree, so nothing is written.
    assert!(!root.join("flotilla/pod-a/cgroup.subtree_control").exists());
    assert!(cg.exists("/flotilla/pod-a").unwrap());
}

#[test]
fn v1_stats_sum_oom_kills_over_the_subtree() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let mut mountinfo = String::new();
    for (i, c) in ["cpuacct", "memory", "pids"].iter().enumerate() {
        fs::create_dir(base.join(c)).unwrap();
        mountinfo.push_str(&format!(
            "{} 1 0:{} / {} rw - cgroup cgroup rw,{c}\n",
            30 + i,
            30 + i,
            base.join(c).display()
        ));
    }
    write(&base.join("mountinfo"), &mountinfo);
    let cg = CgroupFs::detect_with(base, &base.join("mountinfo")).unwrap();
    assert_eq!(cg.layout(), Layout::V1);
    let mem = base.join("memory/flotilla/pod-a");
    write(&mem.join("memory.usage_in_bytes"), "5000\n");
    write(
        &mem.join("memory.stat"),
        "cache 10\ninactive_file 1\ntotal_inactive_file 1000\n",
    );
    write(&mem.join("memory.limit_in_bytes"), "9223372036854771712\n");
    write(
        &mem.join("memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
    );
    write(
        &mem.join("c1/memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    );
    write(
        &mem.join("c2/memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\n",
    );
    write(
        &base.join("cpuacct/flotilla/pod-a/cpuacct.usage"),
        "123456789\n",
    );
    write(&base.join("pids/flotilla/pod-a/pids.current"), "4\n");
    assert_eq!(
        cg.stats("/flotilla/pod-a").unwrap(),
        CgroupStats {
            cpu_usage_ns: 123_456_789,
            memory_working_set_bytes: 4000,
            memory_limit_bytes: None,
            oom_kills: 3,
            pids: 4,
        }
    );
    write(&mem.join("memory.limit_in_bytes"), "33554432\n");
    assert_eq!(
        cg.stats("/flotilla/pod-a").unwrap().memory_limit_bytes,
        Some(32 << 20)
    );
}

// --- On this machine's real cgroups (root, parallel-safe unique names). ---

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A unique top-level cgroup that is removed (with its children) on drop.
struct TestTree {
    cg: CgroupFs,
    top: String,
    pod: String,
    leaf: String,
}

impl TestTree {
    fn new() -> Self {
        let cg = CgroupFs::detect().unwrap();
        let top = format!(
            "/flotilla-test-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let pod = format!("{top}/pod-x");
        let leaf = format!("{pod}/ctr");
        TestTree { cg, top, pod, leaf }
    }

    /// Creates the container leaf the way runc does and moves `pid` into it.
    fn enter_leaf(&self, pid: u32) {
        self.cg.create(&self.leaf).unwrap();
        for dir in self.cg.all_dirs(&self.leaf).unwrap() {
            fs::write(dir.join("cgroup.procs"), pid.to_string()).unwrap();
        }
    }
}

impl Drop for TestTree {
    fn drop(&mut self) {
        // Grandchildren of a killed shell may still run in the leaf.
        if let Ok(dir) = self.cg.dir("pids", &self.leaf)
            && let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs"))
        {
            for pid in procs.split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        for path in [&self.leaf, &self.pod, &self.top] {
            let deadline = Instant::now() + Duration::from_secs(5);
            while let Err(e) = self.cg.remove(path) {
                if !e.retry_helps() || Instant::now() > deadline {
                    eprintln!("cleanup of {path}: {e}");
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// A child process killed and reaped on drop, so a failing test leaves
/// nothing running (or pinning its cgroup).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_waiting(script: &str) -> Killed {
    Killed(
        Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_pod_cgroup_on_this_host_counts_its_childs_cpu_memory_and_pids() {
    let tree = TestTree::new();
    tree.cg.create(&tree.pod).unwrap();
    tree.cg.create(&tree.pod).unwrap(); // again: existing is fine
    assert!(tree.cg.exists(&tree.pod).unwrap());
    let mut child = spawn_waiting("read go; while :; do /bin/true; done");
    tree.enter_leaf(child.0.id());
    child.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let stats = poll("usage in the pod cgroup", || {
        let s = tree.cg.stats(&tree.pod).unwrap();
        (s.cpu_usage_ns > 0 && s.memory_working_set_bytes > 0 && s.pids >= 1).then_some(s)
    });
    assert_eq!(stats.oom_kills, 0);
    let leaf = tree.cg.stats(&tree.leaf).unwrap();
    assert!(leaf.pids >= 1);
    // A pod parent with a child cannot go away yet, and says retry.
    let err = tree.cg.remove(&tree.pod).unwrap_err();
    assert!(err.retry_helps(), "{err}");
    drop(child);
    poll("the leaf to empty", || {
        (tree.cg.stats(&tree.leaf).unwrap().pids == 0).then_some(())
    });
}

#[test]
fn an_oom_kill_in_a_container_leaf_shows_in_the_pod_and_the_leaf() {
    let tree = TestTree::new();
    tree.cg.create(&tree.pod).unwrap();
    let limit_file = match tree.cg.layout {
        Layout::V2 => tree.cg.dir("memory", &tree.pod).unwrap().join("memory.max"),
        _ => tree
            .cg
            .dir("memory", &tree.pod)
            .unwrap()
            .join("memory.limit_in_bytes"),
    };
    fs::write(&limit_file, (32u64 << 20).to_string()).unwrap();
    assert_eq!(
        tree.cg.stats(&tree.pod).unwrap().memory_limit_bytes,
        Some(32 << 20)
    );
    // The shell keeps 200 MB in a variable: far over the pod's 32 MiB.
    let mut child =
        spawn_waiting("read go; x=$(head -c 200000000 /dev/zero | tr '\\0' a); sleep 100");
    tree.enter_leaf(child.0.id());
    child.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let kills = poll("an OOM kill", || {
        let n = tree.cg.oom_kills(&tree.pod).unwrap();
        (n > 0).then_some(n)
    });
    assert!(kills >= 1);
    assert!(tree.cg.oom_kills(&tree.leaf).unwrap() >= 1);
    drop(child);
    poll("the leaf to empty", || {
        (tree.cg.stats(&tree.leaf).unwrap().pids == 0).then_some(())
    });
}

#[test]
fn removing_a_pod_cgroup_that_is_gone_is_fine_and_stats_say_not_found() {
    let tree = TestTree::new();
    tree.cg.create(&tree.pod).unwrap();
    tree.cg.remove(&tree.pod).unwrap();
    tree.cg.remove(&tree.pod).unwrap();
    assert!(!tree.cg.exists(&tree.pod).unwrap());
    assert!(matches!(
        tree.cg.stats(&tree.pod),
        Err(CgroupError::NotFound { .. })
    ));
}
