//! Where images come from: the [`ImageSource`] trait (a registry, or the
//! in-memory one tests use) and the resolution of a reference to the
//! manifest and config for this device's platform, with every input checked.

use std::future::Future;
use std::io;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use oci_client::Reference;
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest, MediaType};

use super::digest::{Sha256, sha256_of};
use super::error::PullError;
use super::platform::{self, Platform};

/// Manifests and indexes bigger than this are refused.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// Image configs bigger than this are refused.
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// What a pull asks the registry for.
pub const ACCEPTED_MANIFESTS: &[&str] = &[
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST,
];

/// A manifest or index as the source returned it.
#[derive(Clone, Debug)]
pub struct FetchedManifest {
    /// The digest the source claims for `bytes` (checked again by the caller).
    pub digest: String,
    pub bytes: Bytes,
}

/// A blob's bytes from some offset on.
pub struct BlobStream {
    /// Whether the source honoured the requested offset. If not, the stream
    /// starts at byte 0 and whatever was downloaded before must be dropped.
    pub ranged: bool,
    pub stream: BoxStream<'static, io::Result<Bytes>>,
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStream")
            .field("ranged", &self.ranged)
            .finish_non_exhaustive()
    }
}

/// The platform manifest of an image and its config, verified.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The digest of the platform manifest (not of the index).
    pub manifest_digest: Sha256,
    pub manifest: ImageManifest,
    pub config_digest: Sha256,
    pub config_bytes: Bytes,
    pub config: ImageConfiguration,
    /// The layers' digests, sizes and media types, in order.
    pub layers: Vec<Layer>,
}

/// One layer of a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    pub digest: Sha256,
    pub size: u64,
    pub media_type: String,
    /// The config's diff_id for this layer (the digest of the uncompressed tar).
    pub diff_id: Sha256,
}

/// A place images are pulled from. Implementations only move bytes; all
/// validation happens in [`ImageSource::resolve`] and the store.
pub trait ImageSource: Send + Sync + 'static {
    /// The manifest or index `reference` names, by tag or by digest.
    fn fetch_manifest(
        &self,
        reference: &Reference,
    ) -> impl Future<Output = Result<FetchedManifest, PullError>> + Send;

    /// The blob `digest` of `reference`'s repository from byte `offset` on.
    fn fetch_blob(
        &self,
        reference: &Reference,
        digest: &Sha256,
        offset: u64,
    ) -> impl Future<Output = Result<BlobStream, PullError>> + Send;

    /// Resolves `reference` for `platform`: the platform manifest (chosen from
    /// an index if there is one), its config, all checked.
    fn resolve(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> impl Future<Output = Result<Resolved, PullError>> + Send
    where
        Self: Sized,
    {
        resolve(self, reference, platform)
    }
}

/// See [`ImageSource::resolve`].
pub async fn resolve<S: ImageSource>(
    source: &S,
    reference: &Reference,
    platform: &Platform,
) -> Result<Resolved, PullError> {
    let name = reference.whole();
    let top = source.fetch_manifest(reference).await?;
    let top_digest = check_manifest(&name, &top, reference.digest(), None)?;
    let manifest_bytes;
    let manifest_digest;
    if is_index(&top.bytes) {
        let index: ImageIndex = parse_json(&name, &top.bytes)?;
        let Some(entry) = platform.select(index.manifests()) else {
            let available: Vec<String> = index.manifests().iter().map(platform::describe).collect();
            return Err(PullError::NoMatchingPlatform {
                reference: name,
                wanted: platform.to_string(),
                available: available.join(", "),
            });
        };
        let digest = Sha256::parse(entry.digest().as_ref()).map_err(|reason| bad(&name, reason))?;
        let by_digest = reference.clone_with_digest(digest.to_string());
        let fetched = source.fetch_manifest(&by_digest).await?;
        manifest_digest =
            check_manifest(&name, &fetched, Some(digest.as_str()), Some(entry.size()))?;
        manifest_bytes = fetched.bytes;
    } else {
        manifest_digest = top_digest;
        manifest_bytes = top.bytes;
    }
    let manifest: ImageManifest = parse_json(&name, &manifest_bytes)?;
    check_manifest_media_type(&name, &manifest)?;

    let config_desc = manifest.config();
    let config_digest = Sha256::parse(config_desc.digest().as_ref()).map_err(|r| bad(&name, r))?;
    match config_desc.media_type().to_string().as_str() {
        OCI_CONFIG | DOCKER_CONFIG => {}
        other => {
            return Err(bad(
                &name,
                format!("config media type {other} is not an image config"),
            ));
        }
    }
    if config_desc.size() > MAX_CONFIG_BYTES {
        return Err(PullError::TooLarge {
            what: format!("{name}: config"),
            size: config_desc.size(),
            limit: MAX_CONFIG_BYTES,
        });
    }
    let config_bytes =
        fetch_small_blob(source, reference, &config_digest, config_desc.size()).await?;
    let config: ImageConfiguration = parse_json(&format!("{name}: config"), &config_bytes)?;
    let layers = check_config(&name, platform, &manifest, &config)?;
    Ok(Resolved {
        manifest_digest,
        manifest,
        config_digest,
        config_bytes,
        config,
        layers,
    })
}

