//! Device certificates: what the hub checks before it issues one, and which
//! devices are revoked (the hub's side of [`flotilla_shared::enroll`]).
//!
//! - **Enrollment** (bootstrap token): the request's signature is checked
//!   and only its public key is used; the certificate names the node
//!   (`CN=<node>, O=system:nodes`, client use only) for the hub's
//!   `--device-cert-days`. The API handler records the key's hash on the
//!   Node it creates, so a name is enrolled once (a retry with the same key
//!   is answered again).
//! - **Renewal** (the device's current key): the current certificate must
//!   be the cluster CA's, name a node, be expired for less than the grace
//!   window (`--device-renewal-grace-days`, a year by default: a device
//!   back from months offline renews by itself, where Azure IoT Edge's
//!   ~25 days would strand it), and not be revoked; the new request must
//!   be signed by its key. A replayed renewal gains nothing: the new
//!   certificate is for the request's key, which only the device holds.
//! - **Revocation** is a per-node time in the ConfigMap
//!   `kube-system/flotilla-revoked-devices`: the node's certificates
//!   issued before it are refused at the embedded endpoint's handshake
//!   (and its live connections closed) and at renewal. A record of times,
//!   not of serial numbers: nothing grows with renewals, and re-admitting a
//!   device (delete its Node, enroll it again) needs no edit of the record.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use flotilla_shared::enroll::RenewBody;
use flotilla_shared::model::ConfigMap;
use flotilla_shared::wire::topics;
use rustls::pki_types::CertificateSigningRequestDer;
use rustls::pki_types::pem::PemObject as _;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer as _;

use super::endpoint::{NODES_GROUP, node_of};
use crate::pki::{CertUsage, Certificate, ClusterCa};

/// Why a device's request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The request itself is wrong (400).
    #[error("{0}")]
    Malformed(String),
    /// Well formed, but not granted (403).
    #[error("{0}")]
    Forbidden(String),
}

/// A checked certificate signing request.
#[derive(Debug, Clone)]
pub struct SigningRequest {
    pem: String,
    der: Vec<u8>,
    /// SHA-256 of the DER SubjectPublicKeyInfo, lowercase hex.
    pub key_sha256: String,
}

impl SigningRequest {
    /// Parses a PEM PKCS #10 request and checks its signature.
    pub fn parse(pem: &str) -> Result<Self, Refusal> {
        let bad = |why: String| Refusal::Malformed(format!("csr: {why}"));
        let der = CertificateSigningRequestDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| bad(format!("no PEM CERTIFICATE REQUEST ({e})")))?;
        let (_, csr) = X509CertificationRequest::from_der(&der)
            .map_err(|e| bad(format!("not a PKCS #10 request ({e})")))?;
        csr.verify_signature()
            .map_err(|e| bad(format!("bad signature ({e})")))?;
        let info = &csr.certification_request_info.subject_pki;
        let p256 = info.algorithm.algorithm
            == x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
            && info
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .is_some_and(|curve| curve == x509_parser::oid_registry::OID_EC_P256);
        if !p256 {
            // Renewals are signed with this key: only P-256 is checked there.
            return Err(bad("the key must be ECDSA P-256".into()));
        }
        let spki = csr.certification_request_info.subject_pki.raw;
        let key_sha256 = hex(ring::digest::digest(&ring::digest::SHA256, spki).as_ref());
        Ok(SigningRequest {
            pem: pem.to_owned(),
            der: der.as_ref().to_vec(),
            key_sha256,
        })
    }
}

/// Issues device certificates from the cluster CA.
#[derive(Debug)]
pub struct DeviceIssuer {
    ca: ClusterCa,
    /// How long an issued certificate is valid.
    pub validity: Duration,
    /// How long after its expiry a certificate may still renew itself.
    pub grace: Duration,
}

impl DeviceIssuer {
    pub fn new(ca: ClusterCa, validity: Duration, grace: Duration) -> Self {
        DeviceIssuer {
            ca,
            validity,
            grace,
        }
    }

    /// The certificate naming `node` for `request`'s key. After a
    /// revocation of the node, its validity starts after the revocation
    /// (a certificate's validity starts a little before it is issued, for
    /// peers whose clock is behind).
    pub fn issue(
        &self,
        node: &str,
        request: &SigningRequest,
        revocations: &Revocations,
    ) -> Result<Certificate, Refusal> {
        topics::validate_node_name(node).map_err(|e| Refusal::Malformed(e.to_string()))?;
        let mut now = SystemTime::now();
        if let Some(Some(revoked_at)) = revocations.nodes.get(node) {
            let after =
                *revoked_at + crate::pki::clock_skew(self.validity) + Duration::from_secs(1);
            now = now.max(after);
        }
        self.ca
            .sign_csr_at(
                &request.pem,
                Some(node),
                &[NODES_GROUP.to_owned()],
                CertUsage::Client,
                self.validity,
                now,
            )
            .map_err(|e| Refusal::Malformed(e.to_string()))
    }

