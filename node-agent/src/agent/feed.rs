//! A desired-state feed from a file and a status sink to a directory: how
//! the agent runs without a hub link (tests, and devices provisioned with
//! a fixed set of pods).
//!
//! The file holds one [`DesiredState`], as JSON when its name ends in
//! `.json` and as the wire's postcard otherwise; it is re-read when its
//! modification time or size changes. Each pod's latest status is written
//! to `<dir>/<uid>.json` (meant for a tmpfs: statuses change often).

use std::path::{Path, PathBuf};
use std::time::Duration;

use flotilla_shared::wire::{DesiredState, PodStatusUpdate};
use tokio::sync::{mpsc, watch};

/// Reads a desired-state file; `Ok(None)` when it does not exist.
pub fn read_desired(path: &Path) -> Result<Option<DesiredState>, String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let parsed = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    } else {
        postcard::from_bytes(&bytes).map_err(|e| e.to_string())
    };
    parsed
        .map(Some)
        .map_err(|e| format!("{}: not a desired state: {e}", path.display()))
}

/// Watches `path` every `interval` and publishes each new desired state.
/// A file that cannot be parsed is logged and changes nothing.
pub async fn watch_file(
    path: PathBuf,
    interval: Duration,
    tx: watch::Sender<Option<DesiredState>>,
) {
    let mut seen = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let stamp = std::fs::metadata(&path)
            .ok()
            .map(|m| (m.modified().ok(), m.len()));
        if stamp.is_none() || stamp == seen {
            continue;
        }
        seen = stamp;
        match read_desired(&path) {
            Ok(Some(desired)) => {
                if tx.send(Some(desired)).is_err() {
                    return;
                }
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "desired state refused"),
        }
    }
}

/// Writes each status update to `<dir>/<uid>.json`.
pub async fn write_statuses(dir: PathBuf, mut rx: mpsc::UnboundedReceiver<PodStatusUpdate>) {
    if let Err(error) = std::fs::create_dir_all(&dir) {
        tracing::warn!(dir = %dir.display(), %error, "status directory");
    }
    while let Some(update) = rx.recv().await {
        let path = dir.join(format!("{}.json", update.pod_uid));
        let written = serde_json::to_vec(&update)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::state::write_atomic_volatile(&path, &bytes));
        if let Err(error) = written {
            tracing::warn!(path = %path.display(), %error, "writing a pod status");
        }
    }
}
