//! [`Object`]: any kind Flotilla serves, and [`KINDS`], the table of those
//! kinds that the API server's discovery and the manifest decoder share.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{
    ClusterRole, ClusterRoleBinding, ConfigMap, DaemonSet, Deployment, Endpoints, Event, Job,
    Lease, Namespace, Node, ObjectMeta, Pod, ReplicaSet, Resource, Role, RoleBinding, Secret,
    Service,
};

/// What discovery (`/api`, `/apis/{group}/{version}`) says about a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindInfo {
    /// Empty for the core group.
    pub group: &'static str,
    pub version: &'static str,
    /// `group/version`, or `version` alone for the core group.
    pub api_version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
    /// Abbreviations kubectl accepts (`deploy`, `svc`).
    pub short_names: &'static [&'static str],
    /// Groupings such as `all` (`kubectl get all`).
    pub categories: &'static [&'static str],
}

impl KindInfo {
    const fn of<T: Resource>(
        short_names: &'static [&'static str],
        categories: &'static [&'static str],
    ) -> KindInfo {
        KindInfo {
            group: T::GROUP,
            version: T::VERSION,
            api_version: T::API_VERSION,
            kind: T::KIND,
            plural: T::PLURAL,
            namespaced: T::NAMESPACED,
            short_names,
            categories,
        }
    }

    /// The kind registered under `apiVersion` and `kind` exactly as a manifest spells them.
    pub fn find(api_version: &str, kind: &str) -> Option<&'static KindInfo> {
        KINDS
            .iter()
            .find(|info| info.api_version == api_version && info.kind == kind)
    }

    /// The kind served at `/apis/{group}/{version}/{plural}` (`group` empty for `/api/v1`).
    pub fn find_by_plural(group: &str, version: &str, plural: &str) -> Option<&'static KindInfo> {
        KINDS
            .iter()
            .find(|info| info.group == group && info.version == version && info.plural == plural)
    }

    /// The kind a command line names by plural, singular, short name or kind,
    /// ignoring case, as kubectl resolves `po`, `pod`, `pods` and `Pod`.
    pub fn find_by_name(name: &str) -> Option<&'static KindInfo> {
        KINDS.iter().find(|info| {
            info.plural.eq_ignore_ascii_case(name)
                || info.kind.eq_ignore_ascii_case(name)
                || info
                    .short_names
                    .iter()
                    .any(|short| short.eq_ignore_ascii_case(name))
        })
    }

    /// The lower-case singular name discovery reports (`deployment`).
    pub fn singular(&self) -> String {
        self.kind.to_ascii_lowercase()
    }
}

/// Declares [`Object`], [`KINDS`] and the per-kind dispatch from one list,
/// so the enum and the table cannot disagree.
macro_rules! objects {
    ($($kind:ident { short_names: [$($short:literal),*], categories: [$($category:literal),*] }),* $(,)?) => {
        /// Any object Flotilla stores and serves, tagged by kind.
        ///
        /// Serializing writes `apiVersion` and `kind` even when the inner
        /// struct left them empty. Deserializing (self-describing formats
        /// only) drops unknown fields silently; use
        /// [`crate::manifest::decode_object`] for input that must be checked.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Object {
            $($kind($kind),)*
        }

        /// Every kind Flotilla serves, in a fixed order.
        pub static KINDS: &[KindInfo] = &[
            $(KindInfo::of::<$kind>(&[$($short),*], &[$($category),*]),)*
        ];

        /// Positions in [`KINDS`], in declaration order.
        #[allow(dead_code)] // Only ever used through `as usize`.
        enum KindIndex {
            $($kind,)*
        }

        impl Object {
            /// This object's entry in [`KINDS`].
            pub fn kind_info(&self) -> &'static KindInfo {
                let index = match self {
                    $(Object::$kind(_) => KindIndex::$kind,)*
                };
                &KINDS[index as usize]
            }

            pub fn metadata(&self) -> &ObjectMeta {
                match self {
                    $(Object::$kind(object) => &object.metadata,)*
                }
            }

            pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
                match self {
                    $(Object::$kind(object) => &mut object.metadata,)*
                }
            }

            /// Decodes the kind `info` names from `deserializer`. The caller
            /// has already matched `info` against the input's `apiVersion` and `kind`.
            pub(crate) fn deserialize_kind<'de, D: Deserializer<'de>>(
                info: &KindInfo,
                deserializer: D,
            ) -> Result<Object, D::Error> {
                $(if info.kind == stringify!($kind) {
                    return $kind::deserialize(deserializer).map(Object::from);
                })*
                Err(serde::de::Error::custom(format_args!("no kind {:?} is registered", info.kind)))
            }
        }

        impl Serialize for Object {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    $(Object::$kind(object) => with_type_meta(object).serialize(serializer),)*
                }
            }
        }

        $(
            impl From<$kind> for Object {
                /// Wraps `object`, filling in its `apiVersion` and `kind`.
                fn from(mut object: $kind) -> Object {
                    set_type_meta(&mut object.api_version, &mut object.kind, <$kind as Resource>::API_VERSION, <$kind as Resource>::KIND);
                    Object::$kind(object)
                }
            }

            impl TryFrom<Object> for $kind {
                /// The object itself when it is of another kind.
                type Error = Object;

                fn try_from(object: Object) -> Result<$kind, Object> {
                    match object {
                        Object::$kind(inner) => Ok(inner),
                        other => Err(other),
                    }
                }
            }

            impl TypeMeta for $kind {
                fn type_meta(&self) -> (&str, &str) {
                    (&self.api_version, &self.kind)
                }
                fn set_type_meta(&mut self) {
                    set_type_meta(&mut self.api_version, &mut self.kind, <$kind as Resource>::API_VERSION, <$kind as Resource>::KIND);
                }
            }
        )*
    };
}

