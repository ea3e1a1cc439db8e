//! Executes the state machine's commands, each in its own task, and turns
//! every outcome into the [`Event`] the state machine expects.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use flotilla_shared::wire::{Pod, PullPolicy};
use tokio::sync::{mpsc, watch};

use super::host::{SandboxInfo, container_cgroup};
use super::{Host, Services, probe};
use crate::image::{Image, ImageSource, PullError};
use crate::pod::{Command, Event};
use crate::runtime::{ContainerInfo, CreateRequest, OciRuntime, RuntimeError};

/// What a pod's commands share: the images its pulls produced and its
/// sandbox, for the runs that follow.
#[derive(Clone, Debug, Default)]
pub(super) struct PodImages {
    inner: Arc<Mutex<Shared>>,
}

#[derive(Debug, Default)]
struct Shared {
    images: HashMap<String, Image>,
    sandbox: Option<SandboxInfo>,
}

impl PodImages {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Tells a command whether the record it depends on was written: `None`
/// while it is being written, then `Some(written)`.
pub(super) type Gate = watch::Receiver<Option<bool>>;

/// Runs `command` in a task of its own and reports its event. With a
/// `gate`, the command acts only once the gate says the record was written
/// (a run builds its bundle before that); if it was not, the command does
/// nothing and reports nothing: the worker takes it back.
pub(super) fn spawn<R, S, H>(
    services: &Arc<Services<R, S, H>>,
    spec: &Pod,
    shared: &PodImages,
    command: Command,
    gate: Option<Gate>,
    events: &mpsc::UnboundedSender<Event>,
) where
    R: OciRuntime + Send + Sync + 'static,
    S: ImageSource,
    H: Host,
{
    let services = Arc::clone(services);
    let spec = spec.clone();
    let shared = shared.clone();
    let events = events.clone();
    tokio::spawn(async move {
        if let Some(event) = execute(&services, &spec, &shared, command, gate, &events).await {
            let _ = events.send(event);
        }
    });
}

/// Whether the gate (if any) lets the command act.
async fn passed(gate: Option<Gate>) -> bool {
    let Some(mut gate) = gate else {
        return true;
    };
    match gate.wait_for(Option::is_some).await {
        Ok(written) => *written == Some(true),
        // The worker is gone: nothing may act.
        Err(_) => false,
    }
}

/// `Command::Run`: builds the bundle, waits for the record that names the
/// run, then creates and starts it; `None` if the record was not written.
async fn run_command<R, S, H>(
    services: &Arc<Services<R, S, H>>,
    spec: &Pod,
    shared: &PodImages,
    container: &str,
    id: String,
    gate: Option<Gate>,
    events: &mpsc::UnboundedSender<Event>,
) -> Option<Event>
where
    R: OciRuntime + Send + Sync + 'static,
    S: ImageSource,
    H: Host,
{
    let built = build(services, spec, shared, container, &id).await;
    if !passed(gate).await {
        return None;
    }
    let started = match built {
        Ok(request) => start(services, &request).await,
        Err(failed) => Err(failed),
    };
    Some(match started {
        Ok(at_ms) => {
            watch_exit(services, &spec.uid, &id, events);
            Event::Started { id, at_ms }
        }
        Err((reason, message)) => Event::RunFailed {
            id,
            reason: reason.to_owned(),
            message,
        },
    })
}

async fn execute<R, S, H>(
    services: &Arc<Services<R, S, H>>,
    spec: &Pod,
    shared: &PodImages,
    command: Command,
    gate: Option<Gate>,
    events: &mpsc::UnboundedSender<Event>,
) -> Option<Event>
where
    R: OciRuntime + Send + Sync + 'static,
    S: ImageSource,
    H: Host,
{
    // A run builds its bundle before it waits; the rest just wait.
    if !matches!(command, Command::Run { .. }) && !passed(gate.clone()).await {
        return None;
    }
    Some(match command {
        Command::PrepareSandbox => {
            let pod = spec.clone();
            let svc = Arc::clone(services);
            match blocking(move || svc.host.prepare_sandbox(&pod)).await {
                Ok(info) => {
                    shared.lock().sandbox = Some(info);
                    Event::SandboxReady
                }
                Err(message) => Event::SandboxFailed { message },
            }
        }
        Command::Pull {
            container,
            image,
            policy,
        } => match pull(services, &image, policy).await {
            Ok(pulled) => {
                let image_id = pulled.id.clone();
                shared.lock().images.insert(container.clone(), pulled);
                Event::Pulled {
                    container,
                    image_id,
                }
            }
            Err((reason, message)) => Event::PullFailed {
                container,
                reason: reason.to_owned(),
                message,
            },
        },
        Command::Run { container, id, .. } => {
            return run_command(services, spec, shared, &container, id, gate, events).await;
        }
        Command::Signal { id, signal } => {
            if let Err(error) = services.runtime.kill(&id, signal).await {
                // Already stopped or gone: its exit is reported anyway.
                tracing::debug!(%id, signal, %error, "signal not delivered");
            }
            Event::Signalled { id }
        }
        Command::Remove { id } => {
            match services.runtime.delete(&id, true).await {
                Ok(()) | Err(RuntimeError::NotFound { .. }) => {}
                Err(error) => {
                    // Its files stay until the runtime lets go of it.
                    tracing::warn!(%id, %error, "deleting a container; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    return Some(Event::RemoveFailed { id });
                }
            }
            let dir = services.paths.container_dir(&id);
            let svc = Arc::clone(services);
            let release_dir = dir.clone();
            if let Err(message) = blocking(move || svc.host.release_rootfs(&release_dir)).await {
                tracing::warn!(%id, %message, "releasing a container's rootfs");
            }
            keep_last_log(&dir, &services.state.pod_dir(&spec.uid), &spec.uid, &id);
            let _ = std::fs::remove_dir_all(&dir);
            Event::Removed { id }
        }
        Command::Probe {
            container,
            id,
            kind,
        } => {
            let netns = shared
                .lock()
                .sandbox
                .as_ref()
                .and_then(|s| s.namespaces.net.clone());
            let result = match spec
                .init_containers
                .iter()
                .chain(&spec.containers)
                .find(|c| c.name == container)
                .and_then(|c| crate::pod::machine::probe_of(c, kind))
            {
                Some(p) => probe::run(services, &id, netns.as_deref(), p).await,
                None => Err("the probe is no longer in the spec".to_owned()),
            };
            Event::ProbeResult {
                container,
                id,
                kind,
                success: result.is_ok(),
                message: result.err().unwrap_or_default(),
            }
        }
        Command::TeardownSandbox => {
            let pod = spec.clone();
            let svc = Arc::clone(services);
            match blocking(move || svc.host.teardown_sandbox(&pod)).await {
                Ok(()) => {
                    shared.lock().sandbox = None;
                    Event::TornDown
                }
                Err(message) => {
                    // The state machine asks again on its next step.
                    tracing::warn!(uid = %spec.uid, %message, "tearing down a sandbox");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    Event::SandboxFailed { message }
                }
            }
        }
    })
}

/// Makes an image present by the pull policy. An `Always` pull that fails
/// for want of a network falls back to the image the device has: a device
/// offline keeps restarting its containers.
async fn pull<R, S, H>(
    services: &Services<R, S, H>,
    image: &str,
    policy: PullPolicy,
) -> Result<Image, (&'static str, String)>
where
    S: ImageSource,
{
    let local = || services.images.get(image);
    if policy != PullPolicy::Always {
        match local() {
            Ok(Some(found)) => return Ok(found),
            Ok(None) => {}
            Err(error) => return Err(("ErrImagePull", error.to_string())),
        }
    }
    if policy == PullPolicy::Never {
        return Err((
            "ErrImageNeverPull",
            format!("Container image \"{image}\" is not present with pull policy of Never"),
        ));
    }
    match services.images.pull(image).await {
        Ok(pulled) => Ok(pulled),
        Err(error) => {
            if error.retryable()
                && let Ok(Some(found)) = local()
            {
                tracing::info!(%image, %error, "registry unreachable: using the stored image");
                return Ok(found);
            }
            let reason = match error {
                PullError::InvalidReference { .. } => "InvalidImageName",
                _ => "ErrImagePull",
            };
            Err((reason, error.to_string()))
        }
    }
}

/// Builds a run's bundle (rootfs and `config.json`); returns what the
/// runtime needs to create it.
async fn build<R, S, H>(
    services: &Arc<Services<R, S, H>>,
    spec: &Pod,
    shared: &PodImages,
    container_name: &str,
    id: &str,
) -> Result<CreateRequest, (&'static str, String)>
where
    R: OciRuntime + Send + Sync + 'static,
    S: ImageSource,
    H: Host,
{
    let (image, sandbox) = {
        let shared = shared.lock();
        (
            shared.images.get(container_name).cloned(),
            shared.sandbox.clone(),
        )
    };
    let image = image.ok_or(("CreateContainerError", "the image is not pulled".to_owned()))?;
    let sandbox = sandbox.ok_or((
        "CreateContainerError",
        "the sandbox is not ready".to_owned(),
    ))?;
    let container = spec
        .init_containers
        .iter()
        .chain(&spec.containers)
        .find(|c| c.name == container_name)
        .cloned()
        .ok_or((
            "CreateContainerError",
            "the container left the spec".to_owned(),
        ))?;
    let dir = services.paths.container_dir(id);
    let svc = Arc::clone(services);
    let (pod, bundle_dir, uid, cid) = (spec.clone(), dir.clone(), spec.uid.clone(), id.to_owned());
    let built = tokio::task::spawn_blocking(move || -> Result<(), (&'static str, String)> {
        std::fs::create_dir_all(&bundle_dir).map_err(|e| {
            (
                "CreateContainerError",
                format!("{}: {e}", bundle_dir.display()),
            )
        })?;
        svc.host
            .prepare_rootfs(&image.rootfs, &bundle_dir)
            .map_err(|e| ("CreateContainerError", e.message))?;
        let cgroups_path = container_cgroup(&uid, &cid);
        let seccomp_dir = svc.paths.state_dir.join("seccomp");
        let inputs = crate::bundle::BundleInputs {
            pod: &pod,
            container: &container,
            image: &image.config,
            rootfs: &bundle_dir.join("rootfs"),
            namespaces: &sandbox.namespaces,
            volumes: &sandbox.volumes,
            cgroups_path: &cgroups_path,
            hostname: &pod.name,
            seccomp_dir: &seccomp_dir,
            cgroup_layout: svc.host.cgroup_layout(),
            node_memory_bytes: crate::sys::memory_total_bytes().unwrap_or(0),
        };
        let config = crate::bundle::spec::build(&inputs)
            .map_err(|e| ("CreateContainerConfigError", e.to_string()))?;
        crate::bundle::write(&bundle_dir, &config)
            .map_err(|e| ("CreateContainerError", e.to_string()))?;
        Ok(())
    })
    .await;
    built.map_err(|e| ("CreateContainerError", format!("the task failed: {e}")))??;
    Ok(CreateRequest {
        id: id.to_owned(),
        bundle: dir.clone(),
        shim_dir: dir.join("shim"),
    })
}

/// Creates and starts a built run; returns its start time.
async fn start<R, S, H>(
    services: &Arc<Services<R, S, H>>,
    request: &CreateRequest,
) -> Result<u64, (&'static str, String)>
where
    R: OciRuntime + Send + Sync + 'static,
    S: ImageSource,
    H: Host,
{
    // A leftover from a crash between create and the record: start afresh.
    match services.runtime.delete(&request.id, true).await {
        Ok(()) | Err(RuntimeError::NotFound { .. }) => {}
        Err(error) => return Err(("CreateContainerError", error.to_string())),
    }
    // One runtime call creates and starts it (`run -d`): a start costs one
    // process less than `create` then `start`.
    services
        .runtime
        .run(request)
        .await
        .map_err(|e| ("RunContainerError", e.to_string()))?;
    services.host.make_spares();
    Ok(services.clock.now_ms())
}

/// Watches a run until it exits and reports how; a run the runtime does
/// not know is reported `Missing`, one it still runs `Running`.
pub(super) fn watch_exit<R, S, H>(
    services: &Arc<Services<R, S, H>>,
    uid: &str,
    id: &str,
    events: &mpsc::UnboundedSender<Event>,
) where
    R: OciRuntime + Send + Sync + 'static,
    S: ImageSource,
    H: Host,
{
    let services = Arc::clone(services);
    let id = id.to_owned();
    let cgroup = container_cgroup(uid, &id);
    let events = events.clone();
    tokio::spawn(async move {
        let event = match services.runtime.wait(&id).await {
            Ok(Some(ContainerInfo {
                exit: Some(exit), ..
            })) => {
                let oom_killed = exit.code == 137 && services.host.oom_kills(&cgroup) > 0;
                Event::Exited {
                    id,
                    code: exit.code,
                    oom_killed,
                    finished_at_ms: exit.finished_at_ms,
                }
            }
            // Gone, or stopped with nobody to tell how.
            Ok(_) => Event::Missing { id },
            Err(error) => {
                tracing::warn!(%id, %error, "watching a container; its exit is unknown");
                Event::Missing { id }
            }
        };
        let _ = events.send(event);
    });
}

/// Keeps a removed run's log as the container's previous log
/// (`kubectl logs --previous`).
fn keep_last_log(container_dir: &std::path::Path, pod_dir: &std::path::Path, uid: &str, id: &str) {
    let log = container_dir.join("shim").join("container.log");
    if !log.exists() {
        return;
    }
    let logs = pod_dir.join("logs");
    if std::fs::create_dir_all(&logs).is_ok() {
        // Run ids are `<uid>-<container>-<attempt>`.
        let name = id
            .strip_prefix(uid)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|rest| rest.rsplit_once('-'))
            .map_or(id, |(name, _)| name);
        let _ = std::fs::rename(&log, logs.join(format!("{name}.previous.log")));
    }
}

async fn blocking<T: Send + 'static, E: std::fmt::Display + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(join) => Err(format!("the task failed: {join}")),
    }
}
