//! The device's certificate: enrollment with a bootstrap token, renewal
//! well before expiry, and renewal after an outage longer than the
//! certificate's life (the hub's side is `flotilla_hub::gateway::enroll`).
//!
//! - **Enrollment**: without a certificate, the agent generates an ECDSA
//!   P-256 key (it never leaves the device), writes it, and sends a CSR to
//!   the hub's API with its bootstrap token; the answer is its certificate.
//! - **Renewal** at about two thirds of the certificate's life (jittered,
//!   so that a fleet enrolled together does not renew together), with a
//!   new key, the request signed by the current key. A certificate that ran
//!   out while the device was offline renews the same way when it is back
//!   (the hub accepts it within its grace window, a year by default);
//!   refused (revoked, past the window), the agent enrolls again if it has
//!   a bootstrap token.
//! - **Files**: a new key is written as `<key>.next` before the request
//!   goes out (a retry after a crash sends the same key, and the hub
//!   answers it again), the new certificate as `<cert>.next`; then the key
//!   and the certificate are renamed into place. A crash between the two
//!   renames is rolled forward at the next start.
//! - The MQTT link reads the TLS configuration at each connect: a renewed
//!   certificate is used from the next connection, and a link waiting to
//!   retry with a refused certificate retries at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use flotilla_shared::enroll::{ENROLL_PATH, EnrollBody, IssuedBody, RENEW_PATH, RenewBody};
use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, SigningKey as _};
use rustls::pki_types::pem::PemObject as _;
use tokio::sync::watch;

use super::{HubAddress, LinkError, tls_config};
use crate::state::{write_atomic, write_atomic_with_mode};

/// First retry of a failed enrollment or renewal; doubles up to
/// [`MAX_RETRY`] (full jitter).
const MIN_RETRY: Duration = Duration::from_secs(2);
const MAX_RETRY: Duration = Duration::from_secs(600);
/// A request to the hub's API gives up after this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the device's identity lives and how it gets a new one.
#[derive(Clone)]
pub struct IdentityConfig {
    pub node: String,
    /// The hub's API addresses (`host:port`), tried in turn.
    pub apis: Vec<HubAddress>,
    /// The cluster CA (PEM): the hub's certificate must chain to it.
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `ID.SECRET`, to enroll.
    pub bootstrap_token: Option<String>,
}

impl std::fmt::Debug for IdentityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityConfig")
            .field("node", &self.node)
            .field("apis", &self.apis)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field(
                "bootstrap_token",
                &self.bootstrap_token.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

/// Why a request for a certificate failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The hub said no (400, 401, 403, 409): retrying the same request is
    /// pointless, another kind of request may not be.
    #[error("refused by the hub ({code}): {message}")]
    Refused { code: u16, message: String },
    /// Anything that may pass on retry: no route, a timeout, a hub without
    /// a leader.
    #[error("{0}")]
    Transient(String),
    #[error("{path}: {error}")]
    File { path: String, error: String },
}

fn file_error(path: &Path, error: impl std::fmt::Display) -> IdentityError {
    IdentityError::File {
        path: path.display().to_string(),
        error: error.to_string(),
    }
}

/// `path` with `.next` appended.
fn next(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".next");
    PathBuf::from(name)
}

/// Finishes a renewal a crash cut short between its renames: a new
/// certificate waiting in `<cert>.next` goes into place, with its key if
/// that is still waiting too. A lone `<key>.next` stays: it is the key of
/// a request that may have reached the hub, sent again next time.
pub fn recover(config: &IdentityConfig) -> Result<(), IdentityError> {
    let (cert_next, key_next) = (next(&config.cert), next(&config.key));
    let Ok(pending) = std::fs::read(&cert_next) else {
        return Ok(());
    };
    if key_next.exists() && matches_key(&pending, &key_next) {
        rename(&key_next, &config.key)?;
    } else if !matches_key(&pending, &config.key) {
        // Not for the key in place nor the pending one: the remains of
        // something else; the current pair stays.
        tracing::warn!(cert = %cert_next.display(), "a pending certificate for no key here; removed");
        return std::fs::remove_file(&cert_next).map_err(|e| file_error(&cert_next, e));
    }
    rename(&cert_next, &config.cert)?;
    tracing::info!(cert = %config.cert.display(), "finished a certificate renewal cut short");
    Ok(())
}

fn rename(from: &Path, to: &Path) -> Result<(), IdentityError> {
    std::fs::rename(from, to).map_err(|e| file_error(from, e))?;
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| file_error(dir, e))?;
    }
    Ok(())
}

