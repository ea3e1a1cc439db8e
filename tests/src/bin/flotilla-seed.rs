//! `flotilla-seed`: pushes a busybox image, built from this machine's
//! busybox-static for its own architecture, to a registry reached over
//! plain HTTP, so a one-machine fleet runs its examples without internet
//! access (`scripts/run.sh`).

use clap::Parser;
use flotilla_tests::oci_image::{busybox_image, push_client, push_image};

#[derive(Debug, Parser)]
#[command(name = "flotilla-seed", version)]
struct Args {
    /// The registry, `host:port`.
    #[arg(long, default_value = "127.0.0.1:5000")]
    registry: String,
    /// Repository and tag to push as.
    #[arg(long, default_value = "busybox:1.36")]
    image: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let reference = format!("{}/{}", args.registry, args.image);
    let image = busybox_image(flotilla_agent::image::Platform::of_this_device())?;
    let client = push_client(&args.registry)?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(push_image(
            &client,
            &reference,
            &image,
            &oci_client::secrets::RegistryAuth::Anonymous,
        ))?;
    eprintln!("pushed {reference}");
    Ok(())
}
