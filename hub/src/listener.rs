//! Accepting TLS connections: the loop the replica transport and the API
//! server share. Each connection gets its own task; a handshake that does
//! not finish in time is dropped; accept errors (out of file descriptors)
//! pause the loop instead of spinning it.

use std::future::Future;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, warn};

/// A TLS handshake must finish within this time.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a connection ended early.
pub type ConnectionError = Box<dyn std::error::Error + Send + Sync>;

/// Accepts connections on `listener` until `shutdown` completes; hands each
/// one, once its TLS handshake is done, to `serve` on a task of its own.
/// `what` names the listener in logs.
pub async fn accept_tls<F, Fut>(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    what: &'static str,
    shutdown: impl Future<Output = ()>,
    serve: F,
) where
    F: Fn(TlsStream<TcpStream>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), ConnectionError>> + Send + 'static,
{
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let acceptor = acceptor.clone();
                    let serve = serve.clone();
                    tokio::spawn(async move {
                        let outcome = async {
                            tcp.set_nodelay(true)?;
                            let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await??;
                            serve(tls).await
                        };
                        if let Err(e) = outcome.await {
                            debug!(%peer, error = %e, "{what} connection ended");
                        }
                    });
                }
                Err(e) => {
                    warn!(error = %e, "{what}: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}
