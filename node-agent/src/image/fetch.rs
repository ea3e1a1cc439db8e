//! Downloading one blob into the store: into `<hex>.partial`, resumed from
//! its length with a range request, cut at the descriptor's size, hashed,
//! fsynced and renamed to `<hex>` only if the sha256 matches.

use std::io::SeekFrom;
use std::path::Path;

use futures_util::StreamExt;
use oci_client::Reference;
use ring::digest::{Context, SHA256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::digest::Sha256;
use super::error::PullError;
use super::source::ImageSource;

/// Makes sure `dir/<hex>` holds the blob `digest` of `size` bytes.
pub(crate) async fn fetch_blob<S: ImageSource>(
    source: &S,
    dir: &Path,
    reference: &Reference,
    digest: &Sha256,
    size: u64,
) -> Result<(), PullError> {
    let done = dir.join(digest.hex());
    if let Ok(meta) = tokio::fs::metadata(&done).await {
        if meta.len() == size {
            return Ok(());
        }
        // Not what the manifest describes: fetch it again.
        tokio::fs::remove_file(&done)
            .await
            .map_err(|e| PullError::io(&done, e))?;
    }
    let partial = dir.join(format!("{}.partial", digest.hex()));
    let io = |e| PullError::io(&partial, e);
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&partial)
        .await
        .map_err(io)?;
    let mut have = file.metadata().await.map_err(io)?.len();
    if have > size {
        file.set_len(0).await.map_err(io)?;
        have = 0;
    }
    let mut hash = Context::new(&SHA256);
    hash_prefix(&mut file, have, &mut hash).await.map_err(io)?;

    if have < size {
        let mut blob = source.fetch_blob(reference, digest, have).await?;
        if !blob.ranged && have > 0 {
            // The server sent everything again: start over.
            file.set_len(0).await.map_err(io)?;
            hash = Context::new(&SHA256);
            have = 0;
        }
        file.seek(SeekFrom::Start(have)).await.map_err(io)?;
        let broken = |have: u64, why: String| PullError::Unreachable {
            registry: reference.registry().to_owned(),
            reason: format!("blob {digest} broke off after {have} of {size} bytes: {why}"),
        };
        while have < size {
            let chunk = match blob.stream.next().await {
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => {
                    // Keep what arrived (durably) for the next attempt.
                    let _ = file.sync_data().await;
                    return Err(broken(have, e.to_string()));
                }
                None => {
                    let _ = file.sync_data().await;
                    return Err(broken(have, "the stream ended".into()));
                }
            };
            // Never more than the descriptor says.
            let take = chunk.len().min((size - have) as usize);
            file.write_all(&chunk[..take]).await.map_err(io)?;
            hash.update(&chunk[..take]);
            have += take as u64;
        }
    }
    let actual = Sha256::from_ring(hash.finish());
    if &actual != digest {
        drop(file);
        tokio::fs::remove_file(&partial).await.map_err(io)?;
        return Err(PullError::DigestMismatch {
            what: format!("{}: blob", reference.whole()),
            expected: digest.to_string(),
            actual: actual.to_string(),
        });
    }
    file.sync_all().await.map_err(io)?;
    drop(file);
    tokio::fs::rename(&partial, &done).await.map_err(io)?;
    sync_dir(dir).await
}

/// Feeds the first `len` bytes of `file` to `hash` (a resumed download's
/// hash state cannot be kept, so it is rebuilt from the file).
async fn hash_prefix(
    file: &mut tokio::fs::File,
    len: u64,
    hash: &mut Context,
) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(0)).await?;
    let mut left = len;
    let mut buf = vec![0u8; 64 * 1024];
    while left > 0 {
        let want = buf.len().min(left as usize);
        let n = file.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        hash.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(())
}

/// fsync of a directory, so a rename in it is durable.
pub(crate) async fn sync_dir(dir: &Path) -> Result<(), PullError> {
    let d = dir.to_owned();
    let result = tokio::task::spawn_blocking(move || std::fs::File::open(&d)?.sync_all()).await;
    match result {
        Ok(r) => r.map_err(|e| PullError::io(dir, e)),
        Err(join) => Err(PullError::io(dir, std::io::Error::other(join))),
    }
}
