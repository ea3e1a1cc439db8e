//! What the agent finds when it starts: each pod's record is matched with
//! what the runtime still holds, so that running containers are adopted
//! (never started twice), finished ones are reported, and containers no
//! record claims are removed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use flotilla_shared::wire::{DesiredState, Pod};

use super::{AgentError, Host, Services};
use crate::image::ImageSource;
use crate::pod::{Event, PodState};
use crate::runtime::{ContainerInfo, OciRuntime, Status};

/// A pod found on the device, with the events that tell its state machine
/// what the runtime holds.
#[derive(Debug)]
pub(super) struct Adopted {
    pub state: PodState,
    pub spec: Pod,
    pub events: Vec<Event>,
    /// The pod is no longer desired: stop it.
    pub gone: bool,
}

pub(super) async fn adopt<R, S, H>(
    services: &Arc<Services<R, S, H>>,
    desired: Option<&DesiredState>,
) -> Result<Vec<Adopted>, AgentError>
where
    R: OciRuntime + Send + Sync + 'static,
    S: ImageSource,
    H: Host,
{
    let mut runtime: BTreeMap<String, ContainerInfo> = services
        .runtime
        .list()
        .await?
        .into_iter()
        .map(|c| (c.id.clone(), c))
        .collect();
    let mut adopted = Vec::new();
    for uid in services.state.pod_uids()? {
        let desired_spec = desired.and_then(|d| d.pods.iter().find(|p| p.uid == uid));
        let record = match services.state.load_record(&uid) {
            Ok(Some(record)) => record,
            Ok(None) => {
                // A directory without a record: nothing of it ever ran.
                if let Err(error) = services.state.remove_pod(&uid) {
                    tracing::warn!(%uid, %error, "removing a pod directory without a record");
                }
                continue;
            }
            Err(error) => {
                // Left alone for an operator; its containers, if any, are
                // unclaimed and removed below.
                tracing::error!(%uid, %error, "pod record unreadable; pod left out");
                continue;
            }
        };
        let spec = match desired_spec {
            Some(spec) => spec.clone(),
            None => match services.state.load_pod(&uid)? {
                Some(spec) => spec,
                None => Pod {
                    uid: uid.clone(),
                    namespace: record.namespace.clone(),
                    name: record.name.clone(),
                    ..Pod::default()
                },
            },
        };
        let state = PodState::adopt(record, &spec);
        let mut events = Vec::new();
        let current: Vec<String> = state
            .record
            .init_containers
            .iter()
            .chain(&state.record.containers)
            .filter_map(|c| c.run.as_ref().map(|r| r.id.clone()))
            .collect();
        for id in current {
            events.push(match runtime.remove(&id) {
                Some(ContainerInfo {
                    status: Status::Running | Status::Paused,
                    ..
                }) => Event::Running { id },
                Some(ContainerInfo {
                    status: Status::Stopped,
                    exit: Some(exit),
                    ..
                }) => Event::Exited {
                    oom_killed: exit.code == 137
                        && services
                            .host
                            .oom_kills(&super::host::container_cgroup(&uid, &id))
                            > 0,
                    id,
                    code: exit.code,
                    finished_at_ms: exit.finished_at_ms,
                },
                // Stopped with its exit unknown, created but never started,
                // or gone: the state machine decides by whether it started.
                _ => Event::Missing { id },
            });
        }
        for id in state.run_ids() {
            runtime.remove(id);
        }
        tracing::info!(%uid, name = %spec.name, runs = events.len(), "adopted pod");
        adopted.push(Adopted {
            gone: desired_spec.is_none(),
            state,
            spec,
            events,
        });
    }
    let claimed: BTreeSet<&str> = adopted.iter().flat_map(|a| a.state.run_ids()).collect();
    for (id, info) in runtime {
        if claimed.contains(id.as_str()) {
            continue;
        }
        tracing::info!(%id, status = ?info.status, "removing a container no pod claims");
        if matches!(
            info.status,
            Status::Running | Status::Paused | Status::Created
        ) {
            let _ = services
                .runtime
                .kill(&id, crate::pod::machine::SIGKILL)
                .await;
        }
        if let Err(error) = services.runtime.delete(&id, true).await {
            tracing::warn!(%id, %error, "removing an unclaimed container");
        }
        let dir = services.paths.container_dir(&id);
        let svc = Arc::clone(services);
        let release = dir.clone();
        let _ = tokio::task::spawn_blocking(move || svc.host.release_rootfs(&release)).await;
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(adopted)
}
