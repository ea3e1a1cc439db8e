//! [`ImageStore`]: pulls images for this device's platform, keeps their blobs
//! content-addressed and their unpacked rootfs, and answers what is stored.

use std::collections::HashMap;
use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use oci_client::Reference;
use oci_spec::image::ImageConfiguration;

use super::catalog::{Blob, Catalog, ImageRecord};
use super::digest::Sha256;
use super::error::{PullError, StoreError};
use super::fetch::fetch_blob;
use super::platform::Platform;
use super::source::{ImageSource, Layer, Resolved};
use crate::unpack::{Compression, apply_layer};

/// A pulled image, ready to run.
#[derive(Clone, Debug)]
pub struct Image {
    /// The reference as the pod named it.
    pub reference: String,
    /// `registry/repository@sha256:<manifest digest>` (a pod status's imageID).
    pub id: String,
    /// The platform manifest's digest.
    pub digest: Sha256,
    pub config: ImageConfiguration,
    /// The unpacked rootfs; never written to (containers get an overlay).
    pub rootfs: PathBuf,
    /// Blobs plus unpacked rootfs, in bytes.
    pub size_bytes: u64,
}

/// An image as a node reports it (`NodeStatus.images`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSummary {
    /// Its references and its id.
    pub names: Vec<String>,
    pub size_bytes: u64,
}

/// The store under `<state>/images`.
#[derive(Debug)]
pub struct ImageStore<S> {
    pub(super) root: PathBuf,
    source: S,
    platform: Platform,
    /// Bytes the store may keep; [`ImageStore::gc`] removes unused images
    /// beyond it, and a pull bigger than it is refused.
    pub(super) budget: u64,
    pub(super) catalog: Mutex<Catalog>,
    locks: KeyedLocks,
    /// Blobs and rootfs a pull in flight needs: gc leaves them alone.
    pub(super) pins: Mutex<HashMap<String, usize>>,
    tmp_counter: AtomicU64,
}

impl<S: ImageSource> ImageStore<S> {
    /// Opens (or creates) the store at `root` for this device's platform and
    /// removes what interrupted pulls left behind.
    pub fn open(root: impl Into<PathBuf>, source: S, budget: u64) -> Result<Self, StoreError> {
        Self::open_for_platform(root, source, budget, Platform::of_this_device())
    }

    /// [`ImageStore::open`] for another platform than this device's.
    pub fn open_for_platform(
        root: impl Into<PathBuf>,
        source: S,
        budget: u64,
        platform: Platform,
    ) -> Result<Self, StoreError> {
        let root = root.into();
        for dir in [root.join("blobs/sha256"), root.join("rootfs")] {
            fs::create_dir_all(&dir).map_err(StoreError::io(&dir))?;
        }
        for dir in [root.clone(), root.join("blobs/sha256"), root.join("rootfs")] {
            remove_temporaries(&dir)?;
        }
        let catalog = Catalog::load(&root.join("index.json"))?;
        Ok(ImageStore {
            root,
            source,
            platform,
            budget,
            catalog: Mutex::new(catalog),
            locks: KeyedLocks::default(),
            pins: Mutex::new(HashMap::new()),
            tmp_counter: AtomicU64::new(0),
        })
    }

