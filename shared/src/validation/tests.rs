//! Table-driven tests for every rule of [`super::validate`].
//!
//! Each kind has a valid base object, decoded from a JSON manifest as a user
//! would write it, and a table of (description, mutation, expected errors).
//! A case passes only when `validate` returns exactly the expected errors,
//! in order, as `kubectl` would print them: an extra error fails the case too.
//!
//! The messages are written out here rather than taken from the code under
//! test, so a change of wording shows up as a failing case.

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::validate;
use crate::manifest::{FieldValidation, decode_json};
use crate::model::*;
use crate::quantity::Quantity;

// Kubernetes' messages (k8s.io/apimachinery/pkg/util/validation), double spaces included.
const SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS_LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const ENV_NAME: &str = "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')";
const CONFIG_KEY: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
const QUANTITY: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
const PERCENT: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";
const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";

/// One row of a table: what it checks, how it breaks the base object, and
/// every error `validate` must then report.
struct Case<T> {
    description: &'static str,
    mutate: fn(&mut T),
    expected: Vec<String>,
}

fn case<T>(description: &'static str, mutate: fn(&mut T), expected: Vec<String>) -> Case<T> {
    Case {
        description,
        mutate,
        expected,
    }
}

/// The expected errors of a case, from string literals.
fn errs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn none() -> Vec<String> {
    Vec::new()
}

fn decode(manifest: Value) -> Object {
    decode_json(manifest.to_string().as_bytes(), FieldValidation::Strict)
        .expect("the base manifest decodes strictly")
        .object
}

/// A fragment of a manifest (an affinity, a probe) as its model type.
fn parse<T: DeserializeOwned>(fragment: Value) -> T {
    serde_json::from_value(fragment).expect("the fragment decodes")
}

/// Every error `validate` reports, as printed.
fn errors_of(object: &Object) -> Vec<String> {
    match validate(object) {
        Ok(()) => Vec::new(),
        Err(list) => list.iter().map(ToString::to_string).collect(),
    }
}

/// Checks that `base` is valid, then every case; reports all failing cases at once.
fn run<T: Clone>(base: &T, wrap: fn(T) -> Object, cases: Vec<Case<T>>) {
    assert_eq!(
        errors_of(&wrap(base.clone())),
        Vec::<String>::new(),
        "the base object must be valid"
    );
    let mut failures = Vec::new();
    for case in cases {
        let mut object = base.clone();
        (case.mutate)(&mut object);
        let actual = errors_of(&wrap(object));
        if actual != case.expected {
            failures.push(format!(
                "{}:\n  expected {:#?}\n  actual   {:#?}",
                case.description, case.expected, actual
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn quantity(text: &str) -> Quantity {
    Quantity(text.to_owned())
}

// ---------------------------------------------------------------------------
// Object metadata (on a ConfigMap, the simplest namespaced kind)
// ---------------------------------------------------------------------------

fn config_map() -> ConfigMap {
    let Object::ConfigMap(cm) = decode(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "default", "labels": {"app": "web"}},
        "data": {"mode": "fast"}
    })) else {
        unreachable!()
    };
    cm
}

fn owner(kind: &str, name: &str, controller: bool) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
        uid: format!("uid-{name}"),
        controller: Some(controller),
        block_owner_deletion: None,
    }
}

#[test]
fn object_metadata_rules_report_kubernetes_errors() {
    let long_name = "a".repeat(254);
    let long_value = "v".repeat(64);
    run(
        &config_map(),
        Object::ConfigMap,
        vec![
            case(
                "a name or a generateName is required",
                |cm| cm.metadata.name.clear(),
                errs(&["metadata.name: Required value: name or generateName is required"]),
            ),
            case(
                "a name is an RFC 1123 subdomain",
                |cm| cm.metadata.name = "Web_1".into(),
                vec![format!(
                    "metadata.name: Invalid value: \"Web_1\": {SUBDOMAIN}"
                )],
            ),
            case(
                "a name has at most 253 characters",
                |cm| cm.metadata.name = "a".repeat(254),
                vec![format!(
                    "metadata.name: Invalid value: {long_name:?}: must be no more than 253 characters"
                )],
            ),
            case(
                "a generateName prefix may end in '-'",
                |cm| {
                    cm.metadata.name.clear();
                    cm.metadata.generate_name = "settings-".into();
                },
                none(),
            ),
            case(
                "a generateName prefix is checked like a name",
                |cm| {
                    cm.metadata.name.clear();
                    cm.metadata.generate_name = "Settings-".into();
                },
                vec![format!(
                    "metadata.generateName: Invalid value: \"Settings-\": {SUBDOMAIN}"
                )],
            ),
            case(
                "a namespace is an RFC 1123 label",
                |cm| cm.metadata.namespace = "Prod".into(),
                vec![format!(
                    "metadata.namespace: Invalid value: \"Prod\": {DNS_LABEL}"
                )],
            ),
            case(
                "generation is not negative",
                |cm| cm.metadata.generation = -1,
                errs(&[
                    "metadata.generation: Invalid value: -1: must be greater than or equal to 0",
                ]),
            ),
            case(
                "deletionGracePeriodSeconds is not negative",
                |cm| cm.metadata.deletion_grace_period_seconds = Some(-1),
                errs(&[
                    "metadata.deletionGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0",
                ]),
            ),
            case(
                "a label key is a qualified name",
                |cm| {
                    cm.metadata.labels.insert("-tier".into(), "web".into());
                },
                vec![format!(
                    "metadata.labels: Invalid value: \"-tier\": {QUALIFIED}"
                )],
            ),
            case(
                "a label key's prefix is a subdomain",
                |cm| {
                    cm.metadata
                        .labels
                        .insert("Example.com/tier".into(), "web".into());
                },
                vec![format!(
                    "metadata.labels: Invalid value: \"Example.com/tier\": prefix part {SUBDOMAIN}"
                )],
            ),
            case(
                "a label key's name part is not empty",
                |cm| {
                    cm.metadata
                        .labels
                        .insert("example.com/".into(), "web".into());
                },
                vec![
                    "metadata.labels: Invalid value: \"example.com/\": name part must be non-empty"
                        .to_owned(),
                    format!("metadata.labels: Invalid value: \"example.com/\": {QUALIFIED}"),
                ],
            ),
            case(
                "a label value has the label alphabet",
                |cm| {
                    cm.metadata.labels.insert("app".into(), "web app".into());
                },
                vec![format!(
                    "metadata.labels[app]: Invalid value: \"web app\": {LABEL_VALUE}"
                )],
            ),
            case(
                "a label value has at most 63 characters",
                |cm| {
                    cm.metadata.labels.insert("app".into(), "v".repeat(64));
                },
                vec![format!(
                    "metadata.labels[app]: Invalid value: {long_value:?}: must be no more than 63 characters"
                )],
            ),
            case(
                "an annotation key is a qualified name",
                |cm| {
                    cm.metadata.annotations.insert("a b".into(), "x".into());
                },
                vec![format!(
                    "metadata.annotations: Invalid value: \"a b\": {QUALIFIED}"
                )],
            ),
            case(
                "annotation keys are checked ignoring case",
                |cm| {
                    cm.metadata
                        .annotations
                        .insert("Example.COM/Note".into(), "x".into());
                },
                none(),
            ),
            case(
                "annotations total at most 256 KiB",
                |cm| {
                    cm.metadata
                        .annotations
                        .insert("big".into(), "x".repeat(256 * 1024));
                },
                errs(&["metadata.annotations: Too long: may not be more than 262144 bytes"]),
            ),
            case(
                "annotations of exactly 256 KiB are accepted",
                |cm| {
                    cm.metadata
                        .annotations
                        .insert("big".into(), "x".repeat(256 * 1024 - 3));
                },
                none(),
            ),
            case(
                "an owner reference names apiVersion, kind, name and uid",
                |cm| cm.metadata.owner_references.push(OwnerReference::default()),
                errs(&[
                    "metadata.ownerReferences[0].apiVersion: Invalid value: \"\": version must not be empty",
                    "metadata.ownerReferences[0].kind: Invalid value: \"\": must not be empty",
                    "metadata.ownerReferences[0].name: Invalid value: \"\": must not be empty",
                    "metadata.ownerReferences[0].uid: Invalid value: \"\": must not be empty",
                ]),
            ),
            case(
                "an owner reference's apiVersion has a version",
                |cm| {
                    let mut reference = owner("ReplicaSet", "web", false);
                    reference.api_version = "apps/".into();
                    cm.metadata.owner_references.push(reference);
                },
                errs(&[
                    "metadata.ownerReferences[0].apiVersion: Invalid value: \"apps/\": version must not be empty",
                ]),
            ),
            case(
                "one owner may be the controller",
                |cm| {
                    cm.metadata.owner_references = vec![
                        owner("ReplicaSet", "a", true),
                        owner("ReplicaSet", "b", false),
                    ];
                },
                none(),
            ),
            case(
                "two owners may not both be the controller",
                |cm| {
                    cm.metadata.owner_references = vec![
                        owner("ReplicaSet", "a", true),
                        owner("ReplicaSet", "b", true),
                    ];
                },
                errs(&[
                    "metadata.ownerReferences: Invalid value: \"ReplicaSet/b\": Only one reference can have Controller set to true. Found \"true\" in references for ReplicaSet/a and ReplicaSet/b",
                ]),
            ),
            case(
                "a finalizer is a qualified name",
                |cm| cm.metadata.finalizers = vec!["example.com/cleanup".into(), "clean up".into()],
                vec![format!(
                    "metadata.finalizers[1]: Invalid value: \"clean up\": {QUALIFIED}"
                )],
            ),
        ],
    );
}

// ---------------------------------------------------------------------------
// Pods
// ---------------------------------------------------------------------------

fn pod() -> Pod {
    let Object::Pod(pod) = decode(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "containers": [{
                "name": "app",
                "image": "nginx:1.25",
                "ports": [{"name": "http", "containerPort": 80}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]
            }],
            "volumes": [{"name": "data", "emptyDir": {}}]
        }
    })) else {
        unreachable!()
    };
    pod
}

/// The base pod's only app container.
fn app(pod: &mut Pod) -> &mut Container {
    &mut pod.spec.containers[0]
}

fn container(name: &str) -> Container {
    Container {
        name: name.to_owned(),
        image: "busybox".to_owned(),
        ..Container::default()
    }
}

fn port(container_port: i32, host_port: i32) -> ContainerPort {
    ContainerPort {
        container_port,
        host_port,
        ..ContainerPort::default()
    }
}

