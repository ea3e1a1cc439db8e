//! Role-based access control, as kube-apiserver's RBAC authorizer
//! (`plugin/pkg/auth/authorizer/rbac/rbac.go`).
//!
//! Which bindings apply follows `pkg/registry/rbac/validation/rule.go`
//! (`VisitRulesFor`, `appliesToUser`): every ClusterRoleBinding naming the
//! user, then, for a request inside a namespace, every RoleBinding of that
//! namespace naming the user; a RoleBinding to a ClusterRole grants that
//! role's rules in the binding's namespace only. How a rule matches follows
//! `pkg/apis/rbac/v1/evaluation_helpers.go` to the letter: `*` for verbs,
//! groups and resources, `*/scale` for one subresource of every resource
//! (`pods/*` is not a wildcard there, and is not one here), `resourceNames`
//! that only a request carrying a name can satisfy, `nonResourceURLs` exact
//! or with a trailing `*` as a prefix.
//!
//! Kubernetes resolves ClusterRole aggregation with a controller that
//! rewrites the aggregated role's rules; here the rules of every aggregated
//! role are recomputed whenever a ClusterRole changes, with the same result:
//! the union of the rules of the ClusterRoles its `clusterRoleSelectors`
//! match (its own rules are ignored, as the controller overwrites them).
//!
//! Bindings are indexed by user name and group, cluster-wide and per
//! namespace, so a request only looks at the bindings that name its user.
//! A binding to a role that does not exist grants nothing and says nothing
//! (Kubernetes adds `RBAC: clusterrole... not found` to the refusal; a
//! refusal here does not reveal which bindings name the user).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use flotilla_shared::model::{Object, PolicyRule, RoleRef, Subject};
use flotilla_shared::selector::Selector;

use super::{Attributes, Decision};
use crate::api::user::UserInfo;

/// The prefix of a service account's user name: `system:serviceaccount:NS:NAME`.
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// Kubernetes' `RuleAllows`: whether one rule grants the request.
pub fn rule_allows(attrs: &Attributes, rule: &PolicyRule) -> bool {
    if !verb_matches(rule, &attrs.verb) {
        return false;
    }
    if attrs.resource_request {
        api_group_matches(rule, &attrs.api_group)
            && resource_matches(rule, &attrs.resource, &attrs.subresource)
            && resource_name_matches(rule, &attrs.name)
    } else {
        non_resource_url_matches(rule, &attrs.path)
    }
}

fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == "*" || v == verb)
}

fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    rule.api_groups.iter().any(|g| g == "*" || g == group)
}

/// `ResourceMatches` with the combined `resource/subresource` compared
/// piecewise, to spare an allocation per rule.
fn resource_matches(rule: &PolicyRule, resource: &str, subresource: &str) -> bool {
    rule.resources.iter().any(|r| {
        if r == "*" {
            return true;
        }
        if subresource.is_empty() {
            return r == resource;
        }
        let combined = r
            .strip_prefix(resource)
            .and_then(|rest| rest.strip_prefix('/'))
            == Some(subresource);
        combined || r.strip_prefix("*/") == Some(subresource)
    })
}

fn resource_name_matches(rule: &PolicyRule, name: &str) -> bool {
    rule.resource_names.is_empty() || rule.resource_names.iter().any(|n| n == name)
}

fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    rule.non_resource_urls.iter().any(|url| {
        url == "*"
            || url == path
            || (url.ends_with('*') && path.starts_with(url.trim_end_matches('*')))
    })
}

/// A binding as the authorizer needs it.
#[derive(Debug, Clone)]
struct Binding {
    /// User names (service accounts as `system:serviceaccount:NS:NAME`).
    users: Vec<String>,
    groups: Vec<String>,
    role_ref: RoleRef,
}

impl Binding {
    /// `namespace` is the RoleBinding's, which a ServiceAccount subject
    /// without one defaults to; `None` for a ClusterRoleBinding.
    fn new(subjects: &[Subject], role_ref: &RoleRef, namespace: Option<&str>) -> Self {
        let mut binding = Binding {
            users: Vec::new(),
            groups: Vec::new(),
            role_ref: role_ref.clone(),
        };
        for subject in subjects {
            match subject.kind.as_str() {
                "User" => binding.users.push(subject.name.clone()),
                "Group" => binding.groups.push(subject.name.clone()),
                "ServiceAccount" => {
                    let namespace = match (subject.namespace.as_str(), namespace) {
                        ("", Some(binding_namespace)) => binding_namespace,
                        ("", None) => continue,
                        (namespace, _) => namespace,
                    };
                    binding.users.push(format!(
                        "{SERVICE_ACCOUNT_PREFIX}{namespace}:{}",
                        subject.name
                    ));
                }
                _ => {}
            }
        }
        binding
    }
}

/// Binding names by the user names and groups their subjects name.
#[derive(Debug, Default)]
struct SubjectIndex {
    users: HashMap<String, BTreeSet<String>>,
    groups: HashMap<String, BTreeSet<String>>,
}

impl SubjectIndex {
    fn insert(&mut self, name: &str, binding: &Binding) {
        for user in &binding.users {
            self.users
                .entry(user.clone())
                .or_default()
                .insert(name.to_owned());
        }
        for group in &binding.groups {
            self.groups
                .entry(group.clone())
                .or_default()
                .insert(name.to_owned());
        }
    }

