//! rustls configurations rooted at the cluster CA, and the identity of a peer.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, CommonState, RootCertStore, ServerConfig};

use super::PkiError;
use super::cert::{Certificate, Identity, PrivateKey, identity_of};

/// Whether a server demands a client certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// Refuse clients without a certificate from the cluster CA.
    Required,
    /// Accept clients without a certificate (they then have no
    /// [`Identity`]); a certificate that is presented must still verify.
    Optional,
}

/// The ring provider, named explicitly so no process default is needed.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A trust store holding only the cluster CA.
fn roots(ca: &Certificate) -> Result<Arc<RootCertStore>, PkiError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(ca.der().clone())
        .map_err(|source| PkiError::Tls {
            side: "trust root",
            source,
        })?;
    Ok(Arc::new(roots))
}

fn chain_of(cert_chain: &[Certificate]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    cert_chain.iter().map(|c| c.der().clone()).collect()
}

/// A server configuration presenting `cert_chain` (leaf first) and `key`, and
/// verifying client certificates against the cluster CA `ca`. ALPN is left to
/// the caller.
pub fn server_config(
    ca: &Certificate,
    cert_chain: &[Certificate],
    key: &PrivateKey,
    client_auth: ClientAuth,
) -> Result<ServerConfig, PkiError> {
    let tls_err = |source| PkiError::Tls {
        side: "server",
        source,
    };
    let builder = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider());
    let builder = match client_auth {
        ClientAuth::Required => builder,
        ClientAuth::Optional => builder.allow_unauthenticated(),
    };
    let verifier = builder
        .build()
        .map_err(|source| PkiError::Verifier { source })?;
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain_of(cert_chain), key.der())
        .map_err(tls_err)
}