#[test]
fn pod_container_rules_report_kubernetes_errors() {
    run(
        &pod(),
        Object::Pod,
        vec![
            case(
                "a pod has containers",
                |p| p.spec.containers.clear(),
                errs(&["spec.containers: Required value"]),
            ),
            case(
                "a container has a name",
                |p| app(p).name.clear(),
                errs(&["spec.containers[0].name: Required value"]),
            ),
            case(
                "a container name is an RFC 1123 label",
                |p| app(p).name = "App".into(),
                vec![format!(
                    "spec.containers[0].name: Invalid value: \"App\": {DNS_LABEL}"
                )],
            ),
            case(
                "a container has an image",
                |p| app(p).image = "  ".into(),
                errs(&["spec.containers[0].image: Required value"]),
            ),
            case(
                "an image has no surrounding whitespace",
                |p| app(p).image = " nginx".into(),
                errs(&[
                    "spec.containers[0].image: Invalid value: \" nginx\": must not have leading or trailing whitespace",
                ]),
            ),
            case(
                "two app containers may not share a name",
                |p| p.spec.containers.push(container("app")),
                errs(&["spec.containers[1].name: Duplicate value: \"app\""]),
            ),
            case(
                "an init container may not share an app container's name",
                |p| p.spec.init_containers.push(container("app")),
                errs(&["spec.initContainers[0].name: Duplicate value: \"app\""]),
            ),
            case(
                "imagePullPolicy is Always, IfNotPresent or Never",
                |p| app(p).image_pull_policy = "Sometimes".into(),
                errs(&[
                    "spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
                ]),
            ),
            case(
                "an app container may not set restartPolicy",
                |p| app(p).restart_policy = Some("Always".into()),
                errs(&[
                    "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers",
                ]),
            ),
            case(
                "an init container's restartPolicy can only be Always",
                |p| {
                    let mut init = container("setup");
                    init.restart_policy = Some("OnFailure".into());
                    p.spec.init_containers.push(init);
                },
                errs(&[
                    "spec.initContainers[0].restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
                ]),
            ),
            case(
                "a container port is required",
                |p| app(p).ports[0].container_port = 0,
                errs(&["spec.containers[0].ports[0].containerPort: Required value"]),
            ),
            case(
                "a container port is 1 to 65535",
                |p| app(p).ports[0].container_port = 70000,
                vec![format!(
                    "spec.containers[0].ports[0].containerPort: Invalid value: 70000: {PORT_RANGE}"
                )],
            ),
            case(
                "a host port is 1 to 65535",
                |p| app(p).ports[0].host_port = -1,
                vec![format!(
                    "spec.containers[0].ports[0].hostPort: Invalid value: -1: {PORT_RANGE}"
                )],
            ),
            case(
                "a port name is an IANA service name",
                |p| app(p).ports[0].name = "HTTP".into(),
                errs(&[
                    "spec.containers[0].ports[0].name: Invalid value: \"HTTP\": must contain only alpha-numerics and '-'",
                    "spec.containers[0].ports[0].name: Invalid value: \"HTTP\": must contain at least one letter (a-z)",
                ]),
            ),
            case(
                "port names are unique within a container",
                |p| {
                    let mut second = port(81, 0);
                    second.name = "http".into();
                    app(p).ports.push(second);
                },
                errs(&["spec.containers[0].ports[1].name: Duplicate value: \"http\""]),
            ),
            case(
                "two containers may use the same port name (Kubernetes only warns)",
                |p| {
                    let mut sidecar = container("sidecar");
                    let mut named = port(8080, 0);
                    named.name = "http".into();
                    sidecar.ports.push(named);
                    p.spec.containers.push(sidecar);
                },
                none(),
            ),
            case(
                "a port protocol is SCTP, TCP or UDP",
                |p| app(p).ports[0].protocol = "ICMP".into(),
                errs(&[
                    "spec.containers[0].ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                ]),
            ),
            case(
                "a hostIP is an IP address",
                |p| app(p).ports[0].host_ip = "localhost".into(),
                errs(&[
                    "spec.containers[0].ports[0].hostIP: Invalid value: \"localhost\": must be a valid IP address",
                ]),
            ),
            case(
                "with hostNetwork a hostPort must equal the containerPort",
                |p| {
                    p.spec.host_network = true;
                    app(p).ports[0].host_port = 8080;
                },
                errs(&[
                    "spec.containers[0].ports[0].hostPort: Invalid value: 8080: must match `containerPort` when `hostNetwork` is true",
                ]),
            ),
            case(
                "with hostNetwork a hostPort may be left out",
                |p| p.spec.host_network = true,
                none(),
            ),
            case(
                "two containers may not claim one host port",
                |p| {
                    app(p).ports[0].host_port = 8080;
                    let mut other = container("other");
                    other.ports.push(port(8080, 8080));
                    p.spec.containers.push(other);
                },
                errs(&["spec.containers[1].ports[0].hostPort: Duplicate value: \"/TCP/8080\""]),
            ),
            case(
                "one host port with two protocols is two claims",
                |p| {
                    app(p).ports[0].host_port = 8080;
                    let mut other = container("other");
                    let mut udp = port(8080, 8080);
                    udp.protocol = "UDP".into();
                    other.ports.push(udp);
                    p.spec.containers.push(other);
                },
                none(),
            ),
            case(
                "with hostNetwork container ports are host ports",
                |p| {
                    p.spec.host_network = true;
                    p.spec.containers.push(Container {
                        ports: vec![port(80, 0)],
                        ..container("other")
                    });
                },
                errs(&["spec.containers[1].ports[0].hostPort: Duplicate value: \"/TCP/80\""]),
            ),
        ],
    );
}

fn env(name: &str, source: Value) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: String::new(),
        value_from: Some(parse(source)),
    }
}

