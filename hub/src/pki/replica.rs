//! A replica's PKI files under `<data dir>/pki/`: the cluster CA, the
//! replica's own certificate (server and client, for the Raft transport and
//! the API) and an administrator certificate for `kubectl`.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustls::{ClientConfig, ServerConfig};
use x509_parser::extensions::GeneralName;

use super::PkiError;
use super::ca::{CA_CERT_FILE, CertRequest, CertUsage, ClusterCa};
use super::cert::{Certificate, IssuedCert, pair_paths};
use super::files;
use super::tls::{ClientAuth, client_config, server_config};

/// The directory under a replica's data directory that holds its PKI files.
pub const PKI_DIR: &str = "pki";
/// The common name of a CA a replica generates for a new cluster.
pub const DEFAULT_CA_NAME: &str = "flotilla cluster CA";
/// The administrator's user name.
pub const ADMIN_USER: &str = "flotilla-admin";
/// The administrator's group, which Kubernetes authorizes for everything.
pub const ADMIN_GROUP: &str = "system:masters";
/// The group of every replica's certificate.
pub const REPLICA_GROUP: &str = "flotilla:replicas";
/// How long replica and administrator certificates are valid.
pub const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// A certificate closer than this to its end is renewed by [`ReplicaPki::init`].
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

const REPLICA_STEM: &str = "replica";
const ADMIN_STEM: &str = "admin";

/// A name a replica's server certificate answers to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Host {
    /// A DNS name.
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
}

impl Host {
    /// An IP address if `s` is one, else a DNS name.
    pub fn parse(s: &str) -> Self {
        match s.parse() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Dns(s.to_owned()),
        }
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Self {
        Host::Ip(ip)
    }
}

/// The address's IP; certificates do not name ports.
impl From<SocketAddr> for Host {
    fn from(addr: SocketAddr) -> Self {
        Host::Ip(addr.ip())
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Dns(name) => f.write_str(name),
            Host::Ip(ip) => ip.fmt(f),
        }
    }
}

/// A replica's CA, own certificate and administrator certificate.
#[derive(Debug)]
pub struct ReplicaPki {
    dir: PathBuf,
    ca: ClusterCa,
    replica: IssuedCert,
    admin: IssuedCert,
}

impl ReplicaPki {
    /// The PKI directory of a replica's data directory.
    pub fn dir_of(data_dir: &Path) -> PathBuf {
        data_dir.join(PKI_DIR)
    }

    /// Makes sure `<data_dir>/pki/` holds a usable set of files, generating
    /// what is missing, and returns them.
    ///
    /// The CA is the one on disk; without one, `ca` is saved (a replica
    /// joining a cluster is given the cluster's CA), or a new CA is generated
    /// when `ca` is `None` (the first replica). A CA on disk that differs from
    /// `ca` is [`PkiError::CaMismatch`]: the directory belongs to another
    /// cluster.
    ///
    /// The replica certificate (CN `replica_name`, usable as server and
    /// client, naming exactly `hosts`) and the administrator certificate
    /// (CN `flotilla-admin`, O `system:masters`) are issued anew when missing,
    /// not signed by the CA, not matching their key, within
    /// [`RENEW_BEFORE`] of their end, or (the replica's) naming other hosts
    /// or another replica. Garbled files are errors, never overwritten.
    pub fn init(
        data_dir: &Path,
        ca: Option<&ClusterCa>,
        replica_name: &str,
        hosts: &[Host],
    ) -> Result<Self, PkiError> {
        Self::init_at(data_dir, ca, replica_name, hosts, SystemTime::now())
    }