    /// The platform images are pulled for.
    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    pub(super) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }

    pub(super) fn rootfs_dir(&self) -> PathBuf {
        self.root.join("rootfs")
    }

    pub(super) fn lock_catalog(&self) -> MutexGuard<'_, Catalog> {
        self.catalog.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pulls `reference` (unless its manifest is stored already), verifies
    /// every blob, unpacks the rootfs and records the reference.
    pub async fn pull(&self, reference: &str) -> Result<Image, PullError> {
        let parsed = parse_reference(reference)?;
        let resolved = self.source.resolve(&parsed, &self.platform).await?;
        let digest = resolved.manifest_digest.to_string();
        let compressions = resolved
            .layers
            .iter()
            .map(|l| {
                Compression::from_media_type(&l.media_type).map_err(|e| PullError::BadContent {
                    what: format!("{}: layer {}", parsed.whole(), l.digest),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let _pins = self.pin(&resolved);
        // Concurrent pulls of one image: the second waits and finds it stored.
        let _image = self.locks.lock(format!("image:{digest}")).await;
        if self.stored(&digest)? {
            return self.record(reference, &parsed, &resolved, None);
        }
        self.check_space(&parsed, &resolved)?;
        self.store_config(&resolved).await?;
        for layer in &resolved.layers {
            let _blob = self.locks.lock(format!("blob:{}", layer.digest)).await;
            fetch_blob(
                &self.source,
                &self.blobs_dir(),
                &parsed,
                &layer.digest,
                layer.size,
            )
            .await?;
        }
        let rootfs_bytes = self.unpack(&parsed, &resolved, compressions).await?;
        self.record(reference, &parsed, &resolved, Some(rootfs_bytes))
    }

    /// The stored image `reference` names, if any (for `IfNotPresent` and
    /// `Never`); marks it used.
    pub fn get(&self, reference: &str) -> Result<Option<Image>, StoreError> {
        let Ok(parsed) = parse_reference(reference) else {
            return Ok(None);
        };
        let mut catalog = self.lock_catalog();
        let digest = match catalog.references.get(&parsed.whole()) {
            Some(d) => d.clone(),
            None => match parsed.digest() {
                Some(d) if catalog.images.contains_key(d) => d.to_owned(),
                _ => return Ok(None),
            },
        };
        let Some(record) = catalog.images.get(&digest).cloned() else {
            return Ok(None);
        };
        let rootfs = self.rootfs_dir().join(record.config_hex());
        if !rootfs.is_dir() {
            return Ok(None);
        }
        let config_path = self.blobs_dir().join(record.config_hex());
        let bytes = match fs::read(&config_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(&config_path)(e)),
        };
        let config: ImageConfiguration =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                path: config_path.clone(),
                reason: e.to_string(),
            })?;
        // Starting containers of one image again and again rewrites nothing.
        if catalog.touch(&digest) {
            catalog.save(&self.root.join("index.json"))?;
        }
        Ok(Some(Image {
            reference: reference.to_owned(),
            id: format!("{}@{digest}", record.repository),
            digest: Sha256::parse(&digest).map_err(|reason| StoreError::Corrupt {
                path: self.root.join("index.json"),
                reason,
            })?,
            config,
            rootfs,
            size_bytes: record.size_bytes(),
        }))
    }

    /// Every stored image with its names (references and id) and size.
    pub fn list(&self) -> Vec<ImageSummary> {
        let catalog = self.lock_catalog();
        catalog
            .images
            .iter()
            .map(|(digest, record)| {
                let mut names = catalog.names_of(digest);
                names.push(format!("{}@{digest}", record.repository));
                ImageSummary {
                    names,
                    size_bytes: record.size_bytes(),
                }
            })
            .collect()
    }

    /// Whether the manifest `digest` is recorded and its rootfs is there.
    fn stored(&self, digest: &str) -> Result<bool, PullError> {
        let catalog = self.lock_catalog();
        Ok(catalog
            .images
            .get(digest)
            .is_some_and(|r| self.rootfs_dir().join(r.config_hex()).is_dir()))
    }

    /// Records the image under `reference` (adding the record after a fresh
    /// pull) and returns it.
    fn record(
        &self,
        reference: &str,
        parsed: &Reference,
        resolved: &Resolved,
        rootfs_bytes: Option<u64>,
    ) -> Result<Image, PullError> {
        let digest = resolved.manifest_digest.to_string();
        let repository = format!("{}/{}", parsed.registry(), parsed.repository());
        let rootfs = self.rootfs_dir().join(resolved.config_digest.hex());
        let mut catalog = self.lock_catalog();
        // A collection may have dropped the record of a stored image since
        // it was found (its files are pinned): write it again.
        let rootfs_bytes = match rootfs_bytes {
            None if !catalog.images.contains_key(&digest) => {
                Some(dir_size(&rootfs).map_err(|e| PullError::io(&rootfs, e))?)
            }
            other => other,
        };
        if let Some(rootfs_bytes) = rootfs_bytes {
            let blob = |digest: &Sha256, size| Blob {
                digest: digest.to_string(),
                size,
            };
            let record = ImageRecord {
                repository: repository.clone(),
                config: blob(&resolved.config_digest, resolved.config_bytes.len() as u64),
                layers: resolved
                    .layers
                    .iter()
                    .map(|l| blob(&l.digest, l.size))
                    .collect(),
                rootfs_bytes,
                last_used: 0,
            };
            catalog.images.insert(digest.clone(), record);
        }
        catalog.references.insert(parsed.whole(), digest.clone());
        catalog.touch(&digest);
        catalog.save(&self.root.join("index.json"))?;
        let size_bytes = catalog
            .images
            .get(&digest)
            .map_or(0, ImageRecord::size_bytes);
        Ok(Image {
            reference: reference.to_owned(),
            id: format!("{repository}@{digest}"),
            digest: resolved.manifest_digest.clone(),
            config: resolved.config.clone(),
            rootfs,
            size_bytes,
        })
    }

    /// Refuses an image that cannot fit: over the budget by itself, or
    /// bigger than what the filesystem has left.
    fn check_space(&self, parsed: &Reference, resolved: &Resolved) -> Result<(), PullError> {
        let blobs: u64 = resolved.layers.iter().map(|l| l.size).sum::<u64>()
            + resolved.config_bytes.len() as u64;
        let what = parsed.whole();
        if blobs > self.budget {
            return Err(PullError::NoSpace {
                what,
                reason: format!(
                    "its {blobs} bytes of blobs exceed the store's budget of {} bytes",
                    self.budget
                ),
            });
        }
        let missing: u64 = resolved
            .layers
            .iter()
            .filter(|l| !self.blobs_dir().join(l.digest.hex()).exists())
            .map(|l| l.size)
            .sum();
        let space =
            crate::sys::filesystem_space(&self.root).map_err(|e| PullError::io(&self.root, e))?;
        if missing > space.available_bytes {
            return Err(PullError::NoSpace {
                what,
                reason: format!(
                    "{missing} bytes to download, {} bytes free on the disk",
                    space.available_bytes
                ),
            });
        }
        Ok(())
    }

    /// Keeps the (verified) config blob, content-addressed like the layers.
    async fn store_config(&self, resolved: &Resolved) -> Result<(), PullError> {
        let path = self.blobs_dir().join(resolved.config_digest.hex());
        if path.exists() {
            return Ok(());
        }
        let bytes = resolved.config_bytes.clone();
        let target = path.clone();
        tokio::task::spawn_blocking(move || {
            crate::state::write_atomic(&target, &bytes).map_err(StoreError::io(&target))
        })
        .await
        .map_err(|e| PullError::io(&path, std::io::Error::other(e)))??;
        Ok(())
    }

    /// Applies the layers in order into a temp dir, checks each diff_id,
    /// flushes, and renames it to `rootfs/<config-hex>`. Returns its size.
    async fn unpack(
        &self,
        parsed: &Reference,
        resolved: &Resolved,
        compressions: Vec<Compression>,
    ) -> Result<u64, PullError> {
        let hex = resolved.config_digest.hex().to_owned();
        let _rootfs = self.locks.lock(format!("rootfs:{hex}")).await;
        let done = self.rootfs_dir().join(&hex);
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .rootfs_dir()
            .join(format!("{hex}.tmp-{}-{n}", std::process::id()));
        let job = Unpack {
            name: parsed.whole(),
            blobs: self.blobs_dir(),
            layers: resolved.layers.clone(),
            compressions,
            tmp,
            done,
        };
        tokio::task::spawn_blocking(move || job.run())
            .await
            .map_err(|e| PullError::io(&hex, std::io::Error::other(e)))?
    }

    /// Pins the blobs and rootfs of `resolved` until the guard drops.
    fn pin(&self, resolved: &Resolved) -> PinGuard<'_> {
        let mut keys: Vec<String> = resolved
            .layers
            .iter()
            .map(|l| l.digest.hex().to_owned())
            .collect();
        keys.push(resolved.config_digest.hex().to_owned());
        let mut pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        for k in &keys {
            *pins.entry(k.clone()).or_default() += 1;
        }
        PinGuard {
            pins: &self.pins,
            keys,
        }
    }
}