#[test]
fn pod_env_rules_report_kubernetes_errors() {
    run(
        &pod(),
        Object::Pod,
        vec![
            case(
                "an env var has a name",
                |p| app(p).env.push(EnvVar::default()),
                errs(&["spec.containers[0].env[0].name: Required value"]),
            ),
            case(
                "an env var name does not start with a digit",
                |p| {
                    app(p).env.push(EnvVar {
                        name: "1VAR".into(),
                        ..EnvVar::default()
                    })
                },
                vec![format!(
                    "spec.containers[0].env[0].name: Invalid value: \"1VAR\": {ENV_NAME}"
                )],
            ),
            case(
                "valueFrom and value are exclusive",
                |p| {
                    let mut var = env("POD", json!({"fieldRef": {"fieldPath": "metadata.name"}}));
                    var.value = "web".into();
                    app(p).env.push(var);
                },
                errs(&[
                    "spec.containers[0].env[0].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty",
                ]),
            ),
            case(
                "valueFrom names a source",
                |p| {
                    let mut var = env("POD", json!({}));
                    var.value = "web".into();
                    app(p).env.push(var);
                },
                errs(&[
                    "spec.containers[0].env[0].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                ]),
            ),
            case(
                "valueFrom names one source only",
                |p| {
                    app(p).env.push(env(
                        "POD",
                        json!({
                            "fieldRef": {"fieldPath": "metadata.name"},
                            "secretKeyRef": {"name": "creds", "key": "token"}
                        }),
                    ))
                },
                errs(&[
                    "spec.containers[0].env[0].valueFrom: Invalid value: \"\": may not have more than one field specified at a time",
                ]),
            ),
            case(
                "fieldRef may name a label or an annotation by key",
                |p| {
                    app(p).env.push(env(
                        "APP",
                        json!({"fieldRef": {"fieldPath": "metadata.labels['app']"}}),
                    ));
                    app(p).env.push(env(
                        "NOTE",
                        json!({"fieldRef": {"fieldPath": "metadata.annotations['example.com/note']"}}),
                    ));
                },
                none(),
            ),
            case(
                "fieldRef names a supported field",
                |p| {
                    app(p).env.push(env(
                        "HOST",
                        json!({"fieldRef": {"fieldPath": "spec.hostname"}}),
                    ))
                },
                errs(&[
                    "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: \"spec.hostname\": supported values: \"metadata.name\", \"metadata.namespace\", \"metadata.uid\", \"spec.nodeName\", \"spec.serviceAccountName\", \"status.hostIP\", \"status.hostIPs\", \"status.podIP\", \"status.podIPs\"",
                ]),
            ),
            case(
                "fieldRef needs a fieldPath",
                |p| app(p).env.push(env("HOST", json!({"fieldRef": {}}))),
                errs(&["spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Required value"]),
            ),
            case(
                "resourceFieldRef names a container resource",
                |p| {
                    app(p).env.push(env(
                        "GPUS",
                        json!({"resourceFieldRef": {"resource": "limits.gpu"}}),
                    ))
                },
                errs(&[
                    "spec.containers[0].env[0].valueFrom.resourceFieldRef.resource: Unsupported value: \"limits.gpu\": supported values: \"limits.cpu\", \"limits.ephemeral-storage\", \"limits.memory\", \"requests.cpu\", \"requests.ephemeral-storage\", \"requests.memory\"",
                ]),
            ),
            case(
                "resourceFieldRef needs a resource",
                |p| app(p).env.push(env("CPU", json!({"resourceFieldRef": {}}))),
                errs(&[
                    "spec.containers[0].env[0].valueFrom.resourceFieldRef.resource: Required value",
                ]),
            ),
            case(
                "configMapKeyRef needs a name and a key",
                |p| app(p).env.push(env("MODE", json!({"configMapKeyRef": {}}))),
                errs(&[
                    "spec.containers[0].env[0].valueFrom.configMapKeyRef.name: Required value",
                    "spec.containers[0].env[0].valueFrom.configMapKeyRef.key: Required value",
                ]),
            ),
            case(
                "secretKeyRef's key is a config key",
                |p| {
                    app(p).env.push(env(
                        "TOKEN",
                        json!({"secretKeyRef": {"name": "creds", "key": "a/b"}}),
                    ))
                },
                vec![format!(
                    "spec.containers[0].env[0].valueFrom.secretKeyRef.key: Invalid value: \"a/b\": {CONFIG_KEY}"
                )],
            ),
            case(
                "envFrom names a source",
                |p| app(p).env_from.push(EnvFromSource::default()),
                errs(&[
                    "spec.containers[0].envFrom[0]: Invalid value: \"\": must specify one of: `configMapRef` or `secretRef`",
                ]),
            ),
            case(
                "envFrom names one source only",
                |p| {
                    app(p).env_from.push(parse(json!({
                        "configMapRef": {"name": "settings"},
                        "secretRef": {"name": "creds"}
                    })))
                },
                errs(&[
                    "spec.containers[0].envFrom[0]: Invalid value: \"\": may not have more than one field specified at a time",
                ]),
            ),
            case(
                "envFrom's source has a name",
                |p| app(p).env_from.push(parse(json!({"configMapRef": {}}))),
                errs(&["spec.containers[0].envFrom[0].configMapRef.name: Required value"]),
            ),
            case(
                "envFrom's source name is a subdomain",
                |p| {
                    app(p)
                        .env_from
                        .push(parse(json!({"secretRef": {"name": "Creds"}})))
                },
                vec![format!(
                    "spec.containers[0].envFrom[0].secretRef.name: Invalid value: \"Creds\": {SUBDOMAIN}"
                )],
            ),
            case(
                "envFrom's prefix is an env var name",
                |p| {
                    app(p).env_from.push(parse(json!({
                        "prefix": "1_",
                        "configMapRef": {"name": "settings"}
                    })))
                },
                vec![format!(
                    "spec.containers[0].envFrom[0].prefix: Invalid value: \"1_\": {ENV_NAME}"
                )],
            ),
        ],
    );
}

#[test]
fn pod_resource_rules_report_kubernetes_errors() {
    run(
        &pod(),
        Object::Pod,
        vec![
            case(
                "a quantity parses",
                |p| {
                    app(p)
                        .resources
                        .limits
                        .insert("cpu".into(), quantity("lots"));
                },
                vec![format!(
                    "spec.containers[0].resources.limits[cpu]: Invalid value: \"lots\": {QUANTITY}"
                )],
            ),
            case(
                "a quantity is not negative",
                |p| {
                    app(p)
                        .resources
                        .requests
                        .insert("memory".into(), quantity("-1Gi"));
                },
                errs(&[
                    "spec.containers[0].resources.requests[memory]: Invalid value: \"-1Gi\": must be greater than or equal to 0",
                ]),
            ),
            case(
                "an unqualified resource name is a standard one containers may ask for",
                |p| {
                    app(p).resources.limits.insert("gpu".into(), quantity("1"));
                },
                errs(&[
                    "spec.containers[0].resources.limits[gpu]: Invalid value: \"gpu\": must be a standard resource type or fully qualified",
                    "spec.containers[0].resources.limits[gpu]: Invalid value: \"gpu\": must be a standard resource for containers",
                ]),
            ),
            case(
                "pods is a standard resource but not a container's",
                |p| {
                    app(p)
                        .resources
                        .requests
                        .insert("pods".into(), quantity("1"));
                },
                errs(&[
                    "spec.containers[0].resources.requests[pods]: Invalid value: \"pods\": must be a standard resource for containers",
                ]),
            ),
            case(
                "a resource name is a qualified name",
                |p| {
                    app(p)
                        .resources
                        .limits
                        .insert("example.com/a b".into(), quantity("1"));
                },
                vec![format!(
                    "spec.containers[0].resources.limits[example.com/a b]: Invalid value: \"example.com/a b\": {QUALIFIED}"
                )],
            ),
            case(
                "extended resources and huge pages are accepted",
                |p| {
                    let limits = &mut app(p).resources.limits;
                    limits.insert("example.com/gpu".into(), quantity("1"));
                    limits.insert("hugepages-2Mi".into(), quantity("64Mi"));
                },
                none(),
            ),
            case(
                "a request is at most its limit",
                |p| {
                    let resources = &mut app(p).resources;
                    resources.limits.insert("cpu".into(), quantity("500m"));
                    resources.requests.insert("cpu".into(), quantity("1"));
                },
                errs(&[
                    "spec.containers[0].resources.requests[cpu]: Invalid value: \"1\": must be less than or equal to cpu limit of 500m",
                ]),
            ),
            case(
                "a request equal to its limit written differently is accepted",
                |p| {
                    let resources = &mut app(p).resources;
                    resources.limits.insert("memory".into(), quantity("1Gi"));
                    resources
                        .requests
                        .insert("memory".into(), quantity("1073741824"));
                },
                none(),
            ),
        ],
    );
}

#[test]
fn pod_volume_and_mount_rules_report_kubernetes_errors() {
    run(
        &pod(),
        Object::Pod,
        vec![
            case(
                "a mount names a volume of the pod",
                |p| app(p).volume_mounts[0].name = "cache".into(),
                errs(&["spec.containers[0].volumeMounts[0].name: Not found: \"cache\""]),
            ),
            case(
                "a mount has a name and a path",
                |p| app(p).volume_mounts.push(VolumeMount::default()),
                errs(&[
                    "spec.containers[0].volumeMounts[1].name: Required value",
                    "spec.containers[0].volumeMounts[1].mountPath: Required value",
                ]),
            ),
            case(
                "mount paths are unique within a container",
                |p| {
                    let again = app(p).volume_mounts[0].clone();
                    app(p).volume_mounts.push(again);
                },
                errs(&[
                    "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/data\": must be unique",
                ]),
            ),
            case(
                "a subPath does not climb out of the volume",
                |p| app(p).volume_mounts[0].sub_path = "logs/../../etc".into(),
                errs(&[
                    "spec.containers[0].volumeMounts[0].subPath: Invalid value: \"logs/../../etc\": must not contain '..'",
                ]),
            ),
            case(
                "a subPath is relative",
                |p| app(p).volume_mounts[0].sub_path = "/etc".into(),
                errs(&[
                    "spec.containers[0].volumeMounts[0].subPath: Invalid value: \"/etc\": must be a relative path",
                ]),
            ),
            case(
                "a volume has a name",
                |p| {
                    p.spec.volumes[0].name.clear();
                    app(p).volume_mounts.clear();
                },
                errs(&["spec.volumes[0].name: Required value"]),
            ),
            case(
                "a volume name is an RFC 1123 label",
                |p| {
                    p.spec.volumes[0].name = "Data".into();
                    app(p).volume_mounts[0].name = "Data".into();
                },
                vec![format!(
                    "spec.volumes[0].name: Invalid value: \"Data\": {DNS_LABEL}"
                )],
            ),
            case(
                "volume names are unique",
                |p| {
                    let again = p.spec.volumes[0].clone();
                    p.spec.volumes.push(again);
                },
                errs(&["spec.volumes[1].name: Duplicate value: \"data\""]),
            ),
            case(
                "a volume has a source",
                |p| p.spec.volumes[0].empty_dir = None,
                errs(&["spec.volumes[0]: Required value: must specify a volume type"]),
            ),
            case(
                "a volume has one source only",
                |p| {
                    p.spec.volumes[0].host_path = Some(parse(json!({"path": "/srv"})));
                },
                errs(&[
                    "spec.volumes[0].emptyDir: Forbidden: may not specify more than 1 volume type",
                ]),
            ),
            case(
                "an emptyDir medium is Memory or HugePages",
                |p| p.spec.volumes[0].empty_dir = Some(parse(json!({"medium": "Disk"}))),
                errs(&[
                    "spec.volumes[0].emptyDir.medium: Unsupported value: \"Disk\": supported values: \"\", \"Memory\", \"HugePages\"",
                ]),
            ),
            case(
                "an emptyDir sizeLimit is a quantity",
                |p| p.spec.volumes[0].empty_dir = Some(parse(json!({"sizeLimit": "big"}))),
                vec![format!(
                    "spec.volumes[0].emptyDir.sizeLimit: Invalid value: \"big\": {QUANTITY}"
                )],
            ),
            case(
                "a hostPath has a path",
                |p| {
                    p.spec.volumes[0] = parse(json!({"name": "data", "hostPath": {"path": ""}}));
                },
                errs(&["spec.volumes[0].hostPath.path: Required value"]),
            ),
            case(
                "a hostPath has no '..'",
                |p| {
                    p.spec.volumes[0] =
                        parse(json!({"name": "data", "hostPath": {"path": "/srv/../etc"}}));
                },
                errs(&[
                    "spec.volumes[0].hostPath.path: Invalid value: \"/srv/../etc\": must not contain '..'",
                ]),
            ),
            case(
                "a hostPath type is one Kubernetes knows",
                |p| {
                    p.spec.volumes[0] = parse(
                        json!({"name": "data", "hostPath": {"path": "/srv", "type": "Folder"}}),
                    );
                },
                errs(&[
                    "spec.volumes[0].hostPath.type: Unsupported value: \"Folder\": supported values: \"\", \"BlockDevice\", \"CharDevice\", \"Directory\", \"DirectoryOrCreate\", \"File\", \"FileOrCreate\", \"Socket\"",
                ]),
            ),
            case(
                "a configMap volume names its ConfigMap",
                |p| p.spec.volumes[0] = parse(json!({"name": "data", "configMap": {}})),
                errs(&["spec.volumes[0].configMap.name: Required value"]),
            ),
            case(
                "a secret volume names its Secret",
                |p| p.spec.volumes[0] = parse(json!({"name": "data", "secret": {}})),
                errs(&["spec.volumes[0].secret.secretName: Required value"]),
            ),
            case(
                "a persistentVolumeClaim volume names its claim",
                |p| {
                    p.spec.volumes[0] = parse(json!({"name": "data", "persistentVolumeClaim": {}}));
                },
                errs(&["spec.volumes[0].persistentVolumeClaim.claimName: Required value"]),
            ),
            case(
                "an item has a key and a path",
                |p| {
                    p.spec.volumes[0] = parse(
                        json!({"name": "data", "configMap": {"name": "settings", "items": [{}]}}),
                    );
                },
                errs(&[
                    "spec.volumes[0].configMap.items[0].key: Required value",
                    "spec.volumes[0].configMap.items[0].path: Required value",
                ]),
            ),
            case(
                "an item path is relative, without '..', not starting with '..'",
                |p| {
                    p.spec.volumes[0] = parse(json!({"name": "data", "secret": {
                        "secretName": "creds",
                        "items": [
                            {"key": "a", "path": "/etc/a"},
                            {"key": "b", "path": "x/../../b"},
                            {"key": "c", "path": "..data"}
                        ]
                    }}));
                },
                errs(&[
                    "spec.volumes[0].secret.items[0].path: Invalid value: \"/etc/a\": must be a relative path",
                    "spec.volumes[0].secret.items[1].path: Invalid value: \"x/../../b\": must not contain '..'",
                    "spec.volumes[0].secret.items[2].path: Invalid value: \"..data\": must not start with '..'",
                ]),
            ),
            case(
                "file modes are 0 to 0777",
                |p| {
                    p.spec.volumes[0] = parse(json!({"name": "data", "configMap": {
                        "name": "settings",
                        "defaultMode": 512,
                        "items": [{"key": "a", "path": "a", "mode": -1}]
                    }}));
                },
                errs(&[
                    "spec.volumes[0].configMap.defaultMode: Invalid value: 512: must be a number between 0 and 0777 (octal), both inclusive",
                    "spec.volumes[0].configMap.items[0].mode: Invalid value: -1: must be a number between 0 and 0777 (octal), both inclusive",
                ]),
            ),
        ],
    );
}

fn probe(fragment: Value) -> Option<Probe> {
    Some(parse(fragment))
}

#[test]
fn pod_probe_rules_report_kubernetes_errors() {
    run(
        &pod(),
        Object::Pod,
        vec![
            case(
                "a probe has a handler",
                |p| app(p).liveness_probe = probe(json!({"periodSeconds": 10})),
                errs(&[
                    "spec.containers[0].livenessProbe: Required value: must specify a handler type",
                ]),
            ),
            case(
                "a probe has one handler only, the second is reported",
                |p| {
                    app(p).liveness_probe = probe(json!({
                        "exec": {"command": ["true"]},
                        "tcpSocket": {"port": 80}
                    }));
                },
                errs(&[
                    "spec.containers[0].livenessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
                ]),
            ),
            case(
                "an exec probe has a command",
                |p| app(p).startup_probe = probe(json!({"exec": {}})),
                errs(&["spec.containers[0].startupProbe.exec.command: Required value"]),
            ),
            case(
                "an httpGet port is 1 to 65535",
                |p| app(p).readiness_probe = probe(json!({"httpGet": {"port": 0}})),
                vec![format!(
                    "spec.containers[0].readinessProbe.httpGet.port: Invalid value: 0: {PORT_RANGE}"
                )],
            ),
            case(
                "an httpGet scheme is HTTP or HTTPS",
                |p| {
                    app(p).readiness_probe =
                        probe(json!({"httpGet": {"port": "http", "scheme": "FTP"}}));
                },
                errs(&[
                    "spec.containers[0].readinessProbe.httpGet.scheme: Unsupported value: \"FTP\": supported values: \"HTTP\", \"HTTPS\"",
                ]),
            ),
            case(
                "a named probe port is an IANA service name",
                |p| app(p).readiness_probe = probe(json!({"tcpSocket": {"port": "web_port"}})),
                errs(&[
                    "spec.containers[0].readinessProbe.tcpSocket.port: Invalid value: \"web_port\": must contain only alpha-numerics and '-'",
                ]),
            ),
            case(
                "a grpc port is 1 to 65535",
                |p| app(p).liveness_probe = probe(json!({"grpc": {"port": 70000}})),
                vec![format!(
                    "spec.containers[0].livenessProbe.grpc.port: Invalid value: 70000: {PORT_RANGE}"
                )],
            ),
            case(
                "probe timings are not negative",
                |p| {
                    app(p).readiness_probe =
                        probe(json!({"tcpSocket": {"port": 80}, "periodSeconds": -1}));
                },
                errs(&[
                    "spec.containers[0].readinessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
                ]),
            ),
            case(
                "a liveness probe's successThreshold is 1",
                |p| {
                    app(p).liveness_probe =
                        probe(json!({"tcpSocket": {"port": 80}, "successThreshold": 2}));
                },
                errs(&[
                    "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
                ]),
            ),
            case(
                "a startup probe's successThreshold is 1",
                |p| {
                    app(p).startup_probe =
                        probe(json!({"tcpSocket": {"port": 80}, "successThreshold": 3}));
                },
                errs(&[
                    "spec.containers[0].startupProbe.successThreshold: Invalid value: 3: must be 1",
                ]),
            ),
            case(
                "a readiness probe may need several successes",
                |p| {
                    app(p).readiness_probe =
                        probe(json!({"tcpSocket": {"port": 80}, "successThreshold": 3}));
                },
                none(),
            ),
            case(
                "a plain init container has no probes",
                |p| {
                    let mut init = container("setup");
                    init.liveness_probe = probe(json!({"exec": {"command": ["true"]}}));
                    init.readiness_probe = probe(json!({"exec": {"command": ["true"]}}));
                    p.spec.init_containers.push(init);
                },
                errs(&[
                    "spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
                    "spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
                ]),
            ),
            case(
                "a sidecar init container may have every probe",
                |p| {
                    let mut sidecar = container("proxy");
                    sidecar.restart_policy = Some("Always".into());
                    sidecar.liveness_probe = probe(json!({"tcpSocket": {"port": 15000}}));
                    sidecar.readiness_probe = probe(json!({"httpGet": {"port": 15000}}));
                    sidecar.startup_probe = probe(json!({"exec": {"command": ["true"]}}));
                    p.spec.init_containers.push(sidecar);
                },
                none(),
            ),
            case(
                "a sidecar's probes are checked",
                |p| {
                    let mut sidecar = container("proxy");
                    sidecar.restart_policy = Some("Always".into());
                    sidecar.liveness_probe = probe(json!({}));
                    p.spec.init_containers.push(sidecar);
                },
                errs(&[
                    "spec.initContainers[0].livenessProbe: Required value: must specify a handler type",
                ]),
            ),
        ],
    );
}

fn toleration(fragment: Value) -> Vec<Toleration> {
    vec![parse(fragment)]
}

#[test]
fn pod_spec_rules_report_kubernetes_errors() {
    run(
        &pod(),
        Object::Pod,
        vec![
            case(
                "restartPolicy is Always, OnFailure or Never",
                |p| p.spec.restart_policy = "Sometimes".into(),
                errs(&[
                    "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
                ]),
            ),
            case(
                "dnsPolicy is one Kubernetes knows",
                |p| p.spec.dns_policy = "Google".into(),
                errs(&[
                    "spec.dnsPolicy: Unsupported value: \"Google\": supported values: \"ClusterFirst\", \"ClusterFirstWithHostNet\", \"Default\", \"None\"",
                ]),
            ),
            case(
                "nodeName is a subdomain",
                |p| p.spec.node_name = "Pi_7".into(),
                vec![format!(
                    "spec.nodeName: Invalid value: \"Pi_7\": {SUBDOMAIN}"
                )],
            ),
            case(
                "nodeSelector has label keys and values",
                |p| {
                    p.spec.node_selector.insert("-arch".into(), "arm64".into());
                    p.spec.node_selector.insert("zone".into(), "a b".into());
                },
                vec![
                    format!("spec.nodeSelector: Invalid value: \"-arch\": {QUALIFIED}"),
                    format!("spec.nodeSelector[zone]: Invalid value: \"a b\": {LABEL_VALUE}"),
                ],
            ),
            case(
                "terminationGracePeriodSeconds is not negative",
                |p| p.spec.termination_grace_period_seconds = Some(-1),
                errs(&[
                    "spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0",
                ]),
            ),
            case(
                "activeDeadlineSeconds is positive",
                |p| p.spec.active_deadline_seconds = Some(0),
                errs(&[
                    "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
                ]),
            ),
            case(
                "an empty key tolerates everything with Exists",
                |p| p.spec.tolerations = toleration(json!({"operator": "Exists"})),
                none(),
            ),
            case(
                "an empty key needs the Exists operator",
                |p| p.spec.tolerations = toleration(json!({"operator": "Equal", "value": "x"})),
                errs(&[
                    "spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
                ]),
            ),
            case(
                "a toleration key is a qualified name",
                |p| p.spec.tolerations = toleration(json!({"key": "a b", "operator": "Exists"})),
                vec![format!(
                    "spec.tolerations[0].key: Invalid value: \"a b\": {QUALIFIED}"
                )],
            ),
            case(
                "Exists takes no value",
                |p| {
                    p.spec.tolerations = toleration(
                        json!({"key": "dedicated", "operator": "Exists", "value": "edge"}),
                    );
                },
                errs(&[
                    "spec.tolerations[0].operator: Invalid value: \"edge\": value must be empty when `operator` is 'Exists'",
                ]),
            ),
            case(
                "Equal takes a label value",
                |p| p.spec.tolerations = toleration(json!({"key": "dedicated", "value": "a b"})),
                vec![format!(
                    "spec.tolerations[0].value: Invalid value: \"a b\": {LABEL_VALUE}"
                )],
            ),
            case(
                "the operator is Equal or Exists",
                |p| {
                    p.spec.tolerations = toleration(json!({"key": "dedicated", "operator": "Like"}))
                },
                errs(&[
                    "spec.tolerations[0].operator: Unsupported value: \"Like\": supported values: \"Equal\", \"Exists\"",
                ]),
            ),
            case(
                "the effect is a taint effect",
                |p| {
                    p.spec.tolerations =
                        toleration(json!({"key": "dedicated", "value": "edge", "effect": "NoRun"}));
                },
                errs(&[
                    "spec.tolerations[0].effect: Unsupported value: \"NoRun\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
                ]),
            ),
            case(
                "tolerationSeconds needs the NoExecute effect",
                |p| {
                    p.spec.tolerations = toleration(json!({
                        "key": "unreachable", "operator": "Exists",
                        "effect": "NoSchedule", "tolerationSeconds": 30
                    }));
                },
                errs(&[
                    "spec.tolerations[0].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set",
                ]),
            ),
            case(
                "tolerationSeconds with NoExecute is accepted",
                |p| {
                    p.spec.tolerations = toleration(json!({
                        "key": "unreachable", "operator": "Exists",
                        "effect": "NoExecute", "tolerationSeconds": 30
                    }));
                },
                none(),
            ),
        ],
    );
}

fn affinity(fragment: Value) -> Option<Affinity> {
    Some(parse(fragment))
}

const REQUIRED_TERMS: &str =
    "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms";

#[test]
fn pod_affinity_rules_report_kubernetes_errors() {
    run(
        &pod(),
        Object::Pod,
        vec![
            case(
                "required node affinity has a term",
                |p| {
                    p.spec.affinity = affinity(json!({"nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}
                    }}));
                },
                vec![format!(
                    "{REQUIRED_TERMS}: Required value: must have at least one node selector term"
                )],
            ),
            case(
                "In needs values",
                |p| {
                    p.spec.affinity = affinity(node_term(json!([
                        {"key": "arch", "operator": "In"}
                    ])));
                },
                vec![format!(
                    "{REQUIRED_TERMS}[0].matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
                )],
            ),
            case(
                "Exists takes no values",
                |p| {
                    p.spec.affinity = affinity(node_term(json!([
                        {"key": "arch", "operator": "Exists", "values": ["arm64"]}
                    ])));
                },
                vec![format!(
                    "{REQUIRED_TERMS}[0].matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                )],
            ),
            case(
                "Gt takes one value",
                |p| {
                    p.spec.affinity = affinity(node_term(json!([
                        {"key": "cores", "operator": "Gt", "values": ["2", "4"]}
                    ])));
                },
                vec![format!(
                    "{REQUIRED_TERMS}[0].matchExpressions[0].values: Required value: must be specified single value when `operator` is 'Lt' or 'Gt'"
                )],
            ),
            case(
                "Lt takes an integer",
                |p| {
                    p.spec.affinity = affinity(node_term(json!([
                        {"key": "cores", "operator": "Lt", "values": ["ten"]}
                    ])));
                },
                vec![format!(
                    "{REQUIRED_TERMS}[0].matchExpressions[0].values[0]: Invalid value: \"ten\": must be an integer"
                )],
            ),
            case(
                "the operator is one Kubernetes knows",
                |p| {
                    p.spec.affinity = affinity(node_term(json!([
                        {"key": "arch", "operator": "Near", "values": ["arm64"]}
                    ])));
                },
                vec![format!(
                    "{REQUIRED_TERMS}[0].matchExpressions[0].operator: Invalid value: \"Near\": not a valid selector operator"
                )],
            ),
            case(
                "the key is a qualified name",
                |p| {
                    p.spec.affinity = affinity(node_term(json!([
                        {"key": "a b", "operator": "Exists"}
                    ])));
                },
                vec![format!(
                    "{REQUIRED_TERMS}[0].matchExpressions[0].key: Invalid value: \"a b\": {QUALIFIED}"
                )],
            ),
            case(
                "matchFields selects on metadata.name only",
                |p| {
                    p.spec.affinity = affinity(json!({"nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                            {"matchFields": [{"key": "metadata.labels", "operator": "In", "values": ["x"]}]}
                        ]}
                    }}));
                },
                vec![format!(
                    "{REQUIRED_TERMS}[0].matchFields[0].key: Invalid value: \"metadata.labels\": not a valid field selector key"
                )],
            ),
            case(
                "a preferred term's weight is 1 to 100",
                |p| {
                    p.spec.affinity = affinity(json!({"nodeAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            {"weight": 0, "preference": {"matchExpressions": [{"key": "arch", "operator": "Exists"}]}}
                        ]
                    }}));
                },
                errs(&[
                    "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: Invalid value: 0: must be in the range 1-100",
                ]),
            ),
            case(
                "a pod affinity term has a topologyKey",
                |p| {
                    p.spec.affinity = affinity(json!({"podAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": [
                            {"labelSelector": {"matchLabels": {"app": "db"}}}
                        ]
                    }}));
                },
                errs(&[
                    "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: Required value: can not be empty",
                ]),
            ),
            case(
                "a pod affinity term's selector operator is one Kubernetes knows",
                |p| {
                    p.spec.affinity = affinity(json!({"podAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": [{
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchExpressions": [{"key": "app", "operator": "Maybe"}]}
                        }]
                    }}));
                },
                errs(&[
                    "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector.matchExpressions[0].operator: Invalid value: \"Maybe\": not a valid selector operator",
                ]),
            ),
            case(
                "a pod anti-affinity preferred term has a weight and a qualified topologyKey",
                |p| {
                    p.spec.affinity = affinity(json!({"podAntiAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [{
                            "weight": 101,
                            "podAffinityTerm": {
                                "topologyKey": "a b",
                                "labelSelector": {"matchLabels": {"app": "web"}}
                            }
                        }]
                    }}));
                },
                vec![
                    "spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: Invalid value: 101: must be in the range 1-100".to_owned(),
                    format!(
                        "spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologyKey: Invalid value: \"a b\": {QUALIFIED}"
                    ),
                ],
            ),
            case(
                "a pod anti-affinity selector has label values",
                |p| {
                    p.spec.affinity = affinity(json!({"podAntiAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": [{
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchExpressions": [
                                {"key": "app", "operator": "In", "values": ["a b"]}
                            ]}
                        }]
                    }}));
                },
                vec![format!(
                    "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector.matchExpressions[0].values[0]: Invalid value: \"a b\": {LABEL_VALUE}"
                )],
            ),
        ],
    );
}

