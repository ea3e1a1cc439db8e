//! Building OCI images from a list of files, for tests: reproducible gzip
//! tar layers, a config with correct diff_ids, the manifest, and indexes.
//! Used by this crate's tests (with [`MemorySource`](super::MemorySource))
//! and by the end-to-end fixtures that push to a real registry.

use std::io::Write;

use bytes::Bytes;
use serde_json::json;

use super::digest::{Sha256, sha256_of};
use super::memory::MemorySource;
use super::platform::Platform;
use super::source::{OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};

/// One entry of a layer.
#[derive(Clone, Debug)]
pub enum Entry {
    File {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
    Dir {
        path: String,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
}

impl Entry {
    pub fn file(path: &str, mode: u32, data: impl Into<Vec<u8>>) -> Self {
        Entry::File {
            path: path.into(),
            mode,
            data: data.into(),
        }
    }
    pub fn dir(path: &str) -> Self {
        Entry::Dir {
            path: path.into(),
            mode: 0o755,
        }
    }
    pub fn symlink(path: &str, target: &str) -> Self {
        Entry::Symlink {
            path: path.into(),
            target: target.into(),
        }
    }
}

/// What goes into an image.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    pub platform: Platform,
    pub layers: Vec<Vec<Entry>>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub working_dir: String,
}

impl ImageSpec {
    /// An image for `platform` with these layers and no command.
    pub fn new(platform: Platform, layers: Vec<Vec<Entry>>) -> Self {
        ImageSpec {
            platform,
            layers,
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            user: String::new(),
            working_dir: String::new(),
        }
    }
}

/// A gzip layer.
#[derive(Clone, Debug)]
pub struct BuiltLayer {
    pub bytes: Bytes,
    pub digest: Sha256,
    /// The digest of the uncompressed tar.
    pub diff_id: Sha256,
}

/// An image's blobs and manifest, ready to push.
#[derive(Clone, Debug)]
pub struct BuiltImage {
    pub platform: Platform,
    pub layers: Vec<BuiltLayer>,
    pub config: Bytes,
    pub config_digest: Sha256,
    pub manifest: Bytes,
    pub manifest_digest: Sha256,
}

/// A reproducible tar of `entries` (mtime, uid and gid 0), gzip-compressed.
pub fn build_layer(entries: &[Entry]) -> BuiltLayer {
    let mut tar = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        let (path, data): (&str, &[u8]) = match entry {
            Entry::File { path, mode, data } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(data.len() as u64);
                (path, data)
            }
            Entry::Dir { path, mode } => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                header.set_size(0);
                (path, &[])
            }
            Entry::Symlink { path, target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                header.set_link_name(target).expect("a short link target");
                (path, &[])
            }
        };
        tar.append_data(&mut header, path, data)
            .expect("tar into memory");
    }
    let tar = tar.into_inner().expect("tar into memory");
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).expect("gzip into memory");
    let bytes = Bytes::from(gz.finish().expect("gzip into memory"));
    BuiltLayer {
        digest: sha256_of(&bytes),
        diff_id: sha256_of(&tar),
        bytes,
    }
}

/// Builds the layers, config and OCI manifest of `spec`.
pub fn build_image(spec: &ImageSpec) -> BuiltImage {
    let layers: Vec<BuiltLayer> = spec.layers.iter().map(|l| build_layer(l)).collect();
    let config = image_config(spec, &layers);
    let manifest = manifest_for(&config, &layers);
    BuiltImage {
        platform: spec.platform.clone(),
        manifest_digest: sha256_of(&manifest),
        manifest,
        config_digest: sha256_of(&config),
        config,
        layers,
    }
}

impl BuiltImage {
    /// The same layers with another config (and so another manifest): for
    /// testing configs that do not match their layers.
    pub fn with_config(&self, config: Bytes) -> BuiltImage {
        let manifest = manifest_for(&config, &self.layers);
        BuiltImage {
            platform: self.platform.clone(),
            layers: self.layers.clone(),
            config_digest: sha256_of(&config),
            config,
            manifest_digest: sha256_of(&manifest),
            manifest,
        }
    }
}

/// An OCI image manifest for this config and these layers.
pub fn manifest_for(config: &Bytes, layers: &[BuiltLayer]) -> Bytes {
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": sha256_of(config).as_str(), "size": config.len() },
        "layers": layers.iter().map(|l| json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": l.digest.as_str(),
            "size": l.bytes.len(),
        })).collect::<Vec<_>>(),
    });
    Bytes::from(serde_json::to_vec(&manifest).expect("json"))
}

/// The config JSON for `spec` with these layers' diff_ids.
pub fn image_config(spec: &ImageSpec, layers: &[BuiltLayer]) -> Bytes {
    let mut config = json!({
        "architecture": spec.platform.architecture,
        "os": spec.platform.os,
        "config": {
            "Env": spec.env,
            "Entrypoint": spec.entrypoint,
            "Cmd": spec.cmd,
            "User": spec.user,
            "WorkingDir": spec.working_dir,
        },
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.diff_id.as_str()).collect::<Vec<_>>(),
        },
    });
    if let Some(v) = &spec.platform.variant {
        config["variant"] = json!(v);
    }
    Bytes::from(serde_json::to_vec(&config).expect("json"))
}

/// An OCI index over `images`, each entry with its image's platform.
pub fn build_index(images: &[&BuiltImage]) -> Bytes {
    let manifests: Vec<_> = images
        .iter()
        .map(|image| {
            let mut platform = json!({
                "architecture": image.platform.architecture,
                "os": image.platform.os,
            });
            if let Some(v) = &image.platform.variant {
                platform["variant"] = json!(v);
            }
            json!({
                "mediaType": OCI_MANIFEST,
                "digest": image.manifest_digest.as_str(),
                "size": image.manifest.len(),
                "platform": platform,
            })
        })
        .collect();
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    Bytes::from(serde_json::to_vec(&index).expect("json"))
}

impl MemorySource {
    /// Adds an image's blobs and its manifest under `reference`.
    pub fn add_image(&self, reference: &str, image: &BuiltImage) -> Sha256 {
        self.add_blob(image.config.clone());
        for layer in &image.layers {
            self.add_blob(layer.bytes.clone());
        }
        self.add_manifest(reference, image.manifest.clone())
    }

    /// Adds several images and an index over them under `reference`.
    pub fn add_index(&self, reference: &str, images: &[&BuiltImage]) -> Sha256 {
        let r: oci_client::Reference = reference.parse().expect("a valid reference");
        for image in images {
            let by_digest = format!(
                "{}/{}@{}",
                r.registry(),
                r.repository(),
                image.manifest_digest
            );
            self.add_image(&by_digest, image);
        }
        self.add_manifest(reference, build_index(images))
    }
}
