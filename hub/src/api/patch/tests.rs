//! Table-driven tests of [`apply_patch`]: every strategic merge directive,
//! the patches kubectl sends (client-side `kubectl apply` computes them with
//! `CreateThreeWayMergePatch`; `label`, `annotate` and `scale` send merge
//! patches; `set image`, `rollout restart`, `cordon` strategic ones), JSON
//! patches, and the errors with their HTTP statuses.

use serde_json::{Value, json};

use super::{MAX_JSON_PATCH_OPERATIONS, PatchError, PatchType, apply_patch};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A Deployment as the hub stores it after `kubectl apply` created it.
fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "0b5e7c1a-1111-2222-3333-444455556666",
            "resourceVersion": "17",
            "generation": 1,
            "creationTimestamp": "2026-11-21T10:00:00Z",
            "labels": {"app": "web", "tier": "frontend"},
            "annotations": {
                "deployment.kubernetes.io/revision": "1",
                LAST_APPLIED: "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\"}\n"
            }
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "volumes": [{"name": "data", "emptyDir": {}}],
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.25",
                            "ports": [
                                {"containerPort": 80, "protocol": "TCP"},
                                {"name": "metrics", "containerPort": 8080, "protocol": "TCP"}
                            ],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                            "imagePullPolicy": "IfNotPresent"
                        },
                        {"name": "sidecar", "image": "busybox:1.36", "args": ["sleep", "infinity"]}
                    ],
                    "tolerations": [{"key": "edge", "operator": "Exists"}],
                    "restartPolicy": "Always"
                }
            }
        },
        "status": {
            "observedGeneration": 1,
            "replicas": 2,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
            ]
        }
    })
}

fn deployment_created_without_apply() -> Value {
    edited(deployment(), |d| {
        d["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove(LAST_APPLIED);
    })
}

fn deployment_with_finalizers() -> Value {
    edited(deployment(), |d| {
        d["metadata"]["finalizers"] = json!(["a", "b"]);
    })
}

fn deployment_without_strategy() -> Value {
    edited(deployment(), |d| {
        d["spec"].as_object_mut().unwrap().remove("strategy");
    })
}

fn node() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "pi-1", "labels": {"kubernetes.io/arch": "arm64"}},
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": "2026-11-21T11:00:00Z"},
                {"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-11-21T11:00:00Z"}
            ],
            "addresses": [
                {"type": "InternalIP", "address": "192.168.1.10"},
                {"type": "Hostname", "address": "pi-1"}
            ]
        }
    })
}

fn service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u-1"}
            ]
        },
        "spec": {
            "selector": {"app": "web"},
            "ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}
            ]
        }
    })
}

fn edited(mut value: Value, edit: impl FnOnce(&mut Value)) -> Value {
    edit(&mut value);
    value
}

fn containers(d: &mut Value) -> &mut Value {
    &mut d["spec"]["template"]["spec"]["containers"]
}

fn apply(
    kind: &str,
    patch_type: PatchType,
    original: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    apply_patch(kind, patch_type, original, patch.to_string().as_bytes())
}

/// A patch that must succeed: applied to `original()`, it gives `original()` changed by `edit`.
struct Case {
    name: &'static str,
    kind: &'static str,
    patch_type: PatchType,
    original: fn() -> Value,
    patch: Value,
    edit: fn(&mut Value),
}

fn run(cases: Vec<Case>) {
    for case in cases {
        let original = (case.original)();
        let want = edited(original.clone(), case.edit);
        match apply(case.kind, case.patch_type, &original, &case.patch) {
            Ok(got) => assert_eq!(got, want, "{}", case.name),
            Err(error) => panic!("{}: {error}", case.name),
        }
    }
}

