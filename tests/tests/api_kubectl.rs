//! Stock kubectl against a three-replica hub: the API server as users meet it.
//!
//! Each test starts its own cluster on its own loopback addresses, so the
//! tests run in parallel. kubectl talks to followers as well as the leader:
//! every replica serves the API.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::Duration;

use flotilla_tests::hub::{Cluster, ClusterOptions};
use flotilla_tests::kubectl::Kubectl;
use serde_json::Value;

const APP: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  labels: {app: web}
data:
  greeting: hello
---
apiVersion: v1
kind: Secret
metadata:
  name: web-secret
type: Opaque
stringData:
  password: s3cret
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.local/web:1.0
        env:
        - {name: FOO, value: "1"}
        - {name: BAR, value: "2"}
        ports:
        - {containerPort: 8080, name: http}
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
      - name: agent
        image: registry.local/agent:1.0
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {port: 80, targetPort: http}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: migrate
        image: registry.local/migrate:1.0
        command: [/migrate]
"#;

fn cluster(extra_args: &[String]) -> Cluster {
    Cluster::start(
        3,
        ClusterOptions {
            extra_args: extra_args.to_vec(),
            ..ClusterOptions::default()
        },
    )
}

/// The lines of `kubectl apply`'s output, sorted.
fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

#[test]
fn kubectl_applies_reapplies_and_prunes_fields_through_any_replica() {
    let cluster = cluster(&[]);
    let on_follower = Kubectl::new(&cluster.replicas[1].kubeconfig());
    let on_other = Kubectl::new(&cluster.replicas[2].kubeconfig());

    let created = on_follower.apply(APP, &[]);
    assert_eq!(
        sorted_lines(&created),
        [
            "configmap/web-config created",
            "daemonset.apps/agent created",
            "deployment.apps/web created",
            "job.batch/migrate created",
            "secret/web-secret created",
            "service/web created",
        ]
    );
    // The same manifest again changes nothing. (kubectl reports a Secret
    // applied with stringData as configured every time, against Kubernetes
    // too: the live object has only data. The server stores nothing new.)
    let secret_version =
        on_other.get_json(&["secret", "web-secret"])["metadata"]["resourceVersion"].clone();
    let again = on_other.apply(APP, &[]);
    assert!(
        again
            .lines()
            .all(|l| l.ends_with(" unchanged") || l == "secret/web-secret configured"),
        "{again}"
    );
    let secret = on_follower.get_json(&["secret", "web-secret"]);
    assert_eq!(secret["metadata"]["resourceVersion"], secret_version);

    // Dropped fields are removed, changed ones changed, the rest unchanged.
    let changed = APP
        .replace("        - {name: FOO, value: \"1\"}\n", "")
        .replace("registry.local/web:1.0", "registry.local/web:2.0")
        .replace("labels: {app: web, tier: front}", "labels: {app: web}");
    let configured = on_other.apply(&changed, &[]);
    assert!(
        configured.contains("deployment.apps/web configured"),
        "{configured}"
    );
    assert!(
        configured.contains("configmap/web-config unchanged"),
        "{configured}"
    );
    let web = on_follower.get_json(&["deployment", "web"]);
    let container = &web["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "registry.local/web:2.0");
    assert_eq!(
        container["env"],
        serde_json::json!([{"name": "BAR", "value": "2"}])
    );
    assert_eq!(web["metadata"]["labels"], serde_json::json!({"app": "web"}));
    assert_eq!(web["metadata"]["generation"], 2, "{web}");
    // Defaults were filled in, status was not taken from the user.
    assert_eq!(web["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(container["imagePullPolicy"], "IfNotPresent");
    // The Secret's stringData was stored as data.
    let secret = on_other.get_json(&["secret", "web-secret"]);
    assert_eq!(secret["data"]["password"], "czNjcmV0");
    assert!(secret.get("stringData").is_none());
}

#[test]
fn kubectl_gets_describes_labels_scales_patches_watches_and_deletes() {
    let cluster = cluster(&[]);
    let kubectl = Kubectl::new(&cluster.replicas[2].kubeconfig());
    kubectl.apply(APP, &[]);

    let table = kubectl.ok(&["get", "deployments"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{table}"
    );
    assert!(table.lines().nth(1).unwrap().starts_with("web "), "{table}");
    let services = kubectl.ok(&["get", "svc", "web", "-o", "wide"]);
    assert!(
        services.contains("80/TCP") && services.contains("app=web"),
        "{services}"
    );

    let yaml = kubectl.ok(&["get", "configmap", "web-config", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: ConfigMap") && yaml.contains("greeting: hello"),
        "{yaml}"
    );
    assert!(
        yaml.contains("resourceVersion:") && yaml.contains("uid:"),
        "{yaml}"
    );

    let described = kubectl.ok(&["describe", "deployment", "web"]);
    assert!(
        described.contains("Name:") && described.contains("web"),
        "{described}"
    );
    assert!(described.contains("Replicas:"), "{described}");

    assert!(
        kubectl
            .ok(&["label", "configmap", "web-config", "stage=prod"])
            .contains("labeled")
    );
    let selected = kubectl.ok(&["get", "configmaps", "-l", "stage=prod", "-o", "name"]);
    assert_eq!(selected.trim(), "configmap/web-config");
    assert!(
        kubectl
            .ok(&["annotate", "configmap", "web-config", "owner=ops"])
            .contains("annotated")
    );
    assert_eq!(
        kubectl.get_json(&["configmap", "web-config"])["metadata"]["annotations"]["owner"],
        "ops"
    );

    assert!(
        kubectl
            .ok(&["scale", "deployment", "web", "--replicas=5"])
            .contains("scaled")
    );
    assert_eq!(
        kubectl.get_json(&["deployment", "web"])["spec"]["replicas"],
        5
    );

    kubectl.ok(&[
        "patch",
        "configmap",
        "web-config",
        "--type=merge",
        "-p",
        r#"{"data":{"extra":"x"}}"#,
    ]);
    kubectl.ok(&[
        "patch",
        "configmap",
        "web-config",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/data/greeting"}]"#,
    ]);
    kubectl.ok(&["patch", "deployment", "web", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"registry.local/web:3.0"}]}}}}"#]);
    assert_eq!(
        kubectl.get_json(&["configmap", "web-config"])["data"],
        serde_json::json!({"extra": "x"})
    );
    let web = kubectl.get_json(&["deployment", "web"]);
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.local/web:3.0"
    );
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["env"][0]["name"],
        "FOO"
    );

    // A watch sees a change made through another replica.
    let mut watch = kubectl.spawn(&["get", "configmaps", "-w", "-o", "name"]);
    let (lines, seen) = mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let first = seen
        .recv_timeout(Duration::from_secs(20))
        .expect("the watch lists first");
    assert!(first.contains("configmap/"), "{first}");
    Kubectl::new(&cluster.replicas[0].kubeconfig()).ok(&[
        "create",
        "configmap",
        "late",
        "--from-literal=a=b",
    ]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let line = seen
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("the watch reports the new ConfigMap");
        if line.contains("configmap/late") {
            break;
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();

    assert!(
        kubectl
            .ok(&["delete", "configmap", "late"])
            .contains("deleted")
    );
    let missing = kubectl.fails(&["get", "configmap", "late"]);
    assert!(
        missing.contains(r#"configmaps "late" not found"#),
        "{missing}"
    );
    // Foreground deletion: the Job waits (with the foregroundDeletion
    // finalizer) until the garbage collector has deleted its pods; kubectl
    // waits for it to be gone.
    kubectl.ok(&[
        "delete",
        "job",
        "migrate",
        "--cascade=foreground",
        "--timeout=60s",
    ]);
    kubectl.fails(&["get", "job", "migrate"]);
    let pods = kubectl.get_json(&["pods", "-l", "job-name=migrate"]);
    assert_eq!(
        pods["items"],
        serde_json::json!([]),
        "the Job's pods went first"
    );
    kubectl.ok(&["delete", "daemonset", "agent"]);
    kubectl.fails(&["get", "daemonset", "agent"]);
}

#[test]
fn a_namespaced_role_confines_a_token_user_and_refused_manifests_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "alice-token,alice,1001,\"team-a-devs\"\n").unwrap();
    let cluster = cluster(&["--token-auth-file".into(), tokens.display().to_string()]);
    let admin = Kubectl::new(&cluster.replicas[0].kubeconfig());
    admin.apply(
        r#"
apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: config-editor, namespace: team-a}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: devs-edit-config, namespace: team-a}
subjects:
- {kind: Group, name: team-a-devs, apiGroup: rbac.authorization.k8s.io}
roleRef: {kind: Role, name: config-editor, apiGroup: rbac.authorization.k8s.io}
"#,
        &[],
    );
    let alice = Kubectl::with_token(
        &cluster.replicas[1].kubeconfig(),
        dir.path(),
        "alice",
        "alice-token",
    );
    // Inside her namespace, allowed (the binding reaches every replica).
    let mut allowed = false;
    for _ in 0..50 {
        if alice.run(&["get", "configmaps", "-n", "team-a"]).success {
            allowed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        allowed,
        "alice was never allowed to list configmaps in team-a"
    );
    alice.ok(&[
        "create",
        "configmap",
        "notes",
        "-n",
        "team-a",
        "--from-literal=k=v",
    ]);
    // Outside it, or for other resources, denied with Kubernetes' wording.
    let denied = alice.fails(&["get", "configmaps", "-n", "default"]);
    assert!(
        denied.contains(r#"configmaps is forbidden: User "alice" cannot list resource "configmaps" in API group "" in the namespace "default""#),
        "{denied}"
    );
    let denied = alice.fails(&["get", "secrets", "-n", "team-a"]);
    assert!(denied.contains("secrets is forbidden"), "{denied}");
    let denied = alice.fails(&["create", "namespace", "mine"]);
    assert!(denied.contains("forbidden"), "{denied}");
    let unknown = Kubectl::with_token(
        &cluster.replicas[1].kubeconfig(),
        dir.path(),
        "mallory",
        "guess",
    );
    let refused = unknown.fails(&["get", "pods"]);
    assert!(
        refused.contains("You must be logged in to the server"),
        "{refused}"
    );

    // A manifest with field errors: every one reported, nothing stored.
    let invalid = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: Bad_Name}
spec:
  replicas: -1
  selector: {matchLabels: {app: x}}
  template:
    metadata: {labels: {app: other}}
    spec:
      containers: [{name: c}]
"#;
    let run = admin.run_with_input(&["apply", "-f", "-"], Some(invalid));
    assert!(!run.success);
    for expected in [
        r#"The Deployment "Bad_Name" is invalid"#,
        "metadata.name: Invalid value",
        "spec.replicas: Invalid value",
        "spec.template.spec.containers[0].image: Required value",
        "spec.template.metadata.labels: Invalid value",
    ] {
        assert!(
            run.stderr.contains(expected),
            "missing {expected:?} in:\n{}",
            run.stderr
        );
    }
    let typo = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: typo}
dataa: {a: b}
"#;
    let run = admin.run_with_input(&["apply", "-f", "-"], Some(typo));
    assert!(!run.success);
    assert!(
        run.stderr.contains(r#"unknown field "dataa""#),
        "{}",
        run.stderr
    );
    let deployments: Value = admin.get_json(&["deployments", "-A"]);
    assert_eq!(deployments["items"], serde_json::json!([]));
    admin.fails(&["get", "configmap", "typo"]);
    // Creating in a namespace that does not exist is refused.
    let missing = admin.fails(&["create", "configmap", "x", "-n", "nowhere"]);
    assert!(
        missing.contains(r#"namespaces "nowhere" not found"#),
        "{missing}"
    );
}
