//! Garbage collection: images nothing refers to, images beyond the disk
//! budget (least recently used first, never one in use), and blobs and
//! rootfs directories no remaining image needs.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use super::error::StoreError;
use super::source::ImageSource;
use super::store::{ImageStore, dir_size, parse_reference};

/// What a collection removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Ids (`repository@digest`) of the images removed.
    pub removed_images: Vec<String>,
    /// Bytes of blobs, partial downloads and rootfs directories deleted.
    pub freed_bytes: u64,
    /// What the remaining images take, as the budget counts it.
    pub used_bytes: u64,
}

impl<S: ImageSource> ImageStore<S> {
    /// Collects garbage. `in_use` holds what running or wanted containers use:
    /// references (`busybox:1.36`) or image ids (`…@sha256:…`). Images in use
    /// are always kept; the others are removed if no reference names them any
    /// more (a moved tag), or, least recently used first, while the store is
    /// over its budget. Then every blob, partial download and rootfs that no
    /// remaining image (nor a pull in flight) needs is deleted.
    pub fn gc(&self, in_use: &BTreeSet<String>) -> Result<GcReport, StoreError> {
        let mut report = GcReport::default();
        let mut catalog = self.lock_catalog();
        let used: BTreeSet<String> = in_use
            .iter()
            .filter_map(|name| {
                let r = parse_reference(name).ok()?;
                if let Some(d) = r.digest() {
                    return Some(d.to_owned());
                }
                catalog.references.get(&r.whole()).cloned()
            })
            .collect();

        let named: BTreeSet<String> = catalog.references.values().cloned().collect();
        let dangling: Vec<String> = catalog
            .images
            .keys()
            .filter(|d| !named.contains(*d) && !used.contains(*d))
            .cloned()
            .collect();
        for digest in dangling {
            if let Some(r) = catalog.remove(&digest) {
                report
                    .removed_images
                    .push(format!("{}@{digest}", r.repository));
            }
        }
        while catalog.usage() > self.budget {
            let victim = catalog
                .images
                .iter()
                .filter(|(d, _)| !used.contains(*d))
                .min_by_key(|(_, r)| r.last_used)
                .map(|(d, _)| d.clone());
            let Some(digest) = victim else { break };
            if let Some(r) = catalog.remove(&digest) {
                report
                    .removed_images
                    .push(format!("{}@{digest}", r.repository));
            }
        }
        // Saved before anything is deleted: a crash in between leaves only
        // unreferenced files, which the next collection removes.
        catalog.save(&self.root.join("index.json"))?;

        let (mut blobs, mut rootfs) = catalog.live();
        {
            let pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
            blobs.extend(pins.keys().cloned());
            rootfs.extend(pins.keys().cloned());
        }
        report.freed_bytes += sweep(&self.blobs_dir(), |name| {
            let hex = name.strip_suffix(".partial").unwrap_or(name);
            blobs.contains(hex)
        })?;
        report.freed_bytes += sweep(&self.rootfs_dir(), |name| rootfs.contains(name))?;
        report.used_bytes = catalog.usage();
        Ok(report)
    }
}

/// Deletes the entries of `dir` that `keep` does not want (temporaries of
/// writes in flight are left alone); returns the bytes freed.
fn sweep(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<u64, StoreError> {
    let mut freed = 0;
    for entry in fs::read_dir(dir).map_err(StoreError::io(dir))? {
        let entry = entry.map_err(StoreError::io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.contains(".tmp-") || keep(&name) {
            continue;
        }
        let path = entry.path();
        let meta = path.symlink_metadata().map_err(StoreError::io(&path))?;
        if meta.is_dir() {
            freed += dir_size(&path).map_err(StoreError::io(&path))?;
            fs::remove_dir_all(&path).map_err(StoreError::io(&path))?;
        } else {
            freed += meta.len();
            fs::remove_file(&path).map_err(StoreError::io(&path))?;
        }
    }
    Ok(freed)
}
