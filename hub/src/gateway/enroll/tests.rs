use std::time::{Duration, SystemTime};

use base64::Engine as _;
use flotilla_shared::enroll::RenewBody;
use flotilla_shared::model::{ConfigMap, ObjectMeta};
use rcgen::{
    CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, PublicKeyData as _, SigningKey as _,
};

use super::*;
use crate::pki::{CertRequest, IssuedCert};

const DAY: Duration = Duration::from_secs(86_400);

fn issuer() -> DeviceIssuer {
    DeviceIssuer::new(ClusterCa::generate("test CA").unwrap(), 30 * DAY, 365 * DAY)
}

fn new_key() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap()
}

fn csr(key: &KeyPair) -> String {
    CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(key)
        .unwrap()
        .pem()
        .unwrap()
}

/// A renewal of `current` (signed by `old_key`) for a new key.
fn renewal(current: &Certificate, old_key: &KeyPair) -> RenewBody {
    let csr = csr(&new_key());
    let der = CertificateSigningRequestDer::from_pem_slice(csr.as_bytes()).unwrap();
    let signature = old_key.sign(der.as_ref()).unwrap();
    RenewBody {
        certificate: current.pem().to_owned(),
        csr,
        signature: base64::engine::general_purpose::STANDARD.encode(signature),
    }
}

/// A device certificate of `node` issued at `at`, valid `validity`.
fn device_cert(
    issuer: &DeviceIssuer,
    node: &str,
    at: SystemTime,
    validity: Duration,
) -> IssuedCert {
    issuer
        .ca
        .issue_at(&CertRequest::device(node, validity), at)
        .unwrap()
}

fn revoked(node: &str, value: &str) -> Revocations {
    Revocations::from_config_map(&ConfigMap {
        metadata: ObjectMeta::default(),
        data: [(node.to_owned(), value.to_owned())].into(),
        ..ConfigMap::default()
    })
}

#[test]
fn an_enrolled_certificate_names_the_node_for_the_requests_key_only() {
    let issuer = issuer();
    let key = new_key();
    let request = SigningRequest::parse(&csr(&key)).unwrap();
    let cert = issuer
        .issue("dev-1", &request, &Revocations::default())
        .unwrap();
    let identity = cert.identity().unwrap();
    assert_eq!(identity.common_name, "dev-1");
    assert_eq!(identity.organizations, vec![NODES_GROUP.to_owned()]);
    assert!(issuer.ca.signed(&cert));
    let spki = cert.parsed().public_key().raw.to_vec();
    assert_eq!(spki, key.subject_public_key_info());
    assert_eq!(request.key_sha256.len(), 64);
    let lifetime = cert.not_after().duration_since(cert.not_before()).unwrap();
    assert_eq!(lifetime, 30 * DAY + Duration::from_secs(300));
    // A short life starts a tenth of it early, not five minutes.
    let short = DeviceIssuer::new(
        ClusterCa::generate("test CA").unwrap(),
        Duration::from_secs(60),
        DAY,
    );
    let cert = short
        .issue("dev-1", &request, &Revocations::default())
        .unwrap();
    let lifetime = cert.not_after().duration_since(cert.not_before()).unwrap();
    assert_eq!(lifetime, Duration::from_secs(66));
}