/// Size cap and digest checks of a fetched manifest; returns its digest.
fn check_manifest(
    name: &str,
    fetched: &FetchedManifest,
    expected: Option<&str>,
    expected_size: Option<u64>,
) -> Result<Sha256, PullError> {
    if fetched.bytes.len() > MAX_MANIFEST_BYTES {
        return Err(PullError::TooLarge {
            what: format!("{name}: manifest"),
            size: fetched.bytes.len() as u64,
            limit: MAX_MANIFEST_BYTES as u64,
        });
    }
    let actual = sha256_of(&fetched.bytes);
    for claimed in [Some(fetched.digest.as_str()), expected]
        .into_iter()
        .flatten()
    {
        if claimed != actual.as_str() {
            return Err(PullError::DigestMismatch {
                what: format!("{name}: manifest"),
                expected: claimed.to_owned(),
                actual: actual.to_string(),
            });
        }
    }
    if let Some(size) = expected_size
        && size != fetched.bytes.len() as u64
    {
        return Err(bad(
            name,
            format!(
                "manifest is {} bytes, the index says {size}",
                fetched.bytes.len()
            ),
        ));
    }
    Ok(actual)
}

/// Whether a manifest body is an index (by its media type, or by shape when
/// an OCI index leaves the media type out).
fn is_index(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(body) {
        Ok(Probe {
            media_type: Some(t),
            ..
        }) => t == OCI_INDEX || t == DOCKER_MANIFEST_LIST,
        Ok(Probe { manifests, .. }) => manifests.is_some(),
        Err(_) => false,
    }
}

fn check_manifest_media_type(name: &str, manifest: &ImageManifest) -> Result<(), PullError> {
    match manifest.media_type() {
        None => Ok(()),
        Some(MediaType::ImageManifest) => Ok(()),
        Some(other) if other.to_string() == DOCKER_MANIFEST => Ok(()),
        Some(other) => Err(bad(
            name,
            format!("media type {other} is not an image manifest"),
        )),
    }
}

/// Checks the config against the device's platform and the manifest's
/// layers; returns the layers paired with their diff_ids.
fn check_config(
    name: &str,
    platform: &Platform,
    manifest: &ImageManifest,
    config: &ImageConfiguration,
) -> Result<Vec<Layer>, PullError> {
    let (os, arch) = (config.os().to_string(), config.architecture().to_string());
    if platform
        .rank(&os, &arch, config.variant().as_deref())
        .is_none()
    {
        let mut built_for = format!("{os}/{arch}");
        if let Some(v) = config.variant() {
            built_for = format!("{built_for}/{v}");
        }
        return Err(PullError::NoMatchingPlatform {
            reference: name.to_owned(),
            wanted: platform.to_string(),
            available: built_for,
        });
    }
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(bad(
            name,
            format!(
                "the config lists {} diff_ids for {} layers",
                diff_ids.len(),
                manifest.layers().len()
            ),
        ));
    }
    manifest
        .layers()
        .iter()
        .zip(diff_ids)
        .map(|(layer, diff_id)| {
            Ok(Layer {
                digest: Sha256::parse(layer.digest().as_ref()).map_err(|r| bad(name, r))?,
                size: layer.size(),
                media_type: layer.media_type().to_string(),
                diff_id: Sha256::parse(diff_id).map_err(|r| bad(name, format!("diff_id: {r}")))?,
            })
        })
        .collect()
}

/// Reads a small blob whole (at most `size` bytes) and checks its digest.
async fn fetch_small_blob<S: ImageSource>(
    source: &S,
    reference: &Reference,
    digest: &Sha256,
    size: u64,
) -> Result<Bytes, PullError> {
    let what = format!("{}: blob {digest}", reference.whole());
    let mut blob = source.fetch_blob(reference, digest, 0).await?;
    let mut buf = BytesMut::new();
    while let Some(chunk) = blob.stream.next().await {
        let chunk = chunk.map_err(|e| PullError::Unreachable {
            registry: reference.registry().to_owned(),
            reason: format!("reading {what}: {e}"),
        })?;
        let room = size as usize - buf.len();
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() as u64 == size {
            break;
        }
    }
    if (buf.len() as u64) < size {
        return Err(PullError::Unreachable {
            registry: reference.registry().to_owned(),
            reason: format!("{what} ended after {} of {size} bytes", buf.len()),
        });
    }
    let actual = sha256_of(&buf);
    if &actual != digest {
        return Err(PullError::DigestMismatch {
            what,
            expected: digest.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(buf.freeze())
}

fn parse_json<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, PullError> {
    serde_json::from_slice(bytes).map_err(|e| bad(what, format!("invalid JSON: {e}")))
}

fn bad(what: &str, reason: impl Into<String>) -> PullError {
    PullError::BadContent {
        what: what.to_owned(),
        reason: reason.into(),
    }
}