/// A required node affinity with one term of these match expressions.
fn node_term(expressions: Value) -> Value {
    json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": expressions}]
    }}})
}

#[test]
fn pod_security_context_rules_report_kubernetes_errors() {
    run(
        &pod(),
        Object::Pod,
        vec![
            case(
                "pod user, group and fsGroup ids are 0 to 2^31-1",
                |p| {
                    p.spec.security_context = Some(parse(json!({
                        "runAsUser": -1, "runAsGroup": 2147483648_i64, "fsGroup": 0,
                        "supplementalGroups": [1000, -5]
                    })));
                },
                errs(&[
                    "spec.securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive",
                    "spec.securityContext.runAsGroup: Invalid value: 2147483648: must be between 0 and 2147483647, inclusive",
                    "spec.securityContext.supplementalGroups[1]: Invalid value: -5: must be between 0 and 2147483647, inclusive",
                ]),
            ),
            case(
                "a Localhost seccomp profile names its file",
                |p| {
                    p.spec.security_context =
                        Some(parse(json!({"seccompProfile": {"type": "Localhost"}})));
                },
                errs(&[
                    "spec.securityContext.seccompProfile.localhostProfile: Required value: must be set when seccomp type is Localhost",
                ]),
            ),
            case(
                "a Localhost seccomp profile stays in the profile directory",
                |p| {
                    p.spec.security_context = Some(parse(json!({"seccompProfile": {
                        "type": "Localhost", "localhostProfile": "../../etc/profile.json"
                    }})));
                },
                errs(&[
                    "spec.securityContext.seccompProfile.localhostProfile: Invalid value: \"../../etc/profile.json\": must not contain '..'",
                ]),
            ),
            case(
                "only a Localhost seccomp profile names a file",
                |p| {
                    p.spec.security_context = Some(parse(json!({"seccompProfile": {
                        "type": "RuntimeDefault", "localhostProfile": "profile.json"
                    }})));
                },
                errs(&[
                    "spec.securityContext.seccompProfile.localhostProfile: Invalid value: \"profile.json\": can only be set when seccomp type is Localhost",
                ]),
            ),
            case(
                "the seccomp type is one Kubernetes knows",
                |p| {
                    p.spec.security_context = Some(parse(json!({"seccompProfile": {}})));
                },
                errs(&[
                    "spec.securityContext.seccompProfile.type: Unsupported value: \"\": supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\"",
                ]),
            ),
            case(
                "a container's ids and seccomp profile are checked too",
                |p| {
                    app(p).security_context = Some(parse(json!({
                        "runAsUser": -1,
                        "seccompProfile": {"type": "Strict"}
                    })));
                },
                errs(&[
                    "spec.containers[0].securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive",
                    "spec.containers[0].securityContext.seccompProfile.type: Unsupported value: \"Strict\": supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\"",
                ]),
            ),
            case(
                "a privileged container may escalate privileges",
                |p| {
                    app(p).security_context = Some(parse(json!({
                        "privileged": true, "allowPrivilegeEscalation": false
                    })));
                },
                errs(&[
                    "spec.containers[0].securityContext: Invalid value: \"\": cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
                ]),
            ),
            case(
                "capabilities are capability names",
                |p| {
                    app(p).security_context = Some(parse(json!({"capabilities": {
                        "add": ["NET_ADMIN", "NET ADMIN"], "drop": [""]
                    }})));
                },
                errs(&[
                    "spec.containers[0].securityContext.capabilities.add[1]: Invalid value: \"NET ADMIN\": must be a capability name such as NET_ADMIN",
                    "spec.containers[0].securityContext.capabilities.drop[0]: Invalid value: \"\": must be a capability name such as NET_ADMIN",
                ]),
            ),
        ],
    );
}

