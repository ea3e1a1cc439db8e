//! What a request's method, path and query ask for, read as
//! kube-apiserver's `RequestInfoFactory`
//! (`staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`)
//! reads them, before anything is looked up.

use axum::http::Method;

/// A parsed resource request: `/api/v1/namespaces/default/pods/web-0/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// `get list watch create update patch delete deletecollection`.
    pub verb: &'static str,
    /// Empty for the core group (`/api/v1`).
    pub group: String,
    pub version: String,
    /// Empty for cluster-scoped resources and lists across namespaces.
    pub namespace: String,
    /// The plural: `pods`.
    pub resource: String,
    pub name: String,
    /// `status`, `scale`, `log`, or empty.
    pub subresource: String,
}

/// Why a path is not a resource path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("not a resource path")]
    NotResource,
    #[error("method {0} is not allowed here")]
    Method(Method),
}

/// The subresources of the namespace object itself, which the path
/// `/api/v1/namespaces/{name}/{subresource}` names.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

impl RequestInfo {
    /// Parses a resource request. `watch` is the query's `watch` flag.
    pub fn parse(method: &Method, path: &str, watch: bool) -> Result<RequestInfo, PathError> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, version, rest) = match parts.as_slice() {
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return Err(PathError::NotResource),
        };
        if rest.is_empty() || rest.iter().any(|p| p.is_empty()) {
            return Err(PathError::NotResource);
        }
        let mut info = RequestInfo {
            group: group.to_owned(),
            version: version.to_owned(),
            ..RequestInfo::default()
        };
        let rest = match rest {
            ["namespaces", namespace, tail @ ..]
                if !(tail.is_empty()
                    || tail.len() == 1 && NAMESPACE_SUBRESOURCES.contains(&tail[0])) =>
            {
                info.namespace = (*namespace).to_owned();
                tail
            }
            _ => rest,
        };
        match rest {
            [resource] => info.resource = (*resource).to_owned(),
            [resource, name] => {
                info.resource = (*resource).to_owned();
                info.name = (*name).to_owned();
            }
            [resource, name, subresource] => {
                info.resource = (*resource).to_owned();
                info.name = (*name).to_owned();
                info.subresource = (*subresource).to_owned();
            }
            _ => return Err(PathError::NotResource),
        }
        // The namespace object names itself: `/api/v1/namespaces/dev` is in namespace `dev`.
        if info.group.is_empty() && info.resource == "namespaces" && !info.name.is_empty() {
            info.namespace = info.name.clone();
        }
        let named = !info.name.is_empty();
        info.verb = match *method {
            Method::GET if watch => "watch",
            Method::GET if named => "get",
            Method::GET => "list",
            Method::POST => "create",
            Method::PUT if named => "update",
            Method::PATCH if named => "patch",
            Method::DELETE if named => "delete",
            Method::DELETE => "deletecollection",
            _ => return Err(PathError::Method(method.clone())),
        };
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: Method, path: &str) -> RequestInfo {
        RequestInfo::parse(&method, path, false).unwrap()
    }

    #[test]
    fn paths_read_as_kube_apiserver_reads_them() {
        let info = parse(Method::GET, "/api/v1/namespaces/default/pods/web-0/status");
        assert_eq!(
            (
                info.verb,
                info.group.as_str(),
                info.version.as_str(),
                info.namespace.as_str()
            ),
            ("get", "", "v1", "default")
        );
        assert_eq!(
            (
                info.resource.as_str(),
                info.name.as_str(),
                info.subresource.as_str()
            ),
            ("pods", "web-0", "status")
        );

        let info = parse(Method::GET, "/apis/apps/v1/deployments");
        assert_eq!(
            (
                info.verb,
                info.group.as_str(),
                info.resource.as_str(),
                info.namespace.as_str()
            ),
            ("list", "apps", "deployments", "")
        );

        let info = parse(Method::POST, "/apis/apps/v1/namespaces/dev/deployments");
        assert_eq!(
            (info.verb, info.namespace.as_str(), info.name.as_str()),
            ("create", "dev", "")
        );

        let info = parse(Method::DELETE, "/api/v1/namespaces/dev/configmaps");
        assert_eq!(info.verb, "deletecollection");

        let info = RequestInfo::parse(&Method::GET, "/api/v1/namespaces/dev/pods", true).unwrap();
        assert_eq!(info.verb, "watch");
    }

    #[test]
    fn the_namespace_object_is_its_own_namespace() {
        let info = parse(Method::GET, "/api/v1/namespaces/dev");
        assert_eq!(
            (
                info.resource.as_str(),
                info.name.as_str(),
                info.namespace.as_str()
            ),
            ("namespaces", "dev", "dev")
        );
        let info = parse(Method::PUT, "/api/v1/namespaces/dev/status");
        assert_eq!(
            (
                info.verb,
                info.resource.as_str(),
                info.name.as_str(),
                info.subresource.as_str()
            ),
            ("update", "namespaces", "dev", "status")
        );
        let info = parse(Method::GET, "/api/v1/namespaces");
        assert_eq!(
            (info.verb, info.resource.as_str(), info.namespace.as_str()),
            ("list", "namespaces", "")
        );
    }

    #[test]
    fn other_paths_and_methods_are_refused() {
        for path in [
            "/",
            "/api",
            "/api/v1",
            "/apis/apps",
            "/apis/apps/v1",
            "/healthz",
            "/api/v1/pods/a/b/c",
            "/api/v1//x",
        ] {
            assert_eq!(
                RequestInfo::parse(&Method::GET, path, false),
                Err(PathError::NotResource),
                "{path}"
            );
        }
        assert!(matches!(
            RequestInfo::parse(&Method::PUT, "/api/v1/pods", false),
            Err(PathError::Method(_))
        ));
        assert!(matches!(
            RequestInfo::parse(&Method::PATCH, "/api/v1/namespaces/a/pods", false),
            Err(PathError::Method(_))
        ));
    }
}
