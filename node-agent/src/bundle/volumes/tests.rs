use std::os::unix::fs::MetadataExt;

use flotilla_shared::wire::{PodSecurity, ProjectedFile, Volume};

use super::*;

fn volume(name: &str, source: VolumeSource) -> Volume {
    Volume {
        name: name.into(),
        source,
    }
}

fn files(default_mode: u32, list: &[(&str, Option<u32>, &str)]) -> FileSet {
    FileSet {
        default_mode,
        files: list
            .iter()
            .map(|(path, mode, data)| ProjectedFile {
                path: (*path).into(),
                mode: *mode,
                data: data.as_bytes().to_vec(),
            })
            .collect(),
    }
}

fn pod(volumes: Vec<Volume>) -> Pod {
    Pod {
        uid: "u1".into(),
        name: "web".into(),
        volumes,
        ..Default::default()
    }
}

/// Pod state and run dirs in one temp dir, torn down on drop so a failed
/// test leaves no tmpfs mounted.
struct Dirs {
    tmp: tempfile::TempDir,
}

impl Dirs {
    fn new() -> Self {
        Dirs {
            tmp: tempfile::tempdir().unwrap(),
        }
    }
    fn state(&self) -> PathBuf {
        self.tmp.path().join("state/pods/u1")
    }
    fn run(&self) -> PathBuf {
        self.tmp.path().join("run/pods/u1")
    }
    fn prepare(&self, pod: &Pod) -> Result<PodVolumes, VolumeError> {
        prepare(pod, &self.state(), &self.run())
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        if let Err(e) = teardown(&self.state(), &self.run()) {
            eprintln!("teardown: {e}");
        }
    }
}

fn mounts_at(path: &Path) -> usize {
    mount::mounts_at(&fs::canonicalize(path).unwrap()).unwrap()
}

#[test]
fn empty_dirs_live_on_disk_or_on_a_sized_tmpfs_and_teardown_removes_them() {
    let dirs = Dirs::new();
    let p = pod(vec![
        volume(
            "scratch",
            VolumeSource::EmptyDir {
                medium: StorageMedium::Default,
                size_limit_bytes: None,
            },
        ),
        volume(
            "fast",
            VolumeSource::EmptyDir {
                medium: StorageMedium::Memory,
                size_limit_bytes: Some(1 << 20),
            },
        ),
    ]);
    let prepared = dirs.prepare(&p).unwrap();
    let scratch = &prepared.volumes["scratch"];
    let fast = &prepared.volumes["fast"];
    assert_eq!(scratch, &dirs.state().join("volumes/scratch"));
    assert_eq!(fs::metadata(scratch).unwrap().mode() & 0o7777, 0o777);
    assert_ne!(mount::filesystem_magic(scratch).unwrap(), TMPFS_MAGIC);
    assert_eq!(mount::filesystem_magic(fast).unwrap(), TMPFS_MAGIC);
    // The size limit holds: 2 MiB do not fit in 1 MiB.
    let big = vec![0u8; 2 << 20];
    assert!(fs::write(fast.join("big"), &big).is_err());
    // Preparing again (an agent restart) keeps the one mount.
    dirs.prepare(&p).unwrap();
    assert_eq!(mounts_at(fast), 1);
    teardown(&dirs.state(), &dirs.run()).unwrap();
    assert!(!fast.exists() && !scratch.exists());
    assert!(!dirs.state().join("hosts").exists());
    teardown(&dirs.state(), &dirs.run()).unwrap();
}