    /// [`ReplicaPki::init`] as if the time were `now`.
    pub fn init_at(
        data_dir: &Path,
        ca: Option<&ClusterCa>,
        replica_name: &str,
        hosts: &[Host],
        now: SystemTime,
    ) -> Result<Self, PkiError> {
        let dir = Self::dir_of(data_dir);
        files::ensure_dir(&dir)?;
        let ca = ensure_ca(&dir, ca, now)?;

        let replica_request = CertRequest {
            common_name: replica_name.to_owned(),
            organizations: vec![REPLICA_GROUP.to_owned()],
            dns_names: hosts
                .iter()
                .filter_map(|h| match h {
                    Host::Dns(name) => Some(name.clone()),
                    Host::Ip(_) => None,
                })
                .collect(),
            ip_addresses: hosts
                .iter()
                .filter_map(|h| match h {
                    Host::Ip(ip) => Some(*ip),
                    Host::Dns(_) => None,
                })
                .collect(),
            usage: CertUsage::ServerAndClient,
            validity: LEAF_VALIDITY,
        };
        let admin_request = CertRequest {
            common_name: ADMIN_USER.to_owned(),
            organizations: vec![ADMIN_GROUP.to_owned()],
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            usage: CertUsage::Client,
            validity: LEAF_VALIDITY,
        };
        let replica = ensure_leaf(&dir, REPLICA_STEM, &ca, &replica_request, now)?;
        let admin = ensure_leaf(&dir, ADMIN_STEM, &ca, &admin_request, now)?;
        Ok(Self {
            dir,
            ca,
            replica,
            admin,
        })
    }

