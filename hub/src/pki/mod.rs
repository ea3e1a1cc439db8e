//! The hub's public-key infrastructure: one cluster CA, the certificates it
//! issues, and the rustls configurations that trust it.
//!
//! Every replica, administrator and device authenticates with a certificate
//! issued by the cluster CA ([`ClusterCa`]). As in Kubernetes, a client
//! certificate's subject common name is the user and its organizations are
//! the groups ([`Identity`]); the API server reads them from a connection with
//! [`peer_identity`]. A replica keeps its files under `<data dir>/pki/`
//! ([`ReplicaPki`]).
//!
//! Cryptography is ECDSA P-256 through `ring`; the rustls configurations name
//! the ring provider explicitly, so no process-wide default provider is needed.
//!
//! ```
//! use std::time::Duration;
//! use flotilla_hub::pki::{CertRequest, CertUsage, ClusterCa};
//!
//! let ca = ClusterCa::generate("example cluster").unwrap();
//! let alice = ca
//!     .issue(&CertRequest {
//!         common_name: "alice".into(),
//!         organizations: vec!["dev".into(), "ops".into()],
//!         dns_names: vec![],
//!         ip_addresses: vec![],
//!         usage: CertUsage::Client,
//!         validity: Duration::from_secs(24 * 3600),
//!     })
//!     .unwrap();
//! let who = alice.certificate.identity().unwrap();
//! assert_eq!(who.common_name, "alice");
//! assert_eq!(who.organizations, ["dev", "ops"]);
//! ```

mod ca;
mod cert;
mod der;
mod files;
mod replica;
mod tls;

use std::path::PathBuf;

pub(crate) use ca::clock_skew;
pub use ca::{CertRequest, CertUsage, ClusterCa};
pub use cert::{Certificate, Identity, IssuedCert, PrivateKey};
pub use replica::{Host, ReplicaPki};
pub use tls::{ClientAuth, client_config, peer_identity, server_config};

/// What went wrong while generating, reading, writing or using PKI material.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file that must exist does not.
    #[error("missing {path}")]
    Missing { path: PathBuf },
    /// A file exists but could not be read.
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file or directory could not be written (or synced, or renamed).
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file holds no usable PEM certificate or key.
    #[error("{path} is garbled: {reason}")]
    Garbled { path: PathBuf, reason: String },
    /// PEM text given in memory (not from a file) is not a usable certificate,
    /// key or signing request.
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    /// A key file does not belong to the certificate beside it.
    #[error("{key} does not hold the key of {cert}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    /// A certificate loaded as a CA is not a CA certificate.
    #[error("{path} is not a CA certificate")]
    NotCa { path: PathBuf },
    /// A replica's directory already holds a different cluster CA than the
    /// one it was asked to use: the replica belongs to another cluster.
    #[error("{path} holds a different cluster CA than the one given")]
    CaMismatch { path: PathBuf },
    /// A certificate request that cannot make a useful certificate.
    #[error("bad certificate request for {common_name:?}: {reason}")]
    BadRequest {
        common_name: String,
        reason: &'static str,
    },
    /// rcgen refused to generate a key or a certificate.
    #[error("cannot generate {what}")]
    Generate {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    /// The system's random number generator failed.
    #[error("no randomness for {what}")]
    Random { what: &'static str },
    /// rustls refused a configuration (bad key, no usable protocol version).
    #[error("cannot build the TLS {side} configuration")]
    Tls {
        side: &'static str,
        #[source]
        source: rustls::Error,
    },
    /// rustls refused to build the client-certificate verifier.
    #[error("cannot build the client certificate verifier")]
    Verifier {
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
}