#[test]
fn secrets_are_written_only_to_tmpfs_and_config_maps_to_disk_with_modes() {
    let dirs = Dirs::new();
    let p = pod(vec![
        volume(
            "tls",
            VolumeSource::Secret(files(
                0o644,
                &[
                    ("tls.key", Some(0o600), "KEY"),
                    ("certs/ca.crt", None, "CA"),
                ],
            )),
        ),
        volume(
            "conf",
            VolumeSource::ConfigMap(files(
                0o640,
                &[
                    ("app.yaml", None, "a: 1\n"),
                    ("run.sh", Some(0o755), "#!/bin/sh\n"),
                ],
            )),
        ),
    ]);
    let prepared = dirs.prepare(&p).unwrap();
    let tls = &prepared.volumes["tls"];
    assert!(tls.starts_with(dirs.run()));
    assert_eq!(mount::filesystem_magic(tls).unwrap(), TMPFS_MAGIC);
    assert_eq!(fs::read_to_string(tls.join("tls.key")).unwrap(), "KEY");
    assert_eq!(
        fs::metadata(tls.join("tls.key")).unwrap().mode() & 0o777,
        0o600
    );
    assert_eq!(fs::read_to_string(tls.join("certs/ca.crt")).unwrap(), "CA");
    assert_eq!(
        fs::metadata(tls.join("certs/ca.crt")).unwrap().mode() & 0o777,
        0o644
    );
    let conf = &prepared.volumes["conf"];
    assert!(conf.starts_with(dirs.state()));
    assert_eq!(
        fs::metadata(conf.join("app.yaml")).unwrap().mode() & 0o777,
        0o640
    );
    assert_eq!(
        fs::metadata(conf.join("run.sh")).unwrap().mode() & 0o777,
        0o755
    );
    // No secret byte reached the disk side.
    assert!(!dirs.state().join("volumes/tls").exists());
}

#[test]
fn fs_group_owns_volume_contents_with_group_access() {
    let dirs = Dirs::new();
    let mut p = pod(vec![
        volume(
            "data",
            VolumeSource::EmptyDir {
                medium: StorageMedium::Default,
                size_limit_bytes: None,
            },
        ),
        volume(
            "conf",
            VolumeSource::ConfigMap(files(0o600, &[("a/b.txt", None, "x")])),
        ),
    ]);
    p.security = PodSecurity {
        fs_group: Some(4321),
        supplemental_groups: vec![],
    };
    let prepared = dirs.prepare(&p).unwrap();
    let data = fs::metadata(&prepared.volumes["data"]).unwrap();
    assert_eq!(data.gid(), 4321);
    assert_eq!(data.mode() & 0o2000, 0o2000, "setgid directory");
    let file = fs::metadata(prepared.volumes["conf"].join("a/b.txt")).unwrap();
    assert_eq!(file.gid(), 4321);
    assert_eq!(file.mode() & 0o777, 0o640);
    let dir = fs::metadata(prepared.volumes["conf"].join("a")).unwrap();
    assert_eq!(dir.gid(), 4321);
}

#[test]
fn bad_file_paths_modes_and_names_change_nothing() {
    let bad_sets = [
        files(0o644, &[("../escape", None, "x")]),
        files(0o644, &[("/abs", None, "x")]),
        files(0o644, &[("a/./b", None, "x")]),
        files(0o644, &[("", None, "x")]),
        files(0o644, &[("a", None, "x"), ("a", None, "y")]),
        files(0o644, &[("a", Some(0o4755), "x")]),
    ];
    for set in bad_sets {
        let dirs = Dirs::new();
        let p = pod(vec![
            volume(
                "ok",
                VolumeSource::EmptyDir {
                    medium: StorageMedium::Default,
                    size_limit_bytes: None,
                },
            ),
            volume("bad", VolumeSource::ConfigMap(set.clone())),
        ]);
        let err = dirs.prepare(&p).unwrap_err();
        assert!(!err.retry_helps(), "{err}");
        assert!(!dirs.state().exists(), "{set:?} created something");
    }
    for name in ["", "..", "a/b"] {
        let dirs = Dirs::new();
        let p = pod(vec![volume(
            name,
            VolumeSource::EmptyDir {
                medium: StorageMedium::Default,
                size_limit_bytes: None,
            },
        )]);
        assert!(
            matches!(dirs.prepare(&p), Err(VolumeError::InvalidName { .. })),
            "{name:?}"
        );
    }
    let dirs = Dirs::new();
    let twice = volume(
        "x",
        VolumeSource::EmptyDir {
            medium: StorageMedium::Default,
            size_limit_bytes: None,
        },
    );
    assert!(matches!(
        dirs.prepare(&pod(vec![twice.clone(), twice])),
        Err(VolumeError::Duplicate { .. })
    ));
}

