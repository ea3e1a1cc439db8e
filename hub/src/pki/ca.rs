//! The cluster CA: generation, files, and issuing certificates.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber, SigningKey,
};
use rustls::pki_types::CertificateSigningRequestDer;
use rustls::pki_types::pem::PemObject;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

use super::PkiError;
use super::cert::{Certificate, IssuedCert, PrivateKey};
use super::der::{self, SpliceError};
use super::files;

/// How long a generated CA is valid.
pub(crate) const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How far back a certificate's validity starts, so that a peer whose clock
/// is a little behind still accepts it; a tenth of a shorter life (a
/// device renewing at two thirds of its life must not find it mostly
/// spent at once).
const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// How far back the validity of a certificate valid `validity` starts.
pub(crate) fn clock_skew(validity: Duration) -> Duration {
    CLOCK_SKEW.min(validity / 10)
}
/// The subject rcgen signs first; [`der::replace_subject`] swaps it out.
const PLACEHOLDER_CN: &str = "flotilla placeholder subject";

/// What a certificate may be used for (its extended key usage).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertUsage {
    /// TLS server authentication only.
    Server,
    /// TLS client authentication only.
    Client,
    /// Both: a replica serves its peers and dials them.
    ServerAndClient,
}

impl CertUsage {
    fn extended_key_usages(self) -> Vec<ExtendedKeyUsagePurpose> {
        use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
        match self {
            CertUsage::Server => vec![ServerAuth],
            CertUsage::Client => vec![ClientAuth],
            CertUsage::ServerAndClient => vec![ServerAuth, ClientAuth],
        }
    }

    fn serves(self) -> bool {
        matches!(self, CertUsage::Server | CertUsage::ServerAndClient)
    }
}

/// What to put in a certificate the CA issues with a fresh key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertRequest {
    /// The subject's common name: a user name, replica name or device name.
    pub common_name: String,
    /// The subject's organizations: the groups of a user.
    pub organizations: Vec<String>,
    /// DNS names a server certificate answers to.
    pub dns_names: Vec<String>,
    /// IP addresses a server certificate answers to.
    pub ip_addresses: Vec<IpAddr>,
    /// Server, client, or both.
    pub usage: CertUsage,
    /// How long the certificate is valid from now.
    pub validity: Duration,
}

impl CertRequest {
    /// A device's client certificate: common name the node (what an
    /// external broker's ACL patterns substitute for `%u`), organization
    /// `system:nodes` (what the embedded endpoint requires).
    pub fn device(node: &str, validity: Duration) -> Self {
        CertRequest {
            common_name: node.to_owned(),
            organizations: vec![crate::gateway::endpoint::NODES_GROUP.to_owned()],
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            usage: CertUsage::Client,
            validity,
        }
    }
}

/// The cluster's certificate authority: a self-signed ECDSA P-256 certificate
/// and its key. Every replica holds it, to issue certificates to devices.
#[derive(Debug)]
pub struct ClusterCa {
    certificate: Certificate,
    key: PrivateKey,
    issuer: Issuer<'static, KeyPair>,
}

/// The file name of the CA certificate in a directory.
pub(crate) const CA_CERT_FILE: &str = "ca.crt";
/// The file name of the CA key in a directory.
pub(crate) const CA_KEY_FILE: &str = "ca.key";

impl ClusterCa {
    /// A new CA named `common_name`, valid for ten years from now.
    pub fn generate(common_name: &str) -> Result<Self, PkiError> {
        Self::generate_at(common_name, SystemTime::now())
    }