/// The blocking part of unpacking an image.
struct Unpack {
    name: String,
    blobs: PathBuf,
    layers: Vec<Layer>,
    compressions: Vec<Compression>,
    tmp: PathBuf,
    done: PathBuf,
}

impl Unpack {
    fn run(self) -> Result<u64, PullError> {
        if self.done.is_dir() {
            // Another manifest with the same config unpacked it already.
            return dir_size(&self.done).map_err(|e| PullError::io(&self.done, e));
        }
        fs::create_dir(&self.tmp).map_err(|e| PullError::io(&self.tmp, e))?;
        let result = self.apply_all();
        if result.is_err() {
            let _ = fs::remove_dir_all(&self.tmp);
        }
        result
    }

    fn apply_all(&self) -> Result<u64, PullError> {
        for (layer, compression) in self.layers.iter().zip(&self.compressions) {
            let path = self.blobs.join(layer.digest.hex());
            let file = fs::File::open(&path).map_err(|e| PullError::io(&path, e))?;
            let diff_id =
                apply_layer(&self.tmp, BufReader::new(file), *compression).map_err(|source| {
                    PullError::Unpack {
                        layer: format!("{}: {}", self.name, layer.digest),
                        source,
                    }
                })?;
            let diff_id = diff_id.to_string();
            if diff_id != layer.diff_id.as_str() {
                return Err(PullError::DiffIdMismatch {
                    layer: format!("{}: {}", self.name, layer.digest),
                    expected: layer.diff_id.to_string(),
                    actual: diff_id,
                });
            }
        }
        crate::sys::syncfs::syncfs(&self.tmp).map_err(|e| PullError::io(&self.tmp, e))?;
        fs::rename(&self.tmp, &self.done).map_err(|e| PullError::io(&self.done, e))?;
        let parent = self.done.parent().unwrap_or(Path::new("/"));
        fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| PullError::io(parent, e))?;
        dir_size(&self.done).map_err(|e| PullError::io(&self.done, e))
    }
}

