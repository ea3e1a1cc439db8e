//! [`RegistrySource`]: images from OCI registries through `oci-client`, over
//! HTTPS (plain HTTP only for allow-listed registries), with per-registry
//! credentials, extra CA roots and timeouts.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Once;
use std::time::Duration;

use futures_util::StreamExt;
use oci_client::client::{
    BlobResponse, Certificate, CertificateEncoding, ClientConfig, ClientProtocol,
};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::digest::Sha256;
use super::error::PullError;
use super::source::{ACCEPTED_MANIFESTS, BlobStream, FetchedManifest, ImageSource};

/// How to log in to one registry.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    #[default]
    Anonymous,
    /// A user name and password (HTTP Basic, or exchanged for a token).
    Basic { username: String, password: String },
    /// A bearer token used as it is.
    Bearer { token: String },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credentials::Bearer { .. } => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// What the agent knows about the registries it pulls from.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// Registries (`host[:port]`, as in image references) reached over plain
    /// HTTP. All others need HTTPS.
    pub plain_http: Vec<String>,
    /// PEM CA certificates trusted besides the system's.
    pub extra_ca_pem: Vec<Vec<u8>>,
    /// Credentials by registry (`host[:port]`); missing means anonymous.
    pub credentials: BTreeMap<String, Credentials>,
    pub connect_timeout: Duration,
    /// Longest wait for any single read: a stalled download fails after this.
    pub read_timeout: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            plain_http: Vec::new(),
            extra_ca_pem: Vec::new(),
            credentials: BTreeMap::new(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
        }
    }
}

/// Pulls from real registries.
#[derive(Clone)]
pub struct RegistrySource {
    client: Client,
    credentials: BTreeMap<String, Credentials>,
}

impl fmt::Debug for RegistrySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistrySource")
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// Makes ring rustls' process-wide crypto provider, once. Another provider
/// installed first (by the same process) is kept: reqwest uses whichever
/// is installed.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// How many usable CA certificates the system store (or `SSL_CERT_FILE`/
/// `SSL_CERT_DIR`) holds, as reqwest's platform verifier will count them.
pub fn system_ca_count() -> usize {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    added
}

impl RegistrySource {
    /// Builds the HTTP client. Fails (instead of panicking inside reqwest, as
    /// oci-client 0.18 would) when the device has no CA certificates at all:
    /// install `ca-certificates` or point `SSL_CERT_FILE` at a bundle.
    pub fn new(config: RegistryConfig) -> Result<Self, PullError> {
        install_crypto_provider();
        // oci-client's `Client::try_from` always builds a default reqwest
        // client too, whose platform verifier panics with no system roots.
        if system_ca_count() == 0 {
            return Err(PullError::Client {
                reason: "no CA certificates found on this device (install ca-certificates, \
                         or set SSL_CERT_FILE for the agent to a PEM bundle)"
                    .to_owned(),
            });
        }
        let extra_root_certificates = config
            .extra_ca_pem
            .iter()
            .map(|pem| Certificate {
                encoding: CertificateEncoding::Pem,
                data: pem.clone(),
            })
            .collect();
        let client_config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(config.plain_http.clone()),
            extra_root_certificates,
            connect_timeout: Some(config.connect_timeout),
            read_timeout: Some(config.read_timeout),
            max_concurrent_download: 2,
            ..ClientConfig::default()
        };
        let client = Client::try_from(client_config).map_err(|e| PullError::Client {
            reason: error_chain(&e),
        })?;
        Ok(RegistrySource {
            client,
            credentials: config.credentials,
        })
    }

    fn auth_for(&self, reference: &Reference) -> RegistryAuth {
        let creds = self
            .credentials
            .get(reference.registry())
            .or_else(|| self.credentials.get(reference.resolve_registry()));
        match creds {
            None | Some(Credentials::Anonymous) => RegistryAuth::Anonymous,
            Some(Credentials::Basic { username, password }) => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
            Some(Credentials::Bearer { token }) => RegistryAuth::Bearer(token.clone()),
        }
    }
}

impl ImageSource for RegistrySource {
    async fn fetch_manifest(&self, reference: &Reference) -> Result<FetchedManifest, PullError> {
        let auth = self.auth_for(reference);
        let anonymous = matches!(auth, RegistryAuth::Anonymous);
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(reference, &auth, ACCEPTED_MANIFESTS)
            .await
            .map_err(|e| classify(reference, anonymous, e))?;
        Ok(FetchedManifest { digest, bytes })
    }

