use std::collections::BTreeMap;
use std::fs;

use flotilla_shared::wire::{
    Capabilities as WireCaps, EnvVar, Pod, PodSecurity, ResourceList, Resources, SecurityContext,
    VolumeMount,
};
use oci_spec::image::{ConfigBuilder, ImageConfiguration, ImageConfigurationBuilder};
use serde_json::Value;

use super::*;
use crate::bundle::{EtcFiles, PodVolumes, SandboxPaths};

/// A rootfs with `/etc/passwd` and `/etc/group`, and the pod's volume and
/// `/etc` file directories, all under one temp dir.
struct Fixture {
    tmp: tempfile::TempDir,
    volumes: PodVolumes,
    sandbox: SandboxPaths,
    host_sandbox: SandboxPaths,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        fs::create_dir_all(t.join("rootfs/etc")).unwrap();
        fs::write(
            t.join("rootfs/etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        fs::write(
            t.join("rootfs/etc/group"),
            "root:x:0:\napp:x:1000:\nstaff:x:50:app\n",
        )
        .unwrap();
        for dir in ["volumes/cache", "volumes/config", "seccomp"] {
            fs::create_dir_all(t.join(dir)).unwrap();
        }
        let volumes = PodVolumes {
            volumes: BTreeMap::from([
                ("cache".to_owned(), t.join("volumes/cache")),
                ("config".to_owned(), t.join("volumes/config")),
            ]),
            etc: EtcFiles {
                hosts: t.join("pod/hosts"),
                hostname: t.join("pod/hostname"),
                resolv_conf: Some("/etc/resolv.conf".into()),
            },
        };
        let sandbox = SandboxPaths {
            net: Some("/run/flotilla/ns/uid-1/net".into()),
            ipc: "/run/flotilla/ns/uid-1/ipc".into(),
            uts: Some("/run/flotilla/ns/uid-1/uts".into()),
        };
        let host_sandbox = SandboxPaths {
            net: None,
            ipc: "/run/flotilla/ns/uid-1/ipc".into(),
            uts: None,
        };
        Fixture {
            tmp,
            volumes,
            sandbox,
            host_sandbox,
        }
    }

    fn build(&self, pod: &Pod, image: &ImageConfiguration) -> Result<Spec, BundleError> {
        let sandbox = if pod.host_network {
            &self.host_sandbox
        } else {
            &self.sandbox
        };
        build(&BundleInputs {
            pod,
            container: &pod.containers[0],
            image,
            rootfs: &self.tmp.path().join("rootfs"),
            namespaces: sandbox,
            volumes: &self.volumes,
            cgroups_path: "/flotilla/pod-uid-1/uid-1-app-0",
            hostname: &pod.name,
            seccomp_dir: &self.tmp.path().join("seccomp"),
            cgroup_layout: Layout::Hybrid,
            node_memory_bytes: 1 << 30,
        })
    }
}

fn image(user: &str) -> ImageConfiguration {
    let config = ConfigBuilder::default()
        .user(user.to_owned())
        .env(vec![
            "PATH=/usr/bin:/bin".to_owned(),
            "LANG=C.UTF-8".to_owned(),
        ])
        .entrypoint(vec!["/docker-entrypoint.sh".to_owned()])
        .cmd(vec![
            "nginx".to_owned(),
            "-g".to_owned(),
            "daemon off;".to_owned(),
        ])
        .working_dir("/srv".to_owned())
        .build()
        .unwrap();
    ImageConfigurationBuilder::default()
        .config(config)
        .build()
        .unwrap()
}

fn pod(container: Container) -> Pod {
    Pod {
        uid: "uid-1".into(),
        namespace: "default".into(),
        name: "web".into(),
        containers: vec![container],
        ..Default::default()
    }
}

fn plain_container() -> Container {
    Container {
        name: "app".into(),
        image: "registry.local/nginx:1.25".into(),
        ..Default::default()
    }
}