objects! {
    Namespace { short_names: ["ns"], categories: [] },
    Node { short_names: ["no"], categories: [] },
    Pod { short_names: ["po"], categories: ["all"] },
    ReplicaSet { short_names: ["rs"], categories: ["all"] },
    Deployment { short_names: ["deploy"], categories: ["all"] },
    DaemonSet { short_names: ["ds"], categories: ["all"] },
    Job { short_names: [], categories: ["all"] },
    Service { short_names: ["svc"], categories: ["all"] },
    Endpoints { short_names: ["ep"], categories: [] },
    ConfigMap { short_names: ["cm"], categories: [] },
    Secret { short_names: [], categories: [] },
    Event { short_names: ["ev"], categories: [] },
    Lease { short_names: [], categories: [] },
    Role { short_names: [], categories: [] },
    ClusterRole { short_names: [], categories: [] },
    RoleBinding { short_names: [], categories: [] },
    ClusterRoleBinding { short_names: [], categories: [] },
}

/// Access to a kind's own `apiVersion` and `kind` fields.
trait TypeMeta: Resource + Clone + Serialize {
    fn type_meta(&self) -> (&str, &str);
    fn set_type_meta(&mut self);
}

fn set_type_meta(
    api_version: &mut String,
    kind: &mut String,
    want_api_version: &str,
    want_kind: &str,
) {
    if api_version != want_api_version {
        *api_version = want_api_version.to_owned();
    }
    if kind != want_kind {
        *kind = want_kind.to_owned();
    }
}

/// `object` itself when its `apiVersion` and `kind` are already right (the
/// usual case: decoding and [`From`] set them), otherwise a corrected copy.
fn with_type_meta<T: TypeMeta>(object: &T) -> Cow<'_, T> {
    if object.type_meta() == (T::API_VERSION, T::KIND) {
        Cow::Borrowed(object)
    } else {
        let mut copy = object.clone();
        copy.set_type_meta();
        Cow::Owned(copy)
    }
}

impl Object {
    /// `apiVersion`: `v1`, `apps/v1`.
    pub fn api_version(&self) -> &'static str {
        self.kind_info().api_version
    }

    pub fn kind(&self) -> &'static str {
        self.kind_info().kind
    }

    pub fn namespaced(&self) -> bool {
        self.kind_info().namespaced
    }

    /// The lower-case plural used in URLs.
    pub fn plural(&self) -> &'static str {
        self.kind_info().plural
    }

    /// The object as a JSON value, `apiVersion` and `kind` included.
    pub fn to_value(&self) -> serde_json::Value {
        // Every model type has string map keys and no fallible Serialize
        // impl, so encoding to a JSON value cannot fail.
        serde_json::to_value(self)
            .unwrap_or_else(|error| unreachable!("object model encodes to JSON: {error}"))
    }

    /// The object as compact JSON bytes, `apiVersion` and `kind` included.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self)
            .unwrap_or_else(|error| unreachable!("object model encodes to JSON: {error}"))
    }
}