// ---------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------

/// A template whose pod is valid and labelled `app: web`.
fn template_json() -> Value {
    json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]}
    })
}

fn deployment() -> Deployment {
    let Object::Deployment(d) = decode(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template_json()
        }
    })) else {
        unreachable!()
    };
    d
}

fn rolling(fragment: Value) -> Option<RollingUpdateDeployment> {
    Some(parse(fragment))
}

#[test]
fn deployment_rules_report_kubernetes_errors() {
    run(
        &deployment(),
        Object::Deployment,
        vec![
            case(
                "a deployment name is a subdomain",
                |d| d.metadata.name = "Web".into(),
                vec![format!(
                    "metadata.name: Invalid value: \"Web\": {SUBDOMAIN}"
                )],
            ),
            case(
                "a selector is required",
                |d| d.spec.selector = None,
                errs(&["spec.selector: Required value"]),
            ),
            case(
                "a selector is not empty",
                |d| d.spec.selector = Some(LabelSelector::default()),
                errs(&[
                    "spec.selector: Invalid value: \"{}\": empty selector is invalid for deployment",
                ]),
            ),
            case(
                "the selector selects the template's labels",
                |d| d.spec.selector = Some(parse(json!({"matchLabels": {"app": "api"}}))),
                errs(&[
                    "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
                ]),
            ),
            case(
                "a selector that does not compile is reported once, at its field",
                |d| {
                    d.spec.selector = Some(parse(
                        json!({"matchExpressions": [{"key": "app", "operator": "Like"}]}),
                    ));
                },
                errs(&[
                    "spec.selector.matchExpressions[0].operator: Invalid value: \"Like\": not a valid selector operator",
                ]),
            ),
            case(
                "template labels are labels",
                |d| {
                    d.spec
                        .template
                        .metadata
                        .labels
                        .insert("tier".into(), "a b".into());
                },
                vec![format!(
                    "spec.template.metadata.labels[tier]: Invalid value: \"a b\": {LABEL_VALUE}"
                )],
            ),
            case(
                "the template's pod is checked",
                |d| d.spec.template.spec.containers[0].image.clear(),
                errs(&["spec.template.spec.containers[0].image: Required value"]),
            ),
            case(
                "a deployment's pods restart Always",
                |d| d.spec.template.spec.restart_policy = "OnFailure".into(),
                errs(&[
                    "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
                ]),
            ),
            case(
                "replicas, minReadySeconds and revisionHistoryLimit are not negative",
                |d| {
                    d.spec.replicas = Some(-1);
                    d.spec.min_ready_seconds = -1;
                    d.spec.revision_history_limit = Some(-1);
                },
                errs(&[
                    "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                    "spec.minReadySeconds: Invalid value: -1: must be greater than or equal to 0",
                    "spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
                ]),
            ),
            case(
                "the strategy is Recreate or RollingUpdate",
                |d| d.spec.strategy.type_ = "BlueGreen".into(),
                errs(&[
                    "spec.strategy.type: Unsupported value: \"BlueGreen\": supported values: \"Recreate\", \"RollingUpdate\"",
                ]),
            ),
            case(
                "Recreate takes no rollingUpdate",
                |d| {
                    d.spec.strategy.type_ = "Recreate".into();
                    d.spec.strategy.rolling_update = rolling(json!({"maxSurge": 1}));
                },
                errs(&[
                    "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'",
                ]),
            ),
            case(
                "maxSurge is a count or a percentage",
                |d| d.spec.strategy.rolling_update = rolling(json!({"maxSurge": "many"})),
                vec![format!(
                    "spec.strategy.rollingUpdate.maxSurge: Invalid value: \"many\": {PERCENT}"
                )],
            ),
            case(
                "a percentage has no sign",
                |d| d.spec.strategy.rolling_update = rolling(json!({"maxSurge": "+5%"})),
                vec![format!(
                    "spec.strategy.rollingUpdate.maxSurge: Invalid value: \"+5%\": {PERCENT}"
                )],
            ),
            case(
                "a count is not negative",
                |d| d.spec.strategy.rolling_update = rolling(json!({"maxSurge": -1})),
                errs(&[
                    "spec.strategy.rollingUpdate.maxSurge: Invalid value: -1: must be greater than or equal to 0",
                ]),
            ),
            case(
                "maxUnavailable is at most 100%",
                |d| d.spec.strategy.rolling_update = rolling(json!({"maxUnavailable": "150%"})),
                errs(&[
                    "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"150%\": must not be greater than 100%",
                ]),
            ),
            case(
                "maxSurge may exceed 100%",
                |d| d.spec.strategy.rolling_update = rolling(json!({"maxSurge": "200%"})),
                none(),
            ),
            case(
                "maxSurge and maxUnavailable are not both zero",
                |d| {
                    d.spec.strategy.rolling_update =
                        rolling(json!({"maxSurge": 0, "maxUnavailable": "0%"}));
                },
                errs(&[
                    "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0",
                ]),
            ),
            case(
                "progressDeadlineSeconds exceeds minReadySeconds",
                |d| {
                    d.spec.min_ready_seconds = 10;
                    d.spec.progress_deadline_seconds = Some(10);
                },
                errs(&[
                    "spec.progressDeadlineSeconds: Invalid value: 10: must be greater than minReadySeconds",
                ]),
            ),
        ],
    );
}

