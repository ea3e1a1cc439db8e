//! Device enrollment and certificate renewal: the JSON bodies of the hub
//! API's two device paths.
//!
//! - [`ENROLL_PATH`]: a new device, authenticated by a bootstrap token (or
//!   any user RBAC allows `post` on the path), sends a certificate signing
//!   request for a key it generated; the hub creates the device's Node and
//!   answers a client certificate naming it. Retrying with the same key
//!   answers a certificate again; another key for an existing Node is
//!   refused (delete the Node to enroll the name again).
//! - [`RENEW_PATH`]: a device sends a request for a new key together with
//!   its current certificate and the request signed by its current key. No
//!   other credential: the signature proves the device holds the key of a
//!   certificate the cluster CA issued, so a device whose certificate ran
//!   out while it was offline renews the same way (within the hub's grace
//!   window), unless the node was revoked.
//!
//! Over HTTPS rather than MQTT: it works the same with the embedded endpoint
//! and an external broker, which knows nothing of bootstrap tokens.

use serde::{Deserialize, Serialize};

/// Where a new device asks for its first certificate (`POST`).
pub const ENROLL_PATH: &str = "/flotilla/v1/enroll";
/// Where a device renews its certificate (`POST`).
pub const RENEW_PATH: &str = "/flotilla/v1/renew";
/// The Node annotation recording the SHA-256 of the enrolled public key
/// (hex, of the DER SubjectPublicKeyInfo), so that a retried enrollment
/// with the same key is answered again.
pub const ENROLLED_KEY_ANNOTATION: &str = "flotilla.dev/enrolled-key-sha256";
/// The ConfigMap (in `kube-system`) of revoked devices: each key a node
/// name, each value an RFC 3339 time; the node's certificates issued before
/// it are refused. Any other value refuses every certificate of the node.
pub const REVOCATIONS_CONFIGMAP: &str = "flotilla-revoked-devices";
pub const REVOCATIONS_NAMESPACE: &str = "kube-system";

/// `POST` [`ENROLL_PATH`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnrollBody {
    /// The device's node name.
    pub node: String,
    /// A PEM PKCS #10 request. Only its public key is used: the hub names
    /// the certificate.
    pub csr: String,
}

/// `POST` [`RENEW_PATH`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RenewBody {
    /// The device's current certificate (PEM), possibly expired.
    pub certificate: String,
    /// A PEM PKCS #10 request for the new key.
    pub csr: String,
    /// The request's DER bytes signed by the current certificate's key
    /// (ECDSA P-256 with SHA-256, ASN.1 DER signature), base64.
    pub signature: String,
}

/// The answer to both: the new certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssuedBody {
    /// PEM.
    pub certificate: String,
}