#[test]
fn host_paths_are_checked_or_created_by_kind() {
    let dirs = Dirs::new();
    let t = dirs.tmp.path();
    let host = |path: &Path, kind| {
        let p = pod(vec![volume(
            "h",
            VolumeSource::HostPath {
                path: path.display().to_string(),
                kind,
            },
        )]);
        dirs.prepare(&p).map(|v| v.volumes["h"].clone())
    };
    let made = t.join("made/dir");
    assert_eq!(host(&made, HostPathKind::DirectoryOrCreate).unwrap(), made);
    assert!(made.is_dir());
    let file = t.join("made/sub/file");
    host(&file, HostPathKind::FileOrCreate).unwrap();
    assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o644);
    assert!(host(&file, HostPathKind::File).is_ok());
    assert!(host(&file, HostPathKind::Directory).is_err());
    assert!(host(&made, HostPathKind::File).is_err());
    assert!(host(&t.join("missing"), HostPathKind::Directory).is_err());
    assert!(host(&t.join("missing"), HostPathKind::Unchecked).is_ok());
    let sock = t.join("s.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    assert!(host(&sock, HostPathKind::Socket).is_ok());
    assert!(host(&file, HostPathKind::Socket).is_err());
    assert!(host(Path::new("/dev/null"), HostPathKind::CharDevice).is_ok());
    assert!(host(Path::new("/dev/null"), HostPathKind::BlockDevice).is_err());
    assert!(matches!(
        host(Path::new("relative"), HostPathKind::Unchecked),
        Err(VolumeError::HostPath { .. })
    ));
    assert!(matches!(
        host(Path::new("/a/../etc"), HostPathKind::Unchecked),
        Err(VolumeError::HostPath { .. })
    ));
}

#[test]
fn the_pod_gets_hosts_and_hostname_files_naming_it() {
    let dirs = Dirs::new();
    let prepared = dirs.prepare(&pod(vec![])).unwrap();
    assert_eq!(fs::read_to_string(&prepared.etc.hostname).unwrap(), "web\n");
    let hosts = fs::read_to_string(&prepared.etc.hosts).unwrap();
    assert!(
        hosts.contains("127.0.0.1\tlocalhost") && hosts.contains("\tweb\n"),
        "{hosts}"
    );
    assert_eq!(
        prepared.etc.resolv_conf.is_some(),
        Path::new("/etc/resolv.conf").is_file()
    );
}

#[test]
fn an_updated_config_map_drops_removed_keys_and_replaces_changed_ones() {
    let dirs = Dirs::new();
    let v1 = pod(vec![volume(
        "conf",
        VolumeSource::ConfigMap(files(
            0o644,
            &[
                ("a", None, "1"),
                ("old/x", None, "x"),
                ("keep/y", None, "y"),
            ],
        )),
    )]);
    let conf = dirs.prepare(&v1).unwrap().volumes["conf"].clone();
    assert!(conf.join("old/x").exists());
    // `a` turns from a file into a directory, `old/` goes, `keep/y` changes.
    let v2 = pod(vec![volume(
        "conf",
        VolumeSource::ConfigMap(files(0o644, &[("a/b", None, "2"), ("keep/y", None, "y2")])),
    )]);
    dirs.prepare(&v2).unwrap();
    assert_eq!(fs::read_to_string(conf.join("a/b")).unwrap(), "2");
    assert_eq!(fs::read_to_string(conf.join("keep/y")).unwrap(), "y2");
    assert!(!conf.join("old").exists());
    let mut names: Vec<_> = fs::read_dir(&conf)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "keep"]);
}

#[test]
fn a_secret_that_grows_gets_a_bigger_tmpfs_on_the_next_prepare() {
    let dirs = Dirs::new();
    let small = pod(vec![volume(
        "s",
        VolumeSource::Secret(files(0o600, &[("k", None, "v")])),
    )]);
    let path = dirs.prepare(&small).unwrap().volumes["s"].clone();
    let before = crate::sys::filesystem_space(&path).unwrap().total_bytes;
    let big_value = "x".repeat(3 << 20);
    let big = pod(vec![volume(
        "s",
        VolumeSource::Secret(files(0o600, &[("k", None, big_value.as_str())])),
    )]);
    dirs.prepare(&big).unwrap();
    assert_eq!(mounts_at(&path), 1);
    assert!(crate::sys::filesystem_space(&path).unwrap().total_bytes > before);
    assert_eq!(fs::metadata(path.join("k")).unwrap().len(), 3 << 20);
}