fn hardened_pod() -> Pod {
    let mut p = pod(Container {
        env: vec![EnvVar {
            name: "LANG".into(),
            value: "de_DE.UTF-8".into(),
        }],
        resources: Resources {
            requests: ResourceList {
                cpu_millis: Some(250),
                memory_bytes: Some(64 << 20),
                pids: None,
            },
            limits: ResourceList {
                cpu_millis: Some(500),
                memory_bytes: Some(128 << 20),
                pids: Some(100),
            },
        },
        volume_mounts: vec![
            VolumeMount {
                volume: "cache".into(),
                mount_path: "/var/cache/nginx".into(),
                ..Default::default()
            },
            VolumeMount {
                volume: "cache".into(),
                mount_path: "/var/log/nginx".into(),
                sub_path: "logs".into(),
                ..Default::default()
            },
            VolumeMount {
                volume: "config".into(),
                mount_path: "/etc/nginx/conf.d".into(),
                read_only: true,
                ..Default::default()
            },
        ],
        security: SecurityContext {
            run_as_non_root: true,
            capabilities: WireCaps {
                add: vec!["NET_BIND_SERVICE".into()],
                drop: vec!["ALL".into()],
            },
            read_only_root_filesystem: true,
            seccomp: Seccomp::RuntimeDefault,
            ..Default::default()
        },
        ..plain_container()
    });
    p.security = PodSecurity {
        fs_group: Some(2000),
        supplemental_groups: vec![3000],
    };
    p
}

/// Sorts arrays whose order carries no meaning (capability sets come from a
/// `HashSet`) and replaces the temp dir with `$TMP`.
fn normalise(value: &mut Value, tmp: &str) {
    match value {
        Value::String(s) if s.contains(tmp) => *s = s.replace(tmp, "$TMP"),
        Value::Array(items) => items.iter_mut().for_each(|v| normalise(v, tmp)),
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                normalise(v, tmp);
                if matches!(key.as_str(), "bounding" | "effective" | "permitted")
                    && let Value::Array(items) = v
                {
                    items.sort_by_key(|i| i.to_string());
                }
            }
        }
        _ => {}
    }
}

/// Compares `spec` with `testdata/<name>.json`; `UPDATE_GOLDEN=1` rewrites
/// the file instead. The RuntimeDefault seccomp profile depends on the build
/// architecture, so it is checked here and shown in the file as a marker.
fn assert_golden(name: &str, spec: &Spec, tmp: &Path) {
    let mut value = serde_json::to_value(spec).unwrap();
    if let Some(seccomp) = value.pointer_mut("/linux/seccomp") {
        let bounding = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap()
            .bounding()
            .clone()
            .unwrap();
        let expected = seccomp::runtime_default(std::env::consts::ARCH, &bounding);
        if *seccomp == serde_json::to_value(&expected).unwrap() {
            *seccomp = Value::String("<RuntimeDefault for the build architecture>".into());
        }
    }
    normalise(&mut value, &tmp.display().to_string());
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("src/bundle/testdata/{name}.json"));
    let text = serde_json::to_string_pretty(&value).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, &text).unwrap();
        return;
    }
    let golden = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    let golden: Value = serde_json::from_str(&golden).unwrap();
    assert!(
        golden == value,
        "{name}.json differs (UPDATE_GOLDEN=1 rewrites it after review); got:\n{text}"
    );
}

#[test]
fn golden_plain_pod() {
    let f = Fixture::new();
    let spec = f.build(&pod(plain_container()), &image("")).unwrap();
    assert_golden("plain", &spec, f.tmp.path());
}

#[test]
fn golden_hardened_pod() {
    let f = Fixture::new();
    let spec = f.build(&hardened_pod(), &image("app")).unwrap();
    assert!(
        f.tmp.path().join("volumes/cache/logs").is_dir(),
        "subPath created"
    );
    assert_golden("hardened", &spec, f.tmp.path());
}

#[test]
fn golden_host_network_pod() {
    let f = Fixture::new();
    let mut p = pod(plain_container());
    p.host_network = true;
    let spec = f.build(&p, &image("")).unwrap();
    assert_golden("host_network", &spec, f.tmp.path());
}

#[test]
fn golden_privileged_pod() {
    let f = Fixture::new();
    let mut c = plain_container();
    c.security.privileged = true;
    c.security.allow_privilege_escalation = true;
    c.security.seccomp = Seccomp::RuntimeDefault;
    let spec = f.build(&pod(c), &image("")).unwrap();
    assert_golden("privileged", &spec, f.tmp.path());
}

