//! Strategic-merge-patch metadata: which fields of which types merge, on
//! which key, and which carry `retainKeys`.
//!
//! Kubernetes reads this from the Go struct tags of k8s.io/api
//! (`patchStrategy:"merge" patchMergeKey:"name"`, `patchStrategy:"retainKeys"`)
//! through reflection. Here it is a small static tree of types: a field
//! points at its type (for a list, the element type), so a type such as
//! [`POD_SPEC`] gets the same rules wherever it occurs (`Pod.spec`, every
//! `spec.template.spec`). Fields not listed have no strategy: objects merge
//! key by key and lists are replaced whole, which is also what an explicitly
//! atomic list (no tag) does. Atomic lists of the types below are still
//! listed, so that every list field of the model shows its decision.
//!
//! Atomic lists of types not spelled out here (every list under `affinity`,
//! probes' `exec.command` and `httpGet.httpHeaders`, `envFrom`, the
//! `items` of secret/configMap/downwardAPI volumes, `projected.sources`,
//! `LabelSelector.matchExpressions`, `Toleration`, `ContainerStatus` and
//! everything inside it) need no entry: a list without rules is replaced.
//! `ContainerStatus.volumeMounts` is tagged merge on `mountPath` in
//! k8s.io/api, but `containerStatuses` itself is atomic, so that rule can
//! never apply and is left out.

/// One field of a [`Type`] that strategic merge patch treats specially, or
/// that leads to a type that has such fields.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The JSON field name.
    pub name: &'static str,
    /// `patchStrategy:"merge"`: a list is merged with the patch's list
    /// instead of being replaced by it.
    pub merge: bool,
    /// `patchStrategy:"…,retainKeys"`: kubectl sends `$retainKeys` for
    /// this field. Applying honours `$retainKeys` wherever it appears, so
    /// this is informational on the server side.
    pub retain_keys: bool,
    /// `patchMergeKey`: the field identifying an element of a merged list
    /// of objects. `None` for a merged list of primitives.
    pub merge_key: Option<&'static str>,
    /// The field's own type (for a list, its element type) when that type
    /// has fields with rules of their own.
    pub ty: Option<&'static Type>,
}

impl Field {
    /// A field of object type, merged key by key.
    pub const fn object(name: &'static str, ty: &'static Type) -> Field {
        Field {
            name,
            merge: false,
            retain_keys: false,
            merge_key: None,
            ty: Some(ty),
        }
    }

    /// A list without `patchStrategy`: the patch's list replaces it.
    pub const fn atomic(name: &'static str) -> Field {
        Field {
            name,
            merge: false,
            retain_keys: false,
            merge_key: None,
            ty: None,
        }
    }

    /// An object field tagged `patchStrategy:"retainKeys"` (a union such as
    /// `DeploymentSpec.strategy`).
    pub const fn retain_keys(name: &'static str) -> Field {
        Field {
            name,
            merge: false,
            retain_keys: true,
            merge_key: None,
            ty: None,
        }
    }

    /// A list of objects tagged `patchStrategy:"merge" patchMergeKey:key`.
    pub const fn merge_by(
        name: &'static str,
        key: &'static str,
        ty: Option<&'static Type>,
    ) -> Field {
        Field {
            name,
            merge: true,
            retain_keys: false,
            merge_key: Some(key),
            ty,
        }
    }

    /// A list of objects tagged `patchStrategy:"merge,retainKeys" patchMergeKey:key`.
    pub const fn merge_retain_keys_by(name: &'static str, key: &'static str) -> Field {
        Field {
            name,
            merge: true,
            retain_keys: true,
            merge_key: Some(key),
            ty: None,
        }
    }

    /// A list of primitives tagged `patchStrategy:"merge"`: a set union.
    pub const fn merge_set(name: &'static str) -> Field {
        Field {
            name,
            merge: true,
            retain_keys: false,
            merge_key: None,
            ty: None,
        }
    }
}

/// A Go struct of k8s.io/api, reduced to the fields that matter to
/// strategic merge patch.
#[derive(Debug)]
pub struct Type {
    /// The Go type name, for messages and tests.
    pub name: &'static str,
    pub fields: &'static [Field],
}