    fn remove(&mut self, name: &str, binding: &Binding) {
        fn drop_from(map: &mut HashMap<String, BTreeSet<String>>, key: &str, name: &str) {
            if let Some(set) = map.get_mut(key) {
                set.remove(name);
                if set.is_empty() {
                    map.remove(key);
                }
            }
        }
        for user in &binding.users {
            drop_from(&mut self.users, user, name);
        }
        for group in &binding.groups {
            drop_from(&mut self.groups, group, name);
        }
    }

    /// The names of the bindings naming `user` or one of its groups (a
    /// binding may appear more than once).
    fn bindings_for<'a>(&'a self, user: &'a UserInfo) -> impl Iterator<Item = &'a String> + 'a {
        let by_name = self.users.get(&user.name).into_iter().flatten();
        let by_group = user
            .groups
            .iter()
            .filter_map(|group| self.groups.get(group))
            .flatten();
        by_name.chain(by_group)
    }

    fn is_empty(&self) -> bool {
        self.users.is_empty() && self.groups.is_empty()
    }
}

/// Bindings of one scope (the cluster, or one namespace) with their index.
#[derive(Debug, Default)]
struct Bindings {
    by_name: HashMap<String, Binding>,
    index: SubjectIndex,
}

impl Bindings {
    fn upsert(&mut self, name: &str, binding: Binding) {
        self.remove(name);
        self.index.insert(name, &binding);
        self.by_name.insert(name.to_owned(), binding);
    }

    fn remove(&mut self, name: &str) {
        if let Some(old) = self.by_name.remove(name) {
            self.index.remove(name, &old);
        }
    }

    fn for_user<'a>(&'a self, user: &'a UserInfo) -> impl Iterator<Item = &'a Binding> + 'a {
        self.index
            .bindings_for(user)
            .filter_map(|name| self.by_name.get(name))
    }

    fn is_empty(&self) -> bool {
        self.by_name.is_empty() && self.index.is_empty()
    }
}

/// A ClusterRole as stored, with its aggregation selectors compiled.
#[derive(Debug)]
struct StoredClusterRole {
    labels: BTreeMap<String, String>,
    /// Its own rules, which aggregation ignores.
    rules: Arc<[PolicyRule]>,
    /// `None` for a plain role. A selector that does not compile matches
    /// nothing (validation refuses it on write).
    selectors: Option<Vec<Selector>>,
}

/// RBAC state, fed with Role, ClusterRole, RoleBinding and
/// ClusterRoleBinding objects as the store's watches deliver them.
#[derive(Debug, Default)]
pub struct RbacPolicy {
    /// Role rules by namespace, then name.
    roles: HashMap<String, HashMap<String, Arc<[PolicyRule]>>>,
    cluster_roles: HashMap<String, StoredClusterRole>,
    /// Every ClusterRole's rules with aggregation resolved.
    cluster_role_rules: HashMap<String, Arc<[PolicyRule]>>,
    cluster_bindings: Bindings,
    /// RoleBindings by namespace.
    role_bindings: HashMap<String, Bindings>,
}

impl RbacPolicy {
    pub fn new() -> Self {
        RbacPolicy::default()
    }

    /// Adds or replaces an RBAC object; other kinds are ignored.
    pub fn upsert(&mut self, object: &Object) {
        match object {
            Object::Role(role) => {
                let meta = &role.metadata;
                self.roles
                    .entry(meta.namespace.clone())
                    .or_default()
                    .insert(meta.name.clone(), role.rules.clone().into());
            }
            Object::ClusterRole(role) => {
                let selectors = role.aggregation_rule.as_ref().map(|rule| {
                    rule.cluster_role_selectors
                        .iter()
                        .map(|s| {
                            Selector::from_label_selector(s).unwrap_or_else(|_| Selector::nothing())
                        })
                        .collect()
                });
                let stored = StoredClusterRole {
                    labels: role.metadata.labels.clone(),
                    rules: role.rules.clone().into(),
                    selectors,
                };
                let name = &role.metadata.name;
                let old = self.cluster_roles.insert(name.clone(), stored);
                self.cluster_role_changed(name, old);
            }
            Object::RoleBinding(binding) => {
                let namespace = &binding.metadata.namespace;
                let entry = Binding::new(&binding.subjects, &binding.role_ref, Some(namespace));
                self.role_bindings
                    .entry(namespace.clone())
                    .or_default()
                    .upsert(&binding.metadata.name, entry);
            }
            Object::ClusterRoleBinding(binding) => {
                let entry = Binding::new(&binding.subjects, &binding.role_ref, None);
                self.cluster_bindings.upsert(&binding.metadata.name, entry);
            }
            _ => {}
        }
    }

    /// Forgets an RBAC object by kind (`Role`, `ClusterRole`, `RoleBinding`,
    /// `ClusterRoleBinding`), namespace (`""` for the cluster-scoped kinds) and name.
    pub fn remove(&mut self, kind: &str, namespace: &str, name: &str) {
        match kind {
            "Role" => {
                if let Some(roles) = self.roles.get_mut(namespace) {
                    roles.remove(name);
                    if roles.is_empty() {
                        self.roles.remove(namespace);
                    }
                }
            }
            "ClusterRole" => {
                if let Some(old) = self.cluster_roles.remove(name) {
                    self.cluster_role_rules.remove(name);
                    self.cluster_role_changed(name, Some(old));
                }
            }
            "RoleBinding" => {
                if let Some(bindings) = self.role_bindings.get_mut(namespace) {
                    bindings.remove(name);
                    if bindings.is_empty() {
                        self.role_bindings.remove(namespace);
                    }
                }
            }
            "ClusterRoleBinding" => self.cluster_bindings.remove(name),
            _ => {}
        }
    }

