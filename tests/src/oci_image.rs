//! OCI images for end-to-end tests: built from files (by the agent's
//! [`testing`](flotilla_agent::image::testing) builder: reproducible gzip
//! tars, a config with the right diff_ids, the manifest), pushed to a test
//! registry with oci-client, alone or as a multi-platform index; and a
//! busybox image made from the machine's static `/bin/busybox`.

use anyhow::Context;
use flotilla_agent::image::Platform;
use flotilla_agent::image::registry::install_crypto_provider;
use flotilla_agent::image::source::{OCI_INDEX, OCI_MANIFEST};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

pub use flotilla_agent::image::testing::{
    BuiltImage, BuiltLayer, Entry, ImageSpec, build_image, build_index, build_layer,
};

/// The applets linked to `/bin/busybox` in [`busybox_image`].
pub const BUSYBOX_APPLETS: &[&str] = &[
    "sh", "sleep", "echo", "cat", "ls", "true", "false", "env", "id", "touch", "mkdir", "rm",
    "wget", "nc", "hostname", "ps", "kill", "date", "tail", "head", "grep", "sed", "test", "httpd",
    "dd", "seq",
];

/// An oci-client for pushing to a plain-HTTP registry at `host` (`127.0.0.1:<port>`).
pub fn push_client(host: &str) -> anyhow::Result<Client> {
    install_crypto_provider();
    let config = ClientConfig {
        protocol: ClientProtocol::HttpsExcept(vec![host.to_owned()]),
        ..ClientConfig::default()
    };
    Ok(Client::try_from(config)?)
}

/// Pushes an image's blobs and its manifest as `reference` (a tag or a digest).
pub async fn push_image(
    client: &Client,
    reference: &str,
    image: &BuiltImage,
    auth: &RegistryAuth,
) -> anyhow::Result<()> {
    let r: Reference = reference.parse()?;
    client.auth(&r, auth, RegistryOperation::Push).await?;
    client
        .push_blob(&r, image.config.clone(), image.config_digest.as_str())
        .await
        .context("pushing the config")?;
    for layer in &image.layers {
        client
            .push_blob(&r, layer.bytes.clone(), layer.digest.as_str())
            .await
            .with_context(|| format!("pushing layer {}", layer.digest))?;
    }
    client
        .push_manifest_raw(&r, image.manifest.clone(), OCI_MANIFEST.parse()?)
        .await
        .context("pushing the manifest")?;
    Ok(())
}

/// Pushes each image by digest into `reference`'s repository, then an index
/// over them as `reference`; returns the index digest.
pub async fn push_index(
    client: &Client,
    reference: &str,
    images: &[&BuiltImage],
    auth: &RegistryAuth,
) -> anyhow::Result<String> {
    let r: Reference = reference.parse()?;
    for image in images {
        let by_digest = format!(
            "{}/{}@{}",
            r.registry(),
            r.repository(),
            image.manifest_digest
        );
        push_image(client, &by_digest, image, auth).await?;
    }
    let index = build_index(images);
    let digest = flotilla_agent::image::sha256_of(&index).to_string();
    client
        .push_manifest_raw(&r, index, OCI_INDEX.parse()?)
        .await
        .context("pushing the index")?;
    Ok(digest)
}

/// A busybox image for `platform` from this machine's static `/bin/busybox`
/// (Debian's busybox-static), with applet symlinks in `/bin` and `Cmd: sh`.
/// The binary is the machine's, whatever `platform` says.
pub fn busybox_image(platform: Platform) -> anyhow::Result<BuiltImage> {
    let busybox =
        std::fs::read("/bin/busybox").context("/bin/busybox (apt-get install busybox-static)")?;
    let mut base = vec![
        Entry::dir("bin"),
        Entry::file("bin/busybox", 0o755, busybox),
        Entry::dir("etc"),
        Entry::file(
            "etc/passwd",
            0o644,
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        ),
        Entry::file("etc/group", 0o644, "root:x:0:\nnogroup:x:65534:\n"),
        Entry::Dir {
            path: "tmp".into(),
            mode: 0o1777,
        },
        Entry::dir("root"),
    ];
    for applet in BUSYBOX_APPLETS {
        base.push(Entry::symlink(&format!("bin/{applet}"), "busybox"));
    }
    let mut spec = ImageSpec::new(platform, vec![base]);
    spec.cmd = vec!["sh".into()];
    Ok(build_image(&spec))
}