    /// Checks what a renewal proves by itself at `now` (the CA's
    /// signature, the node, the grace window, the current key's signature
    /// of the new request): cheap checks, before the store is read for the
    /// revocations and the Node's pinned key.
    pub fn check_renewal(&self, body: &RenewBody, now: SystemTime) -> Result<Renewal, Refusal> {
        let current = Certificate::from_pem(&body.certificate)
            .map_err(|e| Refusal::Malformed(format!("certificate: {e}")))?;
        if !self.ca.signed(&current) {
            return Err(Refusal::Forbidden(
                "the certificate was not issued by this cluster's CA".into(),
            ));
        }
        let node = current
            .identity()
            .as_ref()
            .and_then(node_of)
            .ok_or_else(|| Refusal::Forbidden("the certificate does not name a device".into()))?;
        let expired_for = now.duration_since(current.not_after()).unwrap_or_default();
        if expired_for > self.grace {
            return Err(Refusal::Forbidden(format!(
                "{node}'s certificate expired {} days ago, past the {}-day grace window: enroll it again",
                expired_for.as_secs() / 86_400,
                self.grace.as_secs() / 86_400
            )));
        }
        let request = SigningRequest::parse(&body.csr)?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(body.signature.trim())
            .map_err(|e| Refusal::Malformed(format!("signature: not base64 ({e})")))?;
        let parsed = current.parsed();
        let current_key_sha256 =
            hex(ring::digest::digest(&ring::digest::SHA256, parsed.public_key().raw).as_ref());
        let key = &parsed.public_key().subject_public_key.data;
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, key)
            .verify(&request.der, &signature)
            .map_err(|_| {
                Refusal::Forbidden(
                    "the signature is not the current certificate's key's (ECDSA P-256, SHA-256)"
                        .into(),
                )
            })?;
        Ok(Renewal {
            node,
            request,
            current_key_sha256,
            not_before: current.not_before(),
        })
    }
}

/// A renewal whose signatures check out.
#[derive(Debug, Clone)]
pub struct Renewal {
    pub node: String,
    /// The request for the new key.
    pub request: SigningRequest,
    /// SHA-256 of the current certificate's key (hex, of its SPKI).
    pub current_key_sha256: String,
    /// When the current certificate's validity starts (for revocation).
    pub not_before: SystemTime,
}

/// Whether `node` may be enrolled, given its revocation and, when its Node
/// exists, when that was created: a revoked device's Node must be deleted
/// first (by the operator, re-admitting it), and a node revoked for every
/// certificate cannot be enrolled at all.
pub fn may_enroll(
    revocations: &Revocations,
    node: &str,
    existing_since: Option<SystemTime>,
) -> Result<(), Refusal> {
    match (revocations.nodes.get(node), existing_since) {
        (Some(None), _) => Err(Refusal::Forbidden(format!(
            "{node} is revoked for every certificate (its entry in kube-system/{} is not a time)",
            flotilla_shared::enroll::REVOCATIONS_CONFIGMAP
        ))),
        (Some(Some(at)), Some(created)) if created < *at => Err(Refusal::Forbidden(format!(
            "{node} is revoked: delete its Node to enroll it again"
        ))),
        _ => Ok(()),
    }
}

/// Whether a renewal from the key `current` to `next` fits the key the
/// node's Node records (`pinned`): the recorded key renews (the record
/// then moves to `next`: answers true); a retry whose answer was lost finds
/// `next` recorded already; a Node without a record (a device provisioned
/// with `flotilla-hub device-cert`) takes the renewal's. Any other key —
/// an older one, another device's — is refused.
pub fn may_renew(pinned: Option<&str>, current: &str, next: &str) -> Result<bool, Refusal> {
    match pinned {
        None => Ok(true),
        Some(pinned) if pinned == current => Ok(true),
        Some(pinned) if pinned == next => Ok(false),
        Some(_) => Err(Refusal::Forbidden(
            "the certificate's key is not the node's current key (an older one, or another device's)"
                .into(),
        )),
    }
}

/// Which devices are revoked, from the ConfigMap
/// `kube-system/flotilla-revoked-devices`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revocations {
    /// Node → certificates issued before this are refused (`None`: all).
    nodes: BTreeMap<String, Option<SystemTime>>,
}

impl Revocations {
    /// Reads the ConfigMap's data. A value that is not an RFC 3339 time
    /// revokes every certificate of the node: a typo must not let a
    /// revoked device back in.
    pub fn from_config_map(config_map: &ConfigMap) -> Self {
        let nodes = config_map
            .data
            .iter()
            .map(|(node, value)| {
                let at = crate::api::time::parse_time(value.trim());
                if at.is_none() {
                    tracing::warn!(%node, %value, "revocation is not an RFC 3339 time: every certificate of the node is refused");
                }
                (node.clone(), at)
            })
            .collect();
        Revocations { nodes }
    }

    /// Whether `node`'s certificate valid from `not_before` is revoked
    /// (issued before the revocation: [`DeviceIssuer::issue`] starts the
    /// validity of later ones after it).
    pub fn is_revoked(&self, node: &str, not_before: SystemTime) -> bool {
        match self.nodes.get(node) {
            None => false,
            Some(None) => true,
            Some(Some(at)) => not_before < *at,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