#[test]
fn command_and_args_follow_kubernetes_rules() {
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    let ep = Some(s(&["/entry"]));
    let cmd = Some(s(&["serve", "--port=80"]));
    let cases: [(&[&str], &[&str], Vec<String>); 4] = [
        (&[], &[], s(&["/entry", "serve", "--port=80"])),
        (&["/bin/run"], &[], s(&["/bin/run"])),
        (&[], &["--debug"], s(&["/entry", "--debug"])),
        (&["/bin/run"], &["x"], s(&["/bin/run", "x"])),
    ];
    for (command_, args, expected) in cases {
        let c = Container {
            command: s(command_),
            args: s(args),
            ..plain_container()
        };
        assert_eq!(
            command(&c, &ep, &cmd).unwrap(),
            expected,
            "{command_:?} {args:?}"
        );
    }
    assert!(matches!(
        command(&plain_container(), &None, &None),
        Err(BundleError::NoCommand { .. })
    ));
    let bad = Container {
        command: s(&["", "x"]),
        ..plain_container()
    };
    assert!(matches!(
        command(&bad, &None, &None),
        Err(BundleError::InvalidArg { index: 0, .. })
    ));
}

#[test]
fn environment_layers_image_then_pod_with_path_and_hostname() {
    let c = Container {
        env: vec![
            EnvVar {
                name: "B".into(),
                value: "pod".into(),
            },
            EnvVar {
                name: "C".into(),
                value: "new".into(),
            },
        ],
        ..plain_container()
    };
    let image_env = Some(vec!["A=1".to_owned(), "B=image".to_owned()]);
    let env = environment(&c, &image_env, "web").unwrap();
    assert_eq!(
        env,
        [
            format!("PATH={DEFAULT_PATH}"),
            "HOSTNAME=web".into(),
            "A=1".into(),
            "B=pod".into(),
            "C=new".into()
        ]
    );
    let bad_image = Some(vec!["NOEQUALS".to_owned()]);
    assert!(matches!(
        environment(&c, &bad_image, "web"),
        Err(BundleError::InvalidEnv { .. })
    ));
    let bad = Container {
        env: vec![EnvVar {
            name: "A=B".into(),
            value: String::new(),
        }],
        ..plain_container()
    };
    assert!(matches!(
        environment(&bad, &None, "web"),
        Err(BundleError::InvalidEnv { .. })
    ));
}

#[test]
fn working_dir_falls_back_to_the_image_then_root() {
    let c = plain_container();
    assert_eq!(
        working_dir(&c, &Some("/srv".into())).unwrap(),
        Path::new("/srv")
    );
    assert_eq!(
        working_dir(&c, &Some(String::new())).unwrap(),
        Path::new("/")
    );
    assert_eq!(working_dir(&c, &None).unwrap(), Path::new("/"));
    let own = Container {
        working_dir: "/data".into(),
        ..plain_container()
    };
    assert_eq!(
        working_dir(&own, &Some("/srv".into())).unwrap(),
        Path::new("/data")
    );
    assert!(working_dir(&c, &Some("relative".into())).is_err());
}

#[test]
fn run_as_non_root_refuses_an_image_running_as_root() {
    let f = Fixture::new();
    let mut c = plain_container();
    c.security.run_as_non_root = true;
    let err = f.build(&pod(c.clone()), &image("root")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "container has runAsNonRoot and image will run as root"
    );
    c.security.run_as_user = Some(0);
    assert!(matches!(
        f.build(&pod(c.clone()), &image("app")),
        Err(BundleError::RunAsRoot)
    ));
    c.security.run_as_user = Some(1234);
    let spec = f.build(&pod(c), &image("")).unwrap();
    assert_eq!(spec.process().as_ref().unwrap().user().uid(), 1234);
}

#[test]
fn bad_volume_mounts_are_refused() {
    let f = Fixture::new();
    let mount = |volume: &str, path: &str, sub: &str| {
        let mut c = plain_container();
        c.volume_mounts = vec![VolumeMount {
            volume: volume.into(),
            mount_path: path.into(),
            sub_path: sub.into(),
            read_only: false,
        }];
        f.build(&pod(c), &image(""))
    };
    assert!(matches!(
        mount("nope", "/x", ""),
        Err(BundleError::UnknownVolume { .. })
    ));
    assert!(matches!(
        mount("cache", "x", ""),
        Err(BundleError::InvalidMountPath { .. })
    ));
    assert!(matches!(
        mount("cache", "/a/../b", ""),
        Err(BundleError::InvalidMountPath { .. })
    ));
    assert!(matches!(
        mount("cache", "/", ""),
        Err(BundleError::InvalidMountPath { .. })
    ));
    assert!(matches!(
        mount("cache", "/x", "../../etc"),
        Err(BundleError::InvalidSubPath { .. })
    ));
    assert!(matches!(
        mount("cache", "/x", "/etc"),
        Err(BundleError::InvalidSubPath { .. })
    ));
    std::os::unix::fs::symlink("/etc", f.tmp.path().join("volumes/cache/evil")).unwrap();
    assert!(matches!(
        mount("cache", "/x", "evil/shadow"),
        Err(BundleError::InvalidSubPath { .. })
    ));
    let mut c = plain_container();
    c.volume_mounts = vec![
        VolumeMount {
            volume: "cache".into(),
            mount_path: "/x".into(),
            ..Default::default()
        },
        VolumeMount {
            volume: "config".into(),
            mount_path: "/x/".into(),
            ..Default::default()
        },
    ];
    assert!(matches!(
        f.build(&pod(c), &image("")),
        Err(BundleError::DuplicateMount { .. })
    ));
}

