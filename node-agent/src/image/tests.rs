//! The store against [`MemorySource`]: pulls, resumes, refusals and GC.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use super::testing::{BuiltImage, Entry, ImageSpec, build_image, image_config};
use super::*;

const REF: &str = "registry.example:5000/flotilla/app:1";

fn spec(marker: &str) -> ImageSpec {
    // A big, poorly compressible file, so a layer spans many stream chunks.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    ImageSpec::new(
        Platform::of_this_device(),
        vec![
            vec![
                Entry::dir("bin"),
                Entry::file("bin/tool", 0o755, noise),
                Entry::symlink("bin/sh", "tool"),
            ],
            vec![Entry::dir("etc"), Entry::file("etc/marker", 0o644, marker)],
        ],
    )
}

fn image(marker: &str) -> BuiltImage {
    build_image(&spec(marker))
}

fn store(dir: &Path, source: &MemorySource) -> ImageStore<MemorySource> {
    ImageStore::open(dir.join("images"), source.clone(), u64::MAX).unwrap()
}

/// Every file under the store, relative to it (to show nothing was left).
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p.clone());
            }
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn a_pulled_image_is_unpacked_recorded_and_found_again() {
    let dir = tempfile::tempdir().unwrap();
    let source = MemorySource::new();
    let built = image("one");
    let digest = source.add_image(REF, &built);
    let store = store(dir.path(), &source);

    let pulled = store.pull(REF).await.unwrap();
    assert_eq!(pulled.digest, digest);
    assert_eq!(
        pulled.id,
        format!("registry.example:5000/flotilla/app@{digest}")
    );
    assert_eq!(
        std::fs::read(pulled.rootfs.join("etc/marker")).unwrap(),
        b"one"
    );
    assert_eq!(
        std::fs::read_link(pulled.rootfs.join("bin/sh")).unwrap(),
        Path::new("tool")
    );
    assert!(pulled.size_bytes > 200_000);

    let got = store.get(REF).unwrap().expect("stored");
    assert_eq!(
        (got.id.as_str(), &got.rootfs),
        (pulled.id.as_str(), &pulled.rootfs)
    );
    assert!(
        store
            .get("registry.example:5000/flotilla/app:2")
            .unwrap()
            .is_none()
    );
    let by_id = store.get(&pulled.id).unwrap().expect("found by id");
    assert_eq!(by_id.digest, digest);

    // A new store on the same directory knows the image (index.json).
    let reopened = self::store(dir.path(), &source);
    let list = reopened.list();
    assert_eq!(list.len(), 1);
    assert!(list[0].names.contains(&REF.to_owned()) && list[0].names.contains(&pulled.id));
    assert_eq!(list[0].size_bytes, pulled.size_bytes);
}

#[tokio::test]
async fn a_download_cut_halfway_resumes_from_the_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let source = MemorySource::new();
    let built = image("resume");
    source.add_image(REF, &built);
    let big = &built.layers[0];
    source.inject(big.digest.as_str(), Fault::CutAfter(50_000));
    let store = store(dir.path(), &source);

    let err = store.pull(REF).await.unwrap_err();
    assert!(
        matches!(err, PullError::Unreachable { .. }) && err.retryable(),
        "{err}"
    );
    let partial = dir
        .path()
        .join(format!("images/blobs/sha256/{}.partial", big.digest.hex()));
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), 50_000);

    store.pull(REF).await.unwrap();
    let requests: Vec<_> = source
        .blob_requests()
        .into_iter()
        .filter(|r| r.digest == big.digest.as_str())
        .collect();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].offset, 50_000);
    assert_eq!(
        requests[1].bytes_sent,
        big.bytes.len() as u64 - 50_000,
        "only the rest was sent"
    );
    assert!(!partial.exists());
}

