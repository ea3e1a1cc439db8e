//! The message of a 403, word for word as kube-apiserver writes it:
//! `forbiddenMessage` and `Forbidden` in
//! `staging/src/k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go`,
//! wrapped by `NewForbidden` in `staging/src/k8s.io/apimachinery/pkg/api/errors/errors.go`.

use super::Attributes;
use crate::api::user::UserInfo;

/// The `message` of the `Status` a refused request receives, e.g.
/// `pods is forbidden: User "alice" cannot list resource "pods" in API group
/// "" in the namespace "kube-system"`, with `: REASON` appended when the
/// authorizer gave one. The resource is qualified by its group and followed
/// by the object's name when the request has one
/// (`deployments.apps "web" is forbidden: ...`); a non-resource request reads
/// `forbidden: User "x" cannot get path "/metrics"`.
pub fn forbidden_message(user: &UserInfo, attrs: &Attributes, reason: &str) -> String {
    let username = &user.name;
    let verb = &attrs.verb;
    let what = if !attrs.resource_request {
        format!("User {username:?} cannot {verb} path {:?}", attrs.path)
    } else {
        let resource = attrs.combined_resource();
        let group = &attrs.api_group;
        if attrs.namespace.is_empty() {
            format!(
                "User {username:?} cannot {verb} resource {resource:?} in API group {group:?} at the cluster scope"
            )
        } else {
            format!(
                "User {username:?} cannot {verb} resource {resource:?} in API group {group:?} in the namespace {:?}",
                attrs.namespace
            )
        }
    };
    let error = if reason.is_empty() {
        what
    } else {
        format!("{what}: {reason}")
    };
    // `NewForbidden(schema.GroupResource{group, resource}, name, err)`: the
    // group resource of a non-resource request is empty.
    let group_resource = match (attrs.resource.as_str(), attrs.api_group.as_str()) {
        ("", "") => return format!("forbidden: {error}"),
        (resource, "") => resource.to_owned(),
        (resource, group) => format!("{resource}.{group}"),
    };
    if attrs.name.is_empty() {
        format!("{group_resource} is forbidden: {error}")
    } else {
        format!("{group_resource} {:?} is forbidden: {error}", attrs.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_kube_apiserver_wording() {
        let alice = UserInfo::new("alice", ["system:authenticated"]);
        let device = UserInfo::new("system:node:gw-1", ["system:nodes"]);
        let res = Attributes::resource;
        let cases: &[(&UserInfo, Attributes, &str, &str)] = &[
            (
                &alice,
                res("list", "", "pods", "kube-system", ""),
                "",
                r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "kube-system""#,
            ),
            (
                &alice,
                res("get", "", "pods", "default", "web"),
                "",
                r#"pods "web" is forbidden: User "alice" cannot get resource "pods" in API group "" in the namespace "default""#,
            ),
            (
                &alice,
                res("list", "", "nodes", "", ""),
                "",
                r#"nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope"#,
            ),
            (
                &alice,
                res("list", "", "pods", "", ""),
                "",
                r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" at the cluster scope"#,
            ),
            (
                &alice,
                res("get", "apps", "deployments", "default", "web"),
                "",
                r#"deployments.apps "web" is forbidden: User "alice" cannot get resource "deployments" in API group "apps" in the namespace "default""#,
            ),
            (
                &alice,
                res("patch", "apps", "deployments", "default", "web").subresource("scale"),
                "",
                r#"deployments.apps "web" is forbidden: User "alice" cannot patch resource "deployments/scale" in API group "apps" in the namespace "default""#,
            ),
            (
                &alice,
                res(
                    "create",
                    "rbac.authorization.k8s.io",
                    "clusterrolebindings",
                    "",
                    "",
                ),
                "",
                r#"clusterrolebindings.rbac.authorization.k8s.io is forbidden: User "alice" cannot create resource "clusterrolebindings" in API group "rbac.authorization.k8s.io" at the cluster scope"#,
            ),
            (
                &device,
                res("get", "", "secrets", "default", "token"),
                "no relationship found between node 'gw-1' and this object",
                r#"secrets "token" is forbidden: User "system:node:gw-1" cannot get resource "secrets" in API group "" in the namespace "default": no relationship found between node 'gw-1' and this object"#,
            ),
            (
                &device,
                res("update", "", "pods", "default", "web").subresource("status"),
                "no relationship found between node 'gw-1' and this object",
                r#"pods "web" is forbidden: User "system:node:gw-1" cannot update resource "pods/status" in API group "" in the namespace "default": no relationship found between node 'gw-1' and this object"#,
            ),
            (
                &alice,
                Attributes::non_resource("get", "/metrics"),
                "",
                r#"forbidden: User "alice" cannot get path "/metrics""#,
            ),
            (
                &alice,
                Attributes::non_resource("post", "/openapi/v3"),
                "no",
                r#"forbidden: User "alice" cannot post path "/openapi/v3": no"#,
            ),
            (
                &UserInfo::default(),
                Attributes::non_resource("get", "/"),
                "",
                r#"forbidden: User "" cannot get path "/""#,
            ),
        ];
        for (user, attrs, reason, want) in cases {
            assert_eq!(forbidden_message(user, attrs, reason), *want);
        }
    }
}