/// A client configuration trusting only the cluster CA `ca`, presenting
/// `client_cert` (chain, leaf first, and key) when given. The server's
/// certificate must name the host or IP address dialled. ALPN is left to the
/// caller.
pub fn client_config(
    ca: &Certificate,
    client_cert: Option<(&[Certificate], &PrivateKey)>,
) -> Result<ClientConfig, PkiError> {
    let tls_err = |source| PkiError::Tls {
        side: "client",
        source,
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_root_certificates(roots(ca)?);
    match client_cert {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain_of(chain), key.der())
            .map_err(tls_err),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// The identity in the certificate a connection's peer presented, if any.
/// rustls keeps a peer's certificates only once its verifier accepted them,
/// so with [`server_config`] the identity is vouched for by the cluster CA.
///
/// Takes a `&ServerConnection` (or `&ClientConnection`) by deref, e.g.
/// `peer_identity(tls_stream.get_ref().1)`.
pub fn peer_identity(conn: &CommonState) -> Option<Identity> {
    identity_of(conn.peer_certificates()?.first()?)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io;
    use std::net::IpAddr;
    use std::time::Duration;

    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    use super::*;
    use crate::pki::{CertRequest, CertUsage, ClusterCa, IssuedCert};

    /// What each side of one handshake saw.
    #[derive(Debug)]
    pub(crate) struct Outcome {
        /// The server's view: the client's identity, or why it failed.
        pub(crate) server: io::Result<Option<Identity>>,
        /// The client's view: whether it connected and sent its greeting.
        pub(crate) client: io::Result<()>,
    }

    /// Runs one TLS handshake over real loopback TCP, the client dialling
    /// `server_name`; an accepted client sends "ping" and the server reads it.
    pub(crate) async fn handshake(
        server: ServerConfig,
        client: ClientConfig,
        server_name: &str,
    ) -> Outcome {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(server));
        let connector = TlsConnector::from(Arc::new(client));
        let name = ServerName::try_from(server_name.to_owned()).unwrap();

        let serve = async {
            let (tcp, _) = listener.accept().await?;
            let mut tls = acceptor.accept(tcp).await?;
            let identity = peer_identity(tls.get_ref().1);
            let mut greeting = [0u8; 4];
            tls.read_exact(&mut greeting).await?;
            assert_eq!(&greeting, b"ping");
            Ok(identity)
        };
        let dial = async {
            let tcp = TcpStream::connect(addr).await?;
            let mut tls = connector.connect(name, tcp).await?;
            tls.write_all(b"ping").await?;
            tls.flush().await
        };
        let (server, client) = tokio::join!(serve, dial);
        Outcome { server, client }
    }

    const DAY: Duration = Duration::from_secs(24 * 3600);
    const LOOPBACK: &str = "127.0.0.1";

    fn server_cert(ca: &ClusterCa, ip: &str) -> IssuedCert {
        ca.issue(&CertRequest {
            common_name: "replica-1".into(),
            organizations: vec![],
            dns_names: vec!["hub.example".into()],
            ip_addresses: vec![ip.parse::<IpAddr>().unwrap()],
            usage: CertUsage::Server,
            validity: DAY,
        })
        .unwrap()
    }

    fn user_cert(ca: &ClusterCa, user: &str, groups: &[&str], usage: CertUsage) -> IssuedCert {
        ca.issue(&CertRequest {
            common_name: user.into(),
            organizations: groups.iter().map(|g| (*g).to_owned()).collect(),
            dns_names: vec!["client.example".into()],
            ip_addresses: vec![],
            usage,
            validity: DAY,
        })
        .unwrap()
    }

    fn server_of(ca: &ClusterCa, cert: &IssuedCert, auth: ClientAuth) -> ServerConfig {
        server_config(
            ca.certificate(),
            std::slice::from_ref(&cert.certificate),
            &cert.key,
            auth,
        )
        .unwrap()
    }

    fn client_of(ca: &ClusterCa, cert: Option<&IssuedCert>) -> ClientConfig {
        let chain;
        let identity = match cert {
            Some(cert) => {
                chain = [cert.certificate.clone()];
                Some((&chain[..], &cert.key))
            }
            None => None,
        };
        client_config(ca.certificate(), identity).unwrap()
    }

    #[tokio::test]
    async fn a_client_with_a_ca_issued_cert_is_accepted_and_identified() {
        let ca = ClusterCa::generate("test").unwrap();
        let server = server_cert(&ca, LOOPBACK);
        let alice = user_cert(&ca, "alice", &["dev", "system:masters"], CertUsage::Client);
        for auth in [ClientAuth::Required, ClientAuth::Optional] {
            let out = handshake(
                server_of(&ca, &server, auth),
                client_of(&ca, Some(&alice)),
                LOOPBACK,
            )
            .await;
            out.client.unwrap();
            let identity = out.server.unwrap().unwrap();
            assert_eq!(identity.common_name, "alice", "{auth:?}");
            assert_eq!(
                identity.organizations,
                ["dev", "system:masters"],
                "{auth:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_server_reached_by_dns_name_is_accepted() {
        let ca = ClusterCa::generate("test").unwrap();
        let server = server_cert(&ca, "10.9.9.9");
        let out = handshake(
            server_of(&ca, &server, ClientAuth::Optional),
            client_of(&ca, None),
            "hub.example",
        )
        .await;
        out.client.unwrap();
        assert_eq!(out.server.unwrap(), None);
    }

    #[tokio::test]
    async fn a_client_without_a_cert_is_refused_when_auth_is_required() {
        let ca = ClusterCa::generate("test").unwrap();
        let server = server_cert(&ca, LOOPBACK);
        let out = handshake(
            server_of(&ca, &server, ClientAuth::Required),
            client_of(&ca, None),
            LOOPBACK,
        )
        .await;
        assert!(out.server.is_err(), "{out:?}");
    }

    #[tokio::test]
    async fn a_client_without_a_cert_has_no_identity_when_auth_is_optional() {
        let ca = ClusterCa::generate("test").unwrap();
        let server = server_cert(&ca, LOOPBACK);
        let out = handshake(
            server_of(&ca, &server, ClientAuth::Optional),
            client_of(&ca, None),
            LOOPBACK,
        )
        .await;
        out.client.unwrap();
        assert_eq!(out.server.unwrap(), None);
    }

    #[tokio::test]
    async fn a_client_with_a_cert_from_another_ca_is_refused() {
        let ca = ClusterCa::generate("test").unwrap();
        let other = ClusterCa::generate("test").unwrap();
        let server = server_cert(&ca, LOOPBACK);
        let mallory = user_cert(&other, "alice", &["system:masters"], CertUsage::Client);
        for auth in [ClientAuth::Required, ClientAuth::Optional] {
            // The client trusts the real CA, so only the server can object.
            let out = handshake(
                server_of(&ca, &server, auth),
                client_of(&ca, Some(&mallory)),
                LOOPBACK,
            )
            .await;
            assert!(out.server.is_err(), "{auth:?}: {out:?}");
        }
    }

    #[tokio::test]
    async fn a_server_only_cert_cannot_authenticate_a_client() {
        let ca = ClusterCa::generate("test").unwrap();
        let server = server_cert(&ca, LOOPBACK);
        let not_a_client = user_cert(&ca, "alice", &[], CertUsage::Server);
        let out = handshake(
            server_of(&ca, &server, ClientAuth::Required),
            client_of(&ca, Some(&not_a_client)),
            LOOPBACK,
        )
        .await;
        assert!(out.server.is_err(), "{out:?}");
    }

    #[tokio::test]
    async fn a_client_refuses_a_server_from_another_ca() {
        let ca = ClusterCa::generate("test").unwrap();
        let other = ClusterCa::generate("test").unwrap();
        let impostor = server_cert(&other, LOOPBACK);
        let out = handshake(
            server_of(&other, &impostor, ClientAuth::Optional),
            client_of(&ca, None),
            LOOPBACK,
        )
        .await;
        assert!(out.client.is_err(), "{out:?}");
    }

    #[tokio::test]
    async fn a_client_refuses_a_server_that_does_not_name_the_dialled_address() {
        let ca = ClusterCa::generate("test").unwrap();
        let elsewhere = server_cert(&ca, "10.1.2.3");
        for dialled in [LOOPBACK, "other.example"] {
            let out = handshake(
                server_of(&ca, &elsewhere, ClientAuth::Optional),
                client_of(&ca, None),
                dialled,
            )
            .await;
            let err = out.client.unwrap_err();
            assert!(
                err.to_string().contains("not valid for name"),
                "{dialled}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn a_device_with_a_signed_csr_authenticates_with_the_granted_groups() {
        let ca = ClusterCa::generate("test").unwrap();
        let server = server_cert(&ca, LOOPBACK);
        let device_key = rcgen::KeyPair::generate().unwrap();
        let csr = rcgen::CertificateParams::new(vec![])
            .unwrap()
            .serialize_request(&device_key)
            .unwrap()
            .pem()
            .unwrap();
        let cert = ca
            .sign_csr(
                &csr,
                Some("system:node:pi-7"),
                &["system:nodes".into()],
                CertUsage::Client,
                DAY,
            )
            .unwrap();
        let device = IssuedCert {
            certificate: cert,
            key: PrivateKey::from_pem(&device_key.serialize_pem()).unwrap(),
        };
        let out = handshake(
            server_of(&ca, &server, ClientAuth::Required),
            client_of(&ca, Some(&device)),
            LOOPBACK,
        )
        .await;
        out.client.unwrap();
        let identity = out.server.unwrap().unwrap();
        assert_eq!(identity.common_name, "system:node:pi-7");
        assert_eq!(identity.organizations, ["system:nodes"]);
    }
}
