//! The agent's image store against a real registry (Debian's docker-registry
//! on a loopback port): anonymous and basic-auth pulls, platform choice from
//! a multi-arch index, registry errors, resumed downloads, plain HTTP only
//! when allowed.

use std::sync::{Arc, Mutex};

use flotilla_agent::image::{
    Credentials, ImageStore, Platform, PullError, RegistryConfig, RegistrySource,
};
use flotilla_tests::oci_image::{
    Entry, ImageSpec, build_image, busybox_image, push_client, push_image, push_index,
};
use flotilla_tests::registry::{PASSWORD, Registry, RegistryOptions, USER};
use oci_client::secrets::RegistryAuth;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn plain_http(host: &str) -> RegistryConfig {
    RegistryConfig {
        plain_http: vec![host.to_owned()],
        ..RegistryConfig::default()
    }
}

fn store(dir: &std::path::Path, config: RegistryConfig) -> ImageStore<RegistrySource> {
    let source = RegistrySource::new(config).expect("registry client");
    ImageStore::open(dir.join("images"), source, u64::MAX).expect("store")
}

#[tokio::test]
async fn busybox_pulled_anonymously_has_a_runnable_rootfs() {
    let registry = Registry::start(RegistryOptions::default()).unwrap();
    let host = registry.host();
    let reference = format!("{host}/flotilla/busybox:1");
    let image = busybox_image(Platform::of_this_device()).unwrap();
    let client = push_client(&host).unwrap();
    push_image(&client, &reference, &image, &RegistryAuth::Anonymous)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), plain_http(&host));
    let pulled = store.pull(&reference).await.unwrap();
    assert_eq!(pulled.digest, image.manifest_digest);
    assert_eq!(
        pulled.id,
        format!("{host}/flotilla/busybox@{}", image.manifest_digest)
    );
    let busybox = std::fs::read(pulled.rootfs.join("bin/busybox")).unwrap();
    assert_eq!(busybox, std::fs::read("/bin/busybox").unwrap());
    assert_eq!(
        std::fs::read_link(pulled.rootfs.join("bin/sh"))
            .unwrap()
            .to_str(),
        Some("busybox")
    );
    let cmd = pulled
        .config
        .config()
        .as_ref()
        .and_then(|c| c.cmd().clone());
    assert_eq!(cmd, Some(vec!["sh".to_owned()]));
    let out = std::process::Command::new(pulled.rootfs.join("bin/busybox"))
        .args(["echo", "hello"])
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"hello\n");
    assert!(store.get(&reference).unwrap().is_some());
}

#[tokio::test]
async fn a_multi_arch_index_resolves_to_the_devices_platform_and_to_explicit_ones() {
    let registry = Registry::start(RegistryOptions::default()).unwrap();
    let host = registry.host();
    let reference = format!("{host}/flotilla/multi:1");
    let platforms = [
        Platform::new("linux", "arm64", Some("v8")),
        Platform::new("linux", "arm", Some("v7")),
        Platform::new("linux", "amd64", None),
    ];
    let images: Vec<_> = platforms
        .iter()
        .map(|p| {
            let layer = vec![Entry::file("platform", 0o644, p.to_string())];
            build_image(&ImageSpec::new(p.clone(), vec![layer]))
        })
        .collect();
    let client = push_client(&host).unwrap();
    push_index(
        &client,
        &reference,
        &images.iter().collect::<Vec<_>>(),
        &RegistryAuth::Anonymous,
    )
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut wanted: Vec<Platform> = platforms.to_vec();
    wanted.push(Platform::of_this_device());
    for (i, platform) in wanted.into_iter().enumerate() {
        let source = RegistrySource::new(plain_http(&host)).unwrap();
        let root = dir.path().join(format!("store-{i}"));
        let store =
            ImageStore::open_for_platform(root, source, u64::MAX, platform.clone()).unwrap();
        let image = store.pull(&reference).await.unwrap();
        let content = std::fs::read_to_string(image.rootfs.join("platform")).unwrap();
        assert_eq!(content, platform.to_string(), "for {platform}");
    }
}