/// Bytes of the regular files under `dir` (symlinks are not followed).
pub(super) fn dir_size(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d)? {
            let entry = entry?;
            let meta = entry.path().symlink_metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

/// Parses an image reference as a pod names it (Docker Hub defaults apply).
pub(super) fn parse_reference(reference: &str) -> Result<Reference, PullError> {
    super::reference::parse(reference).map_err(|reason| PullError::InvalidReference {
        reference: reference.to_owned(),
        reason,
    })
}

/// Deletes the `*.tmp-*` files and directories interrupted writes left in `dir`.
fn remove_temporaries(dir: &Path) -> Result<(), StoreError> {
    for entry in fs::read_dir(dir).map_err(StoreError::io(dir))? {
        let entry = entry.map_err(StoreError::io(dir))?;
        if !entry.file_name().to_string_lossy().contains(".tmp-") {
            continue;
        }
        let path = entry.path();
        let result = if entry.file_type().map_err(StoreError::io(&path))?.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        result.map_err(StoreError::io(&path))?;
    }
    Ok(())
}

/// One async mutex per key (image, blob or rootfs digest).
#[derive(Debug, Default)]
struct KeyedLocks {
    map: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl KeyedLocks {
    async fn lock(&self, key: String) -> tokio::sync::OwnedMutexGuard<()> {
        let mutex = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            // Forget the locks nobody holds or waits for.
            map.retain(|_, m| Arc::strong_count(m) > 1);
            map.entry(key).or_default().clone()
        };
        mutex.lock_owned().await
    }
}

/// Releases pins on drop.
struct PinGuard<'a> {
    pins: &'a Mutex<HashMap<String, usize>>,
    keys: Vec<String>,
}

impl Drop for PinGuard<'_> {
    fn drop(&mut self) {
        let mut pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        for k in &self.keys {
            if let Some(n) = pins.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    pins.remove(k);
                }
            }
        }
    }
}