fn replica_set() -> ReplicaSet {
    let Object::ReplicaSet(rs) = decode(json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "web-5d4f8", "namespace": "default"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template_json()
        }
    })) else {
        unreachable!()
    };
    rs
}

#[test]
fn replica_set_rules_report_kubernetes_errors() {
    run(
        &replica_set(),
        Object::ReplicaSet,
        vec![
            case(
                "a selector is required",
                |rs| rs.spec.selector = None,
                errs(&["spec.selector: Required value"]),
            ),
            case(
                "a selector is not empty",
                |rs| rs.spec.selector = Some(LabelSelector::default()),
                errs(&[
                    "spec.selector: Invalid value: \"{}\": empty selector is invalid for replicaset",
                ]),
            ),
            case(
                "the selector selects the template's labels, printed as a Go map",
                |rs| {
                    rs.spec.selector = Some(parse(json!({"matchExpressions": [
                        {"key": "tier", "operator": "Exists"}
                    ]})));
                    rs.spec
                        .template
                        .metadata
                        .labels
                        .insert("env".into(), "prod".into());
                },
                errs(&[
                    "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\", \"env\":\"prod\"}: `selector` does not match template `labels`",
                ]),
            ),
            case(
                "replicas and minReadySeconds are not negative",
                |rs| {
                    rs.spec.replicas = Some(-2);
                    rs.spec.min_ready_seconds = -1;
                },
                errs(&[
                    "spec.replicas: Invalid value: -2: must be greater than or equal to 0",
                    "spec.minReadySeconds: Invalid value: -1: must be greater than or equal to 0",
                ]),
            ),
            case(
                "a replica set's pods restart Always",
                |rs| rs.spec.template.spec.restart_policy = "Never".into(),
                errs(&[
                    "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
                ]),
            ),
        ],
    );
}

fn daemon_set() -> DaemonSet {
    let Object::DaemonSet(ds) = decode(json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "node-exporter", "namespace": "monitoring"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": template_json(),
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}
        }
    })) else {
        unreachable!()
    };
    ds
}

#[test]
fn daemon_set_rules_report_kubernetes_errors() {
    run(
        &daemon_set(),
        Object::DaemonSet,
        vec![
            case(
                "a selector is not empty",
                |ds| ds.spec.selector = Some(LabelSelector::default()),
                errs(&[
                    "spec.selector: Invalid value: \"{}\": empty selector is invalid for daemonset",
                ]),
            ),
            case(
                "the selector selects the template's labels",
                |ds| ds.spec.template.metadata.labels.clear(),
                errs(&[
                    "spec.template.metadata.labels: Invalid value: map[string]string{}: `selector` does not match template `labels`",
                ]),
            ),
            case(
                "a daemon set's pods restart Always",
                |ds| ds.spec.template.spec.restart_policy = "OnFailure".into(),
                errs(&[
                    "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
                ]),
            ),
            case(
                "the update strategy is OnDelete or RollingUpdate",
                |ds| ds.spec.update_strategy.type_ = "Everywhere".into(),
                errs(&[
                    "spec.updateStrategy.type: Unsupported value: \"Everywhere\": supported values: \"OnDelete\", \"RollingUpdate\"",
                ]),
            ),
            case(
                "OnDelete takes no rollingUpdate",
                |ds| ds.spec.update_strategy.type_ = "OnDelete".into(),
                errs(&[
                    "spec.updateStrategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'OnDelete'",
                ]),
            ),
            case(
                "OnDelete alone is accepted",
                |ds| {
                    ds.spec.update_strategy.type_ = "OnDelete".into();
                    ds.spec.update_strategy.rolling_update = None;
                },
                none(),
            ),
            case(
                "maxUnavailable is at most 100%",
                |ds| {
                    ds.spec.update_strategy.rolling_update =
                        Some(parse(json!({"maxUnavailable": "101%"})));
                },
                errs(&[
                    "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: \"101%\": must not be greater than 100%",
                ]),
            ),
            case(
                "minReadySeconds and revisionHistoryLimit are not negative",
                |ds| {
                    ds.spec.min_ready_seconds = -1;
                    ds.spec.revision_history_limit = Some(-1);
                },
                errs(&[
                    "spec.minReadySeconds: Invalid value: -1: must be greater than or equal to 0",
                    "spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
                ]),
            ),
        ],
    );
}

fn job() -> Job {
    let Object::Job(job) = decode(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "backup", "namespace": "default"},
        "spec": {
            "backoffLimit": 3,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "backup", "image": "restic/restic"}]
            }}
        }
    })) else {
        unreachable!()
    };
    job
}

#[test]
fn job_rules_report_kubernetes_errors() {
    run(
        &job(),
        Object::Job,
        vec![
            case(
                "a job's pods name their restartPolicy",
                |j| j.spec.template.spec.restart_policy.clear(),
                errs(&[
                    "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
                ]),
            ),
            case(
                "a job's pods do not restart Always",
                |j| j.spec.template.spec.restart_policy = "Always".into(),
                errs(&[
                    "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"",
                ]),
            ),
            case(
                "OnFailure is accepted",
                |j| j.spec.template.spec.restart_policy = "OnFailure".into(),
                none(),
            ),
            case(
                "counts are not negative",
                |j| {
                    j.spec.parallelism = Some(-1);
                    j.spec.completions = Some(-1);
                    j.spec.backoff_limit = Some(-1);
                    j.spec.ttl_seconds_after_finished = Some(-1);
                },
                errs(&[
                    "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
                    "spec.completions: Invalid value: -1: must be greater than or equal to 0",
                    "spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0",
                    "spec.ttlSecondsAfterFinished: Invalid value: -1: must be greater than or equal to 0",
                ]),
            ),
            case(
                "activeDeadlineSeconds is positive",
                |j| j.spec.active_deadline_seconds = Some(0),
                errs(&["spec.activeDeadlineSeconds: Invalid value: 0: must be greater than 0"]),
            ),
            case(
                "completionMode is NonIndexed or Indexed",
                |j| j.spec.completion_mode = Some("Sometimes".into()),
                errs(&[
                    "spec.completionMode: Unsupported value: \"Sometimes\": supported values: \"NonIndexed\", \"Indexed\"",
                ]),
            ),
            case(
                "a manual selector is required",
                |j| j.spec.manual_selector = Some(true),
                errs(&["spec.selector: Required value"]),
            ),
            case(
                "a manual selector selects the template's labels",
                |j| {
                    j.spec.manual_selector = Some(true);
                    j.spec.selector = Some(parse(json!({"matchLabels": {"job": "backup"}})));
                },
                errs(&[
                    "spec.template.metadata.labels: Invalid value: map[string]string{}: `selector` does not match template `labels`",
                ]),
            ),
            case(
                "a matching manual selector is accepted",
                |j| {
                    j.spec.manual_selector = Some(true);
                    j.spec.selector = Some(parse(json!({"matchLabels": {"job": "backup"}})));
                    j.spec
                        .template
                        .metadata
                        .labels
                        .insert("job".into(), "backup".into());
                },
                none(),
            ),
        ],
    );
}

// ---------------------------------------------------------------------------
// Services and endpoints
// ---------------------------------------------------------------------------

fn service() -> Service {
    let Object::Service(svc) = decode(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
    })) else {
        unreachable!()
    };
    svc
}

fn service_port(name: &str, number: i32) -> ServicePort {
    ServicePort {
        name: name.to_owned(),
        port: number,
        ..ServicePort::default()
    }
}

#[test]
fn service_rules_report_kubernetes_errors() {
    run(
        &service(),
        Object::Service,
        vec![
            case(
                "a service name is a DNS-1035 label",
                |s| s.metadata.name = "1web".into(),
                vec![format!("metadata.name: Invalid value: \"1web\": {DNS1035}")],
            ),
            case(
                "a service name has no dots",
                |s| s.metadata.name = "web.v2".into(),
                vec![format!(
                    "metadata.name: Invalid value: \"web.v2\": {DNS1035}"
                )],
            ),
            case(
                "the type is one Kubernetes knows",
                |s| s.spec.type_ = "Internal".into(),
                errs(&[
                    "spec.type: Unsupported value: \"Internal\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
                ]),
            ),
            case(
                "a service has ports",
                |s| s.spec.ports.clear(),
                errs(&["spec.ports: Required value"]),
            ),
            case(
                "a headless service may have no ports",
                |s| {
                    s.spec.ports.clear();
                    s.spec.cluster_ip = "None".into();
                },
                none(),
            ),
            case(
                "several ports are named",
                |s| s.spec.ports.push(service_port("", 443)),
                errs(&[
                    "spec.ports[0].name: Required value",
                    "spec.ports[1].name: Required value",
                ]),
            ),
            case(
                "a port name is an RFC 1123 label",
                |s| s.spec.ports[0].name = "Web".into(),
                vec![format!(
                    "spec.ports[0].name: Invalid value: \"Web\": {DNS_LABEL}"
                )],
            ),
            case(
                "port names are unique",
                |s| {
                    s.spec.ports = vec![service_port("web", 80), service_port("web", 81)];
                },
                errs(&["spec.ports[1].name: Duplicate value: \"web\""]),
            ),
            case(
                "a port and protocol are exposed once",
                |s| {
                    s.spec.ports = vec![service_port("a", 80), service_port("b", 80)];
                },
                errs(&["spec.ports[1]: Duplicate value: \"80/TCP\""]),
            ),
            case(
                "one port with two protocols is accepted",
                |s| {
                    let mut udp = service_port("dns-udp", 53);
                    udp.protocol = "UDP".into();
                    s.spec.ports = vec![service_port("dns-tcp", 53), udp];
                },
                none(),
            ),
            case(
                "a port is 1 to 65535",
                |s| s.spec.ports[0].port = 0,
                vec![format!(
                    "spec.ports[0].port: Invalid value: 0: {PORT_RANGE}"
                )],
            ),
            case(
                "a protocol is SCTP, TCP or UDP",
                |s| s.spec.ports[0].protocol = "ICMP".into(),
                errs(&[
                    "spec.ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                ]),
            ),
            case(
                "a numeric targetPort is 1 to 65535",
                |s| s.spec.ports[0].target_port = Some(IntOrString::Int(70000)),
                vec![format!(
                    "spec.ports[0].targetPort: Invalid value: 70000: {PORT_RANGE}"
                )],
            ),
            case(
                "a named targetPort is an IANA service name",
                |s| s.spec.ports[0].target_port = Some(IntOrString::String("http--alt".into())),
                errs(&[
                    "spec.ports[0].targetPort: Invalid value: \"http--alt\": must not contain consecutive hyphens",
                ]),
            ),
            case(
                "a ClusterIP service has no nodePort",
                |s| s.spec.ports[0].node_port = 30080,
                errs(&[
                    "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
                ]),
            ),
            case(
                "a NodePort service may choose its nodePort",
                |s| {
                    s.spec.type_ = "NodePort".into();
                    s.spec.ports[0].node_port = 30080;
                },
                none(),
            ),
            case(
                "a nodePort is 1 to 65535",
                |s| {
                    s.spec.type_ = "LoadBalancer".into();
                    s.spec.ports[0].node_port = 70000;
                },
                vec![format!(
                    "spec.ports[0].nodePort: Invalid value: 70000: {PORT_RANGE}"
                )],
            ),
            case(
                "a clusterIP is empty, None or an IP address",
                |s| s.spec.cluster_ip = "10.0.0".into(),
                errs(&[
                    "spec.clusterIP: Invalid value: \"10.0.0\": must be empty, 'None', or a valid IP address",
                ]),
            ),
            case(
                "a selector has label keys and values",
                |s| {
                    s.spec.selector.insert("app".into(), "a b".into());
                },
                vec![format!(
                    "spec.selector[app]: Invalid value: \"a b\": {LABEL_VALUE}"
                )],
            ),
            case(
                "sessionAffinity is ClientIP or None",
                |s| s.spec.session_affinity = "Sticky".into(),
                errs(&[
                    "spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\"",
                ]),
            ),
            case(
                "the ClientIP affinity timeout is 1 to 86400 seconds",
                |s| {
                    s.spec.session_affinity = "ClientIP".into();
                    s.spec.session_affinity_config =
                        Some(parse(json!({"clientIP": {"timeoutSeconds": 0}})));
                },
                errs(&[
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0: must be greater than 0 and less than 86400",
                ]),
            ),
            case(
                "an ExternalName service names a host",
                |s| s.spec.type_ = "ExternalName".into(),
                errs(&["spec.externalName: Required value"]),
            ),
            case(
                "an ExternalName service needs no ports and may end in a dot",
                |s| {
                    s.spec.type_ = "ExternalName".into();
                    s.spec.external_name = "db.example.com.".into();
                    s.spec.ports.clear();
                },
                none(),
            ),
            case(
                "an external name is a subdomain",
                |s| {
                    s.spec.type_ = "ExternalName".into();
                    s.spec.external_name = "db_host".into();
                },
                vec![format!(
                    "spec.externalName: Invalid value: \"db_host\": {SUBDOMAIN}"
                )],
            ),
            case(
                "an external IP is an IP address",
                |s| s.spec.external_ips = vec!["192.168.1.10".into(), "192.168.1".into()],
                errs(&[
                    "spec.externalIPs[1]: Invalid value: \"192.168.1\": must be a valid IP address",
                ]),
            ),
        ],
    );
}

fn endpoints() -> Endpoints {
    let Object::Endpoints(ep) = decode(json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "web", "namespace": "default"},
        "subsets": [{
            "addresses": [{"ip": "10.1.0.5"}],
            "notReadyAddresses": [{"ip": "fd00::5"}],
            "ports": [{"port": 8080}]
        }]
    })) else {
        unreachable!()
    };
    ep
}