#[test]
fn kubectl_apply_patches_give_the_applied_manifest() {
    use PatchType::StrategicMerge as Smp;
    run(vec![
        Case {
            name: "first apply over an object kubectl create made only records the configuration",
            kind: "Deployment",
            patch_type: Smp,
            original: deployment_created_without_apply,
            patch: json!({"metadata": {"annotations": {LAST_APPLIED: "{\"v\":1}\n"}}}),
            edit: |d| d["metadata"]["annotations"][LAST_APPLIED] = json!("{\"v\":1}\n"),
        },
        Case {
            name: "re-applying an unchanged manifest sends {} and changes nothing",
            kind: "Deployment",
            patch_type: Smp,
            original: deployment,
            patch: json!({}),
            edit: |_| {},
        },
        Case {
            name: "changing an image",
            kind: "Deployment",
            patch_type: Smp,
            original: deployment,
            patch: json!({
                "metadata": {"annotations": {LAST_APPLIED: "{\"v\":2}\n"}},
                "spec": {"template": {"spec": {
                    "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                    "containers": [{"image": "nginx:1.26", "name": "web"}]
                }}}
            }),
            edit: |d| {
                d["metadata"]["annotations"][LAST_APPLIED] = json!("{\"v\":2}\n");
                containers(d)[0]["image"] = json!("nginx:1.26");
            },
        },
        Case {
            name: "removing an env var",
            kind: "Deployment",
            patch_type: Smp,
            original: deployment,
            patch: json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                "containers": [{
                    "$setElementOrder/env": [{"name": "A"}],
                    "env": [{"$patch": "delete", "name": "B"}],
                    "name": "web"
                }]
            }}}}),
            edit: |d| containers(d)[0]["env"] = json!([{"name": "A", "value": "1"}]),
        },
        Case {
            name: "removing a container port",
            kind: "Deployment",
            patch_type: Smp,
            original: deployment,
            patch: json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                "containers": [{
                    "$setElementOrder/ports": [{"containerPort": 80}],
                    "name": "web",
                    "ports": [{"$patch": "delete", "containerPort": 8080}]
                }]
            }}}}),
            edit: |d| containers(d)[0]["ports"] = json!([{"containerPort": 80, "protocol": "TCP"}]),
        },
        Case {
            name: "removing a label",
            kind: "Deployment",
            patch_type: Smp,
            original: deployment,
            patch: json!({"metadata": {"annotations": {LAST_APPLIED: "{}"}, "labels": {"tier": null}}}),
            edit: |d| {
                d["metadata"]["annotations"][LAST_APPLIED] = json!("{}");
                d["metadata"]["labels"] = json!({"app": "web"});
            },
        },
        Case {
            name: "removing a whole container",
            kind: "Deployment",
            patch_type: Smp,
            original: deployment,
            patch: json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}],
                "containers": [{"$patch": "delete", "name": "sidecar"}]
            }}}}),
            edit: |d| {
                containers(d).as_array_mut().unwrap().pop();
            },
        },
        Case {
            name: "adding a container between two others follows $setElementOrder",
            kind: "Deployment",
            patch_type: Smp,
            original: deployment,
            patch: json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "cache"}, {"name": "sidecar"}],
                "containers": [{"image": "redis:7", "name": "cache"}]
            }}}}),
            edit: |d| {
                containers(d)
                    .as_array_mut()
                    .unwrap()
                    .insert(1, json!({"name": "cache", "image": "redis:7"}));
            },
        },
        Case {
            name: "switching the rollout strategy clears rollingUpdate through $retainKeys",
            kind: "Deployment",
            patch_type: Smp,
            original: deployment,
            patch: json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
            edit: |d| d["spec"]["strategy"] = json!({"type": "Recreate"}),
        },
        Case {
            name: "changing a volume's source clears the old one through $retainKeys",
            kind: "Deployment",
            patch_type: Smp,
            original: deployment,
            patch: json!({"spec": {"template": {"spec": {
                "$setElementOrder/volumes": [{"name": "data"}],
                "volumes": [{
                    "$retainKeys": ["configMap", "name"],
                    "configMap": {"name": "cfg"},
                    "emptyDir": null,
                    "name": "data"
                }]
            }}}}),
            edit: |d| {
                d["spec"]["template"]["spec"]["volumes"] =
                    json!([{"name": "data", "configMap": {"name": "cfg"}}]);
            },
        },
        Case {
            name: "adding a finalizer",
            kind: "Deployment",
            patch_type: Smp,
            original: deployment_with_finalizers,
            patch: json!({"metadata": {"$setElementOrder/finalizers": ["a", "b", "c"], "finalizers": ["c"]}}),
            edit: |d| d["metadata"]["finalizers"] = json!(["a", "b", "c"]),
        },
        Case {
            name: "removing a finalizer uses $deleteFromPrimitiveList",
            kind: "Deployment",
            patch_type: Smp,
            original: deployment_with_finalizers,
            patch: json!({"metadata": {
                "$deleteFromPrimitiveList/finalizers": ["b"],
                "$setElementOrder/finalizers": ["a"]
            }}),
            edit: |d| d["metadata"]["finalizers"] = json!(["a"]),
        },
    ]);
}