impl Type {
    /// The rules for the JSON field `name`, if it has any.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        // `fields` is `'static`, so the found field is too.
        let fields: &'static [Field] = self.fields;
        fields.iter().find(|field| field.name == name)
    }
}

/// The schema of the top-level kind named `kind` (`Deployment`), for every
/// kind in `flotilla_shared::model::KINDS`.
pub fn for_kind(kind: &str) -> Option<&'static Type> {
    let ty = match kind {
        "Namespace" => &NAMESPACE,
        "Node" => &NODE,
        "Pod" => &POD,
        "ReplicaSet" => &REPLICA_SET,
        "Deployment" => &DEPLOYMENT,
        "DaemonSet" => &DAEMON_SET,
        "Job" => &JOB,
        "Service" => &SERVICE,
        "Endpoints" => &ENDPOINTS,
        "ConfigMap" | "Secret" | "Event" | "Lease" => &METADATA_ONLY,
        "Role" => &ROLE,
        "ClusterRole" => &CLUSTER_ROLE,
        "RoleBinding" | "ClusterRoleBinding" => &ROLE_BINDING,
        _ => return None,
    };
    Some(ty)
}

/// Any kind whose only patch rules are those of its `metadata`; also the
/// fallback for a kind [`for_kind`] does not know.
pub static METADATA_ONLY: Type = Type {
    name: "Object",
    fields: &[Field::object("metadata", &OBJECT_META)],
};

// meta/v1

pub static OBJECT_META: Type = Type {
    name: "ObjectMeta",
    fields: &[
        Field::merge_by("ownerReferences", "uid", None),
        Field::merge_set("finalizers"),
    ],
};

// core/v1: Pod

pub static POD: Type = Type {
    name: "Pod",
    fields: &[
        Field::object("metadata", &OBJECT_META),
        Field::object("spec", &POD_SPEC),
        Field::object("status", &POD_STATUS),
    ],
};

pub static POD_TEMPLATE_SPEC: Type = Type {
    name: "PodTemplateSpec",
    fields: &[
        Field::object("metadata", &OBJECT_META),
        Field::object("spec", &POD_SPEC),
    ],
};

pub static POD_SPEC: Type = Type {
    name: "PodSpec",
    fields: &[
        Field::merge_retain_keys_by("volumes", "name"),
        Field::merge_by("initContainers", "name", Some(&CONTAINER)),
        Field::merge_by("containers", "name", Some(&CONTAINER)),
        Field::merge_by("ephemeralContainers", "name", Some(&CONTAINER)),
        Field::merge_by("imagePullSecrets", "name", None),
        Field::merge_by("hostAliases", "ip", Some(&HOST_ALIAS)),
        Field::merge_by("topologySpreadConstraints", "topologyKey", None),
        Field::merge_by("schedulingGates", "name", None),
        Field::atomic("tolerations"),
        Field::atomic("readinessGates"),
        Field::object("securityContext", &POD_SECURITY_CONTEXT),
        Field::object("dnsConfig", &POD_DNS_CONFIG),
        Field::object("resources", &RESOURCE_REQUIREMENTS),
    ],
};

pub static CONTAINER: Type = Type {
    name: "Container",
    fields: &[
        Field::merge_by("ports", "containerPort", None),
        Field::merge_by("env", "name", None),
        Field::merge_by("volumeMounts", "mountPath", None),
        Field::merge_by("volumeDevices", "devicePath", None),
        Field::atomic("command"),
        Field::atomic("args"),
        Field::atomic("envFrom"),
        Field::atomic("resizePolicy"),
        Field::object("resources", &RESOURCE_REQUIREMENTS),
        Field::object("securityContext", &SECURITY_CONTEXT),
    ],
};

pub static RESOURCE_REQUIREMENTS: Type = Type {
    name: "ResourceRequirements",
    fields: &[Field::atomic("claims")],
};

pub static SECURITY_CONTEXT: Type = Type {
    name: "SecurityContext",
    fields: &[Field::object("capabilities", &CAPABILITIES)],
};

