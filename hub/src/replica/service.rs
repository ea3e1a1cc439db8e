//! The replica's listener: accepts TLS connections from other replicas and
//! from store clients, checks who they are, and answers their requests.

use std::future::Future;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::listener::{ConnectionError, accept_tls};
use crate::pki;

use super::node::Node;
use super::rpc::{Failure, Reply, Rpc, read_frame, write_frame};

/// The organisation (certificate `O`) of replicas' own certificates.
pub const REPLICAS_GROUP: &str = "flotilla:replicas";
/// The organisation of cluster administrators (Kubernetes' superuser group).
pub const ADMINS_GROUP: &str = "system:masters";

/// What the certificate of a caller lets it do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Another replica: everything, Raft's messages included.
    Replica,
    /// An administrator: store requests and cluster operations, not Raft's
    /// own messages.
    Admin,
}

impl Role {
    /// The role a certificate's groups give, if any.
    pub fn of(groups: &[String]) -> Option<Role> {
        if groups.iter().any(|g| g == REPLICAS_GROUP) {
            Some(Role::Replica)
        } else if groups.iter().any(|g| g == ADMINS_GROUP) {
            Some(Role::Admin)
        } else {
            None
        }
    }

    fn allows(self, rpc: &Rpc) -> bool {
        match rpc {
            Rpc::AppendEntries(_) | Rpc::Vote(_) | Rpc::InstallSnapshot(_) => self == Role::Replica,
            Rpc::Write { .. }
            | Rpc::ReadIndex
            | Rpc::Get { .. }
            | Rpc::Join { .. }
            | Rpc::Remove { .. }
            | Rpc::Status
            | Rpc::Backup
            | Rpc::StateHash => true,
        }
    }
}

/// Serves `node` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    node: Arc<Node>,
    shutdown: impl Future<Output = ()>,
) {
    accept_tls(listener, acceptor, "replica", shutdown, move |tls| {
        connection(tls, node.clone())
    })
    .await;
}

async fn connection(mut tls: TlsStream<TcpStream>, node: Arc<Node>) -> Result<(), ConnectionError> {
    let identity = pki::peer_identity(tls.get_ref().1);
    let role = identity.as_ref().and_then(|id| Role::of(&id.organizations));
    while let Some(rpc) = read_frame::<_, Rpc>(&mut tls).await? {
        let reply = match role {
            Some(role) if role.allows(&rpc) => node.handle(rpc).await,
            _ => Reply::Failed(Failure::Forbidden {
                reason: format!(
                    "{} may not make this request",
                    identity
                        .as_ref()
                        .map_or("an unknown caller".to_owned(), |id| format!(
                            "{:?} (groups {:?})",
                            id.common_name, id.organizations
                        ))
                ),
            }),
        };
        write_frame(&mut tls, &reply).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_replicas_may_send_raft_messages_and_strangers_nothing() {
        let groups = |g: &[&str]| g.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(Role::of(&groups(&[REPLICAS_GROUP])), Some(Role::Replica));
        assert_eq!(Role::of(&groups(&["x", ADMINS_GROUP])), Some(Role::Admin));
        assert_eq!(Role::of(&groups(&["system:nodes"])), None);
        assert_eq!(Role::of(&[]), None);
        let vote = Rpc::Vote(openraft::raft::VoteRequest::new(
            openraft::Vote::new(1, 1),
            None,
        ));
        assert!(Role::Replica.allows(&vote));
        assert!(!Role::Admin.allows(&vote));
        assert!(Role::Admin.allows(&Rpc::Status));
    }
}