#[tokio::test]
async fn a_server_that_ignores_the_range_restarts_the_download_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let source = MemorySource::new();
    let built = image("full");
    source.add_image(REF, &built);
    let big = &built.layers[0];
    source.inject(big.digest.as_str(), Fault::CutAfter(30_000));
    source.inject(big.digest.as_str(), Fault::IgnoreRange);
    let store = store(dir.path(), &source);

    store.pull(REF).await.unwrap_err();
    let image = store.pull(REF).await.unwrap();
    let last = source
        .blob_requests()
        .into_iter()
        .rfind(|r| r.digest == big.digest.as_str())
        .unwrap();
    assert_eq!(
        (last.offset, last.bytes_sent),
        (30_000, big.bytes.len() as u64)
    );
    let stored = std::fs::read(
        dir.path()
            .join("images/blobs/sha256")
            .join(big.digest.hex()),
    )
    .unwrap();
    assert_eq!(
        stored, big.bytes,
        "the old prefix was dropped, not prepended"
    );
    assert_eq!(
        std::fs::read(image.rootfs.join("etc/marker")).unwrap(),
        b"full"
    );
}

#[tokio::test]
async fn a_blob_with_the_wrong_digest_is_refused_and_nothing_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let source = MemorySource::new();
    let built = image("tampered");
    source.add_image(REF, &built);
    let mut evil = built.layers[1].bytes.to_vec();
    evil[20] ^= 0xff;
    source.tamper_blob(&built.layers[1].digest, evil);
    let store = store(dir.path(), &source);

    let err = store.pull(REF).await.unwrap_err();
    assert!(matches!(err, PullError::DigestMismatch { .. }), "{err}");
    let left = files(&dir.path().join("images"));
    assert!(
        !left
            .iter()
            .any(|f| f.contains(built.layers[1].digest.hex())),
        "{left:?}"
    );
    assert!(!left.iter().any(|f| f.starts_with("rootfs/")), "{left:?}");
    assert!(store.get(REF).unwrap().is_none());
    assert!(store.list().is_empty());
}

#[tokio::test]
async fn a_blob_longer_than_its_descriptor_is_cut_at_the_descriptor_size() {
    let dir = tempfile::tempdir().unwrap();
    let source = MemorySource::new();
    let built = image("long");
    source.add_image(REF, &built);
    let mut longer = built.layers[1].bytes.to_vec();
    longer.extend_from_slice(&[0u8; 10_000]);
    source.tamper_blob(&built.layers[1].digest, longer);
    let store = store(dir.path(), &source);

    store.pull(REF).await.unwrap();
    let stored = dir
        .path()
        .join("images/blobs/sha256")
        .join(built.layers[1].digest.hex());
    assert_eq!(
        std::fs::metadata(stored).unwrap().len(),
        built.layers[1].bytes.len() as u64
    );
}

#[tokio::test]
async fn a_config_whose_diff_ids_do_not_match_the_layers_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let source = MemorySource::new();
    let built = image("diff");
    // The diff_ids of the layers in swapped order.
    let mut swapped = built.layers.clone();
    swapped.swap(0, 1);
    let bad = built.with_config(image_config(&spec("diff"), &swapped));
    source.add_image(REF, &bad);
    let store = store(dir.path(), &source);

    let err = store.pull(REF).await.unwrap_err();
    assert!(
        matches!(err, PullError::DiffIdMismatch { .. }) && !err.retryable(),
        "{err}"
    );
    let left = files(&dir.path().join("images"));
    assert!(!left.iter().any(|f| f.starts_with("rootfs/")), "{left:?}");
    assert!(store.list().is_empty());

    // One diff_id too few is refused before anything is downloaded.
    let short = built.with_config(image_config(&spec("diff"), &built.layers[..1]));
    source.add_image("registry.example:5000/flotilla/app:short", &short);
    let requests = source.blob_requests().len();
    let err = store
        .pull("registry.example:5000/flotilla/app:short")
        .await
        .unwrap_err();
    assert!(matches!(err, PullError::BadContent { .. }), "{err}");
    assert!(err.reason().contains("1 diff_ids for 2 layers"), "{err}");
    assert_eq!(
        source.blob_requests().len(),
        requests + 1,
        "only the config was fetched"
    );
}

#[tokio::test]
async fn an_image_for_another_architecture_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let source = MemorySource::new();
    let mut other = spec("other");
    other.platform = Platform::new("linux", "s390x", None);
    source.add_image(REF, &build_image(&other));
    let err = store(dir.path(), &source).pull(REF).await.unwrap_err();
    assert!(matches!(err, PullError::NoMatchingPlatform { .. }), "{err}");
    assert!(err.reason().contains("linux/s390x"), "{err}");
}

