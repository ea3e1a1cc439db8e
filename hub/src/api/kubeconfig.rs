//! `DIR/admin.kubeconfig`: a kubeconfig for the cluster administrator, written
//! when a replica is ready (as k3s writes `/etc/rancher/k3s/k3s.yaml`), so
//! that `kubectl --kubeconfig DIR/admin.kubeconfig get nodes` works at once.

use base64::Engine as _;
use serde_json::json;

use crate::pki::ReplicaPki;

/// The kubeconfig (JSON is YAML) for `server` (`https://host:port`) with the
/// cluster CA and the admin client certificate of `pki`.
pub fn admin_kubeconfig(pki: &ReplicaPki, server: &str) -> String {
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem.as_bytes());
    let admin = pki.admin();
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "flotilla",
            "cluster": {
                "server": server,
                "certificate-authority-data": b64(pki.ca().certificate().pem()),
            },
        }],
        "users": [{
            "name": "flotilla-admin",
            "user": {
                "client-certificate-data": b64(admin.certificate.pem()),
                "client-key-data": b64(admin.key.pem()),
            },
        }],
        "contexts": [{
            "name": "flotilla",
            "context": { "cluster": "flotilla", "user": "flotilla-admin", "namespace": "default" },
        }],
        "current-context": "flotilla",
        "preferences": {},
    });
    serde_json::to_string_pretty(&config).unwrap_or_default() + "\n"
}