    /// Loads the six files of `<data_dir>/pki/`; any missing one is an error.
    pub fn load(data_dir: &Path) -> Result<Self, PkiError> {
        let dir = Self::dir_of(data_dir);
        Ok(Self {
            ca: ClusterCa::load(&dir)?,
            replica: IssuedCert::load(&dir, REPLICA_STEM)?,
            admin: IssuedCert::load(&dir, ADMIN_STEM)?,
            dir,
        })
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cluster CA.
    pub fn ca(&self) -> &ClusterCa {
        &self.ca
    }

    /// The replica's own certificate and key.
    pub fn replica(&self) -> &IssuedCert {
        &self.replica
    }

    /// The administrator's certificate and key.
    pub fn admin(&self) -> &IssuedCert {
        &self.admin
    }

    /// A server configuration presenting the replica certificate.
    pub fn server_config(&self, client_auth: ClientAuth) -> Result<ServerConfig, PkiError> {
        server_config(
            self.ca.certificate(),
            std::slice::from_ref(&self.replica.certificate),
            &self.replica.key,
            client_auth,
        )
    }

    /// A client configuration presenting the replica certificate, for dialling
    /// other replicas.
    pub fn client_config(&self) -> Result<ClientConfig, PkiError> {
        client_config(
            self.ca.certificate(),
            Some((
                std::slice::from_ref(&self.replica.certificate),
                &self.replica.key,
            )),
        )
    }
}

/// The CA of `dir`, saving `given` or a new one when there is none.
fn ensure_ca(
    dir: &Path,
    given: Option<&ClusterCa>,
    now: SystemTime,
) -> Result<ClusterCa, PkiError> {
    let cert_path = dir.join(CA_CERT_FILE);
    if files::exists(&cert_path)? {
        let ca = ClusterCa::load(dir)?;
        if given.is_some_and(|g| g.certificate() != ca.certificate()) {
            return Err(PkiError::CaMismatch { path: cert_path });
        }
        return Ok(ca);
    }
    let ca = match given {
        // Reload what was saved: a `ClusterCa` is not `Clone` (it owns a key).
        Some(given) => {
            given.save(dir)?;
            ClusterCa::load(dir)?
        }
        None => {
            let ca = ClusterCa::generate_at(DEFAULT_CA_NAME, now)?;
            ca.save(dir)?;
            ca
        }
    };
    Ok(ca)
}

/// The certificate `<stem>.crt`/`.key` of `dir` if it still serves `request`,
/// else a new one, saved.
fn ensure_leaf(
    dir: &Path,
    stem: &str,
    ca: &ClusterCa,
    request: &CertRequest,
    now: SystemTime,
) -> Result<IssuedCert, PkiError> {
    let (cert_path, key_path) = pair_paths(dir, stem);
    if files::exists(&cert_path)? && files::exists(&key_path)? {
        match IssuedCert::load(dir, stem) {
            Ok(current) if still_serves(&current.certificate, ca, request, now) => {
                return Ok(current);
            }
            Ok(_) | Err(PkiError::KeyMismatch { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let issued = ca.issue_at(request, now)?;
    issued.save(dir, stem)?;
    Ok(issued)
}

/// Whether `cert` was signed by `ca`, names what `request` asks for, and is
/// not close to its end.
fn still_serves(
    cert: &Certificate,
    ca: &ClusterCa,
    request: &CertRequest,
    now: SystemTime,
) -> bool {
    let wanted_names: BTreeSet<Host> = request
        .dns_names
        .iter()
        .map(|n| Host::Dns(n.clone()))
        .chain(request.ip_addresses.iter().map(|ip| Host::Ip(*ip)))
        .collect();
    let identity_matches = cert.identity().is_some_and(|id| {
        id.common_name == request.common_name && id.organizations == request.organizations
    });
    ca.signed(cert)
        && identity_matches
        && names_of(cert) == wanted_names
        && cert.not_after() > now + RENEW_BEFORE
}

/// The DNS names and IP addresses a certificate's SAN extension lists.
fn names_of(cert: &Certificate) -> BTreeSet<Host> {
    let parsed = cert.parsed();
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return BTreeSet::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(Host::Dns((*dns).to_owned())),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes).ok().map(|b| Host::Ip(b.into())),
                16 => <[u8; 16]>::try_from(*bytes)
                    .ok()
                    .map(|b| Host::Ip(b.into())),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::pki::tls::tests::handshake;

    const FILES: [(&str, u32); 6] = [
        ("ca.crt", 0o644),
        ("ca.key", 0o600),
        ("replica.crt", 0o644),
        ("replica.key", 0o600),
        ("admin.crt", 0o644),
        ("admin.key", 0o600),
    ];

    fn hosts() -> Vec<Host> {
        vec![Host::parse("127.0.0.1"), Host::parse("hub-1.example")]
    }

    fn read(dir: &Path, name: &str) -> Vec<u8> {
        fs::read(dir.join(PKI_DIR).join(name)).unwrap()
    }

    #[test]
    fn hosts_parse_as_ip_addresses_or_dns_names() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "fd00::1".parse().unwrap();
        for (text, want) in [
            ("10.0.0.1", Host::Ip(v4)),
            ("fd00::1", Host::Ip(v6)),
            ("hub.example", Host::Dns("hub.example".into())),
            ("localhost", Host::Dns("localhost".into())),
        ] {
            assert_eq!(Host::parse(text), want, "{text}");
            assert_eq!(want.to_string(), text);
        }
        assert_eq!(Host::from(SocketAddr::new(v4, 7000)), Host::Ip(v4));
    }

    #[test]
    fn init_creates_every_file_with_private_keys_and_load_reads_them_back() {
        let data = tempfile::tempdir().unwrap();
        let pki = ReplicaPki::init(data.path(), None, "hub-1", &hosts()).unwrap();
        for (name, mode) in FILES {
            let meta = fs::metadata(data.path().join(PKI_DIR).join(name)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, mode, "{name}");
        }
        let dir_mode = fs::metadata(pki.dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);

        let replica = pki.replica().certificate.identity().unwrap();
        assert_eq!(replica.common_name, "hub-1");
        assert_eq!(replica.organizations, [REPLICA_GROUP]);
        assert_eq!(
            names_of(&pki.replica().certificate),
            hosts().into_iter().collect()
        );
        let admin = pki.admin().certificate.identity().unwrap();
        assert_eq!(admin.common_name, "flotilla-admin");
        assert_eq!(admin.organizations, ["system:masters"]);

        let loaded = ReplicaPki::load(data.path()).unwrap();
        assert_eq!(loaded.ca().certificate(), pki.ca().certificate());
        assert_eq!(loaded.replica(), pki.replica());
        assert_eq!(loaded.admin(), pki.admin());
    }

    #[test]
    fn init_again_keeps_certificates_that_still_serve() {
        let data = tempfile::tempdir().unwrap();
        ReplicaPki::init(data.path(), None, "hub-1", &hosts()).unwrap();
        let before: Vec<_> = FILES.iter().map(|(n, _)| read(data.path(), n)).collect();
        ReplicaPki::init(data.path(), None, "hub-1", &hosts()).unwrap();
        let after: Vec<_> = FILES.iter().map(|(n, _)| read(data.path(), n)).collect();
        assert_eq!(before, after);
    }

    #[test]
    fn init_reissues_the_replica_certificate_when_its_names_change() {
        let data = tempfile::tempdir().unwrap();
        ReplicaPki::init(data.path(), None, "hub-1", &hosts()).unwrap();
        let admin = read(data.path(), "admin.crt");
        let ca = read(data.path(), "ca.crt");
        let moved = [Host::parse("10.0.0.9")];
        for (name, hosts) in [("hub-1", &moved[..]), ("hub-2", &moved[..])] {
            let pki = ReplicaPki::init(data.path(), None, name, hosts).unwrap();
            let cert = &pki.replica().certificate;
            assert_eq!(cert.identity().unwrap().common_name, name);
            assert_eq!(names_of(cert), hosts.iter().cloned().collect());
            assert_eq!(
                ReplicaPki::load(data.path()).unwrap().replica(),
                pki.replica()
            );
        }
        assert_eq!(read(data.path(), "admin.crt"), admin);
        assert_eq!(read(data.path(), "ca.crt"), ca);
    }

    #[test]
    fn init_renews_certificates_close_to_their_end() {
        let data = tempfile::tempdir().unwrap();
        let start = SystemTime::now();
        ReplicaPki::init_at(data.path(), None, "hub-1", &hosts(), start).unwrap();
        let later = start + LEAF_VALIDITY - RENEW_BEFORE + Duration::from_secs(60);
        let pki = ReplicaPki::init_at(data.path(), None, "hub-1", &hosts(), later).unwrap();
        assert_eq!(
            pki.replica().certificate.not_after(),
            trunc(later + LEAF_VALIDITY)
        );
        assert_eq!(
            pki.admin().certificate.not_after(),
            trunc(later + LEAF_VALIDITY)
        );
    }

    /// `t` to whole seconds, as certificates keep it.
    fn trunc(t: SystemTime) -> SystemTime {
        let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        std::time::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn init_reissues_certificates_not_signed_by_the_ca_on_disk() {
        let data = tempfile::tempdir().unwrap();
        let pki = ReplicaPki::init(data.path(), None, "hub-1", &hosts()).unwrap();
        let stranger = ClusterCa::generate("stranger").unwrap();
        let foreign = stranger
            .issue(&CertRequest {
                common_name: ADMIN_USER.into(),
                organizations: vec![ADMIN_GROUP.into()],
                dns_names: vec![],
                ip_addresses: vec![],
                usage: CertUsage::Client,
                validity: LEAF_VALIDITY,
            })
            .unwrap();
        foreign.save(pki.dir(), "admin").unwrap();
        let pki = ReplicaPki::init(data.path(), None, "hub-1", &hosts()).unwrap();
        assert!(pki.ca().signed(&pki.admin().certificate));
    }

    #[test]
    fn init_reissues_a_certificate_whose_key_was_replaced() {
        // A crash between writing a new key and its certificate leaves a pair
        // that does not match.
        let data = tempfile::tempdir().unwrap();
        let pki = ReplicaPki::init(data.path(), None, "hub-1", &hosts()).unwrap();
        let other =
            ReplicaPki::init(tempfile::tempdir().unwrap().path(), None, "hub-1", &hosts()).unwrap();
        other
            .replica()
            .key
            .save(&pki.dir().join("replica.key"))
            .unwrap();
        assert!(matches!(
            ReplicaPki::load(data.path()),
            Err(PkiError::KeyMismatch { .. })
        ));
        let pki = ReplicaPki::init(data.path(), None, "hub-1", &hosts()).unwrap();
        assert!(pki.replica().key.matches(&pki.replica().certificate));
    }

    #[test]
    fn a_joining_replica_saves_the_given_ca_and_refuses_another() {
        let first = tempfile::tempdir().unwrap();
        let cluster = ReplicaPki::init(first.path(), None, "hub-1", &hosts()).unwrap();
        let second = tempfile::tempdir().unwrap();
        let joined =
            ReplicaPki::init(second.path(), Some(cluster.ca()), "hub-2", &hosts()).unwrap();
        assert_eq!(joined.ca().certificate(), cluster.ca().certificate());
        assert!(cluster.ca().signed(&joined.replica().certificate));
        // Given again, the same CA is fine.
        ReplicaPki::init(second.path(), Some(cluster.ca()), "hub-2", &hosts()).unwrap();

        let stranger = ClusterCa::generate("stranger").unwrap();
        let err = ReplicaPki::init(second.path(), Some(&stranger), "hub-2", &hosts()).unwrap_err();
        let ca_path = second.path().join(PKI_DIR).join("ca.crt");
        assert!(
            matches!(&err, PkiError::CaMismatch { path } if path == &ca_path),
            "{err}"
        );
    }

    #[test]
    fn a_garbled_file_is_an_error_naming_it_and_is_left_alone() {
        let no_cert = "no PEM certificate (no items found)";
        let no_key = "no PKCS#8 PEM private key (no items found)";
        for (name, reason) in [
            ("ca.crt", no_cert),
            ("ca.key", no_key),
            ("replica.crt", no_cert),
            ("admin.key", no_key),
        ] {
            let data = tempfile::tempdir().unwrap();
            ReplicaPki::init(data.path(), None, "hub-1", &hosts()).unwrap();
            let path = data.path().join(PKI_DIR).join(name);
            fs::write(&path, "garbage").unwrap();
            let want = format!("{} is garbled: {reason}", path.display());
            for result in [
                ReplicaPki::init(data.path(), None, "hub-1", &hosts()),
                ReplicaPki::load(data.path()),
            ] {
                assert_eq!(result.unwrap_err().to_string(), want, "{name}");
            }
            assert_eq!(fs::read(&path).unwrap(), b"garbage", "{name}");
        }
    }

    #[test]
    fn load_names_a_missing_file() {
        let data = tempfile::tempdir().unwrap();
        ReplicaPki::init(data.path(), None, "hub-1", &hosts()).unwrap();
        let path = data.path().join(PKI_DIR).join("admin.key");
        fs::remove_file(&path).unwrap();
        let err = ReplicaPki::load(data.path()).unwrap_err();
        assert!(
            matches!(&err, PkiError::Missing { path: p } if p == &path),
            "{err}"
        );
    }

    #[tokio::test]
    async fn two_replicas_of_one_cluster_authenticate_each_other() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        let hub1 = ReplicaPki::init(first.path(), None, "hub-1", &hosts()).unwrap();
        let hub2 = ReplicaPki::init(second.path(), Some(hub1.ca()), "hub-2", &hosts()).unwrap();
        let out = handshake(
            hub1.server_config(ClientAuth::Required).unwrap(),
            hub2.client_config().unwrap(),
            "hub-1.example",
        )
        .await;
        out.client.unwrap();
        let peer = out.server.unwrap().unwrap();
        assert_eq!(peer.common_name, "hub-2");
        assert_eq!(peer.organizations, [REPLICA_GROUP]);
    }
}
