//! [`MemorySource`]: an in-memory registry for tests, with failures on
//! demand (not found, unauthorized, a stream cut after N bytes, ranges
//! ignored, tampered blobs) and a log of the blob requests it served.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use futures_util::StreamExt;
use oci_client::Reference;

use super::digest::{Sha256, sha256_of};
use super::error::PullError;
use super::source::{BlobStream, FetchedManifest, ImageSource};

/// A failure the next matching request meets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    NotFound,
    Unauthorized,
    Denied,
    Unreachable,
    /// Blobs only: the stream breaks after this many bytes.
    CutAfter(u64),
    /// Blobs only: the request's offset is ignored and the whole blob sent.
    IgnoreRange,
}

/// One blob request as the source saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRequest {
    pub digest: String,
    pub offset: u64,
    /// Bytes the response carried (before any cut).
    pub bytes_sent: u64,
}

/// An in-memory registry: manifests by `repository:tag` or `repository@digest`,
/// blobs by digest (shared by all repositories).
#[derive(Clone, Debug, Default)]
pub struct MemorySource {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    manifests: HashMap<String, Bytes>,
    blobs: HashMap<String, Bytes>,
    /// Faults by manifest key or blob digest, consumed in order.
    faults: HashMap<String, VecDeque<Fault>>,
    blob_log: Vec<BlobRequest>,
    manifest_requests: usize,
}

impl MemorySource {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a blob; returns its digest.
    pub fn add_blob(&self, bytes: impl Into<Bytes>) -> Sha256 {
        let bytes = bytes.into();
        let digest = sha256_of(&bytes);
        self.lock().blobs.insert(digest.to_string(), bytes);
        digest
    }

    /// Serves `bytes` under `digest` even though they do not hash to it.
    pub fn tamper_blob(&self, digest: &Sha256, bytes: impl Into<Bytes>) {
        self.lock().blobs.insert(digest.to_string(), bytes.into());
    }

    /// Stores a manifest or index under `reference` (its tag, if it has one)
    /// and under its digest; returns the digest.
    pub fn add_manifest(&self, reference: &str, bytes: impl Into<Bytes>) -> Sha256 {
        let bytes = bytes.into();
        let digest = sha256_of(&bytes);
        let r: Reference = reference.parse().expect("a valid reference");
        let mut inner = self.lock();
        inner
            .manifests
            .insert(digest_key(&r, &digest), bytes.clone());
        if r.digest().is_none() {
            inner.manifests.insert(tag_key(&r), bytes);
        }
        digest
    }

    /// Makes the next request for `target` (a reference as given to a pull,
    /// or a blob digest) fail with `fault`; several faults queue up.
    pub fn inject(&self, target: &str, fault: Fault) {
        let key = match super::reference::parse(target) {
            Ok(r) if !target.starts_with("sha256:") => request_key(&r),
            _ => target.to_owned(),
        };
        self.lock().faults.entry(key).or_default().push_back(fault);
    }

    /// The blob requests served so far, in order.
    pub fn blob_requests(&self) -> Vec<BlobRequest> {
        self.lock().blob_log.clone()
    }

    /// How many manifest requests were made.
    pub fn manifest_requests(&self) -> usize {
        self.lock().manifest_requests
    }

    fn take_fault(&self, key: &str) -> Option<Fault> {
        self.lock().faults.get_mut(key)?.pop_front()
    }
}

fn tag_key(r: &Reference) -> String {
    format!(
        "{}/{}:{}",
        r.registry(),
        r.repository(),
        r.tag().unwrap_or("latest")
    )
}

fn digest_key(r: &Reference, digest: &Sha256) -> String {
    format!("{}/{}@{digest}", r.registry(), r.repository())
}

fn request_key(r: &Reference) -> String {
    match r.digest() {
        Some(d) => format!("{}/{}@{d}", r.registry(), r.repository()),
        None => tag_key(r),
    }
}

fn fault_error(fault: &Fault, r: &Reference, what: &str) -> Option<PullError> {
    let reference = r.whole();
    Some(match fault {
        Fault::NotFound => PullError::NotFound {
            reference,
            reason: format!("{what} unknown"),
        },
        Fault::Unauthorized => PullError::Unauthorized {
            reference,
            reason: "authentication required".into(),
        },
        Fault::Denied => PullError::Denied {
            reference,
            reason: "requested access to the resource is denied".into(),
        },
        Fault::Unreachable => PullError::Unreachable {
            registry: r.registry().into(),
            reason: "connection refused".into(),
        },
        Fault::CutAfter(_) | Fault::IgnoreRange => return None,
    })
}

impl ImageSource for MemorySource {
    async fn fetch_manifest(&self, reference: &Reference) -> Result<FetchedManifest, PullError> {
        let key = request_key(reference);
        self.lock().manifest_requests += 1;
        if let Some(fault) = self.take_fault(&key)
            && let Some(e) = fault_error(&fault, reference, "manifest")
        {
            return Err(e);
        }
        let bytes = self.lock().manifests.get(&key).cloned();
        let bytes = bytes.ok_or_else(|| PullError::NotFound {
            reference: reference.whole(),
            reason: "manifest unknown".into(),
        })?;
        Ok(FetchedManifest {
            digest: sha256_of(&bytes).to_string(),
            bytes,
        })
    }

    async fn fetch_blob(
        &self,
        reference: &Reference,
        digest: &Sha256,
        offset: u64,
    ) -> Result<BlobStream, PullError> {
        let fault = self.take_fault(digest.as_str());
        if let Some(e) = fault
            .as_ref()
            .and_then(|f| fault_error(f, reference, "blob"))
        {
            return Err(e);
        }
        let blob = self.lock().blobs.get(digest.as_str()).cloned();
        let blob = blob.ok_or_else(|| PullError::NotFound {
            reference: reference.whole(),
            reason: "blob unknown to registry".into(),
        })?;
        let ranged = offset > 0 && fault != Some(Fault::IgnoreRange);
        let start = if ranged {
            (offset as usize).min(blob.len())
        } else {
            0
        };
        let body = blob.slice(start..);
        self.lock().blob_log.push(BlobRequest {
            digest: digest.to_string(),
            offset,
            bytes_sent: body.len() as u64,
        });
        let cut = match fault {
            Some(Fault::CutAfter(n)) => Some(n as usize),
            _ => None,
        };
        let mut items: Vec<io::Result<Bytes>> = Vec::new();
        let served = cut.unwrap_or(body.len()).min(body.len());
        let mut at = 0;
        while at < served {
            let end = (at + 16 * 1024).min(served);
            items.push(Ok(body.slice(at..end)));
            at = end;
        }
        if cut.is_some_and(|n| n < body.len()) {
            items.push(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection reset",
            )));
        }
        Ok(BlobStream {
            ranged,
            stream: futures_util::stream::iter(items).boxed(),
        })
    }
}