    /// A new CA named `common_name`, valid for ten years from `now`.
    pub fn generate_at(common_name: &str, now: SystemTime) -> Result<Self, PkiError> {
        let generate_err = |source| PkiError::Generate {
            what: format!("the cluster CA {common_name:?}"),
            source,
        };
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate_err)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = (now - CLOCK_SKEW).into();
        params.not_after = (now + CA_VALIDITY).into();
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key).map_err(generate_err)?;
        let certificate = Certificate::from_der(cert.der().to_vec())?;
        let key_pem =
            PrivateKey::from_pkcs8(key.serialize_der()).map_err(|reason| PkiError::Invalid {
                what: "generated CA key",
                reason,
            })?;
        Ok(Self {
            certificate,
            key: key_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads `ca.crt` and `ca.key` from `dir`, checking that the certificate
    /// is a CA and that the key is its key.
    pub fn load(dir: &Path) -> Result<Self, PkiError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let certificate = Certificate::load(&cert_path)?;
        let key = PrivateKey::load(&key_path)?;
        if !certificate.parsed().is_ca() {
            return Err(PkiError::NotCa { path: cert_path });
        }
        if !key.matches(&certificate) {
            return Err(PkiError::KeyMismatch {
                cert: cert_path,
                key: key_path,
            });
        }
        let issuer = Issuer::from_ca_cert_der(certificate.der(), key.key_pair()).map_err(|e| {
            PkiError::Garbled {
                path: cert_path,
                reason: format!("unusable as an issuer ({e})"),
            }
        })?;
        Ok(Self {
            certificate,
            key,
            issuer,
        })
    }

    /// Writes `ca.key` (0600) and `ca.crt` (0644) into `dir`, creating it.
    pub fn save(&self, dir: &Path) -> Result<(), PkiError> {
        files::ensure_dir(dir)?;
        self.key.save(&dir.join(CA_KEY_FILE))?;
        self.certificate.save(&dir.join(CA_CERT_FILE))
    }

    /// The CA certificate, which peers use as their trust root.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// Whether this CA signed `cert`.
    pub fn signed(&self, cert: &Certificate) -> bool {
        let ca = self.certificate.parsed();
        let leaf = cert.parsed();
        leaf.issuer() == ca.subject() && leaf.verify_signature(Some(ca.public_key())).is_ok()
    }

    /// Issues a certificate with a fresh ECDSA P-256 key, valid from now.
    pub fn issue(&self, request: &CertRequest) -> Result<IssuedCert, PkiError> {
        self.issue_at(request, SystemTime::now())
    }

    /// Issues a certificate with a fresh ECDSA P-256 key, valid from `now`.
    pub fn issue_at(&self, request: &CertRequest, now: SystemTime) -> Result<IssuedCert, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| {
            PkiError::Generate {
                what: format!("a key for {:?}", request.common_name),
                source,
            }
        })?;
        let certificate = self.sign(request, &key, now)?;
        let key =
            PrivateKey::from_pkcs8(key.serialize_der()).map_err(|reason| PkiError::Invalid {
                what: "generated key",
                reason,
            })?;
        Ok(IssuedCert { certificate, key })
    }

    /// Signs a device's PEM certificate signing request after checking its
    /// signature (the device holds the key). Only the request's public key and,
    /// without `common_name_override`, its common name are used: the groups,
    /// usage and validity are the hub's to grant, and its requested names and
    /// extensions are ignored.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        common_name_override: Option<&str>,
        organizations: &[String],
        usage: CertUsage,
        validity: Duration,
    ) -> Result<Certificate, PkiError> {
        self.sign_csr_at(
            csr_pem,
            common_name_override,
            organizations,
            usage,
            validity,
            SystemTime::now(),
        )
    }

    /// [`ClusterCa::sign_csr`] with the validity starting at `now`.
    pub fn sign_csr_at(
        &self,
        csr_pem: &str,
        common_name_override: Option<&str>,
        organizations: &[String],
        usage: CertUsage,
        validity: Duration,
        now: SystemTime,
    ) -> Result<Certificate, PkiError> {
        let invalid = |reason: String| PkiError::Invalid {
            what: "certificate signing request",
            reason,
        };
        let der = CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
            .map_err(|e| invalid(format!("no PEM request ({e})")))?;
        let (_, csr) = X509CertificationRequest::from_der(&der)
            .map_err(|e| invalid(format!("not a PKCS#10 request ({e})")))?;
        csr.verify_signature()
            .map_err(|e| invalid(format!("bad signature ({e})")))?;
        let info = &csr.certification_request_info;
        let common_name = match common_name_override {
            Some(name) => name.to_owned(),
            None => info
                .subject
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .ok_or_else(|| invalid("no common name".into()))?
                .to_owned(),
        };
        let public_key = rcgen::SubjectPublicKeyInfo::from_der(info.subject_pki.raw)
            .map_err(|e| invalid(format!("unsupported public key ({e})")))?;
        let request = CertRequest {
            common_name,
            organizations: organizations.to_vec(),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            usage,
            validity,
        };
        self.sign(&request, &public_key, now)
    }

    /// Signs a leaf certificate for `public_key` as `request` describes.
    fn sign(
        &self,
        request: &CertRequest,
        public_key: &impl rcgen::PublicKeyData,
        now: SystemTime,
    ) -> Result<Certificate, PkiError> {
        let bad = |reason| PkiError::BadRequest {
            common_name: request.common_name.clone(),
            reason,
        };
        if request.common_name.is_empty() {
            return Err(bad("the common name is empty"));
        }
        if request.validity.is_zero() {
            return Err(bad("the validity is zero"));
        }
        if request.usage.serves() && request.dns_names.is_empty() && request.ip_addresses.is_empty()
        {
            return Err(bad(
                "a server certificate needs a DNS name or an IP address",
            ));
        }
        let generate_err = |source| PkiError::Generate {
            what: format!("a certificate for {:?}", request.common_name),
            source,
        };
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, PLACEHOLDER_CN);
        for name in &request.dns_names {
            let name = name.clone().try_into().map_err(generate_err)?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        for ip in &request.ip_addresses {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = request.usage.extended_key_usages();
        params.use_authority_key_identifier_extension = true;
        params.not_before = (now - clock_skew(request.validity)).into();
        params.not_after = (now + request.validity).into();
        params.serial_number = Some(random_serial()?);
        let draft = params
            .signed_by(public_key, &self.issuer)
            .map_err(generate_err)?;

        let placeholder = der::subject_name(PLACEHOLDER_CN, &[]);
        let subject = der::subject_name(&request.common_name, &request.organizations);
        let signer = self.issuer.key();
        let der = der::replace_subject(draft.der(), &placeholder, &subject, |tbs| {
            signer.sign(tbs).ok()
        })
        .map_err(|e| PkiError::Invalid {
            what: "certificate drafted by rcgen",
            reason: match e {
                SpliceError::Malformed => "malformed DER".into(),
                SpliceError::PlaceholderNotFound => "placeholder subject not found once".into(),
                SpliceError::Sign => "the CA key refused to sign".into(),
            },
        })?;
        Certificate::from_der(der)
    }
}