#[test]
fn other_kubectl_commands_patch_as_kubernetes_does() {
    run(vec![
        Case {
            name: "kubectl label adds a label with a merge patch",
            kind: "Deployment",
            patch_type: PatchType::Merge,
            original: deployment,
            patch: json!({"metadata": {"labels": {"env": "prod"}}}),
            edit: |d| d["metadata"]["labels"]["env"] = json!("prod"),
        },
        Case {
            name: "kubectl label --overwrite replaces a value",
            kind: "Deployment",
            patch_type: PatchType::Merge,
            original: deployment,
            patch: json!({"metadata": {"labels": {"tier": "backend"}}}),
            edit: |d| d["metadata"]["labels"]["tier"] = json!("backend"),
        },
        Case {
            name: "kubectl label tier- removes a label",
            kind: "Deployment",
            patch_type: PatchType::Merge,
            original: deployment,
            patch: json!({"metadata": {"labels": {"tier": null}}}),
            edit: |d| d["metadata"]["labels"] = json!({"app": "web"}),
        },
        Case {
            name: "kubectl annotate adds an annotation",
            kind: "Deployment",
            patch_type: PatchType::Merge,
            original: deployment,
            patch: json!({"metadata": {"annotations": {"owner": "team-a"}}}),
            edit: |d| d["metadata"]["annotations"]["owner"] = json!("team-a"),
        },
        Case {
            name: "kubectl scale sets replicas",
            kind: "Deployment",
            patch_type: PatchType::Merge,
            original: deployment,
            patch: json!({"spec": {"replicas": 3}}),
            edit: |d| d["spec"]["replicas"] = json!(3),
        },
        Case {
            name: "a merge patch replaces lists whole",
            kind: "Deployment",
            patch_type: PatchType::Merge,
            original: deployment,
            patch: json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.26"}]}}}}),
            edit: |d| *containers(d) = json!([{"name": "web", "image": "nginx:1.26"}]),
        },
        Case {
            name: "a merge patch drops nulls inside new objects",
            kind: "Deployment",
            patch_type: PatchType::Merge,
            original: deployment,
            patch: json!({"spec": {"paused": true, "template": {"spec": {"nodeSelector": {"a": "b", "c": null}}}}}),
            edit: |d| {
                d["spec"]["paused"] = json!(true);
                d["spec"]["template"]["spec"]["nodeSelector"] = json!({"a": "b"});
            },
        },
        Case {
            name: "kubectl set image changes one container and keeps the others in place",
            kind: "Deployment",
            patch_type: PatchType::StrategicMerge,
            original: deployment,
            patch: json!({"spec": {"template": {"spec": {"containers": [{"image": "nginx:1.26", "name": "web"}]}}}}),
            edit: |d| containers(d)[0]["image"] = json!("nginx:1.26"),
        },
        Case {
            name: "kubectl rollout restart annotates the template",
            kind: "Deployment",
            patch_type: PatchType::StrategicMerge,
            original: deployment,
            patch: json!({"spec": {"template": {"metadata": {"annotations": {
                "kubectl.kubernetes.io/restartedAt": "2026-11-21T12:00:00Z"
            }}}}}),
            edit: |d| {
                d["spec"]["template"]["metadata"]["annotations"] =
                    json!({"kubectl.kubernetes.io/restartedAt": "2026-11-21T12:00:00Z"});
            },
        },
        Case {
            name: "kubectl cordon sets unschedulable",
            kind: "Node",
            patch_type: PatchType::StrategicMerge,
            original: node,
            patch: json!({"spec": {"unschedulable": true}}),
            edit: |n| n["spec"]["unschedulable"] = json!(true),
        },
        Case {
            name: "kubectl taint replaces the atomic taints list",
            kind: "Node",
            patch_type: PatchType::StrategicMerge,
            original: || {
                edited(node(), |n| {
                    n["spec"]["taints"] = json!([{"key": "a", "effect": "NoSchedule"}])
                })
            },
            patch: json!({"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}}),
            edit: |n| n["spec"]["taints"] = json!([{"key": "b", "effect": "NoExecute"}]),
        },
        Case {
            name: "the agent's node status heartbeat merges one condition by type",
            kind: "Node",
            patch_type: PatchType::StrategicMerge,
            original: node,
            patch: json!({"status": {
                "$setElementOrder/conditions": [{"type": "MemoryPressure"}, {"type": "Ready"}],
                "conditions": [{"lastHeartbeatTime": "2026-11-21T12:00:00Z", "type": "Ready"}]
            }}),
            edit: |n| {
                n["status"]["conditions"][1]["lastHeartbeatTime"] = json!("2026-11-21T12:00:00Z")
            },
        },
        Case {
            name: "kubectl patch --type=json add, remove, replace and test",
            kind: "Deployment",
            patch_type: PatchType::Json,
            original: deployment,
            patch: json!([
                {"op": "test", "path": "/spec/replicas", "value": 2},
                {"op": "replace", "path": "/spec/replicas", "value": 5},
                {"op": "add", "path": "/metadata/labels/env", "value": "prod"},
                {"op": "remove", "path": "/metadata/labels/tier"},
                {"op": "add", "path": "/spec/template/spec/containers/1/args/-", "value": "--verbose"}
            ]),
            edit: |d| {
                d["spec"]["replicas"] = json!(5);
                d["metadata"]["labels"] = json!({"app": "web", "env": "prod"});
                containers(d)[1]["args"] = json!(["sleep", "infinity", "--verbose"]);
            },
        },
        Case {
            name: "a JSON patch that removes kind keeps the object's kind",
            kind: "Deployment",
            patch_type: PatchType::Json,
            original: deployment,
            patch: json!([{"op": "remove", "path": "/kind"}]),
            edit: |_| {},
        },
    ]);
}

#[test]
fn strategic_merge_patch_directives_and_strategies() {
    use PatchType::StrategicMerge as Smp;
    run(vec![
        Case {
            name: "maps merge recursively, null deletes, null for a missing key is ignored",
            kind: "Deployment",
            patch_type: Smp,
            original: deployment,
            patch: json!({"metadata": {"labels": {"tier": null, "ghost": null, "env": "prod"}}}),
            edit: |d| d["metadata"]["labels"] = json!({"app": "web", "env": "prod"}),
        },
        Case {
            name: "nulls inside a new field are dropped",
            kind: "Deployment",
            patch_type: Smp,
            original: deployment,
            patch: json!({"spec": {"template": {"spec": {"nodeSelector": {"a": "b", "c": null}}}}}),
            edit: |d| d["spec"]["template"]["spec"]["nodeSelector"] = json!({"a": "b"}),
        },
        Case {
            name: "a list of primitives without the merge strategy is replaced",
            kind: "Deployment",
            patch_type: Smp,
            original: deployment,
            patch: json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "args": ["sleep", "5"]}]}}}}),
            edit: |d| containers(d)[1]["args"] = json!(["sleep", "5"]),
        },
        Case {
            name: "a list of objects without a strategy (tolerations) is replaced",
            kind: "Deployment",
            patch_type: Smp,
            original: deployment,
            patch: json!({"spec": {"template": {"spec": {"tolerations": [{"key": "gpu", "operator": "Exists"}]}}}}),
            edit: |d| {
                d["spec"]["template"]["spec"]["tolerations"] =
                    json!([{"key": "gpu", "operator": "Exists"}])
            },
        },
        Case {
            name: "a merged list of primitives is a union, patch items first where new",
            kind: "Deployment",
            patch_type: Smp,
            original: deployment_with_finalizers,
            patch: json!({"metadata": {"finalizers": ["c", "a"]}}),
            edit: |d| d["metadata"]["finalizers"] = json!(["c", "a", "b"]),
        },
        Case {
            name: "list elements merge by their integer merge key",
            kind: "Deployment",
            patch_type: Smp,
            original: deployment,
            patch: json!({"spec": {"template": {"spec": {"containers": [
                {"name": "web", "ports": [{"containerPort": 80, "name": "http"}]}
            ]}}}}),
            edit: |d| containers(d)[0]["ports"][0]["name"] = json!("http"),
        },
        Case {
            name: "without $setElementOrder a new element goes before the live ones, as in Go",
            kind: "Deployment",
            patch_type: Smp,
            original: deployment,
            patch: json!({"spec": {"template": {"spec": {"containers": [
                {"name": "cache", "image": "redis:7", "env": [{"name": "X", "value": null}]}
            ]}}}}),
            edit: |d| {
                containers(d).as_array_mut().unwrap().insert(
                    0,
                    json!({"name": "cache", "image": "redis:7", "env": [{"name": "X"}]}),
                );
            },
        },
        Case {
            name: "$patch: replace on a map replaces it",
            kind: "Deployment",
            patch_type: Smp,
            original: deployment,
            patch: json!({"spec": {"template": {"metadata": {"labels": {"$patch": "replace", "app": "web2"}}}}}),
            edit: |d| d["spec"]["template"]["metadata"]["labels"] = json!({"app": "web2"}),
        },
        Case {
            name: "$patch: delete on a map empties it",
            kind: "Deployment",
            patch_type: Smp,
            original: deployment,
            patch: json!({"spec": {"strategy": {"$patch": "delete"}}}),
            edit: |d| d["spec"]["strategy"] = json!({}),
        },
        Case {
            name: "$patch: replace in a list replaces the list with the other elements",
            kind: "Deployment",
            patch_type: Smp,
            original: deployment,
            patch: json!({"spec": {"template": {"spec": {"containers": [
                {"name": "only", "image": "alpine:3"},
                {"$patch": "replace"}
            ]}}}}),
            edit: |d| *containers(d) = json!([{"name": "only", "image": "alpine:3"}]),
        },
        Case {
            name: "$setElementOrder alone reorders a list",
            kind: "Deployment",
            patch_type: Smp,
            original: deployment,
            patch: json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}]
            }}}}),
            edit: |d| containers(d).as_array_mut().unwrap().reverse(),
        },
        Case {
            name: "$retainKeys under a new field is applied, not copied",
            kind: "Deployment",
            patch_type: Smp,
            original: deployment_without_strategy,
            patch: json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
            edit: |d| d["spec"]["strategy"] = json!({"type": "Recreate"}),
        },
        Case {
            name: "a value of another JSON type replaces the old one",
            kind: "Deployment",
            patch_type: Smp,
            original: deployment,
            patch: json!({"spec": {"replicas": {"odd": true}}}),
            edit: |d| d["spec"]["replicas"] = json!({"odd": true}),
        },
        Case {
            name: "status conditions merge by type",
            kind: "Deployment",
            patch_type: Smp,
            original: deployment,
            patch: json!({"status": {"conditions": [{"type": "Available", "status": "False"}]}}),
            edit: |d| d["status"]["conditions"][0]["status"] = json!("False"),
        },
        Case {
            name: "service ports merge by port",
            kind: "Service",
            patch_type: Smp,
            original: service,
            patch: json!({"spec": {"ports": [{"port": 443, "targetPort": 9443}]}}),
            edit: |s| s["spec"]["ports"][1]["targetPort"] = json!(9443),
        },
        Case {
            name: "owner references merge by uid",
            kind: "Service",
            patch_type: Smp,
            original: service,
            patch: json!({"metadata": {"ownerReferences": [{"uid": "u-1", "controller": true}]}}),
            edit: |s| s["metadata"]["ownerReferences"][0]["controller"] = json!(true),
        },
        Case {
            name: "node podCIDRs merge as a set",
            kind: "Node",
            patch_type: Smp,
            original: node,
            patch: json!({"spec": {"podCIDRs": ["fd00:1::/64"]}}),
            edit: |n| n["spec"]["podCIDRs"] = json!(["fd00:1::/64", "10.244.1.0/24"]),
        },
        Case {
            name: "node addresses merge by type",
            kind: "Node",
            patch_type: Smp,
            original: node,
            patch: json!({"status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.11"}]}}),
            edit: |n| n["status"]["addresses"][0]["address"] = json!("192.168.1.11"),
        },
        Case {
            name: "a kind without a schema still merges metadata by its rules",
            kind: "Widget",
            patch_type: Smp,
            original: || json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"finalizers": ["a"]}}),
            patch: json!({"metadata": {"finalizers": ["b"]}}),
            edit: |w| w["metadata"]["finalizers"] = json!(["b", "a"]),
        },
    ]);
}