/// Whether the device has a certificate and a key.
pub fn enrolled(config: &IdentityConfig) -> bool {
    config.cert.exists() && config.key.exists()
}

/// The start and end of the validity of the certificate in `pem` (its
/// first CERTIFICATE block).
pub fn validity(pem: &[u8]) -> Result<(SystemTime, SystemTime), String> {
    let der = rustls::pki_types::CertificateDer::from_pem_slice(pem)
        .map_err(|e| format!("no PEM certificate ({e})"))?;
    validity_of_der(&der).map_err(|e| format!("not an X.509 certificate ({e})"))
}

/// Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version
/// OPTIONAL, serialNumber, signature, issuer, validity SEQUENCE {
/// notBefore Time, notAfter Time }, ... }, signatureAlgorithm, signature }
/// (RFC 5280 §4.1).
fn validity_of_der(der: &[u8]) -> Result<(SystemTime, SystemTime), yasna::ASN1Error> {
    use yasna::tags::{TAG_GENERALIZEDTIME, TAG_UTCTIME};
    fn time(reader: yasna::BERReader<'_, '_>) -> yasna::ASN1Result<SystemTime> {
        let tag = reader.lookahead_tag()?;
        let at = if tag == TAG_UTCTIME {
            *reader.read_utctime()?.datetime()
        } else if tag == TAG_GENERALIZEDTIME {
            *reader.read_generalized_time()?.datetime()
        } else {
            return Err(yasna::ASN1Error::new(yasna::ASN1ErrorKind::Invalid));
        };
        Ok(SystemTime::from(at))
    }
    yasna::parse_der(der, |certificate| {
        certificate.read_sequence(|certificate| {
            let times = certificate.next().read_sequence(|tbs| {
                tbs.read_optional(|r| r.read_tagged(yasna::Tag::context(0), |r| r.read_der()))?;
                tbs.next().read_der()?; // serialNumber
                tbs.next().read_der()?; // signature
                tbs.next().read_der()?; // issuer
                let times = tbs.next().read_sequence(|validity| {
                    Ok((time(validity.next())?, time(validity.next())?))
                })?;
                while tbs.read_optional(|r| r.read_der())?.is_some() {}
                Ok(times)
            })?;
            certificate.next().read_der()?; // signatureAlgorithm
            certificate.next().read_der()?; // signatureValue
            Ok(times)
        })
    })
}

/// Whether the certificate in `pem` is for the key (PEM) in `key_file`.
fn matches_key(pem: &[u8], key_file: &Path) -> bool {
    let Ok(key) = std::fs::read_to_string(key_file)
        .map_err(drop)
        .and_then(|k| KeyPair::from_pem(&k).map_err(drop))
    else {
        return false;
    };
    rustls::pki_types::CertificateDer::from_pem_slice(pem)
        .ok()
        .and_then(|der| spki_of_der(&der).ok())
        .is_some_and(|spki| spki == rcgen::PublicKeyData::subject_public_key_info(&key))
}

/// The DER SubjectPublicKeyInfo of a DER certificate.
fn spki_of_der(der: &[u8]) -> Result<Vec<u8>, yasna::ASN1Error> {
    yasna::parse_der(der, |certificate| {
        certificate.read_sequence(|certificate| {
            let spki = certificate.next().read_sequence(|tbs| {
                tbs.read_optional(|r| r.read_tagged(yasna::Tag::context(0), |r| r.read_der()))?;
                for _ in 0..5 {
                    // serialNumber, signature, issuer, validity, subject
                    tbs.next().read_der()?;
                }
                let spki = tbs.next().read_der()?;
                while tbs.read_optional(|r| r.read_der())?.is_some() {}
                Ok(spki)
            })?;
            certificate.next().read_der()?;
            certificate.next().read_der()?;
            Ok(spki)
        })
    })
}

/// When to renew a certificate valid from `not_before` to `not_after`: two
/// thirds of the way, less up to a tenth of its life (`random` in [0, 1)).
pub fn renew_at(not_before: SystemTime, not_after: SystemTime, random: f64) -> SystemTime {
    let life = not_after.duration_since(not_before).unwrap_or_default();
    not_before + life.mul_f64(2.0 / 3.0) - life.mul_f64(random.clamp(0.0, 1.0) / 10.0)
}

/// The key of the next certificate: the one already waiting in
/// `<key>.next`, or a new one written there.
fn next_key(config: &IdentityConfig) -> Result<KeyPair, IdentityError> {
    let path = next(&config.key);
    if let Ok(pem) = std::fs::read_to_string(&path)
        && let Ok(key) = KeyPair::from_pem(&pem)
    {
        return Ok(key);
    }
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| file_error(&path, format!("generating a key: {e}")))?;
    write_atomic_with_mode(&path, key.serialize_pem().as_bytes(), 0o600)
        .map_err(|e| file_error(&path, e))?;
    Ok(key)
}