#[tokio::test]
async fn an_index_resolves_to_the_entry_for_the_stores_platform() {
    let dir = tempfile::tempdir().unwrap();
    let source = MemorySource::new();
    let built: Vec<BuiltImage> = [("arm64", Some("v8")), ("arm", Some("v7")), ("amd64", None)]
        .iter()
        .map(|(arch, variant)| {
            let mut s = spec(arch);
            s.platform = Platform::new("linux", arch, *variant);
            build_image(&s)
        })
        .collect();
    source.add_index(REF, &built.iter().collect::<Vec<_>>());
    for (i, want) in [("arm64", Some("v8")), ("arm", Some("v7")), ("amd64", None)]
        .into_iter()
        .enumerate()
    {
        let platform = Platform::new("linux", want.0, want.1);
        let root = dir.path().join(want.0);
        let store =
            ImageStore::open_for_platform(root, source.clone(), u64::MAX, platform).unwrap();
        let image = store.pull(REF).await.unwrap();
        assert_eq!(image.digest, built[i].manifest_digest);
        assert_eq!(
            std::fs::read(image.rootfs.join("etc/marker")).unwrap(),
            want.0.as_bytes()
        );
    }
    let riscv = ImageStore::open_for_platform(
        dir.path().join("riscv"),
        source.clone(),
        u64::MAX,
        Platform::new("linux", "riscv64", None),
    )
    .unwrap();
    let err = riscv.pull(REF).await.unwrap_err();
    assert!(
        err.reason().contains("linux/arm/v7"),
        "lists what there is: {err}"
    );
}

#[tokio::test]
async fn registry_refusals_keep_their_reason_and_are_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let source = MemorySource::new();
    source.add_image(REF, &image("x"));
    let store = store(dir.path(), &source);

    let missing = store
        .pull("registry.example:5000/flotilla/app:nope")
        .await
        .unwrap_err();
    assert!(matches!(missing, PullError::NotFound { .. }), "{missing}");
    assert!(missing.reason().contains("manifest unknown") && !missing.retryable());
    source.inject(REF, Fault::Unauthorized);
    let unauthorized = store.pull(REF).await.unwrap_err();
    assert!(matches!(unauthorized, PullError::Unauthorized { .. }) && !unauthorized.retryable());
    source.inject(REF, Fault::Unreachable);
    assert!(store.pull(REF).await.unwrap_err().retryable());
    let invalid = store.pull("Not A Reference!").await.unwrap_err();
    assert!(
        matches!(invalid, PullError::InvalidReference { .. }),
        "{invalid}"
    );
}

#[tokio::test]
async fn concurrent_pulls_of_one_image_download_each_blob_once() {
    let dir = tempfile::tempdir().unwrap();
    let source = MemorySource::new();
    let built = image("together");
    source.add_image(REF, &built);
    let store = Arc::new(store(dir.path(), &source));
    let pulls: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.pull(REF).await })
        })
        .collect();
    let mut ids = BTreeSet::new();
    for p in pulls {
        ids.insert(p.await.unwrap().unwrap().id);
    }
    assert_eq!(ids.len(), 1);
    let layer_fetches = source
        .blob_requests()
        .iter()
        .filter(|r| built.layers.iter().any(|l| l.digest.as_str() == r.digest))
        .count();
    assert_eq!(layer_fetches, 2, "each of the 2 layers once");
    let rootfs: Vec<_> = files(&dir.path().join("images/rootfs"));
    assert!(rootfs.iter().all(|f| !f.contains(".tmp-")), "{rootfs:?}");
}

