//! Certificates, private keys and the identity a certificate carries.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_parser::certificate::X509Certificate;

use super::PkiError;
use super::files::{self, CERT_MODE, KEY_MODE};

/// Who a client certificate says its holder is, read as Kubernetes does: the
/// subject's common name is the user, its organizations are the groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The subject's common name: the user name.
    pub common_name: String,
    /// The subject's organizations, in certificate order: the groups.
    pub organizations: Vec<String>,
    /// The start of the certificate's validity (what device revocation
    /// compares).
    pub not_before: SystemTime,
}

/// One X.509 certificate, parsed once to be sure it is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    pem: String,
    der: CertificateDer<'static>,
}

impl Certificate {
    /// Reads the first `CERTIFICATE` block of PEM text.
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        Self::parse_pem(pem).map_err(|reason| PkiError::Invalid {
            what: "certificate",
            reason,
        })
    }

    /// Wraps DER bytes, checking that they are an X.509 certificate.
    pub fn from_der(der: Vec<u8>) -> Result<Self, PkiError> {
        Self::parse_der(CertificateDer::from(der)).map_err(|reason| PkiError::Invalid {
            what: "certificate",
            reason,
        })
    }

    /// Reads a PEM certificate file.
    pub fn load(path: &Path) -> Result<Self, PkiError> {
        let text = files::read_text(path)?;
        Self::parse_pem(&text).map_err(|reason| PkiError::Garbled {
            path: path.to_owned(),
            reason,
        })
    }

    /// Writes the certificate as PEM, atomically, mode 0644.
    pub fn save(&self, path: &Path) -> Result<(), PkiError> {
        files::write_atomic(path, self.pem.as_bytes(), CERT_MODE)
    }

    fn parse_pem(pem: &str) -> Result<Self, String> {
        let der = CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| format!("no PEM certificate ({e})"))?;
        Self::parse_der(der)
    }

    fn parse_der(der: CertificateDer<'static>) -> Result<Self, String> {
        x509_parser::parse_x509_certificate(&der)
            .map_err(|e| format!("not an X.509 certificate ({e})"))?;
        Ok(Self {
            pem: pem_encode("CERTIFICATE", &der),
            der,
        })
    }

    /// The certificate as PEM text.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The certificate as DER, as rustls takes it.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// The user and groups the certificate names, or `None` without a
    /// common name.
    pub fn identity(&self) -> Option<Identity> {
        identity_of(&self.der)
    }

    /// The end of the certificate's validity.
    pub fn not_after(&self) -> SystemTime {
        system_time(&self.parsed().validity().not_after)
    }

    /// The start of the certificate's validity.
    pub fn not_before(&self) -> SystemTime {
        system_time(&self.parsed().validity().not_before)
    }

    /// The parsed form; the DER was checked when `self` was made.
    pub(crate) fn parsed(&self) -> X509Certificate<'_> {
        match x509_parser::parse_x509_certificate(&self.der) {
            Ok((_, cert)) => cert,
            Err(e) => unreachable!("certificate DER was checked on construction: {e}"),
        }
    }
}

/// The identity in a DER certificate, if it parses and has a common name.
pub(crate) fn identity_of(der: &[u8]) -> Option<Identity> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let common_name = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    let organizations = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    Some(Identity {
        common_name,
        organizations,
        not_before: system_time(&cert.validity().not_before),
    })
}

fn system_time(time: &x509_parser::time::ASN1Time) -> SystemTime {
    match u64::try_from(time.timestamp()) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => UNIX_EPOCH,
    }
}

/// A private key in PKCS#8. Its `Debug` output never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey {
    pem: String,
    pkcs8: Vec<u8>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey([redacted])")
    }
}