#[test]
fn endpoints_rules_report_kubernetes_errors() {
    run(
        &endpoints(),
        Object::Endpoints,
        vec![
            case(
                "an address is an IP address",
                |ep| ep.subsets[0].addresses[0].ip = "web-0".into(),
                errs(&[
                    "subsets[0].addresses[0].ip: Invalid value: \"web-0\": must be a valid IP address",
                ]),
            ),
            case(
                "a not-ready address is an IP address",
                |ep| ep.subsets[0].not_ready_addresses[0].ip = String::new(),
                errs(&[
                    "subsets[0].notReadyAddresses[0].ip: Invalid value: \"\": must be a valid IP address",
                ]),
            ),
            case(
                "several ports are named",
                |ep| {
                    let again = ep.subsets[0].ports[0].clone();
                    ep.subsets[0].ports.push(again);
                },
                errs(&[
                    "subsets[0].ports[0].name: Required value",
                    "subsets[0].ports[1].name: Required value",
                ]),
            ),
            case(
                "a port is 1 to 65535",
                |ep| ep.subsets[0].ports[0].port = 65536,
                vec![format!(
                    "subsets[0].ports[0].port: Invalid value: 65536: {PORT_RANGE}"
                )],
            ),
            case(
                "a protocol is SCTP, TCP or UDP",
                |ep| ep.subsets[0].ports[0].protocol = "QUIC".into(),
                errs(&[
                    "subsets[0].ports[0].protocol: Unsupported value: \"QUIC\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                ]),
            ),
        ],
    );
}

// ---------------------------------------------------------------------------
// ConfigMaps and Secrets
// ---------------------------------------------------------------------------

#[test]
fn config_map_rules_report_kubernetes_errors() {
    run(
        &config_map(),
        Object::ConfigMap,
        vec![
            case(
                "a key is a config key",
                |cm| {
                    cm.data.insert("conf/app".into(), "x".into());
                },
                vec![format!(
                    "data[conf/app]: Invalid value: \"conf/app\": {CONFIG_KEY}"
                )],
            ),
            case(
                "a key is not '..'",
                |cm| {
                    cm.data.insert("..".into(), "x".into());
                },
                errs(&["data[..]: Invalid value: \"..\": must not be '..'"]),
            ),
            case(
                "a key does not start with '..'",
                |cm| {
                    cm.binary_data.insert("..data".into(), ByteString(vec![1]));
                },
                errs(&["binaryData[..data]: Invalid value: \"..data\": must not start with '..'"]),
            ),
            case(
                "a key is in data or binaryData, not both",
                |cm| {
                    cm.binary_data.insert("mode".into(), ByteString(vec![1]));
                },
                errs(&[
                    "data[mode]: Invalid value: \"mode\": duplicate of key present in binaryData",
                ]),
            ),
            case(
                "data and binaryData total at most 1 MiB",
                |cm| {
                    cm.data.insert("big".into(), "x".repeat(1024 * 1024 - 4));
                    cm.binary_data.insert("blob".into(), ByteString(vec![0; 1]));
                },
                errs(&[": Too long: may not be more than 1048576 bytes"]),
            ),
        ],
    );
}

fn secret() -> Secret {
    let Object::Secret(secret) = decode(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "default"},
        "type": "Opaque",
        "data": {"password": "c2VjcmV0"}
    })) else {
        unreachable!()
    };
    secret
}

#[test]
fn secret_rules_report_kubernetes_errors() {
    run(
        &secret(),
        Object::Secret,
        vec![
            case(
                "a data key is a config key",
                |s| {
                    s.data.insert("api token".into(), ByteString(vec![1]));
                },
                vec![format!(
                    "data[api token]: Invalid value: \"api token\": {CONFIG_KEY}"
                )],
            ),
            case(
                "a stringData key is a config key",
                |s| {
                    s.string_data.insert("..".into(), "x".into());
                },
                errs(&["stringData[..]: Invalid value: \"..\": must not be '..'"]),
            ),
            case(
                "stringData may override a data key",
                |s| {
                    s.string_data.insert("password".into(), "hunter2".into());
                },
                none(),
            ),
            case(
                "a secret holds at most 1 MiB",
                |s| {
                    s.string_data.insert("big".into(), "x".repeat(1024 * 1024));
                },
                errs(&["data: Too long: may not be more than 1048576 bytes"]),
            ),
            case(
                "a TLS secret has tls.crt and tls.key",
                |s| s.type_ = "kubernetes.io/tls".into(),
                errs(&[
                    "data[tls.crt]: Required value",
                    "data[tls.key]: Required value",
                ]),
            ),
            case(
                "a TLS secret's keys may come from stringData",
                |s| {
                    s.type_ = "kubernetes.io/tls".into();
                    s.data
                        .insert("tls.crt".into(), ByteString(b"cert".to_vec()));
                    s.string_data.insert("tls.key".into(), "key".into());
                },
                none(),
            ),
            case(
                "a basic-auth secret has a username or a password",
                |s| {
                    s.type_ = "kubernetes.io/basic-auth".into();
                    s.data.clear();
                },
                errs(&[
                    "data[username]: Required value",
                    "data[password]: Required value",
                ]),
            ),
            case(
                "a basic-auth secret with a password only is accepted",
                |s| s.type_ = "kubernetes.io/basic-auth".into(),
                none(),
            ),
            case(
                "an ssh-auth secret has a private key",
                |s| {
                    s.type_ = "kubernetes.io/ssh-auth".into();
                    s.data
                        .insert("ssh-privatekey".into(), ByteString(Vec::new()));
                },
                errs(&["data[ssh-privatekey]: Required value"]),
            ),
            case(
                "a custom type is a qualified name",
                |s| s.type_ = "example.com/token".into(),
                none(),
            ),
            case(
                "a malformed type is refused",
                |s| s.type_ = "not a type".into(),
                errs(&["type: Invalid value: \"not a type\": must be a qualified name"]),
            ),
        ],
    );
}

// ---------------------------------------------------------------------------
// Cluster-scoped kinds: Node and Namespace
// ---------------------------------------------------------------------------

fn node() -> Node {
    let Object::Node(node) = decode(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "pi-7", "labels": {"kubernetes.io/arch": "arm64"}},
        "spec": {"taints": [{"key": "dedicated", "value": "edge", "effect": "NoSchedule"}]}
    })) else {
        unreachable!()
    };
    node
}

fn taint(key: &str, value: &str, effect: &str) -> Taint {
    Taint {
        key: key.to_owned(),
        value: value.to_owned(),
        effect: effect.to_owned(),
        time_added: None,
    }
}

#[test]
fn node_rules_report_kubernetes_errors() {
    run(
        &node(),
        Object::Node,
        vec![
            case(
                "a node is not namespaced",
                |n| n.metadata.namespace = "default".into(),
                errs(&["metadata.namespace: Forbidden: not allowed on this type"]),
            ),
            case(
                "a node name is a subdomain",
                |n| n.metadata.name = "Pi_7".into(),
                vec![format!(
                    "metadata.name: Invalid value: \"Pi_7\": {SUBDOMAIN}"
                )],
            ),
            case(
                "a taint has a key",
                |n| n.spec.taints[0].key.clear(),
                errs(&["spec.taints[0].key: Required value"]),
            ),
            case(
                "a taint key is a qualified name",
                |n| n.spec.taints[0].key = "a b".into(),
                vec![format!(
                    "spec.taints[0].key: Invalid value: \"a b\": {QUALIFIED}"
                )],
            ),
            case(
                "a taint value is a label value",
                |n| n.spec.taints[0].value = "a b".into(),
                vec![format!(
                    "spec.taints[0].value: Invalid value: \"a b\": {LABEL_VALUE}"
                )],
            ),
            case(
                "a taint has an effect",
                |n| n.spec.taints[0].effect.clear(),
                errs(&["spec.taints[0].effect: Required value"]),
            ),
            case(
                "a taint effect is one Kubernetes knows",
                |n| n.spec.taints[0].effect = "NoRun".into(),
                errs(&[
                    "spec.taints[0].effect: Unsupported value: \"NoRun\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
                ]),
            ),
            case(
                "taints are unique by key and effect",
                |n| {
                    n.spec
                        .taints
                        .push(taint("dedicated", "other", "NoSchedule"))
                },
                errs(&[
                    "spec.taints[1]: Duplicate value: \"dedicated:NoSchedule\": taints must be unique by key and effect pair",
                ]),
            ),
            case(
                "one key with two effects is two taints",
                |n| n.spec.taints.push(taint("dedicated", "edge", "NoExecute")),
                none(),
            ),
        ],
    );
}