fn csr(config: &IdentityConfig, key: &KeyPair) -> Result<(String, Vec<u8>), IdentityError> {
    let mut params = CertificateParams::new(Vec::<String>::new())
        .map_err(|e| IdentityError::Transient(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, config.node.clone());
    let request = params
        .serialize_request(key)
        .map_err(|e| IdentityError::Transient(format!("building the CSR: {e}")))?;
    let pem = request
        .pem()
        .map_err(|e| IdentityError::Transient(format!("encoding the CSR: {e}")))?;
    Ok((pem, request.der().to_vec()))
}

/// Writes the new certificate, then puts it and its key into place.
fn install(config: &IdentityConfig, certificate: &str) -> Result<(), IdentityError> {
    let unusable = |why: String| IdentityError::Refused {
        code: 200,
        message: format!("the hub answered no usable certificate: {why}"),
    };
    validity(certificate.as_bytes()).map_err(unusable)?;
    if !matches_key(certificate.as_bytes(), &next(&config.key)) {
        return Err(unusable("it is not for the key that was sent".into()));
    }
    let cert_next = next(&config.cert);
    write_atomic(&cert_next, certificate.as_bytes()).map_err(|e| file_error(&cert_next, e))?;
    rename(&next(&config.key), &config.key)?;
    rename(&cert_next, &config.cert)
}

/// Enrolls with the bootstrap token: once, no retry.
pub async fn enroll(config: &IdentityConfig) -> Result<(), IdentityError> {
    let Some(token) = &config.bootstrap_token else {
        return Err(IdentityError::Refused {
            code: 0,
            message: "no bootstrap token to enroll with".into(),
        });
    };
    recover(config)?;
    let key = next_key(config)?;
    let (csr, _) = csr(config, &key)?;
    let body = EnrollBody {
        node: config.node.clone(),
        csr,
    };
    let issued = post(config, ENROLL_PATH, Some(token), &body).await?;
    install(config, &issued.certificate)?;
    tracing::info!(node = %config.node, "enrolled: certificate issued");
    Ok(())
}

/// Renews the current certificate: once, no retry.
pub async fn renew(config: &IdentityConfig) -> Result<(), IdentityError> {
    recover(config)?;
    let current = std::fs::read_to_string(&config.cert).map_err(|e| file_error(&config.cert, e))?;
    let current_key = std::fs::read_to_string(&config.key)
        .map_err(|e| file_error(&config.key, e))
        .and_then(|pem| KeyPair::from_pem(&pem).map_err(|e| file_error(&config.key, e)))?;
    let key = next_key(config)?;
    let (csr, der) = csr(config, &key)?;
    let signature = current_key
        .sign(&der)
        .map_err(|e| file_error(&config.key, format!("signing with the current key: {e}")))?;
    let body = RenewBody {
        certificate: current,
        csr,
        signature: base64::engine::general_purpose::STANDARD.encode(signature),
    };
    let issued = post(config, RENEW_PATH, None, &body).await?;
    install(config, &issued.certificate)?;
    tracing::info!(node = %config.node, "certificate renewed");
    Ok(())
}

/// One POST to the first API address that answers.
async fn post(
    config: &IdentityConfig,
    path: &str,
    token: Option<&str>,
    body: &impl serde::Serialize,
) -> Result<IssuedBody, IdentityError> {
    let client = http_client(&config.ca)?;
    let body = serde_json::to_vec(body).map_err(|e| IdentityError::Transient(e.to_string()))?;
    let mut last = IdentityError::Transient("no --api address".into());
    for api in &config.apis {
        let host = if api.host.contains(':') {
            format!("[{}]", api.host)
        } else {
            api.host.clone()
        };
        let url = format!("https://{host}:{}{path}", api.port);
        let mut request = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                last = IdentityError::Transient(format!("{url}: {e}"));
                continue;
            }
        };
        let code = response.status().as_u16();
        let text = match response.text().await {
            Ok(text) => text,
            Err(e) => {
                last = IdentityError::Transient(format!("{url}: {e}"));
                continue;
            }
        };
        match code {
            200 => {
                return serde_json::from_str(&text).map_err(|e| IdentityError::Refused {
                    code,
                    message: format!("{url}: an answer that is not a certificate ({e})"),
                });
            }
            400 | 401 | 403 | 409 | 422 => {
                let message = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["message"].as_str().map(str::to_owned))
                    .unwrap_or(text);
                return Err(IdentityError::Refused { code, message });
            }
            _ => last = IdentityError::Transient(format!("{url}: {code} {text}")),
        }
    }
    Err(last)
}

