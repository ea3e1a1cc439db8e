//! What the agent keeps about each pod across restarts and power loss
//! (`pods/<uid>/record.json`), and what it only keeps in memory.

use std::collections::{BTreeMap, BTreeSet};

use flotilla_shared::wire::Terminated;
use serde::{Deserialize, Serialize};

use super::backoff::Backoff;
use super::probes::{ProbeKind, ProbeTracker};

/// The durable part of a pod's state: enough to adopt its containers after
/// an agent restart, never start a duplicate, and keep counting restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRecord {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// When the agent first accepted the pod (Unix ms): the pod's startTime.
    pub accepted_at_ms: u64,
    pub init_containers: Vec<ContainerRecord>,
    pub containers: Vec<ContainerRecord>,
    /// Set once the pod is being stopped for good.
    pub terminating: Option<Terminating>,
    /// An init container failed under `restartPolicy: Never`: the pod failed.
    pub init_failed: bool,
    /// Every container has finished for good (phase Succeeded or Failed) and
    /// nothing of the pod is left on the runtime.
    pub finished: bool,
}

/// A pod on its way out: deleted at the hub, or gone from the desired state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terminating {
    pub since_ms: u64,
    /// SIGKILL for whatever still runs at this time.
    pub deadline_ms: u64,
}

/// One container of the pod (init or regular) over all its runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub name: String,
    pub restart_count: u32,
    /// Runtime ids handed out so far; the next run is `<uid>-<name>-<attempts>`.
    pub attempts: u32,
    /// The run the runtime holds, if any.
    pub run: Option<Run>,
    /// Finished runs still to delete from the runtime, by id.
    pub removing: Vec<String>,
    pub last_termination: Option<Terminated>,
    pub backoff: Backoff,
    /// Will not run again: a finished init container, or a container whose
    /// restart policy says it stays stopped.
    pub done: bool,
    /// The digest reference of the image the last run used.
    pub image_id: String,
}

/// One run of a container on the runtime.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// The runtime's container id.
    pub id: String,
    /// When the process started (Unix ms); `None` while it is being created.
    pub started_at_ms: Option<u64>,
    /// A fingerprint of the container spec it runs: a changed spec (a new
    /// image) replaces the run.
    pub spec_hash: u64,
}

/// The in-memory part of a pod's state, rebuilt after a restart by pulling,
/// probing and asking the runtime again.
#[derive(Clone, Debug, Default)]
pub struct Live {
    pub sandbox: Sandbox,
    /// Image readiness per container name.
    pub images: BTreeMap<String, ImageState>,
    /// Probes of the current runs, per container name and kind.
    pub probes: BTreeMap<(String, ProbeKind), Tracked>,
    /// Runs being stopped, by runtime id.
    pub stopping: BTreeMap<String, Stopping>,
    /// What the runtime said about each run, by runtime id.
    pub observed: BTreeMap<String, Observed>,
    /// Why the last attempt to create a container failed, per container name.
    pub create_errors: BTreeMap<String, Waiting>,
    /// Commands handed to the executor that have not reported back.
    pub busy: BTreeSet<Busy>,
}

/// A probe tracker and the run it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracked {
    pub run_id: String,
    pub tracker: ProbeTracker,
}

/// The pod's namespaces, volumes and cgroup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Sandbox {
    #[default]
    Absent,
    Ready,
    Failed {
        message: String,
        retry_at_ms: u64,
    },
    Removed,
}

/// Whether a container's image is on the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageState {
    Ready {
        image_id: String,
    },
    Failed {
        /// `ErrImagePull`, `ErrImageNeverPull` or `InvalidImageName`.
        reason: String,
        message: String,
        failed_at_ms: u64,
        backoff: Backoff,
    },
}

/// A run being stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stopping {
    pub deadline_ms: u64,
    pub killed: bool,
    /// Why: shown in the termination message (e.g. a failed liveness probe).
    pub why: String,
    /// Start the next run without backoff (the spec changed).
    pub restart_now: bool,
}

/// What the runtime reports about a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    Running,
    Exited {
        code: i32,
        oom_killed: bool,
        finished_at_ms: u64,
    },
    /// The runtime does not know the id (the device rebooted, or state was lost).
    Missing,
}

/// A container's waiting reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

/// A command in flight, so that it is not handed out twice.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Busy {
    Sandbox,
    Pull(String),
    Run(String),
    Signal(String),
    Remove(String),
    Probe(String, ProbeKind),
    Teardown,
}