#[tokio::test]
async fn gc_removes_images_no_tag_names_unless_they_are_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let source = MemorySource::new();
    let store = store(dir.path(), &source);
    source.add_image(REF, &image("v1"));
    let old = store.pull(REF).await.unwrap();
    // The tag moves to a new image.
    source.add_image(REF, &image("v2"));
    let new = store.pull(REF).await.unwrap();
    assert_ne!(old.rootfs, new.rootfs);

    // A container still runs on the old image: it stays.
    let report = store.gc(&BTreeSet::from([old.id.clone()])).unwrap();
    assert!(report.removed_images.is_empty());
    assert!(old.rootfs.join("etc/marker").exists());

    let report = store.gc(&BTreeSet::new()).unwrap();
    assert_eq!(report.removed_images, vec![old.id.clone()]);
    assert!(!old.rootfs.exists() && new.rootfs.exists());
    assert!(report.freed_bytes > 0);
    assert!(store.get(REF).unwrap().is_some());
    // The layer both share is kept; the old config and layer are gone.
    let blobs = files(&dir.path().join("images/blobs/sha256"));
    assert_eq!(
        blobs.len(),
        3,
        "the new config and layer, the shared layer: {blobs:?}"
    );
}

#[tokio::test]
async fn over_budget_gc_removes_the_least_recently_used_unused_images() {
    let dir = tempfile::tempdir().unwrap();
    let source = MemorySource::new();
    let probe = store(dir.path(), &source);
    let refs: Vec<String> = (0..3)
        .map(|i| format!("registry.example:5000/app{i}:1"))
        .collect();
    let mut sizes = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        source.add_image(r, &image(&format!("image {i}")));
        sizes.push(probe.pull(r).await.unwrap().size_bytes);
    }
    let total = probe.gc(&BTreeSet::new()).unwrap().used_bytes;
    drop(probe);
    // Room for about two of the three (they share one layer).
    let store = ImageStore::open(dir.path().join("images"), source.clone(), total - 10).unwrap();
    store
        .get(&refs[0])
        .unwrap()
        .expect("touch app0: now app1 is the oldest");

    // app1 is the least recently used, but in use: app2 goes.
    let report = store.gc(&BTreeSet::from([refs[1].clone()])).unwrap();
    assert_eq!(report.removed_images.len(), 1);
    assert!(
        report.removed_images[0].starts_with("registry.example:5000/app2@"),
        "{report:?}"
    );
    assert!(report.used_bytes <= total - 10);
    assert!(store.get(&refs[2]).unwrap().is_none());
    assert!(store.get(&refs[0]).unwrap().is_some() && store.get(&refs[1]).unwrap().is_some());
}

#[tokio::test]
async fn an_image_bigger_than_the_budget_is_refused_before_downloading() {
    let dir = tempfile::tempdir().unwrap();
    let source = MemorySource::new();
    source.add_image(REF, &image("big"));
    let store = ImageStore::open(dir.path().join("images"), source.clone(), 1000).unwrap();
    let err = store.pull(REF).await.unwrap_err();
    assert!(matches!(err, PullError::NoSpace { .. }), "{err}");
    assert_eq!(source.blob_requests().len(), 1, "only the config");
}

#[tokio::test]
async fn opening_the_store_removes_what_interrupted_writes_left() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    let source = MemorySource::new();
    drop(store(dir.path(), &source));
    std::fs::create_dir_all(root.join("rootfs/abc.tmp-1-0/bin")).unwrap();
    std::fs::write(root.join("index.json.tmp-77"), b"{").unwrap();
    std::fs::write(root.join("blobs/sha256/def.tmp-3"), b"x").unwrap();
    drop(store(dir.path(), &source));
    assert_eq!(files(&root), vec!["blobs", "blobs/sha256", "rootfs"]);
}

#[tokio::test]
async fn gc_keeps_the_partial_download_of_a_pull_in_flight_only() {
    let dir = tempfile::tempdir().unwrap();
    let source = MemorySource::new();
    let built = image("partial");
    source.add_image(REF, &built);
    source.inject(built.layers[0].digest.as_str(), Fault::CutAfter(10_000));
    let store = store(dir.path(), &source);
    store.pull(REF).await.unwrap_err();
    // Nothing pulls now: the partial file is garbage.
    let report = store.gc(&BTreeSet::new()).unwrap();
    assert!(report.freed_bytes >= 10_000, "{report:?}");
    assert!(files(&dir.path().join("images/blobs/sha256")).is_empty());
}