/// An HTTPS client trusting the cluster CA only.
fn http_client(ca: &Path) -> Result<reqwest::Client, IdentityError> {
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_file_iter(ca).map_err(|e| file_error(ca, e))? {
        roots
            .add(der.map_err(|e| file_error(ca, e))?)
            .map_err(|e| file_error(ca, e))?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| file_error(ca, e))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| IdentityError::Transient(e.to_string()))
}

/// Waits before retry `failures` (capped full-jitter backoff) and counts
/// it; false on shutdown.
async fn retry_later(failures: &mut u32, shutdown: &mut watch::Receiver<bool>) -> bool {
    let delay = super::backoff(*failures, MIN_RETRY, MAX_RETRY, super::rand());
    *failures += 1;
    tracing::info!(retry_in = ?delay, "retrying later");
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        _ = shutdown.changed() => false,
    }
}

/// Until the device has a certificate: enrolls, retrying with backoff
/// (the hub may not be reachable yet). A refusal is retried too, slowly:
/// an operator may yet delete a stale Node or issue a token.
pub async fn ensure_enrolled(
    config: &IdentityConfig,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<bool, IdentityError> {
    recover(config)?;
    let mut failures = 0;
    while !enrolled(config) {
        match enroll(config).await {
            Ok(()) => break,
            Err(e @ IdentityError::File { .. }) => return Err(e),
            Err(error) => {
                tracing::warn!(node = %config.node, %error, "enrollment failed");
                if !retry_later(&mut failures, shutdown).await {
                    return Ok(false);
                }
            }
        }
    }
    Ok(true)
}

/// Keeps the certificate renewed until `shutdown`, publishing each new TLS
/// configuration on `tls`. Renews early when the link says the hub
/// `refused` the certificate: a revoked device learns it (and enrolls
/// again once the operator re-admits it), an expired one renews.
pub async fn maintain(
    config: IdentityConfig,
    tls: watch::Sender<Arc<rustls::ClientConfig>>,
    refused: Arc<tokio::sync::Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut failures = 0;
    // Renewals a refusal brought forward, and when the next may come: a
    // refusal for another reason than the certificate (or a revoked
    // device) must not renew in a loop.
    let mut early = 0u32;
    let mut quiet_until = tokio::time::Instant::now();
    loop {
        let due = std::fs::read(&config.cert)
            .map_err(|e| e.to_string())
            .and_then(|pem| validity(&pem))
            .map(|(from, until)| renew_at(from, until, super::rand()));
        let wait = match due {
            Ok(at) => at.duration_since(SystemTime::now()).unwrap_or_default(),
            Err(error) => {
                tracing::error!(cert = %config.cert.display(), %error, "cannot read the certificate's validity; renewing");
                Duration::ZERO
            }
        };
        if !wait.is_zero() {
            tracing::info!(node = %config.node, in_ = ?wait, "certificate renewal scheduled");
        }
        let refusal = async {
            loop {
                refused.notified().await;
                if tokio::time::Instant::now() >= quiet_until {
                    return;
                }
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => early = 0,
            () = refusal => {
                tracing::info!(node = %config.node, "the hub refused the certificate: renewing now");
                let pause = MIN_RETRY
                    .saturating_mul(2u32.saturating_pow(early.min(20)))
                    .min(MAX_RETRY);
                quiet_until = tokio::time::Instant::now() + pause;
                early = early.saturating_add(1);
            }
            _ = shutdown.changed() => return,
        }
        // A refusal right after a renewal is most likely of the certificate
        // it replaced.
        quiet_until = quiet_until.max(tokio::time::Instant::now() + MIN_RETRY);
        let outcome = match renew(&config).await {
            Err(IdentityError::Refused { code, message }) if config.bootstrap_token.is_some() => {
                tracing::warn!(code, %message, "renewal refused: enrolling again with the bootstrap token");
                enroll(&config).await
            }
            other => other,
        };
        match outcome.and_then(|()| {
            tls_config(&config.ca, &config.cert, &config.key).map_err(|e: LinkError| {
                IdentityError::File {
                    path: config.cert.display().to_string(),
                    error: e.to_string(),
                }
            })
        }) {
            Ok(renewed) => {
                failures = 0;
                tls.send_replace(Arc::new(renewed));
            }
            Err(error) => {
                tracing::warn!(node = %config.node, %error, "certificate renewal failed");
                if !retry_later(&mut failures, &mut shutdown).await {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
