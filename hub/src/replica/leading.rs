//! Work that runs on the Raft leader only and moves with leadership: the
//! controllers, and the device gateway when an external broker is shared by
//! every replica.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tracing::debug;

use super::Node;

type Metrics = openraft::RaftMetrics<crate::store::NodeId, crate::store::Replica>;

fn leads(node: &Node, metrics: &mut tokio::sync::watch::Receiver<Metrics>) -> bool {
    let metrics = metrics.borrow_and_update();
    metrics.current_leader == Some(node.id()) && metrics.state.is_leader()
}

/// Runs `term()` while this replica leads, a fresh one for every term of
/// leadership, until `shutdown` completes. A term starts only once the
/// replica has applied everything committed before it (a read-index
/// barrier), so it sees every write of the previous leader; it is aborted
/// the moment leadership is lost, writes in flight included (they fail, or
/// lose their compare-and-swap, on a replica that no longer leads).
pub async fn while_leading<F, T>(
    node: Arc<Node>,
    what: &'static str,
    mut term: F,
    shutdown: impl Future<Output = ()>,
) where
    F: FnMut() -> T,
    T: Future<Output = ()> + Send + 'static,
{
    tokio::pin!(shutdown);
    let mut metrics = node.raft().metrics();
    loop {
        while !leads(&node, &mut metrics) {
            tokio::select! {
                () = &mut shutdown => return,
                changed = metrics.changed() => if changed.is_err() { return },
            }
        }
        if let Err(e) = node.linearizable_barrier().await {
            debug!(error = %e, what, "leader barrier failed; waiting for leadership again");
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        tracing::info!(what, "leading: starting");
        let running = tokio::spawn(term());
        while leads(&node, &mut metrics) {
            tokio::select! {
                () = &mut shutdown => {
                    running.abort();
                    return;
                }
                changed = metrics.changed() => if changed.is_err() { running.abort(); return },
            }
        }
        running.abort();
        tracing::info!(what, "no longer leading: stopped");
    }
}
