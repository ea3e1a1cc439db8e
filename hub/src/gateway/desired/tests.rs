use std::collections::BTreeMap;

use flotilla_shared::model::{ConfigMap, Node, Pod, Secret};
use flotilla_shared::wire::{self, ProbeAction, Seccomp, VolumeSource};
use serde_json::{Value, json};

use super::*;

#[derive(Default)]
struct Objects {
    config_maps: BTreeMap<(String, String), ConfigMap>,
    secrets: BTreeMap<(String, String), Secret>,
}

impl Referenced for Objects {
    fn config_map(&self, namespace: &str, name: &str) -> Option<&ConfigMap> {
        self.config_maps.get(&(namespace.into(), name.into()))
    }
    fn secret(&self, namespace: &str, name: &str) -> Option<&Secret> {
        self.secrets.get(&(namespace.into(), name.into()))
    }
}

fn objects() -> Objects {
    let mut objects = Objects::default();
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": "conf"},
        "data": {"LEVEL": "debug", "app.yaml": "port: 80\n", "bad-name": "x", "1st": "skip"},
        "binaryData": {"blob": "AAEC"},
    }))
    .unwrap();
    objects
        .config_maps
        .insert(("default".into(), "conf".into()), cm);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": "creds"},
        "data": {"password": "aHVudGVyMg==", "token": "dG9r"},
    }))
    .unwrap();
    objects
        .secrets
        .insert(("default".into(), "creds".into()), secret);
    objects
}

fn node() -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": "gw-1"},
        "status": {
            "addresses": [{"type": "Hostname", "address": "gw-1"}, {"type": "InternalIP", "address": "10.0.0.7"}],
            "allocatable": {"cpu": "4", "memory": "2Gi", "pods": "110"},
        },
    }))
    .unwrap()
}

fn pod_of(spec: Value) -> Pod {
    let mut spec = spec;
    spec["nodeName"] = json!("gw-1");
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": "web", "uid": "uid-web",
                     "labels": {"app": "web", "tier": "edge"},
                     "annotations": {"note": "say \"hi\""}},
        "spec": spec,
    }))
    .unwrap()
}

fn resolve(spec: Value) -> Result<wire::Pod, Unresolved> {
    pod(&pod_of(spec), &objects(), Some(&node()))
}

/// A file of a volume: path, own mode, contents.
type File = (String, Option<u32>, Vec<u8>);

fn env_of(c: &wire::Container) -> Vec<(&str, &str)> {
    c.env
        .iter()
        .map(|v| (v.name.as_str(), v.value.as_str()))
        .collect()
}

#[test]
fn environment_is_resolved_as_kubelet_resolves_it() {
    let pod = resolve(json!({"containers": [{
        "name": "app", "image": "registry.local/app:1",
        "resources": {"limits": {"cpu": "1500m"}, "requests": {"cpu": "250m", "memory": "64Mi"}},
        "envFrom": [
            {"configMapRef": {"name": "conf"}, "prefix": "CONF_"},
            {"secretRef": {"name": "creds"}},
            {"configMapRef": {"name": "absent", "optional": true}},
        ],
        "env": [
            {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "conf", "key": "LEVEL"}}},
            {"name": "password", "value": "overridden $(LEVEL)"},
            {"name": "URL", "value": "http://$(HOST_IP):80/$(UNDEFINED)/$$(LEVEL)"},
            {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "URL2", "value": "http://$(HOST_IP)/"},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "TIER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['tier']"}}},
            {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "CPU_REQ_M", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
            {"name": "MEM_LIMIT_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "MEM_REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory", "divisor": "0"}}},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "MAYBE", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nope", "optional": true}}},
            {"name": "MAYBE2", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k", "optional": true}}},
        ],
        "command": ["/bin/app", "--log=$(LEVEL)"],
        "args": ["--on=$(NODE)", "$(MISSING)", "$$(NODE)"],
    }]}))
    .unwrap();
    let c = &pod.containers[0];
    assert_eq!(
        env_of(c),
        [
            // `1st` is no variable name, but `CONF_1st` is.
            ("CONF_1st", "skip"),
            ("CONF_LEVEL", "debug"),
            ("CONF_app.yaml", "port: 80\n"),
            ("CONF_bad-name", "x"),
            // `blob` is binaryData: envFrom takes `data` only, as kubelet does.
            ("password", "overridden debug"),
            ("token", "tok"),
            ("LEVEL", "debug"),
            // HOST_IP was not defined yet when URL was: left as written.
            ("URL", "http://$(HOST_IP):80/$(UNDEFINED)/$(LEVEL)"),
            ("HOST_IP", "10.0.0.7"),
            ("URL2", "http://10.0.0.7/"),
            ("NODE", "gw-1"),
            ("NS", "default"),
            ("TIER", "edge"),
            ("CPU_LIMIT", "2"),
            ("CPU_REQ_M", "250"),
            // No memory limit: the node's allocatable, 2Gi.
            ("MEM_LIMIT_MI", "2048"),
            ("MEM_REQ", "67108864"),
            ("TOKEN", "tok"),
        ]
    );
    assert_eq!(c.command, ["/bin/app", "--log=debug"]);
    assert_eq!(c.args, ["--on=gw-1", "$(MISSING)", "$(NODE)"]);
    assert_eq!(c.resources.limits.cpu_millis, Some(1500));
    assert_eq!(c.resources.limits.memory_bytes, None);
    assert_eq!(c.resources.requests.cpu_millis, Some(250));
    assert_eq!(c.resources.requests.memory_bytes, Some(64 << 20));
}

