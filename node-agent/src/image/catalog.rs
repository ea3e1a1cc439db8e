//! `index.json`: which references name which manifest, and what each stored
//! image consists of. Written whole, atomically, after every change.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::digest::Sha256;
use super::error::StoreError;

const VERSION: u32 = 1;

/// The store's record of its images.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Catalog {
    pub version: u32,
    /// A normalised reference (`registry/repository:tag` or `…@sha256:…`) →
    /// the digest of the platform manifest it was pulled as.
    pub references: BTreeMap<String, String>,
    /// Manifest digest → what the image is made of.
    pub images: BTreeMap<String, ImageRecord>,
    /// The last value given to an `ImageRecord::last_used`: a use counter,
    /// not a clock.
    pub next_use: u64,
}

/// One stored image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    /// `registry/repository`, for the image id.
    pub repository: String,
    pub config: Blob,
    pub layers: Vec<Blob>,
    /// Bytes of the unpacked rootfs (regular files).
    pub rootfs_bytes: u64,
    pub last_used: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Blob {
    pub digest: String,
    pub size: u64,
}

impl ImageRecord {
    /// The config and layer blobs' hex digests.
    pub fn blob_hexes(&self) -> impl Iterator<Item = &str> {
        std::iter::once(&self.config)
            .chain(&self.layers)
            .map(|b| b.digest.trim_start_matches("sha256:"))
    }

    pub fn config_hex(&self) -> &str {
        self.config.digest.trim_start_matches("sha256:")
    }

    /// Blobs plus rootfs, counting shared blobs once per image.
    pub fn size_bytes(&self) -> u64 {
        self.config.size + self.layers.iter().map(|b| b.size).sum::<u64>() + self.rootfs_bytes
    }
}

impl Catalog {
    /// Reads `path`; a missing file is an empty store. Every digest is
    /// checked, since its hex is used in paths.
    pub fn load(path: &Path) -> Result<Self, StoreError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Catalog {
                    version: VERSION,
                    ..Catalog::default()
                });
            }
            Err(e) => return Err(StoreError::io(path)(e)),
        };
        let corrupt = |reason: String| StoreError::Corrupt {
            path: path.to_owned(),
            reason,
        };
        let catalog: Catalog =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if catalog.version != VERSION {
            return Err(corrupt(format!("unknown version {}", catalog.version)));
        }
        for (digest, record) in &catalog.images {
            let blobs = std::iter::once(&record.config).chain(&record.layers);
            for d in std::iter::once(digest).chain(blobs.map(|b| &b.digest)) {
                Sha256::parse(d).map_err(corrupt)?;
            }
        }
        if let Some((r, d)) = catalog
            .references
            .iter()
            .find(|(_, d)| !catalog.images.contains_key(*d))
        {
            return Err(corrupt(format!("{r} names {d}, which is not stored")));
        }
        Ok(catalog)
    }

    /// Writes the catalog to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(self).expect("a catalog serialises");
        crate::state::write_atomic(path, &bytes).map_err(StoreError::io(path))
    }

    /// Marks an image used now; false if it already was the last one used
    /// (or is unknown), so that nothing changed and nothing needs saving.
    pub fn touch(&mut self, digest: &str) -> bool {
        let latest = self.next_use;
        match self.images.get_mut(digest) {
            // Uses count from 1: a record at 0 was never used.
            Some(record) if record.last_used == 0 || record.last_used != latest => {
                self.next_use += 1;
                record.last_used = self.next_use;
                true
            }
            _ => false,
        }
    }

    /// The references that name `digest`.
    pub fn names_of(&self, digest: &str) -> Vec<String> {
        self.references
            .iter()
            .filter(|(_, d)| *d == digest)
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// Removes an image and every reference to it.
    pub fn remove(&mut self, digest: &str) -> Option<ImageRecord> {
        self.references.retain(|_, d| d != digest);
        self.images.remove(digest)
    }

    /// Bytes on disk for these images: each blob and each rootfs once.
    pub fn usage(&self) -> u64 {
        let mut blobs = BTreeMap::new();
        let mut rootfs = BTreeMap::new();
        for record in self.images.values() {
            for b in std::iter::once(&record.config).chain(&record.layers) {
                blobs.insert(b.digest.as_str(), b.size);
            }
            rootfs.insert(record.config_hex(), record.rootfs_bytes);
        }
        blobs.values().sum::<u64>() + rootfs.values().sum::<u64>()
    }

    /// Hex digests of every blob and every rootfs (by config) still needed.
    pub fn live(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let blobs = self
            .images
            .values()
            .flat_map(|r| r.blob_hexes())
            .map(str::to_owned)
            .collect();
        let rootfs = self
            .images
            .values()
            .map(|r| r.config_hex().to_owned())
            .collect();
        (blobs, rootfs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(config: char, layers: &[(char, u64)], rootfs: u64) -> ImageRecord {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        ImageRecord {
            repository: "r.example/app".into(),
            config: Blob {
                digest: d(config),
                size: 1,
            },
            layers: layers
                .iter()
                .map(|(c, s)| Blob {
                    digest: d(*c),
                    size: *s,
                })
                .collect(),
            rootfs_bytes: rootfs,
            last_used: 0,
        }
    }

    #[test]
    fn usage_counts_shared_blobs_and_rootfs_once() {
        let mut c = Catalog::default();
        c.images.insert(
            format!("sha256:{}", "1".repeat(64)),
            record('a', &[('b', 100)], 1000),
        );
        c.images.insert(
            format!("sha256:{}", "2".repeat(64)),
            record('a', &[('b', 100)], 1000),
        );
        c.images.insert(
            format!("sha256:{}", "3".repeat(64)),
            record('c', &[('b', 100), ('d', 10)], 500),
        );
        assert_eq!(c.usage(), (1 + 100) + 1000 + (1 + 10) + 500);
    }

    #[test]
    fn touching_orders_images_by_use_and_the_last_used_again_changes_nothing() {
        let mut c = Catalog::default();
        let (one, two) = (
            format!("sha256:{}", "1".repeat(64)),
            format!("sha256:{}", "2".repeat(64)),
        );
        c.images.insert(one.clone(), record('a', &[], 1));
        c.images.insert(two.clone(), record('b', &[], 1));
        // Never used (0), then used: both count as changes.
        assert!(c.touch(&one));
        assert!(c.touch(&two));
        assert!(!c.touch(&two), "already the last one used");
        assert!(c.touch(&one));
        assert!(!c.touch(&one));
        assert!(c.images[&two].last_used < c.images[&one].last_used);
        assert!(!c.touch("sha256:unknown"));
        // A fresh record is not taken for the last used, even at counter 0.
        let mut fresh = Catalog::default();
        fresh.images.insert(one.clone(), record('a', &[], 1));
        assert!(fresh.touch(&one));
        assert_eq!(fresh.images[&one].last_used, 1);
    }

    #[test]
    fn a_catalog_survives_a_save_and_load_and_refuses_bad_digests() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        assert_eq!(Catalog::load(&path).unwrap().images.len(), 0);
        let mut c = Catalog::load(&path).unwrap();
        let digest = format!("sha256:{}", "1".repeat(64));
        c.images.insert(digest.clone(), record('a', &[('b', 1)], 2));
        c.references.insert("r.example/app:1".into(), digest);
        c.save(&path).unwrap();
        assert_eq!(Catalog::load(&path).unwrap(), c);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );

        let text = fs::read_to_string(&path)
            .unwrap()
            .replace(&"b".repeat(64), "../../etc");
        fs::write(&path, text).unwrap();
        assert!(matches!(
            Catalog::load(&path),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