impl Object {
    /// Decodes JSON this program wrote itself (an object as the hub stores
    /// it): straight from the bytes into the kind's type, which is several
    /// times quicker than the general decoding (a `serde_json::Value` tree
    /// first, then field tracking for error paths). Anything that does not
    /// decode that way (a `null` where the type has no `Option`, say) takes
    /// the general decoding, so the answer is the same.
    pub fn from_json_slice(bytes: &[u8]) -> Result<Object, serde_json::Error> {
        #[derive(Deserialize)]
        struct TypeMeta<'a> {
            #[serde(rename = "apiVersion", borrow)]
            api_version: std::borrow::Cow<'a, str>,
            #[serde(borrow)]
            kind: std::borrow::Cow<'a, str>,
        }
        let quick = serde_json::from_slice::<TypeMeta<'_>>(bytes)
            .ok()
            .and_then(|meta| KindInfo::find(&meta.api_version, &meta.kind))
            .and_then(|info| {
                let mut deserializer = serde_json::Deserializer::from_slice(bytes);
                let object = Object::deserialize_kind(info, &mut deserializer).ok()?;
                deserializer.end().ok()?;
                Some(object)
            });
        match quick {
            Some(object) => Ok(object),
            None => serde_json::from_slice(bytes),
        }
    }
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Object, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        crate::manifest::decode_object(value, crate::manifest::FieldValidation::Ignore)
            .map(|decoded| decoded.object)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_quick_decoding_answers_as_the_general_one() {
        let texts = [
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}],"nodeName":"n"},"status":{"phase":"Running"}}"#,
            // A null the typed structs have no Option for: the general path strips it.
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","labels":null},"data":{"k":"v"}}"#,
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"replicas":2,"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}},"unknown":1}"#,
        ];
        for text in texts {
            let general: Object = serde_json::from_slice(text.as_bytes()).unwrap();
            assert_eq!(
                Object::from_json_slice(text.as_bytes()).unwrap(),
                general,
                "{text}"
            );
        }
        for bad in [r#"{"kind":"Nope","apiVersion":"v1"}"#, "[]", "{"] {
            assert!(Object::from_json_slice(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn kinds_table_has_unique_kinds_plurals_and_short_names() {
        let kinds: BTreeSet<_> = KINDS
            .iter()
            .map(|info| (info.api_version, info.kind))
            .collect();
        let plurals: BTreeSet<_> = KINDS.iter().map(|info| (info.group, info.plural)).collect();
        let names: Vec<_> = KINDS
            .iter()
            .flat_map(|info| info.short_names.iter())
            .collect();
        let unique_names: BTreeSet<_> = names.iter().collect();
        assert_eq!(kinds.len(), KINDS.len());
        assert_eq!(plurals.len(), KINDS.len());
        assert_eq!(unique_names.len(), names.len());
    }

    #[test]
    fn kinds_table_matches_kubernetes_discovery() {
        // (apiVersion, kind, plural, namespaced, short names) as a Kubernetes
        // 1.30 API server reports them.
        let cases: &[(&str, &str, &str, bool, &[&str])] = &[
            ("v1", "Namespace", "namespaces", false, &["ns"]),
            ("v1", "Node", "nodes", false, &["no"]),
            ("v1", "Pod", "pods", true, &["po"]),
            ("apps/v1", "ReplicaSet", "replicasets", true, &["rs"]),
            ("apps/v1", "Deployment", "deployments", true, &["deploy"]),
            ("apps/v1", "DaemonSet", "daemonsets", true, &["ds"]),
            ("batch/v1", "Job", "jobs", true, &[]),
            ("v1", "Service", "services", true, &["svc"]),
            ("v1", "Endpoints", "endpoints", true, &["ep"]),
            ("v1", "ConfigMap", "configmaps", true, &["cm"]),
            ("v1", "Secret", "secrets", true, &[]),
            ("v1", "Event", "events", true, &["ev"]),
            ("coordination.k8s.io/v1", "Lease", "leases", true, &[]),
            ("rbac.authorization.k8s.io/v1", "Role", "roles", true, &[]),
            (
                "rbac.authorization.k8s.io/v1",
                "ClusterRole",
                "clusterroles",
                false,
                &[],
            ),
            (
                "rbac.authorization.k8s.io/v1",
                "RoleBinding",
                "rolebindings",
                true,
                &[],
            ),
            (
                "rbac.authorization.k8s.io/v1",
                "ClusterRoleBinding",
                "clusterrolebindings",
                false,
                &[],
            ),
        ];
        assert_eq!(KINDS.len(), cases.len());
        for &(api_version, kind, plural, namespaced, short_names) in cases {
            let info = KindInfo::find(api_version, kind)
                .unwrap_or_else(|| panic!("{api_version} {kind} missing"));
            assert_eq!(info.plural, plural, "{kind}");
            assert_eq!(info.namespaced, namespaced, "{kind}");
            assert_eq!(info.short_names, short_names, "{kind}");
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
            assert_eq!(
                KindInfo::find_by_plural(group, version, plural),
                Some(info),
                "{kind}"
            );
        }
    }

    #[test]
    fn lookup_needs_the_exact_api_version() {
        assert_eq!(KindInfo::find("v1", "Deployment"), None);
        assert_eq!(KindInfo::find("apps/v1beta1", "Deployment"), None);
        assert_eq!(KindInfo::find("apps/v1", "deployment"), None);
        assert_eq!(KindInfo::find_by_plural("", "v1", "deployments"), None);
    }

    #[test]
    fn command_line_names_resolve_like_kubectl() {
        for (name, kind) in [
            ("po", "Pod"),
            ("pods", "Pod"),
            ("Pod", "Pod"),
            ("deploy", "Deployment"),
            ("SVC", "Service"),
        ] {
            assert_eq!(
                KindInfo::find_by_name(name).map(|info| info.kind),
                Some(kind),
                "{name}"
            );
        }
        assert_eq!(KindInfo::find_by_name("statefulsets"), None);
    }

    #[test]
    fn every_variant_reports_its_own_table_entry() {
        let objects: Vec<Object> = vec![
            Namespace::default().into(),
            Node::default().into(),
            Pod::default().into(),
            ReplicaSet::default().into(),
            Deployment::default().into(),
            DaemonSet::default().into(),
            Job::default().into(),
            Service::default().into(),
            Endpoints::default().into(),
            ConfigMap::default().into(),
            Secret::default().into(),
            Event::default().into(),
            Lease::default().into(),
            Role::default().into(),
            ClusterRole::default().into(),
            RoleBinding::default().into(),
            ClusterRoleBinding::default().into(),
        ];
        assert_eq!(objects.len(), KINDS.len());
        for (object, info) in objects.iter().zip(KINDS) {
            assert_eq!(object.kind_info(), info);
            assert_eq!(object.kind(), info.kind);
            assert_eq!(object.api_version(), info.api_version);
            assert_eq!(object.plural(), info.plural);
            assert_eq!(object.namespaced(), info.namespaced);
            let value = object.to_value();
            assert_eq!(value["apiVersion"], info.api_version);
            assert_eq!(value["kind"], info.kind);
        }
    }

    #[test]
    fn serialize_writes_type_meta_even_when_the_inner_struct_lacks_it() {
        let mut lease = Lease::default();
        lease.metadata.name = "hub-leader".into();
        // Built directly, bypassing `From`, so the inner fields stay empty.
        let object = Object::Lease(lease);
        let value = object.to_value();
        assert_eq!(value["apiVersion"], "coordination.k8s.io/v1");
        assert_eq!(value["kind"], "Lease");
        assert_eq!(value["metadata"]["name"], "hub-leader");
        let bytes: serde_json::Value =
            serde_json::from_slice(&object.to_json()).expect("valid JSON");
        assert_eq!(bytes, value);
    }

    #[test]
    fn from_overwrites_a_wrong_kind_and_try_from_returns_other_kinds() {
        let config_map = ConfigMap {
            kind: "Secret".into(),
            ..ConfigMap::default()
        };
        let object = Object::from(config_map);
        let Object::ConfigMap(inner) = &object else {
            panic!("wrong variant: {object:?}")
        };
        assert_eq!(
            (inner.api_version.as_str(), inner.kind.as_str()),
            ("v1", "ConfigMap")
        );
        let back = Secret::try_from(object).expect_err("a ConfigMap is not a Secret");
        assert!(ConfigMap::try_from(back).is_ok());
    }

    #[test]
    fn metadata_mut_reaches_the_inner_object() {
        let mut object = Object::from(Deployment::default());
        object.metadata_mut().name = "web".into();
        assert_eq!(object.metadata().name, "web");
        let Object::Deployment(deployment) = object else {
            panic!("wrong variant")
        };
        assert_eq!(deployment.metadata.name, "web");
    }

    #[test]
    fn deserialize_reads_the_kind_from_the_json() {
        let object: Object = serde_json::from_str(
            r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"r"},
                "rules":[{"apiGroups":[""],"resources":["pods"],"verbs":["get"]}]}"#,
        )
        .expect("decodes");
        let Object::Role(role) = &object else {
            panic!("wrong variant: {object:?}")
        };
        assert_eq!(role.rules[0].resources, ["pods"]);
        let error = serde_json::from_str::<Object>(r#"{"apiVersion":"v1","kind":"Widget"}"#)
            .expect_err("unknown kind");
        assert!(error.to_string().contains("Widget"), "{error}");
    }
}