#[test]
fn invalid_patches_are_refused_with_the_kubernetes_status() {
    type Check = fn(&PatchError) -> bool;
    let many_tests = Value::Array(vec![
        json!({"op": "test", "path": "/kind", "value": "Deployment"});
        MAX_JSON_PATCH_OPERATIONS + 1
    ]);
    let cases: Vec<(&str, PatchType, Vec<u8>, u16, Check)> = vec![
        ("malformed strategic merge patch", PatchType::StrategicMerge, b"{\"spec\":".to_vec(), 400,
            |e| matches!(e, PatchError::InvalidJson { patch_type: PatchType::StrategicMerge, .. })),
        ("malformed merge patch", PatchType::Merge, b"{spec}".to_vec(), 400,
            |e| matches!(e, PatchError::InvalidJson { patch_type: PatchType::Merge, .. })),
        ("malformed JSON patch", PatchType::Json, b"[{\"op\":".to_vec(), 400,
            |e| matches!(e, PatchError::InvalidJson { patch_type: PatchType::Json, .. })),
        ("empty body", PatchType::StrategicMerge, Vec::new(), 400,
            |e| matches!(e, PatchError::InvalidJson { .. })),
        ("JSON patch that is an object", PatchType::Json, br#"{"op":"add"}"#.to_vec(), 400,
            |e| matches!(e, PatchError::InvalidJsonPatch { .. })),
        ("JSON patch with an unknown op", PatchType::Json, br#"[{"op":"frobnicate","path":"/a"}]"#.to_vec(), 400,
            |e| matches!(e, PatchError::InvalidJsonPatch { .. })),
        ("JSON patch removing a missing path", PatchType::Json,
            br#"[{"op":"remove","path":"/spec/paused"}]"#.to_vec(), 422,
            |e| matches!(e, PatchError::JsonPatchFailed { .. })),
        ("JSON patch adding under a missing parent", PatchType::Json,
            br#"[{"op":"add","path":"/spec/nothing/here","value":1}]"#.to_vec(), 422,
            |e| matches!(e, PatchError::JsonPatchFailed { .. })),
        ("JSON patch whose test fails", PatchType::Json,
            br#"[{"op":"test","path":"/spec/replicas","value":3},{"op":"replace","path":"/spec/replicas","value":4}]"#.to_vec(), 422,
            |e| matches!(e, PatchError::JsonPatchFailed { reason } if reason.contains("/spec/replicas"))),
        ("too many JSON patch operations", PatchType::Json, many_tests.to_string().into_bytes(), 413,
            |e| matches!(e, PatchError::TooManyOperations { count, .. } if *count == MAX_JSON_PATCH_OPERATIONS + 1)),
        ("JSON patch changing the kind", PatchType::Json,
            br#"[{"op":"replace","path":"/kind","value":"Pod"}]"#.to_vec(), 422,
            |e| matches!(e, PatchError::TypeChanged { field: "kind", .. })),
        ("JSON patch replacing the whole object", PatchType::Json,
            br#"[{"op":"replace","path":"","value":5}]"#.to_vec(), 422,
            |e| matches!(e, PatchError::ResultNotAnObject { found: "a number", .. })),
        ("merge patch of null", PatchType::Merge, b"null".to_vec(), 400,
            |e| matches!(e, PatchError::PatchNotAnObject { found: "null", .. })),
        ("merge patch that is a list", PatchType::Merge, b"[1]".to_vec(), 422,
            |e| matches!(e, PatchError::ResultNotAnObject { found: "a list", .. })),
        ("merge patch changing the apiVersion", PatchType::Merge, br#"{"apiVersion":"apps/v2"}"#.to_vec(), 422,
            |e| matches!(e, PatchError::TypeChanged { field: "apiVersion", .. })),
        ("strategic merge patch that is a list", PatchType::StrategicMerge, b"[]".to_vec(), 400,
            |e| matches!(e, PatchError::PatchNotAnObject { found: "a list", .. })),
        ("strategic merge patch changing the kind", PatchType::StrategicMerge, br#"{"kind":"Pod"}"#.to_vec(), 422,
            |e| matches!(e, PatchError::TypeChanged { field: "kind", .. })),
        ("$patch with an unknown value on a map", PatchType::StrategicMerge,
            br#"{"spec":{"strategy":{"$patch":"frobnicate"}}}"#.to_vec(), 400,
            |e| matches!(e, PatchError::UnknownDirective { path, value, .. } if path == "spec.strategy" && value == "\"frobnicate\"")),
        ("$patch: merge on a map", PatchType::StrategicMerge,
            br#"{"metadata":{"labels":{"$patch":"merge"}}}"#.to_vec(), 400,
            |e| matches!(e, PatchError::UnknownDirective { .. })),
        ("$patch with an unknown value in a list", PatchType::StrategicMerge,
            br#"{"spec":{"template":{"spec":{"containers":[{"$patch":"frobnicate","name":"web"}]}}}}"#.to_vec(), 400,
            |e| matches!(e, PatchError::UnknownDirective { path, .. } if path == "spec.template.spec.containers")),
        ("$patch: merge in a list", PatchType::StrategicMerge,
            br#"{"spec":{"template":{"spec":{"containers":[{"$patch":"merge"}]}}}}"#.to_vec(), 400,
            |e| matches!(e, PatchError::MergeDirectiveInList { .. })),
        ("merged list element without its merge key", PatchType::StrategicMerge,
            br#"{"spec":{"template":{"spec":{"containers":[{"image":"nginx:1.26"}]}}}}"#.to_vec(), 400,
            |e| matches!(e, PatchError::MissingMergeKey { key, .. } if key == "name")),
        ("delete directive without the merge key", PatchType::StrategicMerge,
            br#"{"spec":{"template":{"spec":{"containers":[{"$patch":"delete"}]}}}}"#.to_vec(), 400,
            |e| matches!(e, PatchError::MissingMergeKey { .. })),
        ("merged list element without its merge key, nested", PatchType::StrategicMerge,
            br#"{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"value":"x"}]}]}}}}"#.to_vec(), 400,
            |e| matches!(e, PatchError::MissingMergeKey { path, .. } if path == "spec.template.spec.containers[name=\"web\"].env")),
        ("$retainKeys that is not a list", PatchType::StrategicMerge,
            br#"{"spec":{"strategy":{"$retainKeys":"type","type":"Recreate"}}}"#.to_vec(), 400,
            |e| matches!(e, PatchError::InvalidRetainKeys { .. })),
        ("a patched field missing from $retainKeys", PatchType::StrategicMerge,
            br#"{"spec":{"strategy":{"$retainKeys":["type"],"type":"RollingUpdate","rollingUpdate":{"maxSurge":1}}}}"#.to_vec(), 400,
            |e| matches!(e, PatchError::InvalidRetainKeys { reason, .. } if reason.contains("rollingUpdate"))),
        ("$setElementOrder that does not list the patch's elements", PatchType::StrategicMerge,
            br#"{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"web"}],"containers":[{"name":"sidecar","image":"x"}]}}}}"#.to_vec(), 400,
            |e| matches!(e, PatchError::InvalidSetElementOrder { .. })),
        ("$setElementOrder that is not a list", PatchType::StrategicMerge,
            br#"{"metadata":{"$setElementOrder/finalizers":"a"}}"#.to_vec(), 400,
            |e| matches!(e, PatchError::InvalidSetElementOrder { .. })),
        ("$setElementOrder without a field name", PatchType::StrategicMerge,
            br#"{"metadata":{"$setElementOrderfinalizers":["a"]}}"#.to_vec(), 400,
            |e| matches!(e, PatchError::InvalidSetElementOrder { .. })),
        ("$deleteFromPrimitiveList that is not a list", PatchType::StrategicMerge,
            br#"{"metadata":{"$deleteFromPrimitiveList/finalizers":"a"}}"#.to_vec(), 400,
            |e| matches!(e, PatchError::InvalidDeleteFromPrimitiveList { .. })),
        ("a list of lists in a merged list", PatchType::StrategicMerge,
            br#"{"metadata":{"finalizers":[["a"]]}}"#.to_vec(), 422,
            |e| matches!(e, PatchError::ListOfLists { .. })),
        ("elements of different types in a merged list", PatchType::StrategicMerge,
            br#"{"metadata":{"finalizers":["a",1]}}"#.to_vec(), 400,
            |e| matches!(e, PatchError::MixedListElements { .. })),
        ("primitives in a list merged by key", PatchType::StrategicMerge,
            br#"{"spec":{"template":{"spec":{"imagePullSecrets":["regcred"]}}}}"#.to_vec(), 400,
            |e| matches!(e, PatchError::MissingMergeKey { .. })),
    ];
    let original = deployment();
    for (name, patch_type, body, status, check) in cases {
        match apply_patch("Deployment", patch_type, &original, &body) {
            Ok(got) => panic!("{name}: applied, giving {got}"),
            Err(error) => {
                assert!(check(&error), "{name}: unexpected error {error:?}");
                assert_eq!(error.status_code(), status, "{name}: {error}");
                let message = error.to_string();
                assert!(
                    message.chars().next().is_some_and(|c| !c.is_uppercase()),
                    "{name}: message starts in capitals: {message}"
                );
            }
        }
    }
}