pub static CAPABILITIES: Type = Type {
    name: "Capabilities",
    fields: &[Field::atomic("add"), Field::atomic("drop")],
};

pub static POD_SECURITY_CONTEXT: Type = Type {
    name: "PodSecurityContext",
    fields: &[
        Field::atomic("supplementalGroups"),
        Field::atomic("sysctls"),
    ],
};

pub static POD_DNS_CONFIG: Type = Type {
    name: "PodDNSConfig",
    fields: &[
        Field::atomic("nameservers"),
        Field::atomic("searches"),
        Field::atomic("options"),
    ],
};

pub static HOST_ALIAS: Type = Type {
    name: "HostAlias",
    fields: &[Field::atomic("hostnames")],
};

pub static POD_STATUS: Type = Type {
    name: "PodStatus",
    fields: &[
        Field::merge_by("conditions", "type", None),
        Field::merge_by("hostIPs", "ip", None),
        Field::merge_by("podIPs", "ip", None),
        Field::atomic("initContainerStatuses"),
        Field::atomic("containerStatuses"),
        Field::atomic("ephemeralContainerStatuses"),
    ],
};

// core/v1: Node

pub static NODE: Type = Type {
    name: "Node",
    fields: &[
        Field::object("metadata", &OBJECT_META),
        Field::object("spec", &NODE_SPEC),
        Field::object("status", &NODE_STATUS),
    ],
};

pub static NODE_SPEC: Type = Type {
    name: "NodeSpec",
    fields: &[Field::merge_set("podCIDRs"), Field::atomic("taints")],
};

pub static NODE_STATUS: Type = Type {
    name: "NodeStatus",
    fields: &[
        Field::merge_by("conditions", "type", None),
        Field::merge_by("addresses", "type", None),
        Field::atomic("images"),
        Field::atomic("volumesInUse"),
        Field::atomic("volumesAttached"),
        Field::atomic("runtimeHandlers"),
    ],
};

// core/v1: Namespace, Service, Endpoints

pub static NAMESPACE: Type = Type {
    name: "Namespace",
    fields: &[
        Field::object("metadata", &OBJECT_META),
        Field::object("spec", &NAMESPACE_SPEC),
    ],
};

pub static NAMESPACE_SPEC: Type = Type {
    name: "NamespaceSpec",
    // `[]FinalizerName` without a patch tag, unlike `metadata.finalizers`.
    fields: &[Field::atomic("finalizers")],
};

pub static SERVICE: Type = Type {
    name: "Service",
    fields: &[
        Field::object("metadata", &OBJECT_META),
        Field::object("spec", &SERVICE_SPEC),
        Field::object("status", &SERVICE_STATUS),
    ],
};

pub static SERVICE_SPEC: Type = Type {
    name: "ServiceSpec",
    fields: &[
        Field::merge_by("ports", "port", None),
        Field::atomic("clusterIPs"),
        Field::atomic("externalIPs"),
        Field::atomic("loadBalancerSourceRanges"),
        Field::atomic("ipFamilies"),
    ],
};

pub static SERVICE_STATUS: Type = Type {
    name: "ServiceStatus",
    fields: &[
        Field::object("loadBalancer", &LOAD_BALANCER_STATUS),
        Field::merge_by("conditions", "type", None),
    ],
};

pub static LOAD_BALANCER_STATUS: Type = Type {
    name: "LoadBalancerStatus",
    fields: &[Field::atomic("ingress")],
};

pub static ENDPOINTS: Type = Type {
    name: "Endpoints",
    fields: &[
        Field::object("metadata", &OBJECT_META),
        // `addresses`, `notReadyAddresses` and `ports` inside are atomic too.
        Field::atomic("subsets"),
    ],
};

// apps/v1, batch/v1

pub static DEPLOYMENT: Type = Type {
    name: "Deployment",
    fields: &[
        Field::object("metadata", &OBJECT_META),
        Field::object("spec", &DEPLOYMENT_SPEC),
        Field::object("status", &CONDITIONS_STATUS),
    ],
};