impl PrivateKey {
    /// Reads a PKCS#8 `PRIVATE KEY` PEM block.
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        Self::parse_pem(pem).map_err(|reason| PkiError::Invalid {
            what: "private key",
            reason,
        })
    }

    /// Reads a PEM key file.
    pub fn load(path: &Path) -> Result<Self, PkiError> {
        let text = files::read_text(path)?;
        Self::parse_pem(&text).map_err(|reason| PkiError::Garbled {
            path: path.to_owned(),
            reason,
        })
    }

    /// Writes the key as PEM, atomically, mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), PkiError> {
        files::write_atomic(path, self.pem.as_bytes(), KEY_MODE)
    }

    fn parse_pem(pem: &str) -> Result<Self, String> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| format!("no PKCS#8 PEM private key ({e})"))?;
        Self::from_pkcs8(der.secret_pkcs8_der().to_vec())
    }

    /// Wraps PKCS#8 DER, checking that rcgen can sign with it.
    pub(crate) fn from_pkcs8(pkcs8: Vec<u8>) -> Result<Self, String> {
        let der = PrivatePkcs8KeyDer::from(pkcs8.as_slice());
        rcgen::KeyPair::try_from(&der).map_err(|e| format!("unusable private key ({e})"))?;
        Ok(Self {
            pem: pem_encode("PRIVATE KEY", &pkcs8),
            pkcs8,
        })
    }

    /// The key as PEM text.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The key as DER, as rustls takes it.
    pub fn der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.pkcs8.clone()))
    }

    /// The key as rcgen signs with it.
    pub(crate) fn key_pair(&self) -> rcgen::KeyPair {
        let der = PrivatePkcs8KeyDer::from(self.pkcs8.as_slice());
        match rcgen::KeyPair::try_from(&der) {
            Ok(key) => key,
            Err(e) => unreachable!("key was checked on construction: {e}"),
        }
    }

    /// Whether this is the private key of `cert`.
    pub fn matches(&self, cert: &Certificate) -> bool {
        use rcgen::PublicKeyData;
        self.key_pair().subject_public_key_info() == cert.parsed().public_key().raw
    }
}

/// A certificate and its private key, as issued to a replica or a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCert {
    /// The certificate, signed by the cluster CA.
    pub certificate: Certificate,
    /// The certificate's private key.
    pub key: PrivateKey,
}

impl IssuedCert {
    /// Loads `<stem>.crt` and `<stem>.key` from `dir`, checking that they belong
    /// together.
    pub fn load(dir: &Path, stem: &str) -> Result<Self, PkiError> {
        let (cert_path, key_path) = pair_paths(dir, stem);
        let certificate = Certificate::load(&cert_path)?;
        let key = PrivateKey::load(&key_path)?;
        if !key.matches(&certificate) {
            return Err(PkiError::KeyMismatch {
                cert: cert_path,
                key: key_path,
            });
        }
        Ok(Self { certificate, key })
    }

    /// Writes `<stem>.key` (0600) then `<stem>.crt` (0644) into `dir`.
    pub fn save(&self, dir: &Path, stem: &str) -> Result<(), PkiError> {
        let (cert_path, key_path) = pair_paths(dir, stem);
        self.key.save(&key_path)?;
        self.certificate.save(&cert_path)
    }

    /// The chain to present: the certificate alone (the peer holds the CA).
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.certificate.der().clone()]
    }
}

/// The certificate and key paths of `<stem>` in `dir`.
pub(crate) fn pair_paths(dir: &Path, stem: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    (
        dir.join(format!("{stem}.crt")),
        dir.join(format!("{stem}.key")),
    )
}

/// PEM text for DER `bytes` under `label`, 64 columns, LF line ends.
pub(crate) fn pem_encode(label: &str, bytes: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_encoding_wraps_at_64_columns_and_reads_back() {
        let bytes: Vec<u8> = (0..=255).collect();
        let pem = pem_encode("CERTIFICATE", &bytes);
        assert!(pem.lines().all(|l| l.len() <= 64));
        let back = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(back.as_ref(), &bytes[..]);
    }

    #[test]
    fn text_without_a_certificate_is_refused() {
        for text in [
            "",
            "hello",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ] {
            let err = Certificate::from_pem(text).unwrap_err();
            assert!(
                matches!(
                    err,
                    PkiError::Invalid {
                        what: "certificate",
                        ..
                    }
                ),
                "{text:?}: {err}"
            );
        }
    }

    #[test]
    fn a_private_key_never_shows_in_debug_output() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let key = PrivateKey::from_pem(&key.serialize_pem()).unwrap();
        assert_eq!(format!("{key:?}"), "PrivateKey([redacted])");
    }
}