#[test]
fn content_types_name_the_patch_type() {
    let cases = [
        ("application/json-patch+json", Some(PatchType::Json)),
        ("application/merge-patch+json", Some(PatchType::Merge)),
        (
            "application/strategic-merge-patch+json",
            Some(PatchType::StrategicMerge),
        ),
        (
            "application/strategic-merge-patch+json; charset=utf-8",
            Some(PatchType::StrategicMerge),
        ),
        ("Application/Merge-Patch+JSON", Some(PatchType::Merge)),
        (" application/json-patch+json ;q=1", Some(PatchType::Json)),
        ("application/apply-patch+yaml", None),
        ("application/json", None),
        ("", None),
    ];
    for (content_type, want) in cases {
        assert_eq!(
            PatchType::from_content_type(content_type),
            want,
            "{content_type:?}"
        );
    }
    for patch_type in PatchType::ALL {
        assert_eq!(
            PatchType::from_content_type(patch_type.content_type()),
            Some(patch_type)
        );
    }
}

#[test]
fn a_failed_json_patch_leaves_the_original_untouched() {
    let original = deployment();
    let body =
        br#"[{"op":"replace","path":"/spec/replicas","value":9},{"op":"remove","path":"/nope"}]"#;
    assert!(apply_patch("Deployment", PatchType::Json, &original, body).is_err());
    assert_eq!(original, deployment());
}
