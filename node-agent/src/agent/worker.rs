//! One pod's worker: steps the state machine, persists its record before
//! acting, hands each command to its own task, and feeds the results back.
//! It sleeps when nothing is due.

use std::sync::Arc;

use flotilla_shared::wire::{Pod, PodStatusUpdate};
use tokio::sync::{mpsc, watch};

use super::{Host, Services, ToWorker, execute};
use crate::image::ImageSource;
use crate::pod::{Event, PodState};
use crate::runtime::OciRuntime;

/// How long a record that could not be written waits before the next try.
const PERSIST_RETRY_MS: u64 = 1_000;

/// A worker's pod at its start: its state, spec, what the runtime holds of
/// it (adopted pods), and the desired-state revision it came with.
pub(super) struct Start {
    pub state: PodState,
    pub spec: Pod,
    pub initial: Vec<Event>,
    pub revision: u64,
}

pub(super) async fn run<R, S, H>(
    services: Arc<Services<R, S, H>>,
    start: Start,
    mut inbox: mpsc::UnboundedReceiver<ToWorker>,
    status: mpsc::UnboundedSender<PodStatusUpdate>,
    done: mpsc::UnboundedSender<String>,
) where
    R: OciRuntime + Send + Sync + 'static,
    S: ImageSource,
    H: Host,
{
    let Start {
        mut state,
        mut spec,
        initial,
        mut revision,
    } = start;
    let uid = spec.uid.clone();
    let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
    let images = execute::PodImages::default();
    let mut last_status = None;
    let mut inbox_open = true;
    // What the runtime holds of an adopted pod; running runs are watched.
    let now = services.clock.now_ms();
    let adopted = !initial.is_empty();
    for event in initial {
        if let Event::Running { id } = &event {
            execute::watch_exit(&services, &uid, id, &events_tx);
        }
        state.apply(&spec, event, now);
    }
    // The record changed in memory since it was last written. An adopted
    // pod's is written by the first step; a new pod's is first written
    // before its first run (nothing of it exists to remember before).
    let mut dirty = adopted;
    loop {
        let now = services.clock.now_ms();
        let step = state.step(&spec, now);
        let mut wake = step.wake_at_ms;
        let commands = step.commands;
        // What is observed goes out before the record is written: a status
        // tells what is, and the record only has to precede what the
        // commands will do (a started container is reported 2 ms sooner).
        let current = state.status(&spec, now);
        if last_status.as_ref() != Some(&current) {
            let _ = status.send(update(&services.node, &spec, &current, revision, now));
            last_status = Some(current);
        }
        if step.persist || dirty {
            // The commands start at once, but act only once the record is
            // written (a run's bundle is built meanwhile): acting on an
            // unrecorded run could start a duplicate after a crash, and a
            // finished run forgotten could run again.
            let (written, gate) = watch::channel(None);
            for command in &commands {
                execute::spawn(
                    &services,
                    &spec,
                    &images,
                    command.clone(),
                    Some(gate.clone()),
                    &events_tx,
                );
            }
            let record = state.record.clone();
            let svc = Arc::clone(&services);
            let stored = tokio::task::spawn_blocking(move || {
                svc.state.store_record(&record).map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(format!("the task failed: {e}")));
            let _ = written.send(Some(stored.is_ok()));
            if let Err(error) = stored {
                // The commands did nothing: take them back, step again later.
                tracing::warn!(%uid, %error, "writing the pod record; retrying");
                for command in &commands {
                    state.release(&spec, command, now);
                }
                dirty = true;
                wake = Some(now + PERSIST_RETRY_MS);
            } else {
                dirty = false;
            }
        } else {
            for command in commands {
                execute::spawn(&services, &spec, &images, command, None, &events_tx);
            }
        }
        if state.record.finished {
            let _ = done.send(uid);
            return;
        }
        let sleep = async {
            match wake {
                Some(at) => tokio::time::sleep_until(services.clock.instant_of(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(event) = events.recv() => {
                let now = services.clock.now_ms();
                dirty |= state.apply(&spec, event, now);
                while let Ok(event) = events.try_recv() {
                    dirty |= state.apply(&spec, event, now);
                }
            }
            message = inbox.recv(), if inbox_open => match message {
                Some(ToWorker::Spec(next, at_revision)) => {
                    revision = at_revision;
                    let changed = *next != spec;
                    spec = *next;
                    if changed {
                        // Records follow the containers by name.
                        state.align(&spec);
                        dirty = true;
                    }
                    if let Some(grace) = spec.deletion_grace_period_seconds {
                        dirty |= state.terminate(grace, services.clock.now_ms());
                    }
                }
                Some(ToWorker::Gone) => {
                    let grace = spec
                        .deletion_grace_period_seconds
                        .unwrap_or(spec.termination_grace_period_seconds);
                    dirty |= state.terminate(grace, services.clock.now_ms());
                }
                None => inbox_open = false,
            },
            () = sleep => {}
        }
    }
}

fn update(
    node: &str,
    spec: &Pod,
    status: &crate::pod::PodStatus,
    revision: u64,
    now_ms: u64,
) -> PodStatusUpdate {
    PodStatusUpdate {
        node: node.to_owned(),
        pod_uid: spec.uid.clone(),
        phase: status.phase,
        reason: status.reason.clone(),
        message: status.message.clone(),
        pod_ip: None,
        start_time_ms: Some(status.start_time_ms),
        init_containers: status.init_containers.clone(),
        containers: status.containers.clone(),
        observed_revision: revision,
        timestamp_ms: now_ms,
    }
}