#[test]
fn enrollment_refuses_bad_names_and_bad_requests() {
    let issuer = issuer();
    let request = SigningRequest::parse(&csr(&new_key())).unwrap();
    for name in ["", "Dev_1", "a/b", "dev+1", "dev#1"] {
        assert!(
            matches!(
                issuer.issue(name, &request, &Revocations::default()),
                Err(Refusal::Malformed(_))
            ),
            "{name:?}"
        );
    }
    for bad in [
        "",
        "not pem",
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    ] {
        assert!(
            matches!(SigningRequest::parse(bad), Err(Refusal::Malformed(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn a_device_renews_with_its_current_key_even_after_months_offline() {
    let issuer = issuer();
    let now = SystemTime::now();
    // Current, then expired 200 days ago (issued 230 days ago for 30).
    for at in [now - DAY, now - 230 * DAY] {
        let current = device_cert(&issuer, "dev-1", at, 30 * DAY);
        let body = renewal(&current.certificate, &current.key.key_pair());
        let Renewal {
            node,
            request,
            current_key_sha256,
            ..
        } = issuer.check_renewal(&body, now).unwrap();
        assert_eq!(current_key_sha256.len(), 64);
        assert_ne!(current_key_sha256, request.key_sha256);
        assert_eq!(node, "dev-1");
        let renewed = issuer
            .issue(&node, &request, &Revocations::default())
            .unwrap();
        assert!(renewed.not_after() > now + 29 * DAY);
    }
}

#[test]
fn renewals_are_refused_past_the_grace_window_with_another_key_or_from_another_ca() {
    let issuer = issuer();
    let now = SystemTime::now();
    let stale = device_cert(&issuer, "dev-1", now - 400 * DAY, 30 * DAY);
    let body = renewal(&stale.certificate, &stale.key.key_pair());
    let refusal = issuer.check_renewal(&body, now).unwrap_err();
    assert!(
        matches!(&refusal, Refusal::Forbidden(m) if m.contains("grace")),
        "{refusal}"
    );

    let current = device_cert(&issuer, "dev-1", now, 30 * DAY);
    let body = renewal(&current.certificate, &new_key());
    let refusal = issuer.check_renewal(&body, now).unwrap_err();
    assert!(
        matches!(&refusal, Refusal::Forbidden(m) if m.contains("signature")),
        "{refusal}"
    );

    let stranger = DeviceIssuer::new(ClusterCa::generate("another CA").unwrap(), DAY, DAY);
    let foreign = device_cert(&stranger, "dev-1", now, 30 * DAY);
    let body = renewal(&foreign.certificate, &foreign.key.key_pair());
    let refusal = issuer.check_renewal(&body, now).unwrap_err();
    assert!(
        matches!(&refusal, Refusal::Forbidden(m) if m.contains("CA")),
        "{refusal}"
    );

    // A user's certificate from the right CA is no device's.
    let user = issuer
        .ca
        .issue(&CertRequest {
            organizations: vec!["system:masters".into()],
            ..CertRequest::device("admin", 30 * DAY)
        })
        .unwrap();
    let body = renewal(&user.certificate, &user.key.key_pair());
    let refusal = issuer.check_renewal(&body, now).unwrap_err();
    assert!(
        matches!(&refusal, Refusal::Forbidden(m) if m.contains("device")),
        "{refusal}"
    );

    let mut garbled = renewal(&current.certificate, &current.key.key_pair());
    garbled.signature = "not base64!".into();
    assert!(matches!(
        issuer.check_renewal(&garbled, now),
        Err(Refusal::Malformed(_))
    ));
}

#[test]
fn revocation_refuses_certificates_issued_before_it_and_only_those() {
    let issuer = issuer();
    let now = SystemTime::now();
    let before = device_cert(&issuer, "dev-1", now - 2 * DAY, 30 * DAY);
    let after = device_cert(&issuer, "dev-1", now, 30 * DAY);
    let other = device_cert(&issuer, "dev-2", now - 2 * DAY, 30 * DAY);
    let at = crate::api::time::format_time(now - DAY).0;
    let revocations = revoked("dev-1", &at);
    let revoked_renewal = |cert: &IssuedCert| {
        let renewal = issuer
            .check_renewal(&renewal(&cert.certificate, &cert.key.key_pair()), now)
            .unwrap();
        revocations.is_revoked(&renewal.node, renewal.not_before)
    };
    assert!(revoked_renewal(&before));
    assert!(!revoked_renewal(&after));
    assert!(!revoked_renewal(&other));
    // Valid from one second before the revocation: refused; from the
    // revocation on: not.
    let revoked_at = crate::api::time::parse_time(&at).unwrap();
    let one = Duration::from_secs(1);
    assert!(revocations.is_revoked("dev-1", revoked_at - one));
    assert!(!revocations.is_revoked("dev-1", revoked_at));
    // Re-admitted right after its revocation, a device's new certificate
    // starts after it.
    let just_now = revoked("dev-1", &crate::api::time::format_time(SystemTime::now()).0);
    let request = SigningRequest::parse(&csr(&new_key())).unwrap();
    let readmitted = issuer.issue("dev-1", &request, &just_now).unwrap();
    assert!(!just_now.is_revoked("dev-1", readmitted.not_before()));
}

#[test]
fn a_revocation_that_is_not_a_time_refuses_every_certificate() {
    let revocations = revoked("dev-1", "yesterday");
    let far_future = SystemTime::now() + 3650 * DAY;
    assert!(revocations.is_revoked("dev-1", far_future));
    assert!(!revocations.is_revoked("dev-2", SystemTime::UNIX_EPOCH));
}

#[test]
fn only_p256_keys_are_enrolled() {
    let ed25519 = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let refusal = SigningRequest::parse(&csr(&ed25519)).unwrap_err();
    assert!(
        matches!(&refusal, Refusal::Malformed(m) if m.contains("P-256")),
        "{refusal}"
    );
    let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    assert!(SigningRequest::parse(&csr(&p384)).is_err());
}

#[test]
fn a_revoked_device_enrolls_again_only_once_its_node_is_deleted() {
    let now = SystemTime::now();
    let at = crate::api::time::format_time(now - DAY).0;
    let revocations = revoked("dev-1", &at);
    // Its Node from before the revocation still there: refused.
    let refusal = may_enroll(&revocations, "dev-1", Some(now - 2 * DAY)).unwrap_err();
    assert!(matches!(&refusal, Refusal::Forbidden(m) if m.contains("delete its Node")));
    // Deleted (none, or one made since): allowed.
    assert!(may_enroll(&revocations, "dev-1", None).is_ok());
    assert!(may_enroll(&revocations, "dev-1", Some(now)).is_ok());
    assert!(may_enroll(&revocations, "dev-2", Some(now - 2 * DAY)).is_ok());
    // Revoked for every certificate: never.
    let all = revoked("dev-1", "forever");
    assert!(may_enroll(&all, "dev-1", None).is_err());
}

#[test]
fn only_the_recorded_key_renews_and_the_record_follows_it() {
    // The recorded key renews; the record moves to the new one.
    assert_eq!(may_renew(Some("k1"), "k1", "k2"), Ok(true));
    // A retry whose answer was lost: the new key is recorded already.
    assert_eq!(may_renew(Some("k2"), "k1", "k2"), Ok(false));
    // An older key, or another device's, is refused.
    assert!(may_renew(Some("k3"), "k1", "k2").is_err());
    // No record (provisioned with `device-cert`): the renewal sets it.
    assert_eq!(may_renew(None, "k1", "k2"), Ok(true));
}