fn namespace() -> Namespace {
    let Object::Namespace(ns) = decode(json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "edge"}
    })) else {
        unreachable!()
    };
    ns
}

#[test]
fn namespace_rules_report_kubernetes_errors() {
    let long = "a".repeat(64);
    run(
        &namespace(),
        Object::Namespace,
        vec![
            case(
                "a namespace name is an RFC 1123 label",
                |ns| ns.metadata.name = "edge.prod".into(),
                vec![format!(
                    "metadata.name: Invalid value: \"edge.prod\": {DNS_LABEL}"
                )],
            ),
            case(
                "a namespace name has at most 63 characters",
                |ns| ns.metadata.name = "a".repeat(64),
                vec![format!(
                    "metadata.name: Invalid value: {long:?}: must be no more than 63 characters"
                )],
            ),
            case(
                "a namespace is not in a namespace",
                |ns| ns.metadata.namespace = "default".into(),
                errs(&["metadata.namespace: Forbidden: not allowed on this type"]),
            ),
        ],
    );
}

// ---------------------------------------------------------------------------
// Events and leases
// ---------------------------------------------------------------------------

fn event() -> Event {
    let Object::Event(event) = decode(json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "web.17a2b3c4", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
        "reason": "Pulled",
        "message": "Successfully pulled image",
        "type": "Normal"
    })) else {
        unreachable!()
    };
    event
}

#[test]
fn event_rules_report_kubernetes_errors() {
    run(
        &event(),
        Object::Event,
        vec![
            case(
                "an event is about an object",
                |e| e.involved_object = ObjectReference::default(),
                errs(&[
                    "involvedObject.kind: Required value",
                    "involvedObject.name: Required value",
                ]),
            ),
            case(
                "the type is Normal or Warning",
                |e| e.type_ = "Info".into(),
                errs(&[
                    "type: Unsupported value: \"Info\": supported values: \"Normal\", \"Warning\"",
                ]),
            ),
            case(
                "a reason has at most 128 bytes",
                |e| e.reason = "r".repeat(129),
                errs(&["reason: Too long: may not be more than 128 bytes"]),
            ),
            case(
                "a message has at most 4096 bytes",
                |e| e.message = "m".repeat(4097),
                errs(&["message: Too long: may not be more than 4096 bytes"]),
            ),
        ],
    );
}

fn lease() -> Lease {
    let Object::Lease(lease) = decode(json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "hub-leader", "namespace": "flotilla-system"},
        "spec": {"holderIdentity": "hub-0", "leaseDurationSeconds": 15, "leaseTransitions": 0}
    })) else {
        unreachable!()
    };
    lease
}

#[test]
fn lease_rules_report_kubernetes_errors() {
    run(
        &lease(),
        Object::Lease,
        vec![
            case(
                "a lease lasts a positive time",
                |l| l.spec.lease_duration_seconds = Some(0),
                errs(&["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]),
            ),
            case(
                "transitions are not negative",
                |l| l.spec.lease_transitions = Some(-1),
                errs(&[
                    "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
                ]),
            ),
        ],
    );
}

// ---------------------------------------------------------------------------
// RBAC
// ---------------------------------------------------------------------------

fn role() -> Role {
    let Object::Role(role) = decode(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "pod-reader", "namespace": "default"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
    })) else {
        unreachable!()
    };
    role
}

#[test]
fn role_rules_report_kubernetes_errors() {
    run(
        &role(),
        Object::Role,
        vec![
            case(
                "an RBAC name may have colons and capitals",
                |r| r.metadata.name = "system:Pod-Reader".into(),
                none(),
            ),
            case(
                "an RBAC name is a path segment",
                |r| r.metadata.name = "a/b%c".into(),
                errs(&[
                    "metadata.name: Invalid value: \"a/b%c\": may not contain '/'",
                    "metadata.name: Invalid value: \"a/b%c\": may not contain '%'",
                ]),
            ),
            case(
                "an RBAC name is not '..'",
                |r| r.metadata.name = "..".into(),
                errs(&["metadata.name: Invalid value: \"..\": may not be '..'"]),
            ),
            case(
                "a rule has verbs",
                |r| r.rules[0].verbs.clear(),
                errs(&["rules[0].verbs: Required value: verbs must contain at least one value"]),
            ),
            case(
                "a resource rule has api groups and resources",
                |r| {
                    r.rules[0].api_groups.clear();
                    r.rules[0].resources.clear();
                },
                errs(&[
                    "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
                    "rules[0].resources: Required value: resource rules must supply at least one resource",
                ]),
            ),
            case(
                "a role may not grant non-resource URLs",
                |r| {
                    r.rules[0] = parse(json!({"nonResourceURLs": ["/healthz"], "verbs": ["get"]}));
                },
                errs(&[
                    "rules[0].nonResourceURLs: Invalid value: []string{\"/healthz\"}: namespaced rules cannot apply to non-resource URLs",
                ]),
            ),
        ],
    );
}

fn cluster_role() -> ClusterRole {
    let Object::ClusterRole(role) = decode(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "node-reader"},
        "rules": [
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
            {"nonResourceURLs": ["/healthz", "/version"], "verbs": ["get"]}
        ]
    })) else {
        unreachable!()
    };
    role
}

#[test]
fn cluster_role_rules_report_kubernetes_errors() {
    run(
        &cluster_role(),
        Object::ClusterRole,
        vec![
            case(
                "a cluster role is not namespaced",
                |r| r.metadata.namespace = "default".into(),
                errs(&["metadata.namespace: Forbidden: not allowed on this type"]),
            ),
            case(
                "a non-resource rule names no resources",
                |r| r.rules[1].resource_names = vec!["x".into()],
                errs(&[
                    "rules[1].nonResourceURLs: Invalid value: []string{\"/healthz\", \"/version\"}: rules cannot apply to both regular resources and non-resource URLs",
                ]),
            ),
            case(
                "a non-resource rule has verbs",
                |r| r.rules[1].verbs.clear(),
                errs(&["rules[1].verbs: Required value: verbs must contain at least one value"]),
            ),
        ],
    );
}

fn role_binding() -> RoleBinding {
    let Object::RoleBinding(binding) = decode(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "read-pods", "namespace": "default"},
        "subjects": [
            {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "jane"},
            {"kind": "ServiceAccount", "name": "agent"}
        ],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"}
    })) else {
        unreachable!()
    };
    binding
}

#[test]
fn role_binding_rules_report_kubernetes_errors() {
    run(
        &role_binding(),
        Object::RoleBinding,
        vec![
            case(
                "roleRef is in the RBAC group",
                |b| b.role_ref.api_group.clear(),
                errs(&[
                    "roleRef.apiGroup: Unsupported value: \"\": supported values: \"rbac.authorization.k8s.io\"",
                ]),
            ),
            case(
                "roleRef names a Role or a ClusterRole",
                |b| b.role_ref.kind = "User".into(),
                errs(&[
                    "roleRef.kind: Unsupported value: \"User\": supported values: \"Role\", \"ClusterRole\"",
                ]),
            ),
            case(
                "a binding may refer to a ClusterRole",
                |b| b.role_ref.kind = "ClusterRole".into(),
                none(),
            ),
            case(
                "roleRef has a name",
                |b| b.role_ref.name.clear(),
                errs(&["roleRef.name: Required value"]),
            ),
            case(
                "roleRef's name is a path segment",
                |b| b.role_ref.name = "a/b".into(),
                errs(&["roleRef.name: Invalid value: \"a/b\": may not contain '/'"]),
            ),
            case(
                "a subject has a name",
                |b| b.subjects[0].name.clear(),
                errs(&["subjects[0].name: Required value"]),
            ),
            case(
                "a subject is a ServiceAccount, a User or a Group",
                |b| b.subjects[0].kind = "Robot".into(),
                errs(&[
                    "subjects[0].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
                ]),
            ),
            case(
                "a user or group subject is in the RBAC group",
                |b| {
                    b.subjects[0].kind = "Group".into();
                    b.subjects[0].api_group.clear();
                },
                errs(&[
                    "subjects[0].apiGroup: Unsupported value: \"\": supported values: \"rbac.authorization.k8s.io\"",
                ]),
            ),
            case(
                "a service account subject is in the core group, with a subdomain name",
                |b| {
                    b.subjects[1].name = "Agent_1".into();
                    b.subjects[1].api_group = "rbac.authorization.k8s.io".into();
                },
                vec![
                    format!("subjects[1].name: Invalid value: \"Agent_1\": {SUBDOMAIN}"),
                    "subjects[1].apiGroup: Unsupported value: \"rbac.authorization.k8s.io\": supported values: \"\"".to_owned(),
                ],
            ),
        ],
    );
}

fn cluster_role_binding() -> ClusterRoleBinding {
    let Object::ClusterRoleBinding(binding) = decode(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "agents-read-nodes"},
        "subjects": [{"kind": "ServiceAccount", "name": "agent", "namespace": "flotilla-system"}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "node-reader"}
    })) else {
        unreachable!()
    };
    binding
}

#[test]
fn cluster_role_binding_rules_report_kubernetes_errors() {
    run(
        &cluster_role_binding(),
        Object::ClusterRoleBinding,
        vec![
            case(
                "a cluster role binding is not namespaced",
                |b| b.metadata.namespace = "default".into(),
                errs(&["metadata.namespace: Forbidden: not allowed on this type"]),
            ),
            case(
                "a cluster role binding refers to a ClusterRole",
                |b| b.role_ref.kind = "Role".into(),
                errs(&[
                    "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
                ]),
            ),
            case(
                "a service account subject names its namespace",
                |b| b.subjects[0].namespace.clear(),
                errs(&["subjects[0].namespace: Required value"]),
            ),
        ],
    );
}

// ---------------------------------------------------------------------------
// How the errors come back
// ---------------------------------------------------------------------------

#[test]
fn every_error_of_an_object_is_reported_at_once_in_walk_order() {
    let mut broken = deployment();
    broken.metadata.name = "Web".into();
    broken.spec.replicas = Some(-1);
    broken.spec.template.spec.containers[0].image.clear();
    broken.spec.template.spec.containers[0]
        .ports
        .push(port(0, 0));
    let errors = validate(&Object::Deployment(broken)).expect_err("the deployment is invalid");
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "metadata.name",
            "spec.replicas",
            "spec.template.spec.containers[0].image",
            "spec.template.spec.containers[0].ports[0].containerPort",
        ]
    );
}
