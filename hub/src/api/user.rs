//! Who made a request, as authentication found it.

/// An authenticated user (Kubernetes' `user.Info`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// `flotilla-admin`, `system:node:gw-0042`, `system:bootstrap:abcdef`.
    pub name: String,
    pub uid: String,
    /// `system:masters`, `system:nodes`, `system:authenticated`, ...
    pub groups: Vec<String>,
}

/// The group of every authenticated user.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group whose members may do anything (the built-in cluster-admin binding).
pub const MASTERS: &str = "system:masters";
/// The group of device identities.
pub const NODES: &str = "system:nodes";
/// The user-name prefix of device identities: `system:node:NAME`.
pub const NODE_USER_PREFIX: &str = "system:node:";

impl UserInfo {
    pub fn new(
        name: impl Into<String>,
        groups: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        UserInfo {
            name: name.into(),
            uid: String::new(),
            groups: groups.into_iter().map(Into::into).collect(),
        }
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The node a device identity speaks for: `Some("gw-1")` for user
    /// `system:node:gw-1` in group `system:nodes`.
    pub fn node_name(&self) -> Option<&str> {
        self.name
            .strip_prefix(NODE_USER_PREFIX)
            .filter(|name| !name.is_empty() && self.in_group(NODES))
    }
}