    async fn fetch_blob(
        &self,
        reference: &Reference,
        digest: &Sha256,
        offset: u64,
    ) -> Result<BlobStream, PullError> {
        // `pull_blob_stream*` alone does not record the credentials: a pull
        // resumed after a restart starts here.
        let auth = self.auth_for(reference);
        let anonymous = matches!(auth, RegistryAuth::Anonymous);
        self.client
            .store_auth_if_needed(reference.resolve_registry(), &auth)
            .await;
        let registry = reference.registry().to_owned();
        let map_stream = move |s: oci_client::client::SizedStream| {
            let registry = registry.clone();
            s.stream
                .map(move |item| {
                    item.map_err(|e| {
                        std::io::Error::other(format!("registry {registry}: {}", error_chain(&e)))
                    })
                })
                .boxed()
        };
        // A plain digest as the descriptor: no foreign `urls` are followed.
        let digest = digest.as_str();
        if offset == 0 {
            let s = self
                .client
                .pull_blob_stream(reference, digest)
                .await
                .map_err(|e| classify(reference, anonymous, e))?;
            return Ok(BlobStream {
                ranged: false,
                stream: map_stream(s),
            });
        }
        match self
            .client
            .pull_blob_stream_partial(reference, digest, offset, None)
            .await
            .map_err(|e| classify(reference, anonymous, e))?
        {
            BlobResponse::Full(s) => Ok(BlobStream {
                ranged: false,
                stream: map_stream(s),
            }),
            BlobResponse::Partial(s) => Ok(BlobStream {
                ranged: true,
                stream: map_stream(s),
            }),
        }
    }
}

/// Sorts an oci-client error into what the caller can act on, keeping the
/// registry's own message.
fn classify(reference: &Reference, anonymous: bool, e: OciDistributionError) -> PullError {
    let name = reference.whole();
    let registry = reference.registry().to_owned();
    match e {
        OciDistributionError::RegistryError { envelope, .. } => {
            let reason = envelope
                .errors
                .iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join("; ");
            let code = envelope.errors.first().map(|e| &e.code);
            match code {
                Some(
                    OciErrorCode::ManifestUnknown
                    | OciErrorCode::BlobUnknown
                    | OciErrorCode::NameUnknown
                    | OciErrorCode::NotFound
                    | OciErrorCode::ManifestBlobUnknown,
                ) => PullError::NotFound {
                    reference: name,
                    reason,
                },
                Some(OciErrorCode::Unauthorized) => PullError::Unauthorized {
                    reference: name,
                    reason,
                },
                Some(OciErrorCode::Denied) => PullError::Denied {
                    reference: name,
                    reason,
                },
                Some(OciErrorCode::Toomanyrequests) => PullError::Registry {
                    reference: name,
                    reason,
                    retry: true,
                },
                _ => PullError::Registry {
                    reference: name,
                    reason,
                    retry: false,
                },
            }
        }
        OciDistributionError::UnauthorizedError { .. } => PullError::Unauthorized {
            reason: if anonymous {
                format!(
                    "authentication required (401), and no credentials are configured for {registry}"
                )
            } else {
                "the registry refused the credentials (401)".to_owned()
            },
            reference: name,
        },
        OciDistributionError::AuthenticationFailure(reason) => PullError::Unauthorized {
            reference: name,
            reason,
        },
        OciDistributionError::ImageManifestNotFoundError(reason) => PullError::NotFound {
            reference: name,
            reason,
        },
        OciDistributionError::ServerError { code, message, .. } => {
            let reason = format!("HTTP {code}: {}", message.trim());
            match code {
                404 => PullError::NotFound {
                    reference: name,
                    reason,
                },
                401 => PullError::Unauthorized {
                    reference: name,
                    reason,
                },
                403 => PullError::Denied {
                    reference: name,
                    reason,
                },
                408 | 429 | 500..=599 => PullError::Registry {
                    reference: name,
                    reason,
                    retry: true,
                },
                _ => PullError::Registry {
                    reference: name,
                    reason,
                    retry: false,
                },
            }
        }
        OciDistributionError::RequestError(e) => PullError::Unreachable {
            registry,
            reason: error_chain(&e),
        },
        OciDistributionError::IoError(e) => PullError::Unreachable {
            registry,
            reason: error_chain(&e),
        },
        OciDistributionError::DigestError(e) => PullError::DigestMismatch {
            what: name,
            expected: "the digest it was asked for".to_owned(),
            actual: e.to_string(),
        },
        other => PullError::BadContent {
            what: name,
            reason: error_chain(&other),
        },
    }
}