#[tokio::test]
async fn basic_auth_pulls_with_the_password_and_refuses_anonymous_and_wrong_ones() {
    let registry = Registry::start(RegistryOptions {
        htpasswd: true,
        ..RegistryOptions::default()
    })
    .unwrap();
    let host = registry.host();
    let reference = format!("{host}/private/app:1");
    let image = build_image(&ImageSpec::new(
        Platform::of_this_device(),
        vec![vec![Entry::file("secret", 0o600, "s3cret")]],
    ));
    let client = push_client(&host).unwrap();
    let auth = RegistryAuth::Basic(USER.into(), PASSWORD.into());
    push_image(&client, &reference, &image, &auth)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let with = |password: Option<&str>| {
        let mut config = plain_http(&host);
        if let Some(password) = password {
            config.credentials.insert(
                host.clone(),
                Credentials::Basic {
                    username: USER.into(),
                    password: password.into(),
                },
            );
        }
        config
    };
    let anonymous = store(&dir.path().join("anon"), with(None))
        .pull(&reference)
        .await
        .unwrap_err();
    assert!(
        matches!(anonymous, PullError::Unauthorized { .. }),
        "{anonymous}"
    );
    assert!(
        anonymous.reason().contains("no credentials are configured"),
        "{anonymous}"
    );
    assert!(!anonymous.retryable());
    let wrong = store(&dir.path().join("wrong"), with(Some("nope")))
        .pull(&reference)
        .await
        .unwrap_err();
    assert!(
        matches!(wrong, PullError::Unauthorized { .. }) && !wrong.retryable(),
        "{wrong}"
    );
    assert!(
        wrong.reason().contains("refused the credentials"),
        "{wrong}"
    );

    let pulled = store(&dir.path().join("ok"), with(Some(PASSWORD)))
        .pull(&reference)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(pulled.rootfs.join("secret")).unwrap(),
        b"s3cret"
    );
}

#[tokio::test]
async fn an_unknown_tag_is_not_found_with_the_registrys_reason() {
    let registry = Registry::start(RegistryOptions::default()).unwrap();
    let host = registry.host();
    let image = build_image(&ImageSpec::new(
        Platform::of_this_device(),
        vec![vec![Entry::dir("x")]],
    ));
    let client = push_client(&host).unwrap();
    push_image(
        &client,
        &format!("{host}/flotilla/app:1"),
        &image,
        &RegistryAuth::Anonymous,
    )
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let err = store(dir.path(), plain_http(&host))
        .pull(&format!("{host}/flotilla/app:missing"))
        .await
        .unwrap_err();
    assert!(matches!(err, PullError::NotFound { .. }), "{err:?}");
    assert!(
        err.reason().contains("manifest unknown"),
        "{}",
        err.reason()
    );
    assert!(!err.retryable());
}