/// A random positive 128-bit serial number (RFC 5280 allows up to 20 octets).
fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| PkiError::Random {
            what: "a serial number",
        })?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x40; // keep the full length: no leading zero octet
    Ok(SerialNumber::from_slice(&bytes))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::time::UNIX_EPOCH;

    use x509_parser::extensions::{GeneralName, ParsedExtension};

    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);
    /// 2030-01-01T00:00:00Z: a fixed "now" for validity checks.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_893_456_000)
    }

    fn request(cn: &str, usage: CertUsage) -> CertRequest {
        CertRequest {
            common_name: cn.into(),
            organizations: vec![],
            dns_names: vec!["a.example".into()],
            ip_addresses: vec!["192.0.2.1".parse().unwrap(), "::1".parse().unwrap()],
            usage,
            validity: DAY,
        }
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_generated_ca_is_a_p256_ca_valid_for_ten_years() {
        let ca = ClusterCa::generate_at("cluster one", now()).unwrap();
        let cert = ca.certificate().parsed();
        assert!(cert.is_ca());
        let constraints = cert.basic_constraints().unwrap().unwrap().value;
        assert_eq!(constraints.path_len_constraint, Some(0));
        assert_eq!(
            ca.certificate().identity().unwrap().common_name,
            "cluster one"
        );
        assert_eq!(ca.certificate().not_after(), now() + CA_VALIDITY);
        assert_eq!(
            cert.validity().not_before.timestamp(),
            1_893_456_000 - CLOCK_SKEW.as_secs() as i64
        );
        assert_eq!(
            cert.signature_algorithm.algorithm,
            x509_parser::oid_registry::OID_SIG_ECDSA_WITH_SHA256
        );
        assert!(ca.signed(ca.certificate()));
    }

    #[test]
    fn issued_certificates_carry_the_request() {
        let ca = ClusterCa::generate("test").unwrap();
        let cases = [
            (CertUsage::Server, vec!["serverAuth"]),
            (CertUsage::Client, vec!["clientAuth"]),
            (CertUsage::ServerAndClient, vec!["serverAuth", "clientAuth"]),
        ];
        for (usage, want_eku) in cases {
            let mut req = request("bob", usage);
            req.organizations = vec!["a".into(), "b".into(), "c".into()];
            let issued = ca.issue_at(&req, now()).unwrap();
            let cert = &issued.certificate;
            assert!(issued.key.matches(cert), "{usage:?}");
            assert!(ca.signed(cert), "{usage:?}");
            let identity = cert.identity().unwrap();
            assert_eq!(identity.common_name, "bob");
            assert_eq!(identity.organizations, ["a", "b", "c"]);
            assert_eq!(cert.not_after(), now() + DAY);

            let parsed = cert.parsed();
            assert!(!parsed.is_ca());
            let eku = parsed.extended_key_usage().unwrap().unwrap().value;
            let got: Vec<&str> = [
                ("serverAuth", eku.server_auth),
                ("clientAuth", eku.client_auth),
            ]
            .into_iter()
            .filter_map(|(name, set)| set.then_some(name))
            .collect();
            assert_eq!(got, want_eku, "{usage:?}");
            let sans = &parsed.subject_alternative_name().unwrap().unwrap().value;
            assert_eq!(sans.general_names.len(), 3);
            assert!(
                sans.general_names
                    .contains(&GeneralName::DNSName("a.example"))
            );
            let has_aki = parsed.extensions().iter().any(|e| {
                matches!(
                    e.parsed_extension(),
                    ParsedExtension::AuthorityKeyIdentifier(_)
                )
            });
            assert!(has_aki, "{usage:?}");
        }
    }

    #[test]
    fn every_issued_certificate_gets_its_own_serial() {
        let ca = ClusterCa::generate("test").unwrap();
        let req = request("bob", CertUsage::Client);
        let one = ca.issue(&req).unwrap().certificate;
        let two = ca.issue(&req).unwrap().certificate;
        assert_ne!(one.parsed().raw_serial(), two.parsed().raw_serial());
        assert_eq!(one.parsed().raw_serial().len(), 16);
    }

    #[test]
    fn requests_that_cannot_make_a_useful_certificate_are_refused() {
        let ca = ClusterCa::generate("test").unwrap();
        let empty_name = CertRequest {
            common_name: String::new(),
            ..request("x", CertUsage::Client)
        };
        let zero_validity = CertRequest {
            validity: Duration::ZERO,
            ..request("x", CertUsage::Client)
        };
        let nameless_server = CertRequest {
            dns_names: vec![],
            ip_addresses: vec![],
            ..request("x", CertUsage::ServerAndClient)
        };
        for (req, want) in [
            (empty_name, "the common name is empty"),
            (zero_validity, "the validity is zero"),
            (
                nameless_server,
                "a server certificate needs a DNS name or an IP address",
            ),
        ] {
            match ca.issue(&req) {
                Err(PkiError::BadRequest { reason, .. }) => assert_eq!(reason, want),
                other => panic!("{want}: got {other:?}"),
            }
        }
    }

    #[test]
    fn a_client_certificate_needs_no_names() {
        let ca = ClusterCa::generate("test").unwrap();
        let req = CertRequest {
            dns_names: vec![],
            ip_addresses: vec![],
            ..request("alice", CertUsage::Client)
        };
        let cert = ca.issue(&req).unwrap().certificate;
        assert_eq!(cert.parsed().subject_alternative_name().unwrap(), None);
    }

    #[test]
    fn a_saved_ca_loads_back_and_keeps_its_key_private() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::generate("test").unwrap();
        ca.save(dir.path()).unwrap();
        assert_eq!(mode_of(&dir.path().join("ca.key")), 0o600);
        assert_eq!(mode_of(&dir.path().join("ca.crt")), 0o644);

        let loaded = ClusterCa::load(dir.path()).unwrap();
        assert_eq!(loaded.certificate(), ca.certificate());
        let leaf = loaded.issue(&request("bob", CertUsage::Client)).unwrap();
        assert!(ca.signed(&leaf.certificate));
        assert_eq!(
            leaf.certificate.parsed().issuer(),
            ca.certificate().parsed().subject()
        );
    }

    #[test]
    fn loading_a_broken_ca_names_the_file_at_fault() {
        let ca = ClusterCa::generate("test").unwrap();
        let leaf = ca.issue(&request("leaf", CertUsage::Client)).unwrap();
        type Breakage = fn(&Path, &IssuedCert);
        let cases: [(&str, Breakage, &str); 6] = [
            (
                "garbled certificate",
                |d, _| fs::write(d.join("ca.crt"), "not pem").unwrap(),
                "ca.crt is garbled",
            ),
            (
                "garbled key",
                |d, _| {
                    fs::write(
                        d.join("ca.key"),
                        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                    )
                    .unwrap()
                },
                "ca.key is garbled",
            ),
            (
                "missing key",
                |d, _| fs::remove_file(d.join("ca.key")).unwrap(),
                "missing ",
            ),
            (
                "missing certificate",
                |d, _| fs::remove_file(d.join("ca.crt")).unwrap(),
                "missing ",
            ),
            (
                "another CA's key",
                |d, _| {
                    let other = ClusterCa::generate("other").unwrap();
                    other.key.save(&d.join("ca.key")).unwrap();
                },
                "ca.key does not hold the key of ",
            ),
            (
                "a leaf certificate",
                |d, leaf| {
                    leaf.certificate.save(&d.join("ca.crt")).unwrap();
                    leaf.key.save(&d.join("ca.key")).unwrap();
                },
                "ca.crt is not a CA certificate",
            ),
        ];
        for (what, break_it, want) in cases {
            let dir = tempfile::tempdir().unwrap();
            ca.save(dir.path()).unwrap();
            break_it(dir.path(), &leaf);
            let err = ClusterCa::load(dir.path()).unwrap_err().to_string();
            assert!(err.contains(want), "{what}: {err}");
            assert!(
                err.contains(&dir.path().display().to_string()),
                "{what}: {err}"
            );
        }
    }

    fn device_csr(subject_cn: Option<&str>, org: Option<&str>) -> (KeyPair, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["device.example".into()]).unwrap();
        params.distinguished_name = DistinguishedName::new();
        if let Some(cn) = subject_cn {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        if let Some(org) = org {
            params
                .distinguished_name
                .push(DnType::OrganizationName, org);
        }
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        (key, pem)
    }

    #[test]
    fn a_signed_csr_keeps_the_device_key_and_only_what_the_hub_grants() {
        let ca = ClusterCa::generate("test").unwrap();
        let (key, csr) = device_csr(Some("pi-7"), Some("system:masters"));
        let groups = ["system:nodes".to_owned()];
        let cases = [
            (None, "pi-7"),
            (Some("system:node:pi-7"), "system:node:pi-7"),
        ];
        for (override_cn, want_cn) in cases {
            let cert = ca
                .sign_csr_at(&csr, override_cn, &groups, CertUsage::Client, DAY, now())
                .unwrap();
            assert!(ca.signed(&cert));
            assert!(
                PrivateKey::from_pem(&key.serialize_pem())
                    .unwrap()
                    .matches(&cert)
            );
            let identity = cert.identity().unwrap();
            assert_eq!(identity.common_name, want_cn);
            assert_eq!(identity.organizations, ["system:nodes"]);
            assert_eq!(cert.not_after(), now() + DAY);
            // The device asked for a DNS name; the hub did not grant one.
            assert_eq!(cert.parsed().subject_alternative_name().unwrap(), None);
        }
    }

    #[test]
    fn bad_csrs_are_refused() {
        let ca = ClusterCa::generate("test").unwrap();
        let (_, nameless) = device_csr(None, None);
        let (_, good) = device_csr(Some("pi-7"), None);
        // Flip the signature's last octet: still DER, no longer valid.
        let mut der = CertificateSigningRequestDer::from_pem_slice(good.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec();
        *der.last_mut().unwrap() ^= 0x01;
        let tampered = crate::pki::cert::pem_encode("CERTIFICATE REQUEST", &der);
        let cases = [
            ("not PEM", "hello".to_owned(), "no PEM request"),
            ("no common name", nameless, "no common name"),
            ("tampered", tampered, "bad signature"),
        ];
        for (what, csr, want) in cases {
            match ca.sign_csr(&csr, None, &[], CertUsage::Client, DAY) {
                Err(PkiError::Invalid {
                    what: "certificate signing request",
                    reason,
                }) => assert!(reason.contains(want), "{what}: {reason}"),
                other => panic!("{what}: got {other:?}"),
            }
        }
    }
}