    /// [`Decision::Allow`] when a rule of a role bound to the user grants the
    /// request, otherwise [`Decision::NoOpinion`] (RBAC never denies).
    pub fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        let allowed_by = |rules: Option<&Arc<[PolicyRule]>>| {
            rules.is_some_and(|rules| rules.iter().any(|rule| rule_allows(attrs, rule)))
        };
        let cluster_wide = self
            .cluster_bindings
            .for_user(user)
            .any(|binding| allowed_by(self.role_rules(&binding.role_ref, None)));
        if cluster_wide {
            return Decision::Allow;
        }
        if !attrs.namespace.is_empty()
            && let Some(bindings) = self.role_bindings.get(&attrs.namespace)
        {
            let in_namespace = bindings.for_user(user).any(|binding| {
                allowed_by(self.role_rules(&binding.role_ref, Some(&attrs.namespace)))
            });
            if in_namespace {
                return Decision::Allow;
            }
        }
        Decision::NoOpinion
    }

    /// The effective rules of a ClusterRole (aggregation resolved), if it exists.
    pub fn cluster_role_rules(&self, name: &str) -> Option<&[PolicyRule]> {
        self.cluster_role_rules.get(name).map(|rules| &rules[..])
    }

    /// `GetRoleReferenceRules`: a Role is looked up in the binding's namespace.
    fn role_rules(
        &self,
        role_ref: &RoleRef,
        namespace: Option<&str>,
    ) -> Option<&Arc<[PolicyRule]>> {
        match role_ref.kind.as_str() {
            "ClusterRole" => self.cluster_role_rules.get(&role_ref.name),
            "Role" => self.roles.get(namespace?)?.get(&role_ref.name),
            _ => None,
        }
    }

    /// Keeps the effective rules right after ClusterRole `name` was
    /// replaced or removed (`old` is its previous version): a plain role's
    /// effective rules are its own, and the aggregated roles are recomputed
    /// only when the change could alter them, so loading many plain roles
    /// stays linear.
    fn cluster_role_changed(&mut self, name: &str, old: Option<StoredClusterRole>) {
        if let Some(new) = self.cluster_roles.get(name)
            && new.selectors.is_none()
        {
            self.cluster_role_rules
                .insert(name.to_owned(), new.rules.clone());
        }
        let involved = |role: &StoredClusterRole| {
            role.selectors.is_some() || self.selected_by_aggregation(name, &role.labels)
        };
        let aggregation_changes = old.as_ref().is_some_and(involved)
            || self.cluster_roles.get(name).is_some_and(involved);
        if aggregation_changes {
            self.resolve_aggregation();
        }
    }

    /// Whether an aggregated role other than `name` selects these labels.
    fn selected_by_aggregation(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.cluster_roles.iter().any(|(other, role)| {
            other != name
                && role
                    .selectors
                    .as_ref()
                    .is_some_and(|selectors| selectors.iter().any(|s| s.matches(labels)))
        })
    }

    /// Recomputes the effective rules of every aggregated ClusterRole: the
    /// union, in the order of the selected roles' names, of the effective
    /// rules of the other roles its selectors match. Aggregated roles may
    /// select aggregated roles (as `admin` selects `edit`), so the union is
    /// iterated to its least fixed point, which also settles cycles.
    fn resolve_aggregation(&mut self) {
        let mut names: Vec<&String> = self.cluster_roles.keys().collect();
        names.sort();
        let aggregated: Vec<(&String, &Vec<Selector>)> = names
            .iter()
            .filter_map(|&name| Some((name, self.cluster_roles[name].selectors.as_ref()?)))
            .collect();
        let mut rules: HashMap<&str, Vec<PolicyRule>> = aggregated
            .iter()
            .map(|(name, _)| (name.as_str(), Vec::new()))
            .collect();
        // Each round adds at least one rule to some role or stops, and the
        // set of all rules is finite.
        loop {
            let mut changed = false;
            for &(name, selectors) in &aggregated {
                let mut union: Vec<PolicyRule> = Vec::new();
                for &other in &names {
                    let stored = &self.cluster_roles[other];
                    if other == name || !selectors.iter().any(|s| s.matches(&stored.labels)) {
                        continue;
                    }
                    let other_rules = match rules.get(other.as_str()) {
                        Some(aggregated_rules) => &aggregated_rules[..],
                        None => &stored.rules[..],
                    };
                    for rule in other_rules {
                        if !union.contains(rule) {
                            union.push(rule.clone());
                        }
                    }
                }
                if union != rules[name.as_str()] {
                    rules.insert(name, union);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let resolved: Vec<(String, Arc<[PolicyRule]>)> = rules
            .into_iter()
            .map(|(name, rules)| (name.to_owned(), rules.into()))
            .collect();
        self.cluster_role_rules.extend(resolved);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use flotilla_shared::model::{
        AggregationRule, ClusterRole, ClusterRoleBinding, LabelSelector, ObjectMeta, Role,
        RoleBinding,
    };

    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
        PolicyRule {
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            api_groups: groups.iter().map(|s| s.to_string()).collect(),
            resources: resources.iter().map(|s| s.to_string()).collect(),
            ..PolicyRule::default()
        }
    }

    fn named(mut rule: PolicyRule, names: &[&str]) -> PolicyRule {
        rule.resource_names = names.iter().map(|s| s.to_string()).collect();
        rule
    }

    fn urls(verbs: &[&str], urls: &[&str]) -> PolicyRule {
        PolicyRule {
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            non_resource_urls: urls.iter().map(|s| s.to_string()).collect(),
            ..PolicyRule::default()
        }
    }

    fn meta(namespace: &str, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: name.into(),
            namespace: namespace.into(),
            ..ObjectMeta::default()
        }
    }

    fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> Object {
        Object::ClusterRole(ClusterRole {
            metadata: meta("", name),
            rules,
            ..ClusterRole::default()
        })
    }

    fn labelled_cluster_role(
        name: &str,
        labels: &[(&str, &str)],
        rules: Vec<PolicyRule>,
    ) -> Object {
        let mut metadata = meta("", name);
        metadata.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Object::ClusterRole(ClusterRole {
            metadata,
            rules,
            ..ClusterRole::default()
        })
    }

    fn aggregated_role(name: &str, labels: &[(&str, &str)], selects: &[(&str, &str)]) -> Object {
        let Object::ClusterRole(mut role) = labelled_cluster_role(
            name,
            labels,
            // Ignored: an aggregated role's rules are computed.
            vec![rule(&["*"], &["*"], &["*"])],
        ) else {
            unreachable!()
        };
        role.aggregation_rule = Some(AggregationRule {
            cluster_role_selectors: selects
                .iter()
                .map(|(k, v)| LabelSelector {
                    match_labels: BTreeMap::from([(k.to_string(), v.to_string())]),
                    ..LabelSelector::default()
                })
                .collect(),
        });
        Object::ClusterRole(role)
    }

    fn role(namespace: &str, name: &str, rules: Vec<PolicyRule>) -> Object {
        Object::Role(Role {
            metadata: meta(namespace, name),
            rules,
            ..Role::default()
        })
    }

    fn subject(kind: &str, name: &str, namespace: &str) -> Subject {
        Subject {
            kind: kind.into(),
            name: name.into(),
            namespace: namespace.into(),
            ..Subject::default()
        }
    }

    fn role_ref(kind: &str, name: &str) -> RoleRef {
        RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    fn role_binding(
        namespace: &str,
        name: &str,
        subjects: Vec<Subject>,
        role_ref: RoleRef,
    ) -> Object {
        Object::RoleBinding(RoleBinding {
            metadata: meta(namespace, name),
            subjects,
            role_ref,
            ..RoleBinding::default()
        })
    }

    fn cluster_binding(name: &str, subjects: Vec<Subject>, role: &str) -> Object {
        Object::ClusterRoleBinding(ClusterRoleBinding {
            metadata: meta("", name),
            subjects,
            role_ref: role_ref("ClusterRole", role),
            ..ClusterRoleBinding::default()
        })
    }

    fn res(verb: &str, group: &str, resource: &str, namespace: &str, name: &str) -> Attributes {
        Attributes::resource(verb, group, resource, namespace, name)
    }

    fn allowed(policy: &RbacPolicy, user: &UserInfo, attrs: &Attributes) -> bool {
        match policy.authorize(user, attrs) {
            Decision::Allow => true,
            Decision::NoOpinion => false,
            Decision::Deny { reason } => panic!("rbac never denies, got {reason:?}"),
        }
    }

    #[test]
    fn rules_match_as_kubernetes_evaluation_helpers() {
        let pods = res("get", "", "pods", "default", "web");
        let cases: &[(&str, PolicyRule, Attributes, bool)] = &[
            (
                "exact verb, group, resource",
                rule(&["get"], &[""], &["pods"]),
                pods.clone(),
                true,
            ),
            (
                "other verb",
                rule(&["list"], &[""], &["pods"]),
                pods.clone(),
                false,
            ),
            (
                "verb wildcard",
                rule(&["*"], &[""], &["pods"]),
                pods.clone(),
                true,
            ),
            (
                "other group",
                rule(&["get"], &["apps"], &["pods"]),
                pods.clone(),
                false,
            ),
            (
                "group wildcard",
                rule(&["get"], &["*"], &["pods"]),
                pods.clone(),
                true,
            ),
            (
                "no groups matches nothing",
                rule(&["get"], &[], &["pods"]),
                pods.clone(),
                false,
            ),
            (
                "other resource",
                rule(&["get"], &[""], &["services"]),
                pods.clone(),
                false,
            ),
            (
                "resource wildcard",
                rule(&["get"], &[""], &["*"]),
                pods.clone(),
                true,
            ),
            (
                "empty verbs match nothing",
                rule(&[], &[""], &["pods"]),
                pods.clone(),
                false,
            ),
            (
                "plain resource does not cover its subresource",
                rule(&["get"], &[""], &["pods"]),
                pods.clone().subresource("log"),
                false,
            ),
            (
                "resource/subresource",
                rule(&["update"], &[""], &["pods/status"]),
                res("update", "", "pods", "default", "web").subresource("status"),
                true,
            ),
            (
                "resource/subresource does not cover the resource",
                rule(&["update"], &[""], &["pods/status"]),
                res("update", "", "pods", "default", "web"),
                false,
            ),
            (
                "resource/subresource does not cover another subresource",
                rule(&["get"], &[""], &["pods/status"]),
                pods.clone().subresource("log"),
                false,
            ),
            (
                "a longer resource with the same subresource is another resource",
                rule(&["update"], &[""], &["podsx/status"]),
                res("update", "", "pods", "default", "web").subresource("status"),
                false,
            ),
            (
                "*/subresource covers every resource's subresource",
                rule(&["update"], &["apps"], &["*/scale"]),
                res("update", "apps", "deployments", "default", "web").subresource("scale"),
                true,
            ),
            (
                "*/subresource does not cover another subresource",
                rule(&["update"], &["apps"], &["*/scale"]),
                res("update", "apps", "deployments", "default", "web").subresource("status"),
                false,
            ),
            (
                "*/subresource does not cover the resource itself",
                rule(&["get"], &["apps"], &["*/scale"]),
                res("get", "apps", "deployments", "default", "web"),
                false,
            ),
            (
                "* covers subresources too",
                rule(&["get"], &[""], &["*"]),
                pods.clone().subresource("log"),
                true,
            ),
            (
                "pods/* is literal, as in Kubernetes",
                rule(&["get"], &[""], &["pods/*"]),
                pods.clone().subresource("log"),
                false,
            ),
            (
                "resourceNames allow get of a listed name",
                named(rule(&["get"], &[""], &["pods"]), &["web"]),
                pods.clone(),
                true,
            ),
            (
                "resourceNames refuse get of another name",
                named(rule(&["get"], &[""], &["pods"]), &["db"]),
                pods.clone(),
                false,
            ),
            (
                "resourceNames refuse a list, which has no name",
                named(rule(&["list"], &[""], &["pods"]), &["web"]),
                res("list", "", "pods", "default", ""),
                false,
            ),
            (
                "resourceNames allow a list by metadata.name field selector",
                named(rule(&["list"], &[""], &["pods"]), &["web"]),
                res("list", "", "pods", "default", "web"),
                true,
            ),
            (
                "resourceNames refuse a create even with the body's name",
                named(rule(&["create"], &[""], &["pods"]), &["web"]),
                res("create", "", "pods", "default", "").create_name("web"),
                false,
            ),
            (
                "non-resource URL rule does not grant resources",
                urls(&["get"], &["*"]),
                pods.clone(),
                false,
            ),
            (
                "resource rule does not grant paths",
                rule(&["get"], &["*"], &["*"]),
                Attributes::non_resource("get", "/version"),
                false,
            ),
            (
                "exact URL",
                urls(&["get"], &["/version"]),
                Attributes::non_resource("get", "/version"),
                true,
            ),
            (
                "exact URL is not a prefix",
                urls(&["get"], &["/api"]),
                Attributes::non_resource("get", "/api/v1"),
                false,
            ),
            (
                "trailing * is a prefix",
                urls(&["get"], &["/api/*"]),
                Attributes::non_resource("get", "/api/v1"),
                true,
            ),
            (
                "trailing * needs the prefix",
                urls(&["get"], &["/api/*"]),
                Attributes::non_resource("get", "/apis/apps"),
                false,
            ),
            (
                "bare prefix * matches more than path segments",
                urls(&["get"], &["/api*"]),
                Attributes::non_resource("get", "/apis/apps"),
                true,
            ),
            (
                "* covers every path",
                urls(&["get"], &["*"]),
                Attributes::non_resource("get", "/metrics"),
                true,
            ),
            (
                "URL rule checks the verb",
                urls(&["get"], &["/healthz"]),
                Attributes::non_resource("post", "/healthz"),
                false,
            ),
        ];
        for (what, rule, attrs, want) in cases {
            assert_eq!(rule_allows(attrs, rule), *want, "{what}");
        }
    }

    /// A policy exercising every kind of binding.
    fn policy() -> RbacPolicy {
        let mut policy = RbacPolicy::new();
        for object in [
            cluster_role(
                "pod-reader",
                vec![rule(&["get", "list", "watch"], &[""], &["pods"])],
            ),
            cluster_role(
                "node-reader",
                vec![rule(&["get", "list"], &[""], &["nodes"])],
            ),
            cluster_role("metrics", vec![urls(&["get"], &["/metrics"])]),
            role(
                "dev",
                "deployer",
                vec![rule(
                    &["*"],
                    &["apps"],
                    &["deployments", "deployments/scale"],
                )],
            ),
            role(
                "prod",
                "deployer",
                vec![rule(&["get"], &["apps"], &["deployments"])],
            ),
            // A RoleBinding to a ClusterRole grants in its namespace only.
            role_binding(
                "dev",
                "alice-pods",
                vec![subject("User", "alice", "")],
                role_ref("ClusterRole", "pod-reader"),
            ),
            role_binding(
                "dev",
                "alice-deploy",
                vec![subject("User", "alice", "")],
                role_ref("Role", "deployer"),
            ),
            // A RoleBinding to a Role of its own namespace: "prod"'s deployer.
            role_binding(
                "prod",
                "ops-deploy",
                vec![subject("Group", "ops", "")],
                role_ref("Role", "deployer"),
            ),
            role_binding(
                "prod",
                "sa-local",
                vec![subject("ServiceAccount", "ci", "")],
                role_ref("ClusterRole", "pod-reader"),
            ),
            role_binding(
                "prod",
                "sa-remote",
                vec![subject("ServiceAccount", "builder", "dev")],
                role_ref("Role", "deployer"),
            ),
            role_binding(
                "dev",
                "ghost",
                vec![subject("User", "carol", "")],
                role_ref("Role", "missing"),
            ),
            cluster_binding(
                "nodes-for-ops",
                vec![subject("Group", "ops", "")],
                "node-reader",
            ),
            cluster_binding("metrics-bob", vec![subject("User", "bob", "")], "metrics"),
            cluster_binding(
                "sa-nowhere",
                vec![subject("ServiceAccount", "lost", "")],
                "node-reader",
            ),
            cluster_binding(
                "pods-everywhere",
                vec![subject("ServiceAccount", "monitor", "kube-system")],
                "pod-reader",
            ),
        ] {
            policy.upsert(&object);
        }
        policy
    }

    #[test]
    fn bindings_grant_to_their_subjects_in_their_scope() {
        let policy = policy();
        let alice = UserInfo::new("alice", ["system:authenticated"]);
        let bob = UserInfo::new("bob", ["system:authenticated"]);
        let carol = UserInfo::new("carol", ["system:authenticated"]);
        let ops_member = UserInfo::new("dave", ["ops"]);
        let ci = UserInfo::new("system:serviceaccount:prod:ci", ["system:serviceaccounts"]);
        let builder = UserInfo::new(
            "system:serviceaccount:dev:builder",
            ["system:serviceaccounts"],
        );
        let lost = UserInfo::new("system:serviceaccount::lost", Vec::<String>::new());
        let monitor = UserInfo::new(
            "system:serviceaccount:kube-system:monitor",
            Vec::<String>::new(),
        );
        let cases: &[(&str, &UserInfo, Attributes, bool)] = &[
            (
                "role binding to a cluster role grants in its namespace",
                &alice,
                res("list", "", "pods", "dev", ""),
                true,
            ),
            (
                "... and not in another namespace",
                &alice,
                res("list", "", "pods", "prod", ""),
                false,
            ),
            (
                "... and not across all namespaces",
                &alice,
                res("list", "", "pods", "", ""),
                false,
            ),
            (
                "role binding to a role",
                &alice,
                res("delete", "apps", "deployments", "dev", "web"),
                true,
            ),
            (
                "role's subresource rule",
                &alice,
                res("update", "apps", "deployments", "dev", "web").subresource("scale"),
                true,
            ),
            (
                "role's rules stop at their resources",
                &alice,
                res("get", "apps", "replicasets", "dev", "web"),
                false,
            ),
            (
                "no cluster binding for alice",
                &alice,
                res("get", "", "nodes", "", "gw-1"),
                false,
            ),
            (
                "a role ref resolves in the binding's namespace",
                &ops_member,
                res("get", "apps", "deployments", "prod", "web"),
                true,
            ),
            (
                "... with that namespace's role's rules",
                &ops_member,
                res("delete", "apps", "deployments", "prod", "web"),
                false,
            ),
            (
                "group subject of a cluster role binding",
                &ops_member,
                res("list", "", "nodes", "", ""),
                true,
            ),
            (
                "cluster bindings also apply inside namespaces",
                &ops_member,
                res("get", "", "nodes", "dev", "x"),
                true,
            ),
            (
                "another user is not in the group",
                &alice,
                res("list", "", "nodes", "", ""),
                false,
            ),
            (
                "user subject of a cluster role binding on a URL",
                &bob,
                Attributes::non_resource("get", "/metrics"),
                true,
            ),
            (
                "URL rules grant only their verbs",
                &bob,
                Attributes::non_resource("post", "/metrics"),
                false,
            ),
            (
                "a binding to a missing role grants nothing",
                &carol,
                res("get", "", "pods", "dev", "web"),
                false,
            ),
            (
                "service account defaults to the binding's namespace",
                &ci,
                res("get", "", "pods", "prod", "web"),
                true,
            ),
            (
                "service account of a namespace that is named",
                &builder,
                res("get", "apps", "deployments", "prod", "web"),
                true,
            ),
            (
                "a same-named account elsewhere is another user",
                &UserInfo::new("system:serviceaccount:dev:ci", Vec::<String>::new()),
                res("get", "", "pods", "prod", "web"),
                false,
            ),
            (
                "a cluster binding's account needs a namespace",
                &lost,
                res("get", "", "nodes", "", "x"),
                false,
            ),
            (
                "service account in a cluster role binding",
                &monitor,
                res("watch", "", "pods", "", ""),
                true,
            ),
            (
                "service account user name is matched whole",
                &UserInfo::new("monitor", Vec::<String>::new()),
                res("watch", "", "pods", "", ""),
                false,
            ),
        ];
        for (what, user, attrs, want) in cases {
            assert_eq!(allowed(&policy, user, attrs), *want, "{what}");
        }
    }

    #[test]
    fn removing_a_binding_or_role_revokes_access() {
        let alice = UserInfo::new("alice", Vec::<String>::new());
        let ops = UserInfo::new("dave", ["ops"]);
        let list_dev_pods = res("list", "", "pods", "dev", "");
        let list_nodes = res("list", "", "nodes", "", "");
        let deploy = res("update", "apps", "deployments", "dev", "web");

        let mut policy = policy();
        policy.remove("RoleBinding", "dev", "alice-pods");
        assert!(
            !allowed(&policy, &alice, &list_dev_pods),
            "role binding removed"
        );
        assert!(allowed(&policy, &alice, &deploy), "other bindings stay");

        policy.remove("ClusterRoleBinding", "", "nodes-for-ops");
        assert!(
            !allowed(&policy, &ops, &list_nodes),
            "cluster role binding removed"
        );

        let mut policy = RbacPolicy::new();
        policy.upsert(&role(
            "dev",
            "deployer",
            vec![rule(&["update"], &["apps"], &["deployments"])],
        ));
        policy.upsert(&role_binding(
            "dev",
            "b",
            vec![subject("User", "alice", "")],
            role_ref("Role", "deployer"),
        ));
        assert!(allowed(&policy, &alice, &deploy));
        policy.remove("Role", "dev", "deployer");
        assert!(!allowed(&policy, &alice, &deploy), "role removed");

        policy.upsert(&cluster_role("r", vec![rule(&["list"], &[""], &["nodes"])]));
        policy.upsert(&cluster_binding(
            "b",
            vec![subject("User", "alice", "")],
            "r",
        ));
        assert!(allowed(&policy, &alice, &list_nodes));
        policy.remove("ClusterRole", "", "r");
        assert!(
            !allowed(&policy, &alice, &list_nodes),
            "cluster role removed"
        );

        policy.remove("ClusterRole", "", "never-was");
        policy.remove("Pod", "dev", "web");
        policy.remove("RoleBinding", "nowhere", "b");
    }

    #[test]
    fn upsert_replaces_a_binding_and_its_subjects() {
        let alice = UserInfo::new("alice", Vec::<String>::new());
        let bob = UserInfo::new("bob", Vec::<String>::new());
        let list_nodes = res("list", "", "nodes", "", "");
        let mut policy = RbacPolicy::new();
        policy.upsert(&cluster_role("r", vec![rule(&["list"], &[""], &["nodes"])]));
        policy.upsert(&cluster_binding(
            "b",
            vec![subject("User", "alice", "")],
            "r",
        ));
        assert!(allowed(&policy, &alice, &list_nodes));
        policy.upsert(&cluster_binding("b", vec![subject("User", "bob", "")], "r"));
        assert!(
            !allowed(&policy, &alice, &list_nodes),
            "alice left the binding"
        );
        assert!(allowed(&policy, &bob, &list_nodes), "bob joined it");
        policy.remove("ClusterRoleBinding", "", "b");
        assert!(
            policy.cluster_bindings.is_empty(),
            "the index holds nothing once bindings are gone"
        );

        // A role changed after its binding takes effect at once.
        policy.upsert(&cluster_binding("b", vec![subject("User", "bob", "")], "r"));
        policy.upsert(&cluster_role("r", vec![rule(&["get"], &[""], &["nodes"])]));
        assert!(!allowed(&policy, &bob, &list_nodes));
        assert!(allowed(&policy, &bob, &res("get", "", "nodes", "", "gw-1")));
    }

    #[test]
    fn aggregated_roles_take_the_union_of_selected_roles() {
        let mut policy = RbacPolicy::new();
        let view = ("example.com/aggregate-to-view", "true");
        let edit = ("example.com/aggregate-to-edit", "true");
        for object in [
            aggregated_role("edit", &[], &[edit]),
            aggregated_role("view", &[edit], &[view]),
            labelled_cluster_role("read-pods", &[view], vec![rule(&["get"], &[""], &["pods"])]),
            labelled_cluster_role(
                "read-nodes",
                &[view],
                vec![rule(&["get"], &[""], &["nodes"])],
            ),
            labelled_cluster_role(
                "write-pods",
                &[edit],
                vec![rule(&["delete"], &[""], &["pods"])],
            ),
            cluster_role("unlabelled", vec![rule(&["get"], &[""], &["secrets"])]),
        ] {
            policy.upsert(&object);
        }
        let get_pods = rule(&["get"], &[""], &["pods"]);
        let get_nodes = rule(&["get"], &[""], &["nodes"]);
        let delete_pods = rule(&["delete"], &[""], &["pods"]);
        assert_eq!(
            policy.cluster_role_rules("view"),
            Some(&[get_nodes.clone(), get_pods.clone()][..])
        );
        assert_eq!(
            policy.cluster_role_rules("edit"),
            Some(&[get_nodes.clone(), get_pods.clone(), delete_pods.clone()][..]),
            "nested aggregation: edit selects view, which selects the readers"
        );

        policy.upsert(&cluster_binding(
            "b",
            vec![subject("User", "alice", "")],
            "edit",
        ));
        let alice = UserInfo::new("alice", Vec::<String>::new());
        assert!(allowed(
            &policy,
            &alice,
            &res("get", "", "nodes", "", "gw-1")
        ));
        assert!(allowed(
            &policy,
            &alice,
            &res("delete", "", "pods", "dev", "web")
        ));
        assert!(
            !allowed(&policy, &alice, &res("get", "", "secrets", "dev", "s")),
            "unselected role"
        );
        assert!(
            !allowed(&policy, &alice, &res("create", "", "configmaps", "dev", "")),
            "the aggregated role's own rules are ignored"
        );

        // A new labelled role joins at once; relabelling or removing leaves.
        policy.upsert(&labelled_cluster_role(
            "read-secrets",
            &[view],
            vec![rule(&["get"], &[""], &["secrets"])],
        ));
        assert!(
            allowed(&policy, &alice, &res("get", "", "secrets", "dev", "s")),
            "joined"
        );
        policy.upsert(&cluster_role(
            "read-secrets",
            vec![rule(&["get"], &[""], &["secrets"])],
        ));
        assert!(
            !allowed(&policy, &alice, &res("get", "", "secrets", "dev", "s")),
            "label dropped"
        );
        policy.remove("ClusterRole", "", "read-nodes");
        assert!(
            !allowed(&policy, &alice, &res("get", "", "nodes", "", "gw-1")),
            "removed"
        );
        assert_eq!(policy.cluster_role_rules("view"), Some(&[get_pods][..]));
    }

    #[test]
    fn aggregation_cycles_and_odd_selectors_settle() {
        let mut policy = RbacPolicy::new();
        let a = ("a", "true");
        let b = ("b", "true");
        for object in [
            aggregated_role("one", &[b], &[a]),
            aggregated_role("two", &[a], &[b]),
            labelled_cluster_role("base", &[a], vec![rule(&["get"], &[""], &["pods"])]),
        ] {
            policy.upsert(&object);
        }
        let get_pods = rule(&["get"], &[""], &["pods"]);
        assert_eq!(
            policy.cluster_role_rules("one"),
            Some(&[get_pods.clone()][..])
        );
        assert_eq!(
            policy.cluster_role_rules("two"),
            Some(&[get_pods.clone()][..]),
            "through the cycle"
        );

        // No selectors: nothing. An empty selector: every other role. An invalid one: nothing.
        policy.upsert(&aggregated_role("none", &[], &[]));
        assert_eq!(policy.cluster_role_rules("none"), Some(&[][..]));
        let Object::ClusterRole(mut everything) = aggregated_role("everything", &[], &[]) else {
            unreachable!()
        };
        everything.aggregation_rule = Some(AggregationRule {
            cluster_role_selectors: vec![LabelSelector::default()],
        });
        policy.upsert(&Object::ClusterRole(everything.clone()));
        assert_eq!(
            policy.cluster_role_rules("everything"),
            Some(&[get_pods][..])
        );
        everything.aggregation_rule = Some(AggregationRule {
            cluster_role_selectors: vec![LabelSelector {
                match_labels: BTreeMap::from([("not a key!".to_owned(), "x".to_owned())]),
                ..LabelSelector::default()
            }],
        });
        policy.upsert(&Object::ClusterRole(everything));
        assert_eq!(policy.cluster_role_rules("everything"), Some(&[][..]));
        assert_eq!(policy.cluster_role_rules("absent"), None);
    }

    #[test]
    fn a_role_turning_aggregated_or_plain_takes_the_matching_rules() {
        let mut policy = RbacPolicy::new();
        let label = ("pick", "me");
        let get_pods = rule(&["get"], &[""], &["pods"]);
        let get_nodes = rule(&["get"], &[""], &["nodes"]);
        policy.upsert(&labelled_cluster_role(
            "picked",
            &[label],
            vec![get_pods.clone()],
        ));
        policy.upsert(&cluster_role("shifty", vec![get_nodes.clone()]));
        assert_eq!(
            policy.cluster_role_rules("shifty"),
            Some(&[get_nodes.clone()][..])
        );

        policy.upsert(&aggregated_role("shifty", &[], &[label]));
        assert_eq!(
            policy.cluster_role_rules("shifty"),
            Some(&[get_pods.clone()][..]),
            "now aggregated"
        );

        policy.upsert(&cluster_role("shifty", vec![get_nodes.clone()]));
        assert_eq!(
            policy.cluster_role_rules("shifty"),
            Some(&[get_nodes][..]),
            "plain again"
        );

        policy.upsert(&aggregated_role("shifty", &[], &[label]));
        policy.remove("ClusterRole", "", "shifty");
        assert_eq!(policy.cluster_role_rules("shifty"), None, "removed");
        assert_eq!(policy.cluster_role_rules("picked"), Some(&[get_pods][..]));
    }

    #[test]
    fn many_bindings_are_found_through_the_index() {
        let mut policy = RbacPolicy::new();
        policy.upsert(&cluster_role(
            "pod-reader",
            vec![rule(&["get"], &[""], &["pods"])],
        ));
        for i in 0..2000 {
            policy.upsert(&role_binding(
                &format!("ns-{}", i % 50),
                &format!("b-{i}"),
                vec![
                    subject("User", &format!("user-{i}"), ""),
                    subject("Group", &format!("team-{}", i % 7), ""),
                ],
                role_ref("ClusterRole", "pod-reader"),
            ));
        }
        let user = UserInfo::new("user-1234", Vec::<String>::new());
        assert!(allowed(
            &policy,
            &user,
            &res("get", "", "pods", "ns-34", "p")
        ));
        assert!(!allowed(
            &policy,
            &user,
            &res("get", "", "pods", "ns-35", "p")
        ));
        let team = UserInfo::new("someone", ["team-3"]);
        // Bindings with i % 7 == 3 exist in ns-3, ns-10, ...; i = 3 gives ns-3.
        assert!(allowed(
            &policy,
            &team,
            &res("get", "", "pods", "ns-3", "p")
        ));
        assert_eq!(
            policy.role_bindings["ns-34"].index.users["user-1234"].len(),
            1
        );
    }
}