#[test]
fn a_volume_at_etc_hosts_replaces_the_pod_file() {
    let f = Fixture::new();
    let mut c = plain_container();
    c.volume_mounts = vec![VolumeMount {
        volume: "config".into(),
        mount_path: "/etc/hosts".into(),
        ..Default::default()
    }];
    let spec = f.build(&pod(c), &image("")).unwrap();
    let hosts: Vec<_> = spec
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .filter(|m| m.destination() == Path::new("/etc/hosts"))
        .collect();
    assert_eq!(hosts.len(), 1);
    assert_eq!(
        hosts[0].source().as_deref(),
        Some(f.tmp.path().join("volumes/config").as_path())
    );
}

#[test]
fn a_sandbox_that_disagrees_with_host_network_or_a_bad_cgroups_path_is_an_error() {
    let f = Fixture::new();
    let p = pod(plain_container());
    let err = build(&BundleInputs {
        pod: &p,
        container: &p.containers[0],
        image: &image(""),
        rootfs: &f.tmp.path().join("rootfs"),
        namespaces: &f.host_sandbox,
        volumes: &f.volumes,
        cgroups_path: "/flotilla/pod-uid-1/c",
        hostname: "web",
        seccomp_dir: &f.tmp.path().join("seccomp"),
        cgroup_layout: Layout::V2,
        node_memory_bytes: 1 << 30,
    })
    .unwrap_err();
    assert!(matches!(err, BundleError::SandboxMismatch { .. }));
    let err = build(&BundleInputs {
        pod: &p,
        container: &p.containers[0],
        image: &image(""),
        rootfs: &f.tmp.path().join("rootfs"),
        namespaces: &f.sandbox,
        volumes: &f.volumes,
        cgroups_path: "flotilla/../../escape",
        hostname: "web",
        seccomp_dir: &f.tmp.path().join("seccomp"),
        cgroup_layout: Layout::V2,
        node_memory_bytes: 1 << 30,
    })
    .unwrap_err();
    assert!(matches!(err, BundleError::CgroupsPath(_)), "{err}");
}

#[test]
fn cgroup_namespace_only_on_v2_and_localhost_seccomp_loads() {
    let f = Fixture::new();
    fs::write(
        f.tmp.path().join("seccomp/log.json"),
        r#"{"defaultAction":"SCMP_ACT_LOG"}"#,
    )
    .unwrap();
    let mut c = plain_container();
    c.security.seccomp = Seccomp::Localhost {
        profile: "log.json".into(),
    };
    let p = pod(c);
    let spec = build(&BundleInputs {
        pod: &p,
        container: &p.containers[0],
        image: &image(""),
        rootfs: &f.tmp.path().join("rootfs"),
        namespaces: &f.sandbox,
        volumes: &f.volumes,
        cgroups_path: "/flotilla/pod-uid-1/c",
        hostname: "web",
        seccomp_dir: &f.tmp.path().join("seccomp"),
        cgroup_layout: Layout::V2,
        node_memory_bytes: 1 << 30,
    })
    .unwrap();
    let linux = spec.linux().as_ref().unwrap();
    assert!(
        linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::Cgroup)
    );
    assert_eq!(
        linux.seccomp().as_ref().unwrap().default_action(),
        oci_spec::runtime::LinuxSeccompAction::ScmpActLog
    );
    let mut c = plain_container();
    c.security.seccomp = Seccomp::Localhost {
        profile: "../../etc/shadow".into(),
    };
    assert!(matches!(
        f.build(&pod(c), &image("")),
        Err(BundleError::SeccompProfileName { .. })
    ));
}
