//! PLACEHOLDER replaced by the pki branch at merge.
use rustls::ServerConnection;

#[derive(Debug, Clone)]
pub struct Identity {
    pub common_name: String,
    pub organizations: Vec<String>,
}

pub fn peer_identity(conn: &ServerConnection) -> Option<Identity> {
    let cert = conn.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = cert.subject();
    let common_name = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    let organizations = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    Some(Identity { common_name, organizations })
}