pub static DEPLOYMENT_SPEC: Type = Type {
    name: "DeploymentSpec",
    fields: &[
        Field::object("template", &POD_TEMPLATE_SPEC),
        Field::retain_keys("strategy"),
    ],
};

pub static REPLICA_SET: Type = Type {
    name: "ReplicaSet",
    fields: &[
        Field::object("metadata", &OBJECT_META),
        Field::object("spec", &TEMPLATE_SPEC),
        Field::object("status", &CONDITIONS_STATUS),
    ],
};

pub static DAEMON_SET: Type = Type {
    name: "DaemonSet",
    fields: &[
        Field::object("metadata", &OBJECT_META),
        // `updateStrategy` has no patch tag (unlike Deployment's `strategy`).
        Field::object("spec", &TEMPLATE_SPEC),
        Field::object("status", &CONDITIONS_STATUS),
    ],
};

pub static JOB: Type = Type {
    name: "Job",
    fields: &[
        Field::object("metadata", &OBJECT_META),
        Field::object("spec", &TEMPLATE_SPEC),
        Field::object("status", &CONDITIONS_STATUS),
    ],
};

/// `ReplicaSetSpec`, `DaemonSetSpec`, `JobSpec`: their only rules are in
/// the pod template.
pub static TEMPLATE_SPEC: Type = Type {
    name: "ReplicaSetSpec|DaemonSetSpec|JobSpec",
    fields: &[Field::object("template", &POD_TEMPLATE_SPEC)],
};

/// `DeploymentStatus`, `ReplicaSetStatus`, `DaemonSetStatus`, `JobStatus`:
/// `conditions` merge on `type` in all four.
pub static CONDITIONS_STATUS: Type = Type {
    name: "DeploymentStatus|ReplicaSetStatus|DaemonSetStatus|JobStatus",
    fields: &[Field::merge_by("conditions", "type", None)],
};

// rbac/v1

pub static ROLE: Type = Type {
    name: "Role",
    fields: &[
        Field::object("metadata", &OBJECT_META),
        Field::atomic("rules"),
    ],
};

pub static CLUSTER_ROLE: Type = Type {
    name: "ClusterRole",
    fields: &[
        Field::object("metadata", &OBJECT_META),
        Field::atomic("rules"),
        Field::object("aggregationRule", &AGGREGATION_RULE),
    ],
};

pub static AGGREGATION_RULE: Type = Type {
    name: "AggregationRule",
    fields: &[Field::atomic("clusterRoleSelectors")],
};