/// An error and its sources, joined by ": " (reqwest hides the cause, such
/// as "connection refused", in its source chain).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cause = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show_secrets_in_debug_output() {
        let basic = Credentials::Basic {
            username: "robot".into(),
            password: "hunter2".into(),
        };
        let bearer = Credentials::Bearer {
            token: "tok-123".into(),
        };
        let text = format!("{basic:?} {bearer:?}");
        assert!(text.contains("robot"));
        assert!(
            !text.contains("hunter2") && !text.contains("tok-123"),
            "{text}"
        );
    }

    #[test]
    fn credentials_are_chosen_by_the_registry_of_the_reference() {
        let mut config = RegistryConfig::default();
        config.credentials.insert(
            "registry.example:5000".into(),
            Credentials::Basic {
                username: "u".into(),
                password: "p".into(),
            },
        );
        config.credentials.insert(
            "docker.io".into(),
            Credentials::Bearer { token: "t".into() },
        );
        let source = RegistrySource::new(config).expect("client");
        let r = |s: &str| s.parse::<Reference>().unwrap();
        assert!(matches!(
            source.auth_for(&r("registry.example:5000/app:1")),
            RegistryAuth::Basic(u, _) if u == "u"
        ));
        assert!(matches!(
            source.auth_for(&r("busybox:1")),
            RegistryAuth::Bearer(_)
        ));
        assert!(matches!(
            source.auth_for(&r("other.example/app:1")),
            RegistryAuth::Anonymous
        ));
    }

    #[test]
    fn registry_errors_keep_the_registry_message_and_say_whether_to_retry() {
        let r: Reference = "127.0.0.1:5000/app:1".parse().unwrap();
        let envelope: oci_client::errors::OciEnvelope = serde_json::from_str(
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"1"}}]}"#,
        )
        .unwrap();
        let e = classify(
            &r,
            true,
            OciDistributionError::RegistryError {
                envelope,
                url: String::new(),
            },
        );
        assert!(matches!(e, PullError::NotFound { .. }), "{e:?}");
        assert!(e.reason().contains("manifest unknown"), "{}", e.reason());
        assert!(!e.retryable());

        let busy = classify(
            &r,
            false,
            OciDistributionError::ServerError {
                code: 503,
                url: String::new(),
                message: "try later".into(),
            },
        );
        assert!(
            busy.retryable() && busy.reason().contains("try later"),
            "{busy}"
        );
        let denied = classify(
            &r,
            false,
            OciDistributionError::ServerError {
                code: 403,
                url: String::new(),
                message: "no".into(),
            },
        );
        assert!(matches!(denied, PullError::Denied { .. }) && !denied.retryable());
    }

    /// Run by [`a_device_without_ca_certificates_gets_an_error_not_a_panic`]
    /// in a child process whose CA store is empty.
    #[test]
    #[ignore = "run in a child process with an empty CA store"]
    fn child_without_system_cas() {
        if std::env::var_os("FLOTILLA_TEST_NO_CAS").is_none() {
            return;
        }
        assert_eq!(system_ca_count(), 0);
        let ca = rcgen::generate_simple_self_signed(vec!["registry.example".into()]).unwrap();
        let pem = ca.cert.pem().into_bytes();
        let config = RegistryConfig {
            extra_ca_pem: vec![pem.clone()],
            ..RegistryConfig::default()
        };
        let err = RegistrySource::new(config).expect_err("no CAs");
        assert!(err.reason().contains("no CA certificates"), "{err}");
        // What the guard protects against: with a CA of its own and none from
        // the system, oci-client 0.18 panics (its `..Default::default()`
        // builds a second reqwest client). If this starts to pass, upstream
        // fixed it and the guard can go.
        install_crypto_provider();
        let built = std::panic::catch_unwind(|| {
            Client::try_from(ClientConfig {
                extra_root_certificates: vec![Certificate {
                    encoding: CertificateEncoding::Pem,
                    data: pem,
                }],
                ..ClientConfig::default()
            })
            .is_ok()
        });
        assert!(
            built.is_err(),
            "oci-client no longer panics without system CAs"
        );
    }

    #[test]
    fn a_device_without_ca_certificates_gets_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let empty_file = dir.path().join("empty.pem");
        std::fs::write(&empty_file, b"").unwrap();
        let run = |program: &std::ffi::OsStr, prefix: &[std::ffi::OsString]| {
            std::process::Command::new(program)
                .args(prefix)
                .args([
                    "--exact",
                    "image::registry::tests::child_without_system_cas",
                    "--include-ignored",
                    "--test-threads=1",
                ])
                .env("FLOTILLA_TEST_NO_CAS", "1")
                .env("SSL_CERT_FILE", &empty_file)
                .env("SSL_CERT_DIR", dir.path())
                .output()
        };
        let exe = std::env::current_exe().unwrap();
        let out = match run(exe.as_os_str(), &[]) {
            // Under qemu-user without binfmt (scripts/test.sh's ARM run), the
            // child goes through the same emulator.
            Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) => {
                let qemu = format!("qemu-{}-static", std::env::consts::ARCH);
                run(qemu.as_ref(), &[exe.into_os_string()])
            }
            other => other,
        }
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "child failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