#[test]
fn env_from_skips_keys_that_are_not_variable_names() {
    let pod = resolve(json!({"containers": [{
        "name": "app", "image": "app",
        "envFrom": [{"configMapRef": {"name": "conf"}}],
    }]}))
    .unwrap();
    let names: Vec<&str> = pod.containers[0]
        .env
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    for name in &names {
        assert!(
            flotilla_shared::validation::names::env_var_name(name).is_empty(),
            "{name}"
        );
    }
    assert_eq!(names, ["LEVEL", "app.yaml", "bad-name"]);
}

#[test]
fn missing_references_say_what_kubelet_says() {
    let cases = [
        (
            json!({"name": "A", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}),
            "configmap \"nope\" not found",
        ),
        (
            json!({"name": "A", "valueFrom": {"configMapKeyRef": {"name": "conf", "key": "k"}}}),
            "couldn't find key k in ConfigMap default/conf",
        ),
        (
            json!({"name": "A", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}),
            "secret \"nope\" not found",
        ),
        (
            json!({"name": "A", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}}),
            "couldn't find key k in Secret default/creds",
        ),
        (
            json!({"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}),
            "status.podIP is not available on devices yet for pods without hostNetwork",
        ),
        (
            json!({"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "containerName": "other"}}}),
            "container \"other\" not found",
        ),
    ];
    for (var, message) in cases {
        let err = resolve(json!({"containers": [{"name": "app", "image": "app", "env": [var]}]}))
            .unwrap_err();
        assert_eq!(err.reason, CREATE_CONTAINER_CONFIG_ERROR, "{message}");
        assert_eq!(err.message, message);
    }
    let err = resolve(json!({"containers": [{"name": "app", "image": "app",
        "envFrom": [{"secretRef": {"name": "gone"}}]}]}))
    .unwrap_err();
    assert_eq!(err.message, "secret \"gone\" not found");
}

#[test]
fn host_network_pods_get_the_node_address_as_pod_ip() {
    let pod = resolve(
        json!({"hostNetwork": true, "containers": [{"name": "app", "image": "app",
        "env": [{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}]}),
    )
    .unwrap();
    assert_eq!(env_of(&pod.containers[0]), [("IP", "10.0.0.7")]);
    assert!(pod.host_network);
}

#[test]
fn probes_get_defaults_and_named_ports() {
    let pod = resolve(json!({"containers": [{
        "name": "app", "image": "app",
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                  {"name": "dns", "containerPort": 53, "protocol": "UDP", "hostPort": 5353}],
        "livenessProbe": {"httpGet": {"port": "http", "scheme": "HTTPS", "httpHeaders": [{"name": "X", "value": "1"}]}},
        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 5, "failureThreshold": 1},
        "startupProbe": {"exec": {"command": ["true"]}, "initialDelaySeconds": 3},
    }]}))
    .unwrap();
    let c = &pod.containers[0];
    assert_eq!(c.ports[1].protocol, wire::Protocol::Udp);
    assert_eq!(c.ports[1].host_port, Some(5353));
    assert_eq!(c.ports[0].host_port, None);
    let liveness = c.liveness.as_ref().unwrap();
    assert_eq!(
        liveness.action,
        ProbeAction::HttpGet {
            scheme: wire::HttpScheme::Https,
            host: String::new(),
            port: 8080,
            path: "/".into(),
            headers: vec![wire::HttpHeader {
                name: "X".into(),
                value: "1".into()
            }],
        }
    );
    assert_eq!(
        (
            liveness.period_seconds,
            liveness.timeout_seconds,
            liveness.success_threshold,
            liveness.failure_threshold
        ),
        (10, 1, 1, 3)
    );
    let readiness = c.readiness.as_ref().unwrap();
    assert_eq!(
        readiness.action,
        ProbeAction::TcpSocket {
            host: String::new(),
            port: 8080
        }
    );
    assert_eq!(
        (readiness.period_seconds, readiness.failure_threshold),
        (5, 1)
    );
    assert_eq!(c.startup.as_ref().unwrap().initial_delay_seconds, 3);

    for (probe, message) in [
        (
            json!({"tcpSocket": {"port": "metrics"}}),
            "liveness probe of container \"app\": no port named \"metrics\"",
        ),
        (
            json!({"grpc": {"port": 9000}}),
            "liveness probe of container \"app\": grpc probes are not supported on devices",
        ),
    ] {
        let err = resolve(
            json!({"containers": [{"name": "app", "image": "app", "livenessProbe": probe}]}),
        )
        .unwrap_err();
        assert_eq!(err.message, message);
    }
}

#[test]
fn security_merges_the_pods_settings_with_secure_defaults() {
    let pod = resolve(json!({
        "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000,
                            "supplementalGroups": [4000], "runAsNonRoot": true},
        "initContainers": [{"name": "side", "image": "side", "restartPolicy": "Always",
                            "securityContext": {"runAsUser": 0, "runAsNonRoot": false, "privileged": true,
                                                "seccompProfile": {"type": "Unconfined"}}}],
        "containers": [{"name": "app", "image": "app",
                        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                            "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}},
                       {"name": "admin", "image": "admin",
                        "securityContext": {"allowPrivilegeEscalation": false,
                                            "capabilities": {"add": ["SYS_ADMIN"]},
                                            "seccompProfile": {"type": "Localhost", "localhostProfile": "strict.json"}}}],
        "restartPolicy": "OnFailure",
        "terminationGracePeriodSeconds": 5,
    }))
    .unwrap();
    assert_eq!(pod.security.fs_group, Some(2000));
    assert_eq!(pod.security.supplemental_groups, [4000]);
    assert_eq!(pod.restart_policy, wire::RestartPolicy::OnFailure);
    assert_eq!(pod.termination_grace_period_seconds, 5);
    assert_eq!(pod.deletion_grace_period_seconds, None);

    let side = &pod.init_containers[0];
    assert!(side.sidecar && side.security.privileged);
    assert_eq!(side.security.run_as_user, Some(0));
    assert_eq!(side.security.run_as_group, Some(3000));
    assert!(!side.security.run_as_non_root);
    assert!(side.security.allow_privilege_escalation);
    assert_eq!(side.security.seccomp, Seccomp::Unconfined);

    let app = &pod.containers[0];
    assert!(!app.sidecar);
    assert_eq!(app.security.run_as_user, Some(1000));
    assert!(app.security.run_as_non_root);
    assert!(!app.security.allow_privilege_escalation);
    assert!(app.security.read_only_root_filesystem);
    assert_eq!(app.security.capabilities.add, ["NET_ADMIN"]);
    assert_eq!(app.security.capabilities.drop, ["ALL"]);
    assert_eq!(app.security.seccomp, Seccomp::RuntimeDefault);

    // CAP_SYS_ADMIN implies privilege escalation, as in Kubernetes.
    let admin = &pod.containers[1];
    assert!(admin.security.allow_privilege_escalation);
    assert_eq!(
        admin.security.seccomp,
        Seccomp::Localhost {
            profile: "strict.json".into()
        }
    );
}

#[test]
fn volumes_carry_their_files() {
    let pod = resolve(json!({
        "containers": [{"name": "app", "image": "app",
                        "resources": {"limits": {"memory": "128Mi"}},
                        "volumeMounts": [{"name": "conf", "mountPath": "/etc/app", "readOnly": true, "subPath": "app.yaml"}]}],
        "volumes": [
            {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
            {"name": "disk", "emptyDir": {}},
            {"name": "gpio", "hostPath": {"path": "/dev/gpiomem", "type": "CharDevice"}},
            {"name": "conf", "configMap": {"name": "conf", "items": [{"key": "app.yaml", "path": "cfg/app.yaml", "mode": 256}]}},
            {"name": "all", "configMap": {"name": "conf", "defaultMode": 288}},
            {"name": "creds", "secret": {"secretName": "creds"}},
            {"name": "maybe", "secret": {"secretName": "absent", "optional": true}},
            {"name": "info", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
                {"path": "mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory", "divisor": "1Mi"}}]}},
            {"name": "mixed", "projected": {"sources": [
                {"configMap": {"name": "conf", "items": [{"key": "LEVEL", "path": "level"}]}},
                {"secret": {"name": "creds", "items": [{"key": "token", "path": "token"}]}},
                {"downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}}]}},
        ],
    }))
    .unwrap();
    let by_name: BTreeMap<&str, &VolumeSource> = pod
        .volumes
        .iter()
        .map(|v| (v.name.as_str(), &v.source))
        .collect();
    assert_eq!(
        by_name["scratch"],
        &VolumeSource::EmptyDir {
            medium: wire::StorageMedium::Memory,
            size_limit_bytes: Some(16 << 20)
        }
    );
    assert_eq!(
        by_name["gpio"],
        &VolumeSource::HostPath {
            path: "/dev/gpiomem".into(),
            kind: wire::HostPathKind::CharDevice
        }
    );
    let files = |name: &str| -> (u32, Vec<File>) {
        match by_name[name] {
            VolumeSource::ConfigMap(set) | VolumeSource::Secret(set) => (
                set.default_mode,
                set.files
                    .iter()
                    .map(|f| (f.path.clone(), f.mode, f.data.clone()))
                    .collect(),
            ),
            other => panic!("{name}: {other:?}"),
        }
    };
    assert_eq!(
        files("conf"),
        (
            0o644,
            vec![("cfg/app.yaml".into(), Some(0o400), b"port: 80\n".to_vec())]
        )
    );
    let (mode, all) = files("all");
    assert_eq!(mode, 0o440);
    let paths: Vec<&str> = all.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(paths, ["1st", "LEVEL", "app.yaml", "bad-name", "blob"]);
    assert_eq!(all[4].2, [0, 1, 2]);
    assert!(matches!(by_name["creds"], VolumeSource::Secret(_)));
    assert_eq!(
        files("creds").1[0],
        ("password".into(), None, b"hunter2".to_vec())
    );
    assert!(files("maybe").1.is_empty());
    assert_eq!(
        files("info").1,
        vec![
            (
                "labels".into(),
                None,
                b"app=\"web\"\ntier=\"edge\"".to_vec()
            ),
            (
                "annotations".into(),
                None,
                b"note=\"say \\\"hi\\\"\"".to_vec()
            ),
            ("mem".into(), None, b"128".to_vec()),
        ]
    );
    // A Secret among a projected volume's sources puts it on tmpfs.
    assert!(matches!(by_name["mixed"], VolumeSource::Secret(_)));
    let mixed: Vec<String> = files("mixed").1.into_iter().map(|f| f.0).collect();
    assert_eq!(mixed, ["level", "token", "name"]);
    assert_eq!(
        pod.containers[0].volume_mounts[0],
        wire::VolumeMount {
            volume: "conf".into(),
            mount_path: "/etc/app".into(),
            sub_path: "app.yaml".into(),
            read_only: true
        }
    );
}

#[test]
fn volumes_that_cannot_be_set_up_fail_the_mount() {
    let cases = [
        (
            json!({"name": "v", "configMap": {"name": "nope"}}),
            "MountVolume.SetUp failed for volume \"v\" : configmap \"nope\" not found",
        ),
        (
            json!({"name": "v", "secret": {"secretName": "creds", "items": [{"key": "nope", "path": "x"}]}}),
            "MountVolume.SetUp failed for volume \"v\" : secret default/creds has no key \"nope\"",
        ),
        (
            json!({"name": "v", "persistentVolumeClaim": {"claimName": "data"}}),
            "MountVolume.SetUp failed for volume \"v\" : persistentVolumeClaim volumes are not supported on devices (use hostPath or emptyDir)",
        ),
        (
            json!({"name": "v", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}),
            "MountVolume.SetUp failed for volume \"v\" : serviceAccountToken projections are not supported on devices (pods there get no API credentials)",
        ),
        (
            json!({"name": "v", "emptyDir": {"medium": "HugePages"}}),
            "MountVolume.SetUp failed for volume \"v\" : emptyDir medium \"HugePages\" is not supported on devices",
        ),
    ];
    for (volume, message) in cases {
        let err =
            resolve(json!({"containers": [{"name": "app", "image": "app"}], "volumes": [volume]}))
                .unwrap_err();
        assert_eq!(err.reason, FAILED_MOUNT);
        assert_eq!(err.message, message);
    }
}

fn named(name: &str, node: &str, spec: Value) -> Pod {
    let mut pod = pod_of(spec);
    pod.metadata.name = name.into();
    pod.metadata.uid = format!("uid-{name}");
    pod.spec.node_name = node.into();
    pod
}

#[test]
fn state_holds_the_nodes_pods_in_order_and_keeps_a_resolved_form() {
    let good = json!({"containers": [{"name": "app", "image": "app",
        "env": [{"name": "L", "valueFrom": {"configMapKeyRef": {"name": "conf", "key": "LEVEL"}}}]}]});
    let pods = vec![
        named("b", "gw-1", good.clone()),
        named("a", "gw-1", good.clone()),
        named("elsewhere", "gw-2", good.clone()),
    ];
    let mut objects = objects();
    let (first, unresolved) = state(&node(), 7, &pods, &objects, None);
    assert!(unresolved.is_empty());
    assert_eq!(first.node, "gw-1");
    assert_eq!(first.revision, 7);
    let names: Vec<&str> = first.pods.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);

    // The ConfigMap goes away: both pods keep running with what they had,
    // and say why they could not be updated; a new pod cannot start.
    objects.config_maps.clear();
    let mut pods = pods;
    pods.push(named("c", "gw-1", good));
    pods[0].metadata.deletion_timestamp =
        Some(flotilla_shared::model::Time("2026-11-22T07:00:00Z".into()));
    pods[0].metadata.deletion_grace_period_seconds = Some(10);
    let (second, unresolved) = state(&node(), 9, &pods, &objects, Some(&first));
    let names: Vec<&str> = second.pods.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(second.pods[0], first.pods[0]);
    // b is being deleted: that still reaches the device.
    assert_eq!(second.pods[1].deletion_grace_period_seconds, Some(10));
    assert_eq!(second.pods[1].env_of_first(), first.pods[1].env_of_first());
    let failed: Vec<(&str, &str)> = unresolved
        .iter()
        .map(|(p, why)| (p.metadata.name.as_str(), why.message.as_str()))
        .collect();
    assert_eq!(
        failed,
        [
            ("a", "configmap \"conf\" not found"),
            ("b", "configmap \"conf\" not found"),
            ("c", "configmap \"conf\" not found"),
        ]
    );
}

trait FirstEnv {
    fn env_of_first(&self) -> Vec<(String, String)>;
}

impl FirstEnv for wire::Pod {
    fn env_of_first(&self) -> Vec<(String, String)> {
        self.containers[0]
            .env
            .iter()
            .map(|v| (v.name.clone(), v.value.clone()))
            .collect()
    }
}