/// `RoleBinding` and `ClusterRoleBinding`.
pub static ROLE_BINDING: Type = Type {
    name: "RoleBinding|ClusterRoleBinding",
    fields: &[
        Field::object("metadata", &OBJECT_META),
        Field::atomic("subjects"),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_shared::model::KINDS;

    /// Follows a dotted path of field names (list elements need no index).
    fn lookup(kind: &str, path: &str) -> Option<&'static Field> {
        let mut ty = for_kind(kind)?;
        let mut names = path.split('.').peekable();
        while let Some(name) = names.next() {
            let field = ty.field(name)?;
            if names.peek().is_none() {
                return Some(field);
            }
            ty = field.ty?;
        }
        None
    }

    #[test]
    fn every_served_kind_has_a_schema() {
        for info in KINDS {
            assert!(
                for_kind(info.kind).is_some(),
                "no patch schema for {}",
                info.kind
            );
        }
    }

    #[test]
    fn unknown_kind_has_no_schema() {
        assert!(for_kind("CronJob").is_none());
    }

    #[test]
    fn fields_carry_the_strategies_of_k8s_api_struct_tags() {
        // (kind, path, merge, merge key, retainKeys)
        let cases: &[(&str, &str, bool, Option<&str>, bool)] = &[
            ("Pod", "metadata.ownerReferences", true, Some("uid"), false),
            ("Pod", "metadata.finalizers", true, None, false),
            ("Pod", "spec.containers", true, Some("name"), false),
            ("Pod", "spec.initContainers", true, Some("name"), false),
            ("Pod", "spec.volumes", true, Some("name"), true),
            ("Pod", "spec.imagePullSecrets", true, Some("name"), false),
            ("Pod", "spec.hostAliases", true, Some("ip"), false),
            ("Pod", "spec.hostAliases.hostnames", false, None, false),
            (
                "Pod",
                "spec.topologySpreadConstraints",
                true,
                Some("topologyKey"),
                false,
            ),
            ("Pod", "spec.schedulingGates", true, Some("name"), false),
            ("Pod", "spec.tolerations", false, None, false),
            ("Pod", "spec.readinessGates", false, None, false),
            (
                "Pod",
                "spec.containers.ports",
                true,
                Some("containerPort"),
                false,
            ),
            ("Pod", "spec.containers.env", true, Some("name"), false),
            (
                "Pod",
                "spec.containers.volumeMounts",
                true,
                Some("mountPath"),
                false,
            ),
            (
                "Pod",
                "spec.containers.volumeDevices",
                true,
                Some("devicePath"),
                false,
            ),
            ("Pod", "spec.containers.args", false, None, false),
            ("Pod", "spec.containers.envFrom", false, None, false),
            (
                "Pod",
                "spec.containers.securityContext.capabilities.add",
                false,
                None,
                false,
            ),
            ("Pod", "spec.securityContext.sysctls", false, None, false),
            ("Pod", "status.conditions", true, Some("type"), false),
            ("Pod", "status.podIPs", true, Some("ip"), false),
            ("Pod", "status.hostIPs", true, Some("ip"), false),
            ("Pod", "status.containerStatuses", false, None, false),
            ("Deployment", "spec.strategy", false, None, true),
            (
                "Deployment",
                "spec.template.metadata.finalizers",
                true,
                None,
                false,
            ),
            (
                "Deployment",
                "spec.template.spec.containers.env",
                true,
                Some("name"),
                false,
            ),
            (
                "Deployment",
                "spec.template.spec.volumes",
                true,
                Some("name"),
                true,
            ),
            ("Deployment", "status.conditions", true, Some("type"), false),
            (
                "ReplicaSet",
                "spec.template.spec.containers",
                true,
                Some("name"),
                false,
            ),
            ("ReplicaSet", "status.conditions", true, Some("type"), false),
            (
                "DaemonSet",
                "spec.template.spec.initContainers",
                true,
                Some("name"),
                false,
            ),
            ("DaemonSet", "status.conditions", true, Some("type"), false),
            (
                "Job",
                "spec.template.spec.containers.ports",
                true,
                Some("containerPort"),
                false,
            ),
            ("Job", "status.conditions", true, Some("type"), false),
            ("Node", "spec.podCIDRs", true, None, false),
            ("Node", "spec.taints", false, None, false),
            ("Node", "status.conditions", true, Some("type"), false),
            ("Node", "status.addresses", true, Some("type"), false),
            ("Node", "status.images", false, None, false),
            ("Service", "spec.ports", true, Some("port"), false),
            ("Service", "spec.externalIPs", false, None, false),
            ("Service", "status.loadBalancer.ingress", false, None, false),
            ("Endpoints", "subsets", false, None, false),
            ("Namespace", "spec.finalizers", false, None, false),
            ("Namespace", "metadata.finalizers", true, None, false),
            ("ClusterRole", "rules", false, None, false),
            (
                "ClusterRole",
                "aggregationRule.clusterRoleSelectors",
                false,
                None,
                false,
            ),
            ("RoleBinding", "subjects", false, None, false),
            (
                "ConfigMap",
                "metadata.ownerReferences",
                true,
                Some("uid"),
                false,
            ),
        ];
        for &(kind, path, merge, merge_key, retain_keys) in cases {
            let field = lookup(kind, path).unwrap_or_else(|| panic!("{kind} {path}: no rules"));
            assert_eq!(
                (field.merge, field.merge_key, field.retain_keys),
                (merge, merge_key, retain_keys),
                "{kind} {path}"
            );
        }
    }

    #[test]
    fn daemon_set_update_strategy_has_no_retain_keys() {
        assert!(lookup("DaemonSet", "spec.updateStrategy").is_none());
    }
}