#[tokio::test]
async fn a_plain_http_registry_is_refused_unless_allow_listed() {
    let registry = Registry::start(RegistryOptions::default()).unwrap();
    let host = registry.host();
    let reference = format!("{host}/flotilla/app:1");
    let image = build_image(&ImageSpec::new(
        Platform::of_this_device(),
        vec![vec![Entry::dir("x")]],
    ));
    let client = push_client(&host).unwrap();
    push_image(&client, &reference, &image, &RegistryAuth::Anonymous)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let https_only = store(&dir.path().join("https"), RegistryConfig::default());
    let err = https_only.pull(&reference).await.unwrap_err();
    assert!(matches!(err, PullError::Unreachable { .. }), "{err:?}");
    assert!(
        err.reason().contains("https://"),
        "says it tried HTTPS: {err}"
    );
    assert!(https_only.list().is_empty());
    store(&dir.path().join("http"), plain_http(&host))
        .pull(&reference)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_pull_cut_halfway_resumes_without_downloading_from_zero() {
    let registry = Registry::start(RegistryOptions::default()).unwrap();
    let host = registry.host();
    let image = busybox_image(Platform::of_this_device()).unwrap();
    let client = push_client(&host).unwrap();
    push_image(
        &client,
        &format!("{host}/flotilla/busybox:1"),
        &image,
        &RegistryAuth::Anonymous,
    )
    .await
    .unwrap();
    let layer = &image.layers[0];
    let size = layer.bytes.len() as u64;
    assert!(size > 200_000, "busybox layer is {size} bytes");
    let cut = size / 2;
    let proxy = CutProxy::start(registry.port(), format!("/blobs/{}", layer.digest), cut).await;

    let proxied = format!("127.0.0.1:{}", proxy.port);
    let reference = format!("{proxied}/flotilla/busybox:1");
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), plain_http(&proxied));
    let err = store.pull(&reference).await.unwrap_err();
    assert!(
        matches!(err, PullError::Unreachable { .. }) && err.retryable(),
        "{err:?}"
    );
    let partial = dir.path().join(format!(
        "images/blobs/sha256/{}.partial",
        layer.digest.hex()
    ));
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept > 0 && kept <= cut, "{kept} bytes kept of {cut} sent");

    let pulled = store.pull(&reference).await.unwrap();
    assert_eq!(
        std::fs::read(pulled.rootfs.join("bin/busybox")).unwrap(),
        std::fs::read("/bin/busybox").unwrap()
    );
    let log = proxy.log.lock().unwrap().clone();
    assert_eq!(log.len(), 2, "two requests for the layer: {log:?}");
    let (second_head, second_bytes) = &log[1];
    assert!(
        second_head
            .to_ascii_lowercase()
            .contains(&format!("range: bytes={kept}-")),
        "{second_head}"
    );
    assert!(
        *second_bytes < size - kept / 2,
        "the second response carried {second_bytes} bytes of {size}"
    );
}

/// A TCP proxy to a registry that breaks the first response for one blob
/// after `cut` bytes, and logs each request for that blob (its head and
/// the response bytes forwarded).
struct CutProxy {
    port: u16,
    log: Arc<Mutex<Vec<(String, u64)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CutProxy {
    async fn start(upstream: u16, marker: String, cut: u64) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let armed = Arc::new(Mutex::new(Some(cut)));
        let task = tokio::spawn({
            let log = log.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let server = TcpStream::connect(("127.0.0.1", upstream)).await.unwrap();
                    tokio::spawn(relay(
                        client,
                        server,
                        marker.clone(),
                        log.clone(),
                        armed.clone(),
                    ));
                }
            }
        });
        CutProxy { port, log, task }
    }
}

/// Relays one connection. Requests come one at a time (HTTP/1.1 without
/// pipelining), so the bytes after a blob request are its response.
async fn relay(
    client: TcpStream,
    server: TcpStream,
    marker: String,
    log: Arc<Mutex<Vec<(String, u64)>>>,
    armed: Arc<Mutex<Option<u64>>>,
) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    // Which log entry the response now flowing belongs to, if a blob's.
    let current: Arc<Mutex<Option<usize>>> = Arc::new(Mutex::new(None));
    let upstream = {
        let current = current.clone();
        let log = log.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = client_rx.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if text.starts_with("GET ") || text.starts_with("HEAD ") {
                    let mut current = current.lock().unwrap();
                    *current = None;
                    if text.lines().next().is_some_and(|l| l.contains(&marker)) {
                        let mut log = log.lock().unwrap();
                        log.push((text, 0));
                        *current = Some(log.len() - 1);
                    }
                }
                if server_tx.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        })
    };
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = server_rx.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let mut send = n;
        let mut cut_now = false;
        if let Some(i) = *current.lock().unwrap() {
            let mut log = log.lock().unwrap();
            let mut armed = armed.lock().unwrap();
            if let Some(limit) = *armed {
                let room = limit.saturating_sub(log[i].1) as usize;
                if room <= n {
                    send = room;
                    cut_now = true;
                    *armed = None;
                }
            }
            log[i].1 += send as u64;
        }
        if client_tx.write_all(&buf[..send]).await.is_err() || cut_now {
            break;
        }
    }
    upstream.abort();
    let _ = client_tx.shutdown().await;
}
